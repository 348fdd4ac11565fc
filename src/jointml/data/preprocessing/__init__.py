"""Per-party (plaintext) preprocessing: scalers, imputation, encoders, binning and WOE.

These estimators run at the data owner on its own columns, with the
scikit-learn contract (hyperparameters in ``__init__``, learned state in
``*_`` attributes, ``fit`` / ``transform`` / ``fit_transform``), on pandas
DataFrames (column names kept) or numpy arrays.  The secure / vertical
versions reuse the count-based cores: :func:`bin_counts`,
:func:`chimerge_from_counts`, :func:`tree_splits_from_counts` and
:func:`woe_iv_from_counts`.

>>> import pandas as pd
>>> from jointml.data.preprocessing import WOEEncoder, TreeBinner
>>> X = pd.DataFrame({"x": [1, 2, 3, 4, 5, 6, 7, 8]})
>>> y = [0, 0, 0, 1, 0, 1, 1, 1]
>>> enc = WOEEncoder(TreeBinner(max_bins=2, min_bin_frac=0.25, n_prebins=None)).fit(X, y)
>>> enc.binner_.bins_[0].edges.tolist(), round(float(enc.iv_["x"]), 3)
([3.5], 2.16)
"""

from ._base import BaseTransformer, ColumnTypeError, NotFittedError, UnknownColumnError, clone
from .binning import (
    ChiMergeBinner,
    ColumnBins,
    EqualFrequencyBinner,
    EqualWidthBinner,
    TreeBinner,
    bin_counts,
    chi2_adjacent,
    chi2_threshold,
    chimerge_from_counts,
    enforce_min_share,
    equal_frequency_edges,
    equal_width_edges,
    merge_counts,
    tree_splits_from_counts,
)
from .controls import BinningControls, ControlledBinner, check_owned, monotonic_cuts, trend_cuts
from .encoders import OneHotEncoder, OrdinalEncoder
from .imputers import SimpleImputer
from .scalers import MinMaxScaler, StandardScaler
from .woe import WOEEncoder, woe_iv_from_counts

__all__ = [
    "BaseTransformer",
    "NotFittedError",
    "ColumnTypeError",
    "UnknownColumnError",
    "clone",
    "StandardScaler",
    "MinMaxScaler",
    "SimpleImputer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "ColumnBins",
    "EqualFrequencyBinner",
    "EqualWidthBinner",
    "ChiMergeBinner",
    "TreeBinner",
    "bin_counts",
    "merge_counts",
    "enforce_min_share",
    "chi2_adjacent",
    "chi2_threshold",
    "chimerge_from_counts",
    "tree_splits_from_counts",
    "equal_frequency_edges",
    "equal_width_edges",
    "WOEEncoder",
    "woe_iv_from_counts",
    "BinningControls",
    "ControlledBinner",
    "check_owned",
    "monotonic_cuts",
    "trend_cuts",
]
