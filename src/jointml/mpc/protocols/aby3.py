"""aby3: 3-party replicated secret sharing over Z_2^64 (semi-honest, honest majority).

Security model: three compute parties P0, P1, P2 (in the order given to the device),
semi-honest, at most one of them corrupted (honest majority). No dealer: correlated
randomness comes from PRG seeds that each pair of parties agreed once over their TLS
link. A single party's view (its shares and every message it receives) is uniformly
random and independent of the inputs; parties learn only what `reveal` opens, and
`reveal(to=p)` shows the value to p alone. Two colluding parties can reconstruct
everything (that is the honest-majority assumption). Links are mutually
authenticated TLS.

Sharing. x = x_0 + x_1 + x_2 (mod 2^64; XOR for boolean words of any unsigned
width) and party P_i holds the pair (x_i, x_{i+1}) (indices mod 3): every component
is known to exactly two parties, component k to P_{k-1} and P_k. A share is a tuple
of two equally shaped arrays; `map` applies a function to each component, so any
function written for a plain numpy share (reshape, indexing, sums, public matmuls
through BLAS) works unchanged and without copies.

Randomness. P_j and P_{j+1} share a seed ("pair j") expanded by AES-CTR
(`jointml.core.prg`) into two streams: *zero* gives the 3-out-of-3 zero sharing
alpha_i = Z_i - Z_{i-1} (sum 0, no traffic), *rand* gives random components: the
component held by P_{k-1} and P_k is drawn by both from pair k-1, so random
replicated values cost nothing.

Costs per element (`Aby3.static_cost`; bytes are what the three parties send together;
the one-round helpers send in parallel). A matmul costs 24 B per element of the result
(one reshare) and 5 local ring matmuls in total (1+2+2); trunc sends 40 B plus one small
word (4 B for bits <= 32); msb is the input round with its AND (32 B), a 6-round tree
(3 x 19 B) and b2a (32 B); eqz an input (16 B) sent with
the first AND, a 6-round AND tree (3 x 10 B) and b2a. Rounds are counted as
`Communicator` does: send phases of the busiest party.

| op | rounds | bytes per element, all parties | of which the dealer |
| --- | --- | --- | --- |
| share_in (member) | 1 | 16 | 0 |
| share_in (outsider) | 1 | 32 | 0 |
| reveal (all) | 1 | 24 | 0 |
| reveal (to a member) | 1 | 8 | 0 |
| reveal (to an outsider) | 1 | 16 | 0 |
| add, sub, neg, public ops | 0 | 0 | 0 |
| mul / square | 1 | 24 | 0 |
| trunc | 2 | 44 | 0 |
| mul_trunc | 2 | 60 | 0 |
| b_and (64-bit words) | 1 | 24 | 0 |
| b_and (8-bit words) | 1 | 3 | 0 |
| b2a_bits | 1 | 32 | 0 |
| msb (x < 0) | 8 | 121 | 0 |
| eqz (x == 0) | 7 | 78 | 0 |

Roles that are not symmetric (the truncation "dealer", the party that inputs its local
sum in msb/eqz, the light party of matmul) rotate from one operation to the next, so
that in a long program the load is spread evenly over the three parties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ...core.backend import backend as bk
from ...core.errors import ConfigError, ParameterError, ProtocolError
from ...core.fixedpoint import DEFAULT_FRAC_BITS
from ...core.prg import Prg
from ..shapes import Shape, broadcast_shape, matmul_shape, size
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

__all__ = ["Aby3", "DOC_COST_ROWS"]

_E = (1 << 20,)  # per-element figures: one large vector
#: the rows of the cost table in the module docstring (tests/test_protocol_cost.py checks it)
DOC_COST_ROWS: list[tuple[str, str, tuple[Shape, ...], dict[str, Any]]] = [
    ("share_in (member)", "share_in", (_E,), {}),
    ("share_in (outsider)", "share_in", (_E,), {"outsider": True}),
    ("reveal (all)", "reveal", (_E,), {}),
    ("reveal (to a member)", "reveal", (_E,), {"to": "member"}),
    ("reveal (to an outsider)", "reveal", (_E,), {"to": "outsider"}),
    ("add, sub, neg, public ops", "add", (_E,), {}),
    ("mul / square", "mul", (_E, _E), {}),
    ("trunc", "trunc", (_E,), {"bits": 18}),
    ("mul_trunc", "mul_trunc", (_E, _E), {"bits": 18}),
    ("b_and (64-bit words)", "b_and", (_E,), {}),
    ("b_and (8-bit words)", "b_and", (_E,), {"itemsize": 1}),
    ("b2a_bits", "b2a_bits", (_E,), {}),
    ("msb (x < 0)", "msb", (_E,), {}),
    ("eqz (x == 0)", "eqz", (_E,), {}),
]

_U = np.uint64
_LOW63 = _U((1 << 63) - 1)
_BIT63 = _U(1 << 63)


def _arr(x: Any) -> Array:
    """numpy returns scalars for 0-d operands; shares are always arrays."""
    return bk.asarray(x)


def _small_dtype(bits: int) -> DType:
    for dt in (np.uint8, np.uint16, np.uint32):
        if bits <= np.dtype(dt).itemsize * 8:
            return dt
    return _U


@wraps_ring
class Aby3(Protocol):
    """Replicated 3-party protocol. `Aby3(ctx, [p0, p1, p2])` at every party of the cluster
    (members and outsiders alike: outsiders hold no shares but may input or receive)."""

    name = "aby3"
    capabilities = CORE_CAPABILITIES | {"mul_trunc", "square_trunc", "matmul_trunc"}
    share_order_matters = True  # P_i holds components i and i+1: the order of the parties counts

    def __init__(self, ctx: PartyContext, parties: Sequence[str]):
        parties = list(parties)
        if len(parties) != 3 or len(set(parties)) != 3:
            raise ConfigError(f"aby3 needs exactly 3 distinct compute parties, got {parties}")
        for p in parties:
            if p not in ctx.parties:
                raise ConfigError(f"aby3: unknown party '{p}' (cluster: {ctx.parties})")
        self.ctx = ctx
        self.comm = ctx.comm
        self.compute = list(parties)
        self.members = list(parties)
        self.me = ctx.me
        self.is_member = self.me in parties
        self.is_compute = self.is_member
        self.idx = parties.index(self.me) if self.is_member else -1
        self._ops = 0  # rotates asymmetric roles; identical at the three members (SPMD)
        self._in_prgs: dict[str, Prg] = {}
        # A label unique to this device instance (the same at every party, which all construct
        # it): two aby3 devices in one program must never share seeds, hence masks.
        self._label = ctx.next_uid("aby3-")
        if self.is_member:
            i = self.idx
            self.next = parties[(i + 1) % 3]
            self.prev = parties[(i - 1) % 3]
            s_next = ctx.shared_seed(self.me, self.next, self._label + ":pair")
            s_prev = ctx.shared_seed(self.prev, self.me, self._label + ":pair")
            # pair j = (P_j, P_{j+1}); this party belongs to pairs i and i-1.
            self._zero = {i: Prg(s_next, "aby3-zero"), (i - 1) % 3: Prg(s_prev, "aby3-zero")}
            self._rand = {i: Prg(s_next, "aby3-rand"), (i - 1) % 3: Prg(s_prev, "aby3-rand")}

    # -- helpers ---------------------------------------------------------------
    def _party(self, k: int) -> str:
        return self.compute[k % 3]

    def _role(self) -> int:
        """Index of the party taking the asymmetric role in the next operation."""
        r = self._ops % 3
        self._ops += 1
        return r

    def _comp_rand(self, k: int, shape: Shape, dtype: DType = _U) -> Array:
        """Random component k, drawn identically by its two holders P_{k-1} and P_k."""
        return bk.random(self._rand[(k - 1) % 3], shape, dtype)

    def _slot(self, k: int) -> int:
        """Where component k sits in this party's pair: 0, 1, or 2 (not held)."""
        return (k - self.idx) % 3

    def _add_zero(self, z: Array, boolean: bool) -> Array:
        """z += alpha_i in place, where alpha_0 + alpha_1 + alpha_2 = 0 (or XOR 0)."""
        if z.size == 0:
            return z
        i = self.idx
        t = bk.random(self._zero[i], z.shape, z.dtype)
        if boolean:
            z ^= t
            z ^= self._zero[(i - 1) % 3].fill(t)
        else:
            z += t
            z -= self._zero[(i - 1) % 3].fill(t)
        return z

    def _recv(self, k: int, tag: str, likes: Sequence[tuple[DType, Shape]]) -> list[Array]:
        """Receive arrays from member k, checking dtypes and shapes against `likes` [(dtype, shape)]."""
        msg = self.comm.recv(self._party(k), tag, dtypes=[d for d, _ in likes], shapes=[s for _, s in likes])
        return msg.arrays

    def _reshare(self, zs: list[Array], tag: str) -> list[Share]:
        """3-out-of-3 shares z_i (alpha already added) -> replicated: send z_i to P_{i-1}, get z_{i+1}.

        One round, |z| words sent by each party."""
        self.comm.send(self.prev, tag, zs)
        got = self.comm.recv(self.next, tag, dtypes=[z.dtype for z in zs], shapes=[z.shape for z in zs]).arrays
        return [(z, g) for z, g in zip(zs, got)]

    # -- structure ----------------------------------------------------------------
    def map(self, fn: Callable[..., Array], *shares: Share) -> Share:
        """Apply fn to each component: fn(x_i, y_i, ...) and fn(x_{i+1}, y_{i+1}, ...).

        fn sees arrays of the secret's own shape (no leading component axis), exactly like a
        semi2k share. Local: 0 rounds, 0 B."""
        if not self.is_member:
            return None
        return (_arr(fn(*[s[0] for s in shares])), _arr(fn(*[s[1] for s in shares])))

    # -- share layout -------------------------------------------------------------------
    def export_share(self, share: Share) -> list[Array]:
        """[x_i, x_{i+1}] at member P_i, [] elsewhere."""
        return [] if share is None else [bk.copy(share[0], _U), bk.copy(share[1], _U)]

    def import_share(self, arrays: Sequence[Array], shape: Shape) -> Share:
        if not self.is_member:
            if len(arrays):
                raise ProtocolError(f"aby3: party '{self.me}' holds no share, got {len(arrays)} arrays", party=self.me)
            return None
        check_share_arrays("aby3", self.me, arrays, 2, shape)
        return (bk.copy(arrays[0], _U), bk.copy(arrays[1], _U))

    # -- input / output -------------------------------------------------------------
    def _in_prg(self, owner: str, member: str) -> Prg:
        key = owner + "/" + member
        g = self._in_prgs.get(key)
        if g is None:
            g = Prg(self.ctx.shared_seed(owner, member, self._label + ":in"), stream="aby3-in")
            self._in_prgs[key] = g
        return g

    def share_in(self, owner: str, value: Array | None, shape: Shape, dtype: DType = _U,
                 boolean: bool = False) -> Share:
        """Secret-share `value` held by `owner` (a member or an outside party).

        Member owner P_o: components o and o+1 come from its seeds with P_{o-1} and P_{o+1}
        (no traffic); it sends x_{o+2} = x - x_o - x_{o+1} to the two others (16 B per
        element, 1 round). Each receiver sees one component masked by a seed it lacks.
        Outside owner: x_0 and x_1 come from seeds it shares with P0 and P1; it sends x_1 to
        P0, x_2 to P1 and (x_2, x_0) to P2 (32 B per element, 1 round)."""
        shape = tuple(shape)
        dt = np.dtype(dtype)
        tag = "aby3:in"

        def combine(x: Array, r: Array) -> None:
            if boolean:
                x ^= r
            else:
                x -= r

        if owner in self.compute:
            if not self.is_member:
                return None
            o = self.compute.index(owner)
            i = self.idx
            if i == o:
                x = bk.copy(value, dt).reshape(shape)
                c0 = self._comp_rand(o, shape, dt)
                c1 = self._comp_rand(o + 1, shape, dt)
                combine(x, c0)
                combine(x, c1)
                self.comm.send(self._party(o + 1), tag, [x])
                self.comm.send(self._party(o + 2), tag, [x])
                return (c0, c1)
            if i == (o + 1) % 3:
                c1 = self._comp_rand(o + 1, shape, dt)
                (c2,) = self._recv(o, tag, [(dt, shape)])
                return (c1, c2)
            c0 = self._comp_rand(o, shape, dt)
            (c2,) = self._recv(o, tag, [(dt, shape)])
            return (c2, c0)
        # An owner outside the three compute parties.
        p0, p1, p2 = self.compute
        if self.me == owner:
            x = bk.copy(value, dt).reshape(shape)
            x0 = bk.random(self._in_prg(owner, p0), shape, dt)
            x1 = bk.random(self._in_prg(owner, p1), shape, dt)
            combine(x, x0)
            combine(x, x1)  # x is now x_2
            self.comm.send(p0, tag, [x1])
            self.comm.send(p1, tag, [x])
            self.comm.send(p2, tag, [x, x0])
            return None
        if not self.is_member:
            return None
        if self.idx == 0:
            x0 = bk.random(self._in_prg(owner, p0), shape, dt)
            (x1,) = self.comm.recv(owner, tag, dtypes=[dt], shapes=[shape]).arrays
            return (x0, x1)
        if self.idx == 1:
            x1 = bk.random(self._in_prg(owner, p1), shape, dt)
            (x2,) = self.comm.recv(owner, tag, dtypes=[dt], shapes=[shape]).arrays
            return (x1, x2)
        x2, x0 = self.comm.recv(owner, tag, dtypes=[dt, dt], shapes=[shape, shape]).arrays
        return (x2, x0)

    def reveal(self, x: Share, shape: Shape | None, to: str | None = None, boolean: bool = False,
               dtype: DType = _U) -> Array | None:
        """Open x. to=None: every member sends its second component x_{i+1} to P_{i-1}, which
        misses exactly that one (1 round, 8 B per element each; outsiders get None).
        to=member P_t: P_{t+1} sends x_{t+2} (8 B). to=outsider: P0 sends x_0 and P1 sends
        x_1 + x_2 (16 B). The receiver checks dtype and shape (an outsider that does not know
        the shape passes None and checks that both messages agree)."""
        dt = np.dtype(dtype)
        shape = None if shape is None else tuple(shape)

        def comb(a: Array, b: Array) -> Array:
            return a ^ b if boolean else a + b

        tag = "aby3:open"
        if to is None:
            if not self.is_member:
                return None
            x0 = bk.asarray(x[0], dt)
            x1 = bk.asarray(x[1], dt)
            self.comm.send(self.prev, tag, [x1])
            (x2,) = self.comm.recv(self.next, tag, dtypes=[dt], shapes=[x1.shape]).arrays
            return _arr(comb(comb(x0, x1), x2))
        tag = "aby3:open-to"
        if to not in self.ctx.parties:
            raise ConfigError(f"aby3.reveal: unknown party '{to}' (cluster: {self.ctx.parties})")
        if to in self.compute:
            t = self.compute.index(to)
            if self.is_member and self.idx == (t + 1) % 3:
                self.comm.send(to, tag, [bk.asarray(x[1], dt)])
                return None
            if self.me != to:
                return None
            x0 = bk.asarray(x[0], dt)
            x1 = bk.asarray(x[1], dt)
            (x2,) = self.comm.recv(self._party(t + 1), tag, dtypes=[dt], shapes=[x0.shape]).arrays
            return _arr(comb(comb(x0, x1), x2))
        if self.is_member:
            if self.idx == 0:
                self.comm.send(to, tag, [bk.asarray(x[0], dt)])
            elif self.idx == 1:
                self.comm.send(to, tag, [_arr(comb(bk.asarray(x[0], dt), bk.asarray(x[1], dt)))])
            return None
        if self.me != to:
            return None
        (a,) = self.comm.recv(self.compute[0], tag, dtypes=[dt], shapes=None if shape is None else [shape]).arrays
        (b,) = self.comm.recv(self.compute[1], tag, dtypes=[dt], shapes=[a.shape]).arrays
        return _arr(comb(a, b))

    # -- linear (local) ---------------------------------------------------------------
    def add(self, a: Share, b: Share) -> Share:
        """Componentwise (numpy broadcasting). Local: 0 rounds, 0 B."""
        return None if not self.is_member else (_arr(a[0] + b[0]), _arr(a[1] + b[1]))

    def sub(self, a: Share, b: Share) -> Share:
        """Local: 0 rounds, 0 B."""
        return None if not self.is_member else (_arr(a[0] - b[0]), _arr(a[1] - b[1]))

    def neg(self, a: Share) -> Share:
        """Local: 0 rounds, 0 B."""
        return None if not self.is_member else (_arr(_U(0) - a[0]), _arr(_U(0) - a[1]))

    def _public_into(self, a: Share, c: Array, op: Callable[[Array, Array], Array]) -> Share:
        """Apply `op(component, c)` to component 0 only (held by P0 and P2), broadcasting both."""
        shape = broadcast_shape(tuple(a[0].shape), tuple(c.shape))
        out = []
        for slot in (0, 1):
            s = a[slot]
            if self._slot(0) == slot:
                out.append(_arr(op(s, c)))
            else:
                out.append(s + bk.zeros(shape, s.dtype))  # broadcast (a fresh array)
        return tuple(out)

    def add_public(self, a: Share, c: Array) -> Share:
        """x + c: c is added to component 0, consistently at its two holders P0 and P2. Local: 0 rounds, 0 B."""
        if not self.is_member:
            return None
        c = bk.asarray(c, _U)
        return self._public_into(a, c, lambda s, v: s + v)

    def mul_public(self, a: Share, c: Array) -> Share:
        """x * c for a public ring value c (no truncation here). Local: 0 rounds, 0 B."""
        if not self.is_member:
            return None
        c = bk.asarray(c, _U)
        return (_arr(a[0] * c), _arr(a[1] * c))

    # -- multiplication -------------------------------------------------------------------
    def _cross(self, a: Share, b: Share) -> Array:
        """z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i (sum over i: xy), plus the zero share alpha_i."""
        a0, a1 = a
        b0, b1 = b
        z = _arr(a0 * (b0 + b1))
        z += a1 * b0
        return self._add_zero(z, False)

    def mul(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape) -> Share:
        """Elementwise product (numpy broadcasting). 1 round, each party sends 8 B per element."""
        if not self.is_member:
            return None
        return self._reshare([self._cross(a, b)], "aby3:mul")[0]

    def square(self, a: Share, shape: Shape) -> Share:
        """x^2 = sum_i x_i (x_i + 2 x_{i+1}). 1 round, 8 B per element each."""
        if not self.is_member:
            return None
        z = self._square_local(a)
        return self._reshare([z], "aby3:sq")[0]

    def _square_local(self, a: Share) -> Array:
        a0, a1 = a
        z = bk.lshift(a1, 1)
        z += a0
        z *= a0
        return self._add_zero(z, False)

    def _matmul_local(self, a: Share, b: Share) -> Array:
        """This party's 3-out-of-3 share of X @ Y with 5 ring matmuls in total.

        With L the light party of this call: P_L computes (A_L + A_{L+1})(B_L + B_{L+1}) (four
        of the nine cross terms, 1 matmul), P_{L+1} computes A_{L+1}B_{L+2} + A_{L+2}(B_{L+1} +
        B_{L+2}) and P_{L+2} computes A_{L+2}B_L + A_L B_{L+2} (2 matmuls each)."""
        light = self._role()
        r = (self.idx - light) % 3
        a0, a1 = a
        b0, b1 = b
        if r == 0:
            z = _arr(bk.matmul(a0 + a1, b0 + b1))
        elif r == 1:
            z = _arr(bk.matmul(a0, b1))
            z += bk.matmul(a1, b0 + b1)
        else:
            z = _arr(bk.matmul(a0, b1))
            z += bk.matmul(a1, b0)
        return self._add_zero(z, False)

    def matmul(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape) -> Share:
        """X @ Y (numpy rules for 1-D/2-D). Local ring matmuls through float64 BLAS limbs,
        then one reshare: 1 round, each party sends 8 B per element of the result."""
        if not self.is_member:
            return None
        return self._reshare([self._matmul_local(a, b)], "aby3:mm")[0]

    # Fused product + truncation: the 3-out-of-3 product shares go straight into the
    # truncation's opening, saving the reshare (1 round, 24 B per element).
    def mul_trunc(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """trunc(x * y, bits) in 2 rounds (60 B per element in total), same exactness as trunc.

        The opening of c starts from the 3-out-of-3 product shares z_i (each masked by the
        zero share): D sends z_D + r_b to A and z_D + r_a to B (with its correction), A sends
        z_A + 2^62 to B, B sends z_B to A. A sees z_B (masked by the B-D zero stream) and
        z_D + r_b (masked by r_b); B symmetrically; D receives nothing. Step 2 is trunc's."""
        if not self.is_member:
            return None
        shape = broadcast_shape(tuple(shape_a), tuple(shape_b))
        return self._trunc(self._cross(a, b), bits, shape, additive=True)

    def square_trunc(self, a: Share, shape: Shape, bits: int) -> Share:
        """trunc(x^2, bits): as mul_trunc, 2 rounds, 60 B per element in total."""
        if not self.is_member:
            return None
        return self._trunc(self._square_local(a), bits, tuple(shape), additive=True)

    def matmul_trunc(self, a: Share, b: Share, shape_a: Shape, shape_b: Shape, bits: int) -> Share:
        """trunc(X @ Y, bits): as mul_trunc, 2 rounds, 60 B per element of the result in total."""
        if not self.is_member:
            return None
        shape = matmul_shape(tuple(shape_a), tuple(shape_b))
        return self._trunc(self._matmul_local(a, b), bits, shape, additive=True)

    # -- truncation --------------------------------------------------------------------------
    def trunc(self, a: Share, bits: int, shape: Shape) -> Share:
        """Divide by 2^bits with stochastic (unbiased) rounding, exact up to one unit in the last place for
        |x| < 2^62 (never a large error). 2 rounds, 44 B per element in total.

        One member D (rotating) acts as the dealer of this call for the other two, A = D+1 and
        B = D+2; A holds (x_{D+1}, x_{D+2}), B holds (x_{D+2}, x_D).
          1. D draws r = r_a + r_b with r_a from its seed with A and r_b from its seed with B,
             gives A and B additive shares of h = r >> bits and m = msb(r) (A's from their seed,
             B's as a correction, 8 + 4 B: only m mod 2^bits matters).
             A sends a = x_{D+1} + x_{D+2} + r_a + 2^62 to B; B sends b = x_D + r_b to A.
             Both know c = x + 2^62 + r; D never sees c.
          2. With w = m (1 - msb c) (the wrap of x + 2^62 + r, as x + 2^62 < 2^63), both compute
             their part of y = (c >> bits) - h + w 2^(64-bits) - 2^(62-bits) (as semi2k.trunc).
             New components: y_D from the B-D seed, y_{D+1} from the D-A seed (D holds both,
             computed without any message), y_{D+2} = y - y_D - y_{D+1} from one exchange of
             8 B between A and B.
        Views: A sees b (masked by r_b) and B's part of y minus y_D (masked by y_D); B sees a
        (masked by r_a), h - h_A, m - m_A (masked by A's seed shares) and A's part minus
        y_{D+1}; D receives nothing. Every view is uniform and independent of x. (As with
        every mask-and-open truncation, semi2k's included: if y is later opened to A or B, that
        party can relate the rounding of y to the low bits of c, i.e. learns slightly more about
        the discarded fractional bits than y alone says; nothing about the kept bits.)"""
        if not self.is_member:
            return None
        return self._trunc(a, bits, tuple(shape), additive=False)

    def _trunc(self, a: Any, bits: int, shape: Shape, additive: bool) -> Share:
        bits = int(bits)
        if not 0 < bits <= 62:
            raise ParameterError(f"aby3.trunc: bits must be in [1, 62], got {bits}", field="bits")
        d = self._role()
        role = (self.idx - d) % 3  # 0 dealer, 1 A, 2 B
        if role == 0:
            return self._trunc_dealer(a, bits, shape, additive, d)
        if role == 1:
            return self._trunc_a(a, bits, shape, additive, d)
        return self._trunc_b(a, bits, shape, additive, d)

    def _trunc_dealer(self, a: Any, bits: int, shape: Shape, additive: bool, d: int) -> Share:
        """The truncation's helper role D: draws the pair (r, r >> bits, msb r) from its
        seeds with A and with B, and sends B its correction (with the masked input if additive)."""
        A, B = (d + 1) % 3, (d + 2) % 3
        g_da, g_bd = self._rand.get(d), self._rand.get(B)  # pairs (D, A) and (B, D)
        mdt = _small_dtype(bits)
        r_a = bk.random(g_da, shape)
        r_b = bk.random(g_bd, shape)
        h_a = bk.random(g_da, shape)
        m_a = bk.random(g_da, shape, mdt)
        r = r_a + r_b
        h_b = bk.rshift(r, bits)
        h_b -= h_a
        m_b = bk.astype(bk.rshift(r, 63), mdt)
        m_b -= m_a
        if additive:
            # z_D + r_b to A, z_D + r_a to B (each mask unknown to its receiver)
            za = _arr(a + r_b)
            zb = _arr(a + r_a)
            self.comm.send(self._party(A), "aby3:tr1", [za])
            self.comm.send(self._party(B), "aby3:trd", [zb, h_b, m_b])
        else:
            self.comm.send(self._party(B), "aby3:trd", [h_b, m_b])
        y_d = bk.random(g_bd, shape)
        y_d1 = bk.random(g_da, shape)
        return (y_d, y_d1)

    def _trunc_a(self, a: Any, bits: int, shape: Shape, additive: bool, d: int) -> Share:
        """Role A: opens c = x + 2^62 + r with B, then re-shares its truncated part with B."""
        B = (d + 2) % 3
        g_da = self._rand.get(d)
        mdt = _small_dtype(bits)
        r_a = bk.random(g_da, shape)
        h_a = bk.random(g_da, shape)
        m_a = bk.random(g_da, shape, mdt)
        if additive:
            mine = _arr(a + _U(1 << 62))
            self.comm.send(self._party(B), "aby3:tr1", [mine])
            (zd,) = self._recv(d, "aby3:tr1", [(_U, shape)])
            (zb,) = self._recv(B, "aby3:tr1", [(_U, shape)])
            c = mine + r_a
            c += zd
            c += zb
        else:
            mine = _arr(a[0] + a[1])
            mine += r_a
            mine += _U(1 << 62)
            self.comm.send(self._party(B), "aby3:tr1", [mine])
            (other,) = self._recv(B, "aby3:tr1", [(_U, shape)])
            c = _arr(mine + other)
        y = bk.rshift(c, bits)
        y -= h_a
        y -= _U(1 << (62 - bits))
        y += bk.lshift(bk.astype(m_a, _U), 64 - bits) & (bk.rshift(c, 63) - _U(1))
        y_d1 = bk.random(g_da, shape)
        y -= y_d1
        self.comm.send(self._party(B), "aby3:tr2", [y])
        (yb,) = self._recv(B, "aby3:tr2", [(_U, shape)])
        y += yb
        return (y_d1, y)

    def _trunc_b(self, a: Any, bits: int, shape: Shape, additive: bool, d: int) -> Share:
        """Role B: like A, with D's correction of the pair instead of seed draws."""
        A, B = (d + 1) % 3, (d + 2) % 3
        g_bd = self._rand.get(B)
        mdt = _small_dtype(bits)
        r_b = bk.random(g_bd, shape)
        if additive:
            mine = _arr(a)
            self.comm.send(self._party(A), "aby3:tr1", [mine])
            zd, h_b, m_b = self._recv(d, "aby3:trd", [(_U, shape), (_U, shape), (mdt, shape)])
            (za,) = self._recv(A, "aby3:tr1", [(_U, shape)])
            c = mine + r_b
            c += zd
            c += za
        else:
            mine = _arr(a[1] + r_b)
            self.comm.send(self._party(A), "aby3:tr1", [mine])
            h_b, m_b = self._recv(d, "aby3:trd", [(_U, shape), (mdt, shape)])
            (other,) = self._recv(A, "aby3:tr1", [(_U, shape)])
            c = _arr(mine + other)
        y = bk.lshift(bk.astype(m_b, _U), 64 - bits) & (bk.rshift(c, 63) - _U(1))
        y -= h_b
        y_d = bk.random(g_bd, shape)
        y -= y_d
        self.comm.send(self._party(A), "aby3:tr2", [y])
        (ya,) = self._recv(A, "aby3:tr2", [(_U, shape)])
        y += ya
        return (y, y_d)

    # -- boolean -------------------------------------------------------------------------------
    def b_xor(self, a: Share, b: Share) -> Share:
        """Componentwise XOR. Local: 0 rounds, 0 B."""
        return None if not self.is_member else (_arr(a[0] ^ b[0]), _arr(a[1] ^ b[1]))

    def b_xor_public(self, a: Share, c: Array) -> Share:
        """XOR a public word into component 0 (held by P0 and P2). Local: 0 rounds, 0 B."""
        if not self.is_member:
            return None
        c = bk.asarray(c, a[0].dtype)
        return self._public_into(a, c, lambda s, v: s ^ v)

    def b_and_public(self, a: Share, c: Array) -> Share:
        """AND with a public word, componentwise. Local: 0 rounds, 0 B."""
        if not self.is_member:
            return None
        c = bk.asarray(c, a[0].dtype)
        return (_arr(a[0] & c), _arr(a[1] & c))

    def b_and(self, pairs: Sequence[tuple[Share, Share]], shapes: Sequence[Shape],
              dtypes: Sequence[DType]) -> list[Share]:
        """Several ANDs in one round: z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i ^ alpha_i, then
        reshare. Each party sends one word of the operands' width per AND."""
        if not self.is_member:
            return [None] * len(pairs)
        zs = []
        for (x, y), dt in zip(pairs, dtypes):
            x0, x1 = x
            y0, y1 = y
            z = _arr(x0 & (y0 ^ y1))
            z ^= x1 & y0
            if z.dtype != np.dtype(dt):
                z = bk.astype(z, dt)
            zs.append(self._add_zero(z, True))
        if not zs:
            return []
        return self._reshare(zs, "aby3:and")

    # -- one party's value times a value known to the two others ---------------------------------
    def _input_times(self, e: int, value: Array | None, y: Array | None, shape: Shape, dtype: DType, boolean: bool,
                     tag: str, product: bool = True) -> tuple[Share, Share]:
        """P_e shares `value` (known to it alone); if `product`, the parties also get shares of
        value * y (AND when boolean), where y is known to both P_{e+1} and P_{e+2}. One round.

        Components x_e, x_{e+1} and rho_e, rho_{e+1} come from P_e's seeds; P_e sends
        x_{e+2} = value - x_e - x_{e+1} to P_{e+1} and P_{e+2} (2 words). For the product,
        x y = x_e y + x_{e+1} y + x_{e+2} y: P_{e+1} knows x_{e+1} y and sends
        w1 = x_{e+1} y - rho_{e+1} to P_{e+2}; P_{e+2} sends w2 = x_e y - rho_e to P_{e+1}
        (1 word each); component e+2 of the product is x_{e+2} y + w1 + w2, the others are
        rho_e and rho_{e+1}. Views: P_{e+1} sees x_{e+2} (masked by x_e) and w2 (masked by
        rho_e), P_{e+2} symmetrically, P_e nothing."""
        dt = np.dtype(dtype)
        r = (self.idx - e) % 3
        e1, e2 = (e + 1) % 3, (e + 2) % 3

        def add(u: Array, v: Array) -> Array:
            return _arr(u ^ v) if boolean else _arr(u + v)

        def sub(u: Array, v: Array) -> Array:
            return _arr(u ^ v) if boolean else _arr(u - v)

        def mul(u: Array, v: Array) -> Array:
            return _arr(u & v) if boolean else _arr(u * v)

        if r == 0:
            x_e = self._comp_rand(e, shape, dt)
            x_e1 = self._comp_rand(e1, shape, dt)
            x_e2 = sub(sub(bk.asarray(value, dt).reshape(shape), x_e), x_e1)
            self.comm.send(self._party(e1), tag, [x_e2])
            self.comm.send(self._party(e2), tag, [x_e2])
            xs = (x_e, x_e1)
            if not product:
                return xs, None
            rho_e = self._comp_rand(e, shape, dt)
            rho_e1 = self._comp_rand(e1, shape, dt)
            return xs, (rho_e, rho_e1)
        if r == 1:  # P_{e+1}: holds components e+1, e+2
            x_e1 = self._comp_rand(e1, shape, dt)
            if product:
                rho_e1 = self._comp_rand(e1, shape, dt)
                w1 = sub(mul(x_e1, y), rho_e1)
                self.comm.send(self._party(e2), tag, [w1])
            (x_e2,) = self._recv(e, tag, [(dt, shape)])
            xs = (x_e1, x_e2)
            if not product:
                return xs, None
            (w2,) = self._recv(e2, tag, [(dt, shape)])
            p = add(add(mul(x_e2, y), w1), w2)
            return xs, (rho_e1, p)
        # P_{e+2}: holds components e+2, e
        x_e = self._comp_rand(e, shape, dt)
        if product:
            rho_e = self._comp_rand(e, shape, dt)
            w2 = sub(mul(x_e, y), rho_e)
            self.comm.send(self._party(e1), tag, [w2])
        (x_e2,) = self._recv(e, tag, [(dt, shape)])
        xs = (x_e2, x_e)
        if not product:
            return xs, None
        (w1,) = self._recv(e1, tag, [(dt, shape)])
        p = add(add(mul(x_e2, y), w1), w2)
        return xs, (p, rho_e)

    # -- conversions ------------------------------------------------------------------------------
    def msb(self, a: Share, shape: Shape) -> Share:
        """Arithmetic share of msb(x), via one comparison of 63-bit words.

        With P_e the (rotating) input party: P_e knows s = x_e + x_{e+1}, the two others know
        t = x_{e+2}. msb(x) = msb(s) ^ msb(t) ^ carry, carry = [s_low + t_low >= 2^63] =
        [s_low > v] for v = 2^63-1 - t_low, and ~v = t_low on the low 63 bits. In one round
        P_e boolean-shares U = rev(s) (bit-index reversed, which keeps bit 63 in place) and the
        parties get G = U & rev(t_low) (`_input_times`: 32 B per element in total); E =
        ~(u ^ v) = (U & low63) ^ rev(t_low) ^ bit63 is local (bit 63 neutral: G=0, E=1).
        circuits.greater_tree gives the carry (6 rounds, 19 B per party); XOR in msb(s)
        (bit 63 of U's components) and msb(t) (public to t's holders), then b2a_bits
        (1 round, 32 B). Total 8 rounds, 121 B per element."""
        if not self.is_member:
            return None
        shape = tuple(shape)
        e = self._role()
        e2 = (e + 2) % 3
        r = (self.idx - e) % 3
        if r == 0:
            s = _arr(a[0] + a[1])
            value = circuits.index_reverse64(s)
            y = None
        else:
            t = a[1] if r == 1 else a[0]  # x_{e+2}
            value = None
            y = circuits.index_reverse64(_arr(t & _LOW63))
        U, G = self._input_times(e, value, y, shape, _U, True, "aby3:msb")
        E = [_arr(U[0] & _LOW63), _arr(U[1] & _LOW63)]
        slot = self._slot(e2)
        if slot < 2:
            E[slot] ^= y
            E[slot] ^= _BIT63
        carry = circuits.greater_tree(self, G, tuple(E), shape)
        bit = [_arr(carry[0] ^ bk.astype(bk.rshift(U[0], 63), np.uint8)),
               _arr(carry[1] ^ bk.astype(bk.rshift(U[1], 63), np.uint8))]
        if slot < 2:
            bit[slot] ^= bk.astype(bk.rshift(t, 63), np.uint8)
        return self.b2a_bits(tuple(bit), shape)

    def eqz(self, a: Share, shape: Shape) -> Share:
        """Arithmetic share of [x == 0]: x = s + t with s = x_e + x_{e+1} (known to P_e) and
        t = x_{e+2} (known to the two others), so x == 0 iff every bit of s ^ ~(-t) is one.
        P_e boolean-shares s (1 round, 16 B), ~(-t) = t - 1 is XORed into component e+2,
        circuits.and_tree (6 rounds, 10 B per party), b2a_bits (1 round, 32 B): 78 B per element
        in total, 7 rounds as `Communicator` counts them (`static_cost`): the input party's
        message goes out in the send phase of its first AND, so the latency depth is 8."""
        if not self.is_member:
            return None
        shape = tuple(shape)
        e = self._role()
        r = (self.idx - e) % 3
        value = _arr(a[0] + a[1]) if r == 0 else None
        X, _ = self._input_times(e, value, None, shape, _U, True, "aby3:eqz", product=False)
        X = [X[0], X[1]]
        slot = self._slot(e + 2)
        if slot < 2:
            t = a[1] if r == 1 else a[0]
            X[slot] = _arr(X[slot] ^ (t - _U(1)))
        bit = circuits.and_tree(self, tuple(X), shape)
        return self.b2a_bits(bit, shape)

    def b2a_bits(self, b: Share, shape: Shape) -> Share:
        """Boolean-shared bits (uint8 0/1) to arithmetic shares in 1 round, 32 B per bit in total.

        With P_f the (rotating) input party: c = b_f ^ b_{f+1} is known to P_f and d = b_{f+2}
        to the two others, and b = c ^ d = c + d - 2cd. `_input_times` shares c arithmetically
        and gives shares of c d in the same round (P_f sends 16 B, the others 8 B each);
        the rest is local."""
        if not self.is_member:
            return None
        shape = tuple(shape)
        f = self._role()
        f2 = (f + 2) % 3
        r = (self.idx - f) % 3
        one = np.uint8(1)
        if r == 0:
            c = _arr((b[0] ^ b[1]) & one).astype(_U)
            d = None
        else:
            c = None
            d = _arr((b[1] if r == 1 else b[0]) & one).astype(_U)
        C, CD = self._input_times(f, c, d, shape, _U, False, "aby3:b2a")
        out = [_arr(C[0] - bk.lshift(CD[0], 1)), _arr(C[1] - bk.lshift(CD[1], 1))]
        slot = self._slot(f2)
        if slot < 2:
            out[slot] += d
        return tuple(out)

    # -- costs -----------------------------------------------------------------------------
    @classmethod
    def static_cost(cls, op: str, *shapes: Shape, n_compute: int | None = None, **params: Any) -> Cost:
        if n_compute not in (None, 3):
            raise ParameterError(f"aby3 has exactly 3 compute parties, not {n_compute}", field="n_compute")
        return _cost(op, shapes, params)


_FREE_OPS = frozenset({"map", "add", "sub", "neg", "add_public", "mul_public", "b_xor", "b_xor_public", "b_and_public",
                       "masked_setup"})
# bytes per party of the comparison trees, per element: greater_tree over 64-bit words sends
# two ANDs per level (4, 2, 1, 1, 1 B words) and one at the last level; and_tree one per level
_GREATER_TREE = 2 * (4 + 2 + 1 + 1 + 1) + 1
_AND_TREE = 4 + 2 + 1 + 1 + 1 + 1


def _cost(op: str, shapes: Sequence[Shape], params: dict[str, Any]) -> Cost:
    """aby3 costs (3 parties, no dealer); asymmetric roles rotate but the totals do not change."""
    if op in _FREE_OPS:
        return FREE
    N = size(shapes[0]) if shapes else 0
    w = int(params.get("itemsize", 8))
    if op == "share_in":
        return Cost((4 if params.get("outsider") else 2) * w * N, 1)
    if op == "reveal":
        return Cost({"all": 3, "member": 1, "outsider": 2}[params.get("to", "all")] * w * N, 1)
    if op in ("mul", "square", "matmul", "masked_matmul", "private_masked_matmul"):
        out = matmul_shape(shapes[0], shapes[1]) if "matmul" in op else broadcast_shape(*shapes)
        return Cost(24 * size(out), 1)
    if op == "private_masked_setup":
        return Cost(16 * N, 1)
    if op in ("trunc", "mul_trunc", "square_trunc", "matmul_trunc"):
        m = np.dtype(_small_dtype(int(params.get("bits", DEFAULT_FRAC_BITS)))).itemsize
        if op == "trunc":
            return Cost((40 + m) * N, 2)
        out = matmul_shape(shapes[0], shapes[1]) if op == "matmul_trunc" else broadcast_shape(*shapes)
        return Cost((56 + m) * size(out), 2)
    if op == "b_and":
        return Cost(3 * w * N, 1)
    if op == "b2a_bits":
        return Cost(32 * N, 1)
    if op == "msb":
        return Cost(32 * N, 1) + Cost(3 * _GREATER_TREE * N, 6) + Cost(32 * N, 1)
    if op == "eqz":
        # the input party sends its share and its first AND in one send phase, and the others
        # send nothing in the input round: 7 rounds as counted (the latency depth is 8)
        return Cost(16 * N, 0) + Cost(3 * _AND_TREE * N, 6) + Cost(32 * N, 1)
    raise _unknown("aby3", op)

