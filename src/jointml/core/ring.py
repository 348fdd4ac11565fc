"""The ring Z_2^64: dtype, signed views, and the ring matmul of the default backend.

Arithmetic on shares goes through `jointml.core.backend` (numpy today); these are the
few helpers code outside the kernels needs to move between integers and ring elements.

>>> to_signed(as_ring(np.array([-3, 5]))).tolist()
[-3, 5]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .backend import backend
from .errors import DataError

RING_DTYPE = np.uint64

__all__ = ["RING_DTYPE", "RingTypeError", "as_ring", "to_signed", "matmul"]


class RingTypeError(DataError, TypeError):
    """A value that is not an integer array cannot be read as ring elements."""


def as_ring(x: Any) -> npt.NDArray[np.uint64]:
    """View/convert an integer array as ring elements (two's complement for negatives)."""
    a = np.asarray(x)
    out: npt.NDArray[np.uint64]  # numpy's stubs type these views and casts as Any
    if a.dtype == RING_DTYPE:
        out = a
    elif a.dtype.kind == "i":
        out = a.astype(np.int64).view(RING_DTYPE)
    elif a.dtype.kind in "ub":
        out = a.astype(RING_DTYPE)
    else:
        raise RingTypeError(f"ring elements must be integers, got dtype {a.dtype}", field="dtype")
    return out


def to_signed(x: Any) -> npt.NDArray[np.int64]:
    """Interpret ring elements as signed int64 (two's complement)."""
    return np.asarray(x, dtype=RING_DTYPE).view(np.int64)


def matmul(a: Any, b: Any) -> npt.NDArray[np.uint64]:
    """Ring matrix product a @ b mod 2^64 (the backend's BLAS limb-split product).

    >>> a = np.array([[2**63, 3]], dtype=np.uint64); b = np.array([[2], [5]], dtype=np.uint64)
    >>> int(matmul(a, b)[0, 0])
    15
    """
    out: npt.NDArray[np.uint64] = backend.matmul(a, b)
    return out
