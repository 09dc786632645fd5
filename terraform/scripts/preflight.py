#!/usr/bin/env python3
"""The cheap checks `make deploy` runs before it builds anything.

    preflight.py --region eu-west-1 [--cluster prod]

1. AWS credentials work (STS GetCallerIdentity in the deployment's region);
2. with --cluster, the TLS secret `tribune/<cluster>/tls` exists in that
   region (DescribeSecret: the name and metadata, never the value).

Each failure is one line on stderr saying what is wrong and what to do,
and exit status 1. Runs with the deploy venv's boto3 (no AWS CLI needed);
AWS_ENDPOINT_URL points it at LocalStack in the tests.
"""

from __future__ import annotations

import argparse
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError


class PreflightError(Exception):
    """A check failed; the message is what the operator reads."""


def _error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def check_identity(session: boto3.session.Session, region: str) -> str:
    """The caller's ARN; raises PreflightError without usable credentials."""
    try:
        ident = session.client("sts", region_name=region).get_caller_identity()
    except NoCredentialsError as e:
        raise PreflightError(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from e
    except ClientError as e:
        raise PreflightError(f"AWS credentials rejected in {region}: {_error_code(e)}: {e}") from e
    except BotoCoreError as e:
        raise PreflightError(f"cannot reach AWS STS in {region}: {e}") from e
    return str(ident.get("Arn", "?"))


def check_tls_secret(session: boto3.session.Session, region: str, cluster: str) -> str:
    """The TLS secret's ARN; raises PreflightError if it is missing or unreadable."""
    name = f"tribune/{cluster}/tls"
    try:
        meta = session.client("secretsmanager", region_name=region).describe_secret(SecretId=name)
    except ClientError as e:
        code = _error_code(e)
        if code == "ResourceNotFoundException":
            raise PreflightError(
                f"secret {name} does not exist in {region}: create the cluster's secrets first "
                "(README, Deploying to AWS: First deployment)"
            ) from e
        raise PreflightError(f"cannot read secret {name} in {region}: {code}: {e}") from e
    except BotoCoreError as e:
        raise PreflightError(f"cannot reach Secrets Manager in {region}: {e}") from e
    if meta.get("DeletedDate"):
        raise PreflightError(f"secret {name} in {region} is scheduled for deletion: restore it first")
    return str(meta.get("ARN", name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--cluster", help="check that tribune/<cluster>/tls exists")
    args = parser.parse_args(argv)
    session = boto3.session.Session()
    try:
        arn = check_identity(session, args.region)
        print(f"preflight: AWS identity {arn}, region {args.region}")
        if args.cluster:
            secret = check_tls_secret(session, args.region, args.cluster)
            print(f"preflight: TLS secret {secret}")
    except PreflightError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
