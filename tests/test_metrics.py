"""Tests of jointml.data.metrics against scikit-learn / scipy / pandas on realistic and random data."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder as SkOneHot
from sklearn.preprocessing import StandardScaler as SkScaler

from jointml.data import metrics as jm
from jointml.datasets import path as _dataset_path

GERMAN = _dataset_path("germancredit.csv")


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN)


@pytest.fixture(scope="module")
def scored(german):
    """Test-set labels and logistic-regression scores on the German credit data (bad = 1)."""
    y = (german["creditability"] == "bad").astype(int).to_numpy()
    X = german.drop(columns="creditability")
    cat = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    num = [c for c in X.columns if c not in cat]
    Xm = np.hstack([
        SkOneHot(sparse_output=False, handle_unknown="ignore").fit_transform(X[cat]),
        X[num].to_numpy(float),
    ])
    Xtr, Xte, ytr, yte = train_test_split(Xm, y, test_size=0.3, stratify=y, random_state=0)
    sc = SkScaler().fit(Xtr)
    model = LogisticRegression(C=0.1, max_iter=2000).fit(sc.transform(Xtr), ytr)
    return yte, model.predict_proba(sc.transform(Xte))[:, 1]


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20240601)


# ---------------------------------------------------------------------------
# ROC / AUC
# ---------------------------------------------------------------------------


def test_auc_matches_sklearn_on_german(scored):
    y, s = scored
    auc = jm.roc_auc(y, s)
    assert auc == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert 0.7 < auc < 0.9  # a realistic model, not a degenerate one


@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_auc_ties_like_sklearn(scored, decimals):
    y, s = scored
    s_tied = np.round(s * 10, decimals)  # heavy ties, like a points-based scorecard
    assert jm.roc_auc(y, s_tied) == pytest.approx(skm.roc_auc_score(y, s_tied), abs=1e-12)


def test_auc_ties_random_and_weights(rng):
    for _ in range(20):
        n = int(rng.integers(2, 300))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.integers(-5, 5, n).astype(float)  # negative, zero, many ties
        w = rng.random(n) * rng.integers(0, 2, n)  # includes zero weights
        w[:2] = 1.0
        assert jm.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        assert jm.roc_auc(y, s, sample_weight=w) == pytest.approx(
            skm.roc_auc_score(y, s, sample_weight=w), abs=1e-12
        )


def test_auc_special_values():
    assert jm.roc_auc([0, 1], [0.2, 0.7]) == 1.0
    assert jm.roc_auc([0, 1], [0.7, 0.2]) == 0.0
    assert jm.roc_auc([0, 1, 0, 1], [3, 3, 3, 3]) == 0.5  # all tied
    assert jm.roc_auc([-1, -1, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75  # {-1, 1} labels
    assert jm.roc_auc(np.array([False, True, True]), [0.0, 1.0, -1.0]) == 0.5
    assert jm.roc_auc(pd.Series(["good", "bad", "bad"]), [0.1, 0.9, 0.5], pos_label="bad") == 1.0


def test_roc_curve_matches_sklearn(scored, rng):
    y, s = scored
    w = rng.random(y.size)
    for s_ in (s, np.round(s, 1)):
        for drop in (True, False):
            for sw in (None, w):
                got = jm.roc_curve(y, s_, sample_weight=sw, drop_intermediate=drop)
                exp = skm.roc_curve(y, s_, sample_weight=sw, drop_intermediate=drop)
                for g, e in zip(got, exp):
                    np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)


def test_roc_auc_from_counts_equals_roc_auc(scored):
    y, s = scored
    s = np.round(s, 2)
    levels, codes = np.unique(s, return_inverse=True)
    pos = np.bincount(codes, weights=y, minlength=levels.size)
    neg = np.bincount(codes, weights=1 - y, minlength=levels.size)
    assert jm.roc_auc_from_counts(pos, neg) == pytest.approx(jm.roc_auc(y, s), abs=1e-12)
    # coarse buckets: the AUC of the bucketed score
    bucket = np.minimum((s * 10).astype(int), 9)
    pos10 = np.bincount(bucket, weights=y, minlength=10)
    neg10 = np.bincount(bucket, weights=1 - y, minlength=10)
    assert jm.roc_auc_from_counts(pos10, neg10) == pytest.approx(skm.roc_auc_score(y, bucket), abs=1e-12)


# ---------------------------------------------------------------------------
# KS
# ---------------------------------------------------------------------------


def test_ks_matches_scipy_two_sample(scored):
    y, s = scored
    for s_ in (s, np.round(s, 1)):
        r = jm.ks(y, s_)
        assert r.statistic == pytest.approx(stats.ks_2samp(s_[y == 1], s_[y == 0]).statistic, abs=1e-12)


def test_ks_curve_consistent_and_weighted(scored, rng):
    y, s = scored
    w = rng.random(y.size)
    r = jm.ks(y, s, sample_weight=w)
    fpr, tpr, thr = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    np.testing.assert_allclose(r.cum_pos_rate, tpr, atol=1e-12)
    np.testing.assert_allclose(r.cum_neg_rate, fpr, atol=1e-12)
    np.testing.assert_array_equal(r.thresholds, thr)
    assert r.statistic == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-12)
    # the reported threshold really attains the statistic, computed from scratch
    above = s >= r.threshold
    bad = (w * (y == 1) * above).sum() / (w * (y == 1)).sum()
    good = (w * (y == 0) * above).sum() / (w * (y == 0)).sum()
    assert abs(bad - good) == pytest.approx(r.statistic, abs=1e-12)
    assert r.thresholds[r.index] == r.threshold
    frame = r.to_frame()
    assert list(frame.columns) == ["threshold", "cum_pos_rate", "cum_neg_rate", "diff"]
    assert frame["diff"].abs().max() == pytest.approx(r.statistic)


def test_ks_from_counts(scored):
    y, s = scored
    s = np.round(s, 2)
    levels, codes = np.unique(s, return_inverse=True)
    pos = np.bincount(codes, weights=y)
    neg = np.bincount(codes, weights=1 - y)
    r = jm.ks_from_counts(pos, neg)
    assert r.statistic == pytest.approx(jm.ks(y, s).statistic, abs=1e-12)
    assert levels[int(r.threshold)] == jm.ks(y, s).threshold


def test_ks_perfect_and_useless():
    assert jm.ks([0, 0, 1, 1], [1, 2, 3, 4]).statistic == 1.0
    assert jm.ks([0, 1, 0, 1], [5, 5, 5, 5]).statistic == 0.0


# ---------------------------------------------------------------------------
# label metrics
# ---------------------------------------------------------------------------


def test_label_metrics_binary_match_sklearn(scored, rng):
    y, s = scored
    pred = (s >= 0.4).astype(int)
    w = rng.random(y.size)
    for sw in (None, w):
        assert jm.accuracy(y, pred, sample_weight=sw) == pytest.approx(skm.accuracy_score(y, pred, sample_weight=sw))
        assert jm.accuracy(y, pred, normalize=False, sample_weight=sw) == pytest.approx(
            skm.accuracy_score(y, pred, normalize=False, sample_weight=sw))
        assert jm.precision(y, pred, sample_weight=sw) == pytest.approx(skm.precision_score(y, pred, sample_weight=sw))
        assert jm.recall(y, pred, sample_weight=sw) == pytest.approx(skm.recall_score(y, pred, sample_weight=sw))
        assert jm.f1(y, pred, sample_weight=sw) == pytest.approx(skm.f1_score(y, pred, sample_weight=sw))
        np.testing.assert_allclose(
            jm.confusion_matrix(y, pred, sample_weight=sw), skm.confusion_matrix(y, pred, sample_weight=sw))
    p, r, f = jm.precision_recall_f1(y, pred, beta=2.0)
    sp, sr, sf, _ = skm.precision_recall_fscore_support(y, pred, beta=2.0, average="binary")
    assert (p, r, f) == pytest.approx((sp, sr, sf))


def test_label_metrics_string_labels():
    yt = np.array(["good", "bad", "bad", "good", "bad"])
    yp = np.array(["good", "bad", "good", "bad", "bad"])
    assert jm.precision(yt, yp, pos_label="bad") == pytest.approx(skm.precision_score(yt, yp, pos_label="bad"))
    assert jm.recall(yt, yp, pos_label="good") == pytest.approx(skm.recall_score(yt, yp, pos_label="good"))
    np.testing.assert_array_equal(jm.confusion_matrix(yt, yp), skm.confusion_matrix(yt, yp))
    with pytest.raises(ValueError, match="pos_label"):
        jm.precision(yt, yp)  # pos_label=1 is not a label


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_multiclass_averages_match_sklearn(rng, average):
    yt = rng.integers(0, 4, 500)
    yp = np.where(rng.random(500) < 0.6, yt, rng.integers(0, 4, 500))
    yp[yp == 3] = 2  # class 3 never predicted: a zero_division case
    w = rng.random(500)
    got = jm.precision_recall_f1(yt, yp, average=average, sample_weight=w)
    exp = skm.precision_recall_fscore_support(yt, yp, average=average, sample_weight=w, zero_division=0)[:3]
    for g, e in zip(got, exp):
        np.testing.assert_allclose(g, e, atol=1e-12)


def test_zero_division():
    assert jm.precision([0, 0, 1], [0, 0, 0]) == 0.0
    assert jm.precision([0, 0, 1], [0, 0, 0], zero_division=1.0) == 1.0
    assert jm.f1([0, 0], [0, 0]) == 0.0


def test_confusion_matrix_options(rng):
    yt = rng.integers(0, 3, 200)
    yp = rng.integers(0, 3, 200)
    for norm in (None, "true", "pred", "all"):
        np.testing.assert_allclose(jm.confusion_matrix(yt, yp, normalize=norm),
                                   skm.confusion_matrix(yt, yp, normalize=norm))
    np.testing.assert_array_equal(jm.confusion_matrix(yt, yp, labels=[2, 0]),
                                  skm.confusion_matrix(yt, yp, labels=[2, 0]))
    assert jm.confusion_matrix(yt, yp).dtype == np.int64
    assert jm.confusion_matrix([1], [1]).tolist() == [[1]]  # one row


# ---------------------------------------------------------------------------
# log loss
# ---------------------------------------------------------------------------


def test_log_loss_binary_matches_sklearn(scored, rng):
    y, s = scored
    w = rng.random(y.size)
    assert jm.log_loss(y, s) == pytest.approx(skm.log_loss(y, s), rel=1e-12)
    assert jm.log_loss(y, s, sample_weight=w) == pytest.approx(skm.log_loss(y, s, sample_weight=w), rel=1e-12)
    assert jm.log_loss(y, s, normalize=False) == pytest.approx(skm.log_loss(y, s, normalize=False), rel=1e-12)


def test_log_loss_clipping_and_multiclass(rng):
    y = np.array([0, 1, 1, 0])
    p = np.array([0.0, 1.0, 0.0, 1.0])  # two confident mistakes: clipped, finite
    assert jm.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    assert np.isfinite(jm.log_loss(y, p))
    p32 = np.array([0.0, 1.0, 0.3, 0.6], dtype=np.float32)
    assert jm.log_loss(y, p32) == pytest.approx(skm.log_loss(y, p32), rel=1e-6)
    yt = rng.integers(0, 3, 100)
    pr = rng.dirichlet(np.ones(3), 100)
    assert jm.log_loss(yt, pr) == pytest.approx(skm.log_loss(yt, pr), rel=1e-12)
    ys = np.array(["a", "b", "a"])
    assert jm.log_loss(ys, [0.2, 0.6, 0.4]) == pytest.approx(skm.log_loss(ys, [0.2, 0.6, 0.4]), rel=1e-12)
    assert jm.log_loss([1, 1], [0.9, 0.8], labels=[0, 1]) == pytest.approx(
        skm.log_loss([1, 1], [0.9, 0.8], labels=[0, 1]), rel=1e-12)


def test_log_loss_errors():
    with pytest.raises(ValueError, match="only one label"):
        jm.log_loss([1, 1], [0.9, 0.8])
    with pytest.raises(ValueError, match="greater than 1"):
        jm.log_loss([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="NaN"):
        jm.log_loss([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="samples"):
        jm.log_loss([0, 1, 1], [0.5, 0.5])
    with pytest.warns(UserWarning, match="sum to one"):
        jm.log_loss([0, 1, 2], [[0.5, 0.5, 0.5]] * 3)


# ---------------------------------------------------------------------------
# lift / gain
# ---------------------------------------------------------------------------


def test_lift_table_matches_pandas_deciles(scored):
    y, s = scored
    t = jm.lift_table(y, s, 10)
    df = pd.DataFrame({"y": y, "s": s})
    # untied scores: deciles of the descending rank
    df["g"] = pd.qcut(df["s"].rank(method="first", ascending=False), 10, labels=False) + 1
    ref = df.groupby("g").agg(count=("y", "size"), positives=("y", "sum"),
                              max_score=("s", "max"), min_score=("s", "min"))
    np.testing.assert_array_equal(t["group"], ref.index)
    np.testing.assert_array_equal(t["count"], ref["count"])
    np.testing.assert_array_equal(t["positives"], ref["positives"])
    np.testing.assert_allclose(t["max_score"], ref["max_score"])
    np.testing.assert_allclose(t["min_score"], ref["min_score"])
    base = y.mean()
    np.testing.assert_allclose(t["lift"], ref["positives"] / ref["count"] / base)
    np.testing.assert_allclose(t["gain"], ref["positives"].cumsum() / y.sum())
    assert t["gain"].iloc[-1] == pytest.approx(1.0)
    assert t["cum_lift"].iloc[-1] == pytest.approx(1.0)
    assert t["lift"].iloc[0] > 1.5  # a useful model concentrates bads in the top decile


def test_lift_table_keeps_ties_together():
    y = [1, 0, 1, 0, 0, 1, 0, 0]
    s = [9, 9, 9, 9, 9, 2, 1, 0]  # five tied top scores straddle the first boundaries
    t = jm.lift_table(y, s, n_groups=4)
    assert t["group"].tolist() == [1, 3, 4]  # groups 2 is empty: the tie block went to group 1
    assert t["count"].tolist() == [5, 1, 2]
    assert t["count"].sum() == 8
    assert t["max_score"].tolist() == [9, 2, 1]


def test_lift_table_errors():
    with pytest.raises(ValueError, match="no positive"):
        jm.lift_table([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="n_groups"):
        jm.lift_table([0, 1], [0.1, 0.2], n_groups=0)


# ---------------------------------------------------------------------------
# PSI
# ---------------------------------------------------------------------------


def _psi_reference(expected, actual, n_bins=10, eps=1e-4):
    q = np.quantile(expected, np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = np.unique(q[q > expected.min()])
    cuts = np.r_[-np.inf, edges, np.inf]
    e = pd.cut(pd.Series(expected), cuts, right=False).value_counts(sort=False, normalize=True).to_numpy()
    a = pd.cut(pd.Series(actual), cuts, right=False).value_counts(sort=False, normalize=True).to_numpy()
    e = np.where(e == 0, eps, e)
    a = np.where(a == 0, eps, a)
    return float(np.sum((a - e) * np.log(a / e)))


def test_psi_matches_reference(rng, scored):
    _, s = scored
    expected = rng.normal(size=5000)
    for actual in (rng.normal(size=3000), rng.normal(0.3, 1.2, 2000), rng.normal(3, 1, 100)):
        assert jm.psi(expected, actual) == pytest.approx(_psi_reference(expected, actual), rel=1e-12)
    assert jm.psi(s, s) == pytest.approx(0.0, abs=1e-15)
    assert jm.psi(expected, rng.normal(size=3000)) < 0.1
    assert jm.psi(expected, rng.normal(1.0, 1, 3000)) > 0.25


def test_psi_table_and_empty_bins():
    t = jm.psi_table(np.arange(100.0), np.full(10, 5.0), bins=4)
    assert t["expected_count"].tolist() == [25, 25, 25, 25]
    assert t["actual_count"].tolist() == [10, 0, 0, 0]
    # empty actual bins use eps: finite and large
    assert np.isfinite(t["psi"]).all() and t["psi"].sum() > 1
    assert jm.psi(np.arange(100.0), np.full(10, 5.0), bins=4, eps=1e-4) == pytest.approx(t["psi"].sum())
    # ties in the expected scores merge quantile bins
    t2 = jm.psi_table([0, 0, 0, 0, 0, 0, 1, 2], [0, 1, 2], bins=4)
    assert t2["expected_count"].sum() == 8 and len(t2) < 4
    # explicit edges and uniform bins
    t3 = jm.psi_table([0, 1, 2, 3], [0, 0, 3, 3], bins=[1.5])
    assert t3["expected_count"].tolist() == [2, 2]
    t4 = jm.psi_table([0.0, 10.0], [5.0], bins=2, strategy="uniform")
    assert t4["lower"].tolist() == [-np.inf, 5.0]


def test_psi_from_counts():
    total, per_bin = jm.psi_from_counts([50, 50], [40, 60])
    assert total == pytest.approx((0.4 - 0.5) * np.log(0.8) + (0.6 - 0.5) * np.log(1.2))
    assert per_bin.shape == (2,)
    total0, _ = jm.psi_from_counts([10, 0], [10, 0])
    assert total0 == 0.0
    with pytest.raises(ValueError, match="positive total"):
        jm.psi_from_counts([0, 0], [1, 1])


# ---------------------------------------------------------------------------
# input errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [jm.roc_auc, jm.roc_curve, jm.ks])
def test_curve_metric_errors(fn):
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="only one class"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="only one class"):
        fn([0], [0.5])  # one row
    with pytest.raises(ValueError, match="NaN"):
        fn([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="infinity"):
        fn([0, 1], [0.1, np.inf])
    with pytest.raises(ValueError, match="NaN"):
        fn(np.array([0, np.nan]), [0.1, 0.2])
    with pytest.raises(ValueError, match="binary"):
        fn([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="pos_label"):
        fn(["a", "b"], [0.1, 0.2])
    with pytest.raises(ValueError, match="negative"):
        fn([0, 1], [0.1, 0.2], sample_weight=[1, -1])
    with pytest.raises(ValueError, match="sample_weight"):
        fn([0, 1], [0.1, 0.2], sample_weight=[1])


def test_label_metric_errors():
    with pytest.raises(ValueError, match="inconsistent"):
        jm.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        jm.accuracy([], [])
    with pytest.raises(ValueError, match="NaN"):
        jm.confusion_matrix([0, None], [0, 1])
    with pytest.raises(ValueError, match="average='binary'"):
        jm.f1([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        jm.psi([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        jm.psi([1.0, 2.0], [np.nan])


def test_counts_functions_validate():
    with pytest.raises(ValueError, match="only one class"):
        jm.roc_auc_from_counts([0, 0], [1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        jm.ks_from_counts([1, -1], [1, 1])
    with pytest.raises(ValueError, match="inconsistent"):
        jm.roc_auc_from_counts([1, 1], [1])


def test_scale_is_n_log_n():
    # 1e6 rows must run in one sort, not a Python loop; correctness on big data
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1_000_000)
    s = rng.random(1_000_000) + 0.1 * y
    assert jm.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_docstring_examples_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = doctest.testmod(jm, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 10
