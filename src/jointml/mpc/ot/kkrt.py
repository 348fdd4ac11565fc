"""KKRT16 batched OPRF and 1-out-of-N OT (Kolesnikov, Kumaresan, Rosulek, Trieu, CCS 2016).

IKNP with the receiver's choice bit replaced by a codeword: for m instances, the
receiver R holds inputs r_j (16-byte strings) and learns F_j(r_j); the sender S holds a
key with which it can evaluate F_j(x) at any x. For x != r_j, F_j(x) is pseudorandom to R.

Setup: S draws a random public code key (an AES key K and offsets c_i) and sends it: the
pseudorandom code C(x) = AES_K(x ^ c_0) || ... || AES_K(x ^ c_3) (w = 512 bits; two distinct inputs give
codewords differing in ~256 positions, and in at least 128 except with probability
< 2^-90 for 2^24 inputs). S draws a secret s of w bits; w random OTs (by IKNP, whose
own 128 base OTs run once) give R seed pairs (k0_i, k1_i) and S the seeds k_{s_i}.

Per batch (G: AES-CTR of a seed):

1. R: t^i = G(k0_i), u^i = t^i ^ G(k1_i) ^ C(r)^i for the w columns; sends u (w x m bits).
2. S: q^i = G(k_{s_i}) ^ s_i u^i; row j of the transpose: q_j = t_j ^ (C(r_j) & s).
3. F_j(x) = H(j, q_j ^ (C(x) & s)) at S;   R: F_j(r_j) = H(j, t_j).

H is a fixed-key-AES hash of the 512-bit row (`prims.mmo_chain`, tweaked by j and a
protocol tag), modelled as a random oracle, as in KKRT's analysis.

Security (semi-honest): S's view (u) is masked column by column by G(k_{1-s_i}): it is
independent of R's inputs. For x != r_j, q_j ^ (C(x) & s) = t_j ^ ((C(r_j) ^ C(x)) & s)
depends on >= 128 bits of s that R does not know, so F_j(x) is a random-oracle output at
an unpredictable point: pseudorandom to R. A deviating R (non-codewords) learns more:
semi-honest only, as KKRT16 states for this variant.

Cost per instance: w/8 = 64 bytes of u; AES over ~12 blocks at R, and per evaluation
at S ~8 blocks (code and hash); one round after setup.

>>> def prog(ctx):
...     ch = Channel(ctx, "bob" if ctx.me == "alice" else "alice", "doc-kkrt")
...     xs = np.arange(3 * 16, dtype=np.uint8).reshape(3, 16)
...     if ctx.me == "alice":
...         key = KkrtSender(ch)
...         key.extend(3)
...         return key.eval(np.arange(3), xs), key.eval(np.arange(3), xs[::-1])
...     return KkrtReceiver(ch).oprf(xs)
>>> out = simulate(prog, ["alice", "bob"], mode="thread")
>>> same, other = out["alice"]
>>> bool((out["bob"] == same).all()), bool((out["bob"][0] == other[0]).all())
(True, False)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ...core.errors import ParameterError, ProtocolError
from ...core.prg import Prg
from ...runtime.collectives import Channel
from .iknp import IknpReceiver, IknpSender
from .prims import Expander, aes_ecb, mmo_chain, pack_bits, transpose_bits

WIDTH = 512
BLOCK = 16
#: instances per message of u: 2^16 x 512 bits = 4 MiB.
CHUNK = 1 << 16
_TAG = np.uint64(0x4B4B5254)  # "KKRT": the high tweak word, separating this hash from IKNP's

U8 = npt.NDArray[np.uint8]


def _tweaks(idx: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    tw = np.empty((idx.size, 2), np.uint64)
    tw[:, 0] = idx.astype(np.uint64)
    tw[:, 1] = _TAG
    return tw


def _check_inputs(x: npt.ArrayLike) -> U8:
    a = np.ascontiguousarray(x, dtype=np.uint8)
    if a.ndim != 2 or a.shape[1] != BLOCK:
        raise ParameterError(f"OPRF inputs must be (m, 16) uint8, got shape {a.shape}", field="inputs")
    return a


class _Code:
    """The pseudorandom code C(x) = AES_K(x ^ c_0) || ... || AES_K(x ^ c_{w/128-1}).

    `keys` holds K then the public offsets c_i (all random, drawn by the sender per run);
    one AES call over the inputs repeated w/128 times gives the codewords in row layout."""

    def __init__(self, keys: U8):
        self.key = bytes(keys[0])
        self.offsets = np.ascontiguousarray(keys[1:])

    def __call__(self, x: U8) -> U8:
        k = self.offsets.shape[0]
        buf = np.repeat(x, k, axis=0).reshape(x.shape[0], k, BLOCK)
        buf ^= self.offsets
        return aes_ecb(buf, self.key).reshape(x.shape[0], k * BLOCK)


class KkrtSender:
    """The OPRF sender (key holder) of one KKRT session over `ch`.

    `extend(m)` runs the OT phase for m instances; `eval(j, x)` is F_j(x) for any inputs.
    """

    def __init__(self, ch: Channel, width: int = WIDTH, out_bytes: int = 16):
        if width % 128 or width < 256:
            raise ParameterError(f"KKRT code width must be a multiple of 128, >= 256, got {width}", field="width")
        self.ch, self.width, self.out_bytes = ch, width, out_bytes
        keys = Prg().random((1 + width // 128, BLOCK), np.uint8)
        ch.send("kkrt-code", arrays=[keys])
        self.code = _Code(keys)
        s_bits = Prg().bits(width).astype(np.uint8)
        self._s_bits = s_bits
        self._s64 = pack_bits(s_bits).view(np.uint64)  # s in the layout of a transposed row
        self._g = Expander(IknpReceiver(ch).rot(s_bits))
        self.q = np.empty((0, width // 8), np.uint8)

    def extend(self, m: int) -> None:
        """Receive the receiver's matrix for `m` instances (numbered from 0)."""
        wb = self.width // 8
        q_all = np.empty((m, wb), np.uint8)
        sel = self._s_bits == 1
        for lo in range(0, m, CHUNK):
            n = min(CHUNK, m - lo)
            width = (n + 7) // 8 * 8
            u = self.ch.recv("kkrt-u", dtypes=[np.uint8], shapes=[(self.width, width // 8)]).arrays[0]
            q = self._g.next(width // 8)
            q[sel] ^= u[sel]
            q_all[lo : lo + n] = transpose_bits(q, width)[:n]
        self.q = q_all

    def eval(self, instances: npt.ArrayLike, inputs: npt.ArrayLike) -> U8:
        """F_j(x) for each pair (instances[i], inputs[i]): (k, out_bytes) uint8.

        Evaluate in slices of ~10^5 pairs to bound memory (~200 bytes per pair)."""
        idx = np.asarray(instances, dtype=np.int64).reshape(-1)
        x = _check_inputs(inputs)
        if idx.size != x.shape[0]:
            raise ParameterError("one instance index per input", field="instances")
        if idx.size and (idx.min() < 0 or idx.max() >= self.q.shape[0]):
            raise ParameterError(f"instance index out of range [0, {self.q.shape[0]})", field="instances")
        rows = self.code(x).view(np.uint64)
        rows &= self._s64
        rows ^= self.q.view(np.uint64)[idx]
        return mmo_chain(_tweaks(idx), rows.view(np.uint8), self.out_bytes)

    def send_n(self, messages: npt.ArrayLike) -> None:
        """1-out-of-N OT for the instances 0..m-1: `messages` (m, N, nbytes <= 16) uint8.

        The receiver gets messages[j, c_j] and nothing about the others."""
        msg = np.asarray(messages, np.uint8)
        if msg.ndim != 3 or msg.shape[2] > self.out_bytes:
            raise ParameterError(f"messages must be (m, N, <= {self.out_bytes}) uint8", field="messages")
        m, n_choices, nb = msg.shape
        self.extend(m)
        idx = np.repeat(np.arange(m), n_choices)
        pads = self.eval(idx, _choice_inputs(np.tile(np.arange(n_choices), m)))[:, :nb]
        self.ch.send("kkrt-n", arrays=[msg ^ pads.reshape(m, n_choices, nb)])


class KkrtReceiver:
    """The OPRF receiver of one KKRT session over `ch`: `oprf(inputs)` -> F_j(inputs[j])."""

    def __init__(self, ch: Channel, width: int = WIDTH, out_bytes: int = 16):
        self.ch, self.width, self.out_bytes = ch, width, out_bytes
        keys = ch.recv("kkrt-code", dtypes=[np.uint8], shapes=[(1 + width // 128, BLOCK)]).arrays[0]
        self.code = _Code(keys)
        x0, x1 = IknpSender(ch).rot(width)
        self._g0, self._g1 = Expander(x0), Expander(x1)

    def oprf(self, inputs: npt.ArrayLike) -> U8:
        """F_j(inputs[j]) for j = 0..m-1: (m, out_bytes) uint8 (instances numbered from 0)."""
        x = _check_inputs(inputs)
        m = x.shape[0]
        out = np.empty((m, self.out_bytes), np.uint8)
        for lo in range(0, m, CHUNK):
            n = min(CHUNK, m - lo)
            width = (n + 7) // 8 * 8
            c = np.zeros((width, self.width // 8), np.uint8)
            c[:n] = self.code(x[lo : lo + n])
            t = self._g0.next(width // 8)
            u = self._g1.next(width // 8)
            u ^= t
            u ^= transpose_bits(c, self.width)
            self.ch.send("kkrt-u", arrays=[u])
            # hash each chunk's rows at once: only the outputs are kept (memory ~out_bytes per instance)
            out[lo : lo + n] = mmo_chain(_tweaks(np.arange(lo, lo + n)), transpose_bits(t, width)[:n], self.out_bytes)
        return out

    def receive_n(self, choices: npt.ArrayLike, n_choices: int, nbytes: int) -> U8:
        """1-out-of-N OT: row j = the sender's messages[j, choices[j]] (m, nbytes)."""
        c = np.asarray(choices, dtype=np.int64).reshape(-1)
        if c.size and (c.min() < 0 or c.max() >= n_choices):
            raise ParameterError(f"choices must be in [0, {n_choices})", field="choices")
        pads = self.oprf(_choice_inputs(c))[:, :nbytes]
        got = self.ch.recv("kkrt-n", dtypes=[np.uint8], shapes=[(c.size, n_choices, nbytes)]).arrays[0]
        if got.shape[0] != c.size:
            raise ProtocolError("1-out-of-N OT: wrong number of rows", party=self.ch.peer)
        return got[np.arange(c.size), c] ^ pads


def _choice_inputs(c: npt.NDArray[np.integer]) -> U8:
    """The OPRF input encoding a choice index: the index as uint64, then a tag word."""
    x = np.zeros((c.size, 2), np.uint64)
    x[:, 0] = c.astype(np.uint64)
    x[:, 1] = np.uint64(0x6E2D6F6674)  # "n-oft": never an input of the PSI encoding's range
    return x.view(np.uint8)
