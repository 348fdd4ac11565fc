"""Split finding under MPC, shared by SS-XGB (:mod:`.ss_xgb`) and SecureBoost's protected
mode (:mod:`.secureboost.protected`): XGBoost split scores of secret bin statistics, a
secret random tie-break, and the secure argmax whose one-hot result stays secret.

Every function here computes on secrets of an :class:`~jointml.mpc.MpcDevice` and opens
nothing: what a party learns is what its caller reveals (see those modules).  Security:
that of the device's protocol (semi2k: semi-honest compute parties, a non-colluding
dealer; a compute party that deviates can make results wrong, and what it then learns is
bounded by what the caller opens).

Cost per call, K candidates x nn nodes: 2 K nn reciprocals (Newton iterations, ~20
rounds), 2 K nn products, with ``min_weight > 0`` 2 K nn comparisons, the tie-break (one
input per compute party, no round) and the argmax tournament (K nn comparisons,
``ceil(log2 K)`` levels).

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     GL = ctx.party("alice").put(np.array([[1.0], [-2.0], [3.0]])).to(mpc)  # 3 candidates, 1 node
...     HL = ctx.party("alice").put(np.array([[2.0], [3.0], [5.0]])).to(mpc)
...     G, H = ctx.party("alice").put(np.array([[2.0]])).to(mpc), ctx.party("alice").put(np.array([[6.0]])).to(mpc)
...     s = split_scores(GL, HL, G, H, lam=1.0, bounds=(0.5, 8.0), shift=0, min_weight=0.0)
...     onehot = argmax_onehot(tie_break(mpc, s))              # (nodes, candidates), secret
...     s, onehot = s.reveal(), onehot.reveal()                # opened here for the example only
...     return None if s is None else (np.round(s[:, 0], 3).tolist(), onehot.tolist())
>>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
([0.533, 5.0, 2.0], [[0, 1, 0]])
"""

from __future__ import annotations

import math

import numpy as np

from ...core.prg import Prg
from ...mpc import MpcDevice, SecretArray, concatenate, functions

__all__ = ["TIE_BITS", "score_shift", "split_scores", "tie_break", "argmax_onehot"]

TIE_BITS = 10  # secret tie-break: split scores are shifted left by this many bits (see `tie_break`)


def score_shift(g_bound: float, lam: float) -> int:
    """The public right shift of G that keeps ``G_L^2 / (H_L + lambda)`` (at most
    ``g_bound^2 / lambda``) below 2^25, the exact range of a fixed-point product (f = 18).

    >>> score_shift(1000.0, 1.0), score_shift(100_000.0, 1.0)
    (0, 9)
    """
    return max(0, math.ceil(math.log2(max(g_bound * g_bound / lam, 1.0))) - 25)


def split_scores(GL: SecretArray, HL: SecretArray, G: SecretArray, H: SecretArray, *, lam: float,
                 bounds: tuple[float, float], shift: int, min_weight: float) -> SecretArray:
    """``(G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda)) * 2^-shift`` of every candidate (K, nn).

    `GL`, `HL`: (K, nn) left statistics of K candidates in nn nodes; `G`, `H`: (1, nn) node
    totals; `bounds`: public range of ``H_L + lambda`` for the secure reciprocal.  With
    ``min_weight > 0``, a candidate whose side has hessian sum below it scores -1 (below
    every real score, which is >= 0)."""
    K, nn = GL.shape
    GR, HR = G.broadcast_to((K, nn)) - GL, H.broadcast_to((K, nn)) - HL
    num = concatenate([GL, GR], axis=0)
    den = concatenate([HL, HR], axis=0) + lam
    r = functions.reciprocal(den, positive=True, bounds=bounds)
    w = num * r
    if shift:
        num = num * (2.0 ** -shift)
    sc = num * w  # (2K, nn)
    score = sc[:K] + sc[K:]
    if min_weight > 0:
        ok = concatenate([HL, HR], axis=0) >= min_weight
        score = functions.where(ok[:K] * ok[K:], score, -1.0)
    return score


def tie_break(mpc: MpcDevice, score: SecretArray) -> SecretArray:
    """`score * 2^TIE_BITS + r`, r secret, i.i.d. per entry and in [0, 2^TIE_BITS) ring units.

    Distinct fixed-point scores keep their order (they differ by >= 2^TIE_BITS units
    after the shift, r by less); equal ones (an empty node, constant features, all
    candidates masked by min_child_weight) are ordered by r, so the opened winner is
    uniform among the tied candidates instead of always the first. Each compute party
    contributes a private share of r from its own cryptographic PRG; nobody knows r.
    Cost: one input of the score's shape per compute party (pairwise-PRG shares: no
    traffic); the argmax is unchanged (scores stay below 2^54 ring units, within the exact
    64-bit comparison)."""
    per = (1 << TIE_BITS) // len(mpc.parties)
    scale = 2.0 ** -mpc.frac_bits  # r in ring units: exact in float64 and in the encoding
    shape = score.shape
    out = score * (1 << TIE_BITS)  # a public integer: no truncation, exact
    for p in mpc.parties:
        r = mpc.ctx.party(p).run(lambda: Prg().integers_below(per, shape).astype(np.float64) * scale)
        out = out + r.to(mpc, fxp=True)
    return out


def argmax_onehot(score: SecretArray) -> SecretArray:
    """(nn, K) secret integer one-hot of each node's best candidate (score is (K, nn))."""
    return functions.argmax(score.transpose(), axis=1, one_hot=True)
