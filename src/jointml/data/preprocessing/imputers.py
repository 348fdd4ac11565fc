"""Missing-value imputation at the data owner: :class:`SimpleImputer`.

>>> SimpleImputer(strategy="median").fit_transform(np.array([[1.0], [np.nan], [3.0]])).ravel().tolist()
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from ...core.errors import DataError, ParameterError
from ._base import BaseTransformer, ColumnTypeError, _is_missing

__all__ = ["SimpleImputer"]


class SimpleImputer(BaseTransformer):
    """Replace missing values by a per-column statistic learned in ``fit``.

    Strategies (as ``sklearn.impute.SimpleImputer``): ``"mean"`` and
    ``"median"`` (numeric columns only), ``"most_frequent"`` (any column; ties
    go to the smallest value) and ``"constant"`` (``fill_value``; default 0 for
    numeric and ``"missing_value"`` for text columns).

    Works column by column, so a DataFrame may mix numeric and text columns
    (with ``most_frequent`` / ``constant``); each output column keeps its
    dtype where the fill value allows it.  Unlike scikit-learn, a column that is
    entirely missing at fit time is an error (it would otherwise be dropped and
    the output columns would no longer match the input).

    Parameters
    ----------
    strategy:
        ``"mean"``, ``"median"``, ``"most_frequent"`` or ``"constant"``.
    fill_value:
        Value used by ``"constant"``.
    missing_values:
        What counts as missing: ``np.nan`` (default) means NaN, None, pd.NA and
        NaT; any other value is compared by equality (e.g. ``-1`` or ``"?"``).

    Attributes
    ----------
    statistics_:
        Fill value per column (object array).

    Example
    -------
    >>> import numpy as np
    >>> SimpleImputer().fit_transform(np.array([[1.0], [np.nan], [3.0]])).ravel().tolist()
    [1.0, 2.0, 3.0]
    """

    _STRATEGIES = ("mean", "median", "most_frequent", "constant")

    def __init__(
        self,
        *,
        strategy: Literal["mean", "median", "most_frequent", "constant"] = "mean",
        fill_value: Any = None,
        missing_values: Any = np.nan,
    ) -> None:
        self.strategy = strategy
        self.fill_value = fill_value
        self.missing_values = missing_values

    def _missing(self, values: np.ndarray) -> np.ndarray:
        if _is_scalar_nan(self.missing_values):
            return _is_missing(values)
        with np.errstate(invalid="ignore"):
            eq = pd.Series(values, dtype=object) == self.missing_values
        return eq.to_numpy(dtype=bool) | _is_missing(values)

    def fit(self, X: Any, y: Any = None) -> "SimpleImputer":
        """Learn one fill value per column."""
        if self.strategy not in self._STRATEGIES:
            raise ParameterError(f"strategy must be one of {self._STRATEGIES}; got {self.strategy!r}", field="strategy")
        frame = self._frame_for_fit(X)
        who = type(self).__name__
        stats: list[Any] = []
        for col in frame.columns:
            s = frame[col]
            values = _column_values(s)
            numeric = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
            if s.dtype == object and not numeric:
                # object arrays of plain numbers (e.g. from np.array(..., dtype=object)) count as numeric
                present_vals = values[~_is_missing(values)]
                numeric = present_vals.size > 0 and all(
                    isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present_vals
                )
            miss = self._missing(values)
            present = values[~miss]
            if self.strategy == "constant":
                if self.fill_value is not None:
                    stats.append(self.fill_value)
                else:
                    stats.append(0 if numeric else "missing_value")
                continue
            if present.size == 0:
                raise DataError(
                    f"{who}.fit: column {col!r} has only missing values; cannot compute {self.strategy}", field=str(col)
                )
            if self.strategy in ("mean", "median"):
                if not numeric:
                    raise ColumnTypeError(
                        f"{who}: strategy={self.strategy!r} needs numbers but column {col!r} has dtype {s.dtype}; "
                        "use 'most_frequent' or 'constant'", field=str(col)
                    )
                x = present.astype(np.float64)
                stats.append(float(np.mean(x) if self.strategy == "mean" else np.median(x)))
            else:
                counts = pd.Series(present, dtype=object).value_counts(sort=False, dropna=True)
                top = counts[counts == counts.max()].index.tolist()
                try:
                    stats.append(min(top))
                except TypeError:
                    stats.append(top[0])  # unorderable mixed types: first seen
        self.statistics_ = np.asarray(stats + [None], dtype=object)[:-1]  # keep 1-D object array
        return self

    def transform(self, X: Any) -> Any:
        """Fill missing values with :attr:`statistics_`."""
        frame, is_frame = self._frame_for_transform(X)
        filled_cols: list[np.ndarray] = []
        for j, col in enumerate(frame.columns):
            s = frame[col]
            is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
            values = _column_values(s)
            miss = self._missing(values)
            fill = self.statistics_[j]
            if not miss.any():
                filled = s.to_numpy() if is_num else values
            elif is_num and isinstance(fill, (int, float, np.number)) and not isinstance(fill, bool):
                filled = values.astype(np.float64)  # a column with holes cannot stay integer
                filled[miss] = fill
            else:
                filled = values.astype(object)
                filled[miss] = fill
            filled_cols.append(filled)
        if is_frame:
            result = pd.DataFrame(dict(enumerate(filled_cols)), index=frame.index)
            result.columns = frame.columns
            for j, col in enumerate(frame.columns):
                src = frame[col].dtype
                # text columns come back as object arrays: restore the input's text
                # dtype, unless a non-text fill value would be turned into text
                if (not pd.api.types.is_numeric_dtype(src) and result[col].dtype != src
                        and isinstance(self.statistics_[j], str)):
                    try:
                        result[col] = result[col].astype(src)
                    except (TypeError, ValueError):
                        pass
            return result
        if all(c.dtype.kind in "fiub" for c in filled_cols):
            return np.column_stack([c.astype(np.float64) for c in filled_cols])
        return np.column_stack([c.astype(object) for c in filled_cols])


def _is_scalar_nan(x: Any) -> bool:
    try:
        return x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x))
    except TypeError:
        return False


def _column_values(s: pd.Series) -> np.ndarray:
    # nullable numeric dtypes (Int64, Float64) hold pd.NA: read them as float with NaN
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return s.to_numpy(dtype=object)
