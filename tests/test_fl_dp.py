"""DP-FedAvg with distributed noise under SecAgg+: the opened mean is the mean of the clipped updates
(no noise), and with noise the error has the stated standard deviation z·S/m."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.errors import ParameterError
from jointml.ml.fl import DPFedAvg, FedAvg, FederatedTrainer, FLClient, LogisticModel, SecAggParams, local_train
from jointml.ml.fl.aggregate import flatten, sub
from jointml.ml.fl.dp import privatise
from jointml.runtime import simulate
from jointml.runtime.launcher import PartyFailed

AGG, CLIENTS, D = "agg", ["c1", "c2", "c3", "c4"], 1500


def _data():
    rng = np.random.default_rng(0)
    return {c: (rng.normal(size=(20, D)), (rng.random(20) > 0.5).astype(float)) for c in CLIENTS}


def _train(z, S, secure=True):
    data = _data()

    def prog(ctx):
        client = None
        if ctx.me != AGG:
            X, y = data[ctx.me]
            client = FLClient(LogisticModel(D), X, y, batch_size=20, learning_rate=0.5)
        s = DPFedAvg(FedAvg(min_fit_clients=4), clip_norm=S, noise_multiplier=z)
        tr = FederatedTrainer(ctx, AGG, CLIENTS, LogisticModel(D), s, rounds=1, secure=secure,
                              secagg=SecAggParams(threshold=3, min_signers=3))
        w = tr.run(client)
        return w, (s.accounting() if ctx.me == AGG else None)

    return simulate(prog, [AGG, *CLIENTS], mode="thread")[AGG], data


def _clipped_mean(data, S):
    m = LogisticModel(D)
    g = m.init()
    ds = [flatten(sub(local_train(m, g, X, y, epochs=1, learning_rate=0.5, batch_size=20), g)) for X, y in data.values()]
    return np.mean([privatise(d, S, 0.0) for d in ds], axis=0)


def test_without_noise_the_mean_of_clipped_updates():
    (w, acc), data = _train(0.0, 0.05)
    want = _clipped_mean(data, 0.05)
    got = np.concatenate([w[0], w[1]])
    assert np.max(np.abs(got - want)) < 1e-4
    assert acc["rounds"] == 1 and acc["sampling_rates"] == [1.0]


def test_distributed_noise_has_the_stated_scale():
    z, S = 2.0, 0.05
    (w, acc), data = _train(z, S)
    err = np.concatenate([w[0], w[1]]) - _clipped_mean(data, S)
    # each of 4 clients adds N(0, (zS)^2/4): the sum has std zS, the mean zS/4 = 0.025
    assert abs(err.std() / (z * S / 4) - 1) < 0.1, err.std()
    assert acc["effective_noise_multiplier_worst_round"] == pytest.approx(z)


def test_dp_needs_secure_aggregation_and_valid_parameters():
    with pytest.raises(PartyFailed, match="secure"):
        _train(1.0, 0.1, secure=False)
    with pytest.raises(ParameterError):
        DPFedAvg(FedAvg(), clip_norm=0.0, noise_multiplier=1.0)


def test_epsilon_composes_the_rounds_like_dp_accounting_and_dropouts_cost_privacy():
    from dp_accounting import dp_event, rdp

    clients = [f"c{i}" for i in range(10)]
    full = DPFedAvg(FedAvg(), clip_norm=1.0, noise_multiplier=1.1)
    for r in range(1, 6):
        full.configure_fit(r, [np.zeros(1)], clients)
    ref = rdp.RdpAccountant()
    ref.compose(dp_event.GaussianDpEvent(1.1), 5)
    assert abs(full.epsilon(1e-5) - ref.get_epsilon(1e-5)) < 1e-9
    # two of ten sampled clients dropped in round 1: less noise, more epsilon
    full.rounds_[0]["survivors"] = 8  # what aggregate_sum records after a round with two dropouts
    assert full.epsilon(1e-5) > ref.get_epsilon(1e-5)
    # sampling half of the clients each round amplifies privacy
    half = DPFedAvg(FedAvg(fraction_fit=0.5, min_fit_clients=5), clip_norm=1.0, noise_multiplier=1.1)
    for r in range(1, 6):
        half.configure_fit(r, [np.zeros(1)], clients)
    assert half.accounting()["sampling_rates"] == [0.5] * 5
    assert half.epsilon(1e-5) < ref.get_epsilon(1e-5)
