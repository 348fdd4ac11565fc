"""`select_features`: keep the WOE features worth training on, by IV and by explicit lists.

After `woe_binning`, the label holder (the only party that knows every column's IV)
decides: a column is kept when it is in `include`, or when it is not in `exclude` and its
IV is at least `iv_min`. It announces the kept column names (one broadcast); every party
then trains and predicts on the kept columns only (its WOE part is narrowed to them).

With `max_corr`, the label holder also drops the weaker (lower IV) of every pair of WOE
features whose Pearson correlation exceeds it in absolute value, and with `max_vif` the
feature of largest variance inflation factor until every VIF is at most `max_vif`: the correlation matrix of
the WOE features of the training rows is computed by `jointml.data.secure.stats.corr`
(cross-party blocks under MPC) and revealed to the label holder only. This needs the WOE
values at their owners (`woe_binning(woe_to_owner: true)`).

What each party learns: the names of the kept columns, so a feature holder learns which of
its columns had an IV below `iv_min` or were too correlated (one bit per column), never an
IV value or a correlation; a party outside the frame (the semi2k dealer) only how many of
each party's columns are kept. With `max_corr` the label holder learns the correlation matrix
of all WOE features (cross-party correlations included: documented in docs/security.md). A deviating
label holder could announce any subset of the job's columns (checked to be one): it only
chooses the model's features, which it could do anyway with `exclude`.

>>> decide({"bank": ["a", "b"], "partner": ["c"]}, {"a": 0.3, "b": 0.01, "c": 0.05}, 0.02, [], ["c"])
({'bank': ['a'], 'partner': []}, {'b': 'IV below iv_min', 'c': 'excluded'})
"""

from __future__ import annotations

import copy
from typing import Any

from ...core.errors import ConfigError, ProtocolError
from ...runtime.collectives import broadcast, send_to
from ..artifacts import Label, Split, WoeModel
from ..registry import component

__all__ = ["decide", "drop_collinear", "drop_correlated", "select_features"]


def decide(columns: dict[str, list[str]], iv: dict[str, float], iv_min: float, include: list[str],
           exclude: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """`({party: kept columns}, {dropped column: reason})` (see the module docstring)."""
    keep: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for p, cols in columns.items():
        keep[p] = []
        for c in cols:
            if c in include:
                keep[p].append(c)
            elif c in exclude:
                dropped[c] = "excluded"
            elif iv.get(c, 0.0) < iv_min:
                dropped[c] = "IV below iv_min"
            else:
                keep[p].append(c)
    return keep, dropped


def _narrow(woe: Any, me: str, keep: dict[str, list[str]]) -> Any:
    """A copy of this party's WOE part restricted to the kept columns."""
    from ...data.woe_io import SavedBinner

    out = copy.copy(woe)
    out.columns = {p: list(c) for p, c in keep.items()}
    out.col = {c: woe.col[c] for cols in keep.values() for c in cols if c in woe.col}
    out.binners = dict(woe.binners)
    if me in woe.binners:
        b = woe.binners[me]
        out.binners[me] = SavedBinner({c: _bins_doc(b.get_bins(c)) for c in keep.get(me, [])})
    return out


def _bins_doc(bins: Any) -> dict:
    return {"kind": bins.kind, "edges": [float(e) for e in bins.edges], "groups": [list(g) for g in bins.groups],
            "specials": list(getattr(bins, "specials", ()))}


def _checked_keep(raw: Any, columns: dict[str, list[str]], sender: str) -> dict[str, list[str]]:
    ok = isinstance(raw, dict) and set(raw) == set(columns) and all(
        isinstance(v, list) and all(isinstance(c, str) and c in columns[p] for c in v) for p, v in raw.items())
    if not ok:
        raise ProtocolError("select_features: the kept columns are not a subset of the job's columns", party=sender,
                            field="keep")
    return {p: list(v) for p, v in raw.items()}


def _checked_counts(raw: Any, columns: dict[str, list[str]], sender: str) -> dict[str, list[str]]:
    """At a party outside the frame: the kept count of each party's columns, as that many of its
    own (placeholder) names: it needs the shapes only."""
    ok = isinstance(raw, dict) and set(raw) == set(columns) and all(
        type(n) is int and 0 <= n <= len(columns[p]) for p, n in raw.items())
    if not ok:
        raise ProtocolError("select_features: the kept counts do not match the job's columns", party=sender,
                            field="keep")
    return {p: list(columns[p][:n]) for p, n in raw.items()}


def drop_correlated(kept: list[str], iv: dict[str, float], r: Any, max_corr: float, include: list[str]) -> dict[str, str]:
    """Greedy, strongest IV first: drop a column correlated beyond `max_corr` with one kept before it.

    >>> import pandas as pd
    >>> r = pd.DataFrame([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]], index=list("abc"), columns=list("abc"))
    >>> drop_correlated(["a", "b", "c"], {"a": .5, "b": .3, "c": .1}, r, 0.8, [])
    {'b': 'correlated with a (|r| > max_corr)'}
    """
    chosen: list[str] = []
    dropped = {}
    for c in sorted(kept, key=lambda c: (c not in include, -iv.get(c, 0.0))):
        hit = next((k for k in chosen if abs(float(r.loc[c, k])) > max_corr), None)
        if hit is not None and c not in include:
            dropped[c] = f"correlated with {hit} (|r| > max_corr)"
        else:
            chosen.append(c)
    return dropped


def drop_collinear(kept: list[str], iv: dict[str, float], r: Any, max_vif: float, include: list[str]) -> dict[str, str]:
    """Repeatedly drop the column with the largest VIF above `max_vif` (VIFs from the correlation
    matrix of the columns still kept; `include` columns are never dropped).

    >>> import pandas as pd
    >>> r = pd.DataFrame([[1, .95, .9], [.95, 1, .9], [.9, .9, 1]], index=list("abc"), columns=list("abc"))
    >>> drop_collinear(["a", "b", "c"], {"a": .5, "b": .3, "c": .4}, r, 6.0, [])
    {'b': 'VIF above max_vif'}
    """
    import pandas as pd

    from ...data.secure.stats import vif_from_corr

    cur, dropped = list(kept), {}
    while len(cur) > 1:
        v = pd.Series(vif_from_corr(r.loc[cur, cur]), index=cur).fillna(0.0)
        cand = v[[c for c in cur if c not in include]]
        if cand.empty or float(cand.max()) <= max_vif:
            break
        worst = max(cand.index, key=lambda c: (float(cand[c]), -iv.get(c, 0.0)))
        dropped[worst] = "VIF above max_vif"
        cur.remove(worst)
    return dropped


def _woe_corr(ctx: Any, state: Any, w: Any, split: Split) -> Any:
    """The WOE features' correlation matrix on the training rows, at the label holder only."""
    import pandas as pd

    from ...data.frames import VDataFrame
    from ...data.secure.stats import corr

    feats = w.transform(ctx, split.train, None)  # plaintext at each owner (woe_to_owner)
    parts = {p: ctx.party(p).run(lambda a, cs=tuple(w.columns[p]): pd.DataFrame(a, columns=list(cs)), o)
             for p, o in feats.items()}
    return corr(ctx, VDataFrame(ctx, parts), state.device(ctx), to=w.label_owner)


def _stepwise(ctx: Any, state: Any, w: Any, split: Split, known: Label | None, keep: dict[str, list[str]],
              include: list[str], how: str, p_value: float, max_features: int | None,
              epochs: int) -> dict[str, list[str]]:
    """Stepwise selection under MPC (`jobs.components.stepwise`): forward by the score test
    (enter below `p_value`), backward by the Wald test (leave above `p_value`)."""
    from .stepwise import auc_stepwise, backward_stepwise, forward_stepwise

    if known is None:  # (woe_binning, before this step, names the label)
        raise ConfigError("select_features(stepwise) needs the label: run woe_binning before it", field="stepwise",
                          public=True)
    fit = {"epochs": int(epochs), "batch_size": 64, "learning_rate": 1.0, "sigmoid": "poly"}
    if how == "forward":
        out, steps = forward_stepwise(ctx, state.device(ctx), w, split.train, known.name, known.pos_label, keep,
                                      include, float(p_value), max_features, fit)
    elif how == "forward_auc":
        out, steps = auc_stepwise(ctx, state.device(ctx), w, split.train, known.name, known.pos_label, keep, include,
                                  float(p_value), max_features, fit)
    else:
        out, steps = backward_stepwise(ctx, state.device(ctx), w, split.train, known.name, known.pos_label, keep,
                                       include, float(p_value), fit)
    if ctx.me == w.label_owner:
        state.summary["stepwise"] = steps
        dropped = state.summary.setdefault("dropped_features", {})
        for p, cs in keep.items():
            for c in cs:
                if c not in out.get(p, []):
                    dropped[c] = {"forward": f"not entered by forward stepwise (score test, p_enter {p_value:g})",
                                  "forward_auc": f"not entered by forward stepwise (validation AUC gain < {p_value:g})",
                                  "backward": f"removed by backward stepwise (Wald test, p_remove {p_value:g})"}[how]
    if not any(out.values()):
        fld = "min_auc_gain" if how == "forward_auc" else "p_enter"
        raise ConfigError(f"select_features: forward stepwise entered no feature at {fld} {p_value:g}; relax {fld} "
                          "or name columns in include", field=fld, public=True)
    return out


@component("select_features", outputs=(WoeModel,))
def select_features(ctx: Any, state: Any, woe: WoeModel, split: Split, known: Label | None = None, *,
                    iv_min: float = 0.02, include: list[str] | None = None, exclude: list[str] | None = None,
                    max_corr: float | None = None, max_vif: float | None = None, stepwise: str = "none",
                    p_enter: float = 0.05, p_remove: float = 0.10, min_auc_gain: float = 0.005,
                    max_features: int | None = None, stepwise_epochs: int = 10) -> WoeModel:
    """Keep the WOE features with IV >= `iv_min` (plus `include`, minus `exclude`); decided by the label
    holder, which announces only the kept column names."""
    w = woe.woe
    named = [c for cols in w.columns.values() for c in cols]
    unknown = sorted(set(include or []) | set(exclude or []) - set(named))
    if unknown:
        raise ConfigError(f"select_features: {unknown} are not WOE features of the job (features: {named})",
                          field="include", public=True)
    owner = w.label_owner
    needs_corr = max_corr is not None or max_vif is not None
    if needs_corr and any(c for p, c in w.columns.items() if p != owner) and not w.woe_to_owner:
        raise ConfigError("select_features: max_corr and max_vif work on the WOE features at their owners: set "
                          "woe_binning(woe_to_owner: true)", field="max_corr" if max_corr is not None else "max_vif",
                          public=True)
    r = _woe_corr(ctx, state, w, split) if needs_corr else None
    meta = None
    if ctx.me == owner:
        keep, dropped = decide(w.columns, w.iv or {}, iv_min, list(include or []), list(exclude or []))
        if r is not None:
            for rule in ("corr", "vif"):
                kept = [c for cs in keep.values() for c in cs]
                if rule == "corr" and max_corr is not None:
                    more = drop_correlated(kept, w.iv or {}, r.value.fillna(0.0), float(max_corr), list(include or []))
                elif rule == "vif" and max_vif is not None:
                    more = drop_collinear(kept, w.iv or {}, r.value, float(max_vif), list(include or []))
                else:
                    continue
                keep = {p: [c for c in cs if c not in more] for p, cs in keep.items()}
                dropped.update(more)
        meta = {"keep": keep}
        state.summary["dropped_features"] = dropped
    # The kept names go to the frame's parties; a party outside it (the dealer) gets the counts only.
    members = list(split.train.parties)
    outside = [q for q in ctx.parties if q not in members]
    got = broadcast(ctx, owner, meta=meta, to=members, name="select-features")
    out = None
    if outside:
        counts = {p: len(c) for p, c in meta["keep"].items()} if meta is not None else None
        out = send_to(ctx, owner, outside, meta={"counts": counts} if counts is not None else None,
                      name="select-counts")
    if ctx.me in outside:
        keep = _checked_counts(out.meta.get("counts") if out is not None else None, w.columns, owner)
    else:
        keep = _checked_keep(got.meta.get("keep"), w.columns, owner)
    if not any(keep.values()):
        raise ConfigError(f"select_features kept no feature (iv_min {iv_min:g}); lower iv_min or name columns in include",
                          field="iv_min", public=True)
    if stepwise != "none":
        crit = {"forward": p_enter, "backward": p_remove, "forward_auc": min_auc_gain}[stepwise]
        keep = _stepwise(ctx, state, w, split, known, keep, list(include or []), stepwise, crit, max_features,
                         stepwise_epochs)
    state.summary["selected_features"] = keep
    return WoeModel(_narrow(w, ctx.me, keep))
