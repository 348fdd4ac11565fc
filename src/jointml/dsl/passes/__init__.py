"""The compiler's passes, each small and printable (`Function.compile(dump_ir=True)`).

| pass | what it does |
| --- | --- |
| `placement` | visibility inference: public / private(owner) / secret; explicit `share` ops |
| `fold`, `cse`, `dce` | constant folding, common subexpressions, dead code |
| `hoist` | loop-invariant code moves out of loops (share / mask a matrix once) |
| `select` | operator selection by cost (masked-matrix products, sigmoid from an error budget) |
| `truncation` | sum before truncating (one truncation for a sum of products) |

Security: passes only move and choose computations; what a party learns is fixed by the
program's reveals (see `placement`).
"""

from __future__ import annotations

from typing import Any, Callable

from ..ir import Graph
from .hoist import hoist
from .placement import infer_placement
from .simplify import cse, dce, fold
from .truncation import place_truncations

__all__ = ["infer_placement", "fold", "cse", "dce", "hoist", "place_truncations", "pipeline"]


def _placement(g: Graph, **_: Any) -> Graph:
    return infer_placement(g)


def pipeline(optimize: bool = True) -> list[tuple[str, Callable[..., Graph]]]:
    """The passes in order; without `optimize` only placement runs (the naive baseline)."""
    if not optimize:
        return [("placement", _placement)]
    from .select import select

    return [("fold", fold), ("placement", _placement), ("cse", cse), ("dce", dce), ("select", select),
            ("truncation", place_truncations), ("hoist", hoist), ("cse", cse), ("dce", dce)]
