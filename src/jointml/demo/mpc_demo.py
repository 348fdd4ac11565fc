"""The built-in MPC demo: a bank and a partner compute joint statistics on secrets.

The bank knows each customer's monthly income, the partner (an e-commerce lender)
knows the same customers' outstanding debt. Neither may show its column to the
other. Together, with a dealer that supplies correlated randomness and sees no
data, they compute the debt-to-income ratio of every customer under MPC and reveal
to the bank only: the mean ratio, how many customers are above 0.4, and the
correlation-free aggregate — never an individual ratio or debt.
"""

from __future__ import annotations

import time

import numpy as np

from ..core.prg import public_rng
from ..mpc import MpcDevice
from ..runtime import simulate


def _data(rows: int):
    # Synthetic but realistic: log-normal incomes, debts correlated with income.
    # Public demo data, so numpy's generator is fine here (it protects nothing).
    g = public_rng(7)
    income = np.round(np.exp(g.normal(8.3, 0.5, rows)), 2)  # ~4,000 a month
    debt = np.round(income * np.clip(g.gamma(2.0, 0.12, rows), 0, 3) * 1.0, 2)
    return income, debt


def _program(ctx, protocol: str, rows: int, parties: list[str], dealer):
    income, debt = _data(rows)
    mpc = MpcDevice(ctx, parties, protocol=protocol, dealer=dealer)
    bank, partner = parties[0], parties[1]
    t0 = time.perf_counter()
    inc = ctx.party(bank).run(lambda: income / 1000.0).to(mpc)
    dbt = ctx.party(partner).run(lambda: debt / 1000.0).to(mpc)
    # ratio = debt / income under MPC (secure reciprocal), then aggregates.
    from ..mpc import functions

    ratio = dbt * functions.reciprocal(inc)
    high = ratio > 0.4
    mean_ratio = ratio.mean()
    n_high = high.sum()
    out_mean = mean_ratio.reveal(to=bank)
    out_high = n_high.reveal(to=bank)
    seconds = time.perf_counter() - t0
    view = {}
    if ctx.me in mpc.parties:
        # What this party holds of the partner's debt column: its share, nothing else.
        view["share_of_debt_first3"] = [int(v) for v in np.asarray(dbt.share).reshape(-1)[:3]] if dbt.share is not None else []
    result = {"party": ctx.me, "seconds": seconds, "stats": ctx.stats(), "view": view}
    if ctx.me == bank:
        result["mean_ratio"] = float(out_mean.value)
        result["n_high"] = int(out_high.value)
        result["plain_mean_ratio"] = float(np.mean(debt / income))
        result["plain_n_high"] = int(np.sum(debt / income > 0.4))
    return result


def run(mode: str = "process", protocol: str = "semi2k", rows: int = 1000, verbose: bool = True) -> dict:
    """Run the joint-statistics demo; returns the summary the bank sees (and prints it).

    >>> s = run(mode="thread", rows=40, verbose=False)
    >>> abs(s["mean_ratio"] - s["plain_mean_ratio"]) < 1e-2, s["customers_above_0.4"] == s["plain_customers_above_0.4"]
    (True, True)
    """
    if protocol == "semi2k":
        parties, dealer, cluster = ["bank", "partner"], "dealer", ["bank", "partner", "dealer"]
    else:
        parties, dealer, cluster = ["bank", "partner", "auditor"], None, ["bank", "partner", "auditor"]
    if verbose:
        print(
            f"jointml demo: {len(cluster)} parties ({', '.join(cluster)}) as local {mode}es"
            f"{' over mutual TLS' if mode == 'process' else ''}, protocol {protocol}, {rows} customers"
        )
        print("  bank holds incomes, partner holds debts; computing debt-to-income under MPC ...")
    t0 = time.perf_counter()
    res = simulate(_program, cluster, mode=mode, args=(protocol, rows, parties, dealer))
    wall = time.perf_counter() - t0
    b = res[parties[0]]
    total_bytes = sum(r["stats"]["bytes_sent"] for r in res.values())
    summary = {
        "demo": "joint debt-to-income statistics",
        "protocol": protocol,
        "rows": rows,
        "mean_ratio": round(b["mean_ratio"], 5),
        "plain_mean_ratio": round(b["plain_mean_ratio"], 5),
        "customers_above_0.4": b["n_high"],
        "plain_customers_above_0.4": b["plain_n_high"],
        "seconds": round(max(r["seconds"] for r in res.values()), 3),
        "wall_seconds": round(wall, 3),
        "bytes": total_bytes,
        "rounds": max(r["stats"]["rounds"] for r in res.values()),
        "per_party": {
            p: {
                "bytes_sent": r["stats"]["bytes_sent"],
                "bytes_recv": r["stats"]["bytes_recv"],
                "messages_recv": r["stats"]["msgs_recv"],
            }
            for p, r in res.items()
        },
    }
    if verbose:
        print()
        print(
            f"  revealed to the bank only: mean debt/income = {summary['mean_ratio']:.4f}"
            f" (plaintext check {summary['plain_mean_ratio']:.4f}), customers above 0.4 = {summary['customers_above_0.4']}"
            f" (plaintext check {summary['plain_customers_above_0.4']})"
        )
        print("  what each party saw:")
        for p, r in res.items():
            s = r["stats"]
            v = r["view"].get("share_of_debt_first3")
            seen = (
                f"its share of the partner's debts starts {v} (uniformly random ring elements)"
                if v
                else "no shares (supplies correlated randomness only; receives no data)"
            )
            print(
                f"    {p:<8} sent {s['bytes_sent'] / 1e3:9.1f} kB, received {s['bytes_recv'] / 1e3:9.1f} kB "
                f"in {s['msgs_recv']} messages; {seen}"
            )
        print(
            f"  time {summary['seconds']:.2f} s (startup and TLS handshakes included: {summary['wall_seconds']:.2f} s), "
            f"traffic {total_bytes / 1e6:.2f} MB, {summary['rounds']} rounds"
        )
    return summary
