"""Secure data functions on vertically partitioned frames.

* `jointml.data.secure.woe` - vertical WOE binning and IV: labels at one party, features
  at others; the label holder's labels are summed per bin under its Paillier key
  (`jointml.he.HeDevice`), so it learns per-bin counts and nothing about rows.

>>> from jointml.data.secure import woe
>>> woe.final_counts(np.array([0, 0, 1]), np.array([1, 2, 3]), np.array([4, 5, 6]))[0].tolist()
[3, 3]
"""

from __future__ import annotations

from . import woe

__all__ = ["woe"]
