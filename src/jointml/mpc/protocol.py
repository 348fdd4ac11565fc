"""The narrow interface every secret-sharing protocol implements.

`SecretArray` (the user-facing numpy-like type) and the generic circuits
(comparison, nonlinear functions) are written against this interface only, so a
new protocol plugs in by implementing these kernels. A *share* is whatever one
party holds of a secret: an ndarray for semi2k, a pair of ndarrays for aby3, None
at a party that holds nothing (the dealer, an outside data owner).

Arithmetic shares live in Z_2^64 (uint64). Boolean shares are XOR shares of
unsigned words of any width (uint8..uint64), used by the comparison circuits.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

Share = Any


def wraps_ring(cls):
    """Class decorator: ring arithmetic wraps mod 2^64 by design, so silence numpy's
    overflow warnings (raised for 0-d operands, which numpy computes as scalars)."""
    import functools

    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("__"):
            def make(f):
                @functools.wraps(f)
                def inner(*a, **k):
                    with np.errstate(over="ignore"):
                        return f(*a, **k)
                return inner
            setattr(cls, name, make(fn))
    return cls


class Protocol:
    name = "abstract"

    #: parties that hold shares (compute parties)
    compute: list[str]
    #: all parties that execute the device's operations (compute + dealer)
    members: list[str]

    # -- structure (local, free) ----------------------------------------------
    def map(self, fn: Callable[..., np.ndarray], *shares: Share) -> Share:
        """Apply a structural/linear numpy function to every share component (reshape, index, sum...)."""
        raise NotImplementedError

    # -- input/output ------------------------------------------------------------
    def share_in(self, owner: str, value: np.ndarray | None, shape: tuple, dtype=np.uint64, boolean: bool = False) -> Share:
        raise NotImplementedError

    def reveal(self, x: Share, shape: tuple, to: str | None = None, boolean: bool = False, dtype=np.uint64) -> np.ndarray | None:
        raise NotImplementedError

    # -- arithmetic ---------------------------------------------------------------
    def add(self, a: Share, b: Share) -> Share: ...
    def sub(self, a: Share, b: Share) -> Share: ...
    def neg(self, a: Share) -> Share: ...
    def add_public(self, a: Share, c: np.ndarray) -> Share: ...
    def mul_public(self, a: Share, c: np.ndarray) -> Share: ...
    def mul(self, a: Share, b: Share, shape_a: tuple, shape_b: tuple) -> Share: ...
    def square(self, a: Share, shape: tuple) -> Share: ...
    def matmul(self, a: Share, b: Share, shape_a: tuple, shape_b: tuple) -> Share: ...
    def trunc(self, a: Share, bits: int, shape: tuple) -> Share: ...

    # -- boolean ------------------------------------------------------------------
    def b_xor(self, a: Share, b: Share) -> Share: ...
    def b_xor_public(self, a: Share, c: np.ndarray) -> Share: ...
    def b_and_public(self, a: Share, c: np.ndarray) -> Share: ...
    def b_and(self, pairs: Sequence[tuple[Share, Share]], shapes: Sequence[tuple], dtypes: Sequence) -> list[Share]: ...

    # -- conversions --------------------------------------------------------------
    def msb(self, a: Share, shape: tuple) -> Share:
        """Arithmetic share of the most significant bit (0/1) of a ring element."""
        raise NotImplementedError

    def eqz(self, a: Share, shape: tuple) -> Share:
        """Arithmetic share of [a == 0] (0/1)."""
        raise NotImplementedError

    def a2b(self, a: Share, shape: tuple) -> Share:
        """Boolean (XOR) share of the 64-bit two's complement word of an arithmetic share."""
        raise NotImplementedError

    def b2a_bits(self, b: Share, shape: tuple) -> Share:
        """Arithmetic share of a boolean-shared bit (uint8 words holding 0/1)."""
        raise NotImplementedError

    def b2a(self, b: Share, shape: tuple) -> Share:
        """Arithmetic share of a boolean-shared uint64 word."""
        raise NotImplementedError

    # -- reusable masked left operand (data matrices in training loops) --------------
    def masked_setup(self, x: Share, shape: tuple):
        """Prepare a secret matrix for many products with fresh right operands.

        Default: keep the shares (protocols whose products open nothing of the left operand)."""
        return GenericMasked(x, shape)

    def private_masked_setup(self, owner: str, x, shape: tuple):
        """Like `masked_setup` for a matrix held in plaintext (ring-encoded) by `owner`.

        Default: secret-share it and fall back to `masked_setup`."""
        return self.masked_setup(self.share_in(owner, x, shape), shape)

    def private_masked_matmul(self, handle, rows, y: Share, shape_y: tuple, transpose: bool = False) -> Share:
        return self.masked_matmul(handle, rows, y, shape_y, transpose)

    def private_masked_matmul_many(self, items) -> list:
        """Several (handle, rows, y, shape_y, transpose) products; protocols may batch their rounds."""
        return [self.private_masked_matmul(*it) for it in items]

    def masked_matmul(self, handle, rows, y: Share, shape_y: tuple, transpose: bool = False) -> Share:
        """X[rows] @ y (or X[rows].T @ y) for a handle from `masked_setup`."""
        x = self.map(lambda s: s[(slice(None),) * (s.ndim - len(handle.shape)) + (rows,)], handle.share)
        sub_shape = np.empty(handle.shape, dtype=np.int8)[rows].shape
        if transpose:
            x = self.map(lambda s: np.swapaxes(s, -1, -2), x)
            sub_shape = sub_shape[::-1]
        return self.matmul(x, y, sub_shape, shape_y)


class GenericMasked:
    """Default 'mask once' handle: protocols whose products need no opening of the
    left operand (e.g. aby3) just keep the shares and multiply normally."""

    def __init__(self, share, shape):
        self.share = share
        self.shape = tuple(shape)
