"""SS-LR and SS-GLM (jointml.ml.linear): training, regularisation, GLM families,
export/import, prediction and bad inputs.

Every training test has a plaintext *twin*: numpy gradient descent with exactly the
batches the secure model uses (the permutation and batch order are public and derived
from `random_state`: `Prg(seed, "shuffle")` orders the rows once, `Prg(seed + 1,
"batches")` orders the batches each epoch). The secure model must follow its twin, and
where the optimisation converges, scikit-learn.

Tolerances (f = 18 fractional bits, ulp = 3.8e-6):

* weights vs the twin: 2e-3 absolute. Measured 1e-4 .. 3e-4 (fixed-point rounding of
  eta, of X^T r and of the learning-rate scaling; the sigmoid approximation: `accurate`
  8e-6, `poly` 7e-4; `seg3` is compared with a seg3 twin, as it is 0.056 off the logistic).
* test AUC vs the twin and vs scikit-learn's LogisticRegression(C = 1 / (l2 n)): 0.005.
* predictions after save/load vs before: 2e-5 (the same shares; only the fresh
  randomness of the truncations differs, 1 ulp before the sigmoid).
* GLMs (full-batch gradient descent until converged) vs scikit-learn: coefficients 5e-3
  absolute, deviance / R^2 within 0.5 %.

Thread-mode simulation (parties bank, partner, dealer) except one aby3 test (bank, partner,
carol) and one process-mode test. The whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jointml.core.prg import Prg
from jointml.data.metrics import roc_auc
from jointml.ml.linear import SSGLM, ModelError, SSLogisticRegression
from jointml.mpc import MpcDevice
from jointml.runtime import PartyFailed, simulate

PARTIES = ["bank", "partner", "dealer"]
ABY3_PARTIES = ["bank", "partner", "carol"]

W_TOL = 2e-3
AUC_TOL = 0.005


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
def logistic_data(n=2000, d=10, seed=0, n_noise=0, bias=-0.3, scale=1.0):
    """Synthetic logistic data: d informative standard-normal features (+ n_noise pure noise)."""
    g = np.random.default_rng(seed)
    w = g.normal(size=d) * scale
    X = g.normal(size=(n, d + n_noise))
    eta = X[:, :d] @ w + bias
    y = (g.random(n) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    return X, y, w


@pytest.fixture(scope="module")
def synth():
    X, y, _ = logistic_data(3000, 10, seed=0)
    return X[:2000], y[:2000], X[2000:], y[2000:]


@pytest.fixture(scope="module")
def german():
    """German credit, one-hot + standardised with the training rows' statistics; the bank
    holds the first 10 attributes and the label (bad = 1), the partner the other 10."""
    import pandas as pd

    from jointml.datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") == "bad").to_numpy(np.float64)
    cols = list(df.columns)
    blocks = []
    for part in (cols[:10], cols[10:]):
        blocks.append(pd.get_dummies(df[part], drop_first=True).to_numpy(np.float64))
    g = np.random.default_rng(7)
    perm = g.permutation(len(y))
    tr, te = perm[:700], perm[700:]
    out = []
    for B in blocks:
        mu, sd = B[tr].mean(0), B[tr].std(0)
        sd[sd == 0] = 1.0
        out.append(((B[tr] - mu) / sd, (B[te] - mu) / sd))
    return out[0][0], out[1][0], y[tr], out[0][1], out[1][1], y[te]


# ---------------------------------------------------------------------------------------
# plaintext twin
# ---------------------------------------------------------------------------------------
def seg3(x):
    return np.clip(0.5 + x * (725 / 4096), 0.0, 1.0)


def logistic(x):
    return 1 / (1 + np.exp(-x))


def twin(X, y, *, epochs, batch_size, lr, l2=0.0, l1=0.0, schedule="constant", decay=0.0, mean=logistic,
         family=None, power=1.5, sample_weight=None, random_state=0, fit_intercept=True):
    """numpy gradient descent with the secure model's batches, step sizes and updates."""
    n, d = X.shape
    perm = np.argsort(Prg(random_state.to_bytes(16, "little"), stream="shuffle").uint64(n), kind="stable")
    Xs, ys = X[perm], y[perm]
    sws = None if sample_weight is None else sample_weight[perm]
    m = n if batch_size is None else min(batch_size, n)
    nb = math.ceil(n / m)
    rng = Prg((random_state + 1).to_bytes(16, "little"), stream="batches")
    w, b, step = np.zeros(d), 0.0, 0
    for epoch in range(epochs):
        order = np.argsort(rng.uint64(nb), kind="stable") if nb > 1 else [0]
        for bi in order:
            sl = slice(int(bi) * m, min(int(bi + 1) * m, n))
            xb, yb = Xs[sl], ys[sl]
            eta = xb @ w + (b if fit_intercept else 0.0)
            if family is None:
                r = mean(eta) - yb
            elif family == "gaussian":
                r = eta - yb
            elif family == "poisson":
                r = np.exp(eta) - yb
            elif family == "gamma":
                r = 1 - yb * np.exp(-eta)
            else:
                r = np.exp((2 - power) * eta) - yb * np.exp((1 - power) * eta)
            if sws is not None:
                r = r * sws[sl]
            a = lr
            if schedule == "invscaling":
                a = lr / (1 + decay * step)
            elif schedule == "step":
                a = lr * (decay or 0.5) ** epoch
            w = w - a * (xb.T @ r / len(r) + l2 * w)
            if l1:
                w = np.sign(w) * np.maximum(np.abs(w) - a * l1, 0.0)
            if fit_intercept:
                b -= a * r.mean()
            step += 1
    return w, b


def sk_logistic(X, y, l2, class_weight=None):
    """scikit-learn with our objective: mean log-loss + l2/2 ||w||^2  <=>  C = 1 / (l2 n)."""
    from sklearn.linear_model import LogisticRegression

    C = 1.0 / (l2 * len(y)) if l2 else np.inf
    return LogisticRegression(C=C, max_iter=5000, tol=1e-10, class_weight=class_weight).fit(X, y)


# ---------------------------------------------------------------------------------------
# running secure programs
# ---------------------------------------------------------------------------------------
def run(fn, *args, parties=PARTIES, protocol="semi2k", mode="thread", **kwargs):
    """fn(ctx, mpc, *args) at every party of `parties`; returns {party: result}."""
    return simulate(_with_device, parties, mode=mode, args=(fn, protocol) + args, kwargs=kwargs, timeout=300)


def _with_device(ctx, fn, protocol, *args, **kwargs):
    if protocol == "semi2k":
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    else:
        mpc = MpcDevice(ctx, ["bank", "partner", "carol"], protocol="aby3")
    return fn(ctx, mpc, *args, **kwargs)


def split_inputs(ctx, Xs: dict, y=None, label_owner="bank"):
    """{party: PartyObject} feature blocks and the label PartyObject."""
    parts = {p: ctx.party(p).run(lambda v=v: v) for p, v in Xs.items()}
    return parts, (None if y is None else ctx.party(label_owner).run(lambda: y))


def blocks(X, widths=(5, 5), parties=("bank", "partner")):
    out, off = {}, 0
    for p, k in zip(parties, widths):
        out[p] = X[:, off : off + k]
        off += k
    return out


def fit_predict(ctx, mpc, Xtr, ytr, Xte, cls=SSLogisticRegression, widths=(5, 5), owners=("bank", "partner"), **params):
    """Train, reveal all weights to the bank (unless told otherwise), predict the test rows to the bank."""
    params.setdefault("reveal", "bank")
    xs, y = split_inputs(ctx, blocks(Xtr, widths, owners), ytr)
    model = cls(mpc, **params).fit(xs, y)
    xt, _ = split_inputs(ctx, blocks(Xte, widths, owners))
    p = model.predict(xt, to="bank")
    return _view(ctx, model, p)


def _view(ctx, model, p=None):
    return {
        "coef": model.coef_,
        "intercept": model.intercept_,
        "coef_by_party": model.coef_by_party_,
        "pred": p.value if p is not None and ctx.me == p.owner else None,
        "history": model.history_,
        "n_epochs": model.n_epochs_,
        "n_samples_seen": model.n_samples_seen_,
    }


# ---------------------------------------------------------------------------------------
# SS-LR training vs twin and scikit-learn
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sigmoid,batch_size,lr,epochs",
    [("seg3", 128, 0.5, 3), ("poly", 128, 0.5, 3), ("accurate", 128, 0.5, 3), ("accurate", None, 1.0, 40)],
    ids=["seg3-minibatch", "poly-minibatch", "accurate-minibatch", "accurate-fullbatch"],
)
def test_sslr_matches_twin_and_sklearn(synth, sigmoid, batch_size, lr, epochs):
    Xtr, ytr, Xte, yte = synth
    l2 = 0.01
    res = run(fit_predict, Xtr, ytr, Xte, sigmoid=sigmoid, batch_size=batch_size, learning_rate=lr, epochs=epochs, l2=l2)
    bank = res["bank"]
    w_t, b_t = twin(Xtr, ytr, epochs=epochs, batch_size=batch_size, lr=lr, l2=l2, mean=seg3 if sigmoid == "seg3" else logistic)
    np.testing.assert_allclose(bank["coef"], w_t, atol=W_TOL)
    assert abs(bank["intercept"] - b_t) < W_TOL
    # the per-party view of reveal="bank" is the same vector, split by owner
    np.testing.assert_array_equal(np.concatenate([bank["coef_by_party"]["bank"], bank["coef_by_party"]["partner"]]), bank["coef"])

    auc = roc_auc(yte, bank["pred"])
    auc_twin = roc_auc(yte, (seg3 if sigmoid == "seg3" else logistic)(Xte @ w_t + b_t))
    auc_sk = roc_auc(yte, sk_logistic(Xtr, ytr, l2).decision_function(Xte))
    assert abs(auc - auc_twin) < AUC_TOL, (auc, auc_twin)
    assert abs(auc - auc_sk) < AUC_TOL, (auc, auc_sk)
    assert bank["n_samples_seen"] == epochs * len(ytr) and bank["n_epochs"] == epochs == len(bank["history"])


def test_sslr_full_batch_converges_to_sklearn(synth):
    """Full-batch gradient descent on a strongly regularised problem reaches scikit-learn's optimum."""
    Xtr, ytr, Xte, _ = synth
    l2 = 0.1
    res = run(fit_predict, Xtr, ytr, Xte, sigmoid="accurate", batch_size=None, learning_rate=2.0, epochs=60, l2=l2)
    sk = sk_logistic(Xtr, ytr, l2)
    np.testing.assert_allclose(res["bank"]["coef"], sk.coef_[0], atol=5e-3)
    assert abs(res["bank"]["intercept"] - sk.intercept_[0]) < 5e-3


def test_small_steps_keep_precision(synth):
    """lr / m far below the fixed-point resolution of the residuals (0.05 / 2000 = 2.5e-5 =
    6.6 ulp): the step must still follow the twin to 0.1 % (scaling r by lr / m before
    X^T r used to lose 6 %)."""
    Xtr, ytr, _, _ = synth
    kw = dict(epochs=30, batch_size=None)
    res = run(fit_predict, Xtr, ytr, Xtr[:10], sigmoid="seg3", learning_rate=0.05, l2=0.01, **kw)
    w_t, b_t = twin(Xtr, ytr, lr=0.05, l2=0.01, mean=seg3, **kw)
    np.testing.assert_allclose(res["bank"]["coef"], w_t, rtol=1e-3, atol=1e-4)
    assert abs(res["bank"]["intercept"] - b_t) < 1e-4


def test_sslr_german_credit(german):
    """Real data: 700 x 48 one-hot columns (bank 28, partner 20), labels at the bank."""
    Xb, Xp, y, Xb_te, Xp_te, y_te = german
    l2, lr, epochs, bs = 0.02, 0.5, 6, 64

    def prog(ctx, mpc):
        xs, yy = split_inputs(ctx, {"bank": Xb, "partner": Xp}, y)
        model = SSLogisticRegression(mpc, epochs=epochs, batch_size=bs, learning_rate=lr, l2=l2, sigmoid="accurate", reveal="bank")
        model.fit(xs, yy)
        xt, _ = split_inputs(ctx, {"bank": Xb_te, "partner": Xp_te})
        return _view(ctx, model, model.predict(xt))

    bank = run(prog)["bank"]
    X, Xte = np.hstack([Xb, Xp]), np.hstack([Xb_te, Xp_te])
    w_t, b_t = twin(X, y, epochs=epochs, batch_size=bs, lr=lr, l2=l2)
    np.testing.assert_allclose(bank["coef"], w_t, atol=W_TOL)
    auc = roc_auc(y_te, bank["pred"])
    assert abs(auc - roc_auc(y_te, Xte @ w_t + b_t)) < AUC_TOL
    assert abs(auc - roc_auc(y_te, sk_logistic(X, y, l2).decision_function(Xte))) < AUC_TOL
    assert auc > 0.75


# ---------------------------------------------------------------------------------------
# regularisation, schedules, class weights, early stopping
# ---------------------------------------------------------------------------------------
def test_l2_shrinks_weights(synth):
    Xtr, ytr, _, _ = synth
    kw = dict(sigmoid="seg3", batch_size=200, learning_rate=0.5, epochs=3)

    def prog(ctx, mpc):
        xs, y = split_inputs(ctx, blocks(Xtr), ytr)
        return [SSLogisticRegression(mpc, l2=l2, reveal="bank", **kw).fit(xs, y).coef_ for l2 in (0.0, 0.1)]

    w0, w2 = run(prog)["bank"]
    assert np.linalg.norm(w2) < 0.8 * np.linalg.norm(w0)
    t0 = twin(Xtr, ytr, epochs=3, batch_size=200, lr=0.5, l2=0.0, mean=seg3)[0]
    t2 = twin(Xtr, ytr, epochs=3, batch_size=200, lr=0.5, l2=0.1, mean=seg3)[0]
    np.testing.assert_allclose(w0, t0, atol=W_TOL)
    np.testing.assert_allclose(w2, t2, atol=W_TOL)


def test_l1_zeroes_noise_features():
    """6 informative + 6 pure-noise features (3 + 3 at each party). Full-batch proximal
    gradient descent (soft threshold w - clip(w, -t, t), exact in fixed point) sets the
    noise weights to exactly 0 and reaches scikit-learn's L1 optimum (C = 1 / (l1 n))."""
    from sklearn.linear_model import LogisticRegression

    g = np.random.default_rng(3)
    n, l1 = 3000, 0.02
    X = g.normal(size=(n, 12))
    w_true = np.array([1.5, -1.0, 0.8, 0, 0, 0, -1.2, 1.0, -0.7, 0, 0, 0])
    y = (g.random(n) < logistic(X @ w_true - 0.3)).astype(np.float64)
    noise = w_true == 0
    kw = dict(epochs=60, batch_size=None)

    def prog(ctx, mpc):
        xs, yy = split_inputs(ctx, blocks(X, (6, 6)), y)
        return SSLogisticRegression(mpc, l1=l1, sigmoid="poly", learning_rate=2.0, reveal="bank", **kw).fit(xs, yy).coef_

    w = run(prog)["bank"]
    w_t, _ = twin(X, y, l1=l1, lr=2.0, **kw)
    np.testing.assert_allclose(w, w_t, atol=W_TOL)
    assert np.all(w[noise] == 0.0), w
    assert np.all(np.abs(w[~noise]) > 0.2), w
    sk = LogisticRegression(C=1 / (l1 * n), l1_ratio=1.0, solver="liblinear", tol=1e-8, intercept_scaling=100).fit(X, y)
    np.testing.assert_allclose(w, sk.coef_[0], atol=5e-3)


@pytest.mark.parametrize("schedule,decay", [("invscaling", 0.05), ("step", 0.5)])
def test_lr_schedules(synth, schedule, decay):
    Xtr, ytr, _, _ = synth
    kw = dict(epochs=3, batch_size=250)

    def prog(ctx, mpc):
        xs, y = split_inputs(ctx, blocks(Xtr), ytr)
        m = SSLogisticRegression(mpc, sigmoid="seg3", learning_rate=1.0, lr_schedule=schedule, lr_decay=decay, reveal="bank", **kw)
        return _view(ctx, m.fit(xs, y))

    bank = run(prog)["bank"]
    w_t, b_t = twin(Xtr, ytr, lr=1.0, schedule=schedule, decay=decay, mean=seg3, **kw)
    np.testing.assert_allclose(bank["coef"], w_t, atol=W_TOL)
    assert abs(bank["intercept"] - b_t) < W_TOL
    rates = [h["learning_rate"] for h in bank["history"]]
    # the rate of each epoch's last step: 1 / (1 + decay * step) per step, or decay^epoch
    want = [1 / (1 + decay * (8 * e - 1)) for e in (1, 2, 3)] if schedule == "invscaling" else [1.0, 0.5, 0.25]
    np.testing.assert_allclose(rates, want)
    # and the schedule matters: constant steps end elsewhere
    w_c, _ = twin(Xtr, ytr, lr=1.0, mean=seg3, **kw)
    assert np.abs(w_c - w_t).max() > 10 * W_TOL


def test_label_column_vector_is_accepted(synth):
    """Labels as an (n, 1) column train exactly like a 1-D vector (no (m,) - (m, 1) broadcast)."""
    Xtr, ytr, _, _ = synth

    def prog(ctx, mpc):
        xs, _ = split_inputs(ctx, blocks(Xtr))
        out = []
        for labels in (ytr, ytr[:, None]):
            y = ctx.party("bank").run(lambda v=labels: v)
            out.append(SSLogisticRegression(mpc, epochs=1, batch_size=500, learning_rate=0.5, reveal="bank").fit(xs, y).coef_)
        return out

    w1, w2 = run(prog)["bank"]
    np.testing.assert_allclose(w1, w2, atol=1e-4)
    np.testing.assert_allclose(w1, twin(Xtr, ytr, epochs=1, batch_size=500, lr=0.5, mean=seg3)[0], atol=W_TOL)


def test_bad_schedule_rejected():
    with pytest.raises(ModelError, match="lr_schedule"):
        SSLogisticRegression(None, lr_schedule="cosine")


def test_class_weight_balanced_raises_minority_recall():
    """10 % positives: class_weight='balanced' moves the decision boundary like scikit-learn's."""
    X, y, _ = logistic_data(3000, 6, seed=5, bias=-3.0)
    Xtr, ytr, Xte, yte = X[:2000], y[:2000], X[2000:], y[2000:]
    assert 0.05 < ytr.mean() < 0.2
    kw = dict(sigmoid="accurate", epochs=4, batch_size=100, learning_rate=0.5, l2=0.01)

    def prog(ctx, mpc):
        xs, yy = split_inputs(ctx, blocks(Xtr, (3, 3)), ytr)
        xt, _ = split_inputs(ctx, blocks(Xte, (3, 3)))
        out = []
        for cw in (None, "balanced"):
            m = SSLogisticRegression(mpc, class_weight=cw, reveal="bank", **kw).fit(xs, yy)
            p = m.predict(xt)  # at every party (SPMD), revealed to the bank
            out.append((m.coef_, m.intercept_, p.value if ctx.me == "bank" else None, m.class_weight_))
        return out

    (_, _, p0, cw0), (w1, b1, p1, cw1) = run(prog)["bank"]
    assert cw0 is None and cw1[1] > 2 * cw1[0]
    recall = lambda p: float(((p > 0.5) & (yte == 1)).sum() / (yte == 1).sum())
    sk0, sk1 = sk_logistic(Xtr, ytr, 0.01), sk_logistic(Xtr, ytr, 0.01, class_weight="balanced")
    sk_recall = lambda m: float(((m.predict(Xte) == 1) & (yte == 1)).sum() / (yte == 1).sum())
    assert recall(p1) > recall(p0) + 0.2, (recall(p0), recall(p1))
    assert abs(recall(p1) - sk_recall(sk1)) < 0.1 and abs(recall(p0) - sk_recall(sk0)) < 0.1
    sw = np.where(ytr == 1, cw1[1], cw1[0])
    w_t, b_t = twin(Xtr, ytr, sample_weight=sw, epochs=4, batch_size=100, lr=0.5, l2=0.01)
    np.testing.assert_allclose(w1, w_t, atol=W_TOL)
    assert abs(b1 - b_t) < W_TOL


def test_early_stopping_stops_and_records_history(synth):
    Xtr, ytr, _, _ = synth

    def prog(ctx, mpc):
        xs, y = split_inputs(ctx, blocks(Xtr), ytr)
        m = SSLogisticRegression(mpc, sigmoid="seg3", epochs=40, batch_size=500, learning_rate=0.5, early_stopping=True,
                                 validation_fraction=0.2, n_iter_no_change=2, tol=1e-3, reveal="bank")
        m.fit(xs, y)
        # fitting again (a new split and model) must not reuse the first fit's validation rows
        m2 = SSLogisticRegression(mpc, sigmoid="seg3", epochs=2, batch_size=500, learning_rate=0.5, early_stopping=True,
                                  validation_fraction=0.1, reveal="bank").fit(xs, y)
        return _view(ctx, m), m2.n_samples_seen_

    res = run(prog)
    bank, n2 = res["bank"]
    hist = bank["history"]
    assert 3 <= bank["n_epochs"] < 40 and len(hist) == bank["n_epochs"]
    # every party stopped at the same epoch; only the label holder learnt the losses
    for p in ("partner", "dealer"):
        assert len(res[p][0]["history"]) == len(hist)
        assert all(h["val_loss"] is None for h in res[p][0]["history"])
    losses = [h["val_loss"] for h in hist]
    best = np.minimum.accumulate(losses)
    # the last n_iter_no_change epochs did not improve on the best before them by tol
    assert all(l > best[-3] - 1e-3 for l in losses[-2:])
    assert all(0.3 < l < 0.7 for l in losses)
    assert bank["n_samples_seen"] == bank["n_epochs"] * 1600 and n2 == 2 * 1800


# ---------------------------------------------------------------------------------------
# who learns what
# ---------------------------------------------------------------------------------------
def test_reveal_modes(synth):
    Xtr, ytr, Xte, _ = synth
    kw = dict(sigmoid="seg3", epochs=2, batch_size=250, learning_rate=0.5)

    def prog(ctx, mpc):
        xs, y = split_inputs(ctx, blocks(Xtr), ytr)
        xt, _ = split_inputs(ctx, blocks(Xte))
        out = {}
        for reveal in ("owners", "shared", "partner"):
            m = SSLogisticRegression(mpc, reveal=reveal, **kw).fit(xs, y)
            out[reveal] = _view(ctx, m, m.predict(xt))  # predictions go to the label holder
        return out

    res = run(prog)
    w_t, b_t = twin(Xtr, ytr, epochs=2, batch_size=250, lr=0.5, mean=seg3)
    # owners: each party its own block, the label holder the intercept, nobody the whole vector
    own = {p: res[p]["owners"] for p in PARTIES}
    assert set(own["bank"]["coef_by_party"]) == {"bank"} and set(own["partner"]["coef_by_party"]) == {"partner"}
    assert own["dealer"]["coef_by_party"] == {}
    np.testing.assert_allclose(own["bank"]["coef_by_party"]["bank"], w_t[:5], atol=W_TOL)
    np.testing.assert_allclose(own["partner"]["coef_by_party"]["partner"], w_t[5:], atol=W_TOL)
    assert abs(own["bank"]["intercept"] - b_t) < W_TOL
    assert own["partner"]["intercept"] is None and own["dealer"]["intercept"] is None
    assert all(own[p]["coef"] is None for p in PARTIES)
    # shared: nobody sees any weight, predictions still work (and agree with the owners model)
    for p in PARTIES:
        assert res[p]["shared"]["coef_by_party"] == {} and res[p]["shared"]["coef"] is None and res[p]["shared"]["intercept"] is None
    pred_owner, pred_shared = res["bank"]["owners"]["pred"], res["bank"]["shared"]["pred"]
    assert res["partner"]["shared"]["pred"] is None
    np.testing.assert_allclose(pred_shared, pred_owner, atol=1e-3)
    np.testing.assert_allclose(pred_shared, seg3(Xte @ w_t + b_t), atol=1e-3)
    # a party name: that party learns everything, the others nothing
    np.testing.assert_allclose(res["partner"]["partner"]["coef"], w_t, atol=W_TOL)
    assert abs(res["partner"]["partner"]["intercept"] - b_t) < W_TOL
    assert set(res["partner"]["partner"]["coef_by_party"]) == {"bank", "partner"}
    assert res["bank"]["partner"]["coef"] is None and res["bank"]["partner"]["coef_by_party"] == {}
    assert res["bank"]["partner"]["intercept"] is None


# ---------------------------------------------------------------------------------------
# GLM families
# ---------------------------------------------------------------------------------------
def glm_data(family, n=600, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, 4)) * 0.5
    w = np.array([0.4, -0.3, 0.2, 0.1])
    mu = np.exp(X @ w + 0.3)
    if family == "gaussian":
        y = X @ w + 0.3 + 0.5 * g.normal(size=n)
    elif family == "poisson":
        y = g.poisson(mu).astype(np.float64)
    elif family == "gamma":
        y = g.gamma(2.0, mu / 2.0)
    else:  # compound Poisson-gamma: zeros and positive amounts, as Tweedie 1 < p < 2 models
        N = g.poisson(2 * np.sqrt(mu))
        y = np.array([g.gamma(2.0, 0.25 * np.sqrt(m), size=k).sum() for k, m in zip(N, mu)])
    return X, y


def _sk_glm(family, l2, n):
    from sklearn.linear_model import (
        GammaRegressor,
        PoissonRegressor,
        Ridge,
        TweedieRegressor,
    )

    return {
        # sklearn's GLMs minimise mean half-deviance + alpha/2 ||w||^2 (our objective, alpha = l2);
        # Ridge minimises the *sum* of squares + alpha ||w||^2, so alpha = l2 n
        "gaussian": Ridge(alpha=l2 * n),
        "poisson": PoissonRegressor(alpha=l2, tol=1e-10, max_iter=1000),
        "gamma": GammaRegressor(alpha=l2, tol=1e-10, max_iter=1000),
        "tweedie": TweedieRegressor(power=1.5, link="log", alpha=l2, tol=1e-10, max_iter=1000),
    }[family]


@pytest.mark.parametrize("family,epochs", [("gaussian", 60), ("poisson", 80), ("gamma", 80), ("tweedie", 80)])
def test_glm_families_match_sklearn(family, epochs):
    X, y = glm_data(family)
    Xtr, ytr, Xte, yte = X[:450], y[:450], X[450:], y[450:]
    l2, lr = 0.01, 0.5

    res = run(fit_predict, Xtr, ytr, Xte, cls=SSGLM, widths=(2, 2), family=family, batch_size=None, learning_rate=lr,
              epochs=epochs, l2=l2)["bank"]
    sk = _sk_glm(family, l2, len(ytr)).fit(Xtr, ytr)
    w_t, _ = twin(Xtr, ytr, family=family, epochs=epochs, batch_size=None, lr=lr, l2=l2)
    np.testing.assert_allclose(res["coef"], w_t, atol=W_TOL)
    np.testing.assert_allclose(res["coef"], sk.coef_, atol=5e-3)
    assert abs(res["intercept"] - sk.intercept_) < 5e-3
    mu = res["pred"]
    if family == "gaussian":
        from sklearn.metrics import r2_score

        assert abs(r2_score(yte, mu) - r2_score(yte, sk.predict(Xte))) < 0.005
    else:
        from sklearn.metrics import mean_tweedie_deviance

        p = {"poisson": 1, "gamma": 2, "tweedie": 1.5}[family]
        ours, theirs = mean_tweedie_deviance(yte, mu, power=p), mean_tweedie_deviance(yte, sk.predict(Xte), power=p)
        assert abs(ours - theirs) < 0.005 * theirs, (ours, theirs)


def test_glm_rejects_bad_family_and_labels():
    with pytest.raises(ModelError, match="family"):
        SSGLM(None, family="binomial")
    with pytest.raises(ModelError, match="power"):
        SSGLM(None, family="tweedie", power=2.5)
    X, y = glm_data("gamma", n=50)

    def prog(ctx, mpc):
        xs, yy = split_inputs(ctx, blocks(X, (2, 2)), y - 10)  # negative amounts
        SSGLM(mpc, family="gamma").fit(xs, yy)

    with pytest.raises(PartyFailed, match=r"party 'bank': label vector must be > 0 for family 'gamma'"):
        run(prog)


# ---------------------------------------------------------------------------------------
# export / import
# ---------------------------------------------------------------------------------------
def _train_and_save(ctx, mpc, Xtr, ytr, Xte, directory, widths=(5, 5), owners=("bank", "partner"), **kw):
    xs, y = split_inputs(ctx, blocks(Xtr, widths, owners), ytr)
    m = SSLogisticRegression(mpc, **kw).fit(xs, y)
    path = m.save(directory)
    xt, _ = split_inputs(ctx, blocks(Xte, widths, owners))
    p = m.predict(xt)
    return {"path": str(path), "pred": p.value if ctx.me == "bank" else None, "coef_by_party": m.coef_by_party_,
            "intercept": m.intercept_}


def _load_and_predict(ctx, mpc, Xte, directory, widths=(5, 5), owners=("bank", "partner"), cls=SSLogisticRegression):
    m = cls.load(mpc, directory)
    xt, _ = split_inputs(ctx, blocks(Xte, widths, owners))
    p = m.predict(xt)
    return {"pred": p.value if ctx.me == "bank" else None, "coef_by_party": m.coef_by_party_, "intercept": m.intercept_,
            "sigmoid": m.sigmoid}


def test_save_load_roundtrip_and_errors(synth, tmp_path):
    Xtr, ytr, Xte, _ = synth
    d = tmp_path / "model"
    kw = dict(sigmoid="poly", epochs=2, batch_size=250, learning_rate=0.5, l2=0.01)
    before = run(_train_and_save, Xtr, ytr, Xte, d, **kw)
    # one part per party (runtime.persist: beside each part, its party's manifest)
    files = sorted(p.name for p in d.iterdir() if not p.name.startswith("manifest."))
    assert files == [f"SSLogisticRegression.{p}.json" for p in ("bank", "dealer", "partner")]
    # a part holds a share, not the weights: the partner's file has no bank weights
    doc = json.loads((d / "SSLogisticRegression.partner.json").read_text())["state"]
    assert set(doc["coef_by_party"]) == {"partner"} and doc["intercept"] is None and doc["w_share"] is not None
    assert json.loads((d / "SSLogisticRegression.dealer.json").read_text())["state"]["w_share"] is None

    after = run(_load_and_predict, Xte, d)  # a new program: new links, new device
    np.testing.assert_allclose(after["bank"]["pred"], before["bank"]["pred"], atol=2e-5)
    assert after["bank"]["sigmoid"] == "poly"
    for p in PARTIES:
        assert after[p]["intercept"] == before[p]["intercept"]
        assert after[p]["coef_by_party"].keys() == before[p]["coef_by_party"].keys()
        for k, v in before[p]["coef_by_party"].items():
            np.testing.assert_array_equal(after[p]["coef_by_party"][k], v)

    # prediction data with another number of columns
    def wrong_width(ctx, mpc):
        m = SSLogisticRegression.load(mpc, d)
        xt, _ = split_inputs(ctx, blocks(Xte, (5, 4)))
        m.predict(xt)

    with pytest.raises(PartyFailed, match=r"party 'partner': expected 5 feature columns .* got shape \(1000, 4\)"):
        run(wrong_width)

    # a part missing at one party: every party fails with the same clear error
    (d / "SSLogisticRegression.partner.json").rename(tmp_path / "moved.json")
    with pytest.raises(PartyFailed, match=r"party 'partner': model part not found") as ei:
        run(_load_and_predict, Xte, d)
    assert all(t == "ModelError" for t, _, _ in ei.value.others.values())

    # a part of another training run mixed in
    other = tmp_path / "other"
    run(_train_and_save, Xtr, ytr, Xte, other, **kw)
    (other / "SSLogisticRegression.partner.json").rename(d / "SSLogisticRegression.partner.json")
    with pytest.raises(PartyFailed, match=r"do not belong together: party 'partner' differs .*model_id"):
        run(_load_and_predict, Xte, d)


def test_glm_save_load(tmp_path):
    """SSGLM parts keep the family and power; the loaded model predicts means e^eta."""
    X, y = glm_data("tweedie", n=300)

    def train(ctx, mpc):
        xs, yy = split_inputs(ctx, blocks(X, (2, 2)), y)
        m = SSGLM(mpc, family="tweedie", power=1.3, epochs=3, batch_size=None, learning_rate=0.5, reveal="owners").fit(xs, yy)
        m.save(tmp_path)
        p = m.predict(xs)
        return p.value if ctx.me == "bank" else None

    def load(ctx, mpc):
        m = SSGLM.load(mpc, tmp_path)
        p = m.predict(split_inputs(ctx, blocks(X, (2, 2)))[0])
        return (m.family, m.power, p.value if ctx.me == "bank" else None)

    before = run(train)["bank"]
    family, power, after = run(load)["bank"]
    assert (family, power) == ("tweedie", 1.3)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=2e-5)
    w_t, b_t = twin(X, y, family="tweedie", power=1.3, epochs=3, batch_size=None, lr=0.5)
    np.testing.assert_allclose(after, np.exp(X @ w_t + b_t), rtol=1e-3)


def test_aby3_train_save_load(synth, tmp_path):
    """aby3 (bank, partner, carol all compute and all holding features); shares are pairs."""
    Xtr, ytr, Xte, yte = synth
    owners, widths = ("bank", "partner", "carol"), (4, 3, 3)
    kw = dict(sigmoid="seg3", epochs=2, batch_size=250, learning_rate=0.5, reveal="owners")
    before = run(_train_and_save, Xtr, ytr, Xte, tmp_path, widths=widths, owners=owners, parties=ABY3_PARTIES, protocol="aby3", **kw)
    w_t, b_t = twin(Xtr, ytr, epochs=2, batch_size=250, lr=0.5, mean=seg3)
    np.testing.assert_allclose(before["bank"]["coef_by_party"]["bank"], w_t[:4], atol=W_TOL)
    np.testing.assert_allclose(before["carol"]["coef_by_party"]["carol"], w_t[7:], atol=W_TOL)
    assert abs(before["bank"]["intercept"] - b_t) < W_TOL
    assert abs(roc_auc(yte, before["bank"]["pred"]) - roc_auc(yte, Xte @ w_t + b_t)) < AUC_TOL

    after = run(_load_and_predict, Xte, tmp_path, widths=widths, owners=owners, parties=ABY3_PARTIES, protocol="aby3")
    np.testing.assert_allclose(after["bank"]["pred"], before["bank"]["pred"], atol=2e-5)

    # loading an aby3 model into a semi2k device is refused with a clear error
    with pytest.raises(PartyFailed, match=r"trained with protocol aby3 .* the device runs semi2k"):
        run(_load_and_predict, Xte, tmp_path, widths=widths, owners=owners, parties=["bank", "partner", "carol", "dealer"])


def test_process_mode(synth):
    """The same program with one OS process per party over TLS."""
    Xtr, ytr, Xte, _ = synth
    res = run(fit_predict, Xtr[:800], ytr[:800], Xte, mode="process", sigmoid="seg3", epochs=2, batch_size=200, learning_rate=0.5)
    w_t, b_t = twin(Xtr[:800], ytr[:800], epochs=2, batch_size=200, lr=0.5, mean=seg3)
    np.testing.assert_allclose(res["bank"]["coef"], w_t, atol=W_TOL)
    np.testing.assert_allclose(res["bank"]["pred"], seg3(Xte @ w_t + b_t), atol=1e-3)


def test_feature_holder_outside_compute_parties(synth):
    """A third data owner that is not a compute party: its block is secret-shared first."""
    Xtr, ytr, Xte, _ = synth
    parties = ["bank", "partner", "insurer", "dealer"]
    owners, widths = ("bank", "partner", "insurer"), (4, 3, 3)
    res = run(fit_predict, Xtr, ytr, Xte, parties=parties, widths=widths, owners=owners, sigmoid="seg3", epochs=1,
              batch_size=250, learning_rate=0.5, reveal="owners")
    w_t, b_t = twin(Xtr, ytr, epochs=1, batch_size=250, lr=0.5, mean=seg3)
    np.testing.assert_allclose(res["insurer"]["coef_by_party"]["insurer"], w_t[7:], atol=W_TOL)
    np.testing.assert_allclose(res["bank"]["pred"], seg3(Xte @ w_t + b_t), atol=1e-3)


# ---------------------------------------------------------------------------------------
# bad inputs: a clear ModelError naming the party, raised alike at every party
# ---------------------------------------------------------------------------------------
def _bad_fit(ctx, mpc, case):
    X, y, _ = logistic_data(100, 4, seed=1)
    xb, xp, yy = X[:, :2], X[:, 2:], y
    key_p = "partner"
    if case == "unaligned":
        xp = xp[:-3]
    elif case == "nan":
        xp = xp.copy()
        xp[7, 1] = np.nan
    elif case == "one_dim":
        xp = xp[:, 0]
    elif case == "zero_rows":
        xb, xp, yy = xb[:0], xp[:0], yy[:0]
    elif case == "labels_not_binary":
        yy = yy * 2
    elif case == "label_matrix":
        yy = np.stack([yy, yy], axis=1)
    elif case == "strings":
        xp = xp.astype(str)
    xs = {"bank": ctx.party("bank").run(lambda: xb), key_p: ctx.party("partner").run(lambda: xp)}
    label = ctx.party("bank").run(lambda: yy)
    kw = {}
    if case == "missing_label":
        label = yy  # a plain array: every party would need the labels
    elif case == "unknown_party":
        xs = {"bank": xs["bank"], "insurer": xs["partner"]}
    elif case == "wrong_key":
        xs = {"bank": xs["bank"], "dealer": xs["partner"]}
    elif case == "bad_reveal":
        kw["reveal"] = "insurer"
    elif case == "class_weight_missing_label":
        label, kw["class_weight"] = yy, "balanced"
    SSLogisticRegression(mpc, epochs=1, batch_size=32, **kw).fit(xs, label)


@pytest.mark.parametrize(
    "case,message",
    [
        ("unaligned", r"row counts differ across parties: \{'bank': 100, 'partner': 97, 'labels@bank': 100\}; align"),
        ("nan", r"party 'partner': feature matrix has 1 NaN/inf values \(first at row 7\)"),
        ("one_dim", r"party 'partner': feature matrix must be 2-D, got shape \(100,\)"),
        ("zero_rows", r"no training rows"),
        ("labels_not_binary", r"party 'bank': label vector must hold 0/1 labels"),
        ("label_matrix", r"party 'bank': label vector must be 1-D \(or one column\), got shape \(100, 2\)"),
        ("strings", r"party 'partner': feature matrix is not numeric"),
        ("missing_label", r"y must be a PartyObject"),
        ("class_weight_missing_label", r"y must be a PartyObject"),
        ("unknown_party", r"party 'insurer' holding features is not in the cluster"),
        ("wrong_key", r"X\['dealer'\] is owned by party 'partner'"),
        ("bad_reveal", r"reveal must be 'owners', 'shared' or a party of the cluster"),
    ],
)
def test_bad_inputs(case, message):
    with pytest.raises(PartyFailed, match=message) as ei:
        run(_bad_fit, case)
    # every party failed with the same error (nobody hung, nobody saw a peer's abort first)
    assert ei.value.error_type == "ModelError"
    assert all(t == "ModelError" for t, _, _ in ei.value.others.values()), ei.value.others


def test_party_missing_from_cluster():
    """An MPC device naming a party the job does not have."""

    def prog(ctx):
        MpcDevice(ctx, ["bank", "partner"], dealer="dealer")

    with pytest.raises(PartyFailed, match=r"unknown party 'dealer'"):
        simulate(prog, ["bank", "partner"], mode="thread")


def test_predict_errors(synth):
    Xtr, ytr, Xte, _ = synth

    def prog(ctx, mpc, case):
        m = SSLogisticRegression(mpc, epochs=1, batch_size=500, sigmoid="seg3")
        if case == "unfitted":
            m.predict(split_inputs(ctx, blocks(Xte))[0])
        xs, y = split_inputs(ctx, blocks(Xtr[:500]), ytr[:500])
        m.fit(xs, y)
        if case == "swapped":
            xt = split_inputs(ctx, blocks(Xte))[0]
            m.predict({"partner": xt["partner"], "bank": xt["bank"]})
        if case == "rows":
            m.predict({"bank": ctx.party("bank").run(lambda: Xte[:10, :5]), "partner": ctx.party("partner").run(lambda: Xte[:9, 5:])})
        if case == "nan":
            m.predict({"bank": ctx.party("bank").run(lambda: Xte[:, :5] * np.nan), "partner": ctx.party("partner").run(lambda: Xte[:, 5:])})

    for case, msg in [("unfitted", "not fitted"), ("swapped", "same parties in the same order"),
                      ("rows", r"row counts differ across parties: \{'bank': 10, 'partner': 9\}"),
                      ("nan", r"party 'bank': feature matrix has 5000 NaN")]:
        with pytest.raises(PartyFailed, match=msg):
            run(prog, case)
