"""The cluster's private CA and its node certificate, with `cryptography`.

One certificate serves every node (the nodes are interchangeable and a
replaced node must not need a new one): server auth for clients and the
accepting side of routes, client auth for the dialling side, because routes
are mutual TLS. Routes are dialled at private IPs found by EC2 discovery,
which no certificate issued before the instances exist can name; the
rendered config therefore skips only the host-name check on routes
(`insecure: true`) and still verifies the chain against this CA, which
signs nothing but this cluster's node certificates. Clients check the name:
`nats.<domain>`, plus any extra names or Elastic IPs given with --san.
`localhost` and 127.0.0.1 are always in, for on-node health checks.

Keys are EC P-256: every TLS stack the clients use supports it, and it is
small and fast to handshake.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
NODE_DAYS = 365
# Backdating absorbs clock skew between this machine and the nodes.
BACKDATE = dt.timedelta(minutes=5)

DNS_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DOMAIN_RE = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")

ALWAYS = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


class PkiError(Exception):
    """Bad input or material that does not fit together."""


@dataclass(frozen=True)
class CertInfo:
    """What the report says about a certificate: nothing secret."""
    serial: int
    not_after: dt.datetime
    sans: tuple[str, ...]
    sha256: str

    def summary(self) -> str:
        text = f"serial {self.serial:x}, expires {self.not_after:%Y-%m-%d}"
        return f"{text}, SANs {', '.join(self.sans)}" if self.sans else text


def parse_san(text: str) -> x509.GeneralName:
    """An IP address or a DNS name (lower-cased); anything else is refused."""
    value = text.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.lower().rstrip(".")
    if not name or len(name) > 253 or not DNS_RE.match(name):
        raise PkiError(f"--san {text!r} is neither an IP address nor a DNS name")
    return x509.DNSName(name)


def requested_sans(domain: str | None, extras: list[str]) -> list[x509.GeneralName]:
    """nats.<domain>, the extras, localhost and 127.0.0.1, in that order, without repeats."""
    names: list[x509.GeneralName] = []
    if domain:
        d = domain.strip().lower().rstrip(".")
        if not DOMAIN_RE.match(d):
            raise PkiError(f"--domain {domain!r} is not a DNS domain")
        names.append(x509.DNSName(f"nats.{d}"))
    names += [parse_san(s) for s in extras]
    names += ALWAYS
    return dedupe(names)


def dedupe(names: list[x509.GeneralName]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def san_text(name: x509.GeneralName) -> str:
    return f"IP:{name.value}" if isinstance(name, x509.IPAddress) else f"DNS:{name.value}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def new_ca(cluster: str, days: int = CA_DAYS) -> tuple[str, str]:
    """A self-signed CA that may sign end-entity certificates only; (ca_pem, ca_key_pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tribune"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Tribune {cluster} CA"),
    ])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load_ca(ca_pem: str, ca_key_pem: str) -> tuple[x509.Certificate, CaKey]:
    """The stored CA, checked: a CA certificate whose key is the one stored with it.

    EC or RSA (2048 bits or more): `make secrets` makes EC, but an operator
    may have stored the RSA CA of certificates made before it (README).
    """
    try:
        cert = x509.load_pem_x509_certificate(ca_pem.encode())
        key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    except ValueError as e:
        raise PkiError(f"the stored CA does not parse: {e}") from e
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise PkiError(f"the stored CA key is RSA {key.key_size}; at least 2048 bits are needed")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PkiError("the stored CA key is neither EC nor RSA")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as e:
        raise PkiError("the stored CA certificate has no basicConstraints") from e
    if not bc.ca:
        raise PkiError("the stored CA certificate is not a CA")
    if _spki(cert) != _spki(key):
        raise PkiError("the stored CA key does not belong to the stored CA certificate")
    return cert, key


def _spki(cert_or_key: x509.Certificate | CaKey) -> bytes:
    return cert_or_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def issue_node_cert(ca_pem: str, ca_key_pem: str, sans: list[x509.GeneralName], cluster: str,
                    days: int = NODE_DAYS) -> tuple[str, str]:
    """A node certificate signed by the CA; (cert_pem, key_pem)."""
    ca_cert, ca_key = load_ca(ca_pem, ca_key_pem)
    if not sans:
        raise PkiError("a node certificate needs at least one SAN")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    first_dns = next((n.value for n in sans if isinstance(n, x509.DNSName)), f"{cluster} node")
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tribune"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, cluster),
            x509.NameAttribute(NameOID.COMMON_NAME, first_dns),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def cert_sans(cert_pem: str) -> list[x509.GeneralName]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def info(cert_pem: str) -> CertInfo:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as e:
        raise PkiError(f"certificate does not parse: {e}") from e
    return CertInfo(
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        sans=tuple(san_text(n) for n in cert_sans(cert_pem)),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def check_pair(tls: dict[str, str], ca: dict[str, str] | None) -> list[str]:
    """Problems with a stored node certificate: key mismatch, wrong CA, bad chain."""
    problems: list[str] = []
    try:
        cert = x509.load_pem_x509_certificate(tls["cert_pem"].encode())
        key = serialization.load_pem_private_key(tls["key_pem"].encode(), password=None)
        tls_ca = x509.load_pem_x509_certificate(tls["ca_pem"].encode())
    except (ValueError, TypeError) as e:
        return [f"does not parse: {e}"]
    if _spki(cert) != _spki(key):
        problems.append("key_pem does not belong to cert_pem")
    try:
        cert.verify_directly_issued_by(tls_ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        problems.append(f"cert_pem is not signed by its ca_pem ({type(e).__name__})")
    if ca is not None:
        try:
            stored = x509.load_pem_x509_certificate(ca["ca_pem"].encode())
        except (ValueError, TypeError) as e:
            return problems + [f"the ca secret's ca_pem does not parse: {e}"]
        if stored != tls_ca:
            problems.append("its ca_pem is not the CA stored in the ca secret")
    return problems
