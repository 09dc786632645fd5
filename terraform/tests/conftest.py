"""Shared helpers for the Terraform tests.

The tests drive the real `terraform` binary (provider from the /opt/tf-plugins
mirror through terraform/cli.tfrc) and, for the integration part, LocalStack on
127.0.0.1:4566 (`make localstack`). State and `.terraform` live in a pytest
temp directory, so nothing is written into the work tree except the committed
lock files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

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
