"""PPDT: a privacy-preserving data transform - DP-PCA or a random projection to k dimensions, plus noise.

A party applies `PPDT` to its own feature matrix X (n x d) before the matrix leaves it:

1. **scale and clip** (public parameters): each feature is mapped to [-1, 1] through its
   public `bounds` (lo, hi) and clipped; each row is then clipped to L2 norm `clip_norm`
   C. This bounds what one record can change.
2. **projection** Q (d x k, orthonormal columns), known to the adversary:
   * ``method="pca"``: the top-k eigenvectors of a DP second-moment matrix: the upper
     triangle of X^T X is released with Gaussian noise (replace-one sensitivity 2 C^2)
     and Q is computed from the noisy matrix (post-processing);
   * ``method="random"``: a uniformly random orthonormal Q from the cryptographic PRG
     (data-independent; costs no budget).
3. **noise**: Z = X Q + N, N discrete Gaussian on a fine grid with sigma calibrated to
   the replace-one sensitivity 2 C of one row (||Q^T v|| <= ||v||).

The (epsilon, delta) is split in zCDP (rhos add): a fraction `pca_share` for Q and the
k x k second moment of the projected rows (`moment_`: with "pca", Q^T M Q of the DP matrix
M, post-processing; with "random", a Gaussian release of its own), the rest for Z;
`epsilon_` reports the composed epsilon at `delta` from the RDP accountant. The moment
lets a modeller correct for Z's noise (`jointml.ml.ppdt.model`).

**What it protects, and what not.** Each released row is a DP release of one record
(local DP, record-level, per data source): epsilon bounds what anyone - the partner,
the central modeller, or an attacker who knows Q - can infer about any single record,
including by reconstruction. Dimension reduction by itself protects nothing that the
accountant does not certify: with ``epsilon=inf`` (no noise) the transform is a plain
projection, invertible on its span, and a decoder trained on similar public data
recovers correlated features (tests/test_ppdt.py measures both; "irreversible" encodings
without DP such as InstaHide were fully inverted). The price of a per-row guarantee is
utility: see docs/dp.md for the measured curve.

Adversary model: the transform runs at the data owner, in plaintext; recipients of Z learn
Z, Q, the bounds, C and the noise scale, nothing else.

>>> from jointml.core.prg import public_rng
>>> rng = public_rng(0)          # public example data
>>> X = rng.normal(size=(500, 6))
>>> t = PPDT(k=2, epsilon=4.0, delta=1e-5, bounds=(-4.0, 4.0))
>>> Z = t.fit_transform(X)
>>> Z.shape, t.components_.shape, round(t.epsilon_, 2) <= 4.0
((500, 2), (6, 2), True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.errors import DataError, ParameterError
from ...dp.accounting import Accountant, PrivacyEvent, rho_for
from ...dp.mechanisms import gaussian_rho
from ...dp.sampling import RandomBits

__all__ = ["PPDT", "random_orthonormal"]


def random_orthonormal(d: int, k: int, src: RandomBits | None = None) -> np.ndarray:
    """A uniformly random d x k matrix with orthonormal columns, from the cryptographic PRG.

    Gaussian entries by the Box-Muller transform of PRG uniforms, then QR (Haar measure);
    the projection protects nothing by itself (it is public), so exactness is not needed here.

    >>> Q = random_orthonormal(5, 2)
    >>> np.allclose(Q.T @ Q, np.eye(2))
    True
    """
    src = RandomBits() if src is None else src
    u = (src.uint64(2 * d * k) >> np.uint64(11)).astype(np.float64) * 2.0**-53 + 2.0**-54  # (0, 1)
    g = np.sqrt(-2 * np.log(u[: d * k])) * np.cos(2 * np.pi * u[d * k :])
    q, r = np.linalg.qr(g.reshape(d, k))
    return q * np.sign(np.diag(r))  # sign fix: Haar-distributed


class PPDT:
    """The PPDT of one party's features (see the module docstring).

    `k` output dimensions; `epsilon`, `delta` the total budget of `fit_transform`
    (``epsilon=math.inf``: no noise, for comparison only); `bounds` public (lo, hi), one pair
    or one per feature; `clip_norm` the row norm C after scaling; `method` "pca" or
    "random"; `pca_share` the fraction of the zCDP budget spent on the projection.

    Attributes after `fit_transform`: `components_` (Q), `noise_scale_` (sigma of Z's
    noise), `epsilon_` (composed, at `delta`), `events_`.
    """

    def __init__(self, k: int, epsilon: float, delta: float = 1e-5, *, bounds: Any = (-3.0, 3.0),
                 clip_norm: float = 1.0, method: str = "pca", pca_share: float = 0.2, src: RandomBits | None = None):
        if k < 1:
            raise ParameterError(f"k must be >= 1, got {k}", field="k")
        if not epsilon > 0 or not 0 < delta < 1:
            raise ParameterError("PPDT needs epsilon > 0 and 0 < delta < 1", field="epsilon")
        if method not in ("pca", "random"):
            raise ParameterError(f"method must be 'pca' or 'random', got '{method}'", field="method")
        if not 0 < pca_share < 1:
            raise ParameterError("pca_share must be in (0, 1)", field="pca_share")
        self.k, self.epsilon, self.delta = int(k), float(epsilon), float(delta)
        self.bounds, self.clip_norm, self.method, self.pca_share = bounds, float(clip_norm), method, float(pca_share)
        self.src = src

    def scale(self, X: Any) -> np.ndarray:
        """Map features to [-1, 1] through the public bounds, clip, then clip each row to `clip_norm`."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.all(np.isfinite(X)):
            raise DataError("PPDT needs a 2-d feature matrix without NaN or infinite values", field="X")
        b = np.asarray(self.bounds, dtype=np.float64)
        lo, hi = (b[0], b[1]) if b.ndim == 1 else (b[:, 0], b[:, 1])
        if np.any(np.asarray(hi) <= np.asarray(lo)):
            raise ParameterError("PPDT bounds need lo < hi", field="bounds")
        S = np.clip((X - lo) / (hi - lo) * 2 - 1, -1, 1)
        norms = np.linalg.norm(S, axis=1, keepdims=True) / self.clip_norm
        return S / np.maximum(norms, 1.0)

    def _noisy_moment(self, S: np.ndarray, rho: float, src: RandomBits) -> tuple[np.ndarray, float]:
        """S^T S with Gaussian noise on its upper triangle (replace-one sensitivity 2 C^2), mirrored."""
        d = S.shape[1]
        iu = np.triu_indices(d)
        r = gaussian_rho((S.T @ S)[iu], 2 * self.clip_norm**2, rho, src=src)
        self.events_.append(r.event)
        M = np.zeros((d, d))
        M[iu] = r.value
        return M + np.triu(M, 1).T, float(r.noise_scale)

    def _projection(self, S: np.ndarray, rho: float, src: RandomBits) -> np.ndarray:
        d = S.shape[1]
        if self.method == "random" or math.isinf(self.epsilon):
            Q = random_orthonormal(d, self.k, src) if self.method == "random" else \
                np.linalg.eigh(S.T @ S)[1][:, ::-1][:, : self.k]
            P = S @ Q
            # the k x k second moment of the projected rows: released with noise (it costs the
            # projection's share of the budget) so that a modeller can correct for Z's noise
            moment: tuple[np.ndarray, float] = (P.T @ P, 0.0) if math.isinf(self.epsilon) else \
                self._noisy_moment(P, rho, src)
            self.moment_, self.moment_noise_ = moment
            return Q
        M, noise = self._noisy_moment(S, rho, src)
        Q = np.linalg.eigh(M)[1][:, ::-1][:, : self.k]
        self.moment_, self.moment_noise_ = Q.T @ M @ Q, noise  # post-processing of the DP moment
        return Q

    def fit_transform(self, X: Any) -> np.ndarray:
        """Fit the projection and return the noisy transform Z (n x k): one DP release of X."""
        S = self.scale(X)
        if self.k > S.shape[1]:
            raise ParameterError(f"k={self.k} exceeds the number of features {S.shape[1]}", field="k")
        src = RandomBits() if self.src is None else self.src
        self.events_: list[PrivacyEvent] = []
        if math.isinf(self.epsilon):
            self.components_ = self._projection(S, 0.0, src)
            self.noise_scale_, self.epsilon_ = 0.0, math.inf
            return S @ self.components_
        rho = rho_for(self.epsilon, self.delta)
        rho_q = rho * self.pca_share  # the projection (pca) or the projected moment (random)
        self.components_ = self._projection(S, rho_q, src)
        r = gaussian_rho(S @ self.components_, 2 * self.clip_norm, rho - rho_q, dim=self.k, src=src)
        self.events_.append(r.event)
        self.noise_scale_ = r.noise_scale
        acc = Accountant("rdp")
        for ev in self.events_:
            acc.add(ev)
        self.epsilon_ = acc.epsilon(self.delta)
        return np.asarray(r.value)

    def project(self, X: Any) -> np.ndarray:
        """The owner's own noise-free projection scale(X) Q, for scoring its rows with its
        block of a model's weights (`jointml.ml.ppdt.model`). Never sent: it is not DP.

        >>> t = PPDT(k=2, epsilon=math.inf, bounds=(-4.0, 4.0)); X = np.eye(3)
        >>> Z = t.fit_transform(X)
        >>> np.allclose(t.project(X), Z)   # no noise: the release itself
        True
        """
        return self.scale(X) @ self.components_

    def inverse_lstsq(self, Z: Any) -> np.ndarray:
        """The least-squares reconstruction an attacker who knows Q computes (in the scaled space).

        >>> t = PPDT(k=3, epsilon=math.inf, bounds=(-4.0, 4.0)); X = np.eye(3) * 0.5
        >>> np.allclose(t.inverse_lstsq(t.fit_transform(X)), t.scale(X))   # no noise, k = d: inverted
        True
        """
        return np.asarray(Z, dtype=np.float64) @ self.components_.T

