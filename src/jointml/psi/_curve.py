"""Curve25519 kernels for ECDH-PSI: hash-to-curve, scalar multiplication, point checks.

These functions run inside the party's local process-pool workers (see
`jointml.core.workers`), so this module imports only the standard library, numpy, gmpy2 and `cryptography`:
a spawned worker starts in a fraction of a second.

Group and encoding
------------------
Points are X25519 u-coordinates, 32 bytes little-endian, as produced by OpenSSL's
X25519 (RFC 7748) through the `cryptography` package. A party's secret is a fresh
32-byte X25519 private key; OpenSSL clamps it to k = 2^254 + 8*m, so every product
k*P lands in the prime-order subgroup (the multiple of 8 kills the cofactor of the
curve (8) and of its twist (4)). Clamped scalars commute: k_a*(k_b*P) = k_b*(k_a*P),
which is all ECDH-PSI needs.

Hash to curve (why not "any 32 bytes is a public key")
------------------------------------------------------
X25519 accepts every 32-byte string, but about half of them are points of the
*twist*, and a scalar multiple of a twist point is again on the twist. If ids were
hashed straight to a u-coordinate, the peer would see, for every id it does not
hold, whether H(id) is on the curve or on the twist: one bit per id, which is enough
to prune a dictionary of candidate ids (phone numbers, national ids) by half per
received point. We therefore map only to the curve, by try-and-increment:

    h_j = SHA-512("jointml-psi-h2c-v1" || j || digest),  j = 0, 1, ...

take each 32-byte half of h_j in turn, clear its top bit, reject it if >= p, and keep the
first u_j with u^3 + A u^2 + u a non-zero square mod p (a Jacobi symbol via gmpy2,
~2 us). Modelling SHA-512 as a random oracle, the output is uniform over
the curve's u-coordinates, so k*H(id) is uniform in the prime-order subgroup: the
random-oracle hash-to-group that the DDH proof of ECDH-PSI needs. Expected 2 tries.
The number of tries depends on the id; that is visible only as local timing inside
the owner's machine, never on the wire (batches are sent whole).

Validation of received points
-----------------------------
Every u received from a peer is checked to be canonical (< p), on the curve (not
the twist) and not of low order (OpenSSL returns the all-zero secret for those,
which `cryptography` reports as an error). With honest peers these never fail; a
failure names the peer.

>>> d = bytes(32)                                  # one digest
>>> pt = hash_to_curve(d)
>>> len(pt), on_curve(int.from_bytes(pt, "little"))
(32, True)
>>> ka, kb = new_secret(), new_secret()
>>> ab = exp_received(h2c_exp(d, ka), kb, out_bytes=32)
>>> ba = exp_received(h2c_exp(d, kb), ka, out_bytes=32)
>>> ab == ba
True
"""

from __future__ import annotations

import hashlib
import secrets

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..core.errors import CryptoError

P = 2**255 - 19
A = 486662
POINT_BYTES = 32
#: The ids' doubly-masked values are compared on this many bytes: n_a * n_b / 2^128
#: is the chance of one false match (2^-88 at 10^6 x 10^6).
TAG_BYTES = 16
#: ids per pool task: ~50-100 ms of curve work, small enough to balance the workers.
CHUNK = 2048
H2C_DST = b"jointml-psi-h2c-v1"
_P = gmpy2.mpz(P)
_MASK255 = gmpy2.mpz((1 << 255) - 1)
_MAX_TRIES = 256  # each try fails with probability ~1/2: 2^-256, never reached


def new_secret() -> bytes:
    """A fresh X25519 private key (32 bytes from `secrets`), one per PSI run and peer.

    >>> len(new_secret()), new_secret() != new_secret()
    (32, True)
    """
    return secrets.token_bytes(32)


def on_curve(u: int) -> bool:
    """Is `u` the u-coordinate of a point of Curve25519 (not its twist), u != 0?

    >>> on_curve(9), on_curve(0)  # 9: the base point
    (True, False)
    """
    u = gmpy2.mpz(u)
    return gmpy2.jacobi((u * (u * (u + A) + 1)) % _P, _P) == 1


def _h2c_u(digest: bytes, sha512=hashlib.sha512, jacobi=gmpy2.jacobi, from_bytes=gmpy2.mpz.from_bytes) -> bytes:
    for j in range(_MAX_TRIES // 2):
        h = sha512(H2C_DST + j.to_bytes(1, "little") + digest).digest()
        # Two candidates per SHA-512 call: the low 255 bits of each half are uniform
        # on [0, 2^255); the 19 values >= p are rejected, so u is exactly uniform in F_p.
        for half in (h[:32], h[32:]):
            u = from_bytes(half, "little") & _MASK255
            if u < _P and jacobi((u * (u * (u + A) + 1)) % _P, _P) == 1:
                return u.to_bytes(32, "little")
    raise CryptoError("hash to curve failed")  # probability 2^-256


def hash_to_curve(digests: bytes) -> bytes:
    """Map each 32-byte digest to a curve point (unmasked; never sent). For tests and docs.

    >>> on_curve(int.from_bytes(hash_to_curve(bytes(range(32))), "little"))
    True
    """
    return b"".join(_h2c_u(digests[i : i + 32]) for i in range(0, len(digests), 32))


_key_cache: tuple[bytes, X25519PrivateKey] | None = None


def _key(secret: bytes) -> X25519PrivateKey:
    # Workers get the secret with every chunk (32 bytes); building the key object once
    # per worker saves ~1 us per multiplication. Read and replace the cache as one
    # tuple: simulated parties are threads of one process and must never get each
    # other's key.
    global _key_cache
    cached = _key_cache
    if cached is None or cached[0] != secret:
        cached = (secret, X25519PrivateKey.from_private_bytes(secret))
        _key_cache = cached
    return cached[1]


def forget() -> None:
    """Drop the cached key object (called when a PSI run ends).

    >>> forget()
    """
    global _key_cache
    _key_cache = None


def h2c_exp(digests: bytes, secret: bytes) -> bytes:
    """k * H(d) for each 32-byte digest d: the owner's masked points, 32 bytes each.

    >>> len(h2c_exp(bytes(64), new_secret())) == 2 * POINT_BYTES
    True
    """
    exchange = _key(secret).exchange
    from_bytes = X25519PublicKey.from_public_bytes
    out = bytearray(len(digests))
    for i in range(0, len(digests), 32):
        out[i : i + 32] = exchange(from_bytes(_h2c_u(digests[i : i + 32])))
    return bytes(out)


class InvalidPoint(CryptoError):
    """A received point failed validation; `index` is its position in the chunk (a `CryptoError`).

    >>> e = InvalidPoint(3, "is not on Curve25519")
    >>> str(e), e.index
    ('point #3 is not on Curve25519', 3)
    """

    def __init__(self, index: int, why: str):
        super().__init__(f"point #{index} {why}")
        self.index = index
        self.why = why

    def __reduce__(self):  # raised in a pool worker: rebuilt in the party with both fields
        return (InvalidPoint, (self.index, self.why))


def exp_received(points: bytes, secret: bytes, out_bytes: int = TAG_BYTES) -> bytes:
    """k * Q for each received point Q, validated; keeps the first `out_bytes` of each result.

    Canonical range is checked (vectorised) by `check_canonical` before this; here each
    u is checked to be on the curve, and low-order points are caught by OpenSSL.

    Keys commute, so both orders of masking give the same tag:

    >>> a, b, d = new_secret(), new_secret(), bytes(32)
    >>> exp_received(h2c_exp(d, a), b) == exp_received(h2c_exp(d, b), a)
    True
    """
    exchange = _key(secret).exchange
    from_bytes = X25519PublicKey.from_public_bytes
    jacobi, mpz = gmpy2.jacobi, gmpy2.mpz
    n = len(points) // 32
    out = bytearray(n * out_bytes)
    for i in range(n):
        b = points[32 * i : 32 * i + 32]
        u = mpz(int.from_bytes(b, "little"))
        if jacobi((u * (u * (u + A) + 1)) % _P, _P) != 1:
            raise InvalidPoint(i, "is not on Curve25519 (twist point or u = 0)")
        try:
            s = exchange(from_bytes(b))
        except ValueError:
            raise InvalidPoint(i, "has small order") from None
        out[i * out_bytes : (i + 1) * out_bytes] = s[:out_bytes]
    return bytes(out)


_TOP = np.uint64((1 << 63) - 1)
_ONES = np.uint64((1 << 64) - 1)
_LOW_P = np.uint64((1 << 64) - 19)


def check_canonical(points: np.ndarray) -> int:
    """Index of the first u-coordinate >= p in an (n, 32) uint8 array, or -1 (vectorised).

    >>> pts = np.zeros((2, 32), dtype=np.uint8); pts[1] = 255
    >>> check_canonical(pts)
    1
    """
    if points.shape[0] == 0:
        return -1
    w = np.ascontiguousarray(points).view("<u8")  # (n, 4) little-endian 64-bit words
    bad = (w[:, 3] > _TOP) | ((w[:, 3] == _TOP) & (w[:, 2] == _ONES) & (w[:, 1] == _ONES) & (w[:, 0] >= _LOW_P))
    idx = np.flatnonzero(bad)
    return int(idx[0]) if idx.size else -1
