"""`jointml bench mpc`: secure operators on 1M elements / 1000x1000 matrices.

Parties run as separate processes connected by TCP + mutual TLS on loopback. The
time covers secret-sharing the inputs, computing and revealing the output; the
numpy time for the same operation in plaintext is reported beside it.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from ..core.prg import public_rng
from ..mpc import MpcDevice
from ..runtime import simulate

FIGURES = ["mul_1M", "lt_1M", "matmul_1000", "sigmoid_1M_seg3", "sigmoid_1M_poly", "sigmoid_1M_accurate"]

# SecretFlow SPU 0.9.5 on this machine class (simulator, one process), from issue 2.
SPU_REFERENCE = {
    "semi2k": {"mul_1M": 0.52, "lt_1M": 2.31, "matmul_1000": 1.81, "sigmoid_1M": 13.2},
    "aby3": {"mul_1M": 0.62, "lt_1M": 3.33, "matmul_1000": 1.98, "sigmoid_1M": 12.6},
}


def _inputs(figure: str):
    # Public benchmark data (not secret): numpy's generator is fine here.
    g = public_rng(42)
    if figure.startswith("matmul"):
        return g.normal(size=(1000, 1000)), g.normal(size=(1000, 1000))
    return g.normal(size=1_000_000) * 4, g.normal(size=1_000_000) * 4


def _plain(figure: str, x, y):
    if figure == "mul_1M":
        return x * y
    if figure == "lt_1M":
        return x < y
    if figure == "matmul_1000":
        return x @ y
    return 1 / (1 + np.exp(-x))


def _barrier(ctx, members):
    for p in members:
        if p != ctx.me:
            ctx.comm.link(p).send("bench-barrier")
    for p in members:
        if p != ctx.me:
            ctx.comm.link(p).recv("bench-barrier")


def _program(ctx, protocol: str, figure: str, parties: list[str], dealer: str | None):
    mpc = MpcDevice(ctx, parties, protocol=protocol, dealer=dealer)
    xv, yv = _inputs(figure)
    a, b = parties[0], parties[1]
    _barrier(ctx, mpc.members)
    ctx.comm.reset_stats()
    t0 = time.perf_counter()
    x = ctx.party(a).run(lambda: xv).to(mpc)
    if figure.startswith("sigmoid"):
        mode = figure.rsplit("_", 1)[1]
        from ..mpc import functions as nonlinear

        z = nonlinear.sigmoid(x, mode=mode)
    else:
        y = ctx.party(b).run(lambda: yv).to(mpc)
        if figure == "mul_1M":
            z = x * y
        elif figure == "lt_1M":
            z = x < y
        elif figure == "matmul_1000":
            z = x @ y
        else:
            raise ValueError(f"unknown figure {figure}")
    out = z.reveal(to=a)
    seconds = time.perf_counter() - t0
    stats = ctx.comm.stats()
    err = None
    if ctx.me == a:
        ref = _plain(figure, xv, yv)
        err = float(np.max(np.abs(out.value - ref))) if ref.size else 0.0
    return {"seconds": seconds, "stats": stats, "max_abs_error": err}


def run_figure(protocol: str, figure: str) -> dict:
    if protocol == "semi2k":
        parties, dealer, cluster = ["alice", "bob"], "dealer", ["alice", "bob", "dealer"]
    elif protocol == "aby3":
        parties, dealer, cluster = ["alice", "bob", "carol"], None, ["alice", "bob", "carol"]
    else:
        raise ValueError(f"unknown protocol {protocol}")
    res = simulate(_program, cluster, mode="process", args=(protocol, figure, parties, dealer), options={"warm_heap_mb": 768})
    xv, yv = _inputs(figure)
    t0 = time.perf_counter()
    _plain(figure, xv, yv)
    base = time.perf_counter() - t0
    n = xv.size if not figure.startswith("matmul") else xv.shape[0] * yv.shape[1]
    total_bytes = sum(r["stats"]["bytes_sent"] for r in res.values())
    ref_key = "sigmoid_1M" if figure.startswith("sigmoid") else figure
    spu = SPU_REFERENCE[protocol].get(ref_key)
    seconds = max(r["seconds"] for r in res.values())
    return {
        "figure": figure,
        "protocol": protocol,
        "parties": len(parties),
        "seconds": round(seconds, 4),
        "bytes": total_bytes,
        "bytes_per_element": round(total_bytes / n, 2),
        "rounds": max(r["stats"]["rounds"] for r in res.values()),
        "baseline_seconds": round(base, 5),
        "spu_seconds": spu,
        "speedup_vs_spu": round(spu / seconds, 2) if spu else None,
        "max_abs_error": res[parties[0]]["max_abs_error"],
        "transport": "tcp+tls (loopback), one process per party",
    }


def run(protocol: str = "semi2k", figures: list[str] | None = None) -> Iterator[dict]:
    for f in figures or FIGURES:
        yield run_figure(protocol, f)


if __name__ == "__main__":
    import json
    import sys

    for proto in sys.argv[1:] or ["semi2k"]:
        for row in run(proto):
            print(json.dumps(row), flush=True)
