"""Static checks: terraform fmt, validate of both roots, variable validation, checkov."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import TF_ROOT, deploy_tool, run, tf_env

ROOTS = ["aws", "examples/localstack"]


def test_fmt(terraform_bin: str) -> None:
    run([terraform_bin, "fmt", "-check", "-recursive", "-diff", str(TF_ROOT)])


@pytest.mark.parametrize("root", ROOTS)
def test_validate(terraform_bin: str, root: str, tmp_path: Path) -> None:
    env = tf_env(tmp_path / ".terraform")
    run([terraform_bin, f"-chdir={TF_ROOT / root}", "init", "-backend=false", "-input=false",
         "-lockfile=readonly", "-no-color"], env=env)
    out = run([terraform_bin, f"-chdir={TF_ROOT / root}", "validate", "-json", "-no-color"], env=env)
    result = json.loads(out.stdout)
    assert result["valid"], json.dumps(result["diagnostics"], indent=2)
    assert result["warning_count"] == 0, json.dumps(result["diagnostics"], indent=2)


def _module_call(tmp_path: Path, **overrides: str) -> Path:
    """A throw-away root calling modules/cluster with valid inputs plus overrides (HCL literals)."""
    args = {
        "name": '"prod"',
        "vpc_id": '"vpc-0abc"',
        "subnet_ids": '{ a = "subnet-01", b = "subnet-02", c = "subnet-03" }',
        "ami_id": '"ami-0123abcd"',
        "client_cidrs": '["0.0.0.0/0"]',
        "admin_cidrs": '["198.51.100.0/24"]',
        "tls_secret_arn": '"arn:aws:secretsmanager:eu-west-1:123456789012:secret:tribune/prod/tls-AbC123"',
    }
    args.update(overrides)
    body = "\n".join(f"  {k} = {v}" for k, v in args.items())
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(textwrap.dedent(f"""\
        provider "aws" {{
          region                      = "eu-west-1"
          skip_credentials_validation = true
          skip_requesting_account_id  = true
        }}
        module "cluster" {{
          source = "{TF_ROOT / 'modules' / 'cluster'}"
        {body}
        }}
        """))
    return root


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"admin_cidrs": '["0.0.0.0/0"]'}, "may not contain 0.0.0.0/0"),
        ({"admin_cidrs": '["10.0.0.0/8", "::/0"]'}, "may not contain 0.0.0.0/0"),
        ({"client_cidrs": '["not-a-cidr"]'}, "client_cidrs must be a non-empty list of CIDR blocks"),
        ({"subnet_ids": '{ a = "subnet-01", b = "subnet-02" }'}, "exactly three entries"),
        ({"name": '"Prod_1"'}, "lower-case letters"),
        ({"tls_secret_arn": '"arn:aws:secretsmanager:eu-west-1:123456789012:secret:other"'},
         "tribune/<cluster>/tls"),
        ({"ami_id": '"ubuntu"'}, "ami_id must look like ami-"),
        ({"bridge_mqtt_url": '"mqtt://mqtt.example.com"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"ws://mqtt.example.com/mqtt"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"wss://user:pw@mqtt.example.com/mqtt"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"wss://mqtt.example.com/mqtt?token=x"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"wss://mqtt.example.com:70000/mqtt"'}, "bridge_mqtt_url must be mqtts://"),
    ],
    ids=["admin-world", "admin-ipv6-world", "client-cidr", "two-azs", "name", "secret-name", "ami",
         "mqtt-plaintext", "mqtt-ws-plaintext", "mqtt-userinfo", "mqtt-query", "mqtt-port"],
)
def test_cluster_module_rejects_bad_input(terraform_bin: str, tmp_path: Path,
                                          override: dict[str, str], message: str) -> None:
    root = _module_call(tmp_path, **override)
    env = tf_env(tmp_path / ".terraform")
    run([terraform_bin, f"-chdir={root}", "init", "-backend=false", "-input=false", "-no-color"], env=env)
    proc = run([terraform_bin, f"-chdir={root}", "validate", "-no-color"], env=env, check=False)
    assert proc.returncode != 0, f"validate accepted {override}:\n{proc.stdout}"
    text = " ".join((proc.stdout + proc.stderr).split())
    assert message in text, text


def test_cluster_module_accepts_good_input(terraform_bin: str, tmp_path: Path) -> None:
    root = _module_call(tmp_path)
    env = tf_env(tmp_path / ".terraform")
    run([terraform_bin, f"-chdir={root}", "init", "-backend=false", "-input=false", "-no-color"], env=env)
    run([terraform_bin, f"-chdir={root}", "validate", "-no-color"], env=env)


def test_checkov_no_unexplained_failures(tmp_path: Path) -> None:
    checkov = deploy_tool("checkov")
    proc = run([checkov, "-d", str(TF_ROOT), "--framework", "terraform", "--skip-download",
                "--quiet", "--compact", "-o", "json"], check=False, timeout=900)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"checkov printed no JSON ({e}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    reports = report if isinstance(report, list) else [report]
    failed, skipped = [], []
    for r in reports:
        failed += r.get("results", {}).get("failed_checks", [])
        skipped += r.get("results", {}).get("skipped_checks", [])
    assert not failed, "checkov failures:\n" + "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}" for c in failed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Every skip must say why, next to the resource.
    unexplained = [c for c in skipped if len((c.get("check_result", {}).get("suppress_comment") or "").strip()) < 20]
    assert not unexplained, "checkov skips without a reason:\n" + "\n".join(
        f"{c['check_id']} {c['resource']}" for c in unexplained)


@pytest.mark.parametrize(
    ("url", "cidrs", "expected"),
    [
        (None, ["192.0.2.10/32"], {"192.0.2.10/32": 8883}),
        ('"mqtts://mqtt.example.com:1884"', ["192.0.2.10/32"], {"192.0.2.10/32": 1884}),
        ('"ssl://mqtt.example.com"', ["192.0.2.10/32"], {"192.0.2.10/32": 8883}),
        # MQTT over WebSocket over TLS: 443. 443 to 0.0.0.0/0 is the https rule already.
        ('"wss://mqtt.example.com/mqtt"', ["192.0.2.10/32", "2001:db8::/64", "0.0.0.0/0"],
         {"192.0.2.10/32": 443, "2001:db8::/64": 443}),
        ('"WSS://mqtt.example.com:8443"', ["0.0.0.0/0"], {"0.0.0.0/0": 8443}),
        ('"wss://mqtt.example.com/mqtt"', [], {}),
    ],
    ids=["mqtts-default", "mqtts-port", "ssl", "wss", "wss-port", "no-cidrs"],
)
def test_bridge_mqtt_egress_follows_the_transport(terraform_bin: str, tmp_path: Path, url: str | None,
                                                   cidrs: list[str], expected: dict[str, int]) -> None:
    """The egress rule to the MQTT provider opens the port of the bridge's mqtt.url.

    A plan of the module alone needs no AWS: new resources only, and the data
    sources it reads (region, partition, policy documents) are local.
    """
    overrides = {"bridge_mqtt_cidrs": json.dumps(cidrs)}
    if url is not None:
        overrides["bridge_mqtt_url"] = url
    root = _module_call(tmp_path, **overrides)
    env = tf_env(tmp_path / ".terraform")
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
    run([terraform_bin, f"-chdir={root}", "init", "-backend=false", "-input=false", "-no-color"], env=env)
    plan = tmp_path / "plan.bin"
    run([terraform_bin, f"-chdir={root}", "plan", "-input=false", "-no-color", f"-out={plan}"], env=env)
    shown = json.loads(run([terraform_bin, f"-chdir={root}", "show", "-json", "-no-color", str(plan)],
                           env=env).stdout)
    rules = {}
    for change in shown.get("resource_changes", []):
        if change["type"] == "aws_vpc_security_group_egress_rule" and change["name"] == "mqtt":
            after = change["change"]["after"]
            assert after["from_port"] == after["to_port"] and after["ip_protocol"] == "tcp", after
            cidr = after.get("cidr_ipv4") or after.get("cidr_ipv6")
            assert change["index"] == cidr
            rules[cidr] = after["from_port"]
    assert rules == expected
