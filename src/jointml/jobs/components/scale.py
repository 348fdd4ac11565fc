"""`scale`: each party standardises its own numeric columns, locally (z-score on the training rows).

Secure logistic regression on raw amounts diverges under fixed point (the job refuses raw
features beyond +-10 without it). After `split`, each party computes the mean and standard
deviation of each of its own numeric columns on the training rows, and applies
`(x - mean) / std` to its training and test rows; the label column is left as it is. The
statistics stay with their owner: saved as `model/scale.<party>.json` with the model (when
the pipeline has an `output`), and `jointml predict` applies them to new rows at the owner.

No message and no label: each party learns nothing new. (Rebuilding the frames exchanges
the schema, which the parties had already.)

>>> import pandas as pd
>>> stats = fit_scale(pd.DataFrame({"x": [1.0, 3.0], "t": ["a", "b"]}), skip=None)
>>> stats, apply_scale(pd.DataFrame({"x": [2.0]}), stats)["x"].tolist()
({'x': [2.0, 1.0]}, [0.0])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ...data.frames import VDataFrame
from ...runtime.persist import atomic_write, read_party_json
from ..artifacts import Split
from ..registry import component

__all__ = ["apply_scale", "fit_scale", "load_scale", "scale"]

FORMAT = "jointml.scale/1"


def fit_scale(df: pd.DataFrame, skip: str | None) -> dict[str, list[float]]:
    """`{column: [mean, std]}` of the numeric columns (std 1 for a constant column)."""
    out = {}
    for c in df.columns:
        if c == skip or df[c].dtype.kind not in "biuf":
            continue
        sd = float(df[c].std(ddof=0))
        out[str(c)] = [float(df[c].mean()), sd if sd > 0 else 1.0]
    return out


def apply_scale(df: pd.DataFrame, stats: dict[str, list[float]]) -> pd.DataFrame:
    """`df` with each column of `stats` standardised (other columns as they are)."""
    df = df.copy()
    for c, (mu, sd) in stats.items():
        if c in df.columns:
            df[c] = (df[c].astype(float) - mu) / sd
    return df


def load_scale(directory: str | Path, party: str) -> dict[str, list[float]] | None:
    """This party's saved statistics (None when the model was trained without `scale`)."""
    doc = read_party_json(Path(directory) / f"scale.{party}.json", party,
                          lambda d: d.get("format") == FORMAT and d.get("party") == party, "this party's scale file")
    return None if doc is None else {str(c): [float(v[0]), float(v[1])] for c, v in doc["columns"].items()}


@component("scale", outputs=(Split,))
def scale(ctx: Any, state: Any, split: Split, *, method: Literal["standard"] = "standard",
          label: str | None = None) -> Split:
    """Each party standardises its own numeric columns (mean and std of the training rows, kept at the
    owner and saved with the model); `label` names the label column to leave as it is."""
    from ..check import job_needs  # (local: the check module reads the registry this module fills)

    skip = label or (state.label.name if state.label is not None else None) or job_needs(state.spec).label
    stats: dict[str, list[float]] = {}
    if ctx.me in split.train.parts:
        stats = fit_scale(split.train.parts[ctx.me].value, skip)
    train = VDataFrame(ctx, {p: ctx.party(p).run(lambda df: apply_scale(df, stats), o) for p, o in split.train.parts.items()})
    test = VDataFrame(ctx, {p: ctx.party(p).run(lambda df: apply_scale(df, stats), o) for p, o in split.test.parts.items()})
    if stats and state.spec.output:
        (Path(state.spec.output) / "model").mkdir(parents=True, exist_ok=True)
        atomic_write(Path(state.spec.output) / "model" / f"scale.{ctx.me}.json",
                     json.dumps({"format": FORMAT, "party": ctx.me, "method": method, "columns": stats}))
    state.summary["scaled_columns"] = len(stats)
    return Split(train, test, split.train_rows, split.test_rows)
