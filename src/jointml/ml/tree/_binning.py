"""Local quantile binning for tree training (runs at each feature's owner only).

Cut points are midpoint-free quantiles of the distinct values, like xgboost's ``hist``
method with ``max_bin``: ``bin = #cuts <= x`` so a split "after bin b" is the rule
``x < cuts[b]`` goes left.  NaN goes to a dedicated last bin (``n_bins``), whose
direction is learned per split (``default_left``), as xgboost does for missing values.

>>> import numpy as np
>>> b = QuantileBins.fit(np.array([[1.0], [2.0], [3.0], [np.nan]]), max_bin=4)
>>> b.transform(np.array([[1.0], [2.5], [np.nan]]))[:, 0].tolist()
[0, 1, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QuantileBins:
    cuts: list[np.ndarray]  # per feature, sorted cut points (bin b holds cuts[b-1] <= x < cuts[b])

    @property
    def n_bins(self) -> np.ndarray:
        """Non-missing bins per feature (the missing bin is index ``n_bins``)."""
        return np.array([len(c) + 1 for c in self.cuts], dtype=np.int64)

    @classmethod
    def fit(cls, X: np.ndarray, max_bin: int) -> QuantileBins:
        cuts = []
        for j in range(X.shape[1]):
            col = X[:, j]
            col = col[~np.isnan(col)]
            uniq = np.unique(col)
            if len(uniq) <= 1:
                cuts.append(np.zeros(0))
            elif len(uniq) <= max_bin:
                cuts.append(uniq[1:].astype(np.float64))  # one bin per distinct value
            else:
                qs = np.quantile(col, np.linspace(0, 1, max_bin + 1)[1:-1], method="lower")
                # a cut is the smallest distinct value above the quantile: x < cut goes left
                idx = np.searchsorted(uniq, qs, side="right")
                idx = np.unique(idx[(idx > 0) & (idx < len(uniq))])
                cuts.append(uniq[idx].astype(np.float64))
        return cls(cuts)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin codes (rows, features) as int16; NaN -> n_bins of its feature."""
        out = np.empty(X.shape, dtype=np.int16)
        for j, c in enumerate(self.cuts):
            col = X[:, j]
            codes = np.searchsorted(c, col, side="right")
            codes[np.isnan(col)] = len(c) + 1
            out[:, j] = codes
        return out

    def threshold(self, feature: int, bin_index: int) -> float:
        """The value of the rule ``x < threshold`` for a split after ``bin_index``."""
        return float(self.cuts[feature][bin_index])
