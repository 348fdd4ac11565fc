"""The ring Z_2^64 as numpy.uint64 arrays, and fast ring matrix products.

Wrap-around of uint64 arithmetic is exactly reduction mod 2^64, so additions and
elementwise products of shares cost one numpy call. numpy's integer matmul does
not use BLAS (1.3 s for 1000^3 on this machine), so `matmul` splits operands into
balanced 22-bit limbs and multiplies limbs as float64 through BLAS: a limb product
summed over k terms stays below 2^53 (exact in float64) while k <= 2048, and only
the 6 limb pairs whose shift is below 64 bits are needed.
"""

from __future__ import annotations

import numpy as np

RING_DTYPE = np.uint64
RING_BITS = 64

_LIMB_BITS = 22
_LIMB_MASK = np.uint64((1 << _LIMB_BITS) - 1)
_LIMB_HALF = 1 << (_LIMB_BITS - 1)
# Balanced limbs are in [-2^21, 2^21]; a product is <= 2^42 in magnitude, so a dot
# product of length k is exact in float64 while k * 2^42 < 2^53.
_MAX_INNER = 1 << (53 - 2 * (_LIMB_BITS - 1)) - 1


def as_ring(x: np.ndarray) -> np.ndarray:
    """View/convert an integer array as ring elements (two's complement for negatives)."""
    x = np.asarray(x)
    if x.dtype == RING_DTYPE:
        return x
    if x.dtype.kind == "i":
        return x.astype(np.int64).view(RING_DTYPE)
    if x.dtype.kind in "ub":
        return x.astype(RING_DTYPE)
    raise TypeError(f"ring elements must be integers, got dtype {x.dtype}")


def to_signed(x: np.ndarray) -> np.ndarray:
    """Interpret ring elements as signed int64 (two's complement)."""
    return np.asarray(x, dtype=RING_DTYPE).view(np.int64)


def _limbs(x: np.ndarray) -> list[np.ndarray]:
    """Split uint64 into 3 balanced signed 22-bit limbs as float64: x = l0 + l1 2^22 + l2 2^44 (mod 2^64)."""
    out = []
    carry = np.zeros(x.shape, dtype=np.int64)
    rest = x
    for i in range(3):
        lo = (rest & _LIMB_MASK).astype(np.int64) + carry
        # Balance to [-2^21, 2^21): borrow from the next limb when the limb is large.
        hi = lo >= _LIMB_HALF
        lo = lo - (hi.astype(np.int64) << _LIMB_BITS)
        carry = hi.astype(np.int64)
        out.append(lo.astype(np.float64))
        rest = rest >> np.uint64(_LIMB_BITS)
    # The carry out of the top limb is a multiple of 2^66, i.e. 0 mod 2^64.
    return out


def _f2ring(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64).view(RING_DTYPE)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ring matrix product a @ b mod 2^64 through float64 BLAS.

    Supports 2-D operands (and 1-D as numpy does). Falls back to chunking the inner
    dimension when it exceeds the exact-float bound.

    >>> import numpy as np
    >>> a = np.array([[2**63, 3]], dtype=np.uint64); b = np.array([[2], [5]], dtype=np.uint64)
    >>> int(matmul(a, b)[0, 0])
    15
    """
    a = np.asarray(a, dtype=RING_DTYPE)
    b = np.asarray(b, dtype=RING_DTYPE)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    k = a.shape[-1]
    if k != (b.shape[0] if b.ndim == 1 else b.shape[-2]):
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    if a.size == 0 or b.size == 0 or k <= 4:
        return _matmul_int(a, b)
    if k > _MAX_INNER:
        out = None
        for s in range(0, k, _MAX_INNER):
            part = matmul(a[..., s : s + _MAX_INNER], b[s : s + _MAX_INNER] if b.ndim == 1 else b[..., s : s + _MAX_INNER, :])
            out = part if out is None else out + part
        return out
    al = _limbs(a)
    bl = _limbs(b)
    t0 = _f2ring(al[0] @ bl[0])
    t1 = _f2ring(al[0] @ bl[1] + al[1] @ bl[0])  # each < 2^52, their sum < 2^53
    t2 = _f2ring(al[0] @ bl[2]) + _f2ring(al[1] @ bl[1]) + _f2ring(al[2] @ bl[0])
    s = np.uint64(_LIMB_BITS)
    return t0 + (t1 << s) + (t2 << (s + s))


def _matmul_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a, b)
