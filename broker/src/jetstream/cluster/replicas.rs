//! Requests that change which servers hold a stream, decided by the meta
//! leader as in nats-server: it checks the request, picks the servers
//! ([`super::placement`]) and proposes the stream's new peers; every server
//! then starts or retires its replica, and the stream's leader changes the
//! group's membership to match ([`super::membership`]).
//!
//! - `$JS.API.STREAM.PEER.REMOVE.<stream>` (`{"peer":"<server>"}`): the
//!   peer's replica moves to another server. nats-server (2.15) refuses
//!   the removal when no server can take the replica ("peer remap
//!   failed"), rather than leave the stream short of one, and so does
//!   Tribune.
//! - `STREAM.UPDATE` with another `num_replicas`: servers are added, or
//!   removed keeping the stream's leader.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};

use super::meta::{MetaCommand, StreamAssignment};
use super::{placement, remote, JsCluster};
use crate::jetstream::errors::{self, ApiError};
use crate::jetstream::JsAccount;
use crate::server::Server;

/// How long the meta leader waits for the stream's leader to say who it is
/// before shrinking the stream without knowing.
const LEADER_ASK: Duration = Duration::from_secs(2);

/// `STREAM.PEER.REMOVE` of stream `name`: checked in nats-server's order,
/// then the peer's replica is given to another server. `Ok` once the new
/// peers are recorded.
pub(super) async fn remove_peer(
    c: &JsCluster,
    acc: &JsAccount,
    name: &str,
    payload: &[u8],
) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct Request {
        #[serde(default)]
        peer: String,
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(errors::bad_request());
    }
    let req: Request = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    if req.peer.is_empty() {
        return Err(errors::bad_request());
    }
    let sa = c.assignment(&acc.name, name)?;
    // The peer by server name, or by the peer id monitoring shows.
    let names = c.meta.names();
    let peer = sa
        .peers
        .iter()
        .copied()
        .find(|id| {
            names.get(id).is_some_and(|n| *n == req.peer) || crate::raft::peer_id(*id) == req.peer
        })
        .ok_or_else(errors::peer_not_member)?;
    let Some(peers) = placement::replace(&sa.peers, peer, &c.meta.candidates()) else {
        warn!(
            "JetStream cluster rejected peer removal, no replacement available for stream '{} > {name}'",
            acc.name
        );
        return Err(errors::peer_remap());
    };
    info!(
        "JetStream cluster removing peer {} from stream '{} > {name}'",
        req.peer, acc.name
    );
    c.meta
        .propose(MetaCommand::UpdateStream {
            account: acc.name.clone(),
            stream: name.to_string(),
            config: sa.config,
            peers,
        })
        .await
}

/// The peers `sa`'s stream has with `replicas` replicas: new servers
/// after the current ones when it grows ("no suitable peers for
/// placement" when too few are online), its leader and then the online
/// peers when it shrinks.
pub(super) async fn rescale(
    c: &JsCluster,
    server: &Arc<Server>,
    acc: &JsAccount,
    sa: &StreamAssignment,
    name: &str,
    replicas: usize,
) -> Result<Vec<u64>, ApiError> {
    let candidates = c.meta.candidates();
    if replicas > sa.peers.len() {
        return placement::grow(&sa.peers, replicas, &candidates)
            .ok_or_else(errors::no_suitable_peers);
    }
    if replicas < sa.peers.len() {
        let leader = stream_leader(c, server, acc, name).await;
        return Ok(placement::shrink(&sa.peers, replicas, leader, &candidates));
    }
    Ok(sa.peers.clone())
}

/// Who leads the stream: this server's replica knows, or the leader says
/// so itself.
async fn stream_leader(
    c: &JsCluster,
    server: &Arc<Server>,
    acc: &JsAccount,
    name: &str,
) -> Option<u64> {
    if let Some(id) = c
        .stream_group(&acc.name, name)
        .and_then(|g| g.leadership().leader_id)
    {
        return Some(id);
    }
    let info = remote::stream_info(server, acc, name, LEADER_ASK).await?;
    info["cluster"]["leader"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(crate::raft::node_id)
}
