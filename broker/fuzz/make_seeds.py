#!/usr/bin/env python3
"""Writes the hand-made seed corpora under corpus/<target>/.

Run from anywhere: python3 broker/fuzz/make_seeds.py. The seeds are
committed; this script records where they come from (the differential
scenarios, the config tests, the shipped config template) so they can be
regenerated. Seeds kept because they once crashed a target (named
crash-*) are not written here and are left alone.

Protocol seeds start with the header described in src/lib.rs: a settings
byte, a count of read sizes, the read sizes, then the stream.
"""

import json
import re
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
BROKER = FUZZ.parent
ROOT = BROKER.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def unescape(text):
    """The scenario runner's escapes: \\r \\n \\t \\\\ \\xNN."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n in "rnt\\":
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[n]
                i += 2
                continue
            if n == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
        out += c.encode()
        i += 1
    return bytes(out)


def scenario_stream(name, conn=None):
    """Everything one connection of a scenario sends, in order."""
    out = bytearray()
    for line in (BROKER / "tests" / "scenarios" / f"{name}.txt").read_text().splitlines():
        m = re.match(r"(send|sendn)\s+(\S+)\s?(.*)$", line)
        if not m:
            continue
        verb, who, rest = m.groups()
        conn = conn or who
        if who != conn:
            continue
        if verb == "sendn":
            count, text = rest.split(" ", 1)
            out += unescape(text) * int(count)
        else:
            out += unescape(rest)
    return bytes(out)


def header(flag, limits, reads):
    return bytes([(limits << 1) | flag, len(reads)] + [r - 1 for r in reads])


def client_protocol():
    for name, conn, limits in [
        ("pub_sub", None, 0),
        ("hpub_hmsg", None, 0),
        ("line_endings", None, 0),
        ("lowercase_ops", None, 0),
        ("split_writes", None, 0),
        ("parse_errors", "I", 0),
        ("max_control_line", "A", 4),
        ("max_control_line", "C", 4),
        ("unsub_max", None, 0),
        ("auth_user_pass", None, 0),
        ("second_connect", None, 0),
        ("connect_malformed", "B", 0),
        ("pub_size_mismatch", None, 1),
        ("max_payload", None, 1),
    ]:
        stream = scenario_stream(name, conn)
        suffix = f"-{conn}" if conn else ""
        write("client_protocol", f"{name}{suffix}", header(1, limits, [7, 64]) + stream)
    write("client_protocol", "split_writes-bytewise", header(1, 0, []) + scenario_stream("split_writes"))


def route_protocol():
    handshake = (
        b'INFO {"server_id":"NA","name":"n1","cluster":"east","port":6222} \r\n'
        b'CONNECT {"echo":true,"verbose":false,"pedantic":false,"user":"ruser",'
        b'"pass":"T0pS3cr3t","tls_required":false,"name":"n1","cluster":"east"}\r\n'
        b"PING\r\nPONG\r\n"
    )
    traffic = (
        b"RS+ $G foo\r\nRS+ $G q.sub grp 2\r\nRS- $G foo\r\nRS- $G q.sub grp\r\n"
        b"RMSG $G foo 5\r\nhello\r\nRMSG $G foo rep.1 5\r\nhello\r\n"
        b"HMSG $G foo 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n"
        b"RMSG $G q.sub | grp 1\r\nq\r\nRMSG $G q.sub + rr grp g2 1\r\nq\r\n"
        b"HMSG $G q.sub | grp 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n-ERR 'x'\r\n"
    )
    write("route_protocol", "registered", header(1, 0, [9, 100]) + handshake + traffic)
    write("route_protocol", "registered-bytewise", header(1, 0, []) + handshake + traffic)
    write("route_protocol", "unregistered", header(0, 0, [16]) + handshake + traffic)
    write("route_protocol", "small-limits", header(1, 6, [3]) + traffic)


def connect():
    docs = [
        {"verbose": False, "pedantic": False, "tls_required": False, "name": "app",
         "lang": "rust", "version": "0.51.0", "protocol": 1, "echo": True,
         "headers": True, "no_responders": True, "user": "derek", "pass": "s3cret"},
        {},
        {"user": None, "echo": False},
        {"auth_token": "t0ken-value"},
        {"nkey": "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
         "sig": "c2lnbmF0dXJl", "jwt": "eyJ0eXAiOiJKV1QifQ.e30.c2ln"},
    ]
    seq = b"\xff".join(json.dumps(d, separators=(",", ":")).encode() for d in docs)
    write("connect", "login-then-merges", seq)
    write("connect", "numeric-pass", b'{"user":"a","pass":123456}\xff{}')
    write("connect", "wrong-types", b'{"verbose":"s3cret"}\xff{"auth_token":1.5}\xff[1]\xff{')
    write("connect", "duplicate-and-null", b'{"pass":"a","pass":"b","name":null}')


def redact():
    for i, text in enumerate([
        '{"verbose":false,"user":"alice","pass":"s3cret","auth_token":"tok"}',
        '{"nkey":"UABC","sig":"c2ln","proxy_sig":"cHM","jwt":"e30","password":"pw"}',
        '{ "pass" : "a b" , "auth_token"= "x" }',
        '{"user":"a","pass":123456,"name":"mypassword","lang":"go"}',
        "{pass:abc}",
    ]):
        write("redact", f"connect-{i}", text)
    write("redact", "url", "nats-route://ruser:T0pS3cr3t@10.0.1.5:6222/")
    write("redact", "url-parts", "nats-route\0ruser\0pa:ss@word\0[::1]:6222\0path?q=1")


def config():
    tests = (BROKER / "src" / "config" / "tests.rs").read_text()
    full = re.search(r'const FULL: &str = r#"(.*?)"#;', tests, re.S).group(1)
    write("config", "full", full)
    write("config", "packer-template",
          (ROOT / "packer" / "files" / "templates" / "broker.conf.tmpl").read_text())
    write("config", "accounts", (
        "accounts {\n"
        "  APP: { users: [ {user: app, password: a, permissions: { publish: \"sports.>\", "
        "subscribe: { allow: [\"svc.>\"], deny: \"svc.x\" }, allow_responses: { max: 2, expires: \"1m\" } }} ],\n"
        "         exports: [ {stream: \"sports.>\"}, {service: \"svc.time\", accounts: [WEB]} ] }\n"
        "  WEB: { users: [ {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4} ],\n"
        "         imports: [ {stream: {account: APP, subject: \"sports.>\"}, prefix: feed}, "
        "{service: {account: APP, subject: \"svc.time\"}, to: time} ] }\n"
        "  AUTH { users: [{user: auth, password: pwd}] }\n"
        "}\nsystem_account: SYS\n"
        "authorization { default_permissions: { publish: { deny: \">\" } }\n"
        "  auth_callout { issuer: ADVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZW22,"
        " account: AUTH, auth_users: [ auth ], allowed_accounts: [ APP ] } }\n"
    ))
    write("config", "variables-and-include", (
        "PASS: 'pw'\nport: $FUZZ_INT\nmax_payload: $FUZZ_SIZE\n"
        "authorization { user: admin, password: $PASS, timeout: 2.5 }\n"
        "include ./limits.conf\ninclude 'auth.conf'\n"
        "cluster { name: c, port: 6222, authorization { user: r, password: $FUZZ_STR },"
        " routes: [ nats-route://r:pw@h:6222 ] }\n"
    ))
    write("config", "json-style", '{ "port": 4222, "debug": true, "tls": { "timeout": 2 }, "max_control_line": "4KB" }\n')


# Made once with tribune_auth::jwt::encode: a user JWT for
# UDWUSKGGFDI4FRXK5EBTRECZSVQSSWJHHJOGH6JWG3AUMFFMQ435C2U4 in account APP, and an
# authorization response carrying it, both signed by the account key
# ADVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZW22 (raw seed [7; 32], the
# auth_jwt target's signer).
USER_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJhdWQiOiJBUFAiLCJqdGkiOiI2S"
    "EVKUlY1TVg0V05SNjVZRlZOQ0JBT0JCQkk3S05GS0dFR1FXTEpPREZFRVdVUlJPSkhRIiwiaWF0I"
    "joxNzk2NDIxOTk0LCJpc3MiOiJBRFZFVTNERDRLT0ZFQ1Y2NlZJSFdFWk9ZWDRaS1IzV1YyN0w0N"
    "jRTSUlQT1UySVVJM0pDWlcyMiIsInN1YiI6IlVEV1VTS0dHRkRJNEZSWEs1RUJUUkVDWlNWUVNTV"
    "0pISEpPR0g2SldHM0FVTUZGTVE0MzVDMlU0IiwibmF0cyI6eyJwdWIiOnsiYWxsb3ciOlsib3JkZ"
    "XJzLj4iXX0sInN1YiI6eyJkZW55IjpbImFkbWluLj4iXX0sInNyYyI6WyIxMC4wLjAuMC84Il0sI"
    "nN1YnMiOi0xLCJkYXRhIjotMSwicGF5bG9hZCI6LTEsInR5cGUiOiJ1c2VyIiwidmVyc2lvbiI6M"
    "n19.RuPXB41fAcoYUYpq69eTdxQSBptj_v3K9lbtxIj_bZknBWgNB7WCqLiz6gzm3WjMr4o_gFUf"
    "1KIvhwkMXuyMCA"
)
RESPONSE_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJhdWQiOiJOU0VSVkVSSUQiLCJqd"
    "GkiOiJJTzJFNkc3SlRDVFlWN1UzTFFMM0s1NlhMM0ZLU1pQRUMzNjc0WVpXQ1FFSVlYMlVBMkRRI"
    "iwiaWF0IjoxNzk2NDIxOTk0LCJpc3MiOiJBRFZFVTNERDRLT0ZFQ1Y2NlZJSFdFWk9ZWDRaS1IzV"
    "1YyN0w0NjRTSUlQT1UySVVJM0pDWlcyMiIsInN1YiI6IlVEV1VTS0dHRkRJNEZSWEs1RUJUUkVDW"
    "lNWUVNTV0pISEpPR0g2SldHM0FVTUZGTVE0MzVDMlU0IiwibmF0cyI6eyJqd3QiOiJleUowZVhBa"
    "U9pSktWMVFpTENKaGJHY2lPaUpsWkRJMU5URTVMVzVyWlhraWZRLmV5SmhkV1FpT2lKQlVGQWlMQ"
    "0pxZEdraU9pSTJTRVZLVWxZMVRWZzBWMDVTTmpWWlJsWk9RMEpCVDBKQ1FrazNTMDVHUzBkRlIxR"
    "lhURXBQUkVaRlJWZFZVbEpQU2toUklpd2lhV0YwSWpveE56azJOREl4T1RrMExDSnBjM01pT2lKQ"
    "lJGWkZWVE5FUkRSTFQwWkZRMVkyTmxaSlNGZEZXazlaV0RSYVMxSXpWMVl5TjB3ME5qUlRTVWxRV"
    "DFVeVNWVkpNMHBEV2xjeU1pSXNJbk4xWWlJNklsVkVWMVZUUzBkSFJrUkpORVpTV0VzMVJVSlVVa"
    "1ZEV2xOV1VWTlRWMHBJU0VwUFIwZzJTbGRITTBGVlRVWkdUVkUwTXpWRE1sVTBJaXdpYm1GMGN5S"
    "TZleUp3ZFdJaU9uc2lZV3hzYjNjaU9sc2liM0prWlhKekxqNGlYWDBzSW5OMVlpSTZleUprWlc1N"
    "UlqcGJJbUZrYldsdUxqNGlYWDBzSW5OeVl5STZXeUl4TUM0d0xqQXVNQzg0SWwwc0luTjFZbk1pT"
    "2kweExDSmtZWFJoSWpvdE1Td2ljR0Y1Ykc5aFpDSTZMVEVzSW5SNWNHVWlPaUoxYzJWeUlpd2lkb"
    "VZ5YzJsdmJpSTZNbjE5LlJ1UFhCNDFmQWNvWVVZcHE2OWVUZHhRU0JwdGpfdjNLOWxidHhJal9iW"
    "mtuQldnTkI3V0NxTGl6Nmd6bTNXak1yNG9fZ0ZVZjFLSXZod2tNWHV5TUNBIiwidHlwZSI6ImF1d"
    "Ghvcml6YXRpb25fcmVzcG9uc2UiLCJ2ZXJzaW9uIjoyfX0.5FcoZWeFfSgqiP4YiObtKVSH_W0Bg"
    "dZyXmc58P86uRvekKW8UDpykQoeWppPciEHlEwA36jD-kiOemDOBbwiBA"
)


def auth_jwt():
    user_jwt, resp_jwt = USER_JWT, RESPONSE_JWT
    write("auth_jwt", "user-jwt", b"\x00" + user_jwt.encode())
    write("auth_jwt", "response-jwt", b"\x00" + resp_jwt.encode())
    user = {"sub": "UDWUSKGGFDI4FRXK5EBTRECZSVQSSWJHHJOGH6JWG3AUMFFMQ435C2U4", "aud": "APP",
            "iss": "$ISS", "nats": {"pub": {"allow": ["orders.>"]}, "src": "10.0.0.0/8, ::1/128",
                                     "resp": {"max": 1, "ttl": 1000}, "type": "user", "version": 2}}
    resp = {"sub": "UDWUSKGGFDI4FRXK5EBTRECZSVQSSWJHHJOGH6JWG3AUMFFMQ435C2U4", "aud": "NSERVER",
            "iss": "$ISS", "nats": {"jwt": user_jwt, "type": "authorization_response", "version": 2}}
    other = dict(user, iss="$OTHER")
    write("auth_jwt", "sign-user", b"\x01" + json.dumps(user).encode())
    write("auth_jwt", "sign-user-legacy-alg", b"\x03" + json.dumps(user).encode())
    write("auth_jwt", "sign-response", b"\x01" + json.dumps(resp).encode())
    write("auth_jwt", "sign-other-issuer", b"\x01" + json.dumps(other).encode())
    write("auth_jwt", "sign-alg-none", b"\x05" + json.dumps(user).encode())


def ws_frame(b0, payload, key=b"\x37\xfa\x21\x3d"):
    """A client frame; masked unless key is None."""
    n = len(payload)
    mask = 0x80 if key is not None else 0
    if n <= 125:
        head = bytes([b0, mask | n])
    elif n < 65536:
        head = bytes([b0, mask | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mask | 127]) + n.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_deflate(data):
    """permessage-deflate: raw DEFLATE, sync flush, tail stripped."""
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def websocket_frames():
    proto = scenario_stream("pub_sub")
    write("websocket_frames", "binary", header(0, 0, [64]) + ws_frame(0x82, proto))
    write("websocket_frames", "fragments-and-pings", header(0, 7, [5, 200]) + (
        ws_frame(0x01, proto[:10]) + ws_frame(0x89, b"ping!") + ws_frame(0x00, proto[10:20])
        + ws_frame(0x8a, b"") + ws_frame(0x80, proto[20:]) + ws_frame(0x88, b"\x03\xe8bye")))
    body = b"PUB sports.football.1 11\r\nhello world\r\n" * 40
    z = ws_deflate(body)
    write("websocket_frames", "compressed", header(1, 0, [100]) + (
        ws_frame(0x42, z[:20]) + ws_frame(0x80, z[20:]) + ws_frame(0xc2, ws_deflate(b"PING\r\n"))))
    write("websocket_frames", "compressed-over-limit", header(1, 1, [3]) + ws_frame(0xc2, z))
    write("websocket_frames", "unmasked", header(0, 0, []) + ws_frame(0x82, b"PING\r\n", None))
    write("websocket_frames", "unmasked-allowed", header(0, 3, [2]) + ws_frame(0x82, b"PING\r\n", None))
    write("websocket_frames", "big-lengths", header(0, 2, [9]) + (
        ws_frame(0x82, b"x" * 300) + ws_frame(0x82, b"y" * 70000)[:200]))
    write("websocket_frames", "bad-close", header(0, 0, [1, 2]) + ws_frame(0x88, b"\x03\xe7"))


def ws_upgrade_request(path="/", extra="", method="GET", key="dGhlIHNhbXBsZSBub25jZQ=="):
    """An upgrade request head as a browser or nats.ws sends it."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
        f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def websocket_handshake():
    """Upgrade requests, accepted and refused in each of nats-server's ways.

    The header is the protocol targets' (flag = the request came over TLS,
    limits index = the target's option set) with a filler size in the
    settings byte's high nibble (see the target's PADS).
    """
    def head(tls, opts, reads, pad=0):
        return bytes([(pad << 4) | (opts << 1) | tls, len(reads)] + [r - 1 for r in reads])

    write("websocket_handshake", "rfc-example", head(0, 0, [7, 64]) + ws_upgrade_request("/path?x=1"))
    write("websocket_handshake", "rfc-example-bytewise", head(0, 0, []) + ws_upgrade_request())
    write("websocket_handshake", "browser-compressed-cookies", head(0, 4, [100]) + ws_upgrade_request(extra=(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Nats-No-Masking: true\r\nCookie: a=b; jwt=\"eyJ0eXAiOiJKV1QifQ\"; u=me\r\nCookie: tok=t0k\r\n"
        "User-Agent: Mozilla/5.0 (Macintosh) Version/17 Safari/605\r\nX-Forwarded-For: 10.1.2.3\r\n")))
    write("websocket_handshake", "same-origin-tls", head(1, 2, [30]) + ws_upgrade_request(
        extra="Origin: https://LOCALHOST:8080\r\n"))
    write("websocket_handshake", "origin-not-allowed", head(0, 3, [16]) + ws_upgrade_request(
        extra="Origin: http://evil.example\r\nSec-WebSocket-Origin: https://good.example\r\n"))
    write("websocket_handshake", "no-key-bad-version", head(0, 0, [64]) + ws_upgrade_request(key="c2hvcnQ=").replace(
        b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"))
    write("websocket_handshake", "post-mqtt", head(0, 1, [64]) + ws_upgrade_request("/mqtt", method="POST"))
    write("websocket_handshake", "leafnode", head(0, 6, [5]) + ws_upgrade_request(
        "ws://h:443/x/leafnode", extra="Cookie: jwt=abc\r\n"))
    write("websocket_handshake", "early-data", head(0, 7, [200]) + ws_upgrade_request() + b"\x82\x80\x00\x00\x00\x00")
    write("websocket_handshake", "near-limit", head(0, 0, [250, 250], pad=4) + ws_upgrade_request())
    write("websocket_handshake", "over-limit", head(0, 0, [250], pad=10) + ws_upgrade_request())
    write("websocket_handshake", "tls-client-hello", head(0, 0, [3]) + bytes.fromhex("16030100a5010000a10303") + b"\x00" * 32)
    write("websocket_handshake", "incomplete", head(0, 5, [9]) + ws_upgrade_request()[:-2])
    write("websocket_handshake", "bare-newlines", head(0, 1, [11]) + ws_upgrade_request(
        extra="Sec-WebSocket-Extensions: x, PerMessage-Deflate\r\n").replace(b"\r\n", b"\n"))


def js_request(kind, setting, tokens, body):
    """A jetstream_api input: kind, context, subject tokens, 0xFF, body."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body, separators=(",", ":"))
    if isinstance(body, str):
        body = body.encode()
    return bytes([kind, setting]) + tokens.encode() + b"\xff" + body


def jetstream_api():
    """JetStream API requests as nats.go / the nats CLI send them.

    Kinds (byte 0) and context bits (byte 1) are the target's: kind 0
    stream create, 1 update, 2 consumer create, 3 durable create, 4 msg
    get, 5 direct get, 6 pull request, 7 purge, 8 msg delete, 9 pause,
    10 ack; context bits 0-1 cluster size (none, 1, 3, 5), bit 2 a 60 s
    duplicate window limit, bit 3 the account's streams, bits 4-5 the
    workqueue stream's other consumers.
    """
    W = "jetstream_api"
    write(W, "stream-create-full", js_request(0, 0x0a, "NEW", {
        "name": "NEW", "description": "d", "subjects": ["new.>", "other.*"], "retention": "limits",
        "max_consumers": -1, "max_msgs": 1000, "max_bytes": -1, "max_age": 86400000000000,
        "max_msgs_per_subject": 10, "max_msg_size": 1048576, "discard": "new", "storage": "memory",
        "num_replicas": 3, "duplicate_window": 120000000000, "allow_rollup_hdrs": True,
        "discard_new_per_subject": True, "allow_direct": True, "subject_delete_marker_ttl": 5000000000,
        "consumer_limits": {"inactive_threshold": 60000000000, "max_ack_pending": 50},
        "subject_transform": {"src": "new.>", "dest": "stored.>"},
        "republish": {"src": "new.>", "dest": "repub.>", "headers_only": True},
        "compression": "s2", "metadata": {"owner": "team"}, "placement": {"tags": ["a"]}}))
    write(W, "stream-create-mirror", js_request(0, 0x0a, "M2", {
        "name": "M2", "mirror": {"name": "ORDERS", "opt_start_seq": 5, "filter_subject": "orders.eu.>"},
        "sources": None, "consumer_limits": None}))
    write(W, "stream-create-sources", js_request(0, 0x0e, "AGG", {
        "name": "AGG", "subjects": ["agg2.>"], "sources": [
            {"name": "ORDERS", "subject_transforms": [{"src": "orders.*.>", "dest": "agg2.{{wildcard(1)}}.>"}]},
            {"name": "REMOTE", "external": {"api": "$JS.hub.API", "deliver": "deliver.hub"}},
            {"name": "ORDERS", "consumer": {"name": "dur", "deliver_subject": "fc.in"}}]}))
    write(W, "stream-update", js_request(1, 0x08, "ORDERS", {
        "name": "ORDERS", "subjects": ["orders.>", "returns.>"], "max_age": 7200000000000,
        "allow_direct": True, "allow_msg_ttl": True}))
    write(W, "consumer-create-filtered", js_request(2, 0x00, "ORDERS.C1.orders.eu", {
        "stream_name": "ORDERS", "action": "create", "config": {
            "name": "C1", "filter_subject": "orders.eu", "ack_policy": "explicit", "ack_wait": 30000000000,
            "deliver_policy": "by_start_sequence", "opt_start_seq": 5, "max_deliver": 5,
            "backoff": [1000000000, 5000000000], "pause_until": "2030-01-02T05:04:05.12+02:00",
            "metadata": {"k": "v"}}}))
    write(W, "consumer-durable-push-fc", js_request(3, 0x00, "ORDERS.D1", {
        "stream_name": "ORDERS", "config": {
            "durable_name": "D1", "deliver_subject": "push.d1", "deliver_group": "g",
            "ack_policy": "flow_control", "flow_control": True, "idle_heartbeat": 1000000000,
            "filter_subjects": ["orders.eu", "orders.us.*"], "deliver_policy": "last_per_subject"}}))
    write(W, "consumer-wq-pinned", js_request(2, 0x10, "WQ", {
        "stream_name": "WQ", "config": {
            "durable_name": None, "name": "w9", "filter_subject": "jobs.us", "ack_policy": "explicit",
            "priority_policy": "pinned_client", "priority_groups": ["A", "jobs/B_1=-"],
            "priority_timeout": -5, "num_replicas": 3, "max_ack_pending": 100}}))
    write(W, "consumer-ephemeral-start-time", js_request(2, 0x00, "INT", {
        "stream_name": "INT", "config": {
            "deliver_policy": "by_start_time", "opt_start_time": "2024-06-01T12:00:00.5+02:00",
            "ack_policy": "all", "replay_policy": "original", "max_waiting": 10, "max_batch": 5,
            "max_expires": 30000000000, "headers_only": True, "inactive_threshold": 5000000000}}))
    write(W, "msg-get", js_request(4, 0x00, "ORDERS", {"last_by_subj": "orders.eu"}))
    write(W, "direct-get-multi", js_request(5, 0x00, "ORDERS", {
        "multi_last": ["orders.*", None], "up_to_time": "2024-01-01T00:00:00Z", "batch": 10, "max_bytes": 1024,
        "NO_HDR": True}))
    write(W, "direct-get-subject", js_request(5, 0x00, "ORDERS.orders.eu", {"no_hdr": True}))
    write(W, "pull-request", js_request(6, 0x00, "ORDERS.C1", {
        "batch": 10, "expires": 5000000000, "idle_heartbeat": 1000000000, "max_bytes": 0,
        "group": "A", "min_pending": None, "min_ack_pending": 5, "id": "pin", "priority": 3}))
    write(W, "purge-and-delete", js_request(7, 0x00, "ORDERS", {"filter": "orders.eu", "keep": 5}))
    write(W, "pause", js_request(9, 0x00, "ORDERS.C1", {"pause_until": "2030-01-01T00:00:00+02:00"}))
    write(W, "ack-next-batch", js_request(10, 0x00, "ORDERS.C1", b'+NXT {"batch":5,"no_wait":true}'))


def damage_xor(f, off, mask):
    """A recovery target's xor damage (src/damage.rs, kind 0) on file `f`."""
    return bytes([0, f]) + off.to_bytes(2, "little") + bytes([len(mask) - 1]) + mask


def damage_truncate(f, to):
    """A recovery target's truncate damage (src/damage.rs, kind 1) on file `f`."""
    return bytes([1, f]) + to.to_bytes(2, "little")


def filestore_recovery():
    """Seeds in the layout of fuzz_targets/filestore_recovery.rs: settings
    (bit 0 crash, bits 1-2 block size), operation count, operations, then
    corruptions (kind, file, arguments). Files are picked by index into the
    store directory's sorted names (0000000001.blk, 0000000001.dlog,
    0000000001.idx, 0000000002.blk, ...), modulo their number."""
    def store(subject, payload, headers):
        return bytes([subject | payload << 3 | headers << 6])

    def remove(seq_byte):
        return bytes([0xE0, seq_byte])

    def seed(settings, ops, corruptions=b""):
        return bytes([settings, len(ops)]) + b"".join(ops) + corruptions

    sync = b"\xf0"
    mixed = [store(i % 8, (i * 3) % 8, i % 3) for i in range(24)]
    small = [store(i % 4, 4 + i % 3, 1) for i in range(16)]
    name = "filestore_recovery"
    write(name, "clean-no-damage", seed(0, mixed[:12] + [remove(3), remove(7), sync] + mixed[12:]))
    write(name, "crash-after-sync",
          seed(1 | 1 << 1, small[:8] + [sync, remove(2), sync] + small[8:] + [remove(10)]))
    write(name, "torn-tail", seed(0, small, damage_truncate(0xFF, 700)))
    write(name, "xor-sealed-block", seed(0, mixed, damage_xor(0, 40, b"\x01\x80\xff\x10")))
    # zero: kind 4, file, offset, count - 1
    write(name, "zeroed-range-crash", seed(1, small + [sync] + small[:4], b"\x04\x03\x64\x00\x3f"))
    # append: kind 2, file, count - 1, bytes (XORed with the target's key stream)
    write(name, "garbage-appended", seed(2 << 1, mixed, b"\x02\xff\x27" + bytes(range(40))))
    # delete an index file (kind 5), then a file (kind 3)
    write(name, "deleted-index-and-block", seed(0, small + small, b"\x05\x01\x03\x03"))
    write(name, "damaged-delete-log",
          seed(0, small + [remove(1), remove(2), remove(20), sync], damage_xor(1, 10, b"\x04") + damage_truncate(4, 30)))


def raft_log_recovery():
    """Seeds in the layout of fuzz_targets/raft_log_recovery.rs: settings
    (bit 0 crash, bits 1-2 segment bytes 100/256/1024/64 MiB, bit 3 no
    zeros ahead, bit 4 no cache), operation count, operations, then
    corruptions (kind, file, arguments). Files are picked by index into the
    directory's sorted relative paths (committed, log/<first>.seg, ...,
    purged, vote), modulo their number."""
    def append(count, size):
        return bytes([(count - 1) | size << 3])

    def truncate(x):
        return bytes([0xA0, x])

    def purge(x):
        return bytes([0xC0, x])

    def commit(x):
        return bytes([0xE0, x])

    vote = b"\xf0"

    def seed(settings, ops, corruptions=b""):
        return bytes([settings, len(ops)]) + b"".join(ops) + corruptions

    history = ([vote] + [append(1 + i % 8, i % 4) for i in range(6)] + [commit(9), vote]
               + [append(3, 1), truncate(2), vote, append(4, 2), commit(40), purge(5)]
               + [append(8, 3), commit(3)])
    name = "raft_log_recovery"
    write(name, "clean-no-damage", seed(0, history))
    write(name, "crash-tiny-segments", seed(1, history))
    write(name, "crash-one-segment-no-zeros", seed(1 | 3 << 1 | 1 << 3, history))
    write(name, "no-cache-1k-segments", seed(2 << 1 | 1 << 4, history))
    # The newest segment sorts last among log/ but before purged and vote.
    write(name, "torn-tail", seed(3 << 1, history, damage_truncate(2, 600)))
    write(name, "xor-earlier-segment", seed(0, history, damage_xor(1, 12, b"\x01\x80\xff\x10")))
    # zero: kind 4, file, offset, count - 1
    write(name, "zeroed-range-crash", seed(1 | 1 << 1, history, b"\x04\x02\x20\x00\x3f"))
    # append: kind 2, file, count - 1, bytes (XORed with the target's key stream)
    write(name, "garbage-appended", seed(3 << 1 | 1 << 3, history, b"\x02\x01\x27" + bytes(range(40))))
    # delete: kind 3, file (the last path: the vote)
    write(name, "vote-deleted", seed(0, history, b"\x03\xff"))


def bridge_payload():
    """The bridge's provider fixtures (bridge/tests/fixtures/provider) on
    their topics, plus the payload shapes and mistakes process.rs's tests
    name. Layout (fuzz_targets/bridge_payload.rs): topic byte (index into
    its TOPICS, or 0x80 + length + topic), receive-time byte (minutes after
    the fixtures' kick-off), payload."""
    fixtures = ROOT / "bridge" / "tests" / "fixtures" / "provider"
    football, basketball, tennis, special, baseball = 0, 1, 2, 6, 3
    for name, topic, minute in [
        ("football-score", football, 5),
        ("football-stats", football, 30),
        ("football-incidents", football, 70),
        ("basketball-score", basketball, 12),
        ("basketball-overtime-detail", basketball, 100),
        ("tennis-score", tennis, 40),
        ("tennis-score-tiebreak", special, 41),
    ]:
        write("bridge_payload", name, bytes([topic, minute]) + (fixtures / f"{name}.json").read_bytes())
    write("bridge_payload", "unsupported-sport",
          bytes([baseball, 1]) + (fixtures / "football-score.json").read_bytes())
    write("bridge_payload", "mixed-entries",
          bytes([football, 2]) + b'[{"id":"ok"},{"id":"bad.id"},{"nope":1},{"id":7,"score":"1-0"},{"id":"x","tlive":[{"time":"3\'","data":"Kick-off"}]}]')
    write("bridge_payload", "wrapped-and-keyed",
          bytes([football, 3]) + b'{"results":[{"id":"a","stats":{"type":2,"home":"1","away":0.5}}],"code":0}')
    write("bridge_payload", "keyed-by-id", bytes([basketball, 4]) + b'{"m1":{"score":["m1",9,0,[1,2,3,4,5],[5,4,3,2,1]]},"m2":{"id":"m2"}}')
    write("bridge_payload", "not-json", bytes([football, 0xfe]) + b"{not json")
    topic = b"thesports/FOOTBALL/match/v1"
    write("bridge_payload", "own-topic", bytes([0x80, len(topic)]) + topic + bytes([0xff])
          + b'{"id":"q4x7m2kd9wz1p0a","score":["q4x7m2kd9wz1p0a",2,[1,0,0,0,0,0,0],[0,0,0,0,0,0,0],1767293460,"note"]}')


# web_token's HS256 secret (fuzz_targets/web_token.rs); the target's other
# keys are tribune-auth's test keys (auth/tests/fixtures) and fixed Ed25519
# seeds, which the seeds below have the target sign itself.
WEB_HS_SECRET = b"tribune-fuzz-hs256-secret-0123456789"


def hs256_token(header, claims, secret=WEB_HS_SECRET):
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    text = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, text.encode(), hashlib.sha256).digest()
    return text + "." + b64(sig)


def web_token():
    """Even first byte: a token as text (an HS256 one valid until 2100, and
    a malformed one). Odd: bytes the target signs a token from (see its
    header): signer (byte 0 >> 1), alg/kid, header extras, iss/aud/sub
    selector, exp and nbf in minutes from now (0x80 absent), more claims."""
    claims = {"iss": "https://idp.example", "aud": "tribune", "sub": "alice",
              "exp": 4102444800, "email": "alice@example.com"}
    write("web_token", "text-hs256-valid", b"\x00" + hs256_token({"alg": "HS256", "typ": "JWT"}, claims).encode())
    write("web_token", "text-malformed", b"\x02" + b"eyJhbGciOiJIUzI1NiJ9.e30.c2ln.extra")

    def signed(signer, algkid=0, extras=0, sel=0, exp=10, nbf=0x80, more=b""):
        return bytes([signer << 1 | 1, algkid, extras, sel, exp & 0xff, nbf & 0xff]) + more

    more = b'{"email":"alice@example.com","groups":["sports","admin"],"iat":1700000000}'
    write("web_token", "sign-hs256", signed(0, more=more))
    write("web_token", "sign-rs256", signed(1, sel=0x05, nbf=-1, more=more))
    write("web_token", "sign-es256", signed(2, sel=0x01, extras=0x21))
    write("web_token", "sign-eddsa-kid", signed(3, exp=120))
    write("web_token", "sign-eddsa-no-kid", signed(4, algkid=0x10))
    write("web_token", "sign-wrong-secret", signed(5))
    write("web_token", "sign-unknown-key-embedded-jwk", signed(6, algkid=0x40, extras=3))
    write("web_token", "sign-ps256-on-rs256-key", signed(7, algkid=0x20))
    write("web_token", "sign-alg-confusion", signed(10, algkid=0x10))
    write("web_token", "sign-alg-none", signed(11, algkid=0x10))
    write("web_token", "sign-header-lies", signed(1, algkid=0x21))
    write("web_token", "sign-expired", signed(0, exp=-10, nbf=-20))
    # Bit 6 of the selector: the claims below override the chosen ones
    # (aud "evil", exp in the past).
    write("web_token", "sign-own-claims-override", signed(0, sel=0x48, exp=-10,
                                                          more=b'{"aud":["web"],"exp":4102444800}'))


def client_session():
    """Sessions against client_session's servers: byte 0 picks the server
    (0 open, 1 users with permissions, 2 accounts with no_auth_user, 3 NKEY
    users), then a protocol header (settings 0; the read sizes) and the
    stream."""
    def seed(name, server, stream, reads=(255,)):
        write("client_session", name, bytes([server, 0, len(reads), *reads]) + stream)

    seed("open-pubsub", 0, b'CONNECT {"verbose":true,"headers":true}\r\nSUB a.> 1\r\n'
         b"PUB a.b _INBOX.x 3\r\nabc\r\nHPUB a.c 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1\r\nPING\r\n")
    seed("users-good", 1, b'CONNECT {"verbose":true,"user":"alice","pass":"p4ss-alice"}\r\n'
         b"SUB sports.x 1\r\nPUB sports.x 2\r\nok\r\nPUB sports.admin.y 1\r\nz\r\nSUB secret 2\r\nPING\r\n")
    seed("users-bad", 1, b'CONNECT {"verbose":true,"user":"alice","pass":"wrong"}\r\nSUB sports.x 1\r\nPING\r\n')
    seed("users-no-connect", 1, b"PING\r\nSUB sports.x 1\r\nPUB sports.x 1\r\na\r\n")
    seed("accounts-noauth", 2, b"CONNECT {}\r\nSUB sports.> 1\r\nPUB sports.f.1 1\r\nx\r\nPING\r\n")
    seed("accounts-a", 2, b'CONNECT {"user":"a","pass":"p4ss-a"}\r\nSUB sports.> 1\r\nPUB sports.f.1 1\r\nx\r\nPING\r\n')
    seed("nkey-forged", 3, b'CONNECT {"nkey":"UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4","sig":"AAAA"}\r\nPING\r\n')
    seed("byte-by-byte", 0, b"CONNECT {}\r\nSUB x 1\r\nPUB x 1\r\nx\r\nPING\r\n", reads=())
    seed("split-reads", 1, b'CONNECT {"user":"alice","pass":"p4ss-alice"}\r\nSUB sports.y 9\r\n'
         b"PUB sports.y 5\r\nhello\r\nPING\r\n", reads=(3, 7, 1))


if __name__ == "__main__":
    client_protocol()
    route_protocol()
    connect()
    redact()
    config()
    auth_jwt()
    websocket_frames()
    websocket_handshake()
    jetstream_api()
    filestore_recovery()
    raft_log_recovery()
    bridge_payload()
    web_token()
    client_session()
