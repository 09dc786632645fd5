"""Runs packer/files/attach-data-volume the way the AMI does at boot, minus
root and real block devices, against an EC2 API (moto) and a fake IMDS.

The AWS side is real API traffic: the script finds the volume and Elastic
IP by tag, attaches, force-detaches and associates through EC2 calls. The
block layer is faked behind the script's overrides: a device directory with
the udev link an NVMe EBS volume gets, a plain file standing in for the
device, and stand-ins for blkid, mkfs.ext4, mount and resize2fs that keep
the filesystem "signature" in that file and the mounts in a mountinfo file,
and log every call. So the decisions (format only a blank volume, never a
foreign one, mount once, grow) run for real; only the kernel's part is
pretended.

Used by packer/tests/test_data_volume.py and, on the Terraform-created
stack, by terraform/tests/test_localstack.py.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packer" / "files" / "attach-data-volume"

# One script plays all four tools, by the name it is called as.
FAKE_TOOL = r'''#!@PYTHON@
import json, os, sys
from pathlib import Path

name, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(os.environ["FAKE_BLOCK_LOG"], "a") as log:
    log.write(json.dumps([name] + args) + "\n")
MAGIC = {b"FAKE-EXT4": "TYPE=ext4\nLABEL=tribune-data\n", b"FAKE-XFS": "TYPE=xfs\n", b"FAKE-GPT": "PTTYPE=gpt\n"}
if name == "blkid":
    head = Path(args[-1]).read_bytes()[:16]
    for magic, out in MAGIC.items():
        if head.startswith(magic):
            sys.stdout.write(out)
            sys.exit(0)
    sys.exit(2)  # blkid: nothing found
if name == "mkfs.ext4":
    with open(args[-1], "r+b") as dev:
        dev.write(b"FAKE-EXT4")
    sys.exit(0)
if name == "mount":
    device, target = args[-2], args[-1]
    rdev = os.stat(device).st_rdev
    with open(os.environ["TRIBUNE_MOUNTINFO"], "a") as info:
        info.write(f"90 25 {os.major(rdev)}:{os.minor(rdev)} / {target} rw,noatime - ext4 {device} rw\n")
    sys.exit(0)
if name == "resize2fs":
    sys.exit(0)
sys.exit(f"fake block tool: unknown name {name}")
'''


class FakeDisk:
    """The block layer of one fake node, under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dev = root / "dev"
        self.data_dir = root / "var-lib-tribune"
        self.mountinfo = root / "mountinfo"
        self.log = root / "block-tools.log"
        tools = root / "tools"
        tools.mkdir(parents=True, exist_ok=True)
        fake = tools / "fakeblock"
        fake.write_text(FAKE_TOOL.replace("@PYTHON@", sys.executable))
        fake.chmod(0o755)
        for name in ("blkid", "mkfs.ext4", "mount", "resize2fs"):
            link = tools / name
            if not link.exists():
                link.symlink_to(fake)
        self.tools = tools
        self.dev.mkdir(parents=True, exist_ok=True)
        self.mountinfo.write_text("")

    def plug(self, volume_id: str, content: bytes = b"") -> Path:
        """The device node udev would create for the attached volume, with
        its by-id link; blank (zeros) unless `content` says otherwise."""
        device = self.dev / "nvme1n1"
        if not device.exists():
            device.write_bytes(content.ljust(4096, b"\0"))
        by_id = self.dev / "disk" / "by-id"
        by_id.mkdir(parents=True, exist_ok=True)
        link = by_id / f"nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"
        if not link.exists():
            link.symlink_to(device)
        return device

    def reboot(self) -> None:
        """Mounts do not survive a reboot; the volume's content does."""
        self.mountinfo.write_text("")

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def tool_names(self) -> list[str]:
        return [c[0] for c in self.calls()]

    def mounted(self) -> bool:
        return f" {self.data_dir} " in self.mountinfo.read_text()

    def signature(self) -> bytes:
        return (self.dev / "nvme1n1").read_bytes()[:9]

    def env(self) -> dict[str, str]:
        return {
            "TRIBUNE_DEV_DIR": str(self.dev),
            "TRIBUNE_DATA_DIR": str(self.data_dir),
            "TRIBUNE_MOUNTINFO": str(self.mountinfo),
            "TRIBUNE_BLKID": str(self.tools / "blkid"),
            "TRIBUNE_MKFS": str(self.tools / "mkfs.ext4"),
            "TRIBUNE_MOUNT": str(self.tools / "mount"),
            "TRIBUNE_RESIZE2FS": str(self.tools / "resize2fs"),
            "FAKE_BLOCK_LOG": str(self.log),
        }


def node_metadata(data: dict[str, Any], *, instance_id: str, az: str, cluster: str, ec2: Any,
                  region: str = "us-east-1", tag_key: str = "tribune:cluster") -> None:
    """Fills a fake IMDS with what the instance would see: Terraform's user
    data, its id and AZ, and its public IP as EC2 currently has it."""
    def public_ip() -> str | None:
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        for inst in (i for r in found for i in r["Instances"]):
            addrs = ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [inst["InstanceId"]]}])
            for a in addrs["Addresses"]:
                return a["PublicIp"]
            return inst.get("PublicIpAddress")
        return None

    data.clear()
    data.update({
        "user-data": (f"# tribune bootstrap\nTRIBUNE_REGION={region}\nTRIBUNE_TAG_KEY={tag_key}\n"
                      f"TRIBUNE_CLUSTER={cluster}\n"),
        "meta-data/instance-id": instance_id,
        "meta-data/placement/availability-zone": az,
        "meta-data/public-ipv4": public_ip,
    })


def attach_env(imds_url: str, ec2_endpoint: str, disk: FakeDisk, **overrides: str) -> dict[str, str]:
    env = dict(os.environ, TRIBUNE_IMDS_ENDPOINT=imds_url, TRIBUNE_EC2_ENDPOINT=ec2_endpoint,
               TRIBUNE_RETRY_SECONDS="5", TRIBUNE_POLL_SECONDS="0.2", TRIBUNE_DEVICE_WAIT_SECONDS="5",
               TRIBUNE_EIP_WAIT_SECONDS="5",
               # The mount point's owner: tribune on the AMI, whoever runs the tests here.
               TRIBUNE_USER=pwd.getpwuid(os.geteuid()).pw_name,
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.pop("AWS_PROFILE", None)
    env.update(disk.env())
    env.update(overrides)
    return env


def run_attach(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def start_attach(env: dict[str, str], stderr_path: Path) -> subprocess.Popen[bytes]:
    with open(stderr_path, "wb") as err:
        return subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL)


def wait_for_text(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """Waits until the file contains `needle`; fails if proc exits first."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"attach-data-volume exited ({proc.returncode}) before {needle!r}:\n{text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} within {timeout}s:\n{text}")
        time.sleep(0.1)
