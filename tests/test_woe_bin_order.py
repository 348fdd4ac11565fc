"""Vertical WOE, issue 11 item 9: the pre-bin -> bin map the feature holder receives must not
rank its categories by the label holder's bad rate; the WOE/IV results are unchanged."""

import numpy as np
import pandas as pd
import pytest

from jointml.core.prg import Prg
from jointml.data.frames import from_pandas
from jointml.data.preprocessing import EqualFrequencyBinner, woe_iv_from_counts
from jointml.data.secure.woe import final_counts, merge_map, vertical_woe
from jointml.runtime import simulate

CATS = ["a", "b", "c", "d", "e"]
RATES = {"a": 0.5, "b": 0.05, "c": 0.8, "d": 0.25, "e": 0.65}  # bad rate per category: order b d a e c


def _data(n=500):
    rng = np.random.default_rng(7)
    cat = np.array(CATS)[np.arange(n) % len(CATS)]
    y = np.array([int(rng.random() < RATES[c]) for c in cat])
    y[:2] = [0, 1]
    return pd.DataFrame({"y": y}), pd.DataFrame({"cat": pd.Categorical(cat, categories=CATS)})


def _fit(bank, shop):
    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: bank, "shop": lambda: shop})
        w = vertical_woe(ctx, vdf, "y", method="tree", max_bins=8, min_bin_frac=0.0, key_bits=512)
        if ctx.me == "shop":
            return w.col["cat"].bin_map()[:-1].tolist(), w.bin_indices("shop", shop)[:, 0]
        return w.col["cat"].woe, w.col["cat"].iv

    return simulate(prog, ["bank", "shop"], mode="thread")


def _plaintext(bank, shop):
    pre = EqualFrequencyBinner(n_bins=20, handle_unknown="missing").fit(shop)
    codes = np.asarray(pre.transform(shop))[:, 0]
    nb = pre.get_bins("cat").n_bins
    y = bank["y"].to_numpy()
    pos = np.bincount(codes, weights=y, minlength=nb).astype(np.int64)
    cnt = np.bincount(codes, minlength=nb).astype(np.int64)
    m = merge_map("tree", True, pos, cnt - pos, 8, 0.0)
    woe, _, iv = woe_iv_from_counts(*final_counts(m, pos, cnt - pos))
    return np.asarray(woe)[m[codes]], float(iv), m[:-1].tolist()


def test_partner_map_does_not_rank_categories_by_bad_rate():
    bank, shop = _data()
    want_rows, want_iv, ranked = _plaintext(bank, shop)
    assert len(set(ranked)) >= 4  # the categories stay apart: the old map ranked them b < d < a < e < c
    maps = []
    for _ in range(4):
        res = _fit(bank, shop)
        got_map, idx = res["shop"]
        woe, iv = res["bank"]
        # same partition of the categories, same WOE per row, same IV as the plaintext reference
        assert [got_map.index(v) for v in got_map] == [ranked.index(v) for v in ranked]
        np.testing.assert_allclose(woe[idx], want_rows)
        assert iv == pytest.approx(want_iv)
        maps.append(got_map)
    # the old code sent the bad-rate ranking itself, identical in every run
    assert any(m != ranked for m in maps) and len({tuple(m) for m in maps}) > 1, maps


def test_secret_permutation_uses_the_prg_and_is_uniform_enough():
    from jointml.data.secure.woe import secret_permutation, secret_relabel

    assert (secret_permutation(6, Prg(b"k" * 16)) == secret_permutation(6, Prg(b"k" * 16))).all()
    seen = {tuple(secret_permutation(3).tolist()) for _ in range(200)}
    assert len(seen) == 6  # all 3! orders occur
    m = np.array([0, 0, 1, 2, 2, 3])
    r = secret_relabel(m)
    assert sorted(set(r.tolist())) == [0, 1, 2, 3] and all((m == m[i]).tolist() == (r == r[i]).tolist() for i in range(6))
