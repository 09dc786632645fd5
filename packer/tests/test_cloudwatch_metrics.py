"""tribune-cloudwatch-metrics, what the CloudWatch alarms watch: parsing a
scrape, what each service's metrics become, counters as increases, and
which services publish at all. The mission-system test
(test_rendered_cluster.py) runs it against the real binaries and
LocalStack's CloudWatch; terraform/tests/test_static.py checks the alarms
read only what it publishes."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

FILES = Path(__file__).resolve().parents[1] / "files"


def load():
    if str(FILES) not in sys.path:
        sys.path.insert(0, str(FILES))
    loader = SourceFileLoader("tribune_cloudwatch_metrics", str(FILES / "tribune-cloudwatch-metrics"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


cw = load()

BROKER = """\
# HELP tribune_routes Cluster routes currently connected.
# TYPE tribune_routes gauge
tribune_routes 2
tribune_connections 7
tribune_slow_consumers_total 3
tribune_auth_errors_total 10
tribune_resident_memory_bytes 200
tribune_system_memory_bytes 1000
tribune_system_memory_available_bytes 500
tribune_jetstream_enabled 1
tribune_jetstream_store_filesystem_size_bytes 100
tribune_jetstream_store_filesystem_free_bytes 40
tribune_jetstream_meta_leaderless 0
tribune_jetstream_stream_leaderless{account="SPORTS",stream="SPORTS"} 0
tribune_jetstream_stream_leaderless{account="A \\"q\\"",stream="S2"} 1
tribune_jetstream_stream_replica_current{account="SPORTS",stream="SPORTS",replica="b"} 1
tribune_jetstream_stream_replica_current{account="SPORTS",stream="SPORTS",replica="c"} 0
tribune_jetstream_stream_replica_lag{account="SPORTS",stream="SPORTS",replica="c"} 42
"""
AUTH = """\
tribune_auth_nats_connected 1
tribune_auth_requests_total{result="allow"} 90
tribune_auth_requests_total{result="deny"} 8
tribune_auth_requests_total{result="invalid"} 2
"""
BRIDGE = """\
tribune_bridge_standby 0
tribune_bridge_mqtt_connected 1
tribune_bridge_nats_connected 1
tribune_bridge_dead_lettered_total 0
tribune_bridge_sport_lag_seconds_sum{sport="football"} 1.5
tribune_bridge_sport_lag_seconds_count{sport="football"} 10
tribune_bridge_sport_lag_seconds_sum{sport="tennis"} 0.5
tribune_bridge_sport_lag_seconds_count{sport="tennis"} 10
"""


def test_parse_reads_labels_and_values() -> None:
    s = cw.parse(BROKER)
    assert s["tribune_routes"] == [({}, 2.0)]
    assert ({"account": 'A "q"', "stream": "S2"}, 1.0) in s["tribune_jetstream_stream_leaderless"]
    assert cw.total(s, "tribune_jetstream_stream_leaderless", stream="S2") == 1.0
    assert cw.total(s, "nope") is None
    assert cw.parse("garbage line\nx NaN-ish\n# only a comment") == {}


def test_a_healthy_node_and_its_gauges() -> None:
    snap = cw.snapshot({"Broker": cw.parse(BROKER), "Auth": cw.parse(AUTH), "Bridge": cw.parse(BRIDGE)})
    g = snap.gauges
    assert (g["BrokerUp"], g["AuthUp"], g["BridgeUp"]) == (1.0, 1.0, 1.0)
    assert (g["Routes"], g["MemoryRatio"], g["HostMemoryAvailableRatio"], g["StoreFreeRatio"]) == (2, 0.2, 0.5, 0.4)
    assert (g["MetaLeaderless"], g["LeaderlessStreams"], g["ReplicasBehind"], g["ReplicaLagMax"]) == (0, 1, 1, 42)
    assert (g["BridgeConfigured"], g["BridgeIngesting"], g["AuthNatsConnected"]) == (1, 1, 1)
    assert snap.counters == {"SlowConsumers": 3, "AuthErrors": 10, "AuthRequests": 100, "AuthRefused": 10,
                             "BridgeDeadLettered": 0, "BridgeLagSeconds": 2.0, "BridgeLagUpdates": 20}
    assert set(g) | set(snap.counters) - {"BridgeLagSeconds", "BridgeLagUpdates"} <= cw.PUBLISHED


def test_counters_publish_as_increases_and_survive_a_restart() -> None:
    first = cw.snapshot({"Broker": cw.parse(BROKER), "Bridge": cw.parse(BRIDGE)})
    assert "SlowConsumers" not in cw.datums(first, cw.increases(None, first))
    later = cw.snapshot({
        "Broker": cw.parse(BROKER.replace("tribune_slow_consumers_total 3", "tribune_slow_consumers_total 5")
                           .replace("tribune_auth_errors_total 10", "tribune_auth_errors_total 4")),
        "Bridge": cw.parse(BRIDGE.replace('sum{sport="football"} 1.5', 'sum{sport="football"} 7.5')
                           .replace('count{sport="football"} 10', 'count{sport="football"} 13')),
    })
    values = cw.datums(later, cw.increases(first, later))
    assert values["SlowConsumers"] == 2
    assert values["AuthErrors"] == 4  # the broker restarted: its counter began again
    assert values["BridgeLagMeanSeconds"] == 2.0  # 6s over 3 updates
    assert set(values) <= cw.PUBLISHED


def test_a_configured_service_that_does_not_answer_is_down(tmp_path: Path) -> None:
    (tmp_path / "bridge.conf").write_text("")
    endpoints = {
        "Broker": ("http://127.0.0.1:9/metrics", None),
        "Auth": ("http://127.0.0.1:9/metrics", "auth.toml"),
        "Bridge": ("http://127.0.0.1:9/metrics", "bridge.conf"),
    }
    scrapes = cw.scrape_node(tmp_path, endpoints)
    assert scrapes == {"Broker": None, "Bridge": None}  # no auth.toml: not meant to run
    g = cw.snapshot(scrapes).gauges
    assert g == {"BrokerUp": 0.0, "BridgeUp": 0.0, "BridgeConfigured": 1.0, "BridgeIngesting": 0.0}
    # Without bridge.conf: no bridge here, said so for the cluster-wide alarm.
    (tmp_path / "bridge.conf").unlink()
    g = cw.snapshot(cw.scrape_node(tmp_path, endpoints)).gauges
    assert g == {"BrokerUp": 0.0, "BridgeConfigured": 0.0, "BridgeIngesting": 0.0}


def test_publish_batches_with_the_cluster_and_node(monkeypatch) -> None:
    calls = []

    class Client:
        def put_metric_data(self, **kw):
            calls.append(kw)

    values = {f"M{i}": float(i) for i in range(698)} | {"BridgeIngesting": 1.0, "BridgeConfigured": 1.0}
    cw.publish(Client(), "prod", "eu-west-1a", values)
    assert [len(c["MetricData"]) for c in calls] == [500, 202]
    d = calls[0]["MetricData"][0]
    assert calls[0]["Namespace"] == "Tribune"
    assert d["Dimensions"] == [{"Name": "Cluster", "Value": "prod"}, {"Name": "Node", "Value": "eu-west-1a"}]
    # The cluster-wide inputs again, with the Cluster dimension alone.
    wide = [x for x in calls[1]["MetricData"] if len(x["Dimensions"]) == 1]
    assert sorted(x["MetricName"] for x in wide) == ["BridgeConfigured", "BridgeIngesting"]
    assert wide[0]["Dimensions"] == [{"Name": "Cluster", "Value": "prod"}]


def test_a_failed_scrape_keeps_the_counters_baseline() -> None:
    first = cw.snapshot({"Broker": cw.parse(BROKER)})
    down = cw.snapshot({"Broker": None})
    base = cw.carry(first, down)
    assert base.counters["SlowConsumers"] == 3 and base.gauges["BrokerUp"] == 0
    back = cw.snapshot({"Broker": cw.parse(BROKER.replace("tribune_slow_consumers_total 3",
                                                          "tribune_slow_consumers_total 8"))})
    assert cw.datums(back, cw.increases(base, back))["SlowConsumers"] == 5
