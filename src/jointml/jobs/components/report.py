"""Self-contained HTML reports of a run (inline SVG charts, no plotting dependency, no script,
no network; readable at 1280 px and on paper).

`run_report` renders one party's report from that party's own summary, at that party: the
label holder's has the scores and labels of the test rows (ROC, KS, score distribution,
calibration, gains by decile), the IVs, its own weights or the tree importances and its
model on its own features beside the joint one; a feature holder's has its own weights,
points and feature stability. Nothing is sent to make a report, so a report shows exactly
what its party already holds (the runner writes `report.<party>.html`; the demo adds the
plaintext twin, which only a demo can compute).

>>> html_text = page("run", [("Metrics", table_html([{"auc": 0.81}], ["auc"]))])
>>> html_text.startswith("<!doctype html>") and "<td>0.8100</td>" in html_text
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np


def _polyline(xs: Sequence[float], ys: Sequence[float], w: int, h: int, pad: int, color: str, dash: str = "") -> str:
    pts = " ".join(f"{pad + x * (w - 2 * pad):.1f},{h - pad - y * (h - 2 * pad):.1f}" for x, y in zip(xs, ys))
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="2"{d} points="{pts}"/>'


def _axes(w: int, h: int, pad: int, xlabel: str, ylabel: str) -> str:
    ticks = "".join(
        f'<text x="{pad + t * (w - 2 * pad):.0f}" y="{h - pad + 16}" font-size="11" text-anchor="middle">{t:g}</text>'
        f'<text x="{pad - 6}" y="{h - pad - t * (h - 2 * pad) + 4:.0f}" font-size="11" text-anchor="end">{t:g}</text>'
        for t in (0, 0.25, 0.5, 0.75, 1.0)
    )
    return (
        f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="#fafafa" stroke="#999"/>'
        f"{ticks}"
        f'<text x="{w / 2:.0f}" y="{h - 4}" font-size="12" text-anchor="middle">{html.escape(xlabel)}</text>'
        f'<text x="12" y="{h / 2:.0f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {h / 2:.0f})">{html.escape(ylabel)}</text>'
    )


def roc_svg(fpr, tpr, auc: float, baseline: tuple | list | None = None, w: int = 420, h: int = 380) -> str:
    """An ROC curve, and dashed baselines `(fpr, tpr, auc[, name])` (one tuple or a list), as an SVG element.

    >>> svg = roc_svg([0, 0.5, 1], [0, 0.8, 1], 0.8, [([0, 1], [0, 1], 0.5, "bank only")])
    >>> svg.startswith("<svg") and "bank only AUC 0.5000" in svg
    True
    """
    pad = 44
    bases = [baseline] if isinstance(baseline, tuple) else list(baseline or [])
    parts = [_axes(w, h, pad, "false positive rate", "true positive rate"), _polyline([0, 1], [0, 1], w, h, pad, "#bbb", "4 4")]
    colors = ["#e39b2d", "#8e44ad", "#16a085"]
    for i, b in enumerate(bases):
        parts.append(_polyline(b[0], b[1], w, h, pad, colors[i % 3], "6 3"))
    parts.append(_polyline(fpr, tpr, w, h, pad, "#1f5fbf"))
    x, y0 = w - pad - 10, h - pad - 12 - 16 * len(bases)  # bottom right: the curves bend to the top left
    legend = f'<text x="{x}" y="{y0}" font-size="12" text-anchor="end" fill="#1f5fbf">joint model AUC {auc:.4f}</text>'
    for i, b in enumerate(bases):
        name = b[3] if len(b) > 3 else "plaintext twin"
        legend += (f'<text x="{x}" y="{y0 + 16 * (i + 1)}" font-size="12" text-anchor="end" fill="{colors[i % 3]}">'
                   f'{html.escape(str(name))} AUC {b[2]:.4f}</text>')
    return _svg(w, h, "".join(parts) + legend)


def calibration_svg(y_true: np.ndarray, score: np.ndarray, groups: int = 10, w: int = 420, h: int = 380) -> str:
    """Calibration: observed bad rate against the mean predicted probability, per score decile.

    >>> calibration_svg(np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.3, 0.7]), groups=2).count("<circle")
    2
    """
    y, s = np.asarray(y_true).astype(float), np.asarray(score, dtype=float)
    order = np.argsort(s, kind="stable")
    chunks = [c for c in np.array_split(order, min(groups, max(len(s), 1))) if len(c)]
    px = [float(s[c].mean()) for c in chunks]
    py = [float(y[c].mean()) for c in chunks]
    pad = 44
    parts = [_axes(w, h, pad, "mean predicted probability of bad", "observed bad rate"),
             _polyline([0, 1], [0, 1], w, h, pad, "#bbb", "4 4"), _polyline(px, py, w, h, pad, "#1f5fbf")]
    parts += [f'<circle cx="{pad + a * (w - 2 * pad):.1f}" cy="{h - pad - b * (h - 2 * pad):.1f}" r="3" fill="#1f5fbf"/>'
              for a, b in zip(px, py)]
    note = f'<text x="{pad + 10}" y="{pad + 18}" font-size="12">by score decile (dashed: perfect calibration)</text>'
    return _svg(w, h, "".join(parts) + note)


def ks_svg(thresholds_frac, cum_bad, cum_good, ks: float, at: float, w: int = 420, h: int = 380) -> str:
    """Cumulative bad/good curves and the KS line as an SVG element.

    >>> "KS 0.5000" in ks_svg([0, 1], [0, 1], [0, 1], 0.5, 0.5)
    True
    """
    pad = 44
    parts = [
        _axes(w, h, pad, "population share (by descending score)", "cumulative share"),
        _polyline(thresholds_frac, cum_bad, w, h, pad, "#c0392b"),
        _polyline(thresholds_frac, cum_good, w, h, pad, "#27ae60"),
    ]
    x = pad + at * (w - 2 * pad)
    parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{pad}" y2="{h - pad}" stroke="#555" stroke-dasharray="3 3"/>')
    legend = (
        f'<text x="{pad + 10}" y="{pad + 18}" font-size="12" fill="#c0392b">bad (cumulative)</text>'
        f'<text x="{pad + 10}" y="{pad + 34}" font-size="12" fill="#27ae60">good (cumulative)</text>'
        f'<text x="{pad + 10}" y="{pad + 50}" font-size="12">KS {ks:.4f}</text>'
    )
    return _svg(w, h, "".join(parts) + legend)


def _svg(w: int, h: int, body: str) -> str:
    """An SVG element that scales down with its container (never wider than the page)."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'style="max-width:100%;height:auto">{body}</svg>')


def score_hist_svg(y_true: np.ndarray, score: np.ndarray, bins: int = 20, w: int = 420, h: int = 380) -> str:
    """The score distribution of each class (share of the class per score bin) as an SVG element.

    >>> "bad (" in score_hist_svg(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.7]))
    True
    """
    y, s = np.asarray(y_true).astype(int), np.asarray(score, dtype=float)
    lo, hi = float(s.min()), float(s.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    pad = 44
    parts = [_axes(w, h, pad, f"score ({lo:.3g} to {hi:.3g})", "share of the class")]
    shares = {}
    for cls in (1, 0):
        c = np.histogram(s[y == cls], edges)[0].astype(float)
        shares[cls] = c / max(c.sum(), 1.0)
    top = max(float(max(v.max() for v in shares.values())), 1e-9)
    for cls, color in ((1, "#c0392b"), (0, "#27ae60")):
        xs = np.repeat(np.arange(bins + 1) / bins, 2)[1:-1]
        ys = np.repeat(shares[cls] / top, 2)
        parts.append(_polyline(xs.tolist(), ys.tolist(), w, h, pad, color))
    x = w - pad - 10
    legend = (f'<text x="{x}" y="{pad + 18}" font-size="12" text-anchor="end" fill="#c0392b">bad ({int((y == 1).sum())})'
              f'</text><text x="{x}" y="{pad + 34}" font-size="12" text-anchor="end" fill="#27ae60">'
              f'good ({int((y == 0).sum())})</text>')
    return _svg(w, h, "".join(parts) + legend)


def decile_table(y_true: np.ndarray, score: np.ndarray, groups: int = 10) -> list[dict]:
    """Gains table: rows by descending score in `groups` equal groups, with bad rate, cumulative
    bad/good shares, KS and lift per group (the risk committee's decile table).

    >>> rows = decile_table(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1]), groups=2)
    >>> [(r["bad rate"], r["KS"], r["lift"]) for r in rows]
    [(1.0, 1.0, 2.0), (0.0, 0.0, 0.0)]
    """
    y, s = np.asarray(y_true).astype(int), np.asarray(score, dtype=float)
    order = np.argsort(-s, kind="stable")
    P, N = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    base = float(y.mean()) if len(y) else 0.0
    rows, cb, cg = [], 0, 0
    for g, idx in enumerate(np.array_split(order, min(groups, max(len(y), 1)))):
        bad = int(y[idx].sum())
        cb, cg = cb + bad, cg + len(idx) - bad
        rate = bad / max(len(idx), 1)
        rows.append({"group": g + 1, "rows": len(idx), "min score": float(s[idx].min()) if len(idx) else None, "bad": bad,
                     "bad rate": rate, "cum. bad": cb / P, "cum. good": cg / N, "KS": abs(cb / P - cg / N),
                     "lift": rate / base if base else 0.0})
    return rows


def ks_curve(y_true: np.ndarray, score: np.ndarray, points: int = 400):
    """Cumulative bad/good shares against the share of the population scored at or above each
    threshold (from `jointml.data.metrics.ks`, so the plotted KS is the reported one).

    >>> round(ks_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))[3], 2)
    1.0
    """
    from ...data.metrics import ks

    y = np.asarray(y_true)
    r = ks(y, score)
    P, N = int(y.sum()), int(len(y) - y.sum())
    frac = (np.asarray(r.cum_pos_rate) * P + np.asarray(r.cum_neg_rate) * N) / max(len(y), 1)
    cb, cg = np.asarray(r.cum_pos_rate), np.asarray(r.cum_neg_rate)
    sel = np.unique(np.linspace(0, len(frac) - 1, min(points, len(frac))).astype(int))
    return frac[sel], cb[sel], cg[sel], float(r.statistic), float(frac[r.index])


def table_html(rows: list[dict], columns: list[str]) -> str:
    """An HTML table of `rows` (dicts) with the given columns (floats to 4 decimals).

    >>> table_html([{"a": 1}], ["a"])
    '<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>'
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    """A cell: floats to 4 decimals, mappings as `key: value` pairs and lists comma-separated
    (never a JSON dump in a cell)."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4f}"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return "" if v is None else str(v)


def kv_table(items: dict) -> str:
    """A two-column table (name, value) of a mapping: many fields stay readable at any width.

    >>> kv_table({"features": {"bank": 2, "partner": 3}})
    '<table class="kv"><tbody><tr><th>features</th><td>bank: 2; partner: 3</td></tr></tbody></table>'
    """
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in items.items())
    return f'<table class="kv"><tbody>{body}</tbody></table>'


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;display:block;max-width:100%;overflow-x:auto}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right;overflow-wrap:anywhere}"
    "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
    "table.kv th{text-align:left;white-space:nowrap}table.kv td{text-align:left}"
    ".charts{display:flex;gap:1.5em;flex-wrap:wrap}.charts svg{flex:1 1 240px;max-width:420px;height:auto}"
    ".note{color:#555;font-size:13px;max-width:75ch}"
    "@media print{body{margin:0;max-width:none}.charts{break-inside:avoid}h2{break-after:avoid}"
    "table{display:table;overflow:visible}}"
)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A whole HTML page: a title and `(heading, html)` sections (see the module example).
    Self-contained (no script, no CDN), readable at 1280 px and on paper."""
    body = "".join(f"<section><h2>{html.escape(h)}</h2>{c}</section>" for h, c in sections)
    head = (f"<head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>")
    return f"<!doctype html><html>{head}<body><h1>{html.escape(title)}</h1>{body}</body></html>"


# -- the per-party report of a run ----------------------------------------------------------
_METHODS = {
    "ss_lr": ("Secure logistic regression (SS-LR): features and labels are secret-shared between the MPC parties "
              "and gradient descent runs on the shares; with reveal='owners' each party learns only the weights of "
              "its own features, and the scores of the test rows are revealed to the label holder only."),
    "ss_glm": ("Secure generalised linear model (SS-GLM): gradient descent on secret shares between the MPC parties; "
               "each party learns only the weights of its own features."),
    "secureboost": ("SecureBoost: gradient-boosted trees. The label holder encrypts gradients and hessians with "
                    "Paillier; each feature holder sums the ciphertexts per bin of its own features and returns the "
                    "encrypted sums; the label holder decrypts them and picks each split, learning which party and "
                    "which bin it uses, never a partner's threshold value. At prediction each party evaluates its own "
                    "splits; the scores go to the label holder only."),
    "ss_xgb": ("SS-XGB: XGBoost-style trees trained fully under MPC on secret shares; the tree structure (which "
               "feature and bin each split uses) is revealed to the parties, the leaf weights stay shared."),
}


def method_note(model: str | None, protocol: str | None = None, woe: bool = False) -> str:
    """What the run did, in words, for the model that ran (each model its own method).

    >>> "Paillier" in method_note("secureboost") and "SS-LR" not in method_note("secureboost")
    True
    """
    parts = [_METHODS.get(model or "", "")]
    if model in ("ss_lr", "ss_glm", "ss_xgb") and protocol:
        parts.append(f"MPC protocol: {protocol}.")
    if woe:
        parts.append("WOE binning: the label holder encrypted its labels with Paillier and each feature holder summed "
                     "them per bin of its own columns; the label holder learned the WOE and IV of every column, not the "
                     "partner's bin edges.")
    return " ".join(p for p in parts if p)


def _learned(party: str, summary: dict, label_party: str | None) -> str:
    if party == label_party:
        return (f"'{party}' (label holder) learned: the number of aligned rows, the scores of the test rows and the "
                "metrics above, its own model part, and what the method states for the label holder.")
    return (f"'{party}' learned: the number of aligned rows and its own model part (its own weights, or its own split "
            "thresholds); none of the labels, scores or metrics, which stay with the label holder.")


def _feature_rows(summary: dict) -> tuple[list[dict], list[str], str]:
    """The feature table this party may see: IV (label holder), own weights, or tree importances."""
    rows: list[dict[str, Any]] = []
    if summary.get("importance_gain"):
        for key, g in sorted(summary["importance_gain"].items(), key=lambda kv: -kv[1]):
            p, _, name = str(key).partition(":")
            rows.append({"party": p, "feature": name, "total gain": float(g),
                         "splits": (summary.get("importance_splits") or {}).get(key)})
        return rows, ["party", "feature", "total gain", "splits"], "Feature importance"
    iv, weights = summary.get("iv") or {}, summary.get("weights") or {}
    for p, names in (summary.get("feature_names") or {}).items():
        w = weights.get(p)
        for i, name in enumerate(names):
            rows.append({"party": p, "feature": name, "IV": iv.get(name),
                         "weight": float(w[i]) if w is not None and i < len(w) else None})
    if not iv:  # a feature holder: its own features (the others' names alone say nothing)
        rows = [r for r in rows if r["weight"] is not None]
    rows.sort(key=lambda r: -float(r["IV"] or 0.0))
    cols = ["party", "feature"] + (["IV"] if iv else []) + (["weight"] if weights else [])
    return rows, cols, "Features" + (": IV and weights" if iv else "")


def _scorecard_html(sc: dict) -> str:
    """This party's points table (and the base points at the label holder)."""
    rows = [{"feature": c, "bin": r["bin"], "WOE": r["woe"], "points": r["points"]}
            for c, table in sc["points"].items() for r in table]
    head = (f"<p class='note'>PDO {sc['pdo']:g}, base score {sc['base_score']:g} at good:bad odds {sc['base_odds']:g}"
            + (f"; base points {sc['base_points']:.2f}" if sc.get("base_points") is not None else "")
            + ". A row's score is the base points plus the points of its bins at every party; each party holds "
              "only its own table.</p>")
    return head + table_html(rows, ["feature", "bin", "WOE", "points"])


def _reasons_html(summary: dict) -> str:
    """How often each contribution is a row's first reason (partner codes as `partner:i`).

    >>> "partner:2" in _reasons_html({"reason_code_counts": {"b1": 3, "partner:2": 1}})
    True
    """
    counts = summary["reason_code_counts"]
    total = max(sum(counts.values()), 1)
    rows = [{"reason": k, "rows": int(v), "share": round(v / total, 4)}
            for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    note = ("<p class='note'>Partner features appear as codes (<code>partner:i</code>) only where the partner's "
            "policy is <code>reason_codes: coded</code>; otherwise as one summed contribution.</p>")
    return note + table_html(rows, ["reason", "rows", "share"])


def _stability_html(stability: dict) -> str:
    """PSI per own feature with the usual reading (< 0.1 stable, 0.1-0.25 some shift, > 0.25 large shift).

    >>> "large shift" in _stability_html({"x": 0.3})
    True
    """
    def verdict(v: float) -> str:
        return "stable" if v < 0.1 else ("some shift" if v <= 0.25 else "large shift")

    rows = [{"feature": c, "PSI": float(v), "reading": verdict(float(v))}
            for c, v in sorted(stability.items(), key=lambda kv: -kv[1])]
    return table_html(rows, ["feature", "PSI", "reading"])


def _dropped_note(summary: dict) -> str:
    """The features `select_features` left out, with the reason (at the label holder).

    >>> _dropped_note({"dropped_features": {"x": "IV below iv_min"}})
    "<p class='note'>Not used by the model: x (IV below iv_min).</p>"
    """
    dropped = summary.get("dropped_features") or {}
    if not dropped:
        return ""
    return "<p class='note'>Not used by the model: " + html.escape(", ".join(f"{c} ({r})" for c, r in dropped.items())) + ".</p>"


def _zero_iv_note(summary: dict) -> str:
    """The features with IV = 0, and why (they add nothing to a WOE model).

    >>> _zero_iv_note({"iv": {"a": 0.3, "b": 0.0}})[:60]
    "<p class='note'>IV = 0 for b: all its bins have the same bad"
    """
    zero = [c for c, v in (summary.get("iv") or {}).items() if v is not None and abs(float(v)) < 1e-12]
    if not zero:
        return ""
    return (f"<p class='note'>IV = 0 for {html.escape(', '.join(zero))}: all its bins have the same bad rate (often a "
            "constant column, or every bin merged into one), so its WOE is 0 on every row and it adds nothing to the model.</p>")


def _performance(summary: dict, baseline: dict | None) -> str:
    from ...data.metrics import roc_curve

    y, s = np.asarray(summary["test_labels"]), np.asarray(summary["test_scores"])
    if len(set(y.tolist())) < 2:
        return "<p class='note'>The test rows hold a single class: no ROC or KS.</p>"
    fpr, tpr, _ = roc_curve(y, s)
    bases = []
    if baseline is not None:
        bf, bt, _ = roc_curve(baseline["labels"], baseline["scores"])
        bases.append((bf, bt, baseline["auc"], baseline.get("name", "plaintext twin")))
    if summary.get("local_test_scores") is not None and summary.get("local_auc") is not None:
        lf, lt, _ = roc_curve(y, np.asarray(summary["local_test_scores"]))
        bases.append((lf, lt, float(summary["local_auc"]), "own features only"))
    frac, cb, cg, ksv, at = ks_curve(y, s)
    charts = (f"<div class='charts'>{roc_svg(fpr, tpr, float(summary.get('auc', 0.0)), bases)}"
              f"{ks_svg(frac, cb, cg, ksv, at)}{score_hist_svg(y, s)}"
              + (calibration_svg(y, s) if 0.0 <= float(s.min()) and float(s.max()) <= 1.0 else "") + "</div>")
    cols = ["group", "rows", "min score", "bad", "bad rate", "cum. bad", "cum. good", "KS", "lift"]
    return charts + "<h3>Gains by score decile (highest scores first)</h3>" + table_html(decile_table(y, s), cols)


def run_report(party: str, summary: dict, steps: list | None = None, protocol: str | None = None,
               baseline: dict | None = None, notes: str = "", title: str = "jointml run",
               extra: dict | None = None) -> str:
    """The HTML report of one party's run, from its own summary only (what it may see): the run,
    the performance on the test rows (label holder: ROC, KS, score distribution, gains table),
    the features (IV, own weights or importances), the pipeline and what each party learned.
    `baseline` (`{"auc", "scores", "labels"}`) adds a dashed ROC curve; `extra` adds rows to the run table.

    >>> text = run_report("partner", {"rows_aligned": 10, "weights": {"partner": [0.5]},
    ...                               "feature_names": {"bank": ["a"], "partner": ["b"]}, "model": "ss_lr"})
    >>> "Secure logistic regression" in text and "<svg" not in text  # the partner has no scores
    True
    """
    model = summary.get("model")
    label_party = summary.get("label_party")
    run = {k: summary[k] for k in ("party", "model", "rows_aligned", "train_rows", "test_rows", "features", "auc", "ks",
                                   "local_model", "local_auc", "local_ks", "ks_uplift_pct", "auc_uplift", "score_psi",
                                   "scores_to",
                                   "model_dir", "seconds", "job_fingerprint") if k in summary}
    run = {"party": party, **run, **(extra or {})}
    sections = [("Run", kv_table(run))]
    if summary.get("test_scores") is not None and summary.get("test_labels") is not None:
        sections.append(("Performance on the test rows", _performance(summary, baseline)))
    rows, cols, head = _feature_rows(summary)
    if rows:
        sections.append((head, table_html(rows, cols) + _zero_iv_note(summary) + _dropped_note(summary)))
    if summary.get("stability"):
        sections.append(("Population stability of this party's own features (train vs test rows)",
                         _stability_html(summary["stability"])))
    if (summary.get("scorecard") or {}).get("points"):
        sections.append(("Scorecard (this party's own features)", _scorecard_html(summary["scorecard"])))
    if summary.get("reason_code_counts"):
        sections.append(("Reason codes (the first reason of each scored row)", _reasons_html(summary)))
    if summary.get("stepwise"):
        sections.append(("Stepwise selection (score / Wald test under MPC)",
                         table_html(summary["stepwise"], list(summary["stepwise"][0]))))
    if steps:
        sections.append(("Pipeline", table_html([{"step": i + 1, "component": n, "parameters": dict(p) or "(defaults)"}
                                                 for i, (n, p) in enumerate(steps)], ["step", "component", "parameters"])))
    woe = any(n == "woe_binning" for n, _ in (steps or []))
    how = f"<p class='note'>{html.escape(method_note(model, protocol, woe))}</p>"
    how += f"<p class='note'>{html.escape(_learned(party, summary, label_party))}</p>"
    if notes:
        how += f"<p class='note'>{html.escape(notes)}</p>"
    sections.append(("Method and what each party learned", how))
    return page(f"{title} — report of '{party}'", sections)
