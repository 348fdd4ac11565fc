"""`predict`: joint scores of the test rows (or all aligned rows) with the trained model.

The scores are revealed to one party only (`to`, default the label holder; SecureBoost's
go to the label holder only). Other parties hold an opaque handle.
"""

from __future__ import annotations

from typing import Any

from ..artifacts import AlignedFrame, ModelParts, Scores, Split
from ..registry import MODELS, component
from .features import model_features


@component("predict", outputs=(Scores,))
def predict(ctx: Any, state: Any, parts: ModelParts, split: Split = None, frame: AlignedFrame = None, *,
            to: str | None = None) -> Scores:
    """Joint prediction of the test rows; scores revealed only to `to` (default: the label holder)."""
    rows = split.test if split is not None else frame.frame
    to = to or parts.label.party
    scores = score_rows(ctx, lambda: state.device(ctx), parts, rows, to)
    state.summary["scores_to"] = to
    return Scores(scores, to, rows, len(rows))


def score_rows(ctx: Any, device: Any, parts: ModelParts, rows: Any, to: str) -> Any:
    """Scores of the aligned frame `rows` with `parts`, revealed to `to` (every party calls it)."""
    entry = MODELS[parts.model]
    X = model_features(ctx, device, entry, parts.features, parts.woe, rows, parts.columns)
    return entry.scores(ctx, parts.estimator, X, to, parts.label.party)
