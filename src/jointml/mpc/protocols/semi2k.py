"""semi2k: n-party additive secret sharing over Z_2^64 with a dealer.

Security model: semi-honest (honest-but-curious) parties; any coalition of up to
n-1 compute parties learns nothing beyond what is revealed; the dealer is a
separate, non-colluding party that supplies correlated randomness and receives no
protocol message (only public metadata such as shapes), so it learns nothing about
inputs or outputs. Messages between parties are protected by the links' TLS.

A secret x is held as shares x_0..x_{n-1} (uint64) with sum x_i = x mod 2^64; one party's
share is one ndarray (`export_share` gives [x_i]). The correlated randomness comes from a
`CorrelationProvider` (`jointml.mpc.randomness`; the dealer today), so the kernels do not
know who supplies it.

Costs per element for 2 compute parties (`Semi2k.static_cost`, which also covers n
parties and matrix shapes; bytes are what all parties send together, dealer included):

| op | rounds | bytes per element, all parties | of which the dealer |
| --- | --- | --- | --- |
| share_in (compute party) | 0 | 0 | 0 |
| share_in (outsider) | 1 | 8 | 0 |
| reveal | 1 | 16 | 0 |
| reveal (to a compute party) | 1 | 8 | 0 |
| add, sub, public ops | 0 | 0 | 0 |
| mul | 1 | 40 | 8 |
| square | 1 | 24 | 8 |
| trunc | 1 | 32 | 16 |
| trunc_product (trunc="local", 2 parties) | 0 | 0 | 0 |
| trunc_product (trunc="dealer") | 1 | 32 | 16 |
| mul_trunc (dealer pair) | 2 | 72 | 24 |
| b_and (64-bit words) | 1 | 40 | 8 |
| b2a_bits | 1 | 8.25 | 8 |
| msb (x < 0) | 6 | 84.25 | 46 |
| eqz (x == 0) | 6 | 75.25 | 43 |

So a fixed-point product of two secrets (`SecretArray` `x * y`: `mul` then
`trunc_product`) costs 1 round and 40 B per element with 2 compute parties (it was
2 rounds and 72 B with the dealer pair, still the cost with trunc="dealer" or n > 2).

**Truncation.** Two kernels divide a ring value by 2^f:

* `trunc` (every caller that may truncate large values: the internal precision of
  `jointml.mpc.functions`, statistics): the dealer's pair (r, r >> f, msb r); one round,
  floor(x / 2^f) or one more (up with probability equal to the dropped fraction) for
  any |x| < 2^62, never worse.
* `trunc_product` (fixed-point products at the device's scale: `SecretArray` products,
  matrix products, masked products). With `trunc="local"` (opt-in, exactly 2 compute
  parties) it is SecureML's local truncation (Mohassel-Zhang 2017, Theorem 1):
  party 0 computes x_0 >> f and party 1 -((-x_1) >> f), arithmetic shifts of the shares
  read as signed 64-bit integers; no message. The result is floor(x / 2^f) or one more,
  as `trunc`, unless the signed shares' sum wraps around 2^64: since one share is
  uniformly random, this happens with probability |x| / 2^64 per element, to within one
  share value in 2^64, so at most (|x| + 1) / 2^64 (x the signed ring value before
  truncation; half the usual |x| / 2^63 bound), and then the result is off by 2^(64-f)
  (a huge value).
  With f = 18, a product of magnitude v (x = v 2^36) fails with probability v / 2^28:
  about 4e-9 per element for |v| = 1, 4e-6 for |v| = 1000. tests/test_semi2k_trunc.py
  measures the rate on 3 million values against this figure. With more than 2 compute
  parties the sum of n uniform shares wraps almost always, so local truncation is refused.
  The default is `trunc="dealer"`: `trunc_product` is then the exact `trunc`. Local
  truncation is opt-in (`MpcDevice(..., trunc="local")`, a pipeline's `mpc: {trunc:
  local}`) because a failure is silent and huge: `jointml bench mpc --trunc local` saw
  one in its 1M products (inputs of magnitude up to ~10), and an SS-LR training of 100
  epochs on 100k rows would meet one with probability of the order of a few percent
  (SPU's semi2k truncates locally with 2 parties; we do not, by default).

With dealer truncation (n > 2 or trunc="dealer"), the fused kernels `mul_trunc`,
`square_trunc`, `matmul_trunc` ship the truncation pair in the same dealer message as
the triple (`CorrelationProvider.beaver_trunc`); rounds: the Beaver opening, then the
pair's opening. `SecretArray` products of two secrets take them (`fxp_product`), so a
product costs one dealer message, not two. `prefetch(op, *shapes)` generates a later kernel's correlated randomness
ahead of its inputs (an offline phase: the dealer's corrections are sent and received
then), so the kernel's online phase is the openings and local arithmetic only.

**Why the dealer's truncation keeps its own round.** A fused multiply-truncate would open
c = xy + r in the Beaver round, but a party's share of xy is E y_i + A_i F + C_i, a function
of the E and F it *receives* in that round: no message of the round can carry it. Truncating
the share's terms before the opening does not work either: E and F are uniform in the ring,
so E y_i and A_i F wrap mod 2^64 and the carries between the truncated terms are lost (the
result is wrong with probability about 1, not 2^-64). So with `trunc="dealer"` a product of
two secrets costs the Beaver round and the pair's round; what the fusion saves is a dealer
message (the pair ships with the triple, in the offline phase when prefetched:
`prefetch("fxp_mul", ...)`), not a round. The one-round product is the local truncation
above, with its stated failure probability. Neither the fusion nor the prefetch changes what
anyone sees: the pair's opening c = xy + 2^62 + r is masked by the dealer's uniform r, as in
`trunc`.

A matmul X (m x k) @ Y (k x n) opens both operands: 2 x 8 (mk + kn) B from the parties
plus 8 mn B from the dealer, 1 round. Each party computes two ring products, E @ y_i and
A_i @ F: E Y and A F are secret-times-public terms whose secret factors (Y, A) exist only as
shares, and the parties' operands differ, so neither product can be shared or computed once
(the rewrite x_i F + E B_i has the same two). A ring product is 5 float64 BLAS products on
22/22/20-bit limbs (the short product of two 3-limb numbers has bilinear rank 5; Karatsuba
reaches it), 4 or 3 when an operand's upper limbs are zero (an encoded plaintext matrix
with |x| < 2^43 or 2^21: `jointml.core.backend.numpy`); Beaver's operands are uniform, so
they take all 5. Comparisons open c = x + r for a dealer mask r and
compare r with c bit by bit. Since r is the dealer's, it also shares the products of r's
bits within 4-bit blocks, so the first two levels of the comparison tree cost nothing;
four AND rounds finish it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ...core.backend import backend as bk
from ...core.errors import ConfigError, ParameterError, ProtocolError
from ...core.prg import Prg
from ..randomness import CorrelationProvider, DealerProvider, Mask, NullProvider
from ..randomness.provider import resolve
from ..shapes import Shape, broadcast_shape, matmul_shape, rows_shape, size
from . import circuits
from .base import (
    CORE_CAPABILITIES,
    FREE,
    Array,
    Cost,
    DType,
    Protocol,
    Share,
    _unknown,
    check_share_arrays,
    wraps_ring,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import PartyContext

_U = np.uint64
_LOW63 = _U((1 << 63) - 1)

__all__ = ["Semi2k", "DOC_COST_ROWS"]

_E = (1 << 20,)  # per-element figures: one large vector
#: the rows of the cost table in the module docstring (tests/test_protocol_cost.py checks it)
DOC_COST_ROWS: list[tuple[str, str, tuple[Shape, ...], dict[str, Any]]] = [
    ("share_in (compute party)", "share_in", (_E,), {}),
    ("share_in (outsider)", "share_in", (_E,), {"outsider": True}),
    ("reveal", "reveal", (_E,), {}),
    ("reveal (to a compute party)", "reveal", (_E,), {"to": "member"}),
    ("add, sub, public ops", "add", (_E,), {}),
    ("mul", "mul", (_E, _E), {}),
    ("square", "square", (_E,), {}),
    ("trunc", "trunc", (_E,), {"bits": 18}),
    ("trunc_product (trunc=\"local\", 2 parties)", "trunc_product", (_E,), {"bits": 18, "trunc": "local"}),
    ("trunc_product (trunc=\"dealer\")", "trunc_product", (_E,), {"bits": 18, "trunc": "dealer"}),
    ("mul_trunc (dealer pair)", "mul_trunc", (_E, _E), {"bits": 18}),
    ("b_and (64-bit words)", "b_and", (_E,), {}),
    ("b2a_bits", "b2a_bits", (_E,), {}),
    ("msb (x < 0)", "msb", (_E,), {}),
    ("eqz (x == 0)", "eqz", (_E,), {}),
]


class _Semi2kMasked:
    """A secret matrix X opened once as E = X - A for a provider mask A that is then reused.

    Every later product X[rows] @ y needs only a fresh triple (A[rows], B, A[rows] B):
    the parties open y - B (|y| words) instead of the whole matrix, and the dealer
    sends |result| words. This is what makes training loops over a fixed data matrix
    cheap: the n x d matrix crosses the links once, not once per iteration."""

    def __init__(self, shape: Shape, mask: Mask, E: Array | None = None, owner: str | None = None,
                 X: Array | None = None):
        self.shape = tuple(shape)
        self.mask = mask
        self.E = E
        self.owner = owner
        self.X = X


def _pick(a: Array, rows: Any, transpose: bool) -> Array:
    a = a[rows]
    return a.T if transpose else a


def _picker(rows: Any, transpose: bool) -> Callable[[Array], Array]:
    return lambda a: _pick(a, rows, transpose)


@wraps_ring
class Semi2k(Protocol):
    """n-party additive sharing with a dealer. `Semi2k(ctx, compute_parties, dealer)` at every
    party of the program (compute parties, the dealer, outsiders: those hold no shares).
    `trunc` ("dealer", the default, or "local": 2 compute parties only, opt-in)
    picks how fixed-point products are truncated (`trunc_product`, module docstring).

    >>> def prog(ctx):
    ...     p = Semi2k(ctx, ["alice", "bob"], dealer="carol")
    ...     x = p.share_in("alice", np.array([3], np.uint64) if ctx.me == "alice" else None, (1,))
    ...     return p.reveal(p.mul(x, x, (1,), (1,)), (1,))
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"].tolist()
    [9]
    """

    name = "semi2k"
    capabilities = CORE_CAPABILITIES | {"masked_reuse", "private_masked", "dealer"}
    share_order_matters = False  # a share is one summand of x, whatever the parties' order

    def __init__(self, ctx: PartyContext, parties: Sequence[str], dealer: str | None,
                 provider: CorrelationProvider | None = None, trunc: str | None = None):
        if dealer is None:
            raise ConfigError("semi2k needs a dealer party (an ordinary party of the cluster that holds no data)",
                              field="dealer")
        if dealer not in parties:
            parties = list(parties) + [dealer]
        self.ctx = ctx
        self.comm = ctx.comm
        self.members = list(parties)
        self.dealer = dealer
        self.compute = [p for p in parties if p != dealer]
        if len(self.compute) < 2:
            raise ConfigError(f"semi2k needs at least 2 compute parties besides the dealer, got {self.compute}")
        self.me = ctx.me
        self.is_compute = self.me in self.compute
        self.idx = self.compute.index(self.me) if self.is_compute else -1
        self.n = len(self.compute)
        self.peers = [p for p in self.compute if p != self.me]
        # A label unique to this device (every party draws it): two devices in one
        # program never share seeds, hence never share masks.
        self.label = ctx.next_uid("semi2k-")
        if provider is None:
            provider = (DealerProvider(ctx, self.compute, dealer, self.label) if self.me in self.members
                        else NullProvider())
        self.prov = provider
        #: how fixed-point products are truncated (`trunc_product`): "local" (2 parties only) or "dealer"
        self.trunc_mode = _trunc_mode(trunc, self.n)
        self._pair_prgs: dict[str, Prg] = {}
        self._in_prgs: dict[tuple[str, str], Prg] = {}

    # -- helpers ---------------------------------------------------------------
    def _pair_prg(self, other: str) -> Prg:
        g = self._pair_prgs.get(other)
        if g is None:
            g = Prg(self.ctx.shared_seed(self.me, other, self.label + ":pair"), stream="pair")
            self._pair_prgs[other] = g
        return g

    def _in_prg(self, owner: str, member: str) -> Prg:
        """Stream shared by an outside data owner and one compute party (kept: a fresh
        PRG per input would reuse the same mask for every input of that owner)."""
        g = self._in_prgs.get((owner, member))
        if g is None:
            g = Prg(self.ctx.shared_seed(owner, member, self.label + ":in"), stream="in")
            self._in_prgs[(owner, member)] = g
        return g

    def _open(self, tag: str, arrays: list[Array], boolean: bool = False) -> list[Array]:
        """All compute parties publish their shares of several values at once (one round)."""
        for p in self.peers:
            self.comm.send(p, tag, arrays)
        out: list[Array] = []
        for j, p in enumerate(self.peers):
            got = self.comm.recv(p, tag, dtypes=[a.dtype for a in arrays], shapes=[a.shape for a in arrays]).arrays
            if j == 0:
                # the first peer's share and ours into a fresh array (one pass: no copy first);
                # the sent arrays are left alone (a transport may still hold them)
                out = [bk.asarray(a ^ g if boolean else bk.add(a, g)) for a, g in zip(arrays, got)]
                continue
            for o, g in zip(out, got):
                if boolean:
                    o ^= g
                else:
                    o += g
        return out

    # -- share layout -------------------------------------------------------------------
    def export_share(self, share: Share) -> list[Array]:
        """[x_i] at a compute party, [] elsewhere."""
        return [] if share is None else [bk.copy(share, _U)]

    def import_share(self, arrays: Sequence[Array], shape: Shape) -> Share:
        if not self.is_compute:
            if len(arrays):
                raise ProtocolError(f"semi2k: party '{self.me}' holds no share, got {len(arrays)} arrays", party=self.me)
            return None
        check_share_arrays("semi2k", self.me, arrays, 1, shape)
        return bk.copy(arrays[0], _U)

    # -- structure ----------------------------------------------------------------
    def map(self, fn: Callable[..., Array], *shares: Share) -> Share:
        if not self.is_compute:
            return None
        return fn(*shares)

    # -- input / output -------------------------------------------------------------
    def share_in(self, owner: str, value: Array | None, shape: Shape, dtype: DType = _U,
                 boolean: bool = False) -> Share:
        """Secret-share `value` held by `owner` (a compute party, the dealer, or an outsider).

        A compute-party owner masks its value with pairwise PRG streams: no share
        travels, only the shape (which is public). Another owner draws all but
        one share from pairwise streams and sends the last one."""
        me = self.me
        shape = tuple(shape)
        if owner in self.compute:
            if me == owner:
                x = bk.copy(value, dtype).reshape(shape)
                for p in self.peers:
                    r = bk.random(self._pair_prg(p), shape, dtype)
                    if boolean:
                        x ^= r
                    else:
                        x -= r
                return x
            if self.is_compute:
                return bk.random(self._pair_prg(owner), shape, dtype)
            return None
        # Owner outside the compute set.
        last = self.compute[-1]
        if me == owner:
            x = bk.copy(value, dtype).reshape(shape)
            for p in self.compute[:-1]:
                r = bk.random(self._in_prg(owner, p), shape, dtype)
                if boolean:
                    x ^= r
                else:
                    x -= r
            self.comm.send(last, "share_in", x)
            return None
        if me == last:
            return self.comm.recv_array(owner, "share_in", dtype, shape)
        if self.is_compute:
            return bk.random(self._in_prg(owner, me), shape, dtype)
        return None

    def reveal(self, x: Share, shape: Shape | None, to: str | None = None, boolean: bool = False,
               dtype: DType = _U) -> Array | None:
        shape = None if shape is None else tuple(shape)
        if to is None:
            if not self.is_compute:
                return None
            return self._open("reveal", [bk.asarray(x, dtype)], boolean)[0]
        if self.is_compute and self.me != to:
            self.comm.send(to, "reveal_to", bk.asarray(x, dtype))
        if self.me != to:
            return None
        senders = [p for p in self.compute if p != to]
        if self.is_compute:
            out = bk.copy(x, dtype)
        elif shape is None:
            raise ParameterError("semi2k.reveal: a receiver outside the device must know the shape", field="shape")
        else:
            out = bk.zeros(shape, dtype)
        for p in senders:
            g = self.comm.recv_array(p, "reveal_to", dtype, out.shape)
            if boolean:
                out ^= g
            else:
                out += g
        return out

    # -- linear ---------------------------------------------------------------------
    def add(self, a: Share, b: Share) -> Share:
        return None if not self.is_compute else a + b

    def sub(self, a: Share, b: Share) -> Share:
        return None if not self.is_compute else a - b

    def neg(self, a: Share) -> Share:
        return None if not self.is_compute else bk.neg(a)

    def add_public(self, a: Share, c: Array) -> Share:
        if not self.is_compute:
            return None
        c = bk.asarray(c)
        return a + c if self.idx == 0 else a + bk.zeros(c.shape)

    def mul_public(self, a: Share, c: Array) -> Share:
        return None if not self.is_compute else a * bk.asarray(c)

    # -- multiplication ------------------------------------------------------------------
    def mul(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape) -> Share:
        t = self.prov.beaver("mul", tuple(shape_a), tuple(shape_b), broadcast_shape(tuple(shape_a), tuple(shape_b)))
        if t is None or not self.is_compute:
            return None
        A, B, C = t
        E, F = self._open("mul", [a - A, b - B])
        # sum_i E*y_i + a_i*F + c_i = xy
        return _beaver_mul_into(E, b, A, F, resolve(C))

    def square(self, a: Share, shape: Shape) -> Share:
        t = self.prov.square_pair(tuple(shape))
        if t is None or not self.is_compute:
            return None
        A, C = t
        (E,) = self._open("square", [a - A])
        # x^2 = (E+a)^2 = E^2 + 2Ea + a^2: party i adds E*(x_i + a_i), summing to E*x + E*a = E^2 + 2Ea.
        return _square_share(E, a, A, resolve(C))

    def matmul(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape) -> Share:
        shape_c = matmul_shape(tuple(shape_a), tuple(shape_b))
        t = self.prov.beaver("matmul", tuple(shape_a), tuple(shape_b), shape_c)
        if t is None or not self.is_compute:
            return None
        A, B, C = t
        E, F = self._open("matmul", [a - A, b - B])
        # sum_i (E @ y_i + a_i @ F + c_i) = E@Y + A@F + AB = XY: two ring matmuls per party
        return _beaver_matmul(E, b, A, F, resolve(C))

    # -- truncation --------------------------------------------------------------------
    def trunc(self, a: Share, bits: int, shape: Shape) -> Share:
        """Divide by 2^bits with stochastic rounding: the result is floor(x / 2^bits) or one
        more, up with probability equal to the dropped fraction (unbiased on average; the
        borrow of the masked low bits decides).

        Exact up to one unit for |x| < 2^62: open c = x + 2^62 + r with provider shares
        of r, r >> bits and msb(r); the wrap of x + 2^62 + r is msb(r) & ~msb(c),
        so y = (c >> bits) - (r >> bits) + wrap * 2^(64-bits) - 2^(62-bits)."""
        t = self.prov.trunc_pair(tuple(shape), bits)
        if t is None or not self.is_compute:
            return None
        return self._trunc_with(a, bits, t)

    def trunc_product(self, a: Share, bits: int, shape: Shape) -> Share:
        """Truncate a fixed-point product by 2^bits with the device's `trunc_mode`.

        "dealer": `trunc` (one round, exact up to one unit for |x| < 2^62). "local" (2 compute
        parties): SecureML's local truncation, no message: party 0 computes x_0 >> bits and
        party 1 -((-x_1) >> bits) (arithmetic shifts of the shares read as signed). The
        result is floor(x / 2^bits) or one more (up with probability equal to the dropped
        fraction, as `trunc`), except with probability at most (|x| + 1) / 2^64 per element
        (x the signed ring value before truncation), when it is off by 2^(64-bits): see the
        module docstring.

        >>> def prog(ctx):
        ...     p = Semi2k(ctx, ["alice", "bob"], dealer="carol", trunc="local")
        ...     x = p.share_in("alice", np.array([5 << 18], np.uint64) if ctx.me == "alice" else None, (1,))
        ...     ctx.reset_stats()
        ...     y = p.trunc_product(x, 18, (1,))
        ...     return ctx.stats()["msgs_sent"], p.reveal(y, (1,))
        >>> sent, y = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
        >>> sent, y.tolist()
        (0, [5])
        """
        if self.trunc_mode != "local":
            return self.trunc(a, bits, shape)
        if not self.is_compute:
            return None
        if self.idx == 0:
            return _arshift(a, bits)
        return bk.neg(_arshift(bk.neg(a), bits))

    def fxp_product(self, kind: str, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """`Protocol.fxp_product`: with local truncation the kernel then `trunc_product` (one
        round); with the dealer's, the fused kernel (triple and pair in one dealer message).

        >>> def prog(ctx):
        ...     p = Semi2k(ctx, ["alice", "bob"], dealer="carol", trunc="dealer")
        ...     x = p.share_in("alice", np.array([3 << 10], np.uint64) if ctx.me == "alice" else None, (1,))
        ...     return p.reveal(p.fxp_product("square", x, x, (1,), (1,), 10), (1,))
        >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"].tolist()
        [9216]
        """
        if self.trunc_mode == "local":
            return super().fxp_product(kind, a, b, shape_a, shape_b, bits)
        if kind == "square":
            return self.square_trunc(a, shape_a, bits)
        if kind == "matmul":
            return self.matmul_trunc(a, b, shape_a, shape_b, bits)
        return self.mul_trunc(a, b, shape_a, shape_b, bits)

    # -- fused product + truncation (the pair ships in the triple's dealer message) ------------
    def mul_trunc(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """trunc(x * y, bits) with the dealer's truncation pair (as `trunc`: safe for |xy| < 2^62).

        One provider call: the dealer ships C = AB and the pair's derived shares in one
        message. Rounds: the Beaver opening, then the pair's opening."""
        shape_c = broadcast_shape(tuple(shape_a), tuple(shape_b))
        t = self.prov.beaver_trunc("mul", tuple(shape_a), tuple(shape_b), shape_c, bits)
        if t is None or not self.is_compute:
            return None
        A, B, C, pair = t
        E, F = self._open("mul", [a - A, b - B])
        return self._trunc_with(_beaver_mul_into(E, b, A, F, resolve(C)), bits, pair)

    def square_trunc(self, a: Share, shape: Shape, bits: int) -> Share:
        """trunc(x * x, bits): `square` and the pair in one provider call, as `mul_trunc`."""
        shape = tuple(shape)
        t = self.prov.beaver_trunc("square", shape, shape, shape, bits)
        if t is None or not self.is_compute:
            return None
        A, _, C, pair = t
        (E,) = self._open("square", [a - A])
        return self._trunc_with(_square_share(E, a, A, resolve(C)), bits, pair)

    def matmul_trunc(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """trunc(X @ Y, bits): as `mul_trunc`, the pair shipped with the matrix triple."""
        shape_c = matmul_shape(tuple(shape_a), tuple(shape_b))
        t = self.prov.beaver_trunc("matmul", tuple(shape_a), tuple(shape_b), shape_c, bits)
        if t is None or not self.is_compute:
            return None
        A, B, C, pair = t
        E, F = self._open("matmul", [a - A, b - B])
        return self._trunc_with(_beaver_matmul(E, b, A, F, resolve(C)), bits, pair)

    def _trunc_with(self, a: Array, bits: int, pair: tuple[Array, Any, Any]) -> Array:
        R, r_hi, r_msb = pair
        x = bk.add(a, R)
        if self.idx == 0:
            x += _U(1 << 62)
        (c,) = self._open("trunc", [x])
        # y = msb(r) * ~msb(c) * 2^(64-bits) - (r >> bits) [+ (c >> bits) - 2^(62-bits) at party 0],
        # in place on one temporary and on c (this party's own copy of the opened value)
        y = bk.rshift(c, 63)
        y ^= _U(1)
        y <<= _U(64 - bits)
        y *= resolve(r_msb)
        y -= resolve(r_hi)
        if self.idx == 0:
            c >>= _U(bits)
            c -= _U(1 << (62 - bits))
            y += c
        return y

    def supports(self, capability: str) -> bool:
        """As `Protocol.supports`; with dealer truncation the fused kernels (pair shipped
        with the triple: one dealer message fewer) count as cheaper."""
        if capability in _FUSED and self.trunc_mode == "dealer":
            return True
        return super().supports(capability)

    # -- offline phase ---------------------------------------------------------------------
    def prefetch(self, op: str, *shapes: Shape, bits: int | None = None,
                 owners: tuple[str, str] | None = None) -> None:
        """Generate now the correlated randomness a later `op` on operands of `shapes` will use
        (every member calls it, SPMD, with the same arguments), so that kernel's online phase
        does no generation: the dealer computes and sends its corrections now, the compute
        parties draw their PRG shares and receive the corrections. Kernels: mul, square,
        matmul, trunc (bits), trunc_product (bits), mul_trunc, square_trunc and matmul_trunc (bits),
        msb and eqz (their masks and bit conversion), and fxp_mul, fxp_square, fxp_matmul (bits):
        what `fxp_product` of that kind will take with the device's truncation mode (the fused
        kernel's triple and pair with the dealer's, the plain triple with local truncation).
        A `SecretArray` product of two secrets is an `fxp_product`: prefetch it as fxp_*, not
        as the bare kernel, or the kernel generates its randomness online. private_matmul
        takes `owners=(owner_a, owner_b)`.

        >>> def prog(ctx):
        ...     p = Semi2k(ctx, ["alice", "bob"], dealer="carol")
        ...     p.prefetch("mul", (2,), (2,))
        ...     x = p.share_in("alice", np.array([3, 4], np.uint64) if ctx.me == "alice" else None, (2,))
        ...     return p.reveal(p.mul(x, x, (2,), (2,)), (2,))
        >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"].tolist()
        [9, 16]
        """
        s = [tuple(x) for x in shapes]
        prov = self.prov
        if op == "private_matmul":
            if owners is None:
                raise ParameterError("semi2k.prefetch: private_matmul needs owners=(owner_a, owner_b)", field="owners")
            return prov.prefetch("private_product", owners[0], owners[1], s[0], s[1], matmul_shape(s[0], s[1]))
        if op in _FXP_PREFETCH:
            # what `fxp_product(kind, ...)` (a `SecretArray` product of two secrets) will
            # consume: the fused kernel's triple + pair with the dealer's truncation, the
            # plain triple with local truncation (which has no correlated randomness)
            kind = op[len("fxp_"):]
            if self.trunc_mode == "dealer":
                return self.prefetch(kind + "_trunc", *s, bits=bits)
            return self.prefetch(kind, *s)
        if op in ("mul", "matmul"):
            out = matmul_shape(s[0], s[1]) if op == "matmul" else broadcast_shape(s[0], s[1])
            prov.prefetch("beaver", op, s[0], s[1], out)
        elif op == "square":
            prov.prefetch("square_pair", s[0])
        elif op == "square_trunc":
            prov.prefetch("beaver_trunc", "square", s[0], s[0], s[0], _bits(bits))
        elif op == "trunc" or (op == "trunc_product" and self.trunc_mode == "dealer"):
            prov.prefetch("trunc_pair", s[0], _bits(bits))
        elif op in ("mul_trunc", "matmul_trunc"):
            base = op[: -len("_trunc")]
            out = matmul_shape(s[0], s[1]) if base == "matmul" else broadcast_shape(s[0], s[1])
            prov.prefetch("beaver_trunc", base, s[0], s[1], out, _bits(bits))
        elif op in ("msb", "eqz"):
            # the comparison mask and the final bit conversion; the AND tree's triples are
            # drawn in the kernel (small: 1-3 words per element and level)
            prov.prefetch("compare_mask", s[0], op, op == "msb")
            prov.prefetch("random_bits", s[0])
        elif op != "trunc_product":
            raise ParameterError(f"semi2k.prefetch: no prefetch for kernel '{op}'", field="op")

    def cost(self, op: str, *shapes: Shape, **params: Any) -> Cost:
        params.setdefault("trunc", self.trunc_mode)
        return self.static_cost(op, *shapes, n_compute=len(self.compute), **params)

    # -- boolean -------------------------------------------------------------------------
    def b_xor(self, a: Share, b: Share) -> Share:
        return None if not self.is_compute else a ^ b

    def b_xor_public(self, a: Share, c: Array) -> Share:
        if not self.is_compute:
            return None
        return a ^ bk.asarray(c, a.dtype) if self.idx == 0 else a

    def b_and_public(self, a: Share, c: Array) -> Share:
        return None if not self.is_compute else a & bk.asarray(c, a.dtype)

    def b_and(self, pairs: Sequence[tuple[Share, Share]], shapes: Sequence[Shape],
              dtypes: Sequence[DType]) -> list[Share]:
        """Several ANDs in one round. Pairs sharing the same left operand object share its mask."""
        lefts: list[tuple[Share, Shape, DType]] = []
        left_idx = []
        for (x, _), shape, dt in zip(pairs, shapes, dtypes):
            for j, (lx, lshape, ldt) in enumerate(lefts):
                if lx is x and lshape == tuple(shape) and ldt == dt:
                    left_idx.append(j)
                    break
            else:
                left_idx.append(len(lefts))
                lefts.append((x, tuple(shape), dt))
        t = self.prov.and_triples([(s, dt) for _, s, dt in lefts],
                                  [(j, tuple(s), dt) for j, s, dt in zip(left_idx, shapes, dtypes)])
        if t is None or not self.is_compute:
            return [None] * len(pairs)
        As, Bs, Cs = t
        opened = self._open(
            "and",
            [x ^ A for (x, _, _), A in zip(lefts, As)] + [y ^ B for (_, y), B in zip(pairs, Bs)],
            boolean=True,
        )
        D, Es = opened[: len(lefts)], opened[len(lefts):]
        out = []
        for j, B, E, C in zip(left_idx, Bs, Es, Cs):
            # x&y = (d^a)&(e^b) = d&e ^ d&b ^ a&e ^ a&b  ->  party i: c_i ^ d&b_i ^ a_i&e (^ d&e at party 0)
            z = resolve(C) ^ (D[j] & B) ^ (As[j] & E)
            if self.idx == 0:
                z ^= D[j] & E
            out.append(z)
        return out

    # -- conversions ---------------------------------------------------------------------
    def msb(self, a: Share, shape: Shape) -> Share:
        """msb(x) = msb(c) ^ msb(r) ^ borrow, borrow = [r_low > c_low] for c = x + r opened with
        a provider mask r: the first two tree levels come locally from the mask's monomials,
        four AND rounds finish the tree. Rounds: 1 (open) + 4 + 1 (bit to arithmetic) = 6."""
        shape = tuple(shape)
        m = self.prov.compare_mask(shape, "msb")
        G: Share = None
        E: Share = None
        if m is not None and self.is_compute:
            (c,) = self._open("msb", [a + m.r])
            crev = circuits.index_reverse64(c & _LOW63)
            G, E = circuits.block_greater_equal(circuits.quarters(resolve(m.bits)), resolve(m.monomials), crev,
                                                self.idx == 0)
        borrow = circuits.greater_tree(self, G, E, shape, width=16)
        bit: Share = None
        if m is not None and self.is_compute:
            bit = borrow ^ resolve(m.msb)
            if self.idx == 0:
                bit ^= bk.astype(bk.rshift(c, 63), np.uint8)
        return self.b2a_bits(bit, shape)

    def eqz(self, a: Share, shape: Shape) -> Share:
        """[x == 0]: x == 0 iff c == r; 4-bit blocks of [r == c] locally from the mask's
        monomials, then an AND tree over 16 blocks. Rounds: 1 + 4 + 1 = 6."""
        shape = tuple(shape)
        m = self.prov.compare_mask(shape, "eqz", reversed_layout=False)
        X: Share = None
        if m is not None and self.is_compute:
            (c,) = self._open("eqz", [a + m.r])
            _, X = circuits.block_greater_equal(circuits.quarters(resolve(m.bits), False), resolve(m.monomials), c,
                                                self.idx == 0,
                                                reversed_layout=False, need_g=False)
        bit = circuits.and_tree(self, X, shape, width=16)
        return self.b2a_bits(bit, shape)

    def b2a_bits(self, b: Share, shape: Shape) -> Share:
        """Boolean-shared bits (uint8 0/1) to arithmetic shares: open t = b ^ s for a random bit s.

        [b] = t + [s] - 2 t [s]; the opened bits are packed 8 per byte."""
        shape = tuple(shape)
        t = self.prov.random_bits(shape)
        if t is None or not self.is_compute:
            return None
        S, s_arith = t
        t_share = (b ^ S) & np.uint8(1)
        (packed,) = self._open("b2a", [bk.packbits(t_share.reshape(-1))], boolean=True)
        tb = bk.astype(bk.unpackbits(packed, size(shape)).reshape(shape), _U)
        s_arith = resolve(s_arith)
        z = s_arith - _U(2) * tb * s_arith
        if self.idx == 0:
            z += tb
        return z

    # -- reusable masked matrices ----------------------------------------------------
    def masked_setup(self, x: Share, shape: Shape) -> _Semi2kMasked:
        shape = tuple(shape)
        mask = self.prov.matrix_mask(shape)
        if not self.is_compute:
            return _Semi2kMasked(shape, mask)
        (E,) = self._open("masked", [x - mask.share])
        return _Semi2kMasked(shape, mask, E=E)

    def masked_matmul(self, handle: Any, rows: Any, y: Share, shape_y: Shape, transpose: bool = False) -> Share:
        shape_y = tuple(shape_y)
        sub_shape = rows_shape(handle.shape, rows)
        if transpose:
            sub_shape = sub_shape[::-1]
        shape_c = matmul_shape(sub_shape, shape_y)
        t = self.prov.mask_triple(handle.mask, _picker(rows, transpose), shape_y, shape_c)
        if t is None or not self.is_compute:
            return None
        B, C = t
        (F,) = self._open("mmatmul", [y - B])
        E, A = _pick(handle.E, rows, transpose), _pick(handle.mask.share, rows, transpose)
        # sum_i (E @ y_i + a_i @ F + c_i) = E y + A (F + B) = (E + A) y = X y
        z = bk.matmul(E, y) + bk.matmul(A, F)
        z += resolve(C)
        return z

    # -- a matrix one party holds in plaintext, masked once --------------------------------
    def private_masked_setup(self, owner: str, x: Array | None, shape: Shape) -> _Semi2kMasked:
        """The owner of a plaintext (encoded) matrix X sends E = X - A once to the other
        compute parties, for a mask A known to the owner and the provider.

        Later products X[rows] @ y with a secret y cost one round: each other party i
        sends y_i - B_i to the owner only, half the traffic of masking a secret-shared X
        (only the owner sends E)."""
        shape = tuple(shape)
        if owner not in self.compute:
            raise ConfigError(f"private matrix owner '{owner}' is not a compute party of the device", party=owner)
        mask = self.prov.private_mask(owner, shape)
        h = _Semi2kMasked(shape, mask, owner=owner)
        if self.me == owner:
            h.X = x
            E = bk.asarray(x) - mask.share
            for p in self.peers:
                self.comm.send(p, "pmasked", E)
        elif self.is_compute:
            h.E = self.comm.recv_array(owner, "pmasked", _U, shape)
        return h

    def private_masked_matmul(self, handle: Any, rows: Any, y: Share, shape_y: Shape, transpose: bool = False) -> Share:
        return self.private_masked_matmul_many([(handle, rows, y, shape_y, transpose)])[0]

    def private_masked_matmul_many(self, items: Sequence[tuple[Any, Any, Share, Shape, bool]]) -> list[Share]:
        """Products X_o[rows] @ y for private matrices of possibly different owners, in one
        round: every party first sends its masked shares y_i - B_i to each owner, then
        each owner adds A F; the provider's C = sum_i A B_i arrives shared."""
        plans = []
        for handle, rows, y, shape_y, transpose in items:
            shape_y = tuple(shape_y)
            sub = rows_shape(handle.shape, rows)
            if transpose:
                sub = sub[::-1]
            others = [p for p in self.compute if p != handle.owner]
            plans.append((handle, rows, y, shape_y, transpose, matmul_shape(sub, shape_y), others))
        t = self.prov.private_triples([
            (h.mask, _picker(rows, tr), shape_y, shape_c, others) for h, rows, _, shape_y, tr, shape_c, others in plans])
        if t is None or not self.is_compute:
            return [None] * len(items)
        Bs, Cs = t
        # phase 1: masked shares to the owners (all sends before any receive: one round)
        for (handle, _, y, _, _, _, _), B in zip(plans, Bs):
            if self.me != handle.owner:
                self.comm.send(handle.owner, "pmatmul", y - B)
        # phase 2: local products
        out = []
        for (handle, rows, y, shape_y, transpose, _, others), C in zip(plans, Cs):
            if self.me == handle.owner:
                z = bk.matmul(_pick(handle.X, rows, transpose), y)
                a = _pick(handle.mask.share, rows, transpose)
                for p in others:
                    z += bk.matmul(a, self.comm.recv_array(p, "pmatmul", _U, shape_y))
            else:
                # X y_i = E y_i + A y_i, and A y_i = A (y_i - B_i) + A B_i
                z = bk.matmul(_pick(handle.E, rows, transpose), y)
            z += resolve(C)
            out.append(z)
        return out

    # -- a product of two matrices each held in plaintext by one party ----------------------
    def private_matmul(self, owner_a: str, a: Array | None, owner_b: str, b: Array | None,
                       shape_a: Shape, shape_b: Shape) -> Share:
        """Shares of X @ Y for X (ring-encoded) held by compute party `owner_a` and Y by another
        compute party `owner_b`, neither secret-shared: one round, one ring product per party.

        owner_a sends X - U to owner_b and owner_b sends Y - V to owner_a (U known to owner_a
        and the provider only, V to owner_b and the provider only); owner_a computes X (Y - V),
        owner_b (X - U) V, and the provider's shares of U V complete
        X (Y - V) + (X - U) V + U V = X Y. What each sees: owner_b the uniformly masked X - U,
        owner_a the uniformly masked Y - V, other compute parties and the dealer nothing
        (the dealer sends shares of U V and receives nothing). Each party's output share is
        uniform (C_i is). Against Beaver on secret-shared inputs (`matmul`: both operands
        opened, two ring products per party) this halves the bytes and the ring products, and
        X (Y - V) costs 3 or 4 float products instead of 5 when X is an encoded plaintext of
        small magnitude (`jointml.core.backend.numpy`). The result carries both operands'
        scales (truncate it as any product).

        >>> def prog(ctx):
        ...     p = Semi2k(ctx, ["alice", "bob"], dealer="carol")
        ...     x = np.array([[2, 3]], np.uint64) if ctx.me == "alice" else None
        ...     y = np.array([[4], [5]], np.uint64) if ctx.me == "bob" else None
        ...     return p.reveal(p.private_matmul("alice", x, "bob", y, (1, 2), (2, 1)), (1, 1))
        >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"].tolist()
        [[23]]
        """
        shape_a, shape_b = tuple(shape_a), tuple(shape_b)
        if owner_a == owner_b or owner_a not in self.compute or owner_b not in self.compute:
            raise ConfigError(f"private_matmul: the owners must be two different compute parties, got "
                              f"'{owner_a}' and '{owner_b}'", field="owner")
        t = self.prov.private_product(owner_a, owner_b, shape_a, shape_b, matmul_shape(shape_a, shape_b))
        if t is None or not self.is_compute:
            return None
        U, V, C = t
        if self.me == owner_a:
            self.comm.send(owner_b, "pprod", bk.sub(bk.asarray(a, _U), U))
            z = bk.matmul(bk.asarray(a, _U), self.comm.recv_array(owner_b, "pprod", _U, shape_b))
        elif self.me == owner_b:
            self.comm.send(owner_a, "pprod", bk.sub(bk.asarray(b, _U), V))
            z = bk.matmul(self.comm.recv_array(owner_a, "pprod", _U, shape_a), V)
        else:
            return bk.copy(resolve(C))
        z += resolve(C)
        return z

    # -- costs -----------------------------------------------------------------------------
    @classmethod
    def static_cost(cls, op: str, *shapes: Shape, n_compute: int | None = None, **params: Any) -> Cost:
        return _cost(op, shapes, 2 if n_compute is None else int(n_compute), params)


_FUSED = frozenset({"mul_trunc", "square_trunc", "matmul_trunc"})
#: prefetch names for `fxp_product(kind)`: whichever kernels the device's truncation mode picks
_FXP_PREFETCH = frozenset({"fxp_mul", "fxp_square", "fxp_matmul"})


def _trunc_mode(trunc: str | None, n: int) -> str:
    mode = trunc if trunc is not None else "dealer"
    if mode not in ("local", "dealer"):
        raise ConfigError(f"semi2k: trunc must be 'local' or 'dealer', got {trunc!r}", field="trunc")
    if mode == "local" and n != 2:
        raise ConfigError(f"semi2k: local truncation is sound for 2 compute parties only (got {n}): with more, "
                          "the sum of the shares wraps with high probability; use trunc='dealer'", field="trunc")
    return mode


def _bits(bits: int | None) -> int:
    if bits is None:
        raise ParameterError("semi2k.prefetch: a truncation needs bits=", field="bits")
    return int(bits)


def _beaver_mul_into(E: Array, b: Array, A: Array, F: Array, C: Array) -> Array:
    """E*b + A*F + C, elementwise; written into the opened F (this party's own array, not
    used again) when the shapes allow it, so that 1M-element products allocate nothing."""
    out_shape = np.broadcast_shapes(np.shape(E), np.shape(b), np.shape(A), np.shape(F), np.shape(C))
    if np.shape(F) != out_shape or not isinstance(F, np.ndarray) or not F.flags.writeable:
        z = E * b
        z += A * F
        z += C
        return z
    bk.mul(A, F, out=F)
    F += C
    # E*b needs one temporary unless E (also our own array) has the output's shape
    if np.shape(E) == out_shape and isinstance(E, np.ndarray) and E.flags.writeable:
        F += bk.mul(E, b, out=E)
    else:
        F += E * b
    return F


def _square_share(E: Array, a: Array, A: Array, C: Array) -> Array:
    """C + E * (a + A) with one temporary (a party's share of x^2, see `Semi2k.square`)."""
    z = bk.add(a, A)
    z *= E
    z += C
    return z


def _beaver_matmul(E: Array, y: Array, A: Array, F: Array, C: Array) -> Array:
    """E @ y + A @ F + C, a party's share of a Beaver matrix product (two ring products: see
    the module docstring for why not fewer; one joint product [E | A] @ [y ; F] does the same
    float work with twice the limb memory and was not faster)."""
    z = bk.matmul(E, y)
    z += bk.matmul(A, F)
    z += C
    return z


def _arshift(a: Array, bits: int) -> Array:
    """Arithmetic shift of ring elements read as signed 64-bit integers (one numpy pass)."""
    return np.right_shift(np.asarray(a).view(np.int64), np.int64(bits)).view(_U)


_FREE_OPS = frozenset({"map", "add", "sub", "neg", "add_public", "mul_public", "b_xor", "b_xor_public", "b_and_public"})


def _cost(op: str, shapes: Sequence[Shape], n: int, params: dict[str, Any]) -> Cost:
    """semi2k costs: every open sends a party's share to its n-1 peers; the dealer sends one
    correction share per correlated value (it never adds a round: it only sends)."""
    if op in _FREE_OPS:
        return FREE
    N = size(shapes[0]) if shapes else 0
    w = int(params.get("itemsize", 8))
    allp = n * (n - 1)  # messages of one all-to-all open

    def opened(words_bytes: int, dealer: int = 0) -> Cost:
        return Cost(allp * words_bytes + dealer, 1, dealer)

    if op == "share_in":
        return Cost(w * N, 1) if params.get("outsider") else FREE
    if op == "reveal":
        to = params.get("to", "all")
        per = {"all": allp, "member": n - 1, "outsider": n}[to]
        return Cost(per * w * N, 1)
    if op in ("mul", "matmul"):
        M = size(shapes[1])
        C = size(broadcast_shape(shapes[0], shapes[1]) if op == "mul" else matmul_shape(shapes[0], shapes[1]))
        return opened(8 * (N + M), 8 * C)
    if op == "square":
        return opened(8 * N, 8 * N)
    if op in ("trunc", "trunc_product", "mul_trunc", "square_trunc", "matmul_trunc"):
        return _trunc_cost(op, shapes, n, params, opened)
    if op == "b_and":
        return opened(2 * w * N, w * N)
    if op == "b2a_bits":
        return opened(math.ceil(N / 8), 8 * N)
    if op in ("msb", "eqz"):
        return _compare_cost(op, shapes, n, params, opened)
    if op == "masked_setup":
        return opened(8 * N)
    if op == "private_masked_setup":
        return Cost((n - 1) * 8 * N, 1)
    if op == "private_matmul":
        M = size(shapes[1])
        C = size(matmul_shape(shapes[0], shapes[1]))
        return Cost(8 * (N + M) + 8 * C, 1, 8 * C)
    if op in ("masked_matmul", "private_masked_matmul"):
        M = size(shapes[1])
        C = size(matmul_shape(shapes[0], shapes[1]))
        senders = allp if op == "masked_matmul" else n - 1
        return Cost(senders * 8 * M + 8 * C, 1, 8 * C)
    raise _unknown("semi2k", op)


def _trunc_cost(op: str, shapes: Sequence[Shape], n: int, params: dict[str, Any],
                opened: Callable[..., Cost]) -> Cost:
    """The dealer pair's truncation (alone or after a product), or the local one (free)."""
    N = size(shapes[0]) if shapes else 0
    if op == "trunc":
        return opened(8 * N, 16 * N)
    if op == "trunc_product":
        mode = params.get("trunc") or "dealer"
        return FREE if mode == "local" else _cost("trunc", shapes, n, params)
    base = op[: -len("_trunc")]
    out = broadcast_shape(*shapes) if op != "matmul_trunc" else matmul_shape(shapes[0], shapes[1])
    return _cost(base, shapes, n, params) + _cost("trunc", [out], n, params)


def _compare_cost(op: str, shapes: Sequence[Shape], n: int, params: dict[str, Any],
                  opened: Callable[..., Cost]) -> Cost:
    """msb / eqz: one masked open, a 4-level AND tree over 16-bit block words, bits to arithmetic."""
    N = size(shapes[0]) if shapes else 0
    mask = 31 * N  # bits (8 B), msb (1 B), 11 monomials (2 B each)
    # tree over 16-bit block words: msb has two ANDs per level sharing their left
    # operand (3 words opened) except the last; eqz one AND per level
    levels = [3, 3, 3, 2] if op == "msb" else [2, 2, 2, 2]
    dealer = [2, 2, 2, 1] if op == "msb" else [1, 1, 1, 1]
    c = opened(8 * N, mask)
    for lv, d in zip(levels, dealer):
        c = c + opened(lv * N, d * N)
    return c + _cost("b2a_bits", shapes, n, params)

