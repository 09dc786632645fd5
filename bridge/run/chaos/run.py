"""One chaos run against one server, start to finish:

1. configure and start the system (system.System), start the load
   (load.Load) and the watch (invariants.Watch);
2. warm up: every flow has worked once and the cluster has converged;
3. the fault phase: the seeded plan's faults one at a time, each followed
   by the recovery measurement and convergence, until `seconds` are up;
4. the settle phase: faults stop; convergence, the feed flowing, the
   publishers finishing, the durables catching up;
5. the final checks, the report, and the system stopped (always, also on
   errors and Ctrl-C, with any iptables rule removed).
"""

import asyncio
import datetime
import subprocess
import traceback
from pathlib import Path
from typing import List

from . import invariants as inv
from .common import Clock, Findings, Log, poll_until
from .faults import ESTIMATE, Faults, Plan, clean_leftover_rules, partitions_usable
from .load import Load
from .report import write
from .system import System

# Guards: how long a wait may last before the run gives up on it.
WARMUP_GUARD = 120.0
CONVERGE_GUARD = 180.0
DURABLE_GUARD = 180.0
QUIET_PERIOD = 10.0  # seconds of load with no fault before the final checks
# Beyond the fault phase, for everything after the warm-up together.
RUN_GUARD = 1800.0


def version_of(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


class Run:
    def __init__(self, server: str, state: Path, seed: int, seconds: float, kinds: List[str], opts):
        self.server = server
        self.state = state
        self.seed = seed
        self.seconds = seconds
        self.kinds = kinds
        self.opts = opts
        self.clock = Clock()
        # The log file opens once run-local's configure has (re)made the state dir.
        self.log = Log(self.clock, None, prefix=f"[{server}] ")
        self.findings = Findings(self.log)
        self.faults_done = []
        self.checks: List[inv.Check] = []

    def replay(self) -> str:
        """The command that runs the same plan again: make's, unless the
        run changed a setting make does not pass (then the script's own)."""
        tuned = self.opts.tuned
        if tuned:
            kinds = "" if self.opts.kinds_default else f" --kinds {','.join(self.kinds)}"
            return (f"bridge/run/chaos.py --server {self.server} --seed {self.seed} --seconds {self.seconds:g}"
                    f"{kinds} {' '.join(tuned)}")
        kinds = "" if self.opts.kinds_default else f" CHAOS_KINDS={','.join(self.kinds)}"
        return (f"make chaos-system CHAOS_SERVER={self.server} CHAOS_SEED={self.seed} "
                f"CHAOS_SECONDS={self.seconds:g}{kinds}")

    async def main(self) -> dict:
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        # The state dir is run-local's: it is wiped and rewritten by configure.
        system = System(self.server, self.state, self.opts.port_offset, self.opts.rate, self.clock, self.log)
        system.configure()
        self.log.file = open(self.state / "chaos.log", "a", buffering=1)
        binary = system.services["node1"].argv[0]
        self.log(f"seed {self.seed} (replay: {self.replay()})")
        partition_problem = None
        if "partition" in self.kinds:
            partition_problem = partitions_usable()
            if partition_problem:
                self.log(f"partition faults will be SKIPPED: they need iptables as root ({partition_problem})")
            else:
                clean_leftover_rules(self.log)
        plan = Plan(self.seed, self.kinds, len(system.nodes)).draw()
        self.log("plan: " + "; ".join(s.describe() for s in plan[:6]) + "; ...")
        load = watch = pinned = faults = None
        error = None
        try:
            await system.start()
            self.log("system up: 3 brokers, 3 tribune-auth, simulator, 3 bridges")
            load = Load(system, self.clock, self.log, self.findings, f"r{self.seed}", self.opts.js_rate,
                        int(self.seconds) + 7200)
            await load.start()
            watch = inv.Watch(system, self.clock, self.log, self.findings)
            watch.start()
            pinned = inv.Pinned(system)

            async def healthy(deadline: float):
                return await poll_until(lambda: inv.cluster_problem(system, pinned), deadline, 1.0)

            await self.warm_up(load, healthy)
            faults = Faults(system, self.clock, self.log, self.findings, self.state, self.seed, partition_problem,
                            lambda: inv.stream_leader(system, pinned))
            # The whole rest under one guard: a wait this harness forgot to
            # bound must not hold `make` forever.
            await asyncio.wait_for(self.faults_then_checks(plan, faults, system, load, watch, pinned, healthy),
                                   self.seconds + RUN_GUARD)
        except Exception as e:  # noqa: BLE001 - reported as a failed run, system stopped below
            error = f"{type(e).__name__}: {e}"
            self.log(f"run aborted: {error}\n{traceback.format_exc()}")
            self.checks.append(inv.Check("harness", False, f"the run aborted: {error}"))
        finally:
            if faults:
                faults.heal_all()
            if watch:
                await watch.stop()
            if load:
                await load.close()
            if pinned:
                await pinned.close()
            await system.stop()
            self.log("system stopped")
        probes = {}
        if load:
            for p in load.probes():
                probes[p.name] = {"ok": p.count, "failed": p.failures}
        ok = all(c.ok for c in self.checks) and not error
        result = {
            "server": self.server,
            "binary": binary,
            "version": version_of(binary),
            "seed": self.seed,
            "seconds": self.seconds,
            "kinds": self.kinds,
            "started": started,
            "duration_s": round(self.clock.now(), 1),
            "replay": self.replay(),
            "state_dir": str(self.state),
            "recover_bound_s": self.opts.recover_bound,
            "ok": ok,
            "faults": [vars(f) for f in self.faults_done],
            "checks": [vars(c) for c in self.checks],
            "violations": self.findings.items,
            "load": probes,
        }
        j, m = write(result, self.state)
        self.log(f"report: {m} ({j})")
        self.log.close()
        return result

    async def faults_then_checks(self, plan, faults: Faults, system: System, load: Load, watch, pinned, healthy):
        await self.fault_phase(plan, faults, load, healthy)
        faults.heal_all()
        self.log("faults stopped; settling")
        await self.settle_and_check(system, load, watch, pinned)

    async def warm_up(self, load: Load, healthy):
        """Every flow works and the cluster has converged before the first
        fault, so a flow that never worked is not taken for one that did
        not recover."""
        async def all_flowing():
            idle = [p.name for p in load.probes() if p.count == 0]
            return f"no success yet: {idle}" if idle else None

        problem = await poll_until(all_flowing, WARMUP_GUARD)
        if problem:
            raise RuntimeError(f"warm-up: {problem}")
        problem = await healthy(WARMUP_GUARD)
        if problem:
            raise RuntimeError(f"warm-up: cluster not converged: {problem}")
        self.log("warm: every flow works, cluster converged")

    async def fault_phase(self, plan, faults: Faults, load: Load, healthy):
        end = self.clock.now() + self.seconds
        for step in plan:
            remaining = end - self.clock.now()
            if remaining <= 0:
                break
            if ESTIMATE[step.kind] + step.hold > remaining:
                continue  # does not fit in what is left; a shorter one may
            f = await faults.run(step, healthy)
            if not f.skipped:
                f.recovery = await inv.measure_recovery(
                    load.probes(), f.start, f.end, self.opts.recover_bound, max(3 * self.opts.recover_bound, 90),
                    self.clock)
                slow = {n: r["recovery_s"] for n, r in f.recovery.items() if not r["within_bound"]}
                worst = max((r["recovery_s"] or 0.0) for r in f.recovery.values())
                self.log(f"  recovered: slowest flow {worst:.1f} s after the fault ended"
                         + (f"; NOT within {self.opts.recover_bound:.0f} s: {slow}" if slow else ""))
                # The next fault waits for a converged cluster (one fault at
                # a time keeps a quorum); if it never converges that is
                # reported, and the final check decides.
                problem = await healthy(CONVERGE_GUARD)
                f.detail["converged"] = problem or "ok"
                if problem:
                    self.log(f"  cluster not converged {CONVERGE_GUARD:.0f} s after the fault: {problem}")
            self.faults_done.append(f)
            await asyncio.sleep(step.pause)

    async def settle_and_check(self, system: System, load: Load, watch: inv.Watch, pinned: inv.Pinned):
        self.checks.append(await inv.check_convergence(system, pinned, CONVERGE_GUARD))
        self.log(f"check {self.checks[-1].name}: {self.checks[-1].summary}")
        js = load.admin.jetstream(timeout=10)
        before = (await js.stream_info(system.layout["stream"])).state.last_seq
        await asyncio.sleep(QUIET_PERIOD)
        after = (await js.stream_info(system.layout["stream"])).state.last_seq
        await load.stop_traffic()
        self.log("traffic stopped; checking")
        for check in (
            inv.check_durables(load, DURABLE_GUARD),
            inv.check_acked_exactly_once(load, load.admin),
            inv.check_bridge_states(load.admin, system.layout["stream"], after - before),
        ):
            self.checks.append(await check)
            self.log(f"check {self.checks[-1].name}: {self.checks[-1].summary}")
        await watch.stop()
        self.checks += [
            inv.check_recoveries(self.faults_done, self.opts.recover_bound),
            inv.check_rss(watch, self.opts.rss_factor, self.opts.rss_slack_mb),
            inv.check_slow_consumers(self.faults_done),
            inv.check_bad_logins(self.faults_done, self.findings),
            inv.check_crashes(system, watch, self.findings),
            inv.check_continuous(self.findings),
        ]
        for c in self.checks[-6:]:
            self.log(f"check {c.name}: {'pass' if c.ok else 'FAIL'}: {c.summary}")
