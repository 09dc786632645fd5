"""Shared helpers for the Terraform tests.

The tests drive the real `terraform` binary (provider from the /opt/tf-plugins
mirror: the tests opt into it through terraform/cli.tfrc, while `make` uses
the public registry unless told otherwise, see test_laptop.py) and, for the integration part, LocalStack on
127.0.0.1:4566 (`make localstack`). State and `.terraform` live in a pytest
temp directory, so nothing is written into the work tree except the committed
lock files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
TF_ROOT = REPO / "terraform"
LOCALSTACK = os.environ.get("TRIBUNE_LOCALSTACK", "http://127.0.0.1:4566")
REGION = "us-east-1"


def deploy_tool(name: str) -> str:
    """Path of a tool from .deploy-venv (checkov, ansible-*), else from PATH."""
    venv_bin = Path(os.environ.get("TRIBUNE_DEPLOY_VENV", REPO / ".deploy-venv")) / "bin" / name
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in {venv_bin.parent} or PATH; run `make deploy-venv`")
    return found


def tf_env(data_dir: Path) -> dict[str, str]:
    """Environment for terraform: project CLI config, no checkpoint calls, no prompts."""
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(TF_ROOT / "cli.tfrc"),
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        TF_DATA_DIR=str(data_dir),
        # The provider talks to LocalStack with the static test keys of the
        # example root; keep a developer's real profile out of it.
        AWS_PROFILE="",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.pop("AWS_PROFILE")
    return env


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs a command; on failure the assertion shows the command and its output."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, text=True, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed with exit code {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout (tail)\n{proc.stdout[-6000:]}\n--- stderr (tail)\n{proc.stderr[-6000:]}"
        )
    return proc


def require_terraform() -> str:
    tf = shutil.which("terraform")
    if not tf:
        pytest.fail("terraform is not on PATH (the CI image has 1.11 at /usr/local/bin)")
    return tf


def require_localstack() -> str:
    """LocalStack's URL; fails with the fix when it is not up."""
    try:
        with urllib.request.urlopen(f"{LOCALSTACK}/_localstack/health", timeout=5) as r:
            r.read()
    except (urllib.error.URLError, OSError) as e:
        if os.environ.get("TRIBUNE_SKIP_LOCALSTACK") == "1":
            pytest.skip(f"LocalStack not reachable at {LOCALSTACK} ({e}) and TRIBUNE_SKIP_LOCALSTACK=1")
        pytest.fail(f"LocalStack is not reachable at {LOCALSTACK} ({e}); start it with `make localstack`")
    return LOCALSTACK


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    return require_terraform()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server for EC2, Auto Scaling and ELBv2 (moto_server.py says why)."""
    from moto_server import moto_server
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


# --- `make secrets` (terraform/bootstrap) against LocalStack ---------------------

BOOTSTRAP = TF_ROOT / "bootstrap" / "bootstrap_secrets.py"
SECRET_KINDS = ("ca", "tls", "nkeys", "callout", "provider", "web-idp")


def workspace_bin(name: str, env_var: str) -> str:
    """A workspace binary: $env_var, else $CARGO_TARGET_DIR (default target/)/debug/<name>."""
    if os.environ.get(env_var):
        path = Path(os.environ[env_var])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
        path = (target if target.is_absolute() else REPO / target) / "debug" / name
    if not path.exists():
        pytest.fail(f"{name} not found at {path}; run `cargo build --bin {name}`")
    return str(path)


def bootstrap_env() -> dict[str, str]:
    """LocalStack's test credentials, and none of the developer's AWS config."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    return env


def bootstrap_cmd(cluster: str, endpoint: str, *args: str, keygen: str | None = None) -> list[str]:
    """The command `make secrets` runs, pointed at LocalStack, with the workspace's tribune-bridge."""
    return [sys.executable, str(BOOTSTRAP), "--cluster", cluster, "--region", REGION,
            "--endpoint-url", endpoint,
            "--keygen", keygen or workspace_bin("tribune-bridge", "TRIBUNE_BRIDGE_BIN"), *args]


def delete_bootstrap_secrets(cluster: str, endpoint: str) -> None:
    """Removes what the bootstrap made for `cluster`: its secrets at once, its key in 7 days."""
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
              aws_secret_access_key="test")
    sm, kms = boto3.client("secretsmanager", **kw), boto3.client("kms", **kw)
    for kind in SECRET_KINDS:
        try:
            sm.delete_secret(SecretId=f"tribune/{cluster}/{kind}", ForceDeleteWithoutRecovery=True)
        except sm.exceptions.ResourceNotFoundException:
            pass
    try:
        key_id = kms.describe_key(KeyId=f"alias/tribune-{cluster}")["KeyMetadata"]["KeyId"]
    except kms.exceptions.NotFoundException:
        return
    kms.delete_alias(AliasName=f"alias/tribune-{cluster}")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
