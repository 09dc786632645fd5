"""The secrets a node renders from, made by `make secrets`' own command
against LocalStack's Secrets Manager, for the render tests."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "terraform" / "tests"))

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
if not TARGET.is_absolute():
    TARGET = REPO / TARGET
# $TRIBUNE_BRIDGE_BIN / $TRIBUNE_AUTH_BIN name a binary built elsewhere
# (e.g. a tribune-auth from another target directory).
BRIDGE = Path(os.environ.get("TRIBUNE_BRIDGE_BIN") or TARGET / "debug" / "tribune-bridge")
AUTH_BIN = Path(os.environ.get("TRIBUNE_AUTH_BIN") or TARGET / "debug" / "tribune-auth")
HS256_ISSUER = "https://idp.example.test/"
HS256_AUDIENCE = "tribune-web"


@contextmanager
def bootstrapped(sm, cluster: str, endpoint: str, dns_names: list[str],
                 web_idp: dict[str, Any] | None = None) -> Iterator[dict[str, dict]]:
    """The secrets `make secrets` creates (the real command, against
    LocalStack), with the two placeholders filled in as an operator does:
    the provider's credentials and an HS256 web identity provider, plus the
    optional web-idp fields in `web_idp` (e.g. apps, allowed_origins). Yields
    the secrets' values; removes them (and the key's alias) afterwards."""
    from conftest import bootstrap_cmd, bootstrap_env, delete_bootstrap_secrets

    args: list[str] = []
    for name in dns_names:
        args += ["--san", name]
    try:
        proc = subprocess.run(bootstrap_cmd(cluster, endpoint, *args, keygen=str(BRIDGE)),
                              env=bootstrap_env(), text=True, capture_output=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        filled = {
            "provider": {"url": "mqtts://mqtt.provider.example:8883", "username": "feed-user",
                         "password": secrets.token_urlsafe(16), "configured": True},
            "web-idp": {"issuers": [HS256_ISSUER], "audiences": [HS256_AUDIENCE], "jwks_url": "",
                        "hs256_secret": secrets.token_hex(32), "configured": True, **(web_idp or {})},
        }
        for name, value in filled.items():
            sm.put_secret_value(SecretId=f"tribune/{cluster}/{name}", SecretString=json.dumps(value))
        yield {name: json.loads(sm.get_secret_value(SecretId=f"tribune/{cluster}/{name}")["SecretString"])
               for name in ("tls", "nkeys", "callout", "provider", "web-idp")}
    finally:
        delete_bootstrap_secrets(cluster, endpoint)
