"""`predict`: joint scores of the test rows (or all aligned rows) with the trained model.

The scores are revealed to one party only (`to`, default the label holder; SecureBoost's
go to the label holder only). Other parties hold an opaque handle.
"""

from __future__ import annotations

from typing import Any

from ...core.errors import ConfigError
from ..artifacts import AlignedFrame, ModelParts, Scores, Split
from ..registry import MODELS, component
from .features import model_features


@component("predict", outputs=(Scores,))
def predict(ctx: Any, state: Any, parts: ModelParts, split: Split | None = None,
            frame: AlignedFrame | None = None, *,
            to: str | None = None) -> Scores:
    """Joint prediction of the test rows; scores revealed only to `to` (default: the label holder)."""
    if split is not None:
        rows = split.test
    elif frame is not None:
        rows = frame.frame
    else:  # (the wiring check reports this before a run starts)
        raise ConfigError("predict needs a split or an aligned frame before it", field="split")
    to = to or parts.label.party
    if to is None:
        raise ConfigError("predict: name the party the scores go to (to=)", field="to")
    scores = score_rows(ctx, lambda: state.device(ctx), parts, rows, to)
    state.summary["scores_to"] = to
    return Scores(scores, to, rows, len(rows))


def score_rows(ctx: Any, device: Any, parts: ModelParts, rows: Any, to: str) -> Any:
    """Scores of the aligned frame `rows` with `parts`, revealed to `to` (every party calls it)."""
    entry = MODELS[parts.model]
    X = model_features(ctx, device, entry, parts.features, parts.woe, rows, parts.columns)
    return entry.scores(ctx, parts.estimator, X, to, parts.label.party)
