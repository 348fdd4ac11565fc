"""Sign, selection and clipping: sign, abs, relu, where/select, clip, maximum, minimum.

Comparisons give integer 0/1 secrets; selecting multiplies by them (an exact product,
no truncation), so every branch is computed and nothing is revealed. Costs use the
vocabulary of `jointml.mpc.functions` (cmp, xmul).

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([1.5, -2.0, 0.0])).to(mpc)
...     return relu(x).reveal(), sign(x).reveal(), where(x < 0, x * 10, 7.0).reveal()
>>> r, s, w = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
>>> r.tolist(), s.tolist(), w.tolist()
([1.5, 0.0, 0.0], [1, -1, 0], [7.0, -20.0, 7.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import ParameterError
from ..array import SecretArray, SecretTypeError
from .common import _ltz, _mul, _mul1, _secret

__all__ = ["sign", "abs", "relu", "where", "select", "clip", "maximum", "minimum"]


def sign(x: SecretArray) -> SecretArray:
    """numpy.sign: integer secret in {-1, 0, 1}.

    Cost: 2 cmp in one batch (semi2k 38 B/party, 6 rounds). Exact for every encodable x."""
    neg, pos = _ltz([x, -x])
    return pos - neg


def abs(x: SecretArray) -> SecretArray:  # noqa: A001 - numpy-style name
    """|x|. Cost: 1 cmp + 1 xmul (semi2k 35 B/party, 7 rounds). Exact for every encodable x."""
    (s,) = _ltz([x])
    return _mul1(1 - 2 * s, x)


def relu(x: SecretArray) -> SecretArray:
    """max(x, 0). Cost: 1 cmp + 1 xmul (semi2k 35 B/party, 7 rounds). Exact."""
    (s,) = _ltz([x])
    return x - _mul1(s, x)


def where(cond: Any, a: Any, b: Any) -> Any:
    """Elementwise `a if cond else b` for an integer 0/1 secret `cond` (e.g. a comparison result).

    `a` and `b` may be secrets or public arrays/scalars; broadcasting like numpy.where. Cost:
    1 xmul (1 round) if a or b is secret; free if both are public (then, with a public
    `cond` too, the result is a public ndarray). Exact."""
    if not _secret(cond):  # public condition: plain masking, free
        c = np.asarray(cond).astype(bool)
        if not _secret(a) and not _secret(b):
            return np.where(c, a, b)
        ci = c.astype(np.int64)
        ta = a * ci if _secret(a) else np.where(c, a, 0)
        tb = b * (1 - ci) if _secret(b) else np.where(c, 0, b)
        return ta + tb if _secret(ta) else tb + ta
    if cond.fxp:
        raise SecretTypeError("where(): cond must be an integer 0/1 secret (e.g. x < y), got a fixed-point secret", field="cond")
    a = a if _secret(a) else cond._coerce(a)
    b = b if _secret(b) else cond._coerce(b)
    if not _secret(a) and not _secret(b):
        return cond * (np.asarray(a) - np.asarray(b)) + np.asarray(b)  # public difference: free
    d = a - b if _secret(a) else -(b - a)
    return _mul1(cond, d) + b


select = where


def clip(x: SecretArray, lo: Any = None, hi: Any = None) -> SecretArray:
    """numpy.clip with public or secret bounds (either may be None; lo <= hi).

    Cost: 1 cmp per bound (one batch, 6 rounds) + 1 xmul per bound (one round): semi2k
    70 B/party and 7 rounds for two bounds. Exact."""
    if lo is None and hi is None:
        return x
    if lo is not None and hi is not None and not _secret(lo) and not _secret(hi) and np.any(np.asarray(lo) > np.asarray(hi)):
        raise ParameterError("clip: lo must be <= hi", field="lo")
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


def maximum(a: Any, b: Any) -> SecretArray:
    """Elementwise max of two secrets (or a secret and a public array). Cost: 1 cmp + 1 xmul. Exact."""
    if not _secret(a):
        a, b = b, a
    d = b - a
    (c,) = _ltz([-d])  # a < b
    out: SecretArray = a + _mul1(c, d)
    return out


def minimum(a: Any, b: Any) -> SecretArray:
    """Elementwise min of two secrets (or a secret and a public array). Cost: 1 cmp + 1 xmul. Exact."""
    if not _secret(a):
        a, b = b, a
    d = b - a
    (c,) = _ltz([d])  # b < a
    out: SecretArray = a + _mul1(c, d)
    return out
