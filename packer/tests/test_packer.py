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
from pathlib import Path
from typing import Iterator

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKER = REPO / "packer"
UNITS = PACKER / "files" / "systemd"
sys.path.insert(0, str(REPO / "terraform" / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(PACKER / "files"))
from node_secrets import AUTH_BIN, bootstrapped  # noqa: E402
from fake_imds import imds_server  # noqa: E402
import tribune_webapps as webapps  # noqa: E402  (the rules render-config and make web-app share)

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


def template_dir(packer: str) -> Path:
    """The template directory for the installed Packer (scripts/layout.sh)."""
    proc = _run([str(PACKER / "scripts" / "layout.sh")], env=dict(os.environ, PACKER=packer))
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.split()[0])


def test_packer_validate(packer: str, tmp_path: Path) -> None:
    # validate stats the binaries the file provisioners upload: point it at
    # the debug builds (make ami uses the static musl build).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    debug = _broker_bin().parent
    for name in BIN_NAMES:
        src = debug / name
        if src.exists():
            (bin_dir / name).symlink_to(src)
        else:  # a binary still being written by another crate: validate needs only a file
            (bin_dir / name).write_bytes(b"")
    proc = _run([packer, "validate", f"-var=bin_dir={bin_dir}", str(template_dir(packer))],
                env=_packer_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_packer_validate_reports_missing_binaries(packer: str, tmp_path: Path) -> None:
    proc = _run([packer, "validate", f"-var=bin_dir={tmp_path / 'nowhere'}", str(template_dir(packer))],
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
    "User": "tribune",
}
# The broker binds 443 (WebSocket for browsers): that capability alone.
CAPABILITIES = {"tribune-broker": "CAP_NET_BIND_SERVICE"}


@pytest.mark.parametrize("name", ["tribune-broker", "tribune-auth", "tribune-bridge"])
def test_units_hardened(name: str) -> None:
    svc = _unit(name)["Service"]
    for key, value in HARDENING.items():
        assert svc.get(key) == value, f"{name}: {key}={svc.get(key)!r}, want {value!r}"
    caps = CAPABILITIES.get(name, "")
    assert (svc.get("CapabilityBoundingSet"), svc.get("AmbientCapabilities")) == (caps, caps), name
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

@pytest.fixture
def imds() -> Iterator[tuple[str, dict[str, str]]]:
    with imds_server() as served:
        yield served


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


def _instance(data: dict[str, str], cluster: str, public_ip: str | None = "198.51.100.7",
              client_host: str | None = None) -> None:
    data.update({
        "user-data": f"# tribune bootstrap\nTRIBUNE_REGION=us-east-1\nTRIBUNE_TAG_KEY=tribune:cluster\nTRIBUNE_CLUSTER={cluster}\n"
                     + (f"TRIBUNE_CLIENT_HOST={client_host}\n" if client_host else ""),
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
    with bootstrapped(sm, cluster, LOCALSTACK, []) as material:
        bundle = material["tls"]
        proc = _render(tmp_path, url)
        assert proc.returncode == 0, proc.stderr
        etc = tmp_path / "etc"
        conf = (etc / "broker.conf").read_text()
        assert "@@" not in conf
        assert 'server_name: "' + cluster + '-us-east-1b"' in conf
        assert 'client_advertise: "198.51.100.7:4222"' in conf
        assert '\n  advertise: "198.51.100.7:443"' in conf  # ws_connect_urls for browsers
        assert 'vpc_id: "vpc-0feedbeef"' in conf and 'region: "us-east-1"' in conf
        assert f'tag_value: "{cluster}"' in conf and 'tag_key: "tribune:cluster"' in conf
        assert (etc / "tls" / "server-key.pem").read_text() == bundle["key_pem"]
        assert (etc / "tls" / "server-key.pem").stat().st_mode & 0o777 == 0o640
        assert (etc / "broker.conf").stat().st_mode & 0o777 == 0o640
        # The broker accepts what was rendered (ExecStartPre does the same).
        check = _run([str(_broker_bin()), "-c", str(etc / "broker.conf"), "-t"])
        assert check.returncode == 0, check.stdout + check.stderr


def test_render_config_advertises_the_client_name(tmp_path: Path, imds) -> None:
    """With nats.<domain> in user data (Terraform's client_hostname, the
    NLB's name), INFO's connect_urls and ws_connect_urls name it, not the
    node's Elastic IP: clients reconnect through the load balancer."""
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster, client_host="nats.tribune.test")
    sm = _localstack_sm()
    with bootstrapped(sm, cluster, LOCALSTACK, []):
        proc = _render(tmp_path, url)
        assert proc.returncode == 0, proc.stderr
        conf = (tmp_path / "etc" / "broker.conf").read_text()
        assert '\nclient_advertise: "nats.tribune.test:4222"' in conf
        assert '\n  advertise: "nats.tribune.test:443"' in conf
        assert "198.51.100.7" not in conf.split("# Instance", 1)[1].split("\n", 1)[1]
        assert "advertising nats.tribune.test" in proc.stderr
        check = _run([str(_broker_bin()), "-c", str(tmp_path / "etc" / "broker.conf"), "-t"])
        assert check.returncode == 0, check.stdout + check.stderr


def test_render_config_without_public_ip(tmp_path: Path, imds) -> None:
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster, public_ip=None)
    sm = _localstack_sm()
    with bootstrapped(sm, cluster, LOCALSTACK, []):
        proc = _render(tmp_path, url)
        assert proc.returncode == 0, proc.stderr
        conf = (tmp_path / "etc" / "broker.conf").read_text()
        assert "\nclient_advertise" not in conf and "\n  advertise" not in conf
        assert "no public IPv4" in proc.stderr
        check = _run([str(_broker_bin()), "-c", str(tmp_path / "etc" / "broker.conf"), "-t"])
        assert check.returncode == 0, check.stdout + check.stderr


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
        ("TRIBUNE_REGION=us-east-1\nTRIBUNE_TAG_KEY=k\nTRIBUNE_CLUSTER=ok-name\nTRIBUNE_CLIENT_HOST=nats.x\"\n",
         "TRIBUNE_CLIENT_HOST"),
    ],
    ids=["missing-key", "bad-cluster", "garbage", "bad-client-host"],
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


def _without_route_security(template: str) -> str:
    """The template with the cluster block's tls {} and authorization {}
    cut out (and nothing else: the client and WebSocket TLS stay)."""
    at = template.index("\ncluster {")
    head, cluster = template[:at], template[at:]
    cut = re.sub(r"\n  (tls|authorization) \{.*?\n  \}\n", "\n", cluster, flags=re.S)
    assert cut.count("{") == cluster.count("{") - 2, "both route guards go"
    return head + cut


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
        _without_route_security(TEMPLATE.read_text()),
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
    open_template = tmp_path / "open.tmpl"
    open_template.write_text(_without_route_security(TEMPLATE.read_text()))
    with bootstrapped(sm, cluster, LOCALSTACK, []):
        proc = _render(tmp_path, url, template=open_template)
        assert proc.returncode == 1
        assert "neither tls {} nor authorization {}" in proc.stderr, proc.stderr
        assert not (tmp_path / "etc" / "broker.conf").exists()


# --- web applications: the web-idp secret's `apps` ----------------------------

PARTNERS = {"name": "partners", "account": "PARTNERS", "audiences": ["partners-web"]}
LEAGUES = {"name": "leagues-eu", "account": "LEAGUES_EU", "audiences": ["urn:leagues", "https://leagues.example/"],
           "claims": [{"claim": "leagues", "subject": "sports.*.{value}.>"},
                      {"claim": "sports", "subject": "sports.{value}.>"}],
           "allowed_origins": ["https://leagues.example", "http://localhost:8080"]}


def test_web_app_rules_accept_and_default() -> None:
    apps = webapps.parse_apps({"audiences": ["tribune-web"], "apps": [PARTNERS, LEAGUES]})
    assert [(a.name, a.account, a.audiences) for a in apps] == [
        ("partners", "PARTNERS", ("partners-web",)),
        ("leagues-eu", "LEAGUES_EU", ("urn:leagues", "https://leagues.example/"))]
    # Without claims: WEB's rule, the same sports claim.
    assert apps[0].claims == (("sports", "sports.{value}.>"),) and apps[0].allowed_origins == ()
    assert apps[1].claims == (("leagues", "sports.*.{value}.>"), ("sports", "sports.{value}.>"))
    assert webapps.parse_apps({"audiences": []}) == [] == webapps.parse_apps({"apps": None})
    assert webapps.default_account("leagues-eu") == "LEAGUES_EU"
    # Apps' origins join the secret's only when it lists any: an empty list
    # is "any origin", which an app's origins must not narrow for everyone.
    assert webapps.websocket_origins(["https://www.example"], apps) == (
        ["https://www.example", "https://leagues.example", "http://localhost:8080"], [])
    assert webapps.websocket_origins([], apps) == ([], ["https://leagues.example", "http://localhost:8080"])


def _app(**changes) -> dict:
    return {k: v for k, v in {**PARTNERS, **changes}.items() if v is not None}


@pytest.mark.parametrize(("apps", "message"), [
    ({"name": "partners"}, "apps must be a list"),
    (["partners"], "apps[0] must be an object"),
    ([_app(audience=["x"])], "unknown field(s) audience"),
    ([_app(name="Partners")], "name 'Partners' must match"),
    ([_app(name="9lives")], "must match"),
    ([_app(name="a" * 33)], "must match"),
    ([_app(name="default")], "name default is reserved"),
    ([_app(account="partners")], "account 'partners' must match"),
    ([_app(account="P" * 33)], "must match"),
    ([_app(account="$G")], "account '$G' must match"),
    *[([_app(account=r)], f"account {r} is reserved") for r in ("SPORTS", "AUTH", "SYS", "WEB")],
    ([_app(audiences=None)], "audiences must be a non-empty list"),
    ([_app(audiences=[])], "audiences must be a non-empty list"),
    ([_app(audiences="partners-web")], "audiences must be a non-empty list"),
    ([_app(audiences=["a b"])], "audiences must be a non-empty list"),
    ([_app(audiences=["x", "x"])], "lists a value twice"),
    ([_app(audiences=["tribune-web"])], "'tribune-web' is also in the web-idp audiences"),
    ([PARTNERS, _app(name="other", account="OTHER")], "'partners-web' is also in app partners"),
    ([PARTNERS, _app(account="OTHER")], "another app has the name partners"),
    ([PARTNERS, _app(name="other", audiences=["o"])], "account PARTNERS is also app partners's"),
    ([_app(claims=[])], "claims must be a non-empty list"),
    ([_app(claims=[{"claim": "sports"}])], "exactly the keys claim and subject"),
    ([_app(claims=[{"claim": "a b", "subject": "sports.{value}"}])], "is not a claim name"),
    ([_app(claims=[{"claim": "sports", "subject": "sports.>"}])], "{value} exactly once"),
    ([_app(claims=[{"claim": "sports", "subject": "sports.x{value}.>"}])], "{value} exactly once"),
    # Inside the account, a rule outside the feed could reach other users' inboxes.
    ([_app(claims=[{"claim": "sports", "subject": "_INBOX.{value}.>"}])], "must start with sports."),
    ([_app(claims=[{"claim": "sports", "subject": "{value}.>"}])], "must start with sports."),
    ([_app(claims=[{"claim": "sports", "subject": "sports.>.{value}"}])], "invalid token '>'"),
    ([_app(claims=[{"claim": "s", "subject": "sports.{value}"}, {"claim": "s", "subject": "sports.{value}"}])],
     "lists a rule twice"),
    ([_app(allowed_origins=["https://x.example/path"])], "allowed_origins must be a list of origins"),
    ([_app(allowed_origins="https://x.example")], "allowed_origins must be a list of origins"),
])
def test_web_app_rules_refuse(apps, message: str) -> None:
    """Every broken rule is an error naming the entry and the rule, never a
    skipped entry."""
    with pytest.raises(webapps.WebAppError) as e:
        webapps.parse_apps({"audiences": ["tribune-web"], "apps": apps})
    assert message in str(e.value), str(e.value)


def test_template_placeholders_for_web_apps_are_rendered_by_code() -> None:
    """The templates stay readable: one placeholder each, whose text the
    renderer builds; the AMI's verify step knows every broker placeholder."""
    rc = _renderer()
    broker = TEMPLATE.read_text()
    assert broker.count("@@WEB_APP_ACCOUNTS@@") == 1 and "WEB_APP_ACCOUNTS" in rc.RENDERED_BY_CODE
    assert (TEMPLATE.parent / "auth.toml.tmpl").read_text().count("\n@@WEB_APPS@@\n") == 1
    verify = (PACKER / "scripts" / "verify.sh").read_text()
    for name in set(rc.PLACEHOLDER.findall(broker)):
        assert f"s|@@{name}@@|" in verify, f"verify.sh does not substitute @@{name}@@"
    install = (PACKER / "scripts" / "install.sh").read_text()
    assert '"$src/files/tribune_webapps.py" /usr/local/libexec/tribune/tribune_webapps.py' in install
    assert "import tribune_boot, tribune_webapps" in verify
    apps = webapps.parse_apps({"apps": [PARTNERS]})
    assert rc.web_app_accounts([]).startswith("#") and rc.web_apps_toml([]).startswith("#")
    # Indented to sit in the template's accounts block.
    assert rc.web_app_accounts(apps).split("\n")[1:] == [
        "  PARTNERS: {", "    imports: [",
        '      { stream: { account: SPORTS, subject: "sports.>" } }',
        '      { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.SPORTS" } }',
        "    ]", "  }"]


def test_render_config_renders_web_app_accounts(tmp_path: Path, imds) -> None:
    """Two apps in the secret: broker.conf gets an account each, with WEB's
    imports and no users, the WebSocket origins widen by the apps'; auth.toml
    gets an [[apps]] each with WEB's permissions and the app's claim rules;
    the broker accepts the config."""
    import tomllib

    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster)
    sm = _localstack_sm()
    extra = {"allowed_origins": ["https://www.example"], "apps": [PARTNERS, LEAGUES]}
    with bootstrapped(sm, cluster, LOCALSTACK, [], web_idp=extra):
        proc = _render(tmp_path, url)
        assert proc.returncode == 0, proc.stderr
        assert "(web applications: partners, leagues-eu)" in proc.stderr
        etc = tmp_path / "etc"
        conf = (etc / "broker.conf").read_text()
        assert "@@" not in conf
        accounts = conf[conf.index("\naccounts {"):conf.index("\nsystem_account:")]
        web = accounts[accounts.index("  WEB: {"):]
        web = web[:web.index("\n  }\n") + 4]
        for account in ("PARTNERS", "LEAGUES_EU"):
            block = accounts[accounts.index(f"  {account}: {{"):]
            block = block[:block.index("\n  }\n") + 4]
            assert block.replace(account, "WEB") == web, block
        assert ('allowed_origins: ["https://www.example", "https://leagues.example", "http://localhost:8080"]'
                in conf)
        check = _run([str(_broker_bin()), "-c", str(etc / "broker.conf"), "-t"])
        assert check.returncode == 0, check.stdout + check.stderr

        auth = tomllib.loads((etc / "auth.toml").read_text())
        assert auth["callout"]["account"] == "WEB" and auth["token"]["audiences"] == ["tribune-web"]
        assert auth["permissions"]["claims"] == [{"claim": "sports", "subject": "sports.{value}.>"}]
        same_as_web = {"static_subscribe": [], "read_streams": ["SPORTS"], "user_inboxes": True}
        assert auth["apps"] == [
            {"name": "partners", "account": "PARTNERS", "audiences": ["partners-web"],
             "permissions": {**same_as_web, "claims": [{"claim": "sports", "subject": "sports.{value}.>"}]}},
            {"name": "leagues-eu", "account": "LEAGUES_EU", "audiences": ["urn:leagues", "https://leagues.example/"],
             "permissions": {**same_as_web, "claims": LEAGUES["claims"]}},
        ]
        assert auth["metrics"]["listen"] == "127.0.0.1:9464"  # [[apps]] did not swallow later tables
        # tribune-auth accepts it (its unit's ExecStartPre) and sees three applications.
        check = _run([str(AUTH_BIN), "--config", str(etc / "auth.toml"), "--check"])
        assert check.returncode == 0, check.stdout + check.stderr
        for app in ("default -> WEB", "partners -> PARTNERS", "leagues-eu -> LEAGUES_EU"):
            assert app in check.stdout + check.stderr, check.stdout + check.stderr


def test_render_config_refuses_a_bad_web_app_and_writes_nothing(tmp_path: Path, imds) -> None:
    """A bad entry fails the render before any file is written, so a node
    re-rendering on a running broker keeps its files as they were."""
    url, data = imds
    cluster = f"rc-{secrets.token_hex(3)}"
    _instance(data, cluster)
    sm = _localstack_sm()
    with bootstrapped(sm, cluster, LOCALSTACK, [], web_idp={"apps": [PARTNERS, _app(name="ops", account="SYS")]}):
        proc = _render(tmp_path, url)
        assert proc.returncode == 1
        assert "secret web-idp: apps[1] (ops): account SYS is reserved" in proc.stderr, proc.stderr
        assert not (tmp_path / "etc").exists() or not any((tmp_path / "etc").rglob("*"))
