"""`jointml demo --job ppdt`: the privacy-preserving data transform on German credit, with its
utility curve as a chart in the report.

Two organisations hold the shipped German credit data split by columns: the bank (label
holder) the first quarter of the standardised one-hot features and the label, the partner
the rest. For every k in {2, 4, 8, 16} and epsilon in {0.5, 1, 2, 4, 8, inf}, the partner
transforms its columns with PPDT (DP-PCA to k dimensions with calibrated noise,
`jointml.ml.ppdt.ppdt_share`) and sends only the noisy n x k release to the bank (a real
message between the two parties), which trains an ordinary logistic regression on its own
columns beside the release. The report's chart shows the test AUC against epsilon, one line
per k, and the AUC of the same model trained on the raw joint data (what the parties may not
do) as a dashed line.

The partner's privacy ledger (a local SQLite file in the output folder, `jointml.dp.budget`)
is declared with a budget covering exactly the curve's finite-epsilon releases; each release
is charged before it is computed (release ids are fixed, so running the demo again costs
nothing twice), and one more release is then refused before any computation, naming the
source and what remains. epsilon = inf is the noise-free projection (no DP, not charged):
it shows the cost of the projection alone.

What each party learns: the bank learns each release (record-level (epsilon, delta)-DP of
the partner's rows, delta = 1e-5) and its public parameters; the partner learns nothing.
The curve is a study on public data: in production a source makes one release, not 20.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime import simulate

BANK, PARTNER = "bank", "partner"
KS = (2, 4, 8, 16)
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
DELTA = 1e-5
SOURCE = "german_credit_partner"


def _data() -> tuple[np.ndarray, np.ndarray, int]:
    """Standardised one-hot German credit, labels (1 = bad), and the bank's column count."""
    import pandas as pd

    from ..datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") == "bad").to_numpy(dtype=np.int64)
    X = pd.get_dummies(df, dtype=np.float64).to_numpy(dtype=np.float64)
    sd = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)  # public scaling constants
    return X, y, max(1, X.shape[1] // 4)


def _auc(X: np.ndarray, y: np.ndarray, ntr: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    lr = LogisticRegression(max_iter=1000).fit(X[:ntr], y[:ntr])
    return float(roc_auc_score(y[ntr:], lr.predict_proba(X[ntr:])[:, 1]))


def _release_id(k: int, eps: float) -> str:
    return f"ppdt-demo/k={k}/epsilon={eps:g}"


def _program(ctx: Any, ledger_path: str, ks: tuple[int, ...], epsilons: tuple[float, ...],
             verbose: bool) -> dict[str, Any]:
    import pandas as pd

    from ..data.frames import VDataFrame, from_pandas
    from ..dp.budget import BudgetExceeded, BudgetLedger
    from ..ml.ppdt import ppdt_share

    X, y, cut = _data()
    ntr = int(0.8 * len(y))  # the first 80 % of the (public) row order train, the rest test
    frames = {BANK: pd.DataFrame(np.column_stack([y, X[:, :cut]]), columns=["y", *[f"b{i}" for i in range(cut)]]),
              PARTNER: pd.DataFrame(X[:, cut:], columns=[f"p{i}" for i in range(X.shape[1] - cut)])}
    vdf = from_pandas(ctx, {p: frames[p] if p == ctx.me else None for p in frames})
    assert isinstance(vdf, VDataFrame)  # split by columns
    ledger = None
    if ctx.me == PARTNER:
        ledger = BudgetLedger(ledger_path, party=PARTNER)
        ledger.declare(SOURCE, epsilon=_budget(ks, epsilons), delta=_delta_budget(ks, epsilons))
    curve: list[dict[str, Any]] = []
    for k in ks:
        for eps in epsilons:
            t0 = time.perf_counter()
            got = ppdt_share(ctx, vdf, BANK, k=k, epsilon=eps, delta=DELTA, bounds={PARTNER: (-4.0, 4.0)},
                             ledger=ledger, sources={PARTNER: SOURCE},
                             release=_release_id(k, eps) if math.isfinite(eps) else None)
            if got is not None:  # the bank: train on its own columns beside the partner's release
                Z = got.X[:, 1:]  # column 0 is the label
                auc = _auc(Z, got.X[:, 0].astype(np.int64), ntr)
                curve.append({"k": k, "epsilon": eps if math.isfinite(eps) else "inf", "auc": round(auc, 4),
                              "seconds": round(time.perf_counter() - t0, 3)})
                if verbose:
                    print(f"  k={k:>2} epsilon={eps:<4g}: partner's release sent, bank's LR test AUC {auc:.4f}",
                          flush=True)
    refusal = None
    try:  # one release more than the declared budget: refused at both parties before computing
        ppdt_share(ctx, vdf, BANK, k=8, epsilon=1.0, delta=DELTA, bounds={PARTNER: (-4.0, 4.0)}, ledger=ledger,
                   sources={PARTNER: SOURCE}, release="ppdt-demo/one-more")
    except BudgetExceeded as e:
        refusal = str(e)
    out: dict[str, Any] = {"refusal": refusal}
    if ctx.me == BANK:
        out.update(curve=curve, raw_auc=round(_auc(X, y, ntr), 4), rows=len(y), bank_features=cut,
                   partner_features=X.shape[1] - cut)
    if ledger is not None:
        out["ledger"] = {"spent": ledger.spent(SOURCE), "remaining": ledger.remaining(SOURCE),
                         "charges": len(ledger.charges(SOURCE))}
        ledger.close()
    return out


def _budget(ks: tuple[int, ...], epsilons: tuple[float, ...]) -> float:
    """The partner's declared epsilon: exactly the curve's finite-epsilon releases."""
    return float(len(ks) * sum(e for e in epsilons if math.isfinite(e)))


def _ledger_name(ks: tuple[int, ...], epsilons: tuple[float, ...]) -> str:
    """The partner's ledger file: one per grid (a declared budget never changes)."""
    if tuple(ks) == KS and tuple(epsilons) == EPSILONS:
        return "ledger-partner.sqlite"
    return f"ledger-partner-epsilon{_budget(ks, epsilons):g}.sqlite"


def _delta_budget(ks: tuple[int, ...], epsilons: tuple[float, ...]) -> float:
    return float(len(ks) * sum(DELTA for e in epsilons if math.isfinite(e)))


def run(mode: str = "process", out_dir: str | Path = "jointml-demo-out", verbose: bool = True,
        ks: tuple[int, ...] = KS, epsilons: tuple[float, ...] = EPSILONS) -> dict[str, Any]:
    """Run the demo, write `ppdt_report.html` and `ppdt_summary.json` in `out_dir`; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"PPDT on German credit: {BANK} (label, a quarter of the features) and {PARTNER} (the rest); "
              f"{len(ks)} k x {len(epsilons)} epsilon releases of the partner's columns to the bank", flush=True)
    t0 = time.perf_counter()
    res = simulate(_program, [BANK, PARTNER], mode=mode,
                   args=(str(out / _ledger_name(ks, epsilons)), tuple(ks), tuple(epsilons), verbose))
    seconds = time.perf_counter() - t0
    b, p = res[BANK], res[PARTNER]
    summary = {"job": "ppdt", "rows": b["rows"], "bank_features": b["bank_features"],
               "partner_features": b["partner_features"], "delta": DELTA, "raw_auc": b["raw_auc"], "curve": b["curve"],
               "ledger": {"source": SOURCE, "budget_epsilon": _budget(ks, epsilons), **p["ledger"]},
               "refused": p["refusal"], "seconds": round(seconds, 2),
               "report": str(out / "ppdt_report.html")}
    (out / "ppdt_report.html").write_text(report_html(summary))
    (out / "ppdt_summary.json").write_text(json.dumps(summary, indent=1))
    if verbose:
        best = {r["k"]: r["auc"] for r in b["curve"] if r["epsilon"] == 8.0}
        print(f"Raw joint data (not allowed): AUC {b['raw_auc']:.4f}; PPDT at epsilon 8: "
              + ", ".join(f"k={k} {a:.4f}" for k, a in best.items()))
        print(f"Partner's ledger: {p['ledger']['charges']} releases charged, epsilon spent "
              f"{p['ledger']['spent'][0]:g} of {_budget(ks, epsilons):g}")
        print(f"One more release was refused before computing: {p['refusal']}")
        print(f"Report with the utility curve: {summary['report']} ({seconds:.1f} s)")
    return summary


def curve_svg(curve: list[dict[str, Any]], raw_auc: float, w: int = 640, h: int = 380) -> str:
    """The utility curve as an inline SVG: test AUC against epsilon (log scale, inf at the right
    end), one line per k, and the raw-data AUC as a dashed line.

    >>> svg = curve_svg([{"k": 2, "epsilon": 1.0, "auc": 0.6}, {"k": 2, "epsilon": "inf", "auc": 0.7}], 0.75)
    >>> svg.startswith("<svg") and "raw data AUC 0.7500" in svg and svg.count("<polyline") == 1
    True
    """
    finite = sorted({float(r["epsilon"]) for r in curve if r["epsilon"] != "inf"}) or [1.0]
    ticks: list[Any] = [*finite, *(["inf"] if any(r["epsilon"] == "inf" for r in curve) else [])]
    x0, x1, y0, y1 = 60, w - 90, h - 50, 20
    aucs = [float(r["auc"]) for r in curve] + [raw_auc]
    lo, hi = max(0.0, math.floor(min(aucs) * 20) / 20), min(1.0, math.ceil(max(aucs) * 20) / 20 + 0.001)

    def px(e: Any) -> float:
        i = ticks.index(e if e == "inf" else float(e))
        return x0 + (x1 - x0) * (i / max(1, len(ticks) - 1))

    def py(a: float) -> float:
        return y0 - (y0 - y1) * (a - lo) / max(1e-9, hi - lo)

    colours = ["#1d3557", "#e63946", "#2a9d8f", "#f4a261", "#6a4c93", "#8d99ae"]
    parts = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>',
             f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>']
    for e in ticks:
        parts.append(f'<text x="{px(e):.1f}" y="{y0 + 18}" text-anchor="middle">{e if e == "inf" else f"{e:g}"}</text>')
    for k in range(6):
        a = lo + (hi - lo) * k / 5
        parts.append(f'<text x="{x0 - 6}" y="{py(a) + 4:.1f}" text-anchor="end">{a:.2f}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{h - 12}" text-anchor="middle">epsilon (log scale)</text>')
    parts.append(f'<text x="14" y="{(y0 + y1) / 2:.0f}" transform="rotate(-90 14 {(y0 + y1) / 2:.0f})" '
                 'text-anchor="middle">test AUC</text>')
    parts.append(f'<line x1="{x0}" y1="{py(raw_auc):.1f}" x2="{x1}" y2="{py(raw_auc):.1f}" stroke="#000" '
                 f'stroke-dasharray="6 4"/><text x="{x0 + 6}" y="{py(raw_auc) - 6:.1f}">raw data AUC {raw_auc:.4f}</text>')
    for i, k in enumerate(sorted({int(r["k"]) for r in curve})):
        pts = [(px(r["epsilon"]), py(float(r["auc"]))) for r in curve if int(r["k"]) == k]
        pts.sort()
        c = colours[i % len(colours)]
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>' for x, y in pts]
        parts.append(f'<text x="{x1 + 6}" y="{y1 + 16 * (i + 2)}" fill="{c}">k = {k}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            f'aria-label="PPDT utility curve: test AUC against epsilon for each k" style="max-width:100%;height:auto">'
            + "".join(parts) + "</svg>")


def report_html(summary: dict[str, Any]) -> str:
    """The demo's report: the utility chart, the table behind it, the partner's ledger.

    >>> s = {"rows": 10, "bank_features": 2, "partner_features": 6, "delta": 1e-5, "raw_auc": 0.7, "seconds": 1.0,
    ...      "curve": [{"k": 2, "epsilon": 1.0, "auc": 0.6, "seconds": 0.1}], "refused": "no budget",
    ...      "ledger": {"source": "s", "budget_epsilon": 1.0, "spent": [1.0, 0.0], "remaining": [0.0, 0.0], "charges": 1}}
    >>> page = report_html(s); "<svg" in page and "no budget" in page
    True
    """
    esc = html.escape
    rows = "".join(f"<tr><td>{r['k']}</td><td>{r['epsilon']}</td><td>{r['auc']:.4f}</td>"
                   f"<td>{r['auc'] - summary['raw_auc']:+.4f}</td></tr>" for r in summary["curve"])
    led = summary["ledger"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>jointml PPDT demo</title>
<style>body{{font:15px/1.45 system-ui,sans-serif;margin:24px;max-width:1000px;color:#1d2430}}
table{{border-collapse:collapse}}td,th{{padding:3px 10px;border-bottom:1px solid #dde3ea;text-align:left}}
svg text{{font:12px system-ui,sans-serif}}</style></head><body>
<h1>PPDT on German credit: utility against privacy</h1>
<p>{summary['rows']} customers. The bank holds the label and {summary['bank_features']} features; the partner
{summary['partner_features']} features, which it releases to the bank only as a PPDT (DP-PCA to k dimensions with
calibrated noise, delta = {summary['delta']:g}, record-level, per data source). The bank trains a logistic regression
on its own features beside the release; AUC on the last 20 % of the rows. The dashed line is the same model on the raw
joint data, which the parties may not pool. epsilon = inf is the projection without noise (no DP).</p>
<section aria-label="Utility curve"><h2>Utility curve</h2>{curve_svg(summary['curve'], summary['raw_auc'])}</section>
<h2>Figures</h2><table aria-label="AUC by k and epsilon"><thead><tr><th>k</th><th>epsilon</th><th>AUC</th>
<th>vs raw data</th></tr></thead><tbody>{rows}</tbody></table>
<h2>The partner's privacy ledger</h2>
<p>Source <code>{esc(str(led['source']))}</code>: budget epsilon {led['budget_epsilon']:g}; {led['charges']} releases
charged (each before it was computed), epsilon spent {led['spent'][0]:g}, remaining {led['remaining'][0]:g}.</p>
<p>One release more was refused before any computation: <q>{esc(str(summary['refused']))}</q></p>
<p>The curve is a study on public data: a data source in production makes one release, and the ledger composes
every release of a source (basic composition).</p>
<p>Run time {summary['seconds']:.1f} s.</p></body></html>
"""
