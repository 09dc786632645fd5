"""The processes of the whole system, as `make run` assembles them.

bridge/run/run-local.sh is the one place that knows how the system is put
together (keys, accounts, auth callout, routes, bridges). Here it runs in
its `configure` mode: it writes every key and config into the state dir,
plus `services` (each service's command line) and `layout.json` (addresses
and ports), and starts nothing. This module then starts those same
commands itself, because a chaos run must kill, freeze, partition and
restart them one at a time and tell an expected exit from a crash.

Two things are added to run-local's layout, both through its own options:

- RUN_LOOPBACK_PER_NODE=1: node N listens on 127.0.0.N, and each node runs
  with its own group id, so iptables can cut one node's routes (see
  faults.NetCut; the same method as broker/tests/common/netcut.rs).
- RUN_NODE_EXTRA_CONF: short route pings (a cut connection is otherwise
  "up" for minutes) and a short lame duck (two minutes by default), so a
  partition and a rolling restart fit in a bounded run.
"""

import asyncio
import json
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .common import Clock, Fatal, Log, http_json, http_ok, poll_until

ROOT = Path(__file__).resolve().parents[3]
RUN_LOCAL = ROOT / "bridge" / "run" / "run-local.sh"

NODE_EXTRA_CONF = """
# Added by bridge/run/chaos: a cut route is noticed within seconds, a lame
# duck lasts its minimum (30 s; two minutes by default).
ping_interval: "2s"
ping_max: 3
lame_duck_duration: "30s"
lame_duck_grace_period: "2s"
"""

# Node i runs with group id NODE_GID_BASE + i, so iptables' owner match can
# tell its outgoing route connections from the other nodes' (they all leave
# from 127.0.0.1). Not the Rust tests' base (47100): their leftover cleanup
# must never touch ours, nor ours theirs.
NODE_GID_BASE = 47300

# How long start-up steps may take before the run gives up (debug builds on
# a loaded two-core machine; a guard, not an expectation).
START_DEADLINE = 120.0


@dataclass
class Node:
    """One broker node's addresses, from layout.json."""

    index: int
    name: str
    server_name: str
    host: str
    client: int
    route: int
    monitor: int
    websocket: int
    auth_metrics: int
    bridge_http: int

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.websocket}"


class Service:
    """One process of the system: its command (from run-local), its log,
    and what the chaos run expects of it (`expect_down` while a fault holds
    it down, `frozen` while SIGSTOPped). An exit that was not expected is a
    crash."""

    def __init__(self, name: str, argv: List[str], logs: Path, kind: str, gid: Optional[int]):
        self.name = name
        self.argv = argv
        self.kind = kind
        self.gid = gid
        self.log_path = logs / f"{name}.log"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.expect_down = False
        self.frozen = False

    def start(self, clock: Clock):
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n=== chaos: start #{self.starts} at t={clock.now():.1f}s\n".encode())
        log.flush()
        kwargs = {}
        if self.gid is not None:
            kwargs["group"] = self.gid
        # Its own session, like run-local: signals we send reach only it.
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        log.close()
        self.expect_down = False
        self.frozen = False

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int):
        if self.running:
            self.proc.send_signal(sig)

    def kill9(self):
        self.expect_down = True
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def freeze(self):
        self.frozen = True
        self.signal(signal.SIGSTOP)

    def thaw(self):
        self.signal(signal.SIGCONT)
        self.frozen = False

    async def wait_exit(self, deadline: float) -> Optional[int]:
        """The exit status, or None if still running after `deadline` s."""
        end = asyncio.get_running_loop().time() + deadline
        while self.running:
            if asyncio.get_running_loop().time() >= end:
                return None
            await asyncio.sleep(0.1)
        return self.proc.returncode if self.proc else None

    async def stop(self, deadline: float = 15.0):
        """SIGTERM (once: a second one means "force" to tribune-bridge),
        SIGKILL if it outlives `deadline`."""
        if not self.running:
            return
        self.expect_down = True
        if self.frozen:
            self.thaw()
        self.signal(signal.SIGTERM)
        if await self.wait_exit(deadline) is None:
            self.signal(signal.SIGKILL)
            await self.wait_exit(5.0)

    def rss_kb(self) -> Optional[int]:
        """VmRSS from /proc, or None when not running."""
        if not self.running:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class System:
    """The whole system for one server flavour (tribune or nats)."""

    def __init__(self, server: str, state: Path, port_offset: int, rate: float, clock: Clock, log: Log):
        self.server = server
        self.state = state
        self.port_offset = port_offset
        self.rate = rate
        self.clock = clock
        self.log = log
        self.nodes: List[Node] = []
        self.services: Dict[str, Service] = {}
        self.layout: dict = {}
        self.use_gids = os.geteuid() == 0

    # -- configuration -----------------------------------------------------

    def configure(self):
        """run-local.sh in configure mode: keys, configs, services, layout."""
        self.kill_leftovers()
        env = dict(os.environ)
        env.update(
            RUN_SERVER=self.server,
            RUN_STATE_DIR=str(self.state),
            RUN_PORT_OFFSET=str(self.port_offset),
            RUN_FOREGROUND="configure",
            RUN_LOOPBACK_PER_NODE="1",
            RUN_NODE_EXTRA_CONF=NODE_EXTRA_CONF,
            RUN_RATE=str(self.rate),
        )
        out = subprocess.run(
            ["bash", str(RUN_LOCAL)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"run-local.sh (configure) failed:\n{out.stdout}")
        self.layout = json.loads((self.state / "layout.json").read_text())
        self.nodes = [Node(index=i, **n) for i, n in enumerate(self.layout["nodes"])]
        logs = self.state / "logs"
        logs.mkdir(exist_ok=True)
        for line in (self.state / "services").read_text().splitlines():
            name, *argv = shlex.split(line)
            kind = name.rstrip("0123456789")
            if kind == "node":
                kind = "broker"
            if kind not in ("broker", "auth", "simulator", "bridge"):
                continue  # the page and dashboard: nothing to break there
            gid = None
            if kind == "broker" and self.use_gids:
                gid = NODE_GID_BASE + int(name[len("node"):]) - 1
            self.services[name] = Service(name, argv, logs, kind, gid)

    @property
    def pids_file(self) -> Path:
        return self.state / "chaos-pids"

    def kill_leftovers(self):
        """SIGKILL what an earlier run in this state dir started and left
        running (a harness killed with -9 cannot stop its services, which
        run in sessions of their own): each pid it recorded, if that
        process still runs the command it recorded."""
        try:
            lines = self.pids_file.read_text().splitlines()
        except OSError:
            return
        for line in lines:
            pid, _, cmd = line.partition(" ")
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    running = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if running == cmd.strip():
                self.log(f"killing pid {pid} left running by an earlier run: {cmd[:80]}")
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass

    def record_pid(self, svc: "Service"):
        with open(self.pids_file, "a") as f:
            f.write(f"{svc.pid} {' '.join(svc.argv)}\n")

    def of_kind(self, kind: str) -> List[Service]:
        return [s for s in self.services.values() if s.kind == kind]

    def broker(self, i: int) -> Service:
        return self.services[self.nodes[i].name]

    def node_gid(self, i: int) -> Optional[int]:
        return self.broker(i).gid

    def urls(self, first: int = 0) -> List[str]:
        """Client URLs, node `first` first (clients prefer their own node
        and fail over to the others in order)."""
        order = [first] + [j for j in range(len(self.nodes)) if j != first]
        return [self.nodes[j].url for j in order]

    def ws_urls(self, first: int = 0) -> List[str]:
        order = [first] + [j for j in range(len(self.nodes)) if j != first]
        return [self.nodes[j].ws_url for j in order]

    @property
    def internal_seed(self) -> str:
        """The NKEY seed of run-local's `tail` user: an internal user of the
        SPORTS account with no permission limits (it reads and writes the
        harness's own stream and subjects there)."""
        return self.layout["keys"]["internal_user"]

    @property
    def bridge_bin(self) -> str:
        return self.services["bridge1"].argv[0]

    # -- lifecycle ---------------------------------------------------------

    async def start(self):
        """Start in run-local's order and wait as it does, plus a full route
        mesh before anything else connects."""
        for s in self.of_kind("broker"):
            s.start(self.clock)
            self.record_pid(s)
        for n in self.nodes:
            await self.wait_node_listening(n.index, START_DEADLINE)
        problem = await poll_until(self.mesh_problem, START_DEADLINE)
        if problem:
            raise RuntimeError(f"no full route mesh: {problem}")
        for s in self.of_kind("auth") + self.of_kind("simulator") + self.of_kind("bridge"):
            s.start(self.clock)
            self.record_pid(s)
        for n in self.nodes:
            for port, what in ((n.bridge_http, f"bridge{n.index + 1}"), (n.auth_metrics, f"auth{n.index + 1}")):
                problem = await poll_until(lambda p=port: self._healthz(p), START_DEADLINE)
                if problem:
                    raise RuntimeError(f"{what} not healthy on :{port}: {problem}\n{self.services[what].log_tail()}")

    async def _healthz(self, port: int) -> Optional[str]:
        return None if await http_ok("127.0.0.1", port, "/healthz") else "not 200"

    async def wait_node_listening(self, i: int, deadline: float):
        n = self.nodes[i]

        async def check():
            if not self.broker(i).running:
                raise Fatal(f"{n.name} exited:\n{self.broker(i).log_tail()}")
            v = await http_json(n.host, n.monitor, "/varz")
            return None if v.get("server_id") else "no server_id"

        problem = await poll_until(check, deadline, 0.2)
        if problem:
            raise RuntimeError(f"{n.name} not up: {problem}")

    async def restart(self, svc: Service):
        """Start a service again (after a kill or an exit); a broker is also
        waited for until its monitoring port answers."""
        svc.start(self.clock)
        self.record_pid(svc)
        if svc.kind == "broker":
            i = int(svc.name[len("node"):]) - 1
            await self.wait_node_listening(i, START_DEADLINE)

    async def stop(self):
        """Reverse start order, one at a time: bridges and tribune-auth
        drain to NATS while the brokers are still up."""
        for s in reversed(list(self.services.values())):
            await s.stop()

    # -- state -------------------------------------------------------------

    async def route_ids(self, i: int) -> set:
        n = self.nodes[i]
        v = await http_json(n.host, n.monitor, "/routez")
        # nats-server pools several connections per peer: count peers.
        return {r.get("remote_id") for r in v.get("routes") or [] if r.get("remote_id")}

    async def server_id(self, i: int) -> str:
        n = self.nodes[i]
        return (await http_json(n.host, n.monitor, "/varz")).get("server_id", "")

    async def mesh_problem(self) -> Optional[str]:
        """None when every node's /routez lists exactly the other nodes."""
        ids = [await self.server_id(i) for i in range(len(self.nodes))]
        for i in range(len(self.nodes)):
            want = {ids[j] for j in range(len(self.nodes)) if j != i}
            have = await self.route_ids(i)
            if have != want:
                return f"{self.nodes[i].name} routes to {len(have & want)} of {len(want)} peers"
        return None

    async def bridge_roles(self) -> Dict[str, str]:
        """Each running bridge's /healthz role (active or standby)."""
        roles = {}
        for n in self.nodes:
            name = f"bridge{n.index + 1}"
            if not self.services[name].running or self.services[name].frozen:
                continue
            try:
                roles[name] = (await http_json("127.0.0.1", n.bridge_http, "/healthz", 2.0)).get("role", "?")
            except (OSError, ValueError):
                roles[name] = "unreachable"
        return roles

    def unexpected_exits(self) -> List[Service]:
        """Services that exited although no fault was holding them down."""
        return [s for s in self.services.values() if s.proc and not s.running and not s.expect_down]
