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

import numpy as np

def _swap_mask(i: int, j: int) -> int:
    """Bit positions whose index has bit i set and bit j clear."""
    return sum(1 << p for p in range(64) if (p >> i) & 1 and not (p >> j) & 1)


_SWAPS = [(np.uint64((1 << j) - (1 << i)), np.uint64(_swap_mask(i, j))) for i, j in ((0, 5), (1, 4), (2, 3))]
_WIDTH_DTYPE = {32: np.uint32, 16: np.uint16, 8: np.uint8, 4: np.uint8, 2: np.uint8, 1: np.uint8}


def index_reverse64(x: np.ndarray) -> np.ndarray:
    """Move bit b of each uint64 to position rev6(b) (bit-reversal permutation of the index).

    A local, XOR-linear permutation: three delta swaps exchanging index bits (0,5), (1,4), (2,3)."""
    x = np.array(x, dtype=np.uint64, copy=True)
    for delta, mask in _SWAPS:
        t = ((x >> delta) ^ x) & mask
        x ^= t
        x ^= t << delta
    return x


def _split(proto, x, w: int):
    """(high w bits, low w bits) of width-2w words, as the dtype for width w."""
    dt = _WIDTH_DTYPE[w]
    mask = (1 << w) - 1
    hi = proto.map(lambda s: (s >> s.dtype.type(w)).astype(dt), x)
    lo = proto.map(lambda s: (s & s.dtype.type(mask)).astype(dt), x)
    return hi, lo


def greater_tree(proto, G, E, shape: tuple):
    """Combine bit-reversed (G, E) words (boolean shares of uint64) into the top G bit.

    Returns a boolean share of uint8 words holding 0/1. Rounds: 6. Traffic per element
    per party (semi2k, 2 parties): 3*(32+16+8)/8 + 3*3 + 2 bytes."""
    w = 32
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


def and_tree(proto, X, shape: tuple):
    """AND of all 64 bits of boolean-shared uint64 words -> boolean share of uint8 0/1. Rounds: 6."""
    w = 32
    while w >= 1:
        hi, lo = _split(proto, X, w)
        (X,) = proto.b_and([(hi, lo)], [shape], [_WIDTH_DTYPE[w]])
        w //= 2
    return X
