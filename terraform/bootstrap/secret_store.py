"""The cluster's KMS key and its Secrets Manager secrets, through boto3.

Only what `make secrets` needs: find-or-create the key by alias, describe a
secret without reading it, read one, create one, add a version. Errors that
retrying or another run cannot fix are raised as StoreError with the
operator's fix in the message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

MANAGED_BY = "make-secrets"
# The shortest window KMS allows; only used to drop a key that lost the race for the alias.
RACE_LOSER_DELETION_DAYS = 7


class StoreError(Exception):
    """An AWS call failed in a way the operator has to fix."""


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class KeyResult:
    arn: str
    created: bool
    rotation: bool | None


@dataclass(frozen=True)
class SecretState:
    """describe_secret, reduced to what the bootstrap decides on. No value."""
    arn: str
    kms_key_id: str | None
    deleted: bool
    current_version: str | None
    previous_version: str | None = None


class Store:
    def __init__(self, region: str, endpoint_url: str | None = None,
                 session: boto3.session.Session | None = None) -> None:
        s = session or boto3.session.Session(region_name=region)
        self.kms = s.client("kms", region_name=region, endpoint_url=endpoint_url)
        self.sm = s.client("secretsmanager", region_name=region, endpoint_url=endpoint_url)

    # --- KMS -------------------------------------------------------------------

    def ensure_key(self, alias: str, description: str, tags: dict[str, str]) -> KeyResult:
        """The customer-managed key behind `alias`, created (with yearly rotation) if absent."""
        meta = self._describe_key(alias)
        if meta is not None:
            self._check_key(alias, meta)
            return KeyResult(arn=meta["Arn"], created=False, rotation=self._rotation(meta["KeyId"]))
        try:
            meta = self.kms.create_key(
                Description=description, KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT",
                Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])["KeyMetadata"]
            self.kms.enable_key_rotation(KeyId=meta["KeyId"])
        except ClientError as e:
            raise StoreError(f"KMS: creating the key for {alias}: {_code(e)}: {e}") from e
        try:
            self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        except ClientError as e:
            if _code(e) != "AlreadyExistsException":
                raise StoreError(f"KMS: creating {alias}: {_code(e)}: {e}") from e
            # Another run created the alias between our describe and create:
            # use its key and drop ours (it encrypts nothing).
            self.kms.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=RACE_LOSER_DELETION_DAYS)
            winner = self._describe_key(alias)
            if winner is None:
                raise StoreError(f"KMS: {alias} exists and does not") from e
            self._check_key(alias, winner)
            return KeyResult(arn=winner["Arn"], created=False, rotation=self._rotation(winner["KeyId"]))
        return KeyResult(arn=meta["Arn"], created=True, rotation=True)

    def _describe_key(self, key_id: str) -> dict[str, Any] | None:
        try:
            return self.kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError as e:
            if _code(e) == "NotFoundException":
                return None
            raise StoreError(f"KMS: describing {key_id}: {_code(e)}: {e}") from e

    @staticmethod
    def _check_key(alias: str, meta: dict[str, Any]) -> None:
        state = meta.get("KeyState")
        if state == "PendingDeletion":
            raise StoreError(f"KMS key {meta['Arn']} ({alias}) is pending deletion; cancel it with "
                             f"`aws kms cancel-key-deletion --key-id {meta['KeyId']}` and enable it")
        if state != "Enabled":
            raise StoreError(f"KMS key {meta['Arn']} ({alias}) is {state}, not Enabled")
        if meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" or \
                meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            raise StoreError(f"KMS key {meta['Arn']} ({alias}) is not a symmetric encryption key; "
                             "Secrets Manager needs one")

    def _rotation(self, key_id: str) -> bool | None:
        try:
            return bool(self.kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"])
        except ClientError:
            return None  # not allowed to ask: only informative

    def key_arn_of(self, key_id: str) -> str | None:
        """ARN of a key given as ID, ARN, alias name or alias ARN; None if it cannot be resolved."""
        try:
            meta = self._describe_key(key_id)
        except StoreError:
            return None
        return meta["Arn"] if meta else None

    # --- Secrets Manager -------------------------------------------------------

    def describe(self, name: str) -> SecretState | None:
        try:
            d = self.sm.describe_secret(SecretId=name)
        except ClientError as e:
            if _code(e) == "ResourceNotFoundException":
                return None
            raise StoreError(f"Secrets Manager: describing {name}: {_code(e)}: {e}") from e
        stages = d.get("VersionIdsToStages") or {}
        current = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        previous = next((v for v, s in stages.items() if "AWSPREVIOUS" in s), None)
        return SecretState(arn=d["ARN"], kms_key_id=d.get("KmsKeyId"),
                           deleted=d.get("DeletedDate") is not None, current_version=current,
                           previous_version=previous)

    def read(self, name: str, version_id: str | None = None) -> Any:
        """The current value (or that version's), parsed as JSON; None if it is not JSON."""
        kw = {"VersionId": version_id} if version_id else {}
        try:
            raw = self.sm.get_secret_value(SecretId=name, **kw)["SecretString"]
        except ClientError as e:
            raise StoreError(f"Secrets Manager: reading {name}: {_code(e)}: {e}") from e
        except KeyError as e:
            raise StoreError(f"Secrets Manager: {name} holds binary data, not a JSON string") from e
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return None

    def create(self, name: str, value: dict[str, Any], kms_key_arn: str, description: str,
               tags: dict[str, str]) -> str | None:
        """Creates the secret with its first version; None if it appeared meanwhile (not overwritten)."""
        try:
            r = self.sm.create_secret(
                Name=name, Description=description, KmsKeyId=kms_key_arn,
                SecretString=json.dumps(value, indent=None, sort_keys=False),
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        except ClientError as e:
            if _code(e) == "ResourceExistsException":
                return None
            raise StoreError(f"Secrets Manager: creating {name}: {_code(e)}: {e}") from e
        return str(r["VersionId"])

    def put(self, name: str, value: dict[str, Any]) -> str:
        """A new AWSCURRENT version (the old one becomes AWSPREVIOUS)."""
        try:
            r = self.sm.put_secret_value(SecretId=name, SecretString=json.dumps(value))
        except ClientError as e:
            raise StoreError(f"Secrets Manager: writing {name}: {_code(e)}: {e}") from e
        return str(r["VersionId"])


def aws_error(e: BaseException) -> str:
    """A one-line reason for a boto failure that is not a ClientError (credentials, endpoint)."""
    if isinstance(e, BotoCoreError):
        return f"{type(e).__name__}: {e}"
    return str(e)
