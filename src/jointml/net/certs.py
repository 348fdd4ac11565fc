"""Cluster PKI: a CA, per-organisation keys and certificate requests (the `cryptography` package).

A real deployment: a CA operator runs `create_ca` (kept offline); each organisation
runs `create_request` and keeps its private key (only the CSR leaves); the CA
operator runs `sign_request`, which takes the party name from the CSR's DNS
subject-alternative name and checks it with `check_party_name`. Every party
certificate names its party as a DNS SAN and as common name; a peer's identity is
its SAN names, and the common name only when the certificate has no SAN
(`cert_party_names`). `fingerprint` gives the SHA-256 pin that `cluster.yaml` may
carry per party. `create_dev_pki` makes everything in one folder, for development.

Nothing here overwrites an existing CA, key, CSR or certificate unless `force=True`:
re-creating a CA silently would break every certificate it signed.

Adversary model: the CA key is the root of trust of the whole cluster; whoever holds
it can mint a certificate for any party name (pinning fingerprints limits that). A
party's key never leaves the machine that generated it with `create_request`. Keys
are ECDSA P-256, stored unencrypted with mode 0600.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..core.errors import ConfigError, CryptoError

PARTY_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
#: Default lifetime of a party certificate signed by `sign_request`.
PARTY_DAYS = 365
#: Default lifetime of a CA certificate made by `create_ca`.
CA_DAYS = 5 * 365
_FP_RE = re.compile(r"^([0-9a-f]{64})$")


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


def cert_party_names(cert: x509.Certificate | x509.CertificateSigningRequest) -> set[str]:
    """The party names a certificate (or CSR) asserts: its DNS SANs, or its common name if it has no SAN.

    The common name is ignored when a SAN is present (as TLS hostname checks do), so a
    certificate with SAN 'bank' and CN 'partner' is 'bank' only.

    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> csr = x509.CertificateSigningRequestBuilder().subject_name(_name("partner")).add_extension(
    ...     x509.SubjectAlternativeName([x509.DNSName("bank")]), critical=False).sign(key, hashes.SHA256())
    >>> sorted(cert_party_names(csr))
    ['bank']
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    return set(san.get_values_for_type(x509.DNSName))


def normalize_fingerprint(fp: str, field: str = "fingerprint") -> str:
    """A pin in canonical form `sha256:<64 lowercase hex>` (colons and case are ignored).

    >>> normalize_fingerprint("SHA256:" + "AB:" * 31 + "AB")[:12]
    'sha256:ababa'
    >>> normalize_fingerprint("md5:00")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: field 'fingerprint': bad certificate fingerprint 'md5:00': want 'sha256:' and 64 hex digits
    """
    t = fp.strip().lower() if isinstance(fp, str) else ""
    t = (t[len("sha256:"):] if t.startswith("sha256:") else t).replace(":", "")
    m = _FP_RE.match(t)
    if m is None:
        raise ConfigError(f"bad certificate fingerprint {fp!r}: want 'sha256:' and 64 hex digits", field=field)
    return "sha256:" + m.group(1)


def fingerprint_der(der: bytes) -> str:
    """The pin of a DER-encoded certificate: `sha256:` and the SHA-256 of the DER bytes in hex.

    >>> fingerprint_der(b"")[:15]
    'sha256:e3b0c442'
    """
    return "sha256:" + hashlib.sha256(der).hexdigest()


def fingerprint(cert_path: str | os.PathLike[str]) -> str:
    """The pin of a PEM certificate file (what `jointml certs fingerprint` prints).

    >>> import tempfile
    >>> fingerprint(create_ca(tempfile.mkdtemp())[0]).startswith("sha256:")
    True
    """
    cert = _load_cert(Path(cert_path))
    return fingerprint_der(cert.public_bytes(serialization.Encoding.DER))


@dataclass
class PartyCert:
    """The files of one party's identity: its certificate, its key and the cluster CA."""

    name: str
    cert: Path
    key: Path
    ca: Path


def _refuse_existing(paths: list[Path], force: bool) -> None:
    """Refuse before writing anything if one of `paths` exists (unless `force`)."""
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise ConfigError(
            f"refusing to overwrite {', '.join(existing)}: replacing a CA or key breaks the certificates and "
            "links that use it (pass --force / force=True to replace it deliberately)"
        )


def _write(path: Path, data: bytes, force: bool, mode: int = 0o644) -> None:
    # O_EXCL: even a file created between the check and the write is never replaced.
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        _refuse_existing([path], False)
        raise
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, force: bool) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(path, data, force, 0o600)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jointml cluster"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate not found: {path}") from None
    except ValueError as e:
        raise CryptoError(f"{path} is not a PEM certificate: {e}") from None


def _load_ca(ca_cert: Path, ca_key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = _load_cert(Path(ca_cert))
    try:
        ca_k = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"CA key not found: {ca_key}", field="ca_key") from None
    if not isinstance(ca_k, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"CA key {ca_key} is not an EC private key", field="ca_key")
    if ca_k.public_key().public_numbers() != ca.public_key().public_numbers():  # type: ignore[union-attr]
        raise ConfigError(f"CA key {ca_key} does not belong to the CA certificate {ca_cert}", field="ca_key")
    return ca, ca_k


def create_ca(directory: str | os.PathLike[str], name: str = "jointml-dev-ca", days: int = CA_DAYS,
              force: bool = False) -> tuple[Path, Path]:
    """Create a CA key and self-signed certificate in `directory`; returns (cert, key) paths.

    Refuses (`ConfigError`) if `ca.crt` or `ca.key` already exists, unless `force`.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> [p.name for p in create_ca(d)]
    ['ca.crt', 'ca.key']
    >>> create_ca(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: refusing to overwrite .../ca.crt, .../ca.key: ...
    """
    d = Path(directory)
    cert_path, key_path = d / "ca.crt", d / "ca.key"
    _refuse_existing([cert_path, key_path], force)
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
    _write_key(key, key_path, force)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), force)
    return cert_path, key_path


def _party_cert(public_key: ec.EllipticCurvePublicKey, party: str, ca: x509.Certificate,
                ca_k: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    """A party certificate: SAN and CN = `party`, TLS client+server use, never past the CA's own expiry."""
    now = _dt.datetime.now(_dt.timezone.utc)
    not_after = min(now + _dt.timedelta(days=days), ca.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(party))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_k, hashes.SHA256())
    )


def issue_party_cert(directory: str | os.PathLike[str], party: str, ca_cert: Path, ca_key: Path, days: int = 365,
                     force: bool = False) -> PartyCert:
    """Issue a key and certificate for `party` signed by the CA; writes `<party>.crt` and `<party>.key`.

    For development only: the key is made where the CA key is. In a deployment use
    `create_request` (at the party) and `sign_request` (at the CA operator).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> issue_party_cert(d, "bank", *create_ca(d)).cert.name
    'bank.crt'
    """
    check_party_name(party)
    d = Path(directory)
    cert_path, key_path = d / f"{party}.crt", d / f"{party}.key"
    _refuse_existing([cert_path, key_path], force)
    ca, ca_k = _load_ca(Path(ca_cert), Path(ca_key))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _party_cert(key.public_key(), party, ca, ca_k, days)
    _write_key(key, key_path, force)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), force)
    return PartyCert(party, cert_path, key_path, Path(ca_cert))


def create_request(directory: str | os.PathLike[str], party: str, force: bool = False) -> tuple[Path, Path]:
    """At one organisation: a new private key and a CSR naming `party` (SAN and CN); returns (csr, key) paths.

    Writes `<party>.key` (mode 0600: it never leaves this machine) and `<party>.csr`
    (sent to the CA operator). Refuses to replace an existing key unless `force`.

    >>> import tempfile
    >>> [p.name for p in create_request(tempfile.mkdtemp(), "bank")]
    ['bank.csr', 'bank.key']
    """
    check_party_name(party)
    d = Path(directory)
    csr_path, key_path = d / f"{party}.csr", d / f"{party}.key"
    _refuse_existing([csr_path, key_path], force)
    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(party))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key, key_path, force)
    _write(csr_path, csr.public_bytes(serialization.Encoding.PEM), force)
    return csr_path, key_path


def sign_request(ca_dir: str | os.PathLike[str], csr_path: str | os.PathLike[str], out: str | os.PathLike[str],
                 days: int = PARTY_DAYS, force: bool = False) -> tuple[str, Path]:
    """At the CA operator: sign a CSR with `ca_dir`'s `ca.crt`/`ca.key`; returns (party, cert path).

    The party name is the CSR's single DNS subject-alternative name (checked with
    `check_party_name`; a CSR without one, or with several, is refused); the CSR's
    signature must verify. The certificate never outlives the CA certificate.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = create_ca(d / "ca")
    >>> csr, _ = create_request(d / "bank", "bank")
    >>> sign_request(d / "ca", csr, d / "bank" / "bank.crt")[0]
    'bank'
    """
    ca_dir, csr_file, out_path = Path(ca_dir), Path(csr_path), Path(out)
    _refuse_existing([out_path], force)
    ca, ca_k = _load_ca(ca_dir / "ca.crt", ca_dir / "ca.key")
    try:
        csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate request not found: {csr_file}") from None
    except ValueError as e:
        raise CryptoError(f"{csr_file} is not a PEM certificate request: {e}") from None
    if not csr.is_signature_valid:
        raise CryptoError(f"{csr_file}: the request's signature does not verify")
    try:
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise ConfigError(f"{csr_file}: the request has no DNS subject-alternative name naming the party") from None
    names = sorted(cert_party_names(csr))
    if len(names) != 1:
        raise ConfigError(f"{csr_file}: the request must name exactly one party as DNS SAN, got {names}")
    party = check_party_name(names[0])
    pub = csr.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise CryptoError(f"{csr_file}: only EC (P-256) keys are accepted")
    cert = _party_cert(pub, party, ca, ca_k, days)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _write(out_path, cert.public_bytes(serialization.Encoding.PEM), force)
    return party, out_path


def create_dev_pki(directory: str | os.PathLike[str], parties: list[str], days: int = 365,
                   force: bool = False) -> dict[str, PartyCert]:
    """A CA plus a key and certificate for each party, all in `directory` (development only).

    Refuses, before writing anything, if the CA or any party's key or certificate
    already exists there, unless `force`.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> certs = create_dev_pki(d, ["alice", "bob"])
    >>> sorted(certs)
    ['alice', 'bob']
    >>> create_dev_pki(d, ["carol"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: refusing to overwrite .../ca.crt, .../ca.key: ...
    """
    for p in parties:
        check_party_name(p)
    d = Path(directory)
    _refuse_existing([d / "ca.crt", d / "ca.key"] + [d / f"{p}.{ext}" for p in parties for ext in ("crt", "key")], force)
    ca_cert, ca_key = create_ca(directory, days=days, force=force)
    return {p: issue_party_cert(directory, p, ca_cert, ca_key, days, force) for p in parties}
