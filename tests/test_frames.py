"""Vertical and horizontal frames: partitions stay at their owners; bad input names party and column."""

import numpy as np
import pandas as pd
import pytest

from jointml.data.frames import from_pandas, read_csv, read_csv_horizontal
from jointml.runtime import NotOwnerError, PartyFailed, simulate


def _frames(tmp_path):
    g = np.random.default_rng(0)
    bank = pd.DataFrame({"age": g.integers(18, 80, 50), "income": g.normal(3000, 500, 50), "label": g.integers(0, 2, 50)})
    partner = pd.DataFrame({"spend": g.normal(200, 50, 50), "visits": g.integers(0, 30, 50)})
    bank.to_csv(tmp_path / "bank.csv", index=False)
    partner.to_parquet(tmp_path / "partner.parquet") if _has_parquet() else partner.to_csv(tmp_path / "partner.csv", index=False)
    return bank, partner


def _has_parquet():
    try:
        import pyarrow  # noqa: F401

        return True
    except ImportError:
        return False


def test_vertical_read_schema_and_ops(tmp_path):
    bank, partner = _frames(tmp_path)
    ppath = tmp_path / ("partner.parquet" if _has_parquet() else "partner.csv")

    def prog(ctx):
        vdf = read_csv(ctx, {"bank": str(tmp_path / "bank.csv"), "partner": str(ppath)})
        sub = vdf[["income", "spend"]]
        taken = vdf.take(np.array([3, 1, 4]))
        local = vdf.local()
        other = "partner" if ctx.me == "bank" else "bank"
        try:
            vdf.parts[other].value
            leaked = True
        except NotOwnerError:
            leaked = False
        mat = vdf.to_numpy(ctx.me, None).value if ctx.me in vdf.parts else None
        return vdf.shape, vdf.columns, sub.columns, taken.shape, None if local is None else local.shape, leaked, vdf.owner_of("spend"), mat

    res = simulate(prog, ["bank", "partner"], mode="thread")
    shape, cols, subcols, tshape, lshape, leaked, owner, mat = res["bank"]
    assert shape == (50, 5) and cols == {"bank": ["age", "income", "label"], "partner": ["spend", "visits"]}
    assert subcols == {"bank": ["income"], "partner": ["spend"]} and tshape == (3, 5)
    assert lshape == (50, 3) and not leaked and owner == "partner"
    np.testing.assert_allclose(mat, bank.to_numpy(dtype=float))
    assert res["partner"][4] == (50, 2)


def test_vertical_errors(tmp_path):
    bank, partner = _frames(tmp_path)

    def unaligned(ctx):
        from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: partner.iloc[:40]})

    with pytest.raises(PartyFailed, match="not aligned"):
        simulate(unaligned, ["bank", "partner"], mode="thread")

    def missing(ctx):
        read_csv(ctx, {"bank": str(tmp_path / "bank.csv"), "partner": str(tmp_path / "nope.csv")})

    with pytest.raises(PartyFailed, match="partner.*not found"):
        simulate(missing, ["bank", "partner"], mode="thread")

    def unknown_col(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: partner})
        vdf[["nosuch"]]

    with pytest.raises(PartyFailed, match="unknown column 'nosuch'"):
        simulate(unknown_col, ["bank", "partner"], mode="thread")

    def dup(ctx):
        from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: bank})

    with pytest.raises(PartyFailed, match="held by both"):
        simulate(dup, ["bank", "partner"], mode="thread")


@pytest.mark.parametrize("bad,msg", [("nan", "missing values"), ("text", "not numeric")])
def test_check_numeric_names_party_and_column(tmp_path, bad, msg):
    bank, partner = _frames(tmp_path)
    p = partner.copy()
    if bad == "nan":
        p.loc[7, "spend"] = np.nan
    else:
        p["spend"] = p["spend"].astype(str) + "x"

    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: bank, "partner": lambda: p})
        vdf.check_numeric()

    with pytest.raises(PartyFailed) as ei:
        simulate(prog, ["bank", "partner"], mode="thread")
    assert "partner" in str(ei.value) and "spend" in str(ei.value) and msg in str(ei.value)


def test_horizontal(tmp_path):
    g = np.random.default_rng(1)
    a = pd.DataFrame({"x": g.normal(size=10), "y": g.normal(size=10)})
    b = pd.DataFrame({"x": g.normal(size=7), "y": g.normal(size=7)})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)

    def prog(ctx):
        h = read_csv_horizontal(ctx, {"a": str(tmp_path / "a.csv"), "b": str(tmp_path / "b.csv")})
        return h.shape, h.columns, h["x"].columns, None if h.local() is None else len(h.local())

    res = simulate(prog, ["a", "b"], mode="thread")
    assert res["a"][:3] == ((17, 2), ["x", "y"], ["x"]) and res["a"][3] == 10 and res["b"][3] == 7

    def bad(ctx):
        from_pandas(ctx, {"a": lambda: a, "b": lambda: b.rename(columns={"y": "z"})}, vertical=False)

    with pytest.raises(PartyFailed, match="different columns"):
        simulate(bad, ["a", "b"], mode="thread")
