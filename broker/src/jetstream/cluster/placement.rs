//! Which servers hold a stream's replicas when its replica set changes:
//! servers added when it grows or loses a peer, servers kept when it
//! shrinks. Pure choices over what the meta leader knows (the JetStream
//! servers online, how many streams each holds, who leads the stream), so
//! they are tested here without a cluster.
//!
//! As in nats-server's placement, new replicas go to servers that are
//! online, not already members, and hold the fewest streams; peers that
//! stay keep their order, new ones come after them.

/// The servers a stream may be placed on: JetStream servers of the domain
/// that are reachable now, in a random order (ties in load are then broken
/// at random), with how many streams each holds.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// `(node id, streams it holds)`.
    pub servers: Vec<(u64, usize)>,
}

impl Candidates {
    /// `n` servers that are not in `current` nor in `skip`, least loaded
    /// first; `None` when there are fewer than that.
    fn pick(&self, current: &[u64], skip: &[u64], n: usize) -> Option<Vec<u64>> {
        let mut free: Vec<(u64, usize)> = self
            .servers
            .iter()
            .copied()
            .filter(|(id, _)| !current.contains(id) && !skip.contains(id))
            .collect();
        if free.len() < n {
            return None;
        }
        // Stable: equal loads keep the caller's (random) order.
        free.sort_by_key(|(_, load)| *load);
        Some(free.into_iter().take(n).map(|(id, _)| id).collect())
    }

    pub fn is_online(&self, id: u64) -> bool {
        self.servers.iter().any(|(s, _)| *s == id)
    }
}

/// `current` grown to `replicas` peers: the current ones, then new ones.
/// `None` when too few servers can take a replica.
pub fn grow(current: &[u64], replicas: usize, candidates: &Candidates) -> Option<Vec<u64>> {
    let missing = replicas.saturating_sub(current.len());
    let added = candidates.pick(current, &[], missing)?;
    Some(current.iter().copied().chain(added).collect())
}

/// `current` without `removed`, and another server in its place. `None`
/// when no server can take its place (nats-server then refuses the removal
/// rather than leave the stream short of a replica).
pub fn replace(current: &[u64], removed: u64, candidates: &Candidates) -> Option<Vec<u64>> {
    let added = candidates.pick(current, &[removed], 1)?;
    Some(
        current
            .iter()
            .copied()
            .filter(|id| *id != removed)
            .chain(added)
            .collect(),
    )
}

/// The `replicas` peers of `current` that stay when the stream shrinks:
/// its leader first (so leadership does not move), then peers that are
/// online, in order, then offline ones if still short.
pub fn shrink(
    current: &[u64],
    replicas: usize,
    leader: Option<u64>,
    candidates: &Candidates,
) -> Vec<u64> {
    let mut kept: Vec<u64> = Vec::with_capacity(replicas);
    let push = |id: u64, kept: &mut Vec<u64>| {
        if kept.len() < replicas && !kept.contains(&id) {
            kept.push(id);
        }
    };
    if let Some(l) = leader.filter(|l| current.contains(l)) {
        push(l, &mut kept);
    }
    for &id in current.iter().filter(|id| candidates.is_online(**id)) {
        push(id, &mut kept);
    }
    for &id in current {
        push(id, &mut kept);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(servers: &[(u64, usize)]) -> Candidates {
        Candidates {
            servers: servers.to_vec(),
        }
    }

    #[test]
    fn grow_adds_the_least_loaded_servers_after_the_current_ones() {
        let c = online(&[(1, 5), (2, 0), (3, 9), (4, 1), (5, 0)]);
        assert_eq!(grow(&[3], 3, &c), Some(vec![3, 2, 5]));
        assert_eq!(grow(&[3, 1], 3, &c), Some(vec![3, 1, 2]));
        // Already there: nothing added.
        assert_eq!(grow(&[3, 1], 2, &c), Some(vec![3, 1]));
        // Not enough servers online.
        assert_eq!(grow(&[1], 6, &c), None);
    }

    #[test]
    fn replace_never_picks_the_removed_peer_or_a_member() {
        let c = online(&[(1, 0), (2, 0), (3, 0), (4, 3), (5, 7)]);
        assert_eq!(replace(&[1, 2, 3], 2, &c), Some(vec![1, 3, 4]));
        // Three servers, three replicas: nowhere to go.
        let three = online(&[(1, 0), (2, 0), (3, 0)]);
        assert_eq!(replace(&[1, 2, 3], 1, &three), None);
        // A peer that is offline is replaced all the same.
        let without_2 = online(&[(1, 0), (3, 0), (4, 0)]);
        assert_eq!(replace(&[1, 2, 3], 2, &without_2), Some(vec![1, 3, 4]));
    }

    #[test]
    fn shrink_keeps_the_leader_then_online_peers() {
        let all = online(&[(1, 0), (2, 0), (3, 0)]);
        assert_eq!(shrink(&[1, 2, 3], 1, Some(3), &all), vec![3]);
        assert_eq!(shrink(&[1, 2, 3], 2, Some(2), &all), vec![2, 1]);
        // Leader unknown: placement order.
        assert_eq!(shrink(&[1, 2, 3], 2, None, &all), vec![1, 2]);
        // A leader that is not a member (stale answer) is ignored.
        assert_eq!(shrink(&[1, 2, 3], 1, Some(9), &all), vec![1]);
        // Offline peers go first, unless they are needed to reach the count.
        let only_3 = online(&[(3, 0)]);
        assert_eq!(shrink(&[1, 2, 3], 1, None, &only_3), vec![3]);
        assert_eq!(shrink(&[1, 2, 3], 2, None, &only_3), vec![3, 1]);
    }
}
