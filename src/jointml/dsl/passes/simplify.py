"""Constant folding, common-subexpression elimination and dead-code elimination.

* **fold**: an op whose inputs are all constants (public) is computed at compile time and
  becomes a `const` (numpy semantics, as `evaluate`).
* **cse**: two ops with the same name, inputs and attributes compute the same value; the
  second reuses the first (so a private matrix used twice is secret-shared once).
* **dce**: ops whose results nothing reads are dropped (a `reveal` nobody reads included:
  the program's outputs are what it returns).

Security: none of these changes what a party learns beyond dropping unused reveals.

>>> from jointml import dsl
>>> @dsl.function(x=dsl.secret((2,)))
... def f(x):
...     a = x * (2.0 * 3.0 + 1.0)
...     b = x * (2.0 * 3.0 + 1.0)
...     _unused = x * 5.0
...     return (a + b).reveal()
>>> g = dce(cse(fold(f.graph)))
>>> [o.op for o in g.ops]
['const', 'mul', 'add', 'reveal']
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..execute import NUMPY, _cast
from ..ir import PUBLIC, Graph, Op, Value

__all__ = ["fold", "cse", "dce"]


def _subst(g: Graph, repl: dict[int, Value]) -> None:
    if not repl:
        return
    for o in g.walk():
        o.ins = [repl.get(v.id, v) for v in o.ins]
    g.outputs = [repl.get(v.id, v) for v in g.outputs]
    for o in g.walk():
        if o.body is not None:
            o.body.outputs = [repl.get(v.id, v) for v in o.body.outputs]


def fold(g: Graph, **_: Any) -> Graph:
    """Fold ops on constants into constants (in nested bodies too)."""
    consts: dict[int, Any] = {}
    for o in g.ops:
        if o.body is not None:
            fold(o.body)
        if o.op == "const":
            consts[o.outs[0].id] = o.attrs["value"]
        elif o.op in NUMPY and o.ins and all(v.id in consts for v in o.ins):
            val = _cast(NUMPY[o.op](*[consts[v.id] for v in o.ins], **o.attrs), o.outs[0])
            o.op, o.ins, o.attrs = "const", [], {"value": val}
            o.outs[0].vis = PUBLIC if o.outs[0].vis is not None else None
            consts[o.outs[0].id] = val
    return g


def _key(o: Op) -> Any:
    attrs = []
    for k, v in sorted(o.attrs.items()):
        if isinstance(v, np.ndarray):
            v = (v.dtype.str, v.shape, v.tobytes())
        attrs.append((k, repr(v)))
    return (o.op, o.impl, tuple(v.id for v in o.ins), tuple(attrs))


def cse(g: Graph, **_: Any) -> Graph:
    """Reuse the first of identical ops (loops and reveals are never merged)."""
    seen: dict[Any, Op] = {}
    repl: dict[int, Value] = {}
    keep = []
    for o in g.ops:
        o.ins = [repl.get(v.id, v) for v in o.ins]
        if o.body is not None:
            _subst(o.body, repl)
            cse(o.body)
        if o.op in ("fori", "reveal"):
            keep.append(o)
            continue
        k = _key(o)
        if k in seen:
            for a, b in zip(o.outs, seen[k].outs):
                repl[a.id] = b
            continue
        seen[k] = o
        keep.append(o)
    g.ops = keep
    g.outputs = [repl.get(v.id, v) for v in g.outputs]
    return g


def _uses(g: Graph) -> set[int]:
    """Values read by `g`'s ops or outputs (a loop reads its inputs; its body is pruned apart)."""
    used = {v.id for v in g.outputs}
    for o in g.ops:
        used.update(v.id for v in o.ins)
    return used


def prune_loop_inputs(loop: Op) -> None:
    """Drop the captures a loop body no longer reads; merge captures of the same outer value."""
    body = loop.body
    assert body is not None
    n = 1 + loop.attrs["n_carry"]
    by_src: dict[int, Value] = {}
    repl: dict[int, Value] = {}
    for inner, src in zip(body.inputs[n:], loop.ins[n - 1:]):
        if src.id in by_src:
            repl[inner.id] = by_src[src.id]
        else:
            by_src[src.id] = inner
    _subst(body, repl)
    used = _uses(body)
    keep = [(inner, src) for inner, src in zip(body.inputs[n:], loop.ins[n - 1:])
            if inner.id in used and inner.id not in repl]
    body.inputs = body.inputs[:n] + [i for i, _ in keep]
    loop.ins = loop.ins[: n - 1] + [s for _, s in keep]


def dce(g: Graph, **_: Any) -> Graph:
    """Drop ops whose results are never read (iterated: a chain dies at once), and the loop
    captures nothing reads."""
    while True:
        for o in g.ops:
            if o.op == "fori":
                prune_loop_inputs(o)  # merging captures here can make an inner loop's captures equal
                dce(o.body)  # type: ignore[arg-type]
                prune_loop_inputs(o)
        used = _uses(g)
        keep = [o for o in g.ops if any(v.id in used for v in o.outs)]
        if len(keep) == len(g.ops):
            return g
        g.ops = keep


def clone(g: Graph) -> Graph:
    """A deep copy (passes work in place)."""
    return copy.deepcopy(g)
