"""The faults, and the seeded plan that orders them.

The plan is drawn from the seed before anything starts (Plan.draw), so a
seed names the same sequence of faults, targets and durations on every
replay and on both servers; only a target that exists at run time alone
("the active bridge") is resolved when the fault happens. Faults run one
at a time: the run waits for the system to recover (invariants.measure_recovery)
before the next, so the cluster keeps a quorum nearly all the time.

Each fault returns a Fault record: when it started, when the system was
put back (restart, heal, SIGCONT; `end`), and what it saw.
"""

import asyncio
import base64
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import List, Optional

import nats
import nkeys

from .common import Clock, Findings, Log, http_json
from .load import Quiet, mint_token
from .system import System

KINDS = (
    "kill_broker",
    "kill_bridge",
    "kill_auth",
    "stop_cont",
    "partition",
    "rolling_restart",
    "slow_consumer",
    "bad_connects",
)

# Rough time each kind takes including recovery, to skip a fault that
# cannot finish before the fault phase ends (lame duck alone is 30 s a node).
ESTIMATE = {
    "kill_broker": 15,
    "kill_bridge": 12,
    "kill_auth": 10,
    "stop_cont": 15,
    "partition": 20,
    "rolling_restart": 100,
    "slow_consumer": 12,
    "bad_connects": 15,
}


@dataclass
class Step:
    """One planned fault: the kind, a target index, how long it holds."""

    kind: str
    target: int
    hold: float
    pause: float
    variant: str = ""
    # Aim at the node leading the CHAOS stream when the fault happens
    # (`target` if there is none): where acknowledged writes are decided.
    at_leader: bool = False

    def describe(self) -> str:
        v = f" {self.variant}" if self.variant else ""
        t = "stream leader" if self.at_leader else str(self.target)
        return f"{self.kind}{v} target={t} hold={self.hold:.1f}s pause={self.pause:.1f}s"


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float = 0.0
    detail: dict = field(default_factory=dict)
    recovery: dict = field(default_factory=dict)
    skipped: Optional[str] = None


class Plan:
    """Rounds of every enabled kind in a seeded random order (a "bag"), so
    even a short run sees several different kinds."""

    def __init__(self, seed: int, kinds: List[str], nodes: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.kinds = list(kinds)
        self.nodes = nodes

    def draw(self, count: int = 200) -> List[Step]:
        steps = []
        while len(steps) < count:
            bag = list(self.kinds)
            self.rng.shuffle(bag)
            for kind in bag:
                steps.append(self.step(kind))
        return steps

    def step(self, kind: str) -> Step:
        r = self.rng
        target = r.randrange(self.nodes)
        # Holds are seconds: long enough for the fault to bite (a cut route
        # is noticed after ~6 s of missed pings, a frozen server by its
        # clients after ~10 s, a bridge's lease lapses after 6 s), short
        # enough that a one-minute smoke run sees several faults.
        pause = r.uniform(1, 4)
        at_leader = r.random() < 0.5
        if kind in ("kill_broker", "kill_bridge", "kill_auth"):
            variant = ""
            if kind == "kill_bridge" and r.random() < 0.6:
                variant = "active"
            return Step(kind, target, r.uniform(2, 8), pause, variant, at_leader and kind == "kill_broker")
        if kind == "stop_cont":
            variant = r.choice(["broker", "bridge", "auth"])
            return Step(kind, target, r.uniform(4, 12), pause, variant, at_leader and variant == "broker")
        if kind == "partition":
            return Step(kind, target, r.uniform(9, 18), pause, "", at_leader)
        if kind == "rolling_restart":
            order = list(range(self.nodes))
            r.shuffle(order)
            return Step(kind, target, 0, pause, ",".join(str(i) for i in order))
        if kind == "slow_consumer":
            return Step(kind, target, 10, pause)
        if kind == "bad_connects":
            return Step(kind, target, 0, pause)
        raise ValueError(kind)


# ---------------------------------------------------------------------------
# Partitions


NETCUT_COMMENT = "tribune-chaos-netcut"


def iptables(*args: str) -> Optional[str]:
    """Run `iptables -w 10 ARGS`; None on success, else why not."""
    try:
        out = subprocess.run(["iptables", "-w", "10", *args], capture_output=True, text=True)
    except OSError as e:
        return f"cannot run iptables: {e}"
    return None if out.returncode == 0 else f"iptables {' '.join(args)}: {out.stderr.strip()}"


def partitions_usable() -> Optional[str]:
    """None when partitions can be made here (iptables present, permitted,
    with the owner, multiport and comment matches); else why not."""
    if os.geteuid() != 0:
        return "not root"
    rule = ["OUTPUT", "-p", "tcp", "-m", "owner", "--gid-owner", "47399", "-m", "multiport", "--dports", "1,2",
            "-m", "comment", "--comment", f"{NETCUT_COMMENT}:pid={os.getpid()}", "-j", "DROP"]
    err = iptables("-A", *rule)
    if err:
        return err
    return iptables("-D", *rule)


def clean_leftover_rules(log: Log):
    """Remove rules of earlier chaos runs whose process is gone (a run
    killed before it healed its cut)."""
    out = subprocess.run(["iptables", "-w", "10", "-S", "OUTPUT"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if f"{NETCUT_COMMENT}:pid=" not in line or not line.startswith("-A "):
            continue
        pid = line.split(f"{NETCUT_COMMENT}:pid=")[1].split()[0].strip('"')
        if pid.isdigit() and os.path.exists(f"/proc/{pid}"):
            continue
        err = iptables("-D", *[t.strip('"') for t in line[3:].split()])
        log(f"removed leftover iptables rule of run {pid}" + (f" (failed: {err})" if err else ""))


def proc_connections(pid: int, remote_ports: List[int]):
    """(local, remote) (ip, port) pairs of pid's TCP connections to
    remote_ports, from /proc (IPv4 only: the nodes listen on 127/8)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return []

    def addr(field_: str):
        a, p = field_.split(":")
        raw = bytes.fromhex(a)[::-1]
        return ".".join(str(b) for b in raw), int(p, 16)

    out = []
    with open("/proc/net/tcp") as f:
        for line in list(f)[1:]:
            parts = line.split()
            if len(parts) < 10 or parts[9] not in inodes:
                continue
            local, remote = addr(parts[1]), addr(parts[2])
            if remote[1] in remote_ports:
                out.append((local, remote))
    return out


class NetCut:
    """Node `victim` cut off from the other nodes' routes with iptables
    DROP rules in OUTPUT (loopback traffic passes OUTPUT once, whichever
    side sends it), the method of broker/tests/common/netcut.rs:

    - connections to the victim's route port, and its answers on them;
    - the victim's own outgoing route connections, told apart by its group
      id (every node dials from 127.0.0.1, so addresses cannot tell);
    - what the others send back on connections the victim had dialed.

    Client ports stay open: the victim's clients are the minority side."""

    def __init__(self, system: System, victim: int, log: Log):
        self.system = system
        self.victim = victim
        self.log = log
        self.rules: List[List[str]] = []

    def add(self, spec: List[str]):
        rule = spec + ["-m", "comment", "--comment", f"{NETCUT_COMMENT}:pid={os.getpid()}", "-j", "DROP"]
        err = iptables("-I", "OUTPUT", *rule)
        if err:
            raise RuntimeError(err)
        self.rules.append(rule)

    async def cut(self):
        n = self.system.nodes[self.victim]
        others = [m.route for m in self.system.nodes if m.index != self.victim]
        gid = self.system.node_gid(self.victim)
        self.add(["-p", "tcp", "-d", n.host, "--dport", str(n.route)])
        self.add(["-p", "tcp", "-s", n.host, "--sport", str(n.route)])
        self.add(["-p", "tcp", "-m", "owner", "--gid-owner", str(gid),
                  "-m", "multiport", "--dports", ",".join(map(str, others))])
        # No new connection from the victim can form now; let a handshake
        # under way settle, then cut the replies on the ones it had dialed.
        await asyncio.sleep(0.05)
        for (lip, lport), (rip, rport) in proc_connections(self.system.broker(self.victim).pid, others):
            self.add(["-p", "tcp", "-s", rip, "--sport", str(rport), "-d", lip, "--dport", str(lport)])
        self.log(f"cut {n.name} off with {len(self.rules)} iptables rules")

    def heal(self):
        for rule in reversed(self.rules):
            err = iptables("-D", "OUTPUT", *rule)
            if err:
                self.log(f"could not remove an iptables rule: {err}")
        self.rules.clear()


# ---------------------------------------------------------------------------
# Raw clients for the slow consumer and the bad logins


def read_info(sock: socket.socket) -> dict:
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before INFO")
        buf += chunk
    line = buf.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        raise ConnectionError(f"expected INFO, got {line[:60]!r}")
    return json.loads(line[5:])


def nkey_connect(seed_file: str, nonce: str, name: str) -> bytes:
    """A CONNECT line of the internal NKEY user, signing the server's nonce
    as nats-py does."""
    with open(seed_file, "rb") as f:
        kp = nkeys.from_seed(f.read().strip())
    sig = base64.b64encode(kp.sign(nonce.encode())).decode()
    body = {"verbose": False, "pedantic": False, "nkey": kp.public_key.decode(), "sig": sig,
            "protocol": 1, "name": name, "lang": "python-raw", "version": "0"}
    return f"CONNECT {json.dumps(body)}\r\n".encode()


class StalledSubscriber:
    """A subscriber that stops reading: a raw socket with a tiny receive
    buffer that subscribes, confirms with PING/PONG, then never reads
    again, so the server's writes to it back up."""

    def __init__(self, host: str, port: int, seed_file: str, subject: str):
        self.host, self.port, self.seed_file, self.subject = host, port, seed_file, subject
        self.sock: Optional[socket.socket] = None

    def open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((self.host, self.port))
        info = read_info(s)
        s.sendall(nkey_connect(self.seed_file, info.get("nonce", ""), "chaos-slow-consumer")
                  + f"SUB {self.subject} 1\r\nPING\r\n".encode())
        buf = b""
        while b"PONG\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed before PONG: {buf[:200]!r}")
            if b"-ERR" in chunk:
                raise ConnectionError(chunk.decode(errors="replace"))
            buf += chunk
        self.sock = s

    def closed_by_server(self) -> bool:
        """Drain what the kernel holds; True when the server had closed it."""
        s = self.sock
        s.setblocking(False)
        try:
            while True:
                try:
                    chunk = s.recv(1 << 20)
                except BlockingIOError:
                    return False
                if not chunk:
                    return True
        except OSError:
            return True

    def close(self):
        if self.sock:
            self.sock.close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_user_jwt() -> tuple:
    """A NATS user JWT signed by a made-up account, with the user's key:
    well formed, trusted by nobody."""
    account = nkeys.from_seed(nkeys_seed(nkeys.PREFIX_BYTE_ACCOUNT))
    user = nkeys.from_seed(nkeys_seed(nkeys.PREFIX_BYTE_USER))
    header = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {"jti": b64url(os.urandom(16)), "iat": int(time.time()), "iss": account.public_key.decode(),
              "sub": user.public_key.decode(), "name": "forged",
              "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}}
    payload = b64url(json.dumps(claims).encode())
    sig = b64url(account.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{sig}", user


def nkeys_seed(prefix: int) -> bytes:
    """A fresh NKEY seed of the given type."""
    return nkeys.encode_seed(os.urandom(32), prefix)


class BadLogins:
    """Connections that must all be refused: garbage, a broken CONNECT, an
    NKEY with a wrong signature, a password no one has, web tokens that are
    forged (wrong key), tampered (claims changed under a valid signature)
    or unsigned (alg none), a forged NATS user JWT, an idle connection that
    never sends CONNECT, and a forged token over WebSocket."""

    KINDS = ("garbage", "broken_connect", "bad_nkey_sig", "wrong_password", "forged_token",
             "tampered_token", "alg_none_token", "forged_user_jwt", "no_connect", "ws_forged_token")

    def __init__(self, system: System, findings: Findings, log: Log, secret_dir):
        self.system = system
        self.findings = findings
        self.log = log
        wrong_secret = secret_dir / "wrong-hs256.secret"
        wrong_secret.write_text(os.urandom(32).hex())
        self.forged = mint_token(system, "mallory", 3600, secret_file=str(wrong_secret))
        good = mint_token(system, "mallory", 3600, sports="football")
        h, p, s = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        claims["sports"] = ["football", "tennis", "basketball"]
        claims["sub"] = "admin"
        self.tampered = f"{h}.{b64url(json.dumps(claims).encode())}.{s}"
        claims["sub"] = "nobody"
        self.unsigned = f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims).encode())}."

    def connect_line(self, kind: str, nonce: str) -> bytes:
        base = {"verbose": False, "pedantic": False, "protocol": 1, "name": f"chaos-bad-{kind}"}
        if kind == "garbage":
            return os.urandom(200) + b"\r\n"
        if kind == "broken_connect":
            return b"CONNECT {\"verbose\": false, \"user\": \r\n"
        if kind == "bad_nkey_sig":
            line = nkey_connect(self.system.internal_seed, nonce + "x", "chaos-bad-nkey")
            return line
        if kind == "wrong_password":
            base.update(user="sys", **{"pass": "not-the-password"})
        elif kind == "forged_token":
            base["auth_token"] = self.forged
        elif kind == "tampered_token":
            base["auth_token"] = self.tampered
        elif kind == "alg_none_token":
            base["auth_token"] = self.unsigned
        elif kind == "forged_user_jwt":
            jwt, user = forged_user_jwt()
            base.update(jwt=jwt, nkey=user.public_key.decode(),
                        sig=base64.b64encode(user.sign(nonce.encode())).decode())
        return f"CONNECT {json.dumps(base)}\r\n".encode()

    async def attempt_tcp(self, kind: str, host: str, port: int) -> str:
        """refused | accepted | no-answer"""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (OSError, asyncio.TimeoutError):
            return "refused"  # not even a connection: nothing accepted
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            info = json.loads(line[5:]) if line.startswith(b"INFO ") else {}
            if kind != "no_connect":
                writer.write(self.connect_line(kind, info.get("nonce", "")) + b"PING\r\n")
                await writer.drain()
            while True:
                line = await asyncio.wait_for(reader.readline(), 15)
                if not line or line.startswith(b"-ERR"):
                    return "refused"
                if line.startswith(b"PONG") or line.startswith(b"+OK"):
                    return "accepted"
                if line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
        except asyncio.TimeoutError:
            return "no-answer"
        except (OSError, ValueError):
            return "refused"
        finally:
            writer.close()

    async def attempt_ws(self, host: str, port: int) -> str:
        import aiohttp

        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"ws://{host}:{port}", timeout=5) as ws:
                    await asyncio.wait_for(ws.receive(), 5)  # INFO
                    body = {"verbose": False, "pedantic": False, "protocol": 1, "auth_token": self.forged,
                            "name": "chaos-bad-ws"}
                    await ws.send_bytes(f"CONNECT {json.dumps(body)}\r\nPING\r\n".encode())
                    while True:
                        msg = await asyncio.wait_for(ws.receive(), 15)
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            return "refused"
                        data = msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
                        if b"-ERR" in data:
                            return "refused"
                        if b"PONG" in data or b"+OK" in data:
                            return "accepted"
        except asyncio.TimeoutError:
            return "no-answer"
        except (OSError, aiohttp.ClientError):
            return "refused"

    async def flood(self, rng: random.Random, attempts: int = 150, concurrency: int = 10) -> dict:
        results = {k: {"refused": 0, "accepted": 0, "no-answer": 0} for k in self.KINDS}
        plan = [(rng.choice(self.KINDS), rng.randrange(len(self.system.nodes))) for _ in range(attempts)]
        sem = asyncio.Semaphore(concurrency)

        async def one(kind, i):
            n = self.system.nodes[i]
            async with sem:
                if kind == "ws_forged_token":
                    r = await self.attempt_ws(n.host, n.websocket)
                else:
                    r = await self.attempt_tcp(kind, n.host, n.client)
            results[kind][r] += 1
            if r == "accepted":
                self.findings.violate("bad-logins-refused", f"a {kind} login was accepted by {n.name}")

        await asyncio.gather(*(one(k, i) for k, i in plan))
        total = {r: sum(v[r] for v in results.values()) for r in ("refused", "accepted", "no-answer")}
        return {"attempts": attempts, **total, "by_kind": results}


# ---------------------------------------------------------------------------
# The faults


class Faults:
    """Carries out one Step against the running system."""

    def __init__(self, system: System, clock: Clock, log: Log, findings: Findings, state_dir, seed: int,
                 partition_ok: Optional[str], stream_leader):
        """`stream_leader()`: the index of the node leading the CHAOS stream,
        or None."""
        self.stream_leader = stream_leader
        self.system = system
        self.clock = clock
        self.log = log
        self.findings = findings
        self.state_dir = state_dir
        self.rng = random.Random(seed ^ 0x5EED)
        self.partition_unusable = partition_ok
        self.cut: Optional[NetCut] = None

    async def run(self, step: Step, healthy) -> Fault:
        """`healthy(deadline)` waits until the cluster converged (used
        between the nodes of a rolling restart)."""
        return await getattr(self, step.kind)(step, healthy)

    async def _node(self, step: Step) -> tuple:
        """The node a step aims at, and a label saying why."""
        if step.at_leader:
            try:
                i = await self.stream_leader()
            except Exception:  # noqa: BLE001 - no leader right now: the planned node
                i = None
            if i is not None:
                return i, " (CHAOS leader)"
        return step.target, ""

    def _fault(self, kind: str, target: str) -> Fault:
        f = Fault(kind=kind, target=target, start=round(self.clock.now(), 1))
        self.log(f"FAULT {kind} -> {target}")
        return f

    async def kill_broker(self, step: Step, healthy) -> Fault:
        i, label = await self._node(step)
        svc = self.system.broker(i)
        return await self._kill_and_restart("kill_broker", svc, svc.name + label, step.hold)

    async def _active_bridge(self) -> Optional[str]:
        for name, role in (await self.system.bridge_roles()).items():
            if role == "active":
                return name
        return None

    async def kill_bridge(self, step: Step, healthy) -> Fault:
        name, label = f"bridge{step.target + 1}", ""
        if step.variant == "active":
            active = await self._active_bridge()
            name, label = (active, " (active)") if active else (name, "")
        svc = self.system.services[name]
        return await self._kill_and_restart("kill_bridge", svc, name + label, step.hold)

    async def kill_auth(self, step: Step, healthy) -> Fault:
        svc = self.system.services[f"auth{step.target + 1}"]
        return await self._kill_and_restart("kill_auth", svc, svc.name, step.hold)

    async def _kill_and_restart(self, kind: str, svc, target: str, hold: float) -> Fault:
        """kill -9 of `svc`, down for `hold` seconds, then started again."""
        f = self._fault(kind, target)
        svc.kill9()
        await asyncio.sleep(hold)
        await self.system.restart(svc)
        f.end = round(self.clock.now(), 1)
        f.detail = {"down_s": round(hold, 1)}
        return f

    async def stop_cont(self, step: Step, healthy) -> Fault:
        i, label = await self._node(step)
        name = {"broker": f"node{i + 1}", "bridge": f"bridge{step.target + 1}",
                "auth": f"auth{step.target + 1}"}[step.variant]
        if step.variant == "bridge" and self.rng.random() < 0.5:
            active = await self._active_bridge()
            name, label = (active, " (active)") if active else (name, "")
        svc = self.system.services[name]
        f = self._fault("stop_cont", name + label)
        svc.freeze()
        await asyncio.sleep(step.hold)
        svc.thaw()
        f.end = round(self.clock.now(), 1)
        f.detail = {"stopped_s": round(step.hold, 1)}
        return f

    async def partition(self, step: Step, healthy) -> Fault:
        i, label = await self._node(step)
        node = self.system.nodes[i]
        if self.partition_unusable:
            f = self._fault("partition", node.name)
            f.skipped = f"partitions need iptables as root: {self.partition_unusable}"
            f.end = f.start
            self.log(f"SKIPPED partition: {f.skipped}")
            return f
        f = self._fault("partition", node.name + label)
        self.cut = NetCut(self.system, i, self.log)
        try:
            await self.cut.cut()
            await asyncio.sleep(step.hold)
        finally:
            self.cut.heal()
            self.cut = None
        f.end = round(self.clock.now(), 1)
        f.detail = {"cut_s": round(step.hold, 1)}
        return f

    async def rolling_restart(self, step: Step, healthy) -> Fault:
        order = [int(x) for x in step.variant.split(",")]
        names = [self.system.nodes[i].name for i in order]
        f = self._fault("rolling_restart", " -> ".join(names))
        per_node = []
        for i in order:
            svc = self.system.broker(i)
            t0 = self.clock.now()
            svc.expect_down = True
            svc.signal(signal.SIGUSR2)
            self.log(f"  lame duck {svc.name} (SIGUSR2)")
            # Lame duck lasts lame_duck_duration (30 s here); the guard is
            # far beyond it.
            code = await svc.wait_exit(120)
            if code is None:
                self.findings.violate("lame-duck-exits", f"{svc.name} still running 120 s after SIGUSR2; killed")
                svc.kill9()
                code = "killed"
            t_exit = self.clock.now()
            await self.system.restart(svc)
            problem = await healthy(180)
            t_ok = self.clock.now()
            per_node.append({"node": svc.name, "exit": code, "lame_duck_s": round(t_exit - t0, 1),
                             "rejoined_s": round(t_ok - t_exit, 1), "problem": problem})
            self.log(f"  {svc.name} exited ({code}) after {t_exit - t0:.1f}s in lame duck, "
                     f"back and current after {t_ok - t_exit:.1f}s" + (f" ({problem})" if problem else ""))
        f.end = round(self.clock.now(), 1)
        f.detail = {"nodes": per_node}
        return f

    async def slow_consumer(self, step: Step, healthy) -> Fault:
        """A stalled subscriber and a fast one on the same node, both on
        chaos.flood; a publisher on the next node floods it. The fast one
        must get every message: the stalled one may hold up only itself."""
        i = step.target
        node = self.system.nodes[i]
        other = self.system.nodes[(i + 1) % len(self.system.nodes)]
        f = self._fault("slow_consumer", node.name)
        subject = "chaos.flood"
        size, rate, seconds = 16 * 1024, 250, step.hold
        varz0 = await self._varz(i)
        stalled = StalledSubscriber(node.host, node.client, self.system.internal_seed, subject)
        await asyncio.to_thread(stalled.open)
        quiet = Quiet()
        fast = await nats.connect(servers=[node.url], nkeys_seed=self.system.internal_seed, name="chaos-fast",
                                  allow_reconnect=False, **quiet.opts())
        flooder = await nats.connect(servers=[other.url], nkeys_seed=self.system.internal_seed,
                                     name="chaos-flooder", allow_reconnect=False, **quiet.opts())
        received = 0

        async def cb(msg):
            nonlocal received
            received += 1

        await fast.subscribe(subject, cb=cb, pending_bytes_limit=512 * 1024 * 1024)
        await fast.flush()
        # The subscriptions reach the flooder's node before the flood does.
        await asyncio.sleep(1)
        payload = os.urandom(size)
        sent = 0
        t_end = asyncio.get_running_loop().time() + seconds
        try:
            while asyncio.get_running_loop().time() < t_end:
                for _ in range(rate // 10):
                    await flooder.publish(subject, payload)
                    sent += 1
                await flooder.flush(timeout=10)
                await asyncio.sleep(0.1)
        except Exception as e:  # noqa: BLE001 - reported below
            f.detail["flood_error"] = f"{type(e).__name__}: {e}"
        f.end = round(self.clock.now(), 1)
        # The fast subscriber drains what is on its way (a guard, not a
        # speed requirement).
        for _ in range(300):
            if received >= sent:
                break
            await asyncio.sleep(0.1)
        connz_slow = await self._connz_named(i, "chaos-slow-consumer")
        closed = await asyncio.to_thread(stalled.closed_by_server)
        gone = await self._connz_named(i, "chaos-slow-consumer", "&state=closed")
        varz1 = await self._varz(i)
        stalled.close()
        for nc in (fast, flooder):
            try:
                await nc.close()
            except Exception:  # noqa: BLE001
                pass
        f.detail.update(
            published=sent,
            fast_received=received,
            bytes_published=sent * size,
            slow_closed_by_server=closed,
            slow_closed_reason=(gone or {}).get("reason"),
            slow_still_listed=connz_slow is not None,
            slow_pending_bytes=(connz_slow or {}).get("pending_bytes"),
            slow_consumers_counted=(varz1.get("slow_consumers", 0) - varz0.get("slow_consumers", 0))
            if varz0 and varz1 else None,
        )
        self.log(f"  flood {sent} x {size} B: fast subscriber got {received}; stalled one "
                 + (f"closed by the server ({f.detail['slow_closed_reason']})" if closed else "still connected"))
        return f

    async def _varz(self, i: int) -> dict:
        n = self.system.nodes[i]
        try:
            return await http_json(n.host, n.monitor, "/varz")
        except (OSError, ValueError):
            return {}

    async def _connz_named(self, i: int, name: str, query: str = "") -> Optional[dict]:
        """Node i's /connz entry of the (last) connection named `name`;
        query "&state=closed" looks among the closed ones (with the reason)."""
        n = self.system.nodes[i]
        try:
            v = await http_json(n.host, n.monitor, f"/connz?limit=1024{query}")
        except (OSError, ValueError):
            return None
        found = None
        for c in v.get("connections") or []:
            if c.get("name") == name:
                found = c
        return found

    async def bad_connects(self, step: Step, healthy) -> Fault:
        f = self._fault("bad_connects", "all nodes")
        bad = BadLogins(self.system, self.findings, self.log, self.state_dir)
        f.detail = await bad.flood(self.rng)
        f.end = round(self.clock.now(), 1)
        self.log(f"  {f.detail['attempts']} bad logins: {f.detail['refused']} refused, "
                 f"{f.detail['accepted']} accepted, {f.detail['no-answer']} unanswered")
        return f

    def heal_all(self):
        """Undo whatever a fault left in place (an interrupted run)."""
        if self.cut:
            self.cut.heal()
            self.cut = None
        for s in self.system.services.values():
            if s.frozen:
                s.thaw()
