"""Tests of jointml.data.preprocessing against scikit-learn / numpy / pandas references."""

from __future__ import annotations

import doctest
import importlib
import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import sklearn.base
from scipy import stats
from sklearn import impute as skimpute
from sklearn import preprocessing as skp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

from jointml.data.preprocessing import (
    ChiMergeBinner,
    ColumnBins,
    EqualFrequencyBinner,
    EqualWidthBinner,
    MinMaxScaler,
    NotFittedError,
    OneHotEncoder,
    OrdinalEncoder,
    SimpleImputer,
    StandardScaler,
    TreeBinner,
    WOEEncoder,
    bin_counts,
    chi2_adjacent,
    chi2_threshold,
    chimerge_from_counts,
    clone,
    equal_frequency_edges,
    merge_counts,
    tree_splits_from_counts,
    woe_iv_from_counts,
)
from jointml.datasets import path as _dataset_path

GERMAN = _dataset_path("germancredit.csv")


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN)


@pytest.fixture(scope="module")
def bad(german) -> np.ndarray:
    return (german["creditability"] == "bad").astype(int).to_numpy()


@pytest.fixture(scope="module")
def numeric_cols(german) -> list[str]:
    return [c for c in german.columns if pd.api.types.is_numeric_dtype(german[c])]


@pytest.fixture(scope="module")
def categorical_cols(german) -> list[str]:
    return [c for c in german.columns if not pd.api.types.is_numeric_dtype(german[c]) and c != "creditability"]


@pytest.fixture()
def rng():
    return np.random.default_rng(7)


def _with_holes(frame: pd.DataFrame, rng, frac=0.1) -> pd.DataFrame:
    out = frame.astype(float).copy()
    out = out.mask(rng.random(out.shape) < frac)
    return out


# ---------------------------------------------------------------------------
# scalers
# ---------------------------------------------------------------------------


def test_standard_scaler_matches_sklearn(german, numeric_cols, rng):
    X = _with_holes(german[numeric_cols], rng)
    X["negative"] = -X[numeric_cols[0]] + 0.5
    w = rng.random(len(X))
    for sw in (None, w):
        ours = StandardScaler().fit(X, sample_weight=sw)
        ref = skp.StandardScaler().fit(X.to_numpy(), sample_weight=sw)
        np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-12)
        np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-10)
        np.testing.assert_allclose(ours.scale_, ref.scale_, rtol=1e-10)
        out = ours.transform(X)
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == list(X.columns) and out.index.equals(X.index)
        np.testing.assert_allclose(out.to_numpy(), ref.transform(X.to_numpy()), rtol=1e-9, atol=1e-12)
        assert out.isna().equals(X.isna())  # NaN stays NaN
        np.testing.assert_allclose(ours.inverse_transform(out).to_numpy(), X.to_numpy(), rtol=1e-9)


def test_standard_scaler_options_and_edge_cases():
    X = np.array([[1.0, 5.0, -2.0], [3.0, 5.0, -4.0], [5.0, 5.0, -9.0]])
    for kw in ({"with_mean": False}, {"with_std": False}):
        np.testing.assert_allclose(StandardScaler(**kw).fit_transform(X), skp.StandardScaler(**kw).fit_transform(X))
    out = StandardScaler().fit_transform(X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out[:, 1], 0.0)  # constant column: zeros, not NaN
    one = StandardScaler().fit([[4.0, -1.0]])  # one row
    assert one.scale_.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(one.transform([[4.0, 0.0]]), [[0.0, 1.0]])
    # near-constant large values are treated as constant, as sklearn does
    big = np.full((10, 1), 1e10) + np.arange(10).reshape(-1, 1) * 1e-7
    np.testing.assert_allclose(StandardScaler().fit(big).scale_, skp.StandardScaler().fit(big).scale_)


def test_standard_scaler_from_stats_two_parties(german, numeric_cols):
    X = german[numeric_cols].astype(float)
    a, b = X.iloc[:600], X.iloc[600:]
    stats_a, stats_b = StandardScaler.compute_stats(a), StandardScaler.compute_stats(b)
    summed = [sa + sb for sa, sb in zip(stats_a, stats_b)]
    fed = StandardScaler().fit_from_stats(*summed, feature_names=numeric_cols)
    full = StandardScaler().fit(X)
    np.testing.assert_allclose(fed.mean_, full.mean_, rtol=1e-12)
    np.testing.assert_allclose(fed.var_, full.var_, rtol=1e-9)
    pd.testing.assert_frame_equal(fed.transform(X), full.transform(X), rtol=1e-8)


def test_minmax_scaler_matches_sklearn(german, numeric_cols, rng):
    X = _with_holes(german[numeric_cols], rng)
    X["const"] = 3.0
    for kw in ({}, {"feature_range": (-1.0, 2.0)}, {"clip": True}):
        ours = MinMaxScaler(**kw).fit(X)
        ref = skp.MinMaxScaler(**kw).fit(X.to_numpy())
        for attr in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
            np.testing.assert_allclose(getattr(ours, attr), getattr(ref, attr), rtol=1e-12)
        new = X * 1.5 - 10  # values outside the training range exercise clip
        np.testing.assert_allclose(ours.transform(new).to_numpy(), ref.transform(new.to_numpy()), rtol=1e-12)
    back = MinMaxScaler().fit(X)
    np.testing.assert_allclose(back.inverse_transform(back.transform(X)).to_numpy(), X.to_numpy(), rtol=1e-9)
    fed = MinMaxScaler().fit_from_stats(np.nanmin(X, axis=0), np.nanmax(X, axis=0))
    np.testing.assert_allclose(fed.transform(X.to_numpy()), back.transform(X).to_numpy())
    with pytest.raises(ValueError, match="feature_range"):
        MinMaxScaler(feature_range=(1, 0)).fit(X)


def test_scaler_input_errors(german):
    s = StandardScaler()
    with pytest.raises(NotFittedError, match="not fitted"):
        s.transform([[1.0]])
    with pytest.raises(ValueError, match="0 rows"):
        s.fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match="2-D"):
        s.fit([1.0, 2.0])
    with pytest.raises(TypeError, match="'purpose' is not numeric"):
        s.fit(german[["age_in_years", "purpose"]])
    with pytest.raises(ValueError, match="infinity"):
        s.fit([[1.0], [np.inf]])
    with pytest.raises(ValueError, match="no non-missing"):
        s.fit([[1.0, np.nan], [2.0, np.nan]])
    fitted = StandardScaler().fit(german[["age_in_years", "duration_in_month"]])
    with pytest.raises(ValueError, match=r"missing \['duration_in_month'\]"):
        fitted.transform(german[["age_in_years", "credit_amount"]])
    with pytest.raises(ValueError, match="3 columns"):
        fitted.transform(np.zeros((2, 3)))
    # same columns, other order: aligned by name
    swapped = german[["duration_in_month", "age_in_years"]]
    in_order = german[["age_in_years", "duration_in_month"]]
    pd.testing.assert_frame_equal(fitted.transform(swapped), fitted.transform(in_order))
    # numpy after DataFrame fit: positional; zero rows at transform is fine
    assert fitted.transform(np.zeros((0, 2))).shape == (0, 2)


def test_params_contract_and_sklearn_interop(german, numeric_cols, bad):
    s = StandardScaler(with_mean=False)
    assert s.get_params() == {"with_mean": False, "with_std": True}
    assert repr(s) == "StandardScaler(with_mean=False)"
    s2 = sklearn.base.clone(s)  # sklearn's clone works through get_params
    assert s2.get_params() == s.get_params() and s2 is not s
    w = WOEEncoder(TreeBinner(max_bins=4))
    assert w.get_params()["binner__max_bins"] == 4
    w.set_params(binner__max_bins=5)
    assert w.binner.max_bins == 5
    assert clone(w).binner is not w.binner
    with pytest.raises(ValueError, match="no parameter"):
        s.set_params(bogus=1)
    # usable inside an sklearn Pipeline
    X = german[numeric_cols]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, bad)
    assert pipe.score(X, bad) > 0.6


# ---------------------------------------------------------------------------
# imputer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
def test_imputer_numeric_matches_sklearn(german, numeric_cols, rng, strategy):
    X = _with_holes(german[numeric_cols], rng, 0.2)
    ours = SimpleImputer(strategy=strategy).fit(X)
    ref = skimpute.SimpleImputer(strategy=strategy).fit(X.to_numpy())
    np.testing.assert_allclose(ours.statistics_.astype(float), np.asarray(ref.statistics_, float), rtol=1e-12)
    out = ours.transform(X)
    assert list(out.columns) == numeric_cols and not out.isna().any().any()
    np.testing.assert_allclose(out.to_numpy(float), ref.transform(X.to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(ours.transform(X.to_numpy()), ref.transform(X.to_numpy()), rtol=1e-12)


def test_imputer_categorical_and_mixed(german, categorical_cols, rng):
    X = german[categorical_cols[:4]].copy()
    X = X.mask(rng.random(X.shape) < 0.15)
    for strategy in ("most_frequent", "constant"):
        ours = SimpleImputer(strategy=strategy).fit(X)
        ref = skimpute.SimpleImputer(strategy=strategy).fit(X.to_numpy(dtype=object))
        assert ours.statistics_.tolist() == ref.statistics_.tolist()
        out = ours.transform(X)
        assert out.notna().all().all()
        assert out.to_numpy(dtype=object).tolist() == ref.transform(X.to_numpy(dtype=object)).tolist()
        assert all(out[c].dtype == X[c].dtype for c in X.columns)  # text dtype preserved
    mixed = pd.DataFrame({"n": [1, 2, None, 2], "c": ["a", None, "b", "b"]})
    out = SimpleImputer(strategy="most_frequent").fit_transform(mixed)
    assert out["n"].tolist() == [1.0, 2.0, 2.0, 2.0] and out["c"].tolist() == ["a", "b", "b", "b"]
    with pytest.raises(TypeError, match="'c'"):
        SimpleImputer(strategy="mean").fit(mixed)


def test_imputer_custom_missing_and_errors():
    X = np.array([[1.0, -1.0], [-1.0, 4.0], [3.0, 4.0]])
    out = SimpleImputer(missing_values=-1.0, strategy="mean").fit_transform(X)
    ref = skimpute.SimpleImputer(missing_values=-1.0, strategy="mean").fit_transform(X)
    np.testing.assert_allclose(out, ref)
    holes = pd.DataFrame({"a": ["x", None]})
    out = SimpleImputer(strategy="constant", fill_value=0).fit_transform(holes)
    assert out["a"].tolist() == ["x", 0]
    with pytest.raises(ValueError, match="only missing"):
        SimpleImputer().fit([[np.nan], [np.nan]])
    with pytest.raises(ValueError, match="strategy"):
        SimpleImputer(strategy="mode").fit([[1.0]])
    # integer column without holes stays integer
    out = SimpleImputer().fit_transform(pd.DataFrame({"i": [1, 2, 3]}))
    assert out["i"].dtype == np.int64


# ---------------------------------------------------------------------------
# encoders
# ---------------------------------------------------------------------------


def test_onehot_matches_sklearn(german, categorical_cols):
    X = german[categorical_cols + ["installment_rate_in_percentage_of_disposable_income"]]
    for drop in (None, "first", "if_binary"):
        ours = OneHotEncoder(drop=drop).fit(X)
        ref = skp.OneHotEncoder(sparse_output=False, drop=drop).fit(X)
        for a, b in zip(ours.categories_, ref.categories_):
            assert a.tolist() == b.tolist()
        out = ours.transform(X)
        assert list(out.columns) == ref.get_feature_names_out().tolist()
        np.testing.assert_array_equal(out.to_numpy(), ref.transform(X))


def test_onehot_unknown_and_missing():
    train = pd.DataFrame({"c": ["a", "b", None, "a"], "n": [1.0, 2.0, 2.0, np.nan]})
    test = pd.DataFrame({"c": ["z", "a", None], "n": [3.0, np.nan, 1.0]})
    ours = OneHotEncoder(handle_unknown="ignore").fit(train)
    ref = skp.OneHotEncoder(sparse_output=False, handle_unknown="ignore").fit(train)
    assert ours.get_feature_names_out().tolist() == ref.get_feature_names_out().tolist()
    np.testing.assert_array_equal(ours.transform(test).to_numpy(), ref.transform(test))
    assert ours.transform(test).iloc[0, :3].sum() == 0  # unknown "z": all zeros
    strict = OneHotEncoder().fit(train)
    with pytest.raises(ValueError, match=r"column 'c' has categories \['z'\] not seen"):
        strict.transform(test)
    with pytest.raises(ValueError, match="not in the given categories"):
        OneHotEncoder(categories=[["a"], [1.0, 2.0]]).fit(train.dropna())
    arr = OneHotEncoder().fit_transform(np.array([["x"], ["y"]], dtype=object))
    assert isinstance(arr, np.ndarray) and arr.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_ordinal_matches_sklearn(german, categorical_cols):
    X = german[categorical_cols].copy()
    X.iloc[::7, 0] = None
    ours = OrdinalEncoder().fit(X)
    ref = skp.OrdinalEncoder().fit(X)
    np.testing.assert_array_equal(ours.transform(X).to_numpy(), ref.transform(X))
    new = X.head(5).copy()
    new.iloc[0, 1] = "never seen"
    ours_u = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(X)
    ref_u = skp.OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(X)
    np.testing.assert_array_equal(ours_u.transform(new).to_numpy(), ref_u.transform(new))
    with pytest.raises(ValueError, match="not seen in fit"):
        ours.transform(new)
    back = ours.inverse_transform(ours.transform(X.head(20)))
    assert back.iloc[:, 1:].to_numpy(dtype=object).tolist() == X.head(20).iloc[:, 1:].to_numpy(dtype=object).tolist()
    assert back.iloc[::7, 0].isna().all()


# ---------------------------------------------------------------------------
# unsupervised binning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [2, 5, 10])
def test_equal_frequency_matches_kbins(rng, n_bins):
    X = np.column_stack([rng.normal(size=500), rng.exponential(size=500) - 3])
    ours = EqualFrequencyBinner(n_bins).fit(X)
    ref = skp.KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="quantile",
                               quantile_method="linear").fit(X)
    for j in range(2):
        np.testing.assert_allclose(ours.bins_[j].edges, ref.bin_edges_[j][1:-1])
    new = np.column_stack([rng.normal(scale=3, size=300), rng.normal(size=300)])  # outside the range too
    np.testing.assert_array_equal(ours.transform(new), ref.transform(new))
    assert ours.n_bins_.tolist() == [n_bins + 1, n_bins + 1]  # + missing bin


@pytest.mark.parametrize("n_bins", [3, 7])
def test_equal_width_matches_kbins(german, numeric_cols, n_bins):
    X = german[numeric_cols]
    ours = EqualWidthBinner(n_bins).fit(X)
    ref = skp.KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="uniform").fit(X.to_numpy(float))
    got = ours.transform(X)
    assert list(got.columns) == numeric_cols and got.dtypes.eq(np.int64).all()
    np.testing.assert_array_equal(got.to_numpy(), ref.transform(X.to_numpy(float)))


def test_equal_frequency_ties_against_pandas(german):
    x = german["installment_rate_in_percentage_of_disposable_income"]  # only 4 distinct values
    b = EqualFrequencyBinner(10).fit(x.to_frame())
    edges = b.bins_[0].edges
    assert np.all(np.diff(edges) > 0) and edges.min() > x.min()
    expected = pd.cut(x, np.r_[-np.inf, edges, np.inf], right=False, labels=False)
    np.testing.assert_array_equal(b.transform(x.to_frame())[x.name], expected)
    assert equal_frequency_edges([5, 5, 5], 4).size == 0  # constant: one bin


def test_binning_missing_constant_and_one_row():
    X = pd.DataFrame({"x": [1.0, np.nan, 3.0, 2.0], "k": [7, 7, 7, 7]})
    b = EqualFrequencyBinner(2).fit(X)
    out = b.transform(X)
    assert out["x"].tolist() == [0, 2, 1, 1]  # NaN -> missing bin (last)
    assert b.bins_[0].missing_bin == 2 and b.bins_[1].n_bins == 2  # constant: 1 bin + missing
    assert out["k"].tolist() == [0, 0, 0, 0]
    assert b.bins_[0].labels() == ["[-inf, 2)", "[2, inf)", "missing"]
    one = EqualWidthBinner(4).fit([[3.0]])
    assert one.transform([[-5.0], [3.0], [9.0], [np.nan]]).ravel().tolist() == [0, 0, 0, 1]
    neg = EqualWidthBinner(2).fit([[-4.0], [0.0]])
    assert neg.bins_[0].edges.tolist() == [-2.0]


def test_categorical_binning_rare_and_unknown(german):
    X = german[["purpose", "age_in_years"]]
    b = EqualFrequencyBinner(4, min_category_frac=0.05).fit(X)
    spec = b.get_bins("purpose")
    counts = X["purpose"].value_counts(normalize=True)
    rare = sorted(counts[counts < 0.05].index)
    assert spec.kind == "categorical" and spec.groups[-1] == tuple(rare)
    assert [g[0] for g in spec.groups[:-1]] == sorted(counts[counts >= 0.05].index)
    codes = b.transform(X)["purpose"]
    for i, g in enumerate(spec.groups):
        assert set(X["purpose"][codes == i]) == set(g)
    new = pd.DataFrame({"purpose": ["car (new)", "space travel", None], "age_in_years": [30, 40, 50]})
    with pytest.raises(ValueError, match="space travel"):
        b.transform(new)
    lenient = EqualFrequencyBinner(4, handle_unknown="missing").fit(X)
    got = lenient.transform(new)["purpose"].tolist()
    assert got[1] == got[2] == lenient.get_bins("purpose").missing_bin
    # numeric column forced to categorical: each value its own bin
    forced = EqualFrequencyBinner(2, categorical_features=["age_in_years"]).fit(X)
    assert forced.get_bins("age_in_years").n_regular == X["age_in_years"].nunique()


def test_binner_errors():
    # text columns are categorical whatever categorical_features says
    assert EqualWidthBinner(categorical_features=[]).fit(pd.DataFrame({"c": ["a", "b"]})).categorical_.all()
    with pytest.raises(ValueError, match="handle_unknown"):
        EqualWidthBinner(handle_unknown="ignore").fit([[1.0]])
    with pytest.raises(ValueError, match="unknown column"):
        EqualWidthBinner(categorical_features=["nope"]).fit(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(NotFittedError):
        TreeBinner().transform([[1.0]])
    with pytest.raises(ValueError, match="needs the labels"):
        TreeBinner().fit([[1.0], [2.0]])
    with pytest.raises(ValueError, match="only one class"):
        ChiMergeBinner().fit([[1.0], [2.0]], [1, 1])
    with pytest.raises(ValueError, match="2 rows but y has 3"):
        ChiMergeBinner().fit([[1.0], [2.0]], [1, 0, 1])
    with pytest.raises(ValueError, match="0 rows"):
        EqualWidthBinner().fit(np.empty((0, 1)))


def test_column_bins_standalone():
    spec = ColumnBins("grade", "categorical", groups=(("A", "B"), ("C",)), handle_unknown="missing")
    assert spec.transform(["B", "C", "Z", None]).tolist() == [0, 1, 2, 2]
    assert spec.labels() == ["A | B", "C", "missing"]


# ---------------------------------------------------------------------------
# counts, chi-square, ChiMerge
# ---------------------------------------------------------------------------


def test_bin_counts_and_merge():
    pos, neg = bin_counts([0, 2, 2, 1, 0], [1, 1, 0, 0, 0], 4)
    assert pos.tolist() == [1, 0, 1, 0] and neg.tolist() == [1, 1, 1, 0]
    wp, wn = bin_counts([0, 1], [1, 0], 2, sample_weight=[0.5, 2.0])
    assert wp.tolist() == [0.5, 0.0] and wn.tolist() == [0.0, 2.0]
    assert merge_counts([1, 2, 3, 4, 5], [1, 3]).tolist() == [1, 5, 9]
    with pytest.raises(ValueError, match="only 0 and 1"):
        bin_counts([0], [2], 1)


def test_chi2_matches_scipy(rng):
    pos = rng.integers(1, 50, 30)
    neg = rng.integers(1, 200, 30)
    got = chi2_adjacent(pos, neg)
    for i in range(29):
        table = [[pos[i], neg[i]], [pos[i + 1], neg[i + 1]]]
        assert got[i] == pytest.approx(stats.chi2_contingency(table, correction=False)[0], rel=1e-10)
    assert chi2_adjacent([0, 0], [5, 7]).tolist() == [0.0]  # no positives at all: same mix
    assert chi2_adjacent([0, 3], [0, 7]).tolist() == [0.0]  # empty bin
    for conf in (0.5, 0.9, 0.95, 0.99):
        assert chi2_threshold(conf) == pytest.approx(stats.chi2.ppf(conf, df=1), rel=1e-9)


def _chi2_exact(a, b):
    (pa, na), (pb, nb) = a, b
    n = pa + na + pb + nb
    total = Fraction(0)
    for o, r, c in ((pa, pa + na, pa + pb), (na, pa + na, na + nb), (pb, pb + nb, pa + pb), (nb, pb + nb, na + nb)):
        e = Fraction(r * c, n) if n else Fraction(0)
        if e:
            total += (o - e) ** 2 / e
    return total


def _chimerge_reference(pos, neg, max_bins, min_bins, thr, min_frac=0.0):
    """Textbook ChiMerge: recompute every adjacent statistic (exactly) each round;
    then merge too-small bins, and resume ChiMerge, until nothing changes."""
    bins = [[int(p), int(n)] for p, n in zip(pos, neg)]
    starts = list(range(len(bins)))
    total = sum(p + n for p, n in bins)
    while True:
        while len(bins) > 1:
            chis = [_chi2_exact(bins[i], bins[i + 1]) for i in range(len(bins) - 1)]
            i = min(range(len(chis)), key=lambda k: (chis[k], k))
            if not (len(bins) > max_bins or (chis[i] < thr and len(bins) > min_bins)):
                break
            bins[i] = [bins[i][0] + bins[i + 1][0], bins[i][1] + bins[i + 1][1]]
            del bins[i + 1], starts[i + 1]
        if len(bins) == 1:
            return starts[1:]
        shares = [(p + n) / total for p, n in bins]
        i = min(range(len(bins)), key=lambda k: (shares[k], k))
        if shares[i] >= min_frac:
            return starts[1:]
        if i == 0:
            j = 0
        elif i == len(bins) - 1:
            j = i - 1
        else:
            j = i - 1 if _chi2_exact(bins[i - 1], bins[i]) <= _chi2_exact(bins[i], bins[i + 1]) else i
        bins[j] = [bins[j][0] + bins[j + 1][0], bins[j][1] + bins[j + 1][1]]
        del bins[j + 1], starts[j + 1]


@pytest.mark.parametrize("col", ["credit_amount", "age_in_years", "duration_in_month"])
@pytest.mark.parametrize("max_bins,min_frac", [(5, 0.0), (8, 0.05), (3, 0.1)])
def test_chimerge_matches_textbook_on_german(german, bad, col, max_bins, min_frac):
    x = german[col].to_numpy(float)
    pre = equal_frequency_edges(x, 50)
    pos, neg = bin_counts(np.searchsorted(pre, x, side="right"), bad, pre.size + 1)
    thr = chi2_threshold(0.95)
    cuts = chimerge_from_counts(pos, neg, max_bins=max_bins, min_bin_frac=min_frac)
    assert cuts.tolist() == _chimerge_reference(pos, neg, max_bins, 1, thr, min_frac)
    merged = merge_counts(pos + neg, cuts)
    assert len(merged) <= max_bins and merged.min() >= min_frac * len(x)


def test_chimerge_random_counts_with_zeros(rng):
    for _ in range(30):
        m = int(rng.integers(1, 40))
        pos = rng.integers(0, 6, m) * rng.integers(0, 2, m)  # many zeros and empty bins
        neg = rng.integers(0, 12, m)
        max_bins, min_bins = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        thr = float(rng.choice([0.0, 1.0, 3.841, 10.0]))
        frac = float(rng.choice([0.0, 0.05, 0.2]))
        got = chimerge_from_counts(pos, neg, max_bins=max_bins, min_bins=min_bins, threshold=thr, min_bin_frac=frac)
        assert got.tolist() == _chimerge_reference(pos, neg, max_bins, min_bins, Fraction(thr), frac)


def test_chimerge_binner_on_german(german, bad):
    X = german[["credit_amount", "purpose", "age_in_years"]]
    b = ChiMergeBinner(max_bins=6).fit(X, german["creditability"].map({"bad": 1, "good": 0}))
    for spec in b.bins_:
        assert 1 <= spec.n_regular <= 6
    codes = b.transform(X)
    share = codes["credit_amount"].value_counts(normalize=True)
    assert share.min() >= 0.05
    # adjacent bins differ significantly unless max_bins forced the merge
    pos, neg = bin_counts(codes["credit_amount"], bad, b.bins_[0].n_bins)
    assert (chi2_adjacent(pos[:-1], neg[:-1]) >= chi2_threshold(0.95)).all()
    # categorical: bins are groups of categories, ordered by bad rate
    spec = b.get_bins("purpose")
    assert sorted(c for g in spec.groups for c in g) == sorted(X["purpose"].unique())
    rates = pd.Series(bad).groupby(codes["purpose"]).mean()
    assert rates.is_monotonic_increasing
    # same result with string labels and pos_label
    b2 = ChiMergeBinner(max_bins=6, pos_label="bad").fit(X, german["creditability"])
    pd.testing.assert_frame_equal(b2.transform(X), codes)


# ---------------------------------------------------------------------------
# tree binning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("col", ["credit_amount", "age_in_years", "duration_in_month"])
@pytest.mark.parametrize("criterion", ["gini", "entropy"])
@pytest.mark.parametrize("max_bins", [2, 4, 8])
def test_tree_binner_reproduces_sklearn_tree(german, bad, rng, col, criterion, max_bins):
    x = german[[col]].astype(float)
    ours = TreeBinner(max_bins=max_bins, min_bin_frac=0.05, criterion=criterion, n_prebins=None).fit(x, bad)
    tree = DecisionTreeClassifier(max_leaf_nodes=max_bins, min_samples_leaf=0.05, criterion=criterion,
                                  random_state=0).fit(x.to_numpy(), bad)
    thresholds = np.sort(tree.tree_.threshold[tree.tree_.feature >= 0])
    np.testing.assert_allclose(ours.bins_[0].edges, thresholds)
    # same partition on new data (sklearn sends x <= t left; no new value hits a threshold exactly)
    new = pd.DataFrame({col: rng.uniform(x[col].min() - 5, x[col].max() + 5, 500) + 0.123})
    leaves = tree.apply(new.to_numpy())
    ours_bins = ours.transform(new)[col].to_numpy()
    assert pd.crosstab(leaves, ours_bins).gt(0).sum(axis=1).eq(1).all()
    assert pd.crosstab(ours_bins, leaves).gt(0).sum(axis=1).eq(1).all()


def test_tree_splits_from_counts_properties(rng):
    pos = rng.integers(0, 20, 50)
    neg = rng.integers(0, 60, 50)
    cuts = tree_splits_from_counts(pos, neg, max_bins=6, min_bin_frac=0.08)
    merged = merge_counts(pos + neg, cuts)
    assert len(merged) <= 6 and merged.min() >= math.ceil(0.08 * (pos + neg).sum())
    assert tree_splits_from_counts([5, 5], [5, 5]).size == 0  # nothing to gain
    assert tree_splits_from_counts([0, 0, 9], [9, 9, 0], max_bins=3, min_bin_frac=0).tolist() == [2]
    strict = tree_splits_from_counts(pos, neg, max_bins=6, min_bin_frac=0.08, min_impurity_decrease=1.0)
    assert strict.size == 0
    with pytest.raises(ValueError, match="criterion"):
        tree_splits_from_counts(pos, neg, criterion="iv")


def test_tree_binner_categorical_and_missing(german, bad):
    X = german[["purpose", "credit_amount"]].copy()
    X.loc[X.index[::10], "credit_amount"] = np.nan
    b = TreeBinner(max_bins=4).fit(X, bad)
    codes = b.transform(X)
    assert (codes.loc[X["credit_amount"].isna(), "credit_amount"] == b.get_bins("credit_amount").missing_bin).all()
    assert b.get_bins("purpose").n_regular <= 4
    rates = pd.Series(bad).groupby(codes["purpose"]).mean()
    assert rates.is_monotonic_increasing


# ---------------------------------------------------------------------------
# WOE / IV
# ---------------------------------------------------------------------------


def _pandas_woe(x: pd.Series, is_bad: pd.Series) -> tuple[pd.Series, float]:
    """scorecardpy's definition: woe = ln((bad_i / bad_total) / (good_i / good_total))."""
    t = pd.crosstab(x, is_bad)
    bad_d = t[True] / t[True].sum()
    good_d = t[False] / t[False].sum()
    woe = np.log(bad_d / good_d)
    return woe, float(((bad_d - good_d) * woe).sum())


def test_woe_iv_from_counts_definition():
    pos, neg = np.array([10, 30, 0]), np.array([90, 70, 0])
    woe, iv, total = woe_iv_from_counts(pos, neg)
    assert woe[:2] == pytest.approx([np.log((10 / 40) / (90 / 160)), np.log((30 / 40) / (70 / 160))])
    assert woe[2] == 0 and iv[2] == 0  # empty bin: no evidence
    assert total == pytest.approx(iv.sum()) and (iv >= 0).all()
    woe2, iv2, total2 = woe_iv_from_counts(pos, neg, convention="neg_over_pos")
    np.testing.assert_allclose(woe2, -woe)
    np.testing.assert_allclose(iv2, iv)
    # zero class count in a non-empty bin stays finite by default, infinite on request
    w0, _, _ = woe_iv_from_counts([0, 5], [5, 5])
    assert np.isfinite(w0).all() and w0[0] == pytest.approx(np.log((0.5 / 5) / (5 / 10)))
    winf, _, tinf = woe_iv_from_counts([0, 5], [5, 5], zero_count=0)
    assert winf[0] == -np.inf and tinf == np.inf
    ws, _, _ = woe_iv_from_counts([0, 5], [5, 5], smoothing=0.5)
    assert ws[0] == pytest.approx(np.log((0.5 / 6) / (5.5 / 11)))
    with pytest.raises(ValueError, match="no positive"):
        woe_iv_from_counts([0, 0], [1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        woe_iv_from_counts([1, -1], [1, 2])
    with pytest.raises(ValueError, match="convention"):
        woe_iv_from_counts([1, 1], [1, 2], convention="bad")


def test_woe_encoder_categorical_matches_pandas(german, categorical_cols):
    X = german[categorical_cols]
    is_bad = german["creditability"] == "bad"
    enc = WOEEncoder(EqualFrequencyBinner(), pos_label="bad").fit(X, german["creditability"])
    out = enc.transform(X)
    assert list(out.columns) == categorical_cols and out.index.equals(X.index)
    for col in categorical_cols:
        woe, iv = _pandas_woe(X[col], is_bad)
        np.testing.assert_allclose(out[col].to_numpy(), X[col].map(woe).to_numpy(), rtol=1e-12)
        assert enc.iv_[col] == pytest.approx(iv, rel=1e-12)
    # the best-known strong predictor of this data set
    assert enc.iv_.idxmax() == "status_of_existing_checking_account" and enc.iv_.max() > 0.6


def test_woe_encoder_numeric_matches_pandas(german, bad, numeric_cols):
    X = german[numeric_cols]
    enc = WOEEncoder(ChiMergeBinner(max_bins=5)).fit(X, bad)
    is_bad = pd.Series(bad == 1)
    for col in numeric_cols:
        edges = enc.binner_.get_bins(col).edges
        binned = pd.cut(X[col], np.r_[-np.inf, edges, np.inf], right=False, labels=False)
        woe, iv = _pandas_woe(binned, is_bad)
        np.testing.assert_allclose(enc.transform(X)[col], binned.map(woe), rtol=1e-12)
        assert enc.iv_[col] == pytest.approx(iv, rel=1e-12)
    table = enc.bin_table("duration_in_month")
    assert table["count"].sum() == len(X) and table["label"].iloc[-1] == "missing"
    assert table["woe"].iloc[-1] == 0.0  # no missing values in training: neutral WOE


def test_woe_encoder_full_pipeline_on_german(german, bad):
    X = german.drop(columns="creditability")
    Xtr, Xte, ytr, yte = train_test_split(X, bad, test_size=0.3, stratify=bad, random_state=0)
    enc = WOEEncoder().fit(Xtr, ytr)  # default TreeBinner, categorical columns detected
    Wtr, Wte = enc.transform(Xtr), enc.transform(Xte)
    assert Wtr.shape == Xtr.shape and np.isfinite(Wte.to_numpy()).all()
    model = LogisticRegression(max_iter=1000).fit(Wtr, ytr)
    assert roc_auc_score(yte, model.predict_proba(Wte)[:, 1]) > 0.74
    # WOE of scorecardpy's sign: riskier bins positive, so coefficients are mostly positive
    assert (model.coef_ > 0).mean() > 0.7
    table = enc.bin_table()
    assert set(table["variable"]) == set(X.columns)
    # unknown category and missing value at scoring time
    new = Xte.head(3).copy()
    new.iloc[0, new.columns.get_loc("purpose")] = "unseen"
    with pytest.raises(ValueError, match="unseen"):
        enc.transform(new)
    lenient = WOEEncoder(TreeBinner(handle_unknown="missing")).fit(Xtr, ytr)
    new.iloc[1, new.columns.get_loc("credit_amount")] = np.nan
    scored = lenient.transform(new)
    assert scored.loc[new.index[0], "purpose"] == 0.0 and scored.loc[new.index[1], "credit_amount"] == 0.0


def test_woe_encoder_numpy_and_errors(rng):
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    enc = WOEEncoder(EqualFrequencyBinner(5))
    out = enc.fit_transform(X, y)
    assert isinstance(out, np.ndarray) and out.shape == (400, 2)
    assert enc.iv_.iloc[0] > enc.iv_.iloc[1]
    with pytest.raises(ValueError, match="pos_label=1 does not occur"):
        WOEEncoder().fit(X, np.where(y == 1, "bad", "good"))
    with pytest.raises(ValueError, match="NaN"):
        WOEEncoder().fit(X, np.where(y == 1, 1.0, np.nan))
    with pytest.raises(ValueError, match="binary"):
        WOEEncoder().fit(X, rng.integers(0, 3, 400))


# ---------------------------------------------------------------------------
# docstring examples
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["", "._base", ".scalers", ".imputers", ".encoders", ".binning", ".woe"])
def test_docstring_examples_run(module):
    mod = importlib.import_module("jointml.data.preprocessing" + module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
