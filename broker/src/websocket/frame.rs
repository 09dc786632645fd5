//! RFC 6455 frame headers, opcodes and close frames, as nats-server builds
//! and reads them (its `websocket.go`): servers never mask, clients must,
//! control payloads are at most 125 bytes, and a close frame's reason is cut
//! to fit with a trailing `...`.

use crate::client::ClosedState;

pub const OP_CONTINUATION: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

pub const FIN_BIT: u8 = 0x80;
/// Set on the first frame of a compressed message (RFC 7692).
pub const RSV1_BIT: u8 = 0x40;
pub const RSV2_BIT: u8 = 0x20;
pub const RSV3_BIT: u8 = 0x10;
pub const MASK_BIT: u8 = 0x80;

/// Largest payload of a ping, pong or close frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Largest header a server writes: no masking key, 8-byte length.
pub const MAX_SERVER_HEADER: usize = 10;

/// Close status codes (RFC 6455 section 7.4.1) nats-server sends.
pub mod status {
    pub const NORMAL_CLOSURE: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Reserved: "no status in the close frame", never sent.
    pub const NO_STATUS_RECEIVED: u16 = 1005;
    pub const INVALID_PAYLOAD_DATA: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_SERVER_ERROR: u16 = 1011;
    pub const TLS_HANDSHAKE: u16 = 1015;
}

/// True for ping, pong and close (and the reserved control opcodes).
pub fn is_control(opcode: u8) -> bool {
    opcode >= OP_CLOSE
}

/// A server frame header (never masked) for a payload of `len` bytes.
/// `first` carries the opcode (continuation frames have none), `compressed`
/// sets RSV1. Returns the header bytes and how many of them are used.
pub fn header(
    first: bool,
    fin: bool,
    compressed: bool,
    opcode: u8,
    len: usize,
) -> ([u8; MAX_SERVER_HEADER], usize) {
    let mut h = [0u8; MAX_SERVER_HEADER];
    let mut b0 = if first { opcode } else { OP_CONTINUATION };
    if fin {
        b0 |= FIN_BIT;
    }
    if compressed {
        b0 |= RSV1_BIT;
    }
    h[0] = b0;
    let n = if len <= MAX_CONTROL_PAYLOAD {
        h[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, n)
}

/// Append a complete unmasked control frame (ping, pong or close) to `out`.
/// The payload must already fit a control frame.
pub fn push_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
    let (h, n) = header(true, true, false, opcode, payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

/// A close frame's payload: the status and the reason. A reason too long for
/// a control frame is cut and ends in `...`, as nats-server does (at a
/// character boundary here, so the reason stays valid UTF-8).
pub fn close_payload(status: u16, reason: &str) -> Vec<u8> {
    let max = MAX_CONTROL_PAYLOAD - 2;
    let mut out = Vec::with_capacity(2 + reason.len().min(max));
    out.extend_from_slice(&status.to_be_bytes());
    if reason.len() > max {
        let mut cut = max - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        out.extend_from_slice(&reason.as_bytes()[..cut]);
        out.extend_from_slice(b"...");
    } else {
        out.extend_from_slice(reason.as_bytes());
    }
    out
}

/// A complete close frame with `status` and `reason`.
pub fn close_frame(status: u16, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + MAX_CONTROL_PAYLOAD);
    push_control(&mut out, OP_CLOSE, &close_payload(status, reason));
    out
}

/// The close frame for a connection the server closes for `reason`: the
/// status nats-server maps the reason to, and the reason's name as text.
pub fn close_frame_for(reason: ClosedState) -> Vec<u8> {
    close_frame(close_status_for(reason), &reason.to_string())
}

/// nats-server's mapping of why a connection closed to a close status.
pub fn close_status_for(reason: ClosedState) -> u16 {
    use ClosedState::*;
    match reason {
        ClientClosed => status::NORMAL_CLOSURE,
        AuthenticationTimeout
        | AuthenticationViolation
        | SlowConsumerPendingBytes
        | SlowConsumerWriteDeadline
        | MaxAccountConnectionsExceeded
        | MaxConnectionsExceeded
        | MaxControlLineExceeded
        | MaxSubscriptionsExceeded
        | AuthenticationExpired
        | Revocation => status::POLICY_VIOLATION,
        TlsHandshakeError => status::TLS_HANDSHAKE,
        ParseError | ProtocolViolation | BadClientProtocolVersion => status::PROTOCOL_ERROR,
        MaxPayloadExceeded => status::MESSAGE_TOO_BIG,
        WriteError | ReadError | StaleConnection | ServerShutdown => status::GOING_AWAY,
        NoRespondersRequiresHeaders | DuplicateRoute | RouteRemoved => {
            status::INTERNAL_SERVER_ERROR
        }
    }
}

/// May a peer send this status in a close frame? (nats-server's
/// `wsIsValidCloseStatus`: 1000-4999 except the reserved and the
/// never-on-the-wire codes.)
pub fn is_valid_close_status(code: u16) -> bool {
    if matches!(code, 1004..=1006 | status::TLS_HANDSHAKE) {
        return false;
    }
    if !(1000..5000).contains(&code) {
        return false;
    }
    !(1016..=2999).contains(&code)
}

/// XOR `buf` with the masking `key`, starting at key byte `pos`; returns the
/// key position after the last byte, so a payload may be unmasked in pieces.
pub fn unmask(buf: &mut [u8], key: [u8; 4], pos: usize) -> usize {
    let mut p = pos & 3;
    let mut chunks = buf.chunks_exact_mut(8);
    if chunks.len() > 0 {
        let mut k = [0u8; 8];
        for (i, b) in k.iter_mut().enumerate() {
            *b = key[(p + i) & 3];
        }
        let k = u64::from_ne_bytes(k);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            c.copy_from_slice(&(u64::from_ne_bytes(w) ^ k).to_ne_bytes());
        }
    }
    for b in chunks.into_remainder() {
        *b ^= key[p];
        p = (p + 1) & 3;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_pick_the_shortest_length() {
        assert_eq!(header(true, true, false, OP_BINARY, 5).0[..2], [0x82, 5]);
        let (h, n) = header(true, true, true, OP_BINARY, 126);
        assert_eq!(&h[..n], &[0xc2, 126, 0, 126]);
        let (h, n) = header(false, false, false, OP_BINARY, 70_000);
        assert_eq!(&h[..n], &[0x00, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let (h, n) = header(true, true, false, OP_BINARY, 65_535);
        assert_eq!(&h[..n], &[0x82, 126, 0xff, 0xff]);
    }

    #[test]
    fn close_reason_is_cut_to_fit() {
        let p = close_payload(1002, "short");
        assert_eq!(p, b"\x03\xeashort");
        let long = "x".repeat(200);
        let p = close_payload(1002, &long);
        assert_eq!(p.len(), MAX_CONTROL_PAYLOAD);
        assert!(p.ends_with(b"..."));
        let accents = "é".repeat(100);
        let p = close_payload(1000, &accents);
        assert!(p.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        let f = close_frame_for(ClosedState::MaxPayloadExceeded);
        assert_eq!(f[0], 0x88);
        assert_eq!(&f[2..4], &1009u16.to_be_bytes());
        assert_eq!(&f[4..], b"Maximum Message Payload Exceeded");
    }

    #[test]
    fn close_status_validity() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 1015 - 1, 3000, 4999] {
            assert!(is_valid_close_status(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_close_status(bad), "{bad}");
        }
    }

    #[test]
    fn unmask_in_pieces_equals_unmask_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut whole = data.clone();
        unmask(&mut whole, key, 0);
        for (i, b) in whole.iter().enumerate() {
            assert_eq!(*b, data[i] ^ key[i % 4]);
        }
        let mut pieces = data.clone();
        let mut pos = 0;
        let mut at = 0;
        for len in [1, 3, 7, 8, 9, 17, 100, 855] {
            pos = unmask(&mut pieces[at..at + len], key, pos);
            at += len;
        }
        assert_eq!(pieces, whole);
    }
}
