"""SecureBoost's protected mode (``protection="mpc"``, issue 11 item 2): a deviating label
holder that encrypts crafted gradients (row i -> 2^i) reads every feature holder's bin of
every row from the decrypted bin sums in the default mode; with bin sums and split
finding under MPC it gets no bin sum at all, only the split owner per node and the
published partition of a split's rows. Same trees as the default mode on the same data.

1024-bit keys for the default mode (tests only); parties as threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointml.data.metrics import roc_auc
from jointml.ml.tree import SecureBoostClassifier, SecureBoostError, SecureBoostRegressor
from jointml.ml.tree._binning import QuantileBins
from jointml.ml.tree.secureboost import label_holder as lh
from jointml.net import link as L
from jointml.runtime import PartyFailed, simulate

KEY = 1024
MPC = dict(protection="mpc", dealer="dealer")


def data(n=300, d=6, seed=0, missing=0.05):
    # public test data: numpy's generator protects nothing here
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    X[g.random(X.shape) < missing] = np.nan
    z = np.nan_to_num(X)
    logit = z[:, 0] + 1.5 * z[:, 4] - z[:, 3] + z[:, 1] * z[:, 5]
    y = (g.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return X, y, logit


def parts(ctx, X, cut, holders=("partner",)):
    out = {"bank": ctx.party("bank").run(lambda: X[:, :cut])}
    blocks = np.array_split(np.arange(cut, X.shape[1]), len(holders))
    for p, cols in zip(holders, blocks):
        out[p] = ctx.party(p).run(lambda cols=cols: X[:, cols])
    return out


def fit(cls, X, y, cut, params, protected, *, holders=("partner",), eval_set=None):
    """Train (bank: columns [:cut] and y); the bank's margins on X, its trees, each holder's trees."""

    def prog(ctx):
        m = cls(ctx, key_bits=KEY, n_jobs=1, **params, **(MPC if protected else {}))
        ev = None if eval_set is None else (parts(ctx, eval_set[0], cut, holders), ctx.party("bank").run(lambda: eval_set[1]))
        m.fit(parts(ctx, X, cut, holders), ctx.party("bank").run(lambda: y), eval_set=ev)
        out = m.decision_function(parts(ctx, X, cut, holders))
        return (out.value if ctx.me == "bank" else None), m

    names = ["bank", *holders] + (["dealer"] if protected else [])
    return simulate(prog, names, mode="thread")


def structure(model):
    return [(t["left"], t["right"], t["mine"], t["feature"], t["default_left"]) for t in model.trees_]


# ------------------------------------------------------------------------------ same trees


@pytest.mark.parametrize("cls", [SecureBoostClassifier, SecureBoostRegressor])
def test_protected_mode_grows_the_same_trees(cls):
    """Same data, same hyperparameters: every node splits on the same (party, feature, bin,
    default direction) in both modes, and the margins agree to float precision (the leaf
    weights are computed by the bank in plaintext in both)."""
    X, y, logit = data()
    if cls is SecureBoostRegressor:
        y = 3.0 * logit + np.random.default_rng(1).normal(size=len(y))  # |g| unbounded: the announced shift
    p = dict(n_estimators=3, max_depth=3, max_bin=8, min_child_weight=1.0, gamma=0.05)
    plain, prot = fit(cls, X, y, 3, p, False), fit(cls, X, y, 3, p, True)
    (m0, b0), (m1, b1) = plain["bank"], prot["bank"]
    assert structure(b0) == structure(b1)  # the bank's own splits, the tree shapes
    assert [t["party"] for t in b0.trees_] == [t["party"] for t in b1.trees_]
    assert structure(plain["partner"][1]) == structure(prot["partner"][1])  # the partner's splits and thresholds
    assert [t["threshold"] for t in plain["partner"][1].trees_] == [t["threshold"] for t in prot["partner"][1].trees_]
    assert np.abs(m0 - m1).max() < 1e-9
    # the bank knows each partner split's gain (from the published partition), not its feature
    g0 = [g for t in b0.trees_ for g, q in zip(t["gain"], t["party"]) if q == "partner"]
    g1 = [g for t in b1.trees_ for g, q in zip(t["gain"], t["party"]) if q == "partner"]
    assert np.allclose(g0, g1, rtol=1e-5)  # the default mode sums fixed-point g, h (hist_frac_bits)
    assert all(b == -1 for t in b1.trees_ for b, q in zip(t["bin"], t["party"]) if q == "partner")


def test_three_parties_sampling_early_stopping():
    """Two feature holders, row and column sampling, early stopping: the protected run's flow
    (the dealer follows every level and the stop decision); both modes learn (samples are
    random, so the trees differ: their equality is tested above without sampling)."""
    X, y, _ = data(n=240, d=8, seed=2)
    Xv, yv, _ = data(n=100, d=8, seed=3)
    p = dict(n_estimators=3, max_depth=3, max_bin=8, subsample=0.8, colsample_bytree=0.7, early_stopping_rounds=2)
    aucs = {}
    for protected in (False, True):
        res = fit(SecureBoostClassifier, X, y, 3, p, protected, holders=("partner", "shop"), eval_set=(Xv, yv))
        margins, m = res["bank"]
        assert len(m.trees_) == m.best_iteration_ + 1
        aucs[protected] = roc_auc(y, margins)
        if protected:
            assert res["dealer"][1].trees_ == []  # the dealer holds no part of the model
            assert {k for k in m.get_importance("weight")} <= {f"bank:x{j}" for j in range(3)}
    assert min(aucs.values()) > 0.7, aucs  # random samples and early stopping: the trees differ between runs


# ------------------------------------------------------------------------------ the attack


class DeviatingBank(SecureBoostClassifier):
    """A label holder that sends crafted 'gradients' g_i = 2^i (in fixed-point units) instead of
    its real gradients, to read the feature holder's bin of every row from the bin sums."""

    def _grad_hess(self, y, margin):
        n = len(y)
        return 2.0 ** (np.arange(n) - int(self.hist_frac_bits)), np.ones(n)

    def _protected_inputs(self, st, lv, n_nodes):
        # protected mode: the crafted (g, h) go into MPC as they are; its own two candidates'
        # scores (computed from them, ~2^60) are clipped into the fixed-point range
        V, extra, avail, own = super()._protected_inputs(st, lv, n_nodes)
        return V, np.clip(extra, -1e12, 1e12), avail, own


def _spy(monkeypatch):
    """Everything every party receives (thread mode), and every histogram the bank's split search sees."""
    seen, hists = [], []
    recv = L.Communicator.recv

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        seen.append((self.me, peer, tag, dict(msg.meta or {}), [np.asarray(x) for x in msg.arrays]))
        return msg

    best = lh.best_split

    def spy_best(h, *a, **k):
        hists.append({p: np.array(v) for p, v in h.items()})
        return best(h, *a, **k)

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    monkeypatch.setattr(lh, "best_split", spy_best)
    return seen, hists


def _decode_bins(hist, n_bins, n, frac_bits):
    """The attack: each bin sum of crafted g is the bitmask of the rows in that bin."""
    codes = np.full((n, len(n_bins)), -1)
    off = 0
    for j, nb in enumerate(n_bins):
        for b in range(nb):
            mask = int(round(hist[off + b, 0] * 2.0 ** frac_bits))
            for i in range(n):
                if mask >> i & 1:
                    codes[i, j] = b
        off += nb
    return codes


@pytest.mark.parametrize("protected", [False, True])
def test_crafted_gradients_recover_partner_bins_only_without_protection(monkeypatch, protected):
    """Attack (issue 11, item 2): a bank sending g_i = 2^i. Default mode: it decodes 100 % of
    the partner's (row, column) bins from the root's bin sums. Protected mode: no bin sum of
    the partner reaches it; what it receives in the clear is within the stated leak."""
    n, cut = 40, 2
    X, y, _ = data(n=n, d=6, seed=4, missing=0.1)
    true = QuantileBins.fit(X[:, cut:], 4).transform(X[:, cut:])  # the partner's bins (its own binning)
    n_bins = [len(c) + 2 for c in QuantileBins.fit(X[:, cut:], 4).cuts]  # regular bins + missing: known to the bank
    seen, hists = _spy(monkeypatch)
    p = dict(n_estimators=1, max_depth=2, max_bin=4, hist_frac_bits=8, min_child_weight=0.0)
    res = fit(DeviatingBank, X, y, cut, p, protected)
    bank_model = res["bank"][1]
    if not protected:
        # default mode: the root's decrypted bin sums give every partner row's bin, all columns
        root = next(h for h in hists if "partner" in h)
        got = _decode_bins(root["partner"], n_bins, n, 8)
        assert (got == true).mean() == 1.0
        return
    # protected: the bank's split search never sees a partner bin sum ...
    assert hists and all(set(h) == {"bank"} for h in hists)
    to_bank = [(peer, tag, meta, arrs) for me, peer, tag, meta, arrs in seen if me == "bank"]
    # ... the partner's candidate matrix reaches it only masked (E = C - A, uniform; not 0/1)
    masked = [a for peer, tag, _, arrs in to_bank if "pmasked" in tag for a in arrs]
    assert masked and all(np.isin(a, (0, 1)).mean() < 0.01 for a in masked)
    # ... and in the clear only the split's side of each row of the node it splits: at most
    # one bit per row and level (the stated leak), never a bin sum, bin index or threshold
    dirs = [meta["n"] for peer, tag, meta, _ in to_bank if "sb:dirs" in tag]
    assert sum(dirs) <= n * p["max_depth"]
    partner_nodes = [q for t in bank_model.trees_ for q in t["party"] if q == "partner"]
    assert all(b == -1 for t in bank_model.trees_ for b, q in zip(t["bin"], t["party"]) if q == "partner")
    assert len(partner_nodes) <= 2 ** p["max_depth"] - 1
    # the dealer: shapes and split/no-split bits, no column name, no data, no partition
    to_dealer = [(tag, meta, arrs) for me, peer, tag, meta, arrs in seen if me == "dealer"]
    assert to_dealer and not any("sb:" in tag and "sb:k" not in tag and "sb:tree" not in tag for tag, _, _ in to_dealer)
    assert "x0" not in repr([m for _, m, _ in to_dealer])


def test_protected_model_saves_and_predicts_without_the_dealer(tmp_path):
    """The model parts of a protected fit are the default mode's: the bank and the partner load
    and predict on their own (the dealer takes part in training only)."""
    X, y, _ = data(n=120, seed=5)
    p = dict(n_estimators=2, max_depth=2, max_bin=8)

    def train(ctx):
        m = SecureBoostClassifier(ctx, **p, **MPC).fit(parts(ctx, X, 3), ctx.party("bank").run(lambda: y))
        if ctx.me != "dealer":
            m.save(tmp_path)
        out = m.predict_proba(parts(ctx, X, 3))
        return out.value if ctx.me == "bank" else None

    def reload(ctx):
        m = SecureBoostClassifier.load(ctx, tmp_path)
        assert m.get_params()["protection"] == "mpc"
        out = m.predict_proba(parts(ctx, X, 3))
        return out.value if ctx.me == "bank" else None

    before = simulate(train, ["bank", "partner", "dealer"], mode="thread")["bank"]
    after = simulate(reload, ["bank", "partner"], mode="thread")["bank"]
    assert np.array_equal(before, after) and roc_auc(y, before[:, 1]) > 0.75


# ------------------------------------------------------------------------------ parameters


def test_protected_mode_parameter_errors():
    with pytest.raises(SecureBoostError, match="protection"):
        SecureBoostClassifier(None, protection="zk")
    with pytest.raises(SecureBoostError, match="dealer"):
        SecureBoostClassifier(None, protection="mpc")
    with pytest.raises(SecureBoostError, match="reg_lambda"):
        SecureBoostClassifier(None, protection="mpc", dealer="d", reg_lambda=0.0)
    X, y, _ = data(n=40)

    def prog(ctx, dealer):
        m = SecureBoostClassifier(ctx, n_estimators=1, protection="mpc", dealer=dealer)
        m.fit(parts(ctx, X, 2), ctx.party("bank").run(lambda: y))

    with pytest.raises(PartyFailed, match="must hold neither features nor labels"):
        simulate(prog, ["bank", "partner", "dealer"], mode="thread", args=("partner",))
    with pytest.raises(PartyFailed, match="not a party of the cluster"):
        simulate(prog, ["bank", "partner", "dealer"], mode="thread", args=("carol",))
    with pytest.raises(PartyFailed, match="neither the label holder"):
        simulate(prog, ["bank", "partner", "dealer", "carol"], mode="thread", args=("dealer",))


    def huge_target(ctx):  # squared error on a target in the hundreds of millions: out of the exact range
        m = SecureBoostRegressor(ctx, n_estimators=1, protection="mpc", dealer="dealer")
        m.fit(parts(ctx, X, 2), ctx.party("bank").run(lambda: 1e8 * (y + 1)))

    with pytest.raises(PartyFailed, match="too large for protection='mpc'.*scale the target"):
        simulate(huge_target, ["bank", "partner", "dealer"], mode="thread")


def test_credit_pipeline_with_protection_mpc(tmp_path, monkeypatch):
    """`secureboost.train` with `protection: mpc, dealer: dealer` in the credit job (the trees'
    equality with the default mode is tested above): it trains, scores, and the dealer receives
    no column name, no partition and no histogram."""
    from jointml.demo.credit_demo import make_demo_files
    from jointml.jobs import simulate_pipeline
    from jointml.jobs.credit import CreditJobConfig, credit_pipeline

    files = make_demo_files(tmp_path / "data")
    trees = {"n_estimators": 2, "learning_rate": 0.3, "max_depth": 2, "max_bin": 8, **MPC}
    cfg = CreditJobConfig(inputs={"bank": str(files["bank"]), "partner": str(files["partner"])}, key_bits=512,
                          model_type="secureboost", trees=trees, verbose=False)
    seen, _ = _spy(monkeypatch)
    res = simulate_pipeline(credit_pipeline(cfg, ["bank", "partner", "dealer"]), mode="thread", verbose=False)
    assert res["bank"]["auc"] > 0.7
    dealer_tags = [tag for me, _, tag, _, _ in seen if me == "dealer"]
    assert any(t.startswith("sb:tree") for t in dealer_tags)  # it took part in every tree
    assert not any(t.startswith(("sb:dirs", "sb:pos", "sb:check", "sb:nbins", "sb:miss")) for t in dealer_tags)
