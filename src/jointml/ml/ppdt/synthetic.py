"""A public synthetic credit set for the PPDT utility curve (no secret data: numpy's public generator).

Features come from a few latent factors (income, leverage, history, ...) plus noise, so
that they are correlated as real bureau features are and a low-dimensional transform can
keep the signal; the default label is logistic in the latent factors. Nothing here
protects anything; it only makes benchmark data.

>>> X, y = make_credit(1000, 16, seed=1)
>>> X.shape, sorted(set(y.tolist()))
((1000, 16), [0, 1])
"""

from __future__ import annotations

import numpy as np

from ...core.prg import public_rng

__all__ = ["make_credit"]


def make_credit(rows: int, features: int = 16, latent: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): `rows` x `features` standardised features, labels 0/1 (about 30 % positives)."""
    g = public_rng(seed)  # public benchmark data
    F = g.normal(size=(rows, latent))
    load = g.normal(size=(latent, features))
    X = F @ load / np.sqrt(latent) + 0.5 * g.normal(size=(rows, features))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    w = g.normal(size=latent)
    y = (g.random(rows) < 1 / (1 + np.exp(-(F @ w - 1.0)))).astype(np.int64)
    return X, y
