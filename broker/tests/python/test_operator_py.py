"""nats-py with `user_credentials=` in operator mode, against nats-server and
tribune-broker started with the same config (`operator`, `system_account`,
`resolver: MEMORY`, `resolver_preload`).

The operator, accounts and users are made here: nkeys for the keys, and
NATS JWTs (`header.claims.sig`, ed25519 over the first two parts, signed by
the issuer's nkey) encoded by hand, as nsc writes them.

Timeouts are guards against hanging, never assertions about speed.
"""

import asyncio
import base64
import hashlib
import json
import os
import time

import nats
import nkeys
import pytest
from nats.errors import NoServersError

from test_nats_py import SELECTED, BINARIES, WAIT, Server, barrier, run


def new_key(prefix):
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_jwt(claims: dict, signer) -> str:
    """Sign `claims` as nats-io/jwt v2 does: iss, iat, and a jti hashed
    from the claims."""
    claims = dict(claims, iss=signer.public_key.decode(), iat=int(time.time()))
    claims["jti"] = base64.b32encode(
        hashlib.sha512(json.dumps(claims, sort_keys=True).encode()).digest()[:32]
    ).decode().rstrip("=")
    header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = signer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64(sig)}"


def creds(path, token: str, key) -> str:
    path.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{token}\n"
        "------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{key.seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )
    return str(path)


def operator_claims_jwt(op, sys_acc) -> str:
    """The operator's JWT, naming `sys_acc` its system account."""
    return encode_jwt(
        {"sub": op.public_key.decode(), "name": "OP",
         "nats": {"system_account": sys_acc.public_key.decode(),
                  "type": "operator", "version": 2}},
        op,
    )


def user_claims(key, name, **nats_fields):
    return {
        "sub": key.public_key.decode(),
        "name": name,
        "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                 "type": "user", "version": 2, **nats_fields},
    }


def account_claims(key, name, **nats_fields):
    return {
        "sub": key.public_key.decode(),
        "name": name,
        "nats": {"limits": {"subs": -1, "data": -1, "payload": -1, "conn": -1},
                 "type": "account", "version": 2, **nats_fields},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An operator, a system account, accounts A and B (B's user signed by
    B's signing key) and their users' .creds files."""
    d = tmp_path_factory.mktemp("operator")
    op = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    sys_acc = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    a = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    b = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    b_signer = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    operator_jwt = operator_claims_jwt(op, sys_acc)
    preload = {
        sys_acc.public_key.decode(): encode_jwt(account_claims(sys_acc, "SYS"), op),
        a.public_key.decode(): encode_jwt(account_claims(a, "A"), op),
        b.public_key.decode(): encode_jwt(
            account_claims(b, "B", signing_keys=[b_signer.public_key.decode()]), op
        ),
    }
    (d / "op.jwt").write_text(operator_jwt)
    lines = "".join(f"  {k}: {v}\n" for k, v in preload.items())
    config = (
        f"operator: \"{d / 'op.jwt'}\"\n"
        f"system_account: {sys_acc.public_key.decode()}\n"
        "resolver: MEMORY\n"
        f"resolver_preload: {{\n{lines}}}\n"
    )
    (d / "server.conf").write_text(config)

    alice = new_key(nkeys.PREFIX_BYTE_USER)
    bob = new_key(nkeys.PREFIX_BYTE_USER)
    mallory = new_key(nkeys.PREFIX_BYTE_USER)
    stranger = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    return {
        "config": d / "server.conf",
        "alice": creds(d / "alice.creds", encode_jwt(user_claims(alice, "alice"), a), alice),
        "bob": creds(
            d / "bob.creds",
            encode_jwt(
                user_claims(bob, "bob", issuer_account=b.public_key.decode()), b_signer
            ),
            bob,
        ),
        # Claims account A but is signed by a key A does not list.
        "mallory": creds(
            d / "mallory.creds",
            encode_jwt(
                user_claims(mallory, "mallory", issuer_account=a.public_key.decode()),
                stranger,
            ),
            mallory,
        ),
    }


@pytest.fixture(scope="module", params=SELECTED)
def server(request, tmp_path_factory, world):
    name = request.param
    srv = Server(
        BINARIES[name](),
        tmp_path_factory.mktemp(f"{name}-operator"),
        args=["-c", str(world["config"])],
    )
    yield srv
    srv.stop()


async def connect(server, credentials):
    return await nats.connect(
        server.url,
        user_credentials=credentials,
        allow_reconnect=False,
        connect_timeout=WAIT,
        max_reconnect_attempts=0,
    )


def test_user_credentials_pub_sub_in_own_account(server, world):
    async def main():
        alice = await connect(server, world["alice"])
        bob = await connect(server, world["bob"])
        sub_a = await alice.subscribe("news")
        sub_b = await bob.subscribe("news")
        await barrier(alice)
        await barrier(bob)
        await bob.publish("news", b"from B")
        await alice.publish("news", b"from A")
        await barrier(bob)
        await barrier(alice)
        assert (await sub_a.next_msg(timeout=WAIT)).data == b"from A"
        assert (await sub_b.next_msg(timeout=WAIT)).data == b"from B"
        # Nothing crossed from one account into the other.
        for sub in (sub_a, sub_b):
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=0.2)
        await alice.close()
        await bob.close()

    run(main())


def test_user_of_a_key_the_account_does_not_list_is_refused(server, world):
    async def main():
        errors = []

        async def on_error(e):
            errors.append(e)

        with pytest.raises((NoServersError, nats.errors.Error)):
            await nats.connect(
                server.url,
                user_credentials=world["mallory"],
                allow_reconnect=False,
                connect_timeout=WAIT,
                max_reconnect_attempts=0,
                error_cb=on_error,
            )
        assert any("authorization violation" in str(e).lower() for e in errors), errors

    run(main())


@pytest.mark.parametrize("name", SELECTED)
def test_full_resolver_push_then_revoke(name, tmp_path):
    """`resolver { type: full }`: an account pushed by a system user over
    `$SYS.REQ.CLAIMS.UPDATE` admits its users at once, and a push that
    revokes a user ends that user's live connection."""
    op = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    sys_acc = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    app = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    operator_jwt = operator_claims_jwt(op, sys_acc)
    sys_pub = sys_acc.public_key.decode()
    config = tmp_path / "server.conf"
    config.write_text(
        f"operator: {operator_jwt}\n"
        f"system_account: {sys_pub}\n"
        f"resolver: {{ type: full, dir: \"{tmp_path / 'jwt'}\" }}\n"
        f"resolver_preload: {{ {sys_pub}: {encode_jwt(account_claims(sys_acc, 'SYS'), op)} }}\n"
    )
    admin_key = new_key(nkeys.PREFIX_BYTE_USER)
    admin_creds = creds(tmp_path / "admin.creds",
                        encode_jwt(user_claims(admin_key, "admin"), sys_acc), admin_key)
    fan = new_key(nkeys.PREFIX_BYTE_USER)
    fan_creds = creds(tmp_path / "fan.creds", encode_jwt(user_claims(fan, "fan"), app), fan)
    srv = Server(BINARIES[name](), tmp_path / "run", args=["-c", str(config)])

    async def main():
        admin = await connect(srv, admin_creds)
        reply = await admin.request(
            "$SYS.REQ.CLAIMS.UPDATE",
            encode_jwt(account_claims(app, "APP"), op).encode(),
            timeout=WAIT,
        )
        data = json.loads(reply.data)["data"]
        assert (data["code"], data["message"]) == (200, "jwt updated")

        errors = []
        closed = []

        async def on_error(e):
            errors.append(e)

        async def on_closed():
            closed.append(True)

        nc = await nats.connect(
            srv.url, user_credentials=fan_creds, allow_reconnect=False,
            connect_timeout=WAIT, max_reconnect_attempts=0,
            error_cb=on_error, closed_cb=on_closed,
        )
        await barrier(nc)
        time.sleep(1.1)  # a revocation covers JWTs issued before it
        revoking = account_claims(
            app, "APP", revocations={fan.public_key.decode(): int(time.time())}
        )
        reply = await admin.request(
            f"$SYS.REQ.ACCOUNT.{app.public_key.decode()}.CLAIMS.UPDATE",
            encode_jwt(revoking, op).encode(),
            timeout=WAIT,
        )
        assert json.loads(reply.data)["data"]["message"] == "jwt updated"
        for _ in range(100):
            if closed:
                break
            await asyncio.sleep(0.1)
        assert closed, "the revoked user's connection was closed"
        await admin.close()

    try:
        run(main())
    finally:
        srv.stop()


def memory_resolver_config(tmp_path, op, sys_acc, preload):
    """`server.conf` in `tmp_path`: `op` trusted, `sys_acc` the system
    account, and `preload` (account key pair -> claims) signed by `op`."""
    lines = "".join(f"  {k.public_key.decode()}: {encode_jwt(c, op)}\n" for k, c in preload.items())
    config = tmp_path / "server.conf"
    config.write_text(
        f"operator: {operator_claims_jwt(op, sys_acc)}\n"
        f"system_account: {sys_acc.public_key.decode()}\n"
        f"resolver: MEMORY\nresolver_preload: {{\n{lines}}}\n"
    )
    return config


def activation_jwt(exporter, importer, subject, kind):
    """An activation token, as `nsc generate activation` writes one."""
    return encode_jwt(
        {"sub": importer.public_key.decode(), "name": subject,
         "nats": {"subject": subject, "kind": kind, "type": "activation", "version": 2}},
        exporter,
    )


@pytest.mark.parametrize("name", SELECTED)
def test_jwt_exports_and_imports(name, tmp_path):
    """Account JWT exports and imports: a public stream, a private stream
    imported with an activation token (and without one), and a service
    imported under a local subject."""
    op = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    sys_acc = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    exp = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    imp = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    other = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    exp_pub = exp.public_key.decode()
    exports = [
        {"subject": "sports.>", "type": "stream"},
        {"subject": "vip.>", "type": "stream", "token_req": True},
        {"subject": "svc.time", "type": "service"},
    ]

    def imports(token):
        return [
            {"subject": "sports.>", "account": exp_pub, "type": "stream"},
            {"subject": "vip.>", "account": exp_pub, "type": "stream", "token": token},
            {"subject": "svc.time", "account": exp_pub, "type": "service",
             "local_subject": "time"},
        ]

    # nats-io/jwt reads absent import and export limits as none allowed.
    open_limits = {"subs": -1, "data": -1, "payload": -1, "conn": -1,
                   "imports": -1, "exports": -1, "wildcards": True}
    preload = {
        sys_acc: account_claims(sys_acc, "SYS"),
        exp: account_claims(exp, "EXP", exports=exports, limits=open_limits),
        imp: account_claims(imp, "IMP", limits=open_limits,
                            imports=imports(activation_jwt(exp, imp, "vip.>", "stream"))),
        other: account_claims(other, "OTHER", imports=imports(""), limits=open_limits),
    }
    config = memory_resolver_config(tmp_path, op, sys_acc, preload)

    def user_creds(account, label):
        key = new_key(nkeys.PREFIX_BYTE_USER)
        return creds(tmp_path / f"{label}.creds", encode_jwt(user_claims(key, label), account), key)

    srv = Server(BINARIES[name](), tmp_path / "run", args=["-c", str(config)])

    async def main():
        e = await connect(srv, user_creds(exp, "exp"))

        async def answer(msg):
            await msg.respond(b"noon")

        await e.subscribe("svc.time", cb=answer)
        await barrier(e)
        seen = {}
        for label, account in (("IMP", imp), ("OTHER", other)):
            nc = await connect(srv, user_creds(account, label.lower()))
            sub = await nc.subscribe(">")
            await barrier(nc)
            await e.publish("sports.football.1", b"goal")
            await e.publish("vip.lounge", b"secret")
            await barrier(e)
            got = []
            while True:
                try:
                    m = await sub.next_msg(timeout=0.3)
                except nats.errors.TimeoutError:
                    break
                if not m.subject.startswith(("_BARRIER", "_INBOX")):
                    got.append(f"{m.subject} {m.data.decode()}")
            reply = await nc.request("time", b"now?", timeout=WAIT)
            got.append(f"time: {reply.data.decode()}")
            seen[label] = got
            await nc.close()
        await e.close()
        assert seen == {
            "IMP": ["sports.football.1 goal", "vip.lounge secret", "time: noon"],
            "OTHER": ["sports.football.1 goal", "time: noon"],
        }, seen

    try:
        run(main())
    finally:
        srv.stop()


@pytest.mark.parametrize("name", SELECTED)
def test_imports_beyond_the_account_limits_refuse_its_users(name, tmp_path):
    """An account JWT with imports but no `imports` limit (absent reads as
    zero in nats-io/jwt) does not validate: its users are refused."""
    op = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    sys_acc = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    exp = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    imp = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    stream = {"subject": "sports.>", "account": exp.public_key.decode(), "type": "stream"}
    preload = {
        sys_acc: account_claims(sys_acc, "SYS"),
        imp: account_claims(imp, "IMP", imports=[stream]),
    }
    config = memory_resolver_config(tmp_path, op, sys_acc, preload)
    key = new_key(nkeys.PREFIX_BYTE_USER)
    user = creds(tmp_path / "imp.creds", encode_jwt(user_claims(key, "imp"), imp), key)
    srv = Server(BINARIES[name](), tmp_path / "run", args=["-c", str(config)])

    async def main():
        errors = []

        async def on_error(e):
            errors.append(e)

        with pytest.raises((NoServersError, nats.errors.Error)):
            await nats.connect(srv.url, user_credentials=user, allow_reconnect=False,
                               connect_timeout=WAIT, max_reconnect_attempts=0,
                               error_cb=on_error)
        assert any("authorization violation" in str(e).lower() for e in errors), errors

    try:
        run(main())
    finally:
        srv.stop()
