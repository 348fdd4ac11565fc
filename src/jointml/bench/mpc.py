"""`jointml bench mpc`: secure operators on 1M elements / 1000x1000 matrices.

Parties run as separate processes connected by TCP + mutual TLS on loopback. Each row
has two phases, timed one after the other: `offline_seconds`, the correlated randomness
of the figure's products and comparison masks generated before the inputs exist
(`Protocol.prefetch`: the dealer computes and sends its corrections, the parties draw
their shares; sigmoids have none), and `online_seconds`, secret-sharing the inputs,
computing and revealing the output. `seconds` is their sum (no overlap credited); bytes
count both phases, `online_bytes` and `rounds` the online one. The numpy time for the same
operation in plaintext is reported beside it, and each party's peak RSS. SPU's figure
and the ratio to it appear only with `anchor=True` (`--anchor`), which runs SPU now on
the same machine (no figure from an earlier run is printed).

The inputs are public synthetic data; each figure reveals its output to the first party.
`matmul_1000_private` (semi2k) is `matmul_1000`'s task (X from the first party, Y from the
second, X @ Y to the first) through `Semi2k.private_matmul`, the product of two privately
held matrices (one ring product per party, not Beaver's two on secret-shared inputs); its
SPU ratio is against SPU's matmul_1000.

>>> FIGURES[:3]
['mul_1M', 'lt_1M', 'matmul_1000']
"""

from __future__ import annotations

import os
import resource
import time
from typing import Iterator

import numpy as np

from ..core.errors import ParameterError
from ..core.prg import public_rng
from ..mpc import MpcDevice
from ..runtime import simulate
from ..runtime.collectives import all_gather
from .anchors import spu_ops_same_run

FIGURES = ["mul_1M", "lt_1M", "matmul_1000", "sigmoid_1M_seg3", "sigmoid_1M_poly", "sigmoid_1M_accurate",
           "matmul_1000_private"]
#: figures only some protocols have a kernel for
_ONLY = {"matmul_1000_private": "semi2k"}



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
    if figure.startswith("matmul"):
        return x @ y
    return 1 / (1 + np.exp(-x))


def _barrier(ctx, members):
    # every member announces itself to every party: nobody starts the clock early
    all_gather(ctx, members, name="bench-barrier")


def _prefetch(mpc, figure: str, parties: list[str] | None = None) -> None:
    """The offline phase: the correlated randomness of the figure's products and comparison
    masks, generated before the inputs exist (sigmoids generate theirs online). The dealer
    is the only party computing then, so it may use every core for its BLAS products (the
    simulation gives each of the 3 processes one core's worth of BLAS threads)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(os.cpu_count() or 1, user_api="blas"):
        # `x * y` and `x @ y` of two secrets are fixed-point products (`fxp_product`): prefetch
        # what they take (with the dealer's truncation, the fused triple + pair), not the bare
        # kernel's triple, which the product would leave unused while generating its own online
        f = mpc.frac_bits
        if figure == "mul_1M":
            mpc.proto.prefetch("fxp_mul", (1_000_000,), (1_000_000,), bits=f)
        elif figure == "matmul_1000":
            mpc.proto.prefetch("fxp_matmul", (1000, 1000), (1000, 1000), bits=f)
        elif figure == "lt_1M":
            mpc.proto.prefetch("msb", (1_000_000,))
        elif figure == "matmul_1000_private" and parties:
            mpc.proto.prefetch("private_matmul", (1000, 1000), (1000, 1000), owners=(parties[0], parties[1]))
            mpc.proto.prefetch("trunc_product", (1000, 1000), bits=f)


def _online(ctx, mpc, figure: str, parties: list[str], xv, yv):
    a, b = parties[0], parties[1]
    if figure == "matmul_1000_private":
        return _private_matmul(ctx, mpc, a, b, xv, yv)
    x = ctx.party(a).run(lambda: xv).to(mpc)
    if figure.startswith("sigmoid"):
        mode = figure.rsplit("_", 1)[1]
        from ..mpc import functions

        return functions.sigmoid(x, mode=mode).reveal(to=a)
    y = ctx.party(b).run(lambda: yv).to(mpc)
    if figure == "mul_1M":
        z = x * y
    elif figure == "lt_1M":
        z = x < y
    elif figure == "matmul_1000":
        z = x @ y
    else:
        raise ParameterError(f"unknown figure {figure}", field="figure")
    return z.reveal(to=a)


def _private_matmul(ctx, mpc, a: str, b: str, xv, yv):
    """The matmul figure's task (X from a, Y from b, X @ Y revealed to a) through semi2k's
    product of two privately held matrices: one ring product per party instead of two, then
    the product truncation."""
    p, f = mpc.proto, mpc.frac_bits
    shape = (xv.shape[0], yv.shape[1])
    z = p.private_matmul(a, mpc.fxp.encode(xv) if ctx.me == a else None, b,
                         mpc.fxp.encode(yv) if ctx.me == b else None, xv.shape, yv.shape)
    z = p.trunc_product(z, f, shape)
    return mpc.import_share(p.export_share(z), shape, fxp=f).reveal(to=a)


def _program(ctx, protocol: str, figure: str, parties: list[str], dealer: str | None, trunc: str | None = None):
    mpc = MpcDevice(ctx, parties, protocol=protocol, dealer=dealer, trunc=trunc)
    xv, yv = _inputs(figure)
    _barrier(ctx, mpc.members)
    ctx.reset_stats()
    t0 = time.perf_counter()
    _prefetch(mpc, figure, parties)
    offline = time.perf_counter() - t0
    offline_stats = ctx.stats()
    # the online phase starts when every member (the dealer too) has finished the offline one
    _barrier(ctx, mpc.members)
    ctx.reset_stats()
    c0 = _cpu()
    t0 = time.perf_counter()
    out = _online(ctx, mpc, figure, parties, xv, yv)
    seconds = time.perf_counter() - t0
    cpu = _cpu() - c0
    stats = ctx.stats()
    err = None
    if ctx.me == parties[0]:
        ref = _plain(figure, xv, yv)
        err = float(np.max(np.abs(out.value - ref))) if ref.size else 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this party's process (Linux: KiB)
    return {"seconds": seconds, "offline_seconds": offline, "stats": stats, "offline_stats": offline_stats,
            "max_abs_error": err, "peak_rss_mb": round(peak, 1), "cpu_seconds": cpu}


def _cpu() -> float:
    """This process's CPU seconds (every thread: BLAS included), user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_figure(protocol: str, figure: str, spu_same_run: dict[str, float] | None = None, trunc: str | None = None) -> dict:
    """One figure: our seconds, bytes and rounds, numpy's seconds and,
    when `spu_same_run` (SPU seconds measured in this run) is given, the ratio to it. `trunc`:
    semi2k's product truncation ("dealer", the default, or "local")."""
    if protocol == "semi2k":
        parties, dealer, cluster = ["alice", "bob"], "dealer", ["alice", "bob", "dealer"]
    elif protocol == "aby3":
        parties, dealer, cluster = ["alice", "bob", "carol"], None, ["alice", "bob", "carol"]
    else:
        raise ParameterError(f"unknown protocol {protocol}", field="protocol")
    trunc = trunc if protocol == "semi2k" else None
    res = simulate(_program, cluster, mode="process", args=(protocol, figure, parties, dealer, trunc),
                   options={"warm_heap_mb": 768})
    xv, yv = _inputs(figure)
    t0 = time.perf_counter()
    _plain(figure, xv, yv)
    base = time.perf_counter() - t0
    n = xv.size if not figure.startswith("matmul") else xv.shape[0] * yv.shape[1]
    online_bytes = sum(r["stats"]["bytes_sent"] for r in res.values())
    total_bytes = online_bytes + sum(r["offline_stats"]["bytes_sent"] for r in res.values())
    # the private figure is the matmul figure's task (same inputs, owners and output)
    ref_key = "sigmoid_1M" if figure.startswith("sigmoid") else "matmul_1000" if figure.startswith("matmul") else figure
    online = max(r["seconds"] for r in res.values())
    offline = max(r["offline_seconds"] for r in res.values())
    seconds = online + offline  # the phases run one after the other here (no overlap credited)
    anchor = (spu_same_run or {}).get(ref_key)
    return {
        "figure": figure,
        "protocol": protocol,
        "parties": len(parties),
        "trunc": (trunc or "dealer") if protocol == "semi2k" else None,
        "seconds": round(seconds, 4),
        "online_seconds": round(online, 4),
        "offline_seconds": round(offline, 4),
        "bytes": total_bytes,
        "online_bytes": online_bytes,
        "bytes_per_element": round(total_bytes / n, 2),
        "rounds": max(r["stats"]["rounds"] for r in res.values()),
        "offline_rounds": max(r["offline_stats"]["rounds"] for r in res.values()),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in res.values()),
        # CPU seconds of the online phase, all processes: steadier than wall time on a busy machine
        "online_cpu_seconds": round(sum(r["cpu_seconds"] for r in res.values()), 4),
        "baseline_seconds": round(base, 5),
        "spu_seconds_same_run": anchor,
        "speedup_vs_spu_same_run": round(anchor / seconds, 2) if anchor else None,
        "max_abs_error": res[parties[0]]["max_abs_error"],
        "transport": "tcp+tls (loopback), one process per party",
    }


def run(protocol: str = "semi2k", figures: list[str] | None = None, anchor: bool = False,
        trunc: str | None = None) -> Iterator[dict]:
    """Yield one row per figure. With `anchor`, SPU runs first (same machine, same run: see
    `jointml.bench.anchors`) and each row carries the ratio to it."""
    spu = spu_ops_same_run(protocol) if anchor else None
    for f in figures or [f for f in FIGURES if _ONLY.get(f, protocol) == protocol]:
        yield run_figure(protocol, f, spu, trunc)


if __name__ == "__main__":
    import json
    import sys

    for proto in sys.argv[1:] or ["semi2k"]:
        for row in run(proto):
            print(json.dumps(row), flush=True)
