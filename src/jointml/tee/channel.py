"""Attested secure channels: X25519 + HKDF-SHA256 + AES-256-GCM with sequence numbers.

A data owner verifies an enclave's quote, then runs an ephemeral X25519 exchange with
the enclave's *attested* X25519 key. Both sides derive two directional AES-GCM keys
from the shared secret and a transcript (party name, both public keys, measurement,
and a fresh nonce the enclave picks per session, so a replayed session request gives
a session with other keys into which no recorded record can be replayed).
Every record carries a sequence number that is part of the GCM nonce and associated
data; a receiver accepts only the next expected number, so replayed, reordered or
reflected records are refused, and any bit flip fails authentication.

Parties authenticate to the enclave with an Ed25519 identity key listed in the
enclave's measured configuration: they sign the session transcript.

Enclave-to-enclave links (TECC, :mod:`jointml.tee.tecc`) are keyed differently: each
enclave contributes a *fresh ephemeral* X25519 key per connection, signed with its
attested Ed25519 key over :func:`link_offer` (run id, sender and receiver roles, the
ephemeral key), so the untrusted host can neither substitute its own key nor make two
connections share keys; :func:`link_channel` derives one key per direction from the
ephemeral-ephemeral secret and :func:`link_transcript` (run id, both roles, both
ephemeral keys). A reconnection is a new handshake with new keys: a sequence number
never restarts under a key that was already used, so no (key, nonce) pair repeats and
no record of an earlier connection is accepted on a new one.

Also here: :func:`seal_to` / :func:`open_sealed`, one-shot ECIES-style encryption to an
attested X25519 key (used to hand the cluster data key to a newly attested enclave),
and :func:`pack` / :func:`unpack`, the wire-format encoding of records (never pickle).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Sequence

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..core import wire
from ..core.errors import JointMLError

_SEQ = struct.Struct(">Q")
_MAX_SEQ = 2**64 - 1
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class ChannelError(JointMLError, ValueError):
    """A record was replayed, reordered, tampered with, or a handshake failed."""


def x25519_public(priv: X25519PrivateKey) -> bytes:
    return priv.public_key().public_bytes(*_RAW)


def ed25519_public(priv: Ed25519PrivateKey) -> bytes:
    return priv.public_key().public_bytes(*_RAW)


def verify_ed25519(public_key: bytes, signature: bytes, data: bytes, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        raise ChannelError(f"{what}: signature is invalid") from None


class PartyIdentity:
    """A party's long-term Ed25519 identity key (its public part goes into enclave configs)."""

    def __init__(self, name: str, key: Ed25519PrivateKey | None = None):
        self.name = name
        self._key = key or Ed25519PrivateKey.generate()
        self.public_key = ed25519_public(self._key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM, for the party's own storage (mode 0600)."""
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    @classmethod
    def from_pem(cls, name: str, pem: bytes) -> "PartyIdentity":
        """The identity `private_pem` stored.

        >>> me = PartyIdentity("bank")
        >>> PartyIdentity.from_pem("bank", me.private_pem()).public_key == me.public_key
        True
        """
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except ValueError:
            raise ChannelError(f"the identity key of {name!r} is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ChannelError(f"the identity key of {name!r} is not an Ed25519 key")
        return cls(name, key)


def session_transcript(party: str, client_pub: bytes, enclave_pub: bytes, measurement: str) -> bytes:
    return b"jointml-tee-session-v1|" + hashlib.sha256(
        party.encode() + b"\0" + client_pub + enclave_pub + measurement.encode()).digest()


class SecureChannel:
    """One end of an established channel. Not thread-safe: one caller per direction."""

    def __init__(self, send_key: bytes, recv_key: bytes, label: bytes):
        self._send = AESGCM(send_key)
        self._recv = AESGCM(recv_key)
        self._label = label
        self.send_seq = 0
        self.recv_seq = 0

    def encrypt(self, plaintext: bytes) -> bytes:
        if self.send_seq >= _MAX_SEQ:  # never wrap: a wrapped counter would reuse a GCM nonce
            raise ChannelError("channel exhausted its sequence numbers: open a new channel (new keys)")
        seq = _SEQ.pack(self.send_seq)
        self.send_seq += 1
        return seq + self._send.encrypt(seq + b"\0\0\0\0", plaintext, self._label + seq)

    def decrypt(self, record: bytes) -> bytes:
        if len(record) < _SEQ.size + 16:
            raise ChannelError("truncated channel record")
        (seq,) = _SEQ.unpack_from(record)
        if seq != self.recv_seq:
            raise ChannelError(f"channel record refused: sequence number {seq}, expected {self.recv_seq} "
                               "(replayed or reordered record)")
        try:
            pt = self._recv.decrypt(record[:8] + b"\0\0\0\0", bytes(record[8:]), self._label + record[:8])
        except InvalidTag:
            raise ChannelError("channel record refused: authentication failed (tampered record or wrong key)") from None
        self.recv_seq += 1
        return pt


def _directional_keys(shared: bytes, transcript: bytes, info: bytes = b"jointml-tee-channel-v1") -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=hashlib.sha256(transcript).digest(),
               info=info + b"|" + transcript).derive(shared)
    return okm[:32], okm[32:]  # client->enclave, enclave->client


def link_offer(run_id: str, sender: str, receiver: str, eph_pub: bytes) -> bytes:
    """What an enclave signs with its attested Ed25519 key to offer a fresh ephemeral key to a peer.

    Binding the run id and both roles stops the host from moving an offer to another
    run, another link or the other direction.

    >>> link_offer("r1", "p0", "p1", bytes(32))[:26]
    b'jointml-tecc-link-offer-v2'
    """
    return b"jointml-tecc-link-offer-v2|" + hashlib.sha256(
        run_id.encode() + b"\0" + sender.encode() + b"\0" + receiver.encode() + b"\0" + eph_pub).digest()


def link_transcript(run_id: str, me: str, my_eph: bytes, peer: str, peer_eph: bytes) -> bytes:
    """The transcript both ends of a link derive their keys from (the same at both ends).

    >>> a, b = bytes(32), bytes([1]) * 32
    >>> link_transcript("r", "p0", a, "p1", b) == link_transcript("r", "p1", b, "p0", a)
    True
    """
    (lo, lo_eph), (hi, hi_eph) = sorted([(me, my_eph), (peer, peer_eph)])
    return b"jointml-tecc-link-v2|" + hashlib.sha256(
        run_id.encode() + b"\0" + lo.encode() + b"\0" + lo_eph + hi.encode() + b"\0" + hi_eph).digest()


def link_channel(me: str, peer: str, my_eph: X25519PrivateKey, peer_eph: bytes, run_id: str) -> SecureChannel:
    """A channel between two enclaves from both fresh ephemeral keys (signatures checked by the caller).

    One key per direction: the side whose role sorts first sends with the first one.

    >>> ka, kb = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    >>> a = link_channel("p0", "p1", ka, x25519_public(kb), "run")
    >>> b = link_channel("p1", "p0", kb, x25519_public(ka), "run")
    >>> b.decrypt(a.encrypt(b"hi")), a.decrypt(b.encrypt(b"yo"))
    (b'hi', b'yo')
    """
    try:
        shared = my_eph.exchange(X25519PublicKey.from_public_bytes(peer_eph))
    except ValueError:  # malformed or low-order point
        raise ChannelError(f"bad ephemeral X25519 key from {peer!r}") from None
    t = link_transcript(run_id, me, x25519_public(my_eph), peer, peer_eph)
    k_lo, k_hi = _directional_keys(shared, t, b"jointml-tecc-link-v2")
    return SecureChannel(k_lo, k_hi, t) if me < peer else SecureChannel(k_hi, k_lo, t)


def client_channel(client_priv: X25519PrivateKey, enclave_pub: bytes, transcript: bytes) -> SecureChannel:
    c2e, e2c = _directional_keys(client_priv.exchange(X25519PublicKey.from_public_bytes(enclave_pub)), transcript)
    return SecureChannel(c2e, e2c, transcript)


def enclave_channel(enclave_priv: X25519PrivateKey, client_pub: bytes, transcript: bytes) -> SecureChannel:
    try:
        peer = X25519PublicKey.from_public_bytes(client_pub)
    except ValueError:
        raise ChannelError("bad client X25519 public key") from None
    c2e, e2c = _directional_keys(enclave_priv.exchange(peer), transcript)
    return SecureChannel(e2c, c2e, transcript)


def seal_to(recipient_pub: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt once to an X25519 public key: returns (ephemeral public key, ciphertext)."""
    eph = X25519PrivateKey.generate()
    eph_pub = x25519_public(eph)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
               info=b"jointml-tee-seal-to-v1").derive(eph.exchange(X25519PublicKey.from_public_bytes(recipient_pub)))
    return eph_pub, AESGCM(key).encrypt(b"\0" * 12, plaintext, aad)


def open_sealed(recipient_priv: X25519PrivateKey, eph_pub: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        shared = recipient_priv.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + x25519_public(recipient_priv),
                   info=b"jointml-tee-seal-to-v1").derive(shared)
        return AESGCM(key).decrypt(b"\0" * 12, ciphertext, aad)
    except (InvalidTag, ValueError):
        raise ChannelError("sealed message refused: authentication failed (tampered or not for this key)") from None


def pack(kind: str, meta: dict | None = None, arrays: Sequence[np.ndarray] = ()) -> bytes:
    """Encode a record payload with the framework wire format (binary header + raw arrays)."""
    return b"".join(bytes(b) for b in wire.encode(kind, "tee", 0, arrays, meta or {}))


def unpack(data: bytes) -> wire.Message:
    return wire.decode(data)


def as_bytes_array(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8).copy()
