"""SecretArray: a numpy-like array whose value is secret-shared among an MPC device.

Arithmetic with public values (numbers, numpy arrays), with other SecretArrays, and
with private values (a PartyObject, shared on the fly) works like numpy, including
broadcasting. Values are fixed point with `frac_bits` fractional bits, or ring
integers (`fxp == 0`, e.g. comparison results); products are truncated back to
`frac_bits` automatically. Nothing is revealed unless `reveal()` is called.

>>> # y = (x * 2.5 + x.sum()).reveal()   # inside an SPMD program
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core import ring

_U = np.uint64


def matmul_shape(a: tuple, b: tuple) -> tuple:
    """Result shape of a @ b under numpy rules, computed without touching data."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("matmul: scalar operands are not allowed, use *")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise ValueError(f"matmul: shapes {a} and {b} not aligned: {ka} (dim {len(a) - 1}) != {kb}")
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return tuple(b[:-2]) + (b[-1],)
    if len(b) == 1:
        return tuple(a[:-1])
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return tuple(batch) + (a[-2], b[-1])


def _is_secret(x) -> bool:
    return isinstance(x, SecretArray)


class SecretArray:
    __array_priority__ = 1000  # numpy defers binary ops to us

    def __init__(self, device, share, shape, fxp: int):
        self.device = device
        self.share = share
        self.shape = tuple(shape) if shape is not None else None
        self.fxp = fxp

    # -- basics --------------------------------------------------------------------
    @property
    def proto(self):
        return self.device.proto

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d SecretArray")
        return self.shape[0]

    def __repr__(self) -> str:
        kind = f"fxp{self.fxp}" if self.fxp else "int"
        return f"SecretArray(shape={self.shape}, {kind}, protocol={self.device.protocol_name})"

    def _new(self, share, shape, fxp) -> "SecretArray":
        return SecretArray(self.device, share, shape, fxp)

    # -- reveal -----------------------------------------------------------------------
    def reveal(self, to: str | None = None):
        """Open the value: to all compute parties (to=None, returns ndarray there) or to one party
        (returns a PartyObject owned by `to`). Fixed-point values decode to float64."""
        shape, fxp = self.shape, self.fxp
        if to is not None and to not in self.device.members:
            # A party outside the device holds only a handle: it learns the (public)
            # shape and scale from the first compute party.
            ctx = self.device.ctx
            first = self.device.parties[0]
            if ctx.me == first:
                ctx.comm.send(to, "reveal-meta", meta={"shape": list(shape), "fxp": fxp})
            elif ctx.me == to:
                m = ctx.comm.recv(first, "reveal-meta").meta
                shape, fxp = tuple(int(v) for v in m["shape"]), int(m["fxp"])
                self.shape, self.fxp = shape, fxp
        raw = self.proto.reveal(self.share, shape, to=to)
        val = None
        if raw is not None:
            val = self.device.fxp.decode(raw) if self.fxp else raw.view(np.int64).copy()
            if self.fxp and self.fxp != self.device.frac_bits:
                val = raw.view(np.int64).astype(np.float64) / float(1 << self.fxp)
        if to is None:
            return val
        from ..runtime.device import PartyObject

        return PartyObject(self.device.ctx.party(to), val)

    # -- coercion ----------------------------------------------------------------------
    def _coerce(self, other) -> "SecretArray | np.ndarray":
        from ..runtime.device import PartyObject

        if _is_secret(other):
            if other.device is not self.device:
                raise ValueError("SecretArrays of different MPC devices cannot be combined")
            return other
        if isinstance(other, PartyObject):
            return self.device.transfer_in(other)
        return np.asarray(other)

    def _encode_public(self, c: np.ndarray, fxp: int) -> np.ndarray:
        if fxp:
            return self.device.fxp.encode(c) if fxp == self.device.frac_bits else np.rint(np.asarray(c, dtype=np.float64) * (1 << fxp)).astype(np.int64).view(_U)
        c = np.asarray(c)
        if c.dtype.kind == "f":
            if not np.all(np.equal(np.mod(c, 1), 0)):
                raise TypeError("cannot add a non-integer public value to an integer SecretArray; use .astype_fxp() first")
        return np.asarray(c).astype(np.int64).view(_U)

    def _align(self, a: "SecretArray", b: "SecretArray"):
        """Bring two secrets to the same fixed-point scale (an integer secret is scaled up, free)."""
        if a.fxp == b.fxp:
            return a, b
        if a.fxp < b.fxp:
            return a._scaled(b.fxp), b
        return a, b._scaled(a.fxp)

    def _scaled(self, fxp: int) -> "SecretArray":
        return self._new(self.proto.mul_public(self.share, _U(1 << (fxp - self.fxp))), self.shape, fxp)

    def astype_fxp(self) -> "SecretArray":
        """Integer secret -> fixed point (multiplying by 2^f, no communication)."""
        return self if self.fxp else self._scaled(self.device.frac_bits)

    # -- linear ops ----------------------------------------------------------------------
    def __add__(self, other):
        o = self._coerce(other)
        if _is_secret(o):
            a, b = self._align(self, o)
            shape = np.broadcast_shapes(a.shape, b.shape)
            return self._new(self.proto.add(a.share, b.share), shape, a.fxp)
        fxp = self.fxp
        if not fxp and np.asarray(o).dtype.kind == "f" and not np.all(np.mod(o, 1) == 0):
            return self.astype_fxp() + o
        shape = np.broadcast_shapes(self.shape, np.shape(o))
        return self._new(self.proto.add_public(self.share, self._encode_public(o, fxp)), shape, fxp)

    __radd__ = __add__

    def __neg__(self):
        return self._new(self.proto.neg(self.share), self.shape, self.fxp)

    def __sub__(self, other):
        o = self._coerce(other)
        if _is_secret(o):
            a, b = self._align(self, o)
            return self._new(self.proto.sub(a.share, b.share), np.broadcast_shapes(a.shape, b.shape), a.fxp)
        return self + (-np.asarray(o))

    def __rsub__(self, other):
        return (-self) + other

    # -- multiplication --------------------------------------------------------------------
    def _finish_product(self, share, shape, fxp) -> "SecretArray":
        f = self.device.frac_bits
        if fxp > f:
            share = self.proto.trunc(share, fxp - f, shape)
            fxp = f
        return self._new(share, shape, fxp)

    def __mul__(self, other):
        o = self._coerce(other)
        if _is_secret(o):
            shape = np.broadcast_shapes(self.shape, o.shape)
            if o is self:
                share = self.proto.square(self.share, self.shape)
            else:
                share = self.proto.mul(self.share, o.share, self.shape, o.shape)
            return self._finish_product(share, shape, self.fxp + o.fxp)
        o = np.asarray(o)
        shape = np.broadcast_shapes(self.shape, o.shape)
        if o.dtype.kind in "iub" or (o.dtype.kind == "f" and o.size and np.all(np.mod(o, 1) == 0) and np.all(np.abs(o) < 2**52)):
            return self._new(self.proto.mul_public(self.share, o.astype(np.int64).view(_U)), shape, self.fxp)
        f = self.device.frac_bits
        return self._finish_product(self.proto.mul_public(self.share, self.device.fxp.encode(o)), shape, self.fxp + f)

    __rmul__ = __mul__

    def square(self) -> "SecretArray":
        return self * self

    def __truediv__(self, other):
        if _is_secret(other) or not np.isscalar(other) and not isinstance(other, np.ndarray):
            from . import nonlinear

            return nonlinear.div(self, self._coerce(other))
        return self * (1.0 / np.asarray(other, dtype=np.float64))

    def __rtruediv__(self, other):
        from . import nonlinear

        return nonlinear.div(other, self)

    def __matmul__(self, other):
        o = self._coerce(other)
        if _is_secret(o):
            shape = matmul_shape(self.shape, o.shape)
            share = self.proto.matmul(self.share, o.share, self.shape, o.shape)
            return self._finish_product(share, shape, self.fxp + o.fxp)
        o = np.asarray(o)
        shape = matmul_shape(self.shape, o.shape)
        if o.dtype.kind in "iub":
            return self._new(self.proto.map(lambda s: ring.matmul(s, o.astype(np.int64).view(_U)), self.share), shape, self.fxp)
        enc = self.device.fxp.encode(o)
        share = self.proto.map(lambda s: ring.matmul(s, enc), self.share)
        return self._finish_product(share, shape, self.fxp + self.device.frac_bits)

    def __rmatmul__(self, other):
        o = self._coerce(other)
        if _is_secret(o):
            return o @ self
        o = np.asarray(o)
        shape = matmul_shape(o.shape, self.shape)
        if o.dtype.kind in "iub":
            return self._new(self.proto.map(lambda s: ring.matmul(o.astype(np.int64).view(_U), s), self.share), shape, self.fxp)
        enc = self.device.fxp.encode(o)
        share = self.proto.map(lambda s: ring.matmul(enc, s), self.share)
        return self._finish_product(share, shape, self.fxp + self.device.frac_bits)

    def __pow__(self, k: int):
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError("only non-negative integer powers are supported; use exp/log for others")
        result = None
        base = self
        while k:
            if k & 1:
                result = base if result is None else result * base
            k >>= 1
            if k:
                base = base * base
        return result if result is not None else self * 0 + 1

    # -- comparisons (results are integer 0/1 secrets) -------------------------------------
    def _diff(self, other):
        o = self._coerce(other)
        return self - o

    def __lt__(self, other):
        d = self._diff(other)
        return self._new(self.proto.msb(d.share, d.shape), d.shape, 0)

    def __gt__(self, other):
        o = self._coerce(other)
        if _is_secret(o):
            return o < self
        d = (-self) + o
        return self._new(self.proto.msb(d.share, d.shape), d.shape, 0)

    def __le__(self, other):
        return 1 - (self > other)

    def __ge__(self, other):
        return 1 - (self < other)

    def eq(self, other) -> "SecretArray":
        d = self._diff(other)
        return self._new(self.proto.eqz(d.share, d.shape), d.shape, 0)

    def ne(self, other) -> "SecretArray":
        return 1 - self.eq(other)

    # -- structure -----------------------------------------------------------------------------
    def _structural(self, fn, shape_fn=None) -> "SecretArray":
        shape = (shape_fn or fn)(np.empty(self.shape, dtype=np.int8)).shape
        return self._new(self.proto.map(fn, self.share), shape, self.fxp)

    def __getitem__(self, idx):
        if _is_secret(idx):
            raise TypeError("indexing by a secret is not supported; use where()/select")
        return self._structural(lambda s: s[idx] if np.ndim(s) == len(self.shape) else s[(slice(None),) + (idx if isinstance(idx, tuple) else (idx,))])

    def reshape(self, *shape) -> "SecretArray":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._structural(lambda s: s.reshape(s.shape[: s.ndim - len(self.shape)] + shape))

    def flatten(self) -> "SecretArray":
        return self.reshape(-1)

    ravel = flatten

    def transpose(self, *axes) -> "SecretArray":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        nd = len(self.shape)
        ax = tuple(axes) if axes else tuple(range(nd))[::-1]

        def fn(s):
            lead = s.ndim - nd
            return np.transpose(s, tuple(range(lead)) + tuple(lead + a for a in ax))

        return self._structural(fn)

    @property
    def T(self) -> "SecretArray":
        return self.transpose()

    def _axis(self, s, axis):
        lead = s.ndim - len(self.shape)
        if axis is None:
            return tuple(range(lead, s.ndim))
        axes = axis if isinstance(axis, tuple) else (axis,)
        return tuple(lead + (a % len(self.shape)) for a in axes)

    def sum(self, axis=None, keepdims: bool = False) -> "SecretArray":
        return self._structural(lambda s: np.sum(s, axis=self._axis(s, axis), keepdims=keepdims, dtype=_U))

    def mean(self, axis=None, keepdims: bool = False) -> "SecretArray":
        s = self.sum(axis, keepdims)
        n = self.size // max(s.size, 1) if self.size else 1
        return s.astype_fxp() * (1.0 / n)

    def broadcast_to(self, shape) -> "SecretArray":
        shape = tuple(shape)
        return self._structural(lambda s: np.broadcast_to(s, s.shape[: s.ndim - len(self.shape)] + shape).copy())

    def expand_dims(self, axis: int) -> "SecretArray":
        return self._structural(lambda s: np.expand_dims(s, axis if axis < 0 else s.ndim - len(self.shape) + axis))

    def squeeze(self, axis=None) -> "SecretArray":
        return self._structural(lambda s: np.squeeze(s, axis=None if axis is None else self._axis(s, axis)))

    # -- nonlinear shortcuts (see jointml.mpc.nonlinear) ------------------------------------------
    def __abs__(self):
        from . import nonlinear

        return nonlinear.abs(self)

    def relu(self) -> "SecretArray":
        from . import nonlinear

        return nonlinear.relu(self)

    def exp(self) -> "SecretArray":
        from . import nonlinear

        return nonlinear.exp(self)

    def log(self) -> "SecretArray":
        from . import nonlinear

        return nonlinear.log(self)

    def sqrt(self) -> "SecretArray":
        from . import nonlinear

        return nonlinear.sqrt(self)

    def sigmoid(self, mode: str = "accurate") -> "SecretArray":
        from . import nonlinear

        return nonlinear.sigmoid(self, mode=mode)

    def clip(self, lo=None, hi=None) -> "SecretArray":
        from . import nonlinear

        return nonlinear.clip(self, lo, hi)

    def max(self, axis=None, keepdims: bool = False) -> "SecretArray":
        from . import nonlinear

        return nonlinear.max(self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False) -> "SecretArray":
        from . import nonlinear

        return nonlinear.min(self, axis, keepdims)

    def argmax(self, axis=None, keepdims: bool = False) -> "SecretArray":
        from . import nonlinear

        return nonlinear.argmax(self, axis, keepdims)

    def argmin(self, axis=None, keepdims: bool = False) -> "SecretArray":
        from . import nonlinear

        return nonlinear.argmin(self, axis, keepdims)


def concatenate(arrays: Sequence[SecretArray], axis: int = 0) -> SecretArray:
    """Concatenate SecretArrays along an existing axis (local, no communication)."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    first = arrays[0]
    fx = max(a.fxp for a in arrays)
    arrays = [a if a.fxp == fx else a._scaled(fx) for a in arrays]
    nd = len(first.shape)
    ax = axis % nd
    shape = np.concatenate([np.empty(a.shape, np.int8) for a in arrays], axis=ax).shape

    def fn(*ss):
        lead = ss[0].ndim - nd
        return np.concatenate(ss, axis=lead + ax)

    return first._new(first.proto.map(fn, *[a.share for a in arrays]), shape, fx)


def stack(arrays: Sequence[SecretArray], axis: int = 0) -> SecretArray:
    return concatenate([a.expand_dims(axis) for a in arrays], axis=axis)
