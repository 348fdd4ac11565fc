"""Feature scaling at the data owner: :class:`StandardScaler`, :class:`MinMaxScaler`.

Both can also be fitted from aggregate statistics (``fit_from_stats``) so that a
horizontal / secure version only has to aggregate additive quantities (counts,
sums, sums of squares, minima, maxima) across parties and never the rows.

>>> MinMaxScaler().fit_transform(np.array([[1.0], [3.0], [2.0]])).ravel().tolist()
[0.0, 1.0, 0.5]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...core.errors import DataError, ParameterError
from ._base import BaseTransformer, _numeric_matrix, _wrap

__all__ = ["StandardScaler", "MinMaxScaler"]

_EPS = np.finfo(np.float64).eps


def _std_scale(var: np.ndarray, mean: np.ndarray, n: np.ndarray) -> np.ndarray:
    # scikit-learn's test for "constant up to round-off" (Chan, Golub & LeVeque
    # error bound of the two-pass variance): such columns get scale 1, not 1/eps
    constant = var <= n * _EPS * var + (n * mean * _EPS) ** 2
    scale = np.sqrt(var)
    scale[constant | (scale < 10 * _EPS)] = 1.0
    return scale


class StandardScaler(BaseTransformer):
    """Standardise columns to zero mean and unit variance: ``z = (x - mean_) / scale_``.

    Same results as ``sklearn.preprocessing.StandardScaler`` (population
    variance, ``ddof=0``).  NaNs are ignored when fitting and kept as NaN when
    transforming.  Constant columns get ``scale_ = 1`` (they become 0, not NaN).

    Parameters
    ----------
    with_mean:
        Subtract the mean (set False to keep zeros at zero).
    with_std:
        Divide by the standard deviation.

    Attributes
    ----------
    mean_, var_, scale_:
        Per-column mean, population variance, and divisor (1 where unused or constant).
    n_samples_seen_:
        Per-column (weighted) number of non-missing values.
    n_features_in_, feature_names_in_:
        Input width and, for DataFrame input, the column names.

    Example
    -------
    >>> import pandas as pd
    >>> StandardScaler().fit_transform(pd.DataFrame({"a": [1.0, 3.0]}))
         a
    0 -1.0
    1  1.0
    """

    def __init__(self, *, with_mean: bool = True, with_std: bool = True) -> None:
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "StandardScaler":
        """Learn per-column mean and variance (weighted if ``sample_weight`` is given)."""
        frame = self._frame_for_fit(X)
        values = _numeric_matrix(frame, type(self).__name__)
        n_rows = values.shape[0]
        if sample_weight is None:
            w = np.ones(n_rows)
        else:
            w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if w.shape[0] != n_rows:
                raise DataError(
                    f"StandardScaler.fit: sample_weight has {w.shape[0]} values, X has {n_rows} rows", field="sample_weight"
                )
            if not np.isfinite(w).all() or (w < 0).any():
                raise DataError("StandardScaler.fit: sample_weight must be finite and non-negative", field="sample_weight")
        present = ~np.isnan(values)
        wm = present * w[:, None]
        count = wm.sum(axis=0)
        empty = count <= 0
        if empty.any():
            col = frame.columns[np.flatnonzero(empty)[0]]
            raise DataError(
                f"StandardScaler.fit: column {col!r} has no non-missing values (with positive weight)", field=str(col)
            )
        filled = np.where(present, values, 0.0)
        mean = (wm * filled).sum(axis=0) / count
        # two-pass variance: stable where sum-of-squares minus square-of-sum is not
        var = (wm * (filled - mean) ** 2).sum(axis=0) / count
        self._set_moments(count, mean, var)
        return self

    def _set_moments(self, count: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
        self.n_samples_seen_ = count
        self.mean_ = mean
        self.var_ = var
        self.scale_ = _std_scale(var, mean, count) if self.with_std else np.ones_like(var)

    @staticmethod
    def compute_stats(X: Any, sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Additive sufficient statistics ``(count, sum, sum_sq)`` per column, NaNs skipped.

        Each party computes these on its rows; their element-wise sums (e.g.
        by secure aggregation) go to :meth:`fit_from_stats`.

        >>> StandardScaler.compute_stats([[1.0], [3.0]])
        (array([2.]), array([4.]), array([10.]))
        """
        tmp = StandardScaler()
        frame = tmp._frame_for_fit(X)
        values = _numeric_matrix(frame, "StandardScaler.compute_stats")
        w = np.ones(values.shape[0]) if sample_weight is None else np.asarray(sample_weight, float).reshape(-1)
        present = ~np.isnan(values)
        filled = np.where(present, values, 0.0)
        return (present * w[:, None]).sum(0), (filled * w[:, None]).sum(0), (filled**2 * w[:, None]).sum(0)

    def fit_from_stats(
        self,
        count: Any,
        total: Any,
        total_sq: Any,
        feature_names: Sequence[Any] | None = None,
    ) -> "StandardScaler":
        """Fit from aggregated ``(count, sum, sum of squares)`` per column.

        ``var = sum_sq / n - mean**2`` loses digits when ``|mean| >> std``;
        centre the data roughly first if that matters.

        >>> s = StandardScaler().fit_from_stats([2.0], [4.0], [10.0])
        >>> s.mean_, s.var_
        (array([2.]), array([1.]))
        """
        count = np.asarray(count, dtype=np.float64).reshape(-1)
        total = np.asarray(total, dtype=np.float64).reshape(-1)
        total_sq = np.asarray(total_sq, dtype=np.float64).reshape(-1)
        if not (count.shape == total.shape == total_sq.shape):
            raise DataError("count, total and total_sq must have the same length")
        if count.size == 0 or (count <= 0).any():
            raise DataError("every column needs a positive count", field="count")
        mean = total / count
        var = np.maximum(total_sq / count - mean**2, 0.0)
        self.n_features_in_ = count.size
        if feature_names is not None:
            if len(feature_names) != count.size:
                raise ParameterError("feature_names must have one name per column", field="feature_names")
            self.feature_names_in_ = np.asarray(list(feature_names), dtype=object)
        self._set_moments(count, mean, var)
        return self

    def transform(self, X: Any) -> Any:
        """Scale ``X`` (NaN stays NaN)."""
        frame, is_frame = self._frame_for_transform(X)
        values = _numeric_matrix(frame, type(self).__name__)
        if self.with_mean:
            values = values - self.mean_
        if self.with_std:
            values = values / self.scale_
        return _wrap(values, frame, is_frame)

    def inverse_transform(self, X: Any) -> Any:
        """Undo :meth:`transform`."""
        frame, is_frame = self._frame_for_transform(X)
        values = _numeric_matrix(frame, type(self).__name__)
        if self.with_std:
            values = values * self.scale_
        if self.with_mean:
            values = values + self.mean_
        return _wrap(values, frame, is_frame)


class MinMaxScaler(BaseTransformer):
    """Scale columns linearly so the training range maps to ``feature_range``.

    ``x * scale_ + min_`` with ``scale_ = (hi - lo) / (data_max_ - data_min_)``,
    as ``sklearn.preprocessing.MinMaxScaler``.  NaNs are ignored when fitting
    and kept.  A constant column maps to ``lo``.  With ``clip=True`` new values
    outside the training range are clipped to ``feature_range``.

    Example
    -------
    >>> MinMaxScaler().fit_transform([[1.0], [3.0], [2.0]]).ravel().tolist()
    [0.0, 1.0, 0.5]
    """

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0), *, clip: bool = False) -> None:
        self.feature_range = feature_range
        self.clip = clip

    def _range(self) -> tuple[float, float]:
        lo, hi = self.feature_range
        if not lo < hi:
            raise ParameterError(
                f"feature_range must be (min, max) with min < max; got {self.feature_range}", field="feature_range"
            )
        return float(lo), float(hi)

    def fit(self, X: Any, y: Any = None) -> "MinMaxScaler":
        """Learn per-column minimum and maximum."""
        self._range()
        frame = self._frame_for_fit(X)
        values = _numeric_matrix(frame, type(self).__name__)
        all_nan = np.isnan(values).all(axis=0)
        if all_nan.any():
            col = frame.columns[np.flatnonzero(all_nan)[0]]
            raise DataError(f"MinMaxScaler.fit: column {col!r} has no non-missing values", field=str(col))
        return self._set_range(np.nanmin(values, axis=0), np.nanmax(values, axis=0))

    def fit_from_stats(
        self, data_min: Any, data_max: Any, feature_names: Sequence[Any] | None = None
    ) -> "MinMaxScaler":
        """Fit from per-column minima and maxima (e.g. aggregated across parties).

        >>> MinMaxScaler().fit_from_stats([0.0], [4.0]).transform([[1.0]]).tolist()
        [[0.25]]
        """
        self._range()
        lo = np.asarray(data_min, dtype=np.float64).reshape(-1)
        hi = np.asarray(data_max, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape or lo.size == 0:
            raise DataError("data_min and data_max must be non-empty and of the same length")
        if (hi < lo).any():
            raise DataError("data_max must be >= data_min", field="data_max")
        self.n_features_in_ = lo.size
        if feature_names is not None:
            if len(feature_names) != lo.size:
                raise ParameterError("feature_names must have one name per column", field="feature_names")
            self.feature_names_in_ = np.asarray(list(feature_names), dtype=object)
        return self._set_range(lo, hi)

    def _set_range(self, data_min: np.ndarray, data_max: np.ndarray) -> "MinMaxScaler":
        lo, hi = self._range()
        self.data_min_ = data_min
        self.data_max_ = data_max
        self.data_range_ = data_max - data_min
        denom = self.data_range_.copy()
        denom[denom < 10 * _EPS] = 1.0  # constant column: avoid dividing by ~0
        self.scale_ = (hi - lo) / denom
        self.min_ = lo - data_min * self.scale_
        return self

    def transform(self, X: Any) -> Any:
        """Scale ``X`` into ``feature_range`` (NaN stays NaN)."""
        frame, is_frame = self._frame_for_transform(X)
        values = _numeric_matrix(frame, type(self).__name__) * self.scale_ + self.min_
        if self.clip:
            lo, hi = self._range()
            values = np.clip(values, lo, hi)
        return _wrap(values, frame, is_frame)

    def inverse_transform(self, X: Any) -> Any:
        """Undo :meth:`transform`."""
        frame, is_frame = self._frame_for_transform(X)
        values = (_numeric_matrix(frame, type(self).__name__) - self.min_) / self.scale_
        return _wrap(values, frame, is_frame)
