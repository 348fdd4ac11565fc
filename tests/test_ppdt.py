"""PPDT: the stated epsilon holds (noise of the calibrated scale), utility vs the raw-data model is
measured, and the inversion attacks succeed exactly where no DP noise protects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from jointml.core.errors import DataError, ParameterError
from jointml.data.frames import from_pandas
from jointml.dp import Accountant
from jointml.dp.budget import BudgetExceeded, BudgetLedger
from jointml.ml.ppdt import PPDT, decoder_error, lstsq_error, make_credit, ppdt_share
from jointml.runtime import simulate

pytest.importorskip("dp_accounting")

N = 20_000


@pytest.fixture(scope="module")
def credit():
    X, y = make_credit(N + 5000, 16, seed=0)
    return X[:N], y[:N], X[N:]  # the attacker's auxiliary sample: same distribution, other people


def _auc(Z, y):
    ntr = int(len(y) * 0.8)
    m = LogisticRegression(max_iter=300).fit(Z[:ntr], y[:ntr])
    return roc_auc_score(y[ntr:], m.predict_proba(Z[ntr:])[:, 1])


def test_the_noise_has_the_calibrated_scale_and_the_events_compose_to_epsilon(credit):
    X, _, _ = credit
    t = PPDT(k=4, epsilon=2.0, delta=1e-5, bounds=(-4.0, 4.0))
    Z = t.fit_transform(X)
    resid = Z - t.scale(X) @ t.components_
    assert abs(resid.std() / t.noise_scale_ - 1) < 0.03
    # sigma >= replace-one sensitivity 2C / sqrt(2 rho_data): the Gaussian mechanism's scale
    rho_data = t.events_[-1].params["rho"]
    assert t.noise_scale_ >= 2 * t.clip_norm / math.sqrt(2 * rho_data) * 0.999
    acc = Accountant("rdp")
    for ev in t.events_:
        acc.add(ev)
    assert t.epsilon_ == pytest.approx(acc.epsilon(1e-5)) and t.epsilon_ <= 2.0 + 1e-9
    assert np.allclose(t.components_.T @ t.components_, np.eye(4), atol=1e-9)  # ||Q^T v|| <= ||v||
    assert np.all(np.linalg.norm(t.scale(X), axis=1) <= t.clip_norm + 1e-12)


def test_utility_against_the_raw_data_model(credit):
    X, y, _ = credit
    raw = _auc(X, y)
    exact = _auc(PPDT(4, math.inf, bounds=(-4.0, 4.0)).fit_transform(X), y)
    private = _auc(PPDT(4, 8.0, 1e-5, bounds=(-4.0, 4.0)).fit_transform(X), y)
    tight = _auc(PPDT(4, 0.5, 1e-5, bounds=(-4.0, 4.0)).fit_transform(X), y)
    assert raw > 0.8
    assert abs(exact - raw) < 0.02  # k = 4 keeps the signal (4 latent factors)
    # record-level DP on every released row costs utility; measured, not hidden
    assert 0.53 < private < raw - 0.1
    assert tight < private and tight < 0.56


def test_projection_without_noise_is_inverted(credit):
    X, _, X_aux = credit
    t = PPDT(16, math.inf, bounds=(-4.0, 4.0))
    assert lstsq_error(t, X, t.fit_transform(X)) < 1e-20  # k = d: exact inversion
    t = PPDT(4, math.inf, bounds=(-4.0, 4.0))
    Z = t.fit_transform(X)
    # k < d is no protection either: a decoder trained on similar data recovers most features
    assert decoder_error(t, X, Z, X_aux) < 0.4


def test_dp_noise_defeats_the_inversion_attacks(credit):
    X, _, X_aux = credit
    for eps in (1.0, 8.0):
        t = PPDT(4, eps, 1e-5, bounds=(-4.0, 4.0))
        Z = t.fit_transform(X)
        assert lstsq_error(t, X, Z) > 1.0  # worse than guessing the mean
        assert decoder_error(t, X, Z, X_aux) > 0.85  # measured ~0.94 at epsilon 8, ~1.0 at 1


def test_random_projection_costs_no_budget_for_q():
    X, _ = make_credit(2000, 8, seed=2)
    t = PPDT(3, 1.0, 1e-5, method="random", bounds=(-4.0, 4.0))
    t.fit_transform(X)
    # Q is data-independent; the two releases are the projected moment (k x k) and Z
    assert len(t.events_) == 2 and t.moment_.shape == (3, 3) and t.epsilon_ <= 1.0 + 1e-9


def test_bad_inputs_are_refused():
    with pytest.raises(DataError):
        PPDT(2, 1.0).fit_transform(np.array([[1.0, np.nan]]))
    with pytest.raises(ParameterError):
        PPDT(3, 1.0).fit_transform(np.zeros((4, 2)))
    with pytest.raises(ParameterError):
        PPDT(2, -1.0)


def test_ppdt_share_charges_the_partner_and_trains_at_the_modeller(tmp_path):
    X, y = make_credit(6000, 8, seed=3)
    a, b = pd.DataFrame({"y": y}), pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])

    def prog(ctx):
        led = BudgetLedger(str(tmp_path / f"{ctx.me}.sqlite"), party=ctx.me)
        led.declare("bureau", 10.0, 1e-5)
        vdf = from_pandas(ctx, {"bank": a, "shop": b})
        out = ppdt_share(ctx, vdf, "bank", k=4, epsilon=8.0, delta=1e-5, bounds={"shop": (-4.0, 4.0)},
                         ledger=led, sources="bureau", release="ppdt-1")
        try:
            ppdt_share(ctx, vdf, "bank", k=4, epsilon=8.0, delta=1e-5, ledger=led, sources="bureau", release="ppdt-2")
            refused = None
        except BudgetExceeded as e:
            refused = (e.party, e.source)
        return out, refused, led.spent("bureau")

    res = simulate(prog, ["bank", "shop"], mode="thread")
    out, refused, _ = res["bank"]
    assert res["shop"][0] is None and refused == ("shop", "bureau") and res["shop"][1] == refused
    assert res["shop"][2] == (8.0, 1e-5) and res["bank"][2] == (0.0, 0.0)
    assert out.columns[0] == "y" and out.X.shape == (6000, 5) and out.epsilon["shop"] <= 8.0 + 1e-9
    Z = out.X[:, 1:]
    # what reached the bank is dominated by the noise: no column of Z tracks a raw feature closely
    corr = np.corrcoef(np.hstack([X, Z]).T)[:8, 8:]
    assert np.abs(corr).max() < 0.5


def test_noise_aware_model_keeps_the_partner_signal_at_epsilon_8():
    """Trained on the releases' moments and scored by each owner on its own rows, the joint model
    is within 0.02 AUC of raw-data LR at epsilon 8 (an ordinary LR on Z, scored on Z, adds
    nothing over the bank's own columns); the partner's release itself is unchanged."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from jointml.ml.ppdt import NoiseAwareLinear, Release

    X, y = make_credit(30000, 16, seed=0)
    tr, te, cut = slice(0, 24000), slice(24000, None), 4
    raw = roc_auc_score(y[te], LogisticRegression(max_iter=500).fit(X[tr], y[tr]).decision_function(X[te]))
    own = roc_auc_score(y[te], LogisticRegression(max_iter=500).fit(X[tr, :cut], y[tr]).decision_function(X[te, :cut]))
    t = PPDT(4, 8.0, 1e-5, bounds=(-4.0, 4.0))
    Z = t.fit_transform(X[tr, cut:])
    m = NoiseAwareLinear().fit(X[tr, :cut], y[tr], {"shop": Release(Z, t.moment_, t.moment_noise_, t.noise_scale_)})
    joint = roc_auc_score(y[te], m.decision_function(X[te, :cut], {"shop": t.project(X[te, cut:])}))
    assert joint >= raw - 0.02 and joint > own + 0.01, (raw, own, joint)


def test_ppdt_pipeline_model_trains_scores_and_predicts_from_the_folder(tmp_path):
    """`model: ppdt` in a pipeline: the partner's release is all the bank gets at training; scores
    at the bank only; the saved model scores new rows (`jointml predict`) as in the run."""
    from jointml.demo.credit_demo import make_demo_files
    from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
    from jointml.runtime import simulate

    files = make_demo_files(tmp_path / "data")
    parties = ["bank", "partner", "dealer"]
    spec = PipelineSpec.from_dict({
        "parties": parties, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])}, "output": str(tmp_path / "out"),
        "steps": [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}},
                  {"split": {"test_fraction": 0.3, "seed": 1}}, {"scale": {}},
                  {"ppdt.train": {"pos_label": "bad", "k": 3, "epsilon": 8.0}}, {"ppdt.predict": {}}, {"evaluate": {}}]})
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    assert res["bank"]["auc"] > 0.6 and "test_scores" not in res["partner"]
    inputs = {"bank": str(files["bank"]), "partner": str(files["partner"])}
    got = simulate(predict_job, parties, mode="thread", args=(str(tmp_path / "out" / "model"), inputs, "bank"))
    assert got["bank"]["model"] == "ppdt" and "scores" not in got["partner"]
    assert np.isfinite(np.asarray(got["bank"]["scores"])).all()
