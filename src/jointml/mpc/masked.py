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

    def raw(self, y: SecretArray, rows, transpose: bool):
        """(share, shape, fxp) of X[rows] @ y (or X[rows].T @ y) before truncation."""
        sub = self._rows_shape(rows)
        if transpose:
            sub = sub[::-1]
        share = self.x.proto.masked_matmul(self._handle, rows, y.share, y.shape, transpose=transpose)
        return share, matmul_shape(sub, y.shape), self.fxp + y.fxp

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

    def raw(self, y: SecretArray, rows, transpose: bool):
        (out,) = _private_raw([(self, y, rows, transpose)])
        return out

    def _prod(self, y: SecretArray, rows, transpose: bool) -> SecretArray:
        share, shape, fxp = self.raw(y, rows, transpose)
        return y._finish_product(share, shape, fxp)

    def matmul(self, y: SecretArray, rows=slice(None)) -> SecretArray:
        return self._prod(y, rows, False)

    def rmatmul_t(self, y: SecretArray, rows=slice(None)) -> SecretArray:
        return self._prod(y, rows, True)


def _private_raw(items):
    """Several private-matrix products in one round; returns [(share, shape, fxp)]."""
    from .semi2k import _rows_shape

    if not items:
        return []
    proto = items[0][0].device.proto
    shares = proto.private_masked_matmul_many([(m._handle, rows, y.share, y.shape, t) for m, y, rows, t in items])
    out = []
    for (m, y, rows, t), share in zip(items, shares):
        sub = _rows_shape(m.shape, rows)
        if t:
            sub = sub[::-1]
        out.append((share, matmul_shape(sub, y.shape), m.fxp + y.fxp))
    return out


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

    def _raw_parts(self, operands, rows, transpose: bool):
        """Untruncated products of every block; private blocks share one round."""
        priv = [(i, (blk, y, rows, transpose)) for i, (blk, y) in enumerate(zip(self.blocks, operands)) if isinstance(blk, PrivateMaskedMatrix)]
        res: dict[int, tuple] = dict(zip([i for i, _ in priv], _private_raw([it for _, it in priv])))
        for i, (blk, y) in enumerate(zip(self.blocks, operands)):
            if i not in res:
                res[i] = blk.raw(y, rows, transpose)
        return [res[i] for i in range(len(self.blocks))]

    def _finish(self, like: SecretArray, share, shape, fxp) -> SecretArray:
        return like._finish_product(share, shape, fxp)

    def matmul(self, w: SecretArray, rows=slice(None), truncate: bool = True) -> SecretArray:
        """X[rows] @ w: one truncation for the sum of all blocks' products (none with
        truncate=False: the result keeps the product's scale, e.g. 2f fractional bits)."""
        offs = np.concatenate([[0], np.cumsum(self.widths)]).astype(int)
        parts = self._raw_parts([w[offs[i] : offs[i + 1]] for i in range(len(self.blocks))], rows, False)
        fxps = {p[2] for p in parts}
        if len(fxps) > 1:  # blocks of different scales: truncate each (rare: int + fixed-point blocks)
            out = None
            for share, shape, fxp in parts:
                v = self._finish(w, share, shape, fxp)
                out = v if out is None else out + v
            return out
        proto = w.proto
        total = parts[0][0]
        for share, _, _ in parts[1:]:
            total = proto.add(total, share)
        if not truncate:
            return SecretArray(self.device, total, parts[0][1], parts[0][2])
        return self._finish(w, total, parts[0][1], parts[0][2])

    def rmatmul_t(self, e: SecretArray, rows=slice(None)) -> SecretArray:
        """X[rows].T @ e: the blocks' products concatenated, truncated once."""
        from .secret_array import concatenate

        parts = self._raw_parts([e] * len(self.blocks), rows, True)
        raws = [SecretArray(self.device, share, shape, fxp) for share, shape, fxp in parts]
        if len({r.fxp for r in raws}) > 1:
            return concatenate([self._finish(e, r.share, r.shape, r.fxp) for r in raws], axis=0)
        cat = concatenate(raws, axis=0)
        return self._finish(e, cat.share, cat.shape, cat.fxp)
