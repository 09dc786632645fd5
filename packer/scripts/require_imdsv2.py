#!/usr/bin/env python3
"""Marks the AMI from packer/manifest.json ImdsSupport=v2.0 and prints its ID.

Packer 1.6.6 cannot set `imds_support` itself. With the flag, instances
launched from the AMI default to IMDSv2 only, even outside Terraform.

usage: require_imdsv2.py packer/manifest.json
"""

from __future__ import annotations

import json
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def last_ami(manifest_path: str) -> tuple[str, str]:
    with open(manifest_path) as f:
        manifest = json.load(f)
    run_uuid = manifest.get("last_run_uuid")
    builds = [b for b in manifest.get("builds", []) if b.get("packer_run_uuid") == run_uuid]
    if not builds:
        raise SystemExit(f"{manifest_path}: no build from the last packer run")
    # artifact_id is "region:ami-id[,region:ami-id...]"
    region, ami = builds[-1]["artifact_id"].split(",")[0].split(":", 1)
    return region, ami


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    region, ami = last_ami(sys.argv[1])
    try:
        ec2 = boto3.client("ec2", region_name=region)
        ec2.modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v2.0"})
    except (BotoCoreError, ClientError) as e:
        print(f"require_imdsv2: could not set ImdsSupport=v2.0 on {ami} in {region}: {e}", file=sys.stderr)
        return 1
    print(ami)
    return 0


if __name__ == "__main__":
    sys.exit(main())
