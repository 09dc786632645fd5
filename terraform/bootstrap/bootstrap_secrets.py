#!/usr/bin/env python3
"""`make secrets`: every secret a Tribune cluster needs, in Secrets Manager.

    bootstrap_secrets.py --cluster prod --region eu-west-1 [--domain example.com]
                         [--san 203.0.113.7 ...] [--rotate-tls [--replace-sans]] [--check]
    bootstrap_secrets.py --cluster prod --region eu-west-1 --web-app partners
                         --audiences partners-web[,...] [--account PARTNERS]
                         [--origins https://partners.example.com[,...]] [--claim sports=sports.{value}.>]
    bootstrap_secrets.py --cluster prod --region eu-west-1 --remove-web-app partners

Creates what is missing under tribune/<cluster>/ (see secret_schema.py for the
six secrets and their fields), each encrypted with the cluster's own
customer-managed KMS key, alias/tribune-<cluster>, created here if absent.
Re-running changes nothing that exists: no value is regenerated and no
version is added, except by --rotate-tls, which issues a new node
certificate from the stored CA and stores it as a new version of
tribune/<cluster>/tls. The placeholders (provider, web-idp) are created
once and never overwritten. Terraform never sees a value: it only refers
to the secrets by name, so no private key enters its state.

--check changes nothing and fails if anything is missing or unusable: a
preflight for the deploy verbs.

--web-app / --remove-web-app (`make web-app`) add, replace or remove one web
application (its own account; packer/files/tribune_webapps.py has the
rules) in tribune/<cluster>/web-idp, as a new version of that secret and
only if it changes; nothing else is touched or created. The nodes apply it
when they re-render (README "Adding a web application account").

It prints what it did, one line per secret, and never a secret value.
Exit status: 0 all good, 1 something needs the operator (each problem is
printed with its fix), 2 bad arguments.

Endpoint override for tests: --endpoint-url (or boto3's AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
from pathlib import Path
from typing import Any, Callable

import bcrypt
from botocore.exceptions import BotoCoreError
from cryptography import x509

import nkeygen
import pki
import secret_schema as schema
from secret_schema import tribune_webapps
from secret_schema import CA, CALLOUT, NKEYS, PROVIDER, TLS, WEB_IDP
from secret_store import MANAGED_BY, SecretState, Store, StoreError, aws_error

REPO = Path(__file__).resolve().parents[2]
BCRYPT_COST = 11
# Only 72 bytes count in bcrypt; 32 random bytes are 43 URL-safe characters.
ROUTE_PASSWORD_BYTES = 32
EXPIRY_WARNING = dt.timedelta(days=30)


class Report:
    """What happened, one line per secret; problems and warnings go to stderr."""

    def __init__(self) -> None:
        self.problems = 0
        self.counts: dict[str, int] = {}

    def did(self, status: str, what: str, detail: str = "") -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        print(f"{status:<10} {what}{'  ' + detail if detail else ''}", flush=True)

    def warn(self, what: str, msg: str) -> None:
        print(f"warning:   {what}: {msg}", file=sys.stderr, flush=True)

    def problem(self, what: str, msg: str) -> None:
        self.problems += 1
        print(f"PROBLEM:   {what}: {msg}", file=sys.stderr, flush=True)

    def summary(self) -> str:
        done = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return f"{done or 'nothing done'}; {self.problems} problem(s)"


class Bootstrap:
    def __init__(self, store: Store, key_arn: str, cluster: str, sans: list[x509.GeneralName],
                 keygen_path: str | None, tls_days: int, report: Report, check_only: bool = False) -> None:
        self.store, self.key_arn, self.cluster = store, key_arn, cluster
        self.check_only = check_only
        self.rotating = False
        self.sans, self.keygen_path, self.tls_days = sans, keygen_path, tls_days
        self.report = report
        self.states: dict[str, SecretState | None] = {}
        self.values: dict[str, dict[str, Any]] = {}  # usable current values, by kind
        self.created: set[str] = set()
        self._keygen: nkeygen.Keygen | None = None

    def name(self, kind: str) -> str:
        return schema.secret_name(self.cluster, kind)

    def tags(self, kind: str) -> dict[str, str]:
        return {"tribune:cluster": self.cluster, "tribune:secret": kind,
                "tribune:readers": "operators" if kind in schema.OPERATOR_ONLY else "nodes",
                "tribune:managed-by": MANAGED_BY}

    def keygen(self) -> nkeygen.Keygen:
        if self._keygen is None:
            self._keygen = nkeygen.Keygen(nkeygen.find_keygen(self.keygen_path, REPO))
        return self._keygen

    # --- the whole run ---------------------------------------------------------

    def run(self, rotate_tls: bool, replace_sans: bool) -> None:
        self.rotating = rotate_tls
        for kind in schema.KINDS:
            st = self.store.describe(self.name(kind))
            if st is not None and st.deleted:
                self.report.problem(self.name(kind), "is scheduled for deletion; restore it with "
                                    f"`aws secretsmanager restore-secret --secret-id {self.name(kind)}` "
                                    "(or wait until it is gone to have it made anew)")
            self.states[kind] = st
        self.ensure_ca_and_tls()
        self.ensure_generated(NKEYS, self.new_nkeys)
        self.ensure_generated(CALLOUT, self.new_callout)
        for kind in (PROVIDER, WEB_IDP):
            self.ensure_placeholder(kind)
        if rotate_tls:
            self.rotate_tls(replace_sans)

    def usable(self, kind: str) -> bool:
        st = self.states[kind]
        return st is not None and not st.deleted and st.current_version is not None

    def missing(self, kind: str) -> bool:
        """No secret, or one without a current value: either way it gets one."""
        st = self.states[kind]
        return st is None or (not st.deleted and st.current_version is None)

    def write_new(self, kind: str, value: dict[str, Any], detail: str = "") -> bool:
        """Stores the first value of a missing secret; False if another run got there first."""
        name = self.name(kind)
        if self.check_only:
            self.report.problem(name, "is missing; `make secrets` creates it")
            return False
        if self.states[kind] is None:
            version = self.store.create(name, value, self.key_arn,
                                        f"Tribune {self.cluster}: {schema.DESCRIPTIONS[kind]}",
                                        self.tags(kind))
            if version is None:
                self.report.did("unchanged", name, "created meanwhile by another run; left as is")
                self.states[kind] = self.store.describe(name)
                self.load(kind)
                return False
        else:
            version = self.store.put(name, value)
        self.report.did("created", name, f"version {version}{', ' + detail if detail else ''}")
        self.created.add(kind)
        self.values[kind] = value
        return True

    def load(self, kind: str) -> dict[str, Any] | None:
        """Reads and checks an existing secret; reports it; the value if it is usable."""
        name, st = self.name(kind), self.states[kind]
        if st is None or st.deleted or st.current_version is None:
            return None
        self.check_key(kind, st)
        value = self.store.read(name)
        if not isinstance(value, dict):
            self.report.problem(name, "is not a JSON object; fix it by hand (see README) or delete it "
                                "to have it made anew")
            return None
        missing = schema.missing_fields(kind, value)
        if missing:
            self.report.problem(name, f"lacks {', '.join(missing)}; add them by hand (see README)")
            return None
        for issue in check_value(kind, value):
            self.report.problem(name, issue)
        self.values[kind] = value
        return value

    def check_key(self, kind: str, st: SecretState) -> None:
        name = self.name(kind)
        fix = (f"re-encrypt it with `aws secretsmanager update-secret --secret-id {name} "
               f"--kms-key-id {schema.kms_alias(self.cluster)}`")
        if st.kms_key_id is None:
            self.report.warn(name, f"is encrypted with the AWS managed key aws/secretsmanager; {fix}")
            return
        if st.kms_key_id != self.key_arn and self.store.key_arn_of(st.kms_key_id) != self.key_arn:
            msg = f"is encrypted with {st.kms_key_id}, not {schema.kms_alias(self.cluster)}"
            if kind in schema.OPERATOR_ONLY:
                self.report.warn(name, f"{msg}; {fix}")
            else:
                self.report.problem(name, f"{msg}, which the nodes may not decrypt; {fix}")

    # --- CA and node certificate -----------------------------------------------

    def ensure_ca_and_tls(self) -> None:
        ca_name, tls_name = self.name(CA), self.name(TLS)
        ca: dict[str, Any] | None
        if self.check_only and self.missing(CA) and self.missing(TLS):
            self.write_new(CA, {})
            self.write_new(TLS, {})
            return
        if self.missing(CA):
            if self.usable(TLS):
                self.report.problem(ca_name, (
                    f"is missing but {tls_name} exists: its certificate was made outside `make secrets` "
                    "and the key of the CA that signed it is not stored, so it cannot be rotated. "
                    f"Either store that CA as {ca_name} (JSON ca_pem, ca_key_pem; see README), or delete "
                    f"{tls_name} to have a new CA and certificate made (then re-render every node)"))
                self.report_existing_tls(self.load(TLS), None)
                return
            ca_pem, ca_key_pem = pki.new_ca(self.cluster)
            self.write_new(CA, {"ca_pem": ca_pem, "ca_key_pem": ca_key_pem},
                           f"CA {pki.info(ca_pem).summary()}")
            ca = self.values.get(CA)
        else:
            ca = self.load(CA)
            if ca is not None:
                try:
                    pki.load_ca(ca["ca_pem"], ca["ca_key_pem"])
                except pki.PkiError as e:
                    self.report.problem(ca_name, str(e))
                    ca = None
                    self.values.pop(CA, None)
                else:
                    self.report.did("unchanged", ca_name, f"CA {pki.info(ca['ca_pem']).summary()}")
        if self.missing(TLS):
            if ca is None:
                self.report.problem(tls_name, f"is missing and cannot be issued without a usable {ca_name}")
                return
            value = self.issue(ca, self.sans)
            self.write_new(TLS, value, pki.info(value["cert_pem"]).summary())
        else:
            self.report_existing_tls(self.load(TLS), ca)

    def issue(self, ca: dict[str, Any], sans: list[x509.GeneralName]) -> dict[str, str]:
        cert_pem, key_pem = pki.issue_node_cert(ca["ca_pem"], ca["ca_key_pem"], sans, self.cluster,
                                                self.tls_days)
        return {"ca_pem": ca["ca_pem"], "cert_pem": cert_pem, "key_pem": key_pem}

    def report_existing_tls(self, tls: dict[str, Any] | None, ca: dict[str, Any] | None) -> None:
        name = self.name(TLS)
        if tls is None:
            return
        for issue in pki.check_pair(tls, ca):
            self.report.problem(name, f"{issue}; rotate it with `make rotate-tls`")
        try:
            cert = pki.info(tls["cert_pem"])
        except pki.PkiError as e:
            self.report.problem(name, str(e))
            return
        self.report.did("unchanged", name, cert.summary())
        have = set(pki.cert_sans(tls["cert_pem"]))
        lacking = [pki.san_text(n) for n in self.sans if n not in have]
        if lacking and not self.rotating:
            self.report.warn(name, f"the certificate lacks {', '.join(lacking)}; add them with `make rotate-tls`")
        left = cert.not_after - dt.datetime.now(dt.timezone.utc)
        if left < EXPIRY_WARNING:
            self.report.warn(name, f"the certificate expires in {max(left.days, 0)} days; `make rotate-tls`")

    def rotate_tls(self, replace_sans: bool) -> None:
        name = self.name(TLS)
        if TLS in self.created:
            self.report.warn(name, "was created by this run; nothing to rotate")
            return
        st = self.states[TLS]
        if st is None or st.deleted:
            self.report.problem(name, "cannot be rotated: it does not exist")
            return
        if self.check_only:
            return
        ca, old = self.values.get(CA), self.values.get(TLS)
        if ca is None:
            self.report.problem(name, f"cannot rotate without a usable {self.name(CA)}")
            return
        current = pki.cert_sans(old["cert_pem"]) if old else []
        sans = self.sans if replace_sans else pki.dedupe(current + self.sans)
        dropped = [pki.san_text(n) for n in current if n not in sans]
        if old and old.get("ca_pem", "").strip() != ca["ca_pem"].strip():
            self.report.warn(name, "the new certificate comes from a different CA than the current one: "
                             "nodes on the old and the new certificate cannot route to each other; "
                             "re-render every node at once")
        value = self.issue(ca, sans)
        version = self.store.put(name, value)
        self.values[TLS] = value
        before = f"serial {pki.info(old['cert_pem']).serial:x} -> " if old else ""
        self.report.did("rotated", name, f"version {version} (the previous one is AWSPREVIOUS), "
                        f"{before}{pki.info(value['cert_pem']).summary()}")
        if dropped:
            self.report.warn(name, f"the new certificate no longer has {', '.join(dropped)} (--replace-sans)")

    # --- web applications (make web-app) ----------------------------------------

    def web_app(self, entry: dict[str, Any] | None, remove: str | None) -> None:
        """Sets the web application `entry` (replacing one of the same name,
        in its place) or removes the one named `remove`, in web-idp, as a new
        version, and only when that changes the secret (idempotent). The
        result must pass the nodes' rules as a whole, or nothing is written."""
        name = self.name(WEB_IDP)
        st = self.store.describe(name)
        if st is None or st.deleted or st.current_version is None:
            self.report.problem(name, "does not exist (or is scheduled for deletion); run `make secrets` first")
            return
        self.check_key(WEB_IDP, st)
        # Exactly the version described, so the lost-update check below
        # compares against what was read.
        value = self.store.read(name, st.current_version)
        if not isinstance(value, dict):
            self.report.problem(name, "is not a JSON object; fix it by hand (see README)")
            return
        apps = value.get("apps")
        if apps is None:
            apps = []
        if not isinstance(apps, list):
            self.report.problem(name, "apps is not a list; fix it by hand (see README)")
            return
        app_name = entry["name"] if entry is not None else remove

        def same(a: Any) -> bool:
            return isinstance(a, dict) and a.get("name") == app_name
        if entry is None:
            new_apps = [a for a in apps if not same(a)]
            what = "removed"
        elif any(same(a) for a in apps):
            new_apps = [entry if same(a) else a for a in apps]
            what = "replaced"
        else:
            new_apps = apps + [entry]
            what = "added"
        if new_apps == apps:
            self.report.did("unchanged", name, f"app {app_name}: {'not there' if entry is None else 'as asked'}")
            return
        new_value = dict(value, apps=new_apps)
        problems = schema.web_idp_problems(new_value)
        for issue in problems:
            self.report.problem(name, f"not changed: {issue}")
        if problems:
            return
        version = self.store.put(name, new_value)
        detail = f"version {version} (the previous one is AWSPREVIOUS): app {app_name} {what}"
        if entry is not None:
            detail += f" (account {entry['account']}, audiences {', '.join(entry['audiences'])})"
        self.report.did("updated", name, detail)
        after = self.store.describe(name)
        if after is None or after.previous_version != st.current_version:
            # Secrets Manager has no conditional write: another writer between
            # our read and our write would have had its change replaced.
            self.report.problem(name, "changed by someone else while this ran: check its apps "
                                "(`aws secretsmanager list-secret-version-ids`) and re-run")
        if not schema.is_configured(new_value):
            self.report.warn(name, "is not configured yet: web sign-in, for this app too, starts once it is "
                             "(README \"Secrets\")")
        if entry is not None and entry.get("allowed_origins") and not value.get("allowed_origins"):
            self.report.warn(name, "allowed_origins is empty, so the WebSocket port accepts any origin: "
                             "the app's origins are stored but restrict nothing")

    # --- NKEYs, callout, placeholders --------------------------------------------

    def ensure_generated(self, kind: str, make: Callable[[], dict[str, Any]]) -> None:
        name = self.name(kind)
        if not self.missing(kind):
            if self.load(kind) is not None:
                self.report.did("unchanged", name)
            return
        if self.check_only:
            self.write_new(kind, {})
            return
        try:
            value = make()
        except nkeygen.KeygenError as e:
            self.report.problem(name, f"not created: {e}")
            return
        self.write_new(kind, value)

    def new_nkeys(self) -> dict[str, Any]:
        kg = self.keygen()
        users = {f: kg.generate(nkeygen.USER) for f in schema.NKEY_USERS}
        password = secrets.token_urlsafe(ROUTE_PASSWORD_BYTES)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST, prefix=b"2a")).decode()
        value: dict[str, Any] = {f: k.seed for f, k in users.items()}
        value.update(route_user=schema.ROUTE_USER, route_password=password, route_password_bcrypt=hashed)
        value.update({schema.public_field(f): k.public for f, k in users.items()})
        return value

    def new_callout(self) -> dict[str, Any]:
        kg = self.keygen()
        issuer, xkey = kg.generate(nkeygen.ACCOUNT), kg.generate(nkeygen.CURVE)
        return {"issuer_seed": issuer.seed, "xkey_seed": xkey.seed,
                "issuer_public": issuer.public, "xkey_public": xkey.public}

    def ensure_placeholder(self, kind: str) -> None:
        name = self.name(kind)
        if self.missing(kind):
            self.write_new(kind, dict(schema.PLACEHOLDERS[kind]), "placeholder: fill it in (README)")
            return
        value = self.load(kind)
        if value is None:
            return
        if schema.is_configured(value):
            self.report.did("unchanged", name, "configured")
        else:
            self.report.did("unchanged", name, "placeholder, not configured yet: fill it in (README)")


def check_value(kind: str, value: dict[str, Any]) -> list[str]:
    """Problems with an existing generated secret's content (never the content itself)."""
    issues: list[str] = []
    if kind == NKEYS:
        for f in schema.NKEY_USERS:
            seed = value.get(f)
            if not isinstance(seed, str) or not seed.startswith("SU"):
                issues.append(f"{f} is not a user seed (SU...)")
                continue
            try:
                public = nkeygen.derive_public(seed)
            except nkeygen.KeygenError:
                issues.append(f"{f} does not decode")
                continue
            stored = value.get(schema.public_field(f))
            if stored is not None and stored != public:
                issues.append(f"{schema.public_field(f)} is not the public key of {f}")
        pw, hashed = value.get("route_password"), value.get("route_password_bcrypt")
        if not isinstance(pw, str) or len(pw) < 32:
            issues.append("route_password is shorter than 32 characters")
        elif not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$")) or \
                not bcrypt.checkpw(pw.encode(), hashed.encode()):
            issues.append("route_password_bcrypt is not a bcrypt hash of route_password")
    elif kind == CALLOUT:
        if not str(value.get("issuer_seed", "")).startswith("SA"):
            issues.append("issuer_seed is not an account seed (SA...)")
        if not str(value.get("xkey_seed", "")).startswith("SX"):
            issues.append("xkey_seed is not a curve seed (SX...)")
    elif kind == WEB_IDP:
        issues += schema.web_idp_problems(value)
    return issues


def comma_list(text: str, what: str) -> list[str]:
    """`a,b` -> [a, b] (how make passes AUDIENCES= and ORIGINS=); an empty item is an error."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or not all(items):
        raise ValueError(f"{what} must be a comma-separated list with no empty items")
    return items


def web_app_entry(args: argparse.Namespace) -> dict[str, Any]:
    """The web-idp `apps` entry --web-app asks for, checked on its own with
    the nodes' rules (the checks against the other entries come later)."""
    entry: dict[str, Any] = {
        "name": args.web_app,
        "account": args.account or tribune_webapps.default_account(args.web_app),
        "audiences": comma_list(args.audiences or "", "--audiences"),
    }
    if args.claim:
        rules = []
        for c in args.claim:
            claim, sep, subject = c.partition("=")
            if not sep:
                raise ValueError(f"--claim {c!r}: expected CLAIM=SUBJECT, e.g. sports=sports.{{value}}.>")
            rules.append({"claim": claim, "subject": subject})
        entry["claims"] = rules
    if args.origins:
        entry["allowed_origins"] = comma_list(args.origins, "--origins")
    tribune_webapps.parse_app(entry, "--web-app")
    return entry


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bootstrap_secrets.py",
        description="Create the Tribune cluster's secrets in AWS Secrets Manager (idempotent).")
    p.add_argument("--cluster", required=True, help="cluster name (terraform cluster_name)")
    p.add_argument("--region", required=True, help="AWS region of the cluster")
    p.add_argument("--domain", help="clients reach the cluster as nats.<domain>: put that name in the certificate")
    p.add_argument("--san", action="append", default=[], metavar="NAME_OR_IP",
                   help="another DNS name or IP (e.g. an Elastic IP) for the certificate; repeatable")
    p.add_argument("--rotate-tls", action="store_true",
                   help="issue a new node certificate from the stored CA as a new version of tribune/<cluster>/tls")
    p.add_argument("--replace-sans", action="store_true",
                   help="with --rotate-tls: only the requested names, dropping others the current certificate has")
    p.add_argument("--tls-days", type=int, default=pki.NODE_DAYS,
                   help=f"validity of a new node certificate in days (default {pki.NODE_DAYS})")
    p.add_argument("--keygen", help="tribune-bridge binary that generates the NKEYs "
                                    "(default: $TRIBUNE_BRIDGE_BIN, else $CARGO_TARGET_DIR/{release,debug})")
    p.add_argument("--check", action="store_true",
                   help="change nothing: exit 1 if the key or a secret is missing or unusable (a deploy preflight)")
    p.add_argument("--endpoint-url", help="AWS endpoint (LocalStack in tests)")
    w = p.add_argument_group("web applications (make web-app): change only tribune/<cluster>/web-idp")
    w.add_argument("--web-app", metavar="NAME", help="add or replace the web application NAME")
    w.add_argument("--remove-web-app", metavar="NAME", help="remove the web application NAME")
    w.add_argument("--audiences", metavar="AUD[,AUD]",
                   help="with --web-app: the token audiences that select its account")
    w.add_argument("--account", help="with --web-app: its account (default: NAME upper-cased, - as _)")
    w.add_argument("--origins", metavar="ORIGIN[,ORIGIN]",
                   help="with --web-app: browser origins added to the WebSocket port's allowed_origins")
    w.add_argument("--claim", action="append", default=[], metavar="CLAIM=SUBJECT",
                   help="with --web-app: a claim rule, repeatable (default: sports=sports.{value}.>)")
    args = p.parse_args(argv)
    if not schema.CLUSTER_RE.match(args.cluster):
        p.error("--cluster must be 3-32 lower-case letters, digits and '-', starting with a letter")
    if not 1 <= args.tls_days <= 3650:
        p.error("--tls-days must be between 1 and 3650")
    if args.replace_sans and not args.rotate_tls:
        p.error("--replace-sans only applies with --rotate-tls")
    if args.check and args.rotate_tls:
        p.error("--check changes nothing; it cannot --rotate-tls")
    args.web_app_entry = None
    if args.web_app is not None or args.remove_web_app is not None:
        if args.web_app is not None and args.remove_web_app is not None:
            p.error("--web-app and --remove-web-app: one at a time")
        if args.check or args.rotate_tls:
            p.error("--web-app and --remove-web-app change only web-idp; run --check or --rotate-tls on their own")
    if args.web_app is not None:
        try:
            args.web_app_entry = web_app_entry(args)
        except ValueError as e:  # WebAppError too
            p.error(str(e))
    else:
        given = [f for f in ("audiences", "account", "origins") if getattr(args, f)] + (["claim"] if args.claim else [])
        if given:
            p.error(f"--{', --'.join(given)} only apply with --web-app")
    if args.remove_web_app is not None and not 1 <= len(args.remove_web_app) <= 64:
        p.error("--remove-web-app needs the app's name")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        sans = pki.requested_sans(args.domain, args.san)
    except pki.PkiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = Report()
    try:
        store = Store(args.region, args.endpoint_url)
        alias = schema.kms_alias(args.cluster)
        if args.web_app_entry is not None or args.remove_web_app is not None:
            # Only web-idp changes: no key is created, no other secret read.
            arn = store.key_arn_of(alias)
            if arn is None:
                report.problem(alias, "is missing; `make secrets` creates it and the secrets")
            else:
                Bootstrap(store, arn, args.cluster, sans, args.keygen, args.tls_days, report) \
                    .web_app(args.web_app_entry, args.remove_web_app)
            print(f"tribune/{args.cluster}/web-idp: {report.summary()}")
            if report.counts.get("updated") and not report.problems:
                print("next: re-render and restart every node, one at a time "
                      "(README \"Adding a web application account\")")
            return 1 if report.problems else 0
        if args.check:
            arn = store.key_arn_of(alias)
            if arn is None:
                report.problem(alias, "is missing; `make secrets` creates it and the secrets")
                print(f"tribune/{args.cluster}/*: not checked; 1 problem(s)")
                return 1
        key = store.ensure_key(alias, f"Tribune {args.cluster}: Secrets Manager secrets of the cluster",
                               {"tribune:cluster": args.cluster, "tribune:managed-by": MANAGED_BY})
        report.did("created" if key.created else "unchanged", alias, key.arn)
        if key.rotation is False:
            report.warn(alias, f"automatic key rotation is off; `aws kms enable-key-rotation --key-id {key.arn}`")
        Bootstrap(store, key.arn, args.cluster, sans, args.keygen, args.tls_days, report,
                  check_only=args.check).run(args.rotate_tls, args.replace_sans)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BotoCoreError as e:
        print(f"error: AWS: {aws_error(e)} (credentials and region: see README)", file=sys.stderr)
        return 1
    print(f"tribune/{args.cluster}/*: {report.summary()}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
