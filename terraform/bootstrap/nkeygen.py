"""NKEY seeds from the workspace's own generator, `tribune-bridge keygen`.

The PyPI `nkeys` package (what nats-py uses) can encode user and account
seeds but refuses curve (xkey, `SX...`) seeds, which the auth callout needs.
Rather than generate some kinds here and others there, every seed comes
from `tribune-bridge keygen <kind> --seed-file F`, which uses the same Rust
`nkeys` crate the broker, tribune-auth and tribune-bridge parse them with.
User and account seeds are then cross-checked with the Python `nkeys`
package: the public key it derives must be the one keygen printed.

The seed goes through a file (0600, in a 0700 temporary directory that is
removed at once), never through argv or stdout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

USER = "user"
ACCOUNT = "account"
CURVE = "curve"

# kind -> (seed prefix, public key prefix)
PREFIXES = {USER: ("SU", "U"), ACCOUNT: ("SA", "A"), CURVE: ("SX", "X")}

KEYGEN_TIMEOUT_S = 30


class KeygenError(Exception):
    """No generator, or it produced something that is not the key asked for."""


@dataclass(frozen=True)
class NKey:
    seed: str = field(repr=False)
    public: str


def find_keygen(explicit: str | None, repo: Path) -> Path:
    """The tribune-bridge binary: --keygen, $TRIBUNE_BRIDGE_BIN, the cargo target dir, then PATH."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("TRIBUNE_BRIDGE_BIN"):
        candidates.append(Path(os.environ["TRIBUNE_BRIDGE_BIN"]))
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or repo / "target")
        if not target.is_absolute():
            target = repo / target
        candidates += [target / "release" / "tribune-bridge", target / "debug" / "tribune-bridge"]
        on_path = shutil.which("tribune-bridge")
        if on_path:
            candidates.append(Path(on_path))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    tried = ", ".join(str(c) for c in candidates) or "nothing"
    raise KeygenError(f"tribune-bridge (the NKEY generator) not found (tried {tried}); "
                      "build it with `cargo build --bin tribune-bridge` or pass --keygen PATH")


def derive_public(seed: str) -> str:
    """Public key of a user or account seed, by the Python nkeys package."""
    try:
        return nkeys.from_seed(seed.encode()).public_key.decode()
    except nkeys.NkeysError as e:
        raise KeygenError(f"seed does not decode: {e}") from e


class Keygen:
    """Generates NKEY pairs with `tribune-bridge keygen`."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def generate(self, kind: str) -> NKey:
        seed_prefix, public_prefix = PREFIXES[kind]
        with tempfile.TemporaryDirectory(prefix="tribune-keygen-") as tmp:
            os.chmod(tmp, 0o700)
            seed_file = Path(tmp) / "seed"
            try:
                proc = subprocess.run([str(self.binary), "keygen", kind, "--seed-file", str(seed_file)],
                                      capture_output=True, text=True, timeout=KEYGEN_TIMEOUT_S,
                                      stdin=subprocess.DEVNULL, check=False)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise KeygenError(f"{self.binary} keygen {kind}: {e}") from e
            if proc.returncode != 0:
                raise KeygenError(f"{self.binary} keygen {kind} exited {proc.returncode}: "
                                  f"{proc.stderr.strip()[-500:]}")
            try:
                seed = seed_file.read_text().strip()
            except OSError as e:
                raise KeygenError(f"{self.binary} keygen {kind} wrote no seed file: {e}") from e
        public = proc.stdout.strip()
        if not seed.startswith(seed_prefix) or not public.startswith(public_prefix):
            raise KeygenError(f"{self.binary} keygen {kind} produced a {seed[:2]!r}/{public[:1]!r} "
                              f"key, not {seed_prefix}/{public_prefix}")
        if kind in (USER, ACCOUNT) and derive_public(seed) != public:
            raise KeygenError(f"{self.binary} keygen {kind}: the seed does not derive the public key it printed")
        return NKey(seed=seed, public=public)
