//! An in-process bus: routes each message by the node token of its subject
//! to that node's router, through a queue and a task per node (as the
//! broker delivers from its own tasks), and can cut nodes off.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::raft::network::subject::PREFIX;
use crate::raft::network::{Bus, NetworkConfig, Router};

/// A message on the bus.
pub struct Msg {
    pub subject: String,
    pub reply: Option<String>,
    pub payload: Vec<u8>,
}

#[derive(Default)]
pub struct Hub {
    nodes: Mutex<HashMap<u64, mpsc::UnboundedSender<Msg>>>,
    cut: Mutex<HashSet<u64>>,
    /// The largest payload carried.
    pub largest: AtomicUsize,
    /// Requests carried, by operation.
    ops: Mutex<HashMap<String, usize>>,
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A router for node `id` on this hub.
    pub fn join(self: &Arc<Self>, id: u64, config: NetworkConfig) -> Arc<Router> {
        let bus = Arc::new(NodeBus {
            hub: self.clone(),
            me: id,
        });
        let router = Router::with_config(id, bus, config);
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let weak: Weak<Router> = Arc::downgrade(&router);
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let Some(router) = weak.upgrade() else { break };
                router.handle(&m.subject, m.reply.as_deref(), &m.payload);
            }
        });
        self.nodes.lock().insert(id, tx);
        router
    }

    /// Drops everything `id` sends or is sent from now on.
    pub fn partition(&self, id: u64) {
        self.cut.lock().insert(id);
    }

    pub fn heal(&self, id: u64) {
        self.cut.lock().remove(&id);
    }

    /// How many requests of `op` were carried.
    pub fn count(&self, op: &str) -> usize {
        self.ops.lock().get(op).copied().unwrap_or(0)
    }

    fn route(&self, from: u64, subject: &str, reply: Option<&str>, payload: &[u8]) {
        let target = subject
            .strip_prefix(PREFIX)
            .and_then(|s| s.strip_prefix('.'))
            .and_then(|s| s.get(..16))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        let Some(target) = target else {
            panic!("hub: not a raft subject: {subject}");
        };
        {
            let cut = self.cut.lock();
            if cut.contains(&from) || cut.contains(&target) {
                return;
            }
        }
        self.largest.fetch_max(payload.len(), Ordering::Relaxed);
        if reply.is_some() {
            let op = subject.rsplit('.').next().unwrap_or_default().to_owned();
            *self.ops.lock().entry(op).or_default() += 1;
        }
        if let Some(tx) = self.nodes.lock().get(&target) {
            let _ = tx.send(Msg {
                subject: subject.to_owned(),
                reply: reply.map(str::to_owned),
                payload: payload.to_vec(),
            });
        }
    }
}

struct NodeBus {
    hub: Arc<Hub>,
    me: u64,
}

impl Bus for NodeBus {
    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        self.hub.route(self.me, subject, reply, payload);
    }
}

/// A bus that keeps what is published, for tests of one router alone.
#[derive(Default)]
pub struct Capture {
    pub sent: Mutex<Vec<Msg>>,
}

impl Bus for Capture {
    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        self.sent.lock().push(Msg {
            subject: subject.to_owned(),
            reply: reply.map(str::to_owned),
            payload: payload.to_vec(),
        });
    }
}
