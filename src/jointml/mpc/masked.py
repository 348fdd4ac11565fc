"""Reusable secret data matrices for training loops.

`MaskedMatrix(X)` prepares a secret matrix once so that the many products of a
training loop — `X[batch] @ w` and `X[batch].T @ e` with fresh secrets w, e — cost
traffic proportional to w and e, not to X. In semi2k, X is opened once as
E = X - A for a dealer mask A that is reused with fresh triples; in aby3 products
already open nothing of X.

>>> # Xm = MaskedMatrix(X_secret); z = Xm.matmul(w, rows=slice(0, 1024))
"""

from __future__ import annotations

import numpy as np

from .secret_array import SecretArray, matmul_shape


class MaskedMatrix:
    def __init__(self, x: SecretArray):
        if len(x.shape) != 2:
            raise ValueError(f"MaskedMatrix needs a 2-D secret, got shape {x.shape}")
        self.x = x
        self.shape = x.shape
        self.fxp = x.fxp
        self._handle = x.proto.masked_setup(x.share, x.shape)

    @property
    def device(self):
        return self.x.device

    def _rows_shape(self, rows) -> tuple:
        return np.empty(self.shape, dtype=np.int8)[rows].shape

    def matmul(self, y: SecretArray, rows=slice(None)) -> SecretArray:
        """X[rows] @ y."""
        sub = self._rows_shape(rows)
        share = self.x.proto.masked_matmul(self._handle, rows, y.share, y.shape, transpose=False)
        return self.x._finish_product(share, matmul_shape(sub, y.shape), self.fxp + y.fxp)

    def rmatmul_t(self, y: SecretArray, rows=slice(None)) -> SecretArray:
        """X[rows].T @ y."""
        sub = self._rows_shape(rows)[::-1]
        share = self.x.proto.masked_matmul(self._handle, rows, y.share, y.shape, transpose=True)
        return self.x._finish_product(share, matmul_shape(sub, y.shape), self.fxp + y.fxp)
