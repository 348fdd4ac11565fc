"""Garbled circuits: two-party Yao with half-gates, free-XOR, point-and-permute, fixed-key AES.

Two parties, no dealer and no third party: the *garbler* G encrypts a boolean circuit,
the *evaluator* E evaluates it on labels, in a constant number of rounds whatever the
circuit's depth (the tool for comparisons when round trips are expensive).

Garbling (Zahur, Rosulek, Evans 2015, "Two halves make a whole")
----------------------------------------------------------------
* free-XOR (Kolesnikov-Schneider 2008): one secret global offset R (128 bits, lowest bit
  1); wire w has labels W0 and W1 = W0 ^ R. XOR and NOT gates cost nothing.
* point-and-permute: the lowest bit of a label is its wire's permute bit (lsb(W0) is
  uniform, lsb(R) = 1), so E picks ciphertext rows without learning the value.
* half-gates: an AND gate is two ciphertexts (32 bytes) and four hashes to garble, two
  to evaluate: T_G = H(A0) ^ H(A1) ^ p_b R, T_E = H(B0) ^ H(B1) ^ A0 (the two halves with
  the garbler's and the evaluator's known bit).
* H(W, j) is the tweakable circular-correlation-robust hash of Guo, Katz, Wang and Yu
  (S&P 2020) on fixed-key AES (`jointml.mpc.ot.prims.tccr`), tweak = (gate, instance):
  never repeated within a session. All instances of a batch are garbled gate by gate,
  vectorised over the batch with numpy (one AES call per gate over the whole batch).

Inputs: G sends its input labels W0 ^ x R. E gets its labels by correlated OT with
offset R (IKNP, `jointml.mpc.ot.iknp`): its choice bit is its input bit, so it receives
W0 ^ y R and G learns nothing. Outputs: G sends the permute bits of the output wires to
whoever learns the output (``reveal_to`` "evaluator", or E sends its output labels'
bits to G for "garbler"; "both" does both).

Security (semi-honest G and E): E sees uniformly random labels (one per wire), garbled
tables that are pseudorandom without the other label of each wire, and the decoding
bits of outputs it is meant to learn: simulatable from those outputs (Yao's protocol
with half-gates, as proved in ZRE15 given a TCCR hash). G sees only E's OT-extension
messages, independent of E's inputs, and (for "garbler"/"both") the output bits. A
deviating G could garble another function: semi-honest only (no cut-and-choose).

Cost (per instance; n_g, n_e input bits of G and E, a AND gates, o output bits)
-------------------------------------------------------------------------------
Bytes = 16 n_g (G's labels) + 32 a (tables) + 32 n_e (E's OTs: 16 B of extension matrix
and 16 B of correction) + o (decoding bits, to E) + o (E's output bits, to G). Rounds:
E's OT message, G's reply (correction, labels, tables, decoding bits), and E's output
bits when G learns the output: 3 with ``reveal_to="both"``, 2 with "evaluator".

| circuit | AND gates | bytes ("both") | rounds |
| --- | --- | --- | --- |
| `lt`, `le`, `gt`, `ge` 64-bit (signed or not) | 64 | 5,122 | 3 |
| `eq` 64-bit | 63 | 5,090 | 3 |
| `max` 64-bit | 128 | 7,296 | 3 |
| `relu` on additive shares (A2Y, ReLU, Y2A; to E) | 190 | 10,240 | 2 |
| `msb` on additive shares (`secret_msb`, `secret_less`) | 126 | 8,192 | 2 |

plus, once per session, 128 base OTs (~0.3 s).

`secret_less(x, y)` / `secret_msb(x)` / `secret_relu(x)` take `SecretArray`s of a two-party
semi2k device and return a `SecretArray` (the comparison bits, or max(x, 0)): the garbled alternative to the dealer-mask
comparison (no dealer involvement, 2 rounds instead of 6, more bytes). `cost(op, shape)` returns these figures
as a `Cost` for the DSL's cost model, beside `Semi2k.static_cost`.

>>> x = np.array([5, -3, 7, 0], np.int64).view(np.uint64)
>>> y = np.array([6, -4, 7, 0], np.int64).view(np.uint64)
>>> def prog(ctx):
...     mine = x if ctx.me == "alice" else y   # alice garbles with x, bob evaluates with y
...     return gc_compare(ctx, mine, garbler="alice", evaluator="bob", op="lt").tolist()
>>> simulate(prog, ["alice", "bob"], mode="thread")["bob"]
[True, False, False, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ...core.errors import ParameterError, ProtocolError
from ...core.prg import Prg
from ...runtime.collectives import Channel
from ...runtime.context import PartyContext
from ..ot.iknp import IknpReceiver, IknpSender
from ..ot.prims import tccr64
from .base import Cost

XOR, AND, INV = 0, 1, 2
LABEL = 16
#: instances garbled per message: bounds memory to ~(wires x CHUNK x 16) bytes.
CHUNK = 1 << 14

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]


# -- circuits ------------------------------------------------------------------------------
@dataclass
class Circuit:
    """A boolean circuit: wires numbered from 0; gates (op, a, b, out) in topological order.

    Build one with `Builder`; `garbler_inputs` / `evaluator_inputs` / `outputs` are wire lists.
    """

    n_wires: int
    garbler_inputs: list[int]
    evaluator_inputs: list[int]
    gates: list[tuple[int, int, int, int]]
    outputs: list[int]

    @property
    def and_count(self) -> int:
        """Number of AND gates (each costs 32 bytes of garbled table).

        >>> b = Builder(); x, y = b.garbler(4), b.evaluator(4); b.output([less_than(b, x, y)])
        >>> b.build().and_count
        4
        """
        return sum(1 for g in self.gates if g[0] == AND)

    def plain(self, g_bits: npt.ArrayLike, e_bits: npt.ArrayLike) -> U8:
        """Evaluate in the clear (the plaintext twin): (N, n_g), (N, n_e) bits -> (N, outputs).

        >>> b = Builder(); x, y = b.garbler(1), b.evaluator(1); b.output([b.and_(x[0], y[0])])
        >>> b.build().plain([[1], [1]], [[1], [0]]).ravel().tolist()
        [1, 0]
        """
        gb, eb = np.asarray(g_bits, np.uint8), np.asarray(e_bits, np.uint8)
        v = np.zeros((self.n_wires, gb.shape[0]), np.uint8)
        v[self.garbler_inputs] = gb.T
        v[self.evaluator_inputs] = eb.T
        for op, a, b, c in self.gates:
            v[c] = v[a] ^ v[b] if op == XOR else (v[a] & v[b] if op == AND else v[a] ^ 1)
        return np.ascontiguousarray(v[self.outputs].T)


@dataclass
class Builder:
    """Builds a `Circuit` gate by gate; wires are ints.

    >>> b = Builder(); x = b.garbler(2); y = b.evaluator(2)
    >>> b.output([b.xor(x[0], y[0]), b.and_(x[1], y[1]), b.inv(x[0])])
    >>> c = b.build(); (c.n_wires, c.and_count, len(c.outputs))
    (7, 1, 3)
    """

    n: int = 0
    g_in: list[int] = field(default_factory=list)
    e_in: list[int] = field(default_factory=list)
    gates: list[tuple[int, int, int, int]] = field(default_factory=list)
    outs: list[int] = field(default_factory=list)

    def _wire(self) -> int:
        self.n += 1
        return self.n - 1

    def garbler(self, k: int) -> list[int]:
        """`k` new input wires of the garbler (bit 0 first)."""
        w = [self._wire() for _ in range(k)]
        self.g_in += w
        return w

    def evaluator(self, k: int) -> list[int]:
        """`k` new input wires of the evaluator (bit 0 first)."""
        w = [self._wire() for _ in range(k)]
        self.e_in += w
        return w

    def _gate(self, op: int, a: int, b: int) -> int:
        c = self._wire()
        self.gates.append((op, a, b, c))
        return c

    def xor(self, a: int, b: int) -> int:
        """a ^ b (free)."""
        return self._gate(XOR, a, b)

    def and_(self, a: int, b: int) -> int:
        """a & b (one half-gates AND: 32 bytes)."""
        return self._gate(AND, a, b)

    def inv(self, a: int) -> int:
        """not a (free)."""
        return self._gate(INV, a, a)

    def output(self, wires: list[int]) -> None:
        """Append output wires."""
        self.outs += list(wires)

    def build(self) -> Circuit:
        """The circuit built so far."""
        return Circuit(self.n, list(self.g_in), list(self.e_in), list(self.gates), list(self.outs))


def add(b: Builder, x: list[int], y: list[int]) -> list[int]:
    """x + y mod 2^n, ripple carry (n - 1 ANDs): s_i = x_i ^ y_i ^ c_i, c_i+1 = c_i ^ ((x_i ^ c_i) & (y_i ^ c_i)).

    >>> b = Builder(); x, y = b.garbler(8), b.evaluator(8); b.output(add(b, x, y))
    >>> bits = b.build().plain(to_bits(np.array([200], np.uint64), 8), to_bits(np.array([100], np.uint64), 8))
    >>> int(from_bits(bits)[0])
    44
    """
    out = [b.xor(x[0], y[0])]
    c = b.and_(x[0], y[0])
    for i in range(1, len(x)):
        t = b.xor(x[i], c)
        out.append(b.xor(t, y[i]))
        if i + 1 < len(x):
            c = b.xor(c, b.and_(t, b.xor(y[i], c)))
    return out


def greater_than(b: Builder, x: list[int], y: list[int]) -> int:
    """[x > y] unsigned (n ANDs): the carry of x + not(y), c_i+1 = x_i ^ ((x_i ^ c_i) & (y_i ^ c_i)).

    >>> b = Builder(); x, y = b.garbler(4), b.evaluator(4); b.output([greater_than(b, x, y)])
    >>> b.build().plain(to_bits(np.array([3, 9, 4], np.uint64), 4), to_bits(np.array([2, 9, 5], np.uint64), 4)).ravel().tolist()
    [1, 0, 0]
    """
    c = b.xor(x[0], b.and_(x[0], y[0]))  # c_0 = 0: x_0 & not y_0
    for i in range(1, len(x)):
        c = b.xor(x[i], b.and_(b.xor(x[i], c), b.xor(y[i], c)))
    return c


def less_than(b: Builder, x: list[int], y: list[int]) -> int:
    """[x < y] unsigned = [y > x]."""
    return greater_than(b, y, x)


def _signed(b: Builder, x: list[int]) -> list[int]:
    """Two's complement order = unsigned order with the sign bit flipped (free)."""
    return x[:-1] + [b.inv(x[-1])]


def equal(b: Builder, x: list[int], y: list[int]) -> int:
    """[x == y] (n - 1 ANDs, a balanced tree: depth log2 n)."""
    level = [b.inv(b.xor(p, q)) for p, q in zip(x, y)]
    while len(level) > 1:
        nxt = [b.and_(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def mux(b: Builder, s: int, x: list[int], y: list[int]) -> list[int]:
    """s ? x : y per bit (n ANDs): y ^ (s & (x ^ y))."""
    return [b.xor(q, b.and_(s, b.xor(p, q))) for p, q in zip(x, y)]


def to_bits(x: npt.ArrayLike, n: int = 64) -> U8:
    """uint64 values -> (N, n) bits, least significant first.

    >>> to_bits(np.array([6], np.uint64), 4).tolist()
    [[0, 1, 1, 0]]
    """
    a = np.asarray(x).reshape(-1)
    v = np.ascontiguousarray(a.view(np.uint64) if a.dtype == np.int64 else a.astype(np.uint64))
    out: U8 = np.unpackbits(v.view(np.uint8).reshape(-1, 8), axis=1, count=n, bitorder="little")
    return out


def from_bits(bits: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """(N, n <= 64) bits, least significant first -> uint64 values.

    >>> from_bits([[0, 1, 1]]).tolist()
    [6]
    """
    b = np.asarray(bits, np.uint8)
    padded = np.zeros((b.shape[0], 64), np.uint8)
    padded[:, : b.shape[1]] = b
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64).reshape(-1)


def comparison_circuit(op: str, n: int = 64, signed: bool = True) -> Circuit:
    """Garbler's x against evaluator's y: `op` in lt, le, gt, ge, eq, max (n-bit words).

    >>> comparison_circuit("lt").and_count, comparison_circuit("eq").and_count
    (64, 63)
    """
    b = Builder()
    x, y = b.garbler(n), b.evaluator(n)
    ox, oy = (_signed(b, x), _signed(b, y)) if signed else (x, y)
    if op in ("lt", "ge"):
        r = less_than(b, ox, oy)
        b.output([b.inv(r) if op == "ge" else r])
    elif op in ("gt", "le"):
        r = greater_than(b, ox, oy)
        b.output([b.inv(r) if op == "le" else r])
    elif op == "eq":
        b.output([equal(b, x, y)])
    elif op == "max":
        b.output(mux(b, greater_than(b, ox, oy), x, y))
    else:
        raise ParameterError(f"unknown comparison {op!r} (lt, le, gt, ge, eq, max)", field="op")
    return b.build()


def relu_circuit(n: int = 64) -> Circuit:
    """A2Y, ReLU, Y2A: garbler inputs (share x_G, mask -r), evaluator input share x_E;
    output relu(x_G + x_E) - r (2n - 1 + n - 1 ANDs ... 190 for n = 64).

    >>> relu_circuit().and_count
    190
    """
    b = Builder()
    xg, neg_r = b.garbler(n), b.garbler(n)
    xe = b.evaluator(n)
    s = add(b, xg, xe)
    positive = b.inv(s[-1])
    relu = [b.and_(positive, w) for w in s]
    b.output(add(b, relu, neg_r))
    return b.build()


# -- garbling and evaluation ------------------------------------------------------------------
def _lsb(w: U8) -> U8:
    """Permute bits of labels given as (n, 16) uint8 or (n, 2) uint64 (bit 0 of byte 0 either way)."""
    first = w[..., 0]
    out: U8 = (first & first.dtype.type(1)).astype(np.uint8)
    return out


def _mask(bit: npt.NDArray[Any]) -> U64:
    """All-ones words where bit is 1, zeros elsewhere, shaped (n, 1) to select label rows."""
    m: U64 = np.uint64(0) - bit.astype(np.uint64)
    return m[:, None]


def _sel(bit: U8, v: U8) -> U8:
    """v where bit is 1, else 0 (rows)."""
    return v * bit[:, None]


class _Tweaks:
    """(gate, instance) tweaks for a batch: the instance column is written once per batch."""

    def __init__(self, lo: int, n: int, copies: int):
        self.n = n
        self.tw = np.empty((copies * n, 2), np.uint64)
        # the top bit separates garbling tweaks from IKNP's (whose high word is 0)
        self.tw[:, 1] = np.tile(np.arange(lo, lo + n, dtype=np.uint64) | np.uint64(1 << 63), copies)

    def __call__(self, *gate_ids: int) -> U64:
        for i, g in enumerate(gate_ids):
            self.tw[i * self.n : (i + 1) * self.n, 0] = np.uint64(g)
        return self.tw[: len(gate_ids) * self.n]


def garble(c: Circuit, delta: U8, zero_labels: dict[int, U8], first_id: int, lo: int, n: int) -> tuple[dict[int, U8], U8]:
    """Garble `n` instances (numbered from `lo`): the 0-labels of every wire ((n, 2) uint64
    words), and the tables (n_and, 2, n, 16) uint8. `zero_labels` holds the input wires'
    0-labels ((n, 16) uint8)."""
    r = np.frombuffer(delta.tobytes(), np.uint64)
    lab: dict[int, Any] = {w: np.ascontiguousarray(v).view(np.uint64) for w, v in zero_labels.items()}
    tables = np.empty((c.and_count, 2, n, 2), np.uint64)
    tweaks = _Tweaks(lo, n, 4)
    k = 0
    for op, a, b, out in c.gates:
        if op == XOR:
            lab[out] = lab[a] ^ lab[b]
        elif op == INV:
            lab[out] = lab[a] ^ r
        else:
            a0, b0 = lab[a], lab[b]
            g0, g1 = first_id + 2 * k, first_id + 2 * k + 1
            h = tccr64(tweaks(g0, g0, g1, g1), np.concatenate([a0, a0 ^ r, b0, b0 ^ r]))
            ha0, hb0 = h[:n], h[2 * n : 3 * n]
            t_g = tables[k, 0]
            np.bitwise_xor(ha0, h[n : 2 * n], out=t_g)
            t_g ^= r & _mask(b0[:, 0] & np.uint64(1))  # ^ p_b R
            t_e = tables[k, 1]
            np.bitwise_xor(hb0, h[3 * n :], out=t_e)
            t_e ^= a0
            lab[out] = ha0 ^ (t_g & _mask(a0[:, 0] & np.uint64(1))) ^ hb0 ^ ((t_e ^ a0) & _mask(b0[:, 0] & np.uint64(1)))
            k += 1
    return lab, tables.view(np.uint8).reshape(c.and_count, 2, n, LABEL)


def evaluate(c: Circuit, labels: dict[int, U8], tables: U8, first_id: int, lo: int, n: int) -> dict[int, U8]:
    """Evaluate `n` instances from the input wires' labels ((n, 16) uint8); returns every
    wire's label as (n, 2) uint64 words."""
    lab: dict[int, Any] = {w: np.ascontiguousarray(v).view(np.uint64) for w, v in labels.items()}
    tab = np.ascontiguousarray(tables).view(np.uint64).reshape(-1, 2, n, 2)
    tweaks = _Tweaks(lo, n, 2)
    k = 0
    for op, a, b, out in c.gates:
        if op == XOR:
            lab[out] = lab[a] ^ lab[b]
        elif op == INV:
            lab[out] = lab[a]
        else:
            wa, wb = lab[a], lab[b]
            h = tccr64(tweaks(first_id + 2 * k, first_id + 2 * k + 1), np.concatenate([wa, wb]))
            h_g = h[:n]
            h_g ^= tab[k, 0] & _mask(wa[:, 0] & np.uint64(1))
            h_g ^= h[n:]
            h_g ^= (tab[k, 1] ^ wa) & _mask(wb[:, 0] & np.uint64(1))
            lab[out] = h_g
            k += 1
    return lab


class YaoSession:
    """Two-party garbled-circuit evaluation between `garbler` and `evaluator` over one channel.

    Every party of the job constructs it at the same program point (it draws a uid);
    the two ends run circuits with `run`. Base OTs (for E's inputs) run once, on first use.
    """

    def __init__(self, ctx: PartyContext, garbler: str, evaluator: str):
        uid = ctx.next_uid("gc")
        if garbler == evaluator:
            raise ParameterError("garbler and evaluator must be two different parties", field="evaluator")
        self.ctx, self.garbler, self.evaluator = ctx, garbler, evaluator
        self.role = "garbler" if ctx.me == garbler else ("evaluator" if ctx.me == evaluator else None)
        self.ch: Channel | None = None
        self._ot: IknpSender | IknpReceiver | None = None
        self.delta: U8 = np.zeros(LABEL, np.uint8)
        self._gates_used = 0
        if self.role is not None:
            self.ch = Channel(ctx, evaluator if self.role == "garbler" else garbler, uid)
            if self.role == "garbler":
                self.delta = Prg().random(LABEL, np.uint8)
                self.delta[0] |= 1  # lsb(R) = 1: point-and-permute
                self._ot = IknpSender(self.ch)
            else:
                self._ot = IknpReceiver(self.ch)

    def run(self, c: Circuit, inputs: npt.ArrayLike | None, reveal_to: str = "both") -> U8 | None:
        """Evaluate `c` on N instances: this party's input bits (N, its input count) uint8.

        Returns the output bits (N, outputs) at the parties in `reveal_to` ("garbler",
        "evaluator" or "both"), None elsewhere (and at parties outside the session)."""
        if reveal_to not in ("garbler", "evaluator", "both"):
            raise ParameterError(f"reveal_to must be garbler, evaluator or both, got {reveal_to!r}", field="reveal_to")
        if self.role is None or self.ch is None:
            return None
        mine = len(c.garbler_inputs) if self.role == "garbler" else len(c.evaluator_inputs)
        bits = np.asarray(inputs, np.uint8).reshape(-1, mine) if mine else np.zeros((0, 0), np.uint8)
        if bits.size and bits.max() > 1:
            raise ParameterError("input bits must be 0 or 1", field="inputs")
        first = self._gates_used
        self._gates_used += 2 * c.and_count + 2
        if self.role == "garbler":
            return self._garbler(c, bits, first, reveal_to)
        return self._evaluator(c, bits, first, reveal_to)

    def _garbler(self, c: Circuit, bits: U8, first: int, reveal_to: str) -> U8 | None:
        assert self.ch is not None and isinstance(self._ot, IknpSender)
        n_total, n_e = bits.shape[0], len(c.evaluator_inputs)
        self.ch.send("gc-n", meta={"n": n_total})
        out_bits = []
        for lo in range(0, n_total, CHUNK):
            n = min(CHUNK, n_total - lo)
            zero: dict[int, U8] = {w: Prg().random((n, LABEL), np.uint8) for w in c.garbler_inputs}
            ev = self._ot.cot(self.delta, n * n_e).reshape(n, n_e, LABEL)  # E's 0-labels, by COT with offset R
            zero.update({w: np.ascontiguousarray(ev[:, j]) for j, w in enumerate(c.evaluator_inputs)})
            lab, tables = garble(c, self.delta, zero, first, lo, n)
            mine = np.empty((n, len(c.garbler_inputs), LABEL), np.uint8)
            for j, w in enumerate(c.garbler_inputs):  # W0 ^ x R: the label of G's actual bit
                mine[:, j] = zero[w] ^ _sel(bits[lo : lo + n, j], np.broadcast_to(self.delta, (n, LABEL)))
            decode = np.stack([_lsb(lab[w]) for w in c.outputs], axis=1)
            self.ch.send("gc-tables", arrays=[mine, tables, decode if reveal_to != "garbler" else decode[:0]])
            if reveal_to != "evaluator":
                got = self.ch.recv("gc-out", dtypes=[np.uint8], shapes=[(n, len(c.outputs))]).arrays[0]
                out_bits.append(got ^ decode)
        if reveal_to == "evaluator":
            return None
        return np.concatenate(out_bits) if out_bits else np.zeros((0, len(c.outputs)), np.uint8)

    def _evaluator(self, c: Circuit, bits: U8, first: int, reveal_to: str) -> U8 | None:
        assert self.ch is not None and isinstance(self._ot, IknpReceiver)
        n_total = self.ch.recv("gc-n", dtypes=[]).meta.get("n")
        if not isinstance(n_total, int) or n_total != bits.shape[0]:
            raise ProtocolError(f"garbled circuit: the garbler has {n_total} instances, the evaluator {bits.shape[0]}",
                                party=self.ch.peer)
        out_bits = []
        n_g, n_e, n_o = len(c.garbler_inputs), len(c.evaluator_inputs), len(c.outputs)
        for lo in range(0, n_total, CHUNK):
            n = min(CHUNK, n_total - lo)
            ev = self._ot.cot(bits[lo : lo + n].reshape(-1)).reshape(n, n_e, LABEL)
            d_rows = n if reveal_to != "garbler" else 0
            got = self.ch.recv("gc-tables", dtypes=[np.uint8] * 3,
                               shapes=[(n, n_g, LABEL), (c.and_count, 2, n, LABEL), (d_rows, n_o)]).arrays
            lab = {w: np.ascontiguousarray(got[0][:, j]) for j, w in enumerate(c.garbler_inputs)}
            lab.update({w: np.ascontiguousarray(ev[:, j]) for j, w in enumerate(c.evaluator_inputs)})
            lab = evaluate(c, lab, got[1], first, lo, n)
            perm = np.stack([_lsb(lab[w]) for w in c.outputs], axis=1)
            if reveal_to != "evaluator":
                self.ch.send("gc-out", arrays=[perm])
            if reveal_to != "garbler":
                out_bits.append(perm ^ got[2])
        if reveal_to == "garbler":
            return None
        return np.concatenate(out_bits) if out_bits else np.zeros((0, n_o), np.uint8)


# -- integer-level entry points ----------------------------------------------------------------
def gc_compare(ctx: PartyContext, mine: npt.ArrayLike | None, *, garbler: str, evaluator: str, op: str = "lt",
               signed: bool = True, reveal_to: str = "both", session: YaoSession | None = None) -> Any:
    """Compare the garbler's x with the evaluator's y elementwise (int64/uint64 words, `op` in
    lt, le, gt, ge, eq, max): a bool array (uint64 for max) at the parties in `reveal_to`.

    Each party passes its own array as `mine` (same length at both); see the module example."""
    s = session or YaoSession(ctx, garbler, evaluator)
    c = comparison_circuit(op, 64, signed)
    bits = None if s.role is None or mine is None else to_bits(mine)
    out = s.run(c, bits, reveal_to)
    if out is None:
        return None
    return from_bits(out) if op == "max" else out[:, 0].astype(bool)


def gc_relu_shares(ctx: PartyContext, share: npt.ArrayLike | None, *, garbler: str, evaluator: str,
                   session: YaoSession | None = None) -> npt.NDArray[np.uint64] | None:
    """ReLU on additive shares over Z_2^64 (x = share_G + share_E, two's complement):
    returns each party's additive share of relu(x), via A2Y, ReLU and Y2A in one circuit.

    The garbler's new share is a fresh random r; the evaluator's is relu(x) - r, the
    circuit's only output (seen by the evaluator only, uniformly random to it).

    >>> x = np.array([5, -3, 0, -(2**40)], np.int64).view(np.uint64)
    >>> sg = np.array([11, 22, 33, 44], np.uint64); se = x - sg
    >>> def prog(ctx):
    ...     return gc_relu_shares(ctx, sg if ctx.me == "a" else se, garbler="a", evaluator="b")
    >>> out = simulate(prog, ["a", "b"], mode="thread")
    >>> (out["a"] + out["b"]).view(np.int64).tolist()
    [5, 0, 0, 0]
    """
    s = session or YaoSession(ctx, garbler, evaluator)
    if s.role is None:
        return None
    return _reshare(s, relu_circuit(64), np.asarray(share, np.uint64).reshape(-1))


def msb_circuit(n: int = 64) -> Circuit:
    """A2Y, sign bit, Y2A: garbler inputs (share s_G, mask -r), evaluator input s_E; output
    [s_G + s_E < 0] - r as an n-bit word (2n - 2 ANDs: 126 for n = 64).

    >>> msb_circuit().and_count
    126
    """
    b = Builder()
    sg, neg_r = b.garbler(n), b.garbler(n)
    se = b.evaluator(n)
    sign = add(b, sg, se)[-1]
    out = [b.xor(sign, neg_r[0])]  # sign (a 1-bit number) + (-r)
    c = b.and_(sign, neg_r[0])
    for i in range(1, n):
        out.append(b.xor(neg_r[i], c))
        if i + 1 < n:
            c = b.and_(neg_r[i], c)
    b.output(out)
    return b.build()


def _reshare(s: YaoSession, c: Circuit, sh: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Run a circuit whose output is f(s_G + s_E) - r: the garbler keeps r, the evaluator the output."""
    if s.role == "garbler":
        r = Prg().uint64(sh.size)
        s.run(c, np.concatenate([to_bits(sh), to_bits(np.uint64(0) - r)], axis=1), reveal_to="evaluator")
        return r
    out = s.run(c, to_bits(sh), reveal_to="evaluator")
    assert out is not None
    return from_bits(out)


def secret_msb(x: Any, session: YaoSession | None = None) -> Any:
    """The sign bit of a `SecretArray` on a two-party semi2k device, by a garbled circuit:
    a `SecretArray` (ring integer, fxp 0) holding 1 where x < 0, 0 elsewhere.

    An alternative to the device's dealer-mask comparison (`proto.msb`): no correlated
    randomness from the dealer, 2 rounds instead of 6, ~8 KB per element instead of
    a few hundred bytes (a cost model chooses by latency). The dealer takes part in the
    SPMD program but receives nothing.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["a", "b"], protocol="semi2k", dealer="d")
    ...     x = ctx.party("a").run(lambda: np.array([1.5, -2.0, 0.0])).to(mpc)
    ...     y = ctx.party("b").run(lambda: np.array([1.0, 1.0, 0.0])).to(mpc)
    ...     z = secret_less(x, y).reveal()
    ...     return None if z is None else z.tolist()
    >>> simulate(prog, ["a", "b", "d"], mode="thread")["b"]
    [0, 1, 0]
    """
    dev, s = _two_party(x, session)
    share = None
    if s.role is not None:
        share = _reshare(s, msb_circuit(64), np.asarray(x.share, np.uint64).reshape(-1)).reshape(x.shape)
    return type(x)(dev, share, x.shape, 0)


def secret_relu(x: Any, session: YaoSession | None = None) -> Any:
    """max(x, 0) of a `SecretArray` on a two-party semi2k device, by a garbled circuit
    (A2Y, ReLU, Y2A; 190 ANDs per element); keeps x's fixed-point scale.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["a", "b"], protocol="semi2k", dealer="d")
    ...     x = ctx.party("a").run(lambda: np.array([1.5, -2.0, 0.25])).to(mpc)
    ...     z = secret_relu(x).reveal()
    ...     return None if z is None else z.tolist()
    >>> simulate(prog, ["a", "b", "d"], mode="thread")["a"]
    [1.5, 0.0, 0.25]
    """
    dev, s = _two_party(x, session)
    share = None
    if s.role is not None:
        share = _reshare(s, relu_circuit(64), np.asarray(x.share, np.uint64).reshape(-1)).reshape(x.shape)
    return type(x)(dev, share, x.shape, x.fxp)


def _two_party(x: Any, session: YaoSession | None) -> tuple[Any, YaoSession]:
    dev = x.device
    compute = list(dev.parties)
    if dev.protocol_name != "semi2k" or len(compute) != 2:
        raise ParameterError(f"garbled circuits need a two-party semi2k device, got {dev!r}", field="device")
    return dev, session or YaoSession(dev.ctx, compute[0], compute[1])


def secret_less(x: Any, y: Any, session: YaoSession | None = None) -> Any:
    """x < y for `SecretArray`s on a two-party semi2k device, by a garbled circuit (see `secret_msb`)."""
    return secret_msb(x - y, session)


class Garbled:
    """The garbled-circuit protocol's declared capabilities and costs (for the DSL's cost model).

    Not a `Protocol` subclass: it computes on two parties' *private* inputs or on additive
    shares through `gc_compare` / `gc_relu_shares`, without a `SecretArray` device (yet).

    >>> Garbled.static_cost("lt", (1000,))
    Cost(bytes=5122000, rounds=3, dealer_bytes=0)
    >>> "relu" in Garbled.capabilities
    True
    """

    name: ClassVar[str] = "garbled"
    capabilities: ClassVar[frozenset[str]] = frozenset({"lt", "le", "gt", "ge", "eq", "max", "relu", "msb", "no_dealer",
                                                        "constant_rounds"})

    @classmethod
    def static_cost(cls, op: str, *shapes: Any, **params: Any) -> Cost:
        """Bytes (both directions, payload) and rounds for `op` on arrays of `shapes[0]`."""
        if op not in cls.capabilities or op in ("no_dealer", "constant_rounds"):
            raise ParameterError(f"garbled circuits have no kernel {op!r}", field="op")
        n = int(np.prod(shapes[0])) if shapes else 1
        if op in ("relu", "msb"):  # on additive shares, re-shared: the output goes to the evaluator only
            return cost_of(relu_circuit() if op == "relu" else msb_circuit(), n, reveal_to="evaluator")
        return cost_of(comparison_circuit(op), n)


def cost_of(c: Circuit, n: int, reveal_to: str = "both") -> Cost:
    """Payload bytes and rounds of `YaoSession.run` for `n` instances (base OTs excluded).

    >>> cost_of(comparison_circuit("eq"), 1)
    Cost(bytes=5090, rounds=3, dealer_bytes=0)
    """
    n_g, n_e, n_o = len(c.garbler_inputs), len(c.evaluator_inputs), len(c.outputs)
    per = LABEL * n_g + 2 * LABEL * c.and_count + 2 * LABEL * n_e  # labels, tables, COT (u and correction)
    per += n_o * (int(reveal_to != "garbler") + int(reveal_to != "evaluator"))  # decode bits, output bits
    return Cost(per * n, 2 + int(reveal_to != "evaluator"))


__all__ = ["Circuit", "Builder", "YaoSession", "Garbled", "gc_compare", "gc_relu_shares", "secret_msb", "secret_less",
           "secret_relu",
           "msb_circuit", "comparison_circuit",
           "relu_circuit", "cost_of", "add", "less_than", "greater_than", "equal", "mux", "to_bits", "from_bits",
           "garble", "evaluate"]
