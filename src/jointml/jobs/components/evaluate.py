"""`evaluate`: AUC / KS / log-loss / accuracy at the party holding both scores and labels.

Nothing is sent: the metrics are computed where the scores were revealed, which must be
the label holder; other parties report nothing.

**The value of the partnership.** With `local_baseline` (default) the label holder also
trains a model on its own features only (plaintext, locally: logistic regression on its
own WOE features, or on its own standardised numeric columns), on the same training rows,
and scores the same test rows: the summary then holds `local_auc`, `local_ks` and
`ks_uplift_pct`, what the partner's data adds. Nothing is sent for it either.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ...core.errors import ConfigError
from ..artifacts import Label, ModelParts, Scores, Split, WoeModel
from ..registry import component

__all__ = ["evaluate", "local_baseline_scores", "logistic_newton"]

Metric = Literal["auc", "ks", "log_loss", "accuracy"]


@component("evaluate", outputs=())
def evaluate(ctx: Any, state: Any, scores: Scores, label: Label, parts: ModelParts | None = None,
             split: Split | None = None, woe: WoeModel | None = None, *,
             metrics: tuple[Metric, ...] = ("auc", "ks"), local_baseline: bool = True) -> None:
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
    if local_baseline and split is not None and scores.frame is split.test and len(set(y.tolist())) == 2:
        _local_baseline(out, holder, label, split, woe, y)


def _local_baseline(out: dict, holder: str, label: Label, split: Any, woe: WoeModel | None, y_test: np.ndarray) -> None:
    """The label holder's own-features model beside the joint one (see the module docstring)."""
    from ...data import metrics as M

    tr, te = split.train.parts[holder].value, split.test.parts[holder].value
    y_tr = (tr[label.name] == label.pos_label).to_numpy(np.int64)
    got = local_baseline_scores(tr, te, y_tr, label.name, holder, woe.woe if woe is not None else None)
    if got is None:
        out["local_model"] = "none (the label holder has no usable features of its own)"
        return
    s_local, kind = got
    out["local_model"] = kind
    out["local_test_scores"] = np.asarray(s_local).tolist()  # at the label holder only (its report's ROC)
    out["local_auc"] = float(M.roc_auc(y_test, s_local))
    out["local_ks"] = float(M.ks(y_test, s_local).statistic)
    if "ks" in out and out["local_ks"] > 0:
        out["ks_uplift_pct"] = 100.0 * (out["ks"] - out["local_ks"]) / out["local_ks"]
    if "auc" in out:
        out["auc_uplift"] = out["auc"] - out["local_auc"]


def local_baseline_scores(train: Any, test: Any, y_train: np.ndarray, label: str, holder: str,
                          woe: Any = None) -> tuple[np.ndarray, str] | None:
    """Scores of the test rows by a plaintext logistic regression on `holder`'s own features:
    its WOE features when `woe` has its columns, else its numeric columns standardised on the
    training rows; None when it has none. Runs at the holder, on its own data only.

    >>> import pandas as pd
    >>> tr = pd.DataFrame({"y": [0, 1, 0, 1, 1, 0], "x": [0.0, 2.0, 0.5, 3.0, 2.5, 1.0]})
    >>> s, kind = local_baseline_scores(tr, tr, tr["y"].to_numpy(), "y", "bank")
    >>> kind, bool(s[1] > s[0])
    ('logistic regression on its own raw numeric columns', True)
    """
    cols = list(woe.columns.get(holder) or []) if woe is not None else []
    if cols:
        def feats(df):
            idx = woe.bin_indices(holder, df[cols])
            return np.stack([woe.col[c].woe_table()[idx[:, j]] for j, c in enumerate(cols)], axis=1)

        Xtr, Xte, kind = feats(train), feats(test), "logistic regression on its own WOE features"
    else:
        num = [c for c in train.columns if c != label and train[c].dtype.kind in "biuf" and not train[c].isna().any()
               and not test[c].isna().any()]
        if not num:
            return None
        mu, sd = train[num].mean(), train[num].std().replace(0, 1.0).fillna(1.0)
        Xtr, Xte = ((train[num] - mu) / sd).to_numpy(float), ((test[num] - mu) / sd).to_numpy(float)
        kind = "logistic regression on its own raw numeric columns"
    w, b = logistic_newton(Xtr, y_train, l2=1e-3)
    return 1.0 / (1.0 + np.exp(-(Xte @ w + b))), kind


def logistic_newton(X: np.ndarray, y: np.ndarray, l2: float, iters: int = 50, tol: float = 1e-10):
    """Plaintext logistic regression: minimises mean log-loss + l2/2 ||w||^2 (intercept not
    penalised) by Newton's method — the same optimum as scikit-learn's
    LogisticRegression(C=1/(l2 n)), without needing scikit-learn at run time.

    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 1, 0, 1])
    >>> w, b = logistic_newton(X, y, l2=0.1)
    >>> w.shape, bool(w[0] > 0)
    ((1,), True)
    """
    n, d = X.shape
    Z = np.hstack([X, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(Z @ theta)))
        g = Z.T @ (p - y) / n + reg * theta
        H = (Z * (p * (1 - p))[:, None]).T @ Z / n + np.diag(reg) + 1e-12 * np.eye(d + 1)
        step = np.linalg.solve(H, g)
        theta -= step
        if np.max(np.abs(step)) < tol:
            break
    return theta[:-1], float(theta[-1])
