"""`select_features`: keep the WOE features worth training on, by IV and by explicit lists.

After `woe_binning`, the label holder (the only party that knows every column's IV)
decides: a column is kept when it is in `include`, or when it is not in `exclude` and its
IV is at least `iv_min`. It announces the kept column names (one broadcast); every party
then trains and predicts on the kept columns only (its WOE part is narrowed to them).

What each party learns: the names of the kept columns, so a feature holder learns which of
its columns had an IV below `iv_min` (one bit per column), never an IV value. A deviating
label holder could announce any subset of the job's columns (checked to be one): it only
chooses the model's features, which it could do anyway with `exclude`.

>>> decide({"bank": ["a", "b"], "partner": ["c"]}, {"a": 0.3, "b": 0.01, "c": 0.05}, 0.02, [], ["c"])
({'bank': ['a'], 'partner': []}, {'b': 'IV below iv_min', 'c': 'excluded'})
"""

from __future__ import annotations

import copy
from typing import Any

from ...core.errors import ConfigError, ProtocolError
from ...runtime.collectives import broadcast
from ..artifacts import WoeModel
from ..registry import component

__all__ = ["decide", "select_features"]


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
    return {"kind": bins.kind, "edges": [float(e) for e in bins.edges], "groups": [list(g) for g in bins.groups]}


def _checked_keep(raw: Any, columns: dict[str, list[str]], sender: str) -> dict[str, list[str]]:
    ok = isinstance(raw, dict) and set(raw) == set(columns) and all(
        isinstance(v, list) and all(isinstance(c, str) and c in columns[p] for c in v) for p, v in raw.items())
    if not ok:
        raise ProtocolError("select_features: the kept columns are not a subset of the job's columns", party=sender,
                            field="keep")
    return {p: list(v) for p, v in raw.items()}


@component("select_features", outputs=(WoeModel,))
def select_features(ctx: Any, state: Any, woe: WoeModel, *, iv_min: float = 0.02, include: list[str] | None = None,
                    exclude: list[str] | None = None) -> WoeModel:
    """Keep the WOE features with IV >= `iv_min` (plus `include`, minus `exclude`); decided by the label
    holder, which announces only the kept column names."""
    w = woe.woe
    named = [c for cols in w.columns.values() for c in cols]
    unknown = sorted(set(include or []) | set(exclude or []) - set(named))
    if unknown:
        raise ConfigError(f"select_features: {unknown} are not WOE features of the job (features: {named})",
                          field="include", public=True)
    owner = w.label_owner
    meta = None
    if ctx.me == owner:
        keep, dropped = decide(w.columns, w.iv or {}, iv_min, list(include or []), list(exclude or []))
        meta = {"keep": keep}
        state.summary["dropped_features"] = dropped
    got = broadcast(ctx, owner, meta=meta, name="select-features")
    keep = _checked_keep(got.meta.get("keep"), w.columns, owner)
    if not any(keep.values()):
        raise ConfigError(f"select_features kept no feature (iv_min {iv_min:g}); lower iv_min or name columns in include",
                          field="iv_min", public=True)
    state.summary["selected_features"] = keep
    return WoeModel(_narrow(w, ctx.me, keep))
