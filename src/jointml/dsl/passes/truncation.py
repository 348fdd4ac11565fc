"""Truncation placement: sum before truncating.

A fixed-point product of two secrets is truncated back to the device's scale (one
truncation per element). When the product's only reader is a sum, the pass keeps the
products at double scale, sums them (free) and truncates the sum once: the truncation
costs the size of the sum instead of the size of the product (the same rounds).

Range: the untruncated products carry 2f fractional bits (36 for f = 18), so the sum must
stay below 2^(62-2f) in magnitude (2^26 for f = 18), as a matrix product's inner sums do.

Security: unchanged (the same kernels on fewer elements).

>>> from jointml import dsl
>>> from jointml.dsl.passes import infer_placement
>>> @dsl.function(x=dsl.private("alice", (1000,)), w=dsl.private("bob", (1000,)))
... def dot(x, w):
...     return (x * w).sum().reveal()
>>> g = place_truncations(infer_placement(dot.graph))
>>> [(o.op, o.impl) for o in g.ops if o.op in ("mul", "sum")]
[('mul', 'untruncated'), ('sum', 'truncate after')]
"""

from __future__ import annotations

from typing import Any

from ..ir import SECRET, Graph

__all__ = ["place_truncations"]


def place_truncations(g: Graph, **_: Any) -> Graph:
    readers: dict[int, list[Any]] = {}
    for o in g.ops:
        for v in o.ins:
            readers.setdefault(v.id, []).append(o)
    outputs = {v.id for v in g.outputs}
    for o in g.ops:
        if o.body is not None:
            place_truncations(o.body)
            continue
        out = o.outs[0]
        if (o.op == "mul" and o.impl is None and out.vis == SECRET and out.id not in outputs
                and all(v.vis == SECRET and v.dtype == "f" for v in o.ins)):
            rs = readers.get(out.id, [])
            if len(rs) == 1 and rs[0].op == "sum" and rs[0].impl is None:
                o.impl, rs[0].impl = "untruncated", "truncate after"
    return g
