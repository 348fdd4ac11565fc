"""Boolean circuits shared by the protocols, written against `Protocol.b_and`.

Comparison reduces to "is the secret r_low greater than the public c_low" on 63-bit
words. Per bit: G = r & ~c (r is greater here), E = ~(r ^ c) (equal here), both
local because c is public. A tree combines (G, E) pairs of adjacent bit blocks:
G = G_hi ^ (E_hi & G_lo), E = E_hi & E_lo. To make each tree level a plain
"high half / low half" split of a word (no bit gathering), words are first
index bit-reversal permuted (bit b moves to position rev6(b)): after it, the pairs of level 1 sit in the high and low 32-bit
halves, and the results land at the positions the next level needs. Each level
halves the word width, so traffic per element shrinks 32+16+8+... bits.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from ...core.backend import backend as bk
from ..shapes import Shape

Array = Any  # an array of the ring backend
Share = Any

def _swap_mask(i: int, j: int) -> int:
    """Bit positions whose index has bit i set and bit j clear."""
    return sum(1 << p for p in range(64) if (p >> i) & 1 and not (p >> j) & 1)


_SWAPS = [((1 << j) - (1 << i), np.uint64(_swap_mask(i, j))) for i, j in ((0, 5), (1, 4), (2, 3))]
_WIDTH_DTYPE = {32: np.uint32, 16: np.uint16, 8: np.uint8, 4: np.uint8, 2: np.uint8, 1: np.uint8}


def index_reverse64(x: Any) -> Array:
    """Move bit b of each uint64 to position rev6(b) (bit-reversal permutation of the index).

    A local, XOR-linear permutation: three delta swaps exchanging index bits (0,5), (1,4), (2,3).

    >>> [int(v).bit_length() - 1 for v in index_reverse64(np.array([1, 2, 4, 2**63], np.uint64))]
    [0, 32, 16, 63]
    """
    x = bk.copy(x, np.uint64)
    for delta, mask in _SWAPS:
        t = (bk.rshift(x, delta) ^ x) & mask
        x ^= t
        x ^= bk.lshift(t, delta)
    return x


def _split(proto: Any, x: Share, w: int) -> tuple[Share, Share]:
    """(high w bits, low w bits) of width-2w words, as the dtype for width w."""
    dt = _WIDTH_DTYPE[w]
    mask = (1 << w) - 1
    hi = proto.map(lambda s: bk.astype(bk.rshift(s, w), dt), x)
    lo = proto.map(lambda s: bk.astype(s & s.dtype.type(mask), dt), x)
    return hi, lo


def greater_tree(proto: Any, G: Share, E: Share, shape: Shape, width: int = 64) -> Share:
    """Combine bit-reversed (G, E) words (boolean shares of `width`-bit words) into the top G bit.

    Returns a boolean share of uint8 words holding 0/1. Rounds: log2(width) (6 from 64-bit
    words, 4 from the 16-bit block words of `block_greater_equal`)."""
    w = width // 2
    while w >= 1:
        G_hi, G_lo = _split(proto, G, w)
        E_hi, E_lo = _split(proto, E, w)
        dt = _WIDTH_DTYPE[w]
        if w > 1:
            t, E = proto.b_and([(E_hi, G_lo), (E_hi, E_lo)], [shape, shape], [dt, dt])
        else:
            (t,) = proto.b_and([(E_hi, G_lo)], [shape], [dt])
        G = proto.b_xor(G_hi, t)
        w //= 2
    return G


def and_tree(proto: Any, X: Share, shape: Shape, width: int = 64) -> Share:
    """AND of all bits of boolean-shared `width`-bit words -> boolean share of uint8 0/1.
    Rounds: log2(width)."""
    w = width // 2
    while w >= 1:
        hi, lo = _split(proto, X, w)
        (X,) = proto.b_and([(hi, lo)], [shape], [_WIDTH_DTYPE[w]])
        w //= 2
    return X


# -- the first two tree levels for free, from dealer-supplied monomials ---------------------
#
# With a dealer, c = x + r is public and r is the dealer's own mask, so any product of
# r's bits can be prepared in advance and shared. A 4-bit block's (G, E) is a polynomial
# in its r bits with public coefficients (functions of c): given XOR shares of the 11
# products r_S (|S| >= 2) of each block's bits, parties evaluate the first two levels of
# the tree locally, with no round and no AND triple. In the index-reversed layout the
# 4 bits of block j (significance t = 0..3) sit at q, q+32, q+16, q+48 with q = rev4(j),
# so each significance is one 16-bit quarter of the word, and the 16 blocks' results land
# exactly where the tree's width-16 level expects them.

_QUARTER_SHIFT = {0: 0, 1: 32, 2: 16, 3: 48}  # significance t -> bit offset (reversed layout)
SUBSETS = [S for k in (2, 3, 4) for S in itertools.combinations(range(4), k)]  # 11


def quarters(x: Array, reversed_layout: bool = True) -> list[Array]:
    """The four 16-bit quarter words of uint64 words, by significance t = 0..3."""
    shifts = _QUARTER_SHIFT if reversed_layout else {t: 16 * t for t in range(4)}
    return [bk.astype(bk.rshift(x, shifts[t]) & np.uint64(0xFFFF), np.uint16) for t in range(4)]


def monomials(r: Array, reversed_layout: bool = True) -> Array:
    """Dealer side: the 11 products r_S (|S| >= 2) of each 4-bit block, stacked (11, *shape) uint16."""
    q = quarters(r, reversed_layout)
    out = []
    for S in SUBSETS:
        m = q[S[0]].copy()
        for t in S[1:]:
            m &= q[t]
        out.append(m)
    return bk.stack(out) if out else bk.zeros((0,) + r.shape, np.uint16)


def _coef(cbar: list[Array], T: Sequence[int]) -> Array:
    """Public product of the complemented c bits over the significances in T (all ones if empty)."""
    m = bk.zeros(cbar[0].shape, np.uint16)
    m ^= np.uint16(0xFFFF)
    for t in T:
        m = m & cbar[t]
    return m


def block_greater_equal(r_quarters: list[Array], mono: Array, c: Array, lead: bool, reversed_layout: bool = True,
                        need_g: bool = True) -> tuple[Array, Array]:
    """XOR shares of the 4-bit blocks' (G, E) as 16-bit words, evaluated locally.

    r_quarters: this party's shares of r's quarters; mono: its shares of the 11 monomials;
    c: the public opened word (already restricted to the compared bits); lead: whether this
    party adds the public constant terms. G = [r_block > c_block], E = [r_block == c_block]."""
    cbar = [~w for w in quarters(c, reversed_layout)]
    share: dict[tuple[int, ...], Array] = {(t,): r_quarters[t] for t in range(4)}
    for S, m in zip(SUBSETS, mono):
        share[S] = m
    # G = G3 ^ E3 G2 ^ E3 E2 G1 ^ E3 E2 E1 G0 with G_t = r_t cbar_t, E_t = r_t ^ cbar_t:
    # the term for G_k is cbar_k r_k prod_{t>k} (r_t ^ cbar_t) = XOR over S in {t>k} of
    # (cbar_k prod_{t>k, t not in S} cbar_t) r_{S + k}.
    G = bk.zeros(r_quarters[0].shape, r_quarters[0].dtype)
    for k in range(4 if need_g else 0):
        higher = [t for t in range(k + 1, 4)]
        for n in range(len(higher) + 1):
            for S in itertools.combinations(higher, n):
                coef = cbar[k] & _coef(cbar, [t for t in higher if t not in S])
                G ^= coef & share[tuple(sorted(S + (k,)))]
    # E = prod_t (r_t ^ cbar_t) = XOR over S of (prod_{t not in S} cbar_t) r_S, constant for S = {}.
    E = bk.zeros(r_quarters[0].shape, r_quarters[0].dtype)
    for n in range(1, 5):
        for S in itertools.combinations(range(4), n):
            E ^= _coef(cbar, [t for t in range(4) if t not in S]) & share[S]
    if lead:
        E ^= _coef(cbar, range(4))
    return G, E
