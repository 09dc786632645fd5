"""attach-data-volume: the boot step that gives a (replacement) instance its
node's JetStream data volume and Elastic IP.

- Its decisions as units: what to do about the volume given who holds it,
  whether to format, where the device shows up, what is mounted.
- The whole script against moto's EC2 (LocalStack's EC2 would do for these
  calls, but the Terraform stack they belong to lives in moto: see
  terraform/tests/moto_server.py) with a fake IMDS and a fake block layer
  (boot_harness.py): first boot formats and mounts, a reboot only mounts,
  a replacement waits for a predecessor that still holds the volume and
  takes it (and the Elastic IP) once it is gone, a volume stuck on a
  terminated instance is force-detached, and a foreign filesystem, a
  missing or ambiguous volume fail clearly.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "terraform" / "tests"))
from boot_harness import (FakeDisk, SCRIPT, attach_env, node_metadata, run_attach,  # noqa: E402
                          start_attach, wait_for_text)
from fake_imds import imds_server  # noqa: E402
from moto_server import moto_server  # noqa: E402

REGION = "us-east-1"
AZ = "us-east-1a"
TAG_KEY = "tribune:cluster"


def _script():
    """attach-data-volume as a module (it is an extensionless script)."""
    loader = SourceFileLoader("attach_data_volume", str(SCRIPT))
    spec = importlib.util.spec_from_loader("attach_data_volume", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


adv = _script()


# --- decisions -------------------------------------------------------------------

ME, OLD = "i-0new", "i-0old"


def _vol(state: str, *attachments: tuple[str, str]) -> dict[str, Any]:
    return {"VolumeId": "vol-1", "State": state,
            "Attachments": [{"InstanceId": i, "State": s, "Device": "/dev/sdf"} for i, s in attachments]}


@pytest.mark.parametrize(
    ("volume", "holder_state", "action"),
    [
        (_vol("available"), None, "attach"),
        (_vol("creating"), None, "wait"),
        (_vol("in-use"), None, "wait"),  # attachment not listed yet
        (_vol("in-use", (ME, "attached")), None, "done"),
        (_vol("in-use", (ME, "attaching")), None, "wait"),
        (_vol("in-use", (ME, "busy")), None, "done"),
        (_vol("in-use", (OLD, "attached")), "running", "wait"),
        (_vol("in-use", (OLD, "attached")), "shutting-down", "wait"),
        (_vol("in-use", (OLD, "attached")), "stopping", "wait"),
        (_vol("in-use", (OLD, "attached")), "stopped", "wait"),
        (_vol("in-use", (OLD, "detaching")), "shutting-down", "wait"),
        (_vol("in-use", (OLD, "attached")), "terminated", "force-detach"),
        (_vol("in-use", (OLD, "detaching")), "terminated", "force-detach"),
        (_vol("in-use", (OLD, "attached")), "gone", "force-detach"),
        (_vol("available", (OLD, "detached")), None, "attach"),
    ],
    ids=["available", "creating", "in-use-unlisted", "mine", "mine-attaching", "mine-busy", "held-running",
         "held-shutting-down", "held-stopping", "held-stopped", "detaching-alive", "held-terminated",
         "detaching-terminated", "held-gone", "old-detached"],
)
def test_next_step(volume: dict[str, Any], holder_state: str | None, action: str) -> None:
    step = adv.next_step(volume, ME, holder_state)
    assert step.action == action, step
    if action == "done":
        assert step.reason == "/dev/sdf"
    if action in ("force-detach",) or (action == "wait" and holder_state):
        assert step.holder == OLD and holder_state in step.reason


def test_never_takes_from_a_live_instance() -> None:
    """Whatever the attachment says, a live holder means waiting."""
    for state in sorted(adv.ALIVE):
        for att in ("attaching", "attached", "detaching", "busy"):
            assert adv.next_step(_vol("in-use", (OLD, att)), ME, state).action == "wait", (state, att)


@pytest.mark.parametrize("state", ["deleting", "deleted", "error"])
def test_dead_volume_is_an_error(state: str) -> None:
    with pytest.raises(adv.BootError, match=state):
        adv.next_step(_vol(state), ME, None)


@pytest.mark.parametrize(
    ("signatures", "expected"),
    [({}, "mkfs"), ({"TYPE": "ext4", "LABEL": "tribune-data"}, "mount"), ({"TYPE": "ext4"}, "mount")],
)
def test_filesystem_action(signatures: dict[str, str], expected: str) -> None:
    assert adv.filesystem_action(signatures, Path("/dev/x")) == expected


@pytest.mark.parametrize("signatures", [{"TYPE": "xfs"}, {"PTTYPE": "gpt"}, {"TYPE": "crypto_LUKS"},
                                        {"PART_ENTRY_SCHEME": "dos"}])
def test_filesystem_action_refuses_anything_else(signatures: dict[str, str]) -> None:
    with pytest.raises(adv.BootError, match="refusing to format or mount"):
        adv.filesystem_action(signatures, Path("/dev/x"))


def test_device_candidates() -> None:
    got = adv.device_candidates("vol-0abc123", "/dev/sdf", Path("/d"))
    assert got == [Path("/d/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc123"),
                   Path("/d/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc123_1"),
                   Path("/d/sdf"), Path("/d/xvdf")]


def test_mounted_device(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 259:1 / / rw,relatime - ext4 /dev/nvme0n1p1 rw\n"
        "90 22 259:4 / /var/lib/tribune rw,noatime - ext4 /dev/nvme1n1 rw\n"
        "91 22 259:5 / /srv/with\\040blank rw - ext4 /dev/nvme2n1 rw\n")
    assert adv.mounted_device(Path("/var/lib/tribune"), info) == (259, 4)
    assert adv.mounted_device(Path("/srv/with blank"), info) == (259, 5)
    assert adv.mounted_device(Path("/var/lib"), info) is None
    assert adv.mounted_device(Path("/x"), tmp_path / "missing") is None


def test_prepare_and_mount_formats_only_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mkfs/mount decisions with the fake tools: blank -> mkfs + mount;
    mounted -> nothing; after a reboot -> mount only."""
    disk = FakeDisk(tmp_path)
    device = disk.plug("vol-1")
    for key, value in disk.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(adv, "DATA_DIR", disk.data_dir)
    monkeypatch.setattr(adv, "MOUNTINFO", disk.mountinfo)
    monkeypatch.setattr(adv, "OWNER", __import__("pwd").getpwuid(__import__("os").geteuid()).pw_name)
    tools = adv.BlockTools()

    assert adv.prepare_and_mount(device, tools) == "formatted, mounted"
    assert disk.tool_names() == ["blkid", "mkfs.ext4", "mount", "resize2fs"]
    assert disk.signature() == b"FAKE-EXT4" and disk.mounted()
    mount = next(c for c in disk.calls() if c[0] == "mount")
    assert mount[1:] == ["-t", "ext4", "-o", "noatime,nodev,nosuid,noexec", str(device), str(disk.data_dir)]
    assert disk.data_dir.stat().st_mode & 0o777 == 0o750

    assert adv.prepare_and_mount(device, tools) == "already mounted"
    disk.reboot()
    assert adv.prepare_and_mount(device, tools) == "mounted"
    assert disk.tool_names().count("mkfs.ext4") == 1


def test_prepare_and_mount_refuses_another_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = FakeDisk(tmp_path)
    device = disk.plug("vol-1")
    disk.mountinfo.write_text(f"90 25 8:17 / {disk.data_dir} rw - ext4 /dev/sdb1 rw\n")
    monkeypatch.setattr(adv, "DATA_DIR", disk.data_dir)
    monkeypatch.setattr(adv, "MOUNTINFO", disk.mountinfo)
    with pytest.raises(adv.BootError, match="already has something else mounted"):
        adv.prepare_and_mount(device, adv.BlockTools())


# --- the whole script against moto's EC2 ---------------------------------------

@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


class Cluster:
    """One AZ of a cluster in moto: a subnet, the node's volume and EIP
    (tagged as modules/cluster/data.tf tags them), and instances on demand."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.name = f"dv-{secrets.token_hex(3)}"
        self.ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=REGION,
                                aws_access_key_id="test", aws_secret_access_key="test")
        vpc = self.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=AZ)["Subnet"]["SubnetId"]
        self.ami = self.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        self.volume_id = self.add_volume()
        alloc = self.ec2.allocate_address(Domain="vpc", TagSpecifications=[
            {"ResourceType": "elastic-ip", "Tags": self.tags("broker-address")}])
        self.allocation_id, self.public_ip = alloc["AllocationId"], alloc["PublicIp"]

    def tags(self, role: str, az: str = AZ) -> list[dict[str, str]]:
        return [{"Key": TAG_KEY, "Value": self.name}, {"Key": "tribune:az", "Value": az},
                {"Key": "tribune:role", "Value": role}]

    def add_volume(self) -> str:
        return self.ec2.create_volume(AvailabilityZone=AZ, Size=10, VolumeType="gp3", Encrypted=True,
                                      TagSpecifications=[{"ResourceType": "volume",
                                                          "Tags": self.tags("jetstream-data")}])["VolumeId"]

    def launch(self) -> str:
        return self.ec2.run_instances(ImageId=self.ami, MinCount=1, MaxCount=1, SubnetId=self.subnet,
                                      TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                          {"Key": TAG_KEY, "Value": self.name}]}])["Instances"][0]["InstanceId"]

    def volume(self) -> dict[str, Any]:
        return self.ec2.describe_volumes(VolumeIds=[self.volume_id])["Volumes"][0]

    def holder(self) -> str | None:
        att = [a for a in self.volume()["Attachments"] if a["State"] != "detached"]
        return att[0]["InstanceId"] if att else None

    def address_holder(self) -> str | None:
        addr = self.ec2.describe_addresses(AllocationIds=[self.allocation_id])["Addresses"][0]
        return addr.get("InstanceId") or None


@pytest.fixture
def cluster(moto: str) -> Cluster:
    return Cluster(moto)


@pytest.fixture
def imds() -> Iterator[tuple[str, dict[str, Any]]]:
    with imds_server() as served:
        yield served


def _boot(cluster: Cluster, imds: tuple[str, dict[str, Any]], disk: FakeDisk, instance_id: str,
          **overrides: str) -> dict[str, str]:
    url, data = imds
    node_metadata(data, instance_id=instance_id, az=AZ, cluster=cluster.name, ec2=cluster.ec2)
    return attach_env(url, cluster.endpoint, disk, **overrides)


def test_first_boot_then_reboot(cluster: Cluster, imds, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    disk.plug(cluster.volume_id)
    me = cluster.launch()
    env = _boot(cluster, imds, disk, me)

    proc = run_attach(env)
    assert proc.returncode == 0, proc.stderr
    assert cluster.holder() == me
    assert cluster.address_holder() == me
    assert disk.tool_names() == ["blkid", "mkfs.ext4", "mount", "resize2fs"]
    assert disk.mounted() and disk.signature() == b"FAKE-EXT4"
    assert f"associated Elastic IP {cluster.public_ip}" in proc.stderr
    # IMDS showed the EIP before the script ended (render-config reads it there).
    assert "warning: instance metadata still shows" not in proc.stderr
    assert f"node {cluster.name}-{AZ} ready on {me}" in proc.stderr

    # A reboot: the attachment and the address stay, the mount is gone.
    disk.reboot()
    proc = run_attach(env)
    assert proc.returncode == 0, proc.stderr
    assert "is attached here as" in proc.stderr and "already associated here" in proc.stderr
    assert disk.tool_names().count("mkfs.ext4") == 1, "a reboot must never format again"
    assert disk.tool_names()[-2:] == ["mount", "resize2fs"]


def test_replacement_waits_for_its_predecessor(cluster: Cluster, imds, tmp_path: Path) -> None:
    """An ASG replacement that boots while the old instance still holds the
    volume (and the EIP) waits, and takes both once the old one is gone,
    keeping the data: no second mkfs."""
    old = cluster.launch()
    cluster.ec2.attach_volume(VolumeId=cluster.volume_id, InstanceId=old, Device="/dev/sdf")
    cluster.ec2.associate_address(AllocationId=cluster.allocation_id, InstanceId=old)
    disk = FakeDisk(tmp_path)
    disk.plug(cluster.volume_id, content=b"FAKE-EXT4")  # the old node's filesystem
    new = cluster.launch()
    err = tmp_path / "attach.err"
    proc = start_attach(_boot(cluster, imds, disk, new), err)
    try:
        wait_for_text(err, f"held by {old}, which is running", proc)
        assert cluster.holder() == old, "never taken from a live instance"
        assert not disk.calls()
        cluster.ec2.terminate_instances(InstanceIds=[old])  # EC2 detaches it on termination
        assert proc.wait(timeout=60) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    assert "forcing the detach" not in text
    assert cluster.holder() == new and cluster.address_holder() == new
    assert "mkfs.ext4" not in disk.tool_names() and disk.mounted()


def test_force_detach_from_a_terminated_holder(cluster: Cluster, imds, tmp_path: Path) -> None:
    """A volume whose attachment outlived its (terminated) instance is
    force-detached; EC2 normally detaches by itself, but a detach can hang."""
    old = cluster.launch()
    cluster.ec2.terminate_instances(InstanceIds=[old])
    # moto, unlike EC2, lets a terminated instance take a volume: exactly the
    # stuck attachment this case is about.
    cluster.ec2.attach_volume(VolumeId=cluster.volume_id, InstanceId=old, Device="/dev/sdf")
    assert cluster.holder() == old
    disk = FakeDisk(tmp_path)
    disk.plug(cluster.volume_id, content=b"FAKE-EXT4")
    new = cluster.launch()
    proc = run_attach(_boot(cluster, imds, disk, new))
    assert proc.returncode == 0, proc.stderr
    assert f"held by {old}, which is terminated" in proc.stderr and "forcing the detach" in proc.stderr
    assert cluster.holder() == new
    assert "mkfs.ext4" not in disk.tool_names()


def test_gives_up_when_told_to(cluster: Cluster, imds, tmp_path: Path) -> None:
    """With a wait budget (the AMI has none), a live holder ends in a clear error."""
    old = cluster.launch()
    cluster.ec2.attach_volume(VolumeId=cluster.volume_id, InstanceId=old, Device="/dev/sdf")
    disk = FakeDisk(tmp_path)
    proc = run_attach(_boot(cluster, imds, disk, cluster.launch(), TRIBUNE_VOLUME_WAIT_SECONDS="1"))
    assert proc.returncode == 1
    assert "still not attached here" in proc.stderr and f"held by {old}, which is running" in proc.stderr
    assert cluster.holder() == old and not disk.calls()


def test_refuses_a_foreign_filesystem(cluster: Cluster, imds, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)
    disk.plug(cluster.volume_id, content=b"FAKE-XFS")
    proc = run_attach(_boot(cluster, imds, disk, cluster.launch()))
    assert proc.returncode == 1
    assert "refusing to format or mount" in proc.stderr and "TYPE=xfs" in proc.stderr
    assert disk.tool_names() == ["blkid"] and not disk.mounted()
    assert cluster.address_holder() is None, "no address for a node that cannot serve"


def test_device_must_appear(cluster: Cluster, imds, tmp_path: Path) -> None:
    disk = FakeDisk(tmp_path)  # nothing plugged: udev never shows the device
    proc = run_attach(_boot(cluster, imds, disk, cluster.launch(), TRIBUNE_DEVICE_WAIT_SECONDS="1"))
    assert proc.returncode == 1
    assert "no device appeared" in proc.stderr and "nvme-Amazon_Elastic_Block_Store_vol" in proc.stderr


def test_missing_volume(cluster: Cluster, imds, tmp_path: Path) -> None:
    cluster.ec2.delete_volume(VolumeId=cluster.volume_id)
    disk = FakeDisk(tmp_path)
    proc = run_attach(_boot(cluster, imds, disk, cluster.launch(), TRIBUNE_RETRY_SECONDS="1"))
    assert proc.returncode == 1
    assert "no data volume is tagged" in proc.stderr and "terraform apply" in proc.stderr


def test_two_volumes_for_one_node(cluster: Cluster, imds, tmp_path: Path) -> None:
    second = cluster.add_volume()
    disk = FakeDisk(tmp_path)
    proc = run_attach(_boot(cluster, imds, disk, cluster.launch()))
    assert proc.returncode == 1
    assert "2 data volumes are tagged" in proc.stderr and second in proc.stderr
    assert cluster.holder() is None


# --- the unit and its place at boot ----------------------------------------------

UNITS = REPO / "packer" / "files" / "systemd"


def _ini(path: Path):
    import configparser
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read_string(path.read_text())
    return cp


def test_unit_runs_before_render_and_broker_in_the_host_mount_namespace() -> None:
    unit = _ini(UNITS / "tribune-data-volume.service")
    assert set(unit["Unit"]["Before"].split()) >= {"tribune-render-config.service", "tribune-broker.service"}
    svc = unit["Service"]
    assert svc["Type"] == "oneshot" and svc["RemainAfterExit"] == "yes"
    assert svc["TimeoutStartSec"] == "infinity", "a replacement may wait minutes for its predecessor"
    # Each of these would give the unit a mount namespace of its own, and
    # its mount would be invisible to the broker.
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                "TemporaryFileSystem", "BindPaths", "PrivateMounts", "MountFlags"):
        assert key not in svc, key
    assert set(svc["CapabilityBoundingSet"].split()) == {
        "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"}
    assert svc["NoNewPrivileges"] == "yes"

    render = _ini(UNITS / "tribune-render-config.service")["Unit"]
    assert "tribune-data-volume.service" in render["Requires"].split()
    assert "tribune-data-volume.service" in render["After"].split()

    dropin = _ini(UNITS / "tribune-broker.service.d" / "data-volume.conf")["Unit"]
    assert dropin["Requires"] == dropin["After"] == "tribune-data-volume.service"
    assert dropin["AssertPathIsMountPoint"] == "/var/lib/tribune"


def test_ami_installs_and_enables_it() -> None:
    install = (REPO / "packer" / "scripts" / "install.sh").read_text()
    for needle in ("files/attach-data-volume", "files/tribune_boot.py", "tribune-broker.service.d/data-volume.conf",
                   "e2fsprogs"):
        assert needle in install, needle
    enable = install[install.index("systemctl enable"):]
    assert "tribune-data-volume.service" in enable.split("\n\n")[0]
