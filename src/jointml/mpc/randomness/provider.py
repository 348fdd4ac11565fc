"""Who supplies the correlated randomness a dealer-based protocol consumes.

semi2k's kernels need, per call, random values whose shares satisfy a relation known
to nobody: Beaver triples (elementwise and matrix), square pairs, truncation pairs,
comparison masks with the bits and bit-block monomials of the mask, random bits in
both sharings, masks for matrices reused across products. A `CorrelationProvider`
hands each compute party its shares of them; the kernels never know where they come
from. `DealerProvider` (`randomness/dealer.py`) is today's implementation: a dealer
party expands them from PRG seeds. A dealer hosted in an enclave, or an offline phase
that pre-generates them into files, is another implementation of this class, with no
kernel changed.

Contract (SPMD): every party of the device calls the same methods in the same order
with the same public arguments (shapes, dtypes); a compute party gets its shares, every
other party (the dealer itself, a party outside the device) gets None.

Timing: shares a provider must *receive* (a dealer's correction of a derived value such
as c = a*b) may be returned as a `Later`, which kernels resolve with `resolve()` only
*after* their own open. The dealer only sends, so its work (e.g. the 1000^3 ring product
of a matrix triple) then overlaps the parties' round instead of delaying it; a provider
whose shares are at hand (pre-generated, or a PRG draw) returns plain arrays. What a compute
party receives is uniformly random on its own: the provider learns nothing of the
data (it receives no protocol message) and the parties learn nothing of the masks.

>>> from jointml.mpc.randomness import DealerProvider
>>> issubclass(DealerProvider, CorrelationProvider)
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np  # noqa: F401  (doctest)

from ..shapes import Shape

Array = Any  # an array of the ring backend
DType = Any
#: picks the rows (and transposes) of a reused matrix mask, e.g. lambda a: a[rows].T
Select = Callable[[Array], Array]

__all__ = ["CorrelationProvider", "Mask", "CompareMask", "Array", "Select", "Later", "resolve"]


class Later:
    """A share that may still be in flight: `get()` waits for it on first use.

    >>> x = Later(lambda: np.arange(3))
    >>> resolve(x).tolist(), resolve(np.ones(1)).tolist()
    ([0, 1, 2], [1.0])
    >>> Later(lambda: np.arange(4).reshape(2, 2)).part(1).get().tolist()
    [2, 3]
    """

    __slots__ = ("_thunk", "_value")

    def __init__(self, thunk: Callable[[], Array]):
        self._thunk: Optional[Callable[[], Array]] = thunk
        self._value: Array = None

    def get(self) -> Array:
        if self._thunk is not None:
            self._value, self._thunk = self._thunk(), None
        return self._value

    def part(self, index: int) -> Later:
        """The `index`-th slice of the value, as a `Later` too."""
        return Later(lambda: self.get()[index])


def resolve(x: Array | Later) -> Array:
    """The value of a share that may be a `Later` (kernels call it after their open)."""
    return x.get() if isinstance(x, Later) else x


@dataclass
class Mask:
    """A random matrix mask reused across products (`matrix_mask`, `private_mask`).

    `share` is this party's share of the mask (None where it holds none); `state` is
    provider-private (a dealer keeps the whole mask there to derive later triples)."""

    share: Optional[Array] = None
    state: Any = None


@dataclass
class CompareMask:
    """Shares of a comparison mask r: r itself (arithmetic), r's compared bits
    (XOR, uint64 words: the low 63 bits index-reversed, or all 64 bits), msb(r) (XOR,
    uint8) and the 11 products of each 4-bit block of those bits (XOR, uint16,
    shape (11, *shape)): what lets the parties evaluate the first comparison levels
    locally."""

    r: Array
    bits: Array
    msb: Array
    monomials: Array


class CorrelationProvider(ABC):
    """Correlated randomness for one device. See the module docstring for the contract.

    Each method returns this party's shares (arithmetic shares sum to the value mod 2^64,
    boolean shares XOR to it) at a compute party, None elsewhere."""

    @abstractmethod
    def beaver(self, op: str, shape_a: Shape, shape_b: Shape, shape_c: Shape) -> tuple[Array, Array, Array] | None:
        """(A, B, C) with C = A * B (`op` "mul", numpy broadcasting) or C = A @ B ("matmul")."""

    @abstractmethod
    def square_pair(self, shape: Shape) -> tuple[Array, Array] | None:
        """(A, C) with C = A * A."""

    @abstractmethod
    def trunc_pair(self, shape: Shape, bits: int) -> tuple[Array, Array, Array] | None:
        """(R, H, M) with H = R >> bits and M = R >> 63 (logical shifts of the ring value R)."""

    def beaver_trunc(self, op: str, shape_a: Shape, shape_b: Shape, shape_c: Shape, bits: int
                     ) -> tuple[Array, Array, Array, tuple[Array, Array, Array]] | None:
        """A product triple and a truncation pair for its result, for a fused product + truncation:
        (A, B, C, (R, H, M)) with C = A * B ("mul"), A @ B ("matmul") or A * A ("square": B is A)
        and (R, H, M) as `trunc_pair` of `shape_c`. Default: the two calls; a provider may ship
        both in one message."""
        if op == "square":
            sq = self.square_pair(shape_a)
            pair = self.trunc_pair(shape_c, bits)
            return None if sq is None or pair is None else (sq[0], sq[0], sq[1], pair)
        t = self.beaver(op, shape_a, shape_b, shape_c)
        pair = self.trunc_pair(shape_c, bits)
        return None if t is None or pair is None else (t[0], t[1], t[2], pair)

    def prefetch(self, method: str, *args: Any) -> None:
        """Generate now what a later call `method(*args)` (same public arguments, every party
        of the device, SPMD) will return; that call then costs no generation. Default: nothing
        ahead of time (the later call generates)."""
        return None

    @abstractmethod
    def and_triples(self, lefts: Sequence[tuple[Shape, DType]],
                    rights: Sequence[tuple[int, Shape, DType]]) -> tuple[list[Array], list[Array], list[Array]] | None:
        """Boolean triples that share left masks: A_j per left, and per right (j, shape, dtype)
        B and C = A_j & B. Returns (As, Bs, Cs)."""

    @abstractmethod
    def compare_mask(self, shape: Shape, tag: str, reversed_layout: bool = True) -> CompareMask | None:
        """A comparison mask (see `CompareMask`); `tag` names the kernel ("msb", "eqz")."""

    @abstractmethod
    def random_bits(self, shape: Shape) -> tuple[Array, Array] | None:
        """(S, s): a random bit as XOR shares S (uint8, only bit 0 counts) and arithmetic shares s."""

    @abstractmethod
    def matrix_mask(self, shape: Shape) -> Mask:
        """A random mask A for a secret matrix opened once as X - A and reused."""

    @abstractmethod
    def mask_triple(self, mask: Mask, select: Select, shape_y: Shape, shape_c: Shape) -> tuple[Array, Array] | None:
        """(B, C) with C = select(A) @ B for the mask A of `matrix_mask`."""

    @abstractmethod
    def private_mask(self, owner: str, shape: Shape) -> Mask:
        """A mask A known to `owner` alone (its share is the whole mask; others hold None)."""

    def private_product(self, owner_a: str, owner_b: str, shape_a: Shape, shape_b: Shape, shape_c: Shape
                        ) -> tuple[Array | None, Array | None, Array] | None:
        """For a product X @ Y of two private matrices (X held by `owner_a`, Y by `owner_b`):
        (U, V, C_i) with U known to owner_a alone (None elsewhere), V to owner_b alone, and
        every compute party's share C_i of C = U @ V. Default: not supported."""
        from ...core.errors import ProtocolError

        raise ProtocolError(f"{type(self).__name__} supplies no private-product correlation", field="provider")

    @abstractmethod
    def private_triples(self, items: Sequence[tuple[Mask, Select, Shape, Shape, Sequence[str]]]
                        ) -> tuple[list[Array | None], list[Array]] | None:
        """For products X_o @ y of private matrices: per item (mask, select, shape_y, shape_c,
        others), a B_i for each party i in `others` (None at the owner) and shares of
        C = sum_i select(A) @ B_i. Returns (Bs, Cs)."""
