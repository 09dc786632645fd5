//! NATS message headers (`NATS/1.0 [status [description]]\r\nKey: value\r\n...\r\n\r\n`):
//! reading the ones JetStream acts on and building the status messages it
//! sends (404 No Messages, 408 Request Timeout, 100 Idle Heartbeat, ...).

pub const MSG_ID: &str = "Nats-Msg-Id";
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
pub const EXPECTED_LAST_SUBJ_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
pub const ROLLUP: &str = "Nats-Rollup";

/// The value of header `name` (case-insensitive), if present.
pub fn get<'a>(block: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(block).ok()?;
    let mut lines = text.split("\r\n");
    lines.next()?; // NATS/1.0 line
    lines.find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Builds a header block with an optional status line and headers.
pub fn build(status: Option<(u16, &str)>, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"NATS/1.0");
    if let Some((code, desc)) = status {
        out.extend_from_slice(format!(" {code}").as_bytes());
        if !desc.is_empty() {
            out.push(b' ');
            out.extend_from_slice(desc.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    finish(out, headers)
}

/// `block` with more headers appended (a fresh block if `block` is empty).
pub fn append(block: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
    if block.len() < 4 || !block.ends_with(b"\r\n\r\n") {
        return build(None, headers);
    }
    finish(block[..block.len() - 2].to_vec(), headers)
}

/// Write `headers` after the lines already in `out`, then the blank line.
fn finish(mut out: Vec<u8>, headers: &[(&str, &str)]) -> Vec<u8> {
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_build() {
        let h = build(None, &[("Nats-Msg-Id", "abc"), ("X", "1")]);
        assert_eq!(h, b"NATS/1.0\r\nNats-Msg-Id: abc\r\nX: 1\r\n\r\n");
        assert_eq!(get(&h, "nats-msg-id"), Some("abc"));
        assert_eq!(get(&h, "missing"), None);
        assert_eq!(
            build(Some((404, "No Messages")), &[]),
            b"NATS/1.0 404 No Messages\r\n\r\n"
        );
        assert_eq!(
            append(&h, &[("Y", "2")]),
            b"NATS/1.0\r\nNats-Msg-Id: abc\r\nX: 1\r\nY: 2\r\n\r\n"
        );
        assert_eq!(append(b"", &[("Y", "2")]), b"NATS/1.0\r\nY: 2\r\n\r\n");
        assert_eq!(get(b"garbage", "x"), None);
    }
}
