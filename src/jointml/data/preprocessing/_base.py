"""Shared machinery of the preprocessing estimators (scikit-learn's contract, no sklearn dependency).

Estimators take hyperparameters in ``__init__`` (stored unchanged), learn in
``fit`` and store learned state in attributes ending in ``_``.  They accept a
pandas DataFrame (column names are kept and checked again at ``transform``) or
a 2-D numpy array; the output has the same kind as the input.

>>> import pandas as pd
>>> from jointml.data.preprocessing import StandardScaler
>>> sc = StandardScaler().fit(pd.DataFrame({"a": [1.0, 3.0]}))
>>> sc.transform(pd.DataFrame({"a": [2.0]}))["a"].tolist(), list(sc.feature_names_in_)
([0.0], ['a'])
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import pandas as pd

from ...core.errors import ColumnTypeError, DataError, JointMLError, ParameterError, UnknownColumnError

__all__ = ["NotFittedError", "ColumnTypeError", "UnknownColumnError", "BaseTransformer", "clone"]


class NotFittedError(JointMLError, ValueError, AttributeError):
    """An estimator was used before ``fit``.

    >>> from jointml.data.preprocessing import StandardScaler
    >>> try:
    ...     StandardScaler().transform(np.zeros((1, 1)))
    ... except NotFittedError as e:
    ...     print("not fitted" in str(e))
    True
    """


def clone(estimator: Any) -> Any:
    """Unfitted copy of an estimator with the same hyperparameters (nested estimators cloned too).

    >>> from jointml.data.preprocessing import StandardScaler
    >>> clone(StandardScaler(with_mean=False))
    StandardScaler(with_mean=False)
    """
    params = estimator.get_params(deep=False)
    new = {k: clone(v) if hasattr(v, "get_params") and not isinstance(v, type) else copy.deepcopy(v)
           for k, v in params.items()}
    return type(estimator)(**new)


class BaseTransformer:
    """Base class: parameter handling, input checking and output wrapping.

    A subclass declares its hyperparameters in ``__init__`` and implements ``fit`` and
    ``transform``; parameters, ``fit_transform`` and input checks come from here.

    >>> class AddOne(BaseTransformer):
    ...     def __init__(self, k: float = 1.0):
    ...         self.k = k
    ...     def fit(self, X, y=None):
    ...         self._frame_for_fit(X)
    ...         return self
    ...     def transform(self, X):
    ...         frame, is_frame = self._frame_for_transform(X)
    ...         return _wrap(_numeric_matrix(frame, "AddOne") + self.k, frame, is_frame)
    >>> AddOne(k=2.0).fit_transform(np.zeros((2, 1))).tolist(), AddOne().get_params()
    ([[2.0], [2.0]], {'k': 1.0})
    """

    # every transformer defines fit(X[, y]) -> self (a supervised one needs y) and transform(X)
    fit: Callable[..., Any]

    # ---- parameters -----------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as a dict (``deep`` adds ``name__sub`` entries of nested estimators)."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            out[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> "BaseTransformer":
        """Set hyperparameters (``name__sub`` reaches into nested estimators); returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ParameterError(f"{type(self).__name__} has no parameter {name!r}; valid: {sorted(valid)}", field=str(name))
            if sub:
                getattr(self, name).set_params(**{sub: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name in self._param_names():
            default = sig.parameters[name].default
            value = getattr(self, name)
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays and the like: always show them
                same = False
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # ---- fitted state -----------------------------------------------------

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """``fit(X, y)`` then ``transform(X)``."""
        if y is None:
            return self.fit(X, **fit_params).transform(X)
        return self.fit(X, y, **fit_params).transform(X)

    # ---- input / output -----------------------------------------------------

    def _frame_for_fit(self, X: Any) -> pd.DataFrame:
        frame, is_frame = _to_frame(X, type(self).__name__)
        if frame.shape[0] == 0:
            raise DataError(f"{type(self).__name__}.fit: X has 0 rows; need at least 1 sample", field="X")
        if frame.shape[1] == 0:
            raise DataError(f"{type(self).__name__}.fit: X has 0 columns", field="X")
        if frame.columns.has_duplicates:
            dups = frame.columns[frame.columns.duplicated()].unique().tolist()
            raise DataError(f"{type(self).__name__}.fit: duplicate column names {dups}", field="X")
        self.n_features_in_ = frame.shape[1]
        if is_frame:
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return frame

    def _frame_for_transform(self, X: Any) -> tuple[pd.DataFrame, bool]:
        self._check_is_fitted()
        name = type(self).__name__
        frame, is_frame = _to_frame(X, name)
        names = getattr(self, "feature_names_in_", None)
        if is_frame and names is not None:
            expected = list(names)
            got = list(frame.columns)
            if got != expected:
                missing = [c for c in expected if c not in frame.columns]
                extra = [c for c in got if c not in set(expected)]
                if missing or extra or frame.columns.has_duplicates:
                    raise DataError(
                        f"{name}: columns differ from fit: missing {missing}, unexpected {extra}", field="X"
                    )
                # same columns in another order: align by name, which is unambiguous
                frame = frame[expected]
        else:
            if frame.shape[1] != self.n_features_in_:
                raise DataError(
                    f"{name}: X has {frame.shape[1]} columns but was fitted with {self.n_features_in_}", field="X"
                )
            if names is not None:
                frame.columns = pd.Index(list(names), dtype=object)
        return frame, is_frame

    def _column_names(self) -> list[Hashable]:
        names = getattr(self, "feature_names_in_", None)
        return list(range(self.n_features_in_)) if names is None else list(names)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Output column names (same as input for one-to-one transformers)."""
        self._check_is_fitted()
        return _input_names(self, input_features)


def _input_names(est: Any, input_features: Sequence[str] | None) -> np.ndarray:
    if input_features is not None:
        names = np.asarray(list(input_features), dtype=object)
        if names.size != est.n_features_in_:
            raise ParameterError(f"input_features has {names.size} names, expected {est.n_features_in_}", field="input_features")
        return names
    fitted = getattr(est, "feature_names_in_", None)
    if fitted is not None:
        return np.asarray([str(c) for c in fitted], dtype=object)
    return np.asarray([f"x{i}" for i in range(est.n_features_in_)], dtype=object)


def _to_frame(X: Any, who: str) -> tuple[pd.DataFrame, bool]:
    """View any 2-D input as a DataFrame; the flag says whether it was one."""
    if isinstance(X, pd.DataFrame):
        return X, True
    if isinstance(X, pd.Series):
        return X.to_frame(), True
    if X is None:
        raise DataError(f"{who}: X is None", field="X")
    arr = np.asarray(X)
    if arr.ndim == 1:
        raise DataError(
            f"{who}: expected a 2-D array (n_samples, n_features) but got 1-D of length {arr.shape[0]}; "
            "use X.reshape(-1, 1) for a single feature or pass a DataFrame/Series", field="X"
        )
    if arr.ndim != 2:
        raise DataError(f"{who}: expected a 2-D array, got shape {arr.shape}", field="X")
    return pd.DataFrame(arr, copy=False), False


def _numeric_matrix(frame: pd.DataFrame, who: str, *, allow_nan: bool = True) -> np.ndarray:
    """Float64 matrix of a frame; non-numeric columns and infinities get a clear error."""
    for col in frame.columns:
        s = frame[col]
        if not pd.api.types.is_numeric_dtype(s.dtype):
            try:
                pd.to_numeric(s.to_numpy(dtype=object) if s.dtype == object else s, errors="raise")
            except (TypeError, ValueError):
                raise ColumnTypeError(
                    f"{who}: column {col!r} is not numeric (dtype {s.dtype}); "
                    "encode it first (OneHotEncoder, OrdinalEncoder or WOEEncoder)", field=str(col)
                ) from None
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        col = frame.columns[np.flatnonzero(np.isinf(values).any(axis=0))[0]]
        raise DataError(f"{who}: column {col!r} contains infinity", field=str(col))
    if not allow_nan and np.isnan(values).any():
        col = frame.columns[np.flatnonzero(np.isnan(values).any(axis=0))[0]]
        raise DataError(f"{who}: column {col!r} contains NaN", field=str(col))
    return values


def _wrap(values: np.ndarray, frame: pd.DataFrame, is_frame: bool, columns: Sequence[Any] | np.ndarray | None = None) -> Any:
    if not is_frame:
        return values
    cols = frame.columns if columns is None else pd.Index(list(columns), dtype=object)
    return pd.DataFrame(values, index=frame.index, columns=cols)


def _is_missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def _sorted_categories(values: np.ndarray, who: str, col: Any) -> list[Any]:
    """Distinct non-missing values, sorted (numbers numerically, strings lexicographically)."""
    uniq = pd.unique(values[~_is_missing(values)])
    try:
        return sorted(uniq.tolist())
    except TypeError:
        raise ColumnTypeError(
            f"{who}: column {col!r} mixes value types that cannot be ordered "
            f"(e.g. {sorted({type(v).__name__ for v in uniq.tolist()})}); convert it to one type", field=str(col)
        ) from None


def _check_binary_target(y: Any, n: int, pos_label: Any, who: str) -> np.ndarray:
    """0/1 int array of the target, 1 = ``pos_label`` (the "bad" class in credit scoring)."""
    if y is None:
        raise DataError(f"{who}: this estimator is supervised; fit(X, y) needs the labels y", field="y")
    arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{who}: y must be 1-D; got shape {arr.shape}", field="y")
    if arr.shape[0] != n:
        raise DataError(f"{who}: X has {n} rows but y has {arr.shape[0]}", field="y")
    if _is_missing(arr).any():
        raise DataError(f"{who}: y contains NaN/None ({int(_is_missing(arr).sum())} values)", field="y")
    classes = pd.unique(arr).tolist()
    if len(classes) > 2:
        raise DataError(f"{who}: y must be binary; found {len(classes)} classes", field="y")
    if len(classes) < 2:
        raise DataError(f"{who}: y has only one class ({classes[0]!r}); need both to fit", field="y")
    if pos_label not in classes:
        raise DataError(
            f"{who}: pos_label={pos_label!r} does not occur in y (labels {sorted(map(str, classes))}); "
            "pass pos_label= naming the positive ('bad') class", field="y"
        )
    return (arr == pos_label).astype(np.int64)
