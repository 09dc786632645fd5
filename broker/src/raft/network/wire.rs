//! The bytes of a Raft request or answer: one version byte, then postcard.
//!
//! A request's body is openraft's own request type (`VoteRequest`,
//! `AppendEntriesRequest`, `InstallSnapshotRequest`), chosen by the
//! operation in the subject. An answer's body is a [`Reply`]: the peer's
//! Raft result, or a [`Failure`] of the transport itself (no such group,
//! busy, undecodable request).
//!
//! postcard encodes enum variants by position: variants are only ever
//! appended, and a change of any body's layout takes a new [`VERSION`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The wire version this node speaks.
pub const VERSION: u8 = 1;

/// An answer to a request.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply<T, E> {
    /// What the peer's Raft answered.
    Ok(T),
    /// The error the peer's Raft returned.
    Raft(E),
    /// The peer did not hand the request to Raft.
    Failed(Failure),
}

/// Why a peer did not hand a request to its Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    #[error("the peer has no such Raft group")]
    UnknownGroup,
    #[error("the peer has too many requests of this group in flight")]
    Busy,
    #[error("the peer could not decode the request")]
    BadRequest,
    #[error("the peer does not speak wire version {0}")]
    UnsupportedVersion(u8),
    #[error("the peer could not encode its answer")]
    Internal,
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("wire version {0}, this node speaks {VERSION}")]
    Version(u8),
    #[error("malformed body: {0}")]
    Body(#[from] postcard::Error),
}

/// The encoded size of `value` behind the version byte.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, postcard::Error> {
    Ok(1 + serialized_size(value)?)
}

/// The postcard size of `value`, without encoding it.
pub fn serialized_size<T: Serialize + ?Sized>(value: &T) -> Result<usize, postcard::Error> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
}

/// Encodes `value` into `buf`, replacing what it held but keeping its
/// capacity (callers reuse one buffer per connection).
pub fn encode_into<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    let mut out = std::mem::take(buf);
    out.clear();
    out.push(VERSION);
    match postcard::to_extend(value, out) {
        Ok(out) => {
            *buf = out;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Encodes `value` into a new buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut buf = Vec::new();
    encode_into(&mut buf, value)?;
    Ok(buf)
}

/// Decodes a message of this wire version. Trailing bytes are refused: a
/// message is exactly one value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let (value, rest) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::Body(postcard::Error::DeserializeBadEncoding));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Reply<(u64, String), String>;

    #[test]
    fn round_trip_keeps_the_buffer() {
        let mut buf = Vec::with_capacity(256);
        let value: R = Reply::Ok((7, "x".into()));
        encode_into(&mut buf, &value).expect("encode");
        assert_eq!(buf[0], VERSION);
        assert_eq!(buf.len(), encoded_len(&value).expect("size"));
        assert!(buf.capacity() >= 256);
        match decode::<R>(&buf).expect("decode") {
            Reply::Ok((7, s)) => assert_eq!(s, "x"),
            other => panic!("unexpected {other:?}"),
        }
        let failed: R = Reply::Failed(Failure::UnsupportedVersion(9));
        let bytes = encode(&failed).expect("encode");
        assert!(matches!(
            decode::<R>(&bytes),
            Ok(Reply::Failed(Failure::UnsupportedVersion(9)))
        ));
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(matches!(decode::<R>(&[]), Err(DecodeError::Empty)));
        assert!(matches!(decode::<R>(&[2, 0]), Err(DecodeError::Version(2))));
        assert!(matches!(decode::<R>(&[VERSION]), Err(DecodeError::Body(_))));
        assert!(matches!(
            decode::<R>(&[VERSION, 9, 9, 9]),
            Err(DecodeError::Body(_))
        ));
        let mut ok = encode(&Reply::<u8, u8>::Ok(1)).expect("encode");
        ok.push(0);
        assert!(matches!(
            decode::<Reply<u8, u8>>(&ok),
            Err(DecodeError::Body(_))
        ));
    }
}
