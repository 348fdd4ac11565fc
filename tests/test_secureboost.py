"""SecureBoost (Paillier HE, label holder + feature holders) against xgboost and on bad input.

1024-bit keys here (tests only); parties as threads with n_jobs=1 unless stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointml.data.metrics import roc_auc
from jointml.ml.tree import (
    SecureBoostClassifier,
    SecureBoostError,
    SecureBoostRegressor,
)
from jointml.net.link import Communicator
from jointml.runtime import NotOwnerError, PartyFailed, simulate

KEY = 1024
PARTIES = ["bank", "partner"]


def run(prog, *args, parties=PARTIES, mode="thread"):
    return simulate(prog, parties, mode=mode, args=args)


def split_parts(ctx, X, cut, names=("bank", "partner")):
    a, b = names
    return {a: ctx.party(a).run(lambda: X[:, :cut]), b: ctx.party(b).run(lambda: X[:, cut:])}


def fit_predict(cls, Xtr, ytr, Xte, cut, params, *, eval_set=None, parties=PARTIES, label="bank"):
    """Fit at two parties (bank: columns [:cut] + labels) and return bank's margins and model."""

    def prog(ctx):
        m = cls(ctx, key_bits=KEY, n_jobs=1, **params)
        ev = None
        if eval_set is not None:
            ev = (split_parts(ctx, eval_set[0], cut), ctx.party(label).run(lambda: eval_set[1]))
        m.fit(split_parts(ctx, Xtr, cut), ctx.party(label).run(lambda: ytr), eval_set=ev)
        out = m.decision_function(split_parts(ctx, Xte, cut))
        if ctx.me == label:
            return out.value, m
        return None, m

    return run(prog, parties=parties)


def xgb_params(p):
    return dict(n_estimators=p["n_estimators"], max_depth=p["max_depth"], learning_rate=p["learning_rate"],
                reg_lambda=p.get("reg_lambda", 1.0), min_child_weight=p.get("min_child_weight", 1.0),
                gamma=p.get("gamma", 0.0), max_bin=p.get("max_bin", 32), tree_method="hist", n_jobs=1)


def synthetic(n, d, seed=0):
    # public test data: numpy's generator protects nothing here
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    logit = X[:, 0] * X[:, d - 1] + np.sin(2 * X[:, 1]) + X[:, d - 2] - 0.5 * X[:, 2] ** 2 + 0.5 * X[:, 3]
    y = (g.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return X, y, logit


@pytest.fixture(scope="module")
def german():
    """German credit: categoricals one-hot, numbers as they are; bank holds the first 10
    attributes and the label (bad = 1), the partner the other 10."""
    import pandas as pd

    from jointml.datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") == "bad").to_numpy(np.float64)
    cols = list(df.columns)
    blocks = [pd.get_dummies(df[part], drop_first=True).to_numpy(np.float64) for part in (cols[:10], cols[10:])]
    X = np.hstack(blocks)
    perm = np.random.default_rng(7).permutation(len(y))
    tr, te = perm[:700], perm[700:]
    return X[tr], y[tr], X[te], y[te], blocks[0].shape[1]


# ------------------------------------------------------------------------------ exactness


@pytest.mark.parametrize("p", [
    dict(n_estimators=4, max_depth=3, learning_rate=0.3, min_child_weight=1.0, reg_lambda=1.0, gamma=0.1),
    # deep trees whose nodes stop splitting at different depths (min_child_weight, gamma)
    dict(n_estimators=3, max_depth=7, learning_rate=0.5, min_child_weight=4.0, reg_lambda=2.0, gamma=0.5),
])
def test_identical_to_xgboost_when_bins_agree(p):
    """Integer features (< max_bin distinct values, 5 % missing): xgboost's hist bins are the
    values themselves, so the trees and margins must agree to fixed-point precision."""
    xgb = pytest.importorskip("xgboost")
    g = np.random.default_rng(1)
    n = 1200
    X = g.integers(0, 10, size=(n, 6)).astype(float)
    X[g.random(X.shape) < 0.05] = np.nan
    logit = (X[:, 0] - 5) * 0.4 + np.where(np.isnan(X[:, 3]), 1.0, X[:, 3] > 4) - (X[:, 5] > 7)
    y = (g.random(n) < 1 / (1 + np.exp(-np.nan_to_num(logit)))).astype(float)
    res = fit_predict(SecureBoostClassifier, X, y, X, 3, p)
    ours, model = res["bank"]
    c = xgb.XGBClassifier(base_score=1 / (1 + np.exp(-model.base_score_)), **xgb_params(p)).fit(X, y)
    assert np.abs(ours - c.predict(X, output_margin=True)).max() < 1e-4
    yr = np.nan_to_num(logit) + g.normal(size=n)
    res = fit_predict(SecureBoostRegressor, X, yr, X, 3, p)
    ours, model = res["bank"]
    r = xgb.XGBRegressor(base_score=model.base_score_, **xgb_params(p)).fit(X, yr)
    assert np.abs(ours - r.predict(X)).max() < 1e-4


def test_german_credit_auc_matches_xgboost(german):
    xgb = pytest.importorskip("xgboost")
    Xtr, ytr, Xte, yte, cut = german
    p = dict(n_estimators=10, max_depth=3, learning_rate=0.3, min_child_weight=1.0, reg_lambda=1.0)
    res = fit_predict(SecureBoostClassifier, Xtr, ytr, Xte, cut, p)
    ours, model = res["bank"]
    c = xgb.XGBClassifier(base_score=float(ytr.mean()), **xgb_params(p)).fit(Xtr, ytr)
    auc, ref = roc_auc(yte, ours), roc_auc(yte, c.predict_proba(Xte)[:, 1])
    assert auc > 0.7
    assert abs(auc - ref) < 0.01, (auc, ref)
    # importances at the label holder: split counts and gains for both parties' columns
    assert model.importance_splits_.sum() > 0
    assert {n.split(":")[0] for n in model.get_importance("weight")} == {"bank", "partner"}
    assert np.isclose(model.feature_importances_.sum(), 1.0)


def test_synthetic_auc_matches_xgboost():
    """Continuous features (more distinct values than bins: our quantile cuts differ slightly
    from xgboost's sketch)."""
    xgb = pytest.importorskip("xgboost")
    X, y, _ = synthetic(3000, 8)
    p = dict(n_estimators=8, max_depth=4, learning_rate=0.3, min_child_weight=1.0, reg_lambda=1.0)
    res = fit_predict(SecureBoostClassifier, X[:2000], y[:2000], X[2000:], 4, p)
    ours, _ = res["bank"]
    c = xgb.XGBClassifier(base_score=float(y[:2000].mean()), **xgb_params(p)).fit(X[:2000], y[:2000])
    auc, ref = roc_auc(y[2000:], ours), roc_auc(y[2000:], c.predict_proba(X[2000:])[:, 1])
    assert abs(auc - ref) < 0.01, (auc, ref)


def test_regression_rmse_matches_xgboost():
    xgb = pytest.importorskip("xgboost")
    X, _, logit = synthetic(2500, 6, seed=3)
    y = 3 * logit + np.random.default_rng(4).normal(size=len(logit)) + 10
    p = dict(n_estimators=8, max_depth=4, learning_rate=0.3)
    res = fit_predict(SecureBoostRegressor, X[:2000], y[:2000], X[2000:], 3, p)
    ours, _ = res["bank"]
    r = xgb.XGBRegressor(base_score=float(y[:2000].mean()), **xgb_params(p)).fit(X[:2000], y[:2000])
    rmse = np.sqrt(np.mean((ours - y[2000:]) ** 2))
    ref = np.sqrt(np.mean((r.predict(X[2000:]) - y[2000:]) ** 2))
    assert rmse < 1.03 * ref, (rmse, ref)


# ------------------------------------------------------------------------ options and parties


def test_three_parties_sampling_early_stopping():
    """Label holder without features, two feature holders; row/column subsampling and early
    stopping on a validation set."""
    X, y, _ = synthetic(1500, 6, seed=5)
    parties = ["bank", "p1", "p2"]

    def prog(ctx):
        parts = lambda A: {"p1": ctx.party("p1").run(lambda: A[:, :3]), "p2": ctx.party("p2").run(lambda: A[:, 3:])}
        m = SecureBoostClassifier(ctx, n_estimators=30, max_depth=3, learning_rate=0.5, subsample=0.8,
                                  colsample_bytree=0.7, early_stopping_rounds=2, key_bits=KEY, n_jobs=1)
        m.fit(parts(X[:800]), ctx.party("bank").run(lambda: y[:800]),
              eval_set=(parts(X[800:1100]), ctx.party("bank").run(lambda: y[800:1100])))
        proba = m.predict_proba(parts(X[1100:]))
        if ctx.me == "bank":
            return roc_auc(y[1100:], proba.value[:, 1]), len(m.trees_), m.best_iteration_, m.history_
        with pytest.raises(NotOwnerError):
            _ = proba.value  # scores only at the label holder
        return len(m.trees_)

    res = run(prog, parties=parties)
    auc, n_trees, best, hist = res["bank"]
    assert auc > 0.7
    assert n_trees == best + 1 and len(hist) < 30  # stopped early and truncated to the best tree
    assert res["p1"] == res["p2"] == n_trees


@pytest.mark.parametrize("cls", [SecureBoostClassifier, SecureBoostRegressor])
def test_save_load_same_predictions(tmp_path, cls):
    X, y, _ = synthetic(800, 6, seed=2)
    X[::17, 4] = np.nan  # missing values take the learned default direction after loading too
    name = cls.__name__

    def scores(m, ctx):
        if cls is SecureBoostClassifier:
            return m.predict_proba(split_parts(ctx, X, 3))
        return m.predict(split_parts(ctx, X, 3))

    def train(ctx):
        m = cls(ctx, n_estimators=3, max_depth=4, key_bits=KEY, n_jobs=1)
        m.fit(split_parts(ctx, X, 3), ctx.party("bank").run(lambda: y))
        m.save(tmp_path / "model")
        p = scores(m, ctx)
        return p.value if ctx.me == "bank" else None

    def reload(ctx):
        m = cls.load(ctx, tmp_path / "model")
        p = scores(m, ctx)
        return (p.value, m.get_importance("total_gain")) if ctx.me == "bank" else m.trees_

    before = run(train)["bank"]
    after = run(reload)
    assert np.array_equal(before, after["bank"][0])
    assert after["bank"][1]
    # each part holds only its owner's thresholds
    import json

    # model parts in the runtime.persist format: each party's own content is under "state"
    bank = json.loads((tmp_path / "model" / f"{name}.bank.json").read_text())["state"]
    partner = json.loads((tmp_path / "model" / f"{name}.partner.json").read_text())["state"]
    assert "value" in bank["trees"][0] and "value" not in partner["trees"][0]
    for tb, tp in zip(bank["trees"], partner["trees"]):
        for i, owner in enumerate(tb["party"]):
            if owner == "partner":
                assert tb["threshold"][i] is None and tp["threshold"][i] is not None
    # a missing part fails at every party, naming it
    (tmp_path / "model" / f"{name}.partner.json").unlink()
    with pytest.raises(PartyFailed, match="partner.*not found"):
        run(reload)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("case,pattern", [
    ("missing_label", "needs y"),
    ("nan_label", "party 'bank': labels y have 1 NaN"),
    ("unaligned", "party 'partner': X has 99 rows but the label holder 'bank' has 100"),
    ("nonbinary", "party 'bank': labels y must be 0/1"),
    ("string_features", "party 'partner'.*not numeric"),
])
def test_bad_inputs_name_the_party(case, pattern):
    g = np.random.default_rng(0)
    X = g.normal(size=(100, 4))
    y = (X[:, 0] > 0).astype(float)

    def prog(ctx):
        xp = X[:, 2:]
        yy = y.copy()
        if case == "unaligned":
            xp = xp[:99]
        if case == "nan_label":
            yy[5] = np.nan
        if case == "nonbinary":
            yy[3] = 2.0
        if case == "string_features":
            xp = xp.astype(str)
        Xd = {"bank": ctx.party("bank").run(lambda: X[:, :2]), "partner": ctx.party("partner").run(lambda: xp)}
        m = SecureBoostClassifier(ctx, n_estimators=1, key_bits=KEY, n_jobs=1)
        m.fit(Xd, None if case == "missing_label" else ctx.party("bank").run(lambda: yy))

    with pytest.raises((PartyFailed, SecureBoostError), match=pattern):
        run(prog)


def test_predict_with_wrong_columns_names_the_party():
    X, y, _ = synthetic(300, 4)

    def prog(ctx):
        m = SecureBoostClassifier(ctx, n_estimators=1, max_depth=2, key_bits=KEY, n_jobs=1)
        m.fit(split_parts(ctx, X, 2), ctx.party("bank").run(lambda: y))
        m.predict({"bank": ctx.party("bank").run(lambda: X[:, :2]), "partner": ctx.party("partner").run(lambda: X[:, 2:3])})

    with pytest.raises(PartyFailed, match="party 'partner': predict X has 1 columns, the model was trained on 2"):
        run(prog)


def test_scores_only_to_the_label_holder():
    X, y, _ = synthetic(300, 4)

    def prog(ctx):
        m = SecureBoostClassifier(ctx, n_estimators=1, max_depth=2, key_bits=KEY, n_jobs=1)
        m.fit(split_parts(ctx, X, 2), ctx.party("bank").run(lambda: y))
        m.predict_proba(split_parts(ctx, X, 2), to="partner")

    with pytest.raises(PartyFailed, match="reveals scores to the label holder 'bank' only, not to 'partner'"):
        run(prog)


def test_hyperparameter_errors():
    with pytest.raises(SecureBoostError):
        SecureBoostClassifier(object(), n_estimators=1)
    ctx = type("C", (), {"comm": None, "me": "a"})()
    for bad in (dict(max_depth=0), dict(learning_rate=0), dict(subsample=1.5), dict(max_bin=1)):
        with pytest.raises(SecureBoostError):
            SecureBoostClassifier(ctx, **bad)


# --------------------------------------------------------------------------------- leakage


def test_views_no_partner_thresholds_at_bank_no_gradients_at_partner(monkeypatch):
    """Record every message each party receives: the bank's view holds no threshold of the
    partner; the partner's view holds no plaintext gradient (nor its fixed-point encoding);
    the partner re-randomises what it sends back."""
    from jointml.he import packing as _hist

    g = np.random.default_rng(11)
    n = 600
    X = g.normal(size=(n, 4)) * 3.7 + 0.123456789  # thresholds are distinctive floats
    y = X[:, 0] - X[:, 3] + g.normal(size=n)  # regression: continuous gradients
    seen: dict[str, list] = {p: [] for p in PARTIES}
    orig_recv = Communicator.recv

    def spy(self, peer, tag, *a, **kw):
        msg = orig_recv(self, peer, tag, *a, **kw)
        seen[self.me].append(msg)
        return msg

    rerand = {"n": 0}
    orig_ck = _hist.compress_kernel

    def count_rr(params, blob, k, shift_bits, rerandomize):
        rerand["n"] += bool(rerandomize)
        return orig_ck(params, blob, k, shift_bits, rerandomize)

    monkeypatch.setattr(Communicator, "recv", spy)
    monkeypatch.setattr(_hist, "compress_kernel", count_rr)

    def prog(ctx):
        m = SecureBoostRegressor(ctx, n_estimators=2, max_depth=3, base_score=0.0, key_bits=KEY, n_jobs=1)
        m.fit(split_parts(ctx, X, 2), ctx.party("bank").run(lambda: y))
        m.predict(split_parts(ctx, X, 2))
        return m.trees_

    res = run(prog)
    thresholds = np.array([t for tr in res["partner"] for t, mine in zip(tr["threshold"], tr["mine"]) if mine])
    assert len(thresholds) > 0
    # base_score 0: the first tree's gradients are -y; the second's are known at the bank only
    grads = -y

    def numbers(msgs):
        vals = []
        for msg in msgs:
            for a in msg.arrays:
                if a.dtype.kind == "f":
                    vals.append(a.ravel())
            stack = [msg.meta]
            while stack:
                v = stack.pop()
                if isinstance(v, dict):
                    stack.extend(v.values())
                elif isinstance(v, list):
                    stack.extend(v)
                elif isinstance(v, float):
                    vals.append(np.array([v]))
        return np.concatenate(vals) if vals else np.zeros(0)

    bank_view = numbers(seen["bank"])
    assert not np.isin(thresholds, bank_view).any()
    # the bank's model part has no partner threshold either
    for tr in res["bank"]:
        for t, owner in zip(tr["threshold"], tr["party"]):
            if owner == "partner":
                assert np.isnan(t)
    partner_view = numbers(seen["partner"])
    assert not np.isin(grads, partner_view).any()
    for msg in seen["partner"]:  # nothing from the bank carries gradients in fixed point either
        for a in msg.arrays:
            if a.dtype.kind in "iu" and a.dtype.itemsize >= 4:
                assert not np.isin(np.rint(grads * 2.0 ** 24).astype(np.int64), a.astype(np.int64)).any()
    hist_msgs = [m for m in seen["bank"] if m.tag.startswith("sb:hist")]
    assert hist_msgs and rerand["n"] >= len(hist_msgs)


# ---------------------------------------------------------------------------- hot path kernel


@pytest.mark.parametrize("use_pairs,n_jobs", [(False, 1), (True, 1), (True, 2)])
def test_encrypted_histograms_match_plaintext(use_pairs, n_jobs):
    from jointml.he import generate_keypair
    from jointml.he.grouped import grouped_sums as encrypted_histograms

    pk, sk = generate_keypair(512)
    g = np.random.default_rng(0)
    m = 5000
    nb = np.array([3, 4, 2, 5, 3])
    vals = g.integers(-50, 50, m)
    codes = np.stack([g.integers(0, k, m) for k in nb], 1).astype(np.int16)
    slot = g.integers(0, 2, m)
    wire = pk.encrypt([int(v) for v in vals], n_jobs=1).to_wire()
    sums = encrypted_histograms(wire, pk.nsq, codes, slot, 2, nb, n_jobs=n_jobs, use_pairs=use_pairs)
    half = int(pk.n) // 2
    dec = np.array([x if x < half else x - int(pk.n) for x in sk.decrypt_residues(sums, n_jobs=1)])
    offs = np.concatenate([[0], np.cumsum(nb)])
    ref = np.zeros(2 * offs[-1], dtype=np.int64)
    for j in range(len(nb)):
        np.add.at(ref, slot * offs[-1] + offs[j] + codes[:, j], vals)
    assert np.array_equal(dec, ref)


def test_histogram_work_split_keeps_pairs_whole_and_one_column_splits_rows():
    """With several columns each worker sums all rows of its columns (pairs decided on
    whole nodes, never split between workers); one column falls back to row chunks. Both
    give the plaintext sums."""
    from jointml.he import generate_keypair
    from jointml.he.grouped import _column_groups, _pairs, grouped_sums

    nb = np.full(20, 33)
    pairs, _ = _pairs(nb, 20000)
    groups = _column_groups(nb, 20000, 2, True)
    assert len(groups) == 2 and sorted(j for grp in groups for j in grp) == list(range(20))
    assert abs(len(groups[0]) - len(groups[1])) <= 2  # balanced
    for a, b in pairs:
        assert any(a in grp and b in grp for grp in groups)
    pk, sk = generate_keypair(512)
    g = np.random.default_rng(1)
    m = 4200
    vals = g.integers(-50, 50, m)
    codes = g.integers(0, 6, (m, 1))
    wire = pk.encrypt([int(v) for v in vals], n_jobs=1).to_wire()
    sums = grouped_sums(wire, pk.nsq, codes, np.zeros(m, int), 1, np.array([6]), n_jobs=2)
    half = int(pk.n) // 2
    dec = [x if x < half else x - int(pk.n) for x in sk.decrypt_residues(sums, n_jobs=1)]
    assert dec == np.bincount(codes[:, 0], weights=vals, minlength=6).astype(int).tolist()


def test_gradient_slots_are_the_exact_bound():
    """The packed (g, h) slot holds a sum over every sampled row at the largest encoded
    magnitude, and one bit less would not: 42-bit slots at 100,000 rows and 24
    fractional bits (8 pairs per 2048-bit OU ciphertext)."""
    from jointml.he.layout import SlotLayout
    from jointml.ml.tree.secureboost.label_holder import gradient_slot_bits

    g = np.random.default_rng(2)
    for n, F, scale in ((100_000, 24, 1.0), (20_000, 24, 1.0), (3, 8, 7.5), (1000, 16, 1e-3)):
        gs, hs = g.uniform(-scale, scale, n), g.uniform(0, scale / 4, n)
        gs[0] = scale * 0.999
        b = gradient_slot_bits(gs, hs, F, 10_000, 2048, "bank")
        worst = n * max(int(np.rint(abs(v) * 2.0 ** F)) for v in (*gs, *hs))
        assert worst <= SlotLayout(b, (2,)).slot_limit
        assert n * (int(np.abs(gs).max() * 2.0 ** F) + 1) > SlotLayout(b - 1, (2,)).slot_limit
    assert gradient_slot_bits(np.full(100_000, 0.999), np.full(100_000, 0.25), 24, 676, 2048, "bank") == 42


@pytest.mark.parametrize("m", [1, 7, 40])
def test_compress_pairs_matches_he_compress(m):
    """The group-wise compression decrypts like jointml.he.compress and re-randomises."""
    from jointml.he import encrypt_packed, generate_keypair
    from jointml.ml.tree.secureboost.histogram import compress_pairs

    pk, sk = generate_keypair(512)
    gh = np.random.default_rng(m).normal(size=(m, 2))
    ct = encrypt_packed(pk, gh, slot_bits=40, frac_bits=16, n_jobs=1)
    small = compress_pairs(pk, list(ct.data), 40, 16, n_jobs=1)
    assert small.size < m or m == 1
    assert np.allclose(sk.decrypt(small, n_jobs=1), np.round(gh * 2**16) / 2**16)
    again = compress_pairs(pk, list(ct.data), 40, 16, n_jobs=1)
    assert not set(small.data.tolist()) & set(again.data.tolist())  # fresh randomness each time


def test_processes_over_tls_with_worker_pools():
    """The deployed shape: parties as processes over TLS, Paillier work on the local pools."""
    from jointml.he import shutdown_pool

    # A pool started earlier in this (pytest) process must not be inherited by the forked
    # party processes: its workers belong to the parent (see the report: he.parallel
    # should drop inherited pools after fork).
    shutdown_pool()
    X, y, _ = synthetic(1500, 6, seed=9)

    def prog(ctx):
        m = SecureBoostClassifier(ctx, n_estimators=2, max_depth=3, key_bits=KEY, n_jobs=2)
        m.fit(split_parts(ctx, X[:1000], 3), ctx.party("bank").run(lambda: y[:1000]))
        p = m.predict_proba(split_parts(ctx, X[1000:], 3))
        return roc_auc(y[1000:], p.value[:, 1]) if ctx.me == "bank" else m.timings_

    res = run(prog, mode="process")
    assert res["bank"] > 0.65
    assert res["partner"]["hist"] > 0


# ------------------------------------------------------------------------------ label DP


def test_label_dp_randomizes_labels_at_the_rate_of_epsilon_before_training():
    """`label_dp=eps`: the label holder trains on randomized-response labels (flip rate
    1 / (e^eps + 1)); with a huge epsilon nothing flips and the model equals the plain one;
    a regressor and a non-positive epsilon are refused."""
    X, y, _ = synthetic(2000, 4, seed=3)
    params = dict(n_estimators=1, max_depth=2)
    plain = fit_predict(SecureBoostClassifier, X, y, X[:50], 2, params)
    big = fit_predict(SecureBoostClassifier, X, y, X[:50], 2, dict(params, label_dp=40.0))
    assert big["bank"][1].label_dp_flipped_ == 0.0
    np.testing.assert_allclose(plain["bank"][0], big["bank"][0])
    noisy = fit_predict(SecureBoostClassifier, X, y, X[:50], 2, dict(params, label_dp=1.0))
    q = 1 / (np.e + 1)  # 0.269; 5 standard deviations at 2,000 rows: 0.05
    assert abs(noisy["bank"][1].label_dp_flipped_ - q) < 0.05
    assert noisy["bank"][1].label_dp_epsilon_ == 1.0
    assert not hasattr(noisy["partner"][1], "label_dp_flipped_")  # only the label holder randomizes
    ctx = type("C", (), {"comm": None, "me": "a"})()
    for bad in (dict(label_dp=0.0), dict(label_dp=float("inf"))):
        with pytest.raises(SecureBoostError, match="label_dp"):
            SecureBoostClassifier(ctx, **bad)
    with pytest.raises(SecureBoostError, match="SecureBoostClassifier only"):
        SecureBoostRegressor(ctx, label_dp=1.0)
