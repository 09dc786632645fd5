"""The node configuration a deployment renders is the mission's system.

`make secrets`' own command creates the secrets in LocalStack's Secrets
Manager (and the two placeholders are filled in as an operator does);
render-config renders three nodes from them (a fake IMDSv2 per
node, as in test_packer.py); `tribune-broker -t` accepts each broker.conf
as rendered. Then a 3-node cluster starts on loopback from exactly those
files, with only addresses substituted (listen ports, the data directory,
EC2 discovery replaced by the same peers as static routes carrying the
same route credentials, the provider's URL pointed at a local simulator),
with tribune-auth and tribune-bridge on every node from their rendered
configs. Checked: an internal NKEY client is accepted and reads the feed,
a client without credentials is refused, a web user with a token from the
configured identity provider is admitted over secure WebSocket and
receives a bridge update from the simulator, and only the sports its
token grants. The web-idp secret also lists a web application (`apps`):
a token for its audience lands in its own account, which reads the same
feed (live and direct get); a token for no known audience is refused.
Last, the shipped alerting rules and dashboard read only metrics these
binaries write, and a real Prometheus scraping them evaluates the rules:
quiet while healthy, node-down naming a stopped broker (live_alerts.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.request
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from test_packer import LOCALSTACK, _broker_bin, _instance, _localstack_sm, _render, imds  # noqa: F401

from node_secrets import AUTH_BIN, BRIDGE, HS256_AUDIENCE as AUDIENCE, HS256_ISSUER as ISSUER  # noqa: E402
from node_secrets import bootstrapped  # noqa: E402
import live_alerts  # noqa: E402

AUTH = AUTH_BIN
# A web application besides WEB, as `make web-app APP=partners
# AUDIENCES=partners-web` puts it into the web-idp secret.
PARTNERS = {"name": "partners", "account": "PARTNERS", "audiences": ["partners-web"]}
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _token(secret: str, sports: list[str], audience: str = AUDIENCE, sub: str = "web-user-1") -> str:
    """An HS256 token as the identity provider would issue it."""
    def b64(o: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    now = int(time.time())
    signing_input = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(
        {"iss": ISSUER, "aud": audience, "sub": sub, "iat": now, "exp": now + 600, "sports": sports})
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _sub(text: str, pattern: str, repl: str) -> str:
    new, n = re.subn(pattern, repl, text, flags=re.M | re.S)
    assert n == 1, f"expected one match of {pattern!r}"
    return new


class Node:
    def __init__(self, i: int, etc: Path):
        self.i, self.etc = i, etc
        self.client, self.ws, self.mon, self.route = (_free_port() for _ in range(4))
        self.auth_metrics, self.bridge_http = _free_port(), _free_port()


def _localize(nodes: list[Node], data: Path, route_user: str, route_password: str, mqtt_port: int) -> None:
    """Addresses only: everything else stays as rendered."""
    for n in nodes:
        conf = (n.etc / "broker.conf").read_text()
        conf = _sub(conf, r"^listen: 0\.0\.0\.0:4222$", f"listen: 127.0.0.1:{n.client}")
        conf = _sub(conf, r"^http: 0\.0\.0\.0:8222$", f"http: 127.0.0.1:{n.mon}")
        conf = _sub(conf, r"^client_advertise: .*?$", "")
        # The websocket block's advertise line (ws_connect_urls), like
        # client_advertise: the node's public address means nothing here.
        conf = _sub(conf, r"^  advertise: .*?$", "")
        conf = _sub(conf, r"listen: 0\.0\.0\.0:443$", f"listen: 127.0.0.1:{n.ws}")
        conf = _sub(conf, r"listen: 0\.0\.0\.0:6222$", f"listen: 127.0.0.1:{n.route}")
        conf = _sub(conf, r'store_dir: "/var/lib/tribune/jetstream"', f'store_dir: "{data / f"js{n.i}"}"')
        routes = ", ".join(f"nats-route://{route_user}:{route_password}@127.0.0.1:{m.route}" for m in nodes)
        conf = _sub(conf, r"^  discovery \{.*?^  \}\n", f"  routes: [ {routes} ]\n")
        (n.etc / "broker.conf").write_text(conf)
        auth = (n.etc / "auth.toml").read_text()
        auth = _sub(auth, r'tls://localhost:4222', f"tls://localhost:{n.client}")
        auth = _sub(auth, r'listen = "127\.0\.0\.1:9464"', f'listen = "127.0.0.1:{n.auth_metrics}"')
        (n.etc / "auth.toml").write_text(auth)
        bridge = (n.etc / "bridge.conf").read_text()
        bridge = _sub(bridge, r'^url = "mqtts://[^"]*"$', f'url = "mqtt://127.0.0.1:{mqtt_port}"\nallow_plaintext = true')
        bridge = _sub(bridge, r'tls://localhost:4222', f"tls://localhost:{n.client}")
        bridge = _sub(bridge, r'listen = "127\.0\.0\.1:9465"', f'listen = "127.0.0.1:{n.bridge_http}"')
        (n.etc / "bridge.conf").write_text(bridge)


def _wait_port(port: int, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {port}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in reversed(started):
        p.terminate()
    for p in started:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def _start(procs: list, logs: Path, name: str, cmd: list[str]) -> tuple[subprocess.Popen, Path]:
    log = logs / f"{name}.log"
    p = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                         env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"))
    procs.append(p)
    return p, log


def test_rendered_configs_run_the_mission_system(tmp_path: Path, imds, procs) -> None:  # noqa: F811
    for binary in (BRIDGE, AUTH):
        assert binary.exists(), f"{binary} missing: run `cargo build --workspace`"
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    sm = _localstack_sm()
    with bootstrapped(sm, cluster, LOCALSTACK, ["localhost"], web_idp={"apps": [PARTNERS]}) as material:
        nodes = []
        for i, az in enumerate(AZS, start=1):
            _instance(data, cluster)
            data["meta-data/placement/availability-zone"] = az
            data["meta-data/local-ipv4"] = f"10.42.{i}.17"
            node_tmp = tmp_path / f"node{i}"
            node_tmp.mkdir()
            proc = _render(node_tmp, url)
            assert proc.returncode == 0, proc.stderr
            etc = node_tmp / "etc"
            for f in ("broker.conf", "auth.toml", "bridge.conf", "keys/bridge.nk", "keys/callout-xkey.nk"):
                assert (etc / f).stat().st_mode & 0o777 == 0o640, f
            conf = (etc / "broker.conf").read_text()
            assert "@@" not in conf and "auth_callout" in conf and "system_account: SYS" in conf
            assert "\n  PARTNERS: {" in conf and '\naccount = "PARTNERS"' in (etc / "auth.toml").read_text()
            # No secret in the broker's config but the route password it must send.
            for field in ("bridge_seed", "services_seed", "auth_service_seed", "sys_user_seed"):
                assert material["nkeys"][field] not in conf
            assert material["callout"]["issuer_seed"] not in conf
            check = subprocess.run([str(_broker_bin()), "-c", str(etc / "broker.conf"), "-t"],
                                   capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
            nodes.append(Node(i, etc))

        mqtt_port = _free_port()
        nk = material["nkeys"]
        _localize(nodes, tmp_path, nk["route_user"], nk["route_password"], mqtt_port)
        logs = tmp_path / "logs"
        logs.mkdir()
        brokers = {}
        for n in nodes:
            p, log = _start(procs, logs, f"broker{n.i}", [str(_broker_bin()), "-c", str(n.etc / "broker.conf")])
            _wait_port(n.client, f"broker{n.i}", p, log)
            brokers[f"node{n.i}"] = p
        for n in nodes:
            p, log = _start(procs, logs, f"auth{n.i}", [str(AUTH), "--config", str(n.etc / "auth.toml")])
            _wait_port(n.auth_metrics, f"auth{n.i}", p, log)
        p, log = _start(procs, logs, "simulator",
                        [str(BRIDGE), "simulate", "--embedded-broker", f"127.0.0.1:{mqtt_port}", "--rate", "20"])
        _wait_port(mqtt_port, "simulator", p, log)
        for n in nodes:
            check = subprocess.run([str(BRIDGE), "run", "--config", str(n.etc / "bridge.conf"), "--check"],
                                   capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
            p, log = _start(procs, logs, f"bridge{n.i}", [str(BRIDGE), "run", "--config", str(n.etc / "bridge.conf")])
            _wait_port(n.bridge_http, f"bridge{n.i}", p, log)

        ca = nodes[0].etc / "tls" / "ca.pem"
        hs256 = material["web-idp"]["hs256_secret"]
        try:
            asyncio.run(_clients(nodes, ca, nk["services_seed"], _token(hs256, ["football"])))
            asyncio.run(_app_clients(nodes, ca, hs256))
            # The shipped alerts and dashboard read what these binaries
            # write, and a real Prometheus evaluates the rules on them.
            targets = {
                "tribune-broker": [(f"node{n.i}", f"127.0.0.1:{n.mon}") for n in nodes],
                "tribune-auth": [(f"node{n.i}", f"127.0.0.1:{n.auth_metrics}") for n in nodes],
                "tribune-bridge": [(f"node{n.i}", f"127.0.0.1:{n.bridge_http}") for n in nodes],
            }
            live_alerts.check_metrics(targets)
            _check_cloudwatch_metrics(nodes, cluster)

            def stop_broker(instance: str) -> None:
                brokers[instance].terminate()
                brokers[instance].wait(timeout=30)

            live_alerts.check_alerts(targets, stop_broker, tmp_path,
                                     lambda name, cmd: _start(procs, logs, name, cmd)[0])
        except BaseException as e:
            # What each part of the system said, for a failure seen only on
            # a loaded CI machine.
            # The failure goes last as well: a CI report keeps the tail.
            tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                               for log in sorted(logs.glob("*.log")))
            where = "".join(traceback.format_exception(e)[-6:])
            raise AssertionError(f"{e!r}\n{tails}\n--- the failure\n{where}") from e


def _check_cloudwatch_metrics(nodes: list[Node], cluster: str) -> None:
    """What each node's tribune-cloudwatch-metrics publishes from these
    binaries, put into LocalStack's CloudWatch and read back: every
    broker up with two routes, JetStream led, exactly one bridge
    ingesting, every name one the alarms may read."""
    import boto3
    from test_cloudwatch_metrics import load

    cw = load()
    client = boto3.client("cloudwatch", endpoint_url=LOCALSTACK, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    def publish_all() -> dict[str, dict[str, float]]:
        published: dict[str, dict[str, float]] = {}
        for n, az in zip(nodes, AZS):
            endpoints = {
                "Broker": (f"http://127.0.0.1:{n.mon}/metrics", None),
                "Auth": (f"http://127.0.0.1:{n.auth_metrics}/metrics", "auth.toml"),
                "Bridge": (f"http://127.0.0.1:{n.bridge_http}/metrics", "bridge.conf"),
            }
            before = cw.snapshot(cw.scrape_node(n.etc, endpoints))
            time.sleep(2)
            now = cw.snapshot(cw.scrape_node(n.etc, endpoints))
            values = cw.datums(now, cw.increases(before, now))
            cw.publish(client, cluster, az, values)
            published[az] = values
        return published

    def settled(published: dict[str, dict[str, float]]) -> bool:
        return all((v.get("MetaLeaderless"), v.get("LeaderlessStreams"), v.get("ReplicasBehind")) == (0, 0, 0)
                   for v in published.values())

    # A replica a few entries behind at the instant of a scrape is normal
    # under the feed's writes (the alarm wants 5 minutes of it): sample
    # again until one round sees every replica current, within a guard.
    published = publish_all()
    guard = time.time() + 90
    while not settled(published) and time.time() < guard:
        time.sleep(1)
        published = publish_all()
    for az, v in published.items():
        assert set(v) <= cw.PUBLISHED, set(v) - cw.PUBLISHED
        assert (v["BrokerUp"], v["AuthUp"], v["BridgeUp"], v["Routes"]) == (1, 1, 1, 2), (az, v)
        assert (v["MetaLeaderless"], v["LeaderlessStreams"], v["ReplicasBehind"]) == (0, 0, 0), (az, v)
        assert v["AuthNatsConnected"] == v["BridgeNatsConnected"] == v["BridgeConfigured"] == 1, (az, v)
        assert 0 < v["StoreFreeRatio"] <= 1 and 0 < v["MemoryRatio"] < 1, (az, v)
    assert sum(v["BridgeIngesting"] for v in published.values()) == 1, published
    seen = set().union(*published.values())
    # The feed runs at 20 updates a second: the lease holder saw some.
    assert cw.PUBLISHED - seen == set(), cw.PUBLISHED - seen
    # As stored: the alarms' view of each node.
    end = time.time() + 60
    for az in AZS:
        while True:
            stats = client.get_metric_statistics(
                Namespace="Tribune", MetricName="BrokerUp", Statistics=["Minimum"], Period=60,
                Dimensions=[{"Name": "Cluster", "Value": cluster}, {"Name": "Node", "Value": az}],
                StartTime=time.time() - 600, EndTime=time.time() + 60)["Datapoints"]
            if stats or time.time() > end:
                break
            time.sleep(1)
        assert [d["Minimum"] for d in stats] == [1.0], (az, stats)


def _connz_accounts(node: Node) -> dict[str, str]:
    """Connection name -> account, from the node's /connz?auth=1."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.mon}/connz?auth=1&limit=1024", timeout=5) as r:
        conns = json.loads(r.read())["connections"]
    return {c["name"]: c.get("account", "") for c in conns if c.get("name")}


async def _app_clients(nodes: list[Node], ca: Path, hs256: str) -> None:
    """Web users of WEB and of the partners application, side by side over
    wss://: each lands in its own account (by the token's audience) and
    reads the feed through that account's imports; an unknown audience is
    refused."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout

    tls = ssl.create_default_context(cafile=str(ca))
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    # A token for an audience no account is configured for: refused.
    with pytest.raises(Exception) as refused:
        await nats.connect(f"wss://localhost:{nodes[1].ws}", tls=tls, allow_reconnect=False, connect_timeout=20,
                           token=_token(hs256, ["football"], audience="nobody-web"), error_cb=on_error)
    assert "authorization violation" in (str(refused.value) + " ".join(errors)).lower(), refused.value

    errors.clear()
    node = nodes[1]
    web = await nats.connect(f"wss://localhost:{node.ws}", tls=tls, token=_token(hs256, ["football"]),
                             name="web-user", connect_timeout=20, error_cb=on_error)
    # The private reply prefix tribune-auth grants (user_inboxes): its id
    # from iss and sub, as the page computes it.
    inbox = "_INBOX." + hashlib.sha256(f"{ISSUER}\npartner-user-1".encode()).digest()[:16].hex()
    partner = await nats.connect(f"wss://localhost:{node.ws}", tls=tls, connect_timeout=20, error_cb=on_error,
                                 token=_token(hs256, ["football"], audience="partners-web", sub="partner-user-1"),
                                 name="partner-user", inbox_prefix=inbox)
    try:
        assert {k: v for k, v in _connz_accounts(node).items() if k in ("web-user", "partner-user")} == {
            "web-user": "WEB", "partner-user": "PARTNERS"}
        web_sub = await web.subscribe("sports.football.*")
        partner_sub = await partner.subscribe("sports.football.*")
        for sub in (web_sub, partner_sub):
            msg = await sub.next_msg(timeout=120)
            assert msg.subject.startswith("sports.football.") and json.loads(msg.data)["sport"] == "football"
        # The direct get through the application account's service import:
        # the latest state of the match just seen.
        reply = await partner.request("$JS.API.DIRECT.GET.SPORTS", json.dumps({"last_by_subj": msg.subject}).encode(),
                                      timeout=10)
        assert reply.headers and reply.headers.get("Nats-Subject") == msg.subject, reply.headers
        assert json.loads(reply.data)["sport"] == "football"
        # The application's claim rule is WEB's: not granted, not delivered.
        denied = await partner.subscribe("sports.basketball.*")
        await partner.flush(timeout=5)
        with pytest.raises(NatsTimeout):
            await denied.next_msg(timeout=3)
        assert any("permissions violation for subscription" in e.lower() for e in errors), errors
    finally:
        await partner.close()
        await web.close()


async def _clients(nodes: list[Node], ca: Path, services_seed: str, token: str) -> None:
    import nats
    from nats.errors import TimeoutError as NatsTimeout

    tls = ssl.create_default_context(cafile=str(ca))
    seed_file = ca.parent.parent / "services.nk.test"
    seed_file.write_text(services_seed)
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    # A client with no credentials at all: asked of the callout, refused.
    with pytest.raises(Exception) as refused:
        await nats.connect(f"tls://localhost:{nodes[1].client}", tls=tls, allow_reconnect=False,
                           connect_timeout=10, error_cb=on_error)
    assert "authorization violation" in (str(refused.value) + " ".join(errors)).lower(), refused.value

    # An internal service (NKEY, SPORTS account): reads the feed, stored and
    # live, and may not write into it.
    errors.clear()
    try:
        svc = await nats.connect(f"tls://localhost:{nodes[2].client}", tls=tls, nkeys_seed=str(seed_file),
                                 connect_timeout=10, error_cb=on_error)
    except Exception as e:
        # nats-py ends with NoServersError; what each attempt hit is in errors.
        raise AssertionError(f"the services NKEY client could not connect to node {nodes[2].i}: {e!r}; "
                             f"attempts: {errors[-5:]}") from e
    try:
        live = await svc.subscribe("sports.>")
        msg = await live.next_msg(timeout=120)
        assert msg.subject.startswith("sports.")
        js = svc.jetstream()
        for _ in range(240):
            info = await js.stream_info("SPORTS")
            if info.state.messages > 0:
                break
            await asyncio.sleep(0.5)
        assert info.config.num_replicas == 3 and info.state.messages > 0, info.state
        forged = await svc.subscribe("sports.forged.x")
        await svc.publish("sports.forged.x", b"{}")
        await svc.flush(timeout=5)
        with pytest.raises(NatsTimeout):
            await forged.next_msg(timeout=3)
        assert any("permissions violation for publish" in e.lower() for e in errors), errors
    finally:
        await svc.close()

    # A web user: token in CONNECT over wss://, admitted by tribune-auth.
    errors.clear()
    web = await nats.connect(f"wss://localhost:{nodes[0].ws}", tls=tls, token=token, connect_timeout=20,
                             error_cb=on_error)
    try:
        sub = await web.subscribe("sports.football.*")
        msg = await sub.next_msg(timeout=120)
        state = json.loads(msg.data)
        assert msg.subject.startswith("sports.football.") and state["sport"] == "football"
        # Not granted by the token: basketball.
        denied = await web.subscribe("sports.basketball.*")
        await web.flush(timeout=5)
        with pytest.raises(NatsTimeout):
            await denied.next_msg(timeout=3)
        assert any("permissions violation for subscription" in e.lower() for e in errors), errors
    finally:
        await web.close()
