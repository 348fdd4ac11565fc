"""Jobs seams: the component and model registries, wiring checked before anything runs,
artifacts stored per party, and prediction from a run's saved parts for every model type."""

import json

import numpy as np
import pytest

from jointml.core.errors import ConfigError
from jointml.data.split import public_split
from jointml.demo.credit_demo import make_demo_files
from jointml.jobs import (
    COMPONENTS,
    MODELS,
    PipelineSpec,
    check_wiring,
    predict_job,
    simulate_pipeline,
)
from jointml.runtime import PartyFailed, simulate

PARTIES = ["bank", "partner", "dealer"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("jobs") / "data")


def _spec(files, steps, **kw):
    raw = {"parties": PARTIES, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
           "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])}, "steps": steps}
    raw.update(kw)
    return PipelineSpec.from_dict(raw)


LR = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3, "seed": 1}},
      {"woe_binning": {"label": "creditability", "pos_label": "bad", "key_bits": 512}},
      {"ss_lr.train": {"epochs": 2, "batch_size": 128, "learning_rate": 1.0, "sigmoid": "poly"}}, {"predict": {}}, {"evaluate": {}}]
SB = [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}}, {"split": {"test_fraction": 0.3, "seed": 1}},
      {"secureboost.train": {"pos_label": "bad", "features": "raw", "n_estimators": 2, "max_depth": 2, "key_bits": 512}},
      {"secureboost.predict": {}}, {"evaluate": {}}]
XGB = [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}}, {"split": {"test_fraction": 0.3, "seed": 1}},
       {"train": {"model": "ss_xgb", "pos_label": "bad", "n_estimators": 1, "max_depth": 2, "max_bin": 8}}, {"predict": {}},
       {"evaluate": {}}]


# -- registries and spec checks ------------------------------------------------------------
def test_registries_list_models_and_aliases():
    assert set(MODELS) == {"ss_lr", "ss_glm", "secureboost", "ss_xgb", "split_nn", "mpc_mlp", "ppdt"}
    for m in ("ss_lr", "secureboost", "ss_xgb"):
        c = COMPONENTS[f"{m}.train"]
        assert c.alias_of == "train" and c.fixed == {"model": m}
        assert set(MODELS[m].params()) <= set(c.params()) and "model" not in c.params()
    assert COMPONENTS["secureboost.predict"].alias_of == COMPONENTS["ss_xgb.predict"].alias_of == "predict"


@pytest.mark.parametrize(
    "steps,msg",
    [
        ([{"train": {"model": "nosuch"}}], "unknown model 'nosuch'"),
        ([{"train": {"epochs": 3}}], "missing parameters \\['model'\\]"),
        ([{"train": {"model": "ss_xgb", "epochs": 3}}], "unknown parameters \\['epochs'\\]"),
        ([{"ss_lr.train": {"model": "ss_xgb"}}], "fixed by 'ss_lr.train'"),
        ([{"ss_lr.train": {"epochs": "many"}}], "field 'epochs'.*must be int"),
        ([{"secureboost.train": {"objective": "multiclass"}}], "field 'objective'.*one of 'binary', 'regression'"),
        ([{"evaluate": {"metrics": ["auc", "gini"]}}], "field 'metrics'"),
        ([{"split": {"test_fraction": True}}], "field 'test_fraction'"),
    ],
)
def test_bad_parameters_rejected_when_parsed(files, steps, msg):
    with pytest.raises(ConfigError, match=msg):
        _spec(files, steps)


@pytest.mark.parametrize(
    "steps,msg",
    [
        ([{"psi": {}}, {"ss_lr.train": {"label": "creditability"}}], "step 'ss_lr.train' needs split before it"),
        ([{"psi": {}}, {"split": {}}, {"train": {"model": "ss_lr"}}], "train: name the label column"),
        ([{"psi": {}}, {"split": {}}, {"predict": {}}], "step 'predict' needs a training step before it"),
        ([{"psi": {}}, {"split": {}}, {"woe_binning": {}}, {"ss_lr.train": {}}, {"evaluate": {}}], "step 'evaluate' needs predict"),
        ([{"psi": {}}, {"encode": {}}, {"split": {}}, {"ss_xgb.train": {}}], "name the label column"),
    ],
)
def test_wiring_errors(files, steps, msg):
    spec = _spec(files, steps)
    with pytest.raises(ConfigError, match=msg):
        check_wiring(spec)


def test_wiring_checked_before_anything_runs(files, tmp_path):
    """The inputs do not exist and the output folder is not made: the wiring error comes first."""
    spec = _spec(files, [{"psi": {}}, {"ss_xgb.train": {"label": "creditability"}}], output=str(tmp_path / "out"),
                 inputs={"bank": str(tmp_path / "none.csv"), "partner": str(tmp_path / "none.csv")})
    with pytest.raises(PartyFailed, match="needs split before it"):
        simulate_pipeline(spec, mode="thread", verbose=False)
    assert not (tmp_path / "out").exists()


def test_encode_with_label_feeds_training(files):
    check_wiring(_spec(files, [{"psi": {}}, {"encode": {"label": "creditability"}}, {"split": {}}, {"ss_xgb.train": {}}]))


# -- runs, stored artifacts, prediction from the output folder --------------------------------
def _run(files, steps, out):
    return simulate_pipeline(_spec(files, steps, output=str(out)), mode="thread", verbose=False)


def _predict(files, out):
    inputs = {"bank": str(files["bank"]), "partner": str(files["partner"])}
    return simulate(predict_job, PARTIES, mode="thread", args=(str(out / "model"), inputs, "bank"))


def _test_scores(res, got):
    n = res["bank"]["rows_aligned"]
    _, te = public_split(n, 0.3, 1)
    scores = np.asarray(got["bank"]["scores"])
    assert len(scores) == n and "scores" not in got["partner"] and "scores" not in got["dealer"]
    return scores[te], np.asarray(res["bank"]["test_scores"])


@pytest.fixture(scope="module")
def lr_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("lr")
    return _run(files, LR, out), out


def test_artifacts_stored_per_party(lr_run):
    res, out = lr_run
    for p in PARTIES:
        index = json.loads((out / "artifacts" / p / "index.json").read_text())
        assert [k.split("-", 2)[2] for k in index] == ["Inputs", "AlignedFrame", "Split", "WoeModel", "Label", "ModelParts",
                                                       "Label", "Scores"]
    rec = json.loads((out / "artifacts" / "partner" / "6-ss_lr.train-ModelParts.json").read_text())["describe"]
    assert rec["model"] == "ss_lr" and rec["kind"] == "SSLogisticRegression" and rec["features"] == "woe"
    scores = json.loads((out / "artifacts" / "bank" / "8-predict-Scores.json").read_text())["describe"]
    assert scores == {"to": "bank", "rows": res["bank"]["test_rows"]}


def test_predict_ss_lr_from_output_folder(files, lr_run):
    res, out = lr_run
    got = _predict(files, out)
    assert got["bank"]["model"] == "ss_lr"
    mine, job = _test_scores(res, got)
    np.testing.assert_allclose(mine, job, atol=2e-3)


def test_predict_ss_xgb_from_output_folder(files, tmp_path):
    res = _run(files, XGB, tmp_path)
    got = _predict(files, tmp_path)
    assert got["bank"]["model"] == "ss_xgb"
    mine, job = _test_scores(res, got)
    np.testing.assert_allclose(mine, job, atol=2e-3)


def test_predict_secureboost_ignores_stale_model(files, tmp_path):
    """An SS-LR run, then a SecureBoost run into the same folder: the SS-LR and WOE parts are
    moved to model.previous/, and prediction uses the current model (SecureBoost, raw encoded columns)."""
    _run(files, LR, tmp_path)
    res = _run(files, SB, tmp_path)
    d = tmp_path / "model"
    assert not (d / "SSLogisticRegression.bank.json").exists() and not (d / "woe.bank.json").exists()
    assert (tmp_path / "model.previous" / "SSLogisticRegression.bank.json").exists()
    got = _predict(files, tmp_path)
    assert got["bank"]["model"] == "secureboost"
    mine, job = _test_scores(res, got)
    np.testing.assert_allclose(mine, job, atol=1e-9)


def test_record_that_does_not_match_the_manifest_is_refused(files, tmp_path):
    _run(files, XGB, tmp_path)
    d = tmp_path / "model"
    rec = json.loads((d / "pipeline.partner.json").read_text())
    rec["kind"] = "SecureBoostClassifier"
    rec["model"] = "secureboost"
    (d / "pipeline.partner.json").write_text(json.dumps(rec))
    with pytest.raises(PartyFailed, match="partner.*current model part.*SSXGBClassifier"):
        _predict(files, tmp_path)


def test_docs_reference_is_generated_from_the_registry():
    from pathlib import Path

    from jointml.jobs.registry import reference_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "pipelines.md"
    assert doc.read_text() == reference_markdown(), "regenerate docs/pipelines.md from jointml.jobs.registry.reference_markdown()"
