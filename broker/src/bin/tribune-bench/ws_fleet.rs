//! A fleet of WebSocket (or plain TCP) clients on one single-threaded tokio runtime (a
//! thread per client would cost more than the servers' own work), and what
//! it tells the scenario conducting it: how many clients are subscribed,
//! and how many messages they have.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::ws_conn::{Op, Transport, WsConn};

/// Upgrades under way at once per process: enough to keep both servers
/// busy, few enough that neither's listen backlog overflows into SYN
/// retries. A fan-out in worker processes has this many per worker; its
/// clients are spread over the nodes of a cluster, whose backlogs add up.
const HANDSHAKES_IN_FLIGHT: usize = 256;
/// A guard against a server that stops answering; not an expectation.
pub const SETUP_DEADLINE: Duration = Duration::from_secs(180);

/// When one client had one message: the kernel's receive stamp (if the
/// socket gave one; `own` if it is the message's own and not that of
/// something read with it) and when the client's task read it.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub kernel: Option<SystemTime>,
    pub own: bool,
    pub read: SystemTime,
}

/// A client that is done: its connection (still open) and its stamps.
pub type Done = (WsConn, Vec<Stamp>);

/// What the clients share with the conductor.
pub struct Fleet {
    gate: Semaphore,
    /// Clients subscribed (their PONG seen).
    pub ready: AtomicU64,
    /// Messages received, all clients together.
    pub delivered: AtomicU64,
}

/// Start clients `first..first + n`, client `i` on
/// `addrs[i % addrs.len()]` over `transport` and subscribed to
/// `subject(i)`, each staying for `msgs` messages (none: done once
/// subscribed). `first` lets several worker processes share one fleet's
/// numbering (and so its nodes and source addresses).
pub fn spawn(
    addrs: &[SocketAddr],
    transport: Transport,
    first: u64,
    n: u64,
    msgs: usize,
    subject: impl Fn(u64) -> String,
) -> (Arc<Fleet>, JoinSet<io::Result<Done>>) {
    let fleet = Arc::new(Fleet {
        gate: Semaphore::new(HANDSHAKES_IN_FLIGHT),
        ready: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    });
    let mut tasks = JoinSet::new();
    for i in first..first + n {
        let addr = addrs[(i % addrs.len() as u64) as usize];
        tasks.spawn(client(addr, transport, i, subject(i), msgs, fleet.clone()));
    }
    (fleet, tasks)
}

/// One client: upgrade, INFO, `CONNECT`+`SUB`+`PING` in one frame, the
/// PONG (the subscription is then registered); then `msgs` messages, read
/// as they come, answering the server's pings on the way.
async fn client(
    addr: SocketAddr,
    transport: Transport,
    i: u64,
    subject: String,
    msgs: usize,
    fleet: Arc<Fleet>,
) -> io::Result<Done> {
    let setup = async {
        let _permit = fleet
            .gate
            .acquire()
            .await
            .map_err(|_| io::Error::other("setup gate closed"))?;
        let mut c = WsConn::open(addr, transport, i).await?;
        while c.next_op().await?.op != Op::Info {}
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\
             \"name\":\"ws-bench\",\"lang\":\"tribune-bench\",\"version\":\"0\",\"protocol\":1}}\r\n\
             SUB {subject} 1\r\nPING\r\n"
        );
        c.send(hello.as_bytes()).await?;
        while c.next_op().await?.op != Op::Pong {}
        Ok::<_, io::Error>(c)
    };
    let mut c = tokio::time::timeout(SETUP_DEADLINE, setup)
        .await
        .map_err(|_| io::Error::other(format!("{transport:?} client setup timed out")))??;
    fleet.ready.fetch_add(1, Ordering::Release);
    let mut stamps = Vec::with_capacity(msgs);
    while stamps.len() < msgs {
        c.flush_replies().await?;
        let r = c.next_op().await?;
        if r.op == Op::Msg {
            stamps.push(Stamp {
                kernel: r.stamp,
                own: r.last,
                read: SystemTime::now(),
            });
            fleet.delivered.fetch_add(1, Ordering::Release);
        }
    }
    c.flush_replies().await?;
    Ok((c, stamps))
}

/// Wait until `count` reaches `want`, failing as soon as a client fails;
/// clients that finish meanwhile leave their results in `done`.
pub async fn wait_for(
    count: &AtomicU64,
    want: u64,
    tasks: &mut JoinSet<io::Result<Done>>,
    done: &mut Vec<Done>,
    deadline: Duration,
    what: &str,
) -> io::Result<()> {
    let end = Instant::now() + deadline;
    while count.load(Ordering::Acquire) < want {
        while let Some(r) = tasks.try_join_next() {
            done.push(r.map_err(io::Error::other)??);
        }
        if Instant::now() > end {
            return Err(io::Error::other(format!(
                "{what}: {} of {want} after {deadline:?}",
                count.load(Ordering::Acquire)
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Collect every client's result.
pub async fn join_all(
    tasks: &mut JoinSet<io::Result<Done>>,
    done: &mut Vec<Done>,
) -> io::Result<()> {
    while let Some(r) = tasks.join_next().await {
        done.push(r.map_err(io::Error::other)??);
    }
    Ok(())
}
