"""`fl.train`: horizontal federated learning (`jointml.ml.fl`) as a pipeline step.

The parties with inputs are the clients (same columns, different rows); `aggregator` is a
party of the job without input. With `secure: true` (default) the aggregator learns only
the per-round sums of the clients' updates (SecAgg+); every party of the step ends with the
same global model, saved as one part per party under `<output>/model`.

>>> from jointml.jobs.registry import COMPONENTS
>>> COMPONENTS["fl.train"].params()[:3]
['aggregator', 'label', 'model']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...core.errors import ConfigError
from ...data.frames import HDataFrame
from ..artifacts import Inputs, Label, ModelParts
from ..registry import component


@component("fl.train", outputs=(ModelParts,))
def fl_train(ctx: Any, state: Any, inputs: Inputs, *, aggregator: str, label: str, model: str = "logistic",
             rounds: int = 20, strategy: str = "fedavg", learning_rate: float = 0.1, local_epochs: int = 1,
             batch_size: int = 32, fraction_fit: float = 1.0, hidden: list[int] | None = None, n_classes: int = 2,
             secure: bool = True, clip: float = 4.0, quant_bits: int = 20, threshold: int | None = None,
             timeout: float = 30.0, l2: float = 0.0, seed: int | None = None, n_estimators: int = 20,
             max_depth: int = 3) -> ModelParts:
    """Federated training on horizontally split inputs (clients: the parties with inputs), SecAgg+ by default.

    `model`: `logistic`, `mlp` (`hidden`, `n_classes`) or `gbdt` (histogram trees: `n_estimators`,
    `max_depth`, `learning_rate`; the strategy parameters do not apply)."""
    from ...ml.fl import FederatedDevice, FLGBDTClassifier, FLLogisticRegression, FLMLPClassifier

    if aggregator not in ctx.parties or aggregator in inputs.frames:
        raise ConfigError(f"fl.train: the aggregator '{aggregator}' must be a party of the job without input",
                          field="aggregator")
    if model not in ("logistic", "mlp", "gbdt"):
        raise ConfigError(f"fl.train: model must be 'logistic', 'mlp' or 'gbdt', got {model!r}", field="model")
    clients = [p for p in ctx.parties if p in inputs.frames]
    hdf = HDataFrame(ctx, {p: inputs.frames[p] for p in clients})
    dev = FederatedDevice(ctx, aggregator, clients)
    common: dict[str, Any] = dict(rounds=rounds, strategy=strategy, learning_rate=learning_rate,
                                  local_epochs=local_epochs, batch_size=batch_size, fraction_fit=fraction_fit,
                                  secure=secure, clip=clip, quant_bits=quant_bits, threshold=threshold,
                                  timeout=timeout, l2=l2, seed=seed)
    est: Any
    if model == "gbdt":
        est = FLGBDTClassifier(dev, n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                               secure=secure, threshold=threshold, timeout=timeout)
    elif model == "mlp":
        est = FLMLPClassifier(dev, hidden=tuple(hidden or [32]), n_classes=n_classes, **common)
    else:
        est = FLLogisticRegression(dev, **common)
    est.fit(hdf, label)
    parts = ModelParts(est, f"fl_{model}", type(est).__name__, "raw", Label(label, 1, None), parties=dev.parties,
                       columns={p: list(est.features_) for p in clients})
    if state.spec.output:
        d = Path(state.spec.output) / "model"
        est.save(d)
        parts.directory, parts.model_id = str(d), str(est.model_id_)
        state.summary["model_dir"] = str(d)
    state.summary.update(fl_clients=len(clients), fl_rounds=int(rounds), fl_secure=bool(secure))
    if ctx.me == aggregator and getattr(est, "history_", None):
        state.summary["fl_last_round"] = {k: v for k, v in est.history_[-1].items() if isinstance(v, (int, float))}
    return parts
