"""Cuckoo hashing for the OT-based PSI: each id into one of its 3 candidate bins, vectorised.

The bins of an id are three 32-bit words of AES_seed(first 16 bytes of its digest),
reduced mod the number of bins; the seed is drawn fresh per run by the party that
hashes (and sent to the other, which puts each of its ids in all 3 candidate bins).

Insertion is a parallel random-walk cuckoo: every unplaced id proposes to its current
candidate bin; one proposer per bin wins and evicts the occupant; losers and evicted ids
move to their next candidate. Each round is a few numpy passes over the ids still
moving; at 1.27 bins per id (load 0.79) a run settles in a few dozen rounds.

Failure and the stash. With B = 1.27 n + 512 bins and 3 functions a run needs no stash
except with tiny probability (1.27 n bins, 3 functions and no stash are the parameters
of the OT-based PSI literature, e.g. Pinkas, Rosulek, Trieu, Yanai 2019, for a failure
probability below 2^-40 at large n; the 512 extra bins cover small n). Instead of a stash (whose size
would be public, or padded at a cost of n extra OPRF evaluations per stash slot), a
failed insertion is retried under a fresh seed. What the other party sees is only a seed
that worked for this set: the distribution of that seed differs from uniform by at most
the failure probability, so it reveals nothing measurable about the ids.

>>> d = np.zeros((40, 16), np.uint8); d[:, 0] = np.arange(40)   # distinct digests
>>> cand = candidate_bins(d, bytes(16), n_bins(40))
>>> table, which = insert(cand, n_bins(40))
>>> sorted(table[table >= 0].tolist()) == list(range(40))
True
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..core.errors import ParameterError
from ..core.prg import Prg
from ..mpc.ot.prims import aes_ecb

N_HASH = 3
MAX_ROUNDS = 2000

I64 = npt.NDArray[np.int64]


def n_bins(n: int) -> int:
    """Bins for `n` ids: 1.27 n + 512 (0 for an empty set).

    >>> n_bins(0), n_bins(1000), n_bins(1_000_000)
    (0, 1782, 1270512)
    """
    return 0 if n == 0 else math.ceil(1.27 * n) + 512


def candidate_bins(digests16: npt.NDArray[np.uint8], seed: bytes, bins: int) -> I64:
    """(n, 3) candidate bins of each id from its 16-byte digest prefix, under `seed`.

    >>> candidate_bins(np.zeros((2, 16), np.uint8), bytes(16), 10).shape
    (2, 3)
    """
    if bins <= 0:
        raise ParameterError("cuckoo table needs at least one bin", field="bins")
    words = aes_ecb(np.ascontiguousarray(digests16), seed).view(np.uint32)[:, :N_HASH]
    return (words.astype(np.uint64) % np.uint64(bins)).astype(np.int64)


def insert(cand: I64, bins: int) -> tuple[I64, I64]:
    """Place ids (rows of `cand`) into `bins` bins: (table, which) with table[b] = the id in
    bin b or -1, and which[i] = the candidate (0, 1, 2) that placed id i.

    On failure (ids still moving after `MAX_ROUNDS` rounds) the table is empty (size 0);
    the caller retries under a fresh seed.

    >>> table, which = insert(np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2]]), 3)
    >>> sorted(table.tolist()), sorted(which.tolist())
    ([0, 1, 2], [0, 1, 2])
    """
    n = cand.shape[0]
    table = np.full(bins, -1, np.int64)
    which = np.zeros(n, np.int64)  # the candidate each id tries next
    pending = np.arange(n, dtype=np.int64)
    prg = Prg()  # the walk's coin flips (local; they protect nothing, but numpy.random is banned)
    for _ in range(MAX_ROUNDS):
        if pending.size == 0:
            return table, which
        b = cand[pending, which[pending]]
        # one winner per proposed bin (the first proposer in this order)
        ub, first = np.unique(b, return_index=True)
        winners = pending[first]
        evicted = table[ub]
        evicted = evicted[evicted >= 0]
        table[ub] = winners
        lose = np.ones(pending.size, bool)
        lose[first] = False
        moving = np.concatenate([pending[lose], evicted])
        # random walk: a displaced id moves to one of its two other candidates at random
        step = 1 + (prg.random(moving.size, np.uint8) & 1).astype(np.int64)
        which[moving] = (which[moving] + step) % N_HASH
        pending = moving
    return np.empty(0, np.int64), which
