"""Issue 3 end to end: German credit split into a bank and a partner file with synthetic ids and
rows missing on each side; PSI aligns them, vertical WOE/IV equal a plaintext computation on the
same bins, and statistics/metrics equal pandas/scikit-learn."""

import numpy as np
import pandas as pd
import pytest

from jointml.data.frames import VDataFrame
from jointml.data.preprocessing import woe_iv_from_counts
from jointml.data.secure.stats import corr, describe
from jointml.data.secure.woe import vertical_woe
from jointml.demo.credit_demo import make_demo_files
from jointml.mpc import MpcDevice
from jointml.psi import psi_frame
from jointml.runtime import simulate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("flow"))


def _prog(ctx, files):
    raw = {p: ctx.party(p).run(lambda p=p: pd.read_csv(files[p])) for p in ("bank", "partner")}
    aligned = psi_frame(ctx, raw, key_columns=["id"], sort_by="bank", progress=False)
    ids = aligned[ctx.me].value["id"].tolist() if ctx.me in aligned else None
    vdf = VDataFrame(ctx, {p: ctx.party(p).run(lambda df: df.drop(columns=["id"]), aligned[p]) for p in aligned})
    woe = vertical_woe(ctx, vdf, "creditability", pos_label="bad", method="chimerge", key_bits=512)
    idx = woe.bin_indices(ctx.me, vdf.local()) if ctx.me in vdf.parts else None
    mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    num = {"bank": ["duration_in_month", "credit_amount"], "partner": ["age_in_years", "present_residence_since"]}
    R = corr(ctx, vdf[num["bank"] + num["partner"]], mpc)
    desc = describe(ctx, vdf)
    own = {c: (cw.pos, cw.neg, cw.woe, cw.iv) for c, cw in woe.col.items() if cw.pos is not None}
    return {"ids": ids, "idx": idx, "own": own, "corr": R, "desc": desc, "cols": woe.columns}


def test_psi_woe_stats_match_plaintext(files):
    res = simulate(_prog, ["bank", "partner", "dealer"], mode="thread", args=(files,))
    bank = pd.read_csv(files["bank"])
    partner = pd.read_csv(files["partner"])
    joined = bank.merge(partner, on="id", how="inner", sort=False)
    # PSI: both sides hold exactly the shared ids, in the same order
    assert res["bank"]["ids"] == res["partner"]["ids"] == joined["id"].tolist()
    y = (joined["creditability"] == "bad").to_numpy().astype(int)
    at_bank = res["bank"]["own"]
    for party in ("bank", "partner"):
        idx = res[party]["idx"]
        for j, c in enumerate(res["bank"]["cols"][party]):
            nb = len(at_bank[c][0])
            pos = np.bincount(idx[:, j], weights=y, minlength=nb)
            neg = np.bincount(idx[:, j], weights=1 - y, minlength=nb)
            np.testing.assert_array_equal(at_bank[c][0], pos)
            np.testing.assert_array_equal(at_bank[c][1], neg)
            woe, _, iv = woe_iv_from_counts(pos, neg)
            np.testing.assert_allclose(at_bank[c][2], woe)
            assert at_bank[c][3] == pytest.approx(iv)
    # statistics equal pandas on the joined data
    cols = ["duration_in_month", "credit_amount", "age_in_years", "present_residence_since"]
    np.testing.assert_allclose(np.asarray(res["bank"]["corr"]), np.corrcoef(joined[cols].to_numpy(float).T), atol=1e-6)
    d = res["partner"]["desc"]
    np.testing.assert_allclose(d.loc["mean", "credit_amount"], joined["credit_amount"].mean())
    np.testing.assert_allclose(d.loc["std", "age_in_years"], joined["age_in_years"].std())
