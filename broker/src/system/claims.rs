//! The full resolver's requests, on the subjects nats-server answers
//! (`nsc push`, `nsc delete`, and servers keeping each other in step):
//!
//! | Subject | What it does |
//! |---|---|
//! | `$SYS.REQ.CLAIMS.UPDATE` | store a pushed account JWT |
//! | `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE`, `$SYS.ACCOUNT.<key>.CLAIMS.UPDATE` | the same, for `<key>` |
//! | `$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP` | the stored JWT, or an empty reply |
//! | `$SYS.REQ.CLAIMS.LIST` | every stored account key |
//! | `$SYS.REQ.CLAIMS.DELETE` | an operator-signed delete request |
//! | `$SYS.REQ.CLAIMS.PACK` | a server's hash: answered with every `<key>\|<jwt>` when it differs, then an empty message |
//!
//! Every server of a cluster subscribes, so a push reaches all of them at
//! once; each asks the others for their pack every `interval`, so one that
//! was down catches up; and a login for an account this server does not
//! hold asks the others for it first ([`Claims::fetch`]). Tribune's pack requests go to every server (not
//! to a queue group as in nats-server) and a server ignores its own, so a
//! server never answers itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use std::collections::HashMap;

use anyhow::Result;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error};

use super::ServerInfo;
use crate::internal::{ChannelHandler, InternalClient, OwnedMsg};
use crate::operator::{DirResolver, Refusal, Resolver};
use crate::server::Server;

pub const UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";
pub const LIST: &str = "$SYS.REQ.CLAIMS.LIST";
pub const DELETE: &str = "$SYS.REQ.CLAIMS.DELETE";
pub const PACK: &str = "$SYS.REQ.CLAIMS.PACK";
const ACCOUNT_UPDATE: &str = "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE";
const ACCOUNT_UPDATE_OLD: &str = "$SYS.ACCOUNT.*.CLAIMS.UPDATE";
const ACCOUNT_LOOKUP: &str = "$SYS.REQ.ACCOUNT.*.CLAIMS.LOOKUP";
/// After the pack inbox: where answers to this server's lookups come.
const FETCH_SUFFIX: &str = ".fetch.";

/// What one request asks, read from its subject.
#[derive(Debug, PartialEq, Eq)]
enum Request<'a> {
    Update(Option<&'a str>),
    Lookup(&'a str),
    List,
    Delete,
    Pack,
    PackReply,
    /// An answer to one of our lookups: the token after the fetch inbox.
    FetchReply(&'a str),
}

fn request<'a>(subject: &'a str, inbox: &str) -> Option<Request<'a>> {
    match subject {
        UPDATE => return Some(Request::Update(None)),
        LIST => return Some(Request::List),
        DELETE => return Some(Request::Delete),
        PACK => return Some(Request::Pack),
        s if s == inbox => return Some(Request::PackReply),
        _ => {}
    }
    if let Some(token) = subject
        .strip_prefix(inbox)
        .and_then(|rest| rest.strip_prefix(FETCH_SUFFIX))
    {
        return Some(Request::FetchReply(token));
    }
    let t: Vec<&str> = subject.split('.').collect();
    match t.as_slice() {
        ["$SYS", "REQ", "ACCOUNT", key, "CLAIMS", "UPDATE"]
        | ["$SYS", "ACCOUNT", key, "CLAIMS", "UPDATE"] => Some(Request::Update(Some(key))),
        ["$SYS", "REQ", "ACCOUNT", key, "CLAIMS", "LOOKUP"] => Some(Request::Lookup(key)),
        _ => None,
    }
}

/// A reply's `data` or `error`, as nats-server writes them.
#[derive(Debug, Serialize)]
struct Reply<T: Serialize> {
    server: ServerInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ReplyError>,
}

#[derive(Debug, Serialize)]
struct Status {
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    code: u16,
    message: String,
}

#[derive(Debug, Serialize)]
struct ReplyError {
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    code: u16,
    description: String,
}

/// The running service: its internal client in the system account.
struct Service {
    server: Weak<Server>,
    dir: Arc<DirResolver>,
    client: InternalClient,
    /// Where other servers' packs come back to.
    inbox: String,
    seq: AtomicU64,
    /// Lookups waiting for a peer's answer, by inbox token.
    fetches: Mutex<HashMap<String, oneshot::Sender<String>>>,
    next_fetch: AtomicU64,
    timeout: Duration,
}

/// The server's handle on the running service.
#[derive(Clone)]
pub struct Claims(Arc<Service>);

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("inbox", &self.0.inbox)
            .finish()
    }
}

impl Claims {
    /// Ask the other servers for an account this server does not hold
    /// (nats-server's lookup on a miss), waiting at most the resolver's
    /// `timeout`. The first answer that verifies is stored and applied.
    pub async fn fetch(&self, server: &Arc<Server>, key: &str) -> bool {
        let svc = &self.0;
        if svc.dir.account(key).is_some() {
            return true;
        }
        if !crate::operator::verify::is_public_key(key, nkeys::KeyPairType::Account) {
            return false;
        }
        let token = svc.next_fetch.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        svc.fetches.lock().insert(token.clone(), tx);
        let reply = format!("{}{FETCH_SUFFIX}{token}", svc.inbox);
        let subject = format!("$SYS.REQ.ACCOUNT.{key}.CLAIMS.LOOKUP");
        svc.client.publish(server, &subject, Some(&reply), &[], &[]);
        let answer = tokio::time::timeout(svc.timeout, rx).await;
        svc.fetches.lock().remove(&token);
        let Ok(Ok(jwt)) = answer else {
            debug!("DirResolver - Could not fetch account {key:?} from another server");
            return false;
        };
        match svc.dir.update(&jwt, Some(key)) {
            Ok((claims, changed)) => {
                if changed {
                    server.account_claims_changed(&claims);
                }
                true
            }
            Err(r) => {
                debug!(
                    "DirResolver - Fetched account {key:?} refused: {} - {}",
                    r.headline, r.cause
                );
                false
            }
        }
    }
}

/// Subscribe in the system account and serve until the server is gone.
pub fn start(
    server: &Arc<Server>,
    dir: Arc<DirResolver>,
    interval: Duration,
    timeout: Duration,
) -> Result<Claims> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = InternalClient::new(
        server,
        server.system_account(),
        Arc::new(ChannelHandler(tx)),
    );
    let inbox = format!("$SYS._INBOX.{}.claims.pack", &server.id[1..9]);
    for subject in [
        UPDATE,
        ACCOUNT_UPDATE,
        ACCOUNT_UPDATE_OLD,
        ACCOUNT_LOOKUP,
        LIST,
        DELETE,
        PACK,
        inbox.as_str(),
        &format!("{inbox}{FETCH_SUFFIX}*"),
    ] {
        client.subscribe(server, subject, None)?;
    }
    let svc = Arc::new(Service {
        server: Arc::downgrade(server),
        dir,
        client,
        inbox,
        seq: AtomicU64::new(0),
        fetches: Mutex::new(HashMap::new()),
        next_fetch: AtomicU64::new(1),
        timeout,
    });
    tokio::spawn(svc.clone().serve(rx));
    tokio::spawn(svc.clone().sync_every(interval));
    Ok(Claims(svc))
}

impl Service {
    async fn serve(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<OwnedMsg>) {
        while let Some(msg) = rx.recv().await {
            let Some(server) = self.server.upgrade() else {
                return;
            };
            self.handle(&server, &msg);
        }
    }

    /// Ask the other servers for what we miss: shortly after start (once
    /// routes are up), then every `interval`.
    async fn sync_every(self: Arc<Self>, interval: Duration) {
        tokio::time::sleep(interval.min(Duration::from_secs(2))).await;
        loop {
            let Some(server) = self.server.upgrade() else {
                return;
            };
            if server.is_shutting_down() {
                return;
            }
            let hash = self.dir.hash();
            debug!("DirResolver - Checking store state: {}", hex(&hash));
            self.client
                .publish(&server, PACK, Some(&self.inbox), &[], &hash);
            drop(server);
            tokio::time::sleep(interval).await;
        }
    }

    fn handle(&self, server: &Arc<Server>, msg: &OwnedMsg) {
        let Some(req) = request(&msg.subject, &self.inbox) else {
            return;
        };
        let reply = msg.reply.as_deref();
        let body = std::str::from_utf8(&msg.payload).unwrap_or("");
        match req {
            Request::Update(subject) => match self.dir.update(body, subject) {
                Ok((claims, changed)) => {
                    if changed {
                        server.account_claims_changed(&claims);
                    }
                    self.respond_ok(server, reply, &claims.std.sub, "jwt updated".into());
                }
                Err(r) => self.respond_err(server, reply, r),
            },
            Request::Lookup(key) => {
                let Some(reply) = reply else { return };
                match self.dir.jwt(key) {
                    Some(jwt) => self.send(server, reply, jwt.as_bytes()),
                    None => {
                        debug!("DirResolver - Could not find account {key:?}");
                        self.send(server, reply, b"");
                    }
                }
            }
            Request::List => {
                let Some(reply) = reply else { return };
                let keys = self.dir.keys();
                debug!("list request responded with {} account ids", keys.len());
                self.reply(server, reply, Some(keys), None);
            }
            Request::Delete => {
                let sys = server.system_account().name.clone();
                match self.dir.delete(body, &sys) {
                    Ok(keys) => {
                        for k in &keys {
                            server.account_claims_deleted(k);
                        }
                        let message = format!("deleted {} accounts", keys.len());
                        self.respond_ok(server, reply, "", message);
                    }
                    Err(r) => self.respond_err(server, reply, r),
                }
            }
            Request::Pack => {
                let Some(reply) = reply.filter(|r| *r != self.inbox) else {
                    return;
                };
                if msg.payload[..] != self.dir.hash()[..] {
                    for line in self.dir.pack() {
                        self.send(server, reply, line.as_bytes());
                    }
                }
                self.send(server, reply, b"");
            }
            Request::FetchReply(token) => {
                // Empty: that server does not hold it either; wait on.
                if !msg.payload.is_empty() {
                    if let Some(tx) = self.fetches.lock().remove(token) {
                        let _ = tx.send(body.to_string());
                    }
                }
            }
            Request::PackReply => {
                if msg.payload.is_empty() {
                    debug!(
                        "DirResolver - Merging finished and resulting in: {}",
                        hex(&self.dir.hash())
                    );
                } else if let Some(claims) = self.dir.merge(body) {
                    debug!("DirResolver - Merged account [{}]", claims.std.sub);
                    server.account_claims_changed(&claims);
                }
            }
        }
    }

    fn respond_ok(&self, server: &Server, reply: Option<&str>, account: &str, message: String) {
        if account.is_empty() {
            debug!("{message}");
        } else {
            debug!("{message} - {account}");
        }
        let Some(reply) = reply else { return };
        let status = Status {
            account: account.to_string(),
            code: 200,
            message,
        };
        self.reply(server, reply, Some(status), None);
    }

    fn respond_err(&self, server: &Server, reply: Option<&str>, r: Refusal) {
        if r.account.is_empty() {
            error!("{} - {}", r.headline, r.cause);
        } else {
            error!("{} - {} - {}", r.headline, r.account, r.cause);
        }
        let Some(reply) = reply else { return };
        let e = ReplyError {
            account: r.account,
            code: 500,
            description: format!("{} - {}", r.headline, r.cause),
        };
        self.reply::<()>(server, reply, None, Some(e));
    }

    fn reply<T: Serialize>(
        &self,
        server: &Server,
        to: &str,
        data: Option<T>,
        error: Option<ReplyError>,
    ) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let body = Reply {
            server: ServerInfo::of(server, seq),
            data,
            error,
        };
        match serde_json::to_vec(&body) {
            Ok(bytes) => self.send(server, to, &bytes),
            Err(e) => error!("claims reply not encoded: {e}"),
        }
    }

    fn send(&self, server: &Server, to: &str, payload: &[u8]) {
        self.client.publish(server, to, None, &[], payload);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_read_as_nats_server_reads_them() {
        let inbox = "$SYS._INBOX.abc.claims.pack";
        assert_eq!(request(UPDATE, inbox), Some(Request::Update(None)));
        assert_eq!(
            request("$SYS.REQ.ACCOUNT.AXYZ.CLAIMS.UPDATE", inbox),
            Some(Request::Update(Some("AXYZ")))
        );
        assert_eq!(
            request("$SYS.ACCOUNT.AXYZ.CLAIMS.UPDATE", inbox),
            Some(Request::Update(Some("AXYZ")))
        );
        assert_eq!(
            request("$SYS.REQ.ACCOUNT.AXYZ.CLAIMS.LOOKUP", inbox),
            Some(Request::Lookup("AXYZ"))
        );
        assert_eq!(request(LIST, inbox), Some(Request::List));
        assert_eq!(request(DELETE, inbox), Some(Request::Delete));
        assert_eq!(request(PACK, inbox), Some(Request::Pack));
        assert_eq!(request(inbox, inbox), Some(Request::PackReply));
        assert_eq!(request("$SYS.REQ.ACCOUNT.AXYZ.CONNZ", inbox), None);
        assert_eq!(
            request("$SYS._INBOX.abc.claims.pack.fetch.7", inbox),
            Some(Request::FetchReply("7"))
        );
    }
}
