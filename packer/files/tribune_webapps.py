"""Web application accounts: the optional `apps` list of the web-idp secret.

Each web application gets its own account on every broker; tribune-auth
admits a user into it when the user's token names one of the application's
audiences. An entry of tribune/<cluster>/web-idp:

    "apps": [
      {"name": "partners",                         # ^[a-z][a-z0-9_-]{0,31}$, unique, not "default"
       "account": "PARTNERS",                      # ^[A-Z][A-Z0-9_]{0,31}$, unique, not reserved
       "audiences": ["partners-web"],              # non-empty; disjoint from every other
                                                   # app's and from the secret's `audiences`
       "claims": [{"claim": "sports",              # optional; default: this rule, WEB's
                   "subject": "sports.{value}.>"}],
       "allowed_origins": ["https://partners.example.com"]}   # optional
    ]

The rules live here, once, because two programs apply them to the same
secret and must agree:
- render-config, on every node at boot (installed beside it, as
  tribune_boot.py is). A bad entry fails the render, as any other bad secret
  does; it is never skipped, because a skipped application is an outage its
  operator does not see, and an entry half understood could admit users into
  an account nobody meant.
- `make web-app` and `make secrets --check` (terraform/bootstrap imports this
  file from packer/files), so the operator learns of a bad entry before a
  node refuses to boot on it.

Standard library only: the AMI's renderer has python3 and boto3, nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# tribune-auth's name for the application of [callout].account (WEB here):
# an [[apps]] entry of that name makes it refuse its whole config.
RESERVED_NAMES = ("default",)
ACCOUNT_RE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
# What broker.conf.tmpl defines itself, and the broker's global account: an
# application there would share the feed writer's, the callout's or the
# system's account, or WEB's users.
RESERVED_ACCOUNTS = ("SPORTS", "AUTH", "SYS", "WEB", "$G")
# `aud` values are often URLs or URNs; nothing here can break out of a
# quoted TOML string, and nothing is a space or a control character.
AUDIENCE_RE = re.compile(r"[A-Za-z0-9_.:/+=@-]{1,256}")
CLAIM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,127}")
# A browser's Origin header: scheme, host and optional port, nothing else.
ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
SUBJECT_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
# The only subjects an application account imports (broker.conf.tmpl). A
# claim rule outside them would grant nothing from the feed, and inside the
# account it could reach other users' reply inboxes (_INBOX.<id>.>), so it is
# refused rather than rendered.
FEED_ROOT = "sports"
DEFAULT_CLAIMS: tuple[tuple[str, str], ...] = (("sports", "sports.{value}.>"),)
FIELDS = ("name", "account", "audiences", "claims", "allowed_origins")


class WebAppError(ValueError):
    """An `apps` entry (or the list) breaks a rule; the message names which."""


@dataclass(frozen=True)
class WebApp:
    name: str
    account: str
    audiences: tuple[str, ...]
    # (claim, subject template) pairs; the default when the entry has none.
    claims: tuple[tuple[str, str], ...]
    allowed_origins: tuple[str, ...]


def default_account(name: str) -> str:
    """The account `make web-app` uses without ACCOUNT=: `partners-eu` -> `PARTNERS_EU`."""
    return name.upper().replace("-", "_")


def _show(value: Any) -> str:
    """A value for an error message, cut short (the fields are not secret,
    but a message is no place for a whole pasted document)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_origins(value: Any, where: str) -> list[str]:
    """A list of browser origins (`https://host[:port]`); absent or null is []."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(o, str) and ORIGIN_RE.fullmatch(o) for o in value):
        raise WebAppError(f"{where} must be a list of origins (https://host[:port])")
    return list(value)


def check_subject_template(subject: Any) -> str:
    """A claim rule's subject: `{value}` once, as a whole token; under the
    feed's root; otherwise plain tokens, `*`, and `>` only at the end (the
    rule tribune-auth applies too, plus the feed root)."""
    if not isinstance(subject, str):
        raise WebAppError("subject must be a string")
    tokens = subject.split(".")
    if subject.count("{value}") != 1 or tokens.count("{value}") != 1:
        raise WebAppError(f"subject {_show(subject)} must contain {{value}} exactly once, as a whole token")
    if tokens[0] != FEED_ROOT or len(tokens) < 2:
        raise WebAppError(f"subject {_show(subject)} must start with {FEED_ROOT}. "
                          "(the only subjects an application account imports)")
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if tok == "{value}" or tok == "*" or (tok == ">" and last) or SUBJECT_TOKEN_RE.fullmatch(tok):
            continue
        raise WebAppError(f"subject {_show(subject)} has an invalid token {_show(tok)}")
    return subject


def _claims(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return DEFAULT_CLAIMS
    if not isinstance(value, list) or not value:
        raise WebAppError(f"{where}: claims must be a non-empty list of {{claim, subject}} "
                          "(leave it out for the default sports rule)")
    rules = []
    for j, rule in enumerate(value):
        at = f"{where}: claims[{j}]"
        if not isinstance(rule, dict) or set(rule) != {"claim", "subject"}:
            raise WebAppError(f"{at} must be an object with exactly the keys claim and subject")
        if not isinstance(rule["claim"], str) or not CLAIM_RE.fullmatch(rule["claim"]):
            raise WebAppError(f"{at}: claim {_show(rule['claim'])} is not a claim name")
        try:
            subject = check_subject_template(rule["subject"])
        except WebAppError as e:
            raise WebAppError(f"{at}: {e}") from None
        rules.append((rule["claim"], subject))
    if len(set(rules)) != len(rules):
        raise WebAppError(f"{where}: claims lists a rule twice")
    return tuple(rules)


def parse_app(entry: Any, where: str = "app") -> WebApp:
    """One entry on its own: shapes, patterns and the reserved accounts.
    What depends on the other entries is parse_apps' part."""
    if not isinstance(entry, dict):
        raise WebAppError(f"{where} must be an object")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        # A typo (`audience`) must not quietly become "no such setting".
        raise WebAppError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise WebAppError(f"{where}: name {_show(name)} must match ^{NAME_RE.pattern}$")
    if name in RESERVED_NAMES:
        raise WebAppError(f"{where}: name {name} is reserved (tribune-auth's name for WEB's application)")
    where = f"{where} ({name})"
    account = entry.get("account")
    if not isinstance(account, str) or not ACCOUNT_RE.fullmatch(account):
        raise WebAppError(f"{where}: account {_show(account)} must match ^{ACCOUNT_RE.pattern}$")
    if account in RESERVED_ACCOUNTS:
        raise WebAppError(f"{where}: account {account} is reserved ({', '.join(RESERVED_ACCOUNTS)})")
    audiences = entry.get("audiences")
    if not isinstance(audiences, list) or not audiences or \
            not all(isinstance(a, str) and AUDIENCE_RE.fullmatch(a) for a in audiences):
        raise WebAppError(f"{where}: audiences must be a non-empty list of token audiences "
                          "(letters, digits and _.:/+=@-)")
    if len(set(audiences)) != len(audiences):
        raise WebAppError(f"{where}: audiences lists a value twice")
    return WebApp(name=name, account=account, audiences=tuple(audiences),
                  claims=_claims(entry.get("claims"), where),
                  allowed_origins=tuple(parse_origins(entry.get("allowed_origins"), f"{where}: allowed_origins")))


def parse_apps(web: Mapping[str, Any]) -> list[WebApp]:
    """Every entry of `web["apps"]` (absent or null: none), checked on its
    own and against the others and the secret's own `audiences`: names and
    accounts unique, every audience admitting into exactly one account."""
    raw = web.get("apps")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WebAppError("apps must be a list")
    # The secret's own audiences are checked where they are used (render-config's
    # auth.toml); here only as values no application may also claim.
    web_audiences = web.get("audiences")
    taken: dict[str, str] = {a: "the web-idp audiences (WEB)" for a in
                             (web_audiences if isinstance(web_audiences, list) else []) if isinstance(a, str)}
    apps: list[WebApp] = []
    names: set[str] = set()
    accounts: dict[str, str] = {}
    for i, entry in enumerate(raw):
        app = parse_app(entry, f"apps[{i}]")
        where = f"apps[{i}] ({app.name})"
        if app.name in names:
            raise WebAppError(f"{where}: another app has the name {app.name}")
        if app.account in accounts:
            raise WebAppError(f"{where}: account {app.account} is also app {accounts[app.account]}'s")
        for aud in app.audiences:
            if aud in taken:
                raise WebAppError(f"{where}: audience {_show(aud)} is also in {taken[aud]}; "
                                  "a token's audience must choose exactly one account")
            taken[aud] = f"app {app.name}"
        names.add(app.name)
        accounts[app.account] = app.name
        apps.append(app)
    return apps


def websocket_origins(origins: list[str], apps: list[WebApp]) -> tuple[list[str], list[str]]:
    """The WebSocket port's allowed origins: the secret's, plus every app's.

    Only when the secret lists origins at all: an empty list means any
    origin, and adding an application's origins to it would shut out every
    other site, WEB's included. Returns (origins, the app origins left out)."""
    extra = [o for app in apps for o in app.allowed_origins]
    if not origins:
        return [], list(dict.fromkeys(extra))
    return list(dict.fromkeys(origins + extra)), []
