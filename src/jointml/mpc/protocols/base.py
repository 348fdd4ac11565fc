"""The interface every secret-sharing protocol implements: kernels, capabilities, costs.

`SecretArray` (the user-facing numpy-like type) and the generic circuits (comparison,
the functions of `jointml.mpc.functions`) are written against this interface only, so
a new protocol plugs in by subclassing `Protocol` and implementing its abstract kernels.

A *share* is whatever one party holds of a secret: an ndarray for semi2k, a pair of
ndarrays for aby3, None at a party that holds nothing (the dealer, an outside data
owner). Every party of the program calls every kernel at the same point (SPMD); a party
without shares gets None back. `export_share` / `import_share` turn one party's share
into plain arrays and back (persistence, enclaves); `jointml.mpc.sharing` does the same
for an outsider that splits or reconstructs a whole value. `Protocol.share_order_matters`
says whether a party's share is tied to its position in the device's party order
(replicated sharing: party i holds components i and i+1) or not (additive sharing: a
share is one summand, whatever the order), e.g. when a saved share is loaded again.

Arithmetic shares live in Z_2^64 (uint64). Boolean shares are XOR shares of unsigned
words of any width (uint8..uint64), used by the comparison circuits.

**Capabilities.** `Protocol.capabilities` names the kernels a protocol implements
natively; callers ask `proto.supports("mul_trunc")` instead of probing attributes:

| capability | meaning |
| --- | --- |
| `mul`, `square`, `matmul`, `trunc`, `msb`, `eqz`, `b_and`, `b2a_bits` | the core kernels (every protocol) |
| `mul_trunc`, `square_trunc`, `matmul_trunc` | fused product + truncation, cheaper than the two kernels in sequence |
| `masked_reuse` | `masked_setup` opens the matrix once so later products cost traffic in the right operand only |
| `private_masked` | a matrix one party holds in plaintext is masked once by its owner (cheaper than sharing it) |
| `dealer` | correlated randomness comes from a `CorrelationProvider` (a dealer party) |

The fused kernels exist on every protocol (the default composes `mul` and `trunc`);
the capability says they are cheaper than the composition.

**Truncations.** `trunc` is exact up to one unit for |x| < 2^62 on every protocol: what
callers that truncate wide values use (the internal precision of `jointml.mpc.functions`).
`trunc_product` truncates a product of two values at the device's scale and may be cheaper
with a failure probability (semi2k with 2 compute parties truncates locally); `fxp_product`
is such a product and its truncation in one call (`SecretArray`'s `*` and `@` between
secrets). `prefetch(op, *shapes)` generates a later kernel's correlated randomness ahead
of its inputs (a no-op for protocols without a provider).

**Costs.** `Protocol.cost(op, *shapes, **params)` returns a `Cost`: the bytes sent by
*all* parties of the device together (compute parties and dealer, payload only: 8 B per
ring element, frame headers excluded), the part of them sent by the dealer, and the
rounds (sequential message exchanges, the maximum over parties, as `Communicator`
counts them). It is the single source of the cost tables in the protocol docstrings
(tests/test_protocol_cost.py checks the tables and the link counters of real runs against
it) and of the DSL's cost model.

>>> from jointml.mpc.protocols import Semi2k, Aby3
>>> Semi2k.static_cost("msb", (1000,)).rounds, Aby3.static_cost("msb", (1000,)).rounds
(6, 8)
>>> Aby3.static_cost("mul", (1000,), (1000,))
Cost(bytes=24000, rounds=1, dealer_bytes=0)
>>> Semi2k.share_order_matters, Aby3.share_order_matters
(False, True)
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence, TypeVar

import numpy as np

from ...core.errors import ProtocolError
from ..shapes import Shape, matmul_shape, rows_shape

if TYPE_CHECKING:  # pragma: no cover
    from ...net.link import Communicator
    from ...runtime.context import PartyContext

Share = Any
#: an array of the ring backend (numpy today; opaque to the kernels' callers)
Array = Any
DType = Any

#: the kernels every protocol implements
CORE_CAPABILITIES = frozenset({"mul", "square", "matmul", "trunc", "msb", "eqz", "b_and", "b2a_bits"})

__all__ = ["Protocol", "Cost", "Share", "GenericMasked", "CORE_CAPABILITIES", "wraps_ring", "cost_table"]

_C = TypeVar("_C", bound=type)


def wraps_ring(cls: _C) -> _C:
    """Class decorator: ring arithmetic wraps mod 2^64 by design, so silence numpy's
    overflow warnings (raised for 0-d operands, which numpy computes as scalars)."""
    for name, fn in list(vars(cls).items()):
        if inspect.isfunction(fn) and not name.startswith("__"):
            setattr(cls, name, _quiet(fn))
    return cls


def _quiet(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def inner(*a: Any, **k: Any) -> Any:
        with np.errstate(over="ignore"):
            return f(*a, **k)

    return inner


@dataclass(frozen=True)
class Cost:
    """Traffic of one kernel call: `bytes` sent by all parties together (payload),
    `dealer_bytes` the part of them the dealer sent, `rounds` sequential exchanges.

    `a + b` is the cost of running a then b (bytes and rounds add); `a | b` of running
    them in the same rounds (bytes add, rounds take the maximum).

    >>> Cost(16, 1) + Cost(8, 2)
    Cost(bytes=24, rounds=3, dealer_bytes=0)
    >>> (Cost(16, 1) | Cost(8, 2)).rounds
    2
    """

    bytes: int
    rounds: int
    dealer_bytes: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.bytes + other.bytes, self.rounds + other.rounds, self.dealer_bytes + other.dealer_bytes)

    def __or__(self, other: Cost) -> Cost:
        return Cost(self.bytes + other.bytes, max(self.rounds, other.rounds), self.dealer_bytes + other.dealer_bytes)


FREE = Cost(0, 0)


class Protocol(ABC):
    """A secret-sharing protocol: the kernels `SecretArray` and the circuits are built from.

    Subclasses set `name`, `capabilities`, `compute` (the parties holding shares) and
    `members` (every party executing the device's operations: compute parties and a
    dealer), and implement every abstract kernel. See the module docstring for the
    share layout, capabilities and costs.
    """

    name: ClassVar[str] = "abstract"
    capabilities: ClassVar[frozenset[str]] = CORE_CAPABILITIES
    #: whether a party's share depends on its position in the party order (True unless a
    #: protocol says otherwise: a share imported at another position would be wrong)
    share_order_matters: ClassVar[bool] = True

    ctx: PartyContext
    comm: Communicator
    me: str
    #: parties that hold shares (compute parties)
    compute: list[str]
    #: all parties that execute the device's operations (compute + dealer)
    members: list[str]
    #: whether this party holds shares
    is_compute: bool

    def supports(self, capability: str) -> bool:
        """Whether this protocol implements `capability` natively (see the module table)."""
        return capability in self.capabilities

    # -- costs ---------------------------------------------------------------------------
    def cost(self, op: str, *shapes: Shape, **params: Any) -> Cost:
        """Cost of one call of kernel `op` on operands of `shapes` for this device's parties.

        Params: `bits` (trunc and fused kernels), `itemsize` (b_and, boolean share_in /
        reveal: bytes per word, default 8), `to` ("all", "member" or "outsider": reveal),
        `outsider` (share_in from a party outside the device)."""
        return self.static_cost(op, *shapes, n_compute=len(self.compute), **params)

    @classmethod
    @abstractmethod
    def static_cost(cls, op: str, *shapes: Shape, n_compute: int | None = None, **params: Any) -> Cost:
        """`cost` for a device of `n_compute` compute parties (default: the protocol's minimum)."""

    # -- share layout ----------------------------------------------------------------------
    @abstractmethod
    def export_share(self, share: Share) -> list[Array]:
        """This party's share as a list of plain uint64 arrays ([] at a party holding none)."""

    @abstractmethod
    def import_share(self, arrays: Sequence[Array], shape: Shape) -> Share:
        """The inverse of `export_share`, checking count, dtype and shape (None from [])."""

    # -- structure (local, free) ----------------------------------------------------------
    @abstractmethod
    def map(self, fn: Callable[..., Array], *shares: Share) -> Share:
        """Apply a structural/linear numpy function to every share component (reshape, index, sum...)."""

    # -- input/output -----------------------------------------------------------------------
    @abstractmethod
    def share_in(self, owner: str, value: Array | None, shape: Shape, dtype: DType = np.uint64,
                 boolean: bool = False) -> Share:
        """Secret-share `value` (ring-encoded, known at `owner` only); every party calls it."""

    @abstractmethod
    def reveal(self, x: Share, shape: Shape | None, to: str | None = None, boolean: bool = False,
               dtype: DType = np.uint64) -> Array | None:
        """Open `x` to every compute party (`to=None`) or to one party; None elsewhere."""

    # -- arithmetic ---------------------------------------------------------------------------
    @abstractmethod
    def add(self, a: Share, b: Share) -> Share:
        """x + y (numpy broadcasting). Local."""

    @abstractmethod
    def sub(self, a: Share, b: Share) -> Share:
        """x - y. Local."""

    @abstractmethod
    def neg(self, a: Share) -> Share:
        """-x. Local."""

    @abstractmethod
    def add_public(self, a: Share, c: Array) -> Share:
        """x + c for a public ring value c. Local."""

    @abstractmethod
    def mul_public(self, a: Share, c: Array) -> Share:
        """x * c for a public ring value c (no truncation). Local."""

    @abstractmethod
    def mul(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape) -> Share:
        """Elementwise product x * y (numpy broadcasting), no truncation."""

    @abstractmethod
    def square(self, a: Share, shape: Shape) -> Share:
        """x * x, no truncation."""

    @abstractmethod
    def matmul(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape) -> Share:
        """X @ Y (numpy rules for 1-D/2-D operands), no truncation."""

    @abstractmethod
    def trunc(self, a: Share, bits: int, shape: Shape) -> Share:
        """x / 2^bits with stochastic rounding (exact up to one unit for |x| < 2^62)."""

    def trunc_product(self, a: Share, bits: int, shape: Shape) -> Share:
        """Truncate a fixed-point *product* x of two values at the device's scale (what
        `SecretArray` products and matrix products use). A protocol may use a cheaper method
        whose failure probability grows with |x| (semi2k with 2 compute parties: local
        truncation, no message, wrong with probability ~|x|/2^64 per element); callers
        that truncate larger values (internal precision of `functions`, statistics) call
        `trunc`. Default: `trunc`."""
        return self.trunc(a, bits, shape)

    def fxp_product(self, kind: str, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """A fixed-point product of two values at the device's scale, truncated by `bits` with
        `trunc_product`: `kind` is "mul", "square" (b is a) or "matmul". What `SecretArray`
        products call; a protocol may fuse the two steps. Default: the kernel, then
        `trunc_product`."""
        if kind == "square":
            return self.trunc_product(self.square(a, shape_a), bits, tuple(shape_a))
        if kind == "matmul":
            return self.trunc_product(self.matmul(a, b, shape_a, shape_b), bits,
                                      matmul_shape(tuple(shape_a), tuple(shape_b)))
        shape = tuple(int(s) for s in np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
        return self.trunc_product(self.mul(a, b, shape_a, shape_b), bits, shape)

    def prefetch(self, op: str, *shapes: Shape, bits: int | None = None) -> None:
        """Generate ahead of time the correlated randomness of a later call of kernel `op` on
        operands of `shapes` (an offline phase; every party calls it, SPMD). Default: nothing
        (protocols without a provider generate what they need in the kernel)."""
        return None

    # Fused kernels: the default composes the two kernels; protocols that do better
    # override them and declare the capability.
    def mul_trunc(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """trunc(x * y, bits)."""
        shape = tuple(int(s) for s in np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
        return self.trunc(self.mul(a, b, shape_a, shape_b), bits, shape)

    def square_trunc(self, a: Share, shape: Shape, bits: int) -> Share:
        """trunc(x * x, bits)."""
        return self.trunc(self.square(a, shape), bits, tuple(shape))

    def matmul_trunc(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """trunc(X @ Y, bits)."""
        return self.trunc(self.matmul(a, b, shape_a, shape_b), bits, matmul_shape(tuple(shape_a), tuple(shape_b)))

    # -- boolean ------------------------------------------------------------------------------
    @abstractmethod
    def b_xor(self, a: Share, b: Share) -> Share:
        """x ^ y on boolean shares. Local."""

    @abstractmethod
    def b_xor_public(self, a: Share, c: Array) -> Share:
        """x ^ c for a public word c. Local."""

    @abstractmethod
    def b_and_public(self, a: Share, c: Array) -> Share:
        """x & c for a public word c. Local."""

    @abstractmethod
    def b_and(self, pairs: Sequence[tuple[Share, Share]], shapes: Sequence[Shape],
              dtypes: Sequence[DType]) -> list[Share]:
        """Several ANDs x & y of boolean shares in one round."""

    # -- conversions ----------------------------------------------------------------------------
    @abstractmethod
    def msb(self, a: Share, shape: Shape) -> Share:
        """Arithmetic share of the most significant bit (0/1) of a ring element ([x < 0])."""

    @abstractmethod
    def eqz(self, a: Share, shape: Shape) -> Share:
        """Arithmetic share of [x == 0] (0/1)."""

    @abstractmethod
    def b2a_bits(self, b: Share, shape: Shape) -> Share:
        """Arithmetic share of a boolean-shared bit (uint8 words holding 0/1)."""

    # -- reusable masked left operand (data matrices in training loops) --------------------------
    def masked_setup(self, x: Share, shape: Shape) -> Any:
        """Prepare a secret matrix for many products with fresh right operands.

        Default: keep the shares (protocols whose products open nothing of the left operand)."""
        return GenericMasked(x, shape)

    def private_masked_setup(self, owner: str, x: Array | None, shape: Shape) -> Any:
        """Like `masked_setup` for a matrix held in plaintext (ring-encoded) by `owner`.

        Default: secret-share it and fall back to `masked_setup`."""
        return self.masked_setup(self.share_in(owner, x, shape), shape)

    def private_masked_matmul(self, handle: Any, rows: Any, y: Share, shape_y: Shape, transpose: bool = False) -> Share:
        """X[rows] @ y (or X[rows].T @ y) for a handle from `private_masked_setup`."""
        return self.masked_matmul(handle, rows, y, shape_y, transpose)

    def private_masked_matmul_many(self, items: Sequence[tuple[Any, Any, Share, Shape, bool]]) -> list[Share]:
        """Several (handle, rows, y, shape_y, transpose) products; protocols may batch their rounds."""
        return [self.private_masked_matmul(*it) for it in items]

    def masked_matmul(self, handle: Any, rows: Any, y: Share, shape_y: Shape, transpose: bool = False) -> Share:
        """X[rows] @ y (or X[rows].T @ y) for a handle from `masked_setup`."""
        x = self.map(lambda s: s[(slice(None),) * (s.ndim - len(handle.shape)) + (rows,)], handle.share)
        sub_shape = rows_shape(handle.shape, rows)
        if transpose:
            x = self.map(lambda s: np.swapaxes(s, -1, -2), x)
            sub_shape = sub_shape[::-1]
        return self.matmul(x, y, sub_shape, shape_y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(compute={self.compute})"


class GenericMasked:
    """Default 'mask once' handle: protocols whose products need no opening of the
    left operand (e.g. aby3) just keep the shares and multiply normally."""

    def __init__(self, share: Share, shape: Shape):
        self.share = share
        self.shape = tuple(shape)


def _unknown(proto: str, op: str) -> ProtocolError:
    return ProtocolError(f"{proto}: no cost model for kernel '{op}'", field="op")


def cost_table(proto: type[Protocol], rows: Sequence[tuple[str, str, tuple[Shape, ...], dict[str, Any]]],
               n_compute: int | None = None) -> str:
    """A markdown table of per-element costs from `proto.static_cost` (docstrings show it).

    rows: (label, op, shapes, params); bytes are divided by the size of the first shape.

    >>> from jointml.mpc.protocols import Aby3
    >>> print(cost_table(Aby3, [("mul", "mul", ((100,), (100,)), {})]))
    | op | rounds | bytes per element, all parties | of which the dealer |
    | --- | --- | --- | --- |
    | mul | 1 | 24 | 0 |
    """
    out = ["| op | rounds | bytes per element, all parties | of which the dealer |", "| --- | --- | --- | --- |"]
    for label, op, shapes, params in rows:
        c = proto.static_cost(op, *shapes, n_compute=n_compute, **params)
        n = 1
        for s in shapes[0]:
            n *= int(s)
        out.append(f"| {label} | {c.rounds} | {_num(c.bytes / n)} | {_num(c.dealer_bytes / n)} |")
    return "\n".join(out)


def _num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def check_share_arrays(proto: str, me: str, arrays: Sequence[Array], count: int, shape: Shape) -> None:
    """`import_share`'s check: `count` uint64 arrays of `shape`, else `ProtocolError` naming the party.

    >>> check_share_arrays("aby3", "bob", [np.zeros(2, np.uint64)], 2, (2,))
    Traceback (most recent call last):
    ...
    jointml.core.errors.ProtocolError: party 'bob': aby3: a share is 2 array(s), got 1
    """
    if len(arrays) != count:
        raise ProtocolError(f"{proto}: a share is {count} array(s), got {len(arrays)}", party=me)
    for a in arrays:
        a = np.asarray(a)
        if a.dtype != np.uint64 or tuple(a.shape) != tuple(shape):
            raise ProtocolError(f"{proto}: share array has dtype {a.dtype} and shape {a.shape}, expected uint64 "
                                f"{tuple(shape)}", party=me)
