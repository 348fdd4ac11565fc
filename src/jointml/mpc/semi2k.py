"""semi2k: n-party additive secret sharing over Z_2^64 with a dealer.

Security model: semi-honest (honest-but-curious) parties; any coalition of up to
n-1 compute parties learns nothing beyond what is revealed; the dealer is a
separate, non-colluding party that supplies correlated randomness and receives no
protocol message (only public metadata such as shapes), so it learns nothing about
inputs or outputs. Messages between parties
are protected by the links' TLS.

A secret x is held as shares x_0..x_{n-1} (uint64) with sum x_i = x mod 2^64.
Costs per element, for n compute parties (each party sends to n-1 peers):

| op         | rounds | each party sends            | dealer sends (to last party) |
|------------|--------|-----------------------------|------------------------------|
| add/sub    | 0      | 0                           | 0                            |
| mul        | 1      | 2 x 8 B (x-a, y-b)          | 8 B (c)                      |
| square     | 1      | 8 B                         | 8 B                          |
| matmul     | 1      | 8 B x (|X| + |Y|)           | 8 B x |Z|                    |
| trunc      | 1      | 8 B                         | 16 B (r>>f, msb r)           |
| msb / lt   | 6      | ~17 B                       | ~58 B                        |
| eqz / eq   | 6      | ~14 B                       | ~52 B                        |

Comparisons open c = x + r for a dealer mask r and compare r with c bit by bit. Since r
is the dealer's, it also shares the products of r's bits within 4-bit blocks, so the
first two levels of the comparison tree cost nothing; four AND rounds finish it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..core import ring
from ..core.errors import ConfigError
from ..core.prg import Prg
from . import circuits
from .dealer import DealerProvider, NullProvider
from .protocol import Protocol, wraps_ring
from .secret_array import matmul_shape

_U = np.uint64


class _Semi2kMasked:
    """A secret matrix X opened once as E = X - A for a dealer mask A that is then reused.

    Every later product X[rows] @ y needs only a fresh triple (A[rows], B, A[rows] B):
    the parties open y - B (|y| words) instead of the whole matrix, and the dealer
    sends |result| words. This is what makes training loops over a fixed data matrix
    cheap: the n x d matrix crosses the links once, not once per iteration."""

    def __init__(self, shape, A=None, E=None, A_total=None):
        self.shape = tuple(shape)
        self.A = A
        self.E = E
        self.A_total = A_total


@wraps_ring
class Semi2k(Protocol):
    name = "semi2k"

    def __init__(self, ctx, parties: Sequence[str], dealer: str | None):
        if dealer is None:
            raise ConfigError("semi2k needs a dealer party (an ordinary party of the cluster that holds no data)")
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
        self.is_dealer = self.me == dealer
        self.idx = self.compute.index(self.me) if self.is_compute else -1
        self.n = len(self.compute)
        self.peers = [p for p in self.compute if p != self.me]
        # A label unique to this device (every party draws it): two devices in one
        # program never share seeds, hence never share masks.
        self.label = ctx.next_uid("semi2k-")
        self.prov = DealerProvider(self, self.label) if (self.is_compute or self.is_dealer) else NullProvider()
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

    def _open(self, tag: str, arrays: list[np.ndarray], boolean: bool = False) -> list[np.ndarray]:
        """All compute parties publish their shares of several values at once (one round)."""
        for p in self.peers:
            self.comm.send(p, tag, arrays)
        out = [np.array(a, copy=True) for a in arrays]  # 0-d operands arrive as numpy scalars
        for p in self.peers:
            got = self.comm.recv(p, tag, dtypes=[a.dtype for a in arrays], shapes=[a.shape for a in arrays]).arrays
            for o, g in zip(out, got):
                if boolean:
                    o ^= g
                else:
                    o += g
        return out

    # -- structure ----------------------------------------------------------------
    def map(self, fn: Callable, *shares):
        if not self.is_compute:
            return None
        return fn(*shares)

    # -- input / output -------------------------------------------------------------
    def share_in(self, owner, value, shape, dtype=_U, boolean=False):
        """Secret-share `value` held by `owner` (a compute party, the dealer, or an outsider).

        A compute-party owner masks its value with pairwise PRG streams: no share
        travels, only the shape (which is public). Another owner draws all but
        one share from pairwise streams and sends the last one."""
        me = self.me
        shape = tuple(shape)
        if owner in self.compute:
            if me == owner:
                x = np.array(value, dtype=dtype, copy=True).reshape(shape)
                for p in self.peers:
                    r = self._pair_prg(p).random(shape, dtype)
                    if boolean:
                        x ^= r
                    else:
                        x -= r
                return x
            if self.is_compute:
                return self._pair_prg(owner).random(shape, dtype)
            return None
        # Owner outside the compute set.
        last = self.compute[-1]
        if me == owner:
            x = np.array(value, dtype=dtype, copy=True).reshape(shape)
            for p in self.compute[:-1]:
                r = self._in_prg(owner, p).random(shape, dtype)
                if boolean:
                    x ^= r
                else:
                    x -= r
            self.comm.send(last, "share_in", x)
            return None
        if me == last:
            return self.comm.recv_array(owner, "share_in", dtype, shape)
        if self.is_compute:
            return self._in_prg(owner, me).random(shape, dtype)
        return None

    def reveal(self, x, shape, to=None, boolean=False, dtype=_U):
        shape = tuple(shape)
        if to is None:
            if not self.is_compute:
                return None
            return self._open("reveal", [np.asarray(x, dtype=dtype)], boolean)[0]
        if self.is_compute and self.me != to:
            self.comm.send(to, "reveal_to", np.asarray(x, dtype=dtype))
        if self.me != to:
            return None
        senders = [p for p in self.compute if p != to]
        out = np.array(x, dtype=dtype, copy=True) if self.is_compute else np.zeros(shape, dtype=dtype)
        for p in senders:
            g = self.comm.recv_array(p, "reveal_to", dtype, shape)
            if boolean:
                out ^= g
            else:
                out += g
        return out

    # -- linear ---------------------------------------------------------------------
    def add(self, a, b):
        return None if not self.is_compute else a + b

    def sub(self, a, b):
        return None if not self.is_compute else a - b

    def neg(self, a):
        return None if not self.is_compute else (_U(0) - a)

    def add_public(self, a, c):
        if not self.is_compute:
            return None
        c = np.asarray(c, dtype=_U)
        return a + c if self.idx == 0 else a + np.zeros_like(c)

    def mul_public(self, a, c):
        return None if not self.is_compute else a * np.asarray(c, dtype=_U)

    # -- multiplication ------------------------------------------------------------------
    def mul(self, a, b, shape_a, shape_b):
        prov = self.prov
        A = prov.rand(shape_a)
        B = prov.rand(shape_b)
        shape_c = np.broadcast_shapes(tuple(shape_a), tuple(shape_b))
        if self.is_dealer:
            prov.shares_of("mul", prov.total(A) * prov.total(B), shape_c)
            return None
        if not self.is_compute:
            return None
        E, F = self._open("mul", [a - A, b - B])
        C = prov.shares_of("mul", None, shape_c)
        z = C + E * b + A * F  # sum_i E*y_i + a_i*F + c_i = xy
        return z

    def square(self, a, shape):
        prov = self.prov
        A = prov.rand(shape)
        if self.is_dealer:
            t = prov.total(A)
            prov.shares_of("square", t * t, shape)
            return None
        if not self.is_compute:
            return None
        (E,) = self._open("square", [a - A])
        C = prov.shares_of("square", None, shape)
        # x^2 = (E+a)^2 = E^2 + 2Ea + a^2; with x_i = E/n.. use E*(x_i + a_i) summing to E*x + E*a = E^2 + 2Ea.
        return C + E * (a + A)

    def matmul(self, a, b, shape_a, shape_b):
        prov = self.prov
        A = prov.rand(shape_a)
        B = prov.rand(shape_b)
        shape_c = matmul_shape(tuple(shape_a), tuple(shape_b))
        if self.is_dealer:
            prov.shares_of("matmul", ring.matmul(prov.total(A), prov.total(B)), shape_c)
            return None
        if not self.is_compute:
            return None
        E, F = self._open("matmul", [a - A, b - B])
        # sum_i (E @ y_i + a_i @ F + c_i) = E@Y + A@F + AB = XY: two ring matmuls per party.
        z = ring.matmul(E, b) + ring.matmul(A, F)
        C = prov.shares_of("matmul", None, shape_c)
        z += C
        return z

    # -- truncation --------------------------------------------------------------------
    def trunc(self, a, bits, shape):
        """Divide by 2^bits with stochastic rounding: the result is floor(x / 2^bits) or one
        more, up with probability equal to the dropped fraction (unbiased on average; the
        borrow of the masked low bits decides).

        Exact up to one unit for |x| < 2^62: open c = x + 2^62 + r with dealer-supplied
        shares of r, r >> bits and msb(r); the wrap of x + 2^62 + r is msb(r) & ~msb(c),
        so y = (c >> bits) - (r >> bits) + wrap * 2^(64-bits) - 2^(62-bits)."""
        prov = self.prov
        shape = tuple(shape)
        R = prov.rand(shape)
        k = _U(bits)
        if self.is_dealer:
            r = prov.total(R)
            prov.shares_of("trunc", np.stack([r >> k, r >> _U(63)]), (2,) + shape)
            return None
        if not self.is_compute:
            return None
        x = a + R
        if self.idx == 0:
            x = x + _U(1 << 62)
        (c,) = self._open("trunc", [x])
        hm = prov.shares_of("trunc", None, (2,) + shape)
        r_hi, r_msb = hm[0], hm[1]
        not_c_msb = _U(1) - (c >> _U(63))
        y = r_msb * (not_c_msb << _U(64 - bits)) - r_hi
        if self.idx == 0:
            y += (c >> k) - _U(1 << (62 - bits))
        return y

    # -- boolean -------------------------------------------------------------------------
    def b_xor(self, a, b):
        return None if not self.is_compute else a ^ b

    def b_xor_public(self, a, c):
        if not self.is_compute:
            return None
        return a ^ np.asarray(c, dtype=a.dtype) if self.idx == 0 else a

    def b_and_public(self, a, c):
        return None if not self.is_compute else a & np.asarray(c, dtype=a.dtype)

    def b_and(self, pairs, shapes, dtypes):
        """Several ANDs in one round. Pairs sharing the same left operand object share its mask."""
        prov = self.prov
        lefts: list = []
        left_idx = []
        for (x, _), shape, dt in zip(pairs, shapes, dtypes):
            for j, (lx, lshape, ldt) in enumerate(lefts):
                if lx is x and lshape == shape and ldt == dt:
                    left_idx.append(j)
                    break
            else:
                left_idx.append(len(lefts))
                lefts.append((x, tuple(shape), dt))
        As = [prov.rand(s, dt) for (_, s, dt) in lefts]
        Bs = [prov.rand(tuple(s), dt) for s, dt in zip(shapes, dtypes)]
        if self.is_dealer:
            for (j, B, s, dt) in zip(left_idx, Bs, shapes, dtypes):
                prov.shares_of("and", prov.total(As[j], True) & prov.total(B, True), s, dt, boolean=True)
            return [None] * len(pairs)
        if not self.is_compute:
            return [None] * len(pairs)
        opened = self._open(
            "and",
            [x ^ A for (x, _, _), A in zip(lefts, As)] + [y ^ B for (_, y), B in zip(pairs, Bs)],
            boolean=True,
        )
        D, Es = opened[: len(lefts)], opened[len(lefts) :]
        out = []
        for (j, B, E, (x, y), s, dt) in zip(left_idx, Bs, Es, pairs, shapes, dtypes):
            C = prov.shares_of("and", None, s, dt, boolean=True)
            # x&y = (d^a)&(e^b) = d&e ^ d&b ^ a&e ^ a&b  ->  party i: c_i ^ d&b_i ^ a_i&e (^ d&e at party 0)
            z = C ^ (D[j] & B) ^ (As[j] & E)
            if self.idx == 0:
                z ^= D[j] & E
            out.append(z)
        return out

    # -- conversions ---------------------------------------------------------------------
    def _masked_open(self, a, shape, tag: str, reversed_layout: bool = True):
        """Open c = x + r for a dealer mask r. Returns (c, boolean share of r's low 63 bits
        index-reversed (comparisons) or of all of r (equality), share of r's msb, shares of the 11 block monomials
        of those bits — what lets the parties skip the tree's first two levels)."""
        prov = self.prov
        R = prov.rand(shape)
        if self.is_dealer:
            r = prov.total(R)
            # comparisons use the low 63 bits (index-reversed); equality all 64 bits
            bits = circuits.index_reverse64(r & _U((1 << 63) - 1)) if reversed_layout else r
            prov.shares_of(tag + ":bits", bits, shape, _U, boolean=True)
            prov.shares_of(tag + ":msb", (r >> _U(63)).astype(np.uint8), shape, np.uint8, boolean=True)
            mono = circuits.monomials(bits, reversed_layout)
            prov.shares_of(tag + ":mono", mono, mono.shape, np.uint16, boolean=True)
            return None, None, None, None
        if not self.is_compute:
            return None, None, None, None
        (c,) = self._open(tag, [a + R])
        rb = prov.shares_of(tag + ":bits", None, shape, _U, boolean=True)
        rm = prov.shares_of(tag + ":msb", None, shape, np.uint8, boolean=True)
        mono = prov.shares_of(tag + ":mono", None, (len(circuits._SUBSETS),) + tuple(shape), np.uint16, boolean=True)
        return c, rb, rm, mono

    def msb(self, a, shape):
        """msb(x) = msb(c) ^ msb(r) ^ borrow, borrow = [r_low > c_low]: the first two tree
        levels come locally from dealer monomials, four AND rounds finish the tree.
        Rounds: 1 (open) + 4 + 1 (bit to arithmetic) = 6."""
        shape = tuple(shape)
        c, rb, rm, mono = self._masked_open(a, shape, "msb")
        if self.is_compute:
            c_low = c & _U((1 << 63) - 1)
            crev = circuits.index_reverse64(c_low)
            G, E = circuits.block_greater_equal(circuits.quarters(rb), mono, crev, self.idx == 0)
        else:
            G = E = None
        borrow = circuits.greater_tree(self, G, E, shape, width=16)
        if self.is_compute:
            bit = borrow ^ rm
            if self.idx == 0:
                bit ^= (c >> _U(63)).astype(np.uint8)
        else:
            bit = None
        return self.b2a_bits(bit, shape)

    def eqz(self, a, shape):
        """[x == 0]: x == 0 iff c == r; 4-bit blocks of [r == c] locally from dealer monomials,
        then an AND tree over 16 blocks and the top bit. Rounds: 1 + 4 + 1 = 6."""
        shape = tuple(shape)
        c, rb, _, mono = self._masked_open(a, shape, "eqz", reversed_layout=False)
        if self.is_compute:
            _, X = circuits.block_greater_equal(circuits.quarters(rb, False), mono, c, self.idx == 0, reversed_layout=False, need_g=False)
        else:
            X = None
        bit = circuits.and_tree(self, X, shape, width=16)
        return self.b2a_bits(bit, shape)

    def b2a_bits(self, b, shape):
        """Boolean-shared bits (uint8 0/1) to arithmetic shares: open t = b ^ s for a dealer bit s.

        [b] = t + [s] - 2 t [s]; the opened bits are packed 8 per byte."""
        prov = self.prov
        shape = tuple(shape)
        S = prov.rand(shape, np.uint8)
        if self.is_dealer:
            s = prov.total([x & np.uint8(1) for x in S], True)
            prov.shares_of("b2a", s.astype(_U), shape)
            return None
        if not self.is_compute:
            return None
        t_share = (b ^ S) & np.uint8(1)
        n = int(np.prod(shape)) if shape else 1
        (packed,) = self._open("b2a", [np.packbits(t_share.reshape(-1))], boolean=True)
        t = np.unpackbits(packed, count=n).reshape(shape).astype(_U)
        s_arith = prov.shares_of("b2a", None, shape)
        z = s_arith - _U(2) * t * s_arith
        if self.idx == 0:
            z += t
        return z

    # -- reusable masked matrices ----------------------------------------------------
    def masked_setup(self, x, shape):
        shape = tuple(shape)
        prov = self.prov
        A = prov.rand(shape)
        if self.is_dealer:
            return _Semi2kMasked(shape, A_total=prov.total(A))
        if not self.is_compute:
            return _Semi2kMasked(shape)
        (E,) = self._open("masked", [x - A])
        return _Semi2kMasked(shape, A=A, E=E)


    def masked_matmul(self, handle, rows, y, shape_y, transpose=False):
        prov = self.prov
        shape_y = tuple(shape_y)
        B = prov.rand(shape_y)
        sub_shape = _rows_shape(handle.shape, rows)
        if transpose:
            sub_shape = sub_shape[::-1]
        shape_c = matmul_shape(sub_shape, shape_y)
        if self.is_dealer:
            a = handle.A_total[rows]
            prov.shares_of("mmatmul", ring.matmul(a.T if transpose else a, prov.total(B)), shape_c)
            return None
        if not self.is_compute:
            return None
        (F,) = self._open("mmatmul", [y - B])
        E, A = handle.E[rows], handle.A[rows]
        if transpose:
            E, A = E.T, A.T
        # sum_i (E @ y_i + a_i @ F + c_i) = E y + A (F + B) = (E + A) y = X y
        z = ring.matmul(E, y) + ring.matmul(A, F)
        z += prov.shares_of("mmatmul", None, shape_c)
        return z

    # -- a matrix one party holds in plaintext, masked once --------------------------------
    def private_masked_setup(self, owner: str, x, shape):
        """The owner of a plaintext (encoded) matrix X sends E = X - A once to the other
        compute parties, for a mask A drawn from the owner's stream with the dealer.

        Later products X[rows] @ y with a secret y cost one round: each other party i
        sends y_i - B_i (B_i from its own stream with the dealer) to the owner only,
        half the traffic of masking a secret-shared X (only the owner sends E)."""
        shape = tuple(shape)
        if owner not in self.compute:
            raise ValueError(f"private matrix owner '{owner}' is not a compute party of the device")
        k = self.compute.index(owner)
        h = _Semi2kMasked(shape)
        h.owner = owner
        if self.is_dealer:
            h.A_total = self.prov.prgs[k].random(shape, _U)
        elif self.me == owner:
            h.A = self.prov.prg.random(shape, _U)
            h.X = x
            E = x - h.A
            for p in self.peers:
                self.comm.send(p, "pmasked", E)
        elif self.is_compute:
            h.E = self.comm.recv_array(owner, "pmasked", _U, shape)
        return h

    def private_masked_matmul(self, handle, rows, y, shape_y, transpose=False):
        return self.private_masked_matmul_many([(handle, rows, y, shape_y, transpose)])[0]

    def private_masked_matmul_many(self, items):
        """Products X_o[rows] @ y for private matrices of possibly different owners, in one
        round: every party first sends its masked shares y_i - B_i to each owner, then
        each owner adds A F; the dealer's C = sum_i A B_i arrives shared."""
        prov = self.prov
        plans = []
        for handle, rows, y, shape_y, transpose in items:
            shape_y = tuple(shape_y)
            sub = _rows_shape(handle.shape, rows)
            if transpose:
                sub = sub[::-1]
            others = [p for p in self.compute if p != handle.owner]
            plans.append((handle, rows, y, shape_y, transpose, matmul_shape(sub, shape_y), others))

        def pick(a, rows, transpose):
            a = a[rows]
            return a.T if transpose else a

        if self.is_dealer:
            # Mirror the parties' draw order: every B first (phase 1), then the C shares.
            Bs = [[(p, prov.prgs[self.compute.index(p)].random(shape_y, _U)) for p in others]
                  for handle, rows, y, shape_y, transpose, shape_c, others in plans]
            for (handle, rows, y, shape_y, transpose, shape_c, others), bs in zip(plans, Bs):
                a = pick(handle.A_total, rows, transpose)
                total = None
                for _, B in bs:
                    c = ring.matmul(a, B)
                    total = c if total is None else total + c
                prov.shares_of("pmatmul", total, shape_c)
            return [None] * len(items)
        if not self.is_compute:
            return [None] * len(items)
        # phase 1: masked shares to the owners (all sends before any receive: one round)
        for handle, rows, y, shape_y, transpose, shape_c, others in plans:
            if self.me != handle.owner:
                self.comm.send(handle.owner, "pmatmul", y - prov.prg.random(shape_y, _U))
        # phase 2: local products
        out = []
        for handle, rows, y, shape_y, transpose, shape_c, others in plans:
            if self.me == handle.owner:
                z = ring.matmul(pick(handle.X, rows, transpose), y)
                a = pick(handle.A, rows, transpose)
                for p in others:
                    z += ring.matmul(a, self.comm.recv_array(p, "pmatmul", _U, shape_y))
            else:
                # X y_i = E y_i + A y_i, and A y_i = A (y_i - B_i) + A B_i
                z = ring.matmul(pick(handle.E, rows, transpose), y)
            z += prov.shares_of("pmatmul", None, shape_c)
            out.append(z)
        return out


def _rows_shape(shape: tuple, rows) -> tuple:
    """Shape of X[rows] without touching memory."""
    if isinstance(rows, slice):
        return (len(range(*rows.indices(shape[0]))),) + tuple(shape[1:])
    r = np.asarray(rows)
    if r.dtype == bool:
        return (int(r.sum()),) + tuple(shape[1:])
    return tuple(r.shape) + tuple(shape[1:])
