"""FL strategies: aggregation math against direct formulas, client sampling, parameter checks (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.errors import DataError, ParameterError
from jointml.core.prg import Prg
from jointml.ml.fl import FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, FitRes, WeightedSum, sample_clients
from jointml.ml.fl.aggregate import flatten, unflatten, weighted_sum
from jointml.ml.fl.strategy import EvaluateRes


def _results(rng, n=4, shapes=((3, 2), (2,))):
    return {f"c{i}": FitRes([rng.normal(size=s) for s in shapes], int(rng.integers(1, 50))) for i in range(n)}


def test_fedavg_is_example_weighted_mean():
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 2)), rng.normal(size=2)]
    res = _results(rng)
    new, metrics = FedAvg().aggregate_fit(1, start, res, ["gone"])
    n = sum(r.num_examples for r in res.values())
    for i in range(2):
        want = sum(r.parameters[i] * r.num_examples for r in res.values()) / n
        np.testing.assert_allclose(new[i], want, rtol=1e-12, atol=1e-12)
    assert metrics == {"clients": 4, "dropped": 1}


def test_fedavg_refuses_bad_layout_and_empty_round():
    res = {"a": FitRes([np.zeros(2)], 1), "b": FitRes([np.zeros(3)], 1)}
    with pytest.raises(DataError, match="shape"):
        FedAvg().aggregate_fit(1, [np.zeros(2)], res, [])
    with pytest.raises(DataError, match="no client"):
        FedAvg().aggregate_fit(1, [np.zeros(2)], {}, ["a"])


def test_fedavgm_matches_momentum_recursion():
    rng = np.random.default_rng(1)
    s = FedAvgM(server_learning_rate=0.7, server_momentum=0.9)
    w, v = np.zeros(3), np.zeros(3)
    cur = [w.copy()]
    for rnd in range(1, 5):
        d = rng.normal(size=3)
        cur = s.aggregate_sum(rnd, cur, WeightedSum([2.0 * d], 2.0, 2))
        v = 0.9 * v - d if rnd > 1 else -d
        w = w - 0.7 * v
        np.testing.assert_allclose(cur[0], w, rtol=1e-12)


@pytest.mark.parametrize("cls,kind", [(FedAdam, "adam"), (FedYogi, "yogi"), (FedAdagrad, "adagrad")])
def test_adaptive_servers_match_reddi_algorithm(cls, kind):
    rng = np.random.default_rng(2)
    eta, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    s = cls(eta=eta, beta_1=b1, beta_2=b2, tau=tau)
    x, m, v = np.zeros(4), np.zeros(4), np.full(4, tau * tau)
    cur = [x.copy()]
    for rnd in range(1, 6):
        d = rng.normal(size=4)
        cur = s.aggregate_sum(rnd, cur, WeightedSum([d], 1.0, 1))
        m = b1 * m + (1 - b1) * d
        if kind == "adam":
            v = b2 * v + (1 - b2) * d * d
        elif kind == "yogi":
            v = v - (1 - b2) * d * d * np.sign(v - d * d)
        else:
            v = v + d * d
        x = x + eta * m / (np.sqrt(v) + tau)
        np.testing.assert_allclose(cur[0], x, rtol=1e-12)


def test_fedprox_sends_mu_and_aggregates_like_fedavg():
    rng = np.random.default_rng(3)
    res, start = _results(rng), [np.zeros((3, 2)), np.zeros(2)]
    a = FedAvg().aggregate_fit(1, start, res, [])[0]
    b = FedProx(proximal_mu=0.5).aggregate_fit(1, start, res, [])[0]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    ins = FedProx(proximal_mu=0.5, on_fit_config=lambda r: {"epochs": r}).configure_fit(3, start, ["a", "b"])
    assert ins["a"].config == {"epochs": 3, "proximal_mu": 0.5}


def test_sampling_uniform_reproducible_and_per_round():
    clients = [f"c{i}" for i in range(10)]
    counts = dict.fromkeys(clients, 0)
    prg = Prg(b"t" * 16)
    for _ in range(2000):
        for c in sample_clients(clients, 3, prg):
            counts[c] += 1
    # each client is drawn with probability 0.3: 600 expected, sd ~20.5 -> 5 sd band
    assert all(500 < n < 700 for n in counts.values()), counts
    s1, s2 = FedAvg(fraction_fit=0.3, seed=b"k" * 16), FedAvg(fraction_fit=0.3, seed=b"k" * 16)
    rounds = [sorted(s1.configure_fit(r, [np.zeros(1)], clients)) for r in range(1, 6)]
    assert rounds == [sorted(s2.configure_fit(r, [np.zeros(1)], clients)) for r in range(1, 6)]
    assert all(len(r) == 3 for r in rounds) and len({tuple(r) for r in rounds}) > 1


def test_sampling_minimums_and_parameter_errors():
    s = FedAvg(fraction_fit=0.1, min_fit_clients=2, min_available_clients=3)
    assert len(s.configure_fit(1, [np.zeros(1)], ["a", "b", "c", "d"])) == 2
    with pytest.raises(DataError, match="min_available_clients"):
        s.configure_fit(1, [np.zeros(1)], ["a", "b"])
    with pytest.raises(ParameterError, match="fraction_fit"):
        FedAvg(fraction_fit=0.0)
    with pytest.raises(ParameterError, match="server_momentum"):
        FedAvgM(server_momentum=1.0)
    with pytest.raises(ParameterError, match="proximal_mu"):
        FedProx(proximal_mu=-1)


def test_evaluate_aggregation_weighted():
    res = {"a": EvaluateRes(1.0, 1, {"acc": 0.5}), "b": EvaluateRes(4.0, 3, {"acc": 1.0, "x": 2})}
    loss, metrics = FedAvg().aggregate_evaluate(1, res, [])
    assert loss == pytest.approx(3.25) and metrics == {"acc": pytest.approx(0.875)}


def test_flatten_roundtrip_and_weighted_sum_checks():
    p = [np.arange(6.0).reshape(2, 3), np.array([7.0])]
    q = unflatten(flatten(p), p)
    assert all(np.array_equal(a, b) for a, b in zip(p, q))
    with pytest.raises(ParameterError, match="weights"):
        weighted_sum([p], [-1.0])
    with pytest.raises(DataError, match="non-finite"):
        weighted_sum([p, [np.full((2, 3), np.nan), np.zeros(1)]], [1.0, 1.0])
