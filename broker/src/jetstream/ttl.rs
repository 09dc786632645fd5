//! Per-message TTLs and subject delete markers (ADR-43).
//!
//! A stream with `allow_msg_ttl` lets each message say how long it lives in
//! a `Nats-TTL` header: a Go duration (`"30s"`), whole seconds (`"30"`) or
//! `"never"`, which also outlives the stream's `max_age`. With
//! `subject_delete_marker_ttl`, removing a subject's last message by age
//! leaves a marker in its place (`Nats-Marker-Reason: MaxAge`, a rollup of
//! the subject, itself living that long), so watchers such as KV clients
//! learn the key is gone.
//!
//! Such streams expire their messages here, in the stream layer, rather
//! than in the store: only this layer reads headers, and only the stream's
//! leader may add a marker (it goes through the stream's own write path,
//! so every replica stores it at the same sequence). The index of expiry
//! times lives in memory and is rebuilt from the stored headers when the
//! stream is opened.

use std::collections::BTreeSet;

use super::headers;

pub(crate) const TTL: &str = "Nats-TTL";
pub(crate) const MARKER_REASON: &str = "Nats-Marker-Reason";
const KV_OPERATION: &str = "KV-Operation";

/// A message's TTL, from its `Nats-TTL` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// Lives this many seconds (at least 1).
    Secs(i64),
    /// Outlives `max_age` too.
    Never,
}

/// Reads a `Nats-TTL` value as nats-server does: `"never"`, a Go duration
/// of at least a second, or whole seconds (`"0"` as a number means none).
/// `Err` is nats-server's "invalid per-message TTL".
pub(crate) fn parse(v: &str) -> Result<Option<Ttl>, ()> {
    if v.eq_ignore_ascii_case("never") {
        return Ok(Some(Ttl::Never));
    }
    match crate::config::parse_go_duration(v) {
        Ok((false, d)) if d.as_secs() >= 1 => Ok(Some(Ttl::Secs(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        ))),
        Ok(_) => Err(()),
        Err(_) => match v.parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(Ttl::Secs(i64::try_from(n).unwrap_or(i64::MAX)))),
            Err(_) => Err(()),
        },
    }
}

/// The TTL of a header block (None: no header, or one that does not parse,
/// which a stored message cannot have).
pub(crate) fn of(hdr: &[u8]) -> Option<Ttl> {
    if hdr.is_empty() {
        return None;
    }
    headers::get(hdr, TTL).and_then(|v| parse(v).ok().flatten())
}

/// A delete marker, or a KV purge (which is one already): its removal
/// leaves no further marker.
pub(crate) fn is_marker(hdr: &[u8]) -> bool {
    !hdr.is_empty()
        && (headers::get(hdr, MARKER_REASON).is_some_and(|v| !v.is_empty())
            || headers::get(hdr, KV_OPERATION) == Some("PURGE"))
}

/// The headers of the marker left when age removes a subject's last
/// message, byte for byte as nats-server writes them.
pub(crate) fn marker_headers(ttl_secs: i64) -> Vec<u8> {
    let ttl = crate::monitor::gofmt::go_duration(
        u64::try_from(ttl_secs)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000),
    );
    format!(
        "NATS/1.0\r\n{MARKER_REASON}: MaxAge\r\n{TTL}: {ttl}\r\n{}: sub\r\n\r\n",
        headers::ROLLUP
    )
    .into_bytes()
}

/// `hdr` with its `Nats-TTL` replaced by `secs` (nats-server raises a TTL
/// below the marker TTL to it, so no marker can outlive what it marks).
pub(crate) fn with_ttl(hdr: &[u8], secs: i64) -> Vec<u8> {
    let text = String::from_utf8_lossy(hdr);
    let mut out = String::with_capacity(hdr.len() + 16);
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let is_ttl = i > 0
            && line
                .split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(TTL));
        if !is_ttl {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("{TTL}: {secs}\r\n\r\n"));
    out.into_bytes()
}

/// When each message with a TTL expires: (unix nanos, sequence).
#[derive(Debug, Default)]
pub(crate) struct TtlIndex {
    due: BTreeSet<(i64, u64)>,
}

impl TtlIndex {
    /// Message `seq`, stored at `ts`, lives `secs` seconds.
    pub(crate) fn track(&mut self, seq: u64, ts: i64, secs: i64) {
        let at = ts.saturating_add(secs.saturating_mul(1_000_000_000));
        self.due.insert((at, seq));
    }

    /// Check `seq` again at `at` (a marker that is not stored yet).
    pub(crate) fn retry(&mut self, seq: u64, at: i64) {
        self.due.insert((at, seq));
    }

    /// When the next message is due, if any is tracked.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The sequences whose time has come by `now`, taken out of the index.
    pub(crate) fn take_due(&mut self, now: i64) -> Vec<u64> {
        let rest = self.due.split_off(&(now.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.due, rest);
        due.into_iter().map(|(_, seq)| seq).collect()
    }

    pub(crate) fn clear(&mut self) {
        self.due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_values_read_as_nats_server_reads_them() {
        assert_eq!(parse("never"), Ok(Some(Ttl::Never)));
        assert_eq!(parse("NEVER"), Ok(Some(Ttl::Never)));
        assert_eq!(parse("30s"), Ok(Some(Ttl::Secs(30))));
        assert_eq!(parse("1m30s"), Ok(Some(Ttl::Secs(90))));
        assert_eq!(parse("1500ms"), Ok(Some(Ttl::Secs(1))));
        assert_eq!(parse("20"), Ok(Some(Ttl::Secs(20))));
        assert_eq!(parse("0"), Err(()), "a zero duration is below a second");
        assert_eq!(parse("00"), Ok(None), "a zero number means none");
        assert_eq!(parse("500ms"), Err(()));
        assert_eq!(parse("-1"), Err(()));
        assert_eq!(parse("-5s"), Err(()));
        assert_eq!(parse("soon"), Err(()));
        assert_eq!(parse(""), Err(()));
    }

    #[test]
    fn markers_are_recognised_and_written_like_nats_server() {
        let m = marker_headers(2);
        assert_eq!(
            m,
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 2s\r\nNats-Rollup: sub\r\n\r\n"
        );
        assert!(is_marker(&m));
        assert_eq!(of(&m), Some(Ttl::Secs(2)));
        assert!(is_marker(b"NATS/1.0\r\nKV-Operation: PURGE\r\n\r\n"));
        assert!(!is_marker(b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"));
        assert!(!is_marker(b""));
        assert_eq!(
            marker_headers(90),
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1m30s\r\nNats-Rollup: sub\r\n\r\n"
        );
    }

    #[test]
    fn a_short_ttl_is_raised_in_place() {
        let h = b"NATS/1.0\r\nA: 1\r\nnats-ttl: 1s\r\nB: 2\r\n\r\n";
        assert_eq!(
            with_ttl(h, 5),
            b"NATS/1.0\r\nA: 1\r\nB: 2\r\nNats-TTL: 5\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn due_entries_come_out_once_in_time_order() {
        let mut ix = TtlIndex::default();
        assert_eq!(ix.next_due(), None);
        ix.track(3, 1_000_000_000, 2);
        ix.track(1, 1_000_000_000, 1);
        ix.track(2, 5_000_000_000, 1);
        assert_eq!(ix.next_due(), Some(2_000_000_000));
        assert!(ix.take_due(1_999_999_999).is_empty());
        assert_eq!(ix.take_due(3_000_000_000), vec![1, 3]);
        assert!(ix.take_due(3_000_000_000).is_empty());
        ix.retry(1, 4_000_000_000);
        assert_eq!(ix.take_due(10_000_000_000), vec![1, 2]);
        assert!(ix.due.is_empty());
        assert_eq!(ix.next_due(), None);
    }
}
