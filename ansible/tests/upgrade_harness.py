"""What the two rolling-upgrade tests share: the in-place binary upgrade of
ansible/tests/test_rolling_upgrade.py and the AMI rollout of
terraform/tests/test_localstack.py. Both run real brokers on loopback under
an acknowledged JetStream workload and watch who is down when.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open until all are chosen)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def install_copy(src: Path, dest: Path) -> Path:
    """A copy of the broker without debug info: the debug build is ~600 MB
    and a test holds it up to a dozen times (versions, and per node the
    binary, .new and .prev)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    strip = shutil.which("strip")
    if not (strip and subprocess.run([strip, "--strip-debug", "-o", str(dest), str(src)],
                                     capture_output=True).returncode == 0):
        shutil.copy2(src, dest)
    return dest


def variant(v1: Path, dest: Path, tag: str) -> Path:
    """v1 plus trailing bytes after the ELF image: a different file, the
    same program."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(v1.read_bytes() + f"\n# tribune rolling-upgrade test {tag}\n".encode())
    dest.chmod(0o755)
    return dest


def get_json(url: str) -> dict | None:
    """The JSON at url, or None if it does not answer with JSON."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def wait(cond, what: str, deadline_s: float = 120):
    """cond()'s first truthy value, polled every 0.2 s for up to deadline_s."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Watcher(threading.Thread):
    """Samples every node's /varz (monitor URLs by node name): who is down
    at each moment, and when each node's server start time changed (= it
    restarted)."""

    def __init__(self, monitor_urls: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.urls = monitor_urls
        self.stop_event = threading.Event()
        self.max_down = 0
        self.down_samples: list[list[str]] = []
        self.restarts: list[str] = []
        self.starts = {n: (get_json(f"{u}/varz") or {}).get("start") for n, u in monitor_urls.items()}

    def run(self) -> None:
        while not self.stop_event.is_set():
            down = []
            for n, url in self.urls.items():
                varz = get_json(f"{url}/varz")
                if varz is None:
                    down.append(n)
                elif varz.get("start") != self.starts[n]:
                    self.starts[n] = varz.get("start")
                    self.restarts.append(n)
            if down:
                self.down_samples.append(down)
            self.max_down = max(self.max_down, len(down))
            time.sleep(0.1)


class Workload:
    """upgrade_workload.py in its own process: acknowledged JetStream
    publishes to an R3 stream from entering (once 100 are acknowledged, within
    warmup_s) until leaving the context; result() then checks the process
    ended well and returns its report."""

    def __init__(self, servers: list[str], tmp_path: Path, warmup_s: float = 60) -> None:
        self.out, self.stop = tmp_path / "workload.json", tmp_path / "workload.stop"
        self.progress = self.out.with_suffix(".progress")
        self.log = tmp_path / "workload.log"
        self.servers = ",".join(servers)
        self.warmup_s = warmup_s

    def __enter__(self) -> "Workload":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("upgrade_workload.py")),
                 "--servers", self.servers, "--out", str(self.out), "--stop", str(self.stop)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait(lambda: self.acked() >= 100, "the workload to get 100 acknowledgements", self.warmup_s)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.write_text("stop")
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def acked(self) -> int:
        try:
            return int(self.progress.read_text())
        except (OSError, ValueError):
            return 0

    def result(self) -> dict:
        assert self.proc.returncode == 0, self.log.read_text()[-3000:]
        result = json.loads(self.out.read_text())
        # The publisher never skipped an id, and nothing acknowledged was lost.
        assert result["acked"] == list(range(len(result["acked"])))
        missing = set(result["acked"]) - set(result["recorded"])
        assert not missing, f"{len(missing)} acknowledged messages are not in the R3 stream: {sorted(missing)[:20]}"
        # In order, and once each (retries of a stored id are duplicates).
        assert result["recorded"] == sorted(set(result["recorded"])), "the stream holds an id twice or out of order"
        return result
