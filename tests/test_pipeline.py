"""The credit job as a pipeline: end to end on the shipped German credit data, and bad specs."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from jointml.core.errors import ConfigError
from jointml.demo.credit_demo import make_demo_files, plaintext_baseline
from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
from jointml.jobs.credit import CreditJobConfig, credit_pipeline
from jointml.runtime import PartyFailed, simulate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("credit") / "data")


@pytest.fixture(scope="module")
def credit_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("credit-out")
    cfg = CreditJobConfig(inputs={"bank": str(files["bank"]), "partner": str(files["partner"])}, key_bits=512, output_dir=str(out), verbose=False)
    spec = credit_pipeline(cfg, ["bank", "partner", "dealer"])
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    return cfg, res, out


def test_credit_job_matches_plaintext_twin(credit_run, files):
    cfg, res, out = credit_run
    bank, partner = res["bank"], res["partner"]
    assert bank["rows_aligned"] == partner["rows_aligned"] == len(set(pd.read_csv(files["bank"]).id) & set(pd.read_csv(files["partner"]).id))
    base = plaintext_baseline(files, cfg, bank)
    assert abs(bank["auc"] - base["auc"]) < 0.01  # label-only PSI (default): SS-LR (SGD) vs the twin's Newton fit on the same WOE features
    assert 0.7 < bank["auc"] < 0.9 and bank["ks"] > 0.3
    # only the bank gets scores, metrics and its own weights; the partner only its own weights
    assert "auc" not in partner and "test_scores" not in partner
    assert set(bank["weights"]) == {"bank"} and set(partner["weights"]) == {"partner"}
    assert (out / "model" / "SSLogisticRegression.partner.json").exists() and (out / "summary.bank.json").exists()


def test_model_parts_keep_their_secrets(credit_run):
    _, _, out = credit_run
    part = json.loads((out / "model" / "woe.partner.json").read_text())
    assert part["woe"] == {}  # the partner never learns the WOE values of its bins
    bank_part = json.loads((out / "model" / "woe.bank.json").read_text())
    partner_cols = part["columns"]["partner"]
    assert all(c not in bank_part["bins"] for c in partner_cols)  # the bank never learns partner bin edges


def test_predict_from_saved_parts(credit_run, files):
    cfg, res, out = credit_run
    got = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread", args=(str(out / "model"), {"bank": str(files["bank"]), "partner": str(files["partner"])}, "bank"))
    scores = np.asarray(got["bank"]["scores"])
    assert got["bank"]["rows"] == res["bank"]["rows_aligned"] and "scores" not in got["partner"]
    assert np.all((scores >= 0) & (scores <= 1))
    # the saved model scores the test rows exactly as the job did
    ids = pd.read_csv(files["bank"]).id
    assert len(got["bank"]["ids"]) == len(scores) and set(got["bank"]["ids"]) <= set(ids)


def _spec(files, steps, **kw):
    raw = {"parties": ["bank", "partner", "dealer"], "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
           "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])}, "steps": steps}
    raw.update(kw)
    return raw


@pytest.mark.parametrize(
    "steps,msg",
    [
        ([{"nosuch": {}}], "unknown component"),
        ([{"psi": {"kee": "id"}}], "unknown parameters"),
        ([{"psi": {}, "split": {}}], "each step"),
    ],
)
def test_bad_pipeline_specs(files, steps, msg):
    with pytest.raises(ConfigError, match=msg):
        PipelineSpec.from_dict(_spec(files, steps))


def test_bad_spec_parties(files):
    with pytest.raises(ConfigError, match="unknown party"):
        PipelineSpec.from_dict(_spec(files, [{"psi": {}}], inputs={"bnak": "x.csv"}))
    with pytest.raises(ConfigError, match="needs 'steps'"):
        PipelineSpec.from_dict({"parties": ["a"], "inputs": {}})


def test_missing_input_file_names_party(files, tmp_path):
    spec = PipelineSpec.from_dict(_spec(files, [{"psi": {"key": "id"}}], inputs={"bank": str(files["bank"]), "partner": str(tmp_path / "nope.csv")}))
    with pytest.raises(PartyFailed, match="partner.*not found"):
        simulate_pipeline(spec, mode="thread", verbose=False)


def test_step_order_is_checked(files):
    spec = PipelineSpec.from_dict(_spec(files, [{"split": {}}]))
    with pytest.raises(PartyFailed, match="needs psi"):
        simulate_pipeline(spec, mode="thread", verbose=False)


def test_yaml_round_trip(files, tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(_spec(files, [{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5}}], output="out")))
    spec = PipelineSpec.load(p)
    assert [n for n, _ in spec.steps] == ["psi", "split"] and spec.output == str(tmp_path / "out")
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    assert res["bank"]["train_rows"] + res["bank"]["test_rows"] == res["bank"]["rows_aligned"]


def test_real_deployment_one_party_per_node(files, tmp_path):
    """Each organisation runs its own party from a cluster file over mutual TLS."""
    import socket
    import threading

    from jointml.jobs.runner import run_pipeline
    from jointml.net.certs import create_dev_pki
    from jointml.runtime import ClusterConfig, run_party

    names = ["bank", "partner", "dealer"]
    create_dev_pki(tmp_path / "certs", names)
    ports = []
    for _ in names:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    cluster = ClusterConfig.from_dict(
        {"parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"certs/{n}.crt", "key": f"certs/{n}.key"} for n, p in zip(names, ports)},
         "ca": "certs/ca.crt", "connect_timeout": 30},
        base=tmp_path,
    )
    spec = PipelineSpec.from_dict(_spec(files, [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
                                                {"woe_binning": {"label": "creditability", "pos_label": "bad", "key_bits": 512}},
                                                {"ss_lr.train": {"epochs": 3}}, {"predict": {}}, {"evaluate": {}}]))
    out, errs = {}, {}

    def node(n):
        try:
            out[n] = run_party(run_pipeline, n, cluster, spec)
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=node, args=(n,)) for n in names]
    [t.start() for t in ts]
    [t.join(120) for t in ts]
    assert not errs, errs
    assert out["bank"]["auc"] > 0.7 and "auc" not in out["partner"]


def test_secureboost_pipeline(files, tmp_path):
    from jointml.demo.credit_demo import plaintext_trees_baseline

    cfg = CreditJobConfig(inputs={"bank": str(files["bank"]), "partner": str(files["partner"])}, key_bits=512, output_dir=str(tmp_path),
                          verbose=False, model_type="secureboost", trees={"n_estimators": 5, "learning_rate": 0.3, "max_depth": 3, "max_bin": 32})
    res = simulate_pipeline(credit_pipeline(cfg, ["bank", "partner", "dealer"]), mode="thread", verbose=False)
    bank = res["bank"]
    base = plaintext_trees_baseline(files, cfg)
    assert abs(bank["auc"] - base["auc"]) < 0.02 and bank["auc"] > 0.7
    assert "auc" not in res["partner"] and "importance_gain" in bank and "importance_gain" not in res["partner"]


def test_ss_xgb_pipeline(files):
    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}}, {"split": {"test_fraction": 0.3, "seed": 1}},
             {"ss_xgb.train": {"pos_label": "bad", "n_estimators": 2, "max_depth": 2, "max_bin": 8}}, {"ss_xgb.predict": {}}, {"evaluate": {}}]
    res = simulate_pipeline(PipelineSpec.from_dict(_spec(files, steps)), mode="thread", verbose=False)
    assert 0.65 < res["bank"]["auc"] <= 1 and "auc" not in res["partner"]
