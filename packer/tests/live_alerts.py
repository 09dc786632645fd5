"""The shipped alerting rules (terraform/monitoring) against a running system.

`check_metrics` scrapes every /metrics of the system and checks that each
metric the rules and the Grafana dashboard read is one of them.
`check_alerts` starts a real Prometheus (Debian's prometheus package)
scraping the same targets with the rules loaded and evaluates each
alert's expression: a healthy system matches none (apart from the alerts
about the machine's own disk and memory, which say more about the test
machine than about Tribune); then one broker is stopped and the node-down
expression names it while the route and leadership expressions stay
quiet: the other two nodes still route to each other and elect leaders.
Before that, `check_preview` draws the dashboard as `make run` serves it
(terraform/monitoring/preview) in headless Chromium from that Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "terraform" / "monitoring"
RULES = MONITORING / "prometheus" / "tribune-alerts.yml"
DASHBOARD = MONITORING / "grafana" / "tribune-cluster.json"
METRIC = re.compile(r"\btribune_[a-z0-9_]+")
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
# Alerts about the host (its disk, its memory): a CI machine's own state.
HOST_ALERTS = {"TribuneJetStreamDiskLow", "TribuneJetStreamDiskFull", "TribuneMemoryHigh",
               "TribuneHostMemoryLow"}
DEADLINE = 120.0

Targets = dict[str, list[tuple[str, str]]]  # job -> [(instance, host:port)]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def _families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def _used_metrics() -> set[str]:
    doc = yaml.safe_load(RULES.read_text())
    texts = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    dash = json.loads(DASHBOARD.read_text())
    texts += [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    return {m for t in texts for m in METRIC.findall(t)}


def check_metrics(targets: Targets) -> None:
    """Every metric the rules and the dashboard read is on some /metrics."""
    families: set[str] = set()
    for endpoints in targets.values():
        for _, addr in endpoints:
            families |= _families(_get(f"http://{addr}/metrics"))

    def family(name: str) -> str:
        for part in HISTOGRAM_PARTS:
            if name.endswith(part) and name[: -len(part)] in families:
                return name[: -len(part)]
        return name

    missing = sorted(n for n in _used_metrics() if family(n) not in families)
    assert not missing, f"read by the rules or dashboard, on no /metrics: {missing}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def query(self, expr: str) -> list[dict]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(_get(url))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait(self, what: str, check: Callable[[], object]) -> object:
        end = time.monotonic() + DEADLINE
        last: object = None
        while time.monotonic() < end:
            try:
                last = check()
                if last:
                    return last
            except (OSError, ValueError) as e:
                last = e
            time.sleep(1)
        pytest.fail(f"gave up waiting for {what}: {last}")


PREVIEW = MONITORING / "preview"


def check_preview(prometheus: str, work: Path) -> None:
    """The dashboard as `make run` shows it (preview/, which draws the
    Grafana JSON's panels from Prometheus), in headless Chromium: every
    panel drawn from a query that answered, none with an error."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("TRIBUNE_REQUIRE_PROMETHEUS"):
            pytest.fail("chromium not found (apt-get install chromium)")
        print("live_alerts: no chromium; the dashboard preview was not drawn")
        return
    site = work / "dashboard"
    site.mkdir()
    for f in (PREVIEW / "index.html", PREVIEW / "preview.js", DASHBOARD):
        shutil.copy(f, site / f.name)
    port = _free_port()
    server = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site),
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/index.html")
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/index.html?prometheus={prometheus}&minutes=5"
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1440,2200",
                              "--virtual-time-budget=20000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120).stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert 'data-ready="1"' in dom, dom[-2000:]
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    tags = re.findall(r'<div class="panel"[^>]*>', dom)
    drawn = [t for t in tags if 'data-drawn="1"' in t]
    errors = re.findall(r'<div class="error">([^<]*)</div>', dom)
    assert not errors, errors
    assert len(tags) == len(drawn) == len(panels), (len(tags), len(drawn), len(panels))


def _prometheus_bin() -> str | None:
    path = shutil.which("prometheus")
    if path is None and os.environ.get("TRIBUNE_REQUIRE_PROMETHEUS"):
        pytest.fail("prometheus not found (apt-get install prometheus)")
    return path


def check_alerts(targets: Targets, stop_broker: Callable[[str], None], work: Path,
                 start: Callable[[str, list[str]], subprocess.Popen]) -> bool:
    """Evaluate the rules on the live system (see the module's doc). False
    (after saying so) where no prometheus binary is installed."""
    binary = _prometheus_bin()
    if binary is None:
        print("live_alerts: no prometheus binary; the rules were not evaluated live")
        return False
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [
                {"targets": [addr], "labels": {"instance": inst}} for inst, addr in endpoints]}
            for job, endpoints in targets.items()
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    start("prometheus", [binary, f"--config.file={work / 'prometheus.yml'}",
                         f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"])
    prom = Prometheus(f"http://127.0.0.1:{port}")
    expected = sum(len(e) for e in targets.values())

    def all_up() -> bool:
        up = prom.query("up == 1")
        return len(up) == expected

    prom.wait(f"{expected} targets up", all_up)
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r["expr"] for r in rules}
    pending = {r["alert"] for r in rules if r.get("for")}

    # Counters need two samples in their windows; then a healthy system
    # matches no alert's expression. An alert with a pending period may
    # match for an instant (a replica a few entries behind under the
    # feed's writes, on a loaded machine): it must clear within the
    # deadline, far inside its period. One without must never match.
    time.sleep(3)
    checked = {name: expr for name, expr in alerts.items() if name not in HOST_ALERTS}
    deadline = time.time() + DEADLINE
    while True:
        firing = {name: prom.query(expr) for name, expr in checked.items()}
        firing = {k: v for k, v in firing.items() if v}
        instant = {k: v for k, v in firing.items() if k not in pending}
        assert not instant, f"a healthy system matches alert expressions: {json.dumps(instant)[:3000]}"
        if not firing:
            break
        assert time.time() < deadline, \
            f"a healthy system keeps matching alert expressions: {json.dumps(firing)[:3000]}"
        # What cleared stays checked: the next round asks only the rest.
        checked = {k: checked[k] for k in firing}
        time.sleep(1)
    for name in HOST_ALERTS:
        prom.query(alerts[name])  # evaluates, whatever the machine's state

    check_preview(prom.base, work)

    # One broker stopped: node down names it; the two left route to each
    # other and lead every stream.
    victim = targets["tribune-broker"][-1][0]
    stop_broker(victim)

    def node_down() -> list[str]:
        return [r["metric"]["instance"] for r in prom.query(alerts["TribuneNodeDown"])]

    assert prom.wait("the node-down expression to name the stopped broker", node_down) == [victim]

    def settled() -> bool:
        quiet = ("TribuneRouteMissing", "TribuneJetStreamMetaLeaderless",
                 "TribuneJetStreamStreamLeaderless")
        return all(not prom.query(alerts[name]) for name in quiet)

    prom.wait("routes and leaders to settle on the two nodes left", settled)
    return True
