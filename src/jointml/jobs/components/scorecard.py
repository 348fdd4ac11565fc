"""`scorecard`: points per bin from a WOE logistic regression, each party for its own features.

The usual scaling: `factor = pdo / ln 2`, `offset = base_score - factor * ln(base_odds)`
(`base_odds`: good:bad odds at `base_score`); a row's score is
`offset - factor * (intercept + sum_j w_j * woe_j)`, i.e. `base points + sum of the
points of the row's bins`, with `points(bin k of feature j) = -factor * w_j * woe_jk` and
`base points = offset - factor * intercept`. Higher scores mean lower risk; `pdo` more
points halve the odds of a bad outcome.

**Reason codes** (with a preceding `predict` to the label holder, `reasons` > 0): for each
scored row the label holder lists the `reasons` features whose points fall furthest below
their mean over the scored rows (the adverse contributions). Its own features count one by
one; the other parties' features count as one summed contribution, "partner features
(summed)", which the label holder derives from the row's score minus the base points and
its own points: no message, and nothing it could not already compute from the score it
received. Per-feature partner contributions would need the partner to reveal its points per
row: not offered.

Who computes what: each party its own points table, from its own weights (SS-LR with
`reveal="owners"`) and the WOE values of its own bins, which a feature holder has only
with `woe_binning(woe_to_owner: true)` (the step refuses otherwise, at every party alike);
the label holder also the base points (it holds the intercept). Nothing is sent: a points
table never leaves its party. Each party learns nothing new beyond what the preceding
steps gave it (its weights times its WOE values).

>>> round(scaling(20, 600, 50)[0], 4), round(scaling(20, 600, 50)[1], 2)
(28.8539, 487.12)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import ConfigError
from ...runtime.persist import atomic_write
from ..artifacts import ModelParts, Scores, WoeModel
from ..registry import component

__all__ = ["bin_labels", "reason_codes", "scaling", "scorecard"]


def scaling(pdo: float, base_score: float, base_odds: float) -> tuple[float, float]:
    """`(factor, offset)` of a scorecard (see the module docstring)."""
    factor = pdo / math.log(2.0)
    return factor, base_score - factor * math.log(base_odds)


def bin_labels(prebin_labels: list[str], prebin_to_bin: np.ndarray, n_bins: int) -> list[str]:
    """A label per final bin: its pre-bins' labels, contiguous numeric ranges merged.

    >>> bin_labels(["[-inf, 1)", "[1, 2)", "[2, inf)", "missing"], np.array([0, 0, 1, 2]), 3)
    ['[-inf, 2)', '[2, inf)', 'missing']
    """
    prebin_labels = [_short_numbers(lab) for lab in prebin_labels]
    out = []
    for k in range(n_bins):
        idx = [i for i in np.flatnonzero(np.asarray(prebin_to_bin) == k) if i < len(prebin_labels)]
        labs = [prebin_labels[i] for i in idx]
        ranges = [lab for lab in labs if lab.startswith("[") and lab.endswith(")")]
        contiguous = len(ranges) == len(labs) > 1 and all(b - a == 1 for a, b in zip(idx, idx[1:]))
        if contiguous:
            out.append(f"{labs[0].split(',')[0]},{labs[-1].split(',', 1)[1]}")
        else:
            out.append(" | ".join(labs) if labs else "(empty)")
    return out


def _short_numbers(label: str) -> str:
    """Bin edges with 6 significant digits (`[-0.9744999999999999, 1)` -> `[-0.9745, 1)`).

    >>> _short_numbers("[-0.9744999999999999, 0.08499999999999999)")
    '[-0.9745, 0.085)'
    """
    import re

    return re.sub(r"-?\d+\.\d{7,}(?:e-?\d+)?", lambda m: f"{float(m.group()):.6g}", label)


def _own_table(ctx: Any, woe: Any, weights: np.ndarray, cols: list[str], factor: float) -> dict[str, list[dict]]:
    tables = {}
    binner = woe.binners.get(ctx.me)
    for j, c in enumerate(cols):
        cw = woe.col[c]
        table = np.asarray(cw.woe_table(), dtype=np.float64)
        labels = bin_labels(binner.get_bins(c).labels(), cw.bin_map(), len(table)) if binner is not None else \
            [str(k) for k in range(len(table))]
        tables[c] = [{"bin": labels[k], "woe": float(table[k]), "points": float(-factor * weights[j] * table[k])}
                     for k in range(len(table))]
    return tables


def reason_codes(points: dict[str, np.ndarray], k: int) -> list[list[str]]:
    """Per row, the `k` contributions furthest below their mean over the rows (most adverse first).

    >>> reason_codes({"a": np.array([10.0, 0.0]), "b": np.array([5.0, 5.0]), "c": np.array([0.0, 9.0])}, 1)
    [['c'], ['a']]
    """
    names = list(points)
    short = np.stack([np.mean(points[c]) - points[c] for c in names], axis=1)  # > 0: below the mean
    order = np.argsort(-short, axis=1, kind="stable")[:, :k]
    return [[names[j] for j in row if short[i, j] > 0] for i, row in enumerate(order)]


def _row_reasons(ctx: Any, w: Any, own: dict, scores: Scores, factor: float, offset: float, k: int) -> list[dict]:
    """Reason codes of the scored rows, at the label holder (see the module docstring)."""
    df = scores.frame.parts[ctx.me].value
    cols = list(own["points"])
    p = np.clip(np.asarray(scores.scores.value, dtype=np.float64), 1e-12, 1 - 1e-12)
    total = offset - factor * np.log(p / (1 - p))
    pts: dict[str, np.ndarray] = {}
    if cols:
        idx = w.bin_indices(ctx.me, df[cols])
        for j, c in enumerate(cols):
            pts[c] = np.array([r["points"] for r in own["points"][c]])[idx[:, j]]
    partner = total - own["base_points"] - (sum(pts.values()) if pts else 0.0)
    if any(cs for p_, cs in w.columns.items() if p_ != ctx.me):
        pts["partner features (summed)"] = partner
    codes = reason_codes(pts, k)
    return [{"row": i, "score": float(total[i]), **{f"reason {j + 1}": r for j, r in enumerate(codes[i])}}
            for i in range(len(total))]


@component("scorecard", outputs=())
def scorecard(ctx: Any, state: Any, parts: ModelParts, woe: WoeModel, scores: Scores | None = None, *,
              pdo: float = 20.0, base_score: float = 600.0, base_odds: float = 50.0, reasons: int = 3) -> None:
    """Scorecard points per bin (PDO, base score at base good:bad odds) for each party's own WOE features,
    from a logistic regression on WOE features; each party keeps its own points table."""
    if parts.model != "ss_lr" or parts.features != "woe":
        raise ConfigError(f"scorecard needs a logistic regression on WOE features (train: {{model: ss_lr}} after "
                          f"woe_binning), not {parts.model} on {parts.features} features", field="model", public=True)
    w = woe.woe
    holders = [p for p, cols in w.columns.items() if cols and p != w.label_owner]
    if holders and not w.woe_to_owner:
        raise ConfigError("scorecard: each party computes the points of its own bins from their WOE values, which a "
                          "feature holder has only with woe_binning(woe_to_owner: true)", field="woe_to_owner", public=True)
    factor, offset = scaling(pdo, base_score, base_odds)
    cols = list(parts.columns.get(ctx.me) or [])
    own: dict[str, Any] = {"pdo": pdo, "base_score": base_score, "base_odds": base_odds, "factor": factor,
                           "offset": offset, "points": {}}
    if cols:
        weights = np.asarray(parts.estimator.coef_by_party_[ctx.me], dtype=np.float64)
        own["points"] = _own_table(ctx, w, weights, cols, factor)
    if ctx.me == parts.label.party and getattr(parts.estimator, "intercept_", None) is not None:
        own["base_points"] = float(offset - factor * parts.estimator.intercept_)
    state.summary["scorecard"] = own
    rows = None
    if reasons > 0 and scores is not None and ctx.me == scores.to == parts.label.party and "base_points" in own:
        rows = _row_reasons(ctx, w, own, scores, factor, offset, reasons)
        state.summary["reason_codes_rows"] = len(rows)
    if state.spec.output:
        import json

        atomic_write(Path(state.spec.output) / f"scorecard.{ctx.me}.json", json.dumps(own, indent=1))
        if rows is not None:
            import pandas as pd

            pd.DataFrame(rows).to_csv(Path(state.spec.output) / f"reasons.{ctx.me}.csv", index=False)
