"""Cryptographic PRG: AES-128-CTR keystream from the `cryptography` package.

Everything that protects data draws from here (never numpy.random / random).
Two parties holding the same seed draw the same stream as long as they request the
same sizes in the same order — the basis of seed-expanded correlated randomness and
of zero-traffic input sharing.
"""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES = 16


def new_seed() -> bytes:
    """A fresh 128-bit seed from the OS CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


class Prg:
    """A deterministic stream of random ring elements/bytes from a 128-bit seed.

    >>> a, b = Prg(b"k" * 16), Prg(b"k" * 16)
    >>> bool((a.uint64(5) == b.uint64(5)).all())
    True
    """

    _CHUNK = 1 << 22  # zero-input block reused across calls (4 MiB)

    def __init__(self, seed: bytes | None = None, stream: bytes | str = b""):
        seed = new_seed() if seed is None else seed
        if len(seed) < SEED_BYTES:
            raise ValueError("PRG seed must be at least 16 bytes")
        if isinstance(stream, str):
            stream = stream.encode()
        # Derive the AES key from the seed and a stream label so that one seed can
        # drive several independent streams (domain separation).
        key = hashlib.sha256(b"jointml-prg|" + stream + b"|" + seed).digest()[:16]
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
        self._zeros = bytearray(0)
        self.bytes_drawn = 0

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Fill a C-contiguous array in place with keystream bytes; returns it."""
        mv = memoryview(out).cast("B")
        n = mv.nbytes
        pos = 0
        while pos < n:
            m = min(n - pos, self._CHUNK)
            if len(self._zeros) < m:
                self._zeros = bytearray(min(max(m, 1 << 16), self._CHUNK))
            # update_into needs m + 15 bytes of room; write to a scratch tail when short.
            if n - pos >= m + 15:
                self._enc.update_into(memoryview(self._zeros)[:m], mv[pos : pos + m + 15])
            else:
                tmp = bytearray(m + 15)
                k = self._enc.update_into(memoryview(self._zeros)[:m], tmp)
                mv[pos : pos + k] = tmp[:k]
            pos += m
        self.bytes_drawn += n
        return out

    def random(self, shape, dtype=np.uint64) -> np.ndarray:
        """Uniform random array of an unsigned integer dtype."""
        out = np.empty(shape, dtype=dtype)
        return self.fill(out) if out.size else out

    def uint64(self, shape) -> np.ndarray:
        """Uniform ring elements of the given shape."""
        out = np.empty(shape, dtype=np.uint64)
        return self.fill(out) if out.size else out

    def bytes(self, n: int) -> bytes:
        return bytes(self.fill(np.empty(n, dtype=np.uint8)))

    def bits(self, shape) -> np.ndarray:
        """Uniform bits {0,1} as uint64 (one byte of keystream per bit)."""
        out = np.empty(shape, dtype=np.uint8)
        if out.size:
            self.fill(out)
        return (out & 1).astype(np.uint64)

    def integers_below(self, bound: int, shape) -> np.ndarray:
        """Uniform integers in [0, bound) for bound <= 2^32 by rejection-free wide modular reduction.

        Bias is below 2^-32, as the 64-bit draw is reduced modulo a bound of at most 32 bits."""
        if not 0 < bound <= 1 << 32:
            raise ValueError("bound must be in (0, 2^32]")
        return self.uint64(shape) % np.uint64(bound)


def random_uint64(shape) -> np.ndarray:
    """Fresh uniform ring elements from an OS-seeded PRG."""
    return Prg().uint64(shape)


def public_rng(seed: int):
    """numpy's generator, for PUBLIC data only (benchmark inputs, demo data, batch order is
    not this): it protects nothing and must never mask, share or key anything.

    >>> public_rng(0).normal(size=2).shape
    (2,)
    """
    import numpy.random as _npr  # the one sanctioned use in src/, see the docstring

    return _npr.default_rng(seed)
