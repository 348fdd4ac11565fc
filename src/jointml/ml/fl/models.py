"""Models a federated client trains locally: logistic regression and a small MLP, in numpy.

A model is a stateless description (shapes, activation) plus its parameters, a list of
float64 arrays (what the strategies average and secure aggregation sums). `local_train`
runs minibatch SGD on a client's rows, with FedProx's proximal term when asked.

Adversary model: local computation at the data owner; nothing leaves the party here.
Minibatch order is drawn from `core.prg` (AES-CTR), initial weights from
`core.prg.public_rng` (the initial model is public: every party receives it).

>>> m = LogisticModel(3)
>>> X, y = np.eye(3), np.array([0, 1, 1])
>>> p = local_train(m, m.init(0), X, y, epochs=50, learning_rate=0.5, batch_size=3)
>>> (m.predict_proba(p, X)[:, 1] > 0.5).astype(int).tolist()
[0, 1, 1]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...core.errors import DataError, ParameterError
from ...core.prg import Prg, public_rng
from .aggregate import Parameters

__all__ = ["FLModel", "LogisticModel", "MLPModel", "local_train", "make_model"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


class FLModel:
    """The interface of a locally trained model: `init`, `loss_grad`, `predict_proba`.

    >>> m = LogisticModel(2)
    >>> isinstance(m, FLModel), m.predict_proba(m.init(), np.zeros((1, 2))).tolist()
    (True, [[0.5, 0.5]])
    """

    n_features: int
    n_classes: int

    def init(self, seed: int = 0) -> Parameters:
        raise NotImplementedError

    def loss_grad(self, params: Parameters, X: np.ndarray, y: np.ndarray) -> tuple[float, Parameters]:
        """Mean loss on (X, y) and its gradient."""
        raise NotImplementedError

    def predict_proba(self, params: Parameters, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""
        raise NotImplementedError

    def spec(self) -> dict[str, object]:
        """A JSON description from which `make_model` rebuilds the model."""
        raise NotImplementedError


class LogisticModel(FLModel):
    """Binary logistic regression: p = σ(X·w + b), log loss + (l2/2)·‖w‖².

    >>> LogisticModel(4).init()[0].shape
    (4,)
    """

    def __init__(self, n_features: int, l2: float = 0.0):
        self.n_features, self.n_classes, self.l2 = int(n_features), 2, float(l2)

    def init(self, seed: int = 0) -> Parameters:
        return [np.zeros(self.n_features), np.zeros(1)]

    def loss_grad(self, params: Parameters, X: np.ndarray, y: np.ndarray) -> tuple[float, Parameters]:
        w, b = params
        z = X @ w + b[0]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        eps = 1e-12
        loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + 0.5 * self.l2 * w @ w)
        r = (p - y) / len(y)
        return loss, [X.T @ r + self.l2 * w, np.array([r.sum()])]

    def predict_proba(self, params: Parameters, X: np.ndarray) -> np.ndarray:
        z = X @ params[0] + params[1][0]
        p1 = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        return np.column_stack([1 - p1, p1])

    def spec(self) -> dict[str, object]:
        return {"model": "logistic", "n_features": self.n_features, "l2": self.l2}


class MLPModel(FLModel):
    """A multilayer perceptron: ReLU hidden layers, softmax output, cross-entropy + (l2/2)·‖W‖².

    >>> [p.shape for p in MLPModel(4, (8,), 3).init()]
    [(4, 8), (8,), (8, 3), (3,)]
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (32,), n_classes: int = 2, l2: float = 0.0):
        if n_classes < 2 or any(int(h) < 1 for h in hidden):
            raise ParameterError("an MLP needs >= 2 classes and positive layer widths", field="hidden")
        self.n_features, self.hidden, self.n_classes, self.l2 = int(n_features), tuple(int(h) for h in hidden), \
            int(n_classes), float(l2)

    def init(self, seed: int = 0) -> Parameters:
        rng = public_rng(seed)  # the initial model is public
        sizes = [self.n_features, *self.hidden, self.n_classes]
        out: Parameters = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            out += [rng.normal(scale=np.sqrt(2.0 / a), size=(a, b)), np.zeros(b)]
        return out

    def _forward(self, params: Parameters, X: np.ndarray) -> list[np.ndarray]:
        acts = [X]
        n = len(params) // 2
        for i in range(n):
            z = acts[-1] @ params[2 * i] + params[2 * i + 1]
            acts.append(np.maximum(z, 0.0) if i < n - 1 else _softmax(z))
        return acts

    def loss_grad(self, params: Parameters, X: np.ndarray, y: np.ndarray) -> tuple[float, Parameters]:
        acts = self._forward(params, X)
        p, m = acts[-1], len(y)
        yi = y.astype(np.int64)
        loss = float(-np.mean(np.log(p[np.arange(m), yi] + 1e-12)))
        loss += 0.5 * self.l2 * sum(float((w * w).sum()) for w in params[0::2])
        d = p.copy()
        d[np.arange(m), yi] -= 1.0
        d /= m
        grads: Parameters = [np.empty(0)] * len(params)
        for i in range(len(params) // 2 - 1, -1, -1):
            grads[2 * i] = acts[i].T @ d + self.l2 * params[2 * i]
            grads[2 * i + 1] = d.sum(axis=0)
            if i:
                d = (d @ params[2 * i].T) * (acts[i] > 0)
        return loss, grads

    def predict_proba(self, params: Parameters, X: np.ndarray) -> np.ndarray:
        return self._forward(params, X)[-1]

    def spec(self) -> dict[str, object]:
        return {"model": "mlp", "n_features": self.n_features, "hidden": list(self.hidden),
                "n_classes": self.n_classes, "l2": self.l2}


def make_model(spec: dict[str, Any]) -> FLModel:
    """The model described by `spec` (from `FLModel.spec`).

    >>> make_model({"model": "mlp", "n_features": 2, "hidden": [4], "n_classes": 3}).n_classes
    3
    """
    kind = spec.get("model")
    if kind == "logistic":
        return LogisticModel(int(spec["n_features"]), float(spec.get("l2", 0.0)))
    if kind == "mlp":
        return MLPModel(int(spec["n_features"]), tuple(spec.get("hidden", (32,))), int(spec.get("n_classes", 2)),
                        float(spec.get("l2", 0.0)))
    raise ParameterError(f"unknown model {kind!r} (logistic, mlp)", field="model")


def local_train(model: FLModel, params: Parameters, X: np.ndarray, y: np.ndarray, *, epochs: int = 1,
                learning_rate: float = 0.1, batch_size: int = 32, proximal_mu: float = 0.0,
                prg: Prg | None = None) -> Parameters:
    """Minibatch SGD from `params` on (X, y); with `proximal_mu` > 0 the FedProx term
    (μ/2)·‖w − params‖² pulls towards the starting (global) parameters.

    >>> m = LogisticModel(1)
    >>> p = local_train(m, m.init(), np.array([[1.0], [-1.0]]), np.array([1, 0]), epochs=5)
    >>> bool(p[0][0] > 0)
    True
    """
    if len(X) != len(y) or len(X) == 0:
        raise DataError(f"{len(X)} rows of features for {len(y)} labels", field="y")
    prg = prg if prg is not None else Prg()
    start = [np.array(p, dtype=np.float64) for p in params]
    w = [p.copy() for p in start]
    for _ in range(int(epochs)):
        order = np.argsort(prg.uint64(len(X)), kind="stable")
        for i in range(0, len(X), max(1, int(batch_size))):
            idx = order[i:i + int(batch_size)]
            _, g = model.loss_grad(w, X[idx], y[idx])
            for j in range(len(w)):
                step = g[j] + proximal_mu * (w[j] - start[j]) if proximal_mu else g[j]
                w[j] = w[j] - learning_rate * step
    return w
