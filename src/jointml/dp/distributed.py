"""Distributed DP for secure aggregation: each client adds a share of discrete Gaussian noise.

For federated learning with secure aggregation (the server learns only the sum of the
clients' fixed-point encoded updates): each client adds independent discrete Gaussian noise
N_Z(0, sigma_c^2) to its integer-encoded update before it enters the aggregation, so the sum
carries the noise of every client and no one - neither the server nor any client - sees a
noiseless sum. The sum of n discrete Gaussians is not exactly a discrete Gaussian; its
guarantee is Theorem 1 of Kairouz, Liu, Steinke (ICML 2021, "The Distributed Discrete
Gaussian Mechanism for Federated Learning with Secure Aggregation"): with h honest clients
(whose noise the adversary does not know), the aggregate is (1/2) eps^2-zCDP with

    eps = min( sqrt(Delta^2 / (h sigma_c^2) + tau d / 2),  Delta / sqrt(h sigma_c^2) + tau sqrt(d) ),
    tau = 10 * sum_{k=1}^{h-1} exp(-2 pi^2 sigma_c^2 k / (k + 1)),

Delta the L2 sensitivity and d the dimension, in grid units. `ddg_calibrate` finds the
per-client sigma_c^2 for a target (epsilon, delta); `ddg_noise` draws a client's noise
exactly (:mod:`.sampling`); `ddg_event` is the accountant's event of the aggregate.

Trust, stated: the guarantee rests on the h honest clients' noise (`honest`, default every
client: choose it as the number of clients that do not collude with the server); dropouts
reduce h. Sensitivity in grid units includes the encoding's rounding (``Delta / g +
sqrt(d)`` for an update clipped to L2 norm Delta on the grid g = 2^-frac_bits).

>>> from jointml.dp import epsilon_of
>>> p, ev = ddg_calibrate(sensitivity=1.0, epsilon=2.0, delta=1e-5, clients=10, dim=100, frac_bits=10)
>>> z = ddg_noise(p, 100)                      # one client's noise, in grid units
>>> z.dtype, ev.kind, epsilon_of(ev, 1e-5) <= 2.0
(dtype('int64'), 'zcdp', True)
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import ParameterError
from .accounting import PrivacyEvent, rho_for
from .sampling import RandomBits, discrete_gaussian, discrete_gaussian_exact

__all__ = ["ddg_epsilon", "ddg_calibrate", "ddg_noise", "ddg_event"]


def ddg_epsilon(sensitivity: float, sigma2: float, honest: int, dim: int) -> float:
    """The zCDP epsilon (rho = eps^2 / 2) of the sum of `honest` clients' DG(sigma2) noise, in grid units.

    >>> round(ddg_epsilon(10.0, 100.0, 1, 1), 6)   # one client: the discrete Gaussian's Delta / sigma
    1.0
    """
    if honest < 1 or sigma2 <= 0 or sensitivity <= 0:
        raise ParameterError("ddg_epsilon needs honest >= 1, sigma2 > 0, sensitivity > 0", field="honest")
    # tau: exp underflows for large sigma; 1e-300 bounds each term from above (rigorous, negligible)
    tau = 10 * sum(max(math.exp(-2 * math.pi**2 * sigma2 * k / (k + 1)), 1e-300) for k in range(1, honest))
    hs = honest * sigma2
    return min(math.sqrt(sensitivity**2 / hs + tau * dim / 2), sensitivity / math.sqrt(hs) + tau * math.sqrt(dim))


def ddg_event(sensitivity: float, sigma2: float, honest: int, dim: int) -> PrivacyEvent:
    """The accountant's event of one aggregation round (zCDP)."""
    return PrivacyEvent("zcdp", rho=ddg_epsilon(sensitivity, sigma2, honest, dim) ** 2 / 2)


def ddg_calibrate(sensitivity: float, epsilon: float, delta: float, clients: int, dim: int, *, frac_bits: int = 16,
                  honest: int | None = None, rounds: int = 1) -> tuple[int, PrivacyEvent]:
    """(per-client sigma^2 in grid units, event of one round) for `rounds` rounds at (epsilon, delta).

    `sensitivity` is the L2 bound of one record's effect on the aggregate (real units), on the
    fixed-point grid 2^-frac_bits.
    """
    h = clients if honest is None else int(honest)
    if not 1 <= h <= clients or dim < 1 or rounds < 1:
        raise ParameterError("ddg_calibrate needs 1 <= honest <= clients, dim >= 1, rounds >= 1", field="honest")
    sens = sensitivity * 2.0**frac_bits + math.sqrt(dim)  # grid units, with the encoding's rounding
    rho = rho_for(epsilon, delta) / rounds
    # the discrete Gaussian's own sigma^2 for rho, spread over h honest clients, then grown until
    # the DDG bound (with its tau term) fits
    p = max(1, math.ceil(sens**2 / (2 * rho) / h))
    while ddg_epsilon(sens, p, h, dim) ** 2 / 2 > rho:
        p = math.ceil(p * 1.01) + 1
    return p, ddg_event(sens, p, h, dim)


def ddg_noise(sigma2: int, size: int, src: RandomBits | None = None) -> np.ndarray:
    """One client's noise: `size` exact draws of N_Z(0, sigma2), int64 (add to the encoded update)."""
    src = RandomBits() if src is None else src
    if sigma2 < 1 << 26:
        return discrete_gaussian(src, int(sigma2), size)
    return np.array([discrete_gaussian_exact(src, int(sigma2)) for _ in range(size)], dtype=np.int64)

