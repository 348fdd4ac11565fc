"""Aggregation math of federated learning: pure functions on lists of arrays.

No party, no link: these functions take what a server holds (the clients' results in
plaintext, or the *sum* that secure aggregation opens) and return the new global model.
Every strategy of `jointml.ml.fl.strategy` is built from them, and they are tested
without a network.

Adversary model: none here (local computation at the aggregator). What the aggregator
learns is decided by the caller: with secure aggregation it holds only
`WeightedSum` (the sum of the surviving clients' weighted updates, their total weight and
their count), never one client's update.

A model is a list of float64 arrays ("parameters"); an update is the difference between
a client's trained parameters and the global ones it started from.

>>> a, b = [np.array([1.0, 2.0])], [np.array([3.0, 6.0])]
>>> weighted_mean([a, b], [1.0, 3.0])[0].tolist()
[2.5, 5.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...core.errors import DataError, ParameterError

__all__ = ["Parameters", "WeightedSum", "check_like", "add", "sub", "scale", "weighted_sum", "weighted_mean",
           "momentum_step", "adaptive_step", "flatten", "unflatten"]

Parameters = list[np.ndarray]


@dataclass
class WeightedSum:
    """What the aggregator holds after a round: Σ w_i·Δ_i, Σ w_i and the number of clients.

    The same object comes from plaintext results (`weighted_sum`) and from secure
    aggregation (where only these sums are opened), so strategies need not know which.

    >>> ws = WeightedSum([np.array([4.0])], 2.0, 2)
    >>> ws.mean()[0].tolist()
    [2.0]
    """

    total: Parameters
    weight: float
    count: int

    def mean(self) -> Parameters:
        """Σ w_i·Δ_i / Σ w_i (a `DataError` when no weight arrived)."""
        if not self.weight > 0:
            raise DataError(f"no client weight to average over ({self.count} clients, total weight {self.weight})")
        return scale(self.total, 1.0 / self.weight)


def check_like(ref: Parameters, other: Parameters, who: str | None = None) -> None:
    """Raise `DataError` (naming `who`) unless `other` has the layout of `ref` (count and shapes).

    >>> check_like([np.zeros(2)], [np.zeros(3)], "bank-a")
    Traceback (most recent call last):
    ...
    jointml.core.errors.DataError: party 'bank-a': parameter 0 has shape (3,), expected (2,)
    """
    if len(ref) != len(other):
        raise DataError(f"{len(other)} parameter arrays, expected {len(ref)}", party=who)
    for i, (r, o) in enumerate(zip(ref, other)):
        if np.shape(r) != np.shape(o):
            raise DataError(f"parameter {i} has shape {np.shape(o)}, expected {np.shape(r)}", party=who)
        if not np.all(np.isfinite(o)):
            raise DataError(f"parameter {i} has non-finite values", party=who)


def add(a: Parameters, b: Parameters) -> Parameters:
    """Element-wise a + b.

    >>> add([np.ones(2)], [np.ones(2)])[0].tolist()
    [2.0, 2.0]
    """
    return [np.asarray(x, dtype=np.float64) + np.asarray(y, dtype=np.float64) for x, y in zip(a, b)]


def sub(a: Parameters, b: Parameters) -> Parameters:
    """Element-wise a − b.

    >>> sub([np.ones(2)], [np.ones(2)])[0].tolist()
    [0.0, 0.0]
    """
    return [np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64) for x, y in zip(a, b)]


def scale(a: Parameters, c: float) -> Parameters:
    """c · a.

    >>> scale([np.ones(2)], 0.5)[0].tolist()
    [0.5, 0.5]
    """
    return [np.asarray(x, dtype=np.float64) * float(c) for x in a]


def weighted_sum(updates: Sequence[Parameters], weights: Sequence[float]) -> WeightedSum:
    """Σ w_i·u_i over the clients, with Σ w_i and the count (the plaintext twin of secure aggregation).

    >>> ws = weighted_sum([[np.array([1.0])], [np.array([3.0])]], [1.0, 1.0])
    >>> ws.total[0].tolist(), ws.weight, ws.count
    ([4.0], 2.0, 2)
    """
    if not updates:
        raise DataError("no client results to aggregate")
    if len(updates) != len(weights):
        raise ParameterError(f"{len(updates)} updates but {len(weights)} weights", field="weights")
    if any(not (w >= 0 and np.isfinite(w)) for w in weights):
        raise ParameterError("client weights must be finite and >= 0", field="weights")
    total = [np.zeros(np.shape(x), dtype=np.float64) for x in updates[0]]
    for u, w in zip(updates, weights):
        check_like(updates[0], u)
        for t, x in zip(total, u):
            t += float(w) * np.asarray(x, dtype=np.float64)
    return WeightedSum(total, float(sum(weights)), len(updates))


def weighted_mean(updates: Sequence[Parameters], weights: Sequence[float]) -> Parameters:
    """Σ w_i·u_i / Σ w_i (FedAvg's average, McMahan et al. 2017).

    >>> weighted_mean([[np.array([0.0])], [np.array([4.0])]], [3.0, 1.0])[0].tolist()
    [1.0]
    """
    return weighted_sum(updates, weights).mean()


def momentum_step(current: Parameters, delta: Parameters, momentum: Parameters | None, *, server_lr: float,
                  beta: float) -> tuple[Parameters, Parameters]:
    """FedAvgM's server step (Hsu et al. 2019): v ← β·v + (−Δ), x ← x − η·v. Returns (x, v).

    `delta` is the averaged update (new − current); −Δ is the "pseudo-gradient".

    >>> x, v = momentum_step([np.zeros(1)], [np.ones(1)], None, server_lr=1.0, beta=0.9)
    >>> x[0].tolist(), v[0].tolist()
    ([1.0], [-1.0])
    >>> x, v = momentum_step(x, [np.ones(1)], v, server_lr=1.0, beta=0.9)
    >>> x[0].tolist()
    [2.9]
    """
    pseudo = scale(delta, -1.0)
    v = pseudo if momentum is None else add(scale(momentum, beta), pseudo)
    return sub(current, scale(v, server_lr)), v


def adaptive_step(current: Parameters, delta: Parameters, m: Parameters | None, v: Parameters | None, *,
                  kind: str, eta: float, beta_1: float, beta_2: float, tau: float
                  ) -> tuple[Parameters, Parameters, Parameters]:
    """FedAdagrad / FedAdam / FedYogi server step (Reddi et al., ICLR 2021, Algorithm 2).

    m ← β1·m + (1−β1)·Δ;  v ← v + Δ² (adagrad), β2·v + (1−β2)·Δ² (adam),
    v − (1−β2)·Δ²·sign(v − Δ²) (yogi);  x ← x + η·m / (√v + τ). Returns (x, m, v); m and v
    start at 0 and τ² as in the paper (no bias correction, as in the paper).

    >>> x, m, v = adaptive_step([np.zeros(2)], [np.array([1.0, -1.0])], None, None,
    ...                         kind="adam", eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3)
    >>> np.round(x[0], 4).tolist()
    [0.099, -0.099]
    """
    if kind not in ("adagrad", "adam", "yogi"):
        raise ParameterError(f"kind must be 'adagrad', 'adam' or 'yogi', got {kind!r}", field="kind")
    m0 = m if m is not None else [np.zeros_like(d, dtype=np.float64) for d in delta]
    v0 = v if v is not None else [np.full(np.shape(d), tau * tau) for d in delta]
    m1 = [beta_1 * a + (1.0 - beta_1) * d for a, d in zip(m0, delta)]
    if kind == "adagrad":
        v1 = [a + d * d for a, d in zip(v0, delta)]
    elif kind == "adam":
        v1 = [beta_2 * a + (1.0 - beta_2) * d * d for a, d in zip(v0, delta)]
    else:
        v1 = [a - (1.0 - beta_2) * d * d * np.sign(a - d * d) for a, d in zip(v0, delta)]
    x = [c + eta * a / (np.sqrt(b) + tau) for c, a, b in zip(current, m1, v1)]
    return x, m1, v1


def flatten(params: Parameters) -> np.ndarray:
    """One float64 vector of all parameters (what secure aggregation sums).

    >>> flatten([np.ones((2, 2)), np.zeros(1)]).shape
    (5,)
    """
    if not params:
        return np.zeros(0)
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in params])


def unflatten(vec: np.ndarray, like: Parameters) -> Parameters:
    """Split `vec` into arrays shaped like `like` (inverse of `flatten`).

    >>> [a.shape for a in unflatten(np.arange(5.0), [np.ones((2, 2)), np.zeros(1)])]
    [(2, 2), (1,)]
    """
    sizes = [int(np.size(p)) for p in like]
    if vec.size != sum(sizes):
        raise DataError(f"vector of {vec.size} values, the model has {sum(sizes)} parameters")
    out, pos = [], 0
    for p, n in zip(like, sizes):
        out.append(np.asarray(vec[pos:pos + n], dtype=np.float64).reshape(np.shape(p)))
        pos += n
    return out
