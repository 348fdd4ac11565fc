"""Sealing (data at rest bound to a measurement) and data-key encryption.

``seal(platform, measurement, purpose, data)`` encrypts with AES-256-GCM under a key
the platform derives from the measurement and purpose (see
:meth:`Platform.sealing_key`); the associated data binds measurement, purpose and the
caller's context, so a different program (another measurement), another purpose, or a
modified ciphertext cannot be unsealed: all raise :class:`SealingError`.

``encrypt_blob`` / ``decrypt_blob`` do the same with an explicit 32-byte key: the
cluster's shared *data key*, which only attested enclaves hold. Every byte a TEE job
stores outside an enclave goes through one of the two.

Blob layout: ``magic(4) | header length(2) | JSON header | nonce(12) | ciphertext+tag``.
"""

from __future__ import annotations

import json
import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..core.errors import JointMLError
from .platform import Platform

_MAGIC_SEAL = b"JTS1"
_MAGIC_BLOB = b"JTB1"
_H = struct.Struct(">H")


class SealingError(JointMLError, ValueError):
    """A sealed blob or data-key ciphertext cannot be opened (other program, tampered, wrong context)."""


def _frame(magic: bytes, header: dict, nonce: bytes, ct: bytes) -> bytes:
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return magic + _H.pack(len(h)) + h + nonce + ct


def _parse(magic: bytes, blob: bytes, what: str) -> tuple[dict, bytes, bytes, bytes]:
    blob = bytes(blob)
    if len(blob) < 6 or blob[:4] != magic:
        raise SealingError(f"{what}: not a jointml {what} (bad magic)")
    (hl,) = _H.unpack_from(blob, 4)
    if len(blob) < 6 + hl + 12 + 16:
        raise SealingError(f"{what}: truncated")
    hb = blob[6:6 + hl]
    try:
        header = json.loads(hb)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SealingError(f"{what}: malformed header") from None
    if not isinstance(header, dict):
        raise SealingError(f"{what}: malformed header")
    return header, hb, blob[6 + hl:6 + hl + 12], blob[6 + hl + 12:]


def seal(platform: Platform, measurement: str, purpose: str, plaintext: bytes, context: bytes = b"") -> bytes:
    key = platform.sealing_key(measurement, purpose)
    header = {"measurement": measurement, "purpose": purpose, "platform": platform.name,
              "simulation": platform.simulation}
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    nonce = secrets.token_bytes(12)
    ct = AESGCM(key).encrypt(nonce, bytes(plaintext), b"jointml-seal-v1|" + h + b"|" + context)
    return _frame(_MAGIC_SEAL, header, nonce, ct)


def unseal(platform: Platform, measurement: str, purpose: str, blob: bytes, context: bytes = b"") -> bytes:
    header, hb, nonce, ct = _parse(_MAGIC_SEAL, blob, "sealed blob")
    if header.get("measurement") != measurement:
        raise SealingError(f"cannot unseal: blob was sealed by measurement {str(header.get('measurement'))[:16]}..., "
                           f"this enclave is {measurement[:16]}... (a different program cannot unseal)")
    if header.get("purpose") != purpose:
        raise SealingError(f"cannot unseal: blob was sealed for purpose {header.get('purpose')!r}, not {purpose!r}")
    key = platform.sealing_key(measurement, purpose)
    try:
        return AESGCM(key).decrypt(nonce, ct, b"jointml-seal-v1|" + hb + b"|" + context)
    except InvalidTag:
        raise SealingError("cannot unseal: authentication failed (tampered ciphertext, other platform or context)") from None


def new_data_key() -> bytes:
    return secrets.token_bytes(32)


def encrypt_blob(key: bytes, plaintext: bytes, context: str) -> bytes:
    header = {"context": context}
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    nonce = secrets.token_bytes(12)
    return _frame(_MAGIC_BLOB, header, nonce, AESGCM(key).encrypt(nonce, bytes(plaintext), b"jointml-blob-v1|" + h))


def decrypt_blob(key: bytes, blob: bytes, context: str) -> bytes:
    header, hb, nonce, ct = _parse(_MAGIC_BLOB, blob, "data blob")
    if header.get("context") != context:
        raise SealingError(f"data blob is for {header.get('context')!r}, expected {context!r} (blob swapped?)")
    try:
        return AESGCM(key).decrypt(nonce, ct, b"jointml-blob-v1|" + hb)
    except InvalidTag:
        raise SealingError(f"data blob {context!r}: authentication failed (tampered ciphertext or wrong data key)") from None
