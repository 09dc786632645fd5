//! Operator-mode fixtures: system-account requests to the full resolver,
//! and the cluster blocks of two-server operator setups.

use std::time::Duration;

use serde_json::Value;

/// A system request's answer without the `server` block, which names the
/// server that answered: `Null` for an empty reply, a string for a reply
/// that is not JSON (a looked-up JWT).
pub async fn ask(admin: &async_nats::Client, subject: &str, body: String) -> Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        admin.request(subject.to_string(), body.into()),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject}: no answer"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    if reply.payload.is_empty() {
        return Value::Null;
    }
    let mut v: Value = serde_json::from_slice(&reply.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply.payload).into()));
    if let Some(server) = v.get("server") {
        assert!(server["id"].as_str().is_some_and(|id| !id.is_empty()));
        v.as_object_mut().unwrap().remove("server");
    }
    v
}

/// Push an account JWT over `$SYS.REQ.CLAIMS.UPDATE` and require
/// `jwt updated`; `what` names the push in a failure.
pub async fn push_ok(admin: &async_nats::Client, token: String, what: &str) {
    let reply = ask(admin, "$SYS.REQ.CLAIMS.UPDATE", token).await;
    assert_eq!(reply["data"]["message"], "jwt updated", "{what}: {reply}");
}

/// `server_name` and a `cluster` block named `c` on a random route port,
/// routed to `route` (another node's `host:port`) when given.
pub fn cluster_node(name: &str, route: Option<&str>) -> String {
    let routes = route
        .map(|r| format!(", routes: [\"nats-route://{r}\"]"))
        .unwrap_or_default();
    format!("server_name: {name}\ncluster {{ name: c, listen: \"127.0.0.1:-1\"{routes} }}\n")
}
