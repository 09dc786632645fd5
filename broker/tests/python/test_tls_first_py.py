"""nats-py and `tls { handshake_first: <delay> }`, against every selected
server (see test_nats_py.py), each run compared with nats-server's.

With a fallback delay one port serves clients that start with the TLS
handshake (nats-py `tls_handshake_first=True`) and clients that wait for INFO
first; a client without TLS gets INFO in the clear and is then held to
`tls_required`. Certificates are made with the openssl command line.
Timeouts are only guards against hanging, never assertions about speed.
"""

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import nats
import pytest

from test_nats_py import SELECTED, BINARIES, WAIT, Server, run


def make_pki(d: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl command line not available")

    def sh(*args):
        subprocess.run(args, cwd=d, check=True, capture_output=True)

    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
       "-out", "ca.pem", "-days", "2", "-subj", "/CN=tls-first test CA")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
       "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
       "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf")


async def outcome(url: str, **kw) -> str:
    """'works' when a message goes round trip, else the error's class."""
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                                connect_timeout=3, **kw)
    except Exception as e:  # the outcome is the point: any failure is compared
        return f"refused ({type(e).__name__})"
    try:
        sub = await nc.subscribe("tls.first")
        await nc.publish("tls.first", b"hello")
        msg = await sub.next_msg(timeout=WAIT)
        tls_required = nc._server_info.get("tls_required", False)
        return f"works (tls_required={tls_required})" if msg.data == b"hello" else "wrong data"
    finally:
        await nc.close()


async def scenario(binary: str, workdir: Path, pki: Path) -> dict:
    workdir.mkdir()
    conf = workdir / "server.conf"
    conf.write_text(
        "tls {\n"
        f'  cert_file: "{pki / "cert.pem"}"\n'
        f'  key_file: "{pki / "key.pem"}"\n'
        '  handshake_first: "300ms"\n'
        "}\n"
    )
    srv = Server(binary, workdir, args=["-c", str(conf)])
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        url = f"tls://127.0.0.1:{srv.port}"
        return {
            "tls first": await outcome(url, tls=ctx, tls_handshake_first=True),
            "info first": await outcome(url, tls=ctx),
            "no tls": await outcome(f"nats://127.0.0.1:{srv.port}"),
        }
    finally:
        srv.stop()


def test_handshake_first_with_fallback_matches_nats_server(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    seen = {}
    for name in SELECTED:
        seen[name] = run(scenario(BINARIES[name](), tmp_path / name, pki))
    for name, got in seen.items():
        assert got["tls first"] == "works (tls_required=True)", (name, got)
        assert got["info first"].startswith("works"), (name, got)
    if "nats-server" in seen:
        for name, got in seen.items():
            assert got == seen["nats-server"], f"{name} differs from nats-server: {got} vs {seen['nats-server']}"
