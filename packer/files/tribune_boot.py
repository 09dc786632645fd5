"""What the AMI's boot-time scripts share: instance metadata (IMDSv2 only),
the user data Terraform writes, retries with backoff, and one error type for
problems retrying will not fix.

Installed next to them in /usr/local/libexec/tribune (a script's own
directory is first on its import path), used by attach-data-volume and
render-config. Standard library only.

Environment overrides, for tests and for running off EC2:
  TRIBUNE_IMDS_ENDPOINT   default http://169.254.169.254
  TRIBUNE_RETRY_SECONDS   how long to retry network steps, default 300
"""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

IMDS = os.environ.get("TRIBUNE_IMDS_ENDPOINT", "http://169.254.169.254").rstrip("/")
RETRY_SECONDS = float(os.environ.get("TRIBUNE_RETRY_SECONDS", "300"))

REQUIRED_KEYS = ("TRIBUNE_REGION", "TRIBUNE_TAG_KEY", "TRIBUNE_CLUSTER")
PATTERNS = {
    "TRIBUNE_REGION": r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$",
    "TRIBUNE_TAG_KEY": r"^[A-Za-z0-9 _.:/=+@-]{1,128}$",
    "TRIBUNE_CLUSTER": r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$",
    # Optional: the name clients use (nats.<domain>), advertised in INFO.
    "TRIBUNE_CLIENT_HOST": r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$",
}

T = TypeVar("T")


class BootError(Exception):
    """A problem retrying will not fix."""


def log(msg: str) -> None:
    """One line on stderr (the journal), prefixed with the script's name."""
    print(f"{Path(sys.argv[0]).name}: {msg}", file=sys.stderr, flush=True)


def retry(what: str, fn: Callable[[], T],
          transient: tuple[type[BaseException], ...] = (OSError, urllib.error.URLError, TimeoutError),
          seconds: float | None = None) -> T:
    """Calls fn until it succeeds or `seconds` (RETRY_SECONDS) pass; BootError is final."""
    budget = RETRY_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + budget
    delay = 1.0
    while True:
        try:
            return fn()
        except BootError:
            raise
        except transient as e:  # noqa: PERF203 - retry loop
            if time.monotonic() + delay > deadline:
                raise BootError(f"{what}: still failing after {budget:.0f}s: {e}") from e
            log(f"{what}: {e}; retrying in {delay:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 20)


class Imds:
    """IMDSv2: a session token first, then GETs that present it."""

    def __init__(self, endpoint: str = IMDS) -> None:
        self.endpoint = endpoint
        self._token: str | None = None

    def _fetch_token(self) -> str:
        req = urllib.request.Request(f"{self.endpoint}/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.read().decode()

    def get(self, path: str, *, optional: bool = False) -> str | None:
        """GET a metadata path; None for a 404 when optional."""
        def once() -> str | None:
            if self._token is None:
                self._token = self._fetch_token()
            req = urllib.request.Request(f"{self.endpoint}/latest/{path}",
                                         headers={"X-aws-ec2-metadata-token": self._token})
            try:
                with urllib.request.urlopen(req, timeout=3) as r:
                    return r.read().decode().strip()
            except urllib.error.HTTPError as e:
                if e.code == 401:  # token expired or rejected: get a new one
                    self._token = None
                    raise OSError("IMDS token rejected") from e
                if e.code == 404 and optional:
                    return None
                if e.code == 404:
                    raise BootError(f"instance metadata has no {path}") from e
                raise
        return retry(f"IMDS {path}", once)

    def require(self, path: str) -> str:
        """GET a metadata path that every instance has."""
        value = self.get(path)
        if not value:
            raise BootError(f"instance metadata {path} is empty")
        return value


def parse_user_data(text: str) -> dict[str, str]:
    """The KEY=VALUE lines of modules/cluster/user_data.tftpl, checked."""
    values: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise BootError(f"user data line {n}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip()
    missing = [k for k in REQUIRED_KEYS if not values.get(k)]
    if missing:
        raise BootError(f"user data lacks {', '.join(missing)} (Terraform's cluster module writes them)")
    for key, pattern in PATTERNS.items():
        if key in values and not re.match(pattern, values[key]):
            raise BootError(f"user data {key}={values[key]!r} is not valid")
    return values
