"""Issue 11 item 13 (data layer): the semi2k dealer receives only what it needs.

The credit pipeline runs with a spy on the dealer's received messages: no frame dtypes, no
per-column WOE bin counts (only each owner's total width), no statistics result; the job
still runs and gives the plaintext twin's AUC. Nor any column name of the inputs but the key
and label the spec names (the frames give it row and column counts, placeholder names), on
the wire or in its saved files, in the credit job and `predict_job`: see docs/security.md.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jointml.data.frames import from_pandas
from jointml.data.secure import stats
from jointml.demo.credit_demo import make_demo_files, plaintext_baseline
from jointml.jobs import simulate_pipeline
from jointml.jobs.credit import CreditJobConfig, credit_pipeline
from jointml.mpc import MpcDevice
from jointml.runtime import simulate


def _spy_dealer(monkeypatch, dealer: str) -> list[tuple[str, dict, list]]:
    from jointml.net import link as L

    seen: list[tuple[str, dict, list]] = []
    recv = L.Communicator.recv

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        if self.me == dealer:
            seen.append((tag, dict(msg.meta or {}), [np.asarray(x) for x in msg.arrays]))
        return msg

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    return seen


def test_credit_job_dealer_gets_no_dtypes_nor_bin_counts(monkeypatch, tmp_path):
    files = make_demo_files(tmp_path / "data")
    seen = _spy_dealer(monkeypatch, "dealer")
    cfg = CreditJobConfig(inputs={"bank": str(files["bank"]), "partner": str(files["partner"])}, key_bits=512,
                          verbose=False)
    res = simulate_pipeline(credit_pipeline(cfg, ["bank", "partner", "dealer"]), mode="thread", verbose=False)
    base = plaintext_baseline(files, cfg, res["bank"])
    assert abs(res["bank"]["auc"] - base["auc"]) < 0.01  # same job, same WOE features (SGD vs the twin's Newton fit)
    tags = [t for t, _, _ in seen]
    assert seen, "the dealer received nothing at all: the spy is not wired"
    assert not any(t.startswith("woe:nb") for t in tags)  # per-column bin counts: data parties only
    widths = [m for t, m, _ in seen if t.startswith("woe:width")]
    assert widths and all(set(m) == {"width"} and type(m["width"]) is int for m in widths)
    metas = json.dumps([m for _, m, _ in seen])
    assert "dtypes" not in metas and "n_bins" not in metas
    for p in ("bank", "partner"):  # no dtype of any input column reached the dealer
        df = pd.read_csv(files[p])
        assert not any(f'"{t}"' in metas for t in {str(x) for x in df.dtypes})


@pytest.mark.parametrize("local_blocks", ["reveal", "secret"])
def test_stats_results_do_not_reach_the_dealer(monkeypatch, local_blocks):
    x = np.linspace(-1, 1, 30)
    a, b = pd.DataFrame({"x": x, "z": x**2}), pd.DataFrame({"y": np.cos(3 * x)})
    seen = _spy_dealer(monkeypatch, "carol")

    def prog(ctx):
        vdf = from_pandas(ctx, {"alice": a, "bob": b})
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        before = len(seen) if ctx.me == "carol" else None
        r = stats.corr(ctx, vdf, mpc, local_blocks=local_blocks)
        v = stats.vif(ctx, vdf, mpc, secure=True, max_vif=20.0)
        return r, v, before

    out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
    assert out["carol"][0] is None and out["carol"][1] is None
    ref = np.corrcoef(pd.concat([a, b], axis=1).to_numpy().T)
    np.testing.assert_allclose(out["alice"][0].to_numpy(), ref, atol=1e-4)
    np.testing.assert_allclose(out["bob"][0].to_numpy(), out["alice"][0].to_numpy())
    assert out["bob"][1].tolist() == out["alice"][1].tolist()
    during = seen[out["carol"][2]:]
    # what the dealer got during the statistics: shapes only, never a float of the result
    assert not any(t.split(":")[0] in ("public", "corr-local") for t, _, _ in during)
    assert all(arr.dtype != np.float64 for _, _, arrs in during for arr in arrs)


def test_describe_does_not_reach_the_dealer(monkeypatch):
    """Issue 11 item 13: describe() with no `to` sends its table to the frame's parties only;
    with `to` naming the dealer, the caller asked for it and the dealer gets it."""
    a, b = pd.DataFrame({"x": [1.0, 2.0, 3.0]}), pd.DataFrame({"y": [4.0, 5.0, 6.0]})
    seen = _spy_dealer(monkeypatch, "carol")

    def prog(ctx, to):
        vdf = from_pandas(ctx, {"alice": a, "bob": b})
        before = len(seen) if ctx.me == "carol" else None
        return stats.describe(ctx, vdf, to=to), before

    out = simulate(prog, ["alice", "bob", "carol"], mode="thread", args=(None,))
    assert out["carol"][0] is None
    assert not any(t.startswith("describe") for t, _, _ in seen[out["carol"][1]:])
    assert out["alice"][0].loc["mean", "y"] == out["bob"][0].loc["mean", "y"] == 5.0
    asked = simulate(prog, ["alice", "bob", "carol"], mode="thread", args=(["alice", "carol"],))
    assert asked["bob"][0] is None and asked["carol"][0].loc["mean", "x"] == 2.0


# -- no column name reaches the dealer (issue 11 item 13, the last part) ------------------------------------
SPEC_NAMED = {"id", "creditability"}  # the key and the label: named by the pipeline spec the dealer runs


def _strings(x) -> list[str]:
    if isinstance(x, str):
        return [x]
    if isinstance(x, dict):
        return [s for k, v in x.items() for s in _strings(k) + _strings(v)]
    if isinstance(x, (list, tuple)):
        return [s for v in x for s in _strings(v)]
    return []


def _named(text: str, names: set[str]) -> set[str]:
    """The names in `names` that `text` holds as a whole word (a short name inside another word is no hit)."""
    import re

    return {n for n in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", text)}


def _leaks(seen: list, out_dir, names: set[str]) -> dict[str, set[str]]:
    """Where a column name shows in what the dealer received (meta, string arrays) or saved."""
    found: dict[str, set[str]] = {}
    for tag, meta, arrays in seen:
        strs = _strings(meta) + [str(v) for a in arrays if a.dtype.kind in "USO" for v in a.ravel().tolist()]
        hit = {n for s in strs for n in _named(s, names)}
        hit |= {n for a in arrays if a.dtype.kind in "USO" for n in names if n in str(a.tolist())}
        if hit:
            found[f"received {tag}"] = hit
    for f in out_dir.rglob("*"):
        if f.is_file() and (".dealer." in f.name or "dealer" in f.parts):
            text = f.read_text(errors="replace")
            if f.suffix == ".json":  # every key and value of the document
                hit = {n for s in _strings(json.loads(text)) for n in _named(s, names)}
            else:  # a report: prose, so only the long (underscored) names are searched
                hit = _named(text, {n for n in names if "_" in n})
            if hit:
                found[str(f)] = hit
    return found


@pytest.mark.parametrize("model,psi_mode", [("ss_lr", "label_only"), ("ss_lr", "both"), ("secureboost", "both")])
def test_no_column_name_reaches_the_dealer(monkeypatch, tmp_path, model, psi_mode):
    """The credit job and `jointml predict`: the dealer gets row and column counts, never a column
    name of the bank's or the partner's inputs (but the spec's key and label), on the wire or in its
    saved files; the model it helped train scores as the job did."""
    from jointml.jobs import predict_job

    files = make_demo_files(tmp_path / "data")
    for p, n in (("bank", 300), ("partner", 280)):  # a smaller job, rows missing on each side
        pd.read_csv(files[p]).iloc[:n].to_csv(files[p], index=False)
    names = {c for p in ("bank", "partner") for c in pd.read_csv(files[p]).columns} - SPEC_NAMED
    seen = _spy_dealer(monkeypatch, "dealer")
    out = tmp_path / "out"
    cfg = CreditJobConfig(inputs={p: str(f) for p, f in files.items()}, key_bits=512, verbose=False, model_type=model,
                          psi_mode=psi_mode, output_dir=str(out), model={"epochs": 10, "batch_size": 64},
                          trees={"n_estimators": 2, "max_depth": 2, "max_bin": 8})
    res = simulate_pipeline(credit_pipeline(cfg, ["bank", "partner", "dealer"]), mode="thread", verbose=False)
    assert res["bank"]["psi_mode"] == psi_mode and res["bank"]["auc"] > 0.6
    # the dealer's copy of the frame: the same shapes, placeholder names
    counts = {p: len(c) for p, c in res["bank"]["feature_names"].items()}
    assert {p: len(c) for p, c in res["dealer"]["feature_names"].items()} == counts
    pred = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread",
                    args=(str(out / "model"), {p: str(f) for p, f in files.items()}, "bank"),
                    kwargs={"psi_mode": psi_mode})
    assert seen and any(t.startswith("schema-out") for t, _, _ in seen)  # the spy saw the frames' schemas
    assert _leaks(seen, out, names) == {}
    # results unchanged: the saved model, scored through the dealer's count-only view, gives the
    # job's own test scores (same rows in the bank's order, same public split)
    from jointml.data.split import public_split

    s = np.asarray(pred["bank"]["scores"])
    assert len(s) == res["bank"]["rows_aligned"] == pred["dealer"]["rows"]
    _, te = public_split(len(s), cfg.test_fraction, cfg.seed)
    np.testing.assert_allclose(s[te], res["bank"]["test_scores"], atol=2e-3)


def test_dealer_with_placeholder_names_follows_corr_and_vif_of_a_constant_column(monkeypatch):
    """With public names declared (as in a job), the dealer holds placeholders and still takes its
    part in `corr` and the secure `vif` when a column is constant: the owners' verdict names the
    constant column by its position (the dealer needs the shape of the sub-matrix), never by name."""
    from jointml.data.frames import public_columns

    a = pd.DataFrame({"x": [1.0, 2.0, 4.0, 3.0], "k": [5.0, 5.0, 5.0, 5.0]})
    b = pd.DataFrame({"y": [3.0, 1.0, 2.0, 5.0], "z": [1.0, 0.0, 2.0, 2.0]})
    seen = _spy_dealer(monkeypatch, "carol")

    def prog(ctx):
        public_columns(ctx, [])
        vdf = from_pandas(ctx, {"alice": a, "bob": b})
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        return vdf.columns, stats.corr(ctx, vdf, mpc), stats.vif(ctx, vdf, mpc, secure=True, max_vif=50.0)

    out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
    assert out["carol"][0] == {"alice": ["<alice:0>", "<alice:1>"], "bob": ["<bob:0>", "<bob:1>"]}
    assert out["carol"][1] is None and out["carol"][2] is None
    r = out["alice"][1]
    assert np.isnan(r.loc["k", "y"]) and abs(r.loc["x", "y"] - np.corrcoef(a.x, b.y)[0, 1]) < 1e-4
    v = out["alice"][2]
    assert np.isnan(v["k"]) and np.isfinite(v[["x", "y", "z"]]).all()
    got = repr([(t, m) for t, m, _ in seen])
    assert not any(f"'{name}'" in got for name in ("x", "k", "y", "z"))  # no column name reached the dealer
