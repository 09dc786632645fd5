"""Static checks: terraform fmt, validate of both roots, variable validation, checkov."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import TF_ROOT, deploy_tool, run, tf_env

ROOTS = ["aws", "examples/localstack"]
KMS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


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
        "secrets_kms_key_arn": f'"{KMS_KEY_ARN}"',
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
        ({"secrets_kms_key_arn": '"alias/tribune-prod"'}, "secrets_kms_key_arn must be a KMS key ARN"),
        ({"ami_id": '"ubuntu"'}, "ami_id must look like ami-"),
        ({"bridge_mqtt_url": '"mqtt://mqtt.example.com"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"ws://mqtt.example.com/mqtt"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"wss://user:pw@mqtt.example.com/mqtt"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"wss://mqtt.example.com/mqtt?token=x"'}, "bridge_mqtt_url must be mqtts://"),
        ({"bridge_mqtt_url": '"wss://mqtt.example.com:70000/mqtt"'}, "bridge_mqtt_url must be mqtts://"),
    ],
    ids=["admin-world", "admin-ipv6-world", "client-cidr", "two-azs", "name", "kms-alias", "ami",
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


def _offline_plan(terraform_bin: str, tmp_path: Path, root: Path, *, check: bool = True) -> dict:
    """`terraform show -json` of a plan of `root` (a module call needing no AWS API).

    With check=False a failed plan is returned as {"error": <output>}.
    """
    env = tf_env(tmp_path / ".terraform")
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
    run([terraform_bin, f"-chdir={root}", "init", "-backend=false", "-input=false", "-no-color"], env=env)
    plan = tmp_path / "plan.bin"
    proc = run([terraform_bin, f"-chdir={root}", "plan", "-input=false", "-no-color", f"-out={plan}"],
               env=env, check=check)
    if proc.returncode != 0:
        return {"error": " ".join((proc.stdout + proc.stderr).split())}
    return json.loads(run([terraform_bin, f"-chdir={root}", "show", "-json", "-no-color", str(plan)],
                          env=env).stdout)


def test_instance_role_reads_cluster_secrets_but_not_the_ca(terraform_bin: str, tmp_path: Path) -> None:
    """The planned role policy: every tribune/<name>/* secret, decryption
    through Secrets Manager only and only for those secrets, and explicit
    Denies on the CA secret at both the Secrets Manager and the KMS layer."""
    shown = _offline_plan(terraform_bin, tmp_path, _module_call(tmp_path))
    policies = [c["change"]["after"]["policy"] for c in shown["resource_changes"]
                if c["type"] == "aws_iam_role_policy" and c["name"] == "node"]
    assert len(policies) == 1
    stmts = {s["Sid"]: s for s in json.loads(policies[0])["Statement"]}
    assert set(stmts) == {"DiscoverPeers", "ReadClusterSecrets", "DenyClusterCa",
                          "DecryptClusterSecrets", "DenyDecryptClusterCa", "PublishAlarmMetrics"}
    publish = stmts["PublishAlarmMetrics"]
    assert (publish["Effect"], publish["Action"], publish["Resource"]) == (
        "Allow", "cloudwatch:PutMetricData", "*")
    assert publish["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Tribune"}}
    prefix = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tribune/prod/"
    read = stmts["ReadClusterSecrets"]
    assert (read["Effect"], read["Action"], read["Resource"]) == (
        "Allow", "secretsmanager:GetSecretValue", prefix + "*")
    deny = stmts["DenyClusterCa"]
    assert (deny["Effect"], deny["Action"], deny["Resource"]) == ("Deny", "secretsmanager:*", prefix + "ca-??????")
    decrypt = stmts["DecryptClusterSecrets"]
    assert (decrypt["Effect"], decrypt["Action"], decrypt["Resource"]) == ("Allow", "kms:Decrypt", KMS_KEY_ARN)
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:SecretARN": prefix + "*"},
    }
    deny_kms = stmts["DenyDecryptClusterCa"]
    assert (deny_kms["Effect"], deny_kms["Action"], deny_kms["Resource"]) == ("Deny", "kms:Decrypt", KMS_KEY_ARN)
    assert deny_kms["Condition"] == {"StringLike": {"kms:EncryptionContext:SecretARN": prefix + "ca-??????"}}
    # What the patterns match (IAM: '*' any run of characters, '?' exactly one):
    # the CA secret's ARN, and none of the secrets the nodes need.
    ca_arn = re.compile(fnmatch.translate(prefix + "ca-??????"))
    assert ca_arn.match(prefix + "ca-AbC123")
    for kind in ("tls", "nkeys", "callout", "provider", "web-idp"):
        arn = f"{prefix}{kind}-AbC123"
        assert re.match(fnmatch.translate(prefix + "*"), arn) and not ca_arn.match(arn), kind
    assert not re.match(fnmatch.translate(prefix + "*"), prefix.replace("/prod/", "/prod-eu/") + "tls-AbC123")


def _metrics_publisher():
    """packer/files/tribune-cloudwatch-metrics as a module, loaded the way
    its own tests load it (packer/tests/test_cloudwatch_metrics.load)."""
    tests = TF_ROOT.parent / "packer" / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    from test_cloudwatch_metrics import load

    return load()


def test_alarms_watch_what_the_nodes_publish(terraform_bin: str, tmp_path: Path) -> None:
    """The planned CloudWatch alarms: each node's conditions per availability
    zone, the login-refusal and feed alarms as metric math,
    all on metrics tribune-cloudwatch-metrics publishes, in the namespace
    the instance role may write; only a node that is gone counts missing
    data as breaching."""
    publisher = _metrics_publisher()
    shown = _offline_plan(terraform_bin, tmp_path, _module_call(tmp_path, alarm_actions='["arn:aws:sns:eu-west-1:123456789012:ops"]'))
    alarms = [c["change"]["after"] for c in shown["resource_changes"] if c["type"] == "aws_cloudwatch_metric_alarm"]
    by_name = {a["alarm_name"]: a for a in alarms}
    assert len(by_name) == len(alarms)
    read: set[str] = set()
    for a in alarms:
        assert a["alarm_actions"] == a["ok_actions"] == ["arn:aws:sns:eu-west-1:123456789012:ops"], a["alarm_name"]
        assert a["alarm_description"].startswith("Tribune prod"), a["alarm_name"]
        if a.get("metric_name"):
            assert a["namespace"] == "Tribune"
            read.add(a["metric_name"])
            assert a["dimensions"]["Cluster"] == "prod" and a["dimensions"]["Node"] in ("a", "b", "c")
            want = "breaching" if a["alarm_name"].endswith("-broker-down") else "notBreaching"
            assert a["treat_missing_data"] == want, a["alarm_name"]
        else:
            assert a["treat_missing_data"] == "notBreaching", a["alarm_name"]
            for q in a["metric_query"]:
                assert "FILL" not in (q["expression"] or ""), a["alarm_name"]
                for m in q["metric"]:
                    assert m["namespace"] == "Tribune"
                    read.add(m["metric_name"])
    assert read <= publisher.PUBLISHED, read - publisher.PUBLISHED
    assert by_name["prod-a-route-missing"]["threshold"] == 2
    for node in ("a", "b", "c"):
        for kind in ("broker-down", "route-missing", "slow-consumers", "jetstream-meta-leaderless",
                     "jetstream-stream-leaderless", "jetstream-replica-behind", "jetstream-disk-low",
                     "jetstream-disk-full", "memory-high", "auth-failures", "auth-rejections-high",
                     "bridge-lag", "bridge-dead-letters"):
            assert f"prod-{node}-{kind}" in by_name, kind
    # The cluster-wide alarm reads series every live node feeds (Cluster
    # dimension alone): none vanishes with a node.
    bridge = by_name["prod-bridge-not-ingesting"]["metric_query"]
    assert next(q["expression"] for q in bridge if q["return_data"]) == "IF(configured > 0 AND ingesting < 1, 1, 0)"
    assert all(m["dimensions"] == {"Cluster": "prod"} for q in bridge for m in q["metric"])
    assert {m["metric_name"] for q in bridge for m in q["metric"]} <= set(publisher.CLUSTER_WIDE)


def test_secrets_key_must_be_in_the_cluster_region(terraform_bin: str, tmp_path: Path) -> None:
    root = _module_call(tmp_path, secrets_kms_key_arn=f'"{KMS_KEY_ARN.replace("eu-west-1", "us-east-1")}"')
    shown = _offline_plan(terraform_bin, tmp_path, root, check=False)
    assert "run `make secrets` in the cluster's region" in shown.get("error", ""), shown.get("error")


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
    shown = _offline_plan(terraform_bin, tmp_path, _module_call(tmp_path, **overrides))
    rules = {}
    for change in shown.get("resource_changes", []):
        if change["type"] == "aws_vpc_security_group_egress_rule" and change["name"] == "mqtt":
            after = change["change"]["after"]
            assert after["from_port"] == after["to_port"] and after["ip_protocol"] == "tcp", after
            cidr = after.get("cidr_ipv4") or after.get("cidr_ipv6")
            assert change["index"] == cidr
            rules[cidr] = after["from_port"]
    assert rules == expected


def test_data_volumes_are_snapshotted_and_restorable(terraform_bin: str, tmp_path: Path) -> None:
    """Data Lifecycle Manager snapshots the three data volumes on one schedule
    (the tag it targets is on every volume), and data_volume_snapshot_ids
    makes a created volume start from a snapshot."""
    root = _module_call(tmp_path, data_volume_snapshot_ids='{ b = "snap-0123abcd" }')
    shown = _offline_plan(terraform_bin, tmp_path, root)
    changes = {(c["type"], c["index"] if "index" in c else None): c["change"]["after"]
               for c in shown["resource_changes"]}
    (policy,) = [v for (t, _), v in changes.items() if t == "aws_dlm_lifecycle_policy"]
    details = policy["policy_details"][0]
    assert details["resource_types"] == ["VOLUME"]
    assert details["target_tags"] == {"tribune:snapshots": "prod"}
    schedule = details["schedule"][0]
    assert schedule["create_rule"][0]["interval"] == 12 and schedule["retain_rule"][0]["count"] == 14
    volumes = {i: v for (t, i), v in changes.items() if t == "aws_ebs_volume"}
    assert sorted(volumes) == ["a", "b", "c"]
    for az, vol in volumes.items():
        assert vol["tags"]["tribune:snapshots"] == "prod", az
        if az == "b":
            assert vol["snapshot_id"] == "snap-0123abcd"
        else:
            assert vol.get("snapshot_id") is None, az
