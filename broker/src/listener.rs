//! Binding TCP listeners the way nats-server does, for every port the
//! server opens (clients, routes, monitoring; a future WebSocket port too).
//!
//! The listen backlog bounds how many connections the kernel completes
//! before the server accepts them. Past it, Linux drops the SYNs and the
//! clients retransmit after 1 s, 3 s, 7 s: a burst of a few hundred clients
//! then takes seconds instead of milliseconds. tokio and the standard
//! library listen with 128; Go (and so nats-server) with the system's
//! limit, `net.core.somaxconn` (4096 on current kernels), so bursts up to
//! that size queue instead of stalling.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Where Linux publishes the largest backlog it honours.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// The backlog when `somaxconn` cannot be read: the kernel default since
/// Linux 5.4. (Go falls back to its frozen `syscall.SOMAXCONN`, 128; the
/// kernel clamps any value above the real limit, so the larger fallback
/// only helps.)
pub const FALLBACK_BACKLOG: u32 = 4096;

/// The backlog to listen with: the system's `somaxconn`, as Go uses it.
pub fn backlog() -> u32 {
    parse_somaxconn(std::fs::read_to_string(SOMAXCONN_PATH).ok().as_deref())
}

/// The backlog for the contents of `somaxconn` (`None`: unreadable).
/// A missing, zero or unparsable value falls back to
/// [`FALLBACK_BACKLOG`]; larger values are used as they are, up to what
/// `listen(2)`'s `int` argument carries.
fn parse_somaxconn(text: Option<&str>) -> u32 {
    text.and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .map_or(FALLBACK_BACKLOG, |n| n.min(i32::MAX as u64) as u32)
}

/// Bind `addr` (`host:port`, any form `tokio::net::TcpListener::bind`
/// takes) with `SO_REUSEADDR` and the system's backlog. Like tokio's bind,
/// every address the name resolves to is tried in turn and the first that
/// binds wins; IPv6 addresses get an IPv6 socket (dual-stack for `::`, as
/// the system configures it).
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    let backlog = backlog();
    let mut last_err = None;
    for a in tokio::net::lookup_host(addr).await? {
        match bind_addr(a, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

fn bind_addr(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Restarting a server must not wait out the old sockets' TIME_WAIT
    // (nats-server's Go listeners and tokio's own bind set it too).
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Raise this process's soft limit on open files to the hard limit, as
/// the Go runtime does for nats-server at start: every connection is a
/// descriptor, and a soft limit of 1024 would cap a server at about a
/// thousand clients however large its backlog. Best effort.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn somaxconn_values() {
        assert_eq!(parse_somaxconn(Some("4096\n")), 4096);
        assert_eq!(parse_somaxconn(Some("128")), 128);
        assert_eq!(parse_somaxconn(Some("200000\n")), 200_000);
        assert_eq!(parse_somaxconn(Some("99999999999")), i32::MAX as u32);
        for bad in [None, Some(""), Some("0\n"), Some("-1"), Some("many")] {
            assert_eq!(parse_somaxconn(bad), FALLBACK_BACKLOG, "{bad:?}");
        }
    }

    #[test]
    fn backlog_is_the_systems() {
        if let Ok(text) = std::fs::read_to_string(SOMAXCONN_PATH) {
            assert_eq!(backlog().to_string(), text.trim());
        }
    }

    /// The backlog really is what the kernel got: a listener that never
    /// accepts still completes 300 handshakes, where a default tokio
    /// listener (backlog 128) completes 129 and leaves the rest retrying.
    #[tokio::test]
    async fn binds_both_families_with_the_system_backlog() {
        let l = bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv4());
        let n = backlog().min(300) as usize;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let c = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .expect("handshake completed by the kernel without accept")
            .unwrap();
            conns.push(c);
        }
        drop(l);
        // IPv6 where the machine has it.
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let l6 = bind("[::1]:0").await.unwrap();
            assert!(l6.local_addr().unwrap().is_ipv6());
        }
        // Rebinding a port still in TIME_WAIT works (SO_REUSEADDR).
        let again = bind(&addr.to_string()).await;
        assert!(again.is_ok(), "{again:?}");
    }
}
