"""DP mechanisms: the exact samplers follow their laws, the releases are floating-point safe,
and the accountant's figures equal dp-accounting's reference values."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from jointml.core.errors import DataError, ParameterError
from jointml.dp import (
    Accountant,
    PrivacyEvent,
    discrete_gaussian_int,
    exponential,
    gaussian,
    geometric,
    laplace,
    randomized_response,
)
from jointml.dp.sampling import (
    RandomBits,
    bernoulli_exp,
    discrete_gaussian,
    discrete_gaussian_exact,
    discrete_laplace,
    discrete_laplace_exact,
    uniform_below,
)

pytest.importorskip("dp_accounting")

# Kolmogorov-Smirnov critical value at alpha = 1e-4 (conservative for discrete laws): the
# tests fail by chance about once in 10,000 runs
KS_C = math.sqrt(-math.log(1e-4 / 2) / 2)


def _ks_integer(samples: np.ndarray, pmf) -> float:
    """sup |F_n - F| over the integers for a law given by pmf(k) on [lo, hi]."""
    lo, hi = int(samples.min()) - 1, int(samples.max()) + 1
    ks = np.arange(lo, hi + 1)
    cdf = np.cumsum(pmf(ks))
    emp = np.searchsorted(np.sort(samples), ks, side="right") / samples.size
    return float(np.abs(emp - cdf).max())


def _dlap_pmf(t: float):
    a = math.exp(-1 / t)
    return lambda k: (1 - a) / (1 + a) * np.exp(-np.abs(k) / t)


def _dgauss_pmf(s2: float):
    span = np.arange(-int(60 * math.sqrt(s2)) - 60, int(60 * math.sqrt(s2)) + 61)
    norm = np.exp(-(span.astype(float) ** 2) / (2 * s2)).sum()
    return lambda k: np.exp(-(k.astype(float) ** 2) / (2 * s2)) / norm


def test_uniform_below_covers_every_residue_evenly():
    src = RandomBits(b"u" * 16)
    x = uniform_below(src, np.full(60_000, 6))
    counts = np.bincount(x, minlength=6)
    assert counts.size == 6 and x.min() == 0
    # chi-square with 5 dof: 35 is beyond the 1e-6 quantile
    assert float(((counts - 10_000) ** 2 / 10_000).sum()) < 35


@pytest.mark.parametrize("num,den", [(0, 1), (1, 3), (1, 1), (7, 2)])
def test_bernoulli_exp_has_the_exact_mean(num, den):
    b = bernoulli_exp(RandomBits(), np.full(40_000, num), np.full(40_000, den))
    p = math.exp(-num / den)
    assert abs(b.mean() - p) < 5 * math.sqrt(p * (1 - p) / b.size) + 1e-12


@pytest.mark.parametrize("t", [1, 3, 40])
def test_discrete_laplace_follows_its_law(t):
    z = discrete_laplace(RandomBits(), t, 20_000)
    assert z.dtype == np.int64
    assert _ks_integer(z, _dlap_pmf(t)) < KS_C / math.sqrt(z.size)
    a = math.exp(-1 / t)
    var = 2 * a / (1 - a) ** 2
    assert abs(z.var() / var - 1) < 0.08


@pytest.mark.parametrize("s2", [1, 10, 300**2])
def test_discrete_gaussian_follows_its_law(s2):
    z = discrete_gaussian(RandomBits(), s2, 20_000)
    assert _ks_integer(z, _dgauss_pmf(s2)) < KS_C / math.sqrt(z.size)
    assert abs(z.mean()) < 5 * math.sqrt(s2 / z.size)


def test_scalar_samplers_take_rational_parameters_and_follow_their_laws():
    src = RandomBits()
    z = np.array([discrete_gaussian_exact(src, Fraction(5, 2)) for _ in range(6000)])
    assert _ks_integer(z, _dgauss_pmf(2.5)) < KS_C / math.sqrt(z.size)
    z = np.array([discrete_laplace_exact(src, 2) for _ in range(6000)])
    assert _ks_integer(z, _dlap_pmf(2)) < KS_C / math.sqrt(z.size)
    # a huge variance (noise on the fine fixed-point grid: sigma = 2^18) stays exact
    z = np.array([discrete_gaussian_exact(src, Fraction(2**36)) for _ in range(3000)], dtype=np.float64)
    assert abs(z.var() / 2**36 - 1) < 0.1


def test_samplers_refuse_bad_parameters():
    with pytest.raises(ParameterError):
        discrete_laplace(RandomBits(), 0, 3)
    with pytest.raises(ParameterError):
        discrete_gaussian(RandomBits(), 1 << 27, 3)
    with pytest.raises(DataError):
        laplace(np.array([1.0, np.nan]), 1.0, 1.0)
    with pytest.raises(ParameterError):
        laplace(1.0, 1.0, -1.0)


# ---------------------------------------------------------------------------------------
# floating-point safety: the Mironov (2012) attack on naive double-precision Laplace
# ---------------------------------------------------------------------------------------

B = 1.0  # Laplace scale of the attack (sensitivity 1, epsilon 1)


def _naive_laplace(x: float, n: int, rng) -> np.ndarray:
    """Textbook sampler: x + b * log(u), u a 53-bit uniform (drawn here in its tail |noise| > 3,
    where the attack bites: the conditional law of the same sampler)."""
    k = rng.integers(1, int(2**53 * math.exp(-3)), size=n)
    sign = np.where(rng.integers(0, 2, size=n) == 1, 1.0, -1.0)
    return x + sign * (-B * np.log(k / 2.0**53))


def _in_naive_image(y: np.ndarray) -> np.ndarray:
    """Whether y is a value the naive sampler can output for x = 0 (it is its noise set)."""
    a = np.abs(y)
    k0 = np.round(np.exp(-a / B) * 2.0**53).astype(np.int64)
    hit = np.zeros(y.shape, dtype=bool)
    for d in range(-3, 4):
        hit |= (-B * np.log(np.maximum(k0 + d, 1) / 2.0**53)) == a
    return hit


def _attack_accuracy(y0: np.ndarray, y1: np.ndarray) -> float:
    """Guess x = 0 when the output is in the naive noise set, else x = 1."""
    return (float(_in_naive_image(y0).mean()) + float(1 - _in_naive_image(y1).mean())) / 2


def test_naive_laplace_leaks_its_input_and_ours_does_not():
    rng = np.random.default_rng(0)
    naive = _attack_accuracy(_naive_laplace(0.0, 2000, rng), _naive_laplace(1.0, 2000, rng))
    assert naive > 0.85  # the attack tells 0 from 1 from one output, most of the time
    src = RandomBits()
    ours0 = [laplace(0.0, 1.0, 1.0, src=src) for _ in range(600)]
    ours1 = [laplace(1.0, 1.0, 1.0, src=src) for _ in range(600)]
    acc = _attack_accuracy(np.array([r.value for r in ours0]), np.array([r.value for r in ours1]))
    assert abs(acc - 0.5) < 0.08
    # the reason: every output lies on one grid, fixed by (sensitivity, epsilon) alone
    g = ours0[0].grid
    assert {r.grid for r in ours0 + ours1} == {g}
    for r in ours0 + ours1:
        assert (r.value / g).is_integer()


@pytest.mark.parametrize("x", [0.0, 0.3, 1e6 + 1 / 3, -7.25])
def test_laplace_output_grid_is_independent_of_the_input(x):
    r = laplace(np.full(500, x), sensitivity=1.0, epsilon=2.0)
    assert r.grid == laplace(np.zeros(500), sensitivity=1.0, epsilon=2.0).grid
    assert np.all(np.mod(r.value / r.grid, 1) == 0)


def test_laplace_and_gaussian_noise_have_the_stated_scale():
    r = laplace(np.zeros(20_000), sensitivity=1.0, epsilon=1.0)
    # per coordinate the scale is (sensitivity + rounding)/epsilon in grid steps
    assert abs(np.abs(r.value).mean() / r.noise_scale - 1) < 0.05
    assert r.epsilon == pytest.approx(1.0) and r.delta == 0
    g = gaussian(np.full(20_000, 5.0), sensitivity=1.0, epsilon=1.0, delta=1e-5, dim=1)
    assert abs(g.value.mean() - 5.0) < 5 * g.noise_scale / math.sqrt(20_000)
    assert abs(g.value.std() / g.noise_scale - 1) < 0.05
    assert g.epsilon <= 1.0 + 1e-9


def test_integer_mechanisms_keep_integers():
    r = geometric(np.zeros(20_000, dtype=np.int64), sensitivity=1, epsilon=0.5)
    assert r.value.dtype == np.int64 and r.epsilon <= 0.5
    assert _ks_integer(r.value, _dlap_pmf(r.noise_scale)) < KS_C / math.sqrt(20_000)
    d = discrete_gaussian_int(np.full(5000, 10), sensitivity=2, epsilon=1.0, delta=1e-6)
    assert d.value.dtype == np.int64 and d.epsilon <= 1.0 + 1e-9
    assert abs(d.value.std() / d.noise_scale - 1) < 0.06


def test_exponential_mechanism_selects_with_the_exact_law():
    src = RandomBits()
    scores = [0.0, 1.0, 2.0]
    picks = np.array([exponential(scores, 1.0, 2.0, src=src).value for _ in range(6000)])
    w = np.exp(np.array(scores))  # exp(eps * u / (2 * sensitivity)) with eps = 2
    p = w / w.sum()
    freq = np.bincount(picks, minlength=3) / picks.size
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / picks.size))


# ---------------------------------------------------------------------------------------
# accounting: equal to dp-accounting's reference values
# ---------------------------------------------------------------------------------------


def test_accountant_matches_dp_accounting_reference():
    from dp_accounting import dp_event, pld, rdp

    acc = Accountant("rdp")
    acc.add(PrivacyEvent("poisson_gaussian", sampling_rate=0.01, noise_multiplier=1.1, steps=1000))
    ref = rdp.RdpAccountant()
    ref.compose(dp_event.PoissonSampledDpEvent(0.01, dp_event.GaussianDpEvent(1.1)), 1000)
    assert acc.epsilon(1e-5) == pytest.approx(ref.get_epsilon(1e-5), rel=1e-12)

    acc = Accountant("pld")
    acc.add(PrivacyEvent("laplace", noise_multiplier=2.0), count=3)
    acc.add(PrivacyEvent("gaussian", noise_multiplier=3.0))
    ref = pld.PLDAccountant()
    ref.compose(dp_event.LaplaceDpEvent(2.0), 3)
    ref.compose(dp_event.GaussianDpEvent(3.0))
    assert acc.epsilon(1e-6) == pytest.approx(ref.get_epsilon(1e-6), rel=1e-9)


def test_accountant_composes_releases_of_a_job():
    releases = [laplace(1.0, 1.0, 0.5), geometric(3, 1, 0.25)]
    acc = Accountant()
    for r in releases:
        acc.add(r.event)
    assert acc.used_kind() == "pld"
    assert acc.epsilon(0.0) == pytest.approx(sum(r.epsilon for r in releases))
    g = gaussian(0.0, 1.0, 1.0, 1e-5)
    acc.add(g.event)  # a zCDP event: the RDP accountant takes over
    assert acc.used_kind() == "rdp" and acc.epsilon(1e-5) > 1.0
    with pytest.raises(ParameterError):
        Accountant("pld").add(g.event)


@pytest.mark.parametrize("classes", [2, 4])
def test_randomized_response_keeps_labels_with_the_exact_probability(classes):
    eps = 1.0
    y = np.arange(30_000) % classes
    r = randomized_response(y, eps, classes)
    keep = math.exp(r.epsilon) / (math.exp(r.epsilon) + classes - 1)
    assert r.epsilon <= eps and r.epsilon > eps - 2**-20
    assert abs((r.value == y).mean() - keep) < 5 * math.sqrt(keep * (1 - keep) / y.size)
    # a flipped label is uniform over the other classes
    if classes == 4:
        moved = (r.value - y) % classes
        counts = np.bincount(moved[moved > 0], minlength=4)[1:]
        assert counts.max() - counts.min() < 6 * math.sqrt(counts.mean())
    with pytest.raises(DataError):
        randomized_response(np.array([0, classes]), eps, classes)
