"""`predict`: joint scores of the test rows (or all aligned rows) with the trained model.

The scores are revealed to one party only (`to`, default the label holder; SecureBoost's
go to the label holder only). Other parties hold an opaque handle.

With `score_stability: true` the training rows are scored too (one more joint prediction,
revealed to `to` only) and `to` reports the population stability index of the scores,
train against test (`score_psi`); `to` then also learns the training rows' scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import ConfigError
from ..artifacts import AlignedFrame, ModelParts, Scores, Split
from ..registry import MODELS, component
from .features import model_features


@component("predict", outputs=(Scores,))
def predict(ctx: Any, state: Any, parts: ModelParts, split: Split | None = None,
            frame: AlignedFrame | None = None, *,
            to: str | None = None, score_stability: bool = False) -> Scores:
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
    if score_stability and split is not None:
        train_scores = score_rows(ctx, lambda: state.device(ctx), parts, split.train, to)
        if ctx.me == to:
            from ...data.metrics import psi

            state.summary["score_psi"] = round(psi(np.asarray(train_scores.value, dtype=float),
                                                   np.asarray(scores.value, dtype=float)), 4)
    return Scores(scores, to, rows, len(rows))


def score_rows(ctx: Any, device: Any, parts: ModelParts, rows: Any, to: str) -> Any:
    """Scores of the aligned frame `rows` with `parts`, revealed to `to` (every party calls it)."""
    entry = MODELS[parts.model]
    X = model_features(ctx, device, entry, parts.features, parts.woe, rows, parts.columns)
    return entry.scores(ctx, parts.estimator, X, to, parts.label.party)
