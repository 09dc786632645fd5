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


if __name__ == "__main__":
    client_protocol()
    route_protocol()
    connect()
    redact()
    config()
    auth_jwt()
    websocket_frames()
