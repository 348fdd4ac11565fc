"""DP-SGD for SS-LR: noise added inside MPC, epsilon per epoch from the accountant, utility close
to the non-private model at epsilon 8, refused where labels would leave the DP mechanism."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.prg import public_rng
from jointml.data.metrics import roc_auc
from jointml.ml.linear import DPSSLogisticRegression, SSLogisticRegression
from jointml.mpc import MpcDevice
from jointml.runtime import simulate
from jointml.runtime.launcher import PartyFailed

pytest.importorskip("dp_accounting")


def _data(n=4000, d=6, seed=0):
    g = public_rng(seed)
    X = g.normal(size=(n + 2000, d))
    w = g.normal(size=d)
    y = (g.random(n + 2000) < 1 / (1 + np.exp(-(X @ w - 0.5)))).astype(float)
    return X[:n], y[:n], X[n:], y[n:]


def _fit(model_fn, X, y, Xte, protocol="semi2k"):
    h = X.shape[1] // 2

    def prog(ctx):
        mpc = (MpcDevice(ctx, ["bank", "partner"], dealer="dealer") if protocol == "semi2k"
               else MpcDevice(ctx, ["bank", "partner", "dealer"], protocol="aby3"))
        m = model_fn(mpc)
        m.fit({"bank": ctx.party("bank").run(lambda: X[:, :h]), "partner": ctx.party("partner").run(lambda: X[:, h:])},
              ctx.party("bank").run(lambda: y))
        p = m.predict_proba({"bank": ctx.party("bank").run(lambda: Xte[:, :h]),
                             "partner": ctx.party("partner").run(lambda: Xte[:, h:])})
        return (p.value if ctx.me == "bank" else None), m

    return simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"]


HYPER = dict(epochs=3, batch_size=500, learning_rate=1.0)


def test_dp_sgd_at_epsilon_8_is_close_to_the_non_private_model():
    X, y, Xte, yte = _data()
    p0, _ = _fit(lambda mpc: SSLogisticRegression(mpc, **HYPER), X, y, Xte)
    p1, m = _fit(lambda mpc: DPSSLogisticRegression(mpc, epsilon=8.0, delta=1e-5, clip=3.0, **HYPER), X, y, Xte)
    assert roc_auc(yte, p1) > roc_auc(yte, p0) - 0.02
    eps = [r["epsilon"] for r in m.history_]
    assert len(eps) == 3 and eps == sorted(eps) and eps[-1] == m.epsilon_ <= 8.0 + 1e-9


def test_epsilon_per_epoch_equals_the_dp_accounting_reference():
    from dp_accounting import dp_event, rdp

    X, y, Xte, _ = _data(n=1000)
    _, m = _fit(lambda mpc: DPSSLogisticRegression(mpc, epsilon=2.0, delta=1e-6, clip=2.0, **HYPER), X, y, Xte)
    rho = m.events_[0].params["rho"]
    for e, rec in enumerate(m.history_, start=1):
        ref = rdp.RdpAccountant()
        ref.compose(dp_event.ZCDpEvent(rho), e)
        assert rec["epsilon"] == pytest.approx(ref.get_epsilon(1e-6), rel=1e-12)
    # the per-epoch noise meets the replace-one sensitivity 2 * sqrt(clip^2 + 1) of one record
    assert rho <= (1 / (2 * m.noise_multiplier_**2)) * (1 + 1e-3)


def test_the_noise_is_real_and_grows_as_epsilon_shrinks():
    X, y, Xte, yte = _data(n=2000)
    runs = [_fit(lambda mpc, eps=eps: DPSSLogisticRegression(mpc, epsilon=eps, delta=1e-5, clip=3.0, **HYPER), X, y, Xte)[0]
            for eps in (8.0, 8.0, 0.05)]
    # two runs on the same data and batches differ by the DP noise (fixed-point jitter is ~1e-5)
    assert np.abs(runs[0] - runs[1]).max() > 1e-3
    assert roc_auc(yte, runs[2]) < roc_auc(yte, runs[0]) - 0.02


def test_aby3_adds_noise_from_every_compute_party():
    X, y, Xte, yte = _data(n=1500)
    p, m = _fit(lambda mpc: DPSSLogisticRegression(mpc, epsilon=8.0, delta=1e-5, clip=3.0, **HYPER), X, y, Xte,
                protocol="aby3")
    assert roc_auc(yte, p) > 0.7 and m.epsilon_ <= 8.0 + 1e-9


@pytest.mark.parametrize("extra", [dict(early_stopping=True), dict(class_weight="balanced")])
def test_label_uses_outside_the_mechanism_are_refused(extra):
    X, y, Xte, _ = _data(n=200)
    with pytest.raises(PartyFailed, match="ModelError.*not with DP-SGD"):
        _fit(lambda mpc: DPSSLogisticRegression(mpc, epsilon=1.0, **HYPER, **extra), X, y, Xte)


def test_training_is_charged_to_every_data_owner_before_it_runs(tmp_path):
    from jointml.dp.budget import BudgetExceeded, BudgetLedger

    X, y, Xte, _ = _data(n=600)

    def prog(ctx):
        path = str(tmp_path / f"{ctx.me}.sqlite")
        led = BudgetLedger(path, party=ctx.me)
        led.declare("crm", 10.0, 1e-4)
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :3]), "partner": ctx.party("partner").run(lambda: X[:, 3:])}
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        out = []
        for rel, eps in (("fit-1", 8.0), ("fit-2", 8.0)):
            m = DPSSLogisticRegression(mpc, epsilon=eps, delta=1e-5, **HYPER)
            try:
                m.fit(xs, ctx.party("bank").run(lambda: y), ledger=led if ctx.me != "dealer" else None, sources="crm",
                      release=rel)
                out.append(m.epsilon_)
            except BudgetExceeded as e:
                out.append((e.party, e.source, hasattr(m, "w_shared_")))
        return out, led.spent("crm")

    res = simulate(prog, ["bank", "partner", "dealer"], mode="thread")
    for p in ("bank", "partner", "dealer"):
        assert res[p][0][1] == ("bank", "crm", False)  # refused everywhere, before training
    assert res["bank"][1] == (8.0, 1e-5) and res["partner"][1] == (8.0, 1e-5) and res["dealer"][1] == (0.0, 0.0)


def test_scikit_learn_contract():
    def prog(ctx):
        m = DPSSLogisticRegression(MpcDevice(ctx, ["bank", "partner"], dealer="dealer"), epsilon=2.0, epochs=2)
        p = m.get_params()
        m.set_params(epsilon=3.0, clip=2.0)
        return p["epsilon"], p["epochs"], m.epsilon, m.clip

    assert simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"] == (2.0, 2, 3.0, 2.0)


def test_a_dp_model_saves_and_loads(tmp_path):
    X, y, Xte, _ = _data(n=600)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :3]), "partner": ctx.party("partner").run(lambda: X[:, 3:])}
        from jointml.dp.budget import BudgetLedger

        path = str(tmp_path / f"{ctx.me}.sqlite")
        BudgetLedger(path, party=ctx.me).declare("default", 10.0, 1e-4)
        led = BudgetLedger(path, party=ctx.me)
        m = DPSSLogisticRegression(mpc, epsilon=4.0, **HYPER)
        m.fit(xs, ctx.party("bank").run(lambda: y), ledger=led, release="fit-1")
        m.save(tmp_path / "model")
        back = DPSSLogisticRegression.load(mpc, tmp_path / "model")
        p0, p1 = m.predict_proba(xs), back.predict_proba(xs)
        return None if ctx.me != "bank" else float(np.abs(p0.value - p1.value).max()), back.epsilon, led.spent("default")

    diff, eps, spent = simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"]
    assert diff < 1e-4 and eps == 4.0 and spent == (4.0, 1e-5)  # (predictions differ by fixed-point jitter only)
