"""Federated-learning strategies: how the aggregator samples clients and combines their updates.

The design follows Flower's `Strategy`: a small object apart from the transport and the
clients, asked by the training loop at each round

| method | when | returns |
| --- | --- | --- |
| `initialize()` | once | the initial global parameters (or None: the model's own) |
| `configure_fit(rnd, params, clients)` | start of a round | `{client: FitIns}` for the sampled clients |
| `aggregate_fit(rnd, params, results, failures)` | after local training | new global parameters, metrics |
| `configure_evaluate(rnd, params, clients)` | after the update | `{client: EvaluateIns}` |
| `aggregate_evaluate(rnd, results, failures)` | after evaluation | weighted loss, metrics |
| `evaluate(rnd, params)` | optional, at the server | loss, metrics, or None |

Every strategy here is *linear* in the clients' updates: `aggregate_fit` only needs the
weighted sum Σ n_i·Δ_i, Σ n_i (`WeightedSum`), which secure aggregation can open without
showing any single update; `aggregate_sum` is that entry point, and `aggregate_fit` on
plaintext results calls it (one code path for both).

Client sampling: each round draws `max(min_fit_clients, ceil(fraction_fit·N))` of the
available clients uniformly without replacement, from `jointml.core.prg.Prg` (AES-CTR)
keyed by `seed` and the round number. Why not a public generator: under differential
privacy the privacy amplification by sampling holds only if the clients (and an observer)
cannot predict who is sampled; an AES-CTR stream from a fresh `secrets` seed (the default)
is unpredictable, and with a given `seed` it is reproducible (tests, audits).

Adversary model: the strategy runs at the aggregator on what it is given; it sees each
client's update in plaintext only when the loop runs without secure aggregation. Which
clients were sampled is public to the job.

>>> s = FedAvg(fraction_fit=0.5, min_fit_clients=2, seed=b"s" * 16)
>>> sorted(s.configure_fit(1, [np.zeros(2)], ["a", "b", "c", "d"]))
['a', 'b']
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...core.errors import DataError, ParameterError, UnsupportedOperation
from ...core.prg import Prg, new_seed
from .aggregate import Parameters, WeightedSum, adaptive_step, check_like, momentum_step, sub, weighted_sum
from .aggregate import add as add_params

__all__ = ["FitIns", "FitRes", "EvaluateIns", "EvaluateRes", "Strategy", "FedAvg", "FedProx", "FedAvgM", "FedOpt",
           "FedAdagrad", "FedAdam", "FedYogi", "sample_clients"]


@dataclass
class FitIns:
    """What a sampled client receives: the global parameters and the round's configuration.

    >>> FitIns([np.zeros(2)], {"proximal_mu": 0.1}).config
    {'proximal_mu': 0.1}
    """

    parameters: Parameters
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitRes:
    """A client's training result: its new parameters, its number of examples, its metrics.

    >>> FitRes([np.ones(2)], num_examples=10).num_examples
    10
    """

    parameters: Parameters
    num_examples: int
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluateIns:
    """What a client evaluates: the global parameters and a configuration.

    >>> len(EvaluateIns([np.zeros(3)]).parameters)
    1
    """

    parameters: Parameters
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluateRes:
    """A client's evaluation: loss, number of examples, metrics (e.g. accuracy).

    >>> EvaluateRes(0.4, 20, {"accuracy": 0.9}).metrics["accuracy"]
    0.9
    """

    loss: float
    num_examples: int
    metrics: dict[str, Any] = field(default_factory=dict)


def sample_clients(clients: Sequence[str], k: int, prg: Prg) -> list[str]:
    """`k` of `clients`, uniformly without replacement (partial Fisher–Yates), in their given order.

    >>> sample_clients(["a", "b", "c"], 2, Prg(b"x" * 16))
    ['b', 'c']
    """
    pool = list(clients)
    if not 0 <= k <= len(pool):
        raise ParameterError(f"cannot sample {k} of {len(pool)} clients", field="clients")
    for i in range(k):
        j = i + int(prg.integers_below(len(pool) - i, 1)[0])
        pool[i], pool[j] = pool[j], pool[i]
    chosen = set(pool[:k])
    return [c for c in clients if c in chosen]


class Strategy(ABC):
    """The aggregator's policy (see the module docstring for the call order).

    A custom strategy overrides what it changes, e.g. a fixed client weighting:

    >>> class Uniform(FedAvg):
    ...     def aggregate_fit(self, rnd, parameters, results, failures):
    ...         ones = {c: FitRes(r.parameters, 1) for c, r in results.items()}
    ...         return super().aggregate_fit(rnd, parameters, ones, failures)
    >>> res = {"a": FitRes([np.array([0.0])], 1), "b": FitRes([np.array([4.0])], 99)}
    >>> Uniform().aggregate_fit(1, [np.zeros(1)], res, [])[0][0].tolist()
    [2.0]
    """

    @abstractmethod
    def initialize(self) -> Parameters | None:
        """The initial global parameters, or None to take the model's initialisation."""

    @abstractmethod
    def configure_fit(self, rnd: int, parameters: Parameters, clients: Sequence[str]) -> dict[str, FitIns]:
        """Which clients train in round `rnd`, and with what."""

    @abstractmethod
    def aggregate_fit(self, rnd: int, parameters: Parameters, results: dict[str, FitRes],
                      failures: Sequence[str]) -> tuple[Parameters, dict[str, Any]]:
        """New global parameters from the clients' results (`failures`: clients that dropped)."""

    @abstractmethod
    def configure_evaluate(self, rnd: int, parameters: Parameters, clients: Sequence[str]) -> dict[str, EvaluateIns]:
        """Which clients evaluate the global model in round `rnd`."""

    @abstractmethod
    def aggregate_evaluate(self, rnd: int, results: dict[str, EvaluateRes],
                           failures: Sequence[str]) -> tuple[float | None, dict[str, Any]]:
        """The clients' losses and metrics combined (weighted by their examples)."""

    def evaluate(self, rnd: int, parameters: Parameters) -> tuple[float, dict[str, Any]] | None:
        """Centralised evaluation at the server (None: not done)."""
        return None

    def aggregate_sum(self, rnd: int, parameters: Parameters, ws: WeightedSum) -> Parameters:
        """New global parameters from Σ w_i·Δ_i and Σ w_i only: what secure aggregation opens.

        Linear strategies implement it; one that needs the individual updates (a median, a
        robust aggregator) cannot run under secure aggregation and says so here."""
        raise UnsupportedOperation(f"{type(self).__name__} needs the individual updates; it cannot run under "
                                   f"secure aggregation (use secure=False or a linear strategy)")


class FedAvg(Strategy):
    """Federated averaging (McMahan et al., AISTATS 2017): the example-weighted mean of the updates.

    Parameters: `fraction_fit`/`min_fit_clients` (clients sampled per round),
    `fraction_evaluate`/`min_evaluate_clients`, `min_available_clients` (fewer available:
    `DataError`), `initial_parameters`, `evaluate_fn(rnd, params) -> (loss, metrics)` for
    server-side evaluation, `on_fit_config(rnd) -> dict` for the clients' configuration,
    `seed` (bytes: reproducible sampling; None: unpredictable).

    >>> s = FedAvg()
    >>> res = {"a": FitRes([np.array([1.0])], 1), "b": FitRes([np.array([4.0])], 2)}
    >>> s.aggregate_fit(1, [np.array([0.0])], res, [])[0][0].tolist()
    [3.0]
    """

    def __init__(self, *, fraction_fit: float = 1.0, fraction_evaluate: float = 1.0, min_fit_clients: int = 2,
                 min_evaluate_clients: int = 2, min_available_clients: int = 2,
                 initial_parameters: Parameters | None = None,
                 evaluate_fn: Callable[[int, Parameters], tuple[float, dict[str, Any]] | None] | None = None,
                 on_fit_config: Callable[[int], dict[str, Any]] | None = None, seed: bytes | None = None):
        for name, v in (("fraction_fit", fraction_fit), ("fraction_evaluate", fraction_evaluate)):
            if not 0.0 < float(v) <= 1.0:
                raise ParameterError(f"must be in (0, 1], got {v!r}", field=name)
        for name, n in (("min_fit_clients", min_fit_clients), ("min_evaluate_clients", min_evaluate_clients),
                        ("min_available_clients", min_available_clients)):
            if int(n) < 1:
                raise ParameterError(f"must be >= 1, got {n!r}", field=name)
        self.fraction_fit, self.fraction_evaluate = float(fraction_fit), float(fraction_evaluate)
        self.min_fit_clients, self.min_evaluate_clients = int(min_fit_clients), int(min_evaluate_clients)
        self.min_available_clients = int(min_available_clients)
        self.initial_parameters = initial_parameters
        self.evaluate_fn, self.on_fit_config = evaluate_fn, on_fit_config
        self.seed = new_seed() if seed is None else bytes(seed)

    # -- sampling --------------------------------------------------------------------
    def _sample(self, rnd: int, clients: Sequence[str], fraction: float, minimum: int, what: str) -> list[str]:
        if len(clients) < self.min_available_clients:
            raise DataError(f"{len(clients)} clients available, the strategy needs at least "
                            f"{self.min_available_clients} (min_available_clients)", field="min_available_clients")
        k = min(len(clients), max(minimum, math.ceil(fraction * len(clients))))
        label = hashlib.sha256(f"{what}:{rnd}".encode()).hexdigest()[:16]
        return sample_clients(clients, k, Prg(self.seed, stream=f"fl-sample:{label}"))

    def fit_config(self, rnd: int) -> dict[str, Any]:
        """The configuration sent to the clients in round `rnd` (FedProx adds its μ)."""
        return dict(self.on_fit_config(rnd)) if self.on_fit_config is not None else {}

    # -- Strategy ----------------------------------------------------------------------
    def initialize(self) -> Parameters | None:
        return self.initial_parameters

    def configure_fit(self, rnd: int, parameters: Parameters, clients: Sequence[str]) -> dict[str, FitIns]:
        cfg = self.fit_config(rnd)
        return {c: FitIns(parameters, dict(cfg)) for c in self._sample(rnd, clients, self.fraction_fit,
                                                                       self.min_fit_clients, "fit")}

    def aggregate_fit(self, rnd: int, parameters: Parameters, results: dict[str, FitRes],
                      failures: Sequence[str]) -> tuple[Parameters, dict[str, Any]]:
        if not results:
            raise DataError(f"round {rnd}: no client returned a result (dropped: {list(failures)})")
        for c, r in results.items():
            check_like(parameters, r.parameters, c)
        deltas = [sub(r.parameters, parameters) for r in results.values()]
        ws = weighted_sum(deltas, [float(r.num_examples) for r in results.values()])
        return self.aggregate_sum(rnd, parameters, ws), {"clients": len(results), "dropped": len(failures)}

    def aggregate_sum(self, rnd: int, parameters: Parameters, ws: WeightedSum) -> Parameters:
        """The new global parameters from the weighted sum of updates (the secure-aggregation path)."""
        return add_params(parameters, ws.mean())

    def configure_evaluate(self, rnd: int, parameters: Parameters, clients: Sequence[str]) -> dict[str, EvaluateIns]:
        return {c: EvaluateIns(parameters, {}) for c in self._sample(rnd, clients, self.fraction_evaluate,
                                                                     self.min_evaluate_clients, "evaluate")}

    def aggregate_evaluate(self, rnd: int, results: dict[str, EvaluateRes],
                           failures: Sequence[str]) -> tuple[float | None, dict[str, Any]]:
        if not results:
            return None, {}
        n = sum(r.num_examples for r in results.values())
        if n <= 0:
            return None, {}
        loss = sum(r.loss * r.num_examples for r in results.values()) / n
        keys = set.intersection(*(set(r.metrics) for r in results.values()))
        metrics = {k: sum(float(r.metrics[k]) * r.num_examples for r in results.values()) / n for k in sorted(keys)}
        return float(loss), metrics

    def evaluate(self, rnd: int, parameters: Parameters) -> tuple[float, dict[str, Any]] | None:
        return None if self.evaluate_fn is None else self.evaluate_fn(rnd, parameters)


class FedProx(FedAvg):
    """FedProx (Li et al., MLSys 2020): FedAvg whose clients add (μ/2)·‖w − w_global‖² to their loss.

    The server side is FedAvg; `proximal_mu` goes to the clients in the fit configuration.

    >>> FedProx(proximal_mu=0.1).configure_fit(1, [np.zeros(1)], ["a", "b"])["a"].config
    {'proximal_mu': 0.1}
    """

    def __init__(self, *, proximal_mu: float = 0.01, **kw: Any):
        super().__init__(**kw)
        if not float(proximal_mu) >= 0:
            raise ParameterError(f"must be >= 0, got {proximal_mu!r}", field="proximal_mu")
        self.proximal_mu = float(proximal_mu)

    def fit_config(self, rnd: int) -> dict[str, Any]:
        return {**super().fit_config(rnd), "proximal_mu": self.proximal_mu}


class FedAvgM(FedAvg):
    """FedAvg with server momentum (Hsu et al. 2019): v ← β·v − Δ, w ← w − η·v.

    >>> s = FedAvgM(server_learning_rate=1.0, server_momentum=0.5)
    >>> w = s.aggregate_sum(1, [np.zeros(1)], WeightedSum([np.ones(1)], 1.0, 1))
    >>> s.aggregate_sum(2, w, WeightedSum([np.ones(1)], 1.0, 1))[0].tolist()
    [2.5]
    """

    def __init__(self, *, server_learning_rate: float = 1.0, server_momentum: float = 0.9, **kw: Any):
        super().__init__(**kw)
        if not float(server_learning_rate) > 0:
            raise ParameterError(f"must be > 0, got {server_learning_rate!r}", field="server_learning_rate")
        if not 0.0 <= float(server_momentum) < 1.0:
            raise ParameterError(f"must be in [0, 1), got {server_momentum!r}", field="server_momentum")
        self.server_learning_rate, self.server_momentum = float(server_learning_rate), float(server_momentum)
        self.momentum_: Parameters | None = None

    def aggregate_sum(self, rnd: int, parameters: Parameters, ws: WeightedSum) -> Parameters:
        new, self.momentum_ = momentum_step(parameters, ws.mean(), self.momentum_,
                                            server_lr=self.server_learning_rate, beta=self.server_momentum)
        return new


class FedOpt(FedAvg):
    """Adaptive server optimisers (Reddi et al., ICLR 2021): the averaged update is a pseudo-gradient
    fed to Adagrad, Adam or Yogi at the server (`kind`). `eta` server learning rate, `beta_1`,
    `beta_2`, `tau` (adaptivity). Defaults follow the paper's and Flower's.

    >>> s = FedOpt(kind="yogi", eta=0.1)
    >>> w = s.aggregate_sum(1, [np.zeros(2)], WeightedSum([np.array([1.0, -2.0])], 1.0, 1))
    >>> bool(w[0][0] > 0 and w[0][1] < 0)
    True
    """

    def __init__(self, *, kind: str = "adam", eta: float = 1e-1, beta_1: float = 0.9, beta_2: float = 0.99,
                 tau: float = 1e-9, **kw: Any):
        super().__init__(**kw)
        if kind not in ("adagrad", "adam", "yogi"):
            raise ParameterError(f"must be 'adagrad', 'adam' or 'yogi', got {kind!r}", field="kind")
        for name, v, lo, hi in (("eta", eta, 0.0, math.inf), ("beta_1", beta_1, 0.0, 1.0),
                                ("beta_2", beta_2, 0.0, 1.0), ("tau", tau, 0.0, math.inf)):
            if not lo < float(v) < hi and not (name.startswith("beta") and float(v) == 0.0):
                raise ParameterError(f"must be in ({lo}, {hi}), got {v!r}", field=name)
        self.kind, self.eta, self.beta_1, self.beta_2, self.tau = kind, float(eta), float(beta_1), float(beta_2), float(tau)
        self.m_: Parameters | None = None
        self.v_: Parameters | None = None

    def aggregate_sum(self, rnd: int, parameters: Parameters, ws: WeightedSum) -> Parameters:
        new, self.m_, self.v_ = adaptive_step(parameters, ws.mean(), self.m_, self.v_, kind=self.kind, eta=self.eta,
                                              beta_1=self.beta_1, beta_2=self.beta_2, tau=self.tau)
        return new


class FedAdagrad(FedOpt):
    """`FedOpt` with Adagrad at the server.

    >>> FedAdagrad().kind
    'adagrad'
    """

    def __init__(self, **kw: Any):
        super().__init__(kind="adagrad", **kw)


class FedAdam(FedOpt):
    """`FedOpt` with Adam at the server.

    >>> FedAdam(eta=0.05).eta
    0.05
    """

    def __init__(self, **kw: Any):
        super().__init__(kind="adam", **kw)


class FedYogi(FedOpt):
    """`FedOpt` with Yogi at the server (v moves additively, steadier than Adam's under sparse updates).

    >>> FedYogi().kind
    'yogi'
    """

    def __init__(self, **kw: Any):
        super().__init__(kind="yogi", **kw)
