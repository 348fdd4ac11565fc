"""Public train/test splits of aligned rows.

Security: the split is computed from a *public* seed and the public row count only, so
every party derives the same row positions without a message and without looking at
any data. It is random, not stratified: a stratified split would need the labels and
so show the other parties label information.

>>> tr, te = public_split(10, 0.3, seed=1)
>>> len(tr), len(te), sorted(set(tr) | set(te)) == list(range(10))
(7, 3, True)
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ParameterError
from ..core.prg import Prg

__all__ = ["public_split"]


def public_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions (sorted) that every party derives from the public seed.

    >>> public_split(4, 0.5, seed=7)[0].dtype.kind
    'i'
    """
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ParameterError(f"must be in [0, 1], got {test_fraction!r}", field="test_fraction")
    g = Prg(int(seed).to_bytes(16, "little"), stream="split")
    perm = np.argsort(g.uint64(n), kind="stable")
    n_test = round(test_fraction * n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
