"""nats-py against a three-node JetStream cluster: an R3 stream and its
durable pull consumer, before and after the stream leader is killed with
SIGKILL. Every test runs once on three nats-server nodes (the reference:
validates the test) and once on three tribune-broker nodes.

The cluster is nats_cluster.Cluster (the layout of the Rust fixture
`Cluster::start_js`), one per test; the client of node i is pinned to node i.

Which servers run: JS_FLAVORS unset = both; JS_FLAVORS=nats-server or
JS_FLAVORS=tribune (comma-separated) selects. Unlike test_jetstream_py.py
there is no probe: a missing or JetStream-less tribune-broker fails here
rather than being skipped.

Timeouts are guards against hanging, never assertions about speed.
"""

import asyncio
import os
import time

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from nats_cluster import (
    CLUSTER_NAME,
    JS_DEADLINE,
    POLL,
    Clients,
    Cluster,
    poll,
    wait_consumer_leader,
    wait_stream_leader,
)
from test_nats_py import WAIT, nats_server_bin, tribune_bin

BINARIES = {"nats-server": nats_server_bin, "tribune": tribune_bin}
STREAM = "PY_R3"
CONSUMER = "worker"
# Short, so what a dying consumer leader had handed out comes back soon.
ACK_WAIT = 5.0  # seconds
# The whole scenario on a loaded two-core machine: a guard, not a budget.
SCENARIO_GUARD = 240.0  # seconds


def _flavors():
    env = os.environ.get("JS_FLAVORS")
    if env is None:
        return list(BINARIES)
    out = [f.strip() for f in env.split(",") if f.strip()]
    out = ["tribune" if f.startswith("tribune") else f for f in out]
    for f in out:
        if f not in BINARIES:
            raise ValueError(f"JS_FLAVORS={env!r}: unknown {f!r} (nats-server, tribune)")
    return out


@pytest.fixture(params=_flavors())
def cluster(request, tmp_path):
    c = Cluster(BINARIES[request.param](), tmp_path).start()
    yield c
    c.stop()


def run_guarded(coro):
    """asyncio.run with SCENARIO_GUARD (test_nats_py.run's 60 s is meant for
    a single server, not for elections and a failover)."""
    return asyncio.run(asyncio.wait_for(coro, timeout=SCENARIO_GUARD))


def subject_of(k: int) -> str:
    return f"pyr3.{k % 5}"


def msg_id(k: int) -> str:
    return f"m{k}"


def payload_of(k: int) -> bytes:
    return f"update {k}".encode()


async def create_stream(clients: Clients, via: str):
    """The R3 file stream through node `via`; returns (leader, StreamInfo)
    once every node agrees on the leader and its replicas are current."""
    cfg = StreamConfig(
        name=STREAM,
        subjects=["pyr3.>"],
        storage=StorageType.FILE,
        num_replicas=3,
        allow_direct=True,
    )
    info = await clients.js(via).add_stream(cfg)
    assert info.config.num_replicas == 3
    assert info.config.storage == StorageType.FILE
    leader, infos = await wait_stream_leader(clients, STREAM)
    return leader, infos


async def publish_sure(clients: Clients, k: int, log: dict):
    """Publish message k with `Nats-Msg-Id: m<k>` until acknowledged,
    starting at node k % 3 and moving to the next live node after each
    failure (an error, no responders, a dead connection, no ack in time).
    The message id makes a retry of a stored message a duplicate, not a
    second copy (short of a failover, see test 2). Records the failure
    count and a few samples in `log`; returns the PubAck."""
    end = time.monotonic() + JS_DEADLINE
    attempt = 0
    while True:
        names = sorted(clients.ncs)
        name = names[(k + attempt) % len(names)]
        try:
            return await clients.js(name).publish(
                subject_of(k), payload_of(k), timeout=WAIT / 2, headers={"Nats-Msg-Id": msg_id(k)}
            )
        except Exception as e:  # noqa: BLE001 - every failure is retried
            log["failures"] = log.get("failures", 0) + 1
            samples = log.setdefault("samples", set())
            if len(samples) < 4:
                samples.add(f"{name}: {type(e).__name__} {e}")
            if time.monotonic() > end:
                diagnostics = clients.cluster.diagnostics()
                pytest.fail(f"message {k} never acknowledged: {e!r}\n{diagnostics}")
        attempt += 1
        await asyncio.sleep(POLL / 2)


async def publish_every_node(clients: Clients, first: int, n: int) -> dict:
    """Messages first..first+n-1, in turn through every node; a fresh,
    healthy stream numbers them in order. Returns (seq -> k, the failed
    attempts: a retry across a leader change, which a loaded machine can
    cause, may store a message twice)."""
    log = {}
    out = {}
    last = 0
    for k in range(first, first + n):
        ack = await publish_sure(clients, k, log)
        assert ack.stream == STREAM
        assert ack.seq > last, f"message {k} acked at {ack.seq} after {last} ({log})"
        last = ack.seq
        out[ack.seq] = k
    return out, log.get("failures", 0)


async def check_read_back(clients: Clients, names, want: dict):
    """Every node in `names` serves every seq of `want` (seq -> k) through
    STREAM.MSG.GET (the leader answers) and DIRECT.GET (any current replica
    answers, preferring the asking node's own copy), with subject, payload
    and message id. Polls: a follower's copy may lag."""
    for name in names:
        js = clients.js(name)
        pending = dict(want)

        async def check():
            for seq, k in list(pending.items()):
                for direct in (False, True):
                    m = await js.get_msg(STREAM, seq, direct=direct)
                    got = (m.seq, m.subject, m.data, (m.headers or {}).get("Nats-Msg-Id"))
                    assert got == (seq, subject_of(k), payload_of(k), msg_id(k)), (
                        f"{name} direct={direct}: {got}"
                    )
                del pending[seq]
            return True

        await poll(clients.cluster, f"{name} to serve {len(want)} messages", check)


def assert_cluster_block(info, leader: str, all_names):
    """STREAM.INFO/CONSUMER.INFO `cluster`: our cluster, `leader`, and the
    other two nodes as replicas (current or not)."""
    c = info.cluster
    assert c is not None, info
    assert c.name == CLUSTER_NAME, c
    assert c.leader == leader, c
    replicas = c.replicas or []
    assert len(replicas) == 2, c
    assert {r.name for r in replicas} == set(all_names) - {leader}, c


def test_r3_stream_publish_and_read_through_every_node(cluster):
    """An R3 file stream created through node-a; STREAM.INFO through every
    node names the same leader and the other two nodes as replicas; 30
    acknowledged publishes, in turn through every node, get sequences 1..30;
    every node serves all 30 through MSG.GET and DIRECT.GET."""

    async def main():
        clients = await Clients(cluster).connect_all()
        try:
            names = sorted(clients.ncs)
            leader, infos = await create_stream(clients, "node-a")
            assert sorted(infos) == names
            for name, info in infos.items():
                assert info.config.num_replicas == 3, name
                assert_cluster_block(info, leader, names)
            want, failures = await publish_every_node(clients, 0, 30)
            await check_read_back(clients, names, want)
            state = (await clients.js("node-b").stream_info(STREAM)).state
            assert (state.messages, state.first_seq) == (state.last_seq, 1), state
            if failures == 0:  # no retry, so no message can be stored twice
                assert list(want) == list(range(1, 31)), want
                assert state.last_seq == 30, state
        finally:
            await clients.close()

    run_guarded(main())


async def fetch_and_ack(js, batch: int) -> list:
    """One fetch of up to `batch` from the durable through `js`, each
    message acked with ack_sync (the consumer leader confirms). Returns
    [(stream seq, payload)] of the confirmed ones; failures (no consumer
    leader yet, nothing to fetch, a lost ack) yield what came before.

    Every delivered message must show the subject it was published on, not
    the fetch inbox, also when the consumer leader is another node (the
    delivery crossed a route)."""
    out = []
    try:
        sub = await js.pull_subscribe_bind(CONSUMER, stream=STREAM)
    except Exception as e:  # noqa: BLE001 - the caller polls again
        print(f"bind: {e!r}")
        return out
    try:
        msgs = await sub.fetch(batch, timeout=2)
    except Exception as e:  # noqa: BLE001 - timeouts and 503s while leaderless
        print(f"fetch: {type(e).__name__} {e}")
        msgs = []
    for m in msgs:
        try:
            await m.ack_sync(timeout=WAIT / 2)
        except Exception as e:  # noqa: BLE001 - redelivered after ack_wait
            print(f"ack of {m.metadata.sequence.stream}: {e!r}")
            continue
        seq = m.metadata.sequence.stream
        assert m.subject.startswith("pyr3."), f"seq {seq} delivered on {m.subject!r}"
        out.append((seq, m.subject, m.data))
    try:
        await sub.unsubscribe()
    except Exception:  # noqa: BLE001 - the connection may be gone
        pass
    return out


def test_r3_consumer_and_publishes_survive_stream_leader_kill(cluster):
    """An R3 stream with 30 messages and a durable pull consumer (explicit
    acks, replicas inherited); 15 fetched and acked through a follower. A
    publisher goes on in the background (message ids, retried, moving to
    another node on failure); the stream leader (STREAM.INFO cluster.leader)
    is killed with SIGKILL after 10 more acks, publishing continues to 30
    acks after the kill. Then: a new leader, the two other nodes listed as
    replicas; through the third node every message not yet acked is
    delivered (acked ones may come again); every acknowledged message is
    in the stream at its acked sequence on both survivors; no holes."""

    async def main():
        clients = await Clients(cluster).connect_all()
        dead = []
        try:
            names = sorted(clients.ncs)
            leader, _ = await create_stream(clients, "node-a")
            acked, _ = await publish_every_node(clients, 0, 30)  # seq -> k

            ci = await clients.js("node-a").add_consumer(
                STREAM,
                ConsumerConfig(
                    durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT
                ),
            )
            assert ci.config.num_replicas in (None, 0, 3), ci.config
            c_leader, infos = await wait_consumer_leader(clients, STREAM, CONSUMER)
            for ci in infos.values():
                assert_cluster_block(ci, c_leader, names)
            print(
                f"stream leader {leader}, consumer leader {c_leader}, "
                f"consumer config.num_replicas {ci.config.num_replicas}"
            )

            # Half of the messages through a node that is not the stream leader.
            first = next(n for n in names if n != leader)
            consumed = {}
            js_first = clients.js(first)

            async def first_half():
                for seq, subject, data in await fetch_and_ack(js_first, 15 - len(consumed)):
                    if seq in acked:  # (else a second copy of a retried message)
                        k = acked[seq]
                        assert (subject, data) == (subject_of(k), payload_of(k)), f"seq {seq}"
                    consumed[seq] = data
                return True if len(consumed) >= 15 else None

            await poll(cluster, "15 messages fetched and acked", first_half)
            assert sorted(consumed) == list(range(1, 16))

            async def acks_counted():
                ci = await js_first.consumer_info(STREAM, CONSUMER)
                done = ci.num_ack_pending == 0 and ci.ack_floor.stream_seq == 15
                return True if done else None

            await poll(cluster, "the consumer to count 15 acks", acks_counted)

            # A publisher across the kill.
            log, acks, stop = {}, [], asyncio.Event()

            async def publisher():
                k = 30
                while not stop.is_set():
                    ack = await publish_sure(clients, k, log)
                    acks.append((k, ack.seq, bool(ack.duplicate)))
                    k += 1
                    # A breath between messages keeps the stream (and the
                    # read-back of every message on every node) small.
                    await asyncio.sleep(0.02)

            async def wait_acks(n: int, what: str):
                await poll(cluster, what, lambda: _at_least(acks, n))

            task = asyncio.create_task(publisher())
            try:
                await wait_acks(10, "10 acks before the kill")
                leader = (await clients.js(first).stream_info(STREAM)).cluster.leader
                victim = cluster.node_named(leader)
                dead.append(clients.drop(leader))
                cluster.kill(victim)
                print(f"killed {leader} after {len(acks)} background acks")
                await wait_acks(len(acks) + 30, "30 acks after the kill")
                stop.set()
                await task
            finally:
                stop.set()
                if not task.done():
                    task.cancel()
            print(
                f"background: {len(acks)} acked ({sum(d for _, _, d in acks)} duplicates), "
                f"{log.get('failures', 0)} failed attempts, e.g. {sorted(log.get('samples', []))}"
            )
            for (k0, s0, _), (k1, s1, _) in zip(acks, acks[1:]):
                assert k1 == k0 + 1 and s1 > s0, f"acks in publish order: {(k0, s0)} {(k1, s1)}"
            assert acks[0][1] > max(acked)
            acked.update({seq: k for k, seq, _ in acks})

            new_leader, infos = await wait_stream_leader(clients, STREAM, not_leader=leader)
            assert new_leader != leader
            for info in infos.values():
                assert info.config.num_replicas == 3
                assert_cluster_block(info, new_leader, names)
            print(f"new stream leader {new_leader}; replicas {info.cluster.replicas}")

            # The rest through the node not used so far (or the other survivor).
            rest = next(n for n in sorted(clients.ncs) if n != first)
            js_rest = clients.js(rest)
            unacked = set(acked) - set(consumed)
            delivered, again = {}, 0

            async def second_half():
                nonlocal again
                for seq, subject, data in await fetch_and_ack(js_rest, 20):
                    if seq in acked:
                        k = acked[seq]
                        assert (subject, data) == (subject_of(k), payload_of(k)), f"seq {seq}"
                    if seq in consumed or seq in delivered:
                        again += 1
                    delivered[seq] = data
                return True if unacked <= set(delivered) else None

            await poll(cluster, f"the {len(unacked)} unacked messages via {rest}", second_half)
            print(f"after the kill via {rest}: {len(delivered)} delivered, {again} again")

            last_acked = max(acked)
            info = await poll(
                cluster, "the stream to hold every ack", lambda: _stream_holds(js_rest, last_acked)
            )
            last_seq = info.state.last_seq

            async def consumer_done():
                ci = await js_rest.consumer_info(STREAM, CONSUMER)
                if ci.num_ack_pending == 0 and ci.ack_floor.stream_seq >= last_acked:
                    return ci
                # Stored copies never acked to the publisher, and redeliveries
                # of messages whose ack was lost: take them too.
                await fetch_and_ack(js_rest, 20)
                return None

            ci = await poll(cluster, "the consumer to have nothing left", consumer_done)
            assert ci.num_pending == 0, ci

            # Nothing acknowledged is lost, on either survivor; no holes.
            await check_read_back(clients, sorted(clients.ncs), acked)
            stored_ids = []
            for seq in range(1, last_seq + 1):
                m = await js_rest.get_msg(STREAM, seq)
                stored_ids.append(m.headers.get("Nats-Msg-Id"))
            extra = len(stored_ids) - len(set(stored_ids))
            # A retry may reach a new leader before it has applied the
            # original (Raft allows it): reported, not asserted.
            print(f"stream: last_seq {last_seq}, {len(acked)} acked, {extra} stored twice")
        finally:
            await clients.close()
            for nc in dead:
                if nc is not None:
                    await nc.close()

    run_guarded(main())


async def _at_least(items: list, n: int):
    return True if len(items) >= n else None


async def _stream_holds(js, last_acked: int):
    info = await js.stream_info(STREAM)
    s = info.state
    if s.last_seq >= last_acked and s.messages == s.last_seq and s.first_seq == 1:
        return info
    return None
