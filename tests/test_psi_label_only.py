"""Issue 11 item 6: label-only PSI. Only the label holder learns the intersection; the
partner's rows enter MPC aligned under secret sharing (jointml.psi.label_only).

Correctness against plaintext twins (the aligned values equal the join in the bank's order,
as mode "both" gives them; blind WOE equals plaintext WOE on the same bins), and views: the
partner's received messages have the same shapes whatever rows match, carry no slot, and its
share rows cannot be matched to its own masks; the dealer receives only positions in a
secret random order; an unsupported model is refused before any PSI message.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jointml.core.errors import ConfigError
from jointml.core.prg import Prg
from jointml.data.blind import blind_frame
from jointml.data.preprocessing import EqualFrequencyBinner, woe_iv_from_counts
from jointml.data.secure.woe import final_counts, merge_map, vertical_woe
from jointml.data.split import public_split
from jointml.demo.credit_demo import make_demo_files
from jointml.mpc import MpcDevice
from jointml.psi import psi_frame
from jointml.psi.label_only import psi_label_only
from jointml.runtime import simulate

PARTIES = ["bank", "partner", "dealer"]


def _spy(monkeypatch, who: str) -> dict[str, list]:
    """Every message `who` receives and sends: (peer, tag, meta, arrays)."""
    from jointml.net import link as L

    seen: dict[str, list] = {"recv": [], "send": []}
    recv, send = L.Communicator.recv, L.Communicator.send

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        if self.me == who:
            seen["recv"].append((peer, tag, dict(msg.meta or {}), [np.array(x) for x in msg.arrays]))
        return msg

    def spy_send(self, peer, tag, arrays=(), *a, **k):
        if self.me == who:
            seen["send"].append((peer, tag, dict(k.get("meta") or {}), [np.array(x) for x in arrays]))
        return send(self, peer, tag, arrays, *a, **k)

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    monkeypatch.setattr(L.Communicator, "send", spy_send)
    return seen


def _tables(bank_ids, partner_ids, seed=3):
    g = Prg(bytes([seed]) * 16)
    bank = pd.DataFrame({"id": bank_ids, "age": (g.uint64(len(bank_ids)) % 60).astype(float)})
    partner = pd.DataFrame({"id": partner_ids, "spend": (g.uint64(len(partner_ids)) % 1000).astype(float) / 8,
                            "visits": (g.uint64(len(partner_ids)) % 9).astype(np.int64)})
    return bank, partner


def _select_prog(ctx, bank, partner):
    tables = {"bank": bank, "partner": partner}
    raw = {p: ctx.party(p).put(tables[p] if ctx.me == p else None) for p in tables}
    al = psi_label_only(ctx, raw, ["id"], holder="bank")
    vdf = blind_frame(ctx, raw, al, drop=["id"])
    mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    spend = vdf.secret("partner", lambda df: df[["spend"]].to_numpy(), mpc)
    visits = vdf.take(np.arange(len(vdf))[::-1]).secret("partner", lambda df: df[["visits"]].to_numpy(), mpc)
    out = (spend.reveal(to="bank"), visits.reveal(to="bank"))
    # mode "both" on the same tables: what the partner would hold in plaintext, in the bank's order
    both = psi_frame(ctx, raw, key_columns=["id"], sort_by="bank", progress=False)
    b = both["partner"].value if ctx.me == "partner" else None
    return {"positions": al.positions, "size": al.size, "values": [o.value if ctx.me == "bank" else None for o in out],
            "both": None if b is None else b[["spend", "visits"]].to_numpy()}


def test_aligned_values_equal_the_join_and_mode_both():
    bank, partner = _tables([f"c{i}" for i in range(12)], [f"c{i}" for i in (40, 7, 3, 11, 0, 41, 5, 42)])
    out = simulate(_select_prog, PARTIES, mode="thread", args=(bank, partner))
    joined = bank.merge(partner, on="id", how="inner", sort=False)  # the bank's order
    b = out["bank"]
    assert b["size"] == out["partner"]["size"] == out["dealer"]["size"] == len(joined) == 5
    assert bank.id.iloc[b["positions"]].tolist() == joined.id.tolist()
    np.testing.assert_allclose(b["values"][0].ravel(), joined.spend, atol=2**-17)  # fixed point
    assert b["values"][1].ravel().tolist() == joined.visits.tolist()[::-1]  # integers: exact, any public row order
    np.testing.assert_allclose(b["values"][0].ravel(), out["partner"]["both"][:, 0], atol=2**-17)
    assert out["partner"]["positions"] is None and out["dealer"]["positions"] is None


def _partner_view(monkeypatch, bank, partner):
    seen = _spy(monkeypatch, "partner")
    out = simulate(_select_prog_label_only, PARTIES, mode="thread", args=(bank, partner))
    monkeypatch.undo()
    seen["shuffle"] = out["partner"]
    return seen


def _select_prog_label_only(ctx, bank, partner):
    tables = {"bank": bank, "partner": partner}
    raw = {p: ctx.party(p).put(tables[p] if ctx.me == p else None) for p in tables}
    al = psi_label_only(ctx, raw, ["id"], holder="bank")
    mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    x = blind_frame(ctx, raw, al, drop=["id"]).secret("partner", lambda df: df[["visits"]].to_numpy(), mpc)
    got = x.reveal(to="bank")
    return got.value if ctx.me == "bank" else al.shuffle


def test_partner_view_does_not_depend_on_which_rows_match(monkeypatch):
    partner_ids = [f"p{i}" for i in range(10)]
    # two banks with intersections of the same size (4) but different rows of the partner
    views = []
    for shared in ((0, 1, 2, 3), (9, 6, 4, 2)):
        bank, partner = _tables([partner_ids[i] for i in shared] + [f"b{i}" for i in range(6)], partner_ids)
        views.append((shared, _partner_view(monkeypatch, bank, partner)))
    shape_of = [[(peer, tag, sorted(meta.items()), [(a.dtype.str, a.shape) for a in arrs])
                 for peer, tag, meta, arrs in v["recv"] if not tag.startswith("psi-")]
                for _, v in views]
    psi_msgs = [[(peer, tag, [(a.dtype.str, a.shape) for a in arrs]) for peer, tag, _, arrs in v["recv"]
                 if tag.startswith("psi-")] for _, v in views]
    assert shape_of[0] == shape_of[1] and psi_msgs[0] == psi_msgs[1]  # same messages, same shapes and metas
    for shared, v in views:
        got = [a for _, _, _, arrs in v["recv"] for a in arrs]
        # never a list of positions: no received integer array holds the matched rows, nor their
        # positions in the partner's own shuffled order (in any order)
        small = [a.astype(np.int64) for a in got if a.dtype.kind in "iu" and a.ndim == 1 and a.size == len(shared)]
        shuffle = v["shuffle"]
        assert not any(set(a.tolist()) == set(shared) for a in small)
        assert not any(((0 <= a) & (a < 10)).all() and set(shuffle[a].tolist()) == set(shared) for a in small)
        # its share Z = T - R[idx]: without T (unknown to it) no row of -Z equals a row of its own mask R
        seed = next(arrs[0] for peer, tag, _, arrs in v["send"] if peer == "dealer" and "seed-r" in tag)
        R = Prg(seed.tobytes(), "jointml/psi/label-only/v1/partner-mask").uint64((10, 1))
        Z = next(arrs[0] for peer, tag, _, arrs in v["recv"] if peer == "dealer" and "psi-lo:share" in tag)
        assert Z.shape == (4, 1) and not np.isin((-Z).ravel(), R.ravel()).any()


def test_dealer_gets_only_positions_in_a_random_order(monkeypatch):
    bank, partner = _tables(["a", "b", "x"], ["y", "a", "z", "w"])  # one shared row: partner row 1
    seen = _spy(monkeypatch, "dealer")
    runs = 40
    for _ in range(runs):
        simulate(_select_prog_label_only, PARTIES, mode="thread", args=(bank, partner))
    slots = [int(arrs[1][0]) for peer, tag, _, arrs in seen["recv"] if peer == "bank" and "psi-lo:slots" in tag]
    assert len(slots) == runs
    counts = np.bincount(slots, minlength=4)
    # uniform over the 4 positions (for a fair draw P[some count == 0 or > 22] < 3e-4); the true row (1) is not special
    assert (counts > 0).all() and counts.max() <= 22
    got = [a for _, tag, _, arrs in seen["recv"] for a in arrs]
    assert not any(a.dtype == np.float64 for a in got)  # no plaintext value of either party
    masked = [arrs for peer, tag, _, arrs in seen["recv"] if peer == "partner" and "psi-lo:masked" in tag]
    assert not masked  # the partner's masked rows go to the bank only


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lo")
    files = make_demo_files(d)
    for p, n in (("bank", 260), ("partner", 240)):  # a smaller job, still with rows missing on each side
        pd.read_csv(files[p]).iloc[:n].to_csv(files[p], index=False)
    return files


def _woe_prog(ctx, files):
    raw = {p: ctx.party(p).run(lambda p=p: pd.read_csv(files[p])) for p in ("bank", "partner")}
    al = psi_label_only(ctx, raw, ["id"], holder="bank")
    vdf = blind_frame(ctx, raw, al, drop=["id"])
    tr, _ = public_split(len(vdf), 0.3, 1)
    train = vdf.take(tr)
    woe = vertical_woe(ctx, train, "creditability", pos_label="bad", method="chimerge", max_bins=4, n_prebins=8,
                       key_bits=512)
    mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    feats = woe.transform(ctx, train, mpc)
    x = feats["partner"].reveal(to="bank")
    own = {c: (cw.pos, cw.neg) for c, cw in woe.col.items() if cw.pos is not None}
    return {"X": x.value if ctx.me == "bank" else None, "own": own, "cols": woe.columns}


def test_blind_woe_equals_plaintext_on_the_same_bins(small_files):
    res = simulate(_woe_prog, PARTIES, mode="thread", args=(small_files,))
    bank, partner = (pd.read_csv(small_files[p]) for p in ("bank", "partner"))
    joined = bank.merge(partner, on="id", how="inner", sort=False)
    tr, _ = public_split(len(joined), 0.3, 1)
    y = (joined.creditability.iloc[tr] == "bad").to_numpy(int)
    cols = res["bank"]["cols"]["partner"]
    # the partner pre-bins all of its rows (it does not know which are aligned training rows)
    pre = EqualFrequencyBinner(n_bins=8, handle_unknown="missing").fit(partner[cols])
    codes = np.asarray(pre.transform(joined.iloc[tr][cols]))
    want = []
    for j, c in enumerate(cols):
        nb = pre.get_bins(c).n_bins
        pos = np.bincount(codes[:, j], weights=y, minlength=nb).astype(np.int64)
        cnt = np.bincount(codes[:, j], minlength=nb).astype(np.int64)
        m = merge_map("chimerge", pre.get_bins(c).kind == "categorical", pos, cnt - pos, 4, 0.05)
        pm, nm = final_counts(m, pos, cnt - pos)
        got_pos, got_neg = res["bank"]["own"][c]
        assert sorted(zip(got_pos.tolist(), got_neg.tolist())) == sorted(zip(pm.tolist(), nm.tolist()))
        want.append(np.asarray(woe_iv_from_counts(pm, nm)[0])[m[codes[:, j]]])
    np.testing.assert_allclose(res["bank"]["X"], np.stack(want, axis=1), atol=1e-4)
    assert res["partner"]["X"] is None and not res["partner"]["own"]  # the partner decrypts nothing


def test_secureboost_refused_before_any_psi_message(small_files, monkeypatch):
    from jointml.jobs import simulate_pipeline
    from jointml.jobs.credit import CreditJobConfig, credit_pipeline
    from jointml.jobs.spec import PipelineSpec

    cfg = CreditJobConfig(inputs={p: str(f) for p, f in small_files.items()}, key_bits=512, verbose=False,
                          model_type="secureboost", psi_mode="label_only")
    with pytest.raises(ConfigError, match="psi_mode") as e:
        credit_pipeline(cfg, PARTIES)
    assert e.value.field == "psi_mode"
    spec = PipelineSpec.from_dict({
        "parties": PARTIES, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": {p: str(f) for p, f in small_files.items()},
        "steps": [{"psi": {"key": "id", "mode": "label_only", "holder": "bank"}},
                  {"split": {}}, {"secureboost.train": {"label": "creditability", "pos_label": "bad", "key_bits": 512}}]})
    seen = _spy(monkeypatch, "partner")
    with pytest.raises(Exception, match="label_only.*secureboost.*psi mode 'both'"):
        simulate_pipeline(spec, mode="thread", verbose=False)
    assert not [t for _, t, _, _ in seen["recv"] if "psi" in t]  # refused before the PSI's first message


def test_credit_job_label_only_end_to_end(small_files, tmp_path):
    from jointml.demo.credit_demo import plaintext_baseline
    from jointml.jobs import predict_job, simulate_pipeline
    from jointml.jobs.credit import CreditJobConfig, credit_pipeline

    cfg = CreditJobConfig(inputs={p: str(f) for p, f in small_files.items()}, key_bits=512, verbose=False,
                          output_dir=str(tmp_path), model={"epochs": 10, "batch_size": 64, "learning_rate": 1.0,
                                                           "l2": 0.001, "sigmoid": "poly"})
    assert cfg.psi == "label_only"  # the default
    spec = credit_pipeline(cfg, PARTIES)
    assert spec.steps[0][0] == "psi" and spec.steps[0][1]["mode"] == "label_only"
    res = simulate_pipeline(spec, mode="thread", verbose=False)
    bank, partner = res["bank"], res["partner"]
    n = len(set(pd.read_csv(small_files["bank"]).id) & set(pd.read_csv(small_files["partner"]).id))
    assert bank["rows_aligned"] == partner["rows_aligned"] == n and bank["psi_mode"] == "label_only"
    base = plaintext_baseline(small_files, cfg, bank)  # same rows, split and bins; Newton instead of SGD
    assert bank["auc"] > 0.6 and np.corrcoef(bank["test_scores"], base["scores"])[0, 1] > 0.85
    assert "auc" not in partner and "test_scores" not in partner
    saved = json.loads((tmp_path / "summary.partner.json").read_text())
    assert "ids" not in json.dumps(saved)
    # `jointml predict` from the saved parts: label-only by default; the bank gets the shared ids in its order
    inputs = {p: str(f) for p, f in small_files.items()}
    got = simulate(predict_job, PARTIES, mode="thread", args=(str(tmp_path / "model"), inputs, "bank"))
    joined = pd.read_csv(small_files["bank"]).merge(pd.read_csv(small_files["partner"]), on="id", how="inner", sort=False)
    assert got["bank"]["ids"] == joined.id.tolist() and len(got["bank"]["scores"]) == n
    _, te = public_split(n, cfg.test_fraction, cfg.seed)  # the saved model scores the test rows as the job did
    np.testing.assert_allclose(np.asarray(got["bank"]["scores"])[te], bank["test_scores"], atol=1e-3)
    assert "ids" not in got["partner"] and "scores" not in got["partner"] and got["partner"]["rows"] == n
    both = simulate(predict_job, PARTIES, mode="thread", args=(str(tmp_path / "model"), inputs, "bank"),
                    kwargs={"psi_mode": "both"})
    np.testing.assert_allclose(got["bank"]["scores"], both["bank"]["scores"], atol=1e-3)  # same scores either way


def test_selection_on_an_aby3_device():
    bank, partner = _tables(["a", "b", "c", "d"], ["d", "x", "b", "y", "a"])

    def prog(ctx):
        tables = {"bank": bank, "partner": partner}
        raw = {p: ctx.party(p).put(tables[p] if ctx.me == p else None) for p in tables}
        al = psi_label_only(ctx, raw, ["id"], holder="bank")
        vdf = blind_frame(ctx, raw, al, drop=["id"])
        aby3 = MpcDevice(ctx, ["bank", "partner", "auditor"], protocol="aby3")  # the third party helps
        got = vdf.secret("partner", lambda df: df[["spend", "visits"]].to_numpy(float), aby3).reveal(to="bank")
        return got.value if ctx.me == "bank" else None

    out = simulate(prog, ["bank", "partner", "auditor"], mode="thread")
    joined = bank.merge(partner, on="id", how="inner", sort=False)
    np.testing.assert_allclose(out["bank"], joined[["spend", "visits"]].to_numpy(float), atol=2**-16)


def test_docs_psi_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "psi.md"
    res = doctest.testfile(str(page), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 5 and res.failed == 0


def test_pipeline_raw_features_label_only_match_mode_both(tmp_path):
    """`train` on raw numeric features after a label-only PSI: the partner's columns reach SS-LR
    secret-shared through the oblivious selection; the model and scores equal mode `both`'s."""
    from jointml.jobs import simulate_pipeline
    from jointml.jobs.spec import PipelineSpec

    g = Prg(b"r" * 16)
    n = 120
    x1, x2, x3 = ((g.uint64(n) % 1000).astype(float) / 500 - 1 for _ in range(3))
    y = np.where(x1 + 2 * x2 - x3 + ((g.uint64(n) % 100) / 100 - 0.5) > 0, "bad", "good")
    ids = [f"k{i}" for i in range(n)]
    pd.DataFrame({"id": ids[:100], "x1": x1[:100], "y": y[:100]}).to_csv(tmp_path / "b.csv", index=False)
    keep = np.r_[20:n][::-1]  # another order, rows missing on each side
    pd.DataFrame({"id": [ids[i] for i in keep], "x2": x2[keep], "x3": x3[keep]}).to_csv(tmp_path / "p.csv", index=False)
    summaries = {}
    for mode in ("label_only", "both"):
        psi = {"key": "id", "mode": mode, "holder": "bank"} if mode == "label_only" else {"key": "id", "sort_by": "bank"}
        spec = PipelineSpec.from_dict({
            "parties": PARTIES, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
            "inputs": {"bank": str(tmp_path / "b.csv"), "partner": str(tmp_path / "p.csv")},
            "steps": [{"psi": psi}, {"split": {"test_fraction": 0.25, "seed": 2}},
                      {"train": {"model": "ss_lr", "label": "y", "pos_label": "bad", "features": "raw", "epochs": 5,
                                 "batch_size": 40, "learning_rate": 1.0}},
                      {"predict": {}}, {"evaluate": {}}]})
        summaries[mode] = simulate_pipeline(spec, mode="thread", verbose=False)
    lo, both = summaries["label_only"], summaries["both"]
    assert lo["bank"]["rows_aligned"] == both["bank"]["rows_aligned"] == 80
    np.testing.assert_allclose(lo["bank"]["test_scores"], both["bank"]["test_scores"], atol=2e-3)
    np.testing.assert_allclose(lo["partner"]["weights"]["partner"], both["partner"]["weights"]["partner"], atol=2e-3)
    assert lo["bank"]["auc"] > 0.8
