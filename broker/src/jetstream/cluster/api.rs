//! The JetStream API requests that concern the whole domain and are made
//! from the system account, as in nats-server: only the meta leader
//! answers (the others stay silent, so the requester gets one answer).
//!
//! - `$JS.API.META.LEADER.STEPDOWN`: the meta leader hands leadership to
//!   another voter.

use std::sync::{Arc, Weak};

use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::group::MetaGroup;
use crate::internal::{InternalClient, OwnedMsg};
use crate::server::Server;

pub const META_STEPDOWN: &str = "$JS.API.META.LEADER.STEPDOWN";

/// Serve the system account's domain requests until the channel closes.
pub async fn serve(
    server: Weak<Server>,
    client: Arc<InternalClient>,
    meta: Arc<MetaGroup>,
    mut rx: mpsc::UnboundedReceiver<OwnedMsg>,
) {
    while let Some(m) = rx.recv().await {
        let Some(reply) = m.reply.clone() else {
            continue;
        };
        if m.subject != META_STEPDOWN || !meta.is_leader() {
            continue;
        }
        const KIND: &str = "io.nats.jetstream.api.v1.meta_leader_stepdown_response";
        let placement = match super::stepdown::parse(&m.payload) {
            Ok(p) => p,
            Err(e) => {
                if let Some(s) = server.upgrade() {
                    let body = json!({ "type": KIND, "error": e });
                    client.publish(&s, &reply, None, b"", body.to_string().as_bytes());
                }
                continue;
            }
        };
        // The stepdown waits for the new leader: answer from a task.
        let (server, client, meta) = (server.clone(), client.clone(), meta.clone());
        tokio::spawn(async move {
            info!("JetStream cluster metadata leader stepping down on request");
            let body = match meta.step_down(placement.as_ref()).await {
                Ok(()) => json!({
                    "type": "io.nats.jetstream.api.v1.meta_leader_stepdown_response",
                    "success": true,
                }),
                Err(e) => {
                    debug!("meta leader stepdown: {e}");
                    json!({
                        "type": "io.nats.jetstream.api.v1.meta_leader_stepdown_response",
                        "error": e,
                    })
                }
            };
            if let Some(s) = server.upgrade() {
                client.publish(&s, &reply, None, b"", body.to_string().as_bytes());
            }
        });
    }
}
