"""Secure data functions on vertically partitioned frames: values that no party sees whole.

* `jointml.data.secure.stats` - `describe`, Pearson `corr` / `corr_secret`, `vif` of a
  vertically partitioned frame (each function states what each party learns);
* `jointml.data.secure.metrics` - AUC and KS of secret-shared scores, revealing only the
  metric (or a score histogram);
* `jointml.data.secure.woe` - vertical WOE binning and IV: labels at one party, features
  at others; the label holder's labels are summed per bin under its Paillier key
  (`jointml.he.HeDevice`), so it learns per-bin counts and nothing about rows.

>>> import numpy as np
>>> from jointml.data.secure import stats, woe
>>> stats.vif_from_corr(np.eye(2)).tolist()
[1.0, 1.0]
>>> woe.final_counts(np.array([0, 0, 1]), np.array([1, 2, 3]), np.array([4, 5, 6]))[0].tolist()
[3, 3]
"""

from __future__ import annotations

from . import metrics, stats, woe

__all__ = ["stats", "metrics", "woe"]
