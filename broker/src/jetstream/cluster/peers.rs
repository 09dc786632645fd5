//! Which servers take part in the JetStream domain, as the routes tell.
//!
//! The meta group's voters are the cluster's JetStream servers. A server
//! learns them from its routes (each peer's INFO names it and says whether
//! it runs JetStream and which implementation it is); the composition root
//! implements [`PeerSource`] over the route table, so this layer never sees
//! connections.

/// A JetStream server reachable over a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsPeer {
    /// Raft node id ([`crate::raft::node_id`] of the name).
    pub id: u64,
    pub name: String,
    /// false for a nats-server (or another implementation) with JetStream:
    /// Tribune cannot share a Raft group with it.
    pub tribune: bool,
}

/// The current JetStream peers (this server excluded) and how many
/// JetStream servers the configuration expects in all.
pub trait PeerSource: Send + Sync + 'static {
    fn peers(&self) -> Vec<JsPeer>;
    /// The number of servers (this one included) the meta group is first
    /// formed with: the configured routes, each counted once, this server
    /// counted once whether or not it is in the list.
    fn expected(&self) -> usize;
}

/// Count the servers a route list names: distinct `host:port`s, with the
/// ones that are this server (`is_self`) folded into one, plus this server
/// if it is not listed. At least 1.
pub fn expected_from_routes(routes: &[String], is_self: impl Fn(&str) -> bool) -> usize {
    let mut others: Vec<String> = Vec::new();
    for r in routes {
        let Ok(u) = crate::route::url::RouteUrl::parse(r) else {
            continue;
        };
        let hp = u.host_port();
        if is_self(&hp) {
            continue;
        }
        if !others.contains(&hp) {
            others.push(hp);
        }
    }
    others.len() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_count_each_server_once() {
        let routes = vec![
            "nats-route://u:p@127.0.0.1:6222".to_string(),
            "nats-route://127.0.0.1:6223".to_string(),
            "nats-route://127.0.0.1:6224".to_string(),
            "nats-route://127.0.0.1:6224".to_string(),
        ];
        // This server is :6222 and is in its own list.
        assert_eq!(
            expected_from_routes(&routes, |hp| hp == "127.0.0.1:6222"),
            3
        );
        // This server is :6225, not in the list.
        assert_eq!(
            expected_from_routes(&routes, |hp| hp == "127.0.0.1:6225"),
            4
        );
        assert_eq!(expected_from_routes(&[], |_| false), 1);
    }
}
