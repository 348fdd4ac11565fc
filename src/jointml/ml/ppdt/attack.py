"""Inversion attacks on PPDT output: how much of the raw features an adversary recovers.

Two attackers who know the projection Q and the public scaling (bounds, clip norm):

* `lstsq_error`: least squares, X_hat = Z Q^T (the best linear inverse without a prior);
* `decoder_error`: a learned decoder - ridge regression from Z to X fitted on auxiliary
  data from the same distribution that the attacker holds (its own customers, a public
  sample), transformed with the same Q and fresh noise, then applied to the victim's Z.

Both report the relative reconstruction error ``mean ||X_hat - X||^2 / mean ||X - mean||^2``
in the scaled feature space: 0 is perfect reconstruction, 1 is no better than guessing the
mean. These are measurements (run by the tests and `jointml bench dp`), not a guarantee:
the guarantee is the accountant's epsilon.

Adversary model: the attacker sees the released Z and every public parameter; the code
runs wherever the evaluator runs it, on data it already has.

>>> from jointml.ml.ppdt.transform import PPDT
>>> from jointml.core.prg import public_rng
>>> rng = public_rng(0)        # public example data
>>> X = rng.normal(size=(400, 4))
>>> t = PPDT(k=4, epsilon=float("inf"), bounds=(-5.0, 5.0))
>>> round(lstsq_error(t, X, t.fit_transform(X)), 6)   # no noise, k = d: fully inverted
0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .transform import PPDT

__all__ = ["lstsq_error", "decoder_error", "relative_error"]


def relative_error(S: np.ndarray, S_hat: np.ndarray) -> float:
    """mean squared reconstruction error over the variance of S (0 perfect, 1 = the mean guess).

    >>> relative_error(np.eye(2), np.eye(2))
    0.0
    """
    var = float(((S - S.mean(axis=0)) ** 2).sum(axis=1).mean())
    return float(((S_hat - S) ** 2).sum(axis=1).mean() / var) if var > 0 else 0.0


def lstsq_error(t: PPDT, X: Any, Z: Any) -> float:
    """Relative error of the least-squares inversion Z Q^T against the scaled X."""
    return relative_error(t.scale(X), t.inverse_lstsq(Z))


def decoder_error(t: PPDT, X: Any, Z: Any, X_aux: Any, alpha: float = 1.0) -> float:
    """Relative error of a ridge decoder trained on (transform(X_aux) -> scale(X_aux)), same Q.

    The attacker's auxiliary data is transformed with the victim's Q and the same noise
    scale (fresh noise), as it would obtain by running the published transform.
    """
    from sklearn.linear_model import Ridge

    S_aux = t.scale(X_aux)
    Z_aux = S_aux @ t.components_
    if t.noise_scale_ > 0:
        from ...dp.sampling import RandomBits, discrete_gaussian

        # fresh noise of the same law (sigma^2 in grid units of 2^-20 of sigma, plenty here)
        g = t.noise_scale_ / 256
        Z_aux = Z_aux + discrete_gaussian(RandomBits(), 256 * 256, Z_aux.size).reshape(Z_aux.shape) * g
    dec = Ridge(alpha=alpha).fit(Z_aux, S_aux)
    return relative_error(t.scale(X), dec.predict(np.asarray(Z, dtype=np.float64)))
