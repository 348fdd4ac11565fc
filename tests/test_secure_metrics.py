"""jointml.data.secure.metrics: AUC/KS under MPC vs scikit-learn and jointml.data.metrics."""

from __future__ import annotations

import doctest
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from jointml.core.fixedpoint import FixedPoint
from jointml.data import metrics
from jointml.data.secure import metrics as sm
from jointml.datasets import load_germancredit
from jointml.mpc import MpcDevice
from jointml.runtime import PartyFailed, simulate

PARTIES = ["alice", "bob", "carol"]
DEVICES = {
    "semi2k": dict(parties=["alice", "bob"], dealer="carol"),
    "aby3": dict(parties=["alice", "bob", "carol"]),
}
DIV_TOL = 1e-5  # documented accuracy when P and N stay secret (secure division; measured <= 3e-6)
FXP = FixedPoint(18)


def on_grid(s: np.ndarray) -> np.ndarray:
    """The values a SecretArray holds (f = 18): what the secure metrics rank."""
    return FXP.decode(FXP.encode(s))


def run(fn, protocol: str = "semi2k", mode: str = "thread"):
    def prog(ctx):
        return fn(ctx, MpcDevice(ctx, protocol=protocol, **DEVICES[protocol]))

    return simulate(prog, PARTIES, mode=mode)


def value(x):
    return x.value if hasattr(x, "value") else x


@pytest.fixture(scope="module")
def german_scores():
    """Logistic-regression probabilities on all 1000 German credit rows (bad = 1), with a
    block of rounded scores so that ties between positives and negatives occur."""
    df = load_germancredit()
    y = (df["creditability"] == "bad").astype(int).to_numpy()
    X = df.drop(columns="creditability")
    cat = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    num = [c for c in X.columns if c not in cat]
    Xm = np.hstack([OneHotEncoder(sparse_output=False).fit_transform(X[cat]), StandardScaler().fit_transform(X[num])])
    s = LogisticRegression(C=0.1, max_iter=2000).fit(Xm, y).predict_proba(Xm)[:, 1]
    s[:200] = np.round(s[:200], 2)
    s = on_grid(s)
    assert len(np.unique(s)) < len(s)  # ties present
    return y, s


def synthetic(n: int, seed: int, rate: float = 0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    s = 1 / (1 + np.exp(-(-1.0 + 1.2 * y + rng.normal(size=n))))
    return y, on_grid(s)


# ---------------------------------------------------------------------------------------
# pairwise (exact)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_pairwise_german_exact_and_secret_division(german_scores, protocol):
    y, s = german_scores
    auc, ks = roc_auc_score(y, s), metrics.ks(y, s).statistic

    def fn(ctx, mpc):
        scores = ctx.party("alice").run(lambda: s).to(mpc)  # a joint model's secret output
        labels = ctx.party("bob").run(lambda: y)  # the bank's plaintext labels
        holder = sm.auc_ks(scores, labels, to="bob")  # the holder knows P and N: exact
        everyone = sm.auc_ks(scores, labels)  # P, N secret: secure division
        return holder, everyone

    out = run(fn, protocol)
    holder = out["bob"][0].value
    assert out["alice"][0].owner == "bob" and out["alice"][0].is_local is False
    assert holder["auc"] == pytest.approx(auc, abs=1e-12)
    assert holder["ks"] == pytest.approx(ks, abs=1e-12)
    for p in PARTIES:  # the dealer too: to=None means every party of the job
        assert out[p][1]["auc"] == pytest.approx(auc, abs=DIV_TOL)
        assert out[p][1]["ks"] == pytest.approx(ks, abs=DIV_TOL)
    assert out["alice"][1] == out["carol"][1]


def test_pairwise_secret_labels_plaintext_scores_and_chunks():
    """Scores held by a partner in plaintext, labels secret-shared: nobody sees the other column."""
    y, s = synthetic(400, seed=2)
    s = on_grid(np.where(np.arange(len(s)) % 3 == 0, np.round(s, 2), s))  # many ties
    auc, ks = roc_auc_score(y, s), metrics.ks(y, s).statistic

    def fn(ctx, mpc):
        scores = ctx.party("alice").run(lambda: s)
        labels = ctx.party("bob").run(lambda: y).to(mpc, fxp=False)
        a = sm.roc_auc(scores, labels, mpc=mpc, reveal_class_counts=True)
        k = sm.ks(scores, labels, mpc=mpc, reveal_class_counts=True, chunk=10_000)  # 16 batches
        both = sm.auc_ks(scores, labels, mpc=mpc, chunk=999, to="carol")
        return a, k, both

    out = run(fn)
    a, k, both = out["carol"]
    assert a == pytest.approx(auc, abs=1e-12) and k == pytest.approx(ks, abs=1e-12)
    assert both.value["auc"] == pytest.approx(auc, abs=DIV_TOL)
    assert both.value["ks"] == pytest.approx(ks, abs=DIV_TOL)


def test_tiny_and_extreme_class_balance():
    """n = 2, a single positive among many, all scores tied."""
    cases = [
        (np.array([0, 1]), np.array([0.3, 0.7])),
        (np.array([1, 0]), np.array([0.3, 0.7])),
        (np.r_[np.zeros(299, int), 1], on_grid(np.linspace(0, 1, 300))),
        (np.array([0, 1, 0, 1, 1]), np.full(5, 0.5)),
    ]

    def fn(ctx, mpc):
        res = []
        for y, s in cases:
            sc = ctx.party("alice").run(lambda s=s: s).to(mpc)
            lab = ctx.party("bob").run(lambda y=y: y)
            res.append((sm.auc_ks(sc, lab), sm.auc_ks(sc, lab, to="bob")))
        return res

    out = run(fn)["bob"]
    for (y, s), (sec, holder) in zip(cases, out):
        auc, ks = roc_auc_score(y, s), metrics.ks(y, s).statistic
        assert holder.value["auc"] == pytest.approx(auc, abs=1e-12)
        assert holder.value["ks"] == pytest.approx(ks, abs=1e-12)
        assert sec["auc"] == pytest.approx(auc, abs=DIV_TOL)
        assert sec["ks"] == pytest.approx(ks, abs=DIV_TOL)


# ---------------------------------------------------------------------------------------
# bucketed O(n B)
# ---------------------------------------------------------------------------------------


def _bucket_counts(y, s, thr):
    idx = np.searchsorted(thr, s, side="right")  # bucket k: thr[k-1] <= s < thr[k]
    m = len(thr) + 1
    return np.bincount(idx[y == 1], minlength=m), np.bincount(idx[y == 0], minlength=m)


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_bucketed_german(german_scores, protocol):
    y, s = german_scores
    thr = on_grid(np.linspace(0, 1, 1001)[1:-1])
    pos, neg = _bucket_counts(y, s, thr)

    def fn(ctx, mpc):
        sc = ctx.party("alice").run(lambda: s).to(mpc)
        lab = ctx.party("bob").run(lambda: y)
        return (
            sm.auc_ks(sc, lab, method="bucketed"),
            sm.auc_ks(sc, lab, method="bucketed", to="bob"),
            sm.score_histogram(sc, lab, to="alice"),
        )

    out = run(fn, protocol)
    sec, holder, hist = out["carol"][0], out["bob"][1].value, out["alice"][2].value
    np.testing.assert_array_equal(hist.pos_counts, pos)
    np.testing.assert_array_equal(hist.neg_counts, neg)
    np.testing.assert_allclose(hist.thresholds, thr)
    # exact for the bucketed score ...
    assert holder["auc"] == pytest.approx(metrics.roc_auc_from_counts(pos, neg), abs=1e-12)
    assert holder["ks"] == pytest.approx(metrics.ks_from_counts(pos, neg).statistic, abs=1e-12)
    assert sec["auc"] == pytest.approx(hist.roc_auc(), abs=DIV_TOL)
    assert sec["ks"] == pytest.approx(hist.ks(), abs=DIV_TOL)
    # ... and within the documented bucketing tolerance of the exact metrics
    assert sec["auc"] == pytest.approx(roc_auc_score(y, s), abs=2e-3)
    assert sec["ks"] == pytest.approx(metrics.ks(y, s).statistic, abs=2e-3)


def test_bucketed_large_n_and_custom_thresholds():
    """n = 10000 against 999 thresholds (10^7 comparisons in 10 batches), and explicit thresholds."""
    y, s = synthetic(10_000, seed=4, rate=0.1)
    custom = on_grid(np.quantile(s, np.linspace(0.01, 0.99, 50)))  # e.g. from a public reference sample
    timings = {}

    def fn(ctx, mpc):
        sc = ctx.party("alice").run(lambda: s).to(mpc)
        lab = ctx.party("bob").run(lambda: y)
        t = time.perf_counter()
        a = sm.auc_ks(sc, lab, method="bucketed", bins=1000)
        timings[ctx.me] = time.perf_counter() - t
        b = sm.auc_ks(sc, lab, method="bucketed", thresholds=custom, to="bob")
        return a, b

    out = run(fn)
    a, b = out["bob"]
    print(f"bucketed n=10000 B=1000: {max(timings.values()):.2f} s")
    assert a["auc"] == pytest.approx(roc_auc_score(y, s), abs=2e-3)
    assert a["ks"] == pytest.approx(metrics.ks(y, s).statistic, abs=2e-3)
    pos, neg = _bucket_counts(y, s, custom)
    assert b.value["auc"] == pytest.approx(metrics.roc_auc_from_counts(pos, neg), abs=1e-12)
    assert b.value["ks"] == pytest.approx(metrics.ks_from_counts(pos, neg).statistic, abs=1e-12)


# ---------------------------------------------------------------------------------------
# bad input, disclosure of the single-class bit, process mode
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, pattern",
    [
        (np.array([0, 1, 2, 1]), r"party 'bob': labels must be 0/1, found 1 rows with another value \(File"),
        (np.array([0, 1, 1]), r"party 'bob': labels have 3 rows but the scores have 4"),
        (np.array([1, 1, 1, 1]), r"party 'bob': labels hold a single class"),
        (np.array([0.0, np.nan, 1, 0]), r"party 'bob': labels contain 1 NaN values"),
    ],
)
def test_bad_plaintext_labels(labels, pattern):
    def fn(ctx, mpc):
        sc = ctx.party("alice").run(lambda: np.array([0.1, 0.2, 0.3, 0.4])).to(mpc)
        return sm.roc_auc(sc, ctx.party("bob").run(lambda: labels))

    with pytest.raises(PartyFailed, match=pattern):
        run(fn)


def test_bad_secret_inputs_and_arguments():
    def single_class(ctx, mpc):
        sc = ctx.party("alice").run(lambda: np.array([0.1, 0.2, 0.3])).to(mpc)
        lab = ctx.party("bob").run(lambda: np.zeros(3, int)).to(mpc, fxp=False)
        return sm.ks(sc, lab)  # only the bit "P N == 0" is opened

    with pytest.raises(PartyFailed, match="labels hold a single class"):
        run(single_class)

    def fxp_labels(ctx, mpc):
        sc = ctx.party("alice").run(lambda: np.array([0.1, 0.2])).to(mpc)
        return sm.roc_auc(sc, ctx.party("bob").run(lambda: np.array([0.0, 1.0])).to(mpc))

    with pytest.raises(PartyFailed, match="integer 0/1 SecretArray"):
        run(fxp_labels)

    def nan_scores(ctx, mpc):
        return sm.roc_auc(ctx.party("alice").run(lambda: np.array([0.1, np.nan])), ctx.party("bob").run(lambda: np.array([0, 1])), mpc=mpc)

    with pytest.raises(PartyFailed, match=r"party 'alice': scores contain 1 NaN/infinite values"):
        run(nan_scores)

    def bad_method(ctx, mpc):
        sc = ctx.party("alice").run(lambda: np.array([0.1, 0.2])).to(mpc)
        return sm.roc_auc(sc, ctx.party("bob").run(lambda: np.array([0, 1])), method="sorted")

    with pytest.raises(PartyFailed, match="method must be 'pairwise' or 'bucketed'"):
        run(bad_method)


def test_process_mode():
    y, s = synthetic(300, seed=9)

    def fn(ctx, mpc):
        sc = ctx.party("alice").run(lambda: s).to(mpc)
        out = sm.auc_ks(sc, ctx.party("bob").run(lambda: y), to="bob")
        return out.value if ctx.me == "bob" else None  # results are pickled back: no handles

    out = run(fn, mode="process")["bob"]
    assert out["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert out["ks"] == pytest.approx(metrics.ks(y, s).statistic, abs=1e-12)


def test_doctests():
    res = doctest.testmod(sm, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
