"""Bin statistics ``C_p^T V`` for SS-XGB: a 0/1 cumulative bin matrix private to its owner p
times secret gradient columns V, in semi2k with two compute parties and the dealer.

Why not :class:`~jointml.mpc.masked.PrivateMaskedMatrix` (the previous path, still used
for aby3 and more than two compute parties): it works in Z_2^64, so the masked matrix
``E = C^T - A`` (K x n, K candidate splits) travels as 8-byte words, and every product is a
dense K x n x c ring product at three parties (owner, other party, dealer). Here:

* the ring is Z_2^k with ``k = f + ceil(log2(n + 1)) + 2`` bits, enough for the exact
  result (``|C^T V| <= n max|V|``; ``|g| <= 1``, ``0 <= h <= 1/4``): ``E`` and the masked
  operands travel as ``ceil(k/8)``-byte words (5 instead of 8 for n = 100,000, f = 18);
* the other party's share is re-randomised to the dealer's ``B`` first, so the two dense
  products (``E B`` at the other party, ``A B`` at the dealer) are of data-independent
  operands, and the owner's term ``C^T (V - B)`` is a per-feature bin count (no dense
  product at the owner): one dense product per party and level instead of two.

The Z_2^k result is lifted to Z_2^64 with one secure comparison per output entry
(K x c entries, not n): with the public offset ``2^(k-1)`` added by the owner, the two
k-bit shares sum, as integers, to ``x + 2^(k-1) + 2^k w`` with ``w = [sum >= 2^k]``.

Protocol (owner p, the other compute party j, dealer D; A, B, R uniform in Z_2^k):

1. Once: p and D draw ``A`` (K x n) from their pairwise seed; p sends ``E = C^T - A`` to j.
2. Each product ``C^T V``: j and D draw fresh ``B`` (n x c) and ``R`` (K x c) from their
   seed; j sends ``F = V_j - B`` to p; D sends ``Z = A B - R`` to p. Then p holds
   ``C^T (V_p + F) + Z`` and j holds ``E B + R``; their sum is
   ``C^T (V - B) + (E + A) B = C^T V`` (mod 2^k).

Security (semi-honest, the dealer not colluding, as semi2k): j sees ``E``, uniform
(``A`` is never reused for another matrix); p sees ``F`` and ``Z``, uniform (``B``, ``R``
fresh per product); D receives nothing. The lift's comparison opens only masked values
(semi2k's). So nobody learns anything beyond its shares of ``C^T V``: the same as the
``PrivateMaskedMatrix`` product it replaces. A deviating party can make the result wrong
(as in semi2k) but learns nothing more from what it receives.

Cost per product (c columns): n c words of k bits (j to p), K c words (D to p), one
comparison on K c entries; dense work K n c multiply-adds at j and at D (numpy's integer
loop), a bin count at p. Once: K n words of k bits (p to j). Given the public ``schedule``
of column counts, j and D start the next product's dense work (its operands are
data-independent) in a thread as soon as the current one is done, so that it overlaps
the caller's split-score rounds.

>>> from jointml.mpc import MpcDevice
>>> codes = np.array([[0], [1], [2], [1]])            # alice's bin codes, 1 feature, 3 bins
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     hist = OwnerHistogram(mpc, "alice", codes if ctx.me == "alice" else None, [2], n=4)
...     V = ctx.party("bob").run(lambda: np.array([[1.0], [2.0], [4.0], [-0.5]])).to(mpc)
...     return OwnerHistogram.matmul_many([hist], V)[0].reveal()   # rows: [code <= 0], [code <= 1]
>>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"][:, 0].tolist()
[1.0, 2.5]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from ...core.errors import ProtocolError
from ...core.prg import Prg
from ...mpc import MpcDevice, SecretArray
from ...runtime.collectives import send_to

__all__ = ["OwnerBits", "OwnerHistogram", "supported"]

_U = np.uint64


def supported(mpc: MpcDevice, n: int) -> bool:
    """Whether this path applies: semi2k, exactly two compute parties, n small enough for
    the k-bit ring (k <= 48) and exact float bin counts.

    >>> supported(None, 10)
    False
    """
    if mpc is None or getattr(mpc.proto, "name", "") != "semi2k" or len(mpc.parties) != 2:
        return False
    k = _ring_bits(mpc.frac_bits, n)
    # the owner's bin counts sum limbs of ceil(k/3) bits over n rows in float64
    return 2 * k // 3 + 2 + math.log2(max(n, 1)) < 53 and k <= 48


def _ring_bits(frac_bits: int, n: int) -> int:
    return int(frac_bits) + math.ceil(math.log2(n + 1)) + 2


def _limbs(x: np.ndarray, w: int, dtype: type = np.float64) -> list[np.ndarray]:
    m = _U((1 << w) - 1)
    return [((x >> _U(w * i)) & m).astype(dtype) for i in range(3)]


def _combine(t: Sequence[np.ndarray], w: int, mask: np.uint64) -> np.ndarray:
    out = t[0].astype(np.int64).view(_U) + (t[1].astype(np.int64).view(_U) << _U(w))
    out += t[2].astype(np.int64).view(_U) << _U(2 * w)
    return out & mask


def _pack(x: np.ndarray, nbytes: int) -> np.ndarray:
    return np.ascontiguousarray(np.ascontiguousarray(x, dtype="<u8").view(np.uint8).reshape(*x.shape, 8)[..., :nbytes])


def _unpack(b: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype="<u8")
    out.view(np.uint8).reshape(*shape, 8)[..., : b.shape[-1]] = b  # little-endian: the low bytes
    return out.astype(_U, copy=False)


class OwnerHistogram:
    """``C^T V`` for the owner's cumulative bin matrix (rows: every (feature, bin) candidate of
    the owner, ``[code <= bin]``), V secret (n x c); see the module docstring.

    `codes` (n x features, the owner's bin codes) and `counts` (candidates per feature,
    public) are read at the owner only. Construction sends the masked matrix once."""

    def __init__(self, mpc: MpcDevice, owner: str, codes: np.ndarray | None, counts: Sequence[int], n: int,
                 schedule: Sequence[int] = ()):
        ctx = mpc.ctx
        # the public column counts of the coming products: j and D compute their (data-
        # independent) dense product E B / A B for the next one in a thread, while the
        # caller works on the split scores (numpy's matmul releases the GIL)
        self._schedule = list(schedule)
        self._next: tuple[int, np.ndarray, np.ndarray, threading.Thread, list] | None = None
        self.mpc, self.ctx, self.owner = mpc, ctx, owner
        self.other = next(p for p in mpc.parties if p != owner)
        self.dealer = str(mpc.proto.dealer)  # type: ignore[attr-defined]
        self.counts = [int(c) for c in counts]
        self.K, self.n = sum(self.counts), int(n)
        self.k = _ring_bits(mpc.frac_bits, self.n)
        self.mask = _U((1 << self.k) - 1)
        self.nbytes = math.ceil(self.k / 8)
        self.codes = codes if ctx.me == owner else None
        label = ctx.next_uid("ssxgb-hist-")
        me = ctx.me
        # the fixed matrix of the dense products: A at the dealer, E = C^T - A at the other party
        self.M: np.ndarray | None = None
        self._jd: Prg | None = None
        A = None
        if me in (owner, self.dealer):
            A = Prg(ctx.shared_seed(owner, self.dealer, label), stream="A").random((self.K, self.n), _U) & self.mask
        if me in (self.other, self.dealer):
            self._jd = Prg(ctx.shared_seed(self.other, self.dealer, label), stream="BR")
        E = self._masked(A) if me == owner else None
        if me == self.dealer:
            self.M = A
        got = send_to(ctx, owner, self.other, arrays=[] if E is None else [_pack(E, self.nbytes)], name="ssxgb-E",
                      dtypes=[np.uint8], shapes=[(self.K, self.n, self.nbytes)])
        if me == self.other and got is not None:
            self.M = _unpack(got.arrays[0], (self.K, self.n))
        self._prefetch()

    def _draw(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """The next (B, R) of the j-D stream (drawn in the same order at j and D)."""
        assert self._jd is not None
        B = self._jd.random((c, self.n), _U).T & self.mask  # column-major: the integer matmul reads columns
        return B, self._jd.random((self.K, c), _U) & self.mask

    def _prefetch(self) -> None:
        """At j and D: draw the next scheduled product's (B, R) and start its dense product."""
        if self._jd is None or self.M is None or not self._schedule:
            return
        c = self._schedule.pop(0)
        B, R = self._draw(c)
        out: list = []
        th = threading.Thread(target=lambda: out.append((self.M @ B) & self.mask), daemon=True)
        th.start()
        self._next = (c, B, R, th, out)

    def _take(self, c: int) -> tuple[np.ndarray, np.ndarray, threading.Thread | None, list]:
        if self._next is None:
            B, R = self._draw(c)
            return B, R, None, []
        c0, B, R, th, out = self._next
        if c0 != c:
            raise ProtocolError(f"SS-XGB bin statistics: expected a product with {c0} columns, got {c}",
                                party=self.ctx.me)
        self._next = None
        return B, R, th, out

    def _masked(self, A: np.ndarray | None) -> np.ndarray:
        """E = C^T - A mod 2^k at the owner, built feature by feature."""
        assert self.codes is not None and A is not None
        E = np.negative(A)  # in place below: E is K x n words
        r = 0
        for j, c in enumerate(self.counts):
            if c:
                np.add(E[r:r + c], np.arange(c)[:, None] >= self.codes[None, :, j], out=E[r:r + c], casting="unsafe")
                r += c
        np.bitwise_and(E, self.mask, out=E)
        return E

    def _own_term(self, Vp: np.ndarray) -> np.ndarray:
        """C^T V' mod 2^k at the owner: per feature, bin sums of the limbs, then cumulative sums."""
        assert self.codes is not None
        c = Vp.shape[1]
        w = math.ceil(self.k / 3)
        yl = _limbs(Vp & self.mask, w)
        rows = []
        for j, cnt in enumerate(self.counts):
            if not cnt:
                continue
            nb = cnt + 1
            idx = (self.codes[:, j].astype(np.int64)[:, None] + nb * np.arange(c)[None, :]).ravel()
            t = [np.cumsum(np.bincount(idx, weights=v.ravel(), minlength=nb * c).reshape(c, nb), axis=1)[:, :cnt].T
                 for v in yl]
            rows.append(_combine(t, w, self.mask))
        return np.concatenate(rows, axis=0)

    # -- products ------------------------------------------------------------------------
    def _send_masked_operand(self, V: SecretArray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Step 2, first half: j sends F = V_j - B to the owner. Returns (F at the owner, B and R at j and D)."""
        me = self.ctx.me
        n, c = V.shape
        F = B = R = None
        self._pending: tuple[threading.Thread | None, list] = (None, [])
        if self._jd is not None:
            B, R, th, out = self._take(c)
            self._pending = (th, out)
        if me == self.other:
            assert B is not None
            F = (np.asarray(V.share, dtype=_U) - B) & self.mask
        got = send_to(self.ctx, self.other, self.owner, arrays=[] if F is None else [_pack(F, self.nbytes)],
                      name="ssxgb-F", dtypes=[np.uint8], shapes=[(n, c, self.nbytes)])
        if me == self.owner and got is not None:
            F = _unpack(got.arrays[0], (n, c))
        return F, B, R

    def _finish(self, V: SecretArray, F: np.ndarray | None, B: np.ndarray | None,
                R: np.ndarray | None) -> np.ndarray | None:
        """Step 2, second half: local products and the dealer's Z; this party's k-bit share."""
        me = self.ctx.me
        c = V.shape[1]
        y = Z = None
        if me in (self.dealer, self.other):  # a dense product, but of data-independent operands
            assert self.M is not None and B is not None and R is not None
            th, out = self._pending
            if th is not None:
                th.join()
            # exact mod 2^k: uint64 arithmetic wraps mod 2^64 (computed here if the thread failed)
            MB = out[0] if out else (self.M @ B) & self.mask
            self._prefetch()
            if me == self.dealer:
                Z = (MB - R) & self.mask
            else:
                y = (MB + R) & self.mask
        elif me == self.owner:
            assert F is not None
            y = self._own_term((np.asarray(V.share, dtype=_U) + F) & self.mask)
        got = send_to(self.ctx, self.dealer, self.owner, arrays=[] if Z is None else [_pack(Z, self.nbytes)],
                      name="ssxgb-Z", dtypes=[np.uint8], shapes=[(self.K, c, self.nbytes)])
        if me == self.owner:
            assert got is not None and y is not None
            y = (y + _unpack(got.arrays[0], (self.K, c)) + _U(1 << (self.k - 1))) & self.mask
        return y

    @staticmethod
    def matmul_many(hists: Sequence[OwnerHistogram], V: SecretArray) -> list[SecretArray]:
        """``[C_p^T V for each p]``: the masked operands of all owners travel first (one
        round), then every party computes and the dealer's terms arrive; the k-bit results
        are lifted to Z_2^64 by one batched comparison: the two k-bit shares, read as Z_2^64
        shares, sum to ``x + 2^(k-1) + 2^k w`` with ``w = [sum >= 2^k]``."""
        sent = [h._send_masked_operand(V) for h in hists]
        ys = [h._finish(V, *x) for h, x in zip(hists, sent)]
        h0 = hists[0]
        c = V.shape[1]
        rows = sum(h.K for h in hists)
        y: np.ndarray | None = None if any(v is None for v in ys) else np.concatenate(ys, axis=0)  # type: ignore[arg-type]
        s = SecretArray(h0.mpc, y, (rows, c), 0)
        wrap = s >= (1 << h0.k)
        x = s - wrap * (1 << h0.k) - (1 << (h0.k - 1))
        out, r = [], 0
        for h in hists:
            part = x[r:r + h.K]
            out.append(SecretArray(h0.mpc, part.share, (h.K, c), V.fxp))
            r += h.K
        return out


class OwnerBits:
    """Products ``b (.) X`` of 0/1 bits b that one compute party (the owner) holds in plaintext
    with a secret X, in semi2k with two compute parties and the dealer: SS-XGB's split bits
    times the node statistics [m, m g, m h] (the owner of a split computes its bits for all
    rows, so they say nothing about which rows reach the node).

    Protocol (owner p, other party j, dealer D): p and D draw uniform bits ``a``; j and D draw
    uniform ``B``, ``R`` (X's shape). p sends ``e = b xor a`` (one bit per entry) to j; j sends
    ``F = X_j - B`` to p; D sends ``Z = a B - R`` to p. With ``b = e + a - 2 e a``:
    ``b X = e X + (1 - 2e) a X`` and ``a X = a (X_p + F) + a B``, so p holds
    ``e X_p + (1 - 2e)(a (X_p + F) + Z)`` and j holds ``e X_j + (1 - 2e) R``. Exact (no
    truncation: b is 0/1). j sees e (uniform: a is unknown to j); p sees F and Z (uniform);
    D receives nothing. Cost per entry of X: 16 bytes (F, Z) plus 1/8 byte per bit of b,
    against 8 (opening b) + 16 (opening X, both parties) + 8 (dealer) for a product of two
    secrets; one round.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     ob = OwnerBits(mpc)
    ...     X = ctx.party("bob").run(lambda: np.array([[[1.5, -2.0, 3.0]]])).to(mpc)   # (1, 1, 3)
    ...     bits = np.array([[1, 0, 1]]) if ctx.me == "alice" else None
    ...     return ob.times("alice", bits, X).reveal()
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"].tolist()
    [[[1.5, 0.0, 3.0]]]
    """

    def __init__(self, mpc: MpcDevice):
        ctx = mpc.ctx
        self.mpc, self.ctx = mpc, ctx
        self.dealer = str(mpc.proto.dealer)  # type: ignore[attr-defined]
        label = ctx.next_uid("ssxgb-bits-")
        self._prg: dict[str, Prg] = {}  # compute party -> its stream with the dealer (at both)
        for p in mpc.parties:
            if ctx.me in (p, self.dealer):
                self._prg[p] = Prg(ctx.shared_seed(p, self.dealer, label), stream="bits")

    @staticmethod
    def _received_bits(packed: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """At the other party: the owner's masked bits ``e`` as they arrive (uint64 0/1)."""
        return np.unpackbits(packed, count=int(np.prod(shape))).astype(_U).reshape(shape)

    def times(self, owner: str, bits: np.ndarray | None, X: SecretArray, n: int | None = None) -> SecretArray:
        """``bits[:, None, :] * X`` (m, r, n) for X (m, r, n) secret, or (m, r, 1) broadcast over the
        n columns of the owner's bits (m, n) (read at the owner). A broadcast X costs j one word
        per entry instead of n."""
        ctx, me = self.ctx, self.ctx.me
        other = next(p for p in self.mpc.parties if p != owner)
        m, r, nx = X.shape
        n = nx if n is None else int(n)
        a = self._prg[owner].bits((m, 1, n)) if me in (owner, self.dealer) else None
        B = R = None
        if me in (other, self.dealer):
            B = self._prg[other].random((m, r, nx), _U)
            R = self._prg[other].random((m, r, n), _U)
        e = F = Z = None
        if me == owner:
            assert bits is not None and a is not None
            e = (np.asarray(bits, dtype=_U).reshape(m, 1, n) & _U(1)) ^ a
        elif me == other:
            assert B is not None
            F = np.asarray(X.share, dtype=_U) - B
        elif me == self.dealer:
            assert a is not None and B is not None and R is not None
            Z = a * B - R
        nbits = m * n
        got = send_to(ctx, owner, other, arrays=[] if e is None else [np.packbits(e.astype(np.uint8).reshape(-1))],
                      name="ssxgb-e", dtypes=[np.uint8], shapes=[((nbits + 7) // 8,)])
        if me == other and got is not None:
            e = self._received_bits(got.arrays[0], (m, 1, n))
        got = send_to(ctx, other, owner, arrays=[] if F is None else [F], name="ssxgb-Fb", dtypes=[_U],
                      shapes=[(m, r, nx)])
        if me == owner and got is not None:
            F = got.arrays[0]
        got = send_to(ctx, self.dealer, owner, arrays=[] if Z is None else [Z], name="ssxgb-Zb", dtypes=[_U],
                      shapes=[(m, r, n)])
        if me == owner and got is not None:
            Z = got.arrays[0]
        share = None
        if me in (owner, other):
            assert e is not None
            Xi = np.asarray(X.share, dtype=_U)
            sign = _U(1) - _U(2) * e  # 1 - 2e mod 2^64
            if me == owner:
                assert a is not None and F is not None and Z is not None
                share = e * Xi + sign * (a * (Xi + F) + Z)
            else:
                assert R is not None
                share = e * Xi + sign * R
        return SecretArray(self.mpc, share, (m, r, n), X.fxp)
