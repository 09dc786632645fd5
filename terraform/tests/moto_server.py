"""A moto server for what LocalStack's community edition cannot serve.

LocalStack (the project's AWS stand-in) has no Auto Scaling and no Elastic
Load Balancing v2. An Auto Scaling group must find its subnets, launch
template and target groups in the same backend, so EC2 goes to moto along
with them; everything else (IAM, STS, KMS, Secrets Manager, Route53, logs)
stays on LocalStack. moto runs with LocalStack's account ID, so ARNs built
from one agree with the other.

The server is `moto_server` from its own venv (`make moto-venv`, pinned in
terraform/tests/requirements-moto.txt), started per test session on a free
loopback port and stopped at the end. TRIBUNE_MOTO=<url> uses a moto that
is already running instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
# LocalStack's default account: the Terraform provider learns it from
# LocalStack's STS and builds ARNs (e.g. in IAM policies) with it.
MOTO_ACCOUNT_ID = "000000000000"


def moto_server_bin() -> str:
    path = Path(os.environ.get("TRIBUNE_MOTO_SERVER", REPO / ".moto-venv" / "bin" / "moto_server"))
    if not path.exists():
        pytest.fail(f"moto_server not found at {path}; run `make moto-venv`")
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """The URL of a moto server: TRIBUNE_MOTO's, or one started for the
    duration of the block (its output in log_dir/moto.log)."""
    given = os.environ.get("TRIBUNE_MOTO")
    if given:
        if not _answers(given):
            pytest.fail(f"TRIBUNE_MOTO={given} does not answer")
        yield given.rstrip("/")
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MOTO_ACCOUNT_ID=MOTO_ACCOUNT_ID)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "moto.log", "wb") as out:
        proc = subprocess.Popen([moto_server_bin(), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited ({proc.returncode}):\n"
                            f"{(log_dir / 'moto.log').read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("moto_server did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
