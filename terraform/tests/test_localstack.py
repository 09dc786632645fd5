"""terraform init/validate/plan/apply of examples/localstack, then checks on
what it created, the boot step of every node (attach-data-volume), EC2
discovery by the real tribune-broker, the aws_ec2 Ansible inventory and the
replacement of a node, all against that same state; destroy at the end.

Where things live: IAM, STS, KMS, Secrets Manager, Route53 and CloudWatch
Logs on LocalStack; EC2, Auto Scaling and ELBv2 on moto, because LocalStack's
community edition serves no Auto Scaling and no ELBv2, and an Auto Scaling
group needs its subnets, launch template and target groups in the same
backend (terraform/tests/moto_server.py).

Both are mocks: instances never boot, their addresses are not reachable.
Nothing here dials them; the broker's discovery only reads them, and the
boot step runs on this machine with a fake IMDS and a fake block layer
(packer/tests/boot_harness.py).
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import yaml

from conftest import (REGION, REPO, TF_ROOT, bootstrap_cmd, bootstrap_env, delete_bootstrap_secrets,
                      deploy_tool, require_localstack, run, tf_env)

sys.path.insert(0, str(REPO / "packer" / "tests"))
from boot_harness import FakeDisk, attach_env, node_metadata, run_attach  # noqa: E402
from fake_imds import imds_server  # noqa: E402
from instance_runtime import InstanceRuntime  # noqa: E402

sys.path.insert(0, str(REPO / "ansible" / "tests"))
from upgrade_harness import Watcher, Workload, get_json, install_copy, variant  # noqa: E402

EXAMPLE = TF_ROOT / "examples" / "localstack"
TAG_KEY = "tribune:cluster"
ADMIN_CIDR = "203.0.113.0/24"
DOMAIN = "tribune.test"
CLUSTER_PORT = 6222
AZS = [f"{REGION}{s}" for s in "abc"]
# The services the example sends to moto (examples/localstack/providers.tf).
MOTO_SERVICES = {"ec2", "autoscaling", "elbv2", "ssm"}


class Stack:
    """One applied example: its name, outputs and clients for its services."""

    def __init__(self, name: str, outputs: dict[str, Any], endpoint: str, moto: str,
                 tf: list[str], env: dict[str, str], var_args: list[str], state: str) -> None:
        self.name = name
        self.state = state
        self.out = {k: v["value"] for k, v in outputs.items()}
        self.endpoint = endpoint
        self.moto = moto
        self.tf, self.env, self.var_args = tf, env, var_args

    def client(self, service: str) -> Any:
        endpoint = self.moto if service in MOTO_SERVICES else self.endpoint
        return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def instances(self, az: str | None = None) -> list[dict[str, Any]]:
        """The cluster's running instances (what discovery sees), by tag."""
        filters = [{"Name": f"tag:{TAG_KEY}", "Values": [self.name]},
                   {"Name": "instance-state-name", "Values": ["running"]}]
        if az:
            filters.append({"Name": "availability-zone", "Values": [az]})
        res = self.client("ec2").describe_instances(Filters=filters)
        return [i for r in res["Reservations"] for i in r["Instances"]]

    def instance_in(self, az: str) -> dict[str, Any]:
        found = self.instances(az)
        assert len(found) == 1, f"{len(found)} running brokers in {az}"
        return found[0]


@pytest.fixture(scope="module")
def stack(terraform_bin: str, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    endpoint = require_localstack()
    work = tmp_path_factory.mktemp("tf-localstack")
    env = tf_env(work / ".terraform")
    # Unique per run: LocalStack keeps state between runs and may be shared.
    name = f"tt-{secrets.token_hex(4)}"
    varfile = work / "test.tfvars.json"
    varfile.write_text(json.dumps({
        "cluster_name": name,
        "localstack_endpoint": endpoint,
        "moto_endpoint": moto_endpoint,
        "domain": DOMAIN,
    }))
    tf = [terraform_bin, f"-chdir={EXAMPLE}"]
    var_args = [f"-var-file={varfile}", "-no-color", "-input=false"]

    run(tf + ["init", "-input=false", "-no-color", "-lockfile=readonly",
              f"-backend-config=path={work / 'terraform.tfstate'}"], env=env)
    run(tf + ["validate", "-no-color"], env=env)
    # Before `make secrets`, the plan stops at the missing key and secrets.
    proc = run(tf + ["plan"] + var_args, env=env, check=False)
    assert proc.returncode == 1 and f"alias/tribune-{name}" in proc.stderr, proc.stderr[-4000:]
    applied = False
    try:
        # What `make secrets` runs, against LocalStack.
        run(bootstrap_cmd(name, endpoint, "--domain", DOMAIN), env=bootstrap_env(), timeout=300)
        plan = work / "plan.bin"
        proc = run(tf + ["plan", f"-out={plan}", "-detailed-exitcode"] + var_args, env=env, check=False)
        assert proc.returncode == 2, f"plan should have changes (exit 2), got {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        run(tf + ["apply", "-no-color", "-input=false", str(plan)], env=env, timeout=900)
        applied = True
        outputs = json.loads(run(tf + ["output", "-json", "-no-color"], env=env).stdout)
        state = (work / "terraform.tfstate").read_text()
        yield Stack(name, outputs, endpoint, moto_endpoint, tf, env, var_args, state)
    finally:
        destroy = run(tf + ["destroy", "-auto-approve"] + var_args, env=env, check=False, timeout=900)
        delete_bootstrap_secrets(name, endpoint)
        if applied:
            assert destroy.returncode == 0, f"destroy failed:\n{destroy.stdout[-4000:]}\n{destroy.stderr[-4000:]}"


def _mock_quirk(change: dict[str, Any]) -> str | None:
    """Why a planned change is a known quirk of the mocks (and nothing
    else), or None. Each is a value the mock does not store or returns with
    extras, so Terraform wants to write it again; none is a real change."""
    c = change["change"]
    before, after = c["before"] or {}, c["after"] or {}
    unknown = c.get("after_unknown") or {}
    differing = {k for k in set(before) | set(after) if before.get(k) != after.get(k) and not unknown.get(k)}
    if c["actions"] != ["update"]:
        return None
    kind = change["type"]
    # LocalStack and moto drop the description of a rule that references a
    # security group.
    if (kind in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule")
            and before.get("referenced_security_group_id") and differing == {"description"}
            and not before.get("description")):
        return "rule description"
    # moto reports the template's own tags as an extra tag specification of
    # type launch-template; the new version that "removes" it is unknown.
    if kind == "aws_launch_template" and differing <= {"tag_specifications"}:
        extra = [t for t in before.get("tag_specifications", []) if t.get("resource_type") == "launch-template"]
        rest = [t for t in before.get("tag_specifications", []) if t.get("resource_type") != "launch-template"]
        if extra and rest == after.get("tag_specifications"):
            return "launch-template tag specification"
    # moto does not store an ASG's instance maintenance policy; the version
    # follows the launch template's "new" one above.
    if kind == "aws_autoscaling_group" and differing <= {"instance_maintenance_policy"}:
        if not before.get("instance_maintenance_policy") and after.get("instance_maintenance_policy"):
            return "instance maintenance policy"
    return None


def test_second_plan_is_empty(stack: Stack, tmp_path: Path) -> None:
    """Idempotence: right after apply, a plan against the same state changes nothing.

    Only the mocks' known quirks are tolerated (_mock_quirk: values they do
    not store); any other difference fails the test.
    """
    plan = tmp_path / "again.bin"
    proc = run(stack.tf + ["plan", f"-out={plan}", "-detailed-exitcode"] + stack.var_args,
               env=stack.env, check=False)
    if proc.returncode == 0:
        return
    assert proc.returncode == 2, proc.stderr[-4000:]
    shown = json.loads(run(stack.tf + ["show", "-json", "-no-color", str(plan)], env=stack.env).stdout)
    for change in shown.get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions == ["no-op"] or actions == ["read"]:
            continue
        assert _mock_quirk(change), (
            f"unexpected change after apply: {change['address']} {actions}\n"
            f"{json.dumps(change['change'], indent=1, default=str)[:4000]}")


def test_outputs(stack: Stack) -> None:
    for key in ("node_public_ips", "asg_names", "launch_template_ids", "data_volume_ids",
                "eip_allocation_ids", "subnet_ids"):
        assert sorted(stack.out[key]) == AZS, key
    assert stack.out["client_url"] == f"tls://nats.{DOMAIN}:4222"
    assert stack.out["websocket_url"] == f"wss://nats.{DOMAIN}"
    assert sorted(stack.out["client_urls"]) == sorted(
        f"tls://{ip}:4222" for ip in stack.out["node_public_ips"].values())
    assert stack.out["discovery_tag"] == {"key": TAG_KEY, "value": stack.name}
    assert sorted(stack.out["target_group_arns"]) == ["4222", "443"]


def test_three_subnets_in_three_azs(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [stack.out["vpc_id"]]}])["Subnets"]
    assert len(subnets) == 3
    assert sorted(s["AvailabilityZone"] for s in subnets) == [f"{REGION}{s}" for s in "abc"]
    assert len({s["CidrBlock"] for s in subnets}) == 3
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets), "public IPs come from the EIPs only"
    # Public subnets: the route table sends 0.0.0.0/0 to the internet gateway.
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                 "Values": [s["SubnetId"] for s in subnets]}])["RouteTables"]
    assert len(tables) == 1
    default = [r for r in tables[0]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert len(default) == 1 and default[0]["GatewayId"].startswith("igw-")


def _rules(ec2: Any, sg_id: str) -> list[dict[str, Any]]:
    return ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [sg_id]}])["SecurityGroupRules"]


def test_security_group_rules(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    sg, nlb_sg = stack.out["security_group_id"], stack.out["nlb_security_group_id"]
    rules = _rules(ec2, sg)
    ingress = [r for r in rules if not r["IsEgress"]]
    by_port: dict[int, list[dict[str, Any]]] = {}
    for r in ingress:
        assert r["IpProtocol"] == "tcp" and r["FromPort"] == r["ToPort"], r
        by_port.setdefault(r["FromPort"], []).append(r)
    assert sorted(by_port) == [22, 443, 4222, 6222, 8222]
    ref = lambda r: r.get("ReferencedGroupInfo", {}).get("GroupId")  # noqa: E731
    # Clients (NATS over TLS, browsers over wss://) only through the NLB:
    # the brokers advertise nats.<domain>, so nobody is told their EIPs.
    for port in (4222, 443):
        assert [ref(r) for r in by_port[port]] == [nlb_sg], port
        assert not any(r.get("CidrIpv4") or r.get("CidrIpv6") for r in by_port[port]), port
    # Routes only from the brokers' own security group, never from a CIDR.
    assert len(by_port[6222]) == 1
    assert ref(by_port[6222][0]) == sg
    assert not by_port[6222][0].get("CidrIpv4") and not by_port[6222][0].get("CidrIpv6")
    assert [r.get("CidrIpv4") for r in by_port[22]] == [ADMIN_CIDR]
    # Monitoring: the operators, and the NLB's health checks (/healthz).
    assert sorted((r.get("CidrIpv4") or "", ref(r) or "") for r in by_port[8222]) == sorted(
        [(ADMIN_CIDR, ""), ("", nlb_sg)])
    world = [r for r in ingress if r.get("CidrIpv4") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0"]
    assert world == [], "the brokers take nothing from the internet directly"

    egress = [r for r in rules if r["IsEgress"]]
    assert sorted(r["FromPort"] for r in egress) == [443, 443, 6222]
    assert all(r["IpProtocol"] == "tcp" for r in egress), "no all-protocol egress"
    assert all(r["FromPort"] == r["ToPort"] for r in egress), egress
    route_out = next(r for r in egress if r["FromPort"] == 6222)
    assert ref(route_out) == sg
    # HTTPS to the AWS APIs, and the bridge to the MQTT provider over wss://
    # (the example's bridge_mqtt_url): 443, to the provider only.
    assert sorted(r.get("CidrIpv4") for r in egress if r["FromPort"] == 443) == ["0.0.0.0/0", "192.0.2.10/32"]

    # The NLB: the client CIDRs in on 4222 and 443, out only to the brokers.
    nlb_rules = _rules(ec2, nlb_sg)
    nlb_in = sorted((r["FromPort"], r.get("CidrIpv4")) for r in nlb_rules if not r["IsEgress"])
    assert nlb_in == [(443, "0.0.0.0/0"), (4222, "0.0.0.0/0")]
    nlb_out = sorted((r["FromPort"], ref(r)) for r in nlb_rules if r["IsEgress"])
    assert nlb_out == [(443, sg), (4222, sg), (8222, sg)]


def test_default_security_group_has_no_rules(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [stack.out["vpc_id"]]},
        {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert len(groups) == 1
    assert groups[0]["IpPermissions"] == [] and groups[0]["IpPermissionsEgress"] == []


def test_one_auto_scaling_group_of_one_per_az(stack: Stack) -> None:
    asg = stack.client("autoscaling")
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=list(stack.out["asg_names"].values()))
    by_name = {g["AutoScalingGroupName"]: g for g in groups["AutoScalingGroups"]}
    for az in AZS:
        g = by_name[stack.out["asg_names"][az]]
        assert (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) == (1, 1, 1)
        assert g["VPCZoneIdentifier"] == stack.out["subnet_ids"][az], "one AZ per group"
        assert g["LaunchTemplate"]["LaunchTemplateId"] == stack.out["launch_template_ids"][az]
        assert g["HealthCheckType"] == "EC2"
        assert sorted(g["TargetGroupARNs"]) == sorted(stack.out["target_group_arns"].values())
        tags = {t["Key"]: t for t in g["Tags"]}
        for key, value in ((TAG_KEY, stack.name), ("tribune:az", az), ("tribune:role", "broker"),
                           ("Name", f"{stack.name}-{az}")):
            assert tags[key]["Value"] == value and tags[key]["PropagateAtLaunch"], key
        assert [i["LifecycleState"] for i in g["Instances"]] == ["InService"]


def test_launch_templates(stack: Stack) -> None:
    """What every (replacement) broker launches with. Checked on the
    templates: moto does not apply a template's metadata options, network
    interfaces or block devices to the instances it launches (EC2 does)."""
    ec2, ssm = stack.client("ec2"), stack.client("ssm")
    for az in AZS:
        data = ec2.describe_launch_template_versions(
            LaunchTemplateId=stack.out["launch_template_ids"][az], Versions=["$Latest"]
        )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        # The AMI: whatever this node's parameter says at launch time.
        param = stack.out["ami_parameters"][az]
        assert param == f"/tribune/{stack.name}/{az}/ami"
        assert data["ImageId"] == f"resolve:ssm:{param}"
        value = ssm.get_parameter(Name=param)["Parameter"]
        assert value["DataType"] == "aws:ec2:image"
        (ami,) = ec2.describe_images(ImageIds=[value["Value"]])["Images"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        nic = data["NetworkInterfaces"][0]
        assert nic["Groups"] == [stack.out["security_group_id"]]
        assert nic["AssociatePublicIpAddress"] is True  # until the EIP replaces it at boot
        # The root volume: encrypted gp3 on the AMI's root device, gone with the instance.
        (root,) = data["BlockDeviceMappings"]
        assert root["DeviceName"] == ami["RootDeviceName"]
        assert root["Ebs"]["Encrypted"] is True and root["Ebs"]["VolumeType"] == "gp3"
        assert root["Ebs"]["DeleteOnTermination"] is True
        assert root["Ebs"]["KmsKeyId"] == stack.out["ebs_kms_key_arn"]
        specs = {t["ResourceType"]: {x["Key"]: x["Value"] for x in t["Tags"]}
                 for t in data["TagSpecifications"]}
        assert specs["instance"][TAG_KEY] == stack.name and specs["instance"]["tribune:az"] == az
        assert specs["instance"]["tribune:asg"] == stack.out["asg_names"][az]
        assert specs["instance"]["tribune:ami-parameter"] == param
        # User data: only what IMDS cannot tell, and the name clients use.
        text = base64.b64decode(data["UserData"]).decode()
        pairs = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
        assert pairs == {"TRIBUNE_REGION": REGION, "TRIBUNE_TAG_KEY": TAG_KEY, "TRIBUNE_CLUSTER": stack.name,
                         "TRIBUNE_CLIENT_HOST": f"nats.{DOMAIN}"}


def test_instances_tagged_one_per_az(stack: Stack) -> None:
    instances = stack.instances()
    assert sorted(i["Placement"]["AvailabilityZone"] for i in instances) == AZS
    for inst in instances:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        az = inst["Placement"]["AvailabilityZone"]
        assert tags[TAG_KEY] == stack.name
        assert tags["tribune:az"] == az and tags["tribune:role"] == "broker"
        assert tags["Name"] == f"{stack.name}-{az}"
        assert tags["aws:autoscaling:groupName"] == stack.out["asg_names"][az]
        assert inst["VpcId"] == stack.out["vpc_id"]
        assert inst["SubnetId"] == stack.out["subnet_ids"][az]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_data_volumes(stack: Stack) -> None:
    """One encrypted gp3 volume per AZ, tagged so its node finds it at boot."""
    ec2 = stack.client("ec2")
    vols = ec2.describe_volumes(VolumeIds=list(stack.out["data_volume_ids"].values()))["Volumes"]
    by_id = {v["VolumeId"]: v for v in vols}
    for az in AZS:
        v = by_id[stack.out["data_volume_ids"][az]]
        assert v["AvailabilityZone"] == az
        assert v["Encrypted"] and v["VolumeType"] == "gp3" and v["Size"] == 10
        assert v["Iops"] == 3000 and v["Throughput"] == 125
        assert v["KmsKeyId"] == stack.out["ebs_kms_key_arn"]
        tags = _tags(v)
        assert (tags[TAG_KEY], tags["tribune:az"], tags["tribune:role"]) == (stack.name, az, "jetstream-data")
        assert tags["Name"] == f"{stack.name}-{az}-data"


def test_elastic_ips(stack: Stack) -> None:
    """One per AZ, owned by Terraform, tagged so its node claims it at boot."""
    ec2 = stack.client("ec2")
    addrs = ec2.describe_addresses(AllocationIds=list(stack.out["eip_allocation_ids"].values()))["Addresses"]
    by_alloc = {a["AllocationId"]: a for a in addrs}
    for az in AZS:
        a = by_alloc[stack.out["eip_allocation_ids"][az]]
        assert a["PublicIp"] == stack.out["node_public_ips"][az]
        assert a["Domain"] == "vpc"
        tags = _tags(a)
        assert (tags[TAG_KEY], tags["tribune:az"], tags["tribune:role"]) == (stack.name, az, "broker-address")


def test_load_balancer(stack: Stack) -> None:
    """nats.<domain>'s NLB: TCP passthrough on 4222 and 443 to the ASGs'
    instances, health-checked on /healthz, cross-zone, client IPs kept."""
    elb = stack.client("elbv2")
    (lb,) = elb.describe_load_balancers(LoadBalancerArns=[stack.out["nlb_arn"]])["LoadBalancers"]
    assert lb["Type"] == "network" and lb["DNSName"] == stack.out["nlb_dns_name"]
    assert lb.get("Scheme", "internet-facing") == "internet-facing"
    assert lb["SecurityGroups"] == [stack.out["nlb_security_group_id"]]
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(stack.out["subnet_ids"].values())
    attrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(
        LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    assert attrs["load_balancing.cross_zone.enabled"] == "true"
    listeners = {l["Port"]: l for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    assert sorted(listeners) == [443, 4222]
    instances = sorted(i["InstanceId"] for i in stack.instances())
    for port, listener in listeners.items():
        assert listener["Protocol"] == "TCP", "TLS ends on the brokers, not the NLB"
        (action,) = listener["DefaultActions"]
        assert action["Type"] == "forward"
        assert action["TargetGroupArn"] == stack.out["target_group_arns"][str(port)]
        (tg,) = elb.describe_target_groups(TargetGroupArns=[action["TargetGroupArn"]])["TargetGroups"]
        assert (tg["Protocol"], tg["Port"], tg["TargetType"]) == ("TCP", port, "instance")
        assert (tg["HealthCheckProtocol"], tg["HealthCheckPort"], tg["HealthCheckPath"]) == ("HTTP", "8222", "/healthz")
        tg_attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
        assert tg_attrs["preserve_client_ip.enabled"] == "true"
        assert tg_attrs["deregistration_delay.timeout_seconds"] == "60"
        targets = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        assert sorted(t["Target"]["Id"] for t in targets) == instances, "the ASGs register their brokers"


def test_iam_least_privilege(stack: Stack) -> None:
    iam = stack.client("iam")
    role = stack.out["iam_role_arn"].rsplit("/", 1)[1]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert sorted(names) == ["tribune-boot", "tribune-broker"]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    doc = iam.get_role_policy(RoleName=role, PolicyName="tribune-broker")["PolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    stmts = {s["Sid"]: s for s in doc["Statement"]}
    assert set(stmts) == {"DiscoverPeers", "ReadClusterSecrets", "DenyClusterCa",
                          "DecryptClusterSecrets", "DenyDecryptClusterCa", "PublishAlarmMetrics"}
    assert stmts["PublishAlarmMetrics"]["Action"] == "cloudwatch:PutMetricData"
    assert stmts["PublishAlarmMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Tribune"}}
    assert stmts["DiscoverPeers"]["Action"] == "ec2:DescribeInstances"
    assert stmts["DiscoverPeers"]["Condition"] == {"StringEquals": {"aws:RequestedRegion": REGION}}
    # The real ARNs of the secrets `make secrets` made: the nodes' five match
    # the Allow, the CA matches the Deny (IAM wildcards: '*' any run, '?' one).
    arns = stack.out["secret_arns"]
    read, deny = stmts["ReadClusterSecrets"], stmts["DenyClusterCa"]
    assert (read["Effect"], read["Action"]) == ("Allow", "secretsmanager:GetSecretValue")
    assert (deny["Effect"], deny["Action"]) == ("Deny", "secretsmanager:*")
    for kind, arn in arns.items():
        assert fnmatch.fnmatchcase(arn, read["Resource"]), kind
        assert fnmatch.fnmatchcase(arn, deny["Resource"]) == (kind == "ca"), kind
    key = stack.out["secrets_kms_key_arn"]
    decrypt, deny_kms = stmts["DecryptClusterSecrets"], stmts["DenyDecryptClusterCa"]
    assert (decrypt["Effect"], decrypt["Action"], decrypt["Resource"]) == ("Allow", "kms:Decrypt", key)
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    assert (deny_kms["Effect"], deny_kms["Action"], deny_kms["Resource"]) == ("Deny", "kms:Decrypt", key)
    assert fnmatch.fnmatchcase(arns["ca"], deny_kms["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"])
    profiles = iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
    assert len(profiles) == 1


def test_iam_boot_policy(stack: Stack) -> None:
    """attach-data-volume's rights: look up by tag anywhere in the region,
    but attach, detach and associate only this cluster's volumes and
    addresses, and only to and from the cluster's instances."""
    iam = stack.client("iam")
    role = stack.out["iam_role_arn"].rsplit("/", 1)[1]
    doc = iam.get_role_policy(RoleName=role, PolicyName="tribune-boot")["PolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    stmts = {s["Sid"]: s for s in doc["Statement"]}
    assert set(stmts) == {"FindDataVolumeAndAddress", "AttachDataVolumes", "AttachToClusterInstances",
                          "AssociateClusterAddresses", "AssociateToClusterInstances",
                          "UseDataVolumeKeyViaEc2", "GrantDataVolumeKeyToEc2"}
    assert all(s["Effect"] == "Allow" for s in stmts.values())
    as_list = lambda v: sorted(v) if isinstance(v, list) else [v]  # noqa: E731
    find = stmts["FindDataVolumeAndAddress"]
    assert as_list(find["Action"]) == ["ec2:DescribeAddresses", "ec2:DescribeInstances", "ec2:DescribeVolumes"]
    assert find["Condition"] == {"StringEquals": {"aws:RequestedRegion": REGION}}
    volume_arns = sorted(f"arn:aws:ec2:{REGION}:000000000000:volume/{v}" for v in stack.out["data_volume_ids"].values())
    assert as_list(stmts["AttachDataVolumes"]["Action"]) == ["ec2:AttachVolume", "ec2:DetachVolume"]
    assert as_list(stmts["AttachDataVolumes"]["Resource"]) == volume_arns
    eip_arns = sorted(f"arn:aws:ec2:{REGION}:000000000000:elastic-ip/{a}" for a in stack.out["eip_allocation_ids"].values())
    assert as_list(stmts["AssociateClusterAddresses"]["Action"]) == ["ec2:AssociateAddress"]
    assert as_list(stmts["AssociateClusterAddresses"]["Resource"]) == eip_arns
    for sid in ("AttachToClusterInstances", "AssociateToClusterInstances"):
        assert stmts[sid]["Resource"] == f"arn:aws:ec2:{REGION}:000000000000:instance/*", sid
        assert stmts[sid]["Condition"] == {"StringEquals": {f"aws:ResourceTag/{TAG_KEY}": stack.name}}, sid
    # The example's volumes use a customer-managed key: EC2 may use it for
    # the node (grant, decrypt) when it attaches the volume, and only EC2.
    via_ec2 = {"kms:ViaService": f"ec2.{REGION}.amazonaws.com"}
    use, grant = stmts["UseDataVolumeKeyViaEc2"], stmts["GrantDataVolumeKeyToEc2"]
    assert as_list(use["Action"]) == ["kms:Decrypt", "kms:DescribeKey"]
    assert use["Resource"] == stack.out["ebs_kms_key_arn"] and use["Condition"] == {"StringEquals": via_ec2}
    assert grant["Action"] == "kms:CreateGrant" and grant["Resource"] == stack.out["ebs_kms_key_arn"]
    assert grant["Condition"] == {"StringEquals": via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_flow_logs_encrypted(stack: Stack) -> None:
    ec2, logs = stack.client("ec2"), stack.client("logs")
    fls = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [stack.out["vpc_id"]]}])["FlowLogs"]
    assert len(fls) == 1 and fls[0]["TrafficType"] == "ALL", fls
    assert fls[0].get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs", fls
    # AWS fills in LogGroupName; LocalStack only returns the destination ARN.
    group = fls[0].get("LogGroupName") or fls[0]["LogDestination"].split(":log-group:", 1)[1].removesuffix(":*")
    found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in found] == [group]
    assert found[0].get("kmsKeyId", "").startswith("arn:aws:kms:")
    assert found[0]["retentionInDays"] == 365


def test_cloudwatch_alarms(stack: Stack) -> None:
    """The cluster's alarms as CloudWatch holds them: each node's, per
    availability zone, on the Tribune namespace's Cluster/Node dimensions;
    the login-refusal and feed alarms as metric math."""
    cw = stack.client("cloudwatch")
    alarms = [a for page in cw.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{stack.name}-")
              for a in page["MetricAlarms"]]
    by_name = {a["AlarmName"]: a for a in alarms}
    azs = sorted(stack.out["node_public_ips"])
    assert len(azs) == 3, azs
    for az in azs:
        down = by_name[f"{stack.name}-{az}-broker-down"]
        assert (down["Namespace"], down["MetricName"], down["TreatMissingData"]) == ("Tribune", "BrokerUp", "breaching")
        assert {d["Name"]: d["Value"] for d in down["Dimensions"]} == {"Cluster": stack.name, "Node": az}
        route = by_name[f"{stack.name}-{az}-route-missing"]
        assert (route["MetricName"], route["Threshold"]) == ("Routes", 2.0), route
        for kind in ("jetstream-stream-leaderless", "jetstream-replica-behind", "jetstream-disk-full",
                     "bridge-dead-letters", "auth-rejections-high"):
            assert f"{stack.name}-{az}-{kind}" in by_name, kind
    assert f"{stack.name}-bridge-not-ingesting" in by_name
    assert len(alarms) == 3 * 18 + 1, sorted(by_name)


def test_secrets_from_the_bootstrap_stay_out_of_state(stack: Stack) -> None:
    """Terraform refers to the secrets by name and ARN only: no value of any
    of them (keys, seeds, passwords) is in its state."""
    sm = stack.client("secretsmanager")
    assert sorted(stack.out["secret_arns"]) == sorted(["tls", "ca", "nkeys", "callout", "provider", "web-idp"])
    tls = json.loads(sm.get_secret_value(SecretId=f"tribune/{stack.name}/tls")["SecretString"])
    assert set(tls) == {"ca_pem", "cert_pem", "key_pem"}
    assert tls["key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    for kind in ("tls", "ca", "nkeys", "callout"):
        value = json.loads(sm.get_secret_value(SecretId=f"tribune/{stack.name}/{kind}")["SecretString"])
        for field, v in value.items():
            if isinstance(v, str) and not field.endswith("_public") and field != "route_user":
                for piece in ([line for line in v.splitlines() if len(line) > 20 and "-----" not in line]
                              if field.endswith("_pem") else [v]):
                    assert piece not in stack.state, f"{kind}.{field} is in the Terraform state"


def test_dns_record(stack: Stack) -> None:
    r53 = stack.client("route53")
    zones = [z for z in r53.list_hosted_zones()["HostedZones"] if z["Name"] == f"{DOMAIN}."]
    records = []
    for z in zones:
        records += [r for r in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]
                    if r["Name"] == f"nats.{DOMAIN}." and r["Type"] == "A"]
    # An alias of this stack's NLB (it health-checks the brokers), not a
    # list of IPs. (A shared LocalStack may hold other runs' tribune.test zones.)
    ours = [r for r in records if r.get("AliasTarget", {}).get("DNSName", "").rstrip(".") == stack.out["nlb_dns_name"]]
    assert len(ours) == 1, records
    assert ours[0]["AliasTarget"]["EvaluateTargetHealth"] is True
    assert not ours[0].get("ResourceRecords")


# --- every node's boot step against the same state -------------------------------

class Nodes:
    """The boot step (attach-data-volume) of each node, each with its own
    fake block layer, sharing one fake IMDS that plays whichever instance
    boots."""

    def __init__(self, stack: Stack, root: Path, imds: tuple[str, dict[str, Any]]) -> None:
        self.stack, self.root, (self.imds_url, self.imds_data) = stack, root, imds
        self.disks = {az: FakeDisk(root / az) for az in AZS}
        for az, disk in self.disks.items():
            disk.plug(stack.out["data_volume_ids"][az])

    def boot(self, az: str) -> subprocess.CompletedProcess[str]:
        """Runs the boot step as the instance currently running in `az`."""
        inst = self.stack.instance_in(az)
        node_metadata(self.imds_data, instance_id=inst["InstanceId"], az=az, cluster=self.stack.name,
                      ec2=self.stack.client("ec2"))
        proc = run_attach(attach_env(self.imds_url, self.stack.moto, self.disks[az]))
        assert proc.returncode == 0, f"boot of {inst['InstanceId']} in {az}:\n{proc.stderr}"
        return proc


@pytest.fixture(scope="module")
def nodes(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    """The cluster after its first boot: every node has run attach-data-volume."""
    with imds_server() as imds:
        n = Nodes(stack, tmp_path_factory.mktemp("nodes"), imds)
        for az in AZS:
            n.boot(az)
        yield n


def test_first_boot_takes_the_terraform_volume_and_address(stack: Stack, nodes: Nodes) -> None:
    """The tags Terraform puts on the volumes and EIPs are the ones the boot
    step looks for: each node attached its AZ's volume (formatting it, as it
    was blank) and holds its AZ's Elastic IP."""
    ec2 = stack.client("ec2")
    for az in AZS:
        me = stack.instance_in(az)["InstanceId"]
        (vol,) = ec2.describe_volumes(VolumeIds=[stack.out["data_volume_ids"][az]])["Volumes"]
        assert [(a["InstanceId"], a["State"]) for a in vol["Attachments"]] == [(me, "attached")], az
        (addr,) = ec2.describe_addresses(AllocationIds=[stack.out["eip_allocation_ids"][az]])["Addresses"]
        assert addr["InstanceId"] == me, az
        disk = nodes.disks[az]
        assert disk.tool_names().count("mkfs.ext4") == 1 and disk.mounted(), az


# --- EC2 discovery by the real broker against the same state -------------------

def _broker_bin() -> str:
    path = os.environ.get("TRIBUNE_BROKER_BIN", str(REPO / "target" / "debug" / "tribune-broker"))
    if not Path(path).exists():
        pytest.fail(f"tribune-broker not found at {path}; run `cargo build -p tribune-broker`")
    return path


def _wait_for_log(path: Path, needle: str, proc: subprocess.Popen[bytes], deadline_s: float = 90) -> str:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"tribune-broker exited ({proc.returncode}) before logging {needle!r}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {needle!r} in the broker log within {deadline_s}s:\n{text[-3000:]}")


def test_broker_discovers_peers_from_terraform_state(stack: Stack, tmp_path: Path) -> None:
    """tribune-broker with the discovery block the AMI renders (plus the EC2
    mock's endpoint) finds exactly the three instances the ASGs launched, by
    tag and VPC, and drops one that stops running."""
    conf = tmp_path / "broker.conf"
    conf.write_text(f"""
server_name: discovery-test
listen: 127.0.0.1:-1
http: 127.0.0.1:-1
cluster {{
  name: {stack.name}
  listen: 127.0.0.1:{CLUSTER_PORT}
  discovery {{
    ec2 {{
      tag_key: "{TAG_KEY}"
      tag_value: "{stack.name}"
      region: "{REGION}"
      vpc_id: "{stack.out['vpc_id']}"
      endpoint: "{stack.moto}"
      refresh: "1s"
    }}
  }}
}}
""")
    log = tmp_path / "broker.log"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.pop("AWS_PROFILE", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([_broker_bin(), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    private_ips = {i["Placement"]["AvailabilityZone"]: i["PrivateIpAddress"] for i in stack.instances()}
    try:
        text = _wait_for_log(log, "Discovered 3 cluster peer(s)", proc)
        expected = sorted(f"nats-route://{ip}:{CLUSTER_PORT}" for ip in private_ips.values())
        line = next(l for l in text.splitlines() if "Discovered 3 cluster peer(s)" in l)
        assert f"tag {TAG_KEY}={stack.name} in {stack.out['vpc_id']}" in line
        assert sorted(u.strip() for u in line.split(": ", 1)[1].split(",")) == expected, line
        for url in expected:
            _wait_for_log(log, f"Discovered route {url}", proc)

        # A node that stops running leaves the discovered set at the next refresh.
        az = AZS[0]
        iid = stack.instance_in(az)["InstanceId"]
        stack.client("ec2").stop_instances(InstanceIds=[iid])
        gone = f"nats-route://{private_ips[az]}:{CLUSTER_PORT}"
        _wait_for_log(log, f"Route {gone} no longer discovered", proc)
        stack.client("ec2").start_instances(InstanceIds=[iid])
        _wait_for_log(log, f"added [{gone}]", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the Ansible aws_ec2 inventory against the same state ----------------------

def _plain(value: Any) -> Any:
    """ansible-core 2.19 marks templated strings as {"__ansible_unsafe": "..."} in --list."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _ansible(stack: Stack, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """ansible/inventory/aws_ec2.yml pointed at the EC2 mock and this run's
    cluster, and an environment in which Ansible's AWS calls (modules and
    lookups, through boto3's AWS_ENDPOINT_URL) go to the mocks too."""
    inv = yaml.safe_load((REPO / "ansible" / "inventory" / "aws_ec2.yml").read_text())
    inv["regions"] = [REGION]
    inv["endpoint_url"] = stack.moto
    inv["aws_access_key"], inv["aws_secret_key"] = "test", "test"
    inv["filters"][f"tag:{TAG_KEY}"] = stack.name
    path = tmp_path / "test.aws_ec2.yml"
    path.write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible" / "ansible.cfg"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote-tmp"), ANSIBLE_NOCOLOR="1",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_ENDPOINT_URL=stack.moto, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("AWS_PROFILE", None)
    return path, env


def test_aws_ec2_inventory_finds_the_brokers(stack: Stack, nodes: Nodes, tmp_path: Path) -> None:
    """ansible/inventory/aws_ec2.yml, pointed at the EC2 mock and this run's
    cluster, yields the three brokers (booted: holding their EIPs) with
    their EIPs and groups."""
    path, env = _ansible(stack, tmp_path)
    out = run([deploy_tool("ansible-inventory"), "-i", str(path), "--list"], env=env, timeout=300)
    data = _plain(json.loads(out.stdout))
    group = "tribune_cluster_" + stack.name.replace("-", "_")
    hosts = sorted(data[group]["hosts"])
    assert hosts == sorted(f"{stack.name}-{az}" for az in AZS), data.keys()
    assert sorted(data["tribune_brokers"]["hosts"]) == hosts
    hostvars = data["_meta"]["hostvars"]
    for az, ip in stack.out["node_public_ips"].items():
        hv = hostvars[f"{stack.name}-{az}"]
        assert hv["ansible_host"] == ip
        assert hv["tribune_broker_monitor_url"] == f"http://{ip}:8222"
        assert hv["tribune_private_ip"] == stack.instance_in(az)["PrivateIpAddress"]
        assert hv["tribune_az"] == az
        assert hv["ansible_user"] == "admin"
        assert hv["tribune_asg_name"] == stack.out["asg_names"][az]
        assert hv["tribune_ami_parameter"] == stack.out["ami_parameters"][az]


# --- self-healing: a node is replaced -------------------------------------------

def test_replaced_node_keeps_its_volume_address_and_place(stack: Stack, nodes: Nodes) -> None:
    """An instance dies; its Auto Scaling group launches a replacement in the
    same AZ, from the same template, with the same tags (so discovery and
    the NLB pick it up), and its boot step takes over the old node's data
    volume, without formatting it, and Elastic IP.

    (moto launches the replacement when the instance is terminated through
    the ASG API, as EC2 Auto Scaling does after a failed health check.)"""
    az = AZS[1]
    old = stack.instance_in(az)["InstanceId"]
    asg = stack.client("autoscaling")
    asg.terminate_instance_in_auto_scaling_group(InstanceId=old, ShouldDecrementDesiredCapacity=False)
    new = stack.instance_in(az)
    assert new["InstanceId"] != old
    tags = _tags(new)
    assert (tags[TAG_KEY], tags["tribune:az"], tags["Name"]) == (stack.name, az, f"{stack.name}-{az}")
    assert new["SubnetId"] == stack.out["subnet_ids"][az]
    (group,) = asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.out["asg_names"][az]])["AutoScalingGroups"]
    assert [i["InstanceId"] for i in group["Instances"]] == [new["InstanceId"]]
    assert group["Instances"][0]["LaunchTemplate"]["LaunchTemplateId"] == stack.out["launch_template_ids"][az]

    proc = nodes.boot(az)
    ec2 = stack.client("ec2")
    (vol,) = ec2.describe_volumes(VolumeIds=[stack.out["data_volume_ids"][az]])["Volumes"]
    assert [a["InstanceId"] for a in vol["Attachments"]] == [new["InstanceId"]]
    (addr,) = ec2.describe_addresses(AllocationIds=[stack.out["eip_allocation_ids"][az]])["Addresses"]
    assert addr["InstanceId"] == new["InstanceId"]
    assert nodes.disks[az].tool_names().count("mkfs.ext4") == 1, "the replacement must keep the data"
    assert f"node {stack.name}-{az} ready on {new['InstanceId']}" in proc.stderr
    # The other nodes are untouched, and discovery sees three brokers again.
    assert sorted(i["Placement"]["AvailabilityZone"] for i in stack.instances()) == AZS


# --- make upgrade: the nodes' AMIs roll, one node at a time ----------------------

def test_upgrade_rolls_amis_without_drift_and_rolls_back(stack: Stack, tmp_path: Path) -> None:
    """rolling_upgrade.yml with tribune_upgrade_ami, against the Auto Scaling
    groups, launch templates and AMI parameters Terraform created, while a
    client publishes acknowledged messages to an R3 stream. Real brokers
    play the instances (instance_runtime.py): each AZ runs the binary of the
    AMI its instance was launched from.

    - v2 rolls node by node: each parameter moves, each instance is replaced
      in host order, never two nodes down, every node ends on v2;
    - no drift: an instance that dies afterwards comes back on v2;
    - an AMI whose broker never serves: the first node is rolled back to v2
      (parameter and instance), the others are untouched, the play fails;
    - an AMI whose broker reports another commit than its tribune:version
      tag: the same;
    - the same upgrade again changes nothing;
    - no acknowledged message is lost."""
    ec2, ssm, asg = stack.client("ec2"), stack.client("ssm"), stack.client("autoscaling")
    params = stack.out["ami_parameters"]
    (stand_in,) = {ssm.get_parameter(Name=params[az])["Parameter"]["Value"] for az in AZS}
    dist = tmp_path / "dist"
    v1 = install_copy(Path(_broker_bin()), dist / "v1" / "tribune-broker")
    v2 = variant(v1, dist / "v2" / "tribune-broker", "v2")
    broken = dist / "broken" / "tribune-broker"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\necho 'this image has no working broker' >&2\nexit 1\n")
    broken.chmod(0o755)
    source = stack.instance_in(AZS[0])["InstanceId"]

    def ami(name: str, commit: str) -> str:
        image = ec2.create_image(InstanceId=source, Name=f"{stack.name}-{name}")["ImageId"]
        ec2.create_tags(Resources=[image], Tags=[{"Key": "tribune:version", "Value": commit}])
        return image

    runtime = InstanceRuntime(ec2, ssm, stack.name, TAG_KEY, AZS, tmp_path / "nodes", {stand_in: v1})
    runtime.start()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(runtime.stop)
        urls = {az: runtime.nodes[az].monitor_url for az in AZS}
        runtime.wait_until(lambda: all((get_json(f"{u}/healthz") or {}).get("status") == "ok" for u in urls.values())
                           and all((get_json(f"{u}/routez") or {}).get("num_routes", 0) >= 2 for u in urls.values()),
                           "three healthy, meshed brokers on v1")
        commit = get_json(f"{urls[AZS[0]]}/varz")["git_commit"]
        ami_v2, ami_broken, ami_other = ami("v2", commit), ami("broken", commit), ami("other-commit", "0000000")
        runtime.images.update({ami_v2: v2, ami_broken: broken, ami_other: v2})

        inventory, env = _ansible(stack, tmp_path)
        hosts = {f"{stack.name}-{az}": az for az in AZS}
        overrides = tmp_path / "overrides.yml"
        overrides.write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "tribune_become": False, "tribune_service_manager": "pidfile",
                     "tribune_service_libexec_dir": str(runtime.libexec),
                     "tribune_broker_jetstream_enabled": True, "tribune_broker_health_delay": 1},
            "hosts": {h: {"tribune_broker_monitor_url": urls[az],
                          "tribune_service_run_dir": str(runtime.nodes[az].run_dir),
                          "tribune_service_log_dir": str(runtime.nodes[az].log_dir)}
                      for h, az in hosts.items()}}}))
        group = "tribune_cluster_" + stack.name.replace("-", "_")

        def upgrade(image: str, *extra: str) -> subprocess.CompletedProcess[str]:
            proc = run([deploy_tool("ansible-playbook"), "-i", str(inventory), "-i", str(overrides),
                        str(REPO / "ansible" / "rolling_upgrade.yml"), "-e", f"tribune_upgrade_hosts={group}",
                        "-e", f"tribune_upgrade_ami={image}", *extra],
                       env=env, cwd=REPO / "ansible", timeout=900, check=False)
            (tmp_path / f"upgrade-{image}-{time.monotonic_ns()}.log").write_text(proc.stdout + proc.stderr)
            return proc

        def on(az: str) -> Path | None:
            boot = runtime.current(az)
            return runtime.images.get(boot.ami) if boot and boot.booted else None

        def serving(az: str, image_binary: Path) -> bool:
            return on(az) == image_binary and (get_json(f"{urls[az]}/healthz") or {}).get("status") == "ok"

        clients = [f"nats://127.0.0.1:{runtime.nodes[az].client}" for az in AZS]
        workload = cleanup.enter_context(Workload(clients, tmp_path, warmup_s=90))

        # 1. v2, node by node.
        watcher = Watcher(urls)
        watcher.start()
        first_boots = len(runtime.boots)
        proc = upgrade(ami_v2)
        watcher.stop_event.set()
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
        rolled = [(b.az, b.ami) for b in runtime.boots[first_boots:]]
        assert rolled == [(az, ami_v2) for az in AZS], rolled
        assert watcher.max_down <= 1, watcher.down_samples
        for az in AZS:
            assert ssm.get_parameter(Name=params[az])["Parameter"]["Value"] == ami_v2, az
            assert serving(az, v2), az
            log = (runtime.nodes[az].log_dir / "tribune-broker.log").read_text()
            assert "Entering lame duck mode" in log, az
        after_v2 = workload.acked()

        # 2. No drift: a node that dies now comes back on what the others run.
        victim = AZS[1]
        asg.terminate_instance_in_auto_scaling_group(InstanceId=runtime.current(victim).instance_id,
                                                     ShouldDecrementDesiredCapacity=False)
        runtime.wait_until(lambda: runtime.boots[-1].az == victim and serving(victim, v2),
                           "the dead node's replacement, on v2")

        # 3. An image whose broker never serves: rolled back, rollout stopped.
        gates = ("-e", "tribune_broker_upgrade_boot_retries=15", "-e", "tribune_broker_upgrade_launch_retries=30")
        for bad in (ami_broken, ami_other):
            before = {az: runtime.current(az).instance_id for az in AZS}
            mark = len(runtime.boots)
            proc = upgrade(bad, *gates)
            assert proc.returncode != 0, proc.stdout[-6000:]
            assert "It was rolled back to" in proc.stdout and ami_v2 in proc.stdout, proc.stdout[-6000:]
            tried = [(b.az, b.ami) for b in runtime.boots[mark:]]
            assert tried == [(AZS[0], bad), (AZS[0], ami_v2)], tried
            runtime.wait_until(lambda: serving(AZS[0], v2), "the first node back on v2")
            assert ssm.get_parameter(Name=params[AZS[0]])["Parameter"]["Value"] == ami_v2
            for az in AZS[1:]:
                assert runtime.current(az).instance_id == before[az], f"{az} was touched"
                assert ssm.get_parameter(Name=params[az])["Parameter"]["Value"] == ami_v2, az

        # 4. Idempotent: nothing to do.
        mark = len(runtime.boots)
        proc = upgrade(ami_v2)
        assert proc.returncode == 0, proc.stdout[-6000:]
        assert len(runtime.boots) == mark, runtime.boots[mark:]
        runtime.wait_until(lambda: workload.acked() >= after_v2 + 100, "acknowledgements after the upgrades", 90)
    workload.result()
    assert not runtime.errors, runtime.errors
