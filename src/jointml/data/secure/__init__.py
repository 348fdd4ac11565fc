"""Secure (MPC) data functions: statistics and metrics of data that no party sees whole.

* `jointml.data.secure.stats` - `describe`, Pearson `corr` / `corr_secret`, `vif` of a
  vertically partitioned frame (each function states what each party learns);
* `jointml.data.secure.metrics` - AUC and KS of secret-shared scores, revealing only the
  metric (or a score histogram).

>>> import numpy as np
>>> from jointml.data.secure import stats, metrics
>>> stats.vif_from_corr(np.eye(2)).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from . import metrics, stats

__all__ = ["stats", "metrics"]
