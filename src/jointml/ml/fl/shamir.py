"""Shamir secret sharing over the prime field GF(2^521 − 1), for short secrets (keys, seeds).

Secure aggregation shares each client's mask key and self-mask seed among its neighbours
so that the aggregator can remove the masks of a client that dropped (or unmask a survivor)
from any `t` shares, while fewer than `t` reveal nothing.

Field: p = 2^521 − 1 (a Mersenne prime), so one field element holds a secret of up to
65 bytes (an X25519 private key is 32). A share is the pair (x, f(x)) for a random
polynomial f of degree t − 1 with f(0) = the secret; x is a public point (the holder's
index + 1). Coefficients come from `secrets` (the OS CSPRNG).

Adversary model: information-theoretic; any t − 1 shares are uniform and independent of
the secret. Reconstruction does not detect a wrong share by itself: callers check the
result (secure aggregation compares a reconstructed key with its public key and a seed
with its commitment, and each share with its hash commitment).

>>> shares = split(b"k" * 32, 2, [1, 2, 3])
>>> reconstruct({1: shares[0], 3: shares[2]}, 2, 32) == b"k" * 32
True
"""

from __future__ import annotations

import secrets
from typing import Mapping, Sequence

from ...core.errors import CryptoError, ParameterError

__all__ = ["PRIME", "SHARE_BYTES", "split", "reconstruct", "share_to_bytes", "share_from_bytes"]

PRIME = (1 << 521) - 1
SHARE_BYTES = 66  # ceil(521 / 8)
MAX_SECRET_BYTES = 65


def split(secret: bytes, t: int, xs: Sequence[int]) -> list[int]:
    """Shares f(x) for each public point in `xs` (distinct, in [1, p)), any `t` of which give `secret`.

    >>> len(split(b"seed", 2, [1, 2, 3]))
    3
    """
    if len(secret) > MAX_SECRET_BYTES:
        raise ParameterError(f"secret of {len(secret)} bytes; at most {MAX_SECRET_BYTES}", field="secret")
    if not 1 <= t <= len(xs):
        raise ParameterError(f"threshold {t} must be in [1, {len(xs)}] (the number of shares)", field="threshold")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ParameterError("share points must be distinct and in [1, p)", field="xs")
    coeffs = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(t - 1)]
    coeffs.reverse()
    out = []
    for x in xs:
        y = 0
        for c in coeffs:  # Horner, reduced once at the end (points are small: y grows by log2(x) bits a step)
            y = y * x + c
        out.append(y % PRIME)
    return out


def reconstruct(shares: Mapping[int, int], t: int, nbytes: int) -> bytes:
    """The secret (`nbytes` long) from at least `t` shares {x: f(x)}; uses the first `t` points.

    Raises `CryptoError` when fewer than `t` shares are given or the result does not fit
    `nbytes` (a sign of wrong shares).

    >>> s = split(b"abc", 3, [1, 2, 3, 4])
    >>> reconstruct({2: s[1], 3: s[2], 4: s[3]}, 3, 3)
    b'abc'
    """
    if len(shares) < t:
        raise CryptoError(f"{len(shares)} shares, at least {t} needed", field="shares")
    pts = sorted(shares.items())[:t]
    xs = [x for x, _ in pts]
    # Lagrange at 0 with one field inversion: acc = Σ y_i·num_i/den_i = (Σ y_i·num_i·D/den_i) / D
    nums, dens = [], []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num *= -xj
                den *= xi - xj
        nums.append(num % PRIME)
        dens.append(den % PRIME)
    prefix = [1]
    for d in dens:
        prefix.append(prefix[-1] * d % PRIME)
    inv = pow(prefix[-1], -1, PRIME)  # 1 / Π den_i
    acc = 0
    for i in range(len(pts) - 1, -1, -1):  # back out 1/den_i = prefix_i · (1 / Π_{j<=i} den_j)
        acc += pts[i][1] * nums[i] * (prefix[i] * inv % PRIME)
        inv = inv * dens[i] % PRIME
    acc %= PRIME
    if acc >= 1 << (8 * nbytes):
        raise CryptoError("the shares do not reconstruct a secret of the expected size (a share is wrong)",
                          field="shares")
    return acc.to_bytes(nbytes, "big")


def share_to_bytes(y: int) -> bytes:
    """A share value as `SHARE_BYTES` big-endian bytes.

    >>> len(share_to_bytes(5))
    66
    """
    return int(y).to_bytes(SHARE_BYTES, "big")


def share_from_bytes(b: bytes) -> int:
    """Inverse of `share_to_bytes`; refuses a value outside the field.

    >>> share_from_bytes(share_to_bytes(7))
    7
    """
    if len(b) != SHARE_BYTES:
        raise CryptoError(f"a share has {SHARE_BYTES} bytes, got {len(b)}", field="share")
    y = int.from_bytes(b, "big")
    if y >= PRIME:
        raise CryptoError("share value outside the field", field="share")
    return y
