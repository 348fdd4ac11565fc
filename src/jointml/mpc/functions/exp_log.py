"""Exponential and natural logarithm.

exp squares up a polynomial of x/64; log normalises x = 2^k y with y in [1, 2) and
evaluates a minimax polynomial. Coefficients are literals fitted offline (see
`jointml.mpc.functions`). Nothing is revealed.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([0.0, 1.0])).to(mpc)
...     return exp(x).reveal(), log(x + 1).reveal()
>>> e, l = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
>>> np.round(e, 4).tolist(), np.round(l, 4).tolist()
([1.0, 2.7183], [0.0, 0.6931])
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from ..array import SecretArray
from .common import _as, _fint, _fx, _lincomb, _ltz, _mul, _mul1, _poly, _rescale
from .normalize import _bucket_value, _buckets, _exponent_range, _normalize, _pow2

__all__ = ["exp", "log"]

# Approximation coefficients. They were fitted offline as minimax (L-infinity) problems on
# dense grids, solved as linear programs (scipy.optimize.linprog, HiGHS); for the
# "squared-up" exponentials p(u)^(2^n) the nonlinear problem was solved by a few rounds of
# linearisation around the current p. They are literals on purpose: every party must
# encode bit-identical public constants, so nothing is fitted at import time.

#: p(u) ~ e^-u for u = t/8 in [0, 2]; p(u)^8 ~ e^-t on [0, 16] with max abs error 3.1e-6
#: (minimax of the *squared-up* result, not of p itself).
_EXP_NEG16 = (0.999999623279, -0.999947687215, 0.499026923782, -0.161176566712, 0.0302560222754)
#: p(u) ~ e^-u for u = t/16 in [0, 1]; p(u)^16 ~ e^-t on [0, 16] with max abs error 1.8e-7.
_EXP_NEG16_Q = (0.99999998885, -0.999996952905, 0.49988147836, -0.165264534975, 0.0357001655412)

#: p(u) ~ e^u for u = x/64; p(u)^64 ~ e^x on [-15, 26] with max relative error 3.0e-6.
_EXP_FULL = (1.00000000954, 1.0000009098, 0.49999858554, 0.166610594427, 0.0417497161225, 0.0090478734558)

#: log(y) for y in [1, 2] as a polynomial in w = 2y - 3 (so also log(1+e), e in [0,1]); abs error 1.8e-7.
_LOG_12 = (
    0.405465283126, 0.333332997859, -0.0555612932031, 0.0123497768067,
    -0.00305798776644, 0.000809596270616, -0.000272232739717, 8.12193417649e-05,
)


def log(x: SecretArray, bounds: Any = None) -> SecretArray:
    """Natural log for 2^-min(f,18) <= x < 2^(62-2f) (other inputs give meaningless values).

    Two-stage normalisation x = 2^(k1+k2) y with y in [1, 2): 10 thresholds (f = 18), then
    3 thresholds (2, 4, 8) on the normalised value, then a degree-7 minimax polynomial for
    log(y) (abs error 1.8e-7) plus (k1+k2) ln 2, a public dot product of the bits (free).
    Cost (semi2k, f = 18): 13 cmp (2 x 6 rounds) + 1 mul + 1 exact mul + 4 mul:
    385 B/party, 22 rounds. Error (measured): 1.0 ulp absolute (3.9e-6), relative 3.7e-6
    where |log x| >= 1 - on top of the input's own quantisation (2^-f / x)."""
    x = _fx(x)
    F = _fint(x)
    f = x.device.frac_bits
    ln2 = math.log(2.0)
    kmin, kmax = _exponent_range(x, bounds)
    ks, c = _buckets(x, kmin, kmax)
    K1 = _bucket_value(ks, c, np.array(ks) * ln2, F)
    Fp = builtins.max(0, builtins.max(ks))
    P = _bucket_value(ks, c, _pow2(ks), Fp)
    y1, _ = _normalize(x, P, Fp)  # [1, 16) at scale F-3
    (lt,) = _ltz([y1.expand_dims(-1) - np.array([2.0, 4.0, 8.0])])
    c2 = 1 - lt
    P2 = _bucket_value([0, 1, 2, 3], c2, _pow2([0, 1, 2, 3]), 3)
    K2 = _bucket_value([0, 1, 2, 3], c2, np.arange(4) * ln2, F)
    y2 = _mul1(y1, P2, None)  # [1, 2) at scale F (exact: P2 has 3 fractional bits)
    w = 2 * y2 - 3
    return _poly(w, _LOG_12, f, add=K2 + K1)


# ---------------------------------------------------------------------------------------
# exp
# ---------------------------------------------------------------------------------------


def _exp_neg(t: SecretArray, precise: bool = False) -> SecretArray:
    """e^-t for t in [0, 16] (any scale) at the internal scale F: p(t/2^n)^(2^n), p quartic.

    Default n = 3: u^2, then u^3 and u^4 in one round, one truncation for p, 3 squarings:
    120 B/party, 11 rounds, abs error 3.1e-6. precise=True, n = 4: one more squaring
    (136 B/party, 13 rounds), abs error 1.8e-7."""
    F = _fint(t)
    n, coeffs = (4, _EXP_NEG16_Q) if precise else (3, _EXP_NEG16)
    u = _rescale(_as(t, t.fxp + n), F)  # u = t / 2^n (at most 2: u^4 * 2^(2F) < 2^57)
    u2 = _mul1(u, u, F)
    u3, u4 = _mul([(u, u2, F), (u2, u2, F)])
    e = _rescale(_lincomb({1: u, 2: u2, 3: u3, 4: u4}, coeffs, F), F)
    for _ in range(n):
        e = _mul1(e, e, F)
    return e


def exp(x: SecretArray) -> SecretArray:
    """e^x for x <= (61-2f) ln 2 (17.3 for f = 18: results up to 2^25); exactly 0 below
    -(f+1) ln 2 (-13.2: e^x under half an ulp), for any x down to the encoding limit.
    Larger x overflow (meaningless values).

    e^x = p(x/64)^64: p is a degree-5 polynomial fitted (minimax) to the relative error of
    the *squared-up* result (3e-6 on [-15, 26]), then 6 squarings at decreasing precision
    (26 fractional bits while the values are small, fewer as they grow, so e^17 still fits).
    Cost (semi2k, f = 18): 1 cmp (lower cut) + 3 mul (p) + 6 sq + 1 xmul: 204 B/party,
    25 rounds. Error (measured, 10^6 points): relative 1.1e-5 where e^x >= 1 (the last
    squaring can keep only 18 bits), 3.1 ulp absolute below."""
    x = _fx(x)
    f = x.device.frac_bits
    F = _fint(x)
    n = 6
    L = builtins.min((f + 1) * math.log(2.0), 15.0)  # the fit covers [-15, 26]
    U = builtins.min((61 - 2 * f) * math.log(2.0), 26.0)
    (b,) = _ltz([x + L])  # x < -L  -> result 0
    u = _rescale(_as(x, x.fxp + n), F)  # x / 64
    # scale schedule: v_j = e^(x/2^(n-j)) <= e^(U/2^(n-j)); v_j^2 * 2^(2 F_j) < 2^61 (the
    # truncations are exact below 2^62; this is the only place that goes above 2^60)
    Fs = []
    for j in range(n):
        nxt = U / 2 ** (n - j - 1) / math.log(2.0)  # log2 of max v_{j+1}
        Fs.append(int(builtins.min(F, math.floor((61 - builtins.max(nxt, 0.0)) / 2))))
    v = _poly(u, _EXP_FULL, Fs[0])
    for j in range(n):
        out = Fs[j + 1] if j + 1 < n else f
        v = _mul1(v, v, out)
    return v - _mul1(b, v)
