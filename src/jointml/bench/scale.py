"""`jointml bench scale`: how seconds, bytes and memory grow with the number of rows.

Runs the existing benchmarks at log-spaced sizes -- SS-LR training (`jointml.bench.lr`,
10k..1M rows, 100 features, batch 1024, one epoch), PSI (`jointml.bench.psi`, 10k..1M ids
a side, ECDH and KKRT16) and SecureBoost (`jointml.bench.trees`, 10k..300k rows, 20+20
features, depth 5, 2 trees) -- each point with the parties as processes over mutual TLS, as
those benchmarks run them. Each point is one JSON line: `seconds`, `bytes`, `rounds`,
`peak_rss_mb` (per party), and `plaintext_seconds`, the plaintext baseline measured in the
same run by the same benchmark (numpy mini-batch SGD; a Python set intersection; xgboost).
`fit_exponents` fits ``log(metric) = a + k log(rows)`` by least squares per curve: k near 1
is linear growth. `write_chart` draws seconds, bytes and peak RSS against rows, log-log,
one panel per metric, the plaintext baseline dashed beside each curve.

No party data is involved: every input is public synthetic data; what each party learns
is what the underlying protocol reveals (see `jointml.bench.lr`, `psi`, `trees`).

>>> rows = [{"curve": "c", "rows": n, "seconds": 0.5 * n ** 1.5, "bytes": 8 * n} for n in (10, 100, 1000)]
>>> fits = fit_exponents(rows)
>>> fits["c"]["seconds"], fits["c"]["bytes"]
(1.5, 1.0)
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..core.errors import ParameterError
from .memory import PartyRssWatcher

__all__ = ["CURVES", "fit_exponent", "fit_exponents", "run", "sizes", "write_chart"]

#: curve -> the full run's sizes (rows per party; for PSI, ids per side)
CURVES: dict[str, list[int]] = {
    "ss_lr": [10_000, 30_000, 100_000, 300_000, 1_000_000],
    "psi_ecdh": [10_000, 30_000, 100_000, 300_000, 1_000_000],
    "psi_kkrt": [10_000, 30_000, 100_000, 300_000, 1_000_000],
    "secureboost": [10_000, 30_000, 100_000, 300_000],
}
#: `--quick`: tiny sizes (the whole run under a minute), for tests and a first look
QUICK: dict[str, list[int]] = {
    "ss_lr": [2_000, 4_000, 8_000],
    "psi_ecdh": [1_000, 2_000, 4_000],
    "psi_kkrt": [1_000, 2_000, 4_000],
    "secureboost": [500, 2_000],  # two points: a Paillier key and xgboost's baseline per point
}
METRICS = ("seconds", "bytes", "peak_rss_mb")


def sizes(curve: str, *, quick: bool = False, max_rows: int | None = None) -> list[int]:
    """The sizes a curve runs at, capped at `max_rows`.

    >>> sizes("secureboost", max_rows=100_000)
    [10000, 30000, 100000]
    """
    table = QUICK if quick else CURVES
    if curve not in table:
        raise ParameterError(f"unknown curve {curve!r}; choose from {sorted(table)}", field="curves")
    return [n for n in table[curve] if max_rows is None or n <= max_rows]


def _lr_point(n: int, quick: bool) -> dict[str, Any]:
    from . import lr

    features, batch = (10, 256) if quick else (100, 1024)
    parties = ["alice", "bob", "dealer"]
    with PartyRssWatcher(parties) as w:
        r = lr.run(rows=n, features=features, epochs=1, batch_size=batch)
    samples = r["samples_per_second"] * r["seconds"]  # lr reports per-sample figures
    return {"seconds": r["seconds"], "bytes": round(r["bytes_per_sample"] * samples), "rounds": r["rounds"],
            "plaintext_seconds": r["baseline_seconds"], "peak_rss_mb": r.get("peak_rss_mb") or w.peak_rss_mb(),
            "detail": {"features": features, "batch_size": batch, "auc": r["auc"], "baseline_auc": r["baseline_auc"],
                       "samples_per_second": r["samples_per_second"], "plaintext": "numpy mini-batch SGD"}}


def _psi_point(protocol: str) -> Callable[[int, bool], dict[str, Any]]:
    def point(n: int, quick: bool) -> dict[str, Any]:
        from . import psi

        r = psi.run(n, protocol=protocol, n_jobs=1 if quick else None)
        return {"seconds": r["seconds"], "bytes": r["bytes"], "rounds": r.get("rounds"),
                "plaintext_seconds": r["plaintext_seconds"], "peak_rss_mb": r["peak_rss_mb"],
                "detail": {"intersection": r["intersection"], "aligned": r["aligned"],
                           "plaintext": "Python set intersection"}}

    return point


def _trees_point(n: int, quick: bool) -> dict[str, Any]:
    from . import trees

    kw = dict(features=4, trees=1, depth=2) if quick else dict(features=40, trees=2, depth=5)
    with PartyRssWatcher(["bank", "partner"]) as w:
        r = trees.run(rows=n, bins=32, **kw)  # type: ignore[arg-type]
    fit = r["seconds_per_tree"] * r["trees"] + r["setup_seconds"]
    return {"seconds": round(fit, 3), "bytes": r["bytes"], "rounds": r["rounds"],
            "plaintext_seconds": round(r["baseline_seconds_per_tree"] * r["trees"], 4),
            "peak_rss_mb": r.get("peak_rss_mb") or w.peak_rss_mb(),
            "detail": {**kw, "seconds_per_tree": r["seconds_per_tree"], "auc": r["auc"], "baseline_auc": r["baseline_auc"],
                       "plaintext": r["baseline"]}}


_POINTS: dict[str, Callable[[int, bool], dict[str, Any]]] = {
    "ss_lr": _lr_point, "psi_ecdh": _psi_point("ecdh"), "psi_kkrt": _psi_point("kkrt"), "secureboost": _trees_point,
}


def _progress(msg: str) -> None:
    print(f"[bench scale] {msg}", file=sys.stderr, flush=True)


def run(curves: Iterable[str] | None = None, *, quick: bool = False, max_rows: int | None = None,
        progress: Callable[[str], None] | None = _progress) -> Iterator[dict[str, Any]]:
    """One JSON-able row per (curve, size), smallest first; `progress` gets a line per point."""
    plan = [(c, n) for c in (curves or list(CURVES)) for n in sizes(c, quick=quick, max_rows=max_rows)]
    for i, (curve, n) in enumerate(plan, 1):
        t0 = time.perf_counter()
        point = _POINTS[curve](n, quick)
        row = {"figure": "scale", "curve": curve, "rows": n, **point}
        if progress:
            rss = [v for v in (row["peak_rss_mb"] or {}).values() if v is not None]
            progress(f"{i}/{len(plan)} {curve} rows={n:,}: {row['seconds']:.3g} s, {row['bytes'] / 1e6:.3g} MB sent, "
                     f"peak RSS {max(rss) if rss else '?'} MB, plaintext {row['plaintext_seconds']:.3g} s "
                     f"({time.perf_counter() - t0:.0f} s wall)")
        yield row


def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x) (points with x, y > 0); None under 2 distinct x.

    >>> fit_exponent([1, 10, 100], [3, 30, 300])
    1.0
    >>> fit_exponent([1, 10], [5, 0]) is None
    True
    """
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return round(sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx, 3)


def _metric(row: dict[str, Any], metric: str) -> float | None:
    v = row.get(metric)
    if isinstance(v, dict):  # per party: the largest
        vals = [x for x in v.values() if x is not None]
        return max(vals) if vals else None
    return v


def fit_exponents(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """{curve: {metric: exponent}} for seconds, bytes, peak RSS (the largest party's) and
    the plaintext baseline's seconds, over the rows of each curve.

    >>> fit_exponents([{"curve": "c", "rows": 10, "seconds": 1.0}, {"curve": "c", "rows": 100, "seconds": 100.0}])["c"]
    {'seconds': 2.0}
    """
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["curve"], []).append(r)
    out: dict[str, dict[str, float | None]] = {}
    for curve, rs in by.items():
        fits = {}
        for m in (*METRICS, "plaintext_seconds"):
            pairs = [(r["rows"], _metric(r, m)) for r in rs if _metric(r, m) is not None]
            if pairs:
                fits[m] = fit_exponent([p[0] for p in pairs], [p[1] for p in pairs])  # type: ignore[misc]
        out[curve] = fits
    return out


def write_chart(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """A PNG: one log-log panel per metric (seconds, bytes sent, peak RSS of the largest
    party) against rows, one line per curve, its plaintext baseline dashed in the seconds
    panel, the fitted exponent in the legend. Needs matplotlib (`pip install 'jointml[bench]'`).

    >>> import tempfile, os
    >>> rows = [{"curve": "c", "rows": n, "seconds": n / 1e4, "plaintext_seconds": n / 1e6, "bytes": 64 * n} for n in (1e3, 1e4)]
    >>> p = write_chart(rows, os.path.join(tempfile.mkdtemp(), "c.png"))
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: write a file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fits = fit_exponents(rows)
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    titles = {"seconds": "seconds", "bytes": "bytes sent (all parties)", "peak_rss_mb": "peak RSS, largest party (MB)"}
    metrics = [m for m in METRICS if any(_metric(r, m) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 5.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for i, c in enumerate(curves):
            rs = sorted((r for r in rows if r["curve"] == c and _metric(r, m) is not None), key=lambda r: r["rows"])
            if not rs:
                continue
            color = f"C{i}"
            ax.plot([r["rows"] for r in rs], [_metric(r, m) for r in rs], "o-", color=color,
                    label=f"{c} (k={fits[c].get(m)})")
            base = [r for r in rs if r.get("plaintext_seconds")]
            if m == "seconds" and base:
                ax.plot([r["rows"] for r in base], [r["plaintext_seconds"] for r in base], "x--", color=color, alpha=0.7,
                        label=f"{c} plaintext (k={fits[c].get('plaintext_seconds')})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows (PSI: ids per side)")
        ax.set_title(titles[m])
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^3, 3x10^3 ... overlap
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle("jointml bench scale: cost against rows (log-log; k = fitted exponent)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-scale")
    ap.add_argument("--max-rows", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--curves", nargs="+", default=None)
    a = ap.parse_args(argv)
    rows = []
    for row in run(a.curves, quick=a.quick, max_rows=a.max_rows):
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    write_chart(rows, Path(a.out) / "scale.png")
    print(json.dumps({"figure": "scale_fit", "exponents": fit_exponents(rows)}), flush=True)


if __name__ == "__main__":
    main()
