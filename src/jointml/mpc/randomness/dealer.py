"""Correlated randomness from a dealer (trusted third party that never sees data).

The dealer and each compute party share a PRG seed. For every correlated value
(a Beaver triple, a truncation pair, a comparison mask) the parties draw their
shares of the random inputs from their seed streams, and the dealer draws the same
streams to know the whole value; shares of derived values (c = a*b, r >> f, ...)
come from the streams too, except the last compute party's, which the dealer sends
as a correction. So the dealer sends at most one share per correlated value, and
it only ever sends: it runs ahead of the parties and its work overlaps the online
phase. The dealer learns nothing about the data: no protocol message is sent to it; it
receives only public metadata (array shapes) and the end-of-program barrier. A compute
party sees only PRG output and corrections masked by PRG streams it does not hold.

>>> from jointml.core.prg import Prg
>>> DealerProvider._total([np.array([1, 2], np.uint64), np.array([3, 4], np.uint64)]).tolist()
[4, 6]
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ...core.backend import backend as bk
from ...core.errors import ParameterError
from ...core.prg import Prg
from ..shapes import Shape
from .provider import Array, CompareMask, CorrelationProvider, DType, Later, Mask, Select

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import PartyContext

_U = np.uint64

__all__ = ["DealerProvider", "NullProvider"]


class DealerProvider(CorrelationProvider):
    """Seed-expanded correlated randomness from `dealer` for the parties `compute`.

    Construct it at the dealer and at every compute party (the seeds are agreed then)."""

    def __init__(self, ctx: PartyContext, compute: Sequence[str], dealer: str, label: str = "semi2k"):
        self.comm = ctx.comm
        self.dealer = dealer
        self.compute = list(compute)
        self.me = ctx.me
        self.is_dealer = ctx.me == dealer
        self.last = self.compute[-1]
        self.is_last = ctx.me == self.last
        self.prgs: list[Prg] = []
        # the last party's corrections not received yet, in the dealer's send order
        self._pending: deque[tuple[Later, str, DType, Shape, list[Array]]] = deque()
        # prefetched correlations by (method, public arguments), in generation order
        self._ready: dict[tuple[Any, ...], deque[Any]] = {}
        self._filling = False
        if self.is_dealer:
            self.prgs = [Prg(ctx.shared_seed(p, dealer, label + ":corr"), stream="corr") for p in self.compute]
        elif ctx.me in self.compute:
            self.prg = Prg(ctx.shared_seed(ctx.me, dealer, label + ":corr"), stream="corr")

    # -- primitives: at the dealer the list of every party's draw, at a party its own ---------
    def _rand_all(self, shape: Shape, dtype: DType = _U) -> list[Array]:
        return [bk.random(g, shape, dtype) for g in self.prgs]

    def _rand(self, shape: Shape, dtype: DType = _U) -> Array:
        return bk.random(self.prg, shape, dtype)

    def _deal(self, tag: str, value: Array, shape: Shape, dtype: DType = _U, boolean: bool = False,
              owned: bool = False) -> None:
        """Dealer: shares of `value` are the PRG draws of all but the last party; send the last its correction.

        `owned`: value is a fresh array of `dtype` the caller does not use again, corrected in
        place (no copy of a correction that can be 24 MB)."""
        # (a 0-d product comes back as a numpy scalar: copied into an array like any value)
        mine = owned and isinstance(value, np.ndarray) and value.dtype == dtype
        corr = value.reshape(shape) if mine else np.array(value, dtype=dtype, copy=True).reshape(shape)
        for g in self.prgs[:-1]:
            p = bk.random(g, shape, dtype)
            if boolean:
                corr ^= p
            else:
                corr -= p
        self.comm.send(self.last, "corr:" + tag, corr)

    def _share(self, tag: str, shape: Shape, dtype: DType = _U) -> Array | Later:
        """Party: its share of a dealer-computed value: a PRG draw, or at the last party the
        dealer's correction as a `Later` (received when first used, after the kernel's open;
        corrections are received in the dealer's send order whatever order they are used in)."""
        if not self.is_last:
            return bk.random(self.prg, shape, dtype)
        box: list[Array] = []
        later = Later(lambda: self._receive_through(box))
        self._pending.append((later, "corr:" + tag, dtype, tuple(shape), box))
        return later

    def _receive_through(self, box: list[Array]) -> Array:
        while not box:
            _, tag, dtype, shape, slot = self._pending.popleft()
            slot.append(self.comm.recv_array(self.dealer, tag, dtype, shape))
        return box[0]

    @staticmethod
    def _total(parts: Sequence[Array], boolean: bool = False) -> Array:
        """The sum (XOR) of the parties' draws, into the first draw (callers pass fresh draws)."""
        out = parts[0]
        for p in parts[1:]:
            if boolean:
                out ^= p
            else:
                out += p
        return out

    # -- offline phase -----------------------------------------------------------------------
    def prefetch(self, method: str, *args: Any) -> None:
        """Generate now the result of a later `method(*args)`: the dealer draws, computes and
        sends its correction; a compute party draws its PRG shares and receives the correction
        (it blocks here, in the offline phase, not in the kernel's round)."""
        if method not in _PREFETCHABLE:
            raise ParameterError(f"dealer: cannot prefetch '{method}'", field="method")
        self._filling = True
        try:
            out = getattr(self, method)(*args)
        finally:
            self._filling = False
        if out is not None:
            out = _resolved(out)
        self._ready.setdefault((method,) + args, deque()).append(out)

    def _take(self, *key: Any) -> Any:
        """A prefetched result for `key`, or _MISS (always _MISS while prefetching)."""
        if self._filling or not self._ready:
            return _MISS
        q = self._ready.get(key)
        if not q:
            return _MISS
        out = q.popleft()
        if not q:
            del self._ready[key]
        return out

    # -- CorrelationProvider -------------------------------------------------------------------
    def beaver(self, op: str, shape_a: Shape, shape_b: Shape, shape_c: Shape) -> tuple[Array, Array, Array] | None:
        if (got := self._take("beaver", op, shape_a, shape_b, shape_c)) is not _MISS:
            return got  # type: ignore[no-any-return]
        if self.is_dealer:
            a = self._total(self._rand_all(shape_a))
            b = self._total(self._rand_all(shape_b))
            self._deal(op, bk.matmul(a, b) if op == "matmul" else a * b, shape_c, owned=True)
            return None
        A, B = self._rand(shape_a), self._rand(shape_b)
        return A, B, self._share(op, shape_c)

    def square_pair(self, shape: Shape) -> tuple[Array, Array] | None:
        if (got := self._take("square_pair", shape)) is not _MISS:
            return got  # type: ignore[no-any-return]
        if self.is_dealer:
            t = self._total(self._rand_all(shape))
            self._deal("square", t * t, shape, owned=True)
            return None
        A = self._rand(shape)
        return A, self._share("square", shape)

    def trunc_pair(self, shape: Shape, bits: int) -> tuple[Array, Array, Array] | None:
        shape = tuple(shape)
        if (got := self._take("trunc_pair", shape, bits)) is not _MISS:
            return got  # type: ignore[no-any-return]
        if self.is_dealer:
            r = self._total(self._rand_all(shape))
            self._deal("trunc", _pair_words(r, bits), (2,) + shape, owned=True)
            return None
        R = self._rand(shape)
        hm = self._share("trunc", (2,) + shape)
        if isinstance(hm, Later):
            return R, hm.part(0), hm.part(1)
        return R, hm[0], hm[1]

    def beaver_trunc(self, op: str, shape_a: Shape, shape_b: Shape, shape_c: Shape, bits: int
                     ) -> tuple[Array, Array, Array, tuple[Array, Array, Array]] | None:
        """The triple and the truncation pair, the dealer's corrections in ONE message:
        [C, R >> bits, R >> 63] stacked (3 x |C| words)."""
        shape_a, shape_b, shape_c = tuple(shape_a), tuple(shape_b), tuple(shape_c)
        if (got := self._take("beaver_trunc", op, shape_a, shape_b, shape_c, bits)) is not _MISS:
            return got  # type: ignore[no-any-return]
        square = op == "square"
        if self.is_dealer:
            a = self._total(self._rand_all(shape_a))
            b = a if square else self._total(self._rand_all(shape_b))
            r = self._total(self._rand_all(shape_c))
            corr = _pair_words(r, bits, extra=1)
            if op == "matmul":
                corr[0] = bk.matmul(a, b)
            else:
                bk.mul(a, b, out=corr[0, ...])
            self._deal(op + "+trunc", corr, (3,) + shape_c, owned=True)
            return None
        A = self._rand(shape_a)
        B = A if square else self._rand(shape_b)
        R = self._rand(shape_c)
        corr = self._share(op + "+trunc", (3,) + shape_c)
        if isinstance(corr, Later):
            return A, B, corr.part(0), (R, corr.part(1), corr.part(2))
        return A, B, corr[0], (R, corr[1], corr[2])

    def and_triples(self, lefts: Sequence[tuple[Shape, DType]],
                    rights: Sequence[tuple[int, Shape, DType]]) -> tuple[list[Array], list[Array], list[Array]] | None:
        if self.is_dealer:
            As = [self._total(self._rand_all(s, dt), True) for s, dt in lefts]
            Bs = [self._total(self._rand_all(s, dt), True) for _, s, dt in rights]
            for (j, s, dt), b in zip(rights, Bs):
                self._deal("and", As[j] & b, s, dt, boolean=True)
            return None
        As = [self._rand(s, dt) for s, dt in lefts]
        Bs = [self._rand(s, dt) for _, s, dt in rights]
        Cs = [self._share("and", s, dt) for _, s, dt in rights]
        return As, Bs, Cs

    def compare_mask(self, shape: Shape, tag: str, reversed_layout: bool = True) -> CompareMask | None:
        from ..protocols import circuits  # the bit layout of the comparison circuits

        shape = tuple(shape)
        if (got := self._take("compare_mask", shape, tag, reversed_layout)) is not _MISS:
            return got  # type: ignore[no-any-return]
        n_mono = len(circuits.SUBSETS)
        if self.is_dealer:
            r = self._total(self._rand_all(shape))
            # comparisons use the low 63 bits (index-reversed); equality all 64 bits
            bits = circuits.index_reverse64(r & _U((1 << 63) - 1)) if reversed_layout else r
            self._deal(tag + ":bits", bits, shape, _U, boolean=True)
            self._deal(tag + ":msb", (r >> _U(63)).astype(np.uint8), shape, np.uint8, boolean=True)
            mono = circuits.monomials(bits, reversed_layout)
            self._deal(tag + ":mono", mono, mono.shape, np.uint16, boolean=True)
            return None
        R = self._rand(shape)
        return CompareMask(
            R,
            self._share(tag + ":bits", shape, _U),
            self._share(tag + ":msb", shape, np.uint8),
            self._share(tag + ":mono", (n_mono,) + shape, np.uint16),
        )

    def random_bits(self, shape: Shape) -> tuple[Array, Array] | None:
        if (got := self._take("random_bits", shape)) is not _MISS:
            return got  # type: ignore[no-any-return]
        if self.is_dealer:
            s = self._total([x & np.uint8(1) for x in self._rand_all(shape, np.uint8)], True)
            self._deal("b2a", s.astype(_U), shape)
            return None
        S = self._rand(shape, np.uint8)
        return S, self._share("b2a", shape)

    def matrix_mask(self, shape: Shape) -> Mask:
        if self.is_dealer:
            return Mask(state=self._total(self._rand_all(shape)))
        return Mask(share=self._rand(shape))

    def mask_triple(self, mask: Mask, select: Select, shape_y: Shape, shape_c: Shape) -> tuple[Array, Array] | None:
        if self.is_dealer:
            b = self._total(self._rand_all(shape_y))
            self._deal("mmatmul", bk.matmul(select(mask.state), b), shape_c)
            return None
        B = self._rand(shape_y)
        return B, self._share("mmatmul", shape_c)

    def private_mask(self, owner: str, shape: Shape) -> Mask:
        if self.is_dealer:
            return Mask(state=bk.random(self.prgs[self.compute.index(owner)], shape, _U))
        if self.me == owner:
            return Mask(share=self._rand(shape))
        return Mask()

    def private_triples(self, items: Sequence[tuple[Mask, Select, Shape, Shape, Sequence[str]]]
                        ) -> tuple[list[Array | None], list[Array]] | None:
        if self.is_dealer:
            # the parties' draw order: every B first, then the C shares
            Bs = [[bk.random(self.prgs[self.compute.index(p)], shape_y, _U) for p in others]
                  for _, _, shape_y, _, others in items]
            for (mask, select, _, shape_c, _), bs in zip(items, Bs):
                a = select(mask.state)
                total: Any = None
                for b in bs:
                    c = bk.matmul(a, b)
                    total = c if total is None else total + c
                self._deal("pmatmul", total, shape_c)
            return None
        mine = [self._rand(shape_y) if self.me in others else None for _, _, shape_y, _, others in items]
        return mine, [self._share("pmatmul", shape_c) for _, _, _, shape_c, _ in items]


    def private_product(self, owner_a: str, owner_b: str, shape_a: Shape, shape_b: Shape, shape_c: Shape
                        ) -> tuple[Array | None, Array | None, Array] | None:
        """U from owner_a's stream, V from owner_b's, shares of U @ V (the last party's by correction)."""
        shape_a, shape_b, shape_c = tuple(shape_a), tuple(shape_b), tuple(shape_c)
        if (got := self._take("private_product", owner_a, owner_b, shape_a, shape_b, shape_c)) is not _MISS:
            return got  # type: ignore[no-any-return]
        if self.is_dealer:
            u = bk.random(self.prgs[self.compute.index(owner_a)], shape_a, _U)
            v = bk.random(self.prgs[self.compute.index(owner_b)], shape_b, _U)
            self._deal("pproduct", bk.matmul(u, v), shape_c)
            return None
        U = self._rand(shape_a) if self.me == owner_a else None
        V = self._rand(shape_b) if self.me == owner_b else None
        return U, V, self._share("pproduct", shape_c)


def _pair_words(r: Array, bits: int, extra: int = 0) -> Array:
    """A fresh (extra + 2, *r.shape) array: `extra` rows left for the caller, then r >> bits
    and r >> 63 (the truncation pair's derived values), written in place."""
    out = np.empty((extra + 2,) + r.shape, _U)
    np.right_shift(r, _U(bits), out=out[extra, ...])  # `...`: a 0-d view, not a scalar, for 0-d r
    np.right_shift(r, _U(63), out=out[extra + 1, ...])
    return out


_MISS = object()
_PREFETCHABLE = frozenset({"beaver", "square_pair", "trunc_pair", "beaver_trunc", "compare_mask", "random_bits",
                           "private_product"})


def _resolved(x: Any) -> Any:
    """`x` with every `Later` inside (tuples, a CompareMask) received now."""
    if isinstance(x, Later):
        return x.get()
    if isinstance(x, tuple):
        return tuple(_resolved(v) for v in x)
    if isinstance(x, CompareMask):
        return CompareMask(*(_resolved(v) for v in (x.r, x.bits, x.msb, x.monomials)))
    return x


class NullProvider(CorrelationProvider):
    """What a party outside the device holds: it runs the same program, draws nothing.

    >>> NullProvider().trunc_pair((3,), 18) is None
    True
    """

    def beaver(self, op: str, shape_a: Shape, shape_b: Shape, shape_c: Shape) -> None:
        return None

    def square_pair(self, shape: Shape) -> None:
        return None

    def trunc_pair(self, shape: Shape, bits: int) -> None:
        return None

    def and_triples(self, lefts: Sequence[tuple[Shape, DType]], rights: Sequence[tuple[int, Shape, DType]]) -> None:
        return None

    def compare_mask(self, shape: Shape, tag: str, reversed_layout: bool = True) -> None:
        return None

    def random_bits(self, shape: Shape) -> None:
        return None

    def matrix_mask(self, shape: Shape) -> Mask:
        return Mask()

    def mask_triple(self, mask: Mask, select: Select, shape_y: Shape, shape_c: Shape) -> None:
        return None

    def private_mask(self, owner: str, shape: Shape) -> Mask:
        return Mask()

    def private_product(self, owner_a: str, owner_b: str, shape_a: Shape, shape_b: Shape, shape_c: Shape) -> None:
        return None

    def private_triples(self, items: Sequence[tuple[Mask, Select, Shape, Shape, Sequence[str]]]) -> None:
        return None
