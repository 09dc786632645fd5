"""rolling_upgrade.yml for real, against a local 3-node tribune-broker cluster.

Every node is an inventory host with ansible_connection=local and its own
directories and ports on 127.0.0.1; tribune_service_manager=pidfile replaces
systemd (absent here) with the roles' tribune-svc supervisor. site.yml
installs "v1" (the built tribune-broker) with JetStream on every node and
starts the cluster; then, while a client publishes acknowledged JetStream
messages to a stream with three replicas, rolling_upgrade.yml installs "v2"
(the same binary plus trailing bytes, so the files differ).
The routes use route authorization (bcrypt hash on the listening side, the
password in the route URLs), and template mode without it is refused.

Checked: the play succeeds; every node runs v2 with v1 kept as .prev, has a
new pid and a new /varz start time; at no moment were two nodes down; the
nodes restarted in inventory order; every acknowledged message is in the
stream once and in order, ids were acknowledged without gaps, and the
publisher reconnected. A second run with the same binary restarts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
NODES = ("node1", "node2", "node3")


def _tool(name: str) -> str:
    venv_bin = Path(os.environ.get("TRIBUNE_DEPLOY_VENV", REPO / ".deploy-venv")) / "bin" / name
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; run `make deploy-venv`")
    return found


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _install_copy(src: Path, dest: Path) -> None:
    """A copy of the broker without debug info: the debug build is ~600 MB
    and the test holds it up to a dozen times (v1, v2, and per node the
    binary, .new and .prev)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    strip = shutil.which("strip")
    if strip and subprocess.run([strip, "--strip-debug", "-o", str(dest), str(src)],
                                capture_output=True).returncode == 0:
        return
    shutil.copy2(src, dest)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def _bcrypt(password: str) -> str:
    """bcrypt (cost 4, fixed salt) through crypt(3), as make run does."""
    proc = subprocess.run(["perl", "-e", "print crypt($ARGV[0], $ARGV[1])", password, "$2b$04$abcdefghijklmnopqrstuu"],
                          text=True, capture_output=True, check=True)
    assert proc.stdout.startswith("$2b$04$") and len(proc.stdout) == 60, proc.stdout
    return proc.stdout


def _wait(cond, what: str, deadline_s: float = 120):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.route_password = secrets.token_hex(16)
        ports = _free_ports(9)
        self.hosts = {}
        for i, name in enumerate(NODES):
            client, cluster, monitor = ports[3 * i: 3 * i + 3]
            base = root / name
            self.hosts[name] = {
                "ansible_host": "127.0.0.1",
                "tribune_broker_client_port": client,
                "tribune_broker_cluster_port": cluster,
                "tribune_broker_monitor_port": monitor,
                "tribune_broker_route_host": "127.0.0.1",
                "tribune_broker_monitor_url": f"http://127.0.0.1:{monitor}",
                "tribune_service_bin_dir": str(base / "bin"),
                "tribune_service_etc_dir": str(base / "etc"),
                "tribune_service_run_dir": str(base / "run"),
                "tribune_service_log_dir": str(base / "log"),
                "tribune_service_libexec_dir": str(base / "libexec"),
                "tribune_broker_store_dir": str(base / "jetstream"),
            }
        self.inventory = root / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "tribune_become": False,
                "tribune_service_manager": "pidfile",
                "tribune_service_manage_user": False,
                "tribune_broker_config_mode": "template",
                "tribune_broker_cluster_name": "upgrade-test",
                "tribune_broker_listen_host": "127.0.0.1",
                "tribune_broker_monitor_host": "127.0.0.1",
                # Lame duck: 30 s is the broker's minimum duration, but with
                # a 1 s grace period and few clients it ends in seconds.
                "tribune_broker_lame_duck_duration": "30s",
                "tribune_broker_lame_duck_grace_period": "1s",
                "tribune_broker_health_delay": 1,
                # JetStream on every node: the workload publishes to an R3
                # stream and every acknowledged message must survive.
                "tribune_broker_jetstream_enabled": True,
                # Route authorization: the listening side holds the hash,
                # the route URLs the password.
                "tribune_broker_route_password": self.route_password,
                "tribune_broker_route_password_hash": _bcrypt(self.route_password),
            },
            "children": {"tribune_brokers": {"hosts": self.hosts}},
        }}))

    def monitor(self, name: str, path: str) -> dict | None:
        return _get_json(f"{self.hosts[name]['tribune_broker_monitor_url']}{path}")

    def binary(self, name: str) -> Path:
        return Path(self.hosts[name]["tribune_service_bin_dir"]) / "tribune-broker"

    def pid(self, name: str) -> int:
        return int((Path(self.hosts[name]["tribune_service_run_dir"]) / "tribune-broker.pid").read_text())

    def client_urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{h['tribune_broker_client_port']}" for h in self.hosts.values()]

    def stop_all(self) -> None:
        """Teardown: end the brokers this test started, by their recorded pids."""
        for name in NODES:
            pidfile = Path(self.hosts[name]["tribune_service_run_dir"]) / "tribune-broker.pid"
            try:
                pid = int(pidfile.read_text())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            end = time.monotonic() + 15
            while time.monotonic() < end:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)


def _playbook(cluster: Cluster, playbook: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
               ANSIBLE_HOME=str(cluster.root / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(cluster.root / "ansible-tmp"),
               ANSIBLE_REMOTE_TEMP=str(cluster.root / "ansible-remote-tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([_tool("ansible-playbook"), "-i", str(cluster.inventory),
                           str(ANSIBLE / playbook), *extra],
                          env=env, cwd=ANSIBLE, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=900)
    (cluster.root / f"{playbook}.{int(time.time() * 1000)}.log").write_text(proc.stdout + proc.stderr)
    return proc


class Watcher(threading.Thread):
    """Samples every node's /varz: who is down at each moment, and when each
    node's server start time changed (= it restarted)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.max_down = 0
        self.down_samples: list[list[str]] = []
        self.restarts: list[str] = []
        self.starts = {n: (cluster.monitor(n, "/varz") or {}).get("start") for n in NODES}

    def run(self) -> None:
        while not self.stop_event.is_set():
            down = []
            for n in NODES:
                varz = self.cluster.monitor(n, "/varz")
                if varz is None:
                    down.append(n)
                elif varz.get("start") != self.starts[n]:
                    self.starts[n] = varz.get("start")
                    self.restarts.append(n)
            if down:
                self.down_samples.append(down)
            self.max_down = max(self.max_down, len(down))
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


def test_rolling_upgrade_keeps_serving(cluster: Cluster, tmp_path: Path) -> None:
    broker = Path(os.environ.get("TRIBUNE_BROKER_BIN", REPO / "target" / "debug" / "tribune-broker"))
    if not broker.exists():
        pytest.fail(f"tribune-broker not found at {broker}; run `cargo build -p tribune-broker`")
    v1, v2 = tmp_path / "dist" / "v1" / "tribune-broker", tmp_path / "dist" / "v2" / "tribune-broker"
    v2.parent.mkdir(parents=True)
    _install_copy(broker, v1)
    # Trailing bytes after the ELF image change the file, not the program.
    v2.write_bytes(v1.read_bytes() + b"\n# tribune rolling-upgrade test v2\n")
    v2.chmod(0o755)

    # Install v1 and form the cluster with the roles.
    proc = _playbook(cluster, "site.yml", "-e", f"tribune_broker_binary_src={v1}")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for n in NODES:
        routez = cluster.monitor(n, "/routez")
        assert routez and routez["num_routes"] == 2, (n, routez)
        assert _sha256(cluster.binary(n)) == _sha256(v1)
        conf = (Path(cluster.hosts[n]["tribune_service_etc_dir"]) / "broker.conf").read_text()
        assert "authorization {" in conf and 'password: "$2b$04$' in conf, n
    pids_before = {n: cluster.pid(n) for n in NODES}

    # The client workload, in its own process.
    out, stop = tmp_path / "workload.json", tmp_path / "workload.stop"
    progress = out.with_suffix(".progress")
    workload = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("upgrade_workload.py")),
         "--servers", ",".join(cluster.client_urls()), "--out", str(out), "--stop", str(stop)],
        stdout=open(tmp_path / "workload.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    watcher = Watcher(cluster)

    def acked() -> int:
        try:
            return int(progress.read_text())
        except (OSError, ValueError):
            return 0

    try:
        _wait(lambda: acked() >= 100, "the workload to get 100 acknowledgements", 60)
        watcher.start()
        before = acked()
        proc = _playbook(cluster, "rolling_upgrade.yml", "-e", f"tribune_broker_binary_src={v2}")
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
        during = acked()
        # Traffic keeps flowing after the last node is back.
        _wait(lambda: acked() >= during + 100, "acknowledgements after the upgrade", 60)
    finally:
        watcher.stop_event.set()
        stop.write_text("stop")
        try:
            workload.wait(timeout=60)
        except subprocess.TimeoutExpired:
            workload.kill()
            workload.wait()
    assert workload.returncode == 0, (tmp_path / "workload.log").read_text()[-3000:]
    result = json.loads(out.read_text())

    # The play did what it says, one node at a time, in inventory order.
    assert "Step 2, lame duck" in proc.stdout and "Step 3, replace the binary" in proc.stdout
    assert watcher.restarts == list(NODES), watcher.restarts
    assert watcher.max_down <= 1, watcher.down_samples
    for n in NODES:
        assert _sha256(cluster.binary(n)) == _sha256(v2), n
        prev = cluster.binary(n).with_name("tribune-broker.prev")
        assert _sha256(prev) == _sha256(v1), n
        assert not cluster.binary(n).with_name("tribune-broker.new").exists()
        assert cluster.pid(n) != pids_before[n], n
        routez = cluster.monitor(n, "/routez")
        assert routez and routez["num_routes"] == 2, (n, routez)
        log = (Path(cluster.hosts[n]["tribune_service_log_dir"]) / "tribune-broker.log").read_text()
        assert "Entering lame duck mode" in log, n

    # Nothing acknowledged was lost; the publisher never skipped an id.
    assert during > before, "no acknowledgements while the upgrade ran"
    assert result["acked"] == list(range(len(result["acked"])))
    missing = set(result["acked"]) - set(result["recorded"])
    assert not missing, f"{len(missing)} acknowledged messages are not in the R3 stream: {sorted(missing)[:20]}"
    # In order, and once each (retries of a stored id are duplicates).
    assert result["recorded"] == sorted(set(result["recorded"])), "the stream holds an id twice or out of order"
    # Every node went away once, so the publisher had to reconnect.
    assert result["publisher"]["reconnects"] >= 1, result["publisher"]

    # Idempotent: the same binary again restarts nothing.
    starts = {n: cluster.monitor(n, "/varz")["start"] for n in NODES}
    proc = _playbook(cluster, "rolling_upgrade.yml", "-e", f"tribune_broker_binary_src={v2}")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert {n: cluster.monitor(n, "/varz")["start"] for n in NODES} == starts


def test_rolling_upgrade_refuses_a_broken_binary(cluster: Cluster, tmp_path: Path) -> None:
    """A binary that cannot even check the config stops the rollout before
    any node is taken down."""
    broker = Path(os.environ.get("TRIBUNE_BROKER_BIN", REPO / "target" / "debug" / "tribune-broker"))
    v1 = tmp_path / "dist" / "tribune-broker"
    _install_copy(broker, v1)
    proc = _playbook(cluster, "site.yml", "-e", f"tribune_broker_binary_src={v1}")
    assert proc.returncode == 0, proc.stdout[-6000:]
    pids = {n: cluster.pid(n) for n in NODES}
    bad = tmp_path / "dist" / "broken"
    bad.write_text("#!/bin/sh\necho 'not a broker' >&2\nexit 1\n")
    bad.chmod(0o755)
    proc = _playbook(cluster, "rolling_upgrade.yml", "-e", f"tribune_broker_binary_src={bad}")
    assert proc.returncode != 0
    assert "Check the new binary accepts the node's configuration" in proc.stdout
    assert {n: cluster.pid(n) for n in NODES} == pids
    for n in NODES:
        assert _sha256(cluster.binary(n)) == _sha256(v1)
        assert (cluster.monitor(n, "/healthz") or {}).get("status") == "ok"


def test_template_mode_refuses_routes_without_authorization(cluster: Cluster, tmp_path: Path) -> None:
    """Template mode without a route password stops before anything is
    installed: an open route port would let anyone join the cluster."""
    vars_ = yaml.safe_load(cluster.inventory.read_text())
    del vars_["all"]["vars"]["tribune_broker_route_password"]
    del vars_["all"]["vars"]["tribune_broker_route_password_hash"]
    cluster.inventory.write_text(yaml.safe_dump(vars_))
    proc = _playbook(cluster, "site.yml", "-e", f"tribune_broker_binary_src={tmp_path / 'never-copied'}")
    assert proc.returncode != 0
    assert "Template mode needs route authorization" in proc.stdout, proc.stdout[-3000:]
    for n in NODES:
        assert not cluster.binary(n).exists(), n
        assert not (Path(cluster.hosts[n]["tribune_service_etc_dir"]) / "broker.conf").exists(), n
