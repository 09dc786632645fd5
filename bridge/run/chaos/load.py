"""The steady load: every path a deployment has, each watched by probes.

Besides the simulator's feed (MQTT -> bridges -> the SPORTS stream, R3),
which run-local's processes carry by themselves, the harness adds:

- JsPublisher (one per node): acknowledged JetStream publishes into the
  harness's own R3 stream CHAOS, each with a Nats-Msg-Id and its subject's
  sequence number in the payload, retried with the same id until
  acknowledged. What was acknowledged is recorded exactly, so the end of
  the run can check "every acknowledged message, exactly once, in order".
- DurableWorker (one per node): a durable pull consumer of CHAOS each,
  recording every message it is given (redeliveries allowed, loss not).
- CoreSubscriber (one per node): `sports.football.*` and `sports.>`.
- WebUser (one per node): the live-scores page's way in: WebSocket,
  a development token checked by tribune-auth through the auth callout,
  the private inbox prefix tribune-auth grants, a subscription to the
  granted sport and direct gets of a match's latest state.
- RpcResponder (two, in a queue group) and RpcRequester (one per node).

Every client prefers its own node and fails over to the others, as a
deployed client does. Each flow feeds a Probe: the times it last worked,
which is what "recovers within N s after a fault" is measured on.
"""

import asyncio
import bisect
import hashlib
import json
import subprocess
from typing import Dict, List, Optional, Tuple

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from .common import Clock, Findings, Log
from .system import System

CHAOS_STREAM = "CHAOS"
CHAOS_SUBJECTS = "chaos.js.>"
SUBJECTS_PER_PUBLISHER = 4
RPC_SUBJECT = "chaos.rpc"

# Client settings shared by every harness client: a frozen (SIGSTOPped) or
# cut-off server is noticed by the client's own pings within ~15 s, and a
# client never gives up reconnecting.
CLIENT_OPTS = dict(
    dont_randomize=True,
    max_reconnect_attempts=-1,
    reconnect_time_wait=0.5,
    ping_interval=5,
    max_outstanding_pings=2,
    connect_timeout=3,
)


class Probe:
    """When one flow last worked: every success's time, in order."""

    def __init__(self, name: str, kind: str, clock: Clock):
        self.name = name
        self.kind = kind
        self.clock = clock
        self.times: List[float] = []
        self.failures = 0

    def ok(self):
        self.times.append(self.clock.now())

    def fail(self):
        self.failures += 1

    @property
    def count(self) -> int:
        return len(self.times)

    def first_after(self, t: float) -> Optional[float]:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else None

    def longest_gap(self, t0: float, t1: float) -> float:
        """The longest time without a success within [t0, t1]."""
        i = bisect.bisect_left(self.times, t0)
        j = bisect.bisect_right(self.times, t1)
        points = [t0] + self.times[i:j] + [t1]
        return max(b - a for a, b in zip(points, points[1:]))


class Quiet:
    """nats-py's error callbacks, counted instead of printed (a chaos run
    produces thousands of expected connection errors)."""

    def __init__(self):
        self.errors = 0
        self.disconnects = 0
        self.reconnects = 0

    async def error(self, e):
        self.errors += 1

    async def disconnected(self):
        self.disconnects += 1

    async def reconnected(self):
        self.reconnects += 1

    def opts(self) -> dict:
        return dict(error_cb=self.error, disconnected_cb=self.disconnected, reconnected_cb=self.reconnected)


async def connect_internal(system: System, first: int, name: str, quiet: Quiet, **kw):
    """An internal (NKEY) client of the SPORTS account, own node first."""
    return await nats.connect(
        servers=system.urls(first),
        nkeys_seed=system.internal_seed,
        name=name,
        **CLIENT_OPTS,
        **quiet.opts(),
        **kw,
    )


async def ensure_chaos_stream(nc, log: Log):
    """The harness's own R3 stream. The duplicate window outlasts any
    retry (a retried publish must be recognised as the same message)."""
    js = nc.jetstream(timeout=5)
    cfg = StreamConfig(
        name=CHAOS_STREAM,
        subjects=[CHAOS_SUBJECTS],
        storage=StorageType.FILE,
        num_replicas=3,
        duplicate_window=900,
        allow_direct=True,
    )
    for attempt in range(60):
        try:
            await js.add_stream(cfg)
            return
        except Exception as e:  # noqa: BLE001 - the meta leader may still be electing
            if attempt % 10 == 0:
                log(f"creating stream {CHAOS_STREAM}: {type(e).__name__}: {e}; retrying")
            await asyncio.sleep(1)
    raise RuntimeError(f"could not create stream {CHAOS_STREAM}")


class Flow:
    """What every flow of the load shares: its connection (`nc`), closed at
    the end, and for those that loop, a task (`task`) that `stop` ends by
    setting `stopping` and waiting for it."""

    nc = None
    task = None
    stopping = False

    async def stop(self):
        self.stopping = True
        if self.task:
            await self.task

    async def close(self):
        if self.nc:
            await self.nc.close()


class JsPublisher(Flow):
    """Acknowledged publishes on chaos.js.p<i>.s<j>, one at a time.

    One at a time is what makes order checkable: message k+1 is sent only
    after k was acknowledged, so within a subject the payload sequence must
    grow with the stream sequence. A failed publish (timeout, no leader,
    no responders) is sent again with the same Nats-Msg-Id until it is
    acknowledged."""

    def __init__(self, index: int, system: System, clock: Clock, findings: Findings, run_tag: str, interval: float):
        self.index = index
        self.system = system
        self.clock = clock
        self.findings = findings
        self.run_tag = run_tag
        self.interval = interval
        self.quiet = Quiet()
        self.probe = Probe(f"js-publish:p{index + 1}", "js-publish", clock)
        # msg id -> (subject, subject seq, stream seq, k)
        self.acked: Dict[str, Tuple[str, int, int, int]] = {}
        self.duplicate_acks = 0
        self.retries = 0
        self.unacked: List[str] = []
        self.last_seq = 0
        self.stopping = False
        self.nc = None
        self.task = None

    async def start(self):
        self.nc = await connect_internal(self.system, self.index, f"chaos-pub-{self.index + 1}", self.quiet)
        self.task = asyncio.create_task(self.run())

    async def run(self):
        js = self.nc.jetstream(timeout=2)
        per_subject = [0] * SUBJECTS_PER_PUBLISHER
        k = 0
        while not self.stopping:
            k += 1
            j = k % SUBJECTS_PER_PUBLISHER
            per_subject[j] += 1
            subject = f"chaos.js.p{self.index + 1}.s{j}"
            msg_id = f"{self.run_tag}-p{self.index + 1}-{k}"
            body = json.dumps({"p": self.index + 1, "k": k, "subj": subject, "n": per_subject[j]}).encode()
            if not await self.publish_until_acked(js, subject, msg_id, body, per_subject[j], k):
                self.unacked.append(msg_id)
                return
            await asyncio.sleep(self.interval)

    async def publish_until_acked(self, js, subject, msg_id, body, n, k) -> bool:
        delay = 0.1
        # Once told to stop, the message in flight gets a while longer to be
        # acknowledged (a guard: the cluster has converged by then).
        stop_deadline = None
        while True:
            try:
                ack = await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
            except (
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
                nats.js.errors.APIError,
                nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.StaleConnectionError,
                nats.errors.OutboundBufferLimitError,
            ):
                self.retries += 1
                self.probe.fail()
                if self.stopping:
                    loop_now = asyncio.get_running_loop().time()
                    stop_deadline = stop_deadline or loop_now + 60
                    if loop_now > stop_deadline:
                        return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if ack.stream != CHAOS_STREAM:
                self.findings.violate("acked-exactly-once", f"{msg_id} acknowledged by stream {ack.stream!r}")
            if ack.duplicate:
                self.duplicate_acks += 1
            if ack.seq <= self.last_seq:
                self.findings.violate(
                    "acked-exactly-once",
                    f"p{self.index + 1}: {msg_id} acknowledged at stream seq {ack.seq}, "
                    f"not after the previous ack's {self.last_seq}",
                )
            self.last_seq = max(self.last_seq, ack.seq)
            self.acked[msg_id] = (subject, n, ack.seq, k)
            self.probe.ok()
            return True


class DurableWorker(Flow):
    """A durable pull consumer of CHAOS, read through node `index` first,
    acking each message. Records every message id it was given."""

    def __init__(self, index: int, system: System, clock: Clock, log: Log):
        self.index = index
        self.name = f"chaos-durable-{index + 1}"
        self.system = system
        self.log = log
        self.quiet = Quiet()
        self.probe = Probe(f"durable:{self.name}", "durable", clock)
        self.seen: set = set()
        self.deliveries = 0
        self.errors = 0
        self.stopping = False
        self.nc = None
        self.task = None

    async def start(self):
        self.nc = await connect_internal(self.system, self.index, self.name, self.quiet)
        js = self.nc.jetstream(timeout=5)
        cfg = ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=10,
            max_ack_pending=2000,
        )
        for attempt in range(60):
            try:
                await js.add_consumer(CHAOS_STREAM, cfg)
                break
            except Exception as e:  # noqa: BLE001 - stream leader still electing
                if attempt == 59:
                    raise
                await asyncio.sleep(1)
        self.task = asyncio.create_task(self.run())

    async def run(self):
        js = self.nc.jetstream(timeout=5)
        psub = await js.pull_subscribe_bind(self.name, stream=CHAOS_STREAM)
        while not self.stopping:
            try:
                msgs = await psub.fetch(batch=200, timeout=2)
            except nats.errors.TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - reconnecting, no leader: try again
                self.errors += 1
                await asyncio.sleep(0.5)
                continue
            for m in msgs:
                self.deliveries += 1
                try:
                    d = json.loads(m.data)
                    self.seen.add((d["p"], d["k"]))
                except (ValueError, KeyError):
                    pass
                self.probe.ok()
                try:
                    await m.ack()
                except Exception:  # noqa: BLE001 - a lost ack is a redelivery later
                    self.errors += 1


class CoreSubscriber(Flow):
    """Plain subscriptions on node `index`: `sports.football.*` and `sports.>`."""

    SUBJECTS = ("sports.football.*", "sports.>")

    def __init__(self, index: int, system: System, clock: Clock):
        self.index = index
        self.system = system
        self.quiet = Quiet()
        self.probes = {s: Probe(f"core:node{index + 1}:{s}", "core", clock) for s in self.SUBJECTS}
        self.nc = None

    async def start(self):
        self.nc = await connect_internal(self.system, self.index, f"chaos-core-{self.index + 1}", self.quiet)
        for s in self.SUBJECTS:
            probe = self.probes[s]

            async def cb(msg, probe=probe):
                probe.ok()

            await self.nc.subscribe(s, cb=cb)


def mint_token(system: System, subject: str, ttl: int, sports: str = "football,tennis", secret_file: str = None) -> str:
    """A development token as run-local mints the page's (tribune-bridge
    dev-token with run-local's HS256 secret), for user `subject`."""
    out = subprocess.run(
        [
            system.bridge_bin,
            "dev-token",
            "--secret-file",
            secret_file or system.layout["keys"]["hs256_secret"],
            "--sports",
            sports,
            "--subject",
            subject,
            "--ttl-secs",
            str(ttl),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return out.stdout.strip()


def inbox_id(issuer: str, subject: str) -> str:
    """tribune-auth's private inbox id (bridge/web/token.js inboxId)."""
    return hashlib.sha256(f"{issuer}\n{subject}".encode()).digest()[:16].hex()


class WebUser(Flow):
    """A web user the way the live-scores page is one (bridge/web/app.js):
    ws:// to the nodes' WebSocket listeners, the token as the CONNECT token
    (the broker hands it to tribune-auth through the auth callout), the
    granted inbox prefix, `sports.football.*` live, and direct gets of a
    match's latest state through the imported `$JS.API.DIRECT.GET.SPORTS`."""

    def __init__(self, index: int, system: System, clock: Clock, ttl: int):
        self.index = index
        self.system = system
        self.ttl = ttl
        self.quiet = Quiet()
        self.probe = Probe(f"web:node{index + 1}:sports.football.*", "web", clock)
        self.req_probe = Probe(f"web-direct-get:node{index + 1}", "web-request", clock)
        self.last_subject: Optional[str] = None
        self.stopping = False
        self.nc = None
        self.task = None

    async def start(self):
        user = f"chaos-web-{self.index + 1}"
        token = mint_token(self.system, user, self.ttl)
        issuer = self.system.layout["token"]["issuer"]
        self.nc = await nats.connect(
            servers=self.system.ws_urls(self.index),
            token=token,
            inbox_prefix=f"_INBOX.{inbox_id(issuer, user)}",
            name=user,
            **CLIENT_OPTS,
            **self.quiet.opts(),
        )

        async def cb(msg):
            self.last_subject = msg.subject
            self.probe.ok()

        await self.nc.subscribe("sports.football.*", cb=cb)
        self.task = asyncio.create_task(self.requests())

    async def requests(self):
        while not self.stopping:
            await asyncio.sleep(1.0)
            if not self.last_subject:
                continue
            try:
                m = await self.nc.request(
                    "$JS.API.DIRECT.GET.SPORTS",
                    json.dumps({"last_by_subj": self.last_subject}).encode(),
                    timeout=2,
                )
                if m.headers and m.headers.get("Nats-Sequence"):
                    self.req_probe.ok()
                else:
                    self.req_probe.fail()
            except Exception:  # noqa: BLE001 - timeouts, no responders during faults
                self.req_probe.fail()


class RpcResponder(Flow):
    """Answers chaos.rpc in the queue group `rpc` from node `index`."""

    def __init__(self, index: int, system: System):
        self.index = index
        self.system = system
        self.quiet = Quiet()
        self.answered = 0
        self.nc = None

    async def start(self):
        self.nc = await connect_internal(self.system, self.index, f"chaos-rpc-responder-{self.index + 1}", self.quiet)

        async def cb(msg):
            self.answered += 1
            await msg.respond(msg.data)

        await self.nc.subscribe(RPC_SUBJECT, queue="rpc", cb=cb)


class RpcRequester(Flow):
    """A request on chaos.rpc twice a second from node `index`."""

    def __init__(self, index: int, system: System, clock: Clock):
        self.index = index
        self.system = system
        self.quiet = Quiet()
        self.probe = Probe(f"request-reply:node{index + 1}", "request-reply", clock)
        self.stopping = False
        self.nc = None
        self.task = None

    async def start(self):
        self.nc = await connect_internal(self.system, self.index, f"chaos-rpc-requester-{self.index + 1}", self.quiet)
        self.task = asyncio.create_task(self.run())

    async def run(self):
        n = 0
        while not self.stopping:
            n += 1
            body = f"{self.index}-{n}".encode()
            try:
                m = await self.nc.request(RPC_SUBJECT, body, timeout=2)
                if m.data == body:
                    self.probe.ok()
                else:
                    self.probe.fail()
            except Exception:  # noqa: BLE001 - timeouts, no responders during faults
                self.probe.fail()
            await asyncio.sleep(0.5)


class Load:
    """All of the above, started and stopped together."""

    def __init__(self, system: System, clock: Clock, log: Log, findings: Findings, run_tag: str, js_rate: float, ttl: int):
        n = len(system.nodes)
        self.system = system
        self.log = log
        self.publishers = [JsPublisher(i, system, clock, findings, run_tag, n / js_rate) for i in range(n)]
        self.durables = [DurableWorker(i, system, clock, log) for i in range(n)]
        self.core = [CoreSubscriber(i, system, clock) for i in range(n)]
        self.web = [WebUser(i, system, clock, ttl) for i in range(n)]
        self.responders = [RpcResponder(i, system) for i in (0, n - 1)]
        self.requesters = [RpcRequester(i, system, clock) for i in range(n)]
        self.admin = None
        self.admin_quiet = Quiet()

    def probes(self) -> List[Probe]:
        out = []
        for c in self.core:
            out.extend(c.probes.values())
        for w in self.web:
            out.extend([w.probe, w.req_probe])
        out.extend(p.probe for p in self.publishers)
        out.extend(d.probe for d in self.durables)
        out.extend(r.probe for r in self.requesters)
        return out

    async def start(self):
        self.admin = await connect_internal(self.system, 0, "chaos-admin", self.admin_quiet)
        await ensure_chaos_stream(self.admin, self.log)
        for part in self.durables + self.core + self.responders + self.web + self.requesters + self.publishers:
            await part.start()

    async def stop_traffic(self):
        """Publishers finish the message in flight; requests stop."""
        await asyncio.gather(*(p.stop() for p in self.publishers))
        for part in self.requesters + self.web:
            await part.stop()

    def acked(self) -> Dict[str, Tuple[str, int, int, int]]:
        out = {}
        for p in self.publishers:
            out.update(p.acked)
        return out

    async def close(self):
        for d in self.durables:
            d.stopping = True
        for d in self.durables:
            await d.stop()
        for part in self.publishers + self.durables + self.core + self.web + self.responders + self.requesters:
            try:
                await asyncio.wait_for(part.close(), 10)
            except Exception:  # noqa: BLE001 - closing at the end; nothing to check
                pass
        if self.admin:
            try:
                await asyncio.wait_for(self.admin.close(), 10)
            except Exception:  # noqa: BLE001
                pass
