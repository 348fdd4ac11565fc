"""Cryptographic PRG: AES-128-CTR keystream from the `cryptography` package.

Everything that protects data draws from here (never numpy.random / random).
Two parties holding the same seed draw the same stream as long as they request the
same sizes in the same order — the basis of seed-expanded correlated randomness and
of zero-traffic input sharing.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import CryptoError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from numpy.random import Generator  # noqa: TID251 - the type of public_rng only

Shape = int | tuple[int, ...]

SEED_BYTES = 16


def new_seed() -> bytes:
    """A fresh 128-bit seed from the OS CSPRNG.

    >>> len(new_seed()), new_seed() != new_seed()
    (16, True)
    """
    return secrets.token_bytes(SEED_BYTES)


# the all-zero plaintext the keystream is drawn through (read-only, shared by every Prg)
_ZEROS = memoryview(bytes(1 << 22))


class Prg:
    """A deterministic stream of random ring elements/bytes from a 128-bit seed.

    >>> a, b = Prg(b"k" * 16), Prg(b"k" * 16)
    >>> bool((a.uint64(5) == b.uint64(5)).all())
    True
    """

    _CHUNK = 1 << 22  # at most this many bytes per AES call (the size of _ZEROS)

    def __init__(self, seed: bytes | None = None, stream: bytes | str = b""):
        seed = new_seed() if seed is None else seed
        if len(seed) < SEED_BYTES:
            raise CryptoError("PRG seed must be at least 16 bytes", field="seed")
        if isinstance(stream, str):
            stream = stream.encode()
        # Derive the AES key from the seed and a stream label so that one seed can
        # drive several independent streams (domain separation).
        key = hashlib.sha256(b"jointml-prg|" + stream + b"|" + seed).digest()[:16]
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
        self.bytes_drawn = 0

    def fill(self, out: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Fill a C-contiguous array in place with keystream bytes; returns it.

        >>> Prg(b"s" * 16).fill(np.zeros(4, dtype=np.uint8)).dtype
        dtype('uint8')
        """
        mv = memoryview(out).cast("B")  # type: ignore[arg-type]  # ndarray exports the buffer protocol
        n = mv.nbytes
        # `update_into` wants 15 bytes of room after its output: everything but the last 15
        # bytes is written in place, straight into `out` (a scratch copy of the whole array
        # cost 14x the AES itself: fresh pages and a second pass), the tail through a scratch.
        pos, in_place = 0, n - 15
        while pos < in_place:
            m = min(in_place - pos, self._CHUNK)
            self._enc.update_into(_ZEROS[:m], mv[pos : pos + m + 15])
            pos += m
        if pos < n:
            tmp = bytearray(n - pos + 15)
            self._enc.update_into(_ZEROS[: n - pos], tmp)
            mv[pos:n] = tmp[: n - pos]
        self.bytes_drawn += n
        return out

    def random(self, shape: Shape, dtype: npt.DTypeLike = np.uint64) -> npt.NDArray[Any]:
        """Uniform random array of an unsigned integer dtype.

        >>> Prg(b"s" * 16).random((2, 3), np.uint32).shape
        (2, 3)
        """
        out = np.empty(shape, dtype=dtype)
        return self.fill(out) if out.size else out

    def uint64(self, shape: Shape) -> npt.NDArray[np.uint64]:
        """Uniform ring elements of the given shape.

        >>> Prg(b"s" * 16).uint64(3).dtype
        dtype('uint64')
        """
        out = np.empty(shape, dtype=np.uint64)
        return self.fill(out) if out.size else out

    def bytes(self, n: int) -> bytes:
        """`n` keystream bytes.

        >>> len(Prg(b"s" * 16).bytes(5))
        5
        """
        return bytes(self.fill(np.empty(n, dtype=np.uint8)))

    def bits(self, shape: Shape) -> npt.NDArray[np.uint64]:
        """Uniform bits {0,1} as uint64 (one byte of keystream per bit).

        >>> set(Prg(b"s" * 16).bits(64).tolist()) <= {0, 1}
        True
        """
        out = np.empty(shape, dtype=np.uint8)
        if out.size:
            self.fill(out)
        return (out & 1).astype(np.uint64)

    def integers_below(self, bound: int, shape: Shape) -> npt.NDArray[np.uint64]:
        """Uniform integers in [0, bound) for bound <= 2^32 by rejection-free wide modular reduction.

        Bias is below 2^-32, as the 64-bit draw is reduced modulo a bound of at most 32 bits.

        >>> int(Prg(b"s" * 16).integers_below(10, 100).max()) < 10
        True
        """
        if not 0 < bound <= 1 << 32:
            raise ParameterError("bound must be in (0, 2^32]", field="bound")
        out: npt.NDArray[np.uint64] = self.uint64(shape) % np.uint64(bound)
        return out


def random_uint64(shape: Shape) -> npt.NDArray[np.uint64]:
    """Fresh uniform ring elements from an OS-seeded PRG.

    >>> random_uint64((2, 2)).shape
    (2, 2)
    """
    return Prg().uint64(shape)


def public_rng(seed: int) -> Generator:
    """numpy's generator, for PUBLIC data only (benchmark inputs, demo data, batch order is
    not this): it protects nothing and must never mask, share or key anything.

    >>> public_rng(0).normal(size=2).shape
    (2,)
    """
    import numpy.random as _npr  # noqa: TID251 - the one sanctioned use in src/, see the docstring

    return _npr.default_rng(seed)
