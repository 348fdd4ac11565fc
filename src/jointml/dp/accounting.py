"""Privacy accounting: what a sequence of DP releases costs, via Google's `dp-accounting`.

Every mechanism of :mod:`jointml.dp.mechanisms` returns a `Release` that carries a
`PrivacyEvent`: a small, JSON-serialisable description of the noise it added (kind and
parameters). An :class:`Accountant` composes the events of a job and reports
``epsilon(delta)``:

* ``kind="pld"``: the privacy-loss-distribution accountant (tight; Laplace, discrete
  Laplace, Gaussian and Poisson-subsampled Gaussian events);
* ``kind="rdp"``: the Renyi accountant (every event; the discrete Gaussian enters through
  its exact zCDP bound rho = Delta^2 / (2 sigma^2) of Canonne-Kamath-Steinke, a pure
  epsilon-DP release through epsilon^2/2-zCDP (Bun-Steinke), both rigorous upper bounds);
* ``kind="auto"`` (default): PLD when it supports every event of the job, else RDP.

`dp-accounting` is an optional dependency (``pip install 'jointml[dp]'``), imported when an
epsilon is computed. Accounting is plaintext on public parameters: it reveals nothing
about data (noise scales, sampling rates and step counts are public).

>>> acc = Accountant()
>>> acc.add(PrivacyEvent("discrete_laplace", parameter=0.5, sensitivity=1))
>>> round(acc.epsilon(0.0), 3)
0.5
>>> acc.add(PrivacyEvent("zcdp", rho=0.05))
>>> acc.used_kind(), bool(acc.epsilon(1e-5) > 0.5)
('rdp', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ParameterError

__all__ = ["PrivacyEvent", "Accountant", "rho_for", "epsilon_of"]

_PLD_KINDS = {"discrete_laplace", "laplace", "gaussian", "poisson_gaussian"}
_KINDS = _PLD_KINDS | {"zcdp", "pure"}


@dataclass(frozen=True)
class PrivacyEvent:
    """One DP release, described by its noise: `kind` and its public parameters.

    | kind | parameters | meaning |
    | --- | --- | --- |
    | discrete_laplace | parameter a, sensitivity (int) | P(z) ~ exp(-a abs(z)), integer shift |
    | laplace | noise_multiplier | scale / L1 sensitivity |
    | gaussian | noise_multiplier | sigma / L2 sensitivity |
    | poisson_gaussian | sampling_rate, noise_multiplier, steps | DP-SGD |
    | zcdp | rho | e.g. the discrete Gaussian: rho = Delta^2 / (2 sigma^2) |
    | pure | epsilon | any epsilon-DP release (exponential mechanism) |

    >>> PrivacyEvent("zcdp", rho=0.5).to_json()
    {'kind': 'zcdp', 'rho': 0.5}
    """

    kind: str
    params: dict[str, float] = field(default_factory=dict)

    def __init__(self, kind: str, **params: float):
        if kind not in _KINDS:
            raise ParameterError(f"unknown privacy event kind '{kind}' (known: {sorted(_KINDS)})", field="kind")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", {k: float(v) if not isinstance(v, int) else v for k, v in params.items()})

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (stored in the ledger)."""
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PrivacyEvent:
        """Inverse of `to_json`.

        >>> PrivacyEvent.from_json({"kind": "pure", "epsilon": 1.0}).params
        {'epsilon': 1.0}
        """
        rest = {k: v for k, v in obj.items() if k != "kind"}
        return cls(str(obj.get("kind")), **rest)

    def dp_event(self, rdp: bool) -> Any:
        """The `dp_accounting` event (for the RDP accountant when `rdp`)."""
        from dp_accounting import dp_event as e

        p = self.params
        if self.kind == "discrete_laplace":
            if rdp:  # pure (a * sensitivity)-DP -> zCDP (RDP has no discrete Laplace event)
                return e.ZCDpEvent((p["parameter"] * p["sensitivity"]) ** 2 / 2)
            return e.DiscreteLaplaceDpEvent(p["parameter"], int(p["sensitivity"]))
        if self.kind == "laplace":
            return e.LaplaceDpEvent(p["noise_multiplier"])
        if self.kind == "gaussian":
            return e.GaussianDpEvent(p["noise_multiplier"])
        if self.kind == "poisson_gaussian":
            inner = e.PoissonSampledDpEvent(p["sampling_rate"], e.GaussianDpEvent(p["noise_multiplier"]))
            return e.SelfComposedDpEvent(inner, int(p["steps"]))
        if self.kind == "zcdp":
            return e.ZCDpEvent(p["rho"])
        return e.ZCDpEvent(p["epsilon"] ** 2 / 2)  # pure


class Accountant:
    """Composes the privacy events of a job; `epsilon(delta)` of the whole.

    >>> acc = Accountant("pld")
    >>> for _ in range(3):
    ...     acc.add(PrivacyEvent("discrete_laplace", parameter=0.25, sensitivity=1))
    >>> round(acc.epsilon(0.0), 2)   # three 0.25-DP releases compose to 0.75
    0.75
    """

    def __init__(self, kind: str = "auto"):
        if kind not in ("auto", "rdp", "pld"):
            raise ParameterError(f"accountant kind must be 'auto', 'rdp' or 'pld', got '{kind}'", field="kind")
        self.kind = kind
        self.events: list[tuple[PrivacyEvent, int]] = []

    def add(self, event: PrivacyEvent, count: int = 1) -> None:
        """Record `count` repetitions of `event`."""
        if count < 1:
            raise ParameterError("event count must be >= 1", field="count")
        if self.kind == "pld" and event.kind not in _PLD_KINDS:
            raise ParameterError(f"the PLD accountant does not support '{event.kind}' events: use kind='rdp'", field="kind")
        self.events.append((event, int(count)))

    def used_kind(self) -> str:
        """The accountant that `epsilon` uses: 'pld' or 'rdp'."""
        if self.kind != "auto":
            return self.kind
        return "pld" if all(e.kind in _PLD_KINDS for e, _ in self.events) else "rdp"

    def epsilon(self, delta: float) -> float:
        """epsilon of the composition at `delta` (0.0 for an empty job)."""
        if not 0 <= delta < 1:
            raise ParameterError(f"delta must be in [0, 1), got {delta}", field="delta")
        if not self.events:
            return 0.0
        use_rdp = self.used_kind() == "rdp"
        if delta == 0 and all(e.kind in ("pure", "discrete_laplace") for e, _ in self.events):
            return sum(_pure_epsilon(e) * n for e, n in self.events)  # pure DP composes by addition
        from dp_accounting import pld as pld_mod
        from dp_accounting import rdp as rdp_mod

        acc = rdp_mod.RdpAccountant() if use_rdp else pld_mod.PLDAccountant()
        for ev, n in self.events:
            acc.compose(ev.dp_event(use_rdp), n)
        return float(acc.get_epsilon(delta))


def _pure_epsilon(ev: PrivacyEvent) -> float:
    p = ev.params
    return float(p["epsilon"]) if ev.kind == "pure" else float(p["parameter"] * p["sensitivity"])


def epsilon_of(event: PrivacyEvent, delta: float, kind: str = "auto") -> float:
    """epsilon(delta) of one release.

    >>> round(epsilon_of(PrivacyEvent("pure", epsilon=0.3), 0.0), 6)
    0.3
    """
    acc = Accountant(kind)
    acc.add(event)
    return acc.epsilon(delta)


def rho_for(epsilon: float, delta: float) -> float:
    """The largest zCDP rho whose RDP conversion gives at most `epsilon` at `delta` (bisection).

    Calibrates the discrete Gaussian: sigma = Delta / sqrt(2 rho).

    >>> r = rho_for(1.0, 1e-5)
    >>> bool(0.01 < r < 0.1), epsilon_of(PrivacyEvent("zcdp", rho=r), 1e-5) <= 1.0
    (True, True)
    """
    if epsilon <= 0 or not 0 < delta < 1:
        raise ParameterError("rho_for needs epsilon > 0 and delta in (0, 1)", field="epsilon")
    lo, hi = 0.0, max(1.0, epsilon)
    while epsilon_of(PrivacyEvent("zcdp", rho=hi), delta, "rdp") < epsilon:
        hi *= 2
    for _ in range(50):
        mid = (lo + hi) / 2
        if epsilon_of(PrivacyEvent("zcdp", rho=mid), delta, "rdp") <= epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * hi:
            break
    return lo if lo > 0 else math.nextafter(0.0, 1.0)
