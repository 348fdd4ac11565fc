"""DP noise under MPC and DP statistics of partitioned frames: accurate to the noise, charged
before they run, and each compute party's noise alone calibrated to the stated epsilon."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import run_mpc, shared
from jointml.core.errors import DataError
from jointml.data.frames import from_pandas
from jointml.data.secure.dp_stats import dp_describe, dp_group_stats, dp_sum_horizontal
from jointml.dp import Accountant
from jointml.dp.budget import BudgetExceeded, BudgetLedger
from jointml.dp.secure import add_noise
from jointml.mpc import MpcDevice
from jointml.runtime import simulate

pytest.importorskip("dp_accounting")


def _dlap_var(a: float) -> float:
    return 2 * math.exp(-a) / (1 - math.exp(-a)) ** 2


def test_every_compute_party_adds_its_own_full_noise(protocol):
    def fn(ctx, mpc):
        x = shared(ctx, mpc, np.full(4000, 7.0))
        noisy = add_noise(x, sensitivity=1.0, epsilon=1.0, mechanism="laplace", dim=1)
        return noisy.value.reveal(), noisy.event, noisy.epsilon

    val, event, eps = run_mpc(protocol, fn)["alice"]
    n = 2 if protocol == "semi2k" else 3
    assert eps == pytest.approx(1.0, abs=1e-9)
    grid_units = (val - 7.0) * 2**18
    assert np.all(np.abs(grid_units - np.rint(grid_units)) < 1e-6)  # noise lies on the fixed-point grid
    single = _dlap_var(event.params["parameter"])
    # the total variance is n single noises: no party's noise is shared with (or known to) another
    assert grid_units.var() / (n * single) == pytest.approx(1.0, abs=0.15)


def test_gaussian_noise_under_mpc_has_the_stated_sigma():
    def fn(ctx, mpc):
        x = shared(ctx, mpc, np.zeros(1500))
        return add_noise(x, 1.0, 1.0, 1e-5, mechanism="gaussian", dim=1)

    noisy_alice = run_mpc("semi2k", lambda ctx, mpc: (lambda r: (r.value.reveal(), r.event, r.epsilon))(fn(ctx, mpc)))["alice"]
    val, event, eps = noisy_alice
    sigma = (1.0 * 2**18 + 1) / math.sqrt(2 * event.params["rho"]) / 2**18
    assert eps <= 1.0 + 1e-9
    assert val.std() / (math.sqrt(2) * sigma) == pytest.approx(1.0, abs=0.08)


def _frames(rng, n=3000):
    age = rng.integers(18, 80, size=n).astype(float)
    y = (rng.random(n) < 0.3).astype(int)
    inc = np.clip(20 + 0.5 * age + 30 * y + rng.normal(0, 5, size=n), 0, 150)
    return pd.DataFrame({"age": age, "inc": inc}), pd.DataFrame({"y": y})


def test_dp_describe_is_close_to_the_plaintext_and_composes_to_epsilon():
    a, b = _frames(np.random.default_rng(1))

    def prog(ctx):
        vdf = from_pandas(ctx, {"alice": a, "bob": b})
        return dp_describe(ctx, vdf, {"age": (18.0, 80.0), "y": (0.0, 1.0)}, epsilon=2.0, bins=4, quantiles=(0.5,))

    out = simulate(prog, ["alice", "bob"], mode="thread")
    t = out["bob"].table
    assert t.equals(out["alice"].table)  # one release, the same at every party
    assert abs(t.loc["mean", "age"] - a["age"].mean()) < 0.5
    assert abs(t.loc["50%", "age"] - a["age"].median()) < 2.0
    hist = np.histogram(np.clip(a["age"], 18, 80), bins=np.linspace(18, 80, 5))[0]
    noisy = t["age"].iloc[2:6].to_numpy()
    assert np.all(np.abs(noisy - hist) < 60)
    acc = Accountant()
    for ev in out["bob"].events:
        acc.add(ev)
    assert 3.99 < acc.epsilon(0.0) <= 4.0 + 1e-9  # 2 columns x epsilon 2 (scales rounded up: a little less)
    assert out["bob"].epsilon == {"age": 2.0, "y": 2.0}


def test_dp_describe_is_refused_before_it_runs_when_the_budget_is_spent(tmp_path):
    a, b = _frames(np.random.default_rng(2), n=200)

    def prog(ctx):
        led = BudgetLedger(str(tmp_path / f"{ctx.me}.sqlite"), party=ctx.me)
        led.declare("crm", 1.5, 0.0)
        vdf = from_pandas(ctx, {"alice": a, "bob": b})
        dp_describe(ctx, vdf, {"age": (18.0, 80.0)}, 1.0, stats=("mean",), ledger=led, sources="crm", release="d1")
        try:
            dp_describe(ctx, vdf, {"age": (18.0, 80.0)}, 1.0, stats=("mean",), ledger=led, sources="crm", release="d2")
        except BudgetExceeded as e:
            return str(e), led.spent("crm")

    out = simulate(prog, ["alice", "bob"], mode="thread")
    for p in ("alice", "bob"):
        msg, _ = out[p]
        assert "'crm'" in msg and "party 'alice'" in msg and "epsilon=0.5" in msg
    assert out["alice"][1] == (1.0, 0.0) and out["bob"][1] == (0.0, 0.0)  # bob's column was not touched


def test_dp_describe_refuses_missing_values_at_every_party():
    def prog(ctx):
        vdf = from_pandas(ctx, {"alice": pd.DataFrame({"x": [1.0, np.nan]}), "bob": pd.DataFrame({"y": [1, 2]})})
        try:
            dp_describe(ctx, vdf, {"x": (0.0, 1.0)}, 1.0)
        except DataError as e:
            return str(e)

    out = simulate(prog, ["alice", "bob"], mode="thread")
    assert "missing" in out["bob"] and "alice" in out["bob"]


def test_dp_group_stats_under_mpc_match_the_plaintext_groupby():
    a, b = _frames(np.random.default_rng(3))

    def prog(ctx):
        vdf = from_pandas(ctx, {"alice": a, "bob": b})
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        return dp_group_stats(ctx, vdf, mpc, "inc", "y", [0, 1], (0.0, 150.0), epsilon=4.0)

    out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
    assert out["carol"].table is None  # the dealer gets no result
    t = out["alice"].table
    ref = a.assign(y=b["y"]).groupby("y")["inc"].agg(["count", "sum", "mean"])
    assert np.all(np.abs(t["count"].to_numpy() - ref["count"].to_numpy()) < 40)
    assert np.all(np.abs(t["mean"].to_numpy() - ref["mean"].to_numpy()) < 3.0)
    assert out["alice"].epsilon["inc"] == pytest.approx(4.0, abs=1e-6)


def test_dp_sum_horizontal_adds_noise_under_mpc():
    rng = np.random.default_rng(4)
    parts = {"alice": pd.DataFrame({"x": rng.random(800)}), "bob": pd.DataFrame({"x": rng.random(1200) * 2})}

    def prog(ctx):
        hdf = from_pandas(ctx, parts, vertical=False)
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        return dp_sum_horizontal(ctx, hdf, mpc, {"x": (0.0, 2.0)}, 1.0, 1e-6, mechanism="gaussian")

    res = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    true = sum(float(np.clip(p["x"], 0, 2).sum()) for p in parts.values())
    assert abs(res.table.loc["sum", "x"] - true) < 60
    assert res.epsilon["x"] <= 1.0 + 1e-9 and res.delta == 1e-6
