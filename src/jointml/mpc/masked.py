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


class PrivateMaskedMatrix:
    """A matrix one party holds in plaintext, prepared for many products with secrets.

    In semi2k the owner sends E = X - A once (only the owner: half the traffic of
    masking a shared matrix); each later X[rows] @ y costs one round in which the other
    parties send their masked shares of y to the owner."""

    def __init__(self, mpc, obj, fxp: bool = True):
        from ..runtime.device import PartyObject

        if not isinstance(obj, PartyObject):
            raise TypeError("PrivateMaskedMatrix needs a PartyObject (the owner's plaintext matrix)")
        ctx = mpc.ctx
        owner = obj.owner
        tag = "pmatrix-meta"
        if ctx.me == owner:
            v = np.asarray(obj.value, dtype=np.float64 if fxp else None)
            if v.ndim != 2:
                raise ValueError(f"party '{owner}': a private matrix must be 2-D, got shape {v.shape}")
            enc = mpc.fxp.encode(v) if fxp else v.astype(np.int64).view(np.uint64)
            shape = v.shape
            for p in ctx.parties:
                if p != owner:
                    ctx.comm.send(p, tag, meta={"shape": list(shape)})
        else:
            enc = None
            shape = tuple(int(s) for s in ctx.comm.recv(owner, tag).meta["shape"])
        self.device = mpc
        self.owner = owner
        self.shape = tuple(shape)
        self.fxp = mpc.frac_bits if fxp else 0
        self._handle = mpc.proto.private_masked_setup(owner, enc, self.shape)

    def _prod(self, y: SecretArray, rows, transpose: bool) -> SecretArray:
        from .semi2k import _rows_shape

        sub = _rows_shape(self.shape, rows)
        if transpose:
            sub = sub[::-1]
        share = self.device.proto.private_masked_matmul(self._handle, rows, y.share, y.shape, transpose=transpose)
        return y._finish_product(share, matmul_shape(sub, y.shape), self.fxp + y.fxp)

    def matmul(self, y: SecretArray, rows=slice(None)) -> SecretArray:
        return self._prod(y, rows, False)

    def rmatmul_t(self, y: SecretArray, rows=slice(None)) -> SecretArray:
        return self._prod(y, rows, True)


class BlockMatrix:
    """Column blocks held by different parties (plaintext at an owner, or already secret),
    each prepared once; products split the right operand by blocks and sum/concatenate.

    >>> # Xm = BlockMatrix(mpc, {"bank": Xb, "partner": Xp_secret}, rows=train_rows)
    >>> # z = Xm.matmul(w, rows=slice(0, 1024)); g = Xm.rmatmul_t(r, rows=slice(0, 1024))
    """

    def __init__(self, mpc, blocks: dict, rows=None):
        from ..runtime.device import PartyObject

        self.device = mpc
        self.blocks = []
        for party, b in blocks.items():
            if isinstance(b, SecretArray):
                self.blocks.append(MaskedMatrix(b if rows is None else b[rows]))
            elif isinstance(b, PartyObject):
                src = b if rows is None else mpc.ctx.party(b.owner).run(lambda v: np.asarray(v)[rows], b)
                self.blocks.append(PrivateMaskedMatrix(mpc, src))
            else:
                raise TypeError(f"block of '{party}' must be a PartyObject or a SecretArray, got {type(b).__name__}")
        self.widths = [blk.shape[1] for blk in self.blocks]
        n_rows = {blk.shape[0] for blk in self.blocks}
        if len(n_rows) > 1:
            raise ValueError(f"column blocks have different row counts: {[blk.shape for blk in self.blocks]}")
        self.shape = (n_rows.pop() if n_rows else 0, sum(self.widths))

    def matmul(self, w: SecretArray, rows=slice(None)) -> SecretArray:
        out = None
        off = 0
        for blk, k in zip(self.blocks, self.widths):
            part = blk.matmul(w[off : off + k], rows=rows)
            out = part if out is None else out + part
            off += k
        return out

    def rmatmul_t(self, e: SecretArray, rows=slice(None)) -> SecretArray:
        from .secret_array import concatenate

        return concatenate([blk.rmatmul_t(e, rows=rows) for blk in self.blocks], axis=0)
