"""Categorical encoders at the data owner: :class:`OneHotEncoder`, :class:`OrdinalEncoder`.

Categories are learned per column and sorted (numbers numerically, text
lexicographically), as scikit-learn does; a missing value (NaN/None) is a
category of its own, listed last, again as scikit-learn.

>>> import pandas as pd
>>> OrdinalEncoder().fit_transform(pd.DataFrame({"city": ["b", "a", "b"]}))["city"].tolist()
[1.0, 0.0, 1.0]
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from ...core.errors import DataError, ParameterError
from ._base import BaseTransformer, _input_names, _is_missing, _sorted_categories, _wrap

__all__ = ["OneHotEncoder", "OrdinalEncoder"]


class _CategoricalEncoder(BaseTransformer):
    """Learns ``categories_`` and maps values to category positions."""

    categories: Any
    handle_unknown: str

    def _fit_categories(self, X: Any) -> pd.DataFrame:
        frame = self._frame_for_fit(X)
        who = type(self).__name__
        if self.categories != "auto":
            if len(self.categories) != frame.shape[1]:
                raise ParameterError(
                    f"{who}: categories has {len(self.categories)} lists but X has {frame.shape[1]} columns", field="categories"
                )
        cats: list[np.ndarray] = []
        for j, col in enumerate(frame.columns):
            values = frame[col].to_numpy(dtype=object)
            has_missing = bool(_is_missing(values).any())
            if self.categories == "auto":
                found = _sorted_categories(values, who, col)
                if has_missing:
                    found.append(np.nan)
            else:
                found = list(self.categories[j])
                if pd.Index(found).has_duplicates:
                    raise ParameterError(f"{who}: categories for column {col!r} contain duplicates", field="categories")
                if self.handle_unknown == "error":
                    codes = _codes(values, found)
                    bad = codes < 0
                    if bad.any():
                        shown = pd.unique(values[bad]).tolist()[:5]
                        raise DataError(f"{who}: column {col!r} has values {shown} not in the given categories", field=str(col))
            cats.append(np.asarray(found + [None], dtype=object)[:-1])
        self.categories_ = cats
        return frame

    def _transform_codes(self, frame: pd.DataFrame) -> list[np.ndarray]:
        """Category positions per column, -1 for unknown values."""
        who = type(self).__name__
        out = []
        for j, col in enumerate(frame.columns):
            values = frame[col].to_numpy(dtype=object)
            codes = _codes(values, self.categories_[j].tolist())
            unknown = codes < 0
            if unknown.any() and self.handle_unknown == "error":
                shown = pd.unique(values[unknown]).tolist()[:5]
                raise DataError(
                    f"{who}: column {col!r} has categories {shown} not seen in fit "
                    f"({int(unknown.sum())} rows); set handle_unknown to accept them", field=str(col)
                )
            out.append(codes)
        return out


def _codes(values: np.ndarray, categories: list[Any]) -> np.ndarray:
    """Position of each value in ``categories`` (-1 if absent); missing matches a NaN category."""
    cats = np.asarray(list(categories) + [None], dtype=object)[:-1]
    cat_missing = _is_missing(cats)
    miss = _is_missing(values)
    codes = np.full(values.shape[0], -1, dtype=np.int64)
    plain_pos = np.flatnonzero(~cat_missing)
    if plain_pos.size:
        # hashing via pandas is O(n); 1 == 1.0 == True as in Python equality
        idx = pd.Index(cats[plain_pos], dtype=object).get_indexer(values[~miss])
        codes[~miss] = np.where(idx >= 0, plain_pos[np.maximum(idx, 0)], -1)
    if cat_missing.any():
        codes[miss] = np.flatnonzero(cat_missing)[0]
    return codes


class OneHotEncoder(_CategoricalEncoder):
    """Encode each categorical column as 0/1 indicator columns (dense output).

    Matches ``sklearn.preprocessing.OneHotEncoder(sparse_output=False)``.

    Parameters
    ----------
    categories:
        ``"auto"`` (learn from data) or one list of categories per column.
    handle_unknown:
        ``"error"`` (default) raises on categories not seen in ``fit``;
        ``"ignore"`` encodes them as all zeros.
    drop:
        ``None`` keeps every indicator; ``"first"`` drops each column's first
        category; ``"if_binary"`` drops the first only for two-category columns
        (avoids perfectly collinear features in linear models).
    dtype:
        Output dtype.

    Attributes
    ----------
    categories_:
        Per column, the categories in output order (missing last, as NaN).
    drop_idx_:
        Per column, the position of the dropped category or ``None``.

    Output columns of a DataFrame are named ``"<column>_<category>"``.

    Example
    -------
    >>> import pandas as pd
    >>> OneHotEncoder().fit_transform(pd.DataFrame({"c": ["b", "a", "b"]}))
       c_a  c_b
    0  0.0  1.0
    1  1.0  0.0
    2  0.0  1.0
    """

    def __init__(
        self,
        *,
        categories: Literal["auto"] | Sequence[Sequence[Any]] = "auto",
        handle_unknown: Literal["error", "ignore"] = "error",
        drop: Literal["first", "if_binary"] | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.categories = categories
        self.handle_unknown = handle_unknown
        self.drop = drop
        self.dtype = dtype

    def fit(self, X: Any, y: Any = None) -> "OneHotEncoder":
        """Learn the categories of every column."""
        if self.handle_unknown not in ("error", "ignore"):
            raise ParameterError(
                f"handle_unknown must be 'error' or 'ignore'; got {self.handle_unknown!r}", field="handle_unknown"
            )
        if self.drop not in (None, "first", "if_binary"):
            raise ParameterError(f"drop must be None, 'first' or 'if_binary'; got {self.drop!r}", field="drop")
        self._fit_categories(X)
        self.drop_idx_: list[int | None]
        if self.drop is None:
            self.drop_idx_ = [None] * len(self.categories_)
        elif self.drop == "first":
            self.drop_idx_ = [0] * len(self.categories_)
        else:
            self.drop_idx_ = [0 if c.size == 2 else None for c in self.categories_]
        return self

    def transform(self, X: Any) -> Any:
        """Indicator matrix; DataFrame in, DataFrame out (named columns)."""
        frame, is_frame = self._frame_for_transform(X)
        codes = self._transform_codes(frame)
        blocks = []
        for j, c in enumerate(codes):
            k = self.categories_[j].size
            block = np.zeros((c.shape[0], k), dtype=self.dtype)
            rows = np.flatnonzero(c >= 0)
            block[rows, c[rows]] = 1
            drop = self.drop_idx_[j]
            if drop is not None:
                block = np.delete(block, drop, axis=1)
            blocks.append(block)
        out = np.hstack(blocks) if blocks else np.zeros((frame.shape[0], 0), dtype=self.dtype)
        return _wrap(out, frame, is_frame, self.get_feature_names_out())

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names ``"<column>_<category>"`` of the output columns."""
        self._check_is_fitted()
        names = _input_names(self, input_features)
        out = []
        for j, cats in enumerate(self.categories_):
            for i, cat in enumerate(cats.tolist()):
                if i != self.drop_idx_[j]:
                    out.append(f"{names[j]}_{cat}")
        return np.asarray(out, dtype=object)


class OrdinalEncoder(_CategoricalEncoder):
    """Encode each categorical column as the integer position of its category.

    Matches ``sklearn.preprocessing.OrdinalEncoder``: missing values become
    ``encoded_missing_value`` (NaN by default); unknown categories raise, or
    with ``handle_unknown="use_encoded_value"`` become ``unknown_value``.

    Example
    -------
    >>> OrdinalEncoder().fit_transform([["b"], ["a"], ["c"]]).ravel().tolist()
    [1.0, 0.0, 2.0]
    """

    def __init__(
        self,
        *,
        categories: Literal["auto"] | Sequence[Sequence[Any]] = "auto",
        handle_unknown: Literal["error", "use_encoded_value"] = "error",
        unknown_value: float | None = None,
        encoded_missing_value: float = np.nan,
        dtype: Any = np.float64,
    ) -> None:
        self.categories = categories
        self.handle_unknown = handle_unknown
        self.unknown_value = unknown_value
        self.encoded_missing_value = encoded_missing_value
        self.dtype = dtype

    def fit(self, X: Any, y: Any = None) -> "OrdinalEncoder":
        """Learn the categories of every column."""
        if self.handle_unknown not in ("error", "use_encoded_value"):
            raise ParameterError(
                f"handle_unknown must be 'error' or 'use_encoded_value'; got {self.handle_unknown!r}", field="handle_unknown"
            )
        if self.handle_unknown == "use_encoded_value" and self.unknown_value is None:
            raise ParameterError(
                "handle_unknown='use_encoded_value' needs unknown_value (an int or np.nan)", field="unknown_value"
            )
        self._fit_categories(X)
        return self

    def transform(self, X: Any) -> Any:
        """Category positions as ``dtype`` (float by default, so NaN can mark missing)."""
        frame, is_frame = self._frame_for_transform(X)
        codes = self._transform_codes(frame)
        out = np.empty((frame.shape[0], len(codes)), dtype=np.float64)
        for j, c in enumerate(codes):
            col = c.astype(np.float64)
            values = frame.iloc[:, j].to_numpy(dtype=object)
            col[_is_missing(values)] = self.encoded_missing_value
            if self.handle_unknown == "use_encoded_value":
                col[(c < 0) & ~_is_missing(values)] = self.unknown_value
            out[:, j] = col
        return _wrap(out.astype(self.dtype), frame, is_frame)

    def inverse_transform(self, X: Any) -> Any:
        """Map positions back to categories (missing / unknown codes become None)."""
        frame, is_frame = self._frame_for_transform(X)
        values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.empty(values.shape, dtype=object)
        for j, cats in enumerate(self.categories_):
            col = values[:, j]
            ok = np.isfinite(col) & (col >= 0) & (col < cats.size)
            out[:, j] = None
            out[ok, j] = cats[col[ok].astype(np.int64)]
        return _wrap(out, frame, is_frame)
