"""DP noise added under MPC: a secret-shared aggregate is opened only with noise in it.

`add_noise(x, ...)` returns ``x + sum_p z_p`` as a `SecretArray`, where each compute party
``p`` of the MPC device draws integer noise ``z_p`` **on its own** (exact discrete Laplace or
discrete Gaussian from its cryptographic PRG, on the fixed-point grid of ``x``) and adds
it in: to its own share under additive sharing (semi2k), by secret-sharing it under
replicated sharing (aby3). No party ever sees the noiseless aggregate, and no party knows
the total noise.

Trust, stated: each ``z_p`` alone is calibrated to the full (epsilon, delta), so the
guarantee holds against any coalition of all compute parties but one (each knows and can
subtract its own noise; the honest party's noise remains). This costs variance: n compute
parties add n times the noise of a trusted curator (2x for semi2k, 3x for aby3); the
semi2k dealer adds no noise (it could, but it is not assumed to stay away from the result).
Parties that receive the opened value learn it and the public noise parameters only.
Semi-honest parties are assumed (a deviating party could add no noise at all: the
guarantee then rests on the others' noise, which still suffices alone; a party could also
add too much, hurting utility, not privacy).

Sensitivity: stated by the caller for the *real* value of ``x``; on the fixed-point grid
``g = 2^-fxp`` each coordinate may also carry one grid step of encoding or truncation
error, so the integer sensitivity is ``ceil(Delta / g) + d`` (Laplace, L1) or
``Delta / g + sqrt(d)`` (Gaussian, L2), as in :mod:`.mechanisms`.

Cost: with additive sharing (semi2k) each compute party adds its noise to its own share:
no message at all. With replicated sharing (aby3), where each share component is held by
two parties, each compute party secret-shares its noise instead: one input round each.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     total = ctx.party("alice").run(lambda: np.array([1000.0])).to(mpc)
...     noisy = add_noise(total, sensitivity=1.0, epsilon=1.0, mechanism="laplace")
...     return noisy.value.reveal(), noisy.epsilon
>>> val, eps = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
>>> bool(abs(val[0] - 1000) < 40), eps
(True, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..core.errors import ParameterError
from ..mpc import SecretArray
from .accounting import PrivacyEvent, epsilon_of, rho_for
from .sampling import RandomBits, discrete_gaussian, discrete_gaussian_exact, discrete_laplace, discrete_laplace_exact

__all__ = ["NoisySecret", "add_noise", "integer_noise"]


@dataclass(frozen=True)
class NoisySecret:
    """A secret-shared value with DP noise in it, and what one party's noise guarantees."""

    value: SecretArray
    event: PrivacyEvent
    epsilon: float
    delta: float


def integer_noise(mechanism: str, sensitivity: float, epsilon: float, delta: float, size: int,
                  src: RandomBits | None = None, rho: float | None = None) -> tuple[np.ndarray, PrivacyEvent]:
    """Integer noise for an integer-valued query of the given (integer-unit) sensitivity.

    `mechanism` "laplace" (L1 `sensitivity`, pure epsilon) or "gaussian" (L2, (epsilon, delta),
    or directly `rho`-zCDP when `rho` is given: a share of a larger budget, e.g. one epoch).

    >>> z, ev = integer_noise("laplace", 3, 0.5, 0.0, 4)
    >>> z.dtype, ev.kind, ev.params["sensitivity"]
    (dtype('int64'), 'discrete_laplace', 3)
    """
    src = RandomBits() if src is None else src
    if not (sensitivity > 0 and (epsilon > 0 or rho is not None)):
        raise ParameterError("noise needs sensitivity > 0 and epsilon > 0", field="epsilon")
    if mechanism == "laplace":
        d_int = math.ceil(sensitivity)
        t = math.ceil(Fraction(d_int) / Fraction(epsilon))
        if t < 1 << 40:
            z = discrete_laplace(src, t, size)
        else:
            z = np.array([discrete_laplace_exact(src, t) for _ in range(size)], dtype=np.int64)
        return z, PrivacyEvent("discrete_laplace", parameter=1.0 / t, sensitivity=d_int)
    if mechanism == "gaussian":
        if rho is None:
            if not 0 < delta < 1:
                raise ParameterError("the Gaussian mechanism needs 0 < delta < 1", field="delta")
            rho = rho_for(epsilon, delta)
        elif not rho > 0:
            raise ParameterError(f"rho must be > 0, got {rho}", field="rho")
        p = math.ceil(sensitivity**2 / (2 * rho))  # sigma^2, rounded up to an integer
        if p < 1 << 26:
            z = discrete_gaussian(src, p, size)
        else:
            z = np.array([discrete_gaussian_exact(src, p) for _ in range(size)], dtype=np.int64)
        return z, PrivacyEvent("zcdp", rho=sensitivity**2 / (2 * p))
    raise ParameterError(f"unknown noise mechanism '{mechanism}' (laplace or gaussian)", field="mechanism")


def add_noise(x: SecretArray, sensitivity: float, epsilon: float, delta: float = 0.0, *,
              mechanism: str = "laplace", dim: int | None = None, rho: float | None = None) -> NoisySecret:
    """`x` plus every compute party's own DP noise, still secret-shared (see the module docstring).

    `dim`: the number of coordinates one record can change (default: all of `x`); `rho`: a
    zCDP budget for the Gaussian instead of (epsilon, delta) (then `epsilon` of the result is
    computed at `delta` when 0 < delta < 1, else NaN).
    """
    dev = x.device
    ctx = dev.ctx
    d = max(1, x.size if dim is None else int(dim))
    grid = 2.0 ** -x.fxp
    sens = sensitivity / grid + (d if mechanism == "laplace" else math.sqrt(d))
    if mechanism == "laplace":
        sens = float(math.ceil(sens))
    event = integer_noise(mechanism, sens, epsilon, delta, 0, rho=rho)[1]  # the public calibration, same everywhere

    def draw() -> np.ndarray:
        return integer_noise(mechanism, sens, epsilon, delta, x.size, rho=rho)[0].reshape(x.shape)

    if not dev.proto.share_order_matters:
        # additive sharing: a share is one summand, so each compute party adds its noise to
        # its own share - no message, no round (the value gains the sum of the noises)
        arrays = x.export_share()
        if arrays:
            arrays = [arrays[0] + draw().astype(np.int64).view(np.uint64)] + arrays[1:]  # wraps mod 2^64
        return _result(dev.import_share(arrays, x.shape, x.fxp), event, delta, rho)
    out = x
    for p in dev.parties:  # replicated sharing: each party secret-shares its noise (one input round each)
        z = ctx.party(p).run(draw).to(dev, fxp=False)  # integer noise: shared as ring integers
        # the ring integer k stands for k * 2^-fxp: reinterpret the shares at x's scale (no copy)
        out = out + SecretArray(dev, z.share, z.shape, x.fxp)
    return _result(out, event, delta, rho)


def _result(out: SecretArray, event: PrivacyEvent, delta: float, rho: float | None) -> NoisySecret:
    eps = epsilon_of(event, delta) if (rho is None or 0 < delta < 1) else math.nan
    return NoisySecret(out, event, eps, delta)
