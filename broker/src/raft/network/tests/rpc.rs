//! Single RPCs: failures, timeouts, size limits and the answering side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, VoteRequest, VoteResponse};
use openraft::{
    CommittedLeaderId, Config, EmptyNode, Entry, EntryPayload, LogId, Raft, RaftNetwork,
    RaftNetworkFactory, Vote,
};

use super::hub::{Capture, Hub};
use super::mem::{MemLog, MemSm, Tc};
use crate::raft::network::subject::{self, Op};
use crate::raft::network::wire::{self, Failure, Reply};
use crate::raft::network::{Connection, Network, NetworkConfig, Router};

fn vote_req() -> VoteRequest<u64> {
    VoteRequest::new(Vote::new(3, 1), None)
}

async fn connect(router: &Arc<Router>, group: &str, target: u64) -> Connection<Tc> {
    let mut net = Network::<Tc>::new(router.clone(), group).expect("group");
    net.new_client(target, &EmptyNode {}).await
}

#[tokio::test]
async fn unknown_group_fails_fast() {
    let hub = Hub::new();
    let a = hub.join(1, NetworkConfig::default());
    let _b = hub.join(2, NetworkConfig::default());
    let mut conn = connect(&a, "missing", 2).await;
    let started = Instant::now();
    let res = conn
        .vote(vote_req(), RPCOption::new(Duration::from_secs(10)))
        .await;
    assert!(matches!(res, Err(RPCError::Unreachable(_))), "{res:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let stats = a.stats();
    assert_eq!((stats.pending, stats.failures, stats.timeouts), (0, 1, 0));
}

#[tokio::test]
async fn timeouts_and_cancellations_leave_nothing_pending() {
    let hub = Hub::new();
    let a = hub.join(1, NetworkConfig::default());
    let _b = hub.join(2, NetworkConfig::default());
    hub.partition(2);
    let mut conn = connect(&a, "g", 2).await;
    for _ in 0..20 {
        let res = conn
            .vote(vote_req(), RPCOption::new(Duration::from_millis(20)))
            .await;
        match res {
            Err(RPCError::Timeout(t)) => {
                assert_eq!((t.id, t.target), (1, 2));
                assert_eq!(t.timeout, Duration::from_millis(20));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    // openraft cancels an RPC by dropping it at its own deadline.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        conn.vote(vote_req(), RPCOption::new(Duration::from_secs(60))),
    )
    .await;
    assert!(cancelled.is_err());
    let stats = a.stats();
    assert_eq!((stats.pending, stats.requests, stats.timeouts), (0, 21, 20));
}

fn entries(n: usize, size: usize) -> Vec<Entry<Tc>> {
    (1..=n as u64)
        .map(|i| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Normal(vec![7; size]),
        })
        .collect()
}

fn append_req(entries: Vec<Entry<Tc>>) -> AppendEntriesRequest<Tc> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries,
    }
}

#[tokio::test]
async fn append_entries_are_kept_under_max_message() {
    let max = 8 * 1024;
    let bus = Arc::new(Capture::default());
    let router = Router::with_config(
        1,
        bus.clone(),
        NetworkConfig {
            max_message: max,
            ..Default::default()
        },
    );
    let mut conn = connect(&router, "g", 2).await;
    let ttl = RPCOption::new(Duration::from_millis(10));

    // Too many entries: the hint is the most that fit.
    let res = conn
        .append_entries(append_req(entries(40, 500)), ttl.clone())
        .await;
    let hint = match res {
        Err(RPCError::PayloadTooLarge(p)) => p.entries_hint(),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    };
    let fits = |n: u64| wire::encoded_len(&append_req(entries(n as usize, 500))).expect("size");
    assert!(
        hint >= 1 && fits(hint) <= max && fits(hint + 1) > max,
        "hint {hint}"
    );
    assert!(bus.sent.lock().is_empty(), "an oversized batch was sent");

    // A batch of the hinted size goes out (and times out: nobody answers).
    let res = conn
        .append_entries(append_req(entries(hint as usize, 500)), ttl.clone())
        .await;
    assert!(matches!(res, Err(RPCError::Timeout(_))), "{res:?}");
    assert_eq!(bus.sent.lock().len(), 1);

    // Entries each too large: first a hint of one, then "unreachable", as
    // openraft cannot split a single entry.
    let res = conn
        .append_entries(append_req(entries(2, max)), ttl.clone())
        .await;
    assert!(
        matches!(&res, Err(RPCError::PayloadTooLarge(p)) if p.entries_hint() == 1),
        "{res:?}"
    );
    let res = conn.append_entries(append_req(entries(1, max)), ttl).await;
    assert!(matches!(res, Err(RPCError::Unreachable(_))), "{res:?}");
    assert_eq!(bus.sent.lock().len(), 1);
    assert_eq!(router.stats().pending, 0);
}

fn sent_reply(bus: &Capture, reply: &str) -> Option<Vec<u8>> {
    bus.sent
        .lock()
        .iter()
        .find(|m| m.subject == reply)
        .map(|m| m.payload.clone())
}

#[tokio::test]
async fn requests_are_answered_or_refused() {
    let bus = Arc::new(Capture::default());
    let router = Router::new(1, bus.clone());
    let config = Arc::new(Config::default().validate().expect("config"));
    let network = Network::<Tc>::new(router.clone(), "g").expect("group");
    let raft = Raft::new(1, config, network, MemLog::default(), MemSm::default())
        .await
        .expect("raft");
    router.register("g", raft.clone()).expect("register");
    assert!(router.register("g", raft.clone()).is_err(), "duplicate");
    assert!(router.register("a.b", raft.clone()).is_err(), "invalid");

    let vote = subject::request(1, "g", Op::Vote);
    let good = wire::encode(&vote_req()).expect("encode");
    let mut old = good.clone();
    old[0] = 9;
    let r = |id: u64| {
        let mut s = String::new();
        subject::write_reply(&mut s, 2, id);
        s
    };
    router.handle(&vote, Some(&r(1)), &old);
    router.handle(&vote, Some(&r(2)), &[wire::VERSION, 0xff]);
    router.handle(&subject::request(1, "h", Op::Vote), Some(&r(3)), &good);
    router.handle(&vote, None, &good);
    router.handle(&vote, Some("$SYS.REQ.SERVER.PING"), &good);
    router.handle("$TRG.0000000000000002.g.vote", Some(&r(4)), &good);
    router.handle(&vote, Some(&r(5)), &good);

    let failure = |reply: &str| match sent_reply(&bus, reply).map(|b| wire::decode(&b)) {
        Some(Ok(Reply::<(), ()>::Failed(f))) => f,
        other => panic!("{reply}: {other:?}"),
    };
    assert_eq!(failure(&r(1)), Failure::UnsupportedVersion(9));
    assert_eq!(failure(&r(2)), Failure::BadRequest);
    assert_eq!(failure(&r(3)), Failure::UnknownGroup);
    assert!(sent_reply(&bus, &r(4)).is_none());

    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Some(b) = sent_reply(&bus, &r(5)) {
            break b;
        }
        assert!(Instant::now() < deadline, "no answer to a good vote");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    match wire::decode::<Reply<VoteResponse<u64>, openraft::error::RaftError<u64>>>(&answer) {
        Ok(Reply::Ok(resp)) => assert_eq!(resp.vote, Vote::new(3, 1)),
        other => panic!("unexpected answer {other:?}"),
    }
    // Six requests addressed to this node, two without a Raft reply
    // subject: four answers, nothing else published.
    assert_eq!(bus.sent.lock().len(), 4);
    raft.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn backoff_doubles_up_to_its_limit() {
    let router = Router::with_config(
        1,
        Arc::new(Capture::default()),
        NetworkConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            ..Default::default()
        },
    );
    let conn = connect(&router, "g", 2).await;
    let got: Vec<u64> = conn
        .backoff()
        .take(6)
        .map(|d| d.as_millis() as u64)
        .collect();
    assert_eq!(got, [100, 200, 400, 500, 500, 500]);
}

/// Answers with the request reversed, or refuses an empty one.
struct Reverse;

impl crate::raft::network::CatchupSource for Reverse {
    fn answer(&self, request: &[u8], max: usize) -> Result<Vec<u8>, String> {
        if request.is_empty() {
            return Err("nothing asked".into());
        }
        assert!(max > 0 && max < NetworkConfig::default().max_message);
        Ok(request.iter().rev().copied().collect())
    }
}

#[tokio::test]
async fn catchup_requests_reach_the_source_and_fail_cleanly() {
    let hub = Hub::new();
    let a = hub.join(1, NetworkConfig::default());
    let b = hub.join(2, NetworkConfig::default());
    let ttl = Duration::from_secs(5);
    // No source for the group: refused at once, not a timeout.
    let err = a.request_catchup(2, "g", b"abc", ttl).await.unwrap_err();
    assert!(err.contains("no such Raft group"), "{err}");
    b.register_catchup("g", Arc::new(Reverse))
        .expect("register");
    assert_eq!(
        a.request_catchup(2, "g", b"abc", ttl).await.unwrap(),
        b"cba"
    );
    // The source's own refusal comes back as its words.
    let err = a.request_catchup(2, "g", b"", ttl).await.unwrap_err();
    assert_eq!(err, "nothing asked");
    // Unregistering the group removes its source too.
    b.unregister("g");
    assert!(a.request_catchup(2, "g", b"abc", ttl).await.is_err());
    assert!(b.register_catchup("a.b", Arc::new(Reverse)).is_err());
    assert_eq!(a.stats().pending, 0);
}
