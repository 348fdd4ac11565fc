"""The numpy ring backend: Z_2^64 as numpy.uint64 arrays, and fast ring matrix products.

Wrap-around of uint64 arithmetic is exactly reduction mod 2^64, so additions and
elementwise products of shares cost one numpy call. numpy's integer matmul does
not use BLAS (1.3 s for 1000^3 on this machine), so `matmul` splits operands into
balanced limbs of 22, 22 and 20 bits and multiplies them as float64 through BLAS:
a limb product summed over k terms stays below 2^53 (exact in float64) while
k <= 2048 (512 for the Karatsuba product). Only limb pairs whose shift is below 64 bits matter, and Karatsuba's
trick computes a0 b1 + a1 b0 from one product, so a ring matmul costs 5 float64
matmuls. A limb that is zero everywhere drops its products: an operand with
|x| < 2^43 (signed) has no top limb (4 products), one with |x| < 2^21 only its low limb
(3 products) -- encoded plaintext matrices of moderate values, e.g. the owner's side of
`Semi2k.private_matmul`. The zero limbs are detected on the operand (one pass each), so
exactness never depends on a caller's claim about magnitudes.

>>> bk = NumpyBackend()
>>> a = np.array([[2**63, 3]], dtype=np.uint64); b = np.array([[2], [5]], dtype=np.uint64)
>>> int(bk.matmul(a, b)[0, 0])
15
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import ParameterError
from .base import RingBackend

__all__ = ["NumpyBackend", "matmul", "matmul_limbs"]

Array = npt.NDArray[Any]

RING_DTYPE = np.uint64

# Limbs of 22, 22 and 20 bits at shifts 0, 22, 44, balanced to signed digits of
# magnitude <= 2^21. A limb product is <= 2^42, so a dot product of length k is exact
# in float64 while k <= 2^11; the Karatsuba product (a0+a1)(b0+b1) is <= 2^44 per
# term, exact while k <= 2^9, so it is summed in chunks of 512.
_W = 22
_M = np.uint64((1 << _W) - 1)
_H = np.uint64(1 << (_W - 1))
_HF = float(1 << (_W - 1))
_M2 = np.uint64((1 << 20) - 1)
_H2 = np.uint64(1 << 19)
_HF2 = float(1 << 19)
_MAX_INNER = 1 << 11
_KARATSUBA_CHUNK = 1 << 9
_INT_LOOP_RATIO = 64


Limbs = tuple[Array, Array, Array]


def _limbs(x: Array) -> Limbs:
    """x = l0 + l1 2^22 + l2 2^44 (mod 2^64) with balanced signed limbs, as float64."""
    shape = x.shape
    out = (np.empty(shape), np.empty(shape), np.empty(shape))
    _limbs_into(x, out)
    return out


def _limbs_into(x: Array, out: Limbs) -> None:
    """Write the balanced float64 limbs of x into `out` (arrays of x's shape).

    Balancing: l = ((t + H) mod 2^22) - H and the rest is (t + H) >> 22, exact mod 2^64."""
    o0, o1, o2 = out
    t = np.add(x, _H)
    m = np.bitwise_and(t, _M)
    np.copyto(o0, m.view(np.int64), casting="unsafe")
    o0 -= _HF
    t >>= np.uint64(_W)
    t += _H
    np.bitwise_and(t, _M, out=m)
    np.copyto(o1, m.view(np.int64), casting="unsafe")
    o1 -= _HF
    t >>= np.uint64(_W)
    # Top limb: the 20 bits 44..63, balanced to [-2^19, 2^19) the same way (its carry
    # out is a multiple of 2^64, i.e. zero in the ring).
    t += _H2
    t &= _M2
    np.copyto(o2, t.view(np.int64), casting="unsafe")
    o2 -= _HF2


def _f2ring(x: Array) -> Array:
    return x.astype(np.int64).view(RING_DTYPE)


def matmul(a: Any, b: Any) -> Array:
    """Ring matrix product a @ b mod 2^64 through float64 BLAS (5 float products, Karatsuba).

    Supports 1-D and 2-D operands as numpy does; the inner dimension is chunked when it
    exceeds the exact-float bound.

    >>> a = np.array([[2**63, 3]], dtype=np.uint64); b = np.array([[2], [5]], dtype=np.uint64)
    >>> int(matmul(a, b)[0, 0])
    15
    """
    a = np.asarray(a, dtype=RING_DTYPE)
    b = np.asarray(b, dtype=RING_DTYPE)
    if a.ndim == 0 or b.ndim == 0:
        return np.asarray(a * b)
    k = a.shape[-1]
    if k != (b.shape[0] if b.ndim == 1 else b.shape[-2]):
        raise ParameterError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}", field="shape")
    if a.size == 0 or b.size == 0 or k <= 4 or a.ndim > 2 or b.ndim > 2:
        return _matmul_int(a, b)
    # Splitting into limbs costs ~10 numpy passes over both operands; numpy's integer
    # loop wins while there are few multiply-adds per operand element (matrix-vector
    # products: a 1024x100 @ 100 product takes 0.05 ms that way, 3 ms through limbs).
    m = a.shape[0] if a.ndim == 2 else 1
    n = b.shape[1] if b.ndim == 2 else 1
    if m * k * n <= _INT_LOOP_RATIO * (m * k + k * n):
        return _matmul_int(a, b)
    return matmul_limbs(a, b)


def matmul_limbs(a: Array, b: Array) -> Array:
    """The BLAS path of `matmul` (2-D/1-D uint64 operands), whatever the shapes."""
    k = a.shape[-1]
    if k > _MAX_INNER:
        out = matmul_limbs(a[..., :_MAX_INNER], b[:_MAX_INNER])
        for s in range(_MAX_INNER, k, _MAX_INNER):
            out += matmul_limbs(a[..., s : s + _MAX_INNER], b[s : s + _MAX_INNER])
        return out
    return _limb_product(_limbs(a), _limbs(b))


def _f(a: Array, b: Array, chunk: int) -> Array:
    """a @ b in float64, summed in exact pieces of `chunk` inner terms, as ring elements."""
    k = a.shape[-1]
    if k <= chunk:
        return _f2ring(a @ b)
    out = _f2ring(a[..., :chunk] @ b[:chunk])
    for s in range(chunk, k, chunk):
        out += _f2ring(a[..., s : s + chunk] @ b[s : s + chunk])
    return out


def _limb_product(la: Limbs, lb: Limbs) -> Array:
    """The ring product from balanced limbs (inner dimension <= _MAX_INNER).

    Only limb pairs (i, j) with i + j <= 2 (shift below 64 bits) count. A limb that is zero
    everywhere (an operand of small magnitude: |x| < 2^43 leaves l2 = 0, |x| < 2^21 also
    l1 = 0) drops its products, so a bounded operand (an encoded plaintext matrix) costs 4 or
    3 float products instead of 5; zero limbs are detected, never assumed."""
    a0, a1, a2 = la
    b0, b1, b2 = lb
    nz_a = (True, bool(np.any(a1)), bool(np.any(a2)))
    nz_b = (True, bool(np.any(b1)), bool(np.any(b2)))
    chunk = _MAX_INNER
    out = _f(a0, b0, chunk)
    terms: list[tuple[Array, int]] = []  # (ring value, limb shift index)
    p11 = _f(a1, b1, chunk) if nz_a[1] and nz_b[1] else None
    if nz_a[1] and nz_b[1]:
        # Karatsuba: a0 b1 + a1 b0 = (a0 + a1)(b0 + b1) - a0 b0 - a1 b1; the sums' products
        # are up to 2^44 per term, exact in pieces of 512
        kk = _f(a0 + a1, b0 + b1, _KARATSUBA_CHUNK)
        kk -= out
        kk -= p11
        terms.append((kk, 1))
    elif nz_a[1]:
        terms.append((_f(a1, b0, chunk), 1))
    elif nz_b[1]:
        terms.append((_f(a0, b1, chunk), 1))
    if p11 is not None:
        terms.append((p11, 2))
    if nz_b[2]:
        terms.append((_f(a0, b2, chunk), 2))
    if nz_a[2]:
        terms.append((_f(a2, b0, chunk), 2))
    for v, i in terms:
        v <<= np.uint64(_W * i)
        out += v
    return out


def _matmul_int(a: Array, b: Array) -> Array:
    return np.asarray(np.matmul(a, b))


_U = np.uint64


def _nd(x: Any) -> Array:
    """numpy returns scalars for 0-d operands; the backend always returns arrays."""
    return x if isinstance(x, np.ndarray) else np.asarray(x)


class NumpyBackend(RingBackend):
    """The ring on numpy arrays (the default and, today, only backend).

    >>> bk = NumpyBackend()
    >>> bk.add(bk.asarray([2**64 - 1]), bk.asarray([2])).tolist()
    [1]
    >>> bk.unpackbits(bk.packbits(bk.asarray([1, 0, 1], np.uint8)), 3).tolist()
    [1, 0, 1]
    """

    name = "numpy"

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        if dtype is None:
            return x if isinstance(x, np.ndarray) else np.asarray(x, dtype=x.dtype if isinstance(x, np.generic) else _U)
        return np.asarray(x, dtype=dtype)

    def copy(self, x: Any, dtype: Any = None) -> Array:
        return np.array(x, dtype=dtype, copy=True)

    def zeros(self, shape: Sequence[int], dtype: Any = None) -> Array:
        return np.zeros(shape, dtype=_U if dtype is None else dtype)

    def empty(self, shape: Sequence[int], dtype: Any = None) -> Array:
        return np.empty(shape, dtype=_U if dtype is None else dtype)

    def astype(self, x: Array, dtype: Any) -> Array:
        return _nd(x).astype(dtype)

    def stack(self, xs: Sequence[Array], axis: int = 0) -> Array:
        return np.stack(xs, axis=axis)

    def add(self, a: Array, b: Array, out: Array | None = None) -> Array:
        with np.errstate(over="ignore"):
            return _nd(np.add(a, b, out=out))

    def sub(self, a: Array, b: Array, out: Array | None = None) -> Array:
        with np.errstate(over="ignore"):
            return _nd(np.subtract(a, b, out=out))

    def mul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        with np.errstate(over="ignore"):
            return _nd(np.multiply(a, b, out=out))

    def neg(self, a: Array) -> Array:
        a = _nd(a)
        with np.errstate(over="ignore"):
            return _nd(a.dtype.type(0) - a)

    def matmul(self, a: Array, b: Array) -> Array:
        return _nd(matmul(a, b))

    def xor(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return _nd(np.bitwise_xor(a, b, out=out))

    def and_(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return _nd(np.bitwise_and(a, b, out=out))

    def lshift(self, a: Array, k: int) -> Array:
        a = _nd(a)
        return _nd(a << a.dtype.type(k))

    def rshift(self, a: Array, k: int) -> Array:
        a = _nd(a)
        return _nd(a >> a.dtype.type(k))

    def packbits(self, bits: Array) -> Array:
        return np.packbits(bits)

    def unpackbits(self, packed: Array, count: int) -> Array:
        return np.unpackbits(packed, count=count)

    def random(self, prg: Any, shape: Sequence[int], dtype: Any = None) -> Array:
        out: Array = prg.random(shape, _U if dtype is None else dtype)
        return out

    def to_bytes(self, x: Array) -> bytes:
        return np.ascontiguousarray(x).tobytes()

    def from_bytes(self, data: bytes, dtype: Any, shape: Sequence[int]) -> Array:
        out: Array = np.frombuffer(data, dtype=dtype).reshape(tuple(shape)).copy()
        return out
