"""Operator selection by cost: for every secret matrix product, the cheapest implementation
the protocol offers, priced by `Protocol.static_cost` under the network profile.

A product `A @ y` (or `A.T @ y`) whose left operand is a data matrix X (or a row block
`dynamic_slice(X, start, size)` of it) has three implementations:

| implementation | once | every call |
| --- | --- | --- |
| `beaver` | (share X) | open the block of X and y: Beaver matrix triple (`matmul`) |
| `masked` | share X, open X - A once (`masked_setup`) | open y only (`masked_matmul`) |
| `private_masked` | X's owner sends X - A once (`private_masked_setup`) | the others send y - B to the owner |
| `paillier` | (nothing) | the other party sends its share of y encrypted; the owner returns Enc(X y_h + r) |

`paillier` (`jointml.dsl.he_lowering`: semi2k, two parties, X private to a compute party, y
a vector) is priced with its local work too (`he_lowering.LOCAL_SECONDS`): ciphertexts
are few bytes for a wide X, but every element of X costs an exponentiation.

The one-time part is paid once when X does not change inside the enclosing loops (the
hoisting pass then moves it out) and once for all the products of the same X, so the
estimate is `once + sum over the products of trips x every call`, in seconds under the
profile; the cheapest wins, the runner-up and the break-even round-trip
time are recorded for `explain()`. `pins={"matmul": "beaver"}` (or an op label such as
"matmul#12") forces a choice.

A secret comparison (`<`, `>`, `<=`, `>=`) on a two-party semi2k device has two:

| implementation | rounds | bytes per element |
| --- | --- | --- |
| `msb` | 6 (dealer-mask circuit: open, AND tree, bit conversion) | ~42 |
| `garbled` | 2 (Yao: the evaluator's OT message, the garbler's tables) | 8,192 |

chosen by cost too (`Garbled.static_cost`, `jointml.mpc.protocols.garbled`): the garbled
circuit where round trips cost more than its bytes (a WAN, few elements). Independent
comparisons share their rounds (round batching), so the choice is made for all the
program's comparisons together, on the whole program's predicted cost (`cost.predict`)
under each implementation.
`pins={"compare": "garbled"}` (or "lt#7") forces it. The session's 128 base OTs are paid
once per device (its first garbled comparison), not charged to a program.

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

from typing import Any, Callable

import numpy as np

from ...core.errors import ParameterError, ProtocolError
from ...mpc.protocols.base import FREE, Cost
from ...mpc.shapes import matmul_shape
from ..cost import profile as as_profile
from ..cost import protocol_class
from ..ir import SECRET, Graph, Op, Value

__all__ = ["select", "candidates", "compare_candidates", "SIGMOID_ERRORS"]

_CMP = ("lt", "gt", "le", "ge")

#: local work of a garbled comparison per element (s): garbling and evaluating its 126 AND
#: gates (fixed-key AES) and the OT extension; the calibration measured 150 us on a 2-core
#: machine under load (`calibrate`, family "gc"), an idle one does about a third
GC_LOCAL_SECONDS = 5e-5

#: the sigmoid approximations of `jointml.mpc.functions.sigmoid`, cheapest first, with their
#: measured maximum absolute errors (from its docstring)
SIGMOID_ERRORS = (("seg3", 0.056), ("poly", 6.8e-4), ("accurate", 7.9e-6))

_F = 18  # truncation bits of a fixed-point product (the default fractional bits)


def select(g: Graph, proto: str = "semi2k", n_compute: int | None = None, profile: Any = "lan",
           pins: dict[str, str] | None = None, compute: list[str] | None = None, **_: Any) -> Graph:
    """Choose the implementation of every secret matrix product of `g` (in place). The products
    of one matrix are decided together: its one-time preparation serves all of them."""
    if proto == "semi2k":
        _check_dealer_inputs(g)
    found: list[tuple[Graph, Op, dict[str, Any], int, int]] = []
    cmps: list[tuple[Op, int]] = []
    _collect(g, 1, None, {}, found, cmps)
    if cmps and proto == "semi2k" and (n_compute or (len(compute) if compute else 2)) == 2:
        _choose_compares(g, cmps, as_profile(profile), pins or {}, compute)
    groups: dict[int, list[tuple[Graph, Op, dict[str, Any], int, int]]] = {}
    for item in found:
        groups.setdefault(item[4], []).append(item)
    for items in groups.values():
        _choose(items, proto, n_compute, as_profile(profile), pins or {}, compute)
    return g


def _check_dealer_inputs(g: Graph) -> None:
    """A value revealed to the compute parties is not known to the semi2k dealer, which executes
    every secret operation too: such a value cannot feed a secret operation."""
    opened = {o.outs[0].id for o in g.walk() if o.op == "reveal" and o.attrs.get("to") is None}
    for o in g.walk():
        if o.outs and o.outs[0].vis == SECRET and any(v.id in opened for v in o.ins):
            raise ParameterError(f"'{o.op}' reads a value opened by reveal(): on semi2k the dealer does not "
                                 "receive opened values but executes every secret operation; keep the value "
                                 "secret, or reveal it to a party and use it there", field="reveal")


def _collect(g: Graph, trips: int, invariant: set[int] | None, root: dict[int, int],
             found: list[tuple[Graph, Op, dict[str, Any], int, int]], cmps: list[tuple[Op, int]]) -> None:
    """Every secret product with a matchable left operand: (graph, op, match, trips, root id of X)."""
    prod = g.producers()
    for o in g.ops:
        if o.body is not None:
            caps = o.body.inputs[1 + o.attrs.get("n_carry", 0):]
            inner_root = dict(root)
            for inner, outer in zip(caps, o.ins[o.attrs.get("n_carry", 0):]):
                inner_root[inner.id] = root.get(outer.id, outer.id)
            _collect(o.body, trips * max(o.attrs["hi"] - o.attrs["lo"], 0), {v.id for v in caps}, inner_root, found,
                     cmps)
        elif o.op in _CMP and o.outs[0].vis == SECRET:
            cmps.append((o, trips))
        elif o.op == "sigmoid" and o.outs[0].vis == SECRET:
            _sigmoid_mode(o)
        elif o.op == "matmul" and o.outs[0].vis == SECRET and o.ins[1].vis == SECRET:
            m = _match(o, prod, invariant)
            if m is not None:
                found.append((g, o, m, trips, root.get(m["x"].id, m["x"].id)))


def compare_candidates(proto: str, n: int | None, shape: tuple[int, ...]) -> dict[str, Cost]:
    """{implementation: cost} of one secret comparison of arrays of `shape`.

    >>> c = compare_candidates("semi2k", 2, (10,))
    >>> sorted(c), c["garbled"].rounds < c["msb"].rounds, c["garbled"].bytes > c["msb"].bytes
    (['garbled', 'msb'], True, True)
    """
    out = {"msb": protocol_class(proto).static_cost("msb", shape, n_compute=n)}
    if proto == "semi2k" and n in (None, 2):
        from ...mpc.protocols.garbled import Garbled

        out["garbled"] = Garbled.static_cost("msb", shape)
    return out


def _choose_compares(g: Graph, cmps: list[tuple[Op, int]], prof: Any, pins: dict[str, str],
                     compute: list[str] | None) -> None:
    """One implementation for all the secret comparisons of `g` (semi2k, two parties): the one
    under which the whole program is predicted cheaper (a pin, per op or "compare", wins)."""
    from ..cost import predict

    def pinned(o: Op) -> str | None:
        p = pins.get(f"{o.op}#{o.outs[0].id}", pins.get("compare"))
        return p if p in ("msb", "garbled") else None

    costs: dict[str, Cost] = {}
    local = {"msb": 0.0, "garbled": 0.0}
    for cand in ("msb", "garbled"):
        for o, trips in cmps:
            o.impl = "garbled" if (pinned(o) or cand) == "garbled" else None
            if o.impl:
                local[cand] += trips * int(np.prod(o.outs[0].shape, dtype=np.int64)) * GC_LOCAL_SECONDS
        costs[cand] = predict(g, "semi2k", compute=compute).total
    ranked = sorted(costs, key=lambda k: prof.seconds(costs[k]) + local[k])
    for o, trips in cmps:
        chosen = pinned(o) or ranked[0]
        o.impl = "garbled" if chosen == "garbled" else None
        o.attrs["choice"] = {"chosen": chosen, "runner_up": next(k for k in ranked if k != chosen), "costs": costs,
                             "pinned": pinned(o) is not None, "uses": len(cmps), "trips": trips,
                             "scope": "program", "local": local}


def _sigmoid_mode(o: Op) -> None:
    """The cheapest sigmoid within the op's error budget (a pinned `mode` wins)."""
    if o.attrs.get("mode"):
        o.impl = o.attrs["mode"]
        return
    budget = o.attrs.get("error")
    fits = [m for m, err in SIGMOID_ERRORS if budget is None and m == "accurate" or budget is not None and err <= budget]
    mode = fits[0] if fits else "accurate"
    o.attrs["mode"] = o.impl = mode
    names = [m for m, _ in SIGMOID_ERRORS]
    errs = dict(SIGMOID_ERRORS)
    text = f"max error {errs[mode]:g}"
    if budget is not None:
        text += f" within the budget {budget:g}"
        k = names.index(mode)
        if k > 0:
            text += f"; {names[k - 1]} is cheaper but its error is {errs[names[k - 1]]:g}"
    o.attrs["choice_text"] = text


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
    trunc = _product_trunc(c, out) if x.dtype == "f" else FREE
    private = x.vis is not None and x.vis.kind == "private"
    owner_ok = private and (compute is None or str(x.vis.owner if x.vis else "") in compute)
    share_x = c("share_in", x.shape, outsider=not owner_ok) if private else FREE
    share_sub = c("share_in", sub, outsider=not owner_ok) if private else FREE
    # aby3: a masked product is the shares' own product, fused with its truncation
    from ..lowering import fused

    fuse = x.dtype == "f" and fused(cls)
    res = {
        "beaver": (share_x if trips == 1 else FREE, (share_sub if trips > 1 else FREE) + c("matmul", sub, y) + trunc),
        "masked": (share_x + c("masked_setup", x.shape),
                   c("matmul_trunc", sub, y, bits=_F) if fuse else c("masked_matmul", sub, y) + trunc),
    }
    if owner_ok:
        res["private_masked"] = (c("private_masked_setup", x.shape),
                                 c("matmul_trunc", sub, y, bits=_F) if fuse else c("private_masked_matmul", sub, y) + trunc)
    if owner_ok and proto == "semi2k" and n in (None, 2) and len(y) == 1 and len(sub) == 2:
        from ..he_lowering import paillier_cost

        res["paillier"] = (FREE, paillier_cost(sub) + trunc)
    return res


def local_seconds(name: str, sub: tuple[int, ...], trips: int) -> float:
    """Local work an implementation adds beyond its traffic (only `paillier` declares any)."""
    if name != "paillier":
        return 0.0
    from ..he_lowering import paillier_local

    return trips * paillier_local(sub)


def _product_trunc(c: Callable[..., Cost], out: tuple[int, ...]) -> Cost:
    """The truncation of a fixed-point product (`Protocol.trunc_product`; `trunc` where a
    protocol has no cheaper one)."""
    try:
        return c("trunc_product", out, bits=_F)
    except ProtocolError:
        return c("trunc", out, bits=_F)


def total(once: Cost, each: Cost, trips: int) -> Cost:
    """The cost of `once` then `trips` calls of `each`."""
    return Cost(once.bytes + trips * each.bytes, once.rounds + trips * each.rounds,
                once.dealer_bytes + trips * each.dealer_bytes)


def _choose(items: list[tuple[Graph, Op, dict[str, Any], int, int]], proto: str, n: int | None, prof: Any,
            pins: dict[str, str], compute: list[str] | None) -> None:
    """Pick one implementation for all products of one matrix and rewrite them."""
    per: list[dict[str, tuple[Cost, Cost]]] = []
    local: dict[str, float] = {}
    for _, o, m, trips, _ in items:
        x: Value = m["x"]
        rows = (m["size"], x.shape[1]) if m["size"] is not None else x.shape
        sub = rows[::-1] if m["transpose"] else rows
        per.append(candidates(proto, n, x, sub, o.ins[1].shape, trips, compute))
        for k in per[-1]:
            local[k] = local.get(k, 0.0) + local_seconds(k, sub, trips)
    names = [k for k in per[0] if all(k in c for c in per)]
    totals: dict[str, Cost] = {}
    split: dict[str, tuple[Cost, Cost]] = {}  # (one-time part, the loops' part)
    for k in names:
        once = per[0][k][0] if k != "beaver" else FREE
        loops = FREE
        for (_, _, _, trips, _), c in zip(items, per):
            loops = loops + total(c[k][0] if k == "beaver" else FREE, c[k][1], trips)
        totals[k] = once + loops
        split[k] = (once, loops)
    ranked = sorted(names, key=lambda k: prof.seconds(totals[k]) + local.get(k, 0.0))
    labels = [f"matmul#{o.outs[0].id}" for _, o, _, _, _ in items]
    pin = next((pins[lab] for lab in labels if lab in pins), pins.get("matmul"))
    chosen = pin if pin in names else ranked[0]
    runner = next((k for k in ranked if k != chosen), None)
    info = {"chosen": chosen, "runner_up": runner, "costs": totals, "pinned": pin in names, "uses": len(items),
            "split": split, "trips": max(t for _, _, _, t, _ in items), "local": local}
    for g, o, m, _, _ in items:
        o.attrs["choice"] = info
        if chosen == "beaver":
            o.impl = "beaver"
            continue
        x = m["x"]
        if chosen == "paillier":  # reads X in plaintext at its owner: X is never shared
            o.op, o.impl = "paillier_matmul", "paillier"
            o.ins = [x, o.ins[1]] + ([m["start"]] if m["start"] is not None else [])
            o.attrs.update(size=m["size"], transpose=m["transpose"])
            continue
        setup = Op("masked_setup", [x], [g.new_value(x.shape, x.dtype, SECRET, "masked")],
                   {"kind": "private" if chosen == "private_masked" else "secret"}, impl=chosen)
        g.ops.insert(g.ops.index(o), setup)
        o.op, o.impl = "masked_matmul", chosen
        o.ins = [setup.outs[0], o.ins[1]] + ([m["start"]] if m["start"] is not None else [])
        o.attrs.update(size=m["size"], transpose=m["transpose"])
