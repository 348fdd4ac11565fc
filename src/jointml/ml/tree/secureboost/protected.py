"""SecureBoost's protected mode (``protection="mpc"``): bin sums and split finding under
MPC, so that a deviating label holder learns no per-bin sum.

Why.  In the default mode the label holder (the bank) decrypts, per node, the per-bin
sums of its encrypted gradients over each feature holder's bins.  A bank that encrypts
crafted values instead of gradients (row ``i`` gets ``2^i``) reads in each bin sum the
bitmask of the rows in that bin: every feature holder's bin of every row, in one level
(``tests/test_secureboost_protected.py`` runs this attack: 100 % of the bins recovered).
A range proof on the ciphertexts would not close it (a bank may still put ``2^i`` for
k rows inside a k-bit range: k rows identified per bin sum), so this mode never lets the
bank see a bin sum at all.

Protocol (per level; semi2k over the label holder and the feature holders as compute
parties, with a dealer for the correlated randomness):

1. Once per fit, each feature holder p builds its private 0/1 *candidate matrix*
   ``C_p`` (n x K_p): one column per candidate split (feature j, bin b, default
   direction d) with ``C_p[i, (j, b, d)] = [code_ij <= b]`` or, with d = left,
   ``[code_ij <= b or x_ij missing]`` (:func:`candidate_matrix`; the candidates are those
   the default mode tries, :func:`candidates`; the second kind only for columns with
   missing values, which p tells the bank), and masks it once
   (:class:`~jointml.mpc.masked.PrivateMaskedMatrix`: p sends ``C_p - A`` once).  Per
   level p also secret-shares which of its candidates the default mode would try in each
   node (:func:`candidate_valid`: missing values apart only where the node has some).
2. The bank secret-shares ``V`` (n x 2 nn): the (g, h) of the sampled rows of each
   frontier node (zero elsewhere; the node of every row is known to the bank and the
   feature holders, as in the default mode).  Free in semi2k (pairwise PRG shares).
3. ``G_L, H_L = C_p^T V`` (a private-matrix times secret product, one round); the
   scores ``G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda)``, ``min_child_weight`` on both
   sides, are computed with the kernels of :mod:`jointml.ml.tree.split_kernels` (shared
   with SS-XGB); candidates outside the tree's column sample (the bank shares the mask)
   or not valid in the node score -1.  The bank adds two candidates per node that it computes in
   plaintext on its own data: "no split" (score ``G^2/(H+lambda) + max(gamma, eps)``)
   and its own best split (its gain plus the same parent term, or -1).
4. A secret random tie-break and a secure one-hot argmax pick each node's winner.  Opened:
   to the bank, the winner's *owner* (no split / bank / which feature holder); to each
   feature holder p, whether the node splits, whether p owns the split and, if so, p's
   own candidate index (an opaque id that only p maps to (feature, bin, default)); to
   the dealer, whether the node splits (it needs the next level's shape).
5. As in the default mode, the owner of each split applies it and sends the bank the
   left/right side of the node's rows; the bank publishes the new node of every row to
   the feature holders and keeps the leaf weights.

What each party learns (semi2k: semi-honest, no collusion of the dealer with anyone):

* **label holder (bank), semi-honest**: per node, whether it splits and who owns the
  split; for its own splits (feature, bin, default); for a feature holder's split the
  left/right partition of the node's training rows (from which it computes the split's
  gain itself); *not* the feature index, bin, threshold or any bin sum or score of a
  feature holder.  The bin counts of the holders' columns and which of them have missing
  values (the default mode shows both too).  Feature importances at the bank therefore
  cover its own columns only.
* **label holder, deviating**: it can no longer read any bin sum, whatever it inputs
  (crafted gradients such as ``2^i`` only change the scores, which stay secret).  What it
  can do is decide which candidate wins: by crafted inputs, and, since semi2k does not
  detect a party that adds errors to its own shares, exactly (adding a large value to its
  share of one candidate's score; the candidate layout follows from the public bin counts,
  so it can name a holder's feature and bin).  The owner then publishes the partition of
  the node's rows by that cut.  Bound: one cut bit per training row and level
  (a level's nodes are disjoint), i.e. ``max_depth`` bits per row per tree, plus at most
  ``log2(holders + 2)`` bits of owner per node.  Chosen adaptively down a tree this is a
  binary search: with ``max_depth >= log2(bins)``, one holder column's bin of every row
  per tree (tested: ``n x max_depth`` direction bits at most), against every column in
  one level in the default mode.  A range check on g, h under MPC would not lower this
  bound (the bank could flip its verdict the same way) and is not done.  A bank that must
  not learn even this: SS-XGB (:mod:`jointml.ml.tree.ss_xgb`) publishes no partition.
* **feature holder, semi-honest**: per node whether it splits and whether the split is
  its own (with its own (feature, bin, default) and threshold); the node of every
  training row (as in the default mode); with three or more parties it does not learn
  which *other* party owns a split.  It sees no ciphertext and no gradient (shares
  only).  Deviating: it can make the chosen split or the partition wrong (its own data
  and its shares), not learn more: nothing else is opened to it.
* **dealer, semi-honest**: the shapes (rows, candidates per holder, nodes per level) and
  whether each node splits; nothing of the data.  Deviating (bad correlated randomness):
  wrong results, no data (it receives no share); colluding with a compute party, it
  breaks semi2k.

Cost per level (n rows, nn nodes, K candidates, about ``2 x bins`` per feature):
``n x 2 nn`` ring elements from the bank to each feature holder (the masked product),
the score kernels on ``K x nn`` entries (reciprocals, products, ``2 K nn`` comparisons
for ``min_child_weight``, the argmax tournament) and ``holders + 2`` small openings.
``jointml.bench.trees.run(protection="mpc")`` measures it beside the default mode (first
sizing, 5,000 rows, 5+5 features, depth 3, 16 bins, shared 2-core machine: 0.78 s and
3.6 MB per tree, beside 7.9 s and 2.7 MB for the default mode with 2048-bit keys).

Device: semi2k only (a dealer; the compute parties are the label holder and the feature
holders); fixed point with 18 fractional bits.  Accuracy: the scores carry the secure
reciprocal's relative error (~1e-5), so a split whose gain is within that of another's
may differ from the default mode's; the leaf weights are the bank's plaintext ones.

>>> feat, b, dflt = candidates(np.array([3, 2]), np.array([True, False]))   # feature 0 has missing values
>>> list(zip(feat.tolist(), b.tolist(), dflt.tolist()))
[(0, 0, False), (0, 1, False), (0, 2, False), (0, 0, True), (0, 1, True), (1, 0, False)]
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ....mpc import MpcDevice, concatenate, functions
from ....mpc.masked import PrivateMaskedMatrix
from ....runtime.collectives import broadcast
from ..split_kernels import argmax_onehot, score_shift, split_scores, tie_break
from . import histogram as hist
from . import label_holder as lh
from .errors import SecureBoostError

__all__ = ["candidates", "candidate_matrix", "candidate_mask", "candidate_valid", "masked_matrices",
           "choose_splits", "NO_SPLIT", "OTHER", "ProtectedMode"]

NO_SPLIT, OTHER = 0, 1  # codes opened to a feature holder; its own candidate k is opened as 2 + k


def candidates(n_bins: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(feature, bin, default_left) of every candidate split, given each feature's number of
    regular bins and whether it has missing values: ``x in bins <= b`` goes left (b = 0 ..
    n_bins-2); with missing values, these again with missing values left, and b = n_bins-1
    (all values left, missing right): the candidates the default mode tries."""
    feat, b, dflt = [], [], []
    for j, (nb, miss) in enumerate(zip(np.asarray(n_bins, dtype=np.int64), np.asarray(missing, bool))):
        for d, top in ((False, nb if miss else nb - 1), (True, nb - 1 if miss else 0)):
            feat += [j] * int(top)
            b += list(range(int(top)))
            dflt += [d] * int(top)
    return np.array(feat, np.int64), np.array(b, np.int64), np.array(dflt, bool)


def candidate_matrix(codes: np.ndarray, n_bins: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """At a feature holder: (n, K) 0/1 int64, which rows go left at each candidate (its codes,
    missing = ``n_bins`` of the feature).

    >>> candidate_matrix(np.array([[0], [1], [2]]), np.array([2]), np.array([True])).tolist()   # row 2 missing
    [[1, 1, 1], [0, 1, 0], [0, 0, 1]]
    """
    feat, b, dflt = candidates(n_bins, missing)
    c = codes[:, feat].astype(np.int64)
    left = (c <= b[None, :]) | (dflt[None, :] & (c == np.asarray(n_bins)[feat][None, :]))
    return left.astype(np.int64)


def candidate_mask(n_bins: np.ndarray, missing: np.ndarray, colmask: np.ndarray) -> np.ndarray:
    """(K,) 0/1 int64: candidates on the tree's sampled columns.

    >>> candidate_mask(np.array([2, 3]), np.array([False, False]), np.array([False, True])).tolist()
    [0, 1, 1]
    """
    feat, _, _ = candidates(n_bins, missing)
    return np.asarray(colmask, bool)[feat].astype(np.int64)


def candidate_valid(codes: np.ndarray, n_bins: np.ndarray, missing: np.ndarray, rows: np.ndarray, pos: np.ndarray,
                    frontier: list[int]) -> np.ndarray:
    """At a feature holder: (K, nn) 0/1 int64, the candidates the default mode tries in each
    node: those that treat missing values apart only where the node's sampled rows have
    some (elsewhere they duplicate another candidate: a tie that fixed-point noise would
    break at random).

    >>> codes = np.array([[0], [2], [1]])          # 2 regular bins, code 2 = missing
    >>> candidate_valid(codes, np.array([2]), np.array([True]), np.arange(3), np.array([1, 1, 2]), [1, 2]).tolist()
    [[1, 1], [1, 0], [1, 0]]
    """
    feat, b, dflt = candidates(n_bins, missing)
    nb = np.asarray(n_bins)[feat]
    plain = ~dflt & (b < nb - 1)  # candidates that need no missing value
    out = np.empty((len(feat), len(frontier)), dtype=np.int64)
    for i, node in enumerate(frontier):
        at = rows[pos[rows] == node]
        has = (codes[at] == np.asarray(n_bins)[None, :]).any(axis=0)
        out[:, i] = plain | has[feat]
    return out


def masked_matrices(mpc: MpcDevice, holders: list[str], codes: np.ndarray | None, n_bins: np.ndarray | None,
                    missing: np.ndarray | None) -> dict[str, PrivateMaskedMatrix]:
    """Each holder's candidate matrix, masked once (SPMD over the device's members: `codes`,
    `n_bins` and `missing` are read at the holder).  A holder without candidates (constant
    columns) has no matrix."""
    ctx = mpc.ctx
    out = {}
    for p in holders:
        k = len(candidates(n_bins, missing)[0]) if ctx.me == p and n_bins is not None and missing is not None else None
        got = broadcast(ctx, p, meta={"k": k} if ctx.me == p else None, to=list(mpc.members), name="sb:k").meta.get("k")
        if type(got) is not int or got < 0:
            raise SecureBoostError(f"party '{ctx.me}': invalid candidate count from '{p}'")
        if got:
            obj = ctx.party(p).run(lambda: candidate_matrix(codes, n_bins, missing))  # type: ignore[arg-type]
            out[p] = PrivateMaskedMatrix(mpc, obj, fxp=False)
    return out


def choose_splits(mpc: MpcDevice, label: str, holders: list[str], mats: dict[str, PrivateMaskedMatrix], *,
                  V: np.ndarray | None, extra: np.ndarray | None, avail: np.ndarray | None, valid: np.ndarray | None,
                  nn: int, lam: float, bounds: tuple[float, float], shift: int, min_weight: float) -> np.ndarray | None:
    """One level's winners (SPMD over the device's members).

    `V` (n, 2 nn), `extra` (2, nn) and `avail` (K, 1) are read at the label holder only,
    `valid` (K_p, nn, :func:`candidate_valid`) at each holder p.
    Returns, per node: at the label holder the owner code (0 no split, 1 itself, 2 + i the
    i-th of `holders`); at holder p the code ``NO_SPLIT``, ``OTHER`` or ``2 + k`` for its
    own candidate k; at the dealer 0/1 (split or not)."""
    ctx, me = mpc.ctx, mpc.ctx.me
    sizes = {p: mats[p].shape[1] if p in mats else 0 for p in holders}
    K = sum(sizes.values())
    ex = ctx.party(label).put(extra).to(mpc, fxp=True)
    if K:
        Vs = ctx.party(label).put(V).to(mpc, fxp=True)
        S = concatenate([mats[p].rmatmul_t(Vs) for p in holders if p in mats], axis=0)  # (K, 2nn), exact (C is 0/1)
        tot = Vs.sum(axis=0)
        score = split_scores(S[:, 0::2], S[:, 1::2], tot[0::2].reshape(1, nn), tot[1::2].reshape(1, nn), lam=lam,
                             bounds=bounds, shift=shift, min_weight=min_weight)
        av = ctx.party(label).put(avail).to(mpc, fxp=False)
        ok = concatenate([ctx.party(p).put(valid).to(mpc, fxp=False) for p in holders if p in mats], axis=0)
        ex = concatenate([ex, functions.where(av.broadcast_to((K, nn)) * ok, score, -1.0)], axis=0)
    onehot = argmax_onehot(tie_break(mpc, ex))  # (nn, K + 2)
    owner = np.concatenate([[0, 1], *[np.full(sizes[p], 2 + i) for i, p in enumerate(holders)]]).astype(np.int64)
    out: Any = None
    got = (onehot @ owner).reveal(to=label)
    if me == label:
        out = np.asarray(got.value, dtype=np.int64)
    off = 2
    for p in holders:
        code = np.full(K + 2, OTHER, dtype=np.int64)
        code[0] = NO_SPLIT
        code[off: off + sizes[p]] = 2 + np.arange(sizes[p])
        got = (onehot @ code).reveal(to=p)
        if me == p:
            out = np.asarray(got.value, dtype=np.int64)
        off += sizes[p]
    for d in [m for m in mpc.members if m not in mpc.parties]:  # the dealer: the next level's shape
        got = (onehot @ (owner > 0).astype(np.int64)).reveal(to=d)
        if me == d:
            out = np.asarray(got.value, dtype=np.int64)
    return out


class ProtectedMode:
    """The SecureBoost estimators' steps in ``protection="mpc"`` (SPMD; a mixin of
    :class:`~jointml.ml.tree.secureboost.estimator._SecureBoostBase`, whose attributes it
    reads).  ``_grad_max`` (a public bound on |g|, or None: the label holder announces a
    power of two above the sum of |g| per tree) and ``_hess_max`` (per row) come from the
    objective."""

    _grad_max: float | None = None
    _hess_max: float = 1.0
    ctx: Any
    protection: str
    dealer: str | None
    reg_lambda: float
    min_child_weight: float
    gamma: float
    n_estimators: int
    max_depth: int
    label_owner_: str
    parties_: list[str]
    feature_parties_: list[str]
    n_features_: dict[str, int]
    split_gains_: dict[tuple[str, int], float]
    _seen_at_label: Any

    def _check_dealer(self, parties: list[str]) -> None:
        """protection="mpc": the dealer is a party of the job that holds no data, and every
        party of the job is the label holder, a feature holder or the dealer."""
        if self.protection != "mpc":
            return
        if getattr(self, "device", None) is not self.ctx:
            raise SecureBoostError("protection='mpc' takes the party context as the first argument (no Paillier key is used)")
        ctx: Any = self.ctx
        d = self.dealer
        if d not in ctx.parties:
            raise SecureBoostError(f"protection='mpc': the dealer '{d}' is not a party of the cluster {ctx.parties}")
        if d in parties:
            raise SecureBoostError(f"protection='mpc': the dealer '{d}' must hold neither features nor labels")
        other = [p for p in ctx.parties if p not in parties and p != d]
        if other:
            raise SecureBoostError(f"protection='mpc': party '{other[0]}' is neither the label holder, a feature "
                                   f"holder nor the dealer '{d}' (every party of the job takes part)")

    def _score_params(self, n: int, shift: int, frac_bits: int) -> dict[str, Any]:
        lam = float(self.reg_lambda)
        mcw = float(self.min_child_weight)
        # a side with (fixed-point) zero hessian is not a split, as in the default mode's exact arithmetic
        return {"lam": lam, "bounds": (0.5 * lam, n * self._hess_max + lam + 1.0), "shift": shift,
                "min_weight": max(mcw, 2.0 ** -(frac_bits - 4))}

    def _stop_parties(self) -> list[str]:
        parties = list(self.parties_)
        label = self.label_owner_
        if self.protection == "mpc" and any(p != label for p in self.feature_parties_):
            return [*parties, str(self.dealer)]
        return parties

    def _protected_setup(self, st: dict) -> None:
        """The MPC device (label holder + feature holders, the dealer) and the holders' masked
        candidate matrices; each holder tells the label holder which of its columns have
        missing values (the default mode shows it in the missing bin's sums)."""
        from ....mpc import MpcDevice
        from ....runtime.collectives import send_to

        ctx, me, label, holders = self.ctx, self.ctx.me, self.label_owner_, st["holders"]
        miss = None
        if me in holders:
            miss = st["codes"].max(axis=0, initial=0) == st["bins"].n_bins  # the missing code is n_bins
            st["cands"], st["missing_mine"] = candidates(st["bins"].n_bins, miss), miss
        st["missing"] = {}
        for p in holders:
            got = send_to(ctx, p, label, arrays=[miss.astype(np.uint8)] if me == p and miss is not None else [],
                          name="sb:miss", dtypes=[np.uint8], shapes=[(self.n_features_[p],)])
            if me == label:
                assert got is not None  # the receiver
                st["missing"][p] = got.arrays[0].astype(bool)
        mpc = MpcDevice(ctx, [label, *holders], dealer=self.dealer)
        st["mpc"] = mpc
        st["mats"] = masked_matrices(mpc, holders, st["codes"] if me in holders else None,
                                     st["bins"].n_bins if me in holders else None, miss)

    def _tree_header(self, st: dict, lv: dict) -> int:
        """The public right shift of the split scores for this tree (label holder -> MPC parties)."""
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        s = None
        if me == label:
            gs = lv["g"][lv["rows"]]
            bound = (len(gs) * self._grad_max if self._grad_max is not None
                     else 2.0 ** math.ceil(math.log2(max(float(np.abs(gs).sum()), 1.0))))
            if bound / float(self.reg_lambda) > 2.0 ** 26:  # G/(H + lambda) must stay in the exact product range (f = 18)
                raise SecureBoostError(f"party '{me}': the sum of |g| ({bound:.3g}) over reg_lambda is too large for "
                                       "protection='mpc' (at most 2^26): scale the target or raise reg_lambda")
            s = score_shift(bound, float(self.reg_lambda))
        got = broadcast(ctx, label, meta={"shift": s} if me == label else None,
                        to=[label, *st["holders"], str(self.dealer)], name="sb:tree").meta.get("shift")
        if type(got) is not int or not 0 <= got < 40:
            raise SecureBoostError(f"party '{me}': invalid score shift from '{label}'")
        return got

    def _protected_inputs(self, st: dict, lv: dict, n_nodes: int) -> tuple:
        """At the label holder: V (n, 2 nn), the extra candidates (no split; its own best) and the
        column-sample mask of the holders' candidates; its own best split per node."""
        me, frontier, rows, pos = self.ctx.me, lv["frontier"], lv["rows"], lv["pos"]
        g, h, n, nn = lv["g"], lv["h"], st["n"], len(lv["frontier"])
        lam = float(self.reg_lambda)
        slot = np.full(n_nodes, -1, dtype=np.int64)
        slot[frontier] = np.arange(nn)
        sl = slot[pos[rows]]
        r, sl = rows[sl >= 0], sl[sl >= 0]
        V = np.zeros((n, 2 * nn))
        V[r, 2 * sl], V[r, 2 * sl + 1] = g[r], h[r]
        G, H = V[:, 0::2].sum(axis=0), V[:, 1::2].sum(axis=0)
        own: list = [None] * nn
        if st["codes"] is not None and lv["colmask"][me].any():
            sel = np.flatnonzero(lv["colmask"][me])
            hists = hist.own_histograms(st["codes"], sel, st["nb_of"][me][sel], g, h, rows, pos, frontier, n_nodes)
            own = [lh.best_split({me: hists[node]}, G[i], H[i], st["nb_of"], lv["colmask"], reg_lambda=lam,
                                 min_child_weight=float(self.min_child_weight),
                                 gamma=float(self.gamma)) for i, node in enumerate(frontier)]
        parent = G * G / (H + lam)
        scale = 2.0 ** -lv["shift"]
        extra = np.stack([(parent + max(float(self.gamma), lh.EPS)) * scale,
                          np.array([-1.0 if d is None else (d[4] + parent[i]) * scale for i, d in enumerate(own)])])
        masks = [candidate_mask(st["nb_of"][p] - 1, st["missing"][p], lv["colmask"][p]) for p in st["holders"]
                 if p in st["mats"]]
        avail = np.concatenate(masks).reshape(-1, 1) if masks else np.zeros((0, 1), np.int64)
        return V, extra, avail, own

    def _protected_level(self, st: dict, lv: dict, tr: dict, T: dict) -> tuple[list | None, list]:
        """One level in protected mode: (decisions at the label holder, each node's split as seen here)."""
        me, label, holders = self.ctx.me, self.label_owner_, st["holders"]
        nn = len(lv["frontier"])
        V = extra = avail = valid = None
        own: list = []
        if me == label:
            V, extra, avail, own = self._protected_inputs(st, lv, len(tr["left"]))
        elif me in st["mats"]:
            valid = candidate_valid(st["codes"], st["bins"].n_bins, st["missing_mine"], lv["rows"], lv["pos"], lv["frontier"])
        t0 = time.perf_counter()
        codes = choose_splits(st["mpc"], label, holders, st["mats"], V=V, extra=extra, avail=avail, valid=valid, nn=nn,
                              **self._score_params(st["n"], lv["shift"], st["mpc"].frac_bits))
        T["mpc"] = T.get("mpc", 0.0) + time.perf_counter() - t0
        assert codes is not None and codes.shape == (nn,)  # opened to every party of the level
        if me == label:
            if ((codes < 0) | (codes >= 2 + len(holders))).any() or any(c == 1 and d is None for c, d in zip(codes, own)):
                raise SecureBoostError(f"party '{me}': the split owners opened under MPC are inconsistent")
            decisions = [None if c == 0 else own[i] if c == 1 else (holders[c - 2], -1, -1, False, 0.0)
                         for i, c in enumerate(codes)]
            return decisions, self._seen_at_label(decisions)
        cands = st.get("cands", (np.zeros(0, np.int64),) * 3)
        if ((codes < 0) | (codes >= 2 + len(cands[0]))).any():
            raise SecureBoostError(f"party '{me}': invalid split codes opened under MPC")
        feat, b, dflt = cands
        return None, [(bool(c != NO_SPLIT), bool(c >= 2), int(feat[c - 2]) if c >= 2 else -1,
                       int(b[c - 2]) if c >= 2 else -1, bool(dflt[c - 2]) if c >= 2 else False) for c in codes]

    def _holder_split_gains(self, st: dict, lv: dict, tr: dict, prev: list[int], decisions: list | None) -> None:
        """At the label holder: the gain of each feature holder's split, from the published partition."""
        me = self.ctx.me
        if me != self.label_owner_ or decisions is None:
            return
        lam, rows, pos = float(self.reg_lambda), lv["rows"], lv["pos"]
        Gn = np.bincount(pos[rows], weights=lv["g"][rows], minlength=len(tr["left"]))
        Hn = np.bincount(pos[rows], weights=lv["h"][rows], minlength=len(tr["left"]))
        gains = self.split_gains_
        for node, d in zip(prev, decisions):
            if d is None or d[0] == me:
                continue
            a, b = tr["left"][node], tr["right"][node]
            G, H = Gn[a] + Gn[b], Hn[a] + Hn[b]
            gain = float(Gn[a] ** 2 / (Hn[a] + lam) + Gn[b] ** 2 / (Hn[b] + lam) - G * G / (H + lam))
            tr["gain"][node] = gain
            gains[(d[0], -1)] = gains.get((d[0], -1), 0.0) + gain

    def _dealer_fit(self, X: dict, label: str, eval_set: Any) -> Any:
        """The dealer's part of a protected fit: correlated randomness for every level; it learns
        the shapes and which nodes split, nothing else."""
        from ....mpc import MpcDevice

        ctx = self.ctx
        holders = [p for p in ctx.parties if p in X and p != label]
        self.label_owner_ = label
        self.parties_ = [p for p in ctx.parties if p in X or p == label]
        self.feature_parties_ = [p for p in ctx.parties if p in X]
        self.n_features_ = {}  # the dealer never learns the columns
        self.feature_names_: dict[str, list[str]] = {}
        self.trees_: list = []
        self.tree_seconds_: list = []
        self.timings_: dict = {}
        if not holders:
            return self
        mpc = MpcDevice(ctx, [label, *holders], dealer=self.dealer)
        mats = masked_matrices(mpc, holders, None, None, None)
        n = next(iter(mats.values())).shape[0] if mats else 0
        for _ in range(int(self.n_estimators)):
            shift = self._tree_header({"holders": holders}, {})
            nn = 1
            for _ in range(int(self.max_depth)):
                flags = choose_splits(mpc, label, holders, mats, V=None, extra=None, avail=None, valid=None, nn=nn,
                                      **self._score_params(n, shift, mpc.frac_bits))
                nn = 2 * int(np.asarray(flags).sum())
                if not nn:
                    break
            if eval_set is not None and broadcast(ctx, label, to=self._stop_parties(), name="sb:stop").meta["stop"]:
                break
        return self
