"""`fl.train` from a pipeline: three banks' CSV files, an aggregator without input, SecAgg+."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jointml.core.errors import ConfigError
from jointml.jobs.runner import simulate_pipeline
from jointml.jobs.spec import PipelineSpec
from jointml.ml.fl import FederatedDevice, FLLogisticRegression
from jointml.runtime import simulate

BANKS = ["bank-a", "bank-b", "bank-c"]


def _spec(tmp_path, **params):
    rng = np.random.default_rng(0)
    inputs = {}
    for b in BANKS:
        X = rng.normal(size=(60, 3))
        pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2], "y": (X[:, 0] - X[:, 2] > 0).astype(int)}).to_csv(
            tmp_path / f"{b}.csv", index=False)
        inputs[b] = str(tmp_path / f"{b}.csv")
    step = {"aggregator": "agg", "label": "y", "rounds": 4, "learning_rate": 0.5, "threshold": 2, **params}
    return PipelineSpec.from_dict({"parties": ["agg", *BANKS], "inputs": inputs, "output": str(tmp_path / "out"),
                                   "steps": [{"fl.train": step}]})


def test_fl_train_step_trains_saves_and_loads(tmp_path):
    out = simulate_pipeline(_spec(tmp_path), mode="thread", verbose=False)
    assert out["agg"]["fl_clients"] == 3 and out["agg"]["fl_secure"] is True
    assert out["agg"]["fl_last_round"]["clients"] == 3
    d = tmp_path / "out" / "model"

    def prog(ctx):
        m = FLLogisticRegression.load(FederatedDevice(ctx, "agg", BANKS), d)
        return m.coef_.tolist()

    coefs = simulate(prog, ["agg", *BANKS], mode="thread")
    assert len({tuple(c) for c in coefs.values()}) == 1  # one model at every party
    c = coefs["agg"]
    assert c[0] > 0.3 and c[2] < -0.3  # y = [x0 - x2 > 0]


def test_fl_train_refuses_an_aggregator_with_input(tmp_path):
    with pytest.raises(Exception) as e:
        simulate_pipeline(_spec(tmp_path, aggregator="bank-a"), mode="thread", verbose=False)
    assert "aggregator" in str(e.value)
    with pytest.raises(ConfigError, match="unknown parameters"):
        _spec(tmp_path, epochs=3)


def test_fl_train_gbdt_step(tmp_path):
    spec = _spec(tmp_path, model="gbdt", n_estimators=3, max_depth=2, learning_rate=0.5)
    out = simulate_pipeline(spec, mode="thread", verbose=False)
    assert out["agg"]["fl_clients"] == 3 and "model_dir" in out["agg"]
