"""Nonlinear functions on SecretArrays, independent of the secret-sharing protocol.

Everything here is written against the `SecretArray` API and the narrow `Protocol`
kernels every protocol implements (`mul`, `square`, `trunc`, `mul_public`, `msb`,
`map`), so it runs unchanged on semi2k and aby3. Security is that of the protocol
(semi-honest for semi2k, honest majority for aby3): no function reveals anything;
every branch is computed obliviously and selected by multiplying with secret 0/1
bits, so every party learns only the (public) shapes. Like every SecretArray operation
they are executed by all members of the device (compute parties and dealer).

Cost vocabulary used in the docstrings (per element):

* **cmp** - one secure comparison (`Protocol.msb`): semi2k ~37 B/party, 8 rounds.
  Several comparisons are always *batched* into one `msb` call, so k comparisons
  cost k x the bytes but still 8 rounds.
* **mul** - one product of two fixed-point secrets with truncation: semi2k 24 B/party,
  2 rounds (1 for the Beaver opening, 1 for the truncation).
* **xmul** - an *exact* product of an integer (0/1 or +-1) secret with any secret:
  no truncation, 16 B/party, 1 round.
* **sq** - a square with truncation (semi2k: 16 B, 2 rounds); **trunc** - a lone
  truncation (8 B, 1 round).

A protocol that offers fused product-and-truncate kernels (`mul_trunc`, `square_trunc`,
as aby3 does) gets them automatically; otherwise only the kernels above are used.

Products that do not depend on each other are batched into one round. Multiplying
by public constants and adding are free, and so is scaling by a power of two: a
SecretArray carries its own fixed-point scale (`fxp`), so `x / 2**k` is a relabel.
Internally the functions work at a higher precision `_fint(f)` (26 bits for the
default f = 18) and return results with the device's `frac_bits`.

Accuracy figures (max abs / rel error vs numpy float64 on the fixed-point input) were
measured with f = 18 on semi2k and aby3 (the same to two digits); the output itself has a
resolution of 2^-18 = 3.8e-6 ("ulp"), and truncations round down. The functions are tuned
for f = 18 and checked for f in [14, 24]; below f = 18 every error grows with the ulp.
tests/test_nonlinear.py holds the checks.
"""

from __future__ import annotations

import builtins
import math
from typing import Sequence

import numpy as np

from .secret_array import SecretArray, concatenate, stack

_U = np.uint64

__all__ = [
    "sign",
    "abs",
    "relu",
    "where",
    "select",
    "clip",
    "maximum",
    "minimum",
    "max",
    "min",
    "argmax",
    "argmin",
    "reciprocal",
    "div",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sigmoid",
    "log_sigmoid",
    "softplus",
    "softmax",
    "SIGMOID_MODES",
]

# ---------------------------------------------------------------------------------------
# Approximation coefficients. They were fitted offline as minimax (L-infinity) problems on
# dense grids, solved as linear programs (scipy.optimize.linprog, HiGHS); for the
# "squared-up" exponentials p(u)^(2^n) the nonlinear problem was solved by a few rounds of
# linearisation around the current p. They are literals on purpose: every party must
# encode bit-identical public constants, so nothing is fitted at import time.
# ---------------------------------------------------------------------------------------

#: p(u) ~ e^-u for u = t/8 in [0, 2]; p(u)^8 ~ e^-t on [0, 16] with max abs error 3.1e-6
#: (minimax of the *squared-up* result, not of p itself).
_EXP_NEG16 = (0.999999623279, -0.999947687215, 0.499026923782, -0.161176566712, 0.0302560222754)
#: p(u) ~ e^-u for u = t/16 in [0, 1]; p(u)^16 ~ e^-t on [0, 16] with max abs error 1.8e-7.
_EXP_NEG16_Q = (0.99999998885, -0.999996952905, 0.49988147836, -0.165264534975, 0.0357001655412)

#: p(u) ~ e^u for u = x/64; p(u)^64 ~ e^x on [-15, 26] with max relative error 3.0e-6.
_EXP_FULL = (1.00000000954, 1.0000009098, 0.49999858554, 0.166610594427, 0.0417497161225, 0.0090478734558)

#: 1/(1+e) for e in [0, 1] as a polynomial in w = 2e - 1; max abs error 1.1e-6.
_RECIP_1P = (
    0.666665598317, -0.222219351101, 0.0741071995694, -0.0247227520704,
    0.00807082569831, -0.00264937732762, 0.00115530522831, -0.000408519506941,
)

#: log(y) for y in [1, 2] as a polynomial in w = 2y - 3 (so also log(1+e), e in [0,1]); abs error 1.8e-7.
_LOG_12 = (
    0.405465283126, 0.333332997859, -0.0555612932031, 0.0123497768067,
    -0.00305798776644, 0.000809596270616, -0.000272232739717, 8.12193417649e-05,
)

#: initial guess for 1/y, y in [1, 16], in w = y/8 - 17/16; max relative error 0.034.
_RECIP_INIT = (
    0.113696136445, -0.10700812997, 0.244562212762, -0.230176178812,
    -0.601702783811, 0.566308420878, 0.956744920291, -0.900465740031,
)

#: initial guess for 1/sqrt(y), y in [1, 16], in w = y/8 - 17/16; max relative error 0.025.
_RSQRT_INIT = (0.350620560499, -0.189152285811, -0.0169523968679, 0.12340884593, 0.35427032839, -0.400426330829)

#: sigmoid(x) - 1/2 ~ u r(u^2), u = x/8, an odd degree-13 minimax polynomial on |x| <= 53/8;
#: beyond, the output saturates at 1/2 +- (_SIG_POLY_SAT - 1/2). Max abs error 6.8e-4 overall.
_SIG_POLY_T = 6.625
_SIG_POLY = (1.98561389757, -9.57058681284, 42.3242923784, -124.731557356, 219.895782096, -207.462020922, 80.1376301021)
_SIG_POLY_SAT = 0.999337488791

#: seg3: clip(1/2 + a x, 0, 1) with the minimax slope a = 725/4096 (max abs error 0.0561).
_SEG3_NUM, _SEG3_SHIFT = 725, 12

SIGMOID_MODES = ("accurate", "exp", "poly", "seg3")


# ---------------------------------------------------------------------------------------
# Raw helpers: fixed-point scales, batched products/truncations/comparisons.
# ---------------------------------------------------------------------------------------


def _fint(x: SecretArray) -> int:
    """Internal fractional bits: f + 8 clamped to [20, 28] (26 for the default f = 18)."""
    return int(np.clip(x.device.frac_bits + 8, 20, 28))


def _as(x: SecretArray, fxp: int) -> SecretArray:
    """Same ring value, read with a different scale (free)."""
    return SecretArray(x.device, x.share, x.shape, fxp)


def _size(shape) -> int:
    return int(np.prod(shape)) if shape else 1


def _secret(x) -> bool:
    return isinstance(x, SecretArray)


def _zeros(like: SecretArray, shape, fxp: int = 0) -> SecretArray:
    """A sharing of zeros (every share is 0; free)."""
    shape = tuple(shape)
    nd = len(like.shape)
    share = like.proto.map(lambda s: np.zeros(s.shape[: s.ndim - nd] + shape, dtype=_U), like.share)
    return SecretArray(like.device, share, shape, fxp)


def _fx(x: SecretArray) -> SecretArray:
    """Integer secrets are lifted to the device's fixed point (free)."""
    return x if x.fxp else x.astype_fxp()


def _pubmul(x: SecretArray, c, bits: int) -> SecretArray:
    """x * c for a public real c encoded with `bits` fractional bits; no truncation (fxp grows by bits)."""
    c = np.asarray(c, dtype=np.float64)
    enc = np.rint(c * float(1 << bits))
    if enc.size and np.max(np.abs(enc)) >= 2.0**62:
        raise OverflowError("public coefficient too large for the ring")
    shape = np.broadcast_shapes(x.shape, c.shape)
    share = x.proto.mul_public(x.share, enc.astype(np.int64).view(_U))
    return SecretArray(x.device, share, shape, x.fxp + bits)


def _cat(xs: Sequence[SecretArray]) -> SecretArray:
    """Flatten and concatenate raw ring values (scales ignored)."""
    flat = [_as(x, 0).reshape(-1) for x in xs]
    return flat[0] if len(flat) == 1 else concatenate(flat, axis=0)


def _uncat(y: SecretArray, shapes, fxps) -> list[SecretArray]:
    out, o = [], 0
    for shp, fx in zip(shapes, fxps):
        n = _size(shp)
        out.append(_as(y[o : o + n].reshape(tuple(shp)), fx))
        o += n
    return out


def _trunc(items: Sequence[tuple[SecretArray, int]]) -> list[SecretArray]:
    """Bring each x to scale `fxp`: up is free, down is a truncation. Truncations by the same
    number of bits share one round; each distinct shift costs one round."""
    out: list = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for i, (x, fxp) in enumerate(items):
        if fxp is None or fxp == x.fxp:
            out[i] = x
        elif fxp > x.fxp:
            out[i] = SecretArray(x.device, x.proto.mul_public(x.share, _U(1 << (fxp - x.fxp))), x.shape, fxp)
        else:
            groups.setdefault(x.fxp - fxp, []).append(i)
    for bits, idx in groups.items():
        xs = [items[i][0] for i in idx]
        tgt = [items[i][1] for i in idx]
        if sum(_size(x.shape) for x in xs) == 0:
            for i, x, t in zip(idx, xs, tgt):
                out[i] = _as(x, t)
            continue
        if len(xs) == 1:
            x = xs[0]
            out[idx[0]] = SecretArray(x.device, x.proto.trunc(x.share, bits, x.shape), x.shape, tgt[0])
            continue
        cat = _cat(xs)
        share = cat.proto.trunc(cat.share, bits, cat.shape)
        res = _uncat(SecretArray(cat.device, share, cat.shape, 0), [x.shape for x in xs], tgt)
        for i, r in zip(idx, res):
            out[i] = r
    return out


def _rescale(x: SecretArray, fxp: int) -> SecretArray:
    return _trunc([(x, fxp)])[0]


def _mul(pairs: Sequence[tuple[SecretArray, SecretArray, int | None]]) -> list[SecretArray]:
    """Products a*b of several independent pairs in ONE multiplication round.

    Each result has scale `out` (a truncation round follows if out < a.fxp + b.fxp; pairs
    with the same shift share it) or a.fxp + b.fxp when out is None (exact, e.g. bit * x).
    The caller guarantees |a*b| * 2^(a.fxp+b.fxp) < 2^60 (the protocols are exact below 2^62;
    only exp's last squarings go up to 2^61).
    A protocol that offers fused kernels (`mul_trunc`, `square_trunc`, e.g. aby3) gets them
    when every pair is truncated by the same shift."""
    pairs = list(pairs)
    dev = pairs[0][0].device
    proto = dev.proto
    shapes = [np.broadcast_shapes(a.shape, b.shape) for a, b, _ in pairs]
    fxps = [a.fxp + b.fxp for a, b, _ in pairs]
    outs = [fx if out is None else out for (_, _, out), fx in zip(pairs, fxps)]
    total = sum(_size(s) for s in shapes)
    squares = all(a is b for a, b, _ in pairs)
    shifts = {fx - o for fx, o in zip(fxps, outs)}
    fused = None
    if len(shifts) == 1 and builtins.min(shifts) > 0 and total:
        fused = getattr(proto, "square_trunc" if squares else "mul_trunc", None)
    if total == 0:
        return [_zeros(pairs[0][0], s, o) for s, o in zip(shapes, outs)]
    if len(pairs) == 1:
        a, b, _ = pairs[0]
        if fused is not None:
            bits = fxps[0] - outs[0]
            share = fused(a.share, a.shape, bits) if squares else fused(a.share, b.share, a.shape, b.shape, bits)
            return [SecretArray(dev, share, shapes[0], outs[0])]
        share = proto.square(a.share, a.shape) if squares else proto.mul(a.share, b.share, a.shape, b.shape)
        prods = [SecretArray(dev, share, shapes[0], fxps[0])]
    else:
        A = _cat([a if a.shape == s else a.broadcast_to(s) for (a, _, _), s in zip(pairs, shapes)])
        B = None if squares else _cat([b if b.shape == s else b.broadcast_to(s) for (_, b, _), s in zip(pairs, shapes)])
        if fused is not None:
            bits = next(iter(shifts))
            share = fused(A.share, A.shape, bits) if squares else fused(A.share, B.share, A.shape, B.shape, bits)
            return _uncat(SecretArray(dev, share, A.shape, 0), shapes, outs)
        share = proto.square(A.share, A.shape) if squares else proto.mul(A.share, B.share, A.shape, B.shape)
        prods = _uncat(SecretArray(dev, share, A.shape, 0), shapes, fxps)
    return _trunc([(p, out) for p, out in zip(prods, outs)])


def _mul1(a: SecretArray, b: SecretArray, out: int | None = None) -> SecretArray:
    return _mul([(a, b, out)])[0]


def _ltz(xs: Sequence[SecretArray]) -> list[SecretArray]:
    """[x < 0] for several secrets in ONE batched comparison (8 rounds); integer 0/1 secrets."""
    xs = list(xs)
    if sum(_size(x.shape) for x in xs) == 0:
        return [_zeros(x, x.shape) for x in xs]
    proto = xs[0].proto
    if len(xs) == 1:
        x = xs[0]
        return [SecretArray(x.device, proto.msb(x.share, x.shape), x.shape, 0)]
    cat = _cat(xs)
    bits = SecretArray(cat.device, proto.msb(cat.share, cat.shape), cat.shape, 0)
    return _uncat(bits, [x.shape for x in xs], [0] * len(xs))


def _lincomb(powers: dict, coeffs, F: int, C: int | None = None, add=None) -> SecretArray:
    """c0 + sum_k c_k w^k at scale F + C: powers[k] are at scale F, coefficients get C bits
    (default C = F). Free: public multiplications without truncation."""
    C = F if C is None else C
    acc = None
    for k, c in enumerate(coeffs):
        if k == 0 or c == 0:
            continue
        t = _pubmul(powers[k], c, C)
        acc = t if acc is None else acc + t
    if acc is None:
        acc = _pubmul(powers[1], 0.0, C)
    acc = acc + float(coeffs[0])
    if add is not None:
        acc = acc + add
    return acc


def _coef_bits(coeffs, F: int) -> int:
    """Coefficient precision C such that any partial sum (bounded by sum |c_k| for |w| <= 1)
    stays below 2^58 at scale F + C."""
    B = float(np.sum(np.abs(coeffs)))
    return int(builtins.min(F, 58 - F - math.ceil(math.log2(builtins.max(B, 1.0)))))


def _poly(w: SecretArray, coeffs, out: int, add=None) -> SecretArray:
    """Evaluate sum_k coeffs[k] w^k (|w| <= 1, w at the internal scale F) in few rounds.

    Paterson-Stockmeyer style, all linear combinations free (coefficients with C <= F bits,
    see _coef_bits): degree <= 3 uses w^2 (sq) and w^3 (mul) then one truncation (5 rounds);
    degree 4-5 computes q0 + w^3 q1 with 3 products (6 rounds); degree 6-7 computes
    q0 + w^4 q1 with 4 products and one extra truncation (7 rounds). `add` (a secret at
    scale <= F + C) is added before the final truncation."""
    F = w.fxp
    C = _coef_bits(coeffs, F)
    d = len(coeffs) - 1
    if d <= 1:
        return _rescale(_lincomb({1: w}, coeffs, F, C, add), out)
    w2 = _mul1(w, w, F)
    if d <= 3:
        pw = {1: w, 2: w2}
        if d == 3:
            pw[3] = _mul1(w, w2, F)
        return _rescale(_lincomb(pw, coeffs, F, C, add), out)
    if d <= 5:
        q1 = _lincomb({1: w, 2: w2}, coeffs[3:], F, C)
        w3_raw = _mul1(w, w2, None)
        w3, q1 = _trunc([(w3_raw, F), (q1, C)])  # both shift by F: one round
        q0 = _lincomb({1: w, 2: w2}, coeffs[:3], F, C, add)
        hi = _mul1(w3, q1, None)  # scale F + C, like q0
        return _rescale(q0 + hi, out)
    if d <= 7:
        w3, w4 = _mul([(w, w2, F), (w2, w2, F)])
        pw = {1: w, 2: w2, 3: w3}
        q1 = _rescale(_lincomb(pw, coeffs[4:], F, C), C)
        q0 = _lincomb(pw, coeffs[:4], F, C, add)
        hi = _mul1(w4, q1, None)  # scale F + C, like q0
        return _rescale(q0 + hi, out)
    raise ValueError("polynomials of degree > 7 are not supported")


def _axis_last(x: SecretArray, axis: int) -> SecretArray:
    nd = len(x.shape)
    ax = axis % nd
    if ax == nd - 1:
        return x
    order = [i for i in range(nd) if i != ax] + [ax]
    return x.transpose(order)


def _axis_back(x: SecretArray, axis: int) -> SecretArray:
    """Inverse of _axis_last for an array that still has the moved axis at the end."""
    nd = len(x.shape)
    ax = axis % nd
    if ax == nd - 1:
        return x
    order = list(range(nd - 1))
    order.insert(ax, nd - 1)
    return x.transpose(order)


# ---------------------------------------------------------------------------------------
# Sign, selection, clipping
# ---------------------------------------------------------------------------------------


def sign(x: SecretArray) -> SecretArray:
    """numpy.sign: integer secret in {-1, 0, 1}.

    Cost: 2 cmp in one batch (semi2k 74 B/party, 8 rounds). Exact for every encodable x."""
    neg, pos = _ltz([x, -x])
    return pos - neg


def abs(x: SecretArray) -> SecretArray:  # noqa: A001 - numpy-style name
    """|x|. Cost: 1 cmp + 1 xmul (semi2k 53 B/party, 9 rounds). Exact for every encodable x."""
    (s,) = _ltz([x])
    return _mul1(1 - 2 * s, x)


def relu(x: SecretArray) -> SecretArray:
    """max(x, 0). Cost: 1 cmp + 1 xmul (semi2k 53 B/party, 9 rounds). Exact."""
    (s,) = _ltz([x])
    return x - _mul1(s, x)


def where(cond: SecretArray, a, b) -> SecretArray:
    """Elementwise `a if cond else b` for an integer 0/1 secret `cond` (e.g. a comparison result).

    `a` and `b` may be secrets or public arrays/scalars; broadcasting like numpy.where. Cost:
    1 xmul (1 round) if a or b is secret; free if both are public. Exact."""
    if not _secret(cond):  # public condition: plain masking, free
        c = np.asarray(cond).astype(bool)
        if not _secret(a) and not _secret(b):
            return np.where(c, a, b)
        ci = c.astype(np.int64)
        ta = a * ci if _secret(a) else np.where(c, a, 0)
        tb = b * (1 - ci) if _secret(b) else np.where(c, 0, b)
        return ta + tb if _secret(ta) else tb + ta
    if cond.fxp:
        raise TypeError("where(): cond must be an integer 0/1 secret (e.g. x < y), got a fixed-point secret")
    a = a if _secret(a) else cond._coerce(a)
    b = b if _secret(b) else cond._coerce(b)
    if not _secret(a) and not _secret(b):
        return cond * (np.asarray(a) - np.asarray(b)) + np.asarray(b)  # public difference: free
    d = a - b if _secret(a) else -(b - a)
    return _mul1(cond, d) + b


select = where


def clip(x: SecretArray, lo=None, hi=None) -> SecretArray:
    """numpy.clip with public or secret bounds (either may be None; lo <= hi).

    Cost: 1 cmp per bound (one batch, 8 rounds) + 1 xmul per bound (one round): semi2k
    106 B/party for two bounds. Exact."""
    if lo is None and hi is None:
        return x
    if lo is not None and hi is not None and not _secret(lo) and not _secret(hi) and np.any(np.asarray(lo) > np.asarray(hi)):
        raise ValueError("clip: lo must be <= hi")
    lanes, diffs = [], []
    if lo is not None:
        lanes.append(x - lo)  # x < lo
        diffs.append(lo - x)
    if hi is not None:
        lanes.append(-(x - hi))  # x > hi
        diffs.append(hi - x)
    bits = _ltz(lanes)
    prods = _mul([(b, d, None) for b, d in zip(bits, diffs)])
    out = x
    for p in prods:
        out = out + p
    return out


def maximum(a, b) -> SecretArray:
    """Elementwise max of two secrets (or a secret and a public array). Cost: 1 cmp + 1 xmul. Exact."""
    if not _secret(a):
        a, b = b, a
    d = b - a
    (c,) = _ltz([-d])  # a < b
    return a + _mul1(c, d)


def minimum(a, b) -> SecretArray:
    """Elementwise min of two secrets (or a secret and a public array). Cost: 1 cmp + 1 xmul. Exact."""
    if not _secret(a):
        a, b = b, a
    d = b - a
    (c,) = _ltz([d])  # b < a
    return a + _mul1(c, d)


# ---------------------------------------------------------------------------------------
# Reductions: max / min / argmax / argmin along an axis (log-depth tournament)
# ---------------------------------------------------------------------------------------


def _tournament(x: SecretArray, want_idx: bool):
    """Reduce the last axis. Returns (value (..., 1), index (..., 1) or None, levels).

    Level l compares neighbours (2i, 2i+1) of the current row: both candidates come from
    contiguous, ordered blocks of the input, and a tie keeps the left one, so the winner
    is the first maximum (numpy's tie rule). An odd last element passes through."""
    n = x.shape[-1]
    vals = x
    idx = None  # secret index (after level 0)
    levels = []
    pub_idx = np.arange(n, dtype=np.int64)
    while vals.shape[-1] > 1:
        m = vals.shape[-1]
        p = m // 2
        L = vals[..., 0 : 2 * p : 2]
        R = vals[..., 1 : 2 * p : 2]
        d = R - L
        (c,) = _ltz([-d])  # L < R  (strict: ties keep L)
        pairs = [(c, d, None)]
        if want_idx:
            if idx is None:
                # public indices: new = iL + c * (iR - iL), iR - iL = 1
                iL = pub_idx[0 : 2 * p : 2]
                new_idx = c + iL
            else:
                IL = idx[..., 0 : 2 * p : 2]
                IR = idx[..., 1 : 2 * p : 2]
                pairs.append((c, IR - IL, None))
        prods = _mul(pairs)
        win = L + prods[0]
        if want_idx and idx is not None:
            new_idx = IL + prods[1]
        if m % 2:
            win = concatenate([win, vals[..., m - 1 : m]], axis=-1)
            if want_idx:
                tail = idx[..., m - 1 : m] if idx is not None else _zeros(c, c.shape[:-1] + (1,)) + int(pub_idx[m - 1])
                new_idx = concatenate([new_idx, tail], axis=-1)
        levels.append((c, m, p))
        vals = win
        if want_idx:
            idx = new_idx
    if want_idx and idx is None:  # n == 1
        idx = _zeros(x, x.shape[:-1] + (1,))
    return vals, idx, levels


def _one_hot_from_levels(x: SecretArray, levels) -> SecretArray:
    """Top-down: weight of a block = weight of its parent times the path bit (xmul per level)."""
    W = None  # None == public 1 (root)
    for c, m, p in reversed(levels):
        if W is None:
            right = c
            left = 1 - c
            head = None
        else:
            Wp = W[..., :p]
            right = _mul1(Wp, c)
            left = Wp - right
            head = W[..., p:] if m % 2 else None
        kids = stack([left, right], axis=-1).reshape(c.shape[:-1] + (2 * p,))
        if m % 2:
            tail = head if head is not None else _zeros(c, c.shape[:-1] + (1,)) + 1
            kids = concatenate([kids, tail], axis=-1)
        W = kids
    if W is None:  # n == 1
        W = _zeros(x, x.shape) + 1
    return W


def _reduce(x: SecretArray, axis, keepdims: bool, kind: str, one_hot: bool = False):
    if axis is None:
        shape0 = x.shape
        y = x.reshape(-1)
        ax = 0
    else:
        shape0 = None
        if not isinstance(axis, (int, np.integer)):
            raise TypeError("axis must be an int or None")
        if not -len(x.shape) <= int(axis) < len(x.shape):
            raise ValueError(f"{kind}: axis {axis} is out of bounds for shape {x.shape}")
        ax = int(axis) % len(x.shape)
        y = _axis_last(x, ax)
    if y.shape[-1] == 0:
        raise ValueError(f"{kind}: zero-size axis has no maximum/minimum")
    neg = kind in ("min", "argmin")
    if neg:
        y = -y
    want_idx = kind in ("argmax", "argmin") and not one_hot
    vals, idx, levels = _tournament(y, want_idx)
    if kind in ("argmax", "argmin") and one_hot:
        oh = _one_hot_from_levels(y, levels)
        if axis is None:
            return oh.reshape(shape0)
        return _axis_back(oh, ax)
    res = idx if want_idx else (-vals if neg else vals)
    # res has a trailing axis of length 1 where the reduced axis was
    if axis is None:
        return res.reshape((1,) * len(shape0)) if keepdims else res.reshape(())
    if keepdims:
        return _axis_back(res, ax)
    return res.squeeze(-1) if len(res.shape) > 1 else res.reshape(())


def max(x: SecretArray, axis=None, keepdims: bool = False) -> SecretArray:  # noqa: A001
    """numpy.max along an axis (None: all elements).

    Tournament: ceil(log2 n) levels, each 1 cmp + 1 xmul on half the remaining elements
    (n-1 comparisons in all); 9 rounds per level (semi2k, n = 16: 797 B/party per result,
    36 rounds). Exact (the result is one of the inputs)."""
    return _reduce(x, axis, keepdims, "max")


def min(x: SecretArray, axis=None, keepdims: bool = False) -> SecretArray:  # noqa: A001
    """numpy.min along an axis; same cost as max. Exact."""
    return _reduce(x, axis, keepdims, "min")


def argmax(x: SecretArray, axis=None, keepdims: bool = False, one_hot: bool = False) -> SecretArray:
    """Index of the maximum along `axis`, ties -> first index (numpy semantics).

    Default: an integer secret holding the index (shape of x without the axis, or the flat
    index for axis=None). The index rides along the max tournament in the same rounds (one
    extra xmul lane per pair from level 2 on; n = 16: 909 B/party per result, 36 rounds).
    `one_hot=True` instead returns an integer 0/1 secret of x's shape with a single 1 at the
    (first) maximum of each slice: the tournament's comparison bits are multiplied down the
    tree (about n xmuls, ceil(log2 n) - 1 more rounds; n = 16: 1021 B, 39 rounds). Exact."""
    return _reduce(x, axis, keepdims, "argmax", one_hot)


def argmin(x: SecretArray, axis=None, keepdims: bool = False, one_hot: bool = False) -> SecretArray:
    """Index (or one-hot) of the minimum along `axis`, ties -> first index. Same cost as argmax."""
    return _reduce(x, axis, keepdims, "argmin", one_hot)


# ---------------------------------------------------------------------------------------
# Power-of-two normalisation (shared by reciprocal, sqrt, rsqrt, log)
# ---------------------------------------------------------------------------------------

_STEP = 4  # bucket width: x = 2^k * y with y in [1, 16)


def _exponent_range(x: SecretArray, bounds, even: bool = False) -> tuple[int, int]:
    """Bucket exponents [kmin, kmax): default covers 2^-min(f,18) <= x < 2^(62-2f) (down to one
    ulp for f <= 18; up to the values that can still be multiplied by something >= 1)."""
    f = x.device.frac_bits
    if bounds is None:
        kmin, kmax = -builtins.min(f, 18), 62 - 2 * f
    else:
        lo, hi = float(bounds[0]), float(bounds[1])
        if not (0 < lo <= hi):
            raise ValueError("bounds must be 0 < lo <= hi")
        kmin = math.floor(math.log2(lo))
        kmax = builtins.max(kmin + 1, math.ceil(math.log2(hi)))
    if even and kmin % 2:
        kmin -= 1
    return kmin, kmax


def _buckets(x: SecretArray, kmin: int, kmax: int):
    """Bucket lower exponents ks and bits c[..., j-1] = [x >= 2^ks[j]] (one batched comparison)."""
    ks = list(range(kmin, kmax, _STEP))  # the last bucket [ks[-1], ks[-1] + 4) reaches kmax
    if len(ks) == 1:
        return ks, None
    thr = np.array([2.0**k for k in ks[1:]])
    lanes = x.expand_dims(-1) - thr  # shape (..., J-1), one comparison per threshold
    (lt,) = _ltz([lanes])
    return ks, 1 - lt


def _bucket_value(ks, c, vals, bits: int):
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
        raise OverflowError("bucket value too large for the ring")
    enc = enc.astype(np.int64)
    d = np.diff(enc, axis=-1)
    share = c.proto.mul_public(c.share, d.view(_U))
    term = SecretArray(c.device, share, np.broadcast_shapes(c.shape, d.shape), bits).sum(axis=-1)
    return term + _as_public(enc[..., 0], bits)


def _as_public(enc: np.ndarray, bits: int) -> np.ndarray:
    """Public value whose encoding with `bits` fractional bits is exactly `enc`."""
    return np.asarray(enc, dtype=np.float64) / float(1 << bits)


def _pow2(ks, sign=-1.0):
    return np.array([2.0 ** (sign * k) for k in ks])


def _sign_abs(x: SecretArray):
    (s,) = _ltz([x])
    m = 1 - 2 * s
    return m, _mul1(m, x)


def _normalize(x: SecretArray, P, Fp: int, extra=()):
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


def _times_factor(r: SecretArray, P, Fp: int, out: int) -> SecretArray:
    """r * P for a bucket value P (secret at scale Fp, or public)."""
    if _secret(P):
        return _mul1(r, P, out)
    P = np.asarray(P, dtype=np.float64)
    if P.ndim == 0 and P > 0 and float(math.log2(P)).is_integer():
        return _rescale(_as(r, r.fxp - int(math.log2(P))), out)  # power of two: relabel
    return _rescale(_pubmul(r, P, Fp), out)


def _recip_parts(x: SecretArray, positive: bool, bounds, numer=None):
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
            raise OverflowError("division: numerator too large for the fixed-point range")
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


def _apply_factors(r: SecretArray, factors, out: int) -> SecretArray:
    sec = [(r, Q, out) for Q, _ in factors if _secret(Q)]
    res = _mul(sec) if sec else []
    res += [_times_factor(r, Q, b, out) for Q, b in factors if not _secret(Q)]
    acc = res[0]
    for t in res[1:]:
        acc = acc + t
    return acc


def reciprocal(x: SecretArray, positive: bool = False, bounds=None) -> SecretArray:
    """1/x for 2^-min(f,18) <= |x| < 2^(62-2f) (f = frac_bits; [3.8e-6, 6.7e7) for f = 18).

    x = +-2^k y with y in [1, 16): the bucket k comes from ONE batched comparison of |x|
    against the thresholds 2^(-18+4j) (10 of them for f = 18), and the factor 2^-k is a
    public dot product of the bucket bits (free); then a degree-7 minimax guess for 1/y
    (relative error 0.034) and two Newton steps r <- r (2 - y r) (1.3e-6).
    `positive=True` skips the sign (x > 0 promised); `bounds=(lo, hi)` (public,
    0 < lo <= |x| <= hi) restricts the thresholds to that range (none if hi <= 16 lo).

    Cost (semi2k, f = 18): 1 cmp (sign) + 1 xmul (|x|) + 10 cmp (thresholds) + 1 mul
    (normalise, the signed factor rides along) + 4 mul (guess) + 4 mul (Newton) + 1 mul:
    680 B/party, 36 rounds; positive=True: 611 B, 27 rounds.
    Error (measured): relative 4.2e-6 where |1/x| >= 1, 1.1 ulp absolute below. x = 0
    gives a meaningless value, as division by zero must."""
    return div(1.0, x, positive, bounds)


def div(a, b, positive: bool = False, bounds=None) -> SecretArray:
    """a / b elementwise (numpy broadcasting) for a secret b and a secret or public a
    (`a / b` and `2.5 / b` on SecretArrays call this).

    Same normalisation of b as `reciprocal` (same range and options). A public numerator is
    folded into the public bucket factor: same cost and accuracy as reciprocal, losing one
    bit of relative precision per doubling of max|a| above 1 (2.5/b: 8.3e-6). A secret
    numerator costs one more level, (a * 1/y) * (+-2^-k) with the factor split in two lanes
    so that a * 1/y keeps f+4 bits (744 B/party, 39 rounds); it is valid while
    |a| < 2^(56-2f) and |a/b| < 2^(56-2f) (2^20 ~ 1e6 for f = 18); error: relative 4e-6 plus
    about one ulp of a amplified like the quotient (2^-f / |b|)."""
    f = (b.device if _secret(b) else a.device).frac_bits
    if not _secret(b):
        return a * (1.0 / np.asarray(b, dtype=np.float64))
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


def rsqrt(x: SecretArray, bounds=None) -> SecretArray:
    """1/sqrt(x) for 2^-min(f,18) <= x < 2^(62-2f).

    x = 2^k y with k even and y in [1, 16) (one batched comparison, 10 thresholds for
    f = 18), a degree-5 minimax guess (relative error 0.025) and two Newton steps
    r <- r (3 - y r^2)/2 (two product levels each), times the bucket factor 2^(-k/2).
    Cost (semi2k, f = 18): 10 cmp + 1 mul (normalise) + 3 mul (guess) + 6 mul (Newton)
    + 1 mul: 635 B/party, 26 rounds. Error (measured, 10^6 points): relative 4.7e-6 where
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


def sqrt(x: SecretArray, bounds=None) -> SecretArray:
    """sqrt(x) for 0 <= x < 2^(62-2f); sqrt(0) = 0 and inputs below 2^-min(f,18) give ~0.

    sqrt(x) = (x 2^(-k/2)) * rsqrt(y) with the normalisation of rsqrt; x 2^(-k/2) is
    computed in the normalisation round (a second truncation there). Cost (semi2k, f = 18):
    659 B/party, 27 rounds. Error (measured, 10^6 points): relative 4.9e-6 where the result
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


def log(x: SecretArray, bounds=None) -> SecretArray:
    """Natural log for 2^-min(f,18) <= x < 2^(62-2f) (other inputs give meaningless values).

    Two-stage normalisation x = 2^(k1+k2) y with y in [1, 2): 10 thresholds (f = 18), then
    3 thresholds (2, 4, 8) on the normalised value, then a degree-7 minimax polynomial for
    log(y) (abs error 1.8e-7) plus (k1+k2) ln 2, a public dot product of the bits (free).
    Cost (semi2k, f = 18): 13 cmp (2 x 8 rounds) + 1 mul + 1 exact mul + 4 mul:
    619 B/party, 26 rounds. Error (measured): 1.0 ulp absolute (3.9e-6), relative 3.7e-6
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
    Cost (semi2k, f = 18): 1 cmp (lower cut) + 3 mul (p) + 6 sq + 1 xmul: 221 B/party,
    27 rounds. Error (measured, 10^6 points): relative 1.1e-5 where e^x >= 1 (the last
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


# ---------------------------------------------------------------------------------------
# Sigmoid family and softmax
# ---------------------------------------------------------------------------------------


def _abs_clip(x: SecretArray, T: int, extra=()):
    """One batched comparison of 3 lanes: s = [x<0], h = [x>T], l = [x<-T]; returns
    (s, m = 1-2s, tc = min(|x|, T), [s*e for e in extra]). tc comes from a single xmul,
    c*x + (h+l)*T with c = 1-2s-h+l (0 when clipped), so it is exact for every encodable x."""
    T = int(T)
    s, above, below = _ltz([x, T - x, x + T])
    m = 1 - 2 * s
    cfac = m - above + below
    prods = _mul([(cfac, x, None)] + [(s, e, None) for e in extra])
    tc = prods[0] + (above + below) * T
    return s, m, tc, prods[1:]


def _sigmoid_accurate(x: SecretArray) -> SecretArray:
    f = x.device.frac_bits
    s, m, tc, _ = _abs_clip(x, 16)
    e = _exp_neg(tc)  # e^-|x| (clipped at |x| = 16: error <= 1.1e-7)
    w = 2 * e - 1
    g = _poly(w, _RECIP_1P, f)  # 1/(1+e)
    return s + _mul1(m, g)


def _sigmoid_poly(x: SecretArray) -> SecretArray:
    f = x.device.frac_bits
    F = _fint(x)
    T = _SIG_POLY_T
    lo, hi = _ltz([x + T, T - x])  # x < -T, x > T
    # q is odd (q(0) = 0), so q(k u) = k q(u) for k in {0,1}: zero the input outside [-T, T]
    xk = _mul1(1 - lo - hi, x)
    u = _rescale(_as(xk, xk.fxp + 3), F)  # x/8 in [-0.83, 0.83]
    v = _mul1(u, u, F)
    q = _mul1(u, _poly(v, _SIG_POLY, F), f)
    return q + 0.5 + (hi - lo) * (_SIG_POLY_SAT - 0.5)


def _sigmoid_seg3(x: SecretArray) -> SecretArray:
    f = x.device.frac_bits
    a = _SEG3_NUM / float(1 << _SEG3_SHIFT)
    edge = 0.5 / a
    lo, hi = _ltz([x + edge, edge - x])  # x < -edge, x > edge
    y = _as(x * _SEG3_NUM, x.fxp + _SEG3_SHIFT) + 0.5  # 1/2 + a x (free: integer mul + relabel)
    k = lo + hi
    z = y - _mul1(k, y) + hi  # exact even where y overflowed (then k = 1)
    return _rescale(z, f)


def sigmoid(x: SecretArray, mode: str = "accurate") -> SecretArray:
    """Logistic function 1/(1+e^-x), elementwise. Valid for every encodable x.

    mode:

    * ``"accurate"`` (alias ``"exp"``, default): s + (1-2s) / (1 + e^-|x|), s = [x < 0].
      3 cmp in one batch ([x<0], [x>16], [x<-16]) + 1 xmul giving min(|x|, 16);
      e^-|x| = p(|x|/8)^8 (quartic p fitted to the squared-up error, 3 squarings);
      1/(1+e) as a degree-7 minimax polynomial in 2e-1 (no division needed: 1+e is in
      [1, 2]); 1 xmul for the sign. semi2k: 359 B/party, 28 rounds. Max abs error
      (measured, 10^6 points) 7.9e-6 = 2.1 ulp (design: 3.1e-6 + 1.1e-6 + rounding).
    * ``"poly"``: clipped odd polynomial 1/2 + q(x) for |x| <= 6.625 (q odd of degree 13,
      minimax, in x/8), saturating to 1/2 +- 0.49934 outside. 2 cmp (one batch) + 1 xmul
      (zeroes x outside the range, so q never sees a large input) + 5 mul: 226 B/party,
      20 rounds. Max abs error 6.8e-4.
    * ``"seg3"``: clip(1/2 + a x, 0, 1) with the minimax slope a = 725/4096 = 0.177 (not 1/4
      or 1/8: error 0.056 instead of 0.12 / 0.13). 2 cmp + 1 xmul + 1 trunc: 98 B/party,
      10 rounds. Max abs error 0.056.

    Wall time for 10^6 elements, semi2k, 2 parties + dealer as processes over TLS on 2 cores
    (share + sigmoid + reveal), warm processes: accurate 1.7 s, poly 1.0 s, seg3 0.6 s; a
    fresh simulation adds 0.3-1 s (cold memory) and the shared machine varies by +-30%.
    """
    x = _fx(x)
    if mode in ("accurate", "exp"):
        return _sigmoid_accurate(x)
    if mode == "poly":
        return _sigmoid_poly(x)
    if mode == "seg3":
        return _sigmoid_seg3(x)
    raise ValueError(f"unknown sigmoid mode {mode!r}; choose one of {SIGMOID_MODES}")


def log_sigmoid(x: SecretArray) -> SecretArray:
    """log(sigmoid(x)) = min(x, 0) - log(1 + e^-|x|), stable for every encodable x.

    Same pipeline and cost as sigmoid(mode="accurate") (the product min(x, 0) = s x rides in
    the |x| round; log(1+e) is a degree-7 polynomial). semi2k: 359 B/party, 27 rounds. Max
    abs error (measured, 10^6 points) 7.1e-6."""
    x = _fx(x)
    f = x.device.frac_bits
    s, m, tc, (sx,) = _abs_clip(x, 16, extra=[x])
    e = _exp_neg(tc)
    w = 2 * e - 1
    h = _poly(w, _LOG_12, f)  # log(1 + e) = log(y), y = 1 + e in [1, 2], w = 2y - 3 = 2e - 1
    return sx - h


def softplus(x: SecretArray) -> SecretArray:
    """log(1 + e^x) = -log_sigmoid(-x). Same cost and accuracy as log_sigmoid."""
    return -log_sigmoid(-x)


def softmax(x: SecretArray, axis: int = -1) -> SecretArray:
    """Softmax along `axis`: e^(x - max) / sum e^(x - max).

    max: tournament (ceil(log2 n) levels of 1 cmp + 1 xmul, n-1 comparisons per slice);
    t = max - x >= 0; 1 cmp for t > 16 (those terms become exactly 0; their true value is
    < 1.2e-7); e^-t with the quartic variant of sigmoid's exp (abs error 1.8e-7, since the
    errors add up in the sum); the sum lies in [1, n], so its reciprocal needs only
    ceil(log2(n)/4) - 1 threshold comparisons (none for n <= 16) + guess + 2 Newton; one
    final mul. semi2k, n = 10: 274 B/party per element, 76 rounds. Max abs error (measured)
    3.8e-6 for n = 10, 6.8e-6 for n = 100."""
    x = _fx(x)
    f = x.device.frac_bits
    nd = len(x.shape)
    if nd == 0:
        return softmax(x.reshape(1), 0).reshape(())
    n = x.shape[axis % nd]
    if n == 0 or x.size == 0:
        return x
    mx = max(x, axis=axis, keepdims=True)
    t = mx - x
    (b,) = _ltz([16 - t])  # t > 16
    e = _exp_neg(t, precise=True)  # errors add up in the sum: use the quartic
    e = e - _mul1(b, e)  # exactly 0 where t > 16 (also kills any overflow there)
    S = e.sum(axis=axis, keepdims=True)  # in [1, n] (up to rounding)
    r, factors = _recip_parts(S, True, (1.0, builtins.max(n, 1)), 1.0)
    r = _apply_factors(r, factors, _fint(x))
    return _mul1(e, r, f)
