"""Federated estimators on horizontally partitioned data (scikit-learn contract, `SecureEstimator`).

`FLLogisticRegression` and `FLMLPClassifier` train on an `HDataFrame` whose partitions are
held by the clients of a `FederatedDevice` (an aggregator and its clients), with a
strategy named by `strategy` and SecAgg+ unless `secure=False`. Every party of the device
ends with the same global model (it is public to them), saved as one model part per party
(`runtime.persist`): the parameters in the party's state, their SHA-256 in the public part
so that loading checks every party holds the same model.

Adversary model: as `trainer.py` (aggregator: the sums of updates per round; clients:
the global models). Data checks run at each client; every party learns only which client
failed which check (`agree`), and the public schema (columns, row counts) of `HDataFrame`.

>>> import pandas as pd
>>> from jointml.core.prg import public_rng
>>> from jointml.data.frames import from_pandas
>>> def prog(ctx):
...     rng = public_rng(7)
...     X = rng.normal(size=(60, 2)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
...     frames = {p: pd.DataFrame({"a": X[i::3, 0], "b": X[i::3, 1], "y": y[i::3]})
...               for i, p in enumerate(["c1", "c2", "c3"])}
...     hdf = from_pandas(ctx, frames, vertical=False)
...     dev = FederatedDevice(ctx, "agg", ["c1", "c2", "c3"])
...     m = FLLogisticRegression(dev, rounds=5, learning_rate=1.0, threshold=2, min_signers=2).fit(hdf, "y")
...     return float((m.predict(np.column_stack([X[:, 0], X[:, 1]])) == y).mean())
>>> simulate(prog, ["agg", "c1", "c2", "c3"], mode="thread")["agg"] > 0.9
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...core.errors import ModelError
from ...runtime.collectives import agree
from ...runtime.persist import ModelPart
from ..base import SecureEstimator, check_is_fitted, check_param
from .aggregate import Parameters
from .models import FLModel, LogisticModel, MLPModel, make_model
from .secagg_params import SecAggParams
from .strategy import FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, Strategy
from .trainer import FederatedTrainer, FLClient

__all__ = ["FederatedDevice", "FLLogisticRegression", "FLMLPClassifier", "make_strategy", "STRATEGIES"]

STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadagrad", "fedadam", "fedyogi")


@dataclass
class FederatedDevice:
    """Where a federated model trains: the aggregator `server` and its `clients` (parties of `ctx`).

    >>> FederatedDevice(None, "agg", ["a", "b"]).parties
    ['agg', 'a', 'b']
    """

    ctx: Any
    server: str
    clients: list[str] = field(default_factory=list)

    @property
    def parties(self) -> list[str]:
        return [self.server, *self.clients]


def make_strategy(name: str, *, fraction_fit: float = 1.0, min_fit_clients: int = 2, proximal_mu: float = 0.01,
                  server_learning_rate: float = 1.0, server_momentum: float = 0.9, eta: float = 0.1,
                  seed: int | None = None) -> Strategy:
    """A strategy by name (`STRATEGIES`) with the parameters that apply to it.

    >>> type(make_strategy("fedyogi", eta=0.05)).__name__
    'FedYogi'
    """
    check_param("strategy", name, lambda v: v in STRATEGIES, f"one of {STRATEGIES}")
    common: dict[str, Any] = {"fraction_fit": fraction_fit, "min_fit_clients": min_fit_clients,
                              "min_available_clients": min_fit_clients,
                              "seed": None if seed is None else hashlib.sha256(f"fl-seed:{seed}".encode()).digest()[:16]}
    if name == "fedprox":
        return FedProx(proximal_mu=proximal_mu, **common)
    if name == "fedavgm":
        return FedAvgM(server_learning_rate=server_learning_rate, server_momentum=server_momentum, **common)
    if name in ("fedadagrad", "fedadam", "fedyogi"):
        cls = {"fedadagrad": FedAdagrad, "fedadam": FedAdam, "fedyogi": FedYogi}[name]
        return cls(eta=eta, **common)
    return FedAvg(**common)


def _digest(params: Parameters) -> str:
    h = hashlib.sha256()
    for p in params:
        h.update(np.ascontiguousarray(p, dtype=np.float64).tobytes())
    return h.hexdigest()


class _FLClassifier(SecureEstimator):
    """Shared fit / predict / persistence of the federated classifiers."""

    error = ModelError
    device: FederatedDevice

    # set by the subclasses' __init__
    rounds: int
    strategy: str
    local_epochs: int
    learning_rate: float
    batch_size: int
    fraction_fit: float
    proximal_mu: float
    server_learning_rate: float
    server_momentum: float
    eta: float
    secure: bool
    clip: float
    quant_bits: int
    threshold: int | None
    min_signers: int | None
    timeout: float
    weight_cap: float
    l2: float
    evaluate_every: int
    seed: int | None

    def _model(self, n_features: int) -> FLModel:
        raise NotImplementedError

    def _label_problem(self, y: np.ndarray) -> str | None:
        raise NotImplementedError

    def _validate_params(self) -> None:
        check_param("rounds", self.rounds, lambda v: int(v) >= 1 and int(v) == v, "an integer >= 1")
        check_param("local_epochs", self.local_epochs, lambda v: int(v) >= 1, "an integer >= 1")
        check_param("learning_rate", self.learning_rate, lambda v: float(v) > 0, "> 0")
        check_param("batch_size", self.batch_size, lambda v: int(v) >= 1, "an integer >= 1")
        check_param("strategy", self.strategy, lambda v: v in STRATEGIES, f"one of {STRATEGIES}")

    def _secagg(self) -> SecAggParams:
        return SecAggParams(clip=self.clip, quant_bits=self.quant_bits, threshold=self.threshold,
                            min_signers=self.min_signers, timeout=self.timeout)

    def _local_data(self, hdf: Any, label: str, features: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(X, y) at a client (checked at every client; all parties raise the first problem)."""
        me, data, problem = self.ctx.me, None, None
        if me in self.device.clients:
            df = hdf.local()
            try:
                X = df[features].to_numpy(dtype=np.float64)
                y = df[label].to_numpy(dtype=np.float64)
                if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
                    problem = f"client '{me}': features or label '{label}' have NaN or infinite values"
                else:
                    problem = self._label_problem(y)
                    data = (X, y)
            except (KeyError, ValueError, TypeError):
                problem = f"client '{me}': features {features} and label '{label}' must be numeric columns"
        agree(self.ctx, self.device.clients, problem, error=self.error, name="fl-data")
        return data

    def fit(self, hdf: Any, label: str, features: Sequence[str] | None = None) -> _FLClassifier:
        """Train on `hdf` (an `HDataFrame` held by the device's clients); every party of the job calls it."""
        self._validate_params()
        dev = self.device
        if sorted(hdf.parties) != sorted(dev.clients):
            raise self.error(f"the frame's parties {hdf.parties} are not the device's clients {dev.clients}",
                             field="hdf")
        if label not in hdf.columns:
            raise self.error(f"label '{label}' is not a column of the frame {hdf.columns}", field="label")
        feats = [c for c in (features or hdf.columns) if c != label]
        model = self._model(len(feats))
        data = self._local_data(hdf, label, feats)
        client = None
        if data is not None:
            client = FLClient(model, data[0], data[1], local_epochs=self.local_epochs,
                              learning_rate=self.learning_rate, batch_size=self.batch_size)
        strategy = make_strategy(self.strategy, fraction_fit=self.fraction_fit, min_fit_clients=2,
                                 proximal_mu=self.proximal_mu, server_learning_rate=self.server_learning_rate,
                                 server_momentum=self.server_momentum, eta=self.eta, seed=self.seed)
        tr = FederatedTrainer(self.ctx, dev.server, dev.clients, model, strategy, rounds=int(self.rounds),
                              secure=bool(self.secure), secagg=self._secagg(), weight_cap=self.weight_cap,
                              init_seed=int(self.seed or 0), evaluate_every=int(self.evaluate_every))
        self.params_ = tr.run(client)
        self.history_ = tr.history_
        self.spec_, self.features_, self.label_ = model.spec(), feats, label
        vars(self).pop("model_id_", None)  # a new model: its id is drawn at save
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities for rows `X` held by this party (local, plaintext)."""
        if not hasattr(self, "params_"):
            raise self.error("the model is not fitted: call fit() before predict_proba()")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features_):
            raise self.error(f"X has shape {X.shape}; the model takes {len(self.features_)} features", field="X")
        return make_model(self.spec_).predict_proba(self.params_, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each row of `X`."""
        return self.predict_proba(X).argmax(axis=1)

    # -- persistence -------------------------------------------------------------------
    _fitted_attr = "params_"

    def _part_public(self) -> dict[str, Any]:
        return {"spec": self.spec_, "features": self.features_, "label": self.label_, "server": self.device.server,
                "clients": list(self.device.clients), "digest": _digest(self.params_)}

    def _part_state(self) -> dict[str, Any]:
        return {"params": [np.asarray(p).tolist() for p in self.params_],
                "shapes": [list(np.shape(p)) for p in self.params_]}

    def _restore(self, part: ModelPart) -> None:
        pub, st = part.public, part.state
        params = [np.asarray(v, dtype=np.float64).reshape(s) for v, s in zip(st["params"], st["shapes"])]
        if _digest(params) != pub["digest"]:
            raise self.error("the saved parameters do not match their digest", party=part.party)
        self.params_, self.spec_, self.features_, self.label_ = params, pub["spec"], pub["features"], pub["label"]

    def _check_part(self, part: ModelPart) -> str | None:
        if part.public.get("server") != self.device.server or part.public.get("clients") != list(self.device.clients):
            return (f"party '{self.ctx.me}': the model was trained by aggregator {part.public.get('server')} and "
                    f"clients {part.public.get('clients')}, not this device's")
        return None


class FLLogisticRegression(_FLClassifier):
    """Federated binary logistic regression (labels 0/1). See the module docstring.

    `strategy`: one of `STRATEGIES`; `secure`: SecAgg+ (else plain FedAvg exposure);
    `clip`, `quant_bits`, `threshold`, `min_signers`, `timeout`: `SecAggParams`.

    >>> FLLogisticRegression(None, rounds=3).get_params()["rounds"]
    3
    """

    def __init__(self, device: Any, *, rounds: int = 20, strategy: str = "fedavg", local_epochs: int = 1,
                 learning_rate: float = 0.1, batch_size: int = 32, fraction_fit: float = 1.0, proximal_mu: float = 0.01,
                 server_learning_rate: float = 1.0, server_momentum: float = 0.9, eta: float = 0.1,
                 secure: bool = True, clip: float = 4.0, quant_bits: int = 20, threshold: int | None = None,
                 min_signers: int | None = None, timeout: float = 30.0, weight_cap: float = 1000.0, l2: float = 0.0,
                 evaluate_every: int = 0, seed: int | None = None):
        self.device = device
        self.rounds, self.strategy, self.local_epochs, self.learning_rate = rounds, strategy, local_epochs, learning_rate
        self.batch_size, self.fraction_fit, self.proximal_mu = batch_size, fraction_fit, proximal_mu
        self.server_learning_rate, self.server_momentum, self.eta = server_learning_rate, server_momentum, eta
        self.secure, self.clip, self.quant_bits, self.threshold = secure, clip, quant_bits, threshold
        self.min_signers, self.timeout, self.weight_cap, self.l2, self.seed = min_signers, timeout, weight_cap, l2, seed
        self.evaluate_every = evaluate_every

    def _model(self, n_features: int) -> FLModel:
        return LogisticModel(n_features, self.l2)

    def _label_problem(self, y: np.ndarray) -> str | None:
        if not set(np.unique(y).tolist()) <= {0.0, 1.0}:
            return f"client '{self.ctx.me}': the label must be 0/1 for logistic regression"
        return None

    @property
    def coef_(self) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(self.params_[0])

    @property
    def intercept_(self) -> float:
        check_is_fitted(self, "intercept_")
        return float(self.params_[1][0])


class FLMLPClassifier(_FLClassifier):
    """A federated MLP classifier: labels 0 … n_classes − 1, ReLU `hidden` layers, softmax output.

    >>> FLMLPClassifier(None, hidden=(16, 8), n_classes=10).hidden
    (16, 8)
    """

    def __init__(self, device: Any, *, hidden: tuple[int, ...] = (32,), n_classes: int = 2, rounds: int = 20,
                 strategy: str = "fedavg", local_epochs: int = 1, learning_rate: float = 0.1, batch_size: int = 32,
                 fraction_fit: float = 1.0, proximal_mu: float = 0.01, server_learning_rate: float = 1.0,
                 server_momentum: float = 0.9, eta: float = 0.1, secure: bool = True, clip: float = 4.0,
                 quant_bits: int = 20, threshold: int | None = None, min_signers: int | None = None,
                 timeout: float = 30.0, weight_cap: float = 1000.0, l2: float = 0.0, evaluate_every: int = 0,
                 seed: int | None = None):
        self.device = device
        self.hidden, self.n_classes = hidden, n_classes
        self.rounds, self.strategy, self.local_epochs, self.learning_rate = rounds, strategy, local_epochs, learning_rate
        self.batch_size, self.fraction_fit, self.proximal_mu = batch_size, fraction_fit, proximal_mu
        self.server_learning_rate, self.server_momentum, self.eta = server_learning_rate, server_momentum, eta
        self.secure, self.clip, self.quant_bits, self.threshold = secure, clip, quant_bits, threshold
        self.min_signers, self.timeout, self.weight_cap, self.l2, self.seed = min_signers, timeout, weight_cap, l2, seed
        self.evaluate_every = evaluate_every

    def _model(self, n_features: int) -> FLModel:
        return MLPModel(n_features, tuple(self.hidden), int(self.n_classes), self.l2)

    def _label_problem(self, y: np.ndarray) -> str | None:
        ok = np.all(y == np.round(y)) and y.min() >= 0 and y.max() < int(self.n_classes)
        return None if ok else f"client '{self.ctx.me}': labels must be integers in [0, {self.n_classes})"
