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

A "v3" that passes the pre-stop config check but never becomes healthy is
rolled back: the play fails naming the first node, which runs v1 again
(restored from the .prev the upgrade made, not an older one) and is
healthy and routed, with v3 kept as tribune-broker.failed; the other nodes
were never touched, and no acknowledged message was lost. A rerun tries that
node again; when its lame duck is killed before the swap, it is restarted on
v1.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from upgrade_harness import Watcher, Workload, free_ports, get_json, install_copy, variant, wait

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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bcrypt(password: str) -> str:
    """bcrypt (cost 4, fixed salt) through crypt(3), as make run does."""
    proc = subprocess.run(["perl", "-e", "print crypt($ARGV[0], $ARGV[1])", password, "$2b$04$abcdefghijklmnopqrstuu"],
                          text=True, capture_output=True, check=True)
    assert proc.stdout.startswith("$2b$04$") and len(proc.stdout) == 60, proc.stdout
    return proc.stdout


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.route_password = secrets.token_hex(16)
        ports = free_ports(9)
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

    def monitor_urls(self) -> dict[str, str]:
        return {n: h["tribune_broker_monitor_url"] for n, h in self.hosts.items()}

    def monitor(self, name: str, path: str) -> dict | None:
        return get_json(f"{self.hosts[name]['tribune_broker_monitor_url']}{path}")

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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


def _install_v1(cluster: Cluster, tmp_path: Path) -> Path:
    """site.yml installs "v1" (a copy of the built broker) on every node and
    forms the cluster; returns v1's path."""
    broker = Path(os.environ.get("TRIBUNE_BROKER_BIN", REPO / "target" / "debug" / "tribune-broker"))
    if not broker.exists():
        pytest.fail(f"tribune-broker not found at {broker}; run `cargo build -p tribune-broker`")
    v1 = tmp_path / "dist" / "v1" / "tribune-broker"
    install_copy(broker, v1)
    proc = _playbook(cluster, "site.yml", "-e", f"tribune_broker_binary_src={v1}")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for n in NODES:
        routez = cluster.monitor(n, "/routez")
        assert routez and routez["num_routes"] == 2, (n, routez)
        assert _sha256(cluster.binary(n)) == _sha256(v1)
    return v1


def test_rolling_upgrade_keeps_serving(cluster: Cluster, tmp_path: Path) -> None:
    v1 = _install_v1(cluster, tmp_path)
    v2 = variant(v1, tmp_path / "dist" / "v2" / "tribune-broker", "v2")
    for n in NODES:
        conf = (Path(cluster.hosts[n]["tribune_service_etc_dir"]) / "broker.conf").read_text()
        assert "authorization {" in conf and 'password: "$2b$04$' in conf, n
    pids_before = {n: cluster.pid(n) for n in NODES}

    watcher = Watcher(cluster.monitor_urls())
    with Workload(cluster.client_urls(), tmp_path) as load:
        watcher.start()
        try:
            before = load.acked()
            proc = _playbook(cluster, "rolling_upgrade.yml", "-e", f"tribune_broker_binary_src={v2}")
            assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
            during = load.acked()
            # Traffic keeps flowing after the last node is back.
            wait(lambda: load.acked() >= during + 100, "acknowledgements after the upgrade", 60)
        finally:
            watcher.stop_event.set()
    result = load.result()

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

    # Workload.result() checked that nothing acknowledged was lost.
    assert during > before, "no acknowledgements while the upgrade ran"
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
    v1 = _install_v1(cluster, tmp_path)
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


def test_rolling_upgrade_rolls_back_a_node_that_never_gets_healthy(cluster: Cluster, tmp_path: Path) -> None:
    """A "v3" that passes the config check but never serves: the first node
    is put back on v1 and the rollout stops there. A rerun tries that node
    again; when its lame duck fails (killed at the stop timeout) before the
    binary was replaced, it is restarted on the binary it had."""
    v1 = _install_v1(cluster, tmp_path)
    # What an earlier upgrade leaves behind: the rollback must restore the
    # copy this upgrade made of v1, never an older .prev.
    v0 = variant(v1, tmp_path / "dist" / "v0" / "tribune-broker", "v0")
    for n in NODES:
        shutil.copy2(v0, cluster.binary(n).with_name("tribune-broker.prev"))
    # Passes `-c conf -t` (the real broker checks the file), otherwise runs
    # without ever listening, as a binary that hangs at startup would.
    v3 = tmp_path / "dist" / "v3" / "tribune-broker"
    v3.parent.mkdir(parents=True)
    v3.write_text('#!/bin/sh\n'
                  'for a in "$@"; do [ "$a" = -t ] && exec ' + shlex.quote(str(v1)) + ' "$@"; done\n'
                  'exec sleep 3600\n')
    v3.chmod(0o755)
    v2 = variant(v1, tmp_path / "dist" / "v2" / "tribune-broker", "v2")
    node1 = cluster.binary("node1")
    pids_before = {n: cluster.pid(n) for n in NODES}

    def rollout(binary: Path, *extra: str) -> str:
        # 10 x 1 s per health gate: v3 fails the first one in about 10 s,
        # and v1 passes each within that once it is back.
        started = time.monotonic()
        proc = _playbook(cluster, "rolling_upgrade.yml", "-e", f"tribune_broker_binary_src={binary}",
                         "-e", "tribune_broker_health_retries=10", *extra)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-8000:]
        assert time.monotonic() - started < 180
        return out

    def restored(out: str) -> str:
        """What the play's restore step did: changed, or skipping."""
        m = re.search(r"Rollback, install the previous binary \(atomic rename\)\] \**\n(\w+):", out)
        assert m, out[-8000:]
        return m.group(1)

    def node1_back_on_v1(pid_before: int) -> None:
        assert _sha256(node1) == _sha256(v1)
        assert _sha256(node1.with_name("tribune-broker.prev")) == _sha256(v1)
        assert _sha256(node1.with_name("tribune-broker.failed")) == _sha256(v3)
        assert not node1.with_name("tribune-broker.rollback").exists()
        assert cluster.pid("node1") != pid_before
        # The play's own gate saw it healthy. Under the workload's steady
        # writes a follower replica reads "not current" for an instant now
        # and then (it has appended an entry it has not applied yet), so
        # this waits for an ok rather than taking one sample.
        wait(lambda: (cluster.monitor("node1", "/healthz?js-enabled-only=false") or {}).get("status") == "ok",
              "node1's /healthz with its JetStream replicas", 30)
        routez = cluster.monitor("node1", "/routez")
        assert routez and len({r["remote_id"] for r in routez["routes"]}) == 2, routez

    watcher = Watcher(cluster.monitor_urls())
    with Workload(cluster.client_urls(), tmp_path) as load:
        watcher.start()
        try:
            out = rollout(v3)
            assert restored(out) == "changed"
            assert "Rolling upgrade stopped at node1: Wait for /healthz" in out, out[-8000:]
            assert "node1 is back on the previous binary (restored from tribune-broker.prev" in out, out[-8000:]
            # Only node1 went down, once, and came back.
            assert watcher.restarts == ["node1"], watcher.restarts
            node1_back_on_v1(pids_before["node1"])
            assert not node1.with_name("tribune-broker.new").exists()

            # node1 runs v1 again, so a rerun starts with it again. A stop
            # timeout of 0 kills its lame duck at once: the failure comes
            # before the swap, so v1 is simply restarted.
            pid_rolled_back = cluster.pid("node1")
            out = rollout(v2, "-e", "tribune_broker_stop_timeout=0")
            assert "Rolling upgrade stopped at node1: Stop with the pidfile supervisor" in out, out[-8000:]
            assert "node1 is back on the previous binary (it had not been replaced yet)" in out, out[-8000:]
            assert restored(out) == "skipping"
            assert watcher.restarts == ["node1", "node1"], watcher.restarts
            node1_back_on_v1(pid_rolled_back)
            assert _sha256(node1.with_name("tribune-broker.new")) == _sha256(v2)

            during = load.acked()
            wait(lambda: load.acked() >= during + 100, "acknowledgements after the rollbacks", 60)
        finally:
            watcher.stop_event.set()
    # Every acknowledged publish is in the R3 stream (checked by result()).
    load.result()
    assert watcher.max_down <= 1, watcher.down_samples
    # The rollouts stopped before the other nodes.
    for n in ("node2", "node3"):
        assert cluster.pid(n) == pids_before[n], n
        assert _sha256(cluster.binary(n)) == _sha256(v1), n
        assert _sha256(cluster.binary(n).with_name("tribune-broker.prev")) == _sha256(v0), n
        assert not cluster.binary(n).with_name("tribune-broker.new").exists(), n
        assert not cluster.binary(n).with_name("tribune-broker.failed").exists(), n


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
