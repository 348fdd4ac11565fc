"""Lists of uint64 arrays as JSON, for the shares kept in saved model parts.

A party's share of a secret is exported by the protocol itself
(`SecretArray.export_share()` -> list of uint64 arrays, `MpcDevice.import_share` back);
these two functions only turn such a list into JSON lists and back, so it fits in a
`runtime.persist.ModelPart`. They know nothing of the share layout (how many arrays a
party holds, in which order): the protocol checks that on import.

Security: a saved share reveals nothing alone (it is uniformly random); it stays on its
party's disk.

>>> arrays_from_json(arrays_to_json([np.uint64([1, 2**64 - 1])]))
[array([                   1, 18446744073709551615], dtype=uint64)]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..core.errors import JointMLError, ModelError

__all__ = ["arrays_to_json", "arrays_from_json"]


def arrays_to_json(arrays: Sequence[Any]) -> list[Any] | None:
    """uint64 arrays as nested JSON lists; None for no arrays (a party holding no share).

    >>> arrays_to_json([np.uint64([[1, 2]]), np.uint64([[3, 4]])])
    [[[1, 2]], [[3, 4]]]
    >>> arrays_to_json([]) is None
    True
    """
    if not len(arrays):
        return None
    return [np.asarray(a, dtype=np.uint64).tolist() for a in arrays]


def arrays_from_json(value: Any, what: str = "saved share",
                     error: type[JointMLError] = ModelError) -> list[npt.NDArray[np.uint64]]:
    """Inverse of `arrays_to_json`: `error` unless `value` is None or a list of lists of ring integers.

    >>> arrays_from_json([[5, 6]])[0].dtype.name
    'uint64'
    >>> arrays_from_json(None)
    []
    >>> arrays_from_json([[-1]])
    Traceback (most recent call last):
    ...
    jointml.core.errors.ModelError: saved share holds values that are not integers in [0, 2^64)
    """
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
        raise error(f"{what} is not a list of arrays ({type(value).__name__})")
    out = []
    for v in value:
        a = np.asarray(v, dtype=object)
        # integers only, in the ring: a float or a negative number is damage, not a share
        if a.size and not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**64 for x in a.flat):
            raise error(f"{what} holds values that are not integers in [0, 2^64)")
        out.append(np.array(v, dtype=np.uint64))
    return out
