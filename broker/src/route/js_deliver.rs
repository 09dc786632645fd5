//! JetStream deliveries that cross a route.
//!
//! A consumer hands a stored message to its deliver subject (a push
//! consumer's, or the reply inbox of a pull request), but the client sees
//! the subject the message was published on: subscribers match on one
//! subject, the message shows another. Clients rely on that: nats.js tells
//! a delivered message from a status message by its subject, so a message
//! that shows the inbox is not taken for a message at all.
//!
//! A route peer must route by the deliver subject, so the shown subject
//! travels in the reply, after an `@`, as nats-server does it:
//!
//! ```text
//! RMSG APP _INBOX.x.1 $JS.ACK.S.w.1.7.7.1700000000000000000.3@orders.new 5
//! ```
//!
//! and the receiving node matches `_INBOX.x.1` but writes
//! `MSG orders.new <sid> $JS.ACK.S.w.1.7.7.1700000000000000000.3 5` to its
//! client. Only `$JS.ACK.` replies carry the suffix, and the `@` counts only
//! after the ack's eight dots, since stream, consumer and subject tokens may
//! themselves contain `@`. A delivery without a reply crosses with the
//! deliver subject only (nats-server does the same).

/// The prefix of every JetStream ack reply.
const JS_ACK_PREFIX: &[u8] = b"$JS.ACK.";

/// Dots in `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`.
const JS_ACK_DOTS: usize = 8;

/// The offset of the `@` that starts a shown-subject suffix in `reply`, if
/// `reply` is a `$JS.ACK.` reply that carries one.
fn suffix_at(reply: &[u8]) -> Option<usize> {
    if !reply.starts_with(JS_ACK_PREFIX) {
        return None;
    }
    let mut dots = 0;
    for (i, &b) in reply.iter().enumerate() {
        match b {
            b'.' => dots += 1,
            b'@' if dots >= JS_ACK_DOTS => return Some(i),
            _ => {}
        }
    }
    None
}

/// The reply to send to a route peer for a delivery of a message showing
/// `shown`: `reply@shown`. `None` when `reply` is not an ack reply (the
/// peer would not decode the suffix) or already carries a suffix.
pub fn encode_reply(reply: &[u8], shown: &[u8]) -> Option<Vec<u8>> {
    if !reply.starts_with(JS_ACK_PREFIX) || suffix_at(reply).is_some() || shown.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(reply.len() + 1 + shown.len());
    out.extend_from_slice(reply);
    out.push(b'@');
    out.extend_from_slice(shown);
    Some(out)
}

/// Split a reply that arrived from a route into the subject to show and
/// the ack reply to hand the client: `Some((shown, reply))`, or `None`
/// when it carries no suffix (deliver the message as it came).
pub fn decode_reply(reply: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = suffix_at(reply)?;
    let shown = &reply[at + 1..];
    if shown.is_empty() {
        return None;
    }
    Some((shown, &reply[..at]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &[u8] = b"$JS.ACK.S.w.1.7.7.1700000000000000000.3";

    #[test]
    fn round_trip() {
        let wire = encode_reply(ACK, b"orders.new").expect("an ack reply gets a suffix");
        assert_eq!(
            wire,
            b"$JS.ACK.S.w.1.7.7.1700000000000000000.3@orders.new".to_vec()
        );
        assert_eq!(decode_reply(&wire), Some((&b"orders.new"[..], ACK)));
    }

    #[test]
    fn plain_replies_are_left_alone() {
        assert_eq!(encode_reply(b"_INBOX.abc", b"orders.new"), None);
        assert_eq!(decode_reply(b"_INBOX.abc@orders.new"), None);
        assert_eq!(decode_reply(ACK), None);
    }

    #[test]
    fn at_signs_inside_the_ack_tokens_are_not_the_suffix() {
        // Stream and consumer names may contain '@': only an '@' after the
        // eighth dot starts the suffix.
        let ack = b"$JS.ACK.S@x.w@y.1.7.7.1700000000000000000.3";
        assert_eq!(decode_reply(ack), None);
        let wire = encode_reply(ack, b"a@b.c").expect("suffix");
        assert_eq!(decode_reply(&wire), Some((&b"a@b.c"[..], &ack[..])));
    }

    #[test]
    fn no_double_suffix_and_no_empty_subject() {
        let wire = encode_reply(ACK, b"orders.new").expect("suffix");
        assert_eq!(encode_reply(&wire, b"other"), None);
        assert_eq!(encode_reply(ACK, b""), None);
        let mut empty = ACK.to_vec();
        empty.push(b'@');
        assert_eq!(decode_reply(&empty), None);
    }
}
