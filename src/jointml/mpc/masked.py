"""Reusable secret data matrices for training loops.

`MaskedMatrix(X)` prepares a secret matrix once so that the many products of a
training loop — `X[batch] @ w` and `X[batch].T @ e` with fresh secrets w, e — cost
traffic proportional to w and e, not to X. In semi2k, X is opened once as
E = X - A for a dealer mask A that is reused with fresh triples; in aby3 products
already open nothing of X.

Security: that of the device's protocol. Opening E = X - A reveals nothing (A is a
uniform mask from the correlation provider, never reused for another matrix); the
shapes of X and of the row selections are public.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     X = ctx.party("alice").run(lambda: np.arange(6.0).reshape(3, 2)).to(mpc)
...     w = ctx.party("bob").run(lambda: np.array([1.0, -1.0])).to(mpc)
...     Xm = MaskedMatrix(X)
...     return Xm.matmul(w, rows=slice(0, 2)).reveal(), Xm.rmatmul_t(X[:, 0]).reveal()
>>> z, g = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
>>> np.round(z, 4).tolist(), np.round(g, 4).tolist()
([-1.0, -1.0], [20.0, 26.0])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import DataError, ParameterError
from ..runtime.collectives import broadcast
from .array import SecretArray, SecretTypeError, concatenate
from .shapes import Shape, matmul_shape, received_shape, rows_shape

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.device import PartyObject
    from .device import MpcDevice

__all__ = ["MaskedMatrix", "PrivateMaskedMatrix", "BlockMatrix"]

Raw = tuple[Any, Shape, int]


class MaskedMatrix:
    """A secret matrix prepared once for many products (see the module docstring)."""

    def __init__(self, x: SecretArray):
        if len(x.shape) != 2:
            raise ParameterError(f"MaskedMatrix needs a 2-D secret, got shape {x.shape}", field="shape")
        self.x = x
        self.shape = x.shape
        self.fxp = x.fxp
        self._handle = x.proto.masked_setup(x.share, x.shape)

    @property
    def device(self) -> MpcDevice:
        return self.x.device

    def _rows_shape(self, rows: Any) -> Shape:
        return rows_shape(self.shape, rows)

    def raw(self, y: SecretArray, rows: Any, transpose: bool) -> Raw:
        """(share, shape, fxp) of X[rows] @ y (or X[rows].T @ y) before truncation."""
        sub = self._rows_shape(rows)
        if transpose:
            sub = sub[::-1]
        share = self.x.proto.masked_matmul(self._handle, rows, y.share, y.shape, transpose=transpose)
        return share, matmul_shape(sub, y.shape), self.fxp + y.fxp

    def matmul(self, y: SecretArray, rows: Any = slice(None)) -> SecretArray:
        """X[rows] @ y."""
        sub = self._rows_shape(rows)
        share = self.x.proto.masked_matmul(self._handle, rows, y.share, y.shape, transpose=False)
        return self.x._finish_product(share, matmul_shape(sub, y.shape), self.fxp + y.fxp)

    def rmatmul_t(self, y: SecretArray, rows: Any = slice(None)) -> SecretArray:
        """X[rows].T @ y."""
        sub = self._rows_shape(rows)[::-1]
        share = self.x.proto.masked_matmul(self._handle, rows, y.share, y.shape, transpose=True)
        return self.x._finish_product(share, matmul_shape(sub, y.shape), self.fxp + y.fxp)


class PrivateMaskedMatrix:
    """A matrix one party holds in plaintext, prepared for many products with secrets.

    In semi2k the owner sends E = X - A once (only the owner: half the traffic of
    masking a shared matrix); each later X[rows] @ y costs one round in which the other
    parties send their masked shares of y to the owner."""

    def __init__(self, mpc: MpcDevice, obj: PartyObject, fxp: bool = True):
        from ..runtime.device import PartyObject

        if not isinstance(obj, PartyObject):
            raise SecretTypeError("PrivateMaskedMatrix needs a PartyObject (the owner's plaintext matrix)", field="obj")
        ctx = mpc.ctx
        owner = obj.owner
        enc = None
        meta = None
        if ctx.me == owner:
            v = np.asarray(obj.value, dtype=np.float64 if fxp else None)
            if v.ndim != 2:
                raise DataError(f"a private matrix must be 2-D, got shape {v.shape}", party=owner, field="shape")
            enc = mpc.fxp.encode(v) if fxp else v.astype(np.int64).view(np.uint64)
            meta = {"shape": list(v.shape)}
        shape = received_shape(broadcast(ctx, owner, meta=meta, name="pm").meta.get("shape"), party=owner)
        self.device = mpc
        self.owner = owner
        self.shape = tuple(shape)
        self.fxp = mpc.frac_bits if fxp else 0
        self._handle = mpc.proto.private_masked_setup(owner, enc, self.shape)

    def raw(self, y: SecretArray, rows: Any, transpose: bool) -> Raw:
        """(share, shape, fxp) of X[rows] @ y (or X[rows].T @ y) before truncation."""
        (out,) = _private_raw([(self, y, rows, transpose)])
        return out

    def _prod(self, y: SecretArray, rows: Any, transpose: bool) -> SecretArray:
        share, shape, fxp = self.raw(y, rows, transpose)
        return y._finish_product(share, shape, fxp)

    def matmul(self, y: SecretArray, rows: Any = slice(None)) -> SecretArray:
        """X[rows] @ y."""
        return self._prod(y, rows, False)

    def rmatmul_t(self, y: SecretArray, rows: Any = slice(None)) -> SecretArray:
        """X[rows].T @ y."""
        return self._prod(y, rows, True)


def _private_raw(items: Sequence[tuple[PrivateMaskedMatrix, SecretArray, Any, bool]]) -> list[Raw]:
    """Several private-matrix products in one round; returns [(share, shape, fxp)]."""
    if not items:
        return []
    proto = items[0][0].device.proto
    shares = proto.private_masked_matmul_many([(m._handle, rows, y.share, y.shape, t) for m, y, rows, t in items])
    out = []
    for (m, y, rows, t), share in zip(items, shares):
        sub = rows_shape(m.shape, rows)
        if t:
            sub = sub[::-1]
        out.append((share, matmul_shape(sub, y.shape), m.fxp + y.fxp))
    return out


class BlockMatrix:
    """Column blocks held by different parties (plaintext at an owner, or already secret),
    each prepared once; products split the right operand by blocks and sum/concatenate.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     Xa = ctx.party("alice").run(lambda: np.array([[1.0], [2.0]]))
    ...     Xb = ctx.party("bob").run(lambda: np.array([[3.0, 4.0], [5.0, 6.0]])).to(mpc)
    ...     Xm = BlockMatrix(mpc, {"alice": Xa, "bob": Xb})
    ...     w = ctx.party("bob").run(lambda: np.array([1.0, 0.5, -1.0])).to(mpc)
    ...     return Xm.shape, Xm.matmul(w).reveal()
    >>> shape, z = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    >>> shape, np.round(z, 4).tolist()
    ((2, 3), [-1.5, -1.5])
    """

    def __init__(self, mpc: MpcDevice, blocks: dict[str, Any], rows: Any = None):
        from ..runtime.device import PartyObject

        self.device = mpc
        self.blocks: list[MaskedMatrix | PrivateMaskedMatrix] = []
        for party, b in blocks.items():
            if isinstance(b, SecretArray):
                self.blocks.append(MaskedMatrix(b if rows is None else b[rows]))
            elif isinstance(b, PartyObject):
                src = b if rows is None else mpc.ctx.party(b.owner).run(lambda v: np.asarray(v)[rows], b)
                self.blocks.append(PrivateMaskedMatrix(mpc, src))
            else:
                raise SecretTypeError(f"block must be a PartyObject or a SecretArray, got {type(b).__name__}",
                                      party=party, field="blocks")
        self.widths = [blk.shape[1] for blk in self.blocks]
        n_rows = {blk.shape[0] for blk in self.blocks}
        if len(n_rows) > 1:
            raise DataError(f"column blocks have different row counts: {[blk.shape for blk in self.blocks]}",
                            field="blocks")
        self.shape = (n_rows.pop() if n_rows else 0, sum(self.widths))

    def _raw_parts(self, operands: Sequence[SecretArray], rows: Any, transpose: bool) -> list[Raw]:
        """Untruncated products of every block; private blocks share one round."""
        priv = [(i, (blk, y, rows, transpose)) for i, (blk, y) in enumerate(zip(self.blocks, operands))
                if isinstance(blk, PrivateMaskedMatrix)]
        res: dict[int, Raw] = dict(zip([i for i, _ in priv], _private_raw([it for _, it in priv])))
        for i, (blk, y) in enumerate(zip(self.blocks, operands)):
            if i not in res:
                res[i] = blk.raw(y, rows, transpose)
        return [res[i] for i in range(len(self.blocks))]

    def _finish(self, like: SecretArray, share: Any, shape: Shape, fxp: int) -> SecretArray:
        return like._finish_product(share, shape, fxp)

    def matmul(self, w: SecretArray, rows: Any = slice(None), truncate: bool = True) -> SecretArray:
        """X[rows] @ w: one truncation for the sum of all blocks' products (none with
        truncate=False: the result keeps the product's scale, e.g. 2f fractional bits)."""
        offs = np.concatenate([[0], np.cumsum(self.widths)]).astype(int)
        parts = self._raw_parts([w[offs[i] : offs[i + 1]] for i in range(len(self.blocks))], rows, False)
        fxps = {p[2] for p in parts}
        if len(fxps) > 1:  # blocks of different scales: truncate each (rare: int + fixed-point blocks)
            out = self._finish(w, *parts[0])
            for share, shape, fxp in parts[1:]:
                out = out + self._finish(w, share, shape, fxp)
            return out
        proto = w.proto
        total = parts[0][0]
        for share, _, _ in parts[1:]:
            total = proto.add(total, share)
        if not truncate:
            return SecretArray(self.device, total, parts[0][1], parts[0][2])
        return self._finish(w, total, parts[0][1], parts[0][2])

    def rmatmul_t(self, e: SecretArray, rows: Any = slice(None), truncate: bool = True) -> SecretArray:
        """X[rows].T @ e: the blocks' products concatenated, truncated once (not at all with
        truncate=False when every block has the same scale: the result keeps the product's scale)."""
        parts = self._raw_parts([e] * len(self.blocks), rows, True)
        raws = [SecretArray(self.device, share, shape, fxp) for share, shape, fxp in parts]
        if len({r.fxp for r in raws}) > 1:
            return concatenate([self._finish(e, r.share, r.shape, r.fxp) for r in raws], axis=0)
        cat = concatenate(raws, axis=0)
        if not truncate:
            return cat
        return self._finish(e, cat.share, cat.shape, cat.fxp)
