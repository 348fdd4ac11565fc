"""A self-contained HTML report of a run (inline SVG charts, no plotting dependency).

Rendered at the party that holds the scores and labels (the label holder); it shows only
what that party already has.

>>> html_text = page("run", [("Metrics", table_html([{"auc": 0.81}], ["auc"]))])
>>> html_text.startswith("<!doctype html>") and "<td>0.8100</td>" in html_text
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence

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


def roc_svg(fpr, tpr, auc: float, baseline: tuple | None = None, w: int = 420, h: int = 380) -> str:
    """An ROC curve (and a dashed baseline `(fpr, tpr, auc)`) as an SVG element.

    >>> roc_svg([0, 0.5, 1], [0, 0.8, 1], 0.8).startswith("<svg")
    True
    """
    pad = 44
    parts = [_axes(w, h, pad, "false positive rate", "true positive rate"), _polyline([0, 1], [0, 1], w, h, pad, "#bbb", "4 4")]
    if baseline is not None:
        parts.append(_polyline(baseline[0], baseline[1], w, h, pad, "#e39b2d", "6 3"))
    parts.append(_polyline(fpr, tpr, w, h, pad, "#1f5fbf"))
    legend = f'<text x="{pad + 10}" y="{pad + 18}" font-size="12" fill="#1f5fbf">joint model AUC {auc:.4f}</text>'
    if baseline is not None:
        legend += f'<text x="{pad + 10}" y="{pad + 34}" font-size="12" fill="#e39b2d">plaintext twin AUC {baseline[2]:.4f}</text>'
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">{"".join(parts)}{legend}</svg>'


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
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">{"".join(parts)}{legend}</svg>'


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
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A whole HTML page: a title and `(heading, html)` sections (see the module example)."""
    css = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
        "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}.charts{display:flex;gap:2em;flex-wrap:wrap}"
        ".note{color:#666;font-size:13px}"
    )
    body = "".join(f"<h2>{html.escape(h)}</h2>{c}" for h, c in sections)
    head = f"<head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{css}</style></head>"
    return f"<!doctype html><html>{head}<body><h1>{html.escape(title)}</h1>{body}</body></html>"
