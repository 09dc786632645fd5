"""What must hold, checked while the run goes and once it is over.

Continuous (Watch, every second): no process exits unless a fault made it;
RSS is sampled. Per fault (measure_recovery): every probe's flow works
again within the bound after the fault ended. At the end (the check_*
functions, each returning a Check): the cluster converged, every durable
has every acknowledged message, the stream holds every acknowledged
message exactly once and in order, the bridges' states never went
backwards, memory did not grow without bound, the stalled subscriber held
up no one else, and no forged login got in.

Deadlines here only stop a wait from hanging; the recovery bound is the
one time that is an invariant, and it is reported with every figure.
"""

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .common import Clock, Findings, Log, http_json, poll_until
from .load import CHAOS_STREAM, Load, Probe
from .system import System


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    figures: dict = field(default_factory=dict)
    details: List[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Cluster state through each node


class Pinned:
    """One client per node that never fails over, so a request through it
    enters the cluster at that node (reconnected on demand after a node
    restart)."""

    def __init__(self, system: System):
        self.system = system
        self.ncs: Dict[int, object] = {}

    async def get(self, i: int):
        nc = self.ncs.get(i)
        if nc is None or nc.is_closed or not nc.is_connected:
            if nc is not None:
                try:
                    await nc.close()
                except Exception:  # noqa: BLE001
                    pass

            async def quiet(e):
                pass

            nc = await nats.connect(
                servers=[self.system.nodes[i].url],
                nkeys_seed=self.system.internal_seed,
                name=f"chaos-pinned-{i + 1}",
                allow_reconnect=False,
                connect_timeout=3,
                error_cb=quiet,
            )
            self.ncs[i] = nc
        return nc

    async def api(self, i: int, subject: str, body: bytes = b"") -> dict:
        nc = await self.get(i)
        m = await nc.request(subject, body, timeout=3)
        return json.loads(m.data)

    async def close(self):
        for nc in self.ncs.values():
            try:
                await nc.close()
            except Exception:  # noqa: BLE001
                pass
        self.ncs.clear()


async def stream_names(pinned: Pinned, i: int) -> List[str]:
    r = await pinned.api(i, "$JS.API.STREAM.NAMES")
    return sorted(r.get("streams") or [])


async def stream_leader(system: System, pinned: Pinned, stream: str = CHAOS_STREAM) -> Optional[int]:
    """The index of the node leading `stream`, asked through the first node
    that answers; None if none does or there is no leader."""
    for n in system.nodes:
        try:
            info = await pinned.api(n.index, f"$JS.API.STREAM.INFO.{stream}")
        except Exception:  # noqa: BLE001 - that node is down: ask the next
            continue
        name = (info.get("cluster") or {}).get("leader")
        return next((m.index for m in system.nodes if m.server_name == name), None)
    return None


async def cluster_problem(system: System, pinned: Pinned) -> Optional[str]:
    """None when the cluster has converged: every broker up, a full route
    mesh, and for every stream one leader that every node's answer names,
    with every other node a current replica. Else what is still off."""
    for s in system.of_kind("broker"):
        if not s.running or s.frozen:
            return f"{s.name} is not running"
    problem = await system.mesh_problem()
    if problem:
        return problem
    names = await stream_names(pinned, 0)
    if CHAOS_STREAM not in names:
        return f"stream {CHAOS_STREAM} not listed"
    all_nodes = {n.server_name for n in system.nodes}
    for stream in names:
        leaders = set()
        for i in range(len(system.nodes)):
            info = await pinned.api(i, f"$JS.API.STREAM.INFO.{stream}")
            if "error" in info:
                return f"{stream} through {system.nodes[i].name}: {info['error'].get('description')}"
            c = info.get("cluster") or {}
            leader = c.get("leader")
            if not leader:
                return f"{stream}: no leader (through {system.nodes[i].name})"
            leaders.add(leader)
            replicas = c.get("replicas") or []
            if {r.get("name") for r in replicas} != all_nodes - {leader}:
                return f"{stream}: replicas {[r.get('name') for r in replicas]} with leader {leader}"
            behind = [r.get("name") for r in replicas if not r.get("current")]
            if behind:
                return f"{stream}: replicas not current: {behind}"
        if len(leaders) != 1:
            return f"{stream}: nodes name different leaders {sorted(leaders)}"
    return None


async def jsz_streams(system: System, i: int) -> Dict[str, dict]:
    """Node i's own view of its stream replicas from /jsz (state and the
    leader it believes in), by stream name; {} if the endpoint has none."""
    n = system.nodes[i]
    v = await http_json(n.host, n.monitor, "/jsz?accounts=true&streams=true")
    out = {}
    for acc in v.get("account_details") or []:
        for s in acc.get("stream_detail") or []:
            out[s.get("name")] = s
    return out


# ---------------------------------------------------------------------------
# Continuous watch


class Watch:
    """Every second: processes that exited although no fault held them
    down are crashes (recorded with their log tail, then restarted so the
    run goes on); every few seconds each process's RSS is sampled."""

    def __init__(self, system: System, clock: Clock, log: Log, findings: Findings):
        self.system = system
        self.clock = clock
        self.log = log
        self.findings = findings
        self.rss: Dict[str, List[tuple]] = {name: [] for name in system.services}
        self.crashes: List[dict] = []
        self.task = None
        self.stopping = False

    def start(self):
        self.task = asyncio.create_task(self.run())

    async def run(self):
        tick = 0
        while not self.stopping:
            for svc in self.system.unexpected_exits():
                code = svc.proc.returncode
                tail = svc.log_tail(30)
                self.crashes.append({"t": round(self.clock.now(), 1), "service": svc.name, "exit": code,
                                     "log": str(svc.log_path), "tail": tail})
                self.findings.violate("no-crash", f"{svc.name} exited with status {code} (log {svc.log_path})")
                try:
                    await self.system.restart(svc)
                except Exception as e:  # noqa: BLE001
                    self.log(f"restarting {svc.name} failed: {e}")
            if tick % 5 == 0:
                t = round(self.clock.now(), 1)
                for name, svc in self.system.services.items():
                    kb = svc.rss_kb()
                    if kb is not None:
                        self.rss[name].append((t, kb))
            tick += 1
            await asyncio.sleep(1)

    async def stop(self):
        self.stopping = True
        if self.task:
            await self.task


# ---------------------------------------------------------------------------
# Per fault


async def measure_recovery(probes: List[Probe], start: float, end: float, bound: float, guard: float,
                           clock: Clock) -> dict:
    """Wait until every probe worked again after `end` (or `guard` s pass),
    then per probe: seconds from the fault's end to its first success
    (None: not within the guard), and the longest time without success
    from the fault's start until then."""
    deadline = clock.now() + guard
    while clock.now() < deadline:
        if all(p.first_after(end) is not None for p in probes):
            break
        await asyncio.sleep(0.2)
    out = {}
    for p in probes:
        first = p.first_after(end)
        out[p.name] = {
            "kind": p.kind,
            "recovery_s": None if first is None else round(first - end, 2),
            "longest_gap_s": round(p.longest_gap(start, first if first is not None else clock.now()), 2),
            "within_bound": first is not None and first - end <= bound,
        }
    return out


# ---------------------------------------------------------------------------
# Final checks


async def check_convergence(system: System, pinned: Pinned, guard: float) -> Check:
    """Mesh, one agreed leader per stream, replicas current; then each
    node's own copy (/jsz) of every stream holds the same messages."""
    t0 = asyncio.get_running_loop().time()
    problem = await poll_until(lambda: cluster_problem(system, pinned), guard, 1.0)
    took = round(asyncio.get_running_loop().time() - t0, 1)
    figures = {"converged_after_s": took if not problem else None, "guard_s": guard}
    if problem:
        return Check("cluster-converges", False, f"not converged within the {guard:.0f} s guard: {problem}", figures)
    # Replica states, each node's own view. Followers apply a moment after
    # the leader; poll for agreement (within the guard).
    views = {}

    async def copies_agree():
        nonlocal views
        views = {}
        for i, n in enumerate(system.nodes):
            views[n.name] = await jsz_streams(system, i)
        if not any(views.values()):
            return None  # no per-stream /jsz here: nothing to compare
        problems = []
        for stream in views[system.nodes[0].name]:
            states = {name: (v.get(stream) or {}).get("state", {}) for name, v in views.items()}
            key = {name: (s.get("messages"), s.get("last_seq")) for name, s in states.items()}
            if len(set(key.values())) != 1:
                problems.append(f"{stream}: copies differ (messages, last_seq) {key}")
            lead = {name: ((v.get(stream) or {}).get("cluster") or {}).get("leader") for name, v in views.items()}
            if len(set(lead.values())) != 1:
                problems.append(f"{stream}: nodes believe in different leaders {lead}")
        return "; ".join(problems) or None

    problem = await poll_until(copies_agree, 60, 1.0)
    streams = {}
    for name, v in views.items():
        for stream, s in v.items():
            st = s.get("state", {})
            streams.setdefault(stream, {})[name] = {"messages": st.get("messages"), "last_seq": st.get("last_seq")}
    figures["replica_states"] = streams
    if problem:
        return Check("cluster-converges", False, f"replicas do not agree: {problem}", figures)
    return Check("cluster-converges", True, f"full mesh, one leader per stream, replicas current after {took} s"
                 + ("" if streams else " (no per-stream /jsz to compare copies)"), figures)


async def check_durables(load: Load, guard: float) -> Check:
    """Every durable consumer got every acknowledged message (after the
    faults stopped; redeliveries allowed)."""
    want = {(p.index + 1, v[3]) for p in load.publishers for v in p.acked.values()}
    t0 = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - t0 < guard:
        if all(want <= d.seen for d in load.durables):
            break
        await asyncio.sleep(0.5)
    took = round(asyncio.get_running_loop().time() - t0, 1)
    figures, details, ok = {"acked": len(want), "guard_s": guard, "caught_up_after_s": took}, [], True
    for d in load.durables:
        missing = want - d.seen
        figures[d.name] = {"received_unique": len(d.seen & want), "deliveries": d.deliveries,
                           "redelivered": d.deliveries - len(d.seen), "missing": len(missing)}
        if missing:
            ok = False
            details.append(f"{d.name} is missing {len(missing)} acknowledged messages, e.g. "
                           f"{sorted(missing)[:5]} (publisher, k)")
    summary = (f"all {len(load.durables)} durables got all {len(want)} acknowledged messages"
               if ok else f"durables missing messages after the {guard:.0f} s guard")
    return Check("durables-get-everything", ok, summary, figures, details)


async def read_stream(nc, stream: str, subject: str) -> List[tuple]:
    """Every message of `stream` (on `subject`) in order: (seq, subject,
    headers, data), through an ephemeral consumer without acks."""
    js = nc.jetstream(timeout=10)
    info = await js.stream_info(stream)
    last = info.state.last_seq
    cfg = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=120,
                         mem_storage=True, num_replicas=1)
    psub = await js.pull_subscribe(subject, stream=stream, config=cfg)
    out = []
    try:
        while not out or out[-1][0] < last:
            try:
                msgs = await psub.fetch(batch=1000, timeout=5)
            except nats.errors.TimeoutError:
                break
            for m in msgs:
                out.append((m.metadata.sequence.stream, m.subject, m.headers or {}, m.data))
    finally:
        try:
            await psub.unsubscribe()
        except Exception:  # noqa: BLE001
            pass
    return out


async def check_acked_exactly_once(load: Load, nc) -> Check:
    """Read CHAOS back: every acknowledged message is there exactly once,
    at the sequence its ack gave, and each subject's messages are in the
    order they were published."""
    acked = load.acked()
    msgs = await read_stream(nc, CHAOS_STREAM, "chaos.js.>")
    by_id: Dict[str, List[int]] = {}
    per_subject: Dict[str, List[int]] = {}
    bad_headers = 0
    for seq, subject, headers, data in msgs:
        mid = headers.get("Nats-Msg-Id")
        if not mid:
            bad_headers += 1
            continue
        by_id.setdefault(mid, []).append(seq)
        try:
            per_subject.setdefault(subject, []).append(json.loads(data)["n"])
        except (ValueError, KeyError):
            bad_headers += 1
    duplicates = {m: s for m, s in by_id.items() if len(s) > 1}
    missing = [m for m in acked if m not in by_id]
    wrong_seq = [(m, acked[m][2], by_id[m]) for m in acked if m in by_id and acked[m][2] not in by_id[m]]
    out_of_order = []
    for subject, ns in per_subject.items():
        for a, b in zip(ns, ns[1:]):
            if b <= a:
                out_of_order.append((subject, a, b))
    stored_unacked = len([m for m in by_id if m not in acked])
    figures = {
        "acked": len(acked),
        "stream_msgs": len(msgs),
        "duplicates": len(duplicates),
        "gaps": len(missing),
        "wrong_seq": len(wrong_seq),
        "out_of_order": len(out_of_order),
        "stored_not_acked": stored_unacked,
        "duplicate_acks": sum(p.duplicate_acks for p in load.publishers),
        "publish_retries": sum(p.retries for p in load.publishers),
        "unacked_at_stop": sum(len(p.unacked) for p in load.publishers),
    }
    details = []
    if duplicates:
        details.append(f"stored more than once: {list(duplicates.items())[:5]}")
    if missing:
        details.append(f"acknowledged but not in the stream: {missing[:5]}")
    if wrong_seq:
        details.append(f"not at the acknowledged sequence (id, ack seq, stored at): {wrong_seq[:5]}")
    if out_of_order:
        details.append(f"out of order within a subject (subject, n, next n): {out_of_order[:5]}")
    if bad_headers:
        details.append(f"{bad_headers} messages without Nats-Msg-Id or payload sequence")
    ok = not (duplicates or missing or wrong_seq or out_of_order or bad_headers)
    summary = (f"{len(acked)} acknowledged, all in the stream once, at their sequence, in order"
               if ok else "acknowledged messages lost, duplicated, moved or reordered")
    return Check("acked-exactly-once", ok, summary, figures, details)


async def check_bridge_states(nc, stream: str, grew: int) -> Check:
    """The bridges' match states in SPORTS never go backwards: per subject,
    `rev` grows with the stream sequence (a rolled-back score after a
    failover or a split-brained bridge shows up here), no state is stored
    twice under one Nats-Msg-Id, and the feed flowed again after the
    last fault (`grew`: messages stored in the final quiet period)."""
    msgs = await read_stream(nc, stream, "sports.>")
    last_rev: Dict[str, int] = {}
    regressions, ids, dup_ids = [], set(), 0
    for seq, subject, headers, data in msgs:
        mid = headers.get("Nats-Msg-Id")
        if mid:
            if mid in ids:
                dup_ids += 1
            ids.add(mid)
        try:
            rev = int(json.loads(data).get("rev"))
        except (ValueError, TypeError, AttributeError):
            continue
        if subject in last_rev and rev <= last_rev[subject]:
            regressions.append((subject, seq, last_rev[subject], rev))
        last_rev[subject] = rev
    figures = {"stream_msgs": len(msgs), "matches": len(last_rev), "rev_regressions": len(regressions),
               "duplicate_msg_ids": dup_ids, "stored_after_faults": grew}
    details = []
    if regressions:
        details.append(f"rev did not grow (subject, seq, previous rev, rev): {regressions[:5]}")
    if dup_ids:
        details.append(f"{dup_ids} states stored twice under one Nats-Msg-Id")
    if grew <= 0:
        details.append("no match state was stored after the faults stopped: the feed did not resume")
    ok = not details
    summary = (f"{len(msgs)} states of {len(last_rev)} matches, every rev growing, feed flowing after the faults"
               if ok else "bridge states went backwards, were stored twice, or stopped")
    return Check("bridge-states-monotonic", ok, summary, figures, details)


def check_recoveries(faults, bound: float) -> Check:
    """Every probe's flow worked again within `bound` s of each fault's end."""
    worst: Dict[str, float] = {}
    details, measured = [], 0
    for f in faults:
        if f.skipped:
            continue
        for name, r in f.recovery.items():
            measured += 1
            if r["recovery_s"] is not None:
                worst[r["kind"]] = max(worst.get(r["kind"], 0.0), r["recovery_s"])
            if not r["within_bound"]:
                got = "never (within the guard)" if r["recovery_s"] is None else f"after {r['recovery_s']} s"
                details.append(f"{name}: recovered {got} after {f.kind} -> {f.target} (ended t={f.end})")
    figures = {"bound_s": bound, "measured": measured, "worst_recovery_s_by_kind": worst}
    ok = not details
    summary = (f"every flow recovered within {bound:.0f} s after each of {len([f for f in faults if not f.skipped])} faults"
               if ok else f"{len(details)} flows did not recover within {bound:.0f} s")
    return Check("flows-recover", ok, summary, figures, details)


def check_rss(watch: Watch, factor: float, slack_mb: float) -> Check:
    """No broker's RSS grows without bound: the mean of the last third of
    the samples may not exceed `factor` x the first third's plus
    `slack_mb` (generous: a debug build, JetStream caches, restarts reset
    the figure). Other processes are reported only."""
    figures, details = {}, []
    for name, samples in watch.rss.items():
        if len(samples) < 6:
            continue
        third = len(samples) // 3
        first = sum(kb for _, kb in samples[:third]) / third / 1024
        last = sum(kb for _, kb in samples[-third:]) / third / 1024
        peak = max(kb for _, kb in samples) / 1024
        svc = watch.system.services[name]
        figures[name] = {"first_third_mb": round(first, 1), "last_third_mb": round(last, 1),
                         "peak_mb": round(peak, 1), "ratio": round(last / first, 2) if first else None,
                         "samples": len(samples)}
        if svc.kind == "broker" and last > factor * first + slack_mb:
            details.append(f"{name}: {first:.0f} MB -> {last:.0f} MB (peak {peak:.0f} MB)")
    ok = not details
    brokers = {k: v for k, v in figures.items() if k.startswith("node")}
    summary = ("broker RSS first/last third (MB): "
               + ", ".join(f"{k} {v['first_third_mb']:.0f}/{v['last_third_mb']:.0f}" for k, v in brokers.items())
               + ("" if ok else " - grew past the bound"))
    figures["bound"] = f"last third <= {factor} x first third + {slack_mb:.0f} MB"
    return Check("memory-bounded", ok, summary, figures, details)


def check_slow_consumers(faults) -> Check:
    runs = [f for f in faults if f.kind == "slow_consumer" and not f.skipped]
    if not runs:
        return Check("slow-consumer-isolated", True, "no slow-consumer fault in this run", {"runs": 0})
    details, figs = [], []
    for f in runs:
        d = f.detail
        figs.append({"node": f.target, **{k: d.get(k) for k in ("published", "fast_received", "slow_closed_by_server",
                                                                 "slow_closed_reason", "slow_consumers_counted",
                                                                 "slow_pending_bytes")}})
        if d.get("fast_received", 0) < d.get("published", 0):
            details.append(f"on {f.target}: the fast subscriber got {d.get('fast_received')} of "
                           f"{d.get('published')} while the other was stalled")
        if d.get("flood_error"):
            details.append(f"on {f.target}: the flood failed: {d['flood_error']}")
    ok = not details
    summary = (f"{len(runs)} stalls: the fast subscriber got every message each time"
               if ok else "a stalled subscriber held up a fast one")
    return Check("slow-consumer-isolated", ok, summary, {"runs": figs}, details)


def check_bad_logins(faults, findings: Findings) -> Check:
    runs = [f for f in faults if f.kind == "bad_connects" and not f.skipped]
    attempts = sum(f.detail.get("attempts", 0) for f in runs)
    refused = sum(f.detail.get("refused", 0) for f in runs)
    unanswered = sum(f.detail.get("no-answer", 0) for f in runs)
    accepted = len(findings.of("bad-logins-refused"))
    figures = {"attempts": attempts, "refused": refused, "accepted": accepted, "unanswered": unanswered}
    if not runs:
        return Check("bad-logins-refused", True, "no bad-login flood in this run", figures)
    ok = accepted == 0
    summary = (f"{attempts} bad logins: {refused} refused, {unanswered} left unanswered (closed by us), none accepted"
               if ok else f"{accepted} bad logins were accepted")
    return Check("bad-logins-refused", ok, summary, figures, [v["detail"] for v in findings.of("bad-logins-refused")])


PANIC = re.compile(r"panicked at|^panic:|fatal error:|SIGSEGV", re.M)


def check_crashes(system: System, watch: Watch, findings: Findings) -> Check:
    """No process exited on its own, and no log shows a panic."""
    details = [f"t={c['t']}: {c['service']} exited with {c['exit']} ({c['log']})" for c in watch.crashes]
    for svc in system.services.values():
        try:
            text = svc.log_path.read_text(errors="replace")
        except OSError:
            continue
        for m in PANIC.finditer(text):
            line = text[text.rfind("\n", 0, m.start()) + 1:text.find("\n", m.end())]
            details.append(f"{svc.log_path}: {line.strip()[:300]}")
    for v in findings.of("lame-duck-exits"):
        details.append(v["detail"])
    starts = {name: s.starts for name, s in system.services.items()}
    ok = not details
    return Check("no-crash", ok, "no process crashed or panicked" if ok else f"{len(details)} crashes or panics",
                 {"starts": starts}, details)


def check_continuous(findings: Findings) -> Check:
    """Violations seen while running that no final check covers
    (acks going backwards, acks from the wrong stream)."""
    items = findings.of("acked-exactly-once")
    return Check("acks-in-order", not items, "every publisher's acks came with growing sequences"
                 if not items else f"{len(items)} acks out of order", {"violations": len(items)},
                 [v["detail"] for v in items])
