"""IKNP OT extension (Ishai, Kilian, Nissim, Petrank 2003): millions of OTs from 128 base OTs.

Roles: the extension *sender* S ends with two messages per OT, the *receiver* R with
the one of its choice. The base OTs run the other way round (S is their receiver,
with a secret random choice vector s of 128 bits; R their sender with seed pairs).

Per batch of m OTs with R's choice bits r (G: AES-CTR keystream of a seed, `prims.Expander`):

1. R: t^i = G(k0_i), u^i = t^i ^ G(k1_i) ^ r for the 128 columns i; sends u (128 x m bits).
2. S: q^i = G(k_{s_i}) ^ s_i u^i = t^i ^ s_i r. Transposed, row j: q_j = t_j ^ r_j s.
3. Random OT: S gets x0_j = H(j, q_j), x1_j = H(j, q_j ^ s); R gets x_{r_j} = H(j, t_j).

H is the fixed-key-AES tweakable correlation-robust hash (`prims.tccr`), tweaked by
the OT's index within the session (never repeated). Derived transfers:

* `cot` (correlated OT, ALSZ13): S fixes x1 = x0 ^ delta (one global delta, as garbling
  wants for its wire labels, or one per OT) and sends y_j = x0_j ^ H(j, q_j ^ s) ^ delta_j;
  R gets x0_j ^ r_j delta_j. 16 bytes per OT more.
* `send` / `receive` (chosen messages): S sends both messages masked by the random-OT
  keys (2 x nbytes per OT).

Security (semi-honest; H correlation robust; the PRG secure; base OTs secure):
S's view is u, where each column is masked by G(k_{1-s_i}) or G(k0_i) under a key S
does not hold: independent of r. R's view holds no information on s beyond the base
OTs, so H(j, t_j ^ s), the message it did not choose, is pseudorandom to R. Against a
deviating R (inconsistent r across columns) IKNP leaks bits of s: semi-honest only.

Cost per OT: 16 bytes of u, AES over ~4 blocks (PRG, two hashes) for S, ~3 for R;
the bit-matrix transpose. One round after the base OTs; base OTs once per session.

>>> def prog(ctx):
...     ch = Channel(ctx, "bob" if ctx.me == "alice" else "alice", "doc-iknp")
...     if ctx.me == "alice":
...         return IknpSender(ch).rot(5)
...     return IknpReceiver(ch).rot(np.array([1, 0, 1, 1, 0], np.uint8))
>>> out = simulate(prog, ["alice", "bob"], mode="thread")
>>> x0, x1 = out["alice"]; r = np.array([1, 0, 1, 1, 0])[:, None]
>>> bool((out["bob"] == np.where(r == 1, x1, x0)).all()), bool((x0 != x1).any(axis=1).all())
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ...core.errors import ParameterError, ProtocolError
from ...core.prg import Prg
from ...runtime.collectives import Channel
from .base import base_receive, base_send
from .prims import Expander, pack_bits, tccr, transpose_bits

KAPPA = 128
BLOCK = 16
#: OTs per message of u: 2^20 OTs -> 16 MiB per message, bounded memory for the transposes.
CHUNK = 1 << 20

U8 = npt.NDArray[np.uint8]


def _pad8(m: int) -> int:
    return (m + 7) // 8 * 8


def _check_choices(choices: npt.ArrayLike) -> U8:
    r = np.asarray(choices).reshape(-1)
    if r.size and (r.min() < 0 or r.max() > 1):
        raise ParameterError("OT choice bits must be 0 or 1", field="choices")
    return r.astype(np.uint8)


def _as_delta(delta: Any, m: int) -> U8:
    d = np.frombuffer(delta, np.uint8) if isinstance(delta, (bytes, bytearray)) else np.asarray(delta, np.uint8)
    if d.shape == (BLOCK,):
        return np.broadcast_to(d, (m, BLOCK))
    if d.shape != (m, BLOCK):
        raise ParameterError(f"COT delta must be 16 bytes or ({m}, 16), got shape {d.shape}", field="delta")
    return d


class IknpSender:
    """The extension sender of one session over `ch` (base OTs on first use).

    Methods return 16-byte keys or messages as uint8 arrays, one row per OT.
    """

    def __init__(self, ch: Channel):
        self.ch = ch
        self._s: U8 | None = None
        self._s_bits: U8 = np.zeros(KAPPA, np.uint8)
        self._g: Expander | None = None
        self.count = 0  # OTs extended so far: the tweak of the next one

    def _setup(self) -> tuple[U8, Expander]:
        if self._s is None or self._g is None:
            s_bits = Prg().bits(KAPPA).astype(np.uint8)  # S's secret: the base-OT choice vector
            keys = base_receive(self.ch, s_bits)
            self._s, self._g = pack_bits(s_bits), Expander(keys)
            self._s_bits = s_bits
        return self._s, self._g

    def _extend(self, m: int) -> tuple[U8, npt.NDArray[np.uint64]]:
        """Rows q_j (m, 16) with q_j ^ t_j = r_j * s, and their tweaks."""
        s, g = self._setup()
        out = np.empty((m, BLOCK), np.uint8)
        for lo in range(0, m, CHUNK):
            width = _pad8(min(CHUNK, m - lo))
            u = self.ch.recv("iknp-u", dtypes=[np.uint8], shapes=[(KAPPA, width // 8)]).arrays[0]
            q = g.next(width // 8)
            q[self._s_bits == 1] ^= u[self._s_bits == 1]
            out[lo : lo + width] = transpose_bits(q, width)[: min(CHUNK, m - lo)]
        tweaks = np.arange(self.count, self.count + m, dtype=np.uint64)
        self.count += m
        return out, tweaks

    def rot(self, m: int) -> tuple[U8, U8]:
        """`m` random OTs: (x0, x1), each (m, 16)."""
        q, tw = self._extend(m)
        s, _ = self._setup()
        return tccr(tw, q), tccr(tw, q ^ s)

    def cot(self, delta: Any, m: int) -> U8:
        """`m` correlated OTs: returns x0 (m, 16); the receiver gets x0 ^ r * delta.

        `delta`: 16 bytes (a global offset, e.g. the garbler's R) or an (m, 16) array."""
        d = _as_delta(delta, m)
        x0, x1 = self.rot(m)
        self.ch.send("iknp-cot", arrays=[x0 ^ x1 ^ d])
        return x0

    def send(self, m0: npt.ArrayLike, m1: npt.ArrayLike) -> None:
        """Chosen-message OT: the receiver gets m0[j] or m1[j] (uint8 rows of equal width)."""
        a, b = np.asarray(m0, np.uint8), np.asarray(m1, np.uint8)
        if a.shape != b.shape or a.ndim != 2:
            raise ParameterError(f"OT messages must be two (m, w) arrays, got {a.shape} and {b.shape}", field="m0")
        x0, x1 = self.rot(a.shape[0])
        self.ch.send("iknp-msg", arrays=[a ^ _stretch(x0, a.shape[1]), b ^ _stretch(x1, a.shape[1])])


class IknpReceiver:
    """The extension receiver of one session over `ch` (base OTs on first use)."""

    def __init__(self, ch: Channel):
        self.ch = ch
        self._g: tuple[Expander, Expander] | None = None
        self.count = 0

    def _setup(self) -> tuple[Expander, Expander]:
        if self._g is None:
            k0, k1 = base_send(self.ch, KAPPA)
            self._g = (Expander(k0), Expander(k1))
        return self._g

    def _extend(self, r: U8) -> tuple[U8, npt.NDArray[np.uint64]]:
        g0, g1 = self._setup()
        m = r.size
        out = np.empty((m, BLOCK), np.uint8)
        for lo in range(0, m, CHUNK):
            part = r[lo : lo + CHUNK]
            width = _pad8(part.size)
            t = g0.next(width // 8)
            u = t ^ g1.next(width // 8)
            u ^= pack_bits(np.concatenate([part, np.zeros(width - part.size, np.uint8)]))[None, :]
            self.ch.send("iknp-u", arrays=[u])
            out[lo : lo + part.size] = transpose_bits(t, width)[: part.size]
        tweaks = np.arange(self.count, self.count + m, dtype=np.uint64)
        self.count += m
        return out, tweaks

    def rot(self, choices: npt.ArrayLike) -> U8:
        """Random OTs with these choice bits: x_{r_j} (m, 16)."""
        t, tw = self._extend(_check_choices(choices))
        return tccr(tw, t)

    def cot(self, choices: npt.ArrayLike) -> U8:
        """Correlated OTs: x0 ^ r_j * delta (m, 16)."""
        r = _check_choices(choices)
        x = self.rot(r)
        y = self.ch.recv("iknp-cot", dtypes=[np.uint8], shapes=[(r.size, BLOCK)]).arrays[0]
        x ^= y * r[:, None]  # y where the choice is 1 (a multiply: no boolean gather)
        return x

    def receive(self, choices: npt.ArrayLike, nbytes: int) -> U8:
        """Chosen-message OT: (m, nbytes), row j = the sender's m_{r_j}[j]."""
        r = _check_choices(choices)
        x = _stretch(self.rot(r), nbytes)
        got = self.ch.recv("iknp-msg", dtypes=[np.uint8, np.uint8], shapes=[(r.size, nbytes)] * 2).arrays
        if got[0].shape != x.shape:
            raise ProtocolError("OT messages of the wrong shape", party=self.ch.peer)
        return np.where(r[:, None] == 1, got[1], got[0]) ^ x


def _stretch(keys: U8, nbytes: int) -> U8:
    """Keys (m, 16) -> pads (m, nbytes): the key itself, or its AES-CTR expansion when longer."""
    if nbytes <= BLOCK:
        return np.ascontiguousarray(keys[:, :nbytes])
    out = np.empty((keys.shape[0], nbytes), np.uint8)
    for j in range(keys.shape[0]):
        out[j] = np.frombuffer(Prg(keys[j].tobytes(), "ot-pad").bytes(nbytes), np.uint8)
    return out
