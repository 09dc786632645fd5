"""`make secrets` (terraform/bootstrap/bootstrap_secrets.py) against LocalStack.

The real script runs as a subprocess, as `make secrets` runs it, with the
workspace's tribune-bridge as its NKEY generator; the checks read the
secrets back with boto3 and verify them with independent libraries
(cryptography for the chain, nkeys/PyNaCl for the seeds, bcrypt for the
hash). The last test serves the certificate from a real tribune-broker,
rotates it and reloads with SIGHUP, without a restart.

Every cluster name is unique per run (LocalStack keeps state and may be
shared); the secrets and keys made are deleted at the end.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import bcrypt
import boto3
import nacl.public
import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import (REGION, SECRET_KINDS, TF_ROOT, bootstrap_cmd, bootstrap_env, delete_bootstrap_secrets,
                      require_localstack, workspace_bin)
from tls_material import make_tls_bundle

KINDS = SECRET_KINDS
DOMAIN = "tribune.test"
EXTRA_SANS = ("203.0.113.7", "nats-eu.tribune.test")
USER_SEEDS = ("sys_user_seed", "bridge_seed", "services_seed", "auth_service_seed")

sys.path.insert(0, str(TF_ROOT / "bootstrap"))
import pki  # noqa: E402  (the bootstrap's own module, for its unit tests)


class Aws:
    """LocalStack clients, the runs made (for the no-secrets-in-output check) and cleanup."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
                  aws_secret_access_key="test")
        self.sm = boto3.client("secretsmanager", **kw)
        self.kms = boto3.client("kms", **kw)
        self.clusters: set[str] = set()
        self.outputs: list[str] = []

    def bootstrap(self, cluster: str, *args: str, keygen: str | None = None,
                  expect: int = 0) -> subprocess.CompletedProcess[str]:
        self.clusters.add(cluster)
        cmd = bootstrap_cmd(cluster, self.endpoint, *args, keygen=keygen)
        proc = subprocess.run(cmd, env=bootstrap_env(), text=True, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        self.outputs.append(proc.stdout + proc.stderr)
        assert proc.returncode == expect, (
            f"exit {proc.returncode}, expected {expect}: {' '.join(cmd)}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    def value(self, cluster: str, kind: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
        raw = self.sm.get_secret_value(SecretId=f"tribune/{cluster}/{kind}", VersionStage=stage)
        return json.loads(raw["SecretString"])

    def versions(self, cluster: str) -> dict[str, dict[str, list[str]]]:
        """Version ID -> stages, per secret that exists."""
        out = {}
        for kind in KINDS:
            try:
                d = self.sm.describe_secret(SecretId=f"tribune/{cluster}/{kind}")
            except self.sm.exceptions.ResourceNotFoundException:
                continue
            out[kind] = {v: sorted(s) for v, s in d["VersionIdsToStages"].items()}
        return out

    def current_version(self, cluster: str, kind: str) -> str:
        return next(v for v, s in self.versions(cluster)[kind].items() if "AWSCURRENT" in s)

    def key_arn(self, cluster: str) -> str:
        return self.kms.describe_key(KeyId=f"alias/tribune-{cluster}")["KeyMetadata"]["Arn"]

    def cleanup(self) -> None:
        for cluster in self.clusters:
            delete_bootstrap_secrets(cluster, self.endpoint)


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    a = Aws(require_localstack())
    try:
        yield a
    finally:
        a.cleanup()


@pytest.fixture(scope="module")
def cluster(aws: Aws) -> str:
    """One cluster bootstrapped from nothing, with a domain and extra SANs."""
    name = f"sb-{secrets.token_hex(4)}"
    args = ["--domain", DOMAIN]
    for san in EXTRA_SANS:
        args += ["--san", san]
    proc = aws.bootstrap(name, *args)
    created = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("created ")]
    assert created == [f"alias/tribune-{name}"] + [f"tribune/{name}/{k}" for k in KINDS], proc.stdout
    assert "0 problem(s)" in proc.stdout and not proc.stderr.strip(), proc.stderr
    return name


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _spki(key_or_cert: Any) -> bytes:
    pub = key_or_cert.public_key()
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {pki.san_text(n) for n in ext}


# --- the first run -------------------------------------------------------------

def test_six_secrets_encrypted_with_the_cluster_key(aws: Aws, cluster: str) -> None:
    key = aws.kms.describe_key(KeyId=f"alias/tribune-{cluster}")["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled"
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT" and key["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert aws.kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    for kind in KINDS:
        d = aws.sm.describe_secret(SecretId=f"tribune/{cluster}/{kind}")
        used = aws.kms.describe_key(KeyId=d["KmsKeyId"])["KeyMetadata"]["Arn"]
        assert used == key["Arn"], kind
        tags = {t["Key"]: t["Value"] for t in d["Tags"]}
        assert tags["tribune:cluster"] == cluster and tags["tribune:secret"] == kind
        assert tags["tribune:readers"] == ("operators" if kind == "ca" else "nodes")
        assert len(d["VersionIdsToStages"]) == 1, kind


def test_node_certificate_chains_to_the_ca_with_sans_and_ekus(aws: Aws, cluster: str) -> None:
    ca_secret, tls = aws.value(cluster, "ca"), aws.value(cluster, "tls")
    assert set(ca_secret) == {"ca_pem", "ca_key_pem"}
    assert set(tls) == {"ca_pem", "cert_pem", "key_pem"}
    assert tls["ca_pem"] == ca_secret["ca_pem"]

    ca = _cert(ca_secret["ca_pem"])
    ca_key = serialization.load_pem_private_key(ca_secret["ca_key_pem"].encode(), password=None)
    assert _spki(ca) == _spki(ca_key)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca.verify_directly_issued_by(ca)

    cert = _cert(tls["cert_pem"])
    key = serialization.load_pem_private_key(tls["key_pem"].encode(), password=None)
    assert tls["key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert _spki(cert) == _spki(key)
    cert.verify_directly_issued_by(ca)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _sans(cert) == {f"DNS:nats.{DOMAIN}", "IP:203.0.113.7", "DNS:nats-eu.tribune.test",
                           "DNS:localhost", "IP:127.0.0.1"}
    now = dt.datetime.now(dt.timezone.utc)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert dt.timedelta(days=364) < cert.not_valid_after_utc - now <= dt.timedelta(days=365)


def test_nkeys_seeds_and_route_credentials(aws: Aws, cluster: str) -> None:
    v = aws.value(cluster, "nkeys")
    base = {*USER_SEEDS, "route_user", "route_password", "route_password_bcrypt"}
    publics = {s.removesuffix("_seed") + "_public" for s in USER_SEEDS}
    assert set(v) == base | publics
    assert len({v[s] for s in USER_SEEDS}) == len(USER_SEEDS), "every system has its own key"
    for field in USER_SEEDS:
        assert v[field].startswith("SU"), field
        prefix, raw = nkeys.decode_seed(v[field].encode())
        assert prefix == nkeys.PREFIX_BYTE_USER and len(raw) == 32
        public = nkeys.from_seed(v[field].encode()).public_key.decode()
        assert public.startswith("U") and public == v[field.removesuffix("_seed") + "_public"], field
    assert v["route_user"] == "route"
    pw = v["route_password"]
    assert len(pw) >= 32 and pw.isascii() and all(c.isalnum() or c in "-_" for c in pw)
    assert v["route_password_bcrypt"].startswith(("$2a$11$", "$2b$11$"))
    assert bcrypt.checkpw(pw.encode(), v["route_password_bcrypt"].encode())
    assert not bcrypt.checkpw(b"x" + pw.encode(), v["route_password_bcrypt"].encode())


def _curve_public(seed: str) -> str:
    """The X... public key of an SX... curve seed (nkeys.py cannot decode curve seeds).

    Independent of the Rust generator: base32 and the NKEY CRC from the
    nkeys package, X25519 from PyNaCl.
    """
    raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    body, crc = raw[:-2], raw[-2:]
    assert nkeys.crc16_checksum(body) == crc, "seed checksum"
    assert body[0] & 0xF8 == nkeys.PREFIX_BYTE_SEED
    curve_prefix = 23 << 3  # 'X'
    assert ((body[0] & 0x07) << 5) | ((body[1] & 0xF8) >> 3) == curve_prefix
    public = bytes(nacl.public.PrivateKey(body[2:34]).public_key)
    src = bytes([curve_prefix]) + public
    return base64.b32encode(src + nkeys.crc16_checksum(src)).decode().rstrip("=")


def test_callout_issuer_and_xkey(aws: Aws, cluster: str) -> None:
    v = aws.value(cluster, "callout")
    assert set(v) == {"issuer_seed", "xkey_seed", "issuer_public", "xkey_public"}
    assert v["issuer_seed"].startswith("SA")
    prefix, _ = nkeys.decode_seed(v["issuer_seed"].encode())
    assert prefix == nkeys.PREFIX_BYTE_ACCOUNT
    issuer = nkeys.from_seed(v["issuer_seed"].encode()).public_key.decode()
    assert issuer.startswith("A") and issuer == v["issuer_public"]
    assert v["xkey_seed"].startswith("SX")
    assert _curve_public(v["xkey_seed"]) == v["xkey_public"] and v["xkey_public"].startswith("X")


def test_placeholders(aws: Aws, cluster: str) -> None:
    assert aws.value(cluster, "provider") == {"url": "mqtts://REPLACE-ME:8883", "username": "REPLACE-ME",
                                              "password": "REPLACE-ME", "configured": False}
    assert aws.value(cluster, "web-idp") == {"issuers": [], "audiences": [], "jwks_url": "",
                                             "hs256_secret": "", "configured": False}


# --- re-runs -----------------------------------------------------------------

def test_second_run_changes_nothing(aws: Aws, cluster: str) -> None:
    before = aws.versions(cluster)
    key = aws.key_arn(cluster)
    proc = aws.bootstrap(cluster, "--domain", DOMAIN)
    assert aws.versions(cluster) == before
    assert aws.key_arn(cluster) == key
    statuses = {line.split()[0] for line in proc.stdout.splitlines()[:-1]}
    assert statuses == {"unchanged"}, proc.stdout
    assert "0 problem(s)" in proc.stdout


def test_check_changes_nothing_and_fails_on_what_is_missing(aws: Aws, cluster: str, tmp_path: Path) -> None:
    before = aws.versions(cluster)
    proc = aws.bootstrap(cluster, "--check")
    assert aws.versions(cluster) == before and "0 problem(s)" in proc.stdout

    fresh = f"sb-{secrets.token_hex(4)}"
    proc = aws.bootstrap(fresh, "--check", expect=1)
    assert f"alias/tribune-{fresh}: is missing" in proc.stderr
    assert aws.versions(fresh) == {}
    # A cluster with only some secrets: each missing one is named; none is made.
    aws.bootstrap(fresh, keygen=str(tmp_path / "no-such-tribune-bridge"), expect=1)
    partial = aws.versions(fresh)
    proc = aws.bootstrap(fresh, "--check", expect=1)
    assert aws.versions(fresh) == partial
    for kind in ("nkeys", "callout"):
        assert f"tribune/{fresh}/{kind}: is missing" in proc.stderr


def test_placeholders_are_never_overwritten(aws: Aws, cluster: str) -> None:
    filled = {"url": "mqtts://mqtt.example.com:8883", "username": "feed", "password": "s3cret-feed",
              "configured": True}
    aws.sm.put_secret_value(SecretId=f"tribune/{cluster}/provider", SecretString=json.dumps(filled))
    before = aws.versions(cluster)
    proc = aws.bootstrap(cluster, "--domain", DOMAIN)
    assert aws.value(cluster, "provider") == filled
    assert aws.versions(cluster) == before
    assert f"tribune/{cluster}/provider  configured" in proc.stdout
    assert f"tribune/{cluster}/web-idp  placeholder, not configured yet" in proc.stdout


def test_rotate_tls_issues_a_new_version_from_the_same_ca(aws: Aws, cluster: str) -> None:
    before = aws.versions(cluster)
    old = aws.value(cluster, "tls")
    old_version = aws.current_version(cluster, "tls")
    # No --domain/--san: the rotated certificate keeps the names it had.
    proc = aws.bootstrap(cluster, "--rotate-tls")
    assert f"rotated    tribune/{cluster}/tls" in proc.stdout

    after = aws.versions(cluster)
    assert {k: v for k, v in after.items() if k != "tls"} == {k: v for k, v in before.items() if k != "tls"}
    new_version = aws.current_version(cluster, "tls")
    assert new_version != old_version
    assert after["tls"][old_version] == ["AWSPREVIOUS"]
    assert aws.value(cluster, "tls", "AWSPREVIOUS") == old

    new = aws.value(cluster, "tls")
    ca = _cert(aws.value(cluster, "ca")["ca_pem"])
    assert new["ca_pem"] == old["ca_pem"]
    new_cert, old_cert = _cert(new["cert_pem"]), _cert(old["cert_pem"])
    new_cert.verify_directly_issued_by(ca)
    assert new_cert.serial_number != old_cert.serial_number
    assert _spki(new_cert) != _spki(old_cert), "a rotation makes a new key"
    assert _sans(new_cert) == _sans(old_cert)


def test_new_san_is_reported_then_added_by_rotation(aws: Aws, cluster: str) -> None:
    before = aws.versions(cluster)
    proc = aws.bootstrap(cluster, "--domain", DOMAIN, "--san", "198.51.100.9")
    assert aws.versions(cluster) == before
    assert "lacks IP:198.51.100.9" in proc.stderr and "make rotate-tls" in proc.stderr
    old = _sans(_cert(aws.value(cluster, "tls")["cert_pem"]))
    aws.bootstrap(cluster, "--domain", DOMAIN, "--san", "198.51.100.9", "--rotate-tls")
    assert _sans(_cert(aws.value(cluster, "tls")["cert_pem"])) == old | {"IP:198.51.100.9"}


def test_existing_tls_without_ca_is_a_problem_and_left_alone(aws: Aws) -> None:
    """A hand-made tls secret (the old procedure): no CA is invented for it."""
    name = f"sb-{secrets.token_hex(4)}"
    aws.clusters.add(name)
    aws.sm.create_secret(Name=f"tribune/{name}/tls", SecretString=json.dumps(make_tls_bundle(["x.test"])))
    before = aws.versions(name)["tls"]
    proc = aws.bootstrap(name, expect=1)
    assert f"PROBLEM:   tribune/{name}/ca: is missing but tribune/{name}/tls exists" in proc.stderr
    assert "aws/secretsmanager" in proc.stderr  # and it is not on the cluster key
    versions = aws.versions(name)
    assert "ca" not in versions and versions["tls"] == before
    assert set(versions) == {"tls", "nkeys", "callout", "provider", "web-idp"}


def test_missing_generator_fails_only_the_nkey_secrets(aws: Aws, tmp_path: Path) -> None:
    name = f"sb-{secrets.token_hex(4)}"
    proc = aws.bootstrap(name, keygen=str(tmp_path / "no-such-tribune-bridge"), expect=1)
    assert "tribune-bridge (the NKEY generator) not found" in proc.stderr
    assert set(aws.versions(name)) == {"ca", "tls", "provider", "web-idp"}
    # Once the generator is there, a re-run fills in exactly what is missing.
    before = aws.versions(name)
    aws.bootstrap(name)
    after = aws.versions(name)
    assert set(after) == set(KINDS) and {k: after[k] for k in before} == before


# --- web applications: --web-app / --remove-web-app (make web-app) ------------

HS256 = secrets.token_hex(32)


@pytest.fixture(scope="module")
def web_cluster(aws: Aws) -> str:
    """A cluster whose web-idp an operator has filled in (HS256), as `make
    web-app` finds it on a deployed cluster."""
    name = f"sb-{secrets.token_hex(4)}"
    aws.bootstrap(name)
    aws.sm.put_secret_value(SecretId=f"tribune/{name}/web-idp", SecretString=json.dumps(
        {"issuers": ["https://idp.example/"], "audiences": ["tribune-web"], "jwks_url": "",
         "hs256_secret": HS256, "configured": True}))
    return name


def _web_app(aws: Aws, cluster: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    proc = aws.bootstrap(cluster, *args, expect=expect)
    assert HS256 not in proc.stdout + proc.stderr
    return proc


def test_web_app_is_a_new_web_idp_version_only_when_it_changes(aws: Aws, web_cluster: str) -> None:
    """Add, re-run, replace, remove, remove again: each change is one new
    version of web-idp alone, the rest of the secret as it was; a re-run
    changes nothing."""
    name = f"tribune/{web_cluster}/web-idp"
    base = aws.value(web_cluster, "web-idp")
    before = aws.versions(web_cluster)
    old_version = aws.current_version(web_cluster, "web-idp")

    proc = _web_app(aws, web_cluster, "--web-app", "partners-eu", "--audiences", "partners-web, partners-app",
                    "--origins", "https://partners.example.com")
    assert f"updated    {name}  version " in proc.stdout
    assert "app partners-eu added (account PARTNERS_EU, audiences partners-web, partners-app)" in proc.stdout
    assert "next: re-render and restart every node" in proc.stdout and "0 problem(s)" in proc.stdout
    # The secret's origins are empty (any origin): the app's are stored, and the operator is told.
    assert "the app's origins are stored but restrict nothing" in proc.stderr
    entry = {"name": "partners-eu", "account": "PARTNERS_EU", "audiences": ["partners-web", "partners-app"],
             "allowed_origins": ["https://partners.example.com"]}
    assert aws.value(web_cluster, "web-idp") == {**base, "apps": [entry]}
    after = aws.versions(web_cluster)
    assert {k: v for k, v in after.items() if k != "web-idp"} == {k: v for k, v in before.items() if k != "web-idp"}
    assert after["web-idp"][old_version] == ["AWSPREVIOUS"]

    added = aws.versions(web_cluster)
    proc = _web_app(aws, web_cluster, "--web-app", "partners-eu", "--audiences", "partners-web,partners-app",
                    "--origins", "https://partners.example.com")
    assert f"unchanged  {name}  app partners-eu: as asked" in proc.stdout and "next:" not in proc.stdout
    assert aws.versions(web_cluster) == added

    # A second app goes after it; the first, set again differently, stays first.
    _web_app(aws, web_cluster, "--web-app", "leagues", "--audiences", "leagues-web", "--account", "LEAGUES",
             "--claim", "leagues=sports.*.{value}.>")
    proc = _web_app(aws, web_cluster, "--web-app", "partners-eu", "--audiences", "partners-web")
    assert "app partners-eu replaced" in proc.stdout
    apps = aws.value(web_cluster, "web-idp")["apps"]
    assert apps == [{"name": "partners-eu", "account": "PARTNERS_EU", "audiences": ["partners-web"]},
                    {"name": "leagues", "account": "LEAGUES", "audiences": ["leagues-web"],
                     "claims": [{"claim": "leagues", "subject": "sports.*.{value}.>"}]}]

    for _ in range(2):
        proc = _web_app(aws, web_cluster, "--remove-web-app", "partners-eu")
    assert f"unchanged  {name}  app partners-eu: not there" in proc.stdout
    _web_app(aws, web_cluster, "--remove-web-app", "leagues")
    assert aws.value(web_cluster, "web-idp") == {**base, "apps": []}
    assert aws.bootstrap(web_cluster, "--check").returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--web-app", "ops", "--audiences", "ops-web", "--account", "SYS"], "account SYS is reserved"),
    (["--web-app", "Ops", "--audiences", "ops-web"], "name 'Ops' must match"),
    (["--web-app", "ops"], "--audiences must be a comma-separated list"),
    (["--web-app", "ops", "--audiences", "a,,b"], "no empty items"),
    (["--web-app", "ops", "--audiences", "ops-web", "--claim", "sports"], "expected CLAIM=SUBJECT"),
    (["--web-app", "ops", "--audiences", "ops-web", "--claim", "s=_INBOX.{value}"], "must start with sports."),
    (["--web-app", "ops", "--audiences", "ops-web", "--origins", "ftp://x"], "allowed_origins must be a list"),
    (["--web-app", "ops", "--audiences", "ops-web", "--rotate-tls"], "change only web-idp"),
    (["--web-app", "ops", "--remove-web-app", "ops", "--audiences", "a"], "one at a time"),
    (["--remove-web-app", "ops", "--audiences", "a"], "only apply with --web-app"),
])
def test_web_app_refuses_bad_arguments(aws: Aws, web_cluster: str, args: list[str], message: str) -> None:
    before = aws.versions(web_cluster)
    proc = _web_app(aws, web_cluster, *args, expect=2)
    assert message in proc.stderr, proc.stderr
    assert aws.versions(web_cluster) == before


def test_web_app_conflicting_with_the_secret_writes_nothing(aws: Aws, web_cluster: str) -> None:
    """Rules across entries: an audience that would select two accounts,
    an account taken, WEB's own audience."""
    _web_app(aws, web_cluster, "--web-app", "first", "--audiences", "first-web")
    before = aws.versions(web_cluster)
    for args, message in [
        (["--web-app", "second", "--audiences", "x,first-web"], "'first-web' is also in app first"),
        (["--web-app", "second", "--audiences", "second-web", "--account", "FIRST"], "account FIRST is also app first's"),
        (["--web-app", "second", "--audiences", "tribune-web"], "is also in the web-idp audiences"),
    ]:
        proc = _web_app(aws, web_cluster, *args, expect=1)
        assert f"PROBLEM:   tribune/{web_cluster}/web-idp: not changed: " in proc.stderr and message in proc.stderr
        assert aws.versions(web_cluster) == before
    _web_app(aws, web_cluster, "--remove-web-app", "first")


def test_check_reports_a_bad_app_that_remove_fixes(aws: Aws, web_cluster: str) -> None:
    """An entry written by hand that a node would refuse fails `make
    secrets --check` (deploy-check), and --remove-web-app takes it out."""
    value = aws.value(web_cluster, "web-idp")
    aws.sm.put_secret_value(SecretId=f"tribune/{web_cluster}/web-idp", SecretString=json.dumps(
        {**value, "apps": [{"name": "ops", "account": "SYS", "audiences": ["ops-web"]}]}))
    proc = aws.bootstrap(web_cluster, "--check", expect=1)
    assert "apps[0] (ops): account SYS is reserved" in proc.stderr and "refuses to render" in proc.stderr
    # Adding another app would keep the bad one: refused as a whole.
    proc = _web_app(aws, web_cluster, "--web-app", "good", "--audiences", "good-web", expect=1)
    assert "account SYS is reserved" in proc.stderr
    _web_app(aws, web_cluster, "--remove-web-app", "ops")
    assert aws.bootstrap(web_cluster, "--check").returncode == 0


def test_web_app_without_secrets_creates_nothing(aws: Aws) -> None:
    fresh = f"sb-{secrets.token_hex(4)}"
    proc = aws.bootstrap(fresh, "--web-app", "partners", "--audiences", "partners-web", expect=1)
    assert f"alias/tribune-{fresh}: is missing; `make secrets` creates it" in proc.stderr
    assert aws.versions(fresh) == {}
    with pytest.raises(aws.kms.exceptions.NotFoundException):
        aws.kms.describe_key(KeyId=f"alias/tribune-{fresh}")


def test_make_web_app_runs_the_subcommand(aws: Aws, web_cluster: str, tmp_path: Path) -> None:
    """The Makefile's wiring, end to end against LocalStack: the verb's
    variables reach the script (comma lists, CLAIMS, REMOVE=1)."""
    tfvars = tmp_path / "terraform.tfvars"
    tfvars.write_text(f'region = "{REGION}"\ncluster_name = "{web_cluster}"\n')
    venv = Path(sys.executable).parents[1]
    env = {k: v for k, v in bootstrap_env().items() if not k.startswith("AWS_REGION") and k != "AWS_DEFAULT_REGION"}
    env["AWS_ENDPOINT_URL"] = aws.endpoint

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        # -o: never (re)build the deploy venv the tests already run in.
        proc = subprocess.run(["make", "--no-print-directory", "-C", str(TF_ROOT.parent), "web-app",
                               f"TF_VARS={tfvars}", f"DEPLOY_VENV={venv}", "-o", f"{venv}/.requirements-installed",
                               *args], env=env, text=True, capture_output=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        aws.outputs.append(proc.stdout + proc.stderr)
        assert HS256 not in proc.stdout + proc.stderr
        return proc

    proc = make("APP=partners", "AUDIENCES=partners-web,partners-app", "ORIGINS=https://p.example,https://q.example",
                "CLAIMS=sports=sports.{value}.> leagues=sports.*.{value}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert aws.value(web_cluster, "web-idp")["apps"] == [
        {"name": "partners", "account": "PARTNERS", "audiences": ["partners-web", "partners-app"],
         "claims": [{"claim": "sports", "subject": "sports.{value}.>"},
                    {"claim": "leagues", "subject": "sports.*.{value}"}],
         "allowed_origins": ["https://p.example", "https://q.example"]}]
    proc = make("APP=partners", "REMOVE=1")
    assert proc.returncode == 0 and "app partners removed" in proc.stdout, proc.stdout + proc.stderr
    assert aws.value(web_cluster, "web-idp")["apps"] == []
    proc = make()
    assert proc.returncode != 0 and "set APP=<name>" in proc.stderr


# --- the certificate on a real broker: rotation is a SIGHUP, not a restart ---

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_tls(directory: Path, tls: dict[str, str]) -> None:
    """What render-config writes: ca.pem, server.pem, server-key.pem, each replaced atomically."""
    directory.mkdir(exist_ok=True)
    for name, field in (("ca.pem", "ca_pem"), ("server.pem", "cert_pem"), ("server-key.pem", "key_pem")):
        tmp = directory / f".{name}.tmp"
        tmp.write_text(tls[field])
        os.chmod(tmp, 0o600)
        os.replace(tmp, directory / name)


class Node:
    def __init__(self, name: str, work: Path, tls_dir: Path, cluster: str, route_to: int | None) -> None:
        self.name, self.client, self.http, self.route = name, _free_port(), _free_port(), _free_port()
        self.log = work / f"{name}.log"
        routes = f"routes: [\"nats-route://127.0.0.1:{route_to}\"]" if route_to else ""
        # The TLS blocks of packer/files/templates/broker.conf.tmpl.
        self.conf = work / f"{name}.conf"
        self.conf.write_text(f"""
server_name: {name}
listen: 127.0.0.1:{self.client}
http: 127.0.0.1:{self.http}
tls {{
  cert_file: "{tls_dir}/server.pem"
  key_file: "{tls_dir}/server-key.pem"
  ca_file: "{tls_dir}/ca.pem"
  timeout: 2
  min_version: "1.2"
}}
cluster {{
  name: {cluster}
  listen: 127.0.0.1:{self.route}
  tls {{
    cert_file: "{tls_dir}/server.pem"
    key_file: "{tls_dir}/server-key.pem"
    ca_file: "{tls_dir}/ca.pem"
    timeout: 2
    insecure: true
  }}
  {routes}
}}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([workspace_bin("tribune-broker", "TRIBUNE_BROKER_BIN"), "-c", str(self.conf)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=3) as r:
            return json.loads(r.read())

    def wait(self, what: str, cond: Any, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc and self.proc.poll() is None, \
                f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}"
            try:
                if cond():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no {what} within {timeout}s:\n{self.log.read_text(errors='replace')[-3000:]}")


class TlsClient:
    """A NATS client connection over TLS, verifying the server as `localhost` against the CA."""

    def __init__(self, port: int, ca_file: Path) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        info = b""
        while not info.endswith(b"\r\n"):
            chunk = raw.recv(1)
            assert chunk, "connection closed before INFO"
            info += chunk
        assert json.loads(info.split(b" ", 1)[1])["tls_required"] is True
        ctx = ssl.create_default_context(cafile=str(ca_file))
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"tls_required":true}\r\n')
        self.ping()

    @property
    def serial(self) -> int:
        der = self.sock.getpeercert(binary_form=True)
        assert der
        return x509.load_der_x509_certificate(der).serial_number

    def ping(self) -> None:
        self.sock.sendall(b"PING\r\n")
        buf = b""
        while b"PONG\r\n" not in buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed; got {buf!r}"
            assert b"-ERR" not in chunk, chunk
            buf += chunk

    def close(self) -> None:
        self.sock.close()


def _routes(node: Node) -> int:
    return int(node.get("/routez")["num_routes"])


def test_rotated_certificate_is_served_after_sighup_without_restart(aws: Aws, cluster: str,
                                                                    tmp_path: Path) -> None:
    """Two brokers on loopback with the bootstrapped certificate on clients
    and mutual-TLS routes. After --rotate-tls, node a gets the new files and
    a SIGHUP: the same process serves the new certificate to new clients,
    its existing client and route stay up, and a node still on the old
    certificate (same CA) routes to it: the state mid-way through a rolling
    rotation."""
    old = aws.value(cluster, "tls")
    dir_a, dir_b = tmp_path / "tls-a", tmp_path / "tls-b"
    _write_tls(dir_a, old)
    _write_tls(dir_b, old)
    a = Node("a", tmp_path, dir_a, cluster, None)
    b = Node("b", tmp_path, dir_b, cluster, a.route)
    clients: list[TlsClient] = []
    try:
        a.start()
        b.start()
        for n in (a, b):
            n.wait("route (mutual TLS with the bootstrapped certificate)", lambda n=n: _routes(n) == 1)
        first = TlsClient(a.client, dir_a / "ca.pem")
        clients.append(first)
        assert first.serial == _cert(old["cert_pem"]).serial_number
        varz = a.get("/varz")

        aws.bootstrap(cluster, "--rotate-tls")
        new = aws.value(cluster, "tls")
        assert _cert(new["cert_pem"]).serial_number != first.serial
        _write_tls(dir_a, new)
        assert a.proc is not None
        pid = a.proc.pid
        os.kill(pid, signal.SIGHUP)
        a.wait("reload", lambda: "Reloaded server configuration" in a.log.read_text(errors="replace"))

        second = TlsClient(a.client, dir_a / "ca.pem")
        clients.append(second)
        assert second.serial == _cert(new["cert_pem"]).serial_number
        first.ping()  # the connection made before the reload is still served
        after = a.get("/varz")
        assert a.proc.pid == pid and a.proc.poll() is None and after["start"] == varz["start"]
        assert after["config_load_time"] != varz["config_load_time"]
        assert _routes(a) == 1 and _routes(b) == 1

        # b, still on the old certificate, dials a fresh route to a (new certificate).
        b.stop()
        a.wait("route gone", lambda: _routes(a) == 0)
        b.start()
        for n in (a, b):
            n.wait("route between old and new certificate", lambda n=n: _routes(n) == 1)
    finally:
        for c in clients:
            c.close()
        b.stop()
        a.stop()


def test_output_never_contains_a_secret_value(aws: Aws, cluster: str) -> None:
    """No run of this module printed a key, seed or password (any version of any secret)."""
    values: list[str] = []
    for kind in ("ca", "tls", "nkeys", "callout"):
        name = f"tribune/{cluster}/{kind}"
        ids = [v["VersionId"] for v in
               aws.sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]]
        for vid in ids:
            value = json.loads(aws.sm.get_secret_value(SecretId=name, VersionId=vid)["SecretString"])
            for field, v in value.items():
                if field.endswith("_public") or field == "route_user":
                    continue
                if field.endswith("_pem"):
                    # The base64 body of a PEM: no line of it may be printed.
                    values += [line for line in v.splitlines() if len(line) > 20 and "-----" not in line]
                else:
                    values.append(v)
    assert values and len(aws.outputs) > 5
    for out in aws.outputs:
        leaked = [v[:6] + "..." for v in values if v in out]
        assert not leaked, f"secret values in the output: {leaked}"


# --- units of the bootstrap's certificate code (no AWS) -------------------------

def test_requested_sans_order_and_validation() -> None:
    got = [pki.san_text(n) for n in pki.requested_sans("Example.COM", ["203.0.113.7", "2001:db8::1",
                                                                      "nats.example.com", "localhost"])]
    assert got == ["DNS:nats.example.com", "IP:203.0.113.7", "IP:2001:db8::1", "DNS:localhost", "IP:127.0.0.1"]
    assert [pki.san_text(n) for n in pki.requested_sans(None, [])] == ["DNS:localhost", "IP:127.0.0.1"]
    for bad in ("", "exa mple.com", "-x.example.com", "a/b", "http://x"):
        with pytest.raises(pki.PkiError):
            pki.parse_san(bad)
    with pytest.raises(pki.PkiError):
        pki.requested_sans("not a domain", [])
    assert pki.parse_san("*.example.com") == x509.DNSName("*.example.com")
    assert pki.parse_san("10.0.0.1") == x509.IPAddress(ipaddress.ip_address("10.0.0.1"))


def test_an_adopted_rsa_ca_signs_too() -> None:
    """An operator may store the RSA CA of a certificate made before `make secrets`."""
    bundle = make_tls_bundle(["x.test"])  # the tests' EC material passes the same check
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old CA")])
    now = dt.datetime.now(dt.timezone.utc)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    cert_pem, node_key = pki.issue_node_cert(ca_pem, key_pem, pki.requested_sans(None, []), "unit")
    _cert(cert_pem).verify_directly_issued_by(ca)
    # Capped at the CA's own expiry.
    assert _cert(cert_pem).not_valid_after_utc <= ca.not_valid_after_utc
    assert pki.check_pair({"ca_pem": ca_pem, "cert_pem": cert_pem, "key_pem": node_key}, None) == []
    assert pki.check_pair(bundle, None) == []


def test_stored_ca_is_checked_before_signing() -> None:
    ca_pem, ca_key_pem = pki.new_ca("unit")
    _, other_key = pki.new_ca("unit")
    with pytest.raises(pki.PkiError, match="does not belong"):
        pki.issue_node_cert(ca_pem, other_key, pki.requested_sans(None, []), "unit")
    cert_pem, key_pem = pki.issue_node_cert(ca_pem, ca_key_pem, pki.requested_sans(None, []), "unit", days=1)
    assert pki.check_pair({"ca_pem": ca_pem, "cert_pem": cert_pem, "key_pem": key_pem},
                          {"ca_pem": ca_pem, "ca_key_pem": ca_key_pem}) == []
    other_ca, _ = pki.new_ca("unit")
    problems = pki.check_pair({"ca_pem": other_ca, "cert_pem": cert_pem, "key_pem": key_pem}, None)
    assert any("not signed by its ca_pem" in p for p in problems)
