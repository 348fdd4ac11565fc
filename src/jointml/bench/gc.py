"""`jointml bench gc`: garbled-circuit comparison of 1M int64 pairs, two processes over TLS.

The garbler holds x, the evaluator y (public synthetic data); both learn [x < y]
(`jointml.mpc.protocols.garbled.gc_compare`, 64 AND gates per pair). The time covers the
session setup (128 base OTs), the evaluator's input OTs, garbling, evaluation and the
outputs; `setup_seconds` is the setup part. Beside it, in the same run: numpy's `x < y` and
semi2k's dealer-mask comparison (`jointml bench mpc` figure lt_1M: three processes, a
dealer, 6 rounds), so the figure is always a ratio to something.

>>> r = run(2000, mode="thread", compare_semi2k=False)
>>> r["figure"], r["correct"], r["and_gates"]
('gc_lt_2k', True, 128000)
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from ..core.prg import public_rng
from ..mpc.protocols.garbled import YaoSession, comparison_circuit, gc_compare
from ..runtime.collectives import all_gather
from .memory import simulate_rss

PARTIES = ["garbler", "evaluator"]


def _inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = public_rng(11)  # public benchmark data
    return rng.integers(-(2**62), 2**62, n, dtype=np.int64), rng.integers(-(2**62), 2**62, n, dtype=np.int64)


def _program(ctx, n: int) -> dict:
    x, y = _inputs(n)
    mine = x if ctx.me == PARTIES[0] else y
    all_gather(ctx, name="bench-barrier")
    ctx.reset_stats()
    t0 = time.perf_counter()
    s = YaoSession(ctx, *PARTIES)
    gc_compare(ctx, mine[:1], garbler=PARTIES[0], evaluator=PARTIES[1], session=s)  # base OTs
    setup = time.perf_counter() - t0
    out = gc_compare(ctx, mine, garbler=PARTIES[0], evaluator=PARTIES[1], session=s)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "setup_seconds": setup, "stats": ctx.stats(), "correct": bool((out == (x < y)).all())}


def _label(n: int) -> str:
    return f"gc_lt_{n // 1_000_000}M" if n % 1_000_000 == 0 else f"gc_lt_{n // 1000}k"


def run(n: int = 1_000_000, *, mode: str = "process", compare_semi2k: bool = True) -> dict[str, Any]:
    """Garbled comparison of `n` pairs; returns JSON-able figures (see the module docstring)."""
    res, rss = simulate_rss(_program, PARTIES, mode=mode, args=(n,), timeout=None)
    x, y = _inputs(n)
    t0 = time.perf_counter()
    _ = x < y
    base = time.perf_counter() - t0
    seconds = max(r["seconds"] for r in res.values())
    ands = comparison_circuit("lt").and_count * n
    total = sum(r["stats"]["bytes_sent"] for r in res.values())
    semi2k = None
    if compare_semi2k and n == 1_000_000:
        from . import mpc as bmpc

        r = bmpc.run_figure("semi2k", "lt_1M")
        semi2k = {k: r[k] for k in ("seconds", "bytes", "bytes_per_element", "rounds")}
    return {
        "figure": _label(n),
        "n": n,
        "seconds": round(seconds, 3),
        "setup_seconds": round(max(r["setup_seconds"] for r in res.values()), 3),
        "bytes": total,
        "bytes_per_element": round(total / n, 1) if n else 0.0,
        "rounds": max(r["stats"]["rounds"] for r in res.values()),
        "and_gates": ands,
        "and_gates_per_second": round(ands / seconds),
        "correct": all(r["correct"] for r in res.values()),
        "plaintext_seconds": round(base, 5),
        "peak_rss_mb": rss,
        "semi2k_dealer_lt_1M_same_run": semi2k,
        "transport": "tcp+tls (loopback), one process per party" if mode == "process" else "in-process links (threads)",
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--no-semi2k", action="store_true")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.n, compare_semi2k=not args.no_semi2k)), flush=True)


if __name__ == "__main__":
    main()
