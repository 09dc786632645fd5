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
    fields(block)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `(name, value)` of each header line after the `NATS/1.0` line, trimmed;
/// nothing when the block is not UTF-8.
fn fields(block: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    std::str::from_utf8(block)
        .into_iter()
        .flat_map(|text| text.split("\r\n").skip(1))
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            Some((k.trim(), v.trim()))
        })
}

/// The headers a stream acts on when it stores a published message, read in
/// one pass over the block (the publish path would otherwise scan it once per
/// header). Like [`get`], names match case-insensitively and the first
/// occurrence wins.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PublishHeaders<'a> {
    pub msg_id: Option<&'a str>,
    pub expected_stream: Option<&'a str>,
    pub expected_last_seq: Option<&'a str>,
    pub expected_last_subj_seq: Option<&'a str>,
    pub expected_last_msg_id: Option<&'a str>,
    pub rollup: Option<&'a str>,
    pub ttl: Option<&'a str>,
}

impl<'a> PublishHeaders<'a> {
    pub fn parse(block: &'a [u8]) -> Self {
        let mut out = PublishHeaders::default();
        for (k, v) in fields(block) {
            // Everything JetStream reads here starts with "Nats-".
            if k.len() < 5 || !k.as_bytes()[..5].eq_ignore_ascii_case(b"nats-") {
                continue;
            }
            let slot = [
                (MSG_ID, &mut out.msg_id),
                (EXPECTED_STREAM, &mut out.expected_stream),
                (EXPECTED_LAST_SEQ, &mut out.expected_last_seq),
                (EXPECTED_LAST_SUBJ_SEQ, &mut out.expected_last_subj_seq),
                (EXPECTED_LAST_MSG_ID, &mut out.expected_last_msg_id),
                (ROLLUP, &mut out.rollup),
                (super::ttl::TTL, &mut out.ttl),
            ]
            .into_iter()
            .find(|(name, _)| k.eq_ignore_ascii_case(name));
            if let Some((_, slot)) = slot {
                slot.get_or_insert(v);
            }
        }
        out
    }
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

/// `block` without the header lines `drop` picks by name (a status line
/// stays); `None` when nothing is dropped.
pub fn without(block: &[u8], drop: impl Fn(&str) -> bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(block).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let mut out = Vec::with_capacity(block.len());
    out.extend_from_slice(first.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dropped = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split_once(':').map_or(line, |(k, _)| k).trim();
        if drop(name) {
            dropped = true;
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    dropped.then_some(out)
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
        assert_eq!(
            without(
                b"NATS/1.0\r\nA: 1\r\nNats-Expected-Stream: S\r\nB: 2\r\n\r\n",
                |n| n.starts_with("Nats-Expected-")
            )
            .as_deref(),
            Some(&b"NATS/1.0\r\nA: 1\r\nB: 2\r\n\r\n"[..])
        );
        assert_eq!(without(&h, |n| n == "Z"), None);
    }

    #[test]
    fn publish_headers_in_one_pass_agree_with_get() {
        let block = b"NATS/1.0\r\nnats-msg-id: a1\r\nX: 1\r\nNats-Msg-Id: second\r\n\
            Nats-Expected-Stream:  S \r\nNats-Expected-Last-Sequence: 7\r\n\
            Nats-Expected-Last-Subject-Sequence: 3\r\nNats-Expected-Last-Msg-Id: m\r\n\
            Nats-Rollup: sub\r\n\r\n";
        let h = PublishHeaders::parse(block);
        for (name, got) in [
            (MSG_ID, h.msg_id),
            (EXPECTED_STREAM, h.expected_stream),
            (EXPECTED_LAST_SEQ, h.expected_last_seq),
            (EXPECTED_LAST_SUBJ_SEQ, h.expected_last_subj_seq),
            (EXPECTED_LAST_MSG_ID, h.expected_last_msg_id),
            (ROLLUP, h.rollup),
        ] {
            assert_eq!(got, get(block, name), "{name}");
            assert!(got.is_some(), "{name}");
        }
        assert_eq!(h.msg_id, Some("a1"), "first occurrence wins");
        assert_eq!(h.expected_stream, Some("S"));
        assert_eq!(PublishHeaders::parse(b""), PublishHeaders::default());
        assert_eq!(
            PublishHeaders::parse(b"\xff\xfe"),
            PublishHeaders::default()
        );
    }
}
