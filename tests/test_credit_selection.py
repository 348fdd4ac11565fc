"""`select_features`: the label holder keeps the WOE features with IV >= iv_min (and the
include/exclude lists); every party trains and predicts on the kept columns only; a feature
holder learns the kept names, never an IV value."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
from jointml.runtime import simulate

N = 300
PARTIES = ["bank", "partner", "dealer"]


def _files(tmp):
    i = np.arange(N)
    y = np.where(np.sin(i * 0.37) + np.cos(i * 1.31) > 0.2, "bad", "good")
    # p2 is noise for the label (IV near 0); b1 and p1 carry it
    pd.DataFrame({"id": i, "y": y, "b1": np.sin(i * 0.37), "b2": np.sin(i * 3.7)}).to_csv(tmp / "bank.csv", index=False)
    pd.DataFrame({"id": i[::-1], "p1": np.cos(i * 1.31)[::-1], "p2": ((i * 7919) % 13)[::-1] * 1.0}).to_csv(
        tmp / "partner.csv", index=False)


def _spec(tmp, select):
    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
             {"woe_binning": {"label": "y", "pos_label": "bad", "key_bits": 512, "method": "quantile", "max_bins": 4,
                              "label_proofs": False}},
             {"select_features": select},
             {"ss_lr.train": {"epochs": 3, "batch_size": 64}}, {"predict": {}}, {"evaluate": {}}]
    doc = {"name": "sel", "parties": PARTIES, "mpc": {"protocol": "semi2k", "dealer": "dealer"},
           "inputs": {"bank": "bank.csv", "partner": "partner.csv"}, "steps": steps, "output": "out"}
    (tmp / "p.yaml").write_text(yaml.safe_dump(doc))
    return PipelineSpec.load(tmp / "p.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sel")
    _files(tmp)
    res = simulate_pipeline(_spec(tmp, {"iv_min": 0.1, "exclude": ["b2"]}), mode="thread", verbose=False)
    return tmp, res


def test_features_below_iv_min_are_dropped_everywhere(run):
    tmp, res = run
    bank, partner = res["bank"], res["partner"]
    iv = bank["iv"]
    kept = bank["selected_features"]
    assert kept == partner["selected_features"]
    # the dealer (outside the frame) learns how many of each party's columns are kept, not their names
    dealer = res["dealer"]["selected_features"]
    assert {p: len(c) for p, c in dealer.items()} == {p: len(c) for p, c in kept.items()}
    assert not {c for cs in dealer.values() for c in cs} & {"b1", "b2", "p1", "p2"}
    want = {p: [c for c in cols if c != "b2" and iv[c] >= 0.1] for p, cols in {"bank": ["b1", "b2"], "partner": ["p1", "p2"]}.items()}
    assert kept == want and "p1" in kept["partner"] and "p2" not in kept["partner"]
    assert bank["dropped_features"]["b2"] == "excluded" and bank["dropped_features"]["p2"] == "IV below iv_min"
    assert len(bank["weights"]["bank"]) == len(kept["bank"]) and len(partner["weights"]["partner"]) == len(kept["partner"])
    assert bank["feature_names"] == kept and bank["auc"] > 0.7
    assert "iv" not in partner and "dropped_features" not in partner  # the partner sees names, never IVs
    assert "Not used by the model: " in (tmp / "out" / "report.bank.html").read_text()


def test_saved_model_scores_with_the_kept_columns(run):
    tmp, res = run
    part = json.loads((tmp / "out" / "model" / "woe.partner.json").read_text())
    assert part["columns"]["partner"] == res["bank"]["selected_features"]["partner"]
    got = simulate(predict_job, PARTIES, mode="thread",
                   args=(str(tmp / "out" / "model"), {"bank": str(tmp / "bank.csv"), "partner": str(tmp / "partner.csv")},
                         "bank"))["bank"]
    s = np.asarray(got["scores"])
    assert len(s) == N and np.all((s > 0) & (s < 1))


def test_selecting_nothing_is_refused(tmp_path):
    from jointml.runtime import PartyFailed

    _files(tmp_path)
    with pytest.raises(PartyFailed, match="select_features kept no feature"):
        simulate_pipeline(_spec(tmp_path, {"iv_min": 100.0}), mode="thread", verbose=False)


def test_max_corr_drops_the_weaker_of_two_correlated_features(tmp_path):
    """The partner holds a near copy of the bank's b1: the label holder keeps the stronger one."""
    i = np.arange(N)
    y = np.where(np.sin(i * 0.37) + np.cos(i * 1.31) > 0.2, "bad", "good")
    pd.DataFrame({"id": i, "y": y, "b1": np.sin(i * 0.37)}).to_csv(tmp_path / "bank.csv", index=False)
    pd.DataFrame({"id": i, "p1": np.cos(i * 1.31), "p3": np.round(np.sin(i * 0.37), 1)}).to_csv(tmp_path / "partner.csv",
                                                                                              index=False)
    spec = _spec(tmp_path, {"iv_min": 0.0, "max_corr": 0.8})
    raw = yaml.safe_load((tmp_path / "p.yaml").read_text())
    raw["steps"][2]["woe_binning"]["woe_to_owner"] = True
    spec = PipelineSpec.from_dict(raw, base=tmp_path)
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    bank = res["bank"]
    iv = bank["iv"]
    weaker = "p3" if iv["p3"] < iv["b1"] else "b1"
    stronger = "b1" if weaker == "p3" else "p3"
    assert bank["dropped_features"] == {weaker: f"correlated with {stronger} (|r| > max_corr)"}
    assert "p1" in bank["selected_features"]["partner"] and bank["auc"] > 0.7
    assert "dropped_features" not in res["partner"]  # the partner learns the kept names only


def test_max_corr_needs_woe_at_the_owners(tmp_path):
    from jointml.runtime import PartyFailed

    _files(tmp_path)
    with pytest.raises(PartyFailed, match="max_corr and max_vif work on the WOE features at their owners"):
        simulate_pipeline(_spec(tmp_path, {"max_corr": 0.8}), mode="thread", verbose=False)


def test_max_vif_drops_a_collinear_feature(tmp_path):
    i = np.arange(N)
    y = np.where(np.sin(i * 0.37) + np.cos(i * 1.31) > 0.2, "bad", "good")
    pd.DataFrame({"id": i, "y": y, "b1": np.sin(i * 0.37)}).to_csv(tmp_path / "bank.csv", index=False)
    pd.DataFrame({"id": i, "p1": np.cos(i * 1.31), "p3": np.round(np.sin(i * 0.37), 1)}).to_csv(tmp_path / "partner.csv",
                                                                                              index=False)
    _spec(tmp_path, {"iv_min": 0.0, "max_vif": 5.0})
    raw = yaml.safe_load((tmp_path / "p.yaml").read_text())
    raw["steps"][2]["woe_binning"]["woe_to_owner"] = True
    res = simulate_pipeline(PipelineSpec.from_dict(raw, base=tmp_path), mode="thread", verbose=False)
    dropped = res["bank"]["dropped_features"]
    assert list(dropped.values()) == ["VIF above max_vif"] and set(dropped) <= {"b1", "p3"}
    assert "p1" in res["bank"]["selected_features"]["partner"]
