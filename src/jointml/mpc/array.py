"""SecretArray: a numpy-like array whose value is secret-shared among an MPC device.

Arithmetic with public values (numbers, numpy arrays), with other SecretArrays, and
with private values (a PartyObject, shared on the fly) works like numpy, including
broadcasting. Values are fixed point with `frac_bits` fractional bits, or ring
integers (`fxp == 0`, e.g. comparison results); products are truncated back to
`frac_bits` automatically. Nothing is revealed unless `reveal()` is called; shapes
and scales are public. The security model is the device's protocol (see
`jointml.mpc.protocols`).

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([1.0, 2.0, 3.0])).to(mpc)
...     return (x * 2.5 + x.sum()).reveal()
>>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"].tolist()
[8.5, 11.0, 13.5]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..core.backend import backend as bk
from ..core.errors import ParameterError
from ..runtime.collectives import send_to
from .shapes import Shape, broadcast_shape, matmul_shape, received_fxp, received_shape, size

if TYPE_CHECKING:  # pragma: no cover
    from .device import MpcDevice
    from .protocols import Protocol

_U = np.uint64

__all__ = ["SecretArray", "SecretTypeError", "concatenate", "stack"]


class SecretTypeError(ParameterError, TypeError):
    """An operand of the wrong kind for a secret operation (e.g. a fixed-point condition)."""


def _is_secret(x: Any) -> bool:
    return isinstance(x, SecretArray)


class SecretArray:
    """A secret-shared array on an `MpcDevice` (create one with `party_object.to(mpc)`).

    `device` is the MpcDevice, `share` this party's share (None at a party holding
    none), `shape` the public shape and `fxp` the number of fractional bits (0: a ring
    integer). Operations follow numpy; see the module docstring.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
    ...     x = ctx.party("alice").run(lambda: np.array([[1.0, -2.0], [3.0, 0.5]])).to(mpc)
    ...     y = ctx.party("bob").run(lambda: np.array([2.0, 1.0])).to(mpc)
    ...     return (x @ y).reveal(), (x < y).reveal(), x.T.shape
    >>> z, lt, shape = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    >>> np.round(z, 3).tolist(), lt.tolist(), shape
    ([0.0, 6.5], [[1, 1], [0, 1]], (2, 2))
    """

    __array_priority__ = 1000  # numpy defers binary ops to us

    def __init__(self, device: MpcDevice, share: Any, shape: Shape, fxp: int):
        self.device = device
        self.share = share
        self.shape: Shape = tuple(int(s) for s in shape)
        self.fxp = int(fxp)

    # -- basics --------------------------------------------------------------------
    @property
    def proto(self) -> Protocol:
        """The device's protocol (its kernels)."""
        return self.device.proto

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return size(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise SecretTypeError("len() of a 0-d SecretArray", field="shape")
        return self.shape[0]

    def __repr__(self) -> str:
        kind = f"fxp{self.fxp}" if self.fxp else "int"
        return f"SecretArray(shape={self.shape}, {kind}, protocol={self.device.protocol_name})"

    def _new(self, share: Any, shape: Shape, fxp: int) -> SecretArray:
        return SecretArray(self.device, share, shape, fxp)

    # -- reveal and export ----------------------------------------------------------------
    def reveal(self, to: str | None = None) -> Any:
        """Open the value: to all compute parties (to=None, returns ndarray there, None
        elsewhere) or to one party (returns a PartyObject owned by `to`). Fixed-point
        values decode to float64, integers to int64.

        >>> from jointml.mpc import MpcDevice
        >>> def prog(ctx):
        ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        ...     x = ctx.party("bob").run(lambda: np.array([7, -3])).to(mpc)
        ...     out = (x * 2).reveal(to="carol")
        ...     return out.value if ctx.me == "carol" else out.is_local
        >>> res = simulate(prog, ["alice", "bob", "carol"], mode="thread")
        >>> res["carol"].tolist(), res["alice"]
        ([14, -6], False)
        """
        shape, fxp = self.shape, self.fxp
        if to is not None and to not in self.device.members:
            # A party outside the device holds only a handle: it learns the (public)
            # shape and scale from the first compute party.
            ctx = self.device.ctx
            first = self.device.parties[0]
            got = send_to(ctx, first, to, meta={"shape": list(shape), "fxp": fxp} if ctx.me == first else None,
                          name="rm")
            if ctx.me == to and got is not None:
                shape, fxp = received_shape(got.meta.get("shape"), party=first), received_fxp(got.meta.get("fxp"), party=first)
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

    def export_share(self) -> list[np.ndarray]:
        """This party's share as plain uint64 arrays (for persistence or an enclave); [] at a
        party holding none. `MpcDevice.import_share(arrays, shape, fxp)` is the inverse.

        >>> from jointml.mpc import MpcDevice
        >>> def prog(ctx):
        ...     mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
        ...     return [a.shape for a in ctx.party("alice").run(lambda: np.zeros(4)).to(mpc).export_share()]
        >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
        [(4,), (4,)]
        """
        return self.proto.export_share(self.share)

    # -- coercion ----------------------------------------------------------------------
    def _coerce(self, other: Any) -> Any:
        from ..runtime.device import PartyObject

        if _is_secret(other):
            if other.device is not self.device:
                raise ParameterError("SecretArrays of different MPC devices cannot be combined", field="device")
            return other
        if isinstance(other, PartyObject):
            return self.device.transfer_in(other)
        return np.asarray(other)

    def _encode_public(self, c: Any, fxp: int) -> np.ndarray:
        if fxp:
            if fxp == self.device.frac_bits:
                return self.device.fxp.encode(c)
            return np.rint(np.asarray(c, dtype=np.float64) * (1 << fxp)).astype(np.int64).view(_U)
        c = np.asarray(c)
        if c.dtype.kind == "f":
            if not np.all(np.equal(np.mod(c, 1), 0)):
                raise SecretTypeError("cannot add a non-integer public value to an integer SecretArray; "
                                      "use .astype_fxp() first", field="value")
        return np.asarray(c).astype(np.int64).view(_U)

    def _align(self, a: SecretArray, b: SecretArray) -> tuple[SecretArray, SecretArray]:
        """Bring two secrets to the same fixed-point scale (an integer secret is scaled up, free)."""
        if a.fxp == b.fxp:
            return a, b
        if a.fxp < b.fxp:
            return a._scaled(b.fxp), b
        return a, b._scaled(a.fxp)

    def _scaled(self, fxp: int) -> SecretArray:
        return self._new(self.proto.mul_public(self.share, _U(1 << (fxp - self.fxp))), self.shape, fxp)

    def astype_fxp(self) -> SecretArray:
        """Integer secret -> fixed point (multiplying by 2^f, no communication)."""
        return self if self.fxp else self._scaled(self.device.frac_bits)

    # -- linear ops ----------------------------------------------------------------------
    def __add__(self, other: Any) -> SecretArray:
        o = self._coerce(other)
        if _is_secret(o):
            a, b = self._align(self, o)
            shape = broadcast_shape(a.shape, b.shape)
            return self._new(self.proto.add(a.share, b.share), shape, a.fxp)
        fxp = self.fxp
        if not fxp and np.asarray(o).dtype.kind == "f" and not np.all(np.mod(o, 1) == 0):
            lifted: SecretArray = self.astype_fxp() + o
            return lifted
        shape = broadcast_shape(self.shape, np.shape(o))
        return self._new(self.proto.add_public(self.share, self._encode_public(o, fxp)), shape, fxp)

    __radd__ = __add__

    def __neg__(self) -> SecretArray:
        return self._new(self.proto.neg(self.share), self.shape, self.fxp)

    def __sub__(self, other: Any) -> SecretArray:
        o = self._coerce(other)
        if _is_secret(o):
            a, b = self._align(self, o)
            return self._new(self.proto.sub(a.share, b.share), broadcast_shape(a.shape, b.shape), a.fxp)
        return self + (-np.asarray(o))

    def __rsub__(self, other: Any) -> SecretArray:
        out: SecretArray = (-self) + other
        return out

    # -- multiplication --------------------------------------------------------------------
    def _finish_product(self, share: Any, shape: Shape, fxp: int) -> SecretArray:
        f = self.device.frac_bits
        if fxp > f:
            # a product of two values at the device's scale (2f bits at most) takes the
            # protocol's product truncation (semi2k, 2 parties: local, no round); wider
            # products (higher internal precision) the exact one
            trunc = self.proto.trunc_product if fxp <= 2 * f else self.proto.trunc
            share = trunc(share, fxp - f, shape)
            fxp = f
        return self._new(share, shape, fxp)

    def _fxp_product(self, kind: str, o: SecretArray, shape: Shape) -> SecretArray | None:
        """A product of two secrets at the device's scale through `Protocol.fxp_product`
        (product and truncation in one kernel); None when no truncation or a wider one follows."""
        f = self.device.frac_bits
        fxp = self.fxp + o.fxp
        if not f < fxp <= 2 * f:
            return None
        share = self.proto.fxp_product(kind, self.share, o.share, self.shape, o.shape, fxp - f)
        return self._new(share, shape, f)

    def __mul__(self, other: Any) -> SecretArray:
        o = self._coerce(other)
        if _is_secret(o):
            shape = broadcast_shape(self.shape, o.shape)
            kind = "square" if o is self else "mul"
            fused = self._fxp_product(kind, o, shape)
            if fused is not None:
                return fused
            if o is self:
                share = self.proto.square(self.share, self.shape)
            else:
                share = self.proto.mul(self.share, o.share, self.shape, o.shape)
            return self._finish_product(share, shape, self.fxp + o.fxp)
        o = np.asarray(o)
        shape = broadcast_shape(self.shape, o.shape)
        if o.dtype.kind in "iub" or (o.dtype.kind == "f" and o.size and np.all(np.mod(o, 1) == 0)
                                     and np.all(np.abs(o) < 2**52)):
            return self._new(self.proto.mul_public(self.share, o.astype(np.int64).view(_U)), shape, self.fxp)
        f = self.device.frac_bits
        return self._finish_product(self.proto.mul_public(self.share, self.device.fxp.encode(o)), shape, self.fxp + f)

    __rmul__ = __mul__

    def square(self) -> SecretArray:
        """x * x (one square kernel: cheaper than a product of two secrets)."""
        return self * self

    def __truediv__(self, other: Any) -> SecretArray:
        if _is_secret(other) or not np.isscalar(other) and not isinstance(other, np.ndarray):
            from . import functions as F

            return F.div(self, self._coerce(other))
        return self * (1.0 / np.asarray(other, dtype=np.float64))

    def __rtruediv__(self, other: Any) -> SecretArray:
        from . import functions as F

        return F.div(other, self)

    def _public_matmul(self, o: np.ndarray, shape: Shape, left: bool) -> SecretArray:
        """self @ o (left=False) or o @ self (left=True) for a public o: local ring matmuls."""
        integer = o.dtype.kind in "iub"
        enc = o.astype(np.int64).view(_U) if integer else self.device.fxp.encode(o)
        fn: Callable[[Any], Any] = (lambda s: bk.matmul(enc, s)) if left else (lambda s: bk.matmul(s, enc))
        share = self.proto.map(fn, self.share)
        if integer:  # exact: no truncation, the scale is unchanged
            return self._new(share, shape, self.fxp)
        return self._finish_product(share, shape, self.fxp + self.device.frac_bits)

    def __matmul__(self, other: Any) -> SecretArray:
        o = self._coerce(other)
        if _is_secret(o):
            shape = matmul_shape(self.shape, o.shape)
            fused = self._fxp_product("matmul", o, shape)
            if fused is not None:
                return fused
            share = self.proto.matmul(self.share, o.share, self.shape, o.shape)
            return self._finish_product(share, shape, self.fxp + o.fxp)
        o = np.asarray(o)
        return self._public_matmul(o, matmul_shape(self.shape, o.shape), left=False)

    def __rmatmul__(self, other: Any) -> SecretArray:
        o = self._coerce(other)
        if _is_secret(o):
            return o @ self  # type: ignore[no-any-return]
        o = np.asarray(o)
        return self._public_matmul(o, matmul_shape(o.shape, self.shape), left=True)

    def __pow__(self, k: int) -> SecretArray:
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ParameterError("only non-negative integer powers are supported; use exp/log for others",
                                 field="exponent")
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
    def _diff(self, other: Any) -> SecretArray:
        out: SecretArray = self - self._coerce(other)
        return out

    def __lt__(self, other: Any) -> SecretArray:
        d = self._diff(other)
        return self._new(self.proto.msb(d.share, d.shape), d.shape, 0)

    def __gt__(self, other: Any) -> SecretArray:
        o = self._coerce(other)
        if _is_secret(o):
            return o < self  # type: ignore[no-any-return]
        d = (-self) + o
        return self._new(self.proto.msb(d.share, d.shape), d.shape, 0)

    def __le__(self, other: Any) -> SecretArray:
        out: SecretArray = 1 - (self > other)
        return out

    def __ge__(self, other: Any) -> SecretArray:
        out: SecretArray = 1 - (self < other)
        return out

    def eq(self, other: Any) -> SecretArray:
        """[self == other] elementwise, an integer 0/1 secret (`==` is Python identity here)."""
        d = self._diff(other)
        return self._new(self.proto.eqz(d.share, d.shape), d.shape, 0)

    def ne(self, other: Any) -> SecretArray:
        """[self != other] elementwise, an integer 0/1 secret."""
        return 1 - self.eq(other)

    # -- structure -----------------------------------------------------------------------------
    def _structural(self, fn: Callable[[Any], Any]) -> SecretArray:
        shape = fn(np.empty(self.shape, dtype=np.int8)).shape
        return self._new(self.proto.map(fn, self.share), shape, self.fxp)

    def __getitem__(self, idx: Any) -> SecretArray:
        if _is_secret(idx):
            raise SecretTypeError("indexing by a secret is not supported; use where()/select", field="index")
        nd = len(self.shape)
        tail = idx if isinstance(idx, tuple) else (idx,)
        return self._structural(lambda s: s[idx] if np.ndim(s) == nd else s[(slice(None),) + tail])

    def reshape(self, *shape: Any) -> SecretArray:
        """numpy reshape (local)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        nd = len(self.shape)
        return self._structural(lambda s: s.reshape(s.shape[: s.ndim - nd] + tuple(shape)))

    def flatten(self) -> SecretArray:
        """A 1-D view (local)."""
        return self.reshape(-1)

    ravel = flatten

    def transpose(self, *axes: Any) -> SecretArray:
        """numpy transpose (local)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        nd = len(self.shape)
        ax = tuple(axes) if axes else tuple(range(nd))[::-1]

        def fn(s: Any) -> Any:
            lead = s.ndim - nd
            return np.transpose(s, tuple(range(lead)) + tuple(lead + a for a in ax))

        return self._structural(fn)

    @property
    def T(self) -> SecretArray:
        return self.transpose()

    def _axis(self, s: Any, axis: Any) -> tuple[int, ...]:
        lead = s.ndim - len(self.shape)
        if axis is None:
            return tuple(range(lead, s.ndim))
        axes = axis if isinstance(axis, tuple) else (axis,)
        return tuple(lead + (a % len(self.shape)) for a in axes)

    def sum(self, axis: Any = None, keepdims: bool = False) -> SecretArray:
        """numpy sum (local: sums of shares are shares of the sum)."""
        return self._structural(lambda s: np.sum(s, axis=self._axis(s, axis), keepdims=keepdims, dtype=_U))

    def mean(self, axis: Any = None, keepdims: bool = False) -> SecretArray:
        """numpy mean: a local sum times the public 1/n (one truncation)."""
        s = self.sum(axis, keepdims)
        n = self.size // max(s.size, 1) if self.size else 1
        return s.astype_fxp() * (1.0 / n)

    def broadcast_to(self, shape: Shape) -> SecretArray:
        """numpy broadcast_to, materialised (local)."""
        shape = tuple(shape)
        nd = len(self.shape)
        return self._structural(lambda s: np.broadcast_to(s, s.shape[: s.ndim - nd] + shape).copy())

    def expand_dims(self, axis: int) -> SecretArray:
        """numpy expand_dims (local)."""
        nd = len(self.shape)
        return self._structural(lambda s: np.expand_dims(s, axis if axis < 0 else s.ndim - nd + axis))

    def squeeze(self, axis: Any = None) -> SecretArray:
        """numpy squeeze (local)."""
        return self._structural(lambda s: np.squeeze(s, axis=None if axis is None else self._axis(s, axis)))

    # -- nonlinear shortcuts (see jointml.mpc.functions) ------------------------------------------
    def __abs__(self) -> SecretArray:
        from . import functions as F

        return F.abs(self)

    def relu(self) -> SecretArray:
        """max(x, 0); see `jointml.mpc.functions.relu`."""
        from . import functions as F

        return F.relu(self)

    def exp(self) -> SecretArray:
        """e^x; see `jointml.mpc.functions.exp`."""
        from . import functions as F

        return F.exp(self)

    def log(self) -> SecretArray:
        """Natural log; see `jointml.mpc.functions.log`."""
        from . import functions as F

        return F.log(self)

    def sqrt(self) -> SecretArray:
        """Square root; see `jointml.mpc.functions.sqrt`."""
        from . import functions as F

        return F.sqrt(self)

    def sigmoid(self, mode: str = "accurate") -> SecretArray:
        """Logistic function; see `jointml.mpc.functions.sigmoid`."""
        from . import functions as F

        return F.sigmoid(self, mode=mode)

    def clip(self, lo: Any = None, hi: Any = None) -> SecretArray:
        """numpy clip; see `jointml.mpc.functions.clip`."""
        from . import functions as F

        return F.clip(self, lo, hi)

    def max(self, axis: Any = None, keepdims: bool = False) -> SecretArray:
        """numpy max; see `jointml.mpc.functions.max`."""
        from . import functions as F

        return F.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> SecretArray:
        """numpy min; see `jointml.mpc.functions.min`."""
        from . import functions as F

        return F.min(self, axis, keepdims)

    def argmax(self, axis: Any = None, keepdims: bool = False) -> SecretArray:
        """numpy argmax; see `jointml.mpc.functions.argmax`."""
        from . import functions as F

        return F.argmax(self, axis, keepdims)

    def argmin(self, axis: Any = None, keepdims: bool = False) -> SecretArray:
        """numpy argmin; see `jointml.mpc.functions.argmin`."""
        from . import functions as F

        return F.argmin(self, axis, keepdims)


def concatenate(arrays: Sequence[SecretArray], axis: int = 0) -> SecretArray:
    """Concatenate SecretArrays along an existing axis (local, no communication).

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     a = ctx.party("alice").run(lambda: np.ones((2, 2))).to(mpc)
    ...     b = ctx.party("bob").run(lambda: np.zeros((1, 2))).to(mpc)
    ...     return concatenate([a, b]).shape, stack([a, a], axis=1).shape
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"]
    ((3, 2), (2, 2, 2))
    """
    arrays = list(arrays)
    if not arrays:
        raise ParameterError("need at least one array to concatenate", field="arrays")
    first = arrays[0]
    fx = max(a.fxp for a in arrays)
    arrays = [a if a.fxp == fx else a._scaled(fx) for a in arrays]
    nd = len(first.shape)
    ax = axis % nd
    shape = np.concatenate([np.empty(a.shape, np.int8) for a in arrays], axis=ax).shape

    def fn(*ss: Any) -> Any:
        lead = ss[0].ndim - nd
        return np.concatenate(ss, axis=lead + ax)

    return first._new(first.proto.map(fn, *[a.share for a in arrays]), shape, fx)


def stack(arrays: Sequence[SecretArray], axis: int = 0) -> SecretArray:
    """Stack SecretArrays along a new axis (local); see `concatenate`."""
    return concatenate([a.expand_dims(axis) for a in arrays], axis=axis)
