"""The system account's requests and events, from nats-py, on a three-node
nats-server cluster and on a three-node tribune-broker cluster with the same
configuration (nats_cluster.Cluster): the same scenario runs on both, and
what must agree is compared.

What the scenario gathers (`facts`), each as a value both servers must give:
- `$SYS.REQ.SERVER.PING` (how `nats server list` finds the cluster): one
  STATSZ per node, its names, connection counts, routes and active servers;
- `$SYS.REQ.SERVER.PING.<KIND>` for IDZ, VARZ, CONNZ (of one account),
  SUBSZ, ROUTEZ, JSZ, HEALTHZ, and `$SYS.REQ.SERVER.<id>.<KIND>` for one node;
- a request filtered to one server by name, and one no server matches;
- an endpoint's own error (an unknown sort) as nats-server's error object;
- `$SYS.SERVER.<id>.STATSZ` heartbeats from every node, heard on one;
- `$SYS.ACCOUNT.APP.CONNECT`, `.DISCONNECT` and `.SERVER.CONNS` of a client
  on another node;
- one account's CONNZ, SUBSZ, INFO, JSZ and STATZ, `PING.STATZ`, ACCOUNTZ,
  and `/accountz` and `/accstatz` over HTTP;
- a JetStream advisory (a consumer of an R3 stream paused through node-c),
  heard by the account's subscriber on node-a;
- `$SYS.SERVER.<id>.SHUTDOWN` from a node stopped with SIGTERM.

A second test asks `$SYS.REQ.USER.INFO` as users with and without
permissions, and as one not allowed to publish it, on one server of each.

Then the JSON key sets of each answer are compared. Tribune leaves out a few
fields nats-server has (INTENDED_MISSING, each with its reason); any other
missing key fails.

Timeouts are guards against hanging, never assertions about speed.
"""

import asyncio
import json
import signal
import time
from datetime import datetime, timedelta, timezone

import nats
from nats_cluster import CLUSTER_NAME, Cluster, free_ports, http_json, poll
from test_nats_py import WAIT, Server, nats_server_bin, tribune_bin

# How long a request waits for answers from every node (a guard).
GATHER = WAIT
# After the expected answers, how long to listen for unexpected extra ones.
QUIET = 0.5
# A STATSZ heartbeat comes at most every 10s (nats-server's interval).
HEARTBEAT_GUARD = 40.0

# Keys nats-server's answers have that Tribune's do not, and why.
INTENDED_MISSING = {
    # nats-server's release feature switches: Tribune has no such switches.
    "server": {"feature_flags"},
    "varz": {"feature_flags"},
    "statsz": set(),
    "connz": set(),
    "routez_route": set(),
    "jsz": set(),
    "connect_event": set(),
    "account_jsz": set(),
    "account_conns_event": set(),
    # (Inside an account's sent/received, Tribune leaves out `routes`: it
    # counts no per-route traffic of an account, and shows no made-up zeros.)
    "account_stat": set(),
    "http_accstatz_entry": set(),
    # nats-server imports its system services into every account and
    # lists them; Tribune has no such imports yet.
    "account_info": {"imports"},
    "disconnect_event": set(),
    "pause_advisory": set(),
    # The user JWT: a bearer JWT is a credential (system/client_events.rs).
    "connect_client": {"jwt"},
    "disconnect_client": {"jwt"},
}


async def gather(nc, subject, body=b"", expect=3):
    """Every answer to one request: `expect` of them (failing without), then
    a short quiet wait for unexpected extras."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, body, reply=inbox)
    answers = []
    try:
        while len(answers) < expect:
            m = await sub.next_msg(timeout=GATHER)
            answers.append(json.loads(m.data))
        while True:
            m = await sub.next_msg(timeout=QUIET)
            answers.append(json.loads(m.data))
    except nats.errors.TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    assert len(answers) >= expect, f"{subject}: {len(answers)} answers, want {expect}: {answers}"
    return answers


def by_server(answers):
    return {a["server"]["name"]: a for a in answers}


async def scenario(cluster: Cluster):
    a, b, c = cluster.nodes
    sys_nc = await nats.connect(a.server.url, user="sys", password="sys", allow_reconnect=False)
    apps = []
    for n in cluster.nodes:
        apps.append(
            await nats.connect(
                n.server.url, user="app", password="app", name=f"app-{n.name}", allow_reconnect=False
            )
        )
    for nc in apps:
        await nc.subscribe("sports.football.>")
        await nc.flush()
    facts, keys = {}, {}
    names = sorted(n.name for n in cluster.nodes)

    # Heartbeats: a subscriber on node-a hears every node's STATSZ.
    heard = set()
    hb = await sys_nc.subscribe("$SYS.SERVER.*.STATSZ")

    async def heartbeats():
        try:
            while set(names) - heard:
                m = await hb.next_msg(timeout=HEARTBEAT_GUARD)
                heard.add(json.loads(m.data)["server"]["name"])
        except nats.errors.TimeoutError:
            pass

    heartbeat_task = asyncio.create_task(heartbeats())
    # Subscribed now, so every node knows the interest long before node-c
    # stops (interest crosses routes asynchronously).
    down = await sys_nc.subscribe(f"$SYS.SERVER.{c.server_id}.SHUTDOWN")
    connects = await sys_nc.subscribe("$SYS.ACCOUNT.APP.CONNECT")
    disconnects = await sys_nc.subscribe("$SYS.ACCOUNT.APP.DISCONNECT")
    conns = await sys_nc.subscribe("$SYS.ACCOUNT.APP.SERVER.CONNS")

    # PING: STATSZ from every node.
    ping = by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING"))
    facts["ping"] = sorted(ping)
    facts["statsz_connections"] = {k: v["statsz"]["connections"] for k, v in ping.items()}
    facts["statsz_active_servers"] = {k: v["statsz"]["active_servers"] for k, v in ping.items()}
    facts["statsz_routes"] = {
        # A set: nats-server pools several connections per peer.
        k: sorted({r["name"] for r in v["statsz"].get("routes", [])}) for k, v in ping.items()
    }
    facts["server_block"] = {
        k: (v["server"]["id"] == cluster.node_named(k).server_id, v["server"]["cluster"], v["server"]["jetstream"])
        for k, v in ping.items()
    }
    keys["server"] = set(ping["node-a"]["server"])
    keys["statsz"] = set().union(*(set(v["statsz"]) for v in ping.values()))

    idz = await gather(sys_nc, "$SYS.REQ.SERVER.PING.IDZ")
    facts["idz"] = sorted((i["name"], i["id"] == cluster.node_named(i["name"]).server_id) for i in idz)

    varz = by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING.VARZ"))
    facts["varz"] = {
        k: (v["data"]["server_name"], v["data"]["connections"]) for k, v in varz.items()
    }
    keys["varz"] = set(varz["node-a"]["data"])

    connz = by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING.CONNZ", b'{"acc":"APP","subscriptions":true}'))
    facts["connz_app"] = {
        k: sorted((c.get("name"), tuple(c.get("subscriptions_list", []))) for c in v["data"]["connections"])
        for k, v in connz.items()
    }
    keys["connz"] = set(connz["node-a"]["data"]["connections"][0])

    subsz = by_server(
        await gather(
            sys_nc,
            "$SYS.REQ.SERVER.PING.SUBSZ",
            b'{"subscriptions":true,"account":"APP","test":"sports.football.1"}',
        )
    )
    facts["subsz_app_football"] = {
        k: sorted(s["subject"] for s in v["data"].get("subscriptions_list", [])) for k, v in subsz.items()
    }

    routez = by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING.ROUTEZ"))
    facts["routez"] = {
        k: sorted({r["remote_name"] for r in v["data"]["routes"]}) for k, v in routez.items()
    }
    keys["routez_route"] = set(routez["node-a"]["data"]["routes"][0])

    async def meta_leaders():
        jsz = by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING.JSZ"))
        leaders = {v["data"].get("meta_cluster", {}).get("leader", "") for v in jsz.values()}
        if len(leaders) == 1 and "" not in leaders:
            keys["jsz"] = set(jsz["node-a"]["data"])
            return {k: (v["data"].get("disabled", False), v["data"]["meta_cluster"]["cluster_size"]) for k, v in jsz.items()}
        return None

    facts["jsz"] = await poll(cluster, "one JetStream meta leader seen by every node", meta_leaders)

    health = by_server(await gather(sys_nc, f"$SYS.REQ.SERVER.{b.server_id}.HEALTHZ", expect=1))
    facts["healthz_one"] = {k: v["data"] for k, v in health.items()}

    # One account's views, from every node.
    acc_connz = by_server(await gather(sys_nc, "$SYS.REQ.ACCOUNT.APP.CONNZ"))
    facts["account_connz"] = {k: sorted(c.get("name") for c in v["data"]["connections"]) for k, v in acc_connz.items()}
    acc_subsz = by_server(await gather(sys_nc, "$SYS.REQ.ACCOUNT.APP.SUBSZ"))
    facts["account_subsz"] = {
        k: "sports.football.>" in {x["subject"] for x in v["data"]["subscriptions_list"]} for k, v in acc_subsz.items()
    }
    acc_info = by_server(await gather(sys_nc, "$SYS.REQ.ACCOUNT.APP.INFO"))
    facts["account_info"] = {
        k: (v["data"]["account_name"], v["data"]["client_connections"], v["data"]["jetstream_enabled"])
        for k, v in acc_info.items()
    }
    keys["account_info"] = set(acc_info["node-a"]["data"])
    acc_jsz = by_server(await gather(sys_nc, "$SYS.REQ.ACCOUNT.APP.JSZ", b'{"streams":true}'))
    facts["account_jsz"] = {k: (v["data"]["name"], v["data"].get("streams", 0)) for k, v in acc_jsz.items()}
    keys["account_jsz"] = set(acc_jsz["node-a"]["data"])
    statz = by_server(await gather(sys_nc, "$SYS.REQ.ACCOUNT.PING.STATZ"))
    facts["account_statz"] = {
        k: sorted((x["acc"], x["conns"]) for x in v["data"]["account_statz"]) for k, v in statz.items()
    }
    keys["account_stat"] = set(statz["node-a"]["data"]["account_statz"][0])
    nope = await gather(sys_nc, "$SYS.REQ.ACCOUNT.NOPE.INFO")
    facts["account_unknown"] = sorted(
        (x["server"]["name"], x["error"]["code"], x["error"]["description"], "data" in x) for x in nope
    )
    accountz = by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING.ACCOUNTZ"))
    facts["accountz"] = {k: (v["data"]["system_account"], sorted(v["data"]["accounts"])) for k, v in accountz.items()}
    facts["http_accountz"] = http_json(a.ip, a.http_port, "/accountz?acc=APP")["account_detail"]["account_name"]
    http_statz = http_json(a.ip, a.http_port, "/accstatz")
    facts["http_accstatz"] = sorted(x["acc"] for x in http_statz["account_statz"])
    keys["http_accstatz_entry"] = set(http_statz["account_statz"][0])

    # Filters: by name (substring and exact), and one no server matches.
    facts["filtered"] = sorted(
        by_server(await gather(sys_nc, "$SYS.REQ.SERVER.PING.STATSZ", b'{"server_name":"node-b"}', expect=1))
    )
    facts["filtered_exact_cluster"] = sorted(
        by_server(
            await gather(
                sys_nc,
                "$SYS.REQ.SERVER.PING.VARZ",
                json.dumps({"cluster": CLUSTER_NAME, "exact_match": True}).encode(),
            )
        )
    )
    facts["filtered_none"] = await gather(
        sys_nc, "$SYS.REQ.SERVER.PING.STATSZ", b'{"server_name":"elsewhere"}', expect=0
    )

    # An endpoint's own error, and a request that is not JSON.
    bad = await gather(sys_nc, f"$SYS.REQ.SERVER.{a.server_id}.CONNZ", b'{"sort":"bogus"}', expect=1)
    facts["bad_sort"] = [(x["error"]["code"], x["error"]["description"], x["server"]["name"]) for x in bad]
    bad = await gather(sys_nc, f"$SYS.REQ.SERVER.{a.server_id}.VARZ", b"{not json", expect=1)
    facts["not_json"] = [(x["error"]["code"], "data" in x) for x in bad]

    await heartbeat_task
    facts["heartbeats"] = sorted(heard)

    # A client of account APP comes and goes on node-b; node-a hears both.
    visitor = await nats.connect(b.server.url, user="app", password="app", name="visitor", allow_reconnect=False)
    await visitor.publish("sports.football.1", b"goal")
    await visitor.flush()
    await visitor.close()
    for sub, kind in ((connects, "connect"), (disconnects, "disconnect")):
        while True:
            ev = json.loads((await sub.next_msg(timeout=WAIT * 2)).data)
            if ev["client"].get("name") == "visitor":
                break
        cl = ev["client"]
        facts[f"{kind}_event"] = (
            ev["type"],
            ev["server"]["name"],
            cl["acc"],
            cl["user"],
            cl["kind"],
            cl["client_type"],
            cl["lang"],
            "stop" in cl,
            ev.get("reason"),
            (ev.get("sent") or {}).get("msgs"),
        )
        keys[f"{kind}_event"] = set(ev)
        keys[f"{kind}_client"] = set(cl)
    # node-b's CONNS events for APP: 2 clients with the visitor, then 1.
    seen = []
    while seen[-2:] != [2, 1]:
        ev = json.loads((await conns.next_msg(timeout=WAIT * 2)).data)
        if ev["server"]["name"] == "node-b":
            seen.append(ev["conns"])
            facts["account_conns_event"] = (ev["type"], ev["acc"], ev["total_conns"])
            keys["account_conns_event"] = set(ev)

    # A JetStream advisory, sent where the consumer is led, reaches the
    # account's subscriber on node-a: a consumer of an R3 stream is paused
    # through node-c.
    adv = await apps[0].subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.ADV.*")
    await apps[0].flush()
    # Each step is retried until it answers (a new R3 stream's group may
    # still be electing; every step is idempotent).
    js = apps[2].jetstream(timeout=WAIT)

    async def led_stream():
        await js.add_stream(name="ADV", subjects=["adv.>"], num_replicas=3)
        info = await js.stream_info("ADV")
        return True if info.cluster and info.cluster.leader else None

    await poll(cluster, "the ADV stream with a leader", led_stream)

    async def consumer():
        await js.add_consumer("ADV", durable_name="worker", ack_policy="explicit")
        return True

    await poll(cluster, "the ADV consumer", consumer)
    until = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def pause():
        answer = await apps[2].request(
            "$JS.API.CONSUMER.PAUSE.ADV.worker", json.dumps({"pause_until": until}).encode(), timeout=WAIT
        )
        paused = json.loads(answer.data)
        return paused if paused.get("paused") is True else None

    await poll(cluster, "the ADV consumer paused", pause)
    ev = json.loads((await adv.next_msg(timeout=WAIT * 2)).data)
    facts["pause_advisory"] = (ev["type"], ev["stream"], ev["consumer"], ev["paused"], ev["pause_until"] == until)
    keys["pause_advisory"] = set(ev)

    # SIGTERM node-c: node-a hears its SHUTDOWN.
    await apps[2].close()
    c.server.proc.send_signal(signal.SIGTERM)
    m = await down.next_msg(timeout=WAIT * 2)
    facts["shutdown"] = (json.loads(m.data)["name"], json.loads(m.data)["id"] == c.server_id)

    for nc in apps[:2]:
        await nc.close()
    await sys_nc.close()
    return facts, keys


def expected_facts():
    names = ["node-a", "node-b", "node-c"]
    others = {n: [m for m in names if m != n] for n in names}
    return {
        "ping": names,
        "statsz_connections": {"node-a": 2, "node-b": 1, "node-c": 1},
        "statsz_active_servers": {n: 3 for n in names},
        "statsz_routes": others,
        "server_block": {n: (True, CLUSTER_NAME, True) for n in names},
        "idz": [(n, True) for n in names],
        "varz": {"node-a": ("node-a", 2), "node-b": ("node-b", 1), "node-c": ("node-c", 1)},
        "connz_app": {n: [(f"app-{n}", ("sports.football.>",))] for n in names},
        "subsz_app_football": {n: ["sports.football.>"] for n in names},
        "routez": others,
        "jsz": {n: (False, 3) for n in names},
        "healthz_one": {"node-b": {"status": "ok", "status_code": 200}},
        "filtered": ["node-b"],
        "filtered_exact_cluster": names,
        "filtered_none": [],
        "bad_sort": [(500, "invalid sorting option: bogus", "node-a")],
        "not_json": [(400, False)],
        "heartbeats": names,
        "account_conns_event": ("io.nats.server.advisory.v1.account_connections", "APP", 1),
        "account_connz": {n: [f"app-{n}"] for n in names},
        "account_subsz": {n: True for n in names},
        "account_info": {n: ("APP", 1, True) for n in names},
        "account_jsz": {n: ("APP", 0) for n in names},
        "account_statz": {
            "node-a": [("APP", 1), ("SYS", 1)],
            "node-b": [("APP", 1)],
            "node-c": [("APP", 1)],
        },
        "account_unknown": [(n, 500, "Account NOPE does not exist", True) for n in names],
        "accountz": {n: ("SYS", ["$G", "APP", "SYS"]) for n in names},
        "http_accountz": "APP",
        "http_accstatz": ["APP", "SYS"],
        "connect_event": (
            "io.nats.server.advisory.v1.client_connect",
            "node-b", "APP", "app", "Client", "nats", "python3", False, None, None,
        ),
        "disconnect_event": (
            "io.nats.server.advisory.v1.client_disconnect",
            "node-b", "APP", "app", "Client", "nats", "python3", True, "Client Closed", 1,
        ),
        "pause_advisory": ("io.nats.jetstream.advisory.v1.consumer_pause", "ADV", "worker", True, True),
        "shutdown": ("node-c", True),
    }


async def run(binary, workdir):
    cluster = Cluster(binary, workdir).start()
    try:
        return await asyncio.wait_for(scenario(cluster), timeout=240)
    except BaseException:
        print(cluster.diagnostics())
        raise
    finally:
        cluster.stop()


def test_system_requests_and_events_agree_with_nats_server(tmp_path):
    ref_facts, ref_keys = asyncio.run(run(nats_server_bin(), tmp_path / "nats-server"))
    want = expected_facts()
    # The reference validates the scenario first.
    for k in want:
        assert ref_facts[k] == want[k], f"nats-server: {k}"
    facts, keys = asyncio.run(run(tribune_bin(), tmp_path / "tribune"))
    for k in want:
        assert facts[k] == want[k], f"tribune: {k}"
    missing = {
        what: sorted(ref - keys.get(what, set()) - INTENDED_MISSING[what])
        for what, ref in ref_keys.items()
    }
    assert not any(missing.values()), f"tribune's answers lack keys nats-server's have: {missing}"


USER_INFO_CONFIG = """
accounts {
  SYS { users [{user: sys, password: sys}] }
  APP { users [
    {user: limited, password: limited, permissions: {
      publish: {allow: ["sports.>", "$SYS.REQ.USER.INFO"], deny: ["sports.admin.>"]},
      subscribe: {allow: ["_INBOX.>", "sports.>"]},
      allow_responses: {max: 2, expires: "1m"}}},
    {user: free, password: free},
    {user: mute, password: mute, permissions: {publish: {allow: ["sports.>"]}}}
  ] }
}
system_account: SYS
"""


async def user_info_answers(binary, workdir):
    """What `$SYS.REQ.USER.INFO` tells each user: the `data` of the reply,
    or the error a user without publish permission for it gets."""
    conf = workdir / "server.conf"
    workdir.mkdir(parents=True)
    conf.write_text(USER_INFO_CONFIG)
    server = Server(binary, workdir / "srv", args=("-c", str(conf)))
    out = {}
    try:
        for user in ("limited", "free", "mute", "sys"):
            errors = []

            async def on_error(e):
                errors.append(str(e))

            nc = await nats.connect(
                server.url, user=user, password=user, allow_reconnect=False, error_cb=on_error
            )
            try:
                m = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=WAIT / 4)
                data = json.loads(m.data)["data"]
                # nats-server lists each allow/deny in no fixed order.
                for kind in ("publish", "subscribe"):
                    for rule in (data.get("permissions", {}).get(kind) or {}).values():
                        rule.sort()
                out[user] = data
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
                await asyncio.sleep(0.2)  # the -ERR arrives on its own
                out[user] = (type(e).__name__, errors)
            await nc.close()
    finally:
        server.proc.kill()
        server.proc.wait()
    return out


async def user_info_reply_reaches_others(binary, workdir):
    """`limited` may not publish on `secret.>`; it asks USER.INFO with
    `secret.inbox` as the reply while another client of its account listens
    there. True if that client got the answer."""
    conf = workdir / "server.conf"
    workdir.mkdir(parents=True)
    conf.write_text(USER_INFO_CONFIG)
    server = Server(binary, workdir / "srv", args=("-c", str(conf)))
    try:
        other = await nats.connect(server.url, user="free", password="free", allow_reconnect=False)
        sub = await other.subscribe("secret.inbox")
        await other.flush()
        limited = await nats.connect(server.url, user="limited", password="limited", allow_reconnect=False)
        await limited.publish("$SYS.REQ.USER.INFO", b"", reply="secret.inbox")
        await limited.flush()
        try:
            await sub.next_msg(timeout=QUIET)
            got = True
        except nats.errors.TimeoutError:
            got = False
        await limited.close()
        await other.close()
        return got
    finally:
        server.proc.kill()
        server.proc.wait()


def test_user_info_answers_only_the_requester(tmp_path):
    """Tribune delivers the USER.INFO answer only to the requester's own
    subscriptions on the reply subject. nats-server publishes it into the
    account, so any subscriber of the reply subject gets it, which lets a
    client make the server publish where the client itself may not (a
    JetStream API subject as the reply would run that request). An intended
    difference, in the README."""
    assert not asyncio.run(user_info_reply_reaches_others(tribune_bin(), tmp_path / "tribune"))


def test_user_info_agrees_with_nats_server(tmp_path):
    """`$SYS.REQ.USER.INFO` from users with and without permissions, and from
    one not allowed to publish it: the same answers from both servers."""
    ref = asyncio.run(user_info_answers(nats_server_bin(), tmp_path / "nats-server"))
    assert ref["free"] == {"user": "free", "account": "APP", "account_name": "APP"}
    assert ref["limited"]["permissions"]["responses"] == {"max": 2, "ttl": 60_000_000_000}
    assert ref["mute"][0] == "TimeoutError", ref["mute"]
    got = asyncio.run(user_info_answers(tribune_bin(), tmp_path / "tribune"))
    assert got == ref


RELOAD_CONFIG = """
accounts {{
  SYS {{ users [{{user: sys, password: sys}}] }}
  APP {{ users [{{user: app, password: {password}}}] }}
}}
system_account: SYS
max_payload: {max_payload}
"""


async def reload_outcomes(binary, workdir):
    """`$SYS.REQ.SERVER.<id>.RELOAD` after the file changes, after it breaks,
    and after it asks for what needs a restart; what each answer says and
    what the server runs with afterwards."""
    conf = workdir / "server.conf"
    workdir.mkdir(parents=True)
    conf.write_text(RELOAD_CONFIG.format(password="one", max_payload=4096))
    server = Server(binary, workdir / "srv", args=("-c", str(conf)))
    out = {}

    async def app_login(password):
        try:
            nc = await nats.connect(
                server.url, user="app", password=password, allow_reconnect=False,
                max_reconnect_attempts=0, connect_timeout=WAIT / 4,
            )
        except Exception as e:  # noqa: BLE001 - any refusal is the outcome
            return type(e).__name__
        await nc.close()
        return "ok"

    try:
        sys_nc = await nats.connect(server.url, user="sys", password="sys", allow_reconnect=False)
        idz = json.loads((await sys_nc.request("$SYS.REQ.SERVER.PING.IDZ", b"", timeout=WAIT / 4)).data)
        subject = f"$SYS.REQ.SERVER.{idz['id']}.RELOAD"

        async def reload():
            answer = json.loads((await sys_nc.request(subject, b"", timeout=WAIT / 2)).data)
            varz = json.loads((await sys_nc.request(
                f"$SYS.REQ.SERVER.{idz['id']}.VARZ", b"", timeout=WAIT / 4)).data)["data"]
            return answer, varz

        _, before = await reload()  # nothing changed: still a success
        conf.write_text(RELOAD_CONFIG.format(password="two", max_payload=2048))
        answer, varz = await reload()
        out["changed"] = {
            "keys": sorted(answer),
            "server_id": answer["server"]["id"] == idz["id"],
            "max_payload": varz["max_payload"],
            "reloaded_at_moved": varz["config_load_time"] != before["config_load_time"],
            "old_password": await app_login("one"),
            "new_password": await app_login("two"),
        }
        conf.write_text("accounts { SYS { users [{user: sys\n")
        answer, varz = await reload()
        out["broken"] = {
            "keys": sorted(answer),
            "code": answer["error"]["code"],
            "has_description": bool(answer["error"].get("description")),
            "max_payload": varz["max_payload"],
            "new_password": await app_login("two"),
        }
        conf.write_text(
            RELOAD_CONFIG.format(password="three", max_payload=1024) + "cluster { port: 6299 }\n"
        )
        answer, varz = await reload()
        out["needs_restart"] = {
            "error": answer.get("error"),
            "max_payload": varz["max_payload"],
            "new_password": await app_login("three"),
        }
        # No PING form: a reload is asked of one server by its id.
        try:
            await sys_nc.request("$SYS.REQ.SERVER.PING.RELOAD", b"", timeout=WAIT / 4)
            out["ping"] = "answered"
        except nats.errors.NoRespondersError:
            out["ping"] = "no responders"
        await sys_nc.close()
    finally:
        server.proc.kill()
        server.proc.wait()
    return out


def test_reload_request_agrees_with_nats_server(tmp_path):
    """`$SYS.REQ.SERVER.<id>.RELOAD` reads the file again as SIGHUP does: a
    good file is applied (VARZ and logins show it) and answered with the
    server block alone; a broken file, or one that changes what needs a
    restart, is answered with nats-server's error object and changes
    nothing."""
    ref = asyncio.run(reload_outcomes(nats_server_bin(), tmp_path / "nats-server"))
    assert ref["changed"] == {
        "keys": ["server"], "server_id": True, "max_payload": 2048,
        "reloaded_at_moved": True, "old_password": "Error", "new_password": "ok",
    }, ref
    assert ref["broken"]["code"] == 500 and ref["broken"]["max_payload"] == 2048, ref
    assert ref["needs_restart"]["error"]["code"] == 500, ref
    assert ref["needs_restart"]["new_password"] == "Error", ref
    got = asyncio.run(reload_outcomes(tribune_bin(), tmp_path / "tribune"))
    assert got == ref


def route_reload_outcomes(binary, workdir):
    """Two servers of one cluster, A first without routes: a reload that
    adds B's route connects them, one that removes it closes the route (B
    does not dial A back: it has no route to A configured). What each
    server's /routez shows after each reload, and what A logs."""
    workdir.mkdir(parents=True)
    # Every port, client ones too, from one batch: a server left to pick its
    # own client port (-p -1) could be handed a cluster port released here
    # before the other server binds it (CI saw B's cluster port taken).
    a_client, b_client, a_cluster, b_cluster, a_http, b_http = free_ports("127.0.0.1", 6)
    conf_a = workdir / "a.conf"

    def write_a(routes: str):
        conf_a.write_text(
            f'server_name: A\nhttp: "127.0.0.1:{a_http}"\n'
            f'cluster {{\n  name: RELOAD\n  listen: "127.0.0.1:{a_cluster}"\n  {routes}\n}}\n'
        )

    write_a("")
    conf_b = workdir / "b.conf"
    conf_b.write_text(
        f'server_name: B\nhttp: "127.0.0.1:{b_http}"\n'
        f'cluster {{ name: RELOAD, listen: "127.0.0.1:{b_cluster}" }}\n'
    )
    a = Server(binary, workdir / "a", args=("-c", str(conf_a)), port=a_client)
    b = Server(binary, workdir / "b", args=("-c", str(conf_b)), port=b_client)

    def routes_seen(want: bool):
        """Whether each server has a route up (nats-server pools several
        connections per peer, Tribune one), once both are as wanted."""
        end = time.monotonic() + WAIT
        while True:
            seen = [http_json("127.0.0.1", p, "/routez")["num_routes"] > 0 for p in (a_http, b_http)]
            if seen == [want, want] or time.monotonic() > end:
                return seen
            time.sleep(0.05)

    out = {}
    try:
        out["before"] = routes_seen(False)
        write_a(f"routes: [nats-route://127.0.0.1:{b_cluster}]")
        a.proc.send_signal(signal.SIGHUP)
        out["added"] = routes_seen(True)
        write_a("")
        a.proc.send_signal(signal.SIGHUP)
        out["removed"] = routes_seen(False)
        log = a.log()
        out["logged"] = {
            line: line in log for line in ("Reloaded: cluster routes", "Removed route")
        }
    finally:
        for s in (a, b):
            s.proc.kill()
            s.proc.wait()
    return out


def test_reload_adds_and_removes_routes_like_nats_server(tmp_path):
    """A route added by a reload is dialled, and one removed is closed and
    not dialled again, on both servers (before, Tribune accepted the new
    routes and never dialled them)."""
    ref = route_reload_outcomes(nats_server_bin(), tmp_path / "nats-server")
    assert ref == {
        "before": [False, False], "added": [True, True], "removed": [False, False],
        "logged": {"Reloaded: cluster routes": True, "Removed route": True},
    }, ref
    assert route_reload_outcomes(tribune_bin(), tmp_path / "tribune") == ref
