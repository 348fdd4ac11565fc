"""Raw helpers of the secure functions: fixed-point scales, batched products,
truncations and comparisons, polynomial evaluation.

Everything in `jointml.mpc.functions` is written against the `SecretArray` API and the
`Protocol` kernels (`mul`, `square`, `trunc`, `mul_public`, `msb`, `map`, and the fused
`mul_trunc`/`square_trunc` where `Protocol.supports` says they are cheaper), so it runs
unchanged on every protocol. These helpers batch independent operations into one
kernel call (one round); they reveal nothing.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([0.5, -2.0])).to(mpc)
...     (lt,) = _ltz([x])
...     return lt.reveal()
>>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"].tolist()
[0, 1]
"""

from __future__ import annotations

import builtins
import math
from typing import Any, Sequence

import numpy as np

from ...core.errors import EncodingRangeError, ParameterError
from ..array import SecretArray, concatenate

_U = np.uint64


def _fint(x: SecretArray) -> int:
    """Internal fractional bits: f + 8 clamped to [20, 28] (26 for the default f = 18)."""
    return int(np.clip(x.device.frac_bits + 8, 20, 28))


def _as(x: SecretArray, fxp: int) -> SecretArray:
    """Same ring value, read with a different scale (free)."""
    return SecretArray(x.device, x.share, x.shape, fxp)


def _size(shape: Any) -> int:
    return int(np.prod(shape)) if shape else 1


def _secret(x: Any) -> bool:
    return isinstance(x, SecretArray)


def _zeros(like: SecretArray, shape: Any, fxp: int = 0) -> SecretArray:
    """A sharing of zeros (every share is 0; free)."""
    shape = tuple(shape)
    nd = len(like.shape)
    share = like.proto.map(lambda s: np.zeros(s.shape[: s.ndim - nd] + shape, dtype=_U), like.share)
    return SecretArray(like.device, share, shape, fxp)


def _fx(x: SecretArray) -> SecretArray:
    """Integer secrets are lifted to the device's fixed point (free)."""
    return x if x.fxp else x.astype_fxp()


def _pubmul(x: SecretArray, c: Any, bits: int) -> SecretArray:
    """x * c for a public real c encoded with `bits` fractional bits; no truncation (fxp grows by bits)."""
    c = np.asarray(c, dtype=np.float64)
    enc = np.rint(c * float(1 << bits))
    if enc.size and np.max(np.abs(enc)) >= 2.0**62:
        raise EncodingRangeError("public coefficient too large for the ring", field="coefficient")
    shape = np.broadcast_shapes(x.shape, c.shape)
    share = x.proto.mul_public(x.share, enc.astype(np.int64).view(_U))
    return SecretArray(x.device, share, shape, x.fxp + bits)


def _cat(xs: Sequence[SecretArray]) -> SecretArray:
    """Flatten and concatenate raw ring values (scales ignored)."""
    flat = [_as(x, 0).reshape(-1) for x in xs]
    return flat[0] if len(flat) == 1 else concatenate(flat, axis=0)


def _uncat(y: SecretArray, shapes: Any, fxps: Any) -> list[SecretArray]:
    out, o = [], 0
    for shp, fx in zip(shapes, fxps):
        n = _size(shp)
        out.append(_as(y[o : o + n].reshape(tuple(shp)), fx))
        o += n
    return out


def _trunc(items: Sequence[tuple[SecretArray, int]]) -> list[SecretArray]:
    """Bring each x to scale `fxp`: up is free, down is a truncation. Truncations by the same
    number of bits share one round; each distinct shift costs one round."""
    out: list[Any] = [None] * len(items)
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
    A protocol whose fused kernels are cheaper (`supports("mul_trunc")`, e.g. aby3) gets
    them when every pair is truncated by the same shift."""
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
        fused = getattr(proto, name) if proto.supports(name := "square_trunc" if squares else "mul_trunc") else None
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
        B: Any = None if squares else _cat([b if b.shape == s else b.broadcast_to(s) for (_, b, _), s in zip(pairs, shapes)])
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
    """[x < 0] for several secrets in ONE batched comparison (`Protocol.msb`: semi2k 6 rounds,
    aby3 8); integer 0/1 secrets."""
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


def _lincomb(powers: dict[int, SecretArray], coeffs: Any, F: int, C: int | None = None, add: Any = None) -> SecretArray:
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


def _coef_bits(coeffs: Any, F: int) -> int:
    """Coefficient precision C such that any partial sum (bounded by sum |c_k| for |w| <= 1)
    stays below 2^58 at scale F + C."""
    B = float(np.sum(np.abs(coeffs)))
    return int(builtins.min(F, 58 - F - math.ceil(math.log2(builtins.max(B, 1.0)))))


def _poly(w: SecretArray, coeffs: Any, out: int, add: Any = None) -> SecretArray:
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
    raise ParameterError("polynomials of degree > 7 are not supported", field="coeffs")


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
