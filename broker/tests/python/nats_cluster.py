"""A three-node JetStream cluster of nats-server or tribune-broker processes
for the nats-py tests (test_js_cluster.py), built on test_nats_py.Server.

The same layout as the Rust fixture (broker/tests/common/cluster.rs,
`Cluster::start_js`), so a scenario means the same thing in every suite:

  node i runs on 127.0.0.(i+1) (Linux routes all of 127/8 to lo) with its
  own client, route and monitoring ports, its own store dir and config:

  <bin> -a 127.0.0.X -p CLIENT -c node.conf -js -sd DIR/js -m HTTP -n node-x
        --cluster nats://127.0.0.X:ROUTE --cluster_name tribune-test
        --routes nats://127.0.0.1:R1,nats://127.0.0.2:R2,nats://127.0.0.3:R3

The route list names the node itself too (servers ignore that self-route).
Ready means: the ports file is written (Server), /varz answers with a
server_id, every node's /routez lists every other node (distinct
`remote_id`s: nats-server keeps several connections per peer) and the
JetStream API answers through every node (the meta group has a leader).

Every wait polls with a deadline that only guards against hanging; nothing
here asserts on timing.
"""

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_nats_py import WAIT, Server, connect

CLUSTER_NAME = "tribune-test"

# JetStream in account APP (the no_auth_user's) and a system account, as in
# the Rust fixture's JS_CLUSTER_CONFIG.
JS_CLUSTER_CONFIG = """
accounts {
  APP: { jetstream: enabled, users: [ { user: app, password: app } ] }
  SYS: { users: [ { user: sys, password: sys } ] }
}
system_account: SYS
no_auth_user: app
"""

# How long the mesh, the meta leader, a stream leader or a failover may take
# before a test gives up: nats-server's Raft election timeout alone is
# several seconds, and a loaded two-core machine stretches everything.
JS_DEADLINE = 90.0  # seconds
POLL = 0.2  # seconds between polls


def free_ports(ip: str, n: int) -> list:
    """n ports free on ip right now (bound together, so distinct), released
    for the server to take. Another process may grab one in between;
    Cluster.start retries on fresh ports if a node fails to come up."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((ip, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_json(ip: str, port: int, path: str):
    """GET a monitoring endpoint; the parsed JSON, or raises OSError/ValueError."""
    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=WAIT) as r:
        return json.loads(r.read())


class Node:
    """One node: fixed addresses and, while it runs, its Server."""

    def __init__(self, index: int, binary: str, workdir: Path):
        self.index = index
        self.name = f"node-{chr(ord('a') + index)}"
        self.binary = binary
        self.ip = f"127.0.0.{index + 1}"
        self.workdir = workdir
        self.client_port, self.route_port, self.http_port = free_ports(self.ip, 3)
        self.server = None
        self.server_id = None

    @property
    def route_url(self) -> str:
        return f"nats://{self.ip}:{self.route_port}"

    @property
    def url(self) -> str:
        return f"nats://{self.ip}:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.proc.poll() is None

    def launch(self, routes: str):
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "node.conf"
        conf.write_text(JS_CLUSTER_CONFIG)
        args = (
            "-c", str(conf),
            "-js", "-sd", str(self.workdir / "js"),
            "-m", str(self.http_port),
            "-n", self.name,
            "--cluster", self.route_url,
            "--cluster_name", CLUSTER_NAME,
            "--routes", routes,
        )
        self.server = Server(
            self.binary, self.workdir / "srv", args=args, host=self.ip, port=self.client_port
        )

    def varz_server_id(self):
        try:
            return http_json(self.ip, self.http_port, "/varz").get("server_id") or None
        except (OSError, ValueError):
            return None

    def route_ids(self) -> set:
        v = http_json(self.ip, self.http_port, "/routez")
        return {r["remote_id"] for r in v.get("routes") or [] if r.get("remote_id")}

    def log_tail(self, lines=30) -> str:
        text = self.server.log() if self.server else ""
        tail = "\n".join(text.splitlines()[-lines:])
        state = "running" if self.running else "stopped"
        return f"--- {self.name} ({self.binary}, {state}) ---\n{tail}"


class Cluster:
    """Three nodes of one binary with JetStream, meshed. kill() is SIGKILL."""

    def __init__(self, binary: str, workdir: Path, size: int = 3):
        self.binary = binary
        self.workdir = workdir
        self.size = size
        self.nodes = []

    def start(self):
        """Launch every node and wait for /varz and the full mesh. A node that
        does not come up (a port taken in between) restarts everything on
        fresh ports, up to three times."""
        for attempt in range(1, 4):
            base = self.workdir / f"try{attempt}"
            self.nodes = [Node(i, self.binary, base / f"n{i}") for i in range(self.size)]
            routes = ",".join(n.route_url for n in self.nodes)
            try:
                for n in self.nodes:
                    n.launch(routes)
                break
            except pytest.fail.Exception as e:
                self.stop()
                if attempt == 3:
                    raise
                print(f"cluster start attempt {attempt} failed, retrying: {e}")
        self._poll("/varz on every node", self._varz_ready, deadline=WAIT * 2)
        self._poll("a full route mesh", self._mesh_state, deadline=WAIT * 2)
        return self

    def live(self) -> list:
        return [n for n in self.nodes if n.running]

    def node_named(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise AssertionError(f"{name!r} is not a node of the cluster")

    def kill(self, node: Node):
        node.server.kill()

    def stop(self):
        for n in self.nodes:
            if n.server is not None:
                n.server.kill()

    def diagnostics(self) -> str:
        return "\n".join(n.log_tail() for n in self.nodes)

    def _varz_ready(self):
        for n in self.nodes:
            n.server_id = n.varz_server_id()
            if not n.server_id:
                return f"{n.name}: /varz without server_id"
        return None

    def _mesh_state(self):
        live = self.live()
        for n in live:
            want = {m.server_id for m in live if m is not n}
            try:
                have = n.route_ids()
            except (OSError, ValueError) as e:
                return f"{n.name} /routez: {e!r}"
            if have != want:
                return f"{n.name} routes to {sorted(have)}, want {sorted(want)}"
        return None

    def _poll(self, what: str, check, deadline: float):
        """Call check() (None = done, else a description) until done."""
        end = time.monotonic() + deadline
        while True:
            gone = [n.name for n in self.nodes if not n.running]
            if gone:
                self.stop()
                pytest.fail(f"{gone} exited before {what}\n{self.diagnostics()}")
            problem = check()
            if problem is None:
                return
            if time.monotonic() > end:
                self.stop()
                pytest.fail(f"no {what} after {deadline}s: {problem}\n{self.diagnostics()}")
            time.sleep(0.05)


async def poll(cluster: Cluster, what: str, check):
    """Await check() until it returns something other than None (returned);
    None or an exception means "not yet", except an AssertionError: a wrong
    answer fails at once. Fails with the last problem and every node's log
    after JS_DEADLINE."""
    end = time.monotonic() + JS_DEADLINE
    problem = "never checked"
    while True:
        try:
            out = await check()
            if out is not None:
                return out
            problem = "not yet"
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - timeouts, 503s, no leader yet: retry
            problem = repr(e)
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}: {problem}\n{cluster.diagnostics()}")
        await asyncio.sleep(POLL)


class Clients:
    """One nats-py connection per node, pinned to it (no reconnect, so never
    to a server it learned from the cluster): a request through node i's
    client enters the cluster at node i."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.ncs = {}

    async def connect_all(self):
        for n in self.cluster.live():
            self.ncs[n.name] = await connect(n.server)
        await poll(self.cluster, "the JetStream API on every node", self._api_ready)
        return self

    async def _api_ready(self):
        for name in self.ncs:
            await self.js(name).account_info()
        return True

    def js(self, name: str):
        return self.ncs[name].jetstream(timeout=WAIT / 2)

    def drop(self, name: str):
        """Forget node `name`'s client (its node is being killed)."""
        return self.ncs.pop(name, None)

    async def close(self):
        for nc in self.ncs.values():
            await nc.close()
        self.ncs.clear()


async def wait_group_leader(clients: Clients, what: str, info_of, not_leader=None):
    """The leader of a Raft group (a stream or a consumer) once the
    `info_of(js)` answer (StreamInfo or ConsumerInfo) through every
    connected node has a `cluster` block of this cluster naming the same
    leader, that leader is not `not_leader`, the replicas are the cluster's
    other nodes (dead ones included), and every other live node is a
    current replica. Returns (leader name, {node name: info})."""
    all_names = {n.name for n in clients.cluster.nodes}

    async def check():
        infos, leaders = {}, set()
        for name in list(clients.ncs):
            info = await info_of(clients.js(name))
            c = info.cluster
            if c is None or c.name != CLUSTER_NAME or not c.leader:
                return None
            infos[name] = info
            leaders.add(c.leader)
        if len(leaders) != 1 or not_leader in leaders:
            return None
        (leader,) = leaders
        for info in infos.values():
            replicas = info.cluster.replicas or []
            if sorted(r.name for r in replicas) != sorted(all_names - {leader}):
                return None
            current = {r.name for r in replicas if r.current}
            for n in clients.cluster.live():
                if n.name != leader and n.name not in current:
                    return None
        return leader, infos

    return await poll(clients.cluster, f"a leader of {what} other than {not_leader}", check)


async def wait_stream_leader(clients: Clients, stream: str, not_leader=None):
    """wait_group_leader for a stream."""
    return await wait_group_leader(
        clients, f"stream {stream}", lambda js: js.stream_info(stream), not_leader
    )


async def wait_consumer_leader(clients: Clients, stream: str, consumer: str, not_leader=None):
    """wait_group_leader for a consumer."""
    return await wait_group_leader(
        clients,
        f"consumer {consumer}",
        lambda js: js.consumer_info(stream, consumer),
        not_leader,
    )
