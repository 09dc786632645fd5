"""ansible-lint (production profile) and a syntax check of every playbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
VENV_BIN = Path(os.environ.get("TRIBUNE_DEPLOY_VENV", REPO / ".deploy-venv")) / "bin"


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
                ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{path} missing; run `make deploy-venv`")
    return str(path)


def test_ansible_lint(tmp_path: Path) -> None:
    proc = subprocess.run([_tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
                          cwd=ANSIBLE, env=_env(tmp_path), text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "0 failure(s), 0 warning(s)" in proc.stdout + proc.stderr


def test_playbooks_syntax(tmp_path: Path) -> None:
    for playbook in ("site.yml", "rolling_upgrade.yml"):
        proc = subprocess.run([_tool("ansible-playbook"), "--syntax-check", "-i", str(ANSIBLE / "inventory" / "static.yml"),
                               playbook], cwd=ANSIBLE, env=_env(tmp_path), text=True, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        assert proc.returncode == 0, f"{playbook}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"


def test_static_inventory_groups(tmp_path: Path) -> None:
    proc = subprocess.run([_tool("ansible-inventory"), "-i", str(ANSIBLE / "inventory" / "static.yml"), "--graph"],
                          cwd=ANSIBLE, env=_env(tmp_path), text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "@tribune_brokers:" in proc.stdout
    assert proc.stdout.count("|  |--nats-") == 3
