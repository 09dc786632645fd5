//! The two halves of a WebSocket client connection, as the client
//! connection state machine uses them: [`WsReader`] is the protocol byte
//! stream the client sent (an [`AsyncRead`]), [`WsWriter`] frames what the
//! connection queued (a [`TransportWriter`]). A [`Link`] carries what the
//! reading side owes the client (pongs, the answer to a close) to the
//! writing side.
//!
//! Outbound, each batch the writer takes becomes one binary message, as
//! nats-server's `wsCollapsePtoNB` makes it: compressed when negotiated and
//! over 64 bytes, cut into 4 KiB frames for browsers (separate messages, or
//! fragments of a compressed one except for Safari), written with one
//! vectored write and no copy of uncompressed bytes.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;
use tracing::error;

use super::deflate::{Deflater, InflateError, COMPRESS_THRESHOLD};
use super::frame::{self, OP_BINARY, OP_PONG};
use super::inbound::{Control, Inbound, InboundError, Status};
use crate::client::{ClosedState, TransportWriter};

/// nats-server's `wsFrameSizeForBrowsers`.
pub const BROWSER_FRAME_SIZE: usize = 4096;
/// Pongs owed beyond this mean the client pings and never reads: it is cut
/// off rather than allowed to grow the server's memory.
const MAX_PENDING_CONTROL: usize = 64 * 1024;

/// What the reading half hands the writing half.
#[derive(Default)]
pub struct Link {
    state: Mutex<LinkState>,
    ready: Notify,
}

#[derive(Default)]
struct LinkState {
    /// Complete control frames (pongs) to send before the next data.
    control: Vec<u8>,
    /// The close frame to end with, when the reading side decided it.
    close: Option<Vec<u8>>,
}

impl Link {
    fn push_pong(&self, payload: &[u8]) -> bool {
        let mut st = self.state.lock();
        if st.close.is_some() {
            return true;
        }
        if st.control.len() > MAX_PENDING_CONTROL {
            return false;
        }
        frame::push_control(&mut st.control, OP_PONG, payload);
        drop(st);
        self.ready.notify_one();
        true
    }

    /// Set the close frame, unless one is already decided.
    fn set_close(&self, frame: Vec<u8>) {
        let mut st = self.state.lock();
        if st.close.is_none() {
            st.close = Some(frame);
        }
    }
}

/// Settings of a connection's framing, from its upgrade.
#[derive(Debug, Clone, Copy, Default)]
pub struct Framing {
    pub compress: bool,
    pub mask_required: bool,
    pub browser: bool,
    pub no_compressed_fragments: bool,
    /// The server's `max_payload`: bounds compressed inbound messages.
    pub max_payload: usize,
}

/// Split a connection's two halves into the WebSocket transport.
pub fn split<R, W>(rd: R, wr: W, framing: Framing, tag: String) -> (WsReader<R>, WsWriter<W>) {
    let link = Arc::new(Link::default());
    (
        WsReader {
            inner: rd,
            inbound: Inbound::new(framing.compress, framing.mask_required, framing.max_payload),
            link: link.clone(),
            tag,
            eof: false,
        },
        WsWriter {
            inner: wr,
            link,
            deflater: framing.compress.then(Deflater::default),
            frame_limit: framing.browser.then_some(BROWSER_FRAME_SIZE),
            fragment_compressed: !framing.no_compressed_fragments,
            control: Vec::new(),
            headers: Vec::new(),
            frames: Vec::new(),
        },
    )
}

/// The client protocol bytes inside the client's frames.
pub struct WsReader<R> {
    inner: R,
    inbound: Inbound,
    link: Arc<Link>,
    /// Log prefix (`ip:port - wid:N`).
    tag: String,
    eof: bool,
}

impl<R> WsReader<R> {
    /// Log a read error as nats-server does and decide the close frame:
    /// 1002 with nats-server's text for a frame it refuses, 1009 for a
    /// compressed message over the limits, 1007 for one that does not
    /// inflate. (nats-server queues the 1002 frame too, but then closes
    /// for a read error without flushing it.)
    fn fail(&self, e: InboundError) -> io::Error {
        error!("{} - read error: {e}", self.tag);
        let close = match &e {
            InboundError::Protocol(p) => frame::close_frame(frame::status::PROTOCOL_ERROR, &p.0),
            InboundError::Inflate(InflateError::TooBig) => {
                frame::close_frame(frame::status::MESSAGE_TOO_BIG, &e.to_string())
            }
            InboundError::Inflate(InflateError::Corrupt(_)) => {
                frame::close_frame(frame::status::INVALID_PAYLOAD_DATA, &e.to_string())
            }
        };
        self.link.set_close(close);
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WsReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let link = &this.link;
            let mut flooded = false;
            let r = this.inbound.read(buf, &mut |c| match c {
                Control::Pong(p) => flooded |= !link.push_pong(p),
                Control::Close(reply) => link.set_close(reply),
            });
            if flooded {
                error!(
                    "{} - read error: too many pongs pending, the client does not read",
                    this.tag
                );
                return Poll::Ready(Err(io::Error::other("too many pongs pending")));
            }
            match r {
                Err(e) => return Poll::Ready(Err(this.fail(e))),
                Ok(Status::Data | Status::Closed) => return Poll::Ready(Ok(())),
                Ok(Status::NeedInput) if this.eof => return Poll::Ready(Ok(())),
                Ok(Status::NeedInput) => {
                    let space = this.inbound.input();
                    let mut rb = ReadBuf::new(space);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    let n = rb.filled().len();
                    if n == 0 {
                        this.eof = true;
                    }
                    this.inbound.filled(n);
                }
            }
        }
    }
}

/// Frames the connection's outbound bytes.
pub struct WsWriter<W> {
    inner: W,
    link: Arc<Link>,
    deflater: Option<Deflater>,
    /// Largest frame for browsers.
    frame_limit: Option<usize>,
    /// A compressed message may be cut into fragments (not for Safari).
    fragment_compressed: bool,
    /// Pongs taken from the link, being written.
    control: Vec<u8>,
    /// Frame headers of the batch being written, back to back.
    headers: Vec<u8>,
    /// The batch's frames.
    frames: Vec<FrameSpan>,
}

/// One frame of a batch: where its header ends in the header buffer, and
/// the payload bytes it carries.
type FrameSpan = (usize, std::ops::Range<usize>);

/// Headers for a payload of `len` bytes sent as one message: a single
/// frame, or frames of at most `limit` bytes, each a message of its own
/// (`split_messages`) or fragments of one. Appends the headers to
/// `headers` and one span per frame to `frames`.
fn frame_headers(
    headers: &mut Vec<u8>,
    frames: &mut Vec<FrameSpan>,
    len: usize,
    compressed: bool,
    limit: Option<usize>,
    split_messages: bool,
) {
    let limit = limit.filter(|l| len > *l).unwrap_or(len.max(1));
    let mut start = 0;
    loop {
        let end = (start + limit).min(len);
        let first = start == 0;
        let last = end == len;
        let (h, n) = if split_messages {
            frame::header(true, true, compressed, OP_BINARY, end - start)
        } else {
            frame::header(first, last, compressed && first, OP_BINARY, end - start)
        };
        headers.extend_from_slice(&h[..n]);
        frames.push((headers.len(), start..end));
        start = end;
        if last {
            return;
        }
    }
}

/// Write every slice, in order.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

impl<W: AsyncWrite + Unpin + Send + 'static> WsWriter<W> {
    async fn write_frames(&mut self, batch: &[u8]) -> io::Result<()> {
        {
            let mut st = self.link.state.lock();
            std::mem::swap(&mut self.control, &mut st.control);
        }
        self.headers.clear();
        self.frames.clear();
        let payload: &[u8] = if batch.is_empty() {
            batch
        } else if let Some(d) = self
            .deflater
            .as_mut()
            .filter(|_| batch.len() > COMPRESS_THRESHOLD)
        {
            let payload = d.compress(batch);
            let limit = self.frame_limit.filter(|_| self.fragment_compressed);
            frame_headers(
                &mut self.headers,
                &mut self.frames,
                payload.len(),
                true,
                limit,
                false,
            );
            payload
        } else {
            let limit = self.frame_limit;
            frame_headers(
                &mut self.headers,
                &mut self.frames,
                batch.len(),
                false,
                limit,
                true,
            );
            batch
        };
        let control = (!self.control.is_empty()).then_some(&self.control[..]);
        let r = if self.frames.len() <= 1 {
            // The usual batch: pongs, if any, one header, one payload,
            // without building a list.
            let mut slices = [IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
            let mut n = 0;
            for part in control.into_iter().chain(
                self.frames
                    .first()
                    .into_iter()
                    .flat_map(|(h_end, range)| [&self.headers[..*h_end], &payload[range.clone()]]),
            ) {
                if !part.is_empty() {
                    slices[n] = IoSlice::new(part);
                    n += 1;
                }
            }
            write_all_vectored(&mut self.inner, &mut slices[..n]).await
        } else {
            let mut slices = Vec::with_capacity(1 + 2 * self.frames.len());
            slices.extend(control.map(IoSlice::new));
            let mut h_start = 0;
            for (h_end, range) in &self.frames {
                slices.push(IoSlice::new(&self.headers[h_start..*h_end]));
                slices.push(IoSlice::new(&payload[range.clone()]));
                h_start = *h_end;
            }
            write_all_vectored(&mut self.inner, &mut slices).await
        };
        self.control.clear();
        r
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> TransportWriter for WsWriter<W> {
    fn write_batch<'a>(
        &'a mut self,
        batch: &'a [u8],
    ) -> impl std::future::Future<Output = io::Result<()>> + Send + 'a {
        self.write_frames(batch)
    }

    fn has_control(&self) -> bool {
        !self.link.state.lock().control.is_empty()
    }

    fn control_ready(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.link.ready.notified()
    }

    async fn finish(&mut self, reason: ClosedState, healthy: bool) {
        if healthy {
            let decided = self.link.state.lock().close.take();
            let close = decided.unwrap_or_else(|| frame::close_frame_for(reason));
            let _ = self.inner.write_all(&close).await;
            let _ = self.inner.flush().await;
        }
        let _ = self.inner.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::decode::{Decoder, Frame};
    use tokio::io::{duplex, AsyncReadExt};

    /// Decode server frames (unmasked) into (first byte, payload) pairs.
    fn frames_of(mut wire: Vec<u8>) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        let mut d = Decoder::new(true, false);
        while at < wire.len() {
            let b0 = wire[at];
            let (n, f) = d.next(&mut wire[at..], usize::MAX).unwrap();
            at += n;
            let payload = match f {
                Frame::Data { bytes, .. } | Frame::Ping(bytes) => bytes.to_vec(),
                Frame::Close { .. } | Frame::Pong => Vec::new(),
                Frame::NeedMore => panic!("truncated"),
            };
            out.push((b0, payload));
        }
        out
    }

    async fn written(framing: Framing, batch: &[u8], pong: bool) -> Vec<(u8, Vec<u8>)> {
        let (a, mut b) = duplex(1 << 22);
        let (rd, wr) = tokio::io::split(a);
        let (_r, mut w) = split(rd, wr, framing, "t".into());
        if pong {
            assert!(w.link.push_pong(b"hi"));
            assert!(w.has_control());
        }
        w.write_batch(batch).await.unwrap();
        w.finish(ClosedState::ServerShutdown, true).await;
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        frames_of(wire)
    }

    #[tokio::test]
    async fn one_frame_per_batch_then_the_close() {
        let f = written(Framing::default(), b"MSG a 1 2\r\nhi\r\n", true).await;
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].0, 0x8a, "pong first");
        assert_eq!(f[1], (0x82, b"MSG a 1 2\r\nhi\r\n".to_vec()));
        assert_eq!(f[2].0, 0x88);
    }

    #[tokio::test]
    async fn browsers_get_4k_messages() {
        let batch = vec![b'x'; 10_000];
        let framing = Framing {
            browser: true,
            ..Default::default()
        };
        let f = written(framing, &batch, false).await;
        let sizes: Vec<(u8, usize)> = f.iter().map(|(b, p)| (*b, p.len())).collect();
        assert_eq!(sizes, [(0x82, 4096), (0x82, 4096), (0x82, 1808), (0x88, 0)]);
    }

    #[tokio::test]
    async fn compressed_batches() {
        let batch = b"MSG sports.football.1 1 5\r\nhello\r\n".repeat(2000);
        let framing = Framing {
            compress: true,
            ..Default::default()
        };
        let f = written(framing, &batch, false).await;
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, 0xc2, "RSV1 on a final binary frame");
        let mut inf = crate::websocket::deflate::Inflater::new(1 << 20);
        inf.push(&f[0].1, true).unwrap();
        let mut out = vec![0u8; batch.len() + 10];
        let mut got = 0;
        while inf.active() {
            got += inf.inflate(&mut out[got..]).unwrap();
        }
        assert_eq!(&out[..got], &batch[..]);
        // Small batches are not worth it.
        let f = written(framing, b"PONG\r\n", false).await;
        assert_eq!(f[0], (0x82, b"PONG\r\n".to_vec()));
        // Browsers: fragments of one compressed message; Safari: whole.
        let noisy: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let browser = Framing {
            compress: true,
            browser: true,
            ..Default::default()
        };
        let f = written(browser, &noisy, false).await;
        assert!(f.len() > 3);
        assert_eq!(f[0].0, 0x42, "first fragment: binary, RSV1, not final");
        assert_eq!(f[1].0, 0x00, "continuation");
        assert_eq!(f[f.len() - 2].0, 0x80, "final continuation");
        let safari = Framing {
            no_compressed_fragments: true,
            ..browser
        };
        let f = written(safari, &noisy, false).await;
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, 0xc2);
    }

    #[tokio::test]
    async fn reader_answers_pings_and_closes() {
        let (a, mut b) = duplex(1 << 16);
        let (rd, wr) = tokio::io::split(a);
        let framing = Framing {
            mask_required: true,
            max_payload: 1024,
            ..Default::default()
        };
        let (mut r, mut w) = split(rd, wr, framing, "t".into());
        let key = [1, 2, 3, 4];
        let mut wire = Vec::new();
        for (b0, payload) in [
            (0x89u8, &b"p"[..]),
            (0x82, b"PING\r\n"),
            (0x88, b"\x03\xe8bye"),
        ] {
            wire.push(b0);
            wire.push(0x80 | payload.len() as u8);
            wire.extend_from_slice(&key);
            let mut p = payload.to_vec();
            frame::unmask(&mut p, key, 0);
            wire.extend_from_slice(&p);
        }
        b.write_all(&wire).await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"PING\r\n");
        assert!(w.has_control());
        w.write_batch(b"").await.unwrap();
        w.finish(ClosedState::ClientClosed, true).await;
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert_eq!(out[..3], [0x8a, 1, b'p']);
        assert_eq!(out[3..], frame::close_frame(1000, "bye"));
    }

    #[tokio::test]
    async fn protocol_errors_close_with_1002() {
        let (a, mut b) = duplex(1 << 16);
        let (rd, wr) = tokio::io::split(a);
        let framing = Framing {
            mask_required: true,
            ..Default::default()
        };
        let (mut r, mut w) = split(rd, wr, framing, "t".into());
        b.write_all(&[0x82, 0x01, b'x']).await.unwrap();
        let mut buf = [0u8; 16];
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        w.finish(ClosedState::ReadError, true).await;
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, frame::close_frame(1002, "mask bit missing"));
    }
}
