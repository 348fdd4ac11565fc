"""Distributed discrete Gaussian: calibration meets the target epsilon with h honest clients, and the
aggregate of the clients' encoded updates carries every client's noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jointml.dp import epsilon_of, rho_for
from jointml.dp.distributed import ddg_calibrate, ddg_epsilon, ddg_noise

pytest.importorskip("dp_accounting")


def test_one_client_is_the_discrete_gaussian_and_tau_vanishes_for_wide_noise():
    assert ddg_epsilon(3.0, 9.0, 1, 10) == pytest.approx(1.0)
    # sigma of 100 grid units: the tau term is below double precision, the bound is Delta / sqrt(n sigma^2)
    assert ddg_epsilon(100.0, 100.0**2, 8, 1000) == pytest.approx(100 / math.sqrt(8 * 100.0**2), rel=1e-12)
    # narrow noise pays the tau term
    assert ddg_epsilon(1.0, 0.25, 8, 1000) > 1 / math.sqrt(8 * 0.25)


@pytest.mark.parametrize("honest", [None, 2])
def test_calibration_meets_the_target_with_the_honest_clients(honest):
    p, ev = ddg_calibrate(1.0, 2.0, 1e-5, clients=5, dim=50, frac_bits=8, honest=honest, rounds=3)
    assert ev.params["rho"] <= rho_for(2.0, 1e-5) / 3 + 1e-15
    h = 5 if honest is None else honest
    sens = 2.0**8 + math.sqrt(50)
    assert p * h == pytest.approx(sens**2 / (2 * rho_for(2.0, 1e-5) / 3), rel=0.02)  # noise spread over h clients
    assert epsilon_of(ev, 1e-5) < 2.0


def test_secure_aggregation_of_noisy_updates():
    g = np.random.default_rng(0)
    clients, d, f = 5, 400, 8
    updates = g.normal(size=(clients, d))
    updates /= np.maximum(1.0, np.linalg.norm(updates, axis=1, keepdims=True))  # clipped to norm 1
    p, _ = ddg_calibrate(1.0, 4.0, 1e-5, clients=clients, dim=d, frac_bits=f)
    encoded = [np.rint(u * 2**f).astype(np.int64) + ddg_noise(p, d) for u in updates]
    total = np.sum(encoded, axis=0)  # what secure aggregation reveals
    noise = total - np.rint(updates * 2**f).astype(np.int64).sum(axis=0)
    assert noise.var() / (clients * p) == pytest.approx(1.0, abs=0.2)
    assert np.abs(total / 2**f - updates.sum(axis=0)).mean() < 4 * math.sqrt(clients * p) / 2**f
