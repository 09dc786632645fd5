//! Raft timing and sizes shared by every group.
//!
//! Heartbeats every 250 ms and elections after 1-2 s of silence. openraft
//! 0.9 adds its leader lease (the longest election timeout) before a
//! follower campaigns, so a dead leader is replaced in about 3.5 s
//! (nats-server takes 4-8 s), while a route that stalls for a second (a
//! busy machine) does not start an election.

use std::time::Duration;

pub const HEARTBEAT_MS: u64 = 250;
pub const ELECTION_MIN_MS: u64 = 1_000;
pub const ELECTION_MAX_MS: u64 = 2_000;

/// The meta group snapshots its (small) state every this many entries.
pub const META_SNAPSHOT_EVERY: u64 = 1_024;

/// A replicated stream snapshots its state every this many entries (each
/// a batch of publishes or an API change), and keeps half as many entries
/// after a snapshot so that a replica a little behind catches up from the
/// log rather than by fetching messages.
pub const STREAM_SNAPSHOT_EVERY: u64 = 16_384;

/// [`STREAM_SNAPSHOT_EVERY`], or `TRIBUNE_STREAM_SNAPSHOT_EVERY` from the
/// environment (at least 16): tests use it to snapshot after a few
/// entries.
pub fn stream_snapshot_every() -> u64 {
    std::env::var("TRIBUNE_STREAM_SNAPSHOT_EVERY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(STREAM_SNAPSHOT_EVERY, |n| n.max(16))
}

/// How often a server not yet in a group checks whether to form it.
pub const FORM_POLL: Duration = Duration::from_millis(250);
/// When a peer cannot say whether it belongs to a meta group, how long
/// the set of visible peers must stay the same before the group is formed
/// with it (longer than an election timeout, so an existing leader has
/// reached this server by then if there is one).
pub const FORM_SETTLE: Duration = Duration::from_millis(2 * ELECTION_MAX_MS);
/// How long a server about to form the meta group waits for a peer to say
/// whether it already belongs to one.
pub const FORM_ASK: Duration = Duration::from_secs(1);
/// How often the meta leader looks for servers to add.
pub const GROW_POLL: Duration = Duration::from_secs(1);
/// How long a stepdown waits for another leader.
pub const STEPDOWN_WAIT: Duration = Duration::from_millis(3 * ELECTION_MAX_MS);

/// openraft's configuration for a group; `snapshot_every` entries between
/// snapshots, or none (`None`: the log is kept whole).
pub fn raft_config(cluster: &str, snapshot_every: Option<u64>) -> anyhow::Result<openraft::Config> {
    let config = openraft::Config {
        cluster_name: cluster.to_string(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_MIN_MS,
        election_timeout_max: ELECTION_MAX_MS,
        snapshot_policy: match snapshot_every {
            Some(n) => openraft::SnapshotPolicy::LogsSinceLast(n),
            None => openraft::SnapshotPolicy::Never,
        },
        max_in_snapshot_log_to_keep: snapshot_every.map_or(1000, |n| n / 2),
        // Group commit: up to this many publishes per append request.
        max_payload_entries: 1024,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid Raft configuration: {e}"))
}
