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


def _twin_woe(tmp_path):
    """The plaintext twin of the job's WOE features on the training rows (pandas/numpy)."""
    from jointml.data.preprocessing import EqualFrequencyBinner, woe_iv_from_counts
    from jointml.data.secure.woe import final_counts, merge_map
    from jointml.data.split import public_split

    bank, partner = pd.read_csv(tmp_path / "bank.csv"), pd.read_csv(tmp_path / "partner.csv").set_index("id")
    tr, _ = public_split(N, 0.3, 1)
    rows = bank.iloc[tr].reset_index(drop=True)
    rows = rows.join(partner.loc[rows["id"]].reset_index(drop=True))
    y = (rows["y"] == "bad").to_numpy(float)
    cols = ["b1", "b2", "p1", "p2"]
    X = np.zeros((len(tr), 4))
    for j, c in enumerate(cols):
        codes = np.asarray(EqualFrequencyBinner(n_bins=4, handle_unknown="missing").fit(rows[[c]]).transform(rows[[c]]))[:, 0]
        pos = np.bincount(codes, weights=y, minlength=codes.max() + 2)
        cnt = np.bincount(codes, minlength=codes.max() + 2)
        m = merge_map("quantile", False, pos, cnt - pos, 4, 0.05)
        X[:, j] = np.asarray(woe_iv_from_counts(*final_counts(m, pos, cnt - pos))[0])[m[codes]]
    return y, X


@pytest.mark.slow  # a whole job with three secure fits (~12 s on a loaded machine); the MPC part is checked fast below
def test_forward_stepwise_matches_a_plaintext_score_test(tmp_path):
    """`stepwise: forward`: features enter by the score test computed under MPC; the entry order,
    the first step's statistic (exact: the intercept-only fit is the base rate) and the selected
    set equal a plaintext twin (scikit-learn's unpenalised fit and the same score test in numpy)."""
    from sklearn.linear_model import LogisticRegression

    from jointml.jobs.components.stepwise import score_statistics

    _files(tmp_path)
    spec = _spec(tmp_path, {"iv_min": 0.0, "stepwise": "forward", "p_enter": 0.01, "stepwise_epochs": 8})
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    steps = res["bank"]["stepwise"]
    assert "stepwise" not in res["partner"]  # the statistics stay at the label holder
    y, X = _twin_woe(tmp_path)
    cols = ["b1", "b2", "p1", "p2"]
    chosen, want = [], []
    while True:
        if chosen:
            m = LogisticRegression(C=1e9, max_iter=1000).fit(X[:, chosen], y)
            p = m.predict_proba(X[:, chosen])[:, 1]
        else:
            p = np.full(len(y), y.mean())
        G = np.c_[np.ones(len(y)), X]
        M = G.T @ (G * (p * (1 - p))[:, None])
        stats = score_statistics(M, X.T @ (y - p), chosen, [k for k in range(4) if k not in chosen])
        best = max(stats, key=stats.get)
        want.append((cols[best], stats[best]))
        if stats[best] <= 6.6349:  # chi2(1) at p = 0.01
            break
        chosen.append(best)
    # the features that entered, in order (the last, refused candidate may differ between two noise
    # features of close statistics: later steps use the fixed-point SS-LR fit, not the exact MLE)
    assert [s["feature"] for s in steps[:-1]] == [f for f, _ in want[:-1]]
    assert steps[0]["chi2"] == pytest.approx(want[0][1], rel=0.02)
    assert [s["entered"] for s in steps] == [True] * (len(steps) - 1) + [False]
    kept = res["bank"]["selected_features"]
    assert sorted(kept["bank"] + kept["partner"]) == sorted(cols[k] for k in chosen)


def test_stepwise_statistics_under_mpc_equal_numpy():
    """The score vector and weighted Gram matrix computed under MPC (WOE blocks: one plaintext at its
    owner, one secret-shared) equal numpy's, and only the label holder receives them."""
    from jointml.core.prg import public_rng
    from jointml.jobs.components.stepwise import _blocks, _secret_matrix, _statistics
    from jointml.mpc import MpcDevice

    g = public_rng(5)
    Xb, Xp = g.normal(size=(40, 2)), g.normal(size=(40, 1))
    y = (g.random(40) < 0.4).astype(float)
    p = np.clip(0.4 + 0.1 * Xb[:, 0], 0.05, 0.95)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        feats = {"bank": ctx.party("bank").put(Xb if ctx.me == "bank" else None),
                 "partner": ctx.party("partner").put(Xp if ctx.me == "partner" else None).to(mpc)}
        G = _secret_matrix(mpc, _blocks(ctx, feats, {"bank": [0, 1], "partner": [0]},
                                        [("bank", 0), ("bank", 1), ("partner", 0)]))
        ys = ctx.party("bank").put(y if ctx.me == "bank" else None).to(mpc)
        ps = ctx.party("bank").put(p if ctx.me == "bank" else None).to(mpc)
        M, U = _statistics(mpc, G, ys, ps, "bank")
        return (np.asarray(M.value), np.asarray(U.value)) if ctx.me == "bank" else (M.is_local, U.is_local)

    res = simulate(prog, PARTIES, mode="thread")
    X = np.c_[np.ones(40), Xb, Xp]
    np.testing.assert_allclose(res["bank"][0], X.T @ (X * (p * (1 - p))[:, None]), atol=2e-3)
    np.testing.assert_allclose(res["bank"][1], X[:, 1:].T @ (y - p), atol=2e-3)
    assert res["partner"] == (False, False) and res["dealer"] == (False, False)  # opened to the bank only


@pytest.mark.slow  # a whole job with up to four secure fits
def test_backward_stepwise_matches_a_plaintext_wald_test(tmp_path):
    """`stepwise: backward`: the noise features leave by the Wald test computed under MPC, as in a
    plaintext twin (scikit-learn's unpenalised fit, Wald statistics from the information matrix);
    the signal features stay."""
    from sklearn.linear_model import LogisticRegression

    from jointml.jobs.components.stepwise import wald_weights

    _files(tmp_path)
    spec = _spec(tmp_path, {"iv_min": 0.0, "stepwise": "backward", "p_remove": 0.05, "stepwise_epochs": 8})
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    steps = res["bank"]["stepwise"]
    y, X = _twin_woe(tmp_path)
    cols = ["b1", "b2", "p1", "p2"]
    chosen, want = list(range(4)), []
    while len(chosen) > 1:
        m = LogisticRegression(C=1e9, max_iter=1000).fit(X[:, chosen], y)
        p = m.predict_proba(X[:, chosen])[:, 1]
        G = np.c_[np.ones(len(y)), X[:, chosen]]
        stat = m.coef_[0] ** 2 * wald_weights(G.T @ (G * (p * (1 - p))[:, None]))
        worst = int(np.argmin(stat))
        from math import erfc, sqrt

        out = erfc(sqrt(stat[worst] / 2)) > 0.05
        want.append((cols[chosen[worst]], out))
        if not out:
            break
        chosen.pop(worst)
    assert [s["feature"] for s in steps if s["removed"]] == [f for f, o in want if o]
    kept = res["bank"]["selected_features"]
    assert sorted(kept["bank"] + kept["partner"]) == sorted(cols[k] for k in chosen)
    assert {"b1", "p1"} <= set(kept["bank"] + kept["partner"])


@pytest.mark.slow  # a whole job with about nine secure fits and secure AUCs
def test_forward_stepwise_by_validation_auc(tmp_path):
    """`stepwise: forward_auc`: candidates are compared by the AUC of their SS-LR model on validation
    rows, computed under MPC; a one-feature model's AUC is that of its WOE feature (any positive
    weight ranks the same), so the first step equals the plaintext twin; the signal features enter."""
    from sklearn.metrics import roc_auc_score

    from jointml.data.split import public_split

    _files(tmp_path)
    spec = _spec(tmp_path, {"iv_min": 0.0, "stepwise": "forward_auc", "min_auc_gain": 0.01, "stepwise_epochs": 5,
                                 "max_features": 2})
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    steps = res["bank"]["stepwise"]
    y, X = _twin_woe(tmp_path)
    _, val = public_split(len(y), 0.3, 1)
    twin = {c: roc_auc_score(y[val], X[val, j]) for j, c in enumerate(["b1", "b2", "p1", "p2"])}
    first = max(twin, key=twin.get)
    # (a WOE feature has few values: fixed-point truncation of the scores breaks some ties at random)
    assert steps[0]["feature"] == first and steps[0]["validation_auc"] == pytest.approx(twin[first], abs=0.02)
    kept = res["bank"]["selected_features"]
    assert sorted(kept["bank"] + kept["partner"]) == ["b1", "p1"]  # max_features: 2, the two signal features
    assert all(s["entered"] and s["gain"] >= 0.01 for s in steps)
    assert "stepwise" not in res["partner"]
