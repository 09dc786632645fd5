"""What the mocks leave out of EC2: booting what an instance's AMI holds.

moto launches and terminates instances (and an Auto Scaling group replaces
them), but nothing runs on them. For the upgrade test, InstanceRuntime runs
one real tribune-broker per availability zone on loopback for whichever of
the cluster's instances moto reports running there, with the binary of that
instance's AMI (`images`: AMI ID -> binary), and stops it when the instance
goes away, as EC2's shutdown stops the unit (SIGUSR2, the lame duck). Each
AZ keeps its JetStream directory across instances: the data volume.

An instance's image ID `resolve:ssm:NAME` (launch templates resolve their
parameter at launch; moto keeps the string) is resolved when the instance
is first seen running, from the same SSM the play writes, as EC2 would at
launch. An AMI not in `images` boots nothing (a broken image).

Brokers run under the Ansible roles' pidfile supervisor (tribune-svc), with
the run and log directories the play is given, so the play's lame-duck step
(tribune_service stop) acts on the same process.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SVC = REPO / "ansible" / "roles" / "tribune_service" / "files" / "tribune-svc"

sys.path.insert(0, str(REPO / "ansible" / "tests"))
from upgrade_harness import free_ports  # noqa: E402


@dataclass
class Node:
    """One AZ's place in the cluster: fixed ports and directories."""
    az: str
    client: int
    cluster: int
    monitor: int
    root: Path

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor}"


@dataclass
class Boot:
    """One instance's life on this machine."""
    az: str
    instance_id: str
    ami: str
    booted: bool
    stopped: bool = False


@dataclass
class InstanceRuntime:
    ec2: Any
    ssm: Any
    cluster_name: str
    tag_key: str
    azs: list[str]
    root: Path
    images: dict[str, Path]
    nodes: dict[str, Node] = field(init=False)
    boots: list[Boot] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports = free_ports(3 * len(self.azs))
        self.nodes = {az: Node(az, *ports[3 * i:3 * i + 3], self.root / az) for i, az in enumerate(self.azs)}
        self.libexec = self.root / "libexec"
        self.libexec.mkdir(parents=True, exist_ok=True)
        (self.libexec / "tribune-svc").write_bytes(SVC.read_bytes())
        (self.libexec / "tribune-svc").chmod(0o755)
        for node in self.nodes.values():
            for d in (node.run_dir, node.log_dir, node.root / "jetstream"):
                d.mkdir(parents=True, exist_ok=True)
            (node.root / "broker.conf").write_text(self._config(node))
        self._current: dict[str, Boot] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _config(self, node: Node) -> str:
        routes = ", ".join(f'"nats://127.0.0.1:{n.cluster}"' for n in self.nodes.values() if n is not node)
        return f"""
server_name: "{self.cluster_name}-{node.az}"
listen: 127.0.0.1:{node.client}
http: 127.0.0.1:{node.monitor}
# Few clients: the lame duck is over after the grace period.
lame_duck_duration: "30s"
lame_duck_grace_period: "1s"
jetstream {{
  store_dir: "{node.root / 'jetstream'}"
}}
cluster {{
  name: "{self.cluster_name}"
  listen: 127.0.0.1:{node.cluster}
  routes: [{routes}]
}}
"""

    # --- the loop ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for az in list(self._current):
            self._shutdown(az)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - reported by the test, the loop goes on
                self.errors.append(repr(e))

    def _running(self) -> dict[str, dict[str, Any]]:
        res = self.ec2.describe_instances(Filters=[
            {"Name": f"tag:{self.tag_key}", "Values": [self.cluster_name]},
            {"Name": "instance-state-name", "Values": ["running"]}])
        found = [i for r in res["Reservations"] for i in r["Instances"]]
        return {i["Placement"]["AvailabilityZone"]: i for i in found}

    def sync(self) -> None:
        running = self._running()
        for az in self.azs:
            inst, cur = running.get(az), self._current.get(az)
            if cur and (inst is None or inst["InstanceId"] != cur.instance_id):
                self._shutdown(az)
            if inst and az not in self._current:
                self._boot(az, inst)

    def _resolve(self, image_id: str) -> str:
        prefix = "resolve:ssm:"
        if image_id.startswith(prefix):
            return self.ssm.get_parameter(Name=image_id[len(prefix):])["Parameter"]["Value"]
        return image_id

    def _boot(self, az: str, inst: dict[str, Any]) -> None:
        node, ami = self.nodes[az], self._resolve(inst["ImageId"])
        binary = self.images.get(ami)
        boot = Boot(az, inst["InstanceId"], ami, booted=binary is not None)
        self._current[az] = boot
        self.boots.append(boot)
        if binary is None:
            return
        # A new root volume: the AMI's binary, the node's config.
        bin_dir = node.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        link = bin_dir / "tribune-broker"
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
        # tribune-svc fails if the command exits within its first second; a
        # broken image is allowed to (it just never serves).
        subprocess.run([str(self.libexec / "tribune-svc"), "start", "tribune-broker", str(node.run_dir),
                        str(node.log_dir), "--", str(link), "-c", str(node.root / "broker.conf")],
                       capture_output=True, timeout=30, check=False)

    def _shutdown(self, az: str) -> None:
        boot = self._current.pop(az)
        boot.stopped = True
        node = self.nodes[az]
        subprocess.run([str(self.libexec / "tribune-svc"), "stop", "tribune-broker", str(node.run_dir), "USR2", "75"],
                       capture_output=True, timeout=120, check=False)

    # --- what the test reads ---------------------------------------------------

    def current(self, az: str) -> Boot | None:
        return self._current.get(az)

    def boots_in(self, az: str) -> list[Boot]:
        return [b for b in self.boots if b.az == az]

    def wait_until(self, cond, what: str, deadline_s: float = 120) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if cond():
                return
            if self.errors:
                raise AssertionError(f"instance runtime failed: {self.errors[-3:]}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")
