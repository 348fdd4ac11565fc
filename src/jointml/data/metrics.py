"""Plaintext evaluation metrics for binary (and multiclass) classifiers.

Every party runs these on values it holds in plaintext (its own labels and
scores, or scores revealed to it by an explicit ``reveal(to=...)``).  The curve
metrics are written on top of *sufficient statistics* -- per score bucket
counts of positives and negatives -- so a secure protocol that can only produce
such a histogram (e.g. the label holder learning per-bucket counts of encrypted
scores) reuses the exact same arithmetic:

* :func:`roc_auc_from_counts`, :func:`ks_from_counts`, :func:`psi_from_counts`

Conventions
-----------
* ``y_true`` is binary; the *positive* class (label ``1`` by default, the
  "bad" borrower in credit scoring) is the one the score ranks high.
* A threshold ``t`` predicts positive when ``score >= t``; curves are listed by
  decreasing threshold and start at ``+inf`` (nothing predicted positive), like
  scikit-learn.
* Inputs are validated up front: empty arrays, mismatched lengths, NaN or
  infinite scores and single-class targets raise :class:`~jointml.core.errors.DataError` (a
  ``ValueError``) naming the argument, never a silent NaN.

Everything is vectorised numpy, ``O(n log n)`` (one sort) at most.

Example
-------
>>> from jointml.data import metrics
>>> y = [0, 0, 1, 1]
>>> s = [0.1, 0.4, 0.35, 0.8]
>>> metrics.roc_auc(y, s)
0.75
>>> round(metrics.ks(y, s).statistic, 3)
0.5
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataError, ParameterError

__all__ = [
    "roc_curve",
    "roc_auc",
    "roc_auc_from_counts",
    "KSResult",
    "ks",
    "ks_from_counts",
    "accuracy",
    "precision_recall_f1",
    "precision",
    "recall",
    "f1",
    "confusion_matrix",
    "log_loss",
    "lift_table",
    "psi",
    "psi_table",
    "psi_from_counts",
]

ArrayLike = Any  # list, numpy array, pandas Series ...


# ---------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------


def _as_1d(name: str, a: ArrayLike, *, numeric: bool, allow_empty: bool = False) -> np.ndarray:
    if a is None:
        raise DataError(f"{name} is None", field=name)
    if isinstance(a, (pd.Series, pd.Index)):
        arr = a.to_numpy()
    elif isinstance(a, pd.DataFrame):
        if a.shape[1] != 1:
            raise DataError(f"{name} must be 1-D; got a DataFrame with {a.shape[1]} columns", field=name)
        arr = a.iloc[:, 0].to_numpy()
    else:
        arr = np.asarray(a)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D; got shape {arr.shape}", field=name)
    if arr.shape[0] == 0 and not allow_empty:
        raise DataError(f"{name} is empty; need at least one sample", field=name)
    if numeric:
        try:
            arr = arr.astype(np.float64) if arr.dtype != np.float32 else arr
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} must be numeric; got dtype {arr.dtype}", field=name) from exc
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "NaN" if np.isnan(arr[i]) else "infinity"
            raise DataError(
                f"{name} contains {kind} (first at position {i}, {int(bad.sum())} non-finite values)", field=name
            )
    else:
        missing = pd.isna(arr) if arr.dtype.kind in "fOUSMm" else np.zeros(arr.shape, bool)
        if np.any(missing):
            i = int(np.flatnonzero(missing)[0])
            raise DataError(
                f"{name} contains NaN/None (first at position {i}, {int(missing.sum())} missing)", field=name
            )
    return arr


def _check_same_length(**arrays: np.ndarray | None) -> None:
    items = [(k, v) for k, v in arrays.items() if v is not None]
    n0 = items[0][1].shape[0]
    for _, v in items[1:]:
        if v.shape[0] != n0:
            desc = ", ".join(f"{kk} has {vv.shape[0]}" for kk, vv in items)
            raise DataError(f"inconsistent numbers of samples: {desc}")


def _check_weights(sample_weight: ArrayLike | None, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = _as_1d("sample_weight", sample_weight, numeric=True, allow_empty=True)
    if w.shape[0] != n:
        raise DataError(f"sample_weight has {w.shape[0]} elements but there are {n} samples", field="sample_weight")
    if (w < 0).any():
        raise DataError("sample_weight contains negative values", field="sample_weight")
    return w.astype(np.float64)


def _binary_positive_mask(y: np.ndarray, pos_label: Any, name: str = "y_true") -> np.ndarray:
    """Boolean mask of the positive class, with scikit-learn's pos_label rules."""
    classes = pd.unique(y)
    if len(classes) > 2:
        shown = sorted(map(str, classes))[:5]
        raise DataError(f"{name} must be binary; found {len(classes)} classes (e.g. {shown})", field=name)
    if pos_label is None:
        numeric = y.dtype.kind in "biuf"
        ok = numeric and set(np.asarray(classes, dtype=float).tolist()) <= {0.0, 1.0} or (
            numeric and set(np.asarray(classes, dtype=float).tolist()) <= {-1.0, 1.0}
        )
        if not ok:
            raise DataError(
                f"{name} has labels {sorted(map(str, classes))}; pass pos_label= to say which "
                "one is the positive class (only {0, 1} and {-1, 1} are inferred)", field=name
            )
        pos_label = 1
    return np.asarray(y == pos_label, dtype=bool)


# ---------------------------------------------------------------------------
# ROC / AUC / KS
# ---------------------------------------------------------------------------


def _clf_curve(
    y_pos: np.ndarray, score: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (fps, tps) at every distinct score, thresholds decreasing."""
    if w is not None:
        # zero-weight samples must not create thresholds of their own (as sklearn)
        keep = w != 0
        y_pos, score, w = y_pos[keep], score[keep], w[keep]
    order = np.argsort(score, kind="stable")[::-1]
    score = score[order]
    y_pos = y_pos[order]
    distinct = np.flatnonzero(np.diff(score))
    idx = np.r_[distinct, y_pos.size - 1]
    if w is None:
        tps = np.cumsum(y_pos, dtype=np.float64)[idx]
        fps = 1.0 + idx - tps
    else:
        w = w[order]
        tps = np.cumsum(y_pos * w, dtype=np.float64)[idx]
        fps = np.cumsum(~y_pos * w, dtype=np.float64)[idx]
    return fps, tps, score[idx]


def _binary_inputs(
    y_true: ArrayLike, y_score: ArrayLike, pos_label: Any, sample_weight: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y = _as_1d("y_true", y_true, numeric=False)
    s = _as_1d("y_score", y_score, numeric=True)
    _check_same_length(y_true=y, y_score=s)
    w = _check_weights(sample_weight, y.shape[0])
    return _binary_positive_mask(y, pos_label), s.astype(np.float64), w


def _require_both_classes(fps: np.ndarray, tps: np.ndarray, what: str) -> None:
    if tps.size == 0 or tps[-1] <= 0:
        raise DataError(f"{what} is undefined: y_true has no positive samples (only one class)", field="y_true")
    if fps[-1] <= 0:
        raise DataError(f"{what} is undefined: y_true has no negative samples (only one class)", field="y_true")


def roc_curve(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    pos_label: Any = None,
    sample_weight: ArrayLike | None = None,
    drop_intermediate: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic curve, identical to ``sklearn.metrics.roc_curve``.

    Returns ``(fpr, tpr, thresholds)`` with thresholds decreasing and
    ``thresholds[0] = inf`` so the curve starts at ``(0, 0)``.  Tied scores form
    one point (a diagonal segment on the curve).  With ``drop_intermediate``
    collinear points are dropped; the area is unchanged.

    Raises ``ValueError`` if ``y_true`` holds only one class.

    >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y_pos, s, w = _binary_inputs(y_true, y_score, pos_label, sample_weight)
    fps, tps, thr = _clf_curve(y_pos, s, w)
    _require_both_classes(fps, tps, "ROC curve")
    if drop_intermediate and fps.shape[0] > 2:
        # keep only corners: a zero second difference in both coordinates is a
        # point in the middle of a straight segment (same rule as sklearn)
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps = np.r_[0.0, fps]
    tps = np.r_[0.0, tps]
    thr = np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def _auc_from_cum(fps: np.ndarray, tps: np.ndarray) -> float:
    # trapezoid on the un-normalised curve, then one division: ties count 1/2,
    # exactly the Mann-Whitney U statistic that sklearn's trapezoid computes
    f = np.r_[0.0, fps]
    t = np.r_[0.0, tps]
    area = np.sum(np.diff(f) * (t[1:] + t[:-1])) / 2.0
    return float(area / (fps[-1] * tps[-1]))


def roc_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    pos_label: Any = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Area under the ROC curve; matches ``sklearn.metrics.roc_auc_score`` (binary).

    Tied scores are credited 1/2 (the trapezoid through a tie block), exactly as
    scikit-learn.  Unlike scikit-learn (which warns and returns NaN), a target
    with one class only raises ``ValueError``.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])  # a tie is worth one half
    0.5
    """
    y_pos, s, w = _binary_inputs(y_true, y_score, pos_label, sample_weight)
    fps, tps, _ = _clf_curve(y_pos, s, w)
    _require_both_classes(fps, tps, "ROC AUC")
    return _auc_from_cum(fps, tps)


def _counts_pair(pos_counts: ArrayLike, neg_counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pos = _as_1d("pos_counts", pos_counts, numeric=True)
    neg = _as_1d("neg_counts", neg_counts, numeric=True)
    _check_same_length(pos_counts=pos, neg_counts=neg)
    if (pos < 0).any() or (neg < 0).any():
        raise DataError("counts must be non-negative")
    return pos.astype(np.float64), neg.astype(np.float64)


def roc_auc_from_counts(pos_counts: ArrayLike, neg_counts: ArrayLike) -> float:
    """AUC from per-bucket counts of positives and negatives.

    ``pos_counts[i]`` / ``neg_counts[i]`` are the (possibly weighted) numbers of
    positive / negative samples whose score falls in bucket ``i``; buckets are in
    **ascending** score order and samples inside a bucket count as tied.  With
    one bucket per distinct score this equals :func:`roc_auc` exactly; with
    coarser buckets it is the AUC of the bucketed score.  This is what a secure
    protocol needs to supply: a histogram, not the scores.

    >>> roc_auc_from_counts([0, 1, 1], [1, 1, 0])   # scores 0.1, 0.35/0.4 tie, 0.8
    0.875
    """
    pos, neg = _counts_pair(pos_counts, neg_counts)
    tps, fps = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
    _require_both_classes(fps, tps, "ROC AUC")
    return _auc_from_cum(fps, tps)


@dataclass(frozen=True)
class KSResult:
    """Kolmogorov-Smirnov statistic of a binary score and its curve.

    Attributes
    ----------
    statistic:
        ``max |cum_pos_rate - cum_neg_rate|`` over all thresholds; equals the
        two-sample KS statistic between the score distributions of positives and
        negatives (``scipy.stats.ks_2samp``).
    threshold:
        Score threshold where the maximum is reached (first one, scanning from
        the highest score); samples with ``score >= threshold`` are on the
        "predicted positive" side.
    index:
        Position of the maximum in the curve arrays below.
    thresholds:
        Distinct thresholds, decreasing, starting at ``+inf``.
    cum_pos_rate:
        Share of positives (the "bad" rate when label 1 = bad) with
        ``score >= threshold`` -- the TPR.
    cum_neg_rate:
        Share of negatives ("good") with ``score >= threshold`` -- the FPR.

    >>> r = ks([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> r.statistic, r.threshold, r.thresholds.tolist()
    (0.5, 0.8, [inf, 0.8, 0.4, 0.35, 0.1])
    """

    statistic: float
    threshold: float
    index: int
    thresholds: np.ndarray
    cum_pos_rate: np.ndarray
    cum_neg_rate: np.ndarray

    @property
    def diff(self) -> np.ndarray:
        """``cum_pos_rate - cum_neg_rate`` along the curve."""
        return self.cum_pos_rate - self.cum_neg_rate

    def to_frame(self) -> pd.DataFrame:
        """The curve as a DataFrame (threshold, cum_pos_rate, cum_neg_rate, diff)."""
        return pd.DataFrame(
            {
                "threshold": self.thresholds,
                "cum_pos_rate": self.cum_pos_rate,
                "cum_neg_rate": self.cum_neg_rate,
                "diff": self.diff,
            }
        )


def _ks_from_cum(fps: np.ndarray, tps: np.ndarray, thr: np.ndarray) -> KSResult:
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    thr = np.r_[np.inf, thr]
    gap = np.abs(tpr - fpr)
    i = int(np.argmax(gap))
    return KSResult(float(gap[i]), float(thr[i]), i, thr, tpr, fpr)


def ks(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    pos_label: Any = None,
    sample_weight: ArrayLike | None = None,
) -> KSResult:
    """Kolmogorov-Smirnov statistic of a binary classifier, with its curve.

    The curve is evaluated at every distinct score (ties kept together), so the
    maximum is exact, not the decile approximation.  Use ``.statistic`` for the
    number, ``.threshold`` for where it is reached and ``.to_frame()`` for the
    curve.

    >>> r = ks([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> r.statistic, r.threshold
    (0.5, 0.8)
    """
    y_pos, s, w = _binary_inputs(y_true, y_score, pos_label, sample_weight)
    fps, tps, thr = _clf_curve(y_pos, s, w)
    _require_both_classes(fps, tps, "KS")
    return _ks_from_cum(fps, tps, thr)


def ks_from_counts(pos_counts: ArrayLike, neg_counts: ArrayLike) -> KSResult:
    """KS from per-bucket counts of positives and negatives (buckets in ascending score order).

    The returned ``thresholds`` are bucket indices ("bucket >= t" is the
    positive side), starting at ``+inf``.  With one bucket per distinct score
    this equals :func:`ks`.

    >>> ks_from_counts([0, 1, 1], [1, 1, 0]).statistic
    0.5
    """
    pos, neg = _counts_pair(pos_counts, neg_counts)
    tps, fps = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
    _require_both_classes(fps, tps, "KS")
    thr = np.arange(pos.size - 1, -1, -1, dtype=np.float64)
    return _ks_from_cum(fps, tps, thr)


# ---------------------------------------------------------------------------
# label metrics
# ---------------------------------------------------------------------------


def _label_pair(
    y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    yt = _as_1d("y_true", y_true, numeric=False)
    yp = _as_1d("y_pred", y_pred, numeric=False)
    _check_same_length(y_true=yt, y_pred=yp)
    return yt, yp, _check_weights(sample_weight, yt.shape[0])


def accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    normalize: bool = True,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Share (or, with ``normalize=False``, weighted number) of correct labels.

    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    yt, yp, w = _label_pair(y_true, y_pred, sample_weight)
    correct = (yt == yp).astype(np.float64)
    if normalize:
        return float(np.average(correct, weights=w))
    return float(correct.sum() if w is None else correct @ w)


def _sorted_labels(*arrays: np.ndarray) -> np.ndarray:
    labels = pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    try:
        return np.array(sorted(labels.tolist()), dtype=object)
    except TypeError as exc:
        raise DataError("labels mix types that cannot be ordered (e.g. numbers and strings)", field="labels") from exc


def _label_codes(y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return pd.Index(labels.tolist()).get_indexer(np.asarray(y, dtype=object))


def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: Sequence[Any] | None = None,
    sample_weight: ArrayLike | None = None,
    normalize: Literal["true", "pred", "all"] | None = None,
) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = (weighted) count of true ``labels[i]`` predicted ``labels[j]``.

    Same layout and options as ``sklearn.metrics.confusion_matrix``: labels
    default to the sorted union of ``y_true`` and ``y_pred``; samples whose
    labels are not in ``labels`` are ignored.

    >>> confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0]).tolist()
    [[2, 0], [1, 1]]
    """
    yt, yp, w = _label_pair(y_true, y_pred, sample_weight)
    if labels is None:
        labs = _sorted_labels(yt, yp)
    else:
        labs = np.asarray(list(labels), dtype=object)
        if labs.size == 0:
            raise ParameterError("labels is empty", field="labels")
        if pd.Index(labs.tolist()).has_duplicates:
            raise ParameterError("labels contains duplicates", field="labels")
    k = labs.size
    ti, pi = _label_codes(yt, labs), _label_codes(yp, labs)
    keep = (ti >= 0) & (pi >= 0)
    flat = ti[keep] * k + pi[keep]
    int_weights = w is None or (
        sample_weight is not None and np.asarray(sample_weight).dtype.kind in "biu"
    )
    cm = np.bincount(flat, weights=None if w is None else w[keep], minlength=k * k).reshape(k, k)
    cm = cm.astype(np.int64) if int_weights else cm.astype(np.float64)
    if normalize is None:
        return cm
    with np.errstate(divide="ignore", invalid="ignore"):
        if normalize == "true":
            out = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            out = cm / cm.sum(axis=0, keepdims=True)
        elif normalize == "all":
            out = cm / cm.sum()
        else:
            raise ParameterError(f"normalize must be 'true', 'pred', 'all' or None; got {normalize!r}", field="normalize")
    return np.nan_to_num(out)


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(np.shape(num), float(zero_division), dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    pos_label: Any = 1,
    average: Literal["binary", "micro", "macro", "weighted"] | None = "binary",
    labels: Sequence[Any] | None = None,
    beta: float = 1.0,
    sample_weight: ArrayLike | None = None,
    zero_division: float = 0.0,
) -> tuple[Any, Any, Any]:
    """Precision, recall and F-beta, as ``sklearn.metrics.precision_recall_fscore_support``.

    ``average="binary"`` reports the class ``pos_label`` only (the default,
    for binary targets); ``"micro"``, ``"macro"``, ``"weighted"`` average over
    ``labels`` (default: all labels seen); ``None`` returns one value per label.
    A ratio with a zero denominator is ``zero_division`` (0.0 by default, as
    sklearn after its warning).

    >>> precision_recall_f1([0, 1, 1, 0], [0, 1, 0, 1])
    (0.5, 0.5, 0.5)
    """
    yt, yp, w = _label_pair(y_true, y_pred, sample_weight)
    if beta < 0:
        raise ParameterError("beta must be non-negative", field="beta")
    present = _sorted_labels(yt, yp)
    if average == "binary":
        if present.size > 2:
            raise ParameterError(
                f"average='binary' needs a binary target but found {present.size} labels "
                f"{present.tolist()[:5]}; choose average='micro', 'macro', 'weighted' or None", field="average"
            )
        if present.size == 2 and pos_label not in present.tolist():
            raise ParameterError(f"pos_label={pos_label!r} is not a label; labels are {present.tolist()}", field="pos_label")
        labs = np.array([pos_label], dtype=object)
    elif average in ("micro", "macro", "weighted", None):
        labs = present if labels is None else np.asarray(list(labels), dtype=object)
    else:
        raise ParameterError(f"unknown average={average!r}", field="average")
    ti, pi = _label_codes(yt, labs), _label_codes(yp, labs)
    ww = np.ones(yt.shape[0]) if w is None else w
    k = labs.size
    hit = (ti == pi) & (ti >= 0)
    tp = np.bincount(ti[hit], weights=ww[hit], minlength=k)
    true_sum = np.bincount(ti[ti >= 0], weights=ww[ti >= 0], minlength=k)
    pred_sum = np.bincount(pi[pi >= 0], weights=ww[pi >= 0], minlength=k)
    if average == "micro":
        tp, true_sum, pred_sum = tp.sum(keepdims=True), true_sum.sum(keepdims=True), pred_sum.sum(keepdims=True)
    b2 = beta * beta
    p = _divide(tp, pred_sum, zero_division)
    r = _divide(tp, true_sum, zero_division)
    f = _divide((1 + b2) * tp, b2 * true_sum + pred_sum, zero_division)
    if average is None:
        return p, r, f
    if average == "weighted":
        if true_sum.sum() == 0:
            return (float(zero_division),) * 3
        wts = true_sum
    else:
        wts = None

    def _avg(v: np.ndarray) -> float:
        if np.isnan(zero_division):  # sklearn drops undefined values from the mean
            m = ~np.isnan(v)
            return float(np.average(v[m], weights=None if wts is None else wts[m])) if m.any() else np.nan
        return float(np.average(v, weights=wts))

    return _avg(p), _avg(r), _avg(f)


def precision(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: Any) -> Any:
    """Precision ``tp / (tp + fp)``; keyword options as :func:`precision_recall_f1`.

    >>> precision([0, 1, 1, 0], [0, 1, 1, 1])
    0.6666666666666666
    """
    return precision_recall_f1(y_true, y_pred, **kwargs)[0]


def recall(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: Any) -> Any:
    """Recall ``tp / (tp + fn)``; keyword options as :func:`precision_recall_f1`.

    >>> recall([0, 1, 1, 0], [0, 1, 0, 0])
    0.5
    """
    return precision_recall_f1(y_true, y_pred, **kwargs)[1]


def f1(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: Any) -> Any:
    """F1 score (harmonic mean of precision and recall); options as :func:`precision_recall_f1`.

    >>> round(f1([0, 1, 1, 0], [0, 1, 1, 1]), 4)
    0.8
    """
    kwargs.setdefault("beta", 1.0)
    return precision_recall_f1(y_true, y_pred, **kwargs)[2]


def log_loss(
    y_true: ArrayLike,
    y_proba: ArrayLike,
    *,
    normalize: bool = True,
    sample_weight: ArrayLike | None = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cross-entropy loss, as ``sklearn.metrics.log_loss``.

    ``y_proba`` is either 1-D (probability of the greater of two sorted labels,
    i.e. of class ``1`` for 0/1 targets) or ``(n_samples, n_classes)`` with
    columns in sorted label order.  Probabilities are clipped to
    ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of their dtype (so a
    confident mistake costs about 36, not infinity), exactly like sklearn.

    >>> round(log_loss([0, 1, 1], [0.1, 0.8, 0.6]), 6)
    0.279777
    """
    yt = _as_1d("y_true", y_true, numeric=False)
    proba = _check_proba(y_proba, yt.shape[0])
    w = _check_weights(sample_weight, yt.shape[0])
    labs = _log_loss_labels(yt, labels)
    if proba.ndim == 1:
        proba = np.column_stack([1 - proba, proba])
    if proba.shape[1] != labs.size:
        raise DataError(
            f"y_true has {labs.size} classes {labs.tolist()[:5]} but y_proba has {proba.shape[1]} columns; "
            "pass labels= explicitly", field="y_proba"
        )
    eps = np.finfo(proba.dtype).eps
    if not np.allclose(proba.sum(axis=1), 1.0, rtol=np.sqrt(eps), atol=0):
        warnings.warn("y_proba rows do not sum to one; pass probabilities", UserWarning, stacklevel=2)
    proba = np.clip(proba, eps, 1 - eps)
    codes = _label_codes(yt, labs)
    loss = -np.log(proba[np.arange(yt.shape[0]), codes]).astype(np.float64)
    if normalize:
        return float(np.average(loss, weights=w))
    return float(loss.sum() if w is None else loss @ w)


def _check_proba(y_proba: ArrayLike, n: int) -> np.ndarray:
    """`y_proba` as float32/float64, 1-D or 2-D, finite, within [0, 1], with `n` rows."""
    proba = np.asarray(y_proba)
    if proba.dtype.kind not in "fiub":
        raise DataError(f"y_proba must be numeric; got dtype {proba.dtype}", field="y_proba")
    proba = proba.astype(proba.dtype if proba.dtype in (np.float32, np.float64) else np.float64)
    if proba.ndim == 2 and proba.shape[1] == 1:
        proba = proba[:, 0]
    if proba.ndim not in (1, 2):
        raise DataError(f"y_proba must be 1-D or 2-D; got shape {proba.shape}", field="y_proba")
    if proba.shape[0] == 0:
        raise DataError("y_proba is empty; need at least one sample", field="y_proba")
    if not np.isfinite(proba).all():
        raise DataError("y_proba contains NaN or infinity", field="y_proba")
    if proba.max() > 1:
        raise DataError(f"y_proba contains values greater than 1: {proba.max()}", field="y_proba")
    if proba.min() < 0:
        raise DataError(f"y_proba contains values lower than 0: {proba.min()}", field="y_proba")
    if proba.shape[0] != n:
        raise DataError(f"inconsistent numbers of samples: y_true has {n}, y_proba has {proba.shape[0]}")
    return proba


def _log_loss_labels(yt: np.ndarray, labels: Sequence[Any] | None) -> np.ndarray:
    """The sorted class labels of `log_loss`: those of `yt`, or `labels` (which must cover `yt`)."""
    if labels is None:
        labs = _sorted_labels(yt)
        if labs.size == 1:
            raise DataError(
                f"y_true contains only one label ({labs[0]!r}); pass labels= with all class labels", field="y_true"
            )
        return labs
    labs = _sorted_labels(np.asarray(list(labels), dtype=object))
    if labs.size < 2:
        raise ParameterError("labels must contain at least two classes", field="labels")
    unknown = set(pd.unique(yt).tolist()) - set(labs.tolist())
    if unknown:
        raise DataError(f"y_true contains labels {sorted(map(str, unknown))} not in labels", field="y_true")
    return labs


# ---------------------------------------------------------------------------
# lift / gain
# ---------------------------------------------------------------------------


def lift_table(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_groups: int = 10,
    *,
    pos_label: Any = None,
) -> pd.DataFrame:
    """Lift and cumulative-gain table by score groups (deciles by default).

    Samples are sorted by decreasing score and cut into ``n_groups`` groups of
    (nearly) equal size: group 1 holds the highest scores.  Tied scores are
    never split across groups -- a tie block that straddles a boundary goes
    entirely to the earlier group -- so with heavily tied scores some groups are
    empty and are omitted (the remaining groups keep their numbers).

    Columns: ``group``, ``min_score``, ``max_score``, ``count``, ``positives``,
    ``rate`` (positives/count), ``cum_count``, ``cum_positives``,
    ``cum_rate``, ``cum_pct_population``, ``gain`` (cumulative share of all
    positives captured, the gain chart), ``lift`` (rate / overall rate) and
    ``cum_lift`` (cum_rate / overall rate).

    >>> t = lift_table([0, 0, 1, 1, 0, 1], [1, 2, 3, 4, 5, 6], n_groups=3)
    >>> t[["group", "count", "positives", "gain", "lift"]].values.tolist()
    [[1.0, 2.0, 1.0, 0.3333333333333333, 1.0], [2.0, 2.0, 2.0, 1.0, 2.0], [3.0, 2.0, 0.0, 1.0, 0.0]]
    """
    if not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise ParameterError(f"n_groups must be a positive integer; got {n_groups!r}", field="n_groups")
    y_pos, s, _ = _binary_inputs(y_true, y_score, pos_label, None)
    n = s.size
    total_pos = int(y_pos.sum())
    if total_pos == 0:
        raise DataError("lift is undefined: y_true has no positive samples", field="y_true")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y_pos[order]
    raw = (np.arange(n) * n_groups) // n
    # every member of a tie block takes the group of the block's first member
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    block = np.repeat(starts, np.diff(np.r_[starts, n]))
    group = raw[block]
    count = np.bincount(group, minlength=n_groups).astype(np.float64)
    positives = np.bincount(group, weights=y_sorted, minlength=n_groups)
    present = count > 0
    gmax = np.full(n_groups, np.nan)
    gmin = np.full(n_groups, np.nan)
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    last = np.r_[first[1:] - 1, n - 1]
    gmax[group[first]] = s_sorted[first]
    gmin[group[first]] = s_sorted[last]
    idx = np.flatnonzero(present)
    count, positives = count[idx], positives[idx]
    base = total_pos / n
    cum_count, cum_pos = np.cumsum(count), np.cumsum(positives)
    rate = positives / count
    cum_rate = cum_pos / cum_count
    return pd.DataFrame(
        {
            "group": idx + 1,
            "min_score": gmin[idx],
            "max_score": gmax[idx],
            "count": count.astype(np.int64),
            "positives": positives.astype(np.int64),
            "rate": rate,
            "cum_count": cum_count.astype(np.int64),
            "cum_positives": cum_pos.astype(np.int64),
            "cum_rate": cum_rate,
            "cum_pct_population": cum_count / n,
            "gain": cum_pos / total_pos,
            "lift": rate / base,
            "cum_lift": cum_rate / base,
        }
    )


# ---------------------------------------------------------------------------
# population stability index
# ---------------------------------------------------------------------------


def _psi_edges(expected: np.ndarray, bins: int | Sequence[float], strategy: str) -> np.ndarray:
    if not isinstance(bins, (int, np.integer)):
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or not np.all(np.isfinite(edges)):
            raise ParameterError("bins must be an integer or a 1-D sequence of finite interior edges", field="bins")
        if np.any(np.diff(edges) <= 0):
            raise ParameterError("bin edges must be strictly increasing", field="bins")
        return edges
    if bins < 1:
        raise ParameterError(f"bins must be >= 1; got {bins}", field="bins")
    lo, hi = expected.min(), expected.max()
    if strategy == "quantile":
        q = np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1])
    elif strategy == "uniform":
        q = np.linspace(lo, hi, bins + 1)[1:-1]
    else:
        raise ParameterError(f"strategy must be 'quantile' or 'uniform'; got {strategy!r}", field="strategy")
    # an edge at the minimum would only create an always-empty first bin
    return np.unique(q[q > lo])


def psi_from_counts(
    expected_counts: ArrayLike, actual_counts: ArrayLike, *, eps: float = 1e-4
) -> tuple[float, np.ndarray]:
    """PSI from per-bin counts: ``sum((a_i - e_i) * ln(a_i / e_i))`` over bin shares.

    Shares of empty bins are replaced by ``eps`` so that the logarithm is
    finite (the other shares are left as they are).  Returns ``(psi, per_bin)``.

    >>> total, per_bin = psi_from_counts([50, 50], [40, 60])
    >>> round(total, 6)
    0.040547
    """
    e = _as_1d("expected_counts", expected_counts, numeric=True)
    a = _as_1d("actual_counts", actual_counts, numeric=True)
    _check_same_length(expected_counts=e, actual_counts=a)
    if (e < 0).any() or (a < 0).any():
        raise DataError("counts must be non-negative")
    if e.sum() <= 0 or a.sum() <= 0:
        raise DataError("expected_counts and actual_counts must each have a positive total")
    ep = np.where(e > 0, e / e.sum(), eps)
    ap = np.where(a > 0, a / a.sum(), eps)
    per_bin = (ap - ep) * np.log(ap / ep)
    return float(per_bin.sum()), per_bin


def psi_table(
    expected: ArrayLike,
    actual: ArrayLike,
    bins: int | Sequence[float] = 10,
    *,
    strategy: Literal["quantile", "uniform"] = "quantile",
    eps: float = 1e-4,
) -> pd.DataFrame:
    """Per-bin population stability table between two score samples.

    Bins come from the *expected* (reference) sample: ``strategy="quantile"``
    puts about the same number of expected scores in each bin (duplicate
    quantiles from tied scores are merged), ``"uniform"`` uses equal widths over
    its range; or pass ``bins`` as explicit interior edges.  Bins are
    left-closed ``[lower, upper)`` and the outer bins are open-ended so every
    actual score lands somewhere.  Columns: ``bin``, ``lower``, ``upper``,
    ``expected_count``, ``actual_count``, ``expected_pct``, ``actual_pct``,
    ``psi``.

    >>> t = psi_table([1, 2, 3, 4], [1, 1, 2, 4], bins=2)
    >>> t[["lower", "upper", "expected_count", "actual_count"]].values.tolist()
    [[-inf, 2.5, 2.0, 3.0], [2.5, inf, 2.0, 1.0]]
    """
    e = _as_1d("expected", expected, numeric=True)
    a = _as_1d("actual", actual, numeric=True)
    edges = _psi_edges(e.astype(np.float64), bins, strategy)
    k = edges.size + 1
    ec = np.bincount(np.searchsorted(edges, e, side="right"), minlength=k)
    ac = np.bincount(np.searchsorted(edges, a, side="right"), minlength=k)
    _, per_bin = psi_from_counts(ec, ac, eps=eps)
    return pd.DataFrame(
        {
            "bin": np.arange(k),
            "lower": np.r_[-np.inf, edges],
            "upper": np.r_[edges, np.inf],
            "expected_count": ec,
            "actual_count": ac,
            "expected_pct": ec / ec.sum(),
            "actual_pct": ac / ac.sum(),
            "psi": per_bin,
        }
    )


def psi(
    expected: ArrayLike,
    actual: ArrayLike,
    bins: int | Sequence[float] = 10,
    *,
    strategy: Literal["quantile", "uniform"] = "quantile",
    eps: float = 1e-4,
) -> float:
    """Population stability index of ``actual`` against ``expected`` (see :func:`psi_table`).

    Rule of thumb: < 0.1 stable, 0.1-0.25 some shift, > 0.25 large shift.

    >>> psi([1, 2, 3, 4], [1, 2, 3, 4])
    0.0
    """
    return float(psi_table(expected, actual, bins, strategy=strategy, eps=eps)["psi"].sum())
