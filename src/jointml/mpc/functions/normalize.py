"""Power-of-two normalisation shared by reciprocal, sqrt, rsqrt and log.

x = 2^k y with y in [1, 16): the bucket k comes from one batched comparison of x against
public thresholds, and any per-bucket public value (2^-k, k ln 2, ...) is a public dot
product of the bucket bits (free). Nothing is revealed.

>>> _exponent_range_f(18)
(-18, 26)
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from ...core.errors import EncodingRangeError, ParameterError
from ..array import SecretArray
from .common import _U, _as, _fint, _ltz, _mul, _mul1, _pubmul, _rescale, _secret

_STEP = 4  # bucket width: x = 2^k * y with y in [1, 16)


def _exponent_range(x: SecretArray, bounds: Any, even: bool = False) -> tuple[int, int]:
    """Bucket exponents [kmin, kmax): default covers 2^-min(f,18) <= x < 2^(62-2f) (down to one
    ulp for f <= 18; up to the values that can still be multiplied by something >= 1)."""
    f = x.device.frac_bits
    if bounds is None:
        kmin, kmax = _exponent_range_f(f)
    else:
        lo, hi = float(bounds[0]), float(bounds[1])
        if not (0 < lo <= hi):
            raise ParameterError("bounds must be 0 < lo <= hi", field="bounds")
        kmin = math.floor(math.log2(lo))
        kmax = builtins.max(kmin + 1, math.ceil(math.log2(hi)))
    if even and kmin % 2:
        kmin -= 1
    return kmin, kmax


def _buckets(x: SecretArray, kmin: int, kmax: int) -> Any:
    """Bucket lower exponents ks and bits c[..., j-1] = [x >= 2^ks[j]] (one batched comparison)."""
    ks = list(range(kmin, kmax, _STEP))  # the last bucket [ks[-1], ks[-1] + 4) reaches kmax
    if len(ks) == 1:
        return ks, None
    thr = np.array([2.0**k for k in ks[1:]])
    lanes = x.expand_dims(-1) - thr  # shape (..., J-1), one comparison per threshold
    (lt,) = _ltz([lanes])
    return ks, 1 - lt


def _bucket_value(ks: Any, c: Any, vals: Any, bits: int) -> Any:
    """sum_j [x in bucket j] * vals[..., j]: a public dot product of the bucket bits (free).

    vals has the buckets on its last axis (other axes broadcast against x). Each value is
    encoded once with `bits` fractional bits and the telescoping sum runs over the encoded
    integers, so the result is exactly the encoding of the selected value. Returns a
    SecretArray with scale `bits`, or the public value when there is a single bucket."""
    vals = np.asarray(vals, dtype=np.float64)
    if c is None:
        v = vals[..., 0]
        return float(v) if v.ndim == 0 else v
    enc = np.rint(vals * float(1 << bits))
    if enc.size and np.max(np.abs(enc)) >= 2.0**62:
        raise EncodingRangeError("bucket value too large for the ring", field="bounds")
    enc = enc.astype(np.int64)
    d = np.diff(enc, axis=-1)
    share = c.proto.mul_public(c.share, d.view(_U))
    term = SecretArray(c.device, share, np.broadcast_shapes(c.shape, d.shape), bits).sum(axis=-1)
    return term + _as_public(enc[..., 0], bits)


def _as_public(enc: np.ndarray, bits: int) -> np.ndarray:
    """Public value whose encoding with `bits` fractional bits is exactly `enc`."""
    return np.asarray(enc, dtype=np.float64) / float(1 << bits)


def _pow2(ks: Any, sign: Any = -1.0) -> Any:
    return np.array([2.0 ** (sign * k) for k in ks])


def _sign_abs(x: SecretArray) -> Any:
    (s,) = _ltz([x])
    m = 1 - 2 * s
    return m, _mul1(m, x)


def _normalize(x: SecretArray, P: Any, Fp: int, extra: Any = ()) -> Any:
    """y = x * P (P = 2^-k, a bucket value) in [1, 16) at scale F-3, so that (y - 8.5)/8 is a
    relabel at scale F; plus extra products (a, b, out) in the same round."""
    Fy = _fint(x) - 3
    if _secret(P):
        res = _mul([(x, P, Fy)] + list(extra))
        return res[0], res[1:]
    k = -int(round(math.log2(P)))
    y = _rescale(_as(x, x.fxp + k), Fy)  # x * 2^-k is a relabel
    outs = [_mul1(a, b, o) if _secret(b) else _rescale(_pubmul(a, b, Fp), o) for a, b, o in extra]
    return y, outs


def _times_factor(r: SecretArray, P: Any, Fp: int, out: int) -> SecretArray:
    """r * P for a bucket value P (secret at scale Fp, or public)."""
    if _secret(P):
        return _mul1(r, P, out)
    P = np.asarray(P, dtype=np.float64)
    if P.ndim == 0 and P > 0 and float(math.log2(P)).is_integer():
        return _rescale(_as(r, r.fxp - int(math.log2(P))), out)  # power of two: relabel
    return _rescale(_pubmul(r, P, Fp), out)


def _exponent_range_f(f: int) -> tuple[int, int]:
    """The default bucket exponents for `f` fractional bits (see `_exponent_range`)."""
    return -builtins.min(f, 18), 62 - 2 * f
