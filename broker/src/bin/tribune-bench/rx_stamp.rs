//! Reads that say when the kernel received the data (`SO_TIMESTAMPNS`).
//!
//! With 10,000 subscribers in one load-generator process, the time at
//! which the bench's own task gets round to a socket says as much about
//! the bench's scheduling as about the server. The kernel stamps each
//! segment as it arrives (on loopback: when the server's write hands it
//! over), so a latency taken from that stamp measures the server alone,
//! however long the bench then takes to read 10,000 sockets.
//!
//! Linux only, like the rest of the tool (it reads /proc). The control
//! message is read by hand, with the kernel's own layout (`cmsghdr` with a
//! `size_t` length, then a `timespec` of two longs), since nix's parser
//! needs a nix feature the broker does not otherwise build.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime};

use nix::libc;
use socket2::{MaybeUninitSlice, MsgHdrMut, SockRef};

/// Room for the one control message a TCP read carries with timestamps on.
pub const CONTROL_LEN: usize = 64;

/// Ask the kernel to stamp what `sock` receives. The kernel switches
/// stamping on for the whole system a moment after the first socket asks
/// (a deferred switch), so what arrives right after may come unstamped.
pub fn enable(sock: &impl AsFd) -> io::Result<()> {
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
        .map_err(|e| io::Error::other(format!("SO_TIMESTAMPNS: {e}")))
}

/// One non-blocking read into `buf`: the byte count and, when the socket
/// has timestamps on, when the kernel received the last segment read
/// (TCP reports the newest stamp of the segments a read consumes).
pub fn recv(
    sock: &impl AsFd,
    buf: &mut [u8],
    control: &mut [u8; CONTROL_LEN],
) -> io::Result<(usize, Option<SystemTime>)> {
    let sock = SockRef::from(sock);
    let mut bufs = [MaybeUninitSlice::new(as_uninit(buf))];
    let mut msg = MsgHdrMut::new()
        .with_buffers(&mut bufs)
        .with_control(as_uninit(control));
    let n = sock.recvmsg(&mut msg, 0)?;
    let len = msg.control_len().min(CONTROL_LEN);
    Ok((n, stamp_in(&control[..len])))
}

/// View initialized bytes as possibly uninitialized ones, as `recvmsg`
/// takes them.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the only
    // writer through this view is the kernel's recvmsg, which stores
    // initialized bytes; nothing writes `MaybeUninit::uninit()` into it,
    // so `buf` stays initialized for its owner.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Round `n` up to the kernel's control-message alignment (`CMSG_ALIGN`).
fn cmsg_align(n: usize) -> usize {
    let a = size_of::<usize>();
    (n + a - 1) & !(a - 1)
}

fn ne_usize(b: &[u8]) -> Option<usize> {
    Some(usize::from_ne_bytes(
        b.get(..size_of::<usize>())?.try_into().ok()?,
    ))
}

fn ne_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

fn ne_long(b: &[u8]) -> Option<i64> {
    let n = size_of::<libc::c_long>();
    let bytes = b.get(..n)?;
    Some(match n {
        8 => i64::from_ne_bytes(bytes.try_into().ok()?),
        _ => i32::from_ne_bytes(bytes.try_into().ok()?) as i64,
    })
}

/// The `SCM_TIMESTAMPNS` stamp among the control messages in `control`.
fn stamp_in(control: &[u8]) -> Option<SystemTime> {
    let head = cmsg_align(size_of::<usize>() + 8);
    let mut at = 0;
    while control.len() >= at + head {
        let msg = &control[at..];
        let len = ne_usize(msg)?;
        let level = ne_i32(&msg[size_of::<usize>()..])?;
        let kind = ne_i32(&msg[size_of::<usize>() + 4..])?;
        if len < head || at + len > control.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
            let data = &msg[head..len];
            let secs = ne_long(data)?;
            let nanos = ne_long(data.get(size_of::<libc::c_long>()..)?)?;
            let since_epoch = Duration::new(u64::try_from(secs).ok()?, u32::try_from(nanos).ok()?);
            return SystemTime::UNIX_EPOCH.checked_add(since_epoch);
        }
        at += cmsg_align(len);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn parses_a_timestamp_among_other_messages() {
        let head = cmsg_align(size_of::<usize>() + 8);
        let mut control = Vec::new();
        let mut push = |level: i32, kind: i32, data: &[u8]| {
            let len = head + data.len();
            control.extend_from_slice(&len.to_ne_bytes());
            control.extend_from_slice(&level.to_ne_bytes());
            control.extend_from_slice(&kind.to_ne_bytes());
            control.resize(control.len() + head - (size_of::<usize>() + 8), 0);
            control.extend_from_slice(data);
            control.resize(cmsg_align(control.len()), 0);
        };
        push(libc::IPPROTO_IP, 1, &[7, 7, 7]);
        let mut ts = Vec::new();
        ts.extend_from_slice(&(1_700_000_000 as libc::c_long).to_ne_bytes());
        ts.extend_from_slice(&(250_000_000 as libc::c_long).to_ne_bytes());
        push(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &ts);
        let want = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
        assert_eq!(stamp_in(&control), Some(want));
        assert_eq!(stamp_in(&control[..head]), None, "truncated");
        assert_eq!(stamp_in(&[]), None);
    }

    #[test]
    fn loopback_reads_carry_the_kernel_stamp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        enable(&rx).unwrap();
        let mut buf = [0u8; 16];
        let mut control = [0u8; CONTROL_LEN];
        // Until the kernel's switch is on (see `enable`), reads are unstamped.
        for _ in 0..100 {
            let before = SystemTime::now();
            tx.write_all(b"hello").unwrap();
            let (n, stamp) = recv(&rx, &mut buf, &mut control).unwrap();
            assert_eq!(&buf[..n], b"hello");
            if let Some(stamp) = stamp {
                assert!(stamp >= before - Duration::from_millis(5), "{stamp:?}");
                assert!(stamp <= SystemTime::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no read was stamped in 2 s");
    }
}
