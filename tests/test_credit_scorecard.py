"""The `scorecard` step: each party's points table reproduces the joint model's score.

For every aligned row, base points (label holder) + the bank's points for its bins + the
partner's points for its bins equals `offset - factor * logit(p)`, with `p` the joint
model's probability for that row (scored by `predict_job` from the saved parts); each party
computes its part from its own files only. The points tables stay with their parties.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from jointml.core.errors import ConfigError
from jointml.data.woe_io import load_woe
from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
from jointml.jobs.components.scorecard import scaling
from jointml.runtime import PartyFailed, simulate

N = 300
PARTIES = ["bank", "partner", "dealer"]


def _files(tmp):
    i = np.arange(N)
    t = np.sin(i * 0.37) + np.cos(i * 1.31)
    y = np.where(t + 0.3 * np.sin(i * 2.9) > 0.2, "bad", "good")
    pd.DataFrame({"id": i, "y": y, "b1": np.sin(i * 0.37)}).to_csv(tmp / "bank.csv", index=False)
    pd.DataFrame({"id": i[::-1], "p1": np.cos(i * 1.31)[::-1], "p2": np.cos(i * 0.05)[::-1]}).to_csv(tmp / "partner.csv",
                                                                                                      index=False)


def _spec(tmp, woe_to_owner=True, card=None):
    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
             {"woe_binning": {"label": "y", "pos_label": "bad", "key_bits": 512, "method": "quantile", "max_bins": 4,
                              "woe_to_owner": woe_to_owner, "label_proofs": False}},
             {"ss_lr.train": {"epochs": 5, "batch_size": 64, "learning_rate": 1.0, "sigmoid": "accurate"}},
             {"predict": {}}, {"scorecard": card or {"pdo": 20, "base_score": 600, "base_odds": 50}}]
    doc = {"name": "card", "parties": PARTIES, "mpc": {"protocol": "semi2k", "dealer": "dealer"},
           "inputs": {"bank": "bank.csv", "partner": "partner.csv"}, "steps": steps, "output": "out"}
    (tmp / "p.yaml").write_text(yaml.safe_dump(doc))
    return PipelineSpec.load(tmp / "p.yaml")


@pytest.fixture(scope="module")
def card_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    _files(tmp)
    res = simulate_pipeline(_spec(tmp), mode="thread", verbose=False)
    return tmp, res


def _row_points(tmp, party, card):
    """This party's points per row (by id), from its own input, its own WOE part and its own table."""
    df = pd.read_csv(tmp / f"{party}.csv")
    woe = load_woe(tmp / "out" / "model", party)
    cols = list(card["points"])
    bins = woe.bin_indices(party, df[cols])
    pts = np.zeros(len(df))
    for j, c in enumerate(cols):
        pts += np.array([r["points"] for r in card["points"][c]])[bins[:, j]]
    return pd.Series(pts, index=df["id"])


def test_points_add_up_to_the_joint_models_score(card_run):
    tmp, res = card_run
    bank_card, partner_card = res["bank"]["scorecard"], res["partner"]["scorecard"]
    assert set(bank_card["points"]) == {"b1"} and set(partner_card["points"]) == {"p1", "p2"}  # own features only
    assert "base_points" in bank_card and "base_points" not in partner_card
    got = simulate(predict_job, PARTIES, mode="thread",
                   args=(str(tmp / "out" / "model"), {"bank": str(tmp / "bank.csv"), "partner": str(tmp / "partner.csv")},
                         "bank"))["bank"]
    p = np.clip(np.asarray(got["scores"]), 1e-9, 1 - 1e-9)
    factor, offset = scaling(20, 600, 50)
    want = offset - factor * np.log(p / (1 - p))
    total = bank_card["base_points"] + _row_points(tmp, "bank", bank_card) + _row_points(tmp, "partner", partner_card)
    total = total.loc[got["ids"]].to_numpy()
    err = np.abs(total - want)
    # fixed point and the sigmoid's approximation: a fraction of a point (more where p is near 0 or 1,
    # where a small error in p is a large one in log-odds)
    mid = (p > 0.02) & (p < 0.98)
    assert mid.mean() > 0.5 and err[mid].max() < 0.2 and np.median(err) < 0.05
    p_from_points = 1.0 / (1.0 + np.exp((total - offset) / factor))  # everywhere: the same probability
    assert np.abs(p_from_points - p).max() < 2e-3
    assert np.std(want) > 5  # the score really varies


def test_points_follow_weights_and_woe(card_run):
    tmp, res = card_run
    factor, _ = scaling(20, 600, 50)
    for party in ("bank", "partner"):
        card = json.loads((tmp / "out" / f"scorecard.{party}.json").read_text())
        w = res[party]["weights"][party]
        for j, table in enumerate(card["points"].values()):
            for r in table:
                assert r["points"] == pytest.approx(-factor * w[j] * r["woe"])
        assert all(r["bin"] for t in card["points"].values() for r in t)
    assert "Scorecard (this party" in (tmp / "out" / "report.partner.html").read_text()
    # the bank's table stays at the bank (the random hex model id aside, which may contain "b1")
    assert "b1" not in json.dumps({k: v for k, v in res["partner"]["scorecard"].items() if k != "model_id"})


def test_scorecard_needs_woe_at_the_owners(tmp_path):
    _files(tmp_path)
    with pytest.raises(PartyFailed, match="step 6 \\(scorecard\\).*woe_to_owner: true") as e:
        simulate_pipeline(_spec(tmp_path, woe_to_owner=False), mode="thread", verbose=False)
    assert e.value.error_type == "ConfigError" and "woe_binning.py" not in e.value.traceback  # refused before any step


def test_scorecard_parameters_checked_when_read(tmp_path):
    _files(tmp_path)
    with pytest.raises(ConfigError, match="field 'pdo'.*must be > 0"):
        _spec(tmp_path, card={"pdo": 0})


def test_reason_codes_at_the_label_holder(card_run):
    """The bank's reasons per test row match those computed from both parties' true points
    (the partner's summed contribution derived by the bank from the score alone)."""
    from jointml.data.split import public_split
    from jointml.jobs.components.scorecard import reason_codes

    tmp, res = card_run
    got = pd.read_csv(tmp / "out" / "reasons.bank.csv")
    assert not (tmp / "out" / "reasons.partner.csv").exists()  # reasons only where the scores are
    ids = pd.read_csv(tmp / "bank.csv")["id"].to_numpy()
    _, te = public_split(N, 0.3, 1)
    test_ids = ids[te]
    bank_card, partner_card = res["bank"]["scorecard"], res["partner"]["scorecard"]
    pts = {}
    for party, card in (("bank", bank_card), ("partner", partner_card)):
        df = pd.read_csv(tmp / f"{party}.csv").set_index("id").loc[test_ids].reset_index()
        woe = load_woe(tmp / "out" / "model", party)
        idx = woe.bin_indices(party, df[list(card["points"])])
        for j, c in enumerate(card["points"]):
            pts[c] = np.array([r["points"] for r in card["points"][c]])[idx[:, j]]
    true = {"b1": pts["b1"], "partner features (summed)": pts["p1"] + pts["p2"]}
    want = reason_codes(true, 3)
    firsts = [w[0] if w else None for w in want]
    mine = [r if isinstance(r, str) else None for r in got["reason 1"]]  # no reason: every contribution above its mean
    agree = np.mean([a == b for a, b in zip(mine, firsts)])
    assert len(got) == len(te) and agree > 0.95
    assert set(got["reason 1"].dropna()) <= {"b1", "partner features (summed)"}  # never a partner feature by name


@pytest.fixture(scope="module")
def coded_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coded")
    _files(tmp)
    from jointml.net import link as L

    seen = []
    recv = L.Communicator.recv

    def spy(self, peer, tag, *a, **k):  # what the bank receives in the reason-code exchange
        msg = recv(self, peer, tag, *a, **k)
        if self.me == "bank" and "scorecard" in str(tag):
            seen.append((peer, str(tag), dict(msg.meta or {}), [np.array(x) for x in msg.arrays]))
        return msg

    L.Communicator.recv = spy
    try:
        spec = _spec(tmp, card={"pdo": 20, "base_score": 600, "base_odds": 50, "reasons": 2,
                                "reason_codes": {"partner": "coded"}})
        res = simulate_pipeline(spec, mode="thread", verbose=False)
    finally:
        L.Communicator.recv = recv
    return tmp, res, seen


def test_partner_reason_codes_when_coded(coded_run):
    """`reason_codes: {partner: coded}`: where the partner's summed contribution is among a row's
    top reasons, the bank sees the partner's own ranking of its adverse features as codes
    ("partner:2"), matching both parties' true points; it receives codes only (small integers),
    never a partner value, bin or point, and the partner keeps the code -> feature table."""
    from jointml.data.split import public_split

    tmp, res, seen = coded_run
    got = pd.read_csv(tmp / "out" / "reasons.bank.csv")
    ids = pd.read_csv(tmp / "bank.csv")["id"].to_numpy()
    _, te = public_split(N, 0.3, 1)
    bank_card, partner_card = res["bank"]["scorecard"], res["partner"]["scorecard"]
    assert partner_card["code_table"] == {"partner:1": "p1", "partner:2": "p2"} and "code_table" not in bank_card
    pts = {}
    for party, card in (("bank", bank_card), ("partner", partner_card)):
        df = pd.read_csv(tmp / f"{party}.csv").set_index("id").loc[ids[te]].reset_index()
        woe = load_woe(tmp / "out" / "model", party)
        idx = woe.bin_indices(party, df[list(card["points"])])
        for j, c in enumerate(card["points"]):
            pts[c] = np.array([r["points"] for r in card["points"][c]])[idx[:, j]]
    short = {c: pts[c].mean() - pts[c] for c in pts}
    psum = (pts["p1"].mean() + pts["p2"].mean()) - (pts["p1"] + pts["p2"])
    want = []
    for i in range(len(te)):
        part = sorted([(short[c][i], f"partner:{j + 1}") for j, c in enumerate(("p1", "p2")) if short[c][i] > 0],
                      reverse=True)
        items = sorted([(short["b1"][i], ["b1"]), (psum[i], [n for _, n in part])], key=lambda t: -t[0])
        row = [n for s, names in items if s > 0 for n in names][:2]
        want.append(row[0] if row else None)
    mine = [r if isinstance(r, str) else None for r in got["reason 1"]]
    assert len(got) == len(te) and np.mean([a == b for a, b in zip(mine, want)]) > 0.95
    assert any(str(r).startswith("partner:") for r in got["reason 1"])
    values = {v for v in got[["reason 1", "reason 2"]].to_numpy().ravel() if isinstance(v, str)}
    assert values <= {"b1", "partner:1", "partner:2"}  # codes, never a partner feature's name or value
    reports = {p: next((tmp / "out").rglob(f"report.{p}.html")).read_text() for p in ("bank", "partner")}
    assert "Reason codes" in reports["bank"] and "partner:" in reports["bank"]
    assert "Reason codes" not in reports["partner"]
    codes = [a for _, tag, _, arrs in seen if "codes" in tag for a in arrs]
    assert len(codes) == 1 and codes[0].dtype == np.int64 and codes[0].shape == (len(te), 2)
    assert set(np.unique(codes[0])) <= {0, 1, 2}


def test_hidden_policy_sends_no_codes(card_run):
    tmp, res = card_run
    assert res["partner"]["scorecard"]["reason_codes"] == {"partner": "hidden"}
    got = pd.read_csv(tmp / "out" / "reasons.bank.csv")
    assert not any(str(v).startswith("partner:") for v in got.filter(like="reason").to_numpy().ravel())


def test_batch_scoring_gives_the_same_reason_codes(coded_run):
    """`jointml predict` (predict_job) reads each party's scorecard artefact: the reasons of the test
    rows equal the run's (same references); with label-only PSI (predict's default) the partner
    cannot rank rows it does not know, so its codes are left out, and the output says so."""
    from click.testing import CliRunner

    from jointml.cli.main import main

    tmp, _, _ = coded_run
    model, inputs = str(tmp / "out" / "model"), {"bank": str(tmp / "bank.csv"), "partner": str(tmp / "partner.csv")}
    got = simulate(predict_job, PARTIES, mode="thread", args=(model, inputs, "bank"), kwargs={"psi_mode": "both"})
    bank = got["bank"]
    assert "reasons" not in got["partner"] and len(bank["reasons"]) == len(bank["scores"]) == N
    run = pd.read_csv(tmp / "out" / "reasons.bank.csv")
    from jointml.data.split import public_split

    _, te = public_split(N, 0.3, 1)
    test_ids = pd.read_csv(tmp / "bank.csv")["id"].to_numpy()[te]
    pos = {i: k for k, i in enumerate(bank["ids"])}
    batch = [bank["reasons"][pos[i]].get("reason 1") for i in test_ids]
    mine = [r if isinstance(r, str) else None for r in run["reason 1"]]
    assert np.mean([a == b for a, b in zip(batch, mine)]) > 0.95
    res = CliRunner().invoke(main, ["predict", "--model", model, "--input", f"bank={inputs['bank']}", "--input",
                                    f"partner={inputs['partner']}", "--to", "bank", "--mode", "thread", "--out",
                                    str(tmp / "scores.csv")])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(tmp / "scores.csv")
    assert {"score", "points", "reason 1", "note"} <= set(out.columns)
    assert out["note"].str.contains("partner left out").all()
    assert not out.filter(like="reason").stack().astype(str).str.startswith("partner:").any()
