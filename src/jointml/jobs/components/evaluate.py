"""`evaluate`: AUC / KS / log-loss / accuracy at the party holding both scores and labels.

Nothing is sent: the metrics are computed where the scores were revealed, which must be
the label holder; other parties report nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ...core.errors import ConfigError
from ..artifacts import Label, ModelParts, Scores
from ..registry import component

Metric = Literal["auc", "ks", "log_loss", "accuracy"]


@component("evaluate", outputs=())
def evaluate(ctx: Any, state: Any, scores: Scores, label: Label, parts: ModelParts | None = None, *,
             metrics: tuple[Metric, ...] = ("auc", "ks")) -> None:
    """AUC / KS / log-loss / accuracy at the party holding both scores and labels."""
    from ...data import metrics as M

    holder = scores.to
    if holder != label.party:
        raise ConfigError(f"evaluate: scores went to '{holder}' but labels are at '{label.party}'")
    if ctx.me != holder:
        return
    y = (scores.frame.parts[holder].value[label.name] == label.pos_label).to_numpy(np.int64)
    s = np.asarray(scores.scores.value)
    out = state.summary
    for m in metrics:
        if m == "auc":
            out["auc"] = float(M.roc_auc(y, s))
        elif m == "ks":
            out["ks"] = float(M.ks(y, s).statistic)
        elif m == "log_loss":
            out["log_loss"] = float(M.log_loss(y, np.clip(s, 1e-6, 1 - 1e-6)))
        elif m == "accuracy":
            out["accuracy"] = float(M.accuracy(y, (s >= 0.5).astype(int)))
    out["test_scores"] = s.tolist()
    out["test_labels"] = y.tolist()
    out["intercept"] = getattr(parts.estimator, "intercept_", None) if parts is not None else None

