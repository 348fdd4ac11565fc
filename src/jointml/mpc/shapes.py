"""Shape arithmetic for secret arrays, computed without touching data.

Shapes of secrets are public (every party of a device knows them), so the kernels and
`SecretArray` compute result shapes locally; this module is the one place that does it,
so protocol kernels never import the user-facing array module. Nothing here communicates
or reveals anything.

>>> matmul_shape((4, 3), (3,))
(4,)
>>> rows_shape((10, 3), slice(2, 8, 2))
(3, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import wire
from ..core.errors import ParameterError, WireFormatError

Shape = tuple[int, ...]

__all__ = ["Shape", "matmul_shape", "rows_shape", "broadcast_shape", "size", "received_shape", "received_fxp"]


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """Result shape of a @ b under numpy rules.

    >>> matmul_shape((2, 5, 3), (3, 7))
    (2, 5, 7)
    >>> matmul_shape((3,), (3,))
    ()
    """
    if len(a) == 0 or len(b) == 0:
        raise ParameterError("matmul: scalar operands are not allowed, use *", field="shape")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise ParameterError(f"matmul: shapes {a} and {b} not aligned: {ka} (dim {len(a) - 1}) != {kb}", field="shape")
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return tuple(b[:-2]) + (b[-1],)
    if len(b) == 1:
        return tuple(a[:-1])
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return tuple(int(s) for s in batch) + (a[-2], b[-1])


def rows_shape(shape: Shape, rows: Any) -> Shape:
    """Shape of X[rows] (rows: a slice, an integer index array or a boolean mask).

    >>> rows_shape((5, 2), np.array([True, False, True, False, False]))
    (2, 2)
    >>> rows_shape((5, 2), [4, 0, 1])
    (3, 2)
    """
    if isinstance(rows, slice):
        return (len(range(*rows.indices(shape[0]))),) + tuple(shape[1:])
    r = np.asarray(rows)
    if r.dtype == bool:
        return (int(r.sum()),) + tuple(shape[1:])
    return tuple(int(s) for s in r.shape) + tuple(shape[1:])


def broadcast_shape(*shapes: Shape) -> Shape:
    """numpy broadcasting of several shapes.

    >>> broadcast_shape((3, 1), (1, 4))
    (3, 4)
    """
    return tuple(int(s) for s in np.broadcast_shapes(*shapes))


def size(shape: Shape) -> int:
    """Number of elements of an array of this shape (1 for a 0-d array).

    >>> size(()), size((2, 3)), size((0, 4))
    (1, 6, 0)
    """
    n = 1
    for s in shape:
        n *= int(s)
    return n


def received_shape(value: Any, party: str | None = None) -> Shape:
    """A public shape announced by another party, checked before anything is sized by it.

    It must be a list of at most `wire.MAX_DIMS` non-negative integers whose non-zero
    product stays below `wire.MAX_DIM` elements; anything else is `WireFormatError`.

    >>> received_shape([3, 0, 2])
    (3, 0, 2)
    >>> received_shape(["3"], party="bob")
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: party 'bob', field 'shape': announced shape ['3'] is not a list of sizes
    """
    ok = isinstance(value, (list, tuple)) and len(value) <= wire.MAX_DIMS and all(
        type(s) is int and 0 <= s <= wire.MAX_DIM for s in value
    )
    if ok and int(np.prod([max(s, 1) for s in value], dtype=object)) > wire.MAX_DIM:
        ok = False
    if not ok:
        raise WireFormatError(f"announced shape {str(value)[:80]} is not a list of sizes", party=party, field="shape")
    return tuple(value)


def received_fxp(value: Any, party: str | None = None) -> int:
    """A public fixed-point scale (fractional bits) announced by another party: an int in [0, 63].

    >>> received_fxp(16)
    16
    """
    if type(value) is not int or not 0 <= value < 64:
        raise WireFormatError(f"announced fixed-point bits {str(value)[:40]} out of range", party=party, field="fxp")
    return value
