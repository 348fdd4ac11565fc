"""The small hardware interface of the TEE layer, and its software-simulation backend.

Everything that real TEE hardware (Intel SGX / TDX, AMD SEV-SNP) would provide and
that jointml cannot provide in software sits behind :class:`Platform`:

* ``sign_quote(body)``      -- the platform attestation key signs a quote body
  (on SGX: the quoting enclave with a PCK-certified key; on TDX: the TD quote);
* ``verify_quote_signature`` -- check a quote signature against a trusted platform
  public key (on hardware: the vendor's certificate chain / collateral);
* ``sealing_key(measurement, purpose)`` -- a key derived from a per-platform root
  secret and the enclave measurement (on SGX: ``EGETKEY`` with MRENCLAVE policy).

:class:`SoftwareSimulationPlatform` implements these with ordinary keys kept in a
directory of the machine (mode 0600): an Ed25519 *platform attestation key* and a
32-byte *sealing root secret*. This is a **SIMULATION**: anybody who can read that
directory can forge quotes and unseal data. It shows the protocols (real keys, real
signatures, real encryption, real process isolation), not hardware protection; every
quote it signs says ``"platform": "jointml-software-simulation"`` and
``"simulation": true``, and verifiers refuse it unless their policy says
``allow_simulation=True``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..core.errors import JointMLError, ParameterError

log = logging.getLogger("jointml.tee")

SIMULATION_PLATFORM = "jointml-software-simulation"
SIMULATION_LABEL = "SIMULATED TEE (software only, no hardware protection)"
ENV_STATE_DIR = "JOINTML_TEE_SIM_DIR"


class AttestationError(JointMLError, ValueError):
    """A quote was refused (bad signature, stale nonce, unknown measurement, policy)."""


def platform_id(public_key: bytes) -> str:
    """Short stable identifier of a platform attestation public key (hex)."""
    return hashlib.sha256(b"jointml-tee-platform|" + public_key).hexdigest()[:32]


class Platform:
    """What TEE hardware provides: quote signing and measurement-bound sealing keys."""

    name: str = "abstract"
    simulation: bool = True

    def public_key(self) -> bytes:
        """Raw public part of the platform attestation key (what verifiers trust)."""
        raise NotImplementedError

    @property
    def platform_id(self) -> str:
        return platform_id(self.public_key())

    def sign_quote(self, body: bytes) -> bytes:
        raise NotImplementedError

    def sealing_key(self, measurement: str, purpose: str) -> bytes:
        raise NotImplementedError

    @staticmethod
    def verify_quote_signature(public_key: bytes, body: bytes, signature: bytes) -> None:
        """Raise AttestationError unless `signature` is the platform key's signature of `body`."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
        except (InvalidSignature, ValueError):
            raise AttestationError("quote signature is invalid: not signed by the trusted platform attestation key "
                                   f"{platform_id(public_key)} (forged or tampered quote)") from None


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` (mode 0600) exactly once; concurrent creators agree on the winner."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        os.link(tmp, path)  # atomic, fails if another process created it first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def default_state_dir() -> Path:
    env = os.environ.get(ENV_STATE_DIR)
    return Path(env) if env else Path.home() / ".jointml" / "tee-simulation"


class SoftwareSimulationPlatform(Platform):
    """SIMULATION backend: a per-machine Ed25519 attestation key and sealing root in files.

    >>> import tempfile
    >>> p = SoftwareSimulationPlatform(tempfile.mkdtemp())
    >>> p.name, p.simulation
    ('jointml-software-simulation', True)
    >>> len(p.sealing_key("ab" * 32, "data")) == 32
    True
    """

    name = SIMULATION_PLATFORM
    simulation = True

    def __init__(self, state_dir: str | os.PathLike | None = None):
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = self.state_dir / "platform_attestation_key.pem"
        root_path = self.state_dir / "sealing_root.bin"
        if not key_path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            _write_private(key_path, pem)
            log.warning("%s: created platform attestation key in %s", SIMULATION_LABEL, self.state_dir)
        if not root_path.exists():
            _write_private(root_path, secrets.token_bytes(32))
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise AttestationError(f"{key_path} is not an Ed25519 key")
        self._key = key
        self._root = root_path.read_bytes()
        if len(self._root) != 32:
            raise AttestationError(f"{root_path} is corrupt (expected 32 bytes)")
        self._pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_key(self) -> bytes:
        return self._pub

    def sign_quote(self, body: bytes) -> bytes:
        return self._key.sign(body)

    def sealing_key(self, measurement: str, purpose: str) -> bytes:
        if not measurement or not purpose:
            raise ParameterError("sealing key needs a measurement and a purpose")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"jointml-tee-sealing-v1",
                    info=f"measurement={measurement}|purpose={purpose}".encode()).derive(self._root)

    def __repr__(self) -> str:
        return f"SoftwareSimulationPlatform({str(self.state_dir)!r}, id={self.platform_id}) [{SIMULATION_LABEL}]"


def load_platform(state_dir: str | os.PathLike | None = None) -> Platform:
    """The platform of this machine. Only the software simulation exists in jointml today;
    a hardware backend (SGX DCAP, TDX) would be selected here."""
    return SoftwareSimulationPlatform(state_dir)
