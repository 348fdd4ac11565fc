"""Operator selection by cost: for every secret matrix product, the cheapest implementation
the protocol offers, priced by `Protocol.static_cost` under the network profile.

A product `A @ y` (or `A.T @ y`) whose left operand is a data matrix X (or a row block
`dynamic_slice(X, start, size)` of it) has three implementations:

| implementation | once | every call |
| --- | --- | --- |
| `beaver` | (share X) | open the block of X and y: Beaver matrix triple (`matmul`) |
| `masked` | share X, open X - A once (`masked_setup`) | open y only (`masked_matmul`) |
| `private_masked` | X's owner sends X - A once (`private_masked_setup`) | the others send y - B to the owner |

The one-time part is paid once when X does not change inside the enclosing loops (the
hoisting pass then moves it out), so the estimate is `once + trips x every call`, in
seconds under the profile; the cheapest wins, the runner-up and the break-even round-trip
time are recorded for `explain()`. `pins={"matmul": "beaver"}` (or an op label such as
"matmul#12") forces a choice.

Security: every implementation is the protocol's own (see `jointml.mpc.masked`): the masked
forms open X - A for a one-time dealer mask A, never X.

>>> from jointml import dsl
>>> @dsl.function(X=dsl.private("alice", (1000, 10)), w=dsl.private("bob", (10,)))
... def f(X, w):
...     return dsl.fori_loop(0, 50, lambda i, w: w - (X.T @ (X @ w)) * 1e-4, w).reveal()
>>> prog = f.compile(protocol="semi2k")
>>> sorted({o.impl for o in prog.graph.walk() if o.op == "masked_matmul"})
['private_masked']
>>> [o.op for o in prog.graph.ops][:2]
['share', 'masked_setup']
"""

from __future__ import annotations

from typing import Any

from ...mpc.protocols.base import FREE, Cost
from ...mpc.shapes import matmul_shape
from ..cost import profile as as_profile
from ..cost import protocol_class
from ..ir import SECRET, Graph, Op, Value

__all__ = ["select", "candidates"]

_F = 18  # truncation bits of a fixed-point product (the default fractional bits)


def select(g: Graph, proto: str = "semi2k", n_compute: int | None = None, profile: Any = "lan",
           pins: dict[str, str] | None = None, compute: list[str] | None = None, **_: Any) -> Graph:
    """Choose the implementation of every secret matrix product of `g` (in place)."""
    _select(g, proto, n_compute, as_profile(profile), pins or {}, compute, trips=1, invariant=None)
    return g


def _select(g: Graph, proto: str, n: int | None, prof: Any, pins: dict[str, str], compute: list[str] | None,
            trips: int, invariant: set[int] | None) -> None:
    prod = g.producers()
    i = 0
    while i < len(g.ops):
        o = g.ops[i]
        if o.body is not None:
            body_inv = {v.id for v in o.body.inputs[1 + o.attrs.get("n_carry", 0):]}
            _select(o.body, proto, n, prof, pins, compute, trips * max(o.attrs["hi"] - o.attrs["lo"], 0), body_inv)
        elif o.op == "matmul" and o.outs[0].vis == SECRET and o.ins[1].vis == SECRET:
            m = _match(o, prod, invariant)
            if m is not None:
                i += _choose(g, i, o, m, proto, n, prof, pins, compute, trips)
        i += 1


def _match(o: Op, prod: dict[int, Op], invariant: set[int] | None) -> dict[str, Any] | None:
    """X, row block and transpose of the left operand, if it is a block of an invariant matrix."""
    v = o.ins[0]
    transpose, start, size = False, None, None
    seen_share = False
    while True:
        p = prod.get(v.id)
        if p is None or p.op not in ("share", "transpose", "dynamic_slice"):
            break
        if p.op == "share":
            seen_share = True
        elif p.op == "transpose":  # walking backwards: a transpose after a row block is X[rows].T
            if transpose or start is not None or len(p.ins[0].shape) != 2:
                return None
            transpose = True
        else:
            if start is not None or p.attrs.get("axis", 0) != 0:
                return None
            start, size = p.ins[1], p.attrs["size"]
        v = p.ins[0]
    x = v
    if len(x.shape) != 2 or x.vis is None or x.vis.kind == "public":
        return None
    if invariant is not None and x.id not in invariant:
        return None
    if x.vis.kind == "private" and not seen_share:
        return None
    return {"x": x, "transpose": transpose, "start": start, "size": size}


def candidates(proto: str, n: int | None, x: Value, sub: tuple[int, ...], y: tuple[int, ...], trips: int,
               compute: list[str] | None = None) -> dict[str, tuple[Cost, Cost]]:
    """{implementation: (one-time cost, cost per call)} for the product of a block `sub` of X
    (already transposed if it is) with a secret of shape `y`."""
    cls = protocol_class(proto)

    def c(op: str, *shapes: Any, **kw: Any) -> Cost:
        return cls.static_cost(op, *shapes, n_compute=n, **kw)

    out = matmul_shape(sub, y)
    trunc = c("trunc", out, bits=_F) if x.dtype == "f" else FREE
    private = x.vis is not None and x.vis.kind == "private"
    owner_ok = private and (compute is None or x.vis.owner in compute)  # type: ignore[union-attr]
    share_x = c("share_in", x.shape, outsider=not owner_ok) if private else FREE
    share_sub = c("share_in", sub, outsider=not owner_ok) if private else FREE
    res = {
        "beaver": (share_x if trips == 1 else FREE, (share_sub if trips > 1 else FREE) + c("matmul", sub, y) + trunc),
        "masked": (share_x + c("masked_setup", x.shape), c("masked_matmul", sub, y) + trunc),
    }
    if owner_ok:
        res["private_masked"] = (c("private_masked_setup", x.shape), c("private_masked_matmul", sub, y) + trunc)
    return res


def total(once: Cost, each: Cost, trips: int) -> Cost:
    """The cost of `once` then `trips` calls of `each`."""
    return Cost(once.bytes + trips * each.bytes, once.rounds + trips * each.rounds,
                once.dealer_bytes + trips * each.dealer_bytes)


def _choose(g: Graph, i: int, o: Op, m: dict[str, Any], proto: str, n: int | None, prof: Any,
            pins: dict[str, str], compute: list[str] | None, trips: int) -> int:
    """Rewrite `o` to the cheapest implementation; returns the number of ops inserted before it."""
    x: Value = m["x"]
    rows = (m["size"], x.shape[1]) if m["size"] is not None else x.shape
    sub = rows[::-1] if m["transpose"] else rows
    cands = candidates(proto, n, x, sub, o.ins[1].shape, trips, compute)
    ranked = sorted(cands, key=lambda k: prof.seconds(total(*cands[k], trips)))
    label = f"matmul#{o.outs[0].id}"
    pin = pins.get(label) or pins.get("matmul")
    chosen = pin if pin in cands else ranked[0]
    runner = next((k for k in ranked if k != chosen), None)
    info = {"chosen": chosen, "runner_up": runner, "trips": trips,
            "costs": {k: total(*cands[k], trips) for k in cands}, "pinned": pin in cands}
    o.attrs["choice"] = info
    if chosen == "beaver":
        o.impl = "beaver"
        return 0
    setup = Op("masked_setup", [x], [g.new_value(x.shape, x.dtype, SECRET, "masked")],
               {"kind": "private" if chosen == "private_masked" else "secret"}, impl=chosen)
    g.ops.insert(i, setup)
    o.op, o.impl = "masked_matmul", chosen
    o.ins = [setup.outs[0], o.ins[1]] + ([m["start"]] if m["start"] is not None else [])
    o.attrs.update(size=m["size"], transpose=m["transpose"])
    return 1
