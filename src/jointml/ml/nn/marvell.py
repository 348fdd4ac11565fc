"""Marvell: optimised Gaussian perturbation of split learning's cut-layer gradients (binary labels).

Li, Sun, Yang, Wang, Wang, Xie and Wang, "Label leakage and protection in two-party split
learning", ICLR 2022. In a batch, the gradients the label holder sends a feature party
differ by class: positives and negatives have different means g1, g0 and spreads. The label
holder adds zero-mean Gaussian noise N(0, S1) to every positive row's gradient and
N(0, S0) to every negative row's, with the covariances chosen to minimise the symmetrised
KL divergence (sumKL) between the two perturbed class distributions, modelled as Gaussians
N(g_c, w_c I + S_c) (w_c: the class's average per-coordinate variance), under a power
budget p tr(S1) + (1 - p) tr(S0) <= P (p: the batch's fraction of positives). The optimum
has the form S_c = l1_c e e^T + l2_c (I - e e^T), e the unit vector along g1 - g0: noise
along the class difference, plus noise on the other directions for the class whose
gradients spread less (`solve`). The budget is set either directly, as a multiple of
|g1 - g0|^2 (`power=`), or as the smallest P whose optimum meets a sumKL bound (`sumkl=`,
`power_for_sumkl`). Under the Gaussian model, any test that tells a row's class from its
perturbed gradient errs on a balanced pair with probability >= 1/2 - sqrt(sumKL)/4
(Pinsker; the paper's Theorem 2); on real gradients the bound is a model, so the attack
AUCs are measured (`jointml bench nn`, tests/test_nn_split.py).

The perturbation is zero-mean, so the feature party's model still follows the true
gradient on average (no clipping bias, unlike per-row DP clipping); its cost is variance.

Adversary model: the feature party receiving the perturbed gradients is semi-honest and
knows this algorithm and its parameters, not the noise (drawn from `jointml.core.prg`,
AES-CTR seeded from the OS, at the label holder). What it learns: the perturbed
gradients; the noise scales follow from the batch's class statistics (hidden inside the
noise, not sent). Not a differential-privacy guarantee: the bound above holds for the
Gaussian model of one batch's gradients, and repeated epochs over the same rows add
evidence (the measured attacks run on the last epoch's view).

>>> from jointml.core.prg import Prg
>>> g = np.array([[1.0, 0.0], [1.1, 0.1], [-0.2, 0.0], [-0.25, 0.05]]); pos = np.array([True, True, False, False])
>>> noisy, kl = perturb(g, pos, sumkl=0.25, prg=Prg(b"m" * 16))
>>> noisy.shape, kl <= 0.25 + 1e-9
((4, 2), True)
"""

from __future__ import annotations

import math

import numpy as np

from ...core.errors import ParameterError
from ...core.prg import Prg

__all__ = ["sumkl_of", "solve", "power_for_sumkl", "perturb", "standard_normal"]


def standard_normal(prg: Prg, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal draws from AES-CTR uniforms (Box-Muller; 53-bit uniforms, log finite).

    >>> z = standard_normal(Prg(b"z" * 16), (20000,))
    >>> abs(float(z.mean())) < 0.05, abs(float(z.std()) - 1) < 0.05
    (True, True)
    """
    n = int(np.prod(shape))
    m = (n + 1) // 2
    u = (prg.uint64((2, m)) >> np.uint64(11)).astype(np.float64)
    u1, u2 = (u[0] + 1.0) / 2.0 ** 53, u[1] / 2.0 ** 53
    r = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n].reshape(shape)


def sumkl_of(l10: np.ndarray | float, l20: np.ndarray | float, l11: np.ndarray | float, l21: np.ndarray | float,
             u: float, v: float, d: int, g: float) -> np.ndarray:
    """sumKL between N(g0, (u I + S0)) and N(g1, (v I + S1)) with S_c = l1c e e^T + l2c (I - e e^T),
    |g1 - g0|^2 = g, in dimension d (vectorised over the l's; inf where a variance is 0).

    >>> float(sumkl_of(1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1, 0.0))   # equal noise, no difference: 0
    0.0
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        a0, a1 = np.asarray(l10) + u, np.asarray(l11) + v     # variances along e
        b0, b1 = np.asarray(l20) + u, np.asarray(l21) + v     # variances across e
        along = (a0 + g) / a1 + (a1 + g) / a0
        # equal spreads across e (both zero included: no difference there) cost nothing
        across = (d - 1) * np.where(b0 == b1, 2.0, b0 / b1 + b1 / b0) if d > 1 else 0.0
        out = 0.5 * (along + across) - d
    return np.where(np.isfinite(out), out, np.inf)


def _best_split(D: np.ndarray, t: np.ndarray, u: float, v: float, d: int, g: float, p: float,
                small_neg: bool) -> tuple[np.ndarray, ...]:
    """For each (remaining budget D, orthogonal noise t) the best split of D between l10 and
    l11 (a fine grid on l10; the objective is convex along it)."""
    s = np.linspace(0.0, 1.0, 257)[None, :]
    l10 = s * D[:, None] / (1.0 - p)
    l11 = np.maximum(D[:, None] - (1.0 - p) * l10, 0.0) / p   # >= 0 also after rounding
    l20, l21 = (t[:, None], 0.0) if small_neg else (0.0, t[:, None])
    kl = sumkl_of(l10, l20, l11, l21, u, v, d, g)
    j = np.argmin(kl, axis=1)
    r = np.arange(len(D))
    return l10[r, j], l11[r, j], kl[r, j]


def solve(u: float, v: float, d: int, g: float, p: float, power: float) -> tuple[float, float, float, float, float]:
    """Marvell's optimisation: (l10, l20, l11, l21, sumKL) minimising sumKL under the power
    budget p (l11 + (d-1) l21) + (1-p) (l10 + (d-1) l20) <= power. u, v: the negatives' and
    positives' average per-coordinate variance; g = |g1 - g0|^2; p in (0, 1).
    Orthogonal noise goes to the class with the smaller spread only, and never beyond the
    other's (equal spreads make that term vanish); a grid search over it and over the split
    along e, refined once around the best point.

    >>> l10, l20, l11, l21, kl = solve(0.0, 0.0, 2, 1.0, 0.5, 4.0)
    >>> round(l10, 2), round(l11, 2), l20, l21, round(kl, 3)
    (4.0, 4.0, 0.0, 0.0, 0.25)
    """
    if not (0.0 < p < 1.0) or power < 0 or d < 1:
        raise ParameterError(f"Marvell needs 0 < p < 1, power >= 0 and d >= 1 (got p={p}, power={power}, d={d})")
    small_neg = u <= v
    w = (1.0 - p) if small_neg else p
    tmax = 0.0 if d == 1 else min(abs(v - u), power / (w * (d - 1)))
    lo, hi = 0.0, tmax
    best = (0.0, 0.0, 0.0, 0.0, math.inf)
    for _ in range(2):                                    # coarse, then refined around the best t
        t = np.linspace(lo, hi, 33)
        D = np.maximum(power - w * (d - 1) * t, 0.0)
        l10, l11, kl = _best_split(D, t, u, v, d, g, p, small_neg)
        i = int(np.argmin(kl))
        if kl[i] < best[4]:
            ti = float(t[i])
            best = (float(l10[i]), ti if small_neg else 0.0, float(l11[i]), 0.0 if small_neg else ti, float(kl[i]))
        step = (hi - lo) / 32
        lo, hi = max(0.0, float(t[i]) - step), min(tmax, float(t[i]) + step)
    return best


def power_for_sumkl(u: float, v: float, d: int, g: float, p: float, bound: float) -> float:
    """The smallest power budget (to 1%) whose optimum has sumKL <= `bound` (bisection on a
    log scale; sumKL falls as the budget grows).

    >>> P = power_for_sumkl(0.0, 0.0, 2, 1.0, 0.5, 0.25)
    >>> 3.9 < P < 4.1
    True
    """
    if bound <= 0:
        raise ParameterError(f"the sumKL bound must be > 0, got {bound}", field="marvell_sumkl")
    if solve(u, v, d, g, p, 0.0)[4] <= bound:
        return 0.0
    hi = max(g, u, v, 1e-30)
    while solve(u, v, d, g, p, hi)[4] > bound:
        hi *= 4.0
    lo = hi / 4.0
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if solve(u, v, d, g, p, mid)[4] <= bound else (mid, hi)
    return hi


def perturb(grads: np.ndarray, positive: np.ndarray, *, prg: Prg, sumkl: float | None = None,
            power: float | None = None) -> tuple[np.ndarray, float]:
    """One batch's gradients (rows) with Marvell's noise: `positive` marks the rows of the
    positive class; the budget is `power` x |g1 - g0|^2, or the least meeting `sumkl`.
    Returns the perturbed gradients and the optimum's sumKL (under the Gaussian model). A
    batch holding one class only gets isotropic noise of the batch's gradient power
    (there is no class difference in it to hide, but its rows must not stand out clean).

    >>> g = np.array([[2.0, 0.0], [-0.5, 0.0]] * 8); pos = np.array([True, False] * 8)
    >>> noisy, kl = perturb(g, pos, prg=Prg(b"p" * 16), power=4.0)
    >>> round(kl, 3), noisy.shape
    (0.25, (16, 2))
    """
    if (sumkl is None) == (power is None):
        raise ParameterError("Marvell takes exactly one of sumkl= (a bound) and power= (a budget)", field="marvell")
    G = np.asarray(grads, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    m, d = G.shape
    if pos.all() or not pos.any():
        scale = float(np.sqrt(np.mean(np.sum(G * G, axis=1)) / d))
        return G + scale * standard_normal(prg, (m, d)), 0.0
    g1, g0 = G[pos].mean(axis=0), G[~pos].mean(axis=0)
    v, u = float(G[pos].var(axis=0).mean()), float(G[~pos].var(axis=0).mean())
    diff = g1 - g0
    gsq = float(diff @ diff)
    p = float(pos.mean())
    P = float(power) * gsq if power is not None else power_for_sumkl(u, v, d, gsq, p, float(sumkl))  # type: ignore[arg-type]
    l10, l20, l11, l21, kl = solve(u, v, d, gsq, p, P)
    e = diff / math.sqrt(gsq) if gsq > 0 else np.eye(d)[0]
    z = standard_normal(prg, (m, d))
    z_along = z @ e
    z_across = z - np.outer(z_along, e)
    l1 = np.where(pos, l11, l10)[:, None]
    l2 = np.where(pos, l21, l20)[:, None]
    return G + np.sqrt(l1) * z_along[:, None] * e[None, :] + np.sqrt(l2) * z_across, float(kl)
