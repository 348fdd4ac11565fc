"""Vertical WOE/IV: Paillier-summed label counts must equal a plaintext computation on the same bins."""

import numpy as np
import pytest

from jointml.data.frames import from_pandas
from jointml.data.preprocessing import woe_iv_from_counts
from jointml.data.secure.woe import merge_map, vertical_woe
from jointml.mpc import MpcDevice
from jointml.runtime import PartyFailed, simulate

BANK_COLS = ["creditability", "status_of_existing_checking_account", "duration_in_month", "credit_history", "credit_amount"]


@pytest.fixture(scope="module")
def credit():
    from jointml.datasets import load_germancredit

    df = load_germancredit()
    return df[BANK_COLS], df.drop(columns=BANK_COLS)


def _run(bank, partner, woe_to_owner=False, method="chimerge", **kw):
    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: partner})
        w = vertical_woe(ctx, vdf, "creditability", pos_label="bad", method=method, key_bits=512, woe_to_owner=woe_to_owner, **kw)
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        feats = w.transform(ctx, vdf, mpc)
        p = feats["partner"]
        if hasattr(p, "reveal"):
            pv = p.reveal(to="bank").value if ctx.me in ("bank",) else (p.reveal(to="bank") and None)
        else:
            pv = p.value if ctx.me == "partner" else None
        bv = feats["bank"].value if ctx.me == "bank" else None
        own = {c: (cw.pos, cw.neg, cw.woe, cw.iv) for c, cw in w.col.items()}
        idx = w.bin_indices(ctx.me, vdf.local()) if ctx.me in ("bank", "partner") else None
        return {"iv": w.iv, "own": own, "partner_woe": pv, "bank_woe": bv, "idx": idx}

    return simulate(prog, ["bank", "partner", "dealer"], mode="thread")


@pytest.mark.parametrize("method", ["chimerge", "quantile"])
def test_counts_woe_iv_match_plaintext(credit, method):
    bank, partner = credit
    res = _run(bank, partner, method=method)
    y = (bank["creditability"] == "bad").to_numpy().astype(int)
    idx_p = res["partner"]["idx"]
    at_bank = res["bank"]["own"]
    for j, c in enumerate(partner.columns):
        nb = int(idx_p[:, j].max()) + 1
        pos = np.bincount(idx_p[:, j], weights=y, minlength=nb)
        neg = np.bincount(idx_p[:, j], weights=1 - y, minlength=nb)
        got_pos, got_neg, woe, iv = at_bank[c]
        assert (got_pos[:nb] == pos).all() and (got_neg[:nb] == neg).all(), c
        want_woe, _, want_iv = woe_iv_from_counts(got_pos, got_neg)
        np.testing.assert_allclose(woe, want_woe)
        assert iv == pytest.approx(want_iv)
        # the partner itself never gets the WOE values or counts
        assert res["partner"]["own"][c][2] is None and res["partner"]["own"][c][0] is None
    # secure substitution equals plaintext substitution with the same bins
    want = np.stack([at_bank[c][2][idx_p[:, j]] for j, c in enumerate(partner.columns)], axis=1)
    np.testing.assert_allclose(res["bank"]["partner_woe"], want, atol=1e-4)
    # the strongest variable of this data set
    iv = res["bank"]["iv"]
    assert max(iv, key=iv.get) == "status_of_existing_checking_account" and iv["status_of_existing_checking_account"] > 0.6


def test_woe_to_owner_mode(credit):
    bank, partner = credit
    res = _run(bank.iloc[:300], partner.iloc[:300], woe_to_owner=True, method="tree")
    idx_p = res["partner"]["idx"]
    at_bank = res["bank"]["own"]
    want = np.stack([at_bank[c][2][idx_p[:, j]] for j, c in enumerate(partner.columns)], axis=1)
    np.testing.assert_allclose(res["partner"]["partner_woe"], want)


def test_merge_map_keeps_missing_bin_and_orders_categories():
    pos = np.array([1, 10, 2, 9, 0])
    neg = np.array([50, 10, 48, 12, 3])
    m = merge_map("chimerge", True, pos, neg, max_bins=2, min_bin_frac=0.0)
    assert m[-1] == m.max() and m[0] == m[2] and m[1] == m[3] and m[0] != m[1]


def test_single_class_label_is_rejected(credit):
    bank, partner = credit
    b = bank.copy()
    b["creditability"] = "good"
    with pytest.raises(PartyFailed, match="single class"):
        _run(b.iloc[:50], partner.iloc[:50])


def test_missing_label_values_rejected(credit):
    bank, partner = credit
    b = bank.iloc[:50].copy()
    b.loc[3, "creditability"] = None
    with pytest.raises(PartyFailed, match="missing values"):
        _run(b, partner.iloc[:50])


@pytest.mark.parametrize("method", ["quantile", "equal_width"])
def test_unsupervised_methods_cut_max_bins(credit, method):
    """`max_bins` bounds the bins of numeric columns in the unsupervised methods too (they
    kept the 20 pre-bins: 21 bins per column for `max_bins: 5`, found by a user). A
    categorical column keeps one bin per category in these methods (nothing to order by)."""
    bank, partner = credit
    res = _run(bank.iloc[:400], partner.iloc[:400], method=method, max_bins=5)
    frame = {**{c: bank[c] for c in bank.columns if c != "creditability"}, **{c: partner[c] for c in partner.columns}}
    numeric = [c for c, v in frame.items() if v.dtype.kind in "if" and v.nunique() > 5]
    sizes = {c: len(res["bank"]["own"][c][0]) for c in numeric}  # bins incl. the missing-value bin
    # equal-width tails thinner than min_bin_frac (5 %) join their neighbour: fewer bins then
    assert len(numeric) >= 3 and max(sizes.values()) == 6 - (method == "equal_width") and min(sizes.values()) >= 2, sizes
    for c in numeric:  # every non-empty bin (the missing bin is empty here) holds >= min_bin_frac of the rows
        n = res["bank"]["own"][c][0] + res["bank"]["own"][c][1]
        assert (n[n > 0] >= 0.05 * n.sum()).all() and (n == 0).sum() == 1, c
