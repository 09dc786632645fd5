"""The shipped alerting rules and Grafana dashboard (terraform/monitoring).

- The rules pass `promtool check rules` and their unit tests
  (`promtool test rules`, tribune-alerts.test.yml).
- The dashboard is a Grafana dashboard JSON an import accepts: its inputs,
  datasource variable, unique panel ids, panels inside the 24-column grid
  without overlapping, and every query valid PromQL (promtool checks them
  as recording rules, with Grafana's $__rate_interval filled in).
- Every metric the rules and the dashboard read is one the binaries
  declare; packer/tests/test_rendered_cluster.py checks the same against
  the /metrics of a running mission system and evaluates the rules there.

promtool comes from Debian's prometheus package (.ci/run installs it).
Outside CI a machine without it skips the promtool parts, saying so;
TRIBUNE_REQUIRE_PROMETHEUS=1 makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

MONITORING = REPO / "terraform" / "monitoring"
RULES = MONITORING / "prometheus" / "tribune-alerts.yml"
RULE_TESTS = MONITORING / "prometheus" / "tribune-alerts.test.yml"
DASHBOARD = MONITORING / "grafana" / "tribune-cluster.json"

# What the alerts must cover (the list), by alert name.
REQUIRED_ALERTS = {
    "TribuneNodeDown", "TribuneRouteMissing", "TribuneSlowConsumers",
    "TribuneJetStreamReplicaLagging", "TribuneJetStreamStreamLeaderless",
    "TribuneJetStreamMetaLeaderless", "TribuneAuthRejectionsHigh", "TribuneAuthFailures",
    "TribuneBridgeLagHigh", "TribuneBridgeDeadLetters", "TribuneJetStreamDiskLow",
    "TribuneJetStreamDiskFull", "TribuneMemoryHigh",
}

METRIC = re.compile(r"\btribune_[a-z0-9_]+")
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("TRIBUNE_REQUIRE_PROMETHEUS"):
            pytest.fail("promtool not found (apt-get install prometheus)")
        pytest.skip("promtool not found (apt-get install prometheus)")
    return path


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict]:
    out = []
    for p in dashboard()["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]


def declared_metrics() -> set[str]:
    """Metric families the three crates write: the names in their sources
    (the exposition text is built from string literals)."""
    names: set[str] = set()
    for crate in ("broker", "auth", "bridge"):
        for src in (REPO / crate / "src").rglob("*.rs"):
            names.update(METRIC.findall(src.read_text()))
    return names


def family(name: str, declared: set[str]) -> str:
    """The family a series name belongs to (a histogram's parts to it)."""
    for part in HISTOGRAM_PARTS:
        if name.endswith(part) and name[: -len(part)] in declared:
            return name[: -len(part)]
    return name


def test_rules_pass_promtool_check() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout, out.stdout


def test_rules_unit_tests_pass() -> None:
    out = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                         cwd=RULE_TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout, out.stdout


def test_every_alert_is_labelled_explained_and_tested() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)), names
    assert REQUIRED_ALERTS <= set(names), REQUIRED_ALERTS - set(names)
    for r in rules():
        assert r["labels"]["severity"] in ("warning", "critical"), r
        assert r["annotations"]["summary"], r
    # Each alert has a unit test in which it fires.
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in tests for c in t.get("alert_rule_test", []) if c.get("exp_alerts")}
    assert set(names) - fired <= {
        # Unit-tested through their siblings' shape, evaluated live in the
        # mission-system test: up == 0 and a connected-flag at 0.
        "TribuneAuthServiceDown", "TribuneAuthDisconnected", "TribuneBridgeDown",
        "TribuneBridgeNatsDisconnected", "TribuneHostMemoryLow", "TribuneMemoryHigh",
        "TribuneJetStreamReplicaUnreachable", "TribuneJetStreamStorageNearLimit", "TribuneAuthJwksStale",
    }, set(names) - fired


def test_rules_and_dashboard_read_only_metrics_the_binaries_write() -> None:
    declared = declared_metrics()
    used = set()
    for text in [r["expr"] for r in rules()] + dashboard_exprs():
        used.update(METRIC.findall(text))
    missing = {n for n in used if family(n, declared) not in declared}
    assert not missing, f"not written by any binary: {sorted(missing)}"


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    d = dashboard()
    assert d["uid"] == "tribune-cluster" and d["title"]
    assert isinstance(d["schemaVersion"], int)
    # Import asks for a Prometheus datasource and binds ${datasource} to it.
    assert [i["pluginId"] for i in d["__inputs"]] == ["prometheus"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in ("stat", "timeseries"), p["type"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert t["refId"] and t["expr"], p["title"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    tool = promtool()
    records = [
        {"record": f"tribune:dashboard_query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    out = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
