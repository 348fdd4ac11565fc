"""Differential privacy for federated learning: a strategy wrapper with distributed Gaussian noise.

`DPFedAvg(inner, clip_norm=S, noise_multiplier=z)` turns a linear strategy into DP-FedAvg
(McMahan et al., ICLR 2018) with the noise added by the clients under secure aggregation
(distributed DP): each sampled client clips its update Δᵢ to L2 norm S, adds Gaussian noise
N(0, (z·S)²/m · I) (m = the clients sampled that round) and submits it with weight 1; the
aggregator opens only the sum, which carries noise N(0, (z·S)²) in total, and the inner
strategy averages it over the m clients. Nobody, the aggregator included, ever sees a
noise-free sum.

What this gives and what it does not:
- Each round is the Gaussian mechanism on the sum of clipped updates (sensitivity S under
  add/remove of one client) with noise multiplier z, applied to a sample of the clients.
  The privacy loss over rounds (ε, δ) needs an accountant for the subsampled Gaussian
  mechanism (q = sampled fraction, σ = z, T rounds): `DPFedAvg.epsilon(delta)` composes the
  rounds run so far with `jointml.dp`'s accountant; `DPFedAvg.accounting` lists the inputs.
- Dropouts lower the noise: with s of m clients surviving, the sum carries (z·S)²·s/m.
  SecAgg+ aborts below its threshold, which bounds that loss; the history records s.
- Noise comes from `core.prg` (AES-CTR → Box–Muller), never numpy's generator.
- Client-level DP: it hides whether one client took part, against the aggregator and
  anyone who sees the models. It does not stop a client from lying (no input proofs).

>>> from jointml.ml.fl import FedAvg
>>> s = DPFedAvg(FedAvg(min_fit_clients=2), clip_norm=1.0, noise_multiplier=1.0)
>>> s.configure_fit(1, [np.zeros(1)], ["a", "b", "c", "d"])["a"].config["dp_noise_std"]
0.5
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ...core.errors import ParameterError
from ...core.prg import Prg
from .aggregate import Parameters, WeightedSum
from .strategy import EvaluateIns, EvaluateRes, FitIns, FitRes, Strategy

__all__ = ["DPFedAvg", "gaussian", "privatise"]


def gaussian(n: int, prg: Prg) -> np.ndarray:
    """`n` standard normal draws from AES-CTR uniforms (Box–Muller; 53-bit uniforms in (0, 1]).

    >>> x = gaussian(20000, Prg(b"g" * 16))
    >>> abs(float(x.mean())) < 0.05, abs(float(x.std()) - 1) < 0.05
    (True, True)
    """
    m = (n + 1) // 2
    u = (prg.uint64((2, m)) >> np.uint64(11)).astype(np.float64)
    u1, u2 = (u[0] + 1.0) / 2.0 ** 53, u[1] / 2.0 ** 53  # u1 in (0, 1]: log is finite
    r = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]


def privatise(delta: np.ndarray, clip_norm: float, noise_std: float, prg: Prg | None = None) -> np.ndarray:
    """Δ scaled to L2 norm at most `clip_norm`, plus N(0, noise_std²) per coordinate.

    >>> np.linalg.norm(privatise(np.array([3.0, 4.0]), 1.0, 0.0)).round(6)
    np.float64(1.0)
    """
    norm = float(np.linalg.norm(delta))
    out = delta * min(1.0, clip_norm / norm) if norm > 0 else delta.copy()
    if noise_std > 0:
        out = out + noise_std * gaussian(delta.size, prg if prg is not None else Prg()).reshape(delta.shape)
    return np.asarray(out, dtype=np.float64)


class DPFedAvg(Strategy):
    """Wrap a linear strategy (FedAvg, FedAvgM, FedAdam, ...) with clipping and distributed noise.

    The clients read `dp_clip_norm` and `dp_noise_std` from their fit configuration (the
    `FederatedTrainer` applies them); the inner strategy's sampling, server step and
    evaluation are unchanged, with uniform client weights (DP needs bounded contributions).

    >>> from jointml.ml.fl import FedAvgM
    >>> DPFedAvg(FedAvgM(), clip_norm=1.0, noise_multiplier=0.8).accounting()["rounds"]
    0
    """

    def __init__(self, inner: Strategy, *, clip_norm: float, noise_multiplier: float):
        if not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ParameterError(f"must be > 0, got {clip_norm!r}", field="clip_norm")
        if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
            raise ParameterError(f"must be >= 0, got {noise_multiplier!r}", field="noise_multiplier")
        self.inner, self.clip_norm, self.noise_multiplier = inner, float(clip_norm), float(noise_multiplier)
        self.rounds_: list[dict[str, Any]] = []

    def initialize(self) -> Parameters | None:
        return self.inner.initialize()

    def configure_fit(self, rnd: int, parameters: Parameters, clients: Sequence[str]) -> dict[str, FitIns]:
        ins = self.inner.configure_fit(rnd, parameters, clients)
        std = self.noise_multiplier * self.clip_norm / math.sqrt(max(1, len(ins)))
        self.rounds_.append({"round": rnd, "sampled": len(ins), "available": len(clients)})
        return {c: FitIns(i.parameters, {**i.config, "dp_clip_norm": self.clip_norm, "dp_noise_std": std})
                for c, i in ins.items()}

    def aggregate_fit(self, rnd: int, parameters: Parameters, results: dict[str, FitRes],
                      failures: Sequence[str]) -> tuple[Parameters, dict[str, Any]]:
        raise ParameterError("DPFedAvg adds its noise at the clients: run it with secure aggregation "
                             "(secure=True)", field="secure")

    def aggregate_sum(self, rnd: int, parameters: Parameters, ws: WeightedSum) -> Parameters:
        if self.rounds_ and self.rounds_[-1]["round"] == rnd:
            self.rounds_[-1]["survivors"] = ws.count
        return self.inner.aggregate_sum(rnd, parameters, ws)

    def configure_evaluate(self, rnd: int, parameters: Parameters, clients: Sequence[str]) -> dict[str, EvaluateIns]:
        return self.inner.configure_evaluate(rnd, parameters, clients)

    def aggregate_evaluate(self, rnd: int, results: dict[str, EvaluateRes],
                           failures: Sequence[str]) -> tuple[float | None, dict[str, Any]]:
        return self.inner.aggregate_evaluate(rnd, results, failures)

    def evaluate(self, rnd: int, parameters: Parameters) -> tuple[float, dict[str, Any]] | None:
        return self.inner.evaluate(rnd, parameters)

    def epsilon(self, delta: float, kind: str = "rdp") -> float:
        """The client-level ε at `delta` of the rounds run so far: each round is the Gaussian
        mechanism with noise multiplier z·√(s/m) (s of m sampled clients survived: dropouts
        lower the noise) on a sample of rate q = m / available, composed by `jointml.dp`'s
        accountant (dp-accounting's RDP by default, or PLD). Sampling is accounted as Poisson
        subsampling at rate q (the usual DP-FedAvg practice, McMahan et al. 2018; fixed-size
        sampling without replacement is close but not identical); q = 1 is plain composition.

        >>> from jointml.ml.fl import FedAvg
        >>> s = DPFedAvg(FedAvg(), clip_norm=1.0, noise_multiplier=1.1)
        >>> for r in range(1, 11):
        ...     _ = s.configure_fit(r, [np.zeros(1)], [f"c{i}" for i in range(10)])
        >>> 0 < s.epsilon(1e-5) < 20
        True
        """
        from ...dp.accounting import Accountant, PrivacyEvent

        acc = Accountant(kind)
        for r in self.rounds_:
            if not r["sampled"] or not r["available"]:
                continue
            z = self.noise_multiplier * math.sqrt(r.get("survivors", r["sampled"]) / r["sampled"])
            if z <= 0:
                return math.inf
            q = r["sampled"] / r["available"]
            acc.add(PrivacyEvent("gaussian", noise_multiplier=z) if q >= 1 else
                    PrivacyEvent("poisson_gaussian", noise_multiplier=z, sampling_rate=q, steps=1))
        return acc.epsilon(delta)

    def accounting(self) -> dict[str, Any]:
        """What an accountant for the subsampled Gaussian mechanism needs: σ, q per round, T.

        >>> from jointml.ml.fl import FedAvg
        >>> DPFedAvg(FedAvg(), clip_norm=1.0, noise_multiplier=1.1).accounting()["noise_multiplier"]
        1.1
        """
        q = [r["sampled"] / r["available"] for r in self.rounds_ if r["available"]]
        worst = min((r.get("survivors", r["sampled"]) / r["sampled"] for r in self.rounds_ if r["sampled"]), default=1.0)
        return {"noise_multiplier": self.noise_multiplier, "sampling_rates": q, "rounds": len(self.rounds_),
                "effective_noise_multiplier_worst_round": self.noise_multiplier * math.sqrt(worst)}

