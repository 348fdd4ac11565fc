"""SecureBoost on the SecureEstimator base: every hyperparameter survives save/load, the
device may be an HeDevice, and parameters are validated with their field named."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.errors import ParameterError
from jointml.he import HeDevice
from jointml.ml.base import clone
from jointml.ml.tree import SecureBoostClassifier, SecureBoostError, SecureBoostRegressor
from jointml.runtime import PartyFailed, simulate

PARTIES = ["bank", "partner"]


def _data(n=200, seed=0):
    g = np.random.default_rng(seed)  # public test data
    X = g.normal(size=(n, 4))
    y = (X[:, 0] + X[:, 3] > 0).astype(float)
    return X, y


def _parts(ctx, X):
    return {"bank": ctx.party("bank").run(lambda: X[:, :2]), "partner": ctx.party("partner").run(lambda: X[:, 2:])}


# every hyperparameter away from its default (n_jobs=1 and a small key for speed)
PARAMS = dict(n_estimators=2, learning_rate=0.2, max_depth=3, min_child_weight=0.5, reg_lambda=2.0, gamma=0.01,
              subsample=0.9, colsample_bytree=0.75, max_bin=16, early_stopping_rounds=3, key_bits=512,
              hist_frac_bits=20, base_score=0.1, encrypt_window=6, n_jobs=1, protection="none", dealer="dealer",
              verbose=False, he_scheme="paillier",  # (the dealer takes part with protection="mpc" only: tests/test_secureboost_protected.py)
              label_dp=None)  # at its default: label DP is the classifier's (tests/test_secureboost.py)


def test_every_hyperparameter_survives_save_and_load(tmp_path):
    X, y = _data()
    assert set(PARAMS) == set(SecureBoostRegressor(None).get_params())

    def train(ctx):
        m = SecureBoostRegressor(ctx, **PARAMS)
        m.fit(_parts(ctx, X), ctx.party("bank").run(lambda: y))
        m.save(tmp_path)
        return m.get_params()

    def reload(ctx):
        m = SecureBoostRegressor.load(ctx, tmp_path)
        p = m.predict(_parts(ctx, X))
        return m.get_params(), (p.value if ctx.me == "bank" else None)

    before = simulate(train, PARTIES, mode="thread")
    after = simulate(reload, PARTIES, mode="thread")
    for p in PARTIES:
        assert before[p] == PARAMS and after[p][0] == PARAMS
    assert after["bank"][1].shape == (len(y),)


def test_fit_with_an_he_device_and_clone():
    X, y = _data(seed=1)

    def prog(ctx):
        he = HeDevice(ctx, "bank", key_bits=512, n_jobs=1)  # 512 bits: tests only
        m = SecureBoostClassifier(he, n_estimators=2, max_depth=2, n_jobs=1)
        assert clone(m).device is he and clone(m).get_params() == m.get_params()
        m.fit(_parts(ctx, X), ctx.party("bank").run(lambda: y))
        p = m.predict_proba(_parts(ctx, X))
        return float(np.mean((p.value[:, 1] > 0.5) == y)) if ctx.me == "bank" else len(m.trees_)

    res = simulate(prog, PARTIES, mode="thread")
    assert res["bank"] > 0.8 and res["partner"] == 2


def test_he_device_must_be_held_by_the_label_holder():
    X, y = _data(seed=2)

    def prog(ctx):
        he = HeDevice(ctx, "partner", key_bits=512, n_jobs=1)
        SecureBoostClassifier(he, n_estimators=1, n_jobs=1).fit(_parts(ctx, X), ctx.party("bank").run(lambda: y))

    with pytest.raises(PartyFailed, match="key holder must be the label holder 'bank'"):
        simulate(prog, PARTIES, mode="thread")


def test_parameters_stored_unchanged_and_checked_with_field():
    m = SecureBoostClassifier(None, max_depth=3, learning_rate=1)
    assert m.learning_rate == 1 and type(m.learning_rate) is int  # no coercion
    with pytest.raises(ParameterError, match="field 'max_bin'"):
        SecureBoostClassifier(None, max_bin=1)
    with pytest.raises(SecureBoostError, match="field 'subsample'"):
        m.set_params(subsample=2.0).fit({}, None)
