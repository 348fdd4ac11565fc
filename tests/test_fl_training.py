"""Federated training: secure aggregation equals plain FedAvg (with and without dropouts, up to the
stated quantisation error), accuracy against centralised training, models, persistence, data checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jointml.core.errors import ModelError
from jointml.data.frames import from_pandas
from jointml.ml.fl import (
    FedAvg,
    FederatedDevice,
    FederatedTrainer,
    FLClient,
    FLLogisticRegression,
    FLMLPClassifier,
    LogisticModel,
    MLPModel,
    SecAggParams,
    local_train,
    weighted_mean,
)
from jointml.ml.fl.aggregate import sub
from jointml.runtime import simulate
from jointml.runtime.launcher import PartyFailed

AGG = "agg"


def _data(n_clients, rows=30, d=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    out = {}
    for i in range(n_clients):
        X = rng.normal(loc=0.3 * i, size=(rows + 5 * i, d))
        y = (X @ w + rng.normal(scale=0.5, size=len(X)) > 0).astype(float)
        out[f"c{i + 1}"] = (X, y)
    return out


def _full_batch_client(data, me, d):
    X, y = data[me]
    return FLClient(LogisticModel(d), X, y, batch_size=len(X), learning_rate=0.5, local_epochs=2)


def test_secure_training_equals_plain_fedavg():
    data, d, rounds, cap = _data(3), 4, 3, 50.0
    sa = SecAggParams(clip=2.0, quant_bits=24, bits=32, threshold=2, min_signers=2)
    clients = list(data)

    def prog(ctx):
        out = []
        for secure in (True, False):
            client = _full_batch_client(data, ctx.me, d) if ctx.me != AGG else None
            tr = FederatedTrainer(ctx, AGG, clients, LogisticModel(d), FedAvg(min_fit_clients=3), rounds=rounds,
                                  secure=secure, secagg=sa, weight_cap=cap, evaluate_every=2)
            out.append((tr.run(client), tr.history_))
        return out

    (sec, h_sec), (plain, h_plain) = simulate(prog, [AGG, *clients], mode="thread")[AGG]
    # federated evaluation after rounds 2 and 3: the securely pooled loss/accuracy equal the plain ones
    assert [("eval_loss" in h) for h in h_sec] == [False, True, True]
    for a, b in zip(h_sec, h_plain):
        for k in ("eval_loss", "eval_accuracy"):
            assert abs(a.get(k, 0.0) - b.get(k, 0.0)) <= 1e-4
    # each round's mean update is off by at most count·step / Σw (stochastic rounding, one step per
    # client and coordinate); full-batch gradient steps are contractive here, so errors add up over rounds
    total_w = sum(len(y) for _, y in data.values()) / cap
    bound = rounds * 3 * sa.quant_step / total_w
    for a, b in zip(sec, plain):
        assert np.max(np.abs(a - b)) <= bound
    assert np.max(np.abs(sec[0])) > 0.1  # it learned something


def test_secure_training_with_dropout_equals_fedavg_of_survivors():
    data, d, cap = _data(4, seed=1), 4, 50.0
    sa = SecAggParams(clip=2.0, quant_bits=24, threshold=2, min_signers=3, timeout=0.4)
    clients = list(data)

    def prog(ctx):
        client = _full_batch_client(data, ctx.me, d) if ctx.me != AGG else None
        tr = FederatedTrainer(ctx, AGG, clients, LogisticModel(d), FedAvg(min_fit_clients=4), rounds=2, secagg=sa,
                              weight_cap=cap)
        w = tr.run(client, dropouts={1: {"c2": "masked"}})
        return w, tr.history_

    (w, hist) = simulate(prog, [AGG, *clients], mode="thread")[AGG]
    assert [h["dropped"] for h in hist] == [1, 0]
    # plaintext twin: round 1 averages c1, c3, c4; round 2 all four
    m = LogisticModel(d)
    g = m.init()
    for who in (["c1", "c3", "c4"], clients):
        news = [local_train(m, g, *data[c], epochs=2, learning_rate=0.5, batch_size=len(data[c][1])) for c in who]
        g = [a + b for a, b in zip(g, weighted_mean([sub(n, g) for n in news], [len(data[c][1]) for c in who]))]
    bound = 2 * 4 * sa.quant_step / (sum(len(y) for _, y in data.values()) / cap) * 3
    for a, b in zip(w, g):
        assert np.max(np.abs(a - b)) <= bound


def test_plain_fedavg_waits_by_the_same_rule_and_leaves_out_the_same_dropout():
    """Plain FedAvg with the simulated dropout of the secure test: the aggregator waits
    `secagg.timeout` after the last answer, then averages the others (exactly, no quantisation)."""
    data, d = _data(4, seed=1), 4
    sa = SecAggParams(timeout=0.3)
    clients = list(data)

    def prog(ctx):
        client = _full_batch_client(data, ctx.me, d) if ctx.me != AGG else None
        tr = FederatedTrainer(ctx, AGG, clients, LogisticModel(d), FedAvg(min_fit_clients=4), rounds=2,
                              secure=False, secagg=sa)
        return tr.run(client, dropouts={1: {"c2": "masked"}}), tr.history_

    w, hist = simulate(prog, [AGG, *clients], mode="thread")[AGG]
    assert [(h["clients"], h["dropped"]) for h in hist] == [(3, 1), (4, 0)]
    assert hist[0]["seconds"] >= sa.timeout  # it waited for the silent client
    m = LogisticModel(d)
    g = m.init()
    for who in (["c1", "c3", "c4"], clients):
        news = [local_train(m, g, *data[c], epochs=2, learning_rate=0.5, batch_size=len(data[c][1])) for c in who]
        g = [a + b for a, b in zip(g, weighted_mean([sub(n, g) for n in news], [len(data[c][1]) for c in who]))]
    for a, b in zip(w, g):
        assert np.max(np.abs(a - b)) <= 1e-9


def _hframes(X, y, parties, cols):
    return {p: pd.DataFrame(np.column_stack([X[i::len(parties)], y[i::len(parties)]]), columns=[*cols, "y"])
            for i, p in enumerate(parties)}


def test_fl_logistic_regression_auc_matches_centralised_breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)  # public scaling constants (a federated mean/std is a SecAgg sum too)
    Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
    cols = [f"f{i}" for i in range(X.shape[1])]
    parties = ["bank-a", "bank-b", "bank-c"]
    frames = _hframes(Xtr, ytr, parties, cols)

    def prog(ctx):
        hdf = from_pandas(ctx, frames, vertical=False)
        m = FLLogisticRegression(FederatedDevice(ctx, AGG, parties), rounds=15, learning_rate=0.1, l2=1e-3,
                                 seed=1).fit(hdf, "y")
        return m.predict_proba(Xte)[:, 1]

    p = simulate(prog, [AGG, *parties], mode="thread")[AGG]
    central = LogisticRegression(C=1.0, max_iter=2000).fit(Xtr, ytr).predict_proba(Xte)[:, 1]
    auc_fl, auc_c = roc_auc_score(yte, p), roc_auc_score(yte, central)
    assert auc_fl >= auc_c - 0.01, (auc_fl, auc_c)


@pytest.mark.slow  # 11 parties, 15 SecAgg+ rounds: 2-6 s
def test_fl_mlp_accuracy_matches_centralised_digits_across_10_clients():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    parties = [f"c{i}" for i in range(10)]
    cols = [f"p{i}" for i in range(64)]
    frames = _hframes(Xtr, ytr, parties, cols)
    kw = dict(hidden=(32,), n_classes=10, rounds=15, local_epochs=3, learning_rate=0.3, batch_size=16, seed=3)

    def prog(ctx):
        hdf = from_pandas(ctx, frames, vertical=False)
        m = FLMLPClassifier(FederatedDevice(ctx, AGG, parties), clip=2.0, **kw).fit(hdf, "y")
        return float((m.predict(Xte) == yte).mean())

    acc_fl = simulate(prog, [AGG, *parties], mode="thread")[AGG]
    # centralised twin: the same model and optimiser on the pooled rows, as many epochs over the data
    # (15 rounds x 3 local epochs; 0.97 here, 0.976 at 100 epochs)
    model = MLPModel(64, (32,), 10)
    w = local_train(model, model.init(3), Xtr, ytr.astype(float), epochs=kw["rounds"] * kw["local_epochs"],
                    learning_rate=0.3, batch_size=16)
    acc_c = float((model.predict_proba(w, Xte).argmax(axis=1) == yte).mean())
    assert acc_fl >= acc_c - 0.02, (acc_fl, acc_c)


def test_model_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(7, 3)), np.array([0, 1, 2, 1, 0, 2, 1], dtype=float)
    for m in (MLPModel(3, (5, 4), 3, l2=0.1), LogisticModel(3, l2=0.1)):
        yy = y if m.n_classes == 3 else (y > 0).astype(float)
        p = [rng.normal(size=a.shape) for a in m.init(1)]
        _, g = m.loss_grad(p, X, yy)
        for i in range(len(p)):
            idx = tuple(rng.integers(0, s) for s in p[i].shape)
            hi = [a.copy() for a in p]
            lo = [a.copy() for a in p]
            hi[i][idx] += 1e-6
            lo[i][idx] -= 1e-6
            num = (m.loss_grad(hi, X, yy)[0] - m.loss_grad(lo, X, yy)[0]) / 2e-6
            assert abs(num - g[i][idx]) < 1e-5


def test_fedprox_term_pulls_towards_the_global_model():
    X, y = np.array([[1.0], [-1.0]] * 10), np.array([1.0, 0.0] * 10)
    m = LogisticModel(1)
    free = local_train(m, m.init(), X, y, epochs=20, learning_rate=0.5, batch_size=20)
    prox = local_train(m, m.init(), X, y, epochs=20, learning_rate=0.5, batch_size=20, proximal_mu=1.0)
    assert 0 < prox[0][0] < free[0][0]


def test_save_load_roundtrip_and_label_check(tmp_path):
    data = _data(3, seed=5)
    parties = list(data)
    frames = {p: pd.DataFrame(np.column_stack([X, y]), columns=["a", "b", "c", "d", "y"]) for p, (X, y) in data.items()}
    bad = dict(frames)
    bad["c2"] = frames["c2"].assign(y=frames["c2"]["y"] * 2)

    def prog(ctx):
        dev = FederatedDevice(ctx, AGG, parties)
        hdf = from_pandas(ctx, frames, vertical=False)
        m = FLLogisticRegression(dev, rounds=2, secure=False).fit(hdf, "y")
        m.save(tmp_path)
        back = FLLogisticRegression.load(dev, tmp_path)
        same = all(np.array_equal(a, b) for a, b in zip(m.params_, back.params_))
        try:
            FLLogisticRegression(dev, rounds=1).fit(from_pandas(ctx, bad, vertical=False), "y")
        except ModelError as e:
            return same, back.coef_.shape, str(e)

    out = simulate(prog, [AGG, *parties], mode="thread")
    assert all(o[0] and o[1] == (4,) for o in out.values())
    assert all("client 'c2'" in o[2] and "0/1" in o[2] for o in out.values())


def test_client_without_data_is_refused():
    def prog(ctx):
        FederatedTrainer(ctx, AGG, ["c1", "c2"], LogisticModel(2), FedAvg(), rounds=1).run(None)

    with pytest.raises(PartyFailed, match="must pass its FLClient"):
        simulate(prog, [AGG, "c1", "c2"], mode="thread", timeout=20)


@pytest.mark.parametrize("split", ["iid", "by_age"])
def test_fedavg_lr_german_credit_5_banks_within_001_auc_of_sklearn(split):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from jointml.datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") != "good").astype(float).to_numpy()
    age = df["age_in_years"].to_numpy()
    X = pd.get_dummies(df, drop_first=True).astype(float).to_numpy()  # the category lists are public
    Xtr, Xte, ytr, yte, atr, _ = train_test_split(X, y, age, test_size=0.3, random_state=0, stratify=y)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-12  # public scaling constants
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    cols = [f"f{i}" for i in range(X.shape[1])]
    banks = [f"bank{i}" for i in range(5)]
    # non-IID: each bank holds one age band (the youngest customers at bank0 ...)
    order = np.arange(len(ytr)) if split == "iid" else np.argsort(atr, kind="stable")
    frames = {b: pd.DataFrame(np.column_stack([Xtr[p], ytr[p]]), columns=[*cols, "y"])
              for b, p in zip(banks, np.array_split(order, 5))}

    def prog(ctx):
        hdf = from_pandas(ctx, frames, vertical=False)
        m = FLLogisticRegression(FederatedDevice(ctx, AGG, banks), rounds=20, learning_rate=0.05, l2=1e-3,
                                 seed=1).fit(hdf, "y")
        return m.predict_proba(Xte)[:, 1]

    auc_fl = roc_auc_score(yte, simulate(prog, [AGG, *banks], mode="thread")[AGG])
    auc_c = roc_auc_score(yte, LogisticRegression(max_iter=5000).fit(Xtr, ytr).predict_proba(Xte)[:, 1])
    assert abs(auc_fl - auc_c) <= 0.01 or auc_fl > auc_c, (auc_fl, auc_c)


def test_sampled_rounds_secure_equal_plain_with_the_same_seed():
    # 6 clients, half sampled per round (the same clients in both runs: the same seed)
    data, d, cap = _data(6, seed=4), 4, 100.0  # no client above the weight cap (up to 55 rows)
    clients = list(data)
    sa = SecAggParams(clip=2.0, quant_bits=24)

    def prog(ctx):
        out = []
        for secure in (True, False):
            client = _full_batch_client(data, ctx.me, d) if ctx.me != AGG else None
            strat = FedAvg(fraction_fit=0.5, seed=b"sample-seed-0001")
            tr = FederatedTrainer(ctx, AGG, clients, LogisticModel(d), strat, rounds=3, secure=secure, secagg=sa,
                                  weight_cap=cap)
            out.append((tr.run(client), [h["sampled"] for h in tr.history_]))
        return out

    (sec, n_sec), (plain, n_plain) = simulate(prog, [AGG, *clients], mode="thread")[AGG]
    assert n_sec == n_plain == [3, 3, 3]
    for a, b in zip(sec, plain):
        # 3 rounds, 3 clients' rounding per round, total weight >= 3 x 30 rows / cap
        assert np.max(np.abs(a - b)) <= 3 * 3 * sa.quant_step / (3 * 30 / cap) * 3
