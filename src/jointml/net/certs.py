"""Development PKI: a cluster CA and one certificate per party (the `cryptography` package).

Each party certificate carries the party name as its common name and as a DNS
subject-alternative name; links verify that a peer's certificate names the party
it claims to be. Keys are ECDSA P-256. For production, issue certificates from your
own CA and point the cluster config at them.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..core.errors import ConfigError

PARTY_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")


def check_party_name(name: str) -> str:
    """Return `name` if it is a valid party name (also a DNS label for certificates).

    >>> check_party_name("bank-1")
    'bank-1'
    >>> check_party_name("1bank")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: invalid party name '1bank': use a letter followed by letters, digits or '-' (max 63 chars)
    """
    if not isinstance(name, str) or not PARTY_NAME_RE.match(name):
        raise ConfigError(
            f"invalid party name {name!r}: use a letter followed by letters, digits or '-' (max 63 chars)"
        )
    return name


@dataclass
class PartyCert:
    """The files of one party's identity: its certificate, its key and the cluster CA."""

    name: str
    cert: Path
    key: Path
    ca: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jointml cluster"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def create_ca(directory: str | os.PathLike[str], name: str = "jointml-dev-ca", days: int = 365) -> tuple[Path, Path]:
    """Create a CA key and self-signed certificate in `directory`; returns (cert, key) paths.

    >>> import tempfile
    >>> [p.name for p in create_ca(tempfile.mkdtemp())]
    ['ca.crt', 'ca.key']
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = d / "ca.crt", d / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def issue_party_cert(directory: str | os.PathLike[str], party: str, ca_cert: Path, ca_key: Path, days: int = 365) -> PartyCert:
    """Issue a certificate for `party` signed by the CA; writes `<party>.crt` and `<party>.key`.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> issue_party_cert(d, "bank", *create_ca(d)).cert.name
    'bank.crt'
    """
    check_party_name(party)
    d = Path(directory)
    ca = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    ca_k = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
    if not isinstance(ca_k, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"CA key {ca_key} is not an EC private key", field="ca_key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(party))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_k, hashes.SHA256())
    )
    cert_path, key_path = d / f"{party}.crt", d / f"{party}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return PartyCert(party, cert_path, key_path, Path(ca_cert))


def create_dev_pki(directory: str | os.PathLike[str], parties: list[str], days: int = 365) -> dict[str, PartyCert]:
    """A CA plus a certificate for each party, all in `directory`.

    >>> import tempfile
    >>> certs = create_dev_pki(tempfile.mkdtemp(), ["alice", "bob"])
    >>> sorted(certs)
    ['alice', 'bob']
    """
    ca_cert, ca_key = create_ca(directory, days=days)
    return {p: issue_party_cert(directory, p, ca_cert, ca_key, days) for p in parties}
