"""Lowering of the implementations chosen by `jointml.dsl.passes.select` onto the protocol's
masked-matrix kernels (`Protocol.masked_setup` / `private_masked_setup` and their products).

Security: that of the protocol's kernels (see `jointml.mpc.masked`): a matrix is opened
only as X - A for a one-time dealer mask A (semi2k), or stays in replicated shares (aby3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..mpc import SecretArray
from ..mpc.batched import rescale_many
from ..mpc.protocols.base import Protocol
from ..mpc.shapes import matmul_shape, rows_shape
from .ir import Op

__all__ = ["MaskedHandle", "run_masked", "run_private_many", "fused"]


def fused(proto: Any) -> bool:
    """Whether a masked product on `proto` is the generic one (the shares' own matrix
    product, aby3) and the protocol fuses a product with its truncation: then the product
    and its truncation are one `matmul_trunc` (2 rounds instead of 1 + 2)."""
    # a class (the selection), a protocol, or the cost model's probe (which prices the real class)
    cls: Any = proto if isinstance(proto, type) else getattr(proto, "real", type(proto))
    return (cls.masked_matmul is Protocol.masked_matmul and cls.private_masked_matmul is Protocol.private_masked_matmul
            and "matmul_trunc" in cls.capabilities)


class MaskedHandle:
    """A matrix prepared once: the protocol's handle, its shape and scale, and how it was made."""

    def __init__(self, handle: Any, shape: tuple[int, ...], fxp: int, kind: str):
        self.handle = handle
        self.shape = shape
        self.fxp = fxp
        self.kind = kind


def run_masked(ex: Any, o: Op, ins: list[Any]) -> Any:
    """Execute a `masked_setup` or `masked_matmul` op at this party (SPMD)."""
    mpc = ex.mpc
    proto = mpc.proto
    if o.op == "masked_setup":
        x = o.ins[0]
        fxp = mpc.frac_bits if x.dtype == "f" else 0
        if o.attrs["kind"] == "private":
            owner = x.vis.owner  # type: ignore[union-attr]
            enc = None
            if ex.me == owner or ex.omniscient:
                a = np.asarray(ins[0], dtype=np.float64 if fxp else np.int64)
                enc = mpc.fxp.encode(a) if fxp else a.view(np.uint64)
            return MaskedHandle(proto.private_masked_setup(owner, enc, x.shape), x.shape, fxp, "private")
        s = ins[0] if isinstance(ins[0], SecretArray) else ex._share(x, ins[0])
        return MaskedHandle(proto.masked_setup(s.share, s.shape), x.shape, s.fxp, "secret")
    h: MaskedHandle = ins[0]
    y: SecretArray = ins[1]
    transpose = o.attrs["transpose"]
    rows = _rows(o, ins)
    sub = rows_shape(h.shape, rows)
    if transpose:
        sub = sub[::-1]
    out = matmul_shape(sub, y.shape)
    if fused(proto) and h.fxp and y.fxp and h.fxp + y.fxp - mpc.frac_bits == mpc.frac_bits:
        block = None if ex.omniscient else proto.map(lambda s: _block(s, rows, transpose, len(h.shape)), h.handle.share)
        share = proto.matmul_trunc(block, y.share, sub, y.shape, mpc.frac_bits)
        return SecretArray(mpc, share, out, mpc.frac_bits)
    kernel = proto.private_masked_matmul if h.kind == "private" else proto.masked_matmul
    share = kernel(h.handle, rows, y.share, y.shape, transpose)
    raw = SecretArray(mpc, share, out, h.fxp + y.fxp)
    return rescale_many([raw])[0]


def _block(s: Any, rows: Any, transpose: bool, ndim: int) -> Any:
    """Rows `rows` of a share component (transposed if asked), as `Protocol.masked_matmul`."""
    x = s[(slice(None),) * (s.ndim - ndim) + (rows,)]
    return np.swapaxes(x, -1, -2) if transpose else x


def _rows(o: Op, ins: list[Any]) -> Any:
    size = o.attrs["size"]
    return slice(None) if size is None else slice(int(ins[2]), int(ins[2]) + size)


def run_private_many(ex: Any, inputs: list[list[Any]], ops: list[Op]) -> list[SecretArray]:
    """Several private-matrix products in one round (`Protocol.private_masked_matmul_many`),
    their truncations in one more."""
    mpc = ex.mpc
    if fused(mpc.proto):  # each product fused with its truncation (as many rounds, fewer bytes)
        return [run_masked(ex, o, ins) for ins, o in zip(inputs, ops)]
    items, shapes = [], []
    for ins, o in zip(inputs, ops):
        h, y = ins[0], ins[1]
        rows = _rows(o, ins)
        items.append((h.handle, rows, y.share, y.shape, o.attrs["transpose"]))
        sub = rows_shape(h.shape, rows)
        shapes.append((matmul_shape(sub[::-1] if o.attrs["transpose"] else sub, y.shape), h.fxp + y.fxp))
    shares = mpc.proto.private_masked_matmul_many(items)
    return rescale_many([SecretArray(mpc, s, shp, fx) for s, (shp, fx) in zip(shares, shapes)])
