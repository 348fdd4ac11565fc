"""A party's share of a secret as plain arrays and JSON, for saved model parts.

A share is what one party holds of a secret: one ndarray (additive sharing, semi2k), a
tuple of ndarrays (replicated sharing, aby3: the party's two components), or None (a
party holding nothing: the semi2k dealer, a data owner outside the device). These
functions convert between a share and a list of uint64 arrays (`export_share` /
`import_share`) and JSON lists (`share_to_json` / `share_from_json`), dispatching on the
share's structure, never on the protocol's name.

Interim home: `mpc` is getting `Protocol.export_share(share)` / `import_share(arrays,
shape)` with the same contract; these functions then delegate to them.

Security: a saved share reveals nothing alone (it is uniformly random); it stays on its
party's disk.

>>> share_from_json(share_to_json((np.uint64([1, 2]), np.uint64([3, 4]))), (2,))
(array([1, 2], dtype=uint64), array([3, 4], dtype=uint64))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import JointMLError, ModelError

__all__ = ["export_share", "import_share", "order_matters", "share_from_json", "share_to_json"]


def export_share(share: Any) -> list[np.ndarray]:
    """The components of a share as uint64 arrays: [] for None, [a] for an ndarray, [a, b] for a pair.

    >>> [a.tolist() for a in export_share(np.uint64([7, 8]))]
    [[7, 8]]
    >>> export_share(None)
    []
    """
    if share is None:
        return []
    if isinstance(share, tuple):
        return [np.ascontiguousarray(c, dtype=np.uint64) for c in share]
    return [np.ascontiguousarray(share, dtype=np.uint64)]


def import_share(arrays: list[np.ndarray], shape: tuple[int, ...], error: type[JointMLError] = ModelError) -> Any:
    """Inverse of `export_share`; every component must have `shape` (else `error`).

    >>> import_share([np.uint64([1, 2])], (2,))
    array([1, 2], dtype=uint64)
    >>> import_share([np.uint64([1, 2])], (3,))
    Traceback (most recent call last):
    ...
    jointml.core.errors.ModelError: saved share has shape (2,), expected (3,)
    """
    if not arrays:
        return None
    comps = [np.asarray(a, dtype=np.uint64) for a in arrays]
    for c in comps:
        if tuple(c.shape) != tuple(shape):
            raise error(f"saved share has shape {tuple(c.shape)}, expected {tuple(shape)}")
    if len(comps) == 1:
        return comps[0]
    return tuple(c.copy() for c in comps)


def share_to_json(share: Any) -> list | None:
    """A share as JSON: None (a party holding nothing) or the list of its components as nested lists.

    >>> share_to_json(np.uint64([5]))
    [[5]]
    """
    comps = export_share(share)
    return [c.tolist() for c in comps] if comps else None


def share_from_json(value: list | None, shape: tuple[int, ...], error: type[JointMLError] = ModelError) -> Any:
    """Inverse of `share_to_json` (components checked against `shape`).

    >>> share_from_json([[5]], (1,))
    array([5], dtype=uint64)
    """
    if value is None:
        return None
    if not isinstance(value, list):
        raise error(f"saved share is not a list of components ({type(value).__name__})")
    return import_share([np.array(v, dtype=np.uint64) for v in value], shape, error)


def order_matters(share_json: list | None) -> bool:
    """True when a saved share is tied to the order of the MPC parties (replicated, several components).

    An additive share (one component) is the party's summand whatever the order; a
    replicated share holds the components of its position in the ring of parties.

    >>> order_matters([[1], [2]]), order_matters([[1]]), order_matters(None)
    (True, False, False)
    """
    return share_json is not None and len(share_json) > 1
