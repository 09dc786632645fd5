"""Works from a laptop: provider installation, lock files, one region.

- `make tf-check` with no mirror configured installs hashicorp/aws through
  the provider registry protocol (a stand-in registry of static files on
  loopback, fake_registry.py), so it needs no internet; with TF_MIRROR it
  uses the mirror and asks no registry anything;
- the committed lock files verify the package on the way in;
- an AWS_REGION or AWS_DEFAULT_REGION other than the tfvars `region` stops
  `make deploy` / `make ami` before anything is built;
- preflight.py finds missing credentials' effects and a missing TLS secret
  (LocalStack).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from conftest import REPO, TF_ROOT, require_localstack, run
from fake_registry import FakeRegistry, SigningKey, mirror_packages, zip_package

MIRROR = Path(os.environ.get("TRIBUNE_TF_MIRROR", "/opt/tf-plugins"))
LOCK_FILES = [TF_ROOT / "aws" / ".terraform.lock.hcl", TF_ROOT / "examples" / "localstack" / ".terraform.lock.hcl"]
PLATFORMS = ["linux_amd64", "linux_arm64", "darwin_arm64"]


def _host_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return sys.platform, arch


def _locked(lock: Path) -> tuple[str, list[str]]:
    """Version and hashes of hashicorp/aws in a lock file."""
    text = lock.read_text()
    block = re.search(r'provider "registry\.terraform\.io/hashicorp/aws" \{(.*?)\n\}', text, re.S)
    assert block, f"{lock}: no hashicorp/aws entry"
    version = re.search(r'version\s*=\s*"([^"]+)"', block.group(1))
    assert version, f"{lock}: no version"
    return version.group(1), re.findall(r'"((?:h1|zh):[^"]+)"', block.group(1))


def _h1(unpacked: Path) -> str:
    """Terraform's h1: hash of an unpacked provider directory (dirhash Hash1)."""
    lines = []
    for path in sorted(unpacked.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{digest}  {path.relative_to(unpacked).as_posix()}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def _mirror_package():
    version, _ = _locked(LOCK_FILES[0])
    host = _host_platform()
    for pkg in mirror_packages(MIRROR):
        if pkg.version == version and (pkg.os, pkg.arch) == host:
            return pkg
    pytest.fail(f"no hashicorp/aws {version} for {host[0]}_{host[1]} in {MIRROR} "
                "(the CI image's mirror; TRIBUNE_TF_MIRROR points elsewhere)")


@pytest.fixture(scope="module")
def registry_files(tmp_path_factory: pytest.TempPathFactory):
    """The mirror's package zipped as the registry serves it, and a signing key.

    The zip is the provider's 700 MB: removed when the module is done.
    """
    pkg = _mirror_package()
    work = tmp_path_factory.mktemp("registry-package")
    key = SigningKey(work / "gnupg")
    try:
        yield pkg, zip_package(pkg, work), key
    finally:
        key.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def tf_copy(tmp_path: Path):
    """terraform/ without local state, so init can write its lock file freely.

    Each init unpacks the provider (700 MB) into the copy: removed after the test.
    """
    dest = tmp_path / "terraform"
    shutil.copytree(TF_ROOT, dest, ignore=shutil.ignore_patterns(
        ".terraform", "*.tfstate*", "terraform.tfvars", "tfplan", "tests", "scripts", "__pycache__"))
    yield dest
    shutil.rmtree(dest, ignore_errors=True)


def _laptop_env(tmp_path: Path, cli_config: Path | None) -> dict[str, str]:
    """An operator's environment: no TF_* of this machine, an empty home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # HOME: no ~/.terraform.d/plugins (an implied local mirror) and no ~/.terraformrc.
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), CHECKPOINT_DISABLE="1")
    if cli_config is not None:
        env["TF_CLI_CONFIG_FILE"] = str(cli_config)
    return env


def _make(target: str, *args: str, env: dict[str, str], check: bool = True,
          timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return run(["make", "--no-print-directory", "-C", str(REPO), target, *args], env=env, check=check,
               timeout=timeout)


@pytest.mark.parametrize("root", ["aws", "examples/localstack"])
def test_init_uses_the_public_registry_by_default(registry_files, tf_copy: Path, tmp_path: Path,
                                                  root: str) -> None:
    """`make tf-check` with nothing configured: Terraform's default installation.

    The CLI config holds only a `host` block, which tells Terraform where
    registry.terraform.io's provider API is; it has no provider_installation,
    so Terraform installs exactly as it does on a laptop with no config at
    all: from the provider's origin registry, checking the signed SHA256SUMS
    and then the committed lock file. The registry's requests and the new
    zh: hash (of this test's zip) in the lock file show which way the
    package came.
    """
    pkg, zipped, key = registry_files
    tf = tf_copy
    committed_version, committed = _locked(tf / root / ".terraform.lock.hcl")
    with FakeRegistry(tmp_path / "registry", pkg, zipped, key) as registry:
        env = _laptop_env(tmp_path, registry.cli_config(tmp_path / "registry.tfrc"))
        out = _make("tf-check", f"TF_ROOT={tf / root}", env=env)
    assert "/v1/providers/hashicorp/aws/versions" in registry.requests, registry.requests
    assert f"/files/{pkg.version}/{pkg.zip_name}" in registry.requests, registry.requests
    assert "The configuration is valid" in out.stdout, out.stdout
    version, hashes = _locked(tf / root / ".terraform.lock.hcl")
    assert version == committed_version
    assert f"zh:{registry.zip_sha256}" in hashes, "Terraform did not record the registry's checksum"
    assert set(committed) <= set(hashes), "init dropped hashes of the committed lock file"


def test_init_refuses_a_package_the_lock_file_does_not_know(registry_files, tf_copy: Path,
                                                            tmp_path: Path) -> None:
    """The lock file really is checked on the registry path: a lock with only
    foreign hashes makes init fail, naming the lock file."""
    pkg, zipped, key = registry_files
    tf = tf_copy
    lock = tf / "aws" / ".terraform.lock.hcl"
    text = lock.read_text()
    for h in _locked(lock)[1]:
        scheme, _, value = h.partition(":")
        fake = "zh:" + "0" * 64 if scheme == "zh" else "h1:" + base64.b64encode(b"\0" * 32).decode()
        text = text.replace(f'"{h}"', f'"{fake}"', 1)
    lock.write_text(text)
    with FakeRegistry(tmp_path / "registry", pkg, zipped, key) as registry:
        env = _laptop_env(tmp_path, registry.cli_config(tmp_path / "registry.tfrc"))
        proc = _make("tf-check", f"TF_ROOT={tf / 'aws'}", env=env, check=False)
    assert proc.returncode != 0
    assert "checksum" in " ".join(proc.stderr.split()) and "lock file" in " ".join(proc.stderr.split()), proc.stderr


def test_mirror_is_opt_in(registry_files, tf_copy: Path, tmp_path: Path) -> None:
    """TF_MIRROR=<dir>: providers from the mirror only; the registry is not asked."""
    pkg, zipped, key = registry_files
    tf = tf_copy
    before = (tf / "aws" / ".terraform.lock.hcl").read_text()
    with FakeRegistry(tmp_path / "registry", pkg, zipped, key) as registry:
        env = _laptop_env(tmp_path, registry.cli_config(tmp_path / "registry.tfrc"))
        out = _make("tf-check", f"TF_ROOT={tf / 'aws'}", f"TF_MIRROR={MIRROR}", env=env)
    assert registry.requests == [], registry.requests
    assert "The configuration is valid" in out.stdout
    assert (tf / "aws" / ".terraform.lock.hcl").read_text() == before, "the mirror changed the lock file"


def test_mirror_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    env = _laptop_env(tmp_path, None)
    proc = _make("tf-check", f"TF_MIRROR={tmp_path / 'nowhere'}", env=env, check=False)
    assert proc.returncode != 0 and "is not a directory" in proc.stderr


def test_lock_files_cover_the_platforms() -> None:
    """Both roots lock the same build, with the registry's zh: checksums (one
    per published zip: what verifies a registry download on any platform,
    linux_amd64, linux_arm64 and darwin_arm64 among them) and the h1: of the
    linux_amd64 package, recomputed here from the mirror's copy."""
    (v1, hashes1), (v2, hashes2) = (_locked(lock) for lock in LOCK_FILES)
    assert (v1, sorted(hashes1)) == (v2, sorted(hashes2)), "the two roots lock different provider builds"
    zh = [h for h in hashes1 if h.startswith("zh:")]
    assert all(re.fullmatch(r"zh:[0-9a-f]{64}", h) for h in zh), zh
    # terraform-provider-aws publishes 14 platform zips plus a manifest per
    # release; Terraform records a zh: for every line of SHA256SUMS.
    assert len(set(zh)) == 15, f"expected the registry's 15 zh: checksums, found {len(set(zh))}"
    host = _host_platform()
    if host == ("linux", "amd64"):
        assert _h1(_mirror_package().unpacked) in hashes1, "the lock's h1: does not match the linux_amd64 package"
    # The operator's command to add the h1: of the other platforms is documented and wired up.
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"TF_LOCK_PLATFORMS \?= " + " ".join(PLATFORMS), makefile)
    command = "terraform providers lock " + " ".join(f"-platform={p}" for p in PLATFORMS)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert command in readme
    dry = run(["make", "--no-print-directory", "-n", "-C", str(REPO), "tf-lock"]).stdout
    assert re.search(r"for root in terraform/aws terraform/examples/localstack;.*-chdir=\$root providers lock "
                     + re.escape(" ".join(f"-platform={p}" for p in PLATFORMS)), " ".join(dry.split())), dry


# --- one region -------------------------------------------------------------

def _deploy_sandbox(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    """tfvars with region eu-west-1, and tools that record being called."""
    tfvars = tmp_path / "terraform.tfvars"
    tfvars.write_text(textwrap.dedent("""\
        region       = "eu-west-1"
        cluster_name = "demo"
        """))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "called"
    for tool in ("cargo", "packer", "terraform", "rustup", "ansible-playbook"):
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\necho \"{tool} $*\" >> '{marker}'\nexit 0\n")
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return tfvars, marker, tmp_path / "venv-never-made", env


@pytest.mark.parametrize("var", ["AWS_REGION", "AWS_DEFAULT_REGION"])
@pytest.mark.parametrize("target", ["deploy", "ami", "plan", "upgrade", "deploy-check"])
def test_region_mismatch_is_refused_before_anything_runs(tmp_path: Path, var: str, target: str) -> None:
    tfvars, marker, venv, env = _deploy_sandbox(tmp_path)
    env[var] = "us-west-2"
    proc = _make(target, f"TF_VARS={tfvars}", f"DEPLOY_VENV={venv}", f"CARGO={tmp_path / 'bin' / 'cargo'}",
                 "TF_BACKEND_CONFIG=/dev/null", env=env, check=False, timeout=60)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert f"{var}=us-west-2" in message and 'region = "eu-west-1"' in message, proc.stderr
    # The Makefile's top probes `cargo nextest --version` while it is read; that builds nothing.
    calls = [c for c in (marker.read_text().splitlines() if marker.exists() else [])
             if c != "cargo nextest --version"]
    assert not calls, f"ran before the region check: {calls}"
    assert not venv.exists(), "created the deploy venv before the region check"


def test_region_from_the_command_line_cannot_override_tfvars(tmp_path: Path) -> None:
    tfvars, marker, venv, env = _deploy_sandbox(tmp_path)
    env["AWS_REGION"] = "us-west-2"
    proc = _make("deploy-region", f"TF_VARS={tfvars}", "DEPLOY_REGION=us-west-2", env=env, check=False)
    assert proc.returncode != 0 and 'region = "eu-west-1"' in " ".join(proc.stderr.split())


@pytest.mark.parametrize("region_env", [{}, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}],
                         ids=["unset", "same"])
def test_region_check_passes_when_consistent(tmp_path: Path, region_env: dict[str, str]) -> None:
    tfvars, _, _, env = _deploy_sandbox(tmp_path)
    env.update(region_env)
    _make("deploy-region", f"TF_VARS={tfvars}", env=env)


def test_tfvars_without_region_is_refused(tmp_path: Path) -> None:
    tfvars, _, _, env = _deploy_sandbox(tmp_path)
    tfvars.write_text('cluster_name = "demo"\n')
    proc = _make("deploy-region", f"TF_VARS={tfvars}", env=env, check=False)
    assert proc.returncode != 0 and "no region" in proc.stderr


# --- preflight: credentials and the TLS secret --------------------------------

def _preflight(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(REPO / "terraform" / "scripts" / "preflight.py"), *args], env=env,
               check=False, timeout=120)


def _localstack_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def test_preflight_needs_the_tls_secret() -> None:
    import boto3

    url = require_localstack()
    env = _localstack_env(url)
    cluster = f"pf-{uuid.uuid4().hex[:8]}"
    proc = _preflight("--region", "eu-west-1", "--cluster", cluster, env=env)
    assert proc.returncode == 1
    assert f"secret tribune/{cluster}/tls does not exist in eu-west-1" in proc.stderr, proc.stderr
    sm = boto3.client("secretsmanager", endpoint_url=url, region_name="eu-west-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    sm.create_secret(Name=f"tribune/{cluster}/tls", SecretString=json.dumps({"placeholder": True}))
    try:
        proc = _preflight("--region", "eu-west-1", "--cluster", cluster, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "AWS identity" in proc.stdout and f"tribune/{cluster}/tls" in proc.stdout
        # Another region does not count: the secret must be where the cluster is.
        other = _preflight("--region", "us-east-2", "--cluster", cluster, env=env)
        assert other.returncode == 1 and "does not exist in us-east-2" in other.stderr
    finally:
        sm.delete_secret(SecretId=f"tribune/{cluster}/tls", ForceDeleteWithoutRecovery=True)


def test_preflight_without_credentials_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true", HOME=str(tmp_path))
    proc = _preflight("--region", "eu-west-1", env=env)
    assert proc.returncode == 1 and "no AWS credentials" in proc.stderr, proc.stderr


def test_ami_arch_must_be_an_ec2_name(tmp_path: Path) -> None:
    """AMI_ARCH picks the Rust target; a name it does not know stops before any build."""
    tfvars, marker, venv, env = _deploy_sandbox(tmp_path)
    proc = _make("ami-binaries", f"TF_VARS={tfvars}", f"DEPLOY_VENV={venv}", "AMI_ARCH=aarch64",
                 "AMI_CARGO_BUILD=cargo build", env=env, check=False, timeout=60)
    assert proc.returncode != 0 and "AMI_ARCH=aarch64: x86_64 or arm64" in proc.stderr, proc.stderr
    calls = [c for c in (marker.read_text().splitlines() if marker.exists() else [])
             if c != "cargo nextest --version"]
    assert not calls, calls


@pytest.mark.parametrize(("arch", "target"), [("x86_64", "x86_64-unknown-linux-musl"),
                                              ("arm64", "aarch64-unknown-linux-musl")])
def test_ami_binaries_are_static_builds_for_the_arch(tmp_path: Path, arch: str, target: str) -> None:
    """What `make ami-binaries` runs (dry run): the musl target of AMI_ARCH,
    then check_binaries.py on exactly that target's output."""
    tfvars, _, venv, env = _deploy_sandbox(tmp_path)
    dry = run(["make", "--no-print-directory", "-n", "-C", str(REPO), "ami-binaries", f"TF_VARS={tfvars}",
               f"DEPLOY_VENV={venv}", f"AMI_ARCH={arch}"], env=env).stdout
    flat = " ".join(dry.replace("\\\n", " ").split())
    assert f"cargo zigbuild --release --locked --target {target} " \
           "--bin tribune-broker --bin tribune-auth --bin tribune-bridge" in flat, dry
    assert re.search(rf"check_binaries\.py --arch {arch} \S+/{target}/release tribune-broker tribune-auth "
                     "tribune-bridge", flat), dry
