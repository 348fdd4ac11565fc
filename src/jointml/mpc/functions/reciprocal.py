"""Reciprocal, division, square root and inverse square root.

All normalise x = +-2^k y with y in [1, 16) (`normalize.py`), approximate the function
on [1, 16) with a minimax polynomial and Newton steps, and multiply by the bucket's
factor. Costs use the vocabulary of `jointml.mpc.functions`. Nothing is revealed.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([4.0, 0.25])).to(mpc)
...     return reciprocal(x).reveal(), sqrt(x).reveal()
>>> r, s = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
>>> np.round(r, 4).tolist(), np.round(s, 4).tolist()
([0.25, 4.0], [2.0, 0.5])
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from ...core.errors import EncodingRangeError
from ..array import SecretArray
from .common import _as, _fint, _fx, _mul, _mul1, _poly, _pubmul, _secret
from .normalize import (
    _STEP,
    _bucket_value,
    _buckets,
    _exponent_range,
    _normalize,
    _pow2,
    _sign_abs,
    _times_factor,
)

__all__ = ["reciprocal", "div", "sqrt", "rsqrt"]

#: initial guess for 1/y, y in [1, 16], in w = y/8 - 17/16; max relative error 0.034.
_RECIP_INIT = (
    0.113696136445, -0.10700812997, 0.244562212762, -0.230176178812,
    -0.601702783811, 0.566308420878, 0.956744920291, -0.900465740031,
)

#: initial guess for 1/sqrt(y), y in [1, 16], in w = y/8 - 17/16; max relative error 0.025.
_RSQRT_INIT = (0.350620560499, -0.189152285811, -0.0169523968679, 0.12340884593, 0.35427032839, -0.400426330829)


def _recip_parts(x: SecretArray, positive: bool, bounds: Any, numer: Any = None) -> Any:
    """Normalise x = +-2^k y and approximate 1/y. Returns (r, factors): r ~ 1/y (scale Fr)
    and a list of (factor, scale) whose products with r (or with a r) add up to the result;
    each factor is a bucket value (secret, or public when there is one bucket):

    * numer a public array/scalar: one factor sign(x) numer 2^-k encoded with min(f,18)+1
      fractional bits, numer/x = r * factor. Values under a quarter ulp become 0, which
      frees bits for r.
    * numer None (secret numerator a): a/x = sum_i (a r) * factor_i with sign(x) 2^-k split
      into k <= 2 (scale 2) and k > 2 (scale Fp, exact), so that (a r) can keep f+4 bits
      without overflowing the final product."""
    x = _fx(x)
    F = _fint(x)
    f = x.device.frac_bits
    if positive:
        m, ax = None, x
    else:
        m, ax = _sign_abs(x)
    kmin, kmax = _exponent_range(x, bounds)
    ks, c = _buckets(ax, kmin, kmax)
    Fp = builtins.max(0, builtins.max(ks))
    P = _bucket_value(ks, c, _pow2(ks), Fp)
    pw = _pow2(ks)
    if numer is None:
        kk = np.array(ks)
        specs = [(np.where(kk <= 2, pw, 0.0), 2), (np.where(kk > 2, pw, 0.0), Fp)]
        specs = [(v, b) for v, b in specs if np.any(v)]
        # (a r) at f+4 needs |a r| 2^(f + Fr) < 2^60, and we allow |a| < 2^(56-2f)
        Fr = builtins.min(F, 60 - f - (56 - 2 * f))
    else:
        a = np.asarray(numer, dtype=np.float64)
        Fq = builtins.min(f, 18) + 1  # factor precision (a quarter ulp of the result for f <= 18)
        vals = a[..., None] * pw
        vals = np.where(np.abs(vals) < 2.0 ** -(Fq + 1), 0.0, vals)
        specs = [(vals, Fq)]
        top = float(np.max(np.abs(a), initial=0.0)) * 2.0 ** -kmin
        # the final r * factor must satisfy |numer / x| * 2^(Fr + Fq) < 2^60
        Fr = int(builtins.min(F, 60 - Fq - math.ceil(math.log2(builtins.max(top, 1.0)))))
        if Fr < 8:
            raise EncodingRangeError("division: numerator too large for the fixed-point range", field="numerator")
    facs = [(_bucket_value(ks, c, v, b), b) for v, b in specs]
    extra = [(m, Q, None) for Q, _ in facs if m is not None and _secret(Q)]
    y, outs = _normalize(ax, P, Fp, extra)
    factors = []
    for Q, b in facs:
        if m is None:
            factors.append((Q, b))
        elif _secret(Q):
            factors.append((outs.pop(0), b))
        else:
            factors.append((_pubmul(m, Q, b), b))
    w = _as(y - 8.5, y.fxp + 3)  # y/8 - 17/16 in [-15/16, 15/16]
    r = _poly(w, _RECIP_INIT, F)  # rel. error <= 0.034
    for it in range(2):  # Newton: r <- r (2 - y r); 0.034 -> 1.2e-3 -> 1.3e-6
        e = _mul1(y, r, F)
        r = _mul1(r, 2 - e, F if it == 0 else Fr)
    return r, factors


def _apply_factors(r: SecretArray, factors: Any, out: int) -> SecretArray:
    sec = [(r, Q, out) for Q, _ in factors if _secret(Q)]
    res = _mul(sec) if sec else []
    res += [_times_factor(r, Q, b, out) for Q, b in factors if not _secret(Q)]
    acc = res[0]
    for t in res[1:]:
        acc = acc + t
    return acc


def reciprocal(x: SecretArray, positive: bool = False, bounds: Any = None) -> SecretArray:
    """1/x for 2^-min(f,18) <= |x| < 2^(62-2f) (f = frac_bits; [3.8e-6, 6.7e7) for f = 18).

    x = +-2^k y with y in [1, 16): the bucket k comes from ONE batched comparison of |x|
    against the thresholds 2^(-18+4j) (10 of them for f = 18), and the factor 2^-k is a
    public dot product of the bucket bits (free); then a degree-7 minimax guess for 1/y
    (relative error 0.034) and two Newton steps r <- r (2 - y r) (1.3e-6).
    `positive=True` skips the sign (x > 0 promised); `bounds=(lo, hi)` (public,
    0 < lo <= |x| <= hi) restricts the thresholds to that range (none if hi <= 16 lo).

    Cost (semi2k, f = 18): 1 cmp (sign) + 1 xmul (|x|) + 10 cmp (thresholds) + 1 mul
    (normalise, the signed factor rides along) + 4 mul (guess) + 4 mul (Newton) + 1 mul:
    483 B/party, 32 rounds; positive=True: 432 B, 25 rounds.
    Error (measured): relative 4.2e-6 where |1/x| >= 1, 1.1 ulp absolute below. x = 0
    gives a meaningless value, as division by zero must."""
    return div(1.0, x, positive, bounds)


def div(a: Any, b: Any, positive: bool = False, bounds: Any = None) -> SecretArray:
    """a / b elementwise (numpy broadcasting) for a secret b and a secret or public a
    (`a / b` and `2.5 / b` on SecretArrays call this).

    Same normalisation of b as `reciprocal` (same range and options). A public numerator is
    folded into the public bucket factor: same cost and accuracy as reciprocal, losing one
    bit of relative precision per doubling of max|a| above 1 (2.5/b: 8.3e-6). A secret
    numerator costs one more level, (a * 1/y) * (+-2^-k) with the factor split in two lanes
    so that a * 1/y keeps f+4 bits (547 B/party, 35 rounds); it is valid while
    |a| < 2^(56-2f) and |a/b| < 2^(56-2f) (2^20 ~ 1e6 for f = 18); error: relative 4e-6 plus
    about one ulp of a amplified like the quotient (2^-f / |b|)."""
    f = (b.device if _secret(b) else a.device).frac_bits
    if not _secret(b):
        q: SecretArray = a * (1.0 / np.asarray(b, dtype=np.float64))
        return q
    if _secret(a):
        r, factors = _recip_parts(b, positive, bounds, None)
        ar = _mul1(_fx(a), r, f + 4)
        return _apply_factors(ar, factors, f)
    r, factors = _recip_parts(b, positive, bounds, np.asarray(a, dtype=np.float64))
    return _apply_factors(r, factors, f)


def _rsqrt_core(y: SecretArray, F: int) -> SecretArray:
    """1/sqrt(y) for y in [1, 16] (y at scale F-3); result at scale F.

    Degree-5 guess (rel. error 0.025) then two Newton steps r <- (3r - y r^3)/2, each two
    product levels ([r^2, y r] batched, then (y r) r^2). Halving is a relabel, so r's scale
    grows by one per step: the guess is produced at F-2."""
    w = _as(y - 8.5, y.fxp + 3)
    r = _poly(w, _RSQRT_INIT, F - 2)
    for _ in range(2):  # 0.025 -> 9.4e-4 -> 1.3e-6
        S = r.fxp
        sh = y.fxp  # both products truncate by the same shift: one round
        r2, yr = _mul([(r, r, 2 * S - sh), (y, r, S)])
        z = _mul1(yr, r2, S)
        r = _as(3 * r - z, S + 1)  # (3r - z)/2
    return r


def rsqrt(x: SecretArray, bounds: Any = None) -> SecretArray:
    """1/sqrt(x) for 2^-min(f,18) <= x < 2^(62-2f).

    x = 2^k y with k even and y in [1, 16) (one batched comparison, 10 thresholds for
    f = 18), a degree-5 minimax guess (relative error 0.025) and two Newton steps
    r <- r (3 - y r^2)/2 (two product levels each), times the bucket factor 2^(-k/2).
    Cost (semi2k, f = 18): 10 cmp + 1 mul (normalise) + 3 mul (guess) + 6 mul (Newton)
    + 1 mul: 456 B/party, 24 rounds. Error (measured, 10^6 points): relative 4.7e-6 where
    the result is >= 1, 1.3 ulp absolute below."""
    x = _fx(x)
    F = _fint(x)
    f = x.device.frac_bits
    kmin, kmax = _exponent_range(x, bounds, even=True)
    ks, c = _buckets(x, kmin, kmax)
    Fq = builtins.max(0, builtins.max(ks) // 2)
    Q = _bucket_value(ks, c, _pow2(ks, -0.5), Fq)
    Fp = builtins.max(0, builtins.max(ks))
    P = _bucket_value(ks, c, _pow2(ks), Fp)
    y, _ = _normalize(x, P, Fp)
    r = _rsqrt_core(y, F)
    return _times_factor(r, Q, Fq, f)


def sqrt(x: SecretArray, bounds: Any = None) -> SecretArray:
    """sqrt(x) for 0 <= x < 2^(62-2f); sqrt(0) = 0 and inputs below 2^-min(f,18) give ~0.

    sqrt(x) = (x 2^(-k/2)) * rsqrt(y) with the normalisation of rsqrt; x 2^(-k/2) is
    computed in the normalisation round (a second truncation there). Cost (semi2k, f = 18):
    480 B/party, 25 rounds. Error (measured, 10^6 points): relative 4.9e-6 where the result
    is >= 1, 1.2 ulp absolute below."""
    x = _fx(x)
    F = _fint(x)
    f = x.device.frac_bits
    kmin, kmax = _exponent_range(x, bounds, even=True)
    ks, c = _buckets(x, kmin, kmax)
    Fq = builtins.max(0, builtins.max(ks) // 2)
    Q = _bucket_value(ks, c, _pow2(ks, -0.5), Fq)
    # x * 2^(-k/2) = sqrt(x) * sqrt(y) < 2^((kmax+4)/2) (at most 2^15 for f=18); keep
    # |xq * r| * 2^(Fxq + F) < 2^60.
    top = (builtins.max(ks) + _STEP) / 2
    Fxq = int(builtins.min(F, 60 - F - math.ceil(top)))
    Fp = builtins.max(0, builtins.max(ks))
    P = _bucket_value(ks, c, _pow2(ks), Fp)
    if _secret(Q):
        y, (xq,) = _normalize(x, P, Fp, extra=[(x, Q, Fxq)])
    else:
        y, _ = _normalize(x, P, Fp)
        xq = _times_factor(x, Q, Fq, Fxq)
    r = _rsqrt_core(y, F)
    return _mul1(xq, r, f)
