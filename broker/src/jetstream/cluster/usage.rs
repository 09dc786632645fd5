//! Each account's API counters, shared between the domain's servers.
//!
//! nats-server counts an API call on the server that answers it and has
//! every server send its accounts' counts to the others (every 1.5 s, its
//! `usageTick`); `$JS.API.INFO` then reports the account's calls across the
//! domain, while `/jsz` keeps each server's own. Tribune does the same over
//! the system account, on a subject of its own with a JSON body: JetStream
//! clusters mixing Tribune and nats-server servers are refused anyway, and
//! nats-server's binary usage records are not something to imitate blindly.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::debug;

use crate::internal::{ChannelHandler, InternalClient, OwnedMsg};
use crate::server::Server;

/// Where each server publishes its report: this prefix and its name.
const SUBJECT_PREFIX: &str = "$TRIBUNE.JS.USAGE.";
/// nats-server's `usageTick`.
const TICK: Duration = Duration::from_millis(1500);

/// One account's API counters on one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCounts {
    pub total: u64,
    pub errors: u64,
}

/// A server's report: its counts per account.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    server: String,
    accounts: HashMap<String, ApiCounts>,
}

/// What the other servers last reported, by server then account.
#[derive(Debug, Default)]
pub struct RemoteUsage {
    by_server: Mutex<HashMap<String, HashMap<String, ApiCounts>>>,
}

impl RemoteUsage {
    /// The other servers' counts for `account`, added up.
    pub fn account(&self, account: &str) -> ApiCounts {
        let mut sum = ApiCounts::default();
        for accounts in self.by_server.lock().values() {
            if let Some(c) = accounts.get(account) {
                sum.total = sum.total.saturating_add(c.total);
                sum.errors = sum.errors.saturating_add(c.errors);
            }
        }
        sum
    }

    /// Take a report in; this server's own and malformed ones are dropped.
    fn take(&self, me: &str, payload: &[u8]) {
        match serde_json::from_slice::<Report>(payload) {
            Ok(r) if r.server != me => {
                self.by_server.lock().insert(r.server, r.accounts);
            }
            Ok(_) => {}
            Err(e) => debug!("Ignoring a malformed JetStream usage report: {e}"),
        }
    }
}

/// This server's counts per account, now.
fn local_counts(server: &Server) -> HashMap<String, ApiCounts> {
    use std::sync::atomic::Ordering;
    let Some(js) = server.jetstream() else {
        return HashMap::new();
    };
    js.accounts()
        .into_iter()
        .map(|a| {
            let c = ApiCounts {
                total: a.api_total.load(Ordering::Relaxed),
                errors: a.api_errors.load(Ordering::Relaxed),
            };
            (a.name.clone(), c)
        })
        .collect()
}

/// Subscribe to the other servers' reports and send this server's own
/// whenever its counts changed, each tick, until the server goes.
pub fn start(server: &Arc<Server>, remote: Arc<RemoteUsage>) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = InternalClient::new(
        server,
        server.system_account(),
        Arc::new(ChannelHandler(tx)),
    );
    client.subscribe(server, &format!("{SUBJECT_PREFIX}*"), None)?;
    tokio::spawn(run(Arc::downgrade(server), client, remote, rx));
    Ok(())
}

async fn run(
    server: Weak<Server>,
    client: InternalClient,
    remote: Arc<RemoteUsage>,
    mut rx: mpsc::UnboundedReceiver<OwnedMsg>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent: Option<HashMap<String, ApiCounts>> = None;
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { return };
                let Some(s) = server.upgrade() else { return };
                remote.take(&s.name, &m.payload);
            }
            _ = tick.tick() => {
                let Some(s) = server.upgrade() else { return };
                let now = local_counts(&s);
                if last_sent.as_ref() == Some(&now) {
                    continue;
                }
                let report = Report { server: s.name.clone(), accounts: now };
                match serde_json::to_vec(&report) {
                    Ok(body) => {
                        let subject = format!("{SUBJECT_PREFIX}{}", s.name);
                        client.publish(&s, &subject, None, b"", &body);
                    }
                    Err(e) => debug!("Cannot encode the JetStream usage report: {e}"),
                }
                last_sent = Some(report.accounts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(server: &str, counts: &[(&str, u64, u64)]) -> Vec<u8> {
        let accounts = counts
            .iter()
            .map(|(a, t, e)| {
                (
                    a.to_string(),
                    ApiCounts {
                        total: *t,
                        errors: *e,
                    },
                )
            })
            .collect();
        serde_json::to_vec(&Report {
            server: server.to_string(),
            accounts,
        })
        .unwrap()
    }

    #[test]
    fn sums_the_latest_report_of_each_other_server() {
        let r = RemoteUsage::default();
        r.take("me", &report("s1", &[("A", 5, 1), ("B", 2, 0)]));
        r.take("me", &report("s2", &[("A", 3, 2)]));
        // A newer report replaces the server's previous one.
        r.take("me", &report("s1", &[("A", 7, 1)]));
        // Our own report and garbage change nothing.
        r.take("me", &report("me", &[("A", 100, 100)]));
        r.take("me", b"{not json");
        assert_eq!(
            r.account("A"),
            ApiCounts {
                total: 10,
                errors: 3
            }
        );
        assert_eq!(r.account("B"), ApiCounts::default());
    }
}
