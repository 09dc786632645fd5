"""A stand-in for registry.terraform.io made of static files, for offline tests.

Terraform installs a provider from its origin registry in three steps, all
over the provider registry protocol: it discovers the `providers.v1` service
of the hostname, lists the versions, asks for the download of one platform
(package URL, SHA256SUMS URL and its detached GPG signature, the signing
keys), then downloads, checks the signature and the package's SHA-256, and
verifies the package against the dependency lock file.

This module lays out exactly those documents as files under a directory and
serves them over HTTP on loopback. A CLI config with only a `host` block
points Terraform's discovery of `registry.terraform.io` at it: nothing else
about installation changes (no `provider_installation`, so Terraform's
default, direct installation from the origin registry, is what runs). The
package is the real hashicorp/aws build of the /opt/tf-plugins mirror,
zipped, so its `h1:` hash is the one the committed lock files record; its
zip (and so its `zh:` hash) and its signing key are this module's own, which
is how a test tells that the package came through the registry protocol.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import threading
import zipfile
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

NAMESPACE = "hashicorp"
TYPE = "aws"


@dataclass(frozen=True)
class Package:
    """One provider build on disk (the unpacked layout of a filesystem mirror)."""

    version: str
    os: str
    arch: str
    unpacked: Path

    @property
    def zip_name(self) -> str:
        return f"terraform-provider-{TYPE}_{self.version}_{self.os}_{self.arch}.zip"


def zip_package(pkg: Package, dest: Path) -> Path:
    """The registry's zip of an unpacked build: its files at the top level.

    Stored, not deflated: the aws provider is 700 MB and compressing it
    would only slow the test down; Terraform reads either.
    """
    out = dest / pkg.zip_name
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(pkg.unpacked.iterdir()):
            info = zipfile.ZipInfo(path.name)
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_STORED
            with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class SigningKey:
    """A throw-away GPG key in its own GNUPGHOME: signs SHA256SUMS like a registry does."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._gpg("--quick-gen-key", "--passphrase", "", "--pinentry-mode", "loopback",
                  "tribune-test-registry <registry@tribune.invalid>", "rsa2048", "sign", "1d")
        listing = self._gpg("--with-colons", "--list-keys").stdout
        fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
        if not fingerprints:
            raise RuntimeError(f"gpg made no key:\n{listing}")
        self.fingerprint = fingerprints[0]
        self.key_id = self.fingerprint[-16:]
        self.armored_public_key = self._gpg("--armor", "--export", self.fingerprint).stdout

    def detach_sign(self, path: Path) -> Path:
        sig = path.with_name(path.name + ".sig")
        self._gpg("--local-user", self.fingerprint, "--output", str(sig), "--detach-sign", str(path))
        return sig

    def close(self) -> None:
        """Stops the gpg-agent that key generation and signing started for this home."""
        subprocess.run(["gpgconf", "--kill", "all"], env=dict(os.environ, GNUPGHOME=str(self.home)),
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL, check=False)

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, GNUPGHOME=str(self.home))
        proc = subprocess.run(["gpg", "--batch", "--no-tty", "--quiet", *args], env=env, text=True,
                              capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {proc.stderr}")
        return proc


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


class FakeRegistry:
    """Static registry documents for one package, served on 127.0.0.1."""

    def __init__(self, root: Path, pkg: Package, zipped: Path, key: SigningKey) -> None:
        self.root = root
        self.requests: list[str] = []
        handler = type("Handler", (_QuietHandler,), {"requests": self.requests})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.zip_sha256 = sha256_file(zipped)
        self._lay_out(pkg, zipped, key)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _lay_out(self, pkg: Package, zipped: Path, key: SigningKey) -> None:
        api = self.root / "v1" / "providers" / NAMESPACE / TYPE
        files = self.root / "files" / pkg.version
        files.mkdir(parents=True)
        (files / pkg.zip_name).symlink_to(zipped)
        sums = files / f"terraform-provider-{TYPE}_{pkg.version}_SHA256SUMS"
        sums.write_text(f"{self.zip_sha256}  {pkg.zip_name}\n")
        sig = key.detach_sign(sums)
        (api / pkg.version / "download" / pkg.os).mkdir(parents=True)
        (api / "versions").write_text(json.dumps({"versions": [{
            "version": pkg.version, "protocols": ["5.0"],
            "platforms": [{"os": pkg.os, "arch": pkg.arch}],
        }]}))
        rel = f"{self.base}/files/{pkg.version}"
        (api / pkg.version / "download" / pkg.os / pkg.arch).write_text(json.dumps({
            "protocols": ["5.0"], "os": pkg.os, "arch": pkg.arch, "filename": pkg.zip_name,
            "download_url": f"{rel}/{pkg.zip_name}",
            "shasums_url": f"{rel}/{sums.name}",
            "shasums_signature_url": f"{rel}/{sig.name}",
            "shasum": self.zip_sha256,
            "signing_keys": {"gpg_public_keys": [{
                "key_id": key.key_id, "ascii_armor": key.armored_public_key,
            }]},
        }))

    def cli_config(self, path: Path) -> Path:
        """A CLI config that only moves registry.terraform.io's API here.

        No provider_installation block: installation stays Terraform's
        default, direct from each provider's origin registry.
        """
        path.write_text(
            'host "registry.terraform.io" {\n'
            "  services = {\n"
            f'    "providers.v1" = "{self.base}/v1/providers/"\n'
            "  }\n"
            "}\n"
        )
        return path

    def __enter__(self) -> "FakeRegistry":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def mirror_packages(mirror: Path, hostname: str = "registry.terraform.io") -> Iterator[Package]:
    """Every unpacked build of hashicorp/aws in a filesystem mirror directory."""
    base = mirror / hostname / NAMESPACE / TYPE
    if not base.is_dir():
        return
    for version_dir in sorted(base.iterdir()):
        for platform_dir in sorted(version_dir.iterdir()):
            os_name, _, arch = platform_dir.name.partition("_")
            if platform_dir.is_dir() and arch:
                yield Package(version_dir.name, os_name, arch, platform_dir)
