"""DP mechanisms: Laplace, Gaussian, geometric, discrete Gaussian, exponential.

Each mechanism returns a :class:`Release`: the noisy value, the `PrivacyEvent` it spent
(for the accountant and the budget ledger) and its epsilon at the stated delta.

**Floating-point safety (how the Mironov attack is avoided).** No mechanism adds a
floating-point noise sample to a float. Real-valued mechanisms (`laplace`, `gaussian`)
work on a fixed grid ``g * Z`` where ``g`` is a power of two chosen from the public
parameters only (sensitivity, epsilon, delta, dimension), never from the value:

1. the value is snapped to the grid, ``k = round(x / g)`` (exact: scaling by a power of
   two is exact in binary floating point); snapping moves a neighbouring input by at most
   one grid step per coordinate, so the integer sensitivity used below is
   ``ceil(Delta / g) + d`` (L1) or ``Delta / g + sqrt(d)`` (L2);
2. integer noise is drawn exactly (discrete Laplace / discrete Gaussian, :mod:`.sampling`)
   and added in int64;
3. the output is ``(k + z) * g``, exactly representable: every output lies on the same
   grid, whatever the input, so its bit pattern carries nothing beyond the value.

The grid is fine (about 2^-10 of the noise scale): the extra noise from snapping is under
0.1 % for a scalar. `geometric` and `discrete_gaussian_int` are the integer mechanisms
(counts, ring values). `exponential` selects a candidate with probability proportional to
``exp(epsilon * score / (2 Delta))`` by exact rejection: a uniform candidate is accepted
with Bernoulli(exp(-epsilon (max - score) / (2 Delta))) on the exact rationals of the
float scores.

**Library choice.** OpenDP (0.16) samples the same exact CKS laws, but as a 47 MB wheel
with its own Rust randomness (not `jointml.core.prg`, so noise shares cannot be derived
from our seeds or audited in one place) and an API gated behind ``enable_features
("contrib")`` for most of what is used here. The CKS algorithms are ~150 lines on integers
(:mod:`.sampling`) and are tested against their exact laws; we use them, and keep
`dp-accounting` (Google) for the accounting, where a reference implementation matters most.

Adversary model: a mechanism runs at one party, on its plaintext; the recipients of a
release learn the noisy value and the public parameters (grid, noise scale, epsilon). The
privacy guarantee is record-level with respect to the sensitivity the caller states: the
caller must bound each record's contribution (clip) so that the stated sensitivity holds.

>>> r = laplace(3.0, sensitivity=1.0, epsilon=1.0)
>>> r.epsilon, r.mechanism, float(r.value / r.grid).is_integer()
(1.0, 'laplace', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..core.errors import DataError, ParameterError
from .accounting import PrivacyEvent, epsilon_of, rho_for
from .sampling import (
    RandomBits,
    bernoulli_exp,
    bernoulli_exp_exact,
    discrete_gaussian,
    discrete_gaussian_exact,
    discrete_laplace,
    discrete_laplace_exact,
    uniform_below,
)

__all__ = [
    "Release",
    "laplace",
    "gaussian",
    "gaussian_rho",
    "geometric",
    "discrete_gaussian_int",
    "exponential",
    "randomized_response",
    "laplace_grid",
    "gaussian_sigma",
]

_GRID_BITS = 10  # the noise scale spans ~2^10 grid steps


@dataclass(frozen=True)
class Release:
    """The output of a DP mechanism.

    `value` is the noisy value (ndarray, or a scalar for scalar input, or an index for
    `exponential`); `event` what it spent; `epsilon` its epsilon at `delta`; `grid` the
    output grid (None for integer mechanisms); `noise_scale` the Laplace scale or the
    Gaussian sigma in the value's units.
    """

    value: Any
    mechanism: str
    event: PrivacyEvent
    epsilon: float
    delta: float
    grid: float | None
    noise_scale: float


def _as_array(value: Any) -> tuple[npt.NDArray[np.float64], bool]:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise DataError("a DP mechanism's input has NaN or infinite values", field="value")
    return arr, arr.ndim == 0


def _pow2_at_most(x: float) -> float:
    return math.ldexp(1.0, math.floor(math.log2(x)))


def _check_positive(**kw: float) -> None:
    for name, v in kw.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ParameterError(f"{name} must be a finite number > 0, got {v!r}", field=name)


def _src(src: RandomBits | None) -> RandomBits:
    return RandomBits() if src is None else src


def _snap(arr: npt.NDArray[np.float64], g: float) -> npt.NDArray[np.int64]:
    k = np.rint(arr / g)
    if k.size and float(np.abs(k).max()) >= 2.0**52:
        raise DataError(f"value too large for the DP output grid {g!r} (|value| / grid >= 2^52)", field="value")
    return k.astype(np.int64)


def _dgauss(src: RandomBits, s2: Fraction, size: int) -> npt.NDArray[np.int64]:
    """Discrete Gaussian draws: vectorised for integer sigma^2 < 2^26, else the exact scalar sampler."""
    if s2.denominator == 1 and s2 < 1 << 26:
        return discrete_gaussian(src, int(s2), size)
    return np.array([discrete_gaussian_exact(src, s2) for _ in range(size)], dtype=np.int64)


def laplace_grid(sensitivity: float, epsilon: float, dim: int = 1) -> tuple[float, int, int]:
    """(grid g, integer L1 sensitivity, integer scale t) of `laplace`: public parameters only.

    >>> laplace_grid(1.0, 1.0)
    (0.0009765625, 1025, 1025)
    """
    _check_positive(sensitivity=sensitivity, epsilon=epsilon)
    g = _pow2_at_most(sensitivity / (epsilon * max(1, dim)) / 2**_GRID_BITS)
    g = min(g, _pow2_at_most(sensitivity) / 2**_GRID_BITS)
    d_int = math.ceil(Fraction(sensitivity) / Fraction(g)) + max(1, dim)
    t = math.ceil(Fraction(d_int) / Fraction(epsilon))
    return g, d_int, t


def laplace(value: Any, sensitivity: float, epsilon: float, *, dim: int | None = None,
            src: RandomBits | None = None) -> Release:
    """epsilon-DP release of a real value or vector of L1 `sensitivity` (discrete Laplace on a grid).

    `dim`: the number of coordinates one record can change (default: all of them).

    >>> r = laplace(np.array([10.0, 20.0]), sensitivity=2.0, epsilon=0.5)
    >>> r.value.shape, round(r.noise_scale, 2), r.epsilon
    ((2,), 4.01, 0.5)
    """
    arr, scalar = _as_array(value)
    g, d_int, t = laplace_grid(sensitivity, epsilon, max(1, arr.size if dim is None else int(dim)))
    z = discrete_laplace(_src(src), t, arr.size).reshape(arr.shape)
    out = (_snap(arr, g) + z).astype(np.float64) * g
    event = PrivacyEvent("discrete_laplace", parameter=1.0 / t, sensitivity=d_int)
    eps = d_int / t
    return Release(float(out) if scalar else out, "laplace", event, eps, 0.0, g, t * g)


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """sigma of the (discrete) Gaussian mechanism for (epsilon, delta) at L2 `sensitivity` (zCDP).

    >>> round(gaussian_sigma(1.0, 1.0, 1e-5), 2)
    4.05
    """
    _check_positive(sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    return sensitivity / math.sqrt(2 * rho_for(epsilon, delta))


def gaussian(value: Any, sensitivity: float, epsilon: float, delta: float, *, dim: int | None = None,
             src: RandomBits | None = None) -> Release:
    """(epsilon, delta)-DP release of a real value or vector of L2 `sensitivity` (discrete Gaussian on a grid).

    `dim` is the number of coordinates one record can change (default: all of them); it
    bounds the snapping error that enters the sensitivity.

    >>> r = gaussian(np.zeros(3), sensitivity=1.0, epsilon=1.0, delta=1e-5)
    >>> r.value.shape, r.epsilon <= 1.0, r.delta
    ((3,), True, 1e-05)
    """
    rho = rho_for(epsilon, delta)
    r = gaussian_rho(value, sensitivity, rho, dim=dim, src=src)
    return Release(r.value, "gaussian", r.event, epsilon_of(r.event, delta), delta, r.grid, r.noise_scale)


def gaussian_rho(value: Any, sensitivity: float, rho: float, *, dim: int | None = None,
                 src: RandomBits | None = None) -> Release:
    """rho-zCDP release of a real value or array of L2 `sensitivity` (discrete Gaussian on a grid).

    For splitting one budget between several releases: zCDP rhos add. `epsilon` of the
    returned Release is NaN (no delta chosen yet): compose its `event` with an Accountant.

    >>> r = gaussian_rho(np.zeros((4, 2)), sensitivity=1.0, rho=0.5, dim=2)
    >>> r.value.shape, r.event.params["rho"] <= 0.5
    ((4, 2), True)
    """
    _check_positive(sensitivity=sensitivity, rho=rho)
    arr, scalar = _as_array(value)
    d = max(1, arr.size if dim is None else int(dim))
    sigma = sensitivity / math.sqrt(2 * rho)
    # fine enough that snapping (<= sqrt(d) grid steps in L2) adds at most ~6 % to sigma
    g = _pow2_at_most(min(sigma / 2**8, sensitivity / (16 * math.sqrt(d))))
    d_int = sensitivity / g + math.sqrt(d)
    p = math.ceil((d_int / math.sqrt(2 * rho)) ** 2)  # sigma^2 in grid units, rounded up
    z = _dgauss(_src(src), Fraction(p), arr.size).reshape(arr.shape)
    out = (_snap(arr, g) + z).astype(np.float64) * g
    event = PrivacyEvent("zcdp", rho=d_int**2 / (2 * p))
    return Release(float(out) if scalar else out, "gaussian", event, math.nan, math.nan, g, math.sqrt(p) * g)


def geometric(value: Any, sensitivity: int, epsilon: float, *, src: RandomBits | None = None) -> Release:
    """epsilon-DP release of integer values (counts, ring integers) with integer L1 `sensitivity`.

    The two-sided geometric (discrete Laplace) mechanism: z ~ P(z) proportional to
    exp(-epsilon abs(z) / sensitivity), with the scale rounded up to a multiple of 2^-10.

    >>> r = geometric(np.array([5, 7]), sensitivity=1, epsilon=1.0)
    >>> r.value.dtype, r.epsilon <= 1.0
    (dtype('int64'), True)
    """
    _check_positive(sensitivity=sensitivity, epsilon=epsilon)
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise DataError(f"geometric mechanism needs integer values, got dtype {arr.dtype}", field="value")
    scale = Fraction(math.ceil(Fraction(int(sensitivity)) / Fraction(epsilon) * 1024), 1024)
    s = _src(src)
    if scale.denominator == 1 and scale < 1 << 40:
        z = discrete_laplace(s, int(scale), arr.size).reshape(arr.shape)
    else:
        z = np.array([discrete_laplace_exact(s, scale) for _ in range(arr.size)], dtype=np.int64).reshape(arr.shape)
    event = PrivacyEvent("discrete_laplace", parameter=float(1 / scale), sensitivity=int(sensitivity))
    out = arr.astype(np.int64) + z
    return Release(int(out) if arr.ndim == 0 else out, "geometric", event, float(int(sensitivity) / scale), 0.0, None,
                   float(scale))


def discrete_gaussian_int(value: Any, sensitivity: float, epsilon: float, delta: float, *,
                          src: RandomBits | None = None) -> Release:
    """(epsilon, delta)-DP release of integer values with L2 `sensitivity`: discrete Gaussian noise.

    >>> r = discrete_gaussian_int(np.array([100, 200]), sensitivity=1, epsilon=1.0, delta=1e-6)
    >>> r.value.dtype, r.epsilon <= 1.0
    (dtype('int64'), True)
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise DataError(f"discrete Gaussian mechanism needs integer values, got dtype {arr.dtype}", field="value")
    sigma = gaussian_sigma(float(sensitivity), epsilon, delta)
    s2 = Fraction(math.ceil(sigma * sigma * 1024), 1024)  # rounded up: more noise, never less
    z = _dgauss(_src(src), s2, arr.size).reshape(arr.shape)
    event = PrivacyEvent("zcdp", rho=float(sensitivity) ** 2 / (2 * float(s2)))
    out = arr.astype(np.int64) + z
    return Release(int(out) if arr.ndim == 0 else out, "discrete_gaussian", event, epsilon_of(event, delta), delta, None,
                   math.sqrt(float(s2)))


def exponential(scores: Sequence[float] | npt.NDArray[np.float64], sensitivity: float, epsilon: float, *,
                src: RandomBits | None = None) -> Release:
    """epsilon-DP selection of an index with probability proportional to exp(epsilon score / (2 sensitivity)).

    Exact: a uniform candidate is accepted with Bernoulli(exp(-epsilon (max - score) / (2
    sensitivity))) computed on the exact rationals of the float scores.

    >>> r = exponential([0.0, 0.0, 100.0], sensitivity=1.0, epsilon=1.0)
    >>> r.value, r.epsilon
    (2, 1.0)
    """
    _check_positive(sensitivity=sensitivity, epsilon=epsilon)
    u, _ = _as_array(scores)
    if u.ndim != 1 or u.size == 0:
        raise DataError("exponential mechanism needs a non-empty 1-d array of scores", field="scores")
    s = _src(src)
    top = Fraction(float(u.max()))
    factor = Fraction(epsilon) / (2 * Fraction(sensitivity))
    while True:
        i = s.below(u.size)
        if bernoulli_exp_exact(s, factor * (top - Fraction(float(u[i])))):
            return Release(int(i), "exponential", PrivacyEvent("pure", epsilon=epsilon), float(epsilon), 0.0, None,
                           2 * sensitivity / epsilon)


def randomized_response(labels: Any, epsilon: float, classes: int = 2, *, src: RandomBits | None = None) -> Release:
    """epsilon-label-DP labels by k-ary randomized response: keep a label w.p. e^eps / (e^eps + k - 1).

    Exact: a uniform candidate class is accepted outright when it is the true label, else with
    Bernoulli(exp(-eps')) where eps' <= eps is epsilon rounded down to a multiple of 2^-20
    (never less private). Labels are integers in [0, classes). Everything trained on the
    output is post-processing: e.g. SecureBoost's label holder randomizes its labels once, and
    every gradient, split and tree the others see is epsilon-label-DP.

    >>> r = randomized_response(np.array([0, 1, 1, 0]), epsilon=50.0)
    >>> r.value.tolist(), r.epsilon
    ([0, 1, 1, 0], 50.0)
    """
    _check_positive(epsilon=epsilon)
    y = np.asarray(labels)
    if y.dtype.kind not in "iub" or (y.size and (int(y.min()) < 0 or int(y.max()) >= classes)) or classes < 2:
        raise DataError(f"randomized response needs integer labels in [0, {classes})", field="labels")
    s = _src(src)
    num, den = math.floor(epsilon * 2**20), 2**20
    flat = y.astype(np.int64).reshape(-1)
    out = np.empty_like(flat)
    todo = np.arange(flat.size)
    while todo.size:
        cand = uniform_below(s, np.full(todo.size, classes))
        ok = (cand == flat[todo]) | bernoulli_exp(s, np.full(todo.size, num), np.full(todo.size, den))
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    eps = num / den
    return Release(out.reshape(y.shape), "randomized_response", PrivacyEvent("pure", epsilon=eps), eps, 0.0, None,
                   float(classes - 1) / (math.exp(eps) + classes - 1))
