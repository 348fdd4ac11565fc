"""`scorecard`: points per bin from a WOE logistic regression, each party for its own features.

The usual scaling: `factor = pdo / ln 2`, `offset = base_score - factor * ln(base_odds)`
(`base_odds`: good:bad odds at `base_score`); a row's score is
`offset - factor * (intercept + sum_j w_j * woe_j)`, i.e. `base points + sum of the
points of the row's bins`, with `points(bin k of feature j) = -factor * w_j * woe_jk` and
`base points = offset - factor * intercept`. Higher scores mean lower risk; `pdo` more
points halve the odds of a bad outcome.

**Reason codes** (with a preceding `predict` to the label holder, `reasons` > 0): for each
scored row the label holder lists the `reasons` features whose points fall furthest below
their reference (their mean over the scored rows; kept in the scorecard artefact, so batch
scoring and serving use the same reference). Its own features count one by one; the other
parties' features count as one summed contribution, "partner features (summed)", which the
label holder derives from the row's score minus the base points and its own points: no
message, and nothing it could not already compute from the score it received.

Each partner's policy (`reason_codes: {partner: coded | hidden}`, default hidden) decides
whether the label holder may see more. With `coded`, the partner ranks its own features per
row (points below their reference, furthest first) and sends the label holder, per scored row,
the codes of its top `reasons` adverse features, ``partner:3`` meaning its 3rd model feature
(0 pads the row): never a value, a bin or a point. Where the summed partner contribution
ranks among the label holder's reasons, it is replaced by those codes. What the label holder
learns with `coded`: per row, which of the partner's features (and in which order) have
points below their reference -- a coarse function of the partner's bins, the price of the
per-feature explanation; with `hidden` nothing beyond the score. The partner learns nothing
(it sends, receives nothing). `coded` needs the partner to know its scored rows: refused
(ConfigError naming the party) when they are aligned under secret sharing (label-only PSI);
in `jointml predict` with label-only PSI that partner's codes are left out (summed), said
in the output.

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

__all__ = ["POLICIES", "bin_labels", "merge_reasons", "reason_codes", "row_reasons", "scaling", "scorecard",
           "top_codes"]

#: the values of a party's `reason_codes` policy
POLICIES = ("coded", "hidden")
PARTNER_SUM = "partner features (summed)"


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


def top_codes(points: dict[str, np.ndarray], reference: dict[str, float], k: int) -> np.ndarray:
    """Per row, the 1-based positions (in `points`' order) of the `k` features furthest below their
    reference, most adverse first; 0 pads a row with fewer adverse features.

    >>> top_codes({"a": np.array([1.0, 9.0]), "b": np.array([0.0, 5.0])}, {"a": 5.0, "b": 2.0}, 2).tolist()
    [[1, 2], [0, 0]]
    """
    names = list(points)
    n = len(next(iter(points.values()))) if names else 0
    out = np.zeros((n, k), dtype=np.int64)
    if not names or not k:
        return out
    short = np.stack([reference[c] - points[c] for c in names], axis=1)
    order = np.argsort(-short, axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(short, order, axis=1) > 0
    out[:, : order.shape[1]] = np.where(hit, order + 1, 0)
    return out


def merge_reasons(short: dict[str, np.ndarray], codes: dict[str, np.ndarray], k: int) -> list[list[str]]:
    """Per row, the `k` most adverse contributions (`short`: how far below its reference, > 0 adverse),
    the summed partner entry replaced by the coded parties' codes (``party:i``) where they have any.

    >>> merge_reasons({"a": np.array([2.0]), PARTNER_SUM: np.array([3.0])}, {"shop": np.array([[2, 1]])}, 2)
    [['shop:2', 'shop:1']]
    """
    names = list(short)
    if not names:
        return []
    mat = np.stack([short[c] for c in names], axis=1)
    order = np.argsort(-mat, axis=1, kind="stable")
    out = []
    for i in range(mat.shape[0]):
        row: list[str] = []
        for j in order[i]:
            if mat[i, j] <= 0 or len(row) >= k:
                break
            coded = [f"{p}:{int(c)}" for p, cs in codes.items() for c in cs[i] if c > 0] \
                if names[j] == PARTNER_SUM else []
            row.extend(coded or [names[j]])
        out.append(row[:k])
    return out


def own_points(woe: Any, me: str, df: Any, table: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    """This party's points per row for each of its own features (its bins, its points table)."""
    cols = list(table)
    if not cols:
        return {}
    idx = woe.bin_indices(me, df[cols])
    return {c: np.array([r["points"] for r in table[c]])[idx[:, j]] for j, c in enumerate(cols)}


def row_reasons(ctx: Any, woe: Any, frame: Any, label_party: str, to: str, probs: Any, cards: dict | None,
                k: int) -> list[dict] | None:
    """Reason codes of the scored rows of `frame` (every party of the frame calls it; see the
    module docstring). `cards`: this party's scorecard artefact (points, reference, policies);
    `probs`: the scores at `to`. Returns the rows' reasons at the label holder, None elsewhere."""
    from ...data.blind import hidden_parties
    from ...runtime.collectives import broadcast, send_to

    policies = dict((cards or {}).get("reason_codes") or {})
    plan = broadcast(ctx, label_party, meta={"coded": sorted(p for p, v in policies.items() if v == "coded"), "k": k}
                     if ctx.me == label_party else None, to=list(frame.parties), name="scorecard:plan")
    if ctx.me not in frame.parties or plan is None:
        return None
    raw_k = plan.meta.get("k")
    k = raw_k if type(raw_k) is int and 0 <= raw_k <= 100 else 0
    coded = [p for p in plan.meta.get("coded", []) if isinstance(p, str) and p in frame.parties
             and p not in hidden_parties(frame) and p != label_party]
    n = len(frame)
    got: dict[str, np.ndarray] = {}
    card = cards or {}
    for p in coded:
        arr, meta = None, None
        if ctx.me == p:  # its own consent, from its own artefact; a refusal travels with the (empty) codes
            ok = (card.get("reason_codes") or {}).get(p) == "coded"
            pts = own_points(woe, p, frame.parts[p].value, card.get("points") or {}) if ok else {}
            ref = card.get("reference_points") or {c: float(np.mean(v)) for c, v in pts.items()}
            arr, meta = (top_codes(pts, ref, k) if ok else np.zeros((n, k), np.int64)), {"ok": ok}
        r = send_to(ctx, p, label_party, meta=meta, arrays=[arr] if arr is not None else [], name="scorecard:codes",
                    dtypes=[np.int64], shapes=[(n, k)])
        if r is not None and r.meta.get("ok") is not True:
            raise ConfigError("the label holder asks for per-feature reason codes, but this party's scorecard part says "
                              "reason_codes: hidden (or is missing)", party=p, field=f"reason_codes.{p}", public=True)
        if ctx.me == label_party and r is not None:
            codes, n_feats = r.arrays[0], len(woe.columns.get(p, []))
            if codes.size and (codes.min() < 0 or codes.max() > n_feats):  # a code names one of p's model features
                from ...core.errors import ProtocolError

                raise ProtocolError(f"reason codes from '{p}' name features beyond its {n_feats} model features",
                                    party=p, field="reason_codes")
            got[p] = codes
    if ctx.me != label_party or to != label_party or cards is None or "base_points" not in cards:
        return None
    return _label_reasons(ctx, woe, frame, probs, cards, got, k,
                          [p for p in hidden_parties(frame) if policies.get(p) == "coded"])


def load_card(directory: str | Path, me: str, model_id: str | None) -> dict | None:
    """This party's scorecard artefact next to the model parts (`scorecard.<me>.json`), when it
    belongs to the model `model_id` (a card of an earlier model is ignored), else None."""
    import json

    path = Path(directory) / f"scorecard.{me}.json"
    if not path.is_file():
        return None
    card = json.loads(path.read_text(encoding="utf-8"))
    return card if isinstance(card, dict) and card.get("model_id") == model_id else None


def batch_reasons(ctx: Any, directory: str | Path, woe: Any, frame: Any, label_party: str, to: str, probs: Any,
                  model_id: str | None) -> list[dict] | None:
    """Reason codes for batch scoring (`jointml predict`), from each party's saved scorecard
    artefact (its points, references and policy); every party calls it. The label holder's
    reasons, or None (no scorecard, or not the label holder)."""
    card = load_card(directory, ctx.me, model_id)
    k = int(card.get("reasons", 3)) if card else 0
    return row_reasons(ctx, woe, frame, label_party, to, probs, card, k)


def _label_reasons(ctx: Any, woe: Any, frame: Any, probs: Any, card: dict, codes: dict[str, np.ndarray], k: int,
                   left_out: list[str]) -> list[dict]:
    """At the label holder: its own features' and the summed partner contribution's shortfalls, merged."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
    total = card["offset"] - card["factor"] * np.log(p / (1 - p))
    pts = own_points(woe, ctx.me, frame.parts[ctx.me].value, card["points"])
    ref = dict(card.get("reference_points") or {c: float(np.mean(v)) for c, v in pts.items()})
    short = {c: ref[c] - v for c, v in pts.items()}
    if any(cs for q, cs in woe.columns.items() if q != ctx.me):
        partner = total - card["base_points"] - (sum(pts.values()) if pts else 0.0)
        short[PARTNER_SUM] = float(card.get("partner_reference", np.mean(partner))) - partner
    rows = merge_reasons(short, codes, k) if k else [[] for _ in range(len(total))]
    note = {"note": f"codes of {', '.join(left_out)} left out (label-only PSI)"} if left_out else {}
    return [{"row": i, "score": float(total[i]), **{f"reason {j + 1}": r for j, r in enumerate(rows[i])}, **note}
            for i in range(len(total))]


def _references(ctx: Any, woe: Any, own: dict, scores: Scores) -> None:
    """The reference of each contribution (its mean over the scored rows), kept in the artefact."""
    from ...data.blind import hidden_parties

    if ctx.me not in scores.frame.parties or ctx.me in hidden_parties(scores.frame):
        return
    pts = own_points(woe, ctx.me, scores.frame.parts[ctx.me].value, own["points"])
    own["reference_points"] = {c: float(np.mean(v)) for c, v in pts.items()}
    if ctx.me == scores.to and "base_points" in own:
        p = np.clip(np.asarray(scores.scores.value, dtype=np.float64), 1e-12, 1 - 1e-12)
        total = own["offset"] - own["factor"] * np.log(p / (1 - p))
        own["partner_reference"] = float(np.mean(total - own["base_points"] - (sum(pts.values()) if pts else 0.0)))


def _policies(reason_codes: dict | None, w: Any, label_party: str | None) -> dict[str, str]:
    """Each feature holder's reason-code policy (default hidden), checked."""
    others = [p for p, cs in w.columns.items() if cs and p != label_party]
    pol = {p: "hidden" for p in others}
    if reason_codes is not None and not isinstance(reason_codes, dict):
        raise ConfigError(f"scorecard: reason_codes must map a party to coded or hidden, got {reason_codes!r}",
                          field="reason_codes", public=True)
    for p, v in (reason_codes or {}).items():
        if p not in others:
            raise ConfigError(f"scorecard: reason_codes names '{p}', which is not a party holding model features "
                              f"other than the label holder (those are: {others})", field=f"reason_codes.{p}",
                              public=True)
        if v not in POLICIES:
            raise ConfigError(f"scorecard: reason_codes of '{p}' must be one of {POLICIES}, got {v!r}", party=p,
                              field=f"reason_codes.{p}", public=True)
        pol[p] = v
    return pol


@component("scorecard", outputs=())
def scorecard(ctx: Any, state: Any, parts: ModelParts, woe: WoeModel, scores: Scores | None = None, *,
              pdo: float = 20.0, base_score: float = 600.0, base_odds: float = 50.0, reasons: int = 3,
              reason_codes: dict | None = None) -> None:
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
    policies = _policies(reason_codes, w, parts.label.party)
    if scores is not None:
        from ...data.blind import hidden_parties

        blind = [p for p in hidden_parties(scores.frame) if policies.get(p) == "coded"]
        if blind and reasons > 0:
            raise ConfigError(f"scorecard: reason_codes: coded needs '{blind[0]}' to know which of its rows are scored, "
                              "but its rows are aligned under secret sharing (label-only PSI): use psi mode both, or "
                              "reason_codes: hidden", party=blind[0], field=f"reason_codes.{blind[0]}", public=True)
    cols = list(parts.columns.get(ctx.me) or [])
    own: dict[str, Any] = {"model_id": parts.model_id, "pdo": pdo, "base_score": base_score, "base_odds": base_odds,
                           "factor": factor,
                           "offset": offset, "points": {}, "reasons": int(reasons), "reason_codes": policies}
    if cols:
        weights = np.asarray(parts.estimator.coef_by_party_[ctx.me], dtype=np.float64)
        own["points"] = _own_table(ctx, w, weights, cols, factor)
    if ctx.me == parts.label.party and getattr(parts.estimator, "intercept_", None) is not None:
        own["base_points"] = float(offset - factor * parts.estimator.intercept_)
    if ctx.me in policies and own["points"]:  # the partner's own code table: "partner:i" -> its feature
        own["code_table"] = {f"{ctx.me}:{j + 1}": c for j, c in enumerate(own["points"])}
    rows = None
    if reasons > 0 and scores is not None and scores.to == parts.label.party:
        _references(ctx, w, own, scores)
        rows = row_reasons(ctx, w, scores.frame, parts.label.party, scores.to,
                           scores.scores.value if ctx.me == scores.to else None, own, reasons)
        if rows is not None:
            state.summary["reason_codes_rows"] = len(rows)
            firsts = [r.get("reason 1") for r in rows if r.get("reason 1")]
            state.summary["reason_code_counts"] = {c: firsts.count(c) for c in dict.fromkeys(firsts)}
    state.summary["scorecard"] = own
    if state.spec.output:
        import json

        atomic_write(Path(state.spec.output) / f"scorecard.{ctx.me}.json", json.dumps(own, indent=1))
        if parts.directory:  # next to the model parts: what batch scoring and serving read
            atomic_write(Path(parts.directory) / f"scorecard.{ctx.me}.json", json.dumps(own, indent=1))
        if rows is not None:
            import pandas as pd

            pd.DataFrame(rows).to_csv(Path(state.spec.output) / f"reasons.{ctx.me}.csv", index=False)
