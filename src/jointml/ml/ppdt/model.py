"""A linear model fitted on PPDT releases, corrected for their noise, scored by each owner.

An ordinary model trained on the partners' noisy transforms Z and applied to noisy Z again
pays for the noise twice: its weights are attenuated, and every scored row is a local-DP
release that carries as much noise as signal (docs/dp.md: at epsilon 8 the partner's
columns then add nothing). `NoiseAwareLinear` uses the releases for what they estimate
well, the *moments*:

* the modeller's own columns B (with an intercept): B^T B and B^T y exactly (its own data);
* per partner p: B^T Z_p and Z_p^T y (the noise N_p is independent of B and y: unbiased,
  its error ~ sigma sqrt(n) per entry), Z_p^T Z_q between partners (independent noises),
  and the partner's own second moment from its DP `moment_` (Z_p^T Z_p would carry
  n sigma^2 of noise on the diagonal);
* least squares on those moments (the linear probability model: for ranking, e.g. AUC and
  KS, it tracks logistic regression closely), with a ridge on each partner's block scaled
  to its noise and the moment matrix projected onto the positive semi-definite cone (the
  noise can make it indefinite; a fit that inverts noise is worse than none).

Scoring: the weights of partner p's block apply to its noise-free projection scale(x) Q_p,
which only p computes (`PPDT.project`): each owner scores its own rows and the partial
scores are added, as in plain vertical LR serving.

What each party learns: fitting uses only what `ppdt_share` delivered (each partner's
release is (epsilon, delta)-DP, record-level, per source; the model is post-processing).
Scoring is *not* covered by the DP guarantee: each scored row reveals the partner's
partial score w_p . (scale(x) Q_p) for that row to whoever adds the scores (one linear
projection of its features per row, as plain vertical LR inference does).

>>> from jointml.ml.ppdt import PPDT, make_credit
>>> X, y = make_credit(4000, 8, seed=3)
>>> t = PPDT(k=2, epsilon=8.0, bounds=(-4.0, 4.0))
>>> Z = t.fit_transform(X[:, 2:])
>>> m = NoiseAwareLinear().fit(X[:, :2], y, {"shop": Release(Z, t.moment_, t.moment_noise_, t.noise_scale_)})
>>> m.decision_function(X[:, :2], {"shop": t.project(X[:, 2:])}).shape
(4000,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ...core.errors import DataError

__all__ = ["NoiseAwareLinear", "Release"]


@dataclass
class Release:
    """What a partner's PPDT delivered: Z (n x k), its DP k x k `moment`, and the noise scales."""

    Z: np.ndarray
    moment: np.ndarray
    moment_noise: float
    z_noise: float


class NoiseAwareLinear:
    """Least squares on the modeller's columns and the partners' PPDT releases, corrected for
    the releases' noise (module docstring). `coef_` maps "own" and each partner to its block's
    weights; `intercept_`.

    >>> m = NoiseAwareLinear()
    >>> X = np.arange(20.0).reshape(10, 2); y = (X[:, 0] > 9).astype(float)
    >>> float(np.round(m.fit(X, y, {}).decision_function(X, {})[[0, -1]], 2)[1] > 0.5)
    1.0
    """

    def fit(self, own: np.ndarray, y: np.ndarray, partners: Mapping[str, Release]) -> NoiseAwareLinear:
        own = np.asarray(own, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n = len(y)
        if own.shape[0] != n or any(r.Z.shape[0] != n for r in partners.values()):
            raise DataError("the modeller's rows, the labels and every partner's Z must have the same rows", field="rows")
        self.mean_, self.std_ = own.mean(axis=0), own.std(axis=0)
        self.std_[self.std_ == 0] = 1.0
        B = np.hstack([np.ones((n, 1)), (own - self.mean_) / self.std_])
        names = list(partners)
        Zs = [np.asarray(partners[p].Z, dtype=np.float64) for p in names]
        G, r = self._moments(B, y, Zs, [np.asarray(partners[p].moment, dtype=np.float64) for p in names])
        ridge = np.zeros(len(G))
        pos = B.shape[1]
        for p, Z in zip(names, Zs):
            k, rel = Z.shape[1], partners[p]
            # the spectral scale of the noise in this block, the moment's (sigma_M sqrt(k)) and
            # the cross terms' (sigma_Z sqrt(n), the own columns being standardised), plus a
            # sigma_Z^2 sqrt(n) term: a ridge only linear in the noise leaves weights of a
            # constant size fitted to the noise of Z^T y (seen on German credit at small epsilon)
            ridge[pos:pos + k] = 2.0 * (rel.moment_noise * math.sqrt(k) + rel.z_noise * math.sqrt(n)) \
                + rel.z_noise**2 * math.sqrt(n)
            pos += k
        ridge += 1e-6 * n  # collinear own columns (one-hot dummies beside the intercept)
        w = np.linalg.solve(_psd(G, 1e-9 * n) + np.diag(ridge), r)
        self.intercept_ = float(w[0] - np.sum(w[1:B.shape[1]] * self.mean_ / self.std_))
        self.coef_ = {"own": w[1:B.shape[1]] / self.std_}
        pos = B.shape[1]
        for p, Z in zip(names, Zs):
            self.coef_[p] = w[pos:pos + Z.shape[1]]
            pos += Z.shape[1]
        return self

    @staticmethod
    def _moments(B: np.ndarray, y: np.ndarray, Zs: list[np.ndarray],
                 moments: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        blocks = [B, *Zs]
        G = np.block([[moments[i - 1] if i == j and i > 0 else blocks[i].T @ blocks[j] for j in range(len(blocks))]
                      for i in range(len(blocks))])
        return G, np.concatenate([b.T @ y for b in blocks])

    def partial_score(self, block: str, X: np.ndarray) -> np.ndarray:
        """One owner's part of the score: its own raw columns ("own") or a partner's `PPDT.project` rows."""
        return np.asarray(X, dtype=np.float64) @ self.coef_[block]

    def decision_function(self, own: np.ndarray, projected: Mapping[str, np.ndarray]) -> np.ndarray:
        """The score: the intercept plus every owner's partial score."""
        return self.intercept_ + self.partial_score("own", own) + sum(
            (self.partial_score(p, P) for p, P in projected.items()), np.zeros(len(own)))


def _psd(G: np.ndarray, floor: float) -> np.ndarray:
    """The nearest (Frobenius) symmetric matrix with eigenvalues >= floor."""
    w, V = np.linalg.eigh((G + G.T) / 2)
    return (V * np.maximum(w, floor)) @ V.T
