"""`split_nn.train` / `split_nn.predict` and `mpc_mlp.train` as pipeline steps on the credit demo data."""

import numpy as np
import pytest

from jointml.demo.credit_demo import make_demo_files
from jointml.jobs import COMPONENTS, MODELS, PipelineSpec, predict_job, simulate_pipeline
from jointml.runtime import simulate

PARTIES = ["bank", "partner", "dealer"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("nnjobs") / "data")


def _spec(files, steps, out):
    return PipelineSpec.from_dict({
        "parties": PARTIES, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])}, "steps": steps, "output": str(out)})


def _steps(model, **hyper):
    return [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}},
            {"split": {"test_fraction": 0.3, "seed": 1}}, {"scale": {}},
            {f"{model}.train": {"pos_label": "bad", **hyper}}, {f"{model}.predict": {}}, {"evaluate": {}}]


def test_registered():
    assert {"split_nn", "mpc_mlp"} <= set(MODELS)
    assert COMPONENTS["split_nn.predict"].alias_of == "predict"


@pytest.mark.parametrize("model, hyper", [
    ("split_nn", {"epochs": 3, "batch_size": 32, "bottom_hidden": [8], "cut_dim": 4, "top_hidden": [8]}),
    ("mpc_mlp", {"epochs": 3, "batch_size": 32, "hidden": [8]}),
])
def test_train_predict_evaluate_and_predict_from_folder(files, tmp_path, model, hyper):
    res = simulate_pipeline(_spec(files, _steps(model, **hyper), tmp_path), mode="thread", verbose=False)
    assert res["bank"]["auc"] > 0.6                   # the credit data is learnable
    assert "test_scores" not in res["partner"]        # scores at the label holder only
    inputs = {"bank": str(files["bank"]), "partner": str(files["partner"])}
    got = simulate(predict_job, PARTIES, mode="thread", args=(str(tmp_path / "model"), inputs, "bank"))
    assert got["bank"]["model"] == model and "scores" not in got["partner"]
    assert np.all((np.asarray(got["bank"]["scores"]) >= 0) & (np.asarray(got["bank"]["scores"]) <= 1))
