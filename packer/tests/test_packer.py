"""Packer template, systemd units and the boot-time renderer.

- `packer validate` / `packer fmt -check` with Debian's packer 1.6.6;
- the units: systemd-analyze verify, and the properties deployment relies on
  (lame-duck stop, LimitNOFILE, hardening);
- render-config for real: it reads an IMDSv2 endpoint (a small local server
  that speaks the IMDSv2 token protocol, since LocalStack serves no IMDS) and
  the TLS secret from LocalStack's Secrets Manager, writes broker.conf and the
  PEM files, and tribune-broker accepts the result (`-t`).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKER = REPO / "packer"
UNITS = PACKER / "files" / "systemd"
sys.path.insert(0, str(REPO / "terraform" / "tests"))
from tls_material import make_tls_bundle  # noqa: E402

LOCALSTACK = os.environ.get("TRIBUNE_LOCALSTACK", "http://127.0.0.1:4566")
BIN_NAMES = ("tribune-broker", "tribune-auth", "tribune-bridge")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=300, **kw)


def _broker_bin() -> Path:
    path = Path(os.environ.get("TRIBUNE_BROKER_BIN", REPO / "target" / "debug" / "tribune-broker"))
    if not path.exists():
        pytest.fail(f"tribune-broker not found at {path}; run `cargo build -p tribune-broker`")
    return path


@pytest.fixture(scope="module")
def packer() -> str:
    found = shutil.which("packer")
    if not found:
        pytest.fail("packer is not installed (apt-get install packer; .ci/run does it)")
    return found


def _packer_env() -> dict[str, str]:
    return dict(os.environ, CHECKPOINT_DISABLE="1", PACKER_CACHE_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / "packer-cache"))


def test_packer_validate(packer: str, tmp_path: Path) -> None:
    # validate stats the binaries the file provisioners upload: point it at
    # the debug builds (make ami uses target/release).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    debug = _broker_bin().parent
    for name in BIN_NAMES:
        src = debug / name
        if src.exists():
            (bin_dir / name).symlink_to(src)
        else:  # a binary still being written by another crate: validate needs only a file
            (bin_dir / name).write_bytes(b"")
    proc = _run([packer, "validate", f"-var=bin_dir={bin_dir}", str(PACKER)], env=_packer_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_packer_validate_reports_missing_binaries(packer: str, tmp_path: Path) -> None:
    proc = _run([packer, "validate", f"-var=bin_dir={tmp_path / 'nowhere'}", str(PACKER)],
                env=_packer_env(), cwd=tmp_path)
    assert proc.returncode != 0
    assert "tribune-broker" in proc.stdout + proc.stderr


def test_packer_fmt(packer: str) -> None:
    proc = _run([packer, "fmt", "-check", str(PACKER)], env=_packer_env())
    assert proc.returncode == 0, f"packer fmt would change: {proc.stdout}{proc.stderr}"


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # keys are case-sensitive
    # Repeated keys (SystemCallFilter=, Wants=) are legal in units; keep the last.
    cp.read_string((UNITS / f"{name}.service").read_text())
    return cp


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "User": "tribune",
}


@pytest.mark.parametrize("name", ["tribune-broker", "tribune-auth", "tribune-bridge"])
def test_units_hardened(name: str) -> None:
    svc = _unit(name)["Service"]
    for key, value in HARDENING.items():
        assert svc.get(key) == value, f"{name}: {key}={svc.get(key)!r}, want {value!r}"
    assert int(svc["LimitNOFILE"]) >= 65536
    assert svc["Restart"] == "on-failure"


def test_broker_stop_is_lame_duck() -> None:
    unit = _unit("tribune-broker")
    svc = unit["Service"]
    assert svc["KillSignal"] == "SIGUSR2"
    assert svc["KillMode"] == "mixed"
    assert svc["LimitNOFILE"] == "1048576"
    # Long enough for lame_duck_duration + grace period of the rendered config.
    template = (PACKER / "files" / "templates" / "broker.conf.tmpl").read_text()
    assert 'lame_duck_duration: "30s"' in template and 'lame_duck_grace_period: "10s"' in template
    assert int(svc["TimeoutStopSec"]) > 30 + 10
    assert "tribune-render-config.service" in unit["Unit"]["After"]


def test_units_pass_systemd_analyze() -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze not installed (the AMI's verify step runs it on the builder)")
    proc = _run([analyze, "verify", *sorted(str(p) for p in UNITS.glob("*.service"))])
    # The binaries live on the AMI, not on this machine: that one complaint is expected.
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "is not executable" not in line]
    assert not problems, "\n".join(problems)


def test_scripts_parse() -> None:
    for script in (PACKER / "scripts").glob("*.sh"):
        proc = _run(["bash", "-n", str(script)])
        assert proc.returncode == 0, f"{script}: {proc.stderr}"


# --- render-config against an IMDSv2 endpoint and LocalStack -----------------

class FakeImds(BaseHTTPRequestHandler):
    """IMDSv2's protocol: PUT /latest/api/token, then GETs with the token."""

    token = secrets.token_hex(16)
    data: dict[str, str] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_PUT(self) -> None:
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._send(200, self.token)
        else:
            self._send(400, "bad token request")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._send(401, "")  # IMDSv1-style request: refused, like http_tokens=required
            return
        path = self.path.removeprefix("/latest/")
        if path in self.data:
            self._send(200, self.data[path])
        else:
            self._send(404, "")

    def _send(self, code: int, body: str) -> None:
        raw = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def imds() -> Iterator[tuple[str, dict[str, str]]]:
    data: dict[str, str] = {}
    handler = type("Handler", (FakeImds,), {"data": data})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", data
    finally:
        server.shutdown()
        server.server_close()


def _localstack_sm():
    import urllib.request
    try:
        urllib.request.urlopen(f"{LOCALSTACK}/_localstack/health", timeout=5).read()
    except OSError as e:
        pytest.fail(f"LocalStack is not reachable at {LOCALSTACK} ({e}); start it with `make localstack`")
    return boto3.client("secretsmanager", endpoint_url=LOCALSTACK, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _own_group() -> str:
    """The key's group: `tribune` on the AMI; here whatever group we run as."""
    import grp
    return grp.getgrgid(os.getegid()).gr_name


TEMPLATE = PACKER / "files" / "templates" / "broker.conf.tmpl"


def _render(tmp_path: Path, imds_url: str, timeout_s: str = "5",
            template: Path = TEMPLATE) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TRIBUNE_IMDS_ENDPOINT=imds_url, TRIBUNE_SECRETS_ENDPOINT=LOCALSTACK,
               TRIBUNE_ETC=str(tmp_path / "etc"),
               TRIBUNE_TEMPLATE=str(template),
               TRIBUNE_RETRY_SECONDS=timeout_s, TRIBUNE_GROUP=_own_group(), TRIBUNE_PUBLIC_IP_WAIT_SECONDS="0",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.pop("AWS_PROFILE", None)
    return _run([sys.executable, str(PACKER / "files" / "render-config")], env=env)


def _instance(data: dict[str, str], cluster: str, public_ip: str | None = "198.51.100.7") -> None:
    data.update({
        "user-data": f"# tribune bootstrap\nTRIBUNE_REGION=us-east-1\nTRIBUNE_TAG_KEY=tribune:cluster\nTRIBUNE_CLUSTER={cluster}\n",
        "meta-data/instance-id": "i-0123456789abcdef0",
        "meta-data/local-ipv4": "10.42.1.17",
        "meta-data/mac": "0a:1b:2c:3d:4e:5f",
        "meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/vpc-id": "vpc-0feedbeef",
        "meta-data/placement/availability-zone": "us-east-1b",
    })
    if public_ip:
        data["meta-data/public-ipv4"] = public_ip


def test_render_config_from_imds_and_secrets_manager(tmp_path: Path, imds) -> None:
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster)
    sm = _localstack_sm()
    bundle = make_tls_bundle(["nats.example.test"])
    sm.create_secret(Name=f"tribune/{cluster}/tls", SecretString=json.dumps(bundle))
    try:
        proc = _render(tmp_path, url)
        assert proc.returncode == 0, proc.stderr
        etc = tmp_path / "etc"
        conf = (etc / "broker.conf").read_text()
        assert "@@" not in conf
        assert 'server_name: "' + cluster + '-us-east-1b"' in conf
        assert 'client_advertise: "198.51.100.7:4222"' in conf
        assert 'vpc_id: "vpc-0feedbeef"' in conf and 'region: "us-east-1"' in conf
        assert f'tag_value: "{cluster}"' in conf and 'tag_key: "tribune:cluster"' in conf
        assert (etc / "tls" / "server-key.pem").read_text() == bundle["key_pem"]
        assert (etc / "tls" / "server-key.pem").stat().st_mode & 0o777 == 0o640
        assert (etc / "broker.conf").stat().st_mode & 0o777 == 0o640
        # The broker accepts what was rendered (ExecStartPre does the same).
        check = _run([str(_broker_bin()), "-c", str(etc / "broker.conf"), "-t"])
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        sm.delete_secret(SecretId=f"tribune/{cluster}/tls", ForceDeleteWithoutRecovery=True)


def test_render_config_without_public_ip(tmp_path: Path, imds) -> None:
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster, public_ip=None)
    sm = _localstack_sm()
    sm.create_secret(Name=f"tribune/{cluster}/tls", SecretString=json.dumps(make_tls_bundle(["x.test"])))
    try:
        proc = _render(tmp_path, url)
        assert proc.returncode == 0, proc.stderr
        conf = (tmp_path / "etc" / "broker.conf").read_text()
        assert "\nclient_advertise" not in conf
        assert "no public IPv4" in proc.stderr
        check = _run([str(_broker_bin()), "-c", str(tmp_path / "etc" / "broker.conf"), "-t"])
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        sm.delete_secret(SecretId=f"tribune/{cluster}/tls", ForceDeleteWithoutRecovery=True)


def test_render_config_missing_secret_fails_clearly(tmp_path: Path, imds) -> None:
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster)
    _localstack_sm()
    proc = _render(tmp_path, url, timeout_s="60")
    assert proc.returncode == 1
    assert f"tribune/{cluster}/tls" in proc.stderr and "ResourceNotFoundException" in proc.stderr
    assert not (tmp_path / "etc" / "broker.conf").exists()


@pytest.mark.parametrize(
    ("user_data", "message"),
    [
        ("TRIBUNE_REGION=us-east-1\nTRIBUNE_TAG_KEY=tribune:cluster\n", "lacks TRIBUNE_CLUSTER"),
        ("TRIBUNE_REGION=us-east-1\nTRIBUNE_TAG_KEY=k\nTRIBUNE_CLUSTER=Bad\"Name\n", "TRIBUNE_CLUSTER"),
        ("just some text\n", "expected KEY=VALUE"),
    ],
    ids=["missing-key", "bad-cluster", "garbage"],
)
def test_render_config_rejects_bad_user_data(tmp_path: Path, imds, user_data: str, message: str) -> None:
    url, data = imds
    _instance(data, "unused")
    data["user-data"] = user_data
    proc = _render(tmp_path, url)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr


def test_render_config_needs_imdsv2_token(tmp_path: Path, imds) -> None:
    """The fake endpoint refuses token-less GETs, as IMDS does with
    http_tokens=required; the renderer only ever uses tokens, so it works
    (covered above) and an unreachable IMDS fails within the retry budget."""
    proc = _render(tmp_path, "http://127.0.0.1:9", timeout_s="2")
    assert proc.returncode == 1
    assert "IMDS user-data" in proc.stderr and "still failing" in proc.stderr


# --- routes: the rendered config never has an open route port ------------------

def _renderer():
    """render-config as a module (it is an extensionless script)."""
    import importlib.util
    from importlib.machinery import SourceFileLoader
    loader = SourceFileLoader("render_config", str(PACKER / "files" / "render-config"))
    spec = importlib.util.spec_from_loader("render_config", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _without_route_tls(template: str) -> str:
    """The template with the cluster block's tls {} (indented) cut out."""
    cut = re.sub(r"\n  tls \{.*?\n  \}\n", "\n", template, count=1, flags=re.S)
    assert cut != template and "\ntls {" in cut, "only the cluster block's tls {} goes"
    return cut


def test_shipped_template_uses_route_mtls() -> None:
    """The AMI's routes are mutual TLS (tribune-broker's route TLS always
    requires and verifies the peer's certificate against ca_file), always
    on: the template has no switch to turn it off."""
    rc = _renderer()
    values = {m: "x" for m in rc.PLACEHOLDER.findall(TEMPLATE.read_text())}
    conf = rc.render(TEMPLATE.read_text(), values)
    rc.check_routes_guarded(conf)
    cluster = conf[conf.index("\ncluster {"):]
    tls = cluster[cluster.index("  tls {"):]
    tls = tls[:tls.index("\n  }")]
    for key in ("cert_file", "key_file", "ca_file"):
        assert f"{key}:" in tls, key


def test_renderer_refuses_an_open_cluster_block() -> None:
    rc = _renderer()
    guarded_by_auth = "cluster {\n  listen: 0.0.0.0:6222\n  authorization {\n    user: r\n    password: p\n  }\n}\n"
    rc.check_routes_guarded(guarded_by_auth)
    rc.check_routes_guarded("listen: 0.0.0.0:4222\ntls {\n  cert_file: a\n}\n")  # no cluster at all
    open_blocks = [
        "cluster {\n  listen: 0.0.0.0:6222\n}\n",
        # A tls {} outside the cluster block, or in a comment, does not count.
        "tls {\n  cert_file: a\n}\ncluster {\n  listen: 0.0.0.0:6222\n  # tls { cert_file: a }\n}\n",
        _without_route_tls(TEMPLATE.read_text()),
    ]
    for conf in open_blocks:
        with pytest.raises(rc.RenderError, match="neither tls"):
            rc.check_routes_guarded(conf)


def test_render_config_refuses_a_template_without_route_security(tmp_path: Path, imds) -> None:
    """End to end: a template edited to drop the route TLS fails the render
    and leaves no broker.conf behind."""
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster)
    sm = _localstack_sm()
    sm.create_secret(Name=f"tribune/{cluster}/tls", SecretString=json.dumps(make_tls_bundle(["x.test"])))
    open_template = tmp_path / "open.tmpl"
    open_template.write_text(_without_route_tls(TEMPLATE.read_text()))
    try:
        proc = _render(tmp_path, url, template=open_template)
        assert proc.returncode == 1
        assert "neither tls {} nor authorization {}" in proc.stderr, proc.stderr
        assert not (tmp_path / "etc" / "broker.conf").exists()
    finally:
        sm.delete_secret(SecretId=f"tribune/{cluster}/tls", ForceDeleteWithoutRecovery=True)
