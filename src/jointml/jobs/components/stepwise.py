"""Stepwise feature selection under MPC for `select_features`: forward by the score (Rao) test,
backward by the Wald test, forward by validation AUC.

Start from the intercept (plus the `include` features); at each step fit a secure logistic
regression on the selected WOE features (SS-LR, weights kept secret-shared: nobody learns
them), and for every candidate feature `j` compute the score statistic of adding it,

    U_j = sum_i x_ij (y_i - p_i),   V_j = I_jj - I_jZ I_ZZ^-1 I_Zj,   chi2_j = U_j^2 / V_j,

with `p_i` the fitted probabilities, `I = [1, X]^T diag(p (1 - p)) [1, X]` and `Z` the
intercept and the selected features (SAS's "score chi-square for entry"). The feature of
largest chi2 enters when its p-value (chi-square, 1 degree of freedom) is below `p_enter`;
selection stops otherwise, or at `max_features`. The first step is exact (`p_i` is the
base rate); later steps use the SS-LR fit, an approximation of the maximum-likelihood fit
(fixed point, a few epochs): the statistic is the score test at that fit.

Protocol (semi-honest, on the job's MPC device; the parties' WOE features as in training:
plaintext blocks at their owners or secret-shared): the labels, the WOE features of the
candidates, `p`, the residuals and the weights are secret-shared; `U` and `I` are computed
under MPC and revealed to the label holder only, which decides and announces the feature
that enters (its position in the candidate list) or the stop.

What each party learns:
- label holder: per step, the score vector `U` and the weighted Gram matrix `I` of all
  candidate WOE features (aggregates over the training rows, like the correlation matrix of
  `max_corr`), hence the score statistics; no row, no weight of a fitted model.
- every party: the order in which features enter (names for the frame's parties; positions
  in each party's kept list for a party outside the frame, the semi2k dealer), and the
  number of steps. No weight of any intermediate model (they stay shared).
- a deviating label holder can choose any entry order (it chooses the model's features
  anyway, with `include`/`exclude`).

Cost per step: one SS-LR fit on the selected features, then `O(n d^2)` secret products for
`I` (`d` candidates, `n` training rows) and `O(n d)` for `U`, one reveal.

**Backward** (`stepwise: backward`): start from all kept features; at each step fit SS-LR
(weights shared), open `I` of the intercept and the selected features to the label holder,
which computes `c_j = 1 / (I^-1)_jj` and secret-shares it; the Wald statistics
`chi2_j = w_j^2 c_j` are computed under MPC and opened to the label holder, which removes the
feature of smallest chi2 when its p-value is above `p_remove` (never an `include` feature),
and stops otherwise. The label holder learns, per step, `I` and the Wald statistics, hence
`|w_j| / se_j` and (knowing `I`) the *magnitude* `|w_j|` of each weight of that step's model,
not its sign; the others learn the removal order.

**Forward by validation AUC** (`stepwise: forward_auc`): the training rows are split (public
seed) into fitting and validation rows; at each step, for every candidate, SS-LR is fitted
on the selected features plus the candidate (weights shared), its validation scores stay
secret-shared and their AUC is computed under MPC against the label holder's labels
(`jointml.data.secure.metrics.roc_auc`) and opened to the label holder alone; the best
candidate enters when it raises the AUC by at least `min_auc_gain`. The label holder learns
each candidate model's validation AUC; the others the entry order. Cost: one fit and one
secure AUC (`n_val^2` comparisons, bucketed beyond 2,000 rows) per candidate per step.

>>> M = np.array([[4.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
>>> {j: round(v, 3) for j, v in score_statistics(M, np.array([1.0, 1.0]), [], [0, 1]).items()}
{0: 0.5, 1: 1.0}
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["auc_stepwise", "backward_stepwise", "forward_stepwise", "score_statistics", "wald_weights"]


def score_statistics(M: np.ndarray, U: np.ndarray, selected: list[int], candidates: list[int]) -> dict[int, float]:
    """Score chi-square of adding each candidate, from `M` (the weighted Gram matrix of the
    intercept and all features, intercept first) and `U` (the score vector of the features)."""
    Z = [0] + [1 + s for s in selected]
    inv = np.linalg.pinv(M[np.ix_(Z, Z)])
    out = {}
    for j in candidates:
        jj = 1 + j
        v = float(M[jj, jj] - M[jj, Z] @ inv @ M[Z, jj])
        out[j] = float(U[j] ** 2 / v) if v > 1e-9 * max(float(M[jj, jj]), 1e-12) else 0.0
    return out


def wald_weights(M: np.ndarray) -> np.ndarray:
    """`1 / (I^-1)_jj` for the features (intercept first in `M`, left out of the result): the
    Wald statistic of feature j is `w_j^2` times it.

    >>> wald_weights(np.array([[4.0, 0.0], [0.0, 2.0]])).tolist()
    [2.0]
    """
    v = np.diag(np.linalg.pinv(M))[1:]
    return np.where(v > 0, 1.0 / np.where(v > 0, v, 1.0), 0.0)


def _blocks(ctx: Any, feats: dict, positions: dict[str, list[int]], chosen: list[tuple[str, int]]) -> dict:
    """Each party's block restricted to the chosen columns (plaintext blocks cut at their owner)."""
    from ...mpc import SecretArray

    out = {}
    for p, pos in positions.items():
        idx = [pos[j] for q, j in chosen if q == p]
        if not idx:
            continue
        f = feats[p]
        out[p] = f[:, idx] if isinstance(f, SecretArray) else \
            ctx.party(p).run(lambda a, ix=tuple(idx): np.asarray(a, dtype=np.float64)[:, list(ix)], f)
    return out


def _secret_matrix(mpc: Any, blocks: dict) -> Any:
    from ...mpc import SecretArray, concatenate

    parts = [b if isinstance(b, SecretArray) else b.to(mpc, fxp=True) for b in blocks.values()]
    return concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def _statistics(mpc: Any, G: Any, y: Any, p: Any, to: str) -> tuple[Any, Any]:
    """`I` ((1+d) x (1+d)) and `U` (d), computed under MPC, revealed to `to` only."""
    from ...mpc import concatenate

    n, d = G.shape
    r = (y - p).reshape(n, 1)
    w = (p * (1 - p)).reshape(n, 1)
    Gw = G * w.broadcast_to((n, d))
    top = concatenate([w.sum(axis=0).reshape(1, 1), (w.T @ G).reshape(1, d)], axis=1)
    low = concatenate([(G.T @ w).reshape(d, 1), G.T @ Gw], axis=1)
    M = concatenate([top, low], axis=0)
    U = (G.T @ r).reshape(d)
    return M.reveal(to=to), U.reveal(to=to)


def forward_stepwise(ctx: Any, mpc: Any, w: Any, frame: Any, label: str, pos_label: Any, keep: dict[str, list[str]],
                     include: list[str], p_enter: float, max_features: int | None,
                     fit: dict[str, Any]) -> tuple[dict[str, list[str]], list[dict]]:
    """Forward selection among `keep` (every party calls it); `({party: selected}, steps)`, the
    steps (feature, chi2, p-value) at the label holder only."""
    from ...data.preprocessing import chi2_threshold
    from ...runtime.collectives import broadcast
    from ..registry import MODELS

    owner = w.label_owner
    feats = w.transform(ctx, frame, mpc)
    positions = {p: [w.columns[p].index(c) if c in w.columns[p] else i for i, c in enumerate(cs)]
                 for p, cs in keep.items() if cs}
    cands = [(p, j) for p, pos in positions.items() for j in range(len(pos))]
    G = _secret_matrix(mpc, _blocks(ctx, feats, positions, cands))
    y_obj = ctx.party(owner).run(lambda df: (df[label] == pos_label).to_numpy(np.float64), frame.parts[owner])
    y = y_obj.to(mpc, fxp=True)
    start = [k for k, (p, j) in enumerate(cands) if keep[p][j] in include] if ctx.me == owner else None
    chosen = list(broadcast(ctx, owner, meta={"start": start} if start is not None else None,
                            name="stepwise:start").meta.get("start") or [])
    if not all(type(k) is int and 0 <= k < len(cands) for k in chosen):
        from ...core.errors import ProtocolError

        raise ProtocolError("select_features: invalid stepwise start", party=owner, field="stepwise")
    steps: list[dict] = []
    thr = chi2_threshold(1.0 - p_enter)
    while len(chosen) < len(cands) and (max_features is None or len(chosen) < max_features):
        if chosen:
            est = MODELS["ss_lr"].build(mpc, **{**fit, "reveal": "shared"})
            X = _blocks(ctx, feats, positions, [cands[k] for k in chosen])
            est.fit(X, y_obj)
            p = est.predict_shared(X)
        else:
            p = y.mean().reshape(1).broadcast_to((len(frame),))
        M, U = _statistics(mpc, G, y, p, owner)
        meta = None
        if ctx.me == owner:
            stats = score_statistics(np.asarray(M.value), np.asarray(U.value), chosen,
                                     [k for k in range(len(cands)) if k not in chosen])
            best = max(stats, key=lambda k: stats[k])
            enter = stats[best] > thr
            meta = {"add": best if enter else -1}
            steps.append({"feature": keep[cands[best][0]][cands[best][1]], "chi2": round(stats[best], 4),
                          "p_value": round(_chi2_sf(stats[best]), 6), "entered": bool(enter)})
        add = _agreed_entry(ctx, owner, meta, len(cands), chosen)
        if add < 0:
            break
        chosen.append(add)
    return _kept(keep, cands, chosen), steps


def _agreed_entry(ctx: Any, owner: str, meta: dict | None, n: int, chosen: list[int]) -> int:
    """The owner's decision of a forward step, announced to all and checked at every party:
    a candidate index not yet chosen, or -1 (stop)."""
    from ...runtime.collectives import broadcast

    add = broadcast(ctx, owner, meta=meta, name="stepwise:add").meta.get("add")
    if type(add) is not int or not -1 <= add < n or add in chosen:
        from ...core.errors import ProtocolError

        raise ProtocolError("select_features: invalid stepwise decision", party=owner, field="stepwise")
    return add


def _kept(keep: dict, cands: list, chosen: list[int]) -> dict:
    """Each party's kept feature names, in its own order."""
    return {p: [keep[p][j] for k, (q, j) in enumerate(cands) if q == p and k in chosen] for p in keep}


def _chi2_sf(x: float) -> float:
    """P(chi2 with 1 degree of freedom > x).

    >>> round(_chi2_sf(3.8415), 3)
    0.05
    """
    from math import erfc, sqrt

    return float(erfc(sqrt(max(x, 0.0) / 2.0)))


def backward_stepwise(ctx: Any, mpc: Any, w: Any, frame: Any, label: str, pos_label: Any, keep: dict[str, list[str]],
                      include: list[str], p_remove: float, fit: dict[str, Any]) -> tuple[dict[str, list[str]], list[dict]]:
    """Backward elimination among `keep` by the Wald test (every party calls it; see the module
    docstring); `({party: selected}, steps)`, the steps at the label holder only."""
    from ...runtime.collectives import broadcast
    from ..registry import MODELS

    owner = w.label_owner
    feats = w.transform(ctx, frame, mpc)
    positions = {p: [w.columns[p].index(c) if c in w.columns[p] else i for i, c in enumerate(cs)]
                 for p, cs in keep.items() if cs}
    cands = [(p, j) for p, pos in positions.items() for j in range(len(pos))]
    y_obj = ctx.party(owner).run(lambda df: (df[label] == pos_label).to_numpy(np.float64), frame.parts[owner])
    y = y_obj.to(mpc, fxp=True)
    fixed = [k for k, (p, j) in enumerate(cands) if keep[p][j] in include] if ctx.me == owner else None
    fixed = _checked_positions(broadcast(ctx, owner, meta={"fixed": fixed} if fixed is not None else None,
                                         name="stepwise:fixed").meta.get("fixed"), len(cands), owner)
    chosen, steps = list(range(len(cands))), []
    while len(chosen) > max(len(fixed), 1):
        est = MODELS["ss_lr"].build(mpc, **{**fit, "reveal": "shared"})
        X = _blocks(ctx, feats, positions, [cands[k] for k in chosen])
        est.fit(X, y_obj)
        G = _secret_matrix(mpc, X)
        M, _ = _statistics(mpc, G, y, est.predict_shared(X), owner)
        c = ctx.party(owner).run(lambda m: wald_weights(np.asarray(m)), M).to(mpc, fxp=True)
        ws = est.w_shared_.reshape(len(chosen))
        stat = (ws * ws * c).reveal(to=owner)
        meta = None
        if ctx.me == owner:
            vals = np.asarray(stat.value, dtype=np.float64)
            free = [i for i, k in enumerate(chosen) if k not in fixed]
            worst = min(free, key=lambda i: vals[i])
            out = _chi2_sf(vals[worst]) > p_remove
            meta = {"drop": chosen[worst] if out else -1}
            p, j = cands[chosen[worst]]
            steps.append({"feature": keep[p][j], "chi2": round(float(vals[worst]), 4),
                          "p_value": round(_chi2_sf(vals[worst]), 6), "removed": bool(out)})
        drop = broadcast(ctx, owner, meta=meta, name="stepwise:drop").meta.get("drop")
        if type(drop) is not int or (drop != -1 and drop not in chosen) or drop in fixed:
            from ...core.errors import ProtocolError

            raise ProtocolError("select_features: invalid stepwise decision", party=owner, field="stepwise")
        if drop < 0:
            break
        chosen.remove(drop)
    out_keep = _kept(keep, cands, chosen)
    return out_keep, steps


def _checked_positions(raw: Any, n: int, owner: str) -> list[int]:
    if not isinstance(raw, list) or not all(type(k) is int and 0 <= k < n for k in raw):
        from ...core.errors import ProtocolError

        raise ProtocolError("select_features: invalid stepwise start", party=owner, field="stepwise")
    return list(raw)


def auc_stepwise(ctx: Any, mpc: Any, w: Any, frame: Any, label: str, pos_label: Any, keep: dict[str, list[str]],
                 include: list[str], min_gain: float, max_features: int | None, fit: dict[str, Any],
                 validation_fraction: float = 0.3, seed: int = 1) -> tuple[dict[str, list[str]], list[dict]]:
    """Forward selection by validation AUC under MPC (every party calls it; see the module docstring)."""
    from ...data.secure.metrics import roc_auc
    from ...data.split import public_split
    from ...runtime.collectives import broadcast
    from ..registry import MODELS

    owner = w.label_owner
    fit_rows, val_rows = public_split(len(frame), validation_fraction, seed)
    f_fit, f_val = frame.take(fit_rows), frame.take(val_rows)
    feats_fit, feats_val = w.transform(ctx, f_fit, mpc), w.transform(ctx, f_val, mpc)
    positions = {p: [w.columns[p].index(c) if c in w.columns[p] else i for i, c in enumerate(cs)]
                 for p, cs in keep.items() if cs}
    cands = [(p, j) for p, pos in positions.items() for j in range(len(pos))]

    def y_of(fr: Any) -> Any:
        return ctx.party(owner).run(lambda df: (df[label] == pos_label).to_numpy(np.float64), fr.parts[owner])

    y_fit, y_val = y_of(f_fit), y_of(f_val)
    start = [k for k, (p, j) in enumerate(cands) if keep[p][j] in include] if ctx.me == owner else None
    chosen = _checked_positions(broadcast(ctx, owner, meta={"start": start} if start is not None else None,
                                          name="stepwise:start").meta.get("start"), len(cands), owner)
    method: Literal["pairwise", "bucketed"] = "pairwise" if len(val_rows) <= 2000 else "bucketed"
    best_auc, steps = 0.5, []
    while len(chosen) < len(cands) and (max_features is None or len(chosen) < max_features):
        aucs: dict[int, float] = {}
        for k in [k for k in range(len(cands)) if k not in chosen]:
            est = MODELS["ss_lr"].build(mpc, **{**fit, "reveal": "shared"})
            sel = [cands[i] for i in sorted(chosen + [k])]
            est.fit(_blocks(ctx, feats_fit, positions, sel), y_fit)
            auc = roc_auc(est.predict_shared(_blocks(ctx, feats_val, positions, sel)), y_val, mpc=mpc, to=owner,
                          method=method)
            aucs[k] = float(getattr(auc, "value", 0.0)) if ctx.me == owner else 0.0
        meta = None
        if ctx.me == owner:
            best = max(aucs, key=lambda k: aucs[k])
            enter = aucs[best] - best_auc >= min_gain
            meta = {"add": best if enter else -1}
            p, j = cands[best]
            steps.append({"feature": keep[p][j], "validation_auc": round(aucs[best], 4),
                          "gain": round(aucs[best] - best_auc, 4), "entered": bool(enter)})
            best_auc = aucs[best] if enter else best_auc
        add = _agreed_entry(ctx, owner, meta, len(cands), chosen)
        if add < 0:
            break
        chosen.append(add)
    return _kept(keep, cands, chosen), steps
