"""`scale`: SS-LR on raw, unscaled amounts works once each party standardises its own columns
(refused without it); the statistics stay with their owner and `jointml predict` applies them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from jointml.data.metrics import roc_auc
from jointml.data.split import public_split
from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
from jointml.runtime import simulate

N = 240
PARTIES = ["bank", "partner", "dealer"]


def _files(tmp):
    i = np.arange(N)
    t = np.sin(i * 0.37) + np.cos(i * 1.31)
    pd.DataFrame({"id": i, "y": (t > 0.2).astype(int), "amount": 5000 + 3000 * np.sin(i * 0.37)}).to_csv(
        tmp / "bank.csv", index=False)
    pd.DataFrame({"id": i, "age": 40 + 15 * np.cos(i * 1.31)}).to_csv(tmp / "partner.csv", index=False)


def _spec(tmp, scale=True):
    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}}]
    steps += [{"scale": {}}] if scale else []
    steps += [{"train": {"model": "ss_lr", "label": "y", "pos_label": 1, "epochs": 10, "batch_size": 32,
                         "learning_rate": 1.0}}, {"predict": {"score_stability": True}}, {"evaluate": {}}]
    doc = {"name": "scale", "parties": PARTIES, "mpc": {"protocol": "semi2k", "dealer": "dealer"},
           "inputs": {"bank": "bank.csv", "partner": "partner.csv"}, "steps": steps, "output": "out"}
    (tmp / "p.yaml").write_text(yaml.safe_dump(doc))
    return PipelineSpec.load(tmp / "p.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    _files(tmp)
    return tmp, simulate_pipeline(_spec(tmp), mode="thread", verbose=False)


def test_scaled_raw_features_train_a_good_model(run):
    tmp, res = run
    assert res["bank"]["auc"] > 0.85  # the label is a function of the two amounts
    stats = json.loads((tmp / "out" / "model" / "scale.bank.json").read_text())["columns"]
    assert set(stats) == {"amount"}  # the label (0/1 numbers) is left as it is
    assert not (tmp / "out" / "model" / "scale.dealer.json").exists()
    assert "amount" not in (tmp / "out" / "model" / "scale.partner.json").read_text()  # each party its own


def test_predict_applies_the_saved_statistics(run):
    tmp, res = run
    got = simulate(predict_job, PARTIES, mode="thread",
                   args=(str(tmp / "out" / "model"), {"bank": str(tmp / "bank.csv"), "partner": str(tmp / "partner.csv")},
                         "bank"))["bank"]
    by_id = dict(zip(got["ids"], got["scores"]))
    _, te = public_split(N, 0.3, 1)
    mine = np.array([by_id[i] for i in te])  # ids are the row numbers here
    np.testing.assert_allclose(mine, res["bank"]["test_scores"], atol=1e-3)
    y = (np.sin(te * 0.37) + np.cos(te * 1.31) > 0.2).astype(int)
    assert roc_auc(y, mine) == pytest.approx(res["bank"]["auc"], abs=1e-3)


def test_score_stability_at_the_receiver_only(run):
    """`predict: {score_stability: true}`: the bank reports the PSI of its scores, train vs test."""
    from jointml.data.metrics import psi

    tmp, res = run
    assert "score_psi" in res["bank"] and "score_psi" not in res["partner"]
    got = simulate(predict_job, PARTIES, mode="thread",
                   args=(str(tmp / "out" / "model"), {"bank": str(tmp / "bank.csv"), "partner": str(tmp / "partner.csv")},
                         "bank"))["bank"]
    by_id = dict(zip(got["ids"], got["scores"]))
    tr, te = public_split(N, 0.3, 1)
    want = psi(np.array([by_id[i] for i in tr]), np.array([by_id[i] for i in te]))
    assert res["bank"]["score_psi"] == pytest.approx(want, abs=0.02)
