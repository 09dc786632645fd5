"""Both Packer layouts, and binaries that run on the AMI whatever built them.

- packer/ is the layout for Packer >= 1.7 (versions.pkr.hcl pins the amazon
  plugin, `packer init` installs it); packer/packer-1.6/ is the same
  template without that file, for Debian's 1.6.6; scripts/layout.sh picks
  one by the installed Packer's version;
- check_binaries.py (run by `make ami` before any builder starts) accepts
  only static Linux executables of the AMI's architecture;
- verify-binaries.sh (the AMI's first verify step) runs all three binaries.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKER = REPO / "packer"
LEGACY = PACKER / "packer-1.6"
BIN_NAMES = ("tribune-broker", "tribune-auth", "tribune-bridge")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=300, **kw)


def _packer_env() -> dict[str, str]:
    return dict(os.environ, CHECKPOINT_DISABLE="1",
                PACKER_CACHE_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / "packer-cache"))


def _version(packer: str) -> tuple[int, int]:
    out = _run([packer, "version"]).stdout
    m = re.search(r"v?(\d+)\.(\d+)\.\d+", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def packer() -> str:
    found = shutil.which("packer")
    if not found:
        pytest.fail("packer is not installed (apt-get install packer; .ci/run does it)")
    return found


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """Stand-ins for the release binaries (validate only stats them)."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in BIN_NAMES:
        (d / name).write_bytes(b"")
    return d


def _fake_packer(tmp_path: Path, version_line: str) -> Path:
    script = tmp_path / "packer"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = version ] && echo '{version_line}'\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    ("version_line", "expected"),
    [
        ("Packer v1.6.6", (LEGACY, "none")),
        ("Packer v1.6.0", (LEGACY, "none")),
        ("Packer v1.7.0", (PACKER, "init")),
        ("Packer v1.11.2", (PACKER, "init")),
        ("Packer v2.0.0", (PACKER, "init")),
    ],
)
def test_layout_follows_the_packer_version(tmp_path: Path, version_line: str, expected: tuple[Path, str]) -> None:
    fake = _fake_packer(tmp_path, version_line)
    proc = _run([str(PACKER / "scripts" / "layout.sh")], env=dict(os.environ, PACKER=str(fake)))
    assert proc.returncode == 0, proc.stderr
    directory, init = proc.stdout.split()
    assert (Path(directory).resolve(), init) == (expected[0].resolve(), expected[1])


def test_layout_refuses_an_unreadable_version(tmp_path: Path) -> None:
    fake = _fake_packer(tmp_path, "something else")
    proc = _run([str(PACKER / "scripts" / "layout.sh")], env=dict(os.environ, PACKER=str(fake)))
    assert proc.returncode != 0 and "cannot read a version" in proc.stderr


def test_legacy_view_is_the_template_without_the_plugin_block() -> None:
    """packer-1.6/ links every template file of packer/ but versions.pkr.hcl,
    and the files/ and scripts/ the template uploads (path.root)."""
    template = {p.name for p in PACKER.glob("*.pkr.hcl")}
    assert "versions.pkr.hcl" in template
    legacy = {p.name for p in LEGACY.glob("*.pkr.hcl")}
    assert legacy == template - {"versions.pkr.hcl"}, "add a link in packer/packer-1.6/ for each new template file"
    for name in [*legacy, "files", "scripts"]:
        link = LEGACY / name
        assert link.is_symlink() and link.resolve() == (PACKER / name).resolve(), name


def test_plugin_block_pins_the_amazon_plugin() -> None:
    text = (PACKER / "versions.pkr.hcl").read_text()
    block = re.search(r"required_plugins\s*\{(.*?)\n  \}", text, re.S)
    assert block, text
    amazon = re.search(r"amazon\s*=\s*\{(.*?)\}", block.group(1), re.S)
    assert amazon, block.group(1)
    assert re.search(r'source\s*=\s*"github\.com/hashicorp/amazon"', amazon.group(1))
    # An exact version (no operator): the AMI is built with the plugin that was reviewed.
    assert re.search(r'version\s*=\s*"\d+\.\d+\.\d+"', amazon.group(1)), amazon.group(1)
    assert re.search(r'required_version\s*=\s*">= 1\.7', text), "packer init needs Packer >= 1.7"


def test_legacy_layout_validates(packer: str, bin_dir: Path, tmp_path: Path) -> None:
    proc = _run([packer, "validate", f"-var=bin_dir={bin_dir}", str(LEGACY)], env=_packer_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plugin_layout_validates(packer: str, bin_dir: Path, tmp_path: Path) -> None:
    """packer/ as Packer >= 1.7 reads it.

    With Packer >= 1.7 on PATH (or TRIBUNE_PACKER_NEW): packer init, then
    validate, as `make ami` does. With Debian's 1.6.6 (these machines; no
    newer Packer can be installed here): 1.6.6 refuses the directory for the
    packer {} block only (required_plugins, and required_version >= 1.7),
    and the rest of the directory validates once that block is taken out.
    """
    new = os.environ.get("TRIBUNE_PACKER_NEW") or (packer if _version(packer) >= (1, 7) else None)
    if new:
        env = dict(_packer_env(), PACKER_PLUGIN_PATH=str(tmp_path / "plugins"))
        init = _run([new, "init", str(PACKER)], env=env, cwd=tmp_path)
        assert init.returncode == 0, init.stdout + init.stderr
        proc = _run([new, "validate", f"-var=bin_dir={bin_dir}", str(PACKER)], env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return

    proc = _run([packer, "validate", f"-var=bin_dir={bin_dir}", str(PACKER)], env=_packer_env(), cwd=tmp_path)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    errors = re.findall(r"^Error: (.*)$", out, re.M)
    assert sorted(errors) == ["Unsupported Packer Core version", "Unsupported block type"], out
    assert 'Blocks of type "required_plugins" are not expected here' in out
    assert "does not support Packer version 1.6" in out

    copy = tmp_path / "packer"
    shutil.copytree(PACKER, copy, symlinks=True, ignore=shutil.ignore_patterns("tests", "packer-1.6", "__pycache__"))
    versions = copy / "versions.pkr.hcl"
    stripped = re.sub(r"(?ms)^packer \{.*?^\}\n", "", versions.read_text())
    assert not re.search(r"(?m)^[^#]*(packer \{|required_plugins)", stripped), stripped
    versions.write_text(stripped)
    proc = _run([packer, "validate", f"-var=bin_dir={bin_dir}", str(copy)], env=_packer_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_template_builds_from_the_debian_image_of_the_arch(packer: str, bin_dir: Path, tmp_path: Path,
                                                           arch: str) -> None:
    proc = _run([packer, "inspect", str(LEGACY)], env=_packer_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (PACKER / "tribune.pkr.hcl").read_text()
    assert 'name                = "debian-12-${local.debian_arch}-*"' in text
    assert "architecture        = var.arch" in text
    ok = _run([packer, "validate", f"-var=bin_dir={bin_dir}", f"-var=arch={arch}", str(LEGACY)],
              env=_packer_env(), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _run([packer, "validate", f"-var=bin_dir={bin_dir}", "-var=arch=amd64", str(LEGACY)],
               env=_packer_env(), cwd=tmp_path)
    assert bad.returncode != 0 and "must be x86_64 or arm64" in bad.stdout + bad.stderr


# --- check_binaries.py ---------------------------------------------------------

def _elf(machine: int, *, interp: bool) -> bytes:
    """A minimal 64-bit little-endian ELF executable header with its program headers."""
    phdrs = [1] + ([3] if interp else []) + [2]  # PT_LOAD, [PT_INTERP], PT_DYNAMIC
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5], header[6] = 2, 1, 1
    struct.pack_into("<HHI", header, 16, 3, machine, 1)  # ET_DYN (PIE)
    struct.pack_into("<QQQ", header, 24, 0, 64, 0)  # e_entry, e_phoff, e_shoff
    struct.pack_into("<HHHHHH", header, 52, 64, 56, len(phdrs), 64, 0, 0)
    table = b"".join(struct.pack("<I", t) + bytes(52) for t in phdrs)
    return bytes(header) + table


def _check(arch: str, directory: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(PACKER / "scripts" / "check_binaries.py"), "--arch", arch,
                 str(directory), *names])


@pytest.mark.parametrize(
    ("arch", "machine", "interp", "error"),
    [
        ("x86_64", 62, False, None),
        ("arm64", 183, False, None),
        ("x86_64", 183, False, "built for arm64, the AMI is x86_64"),
        ("arm64", 62, False, "built for x86_64, the AMI is arm64"),
        ("x86_64", 62, True, "dynamically linked"),
    ],
    ids=["static-x86_64", "static-arm64", "arm64-on-x86_64", "x86_64-on-arm64", "dynamic"],
)
def test_check_binaries(tmp_path: Path, arch: str, machine: int, interp: bool, error: str | None) -> None:
    for name in BIN_NAMES:
        (tmp_path / name).write_bytes(_elf(machine, interp=interp))
    proc = _check(arch, tmp_path, *BIN_NAMES)
    if error is None:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("static Linux") == 3
    else:
        assert proc.returncode == 1
        assert proc.stderr.count(error) == 3, proc.stderr


def test_check_binaries_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "macho").write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))  # a macOS executable
    (tmp_path / "short").write_bytes(b"\x7fELF")
    proc = _check("x86_64", tmp_path, "macho", "short", "missing")
    assert proc.returncode == 1
    assert "macho: not an ELF file" in proc.stderr
    assert "short: not an ELF file" in proc.stderr
    assert "missing: cannot read" in proc.stderr


def test_check_binaries_refuses_the_host_glibc_build() -> None:
    """What `cargo build --release` on a Linux laptop gives: dynamically linked."""
    broker = Path(os.environ.get("TRIBUNE_BROKER_BIN", REPO / "target" / "debug" / "tribune-broker"))
    if not broker.exists():
        pytest.fail(f"tribune-broker not found at {broker}; run `cargo build -p tribune-broker`")
    proc = _check("x86_64" if os.uname().machine == "x86_64" else "arm64", broker.parent, broker.name)
    assert proc.returncode == 1 and "dynamically linked" in proc.stderr, proc.stdout + proc.stderr


# --- verify-binaries.sh --------------------------------------------------------

def _verify(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return _run(["bash", str(PACKER / "scripts" / "verify-binaries.sh")],
                env=dict(os.environ, TRIBUNE_BIN_DIR=str(bin_dir)))


def _debug_bins(tmp_path: Path) -> Path:
    broker = Path(os.environ.get("TRIBUNE_BROKER_BIN", REPO / "target" / "debug" / "tribune-broker"))
    d = tmp_path / "usr-local-bin"
    d.mkdir()
    for name in BIN_NAMES:
        src = broker.parent / name
        if not src.exists():
            pytest.fail(f"{src} not built; run `cargo build --workspace`")
        (d / name).symlink_to(src)
    return d


def test_verify_runs_all_three_binaries(tmp_path: Path) -> None:
    proc = _verify(_debug_bins(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for name in BIN_NAMES:
        assert re.search(rf"^verify-binaries: {name}:? v?\d+\.\d+\.\d+", proc.stdout, re.M), proc.stdout
    assert proc.stdout.rstrip().endswith("verify-binaries: ok")


@pytest.mark.parametrize("broken", BIN_NAMES)
def test_verify_fails_on_a_binary_that_does_not_run(tmp_path: Path, broken: str) -> None:
    d = _debug_bins(tmp_path)
    (d / broken).unlink()
    # What a binary for the wrong architecture does: the kernel refuses it.
    (d / broken).write_bytes(_elf(183 if os.uname().machine == "x86_64" else 62, interp=False))
    (d / broken).chmod(0o755)
    proc = _verify(d)
    assert proc.returncode == 1
    assert f"{d / broken} --version failed" in proc.stderr, proc.stderr


def test_verify_fails_on_a_missing_binary(tmp_path: Path) -> None:
    d = _debug_bins(tmp_path)
    (d / "tribune-bridge").unlink()
    proc = _verify(d)
    assert proc.returncode == 1 and "tribune-bridge missing" in proc.stderr
