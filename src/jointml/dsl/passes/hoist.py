"""Loop-invariant hoisting: an op in a loop body whose inputs do not change between
iterations is computed once, before the loop.

Its main use: the `share` of a private matrix (and the one-time masking of a matrix,
`masked_setup`, see `jointml.dsl.passes.select`) read by every iteration of a training loop
moves out of the loop, so the matrix crosses the links once, not once per iteration.

Security: unchanged (the same values are computed, fewer times).

>>> from jointml import dsl
>>> @dsl.function(X=dsl.private("alice", (4, 2)), w=dsl.secret((2,)))
... def f(X, w):  # X is shared once, before the loop; X.T is a transpose of its shares (free)
...     return dsl.fori_loop(0, 3, lambda i, w: w - X.T @ (X @ w) * 0.1, w).reveal()
>>> from jointml.dsl.passes import dce, infer_placement
>>> g = dce(hoist(infer_placement(f.graph)))
>>> [o.op for o in g.ops]
['share', 'transpose', 'const', 'fori', 'reveal']
"""

from __future__ import annotations

from typing import Any

from ..ir import Graph, Op

__all__ = ["hoist"]


def hoist(g: Graph, **_: Any) -> Graph:
    i = 0
    while i < len(g.ops):
        o = g.ops[i]
        if o.op == "fori":
            assert o.body is not None
            hoist(o.body)
            moved = _hoist_loop(g, o)
            g.ops[i:i] = moved
            i += len(moved)
        i += 1
    return g


def _hoist_loop(g: Graph, loop: Op) -> list[Op]:
    """Move invariant ops of `loop`'s body to just before it; returns the moved ops."""
    body = loop.body
    assert body is not None
    n = loop.attrs["n_carry"]
    caps = {v.id: src for v, src in zip(body.inputs[1 + n:], loop.ins[n:])}
    invariant = set(caps)
    moved: list[Op] = []
    keep: list[Op] = []
    for o in body.ops:
        if o.op not in ("fori", "reveal") and o.body is None and all(v.id in invariant for v in o.ins):
            invariant.update(v.id for v in o.outs)
            moved.append(o)
        else:
            keep.append(o)
    if not moved:
        return []
    body.ops = keep
    # moved ops read outer values; their results enter the body as new captures
    for o in moved:
        o.ins = [caps.get(v.id, v) for v in o.ins]
        for out in o.outs:
            inner = body.new_value(out.shape, out.dtype, out.vis, f"cap{out.id}")
            body.inputs.append(inner)
            loop.ins.append(out)
            caps[inner.id] = out
            _rename(body, out.id, inner)
    return moved


def _rename(body: Graph, old: int, new: Any) -> None:
    for o in body.walk():
        o.ins = [new if v.id == old else v for v in o.ins]
    body.outputs = [new if v.id == old else v for v in body.outputs]
    for o in body.walk():
        if o.body is not None:
            o.body.outputs = [new if v.id == old else v for v in o.body.outputs]
