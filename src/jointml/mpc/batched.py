"""Batched kernels: several independent operations in the rounds of one.

`reveal_many` opens several secrets in one message round (their shares are flattened and
concatenated into one opening); `mul_many` multiplies several independent pairs in one
multiplication round (and one truncation round per distinct shift); `ltz_many` compares
several secrets with zero in one comparison (semi2k 6 rounds, aby3 8, whatever their count).
The bytes are those of the separate calls (the protocols' costs are linear in the number
of elements); only the rounds shrink. The DSL's round-batching pass executes through these.

Security: exactly that of the separate operations (the same kernels on the concatenated
values); `reveal_many(xs, to)` reveals the listed values to `to` (every compute party if
None) and nothing else.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([1.5, -2.0])).to(mpc)
...     y = ctx.party("bob").run(lambda: np.array([[3.0]])).to(mpc)
...     ctx.reset_stats()
...     a, b = reveal_many([x * 2, y], to=None)
...     return a, b, ctx.stats()["rounds"]
>>> a, b, rounds = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
>>> a.tolist(), b.tolist(), rounds
([3.0, -4.0], [[3.0]], 1)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.errors import ParameterError
from .array import SecretArray, concatenate

__all__ = ["reveal_many", "mul_many", "ltz_many", "rescale_many"]


def _flat_cat(xs: Sequence[SecretArray]) -> SecretArray:
    """Flatten and concatenate the raw ring values (every scale read as 0: no rescaling)."""
    flat = [SecretArray(x.device, x.share, x.shape, 0).reshape(-1) for x in xs]
    return flat[0] if len(flat) == 1 else concatenate(flat, axis=0)


def _split(y: SecretArray, like: Sequence[SecretArray], fxps: Sequence[int]) -> list[SecretArray]:
    out, o = [], 0
    for x, fx in zip(like, fxps):
        n = x.size
        part = y[o : o + n].reshape(x.shape)
        out.append(SecretArray(part.device, part.share, part.shape, fx))
        o += n
    return out


def reveal_many(xs: Sequence[SecretArray], to: str | None = None) -> list[Any]:
    """Open several secrets of one device in one round; each result as `SecretArray.reveal(to)`
    would return it (ndarray at the compute parties for to=None, a PartyObject for a party)."""
    xs = list(xs)
    if not xs:
        return []
    if any(x.device is not xs[0].device for x in xs):
        raise ParameterError("reveal_many: every value must be on the same MPC device", field="xs")
    if len(xs) == 1:
        return [xs[0].reveal(to)]
    cat = _flat_cat(xs).reveal(to)
    from ..runtime.device import PartyObject

    raw = cat.value if isinstance(cat, PartyObject) and cat.is_local else (cat if not isinstance(cat, PartyObject)
                                                                          else None)
    outs: list[Any] = []
    o = 0
    for x in xs:
        val = None
        if raw is not None:
            part = np.asarray(raw[o : o + x.size]).reshape(x.shape).view(np.int64)
            val = part.astype(np.float64) / float(1 << x.fxp) if x.fxp else part.copy()
        o += x.size
        outs.append(val if to is None else PartyObject(x.device.ctx.party(to), val))
    return outs


def mul_many(pairs: Sequence[tuple[SecretArray, SecretArray]]) -> list[SecretArray]:
    """a * b for several independent pairs of secrets (numpy broadcasting within a pair) in one
    multiplication round; fixed-point products are truncated back to the device's scale
    (`Protocol.trunc_product`: one round with the dealer's pair, none with semi2k's opt-in
    local truncation), the pairs with the same shift together.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     x = ctx.party("alice").run(lambda: np.array([1.5, -2.0])).to(mpc)
    ...     y = ctx.party("bob").run(lambda: np.array(4.0)).to(mpc)
    ...     ctx.reset_stats()
    ...     a, b = mul_many([(x, y), (y, y)])
    ...     return ctx.stats()["rounds"], a.reveal(), b.reveal()  # None at the dealer
    >>> rounds, a, b = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    >>> rounds, a.tolist(), float(b)
    (2, [6.0, -8.0], 16.0)
    """
    pairs = list(pairs)
    if not pairs:
        return []
    dev = pairs[0][0].device
    shapes = [tuple(np.broadcast_shapes(a.shape, b.shape)) for a, b in pairs]
    A = _flat_cat([a if a.shape == s else a.broadcast_to(s) for (a, _), s in zip(pairs, shapes)])
    B = _flat_cat([b if b.shape == s else b.broadcast_to(s) for (_, b), s in zip(pairs, shapes)])
    prod = SecretArray(dev, dev.proto.mul(A.share, B.share, A.shape, B.shape), A.shape, 0)
    like = [SecretArray(dev, None, s, 0) for s in shapes]
    raws = _split(prod, like, [a.fxp + b.fxp for a, b in pairs])
    return rescale_many(raws)


def rescale_many(xs: Sequence[SecretArray]) -> list[SecretArray]:
    """Truncate every x above the device's scale back to it (fixed-point products before their
    truncation); the values with the same shift share one truncation round.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     x = ctx.party("alice").run(lambda: np.array([3.0])).to(mpc)
    ...     wide = SecretArray(mpc, x.share, x.shape, 2 * x.fxp)  # x read at scale 2f: x / 2^18
    ...     (y,) = rescale_many([wide])
    ...     return y.fxp == x.fxp, y.reveal()
    >>> ok, v = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    >>> ok, bool(abs(v[0] - 3.0 / 2**18) < 1e-5)
    (True, True)
    """
    out: list[Any] = list(xs)
    f = xs[0].device.frac_bits if xs else 0
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        if x.fxp > f:
            groups.setdefault(x.fxp - f, []).append(i)
    for bits, idx in sorted(groups.items()):
        sel = [xs[i] for i in idx]
        cat = _flat_cat(sel)
        # products at the device's scale take the protocol's product truncation (semi2k,
        # 2 parties: local, no round); anything wider the exact `trunc`
        trunc = cat.proto.trunc_product if bits <= f else cat.proto.trunc
        t = SecretArray(cat.device, trunc(cat.share, bits, cat.shape), cat.shape, 0)
        for i, r in zip(idx, _split(t, sel, [f] * len(sel))):
            out[i] = r
    return out


def ltz_many(xs: Sequence[SecretArray]) -> list[SecretArray]:
    """[x < 0] (integer 0/1 secrets) for several secrets in one comparison.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
    ...     x = ctx.party("alice").run(lambda: np.array([1.5, -2.0])).to(mpc)
    ...     a, b = ltz_many([x, -x])
    ...     return a.reveal().tolist(), b.reveal().tolist()
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"]
    ([0, 1], [1, 0])
    """
    xs = list(xs)
    if not xs:
        return []
    cat = _flat_cat(xs)
    bits = SecretArray(cat.device, cat.proto.msb(cat.share, cat.shape), cat.shape, 0)
    return _split(bits, xs, [0] * len(xs))
