"""The Secrets Manager secrets of a Tribune cluster: names, fields, placeholders.

This is the contract between `make secrets` (which writes them) and the
node-side renderer (which reads them at boot). Names and fields are fixed:
a change may add a field, never rename or drop one, because nodes already
running read the old shape.

Every secret is a JSON object under `tribune/<cluster>/`:

- `tls`      nodes read it: the node certificate, its key and the CA certificate.
- `ca`       operators only (the instance role is denied it): the CA's key,
             to issue and rotate node certificates.
- `nkeys`    nodes read it: NKEY user seeds of the internal systems and the
             route credentials.
- `callout`  nodes read it: the auth callout issuer (account) and xkey (curve) seeds.
- `provider` nodes read it: the MQTT provider's credentials (placeholder).
- `web-idp`  nodes read it: the web identity provider's keys (placeholder),
             and optionally `allowed_origins` (the WebSocket port's) and
             `apps`, the web applications, each with its own account
             (`make web-app`). The rules for `apps` are in
             packer/files/tribune_webapps.py, which the node's renderer uses
             too: see WEB_APP_RULES below.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

# The web applications' rules, from the file the AMI installs beside its
# renderer: one implementation, so `make web-app` and `make secrets --check`
# never accept an entry a node would refuse at boot (or the reverse).
WEB_APP_RULES = Path(__file__).resolve().parents[2] / "packer" / "files"
sys.path.insert(0, str(WEB_APP_RULES))
import tribune_webapps  # noqa: E402,F401  (re-exported for the bootstrap)

# The cluster name rule of terraform/aws (var.cluster_name) and render-config.
CLUSTER_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")

TLS = "tls"
CA = "ca"
NKEYS = "nkeys"
CALLOUT = "callout"
PROVIDER = "provider"
WEB_IDP = "web-idp"

# In the order `make secrets` creates them: the CA before the certificate it signs.
KINDS = (CA, TLS, NKEYS, CALLOUT, PROVIDER, WEB_IDP)

# What each secret must hold.
FIELDS: dict[str, tuple[str, ...]] = {
    TLS: ("ca_pem", "cert_pem", "key_pem"),
    CA: ("ca_pem", "ca_key_pem"),
    NKEYS: ("sys_user_seed", "bridge_seed", "services_seed", "auth_service_seed",
            "route_user", "route_password", "route_password_bcrypt"),
    CALLOUT: ("issuer_seed", "xkey_seed"),
    PROVIDER: ("url", "username", "password", "configured"),
    WEB_IDP: ("issuers", "audiences", "jwks_url", "hs256_secret", "configured"),
}

# User seeds in `nkeys`, each stored with its public key as `<name>_public`
# (`sys_user_seed` -> `sys_user_public`). The public keys are derivable from
# the seeds, but the broker's config needs them and the renderer on the AMI
# has no Ed25519 library, so they are stored next to the seeds (added
# fields: the base schema is unchanged).
NKEY_USERS = ("sys_user_seed", "bridge_seed", "services_seed", "auth_service_seed")

# The route user's name; the password is random per cluster.
ROUTE_USER = "route"

# Created only when absent, never overwritten: the operator fills them in.
PLACEHOLDERS: dict[str, dict[str, Any]] = {
    PROVIDER: {"url": "mqtts://REPLACE-ME:8883", "username": "REPLACE-ME",
               "password": "REPLACE-ME", "configured": False},
    WEB_IDP: {"issuers": [], "audiences": [], "jwks_url": "", "hs256_secret": "",
              "configured": False},
}

# Who may read each secret: the instance role reads every secret of its
# cluster except these (terraform/modules/cluster/iam.tf denies them).
OPERATOR_ONLY = frozenset({CA})

DESCRIPTIONS = {
    TLS: "node certificate, key and CA certificate (read by the nodes)",
    CA: "cluster CA certificate and key, to issue node certificates (operators only)",
    NKEYS: "NKEY seeds of the internal systems and the route credentials (read by the nodes)",
    CALLOUT: "auth callout issuer and xkey seeds (read by the nodes)",
    PROVIDER: "MQTT provider credentials for tribune-bridge (read by the nodes; fill in)",
    WEB_IDP: "web identity provider keys for tribune-auth (read by the nodes; fill in)",
}


def public_field(seed_field: str) -> str:
    """`bridge_seed` -> `bridge_public`."""
    return seed_field.removesuffix("_seed") + "_public"


def secret_name(cluster: str, kind: str) -> str:
    return f"tribune/{cluster}/{kind}"


def kms_alias(cluster: str) -> str:
    return f"alias/tribune-{cluster}"


def missing_fields(kind: str, value: Any) -> list[str]:
    """Fields of the base schema that `value` lacks (all of them if it is not an object)."""
    if not isinstance(value, dict):
        return list(FIELDS[kind])
    return [f for f in FIELDS[kind] if f not in value]


def is_configured(value: dict[str, Any]) -> bool:
    """A placeholder secret the operator has filled in says so with configured: true."""
    return value.get("configured") is True


def web_idp_problems(value: dict[str, Any]) -> list[str]:
    """What a node's renderer would refuse in a web-idp secret's optional
    fields (`apps`, `allowed_origins`). The messages may quote app names,
    accounts and audiences (not secret), never the identity provider's keys."""
    try:
        tribune_webapps.parse_apps(value)
        tribune_webapps.parse_origins(value.get("allowed_origins") or None, "allowed_origins")
    except tribune_webapps.WebAppError as e:
        return [f"{e}; a node refuses to render with it (fix it with `make web-app`, see README)"]
    return []
