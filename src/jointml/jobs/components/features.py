"""Feature views: what a model trains and predicts on, from an aligned frame.

- "woe": the WOE features of a fitted `woe_binning` — plaintext at their owner (the label
  holder's own columns, or every column with `woe_to_owner=True`), else secret-shared on
  the MPC device (the feature holder's one-hot bins times the label holder's WOE table).
- "raw": each party's numeric columns (the label excluded) at their owner, as float
  matrices or, for models that keep column names, DataFrames.

Nothing here reveals a value: raw features stay at their owners; the only message is the
numeric check, where each owner announces which column failed (not its values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core.errors import ConfigError
from ..registry import ModelEntry


def resolve_view(entry: ModelEntry, requested: str | None, woe: Any) -> str:
    """The view a model uses: the requested one (or its default); "woe" only when a WOE model exists.

    >>> from jointml.jobs.registry import MODELS
    >>> resolve_view(MODELS["ss_lr"], None, woe=None), resolve_view(MODELS["ss_xgb"], None, woe=object())
    ('raw', 'raw')
    """
    view = requested or entry.features
    return "woe" if view == "woe" and woe is not None else "raw"


def model_features(ctx: Any, device: Callable[[], Any], entry: ModelEntry, view: str, woe: Any, frame: Any,
                   columns: dict[str, list[str]]) -> dict:
    """`{party: features}` of `frame` for `entry` in `view` (`device()` gives the MPC device
    when WOE features must be secret-shared); `columns` are each party's raw feature columns."""
    if view == "woe":
        if entry.woe_at_owner:
            hidden = [p for p, cols in woe.columns.items() if cols and p != woe.label_owner]
            if hidden and not woe.woe_to_owner:
                raise ConfigError(f"{entry.name} on WOE features needs woe_binning(woe_to_owner=True): "
                                  "trees split plaintext features at their owners")
            feats = woe.transform(ctx, frame, None)
        else:
            feats = woe.transform(ctx, frame, device())
        return feats
    feats = {}
    for p, cs in columns.items():
        if cs:
            frame[cs].check_numeric()
            if p in getattr(frame, "hidden", ()):  # label-only PSI: rows aligned under secret sharing only
                feats[p] = frame.secret(p, lambda df, cs=cs: df[cs].to_numpy(dtype=float), device())
            elif entry.raw_frames:
                feats[p] = ctx.party(p).run(lambda df, cs=cs: df[cs], frame.parts[p])
            else:
                feats[p] = frame.to_numpy(p, cs)
    return feats


def raw_columns(frame: Any, label: str | None) -> dict[str, list[str]]:
    """Each party's columns except the label (public: column names are shared by the frame)."""
    return {p: [c for c in cols if c != label] for p, cols in frame.columns.items()}
