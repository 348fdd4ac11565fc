"""SS-XGB: XGBoost-style gradient-boosted trees trained fully under MPC (semi2k or aby3).

Parties.  Feature holders (each a compute party of the MPC device) hold column blocks of
row-aligned data; the *label holder* (any party of the job) holds ``y`` in {0, 1}.
Every party runs the same program (SPMD); see `SSXGBClassifier` for a runnable example.

Objective: XGBoost's binary:logistic with second-order boosting, L2 leaf penalty
``reg_lambda``, ``learning_rate`` (eta), ``min_child_weight``, depth-wise trees of depth
exactly ``max_depth`` and ``max_bin`` quantile bins per feature (the SecureBoost binning,
:mod:`._binning`).  Differences from the xgboost package, by design: every tree is a
*complete* binary tree of depth ``max_depth`` (whether a node splits would depend on a
secret gain; a forced split has gain >= 0, gain 0 gives both children the same weight,
so it does not reorder the node's rows - the weight differs from the parent-as-leaf
weight only because lambda then counts once per child; a node that no training row
reaches gets an arbitrary split and zero weights); ``gamma`` is not supported (0);
missing values are not supported (NaN is rejected with an error
naming the party); ``base_score`` is a public constant (default 0.5, i.e. margin 0;
xgboost >= 2 estimates it from the labels unless given).

Protocol (per tree; all arithmetic in fixed point, ``mpc.frac_bits``):

1. Set-up, once, at each feature holder p: quantile binning of its columns (locally,
   cut points never leave p) and a private 0/1 *cumulative* bin matrix ``C_p^T``
   (K_p x n) with ``C_p^T[(j, b), i] = [x_ij < cut_j[b]]``, one row per candidate split
   of each of its features, masked once: in semi2k with two compute parties p sends
   ``C_p^T - A`` in a ring of ``k = f + ceil(log2(n+1)) + 2`` bits to the other party
   (:class:`._owner_hist.OwnerHistogram`); otherwise a :class:`PrivateMaskedMatrix`.
   The label holder secret-shares ``y``.
2. ``p = sigmoid(margin)``, ``g = p - y``, ``h = p (1 - p)``: secret (the first tree's p is
   the public ``base_score``: no secure sigmoid there).
3. Level by level, every node carries the secret ``[m g, m h]`` (n each; m: the node's
   0/1 membership, never formed on its own; the root: ``[g, h]``).  The candidates' left
   statistics ``G_L = C_p^T (m g)``, ``H_L = C_p^T (m h)`` are computed for the root and
   for *left* children only, all nodes of a level in one product per holder (traffic
   proportional to n and the number of nodes, not to ``C_p``); a right child's are its
   parent's minus its sibling's.  ``G_R = G - G_L``, ``H_R = H - H_L``.  The split score
   ``G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda)`` (the gain plus a per-node constant) uses
   secure reciprocals with the public bounds ``[lambda, n/4 + lambda]``; with
   ``min_child_weight > 0``, candidates with ``H_L`` or ``H_R`` below it are masked by
   secure comparisons.  One secure argmax (tournament, one-hot) per level over all
   (party, feature, bin) candidates of all its nodes selects the splits, and only the
   indices of the winners are opened.
4. The winning split's owner computes, for **all** n rows, the bit ``x_ij < cut_j[b]``;
   the left child's ``[m g, m h]`` is ``bit * [m g, m h]`` of the parent, the right
   child's the difference.  semi2k with two compute parties: the owner keeps its bits and
   sends them one-time-padded (``bit xor a``, a from its seed with the dealer) to the
   other party (:class:`._owner_hist.OwnerBits`); otherwise it secret-shares them.
5. At depth ``max_depth``: the leaves' ``(G, H)`` are the winning candidates' statistics
   of the last level (the secret one-hot times the candidates' statistics: no product
   over n), leaf weights ``w = -eta G/(H + lambda)`` (secret, kept shared), and
   ``margin += u`` with each row's leaf weight ``u`` computed bottom-up through the split
   bits: ``u = u_R + bit * (u_L - u_R)`` (exact; the deepest level's ``u_L``, ``u_R`` are
   leaf weights, broadcast over the rows).

Prediction: every owner evaluates its own split nodes on the new rows (plaintext
``x < threshold``) and secret-shares those bits; the one-hot leaf indicator of every
row is the product of the bits along each path (secret), the margin is
``sum_t reach_t^T w_t`` (secret) and is revealed to the label holder only (or to
``to=``), who applies the sigmoid.

Security model: that of the MPC device (semi2k: semi-honest, dealer not colluding;
aby3: semi-honest honest majority).  What each party learns, exactly:

* **everybody** (all parties of the job): the public shapes (rows, number of features
  per holder), the number of candidate splits of every feature of every holder (its
  number of distinct values, capped at ``max_bin`` - 1), the hyperparameters, and the
  *tree structure*: for every node of every tree the winning (party, feature index,
  bin index) - never the threshold value nor another party's bin boundaries.
* **the owner of a split**: additionally its threshold (it made it).  It computes its
  split bits for all rows, not only the node's rows, so it learns nothing about which
  rows reach that node; nobody learns which rows reach any node, nor any gradient,
  hessian, gain, label or leaf weight (they stay secret-shared).
* **the other compute party** (semi2k, two compute parties) receives a holder's masked
  bin matrix ``C_p^T - A`` once and an owner's masked split bits ``bit xor a`` per node:
  both uniform (A, a are drawn from the owner's seed with the dealer, never reused), so
  they tell it nothing about the bins or the bits; what the owners receive in the products
  (the other party's shares minus the dealer's masks, the dealer's masked terms) is
  uniform as well, and **the dealer** receives nothing in these steps.
* **the label holder** (or ``to=``): the margins / probabilities of the rows passed to
  ``predict_proba`` / ``predict`` / ``decision_function``; nothing during training.
* Nothing else is opened; model parts (``save``) hold a party's shares of the leaf
  weights, the public structure and, at an owner, its own thresholds.

Cost (``jointml bench trees --model ss_xgb``: bank, partner and dealer as processes over
TLS on one shared 2-core machine, semi2k; 20,000 rows, 10 + 10 features, ``max_bin=32``,
depth 4, 2 trees): 2.4 s and 58 MB per tree (the trees' own phase) plus a one-off set-up
of 1.8 s and 62 MB (binning, the masked bin matrices); the same run before the level
products above: 16 s and 100 MB per tree (set-up included: 149 MB), 99 MB set-up.
Per tree and level, the bin statistics cost one round with ``n x 2 x (left children)``
words of k bits to each holder, the split bits 16 bytes per row and node, the scores
2 x K x nodes reciprocals and the argmax K x nodes comparisons (K = number of
candidates). At 100,000 rows, 20 + 20 features of 32 bins, depth 5, 2 trees (same
bench, shared machine, load ~3): 6.3 s and 273 MB per tree (the first tree, without a
secure sigmoid, ~219 MB; the next ~328 MB: 104 MB sigmoid, 90 MB scores, 41 MB bin
statistics, ~90 MB split bits, leaf values and h; 3 trees: ~291 MB on average), plus
10.9 s and 620 MB once for binning and the masked matrices; peak memory 2.4 GB per
party; AUC 0.6807 (xgboost 0.6752).

Accuracy limits of fixed point (f = 18): leaf weights and scores carry relative errors
of ~1e-5 (the reciprocal's); the split score is computed exactly in range while
``n^2 / lambda < 2^25`` - beyond, G is pre-scaled by a public power of two (losing that
many bits of G's precision).  ``reg_lambda`` must be > 0 (the reciprocal's lower bound).
Split ties (equal fixed-point scores, e.g. a node no training row reaches, constant
features, or every candidate masked by ``min_child_weight``) go to a candidate drawn
uniformly at random and in secret (a secret random tie-break below the fixed-point
resolution is added to the scores, see :func:`.split_kernels.tie_break`): the opened
index does not tell that the node is empty, as "always candidate 0" would.

Learned state: ``trees_`` (public structure per tree: ``{"party", "feature", "bin"}``
lists in breadth-first order of the ``2^max_depth - 1`` internal nodes), ``leaf_weights_``
(a SecretArray, ``(n_trees, 2^max_depth)``), ``thresholds_`` (this party's own splits:
``{(tree, node): threshold}``), ``label_owner_``, ``feature_parties_``, ``n_features_``,
``n_candidates_``, ``timings_`` (seconds: ``setup``, ``tree0``, ...), ``traffic_`` (bytes this
party sent, same keys).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...core.errors import ModelError, ProtocolError
from ...mpc import MpcDevice, SecretArray, concatenate, functions, stack
from ...mpc.masked import PrivateMaskedMatrix
from ...runtime.collectives import broadcast, reveal_to_all
from ...runtime.device import PartyObject
from ...runtime.persist import ModelPart
from ..arrays_json import arrays_from_json, arrays_to_json
from ..base import SecureEstimator, check_param, mpc_part_problem, mpc_part_public
from ..checks import announced_shape
from ._binning import QuantileBins
from ._owner_hist import OwnerBits, OwnerHistogram, supported
from .split_kernels import argmax_onehot, score_shift, split_scores, tie_break

__all__ = ["SSXGBClassifier", "SSXGBError"]


class SSXGBError(ModelError):
    """Bad input or inconsistent state; the message names the party concerned."""


def _column_le(codes: np.ndarray | None, j: int, b: int) -> np.ndarray:
    """At a feature holder: which rows have bin code <= b in column j (its own codes)."""
    assert codes is not None  # evaluated at the owner only
    return np.asarray(codes[:, j] <= b)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class SSXGBClassifier(SecureEstimator):
    """Binary XGBoost-style classifier trained under MPC; see the module docstring.

    >>> from jointml.core.prg import public_rng
    >>> from jointml.mpc import MpcDevice
    >>> g = public_rng(0)
    >>> X = g.normal(size=(100, 2)); y = (X[:, 0] + X[:, 1] > 0).astype(float)
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     xs = {"alice": ctx.party("alice").put(X[:, :1]), "bob": ctx.party("bob").put(X[:, 1:])}
    ...     model = SSXGBClassifier(mpc, n_estimators=2, max_depth=2, max_bin=4).fit(xs, ctx.party("alice").put(y))
    ...     p = model.predict(xs)                     # revealed to the label holder only
    ...     return len(model.trees_), None if ctx.me != "alice" else float(np.mean(p.value == y))
    >>> n_trees, acc = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    >>> n_trees, acc > 0.75
    (2, True)
    """

    error = SSXGBError
    _fitted_attr = "trees_"

    device: MpcDevice

    def __init__(
        self,
        mpc: MpcDevice,
        *,
        n_estimators: int = 3,
        max_depth: int = 3,
        learning_rate: float = 0.3,
        reg_lambda: float = 1.0,
        min_child_weight: float = 0.0,
        max_bin: int = 16,
        base_score: float = 0.5,
        sigmoid: str = "accurate",
    ):
        self.device = mpc
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.reg_lambda = reg_lambda
        self.min_child_weight = min_child_weight
        self.max_bin = max_bin
        self.base_score = base_score
        self.sigmoid = sigmoid
        # stored unchanged; also checked here so that a bad value fails at construction
        # (as it always did), and again in fit (after set_params)
        self._validate_params()

    def _validate_params(self) -> None:
        def need(name: str, ok: Callable[[Any], bool], message: str) -> None:
            check_param(name, getattr(self, name), ok, "", error=SSXGBError, message=message)

        need("n_estimators", lambda v: int(v) == v and v >= 1, f"n_estimators must be >= 1, got {self.n_estimators}")
        need("max_depth", lambda v: int(v) == v and 1 <= v <= 6, f"max_depth must be in [1, 6], got {self.max_depth}")
        need("learning_rate", lambda v: v > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need("reg_lambda", lambda v: v > 0,
             f"reg_lambda must be > 0 (lower bound of the secure reciprocal), got {self.reg_lambda}")
        need("min_child_weight", lambda v: v >= 0, "min_child_weight must be >= 0")
        need("max_bin", lambda v: int(v) == v and 2 <= v <= 256, f"max_bin must be in [2, 256], got {self.max_bin}")
        need("base_score", lambda v: 0 < v < 1, "base_score must be in (0, 1)")
        need("sigmoid", lambda v: v in functions.SIGMOID_MODES, f"sigmoid must be one of {functions.SIGMOID_MODES}")

    @property
    def mpc(self) -> MpcDevice:
        """The MPC device the model computes on (its first argument)."""
        return self.device

    # -- helpers ---------------------------------------------------------------------------
    def _check_X(self, X: Any, what: str, n_features: dict | None = None) -> tuple[dict, int]:
        if not isinstance(X, dict) and hasattr(X, "parts"):  # a VDataFrame
            X = {p: X.to_numpy(p) for p in X.parties}
        if not isinstance(X, dict) or not X:
            raise SSXGBError(f"{what}: X must be a non-empty {{party: PartyObject}} mapping")
        for p, obj in X.items():
            if not isinstance(obj, PartyObject) or obj.owner != p:
                raise SSXGBError(f"{what}: X['{p}'] must be a PartyObject owned by party '{p}'")
            if p not in self.mpc.parties:
                raise SSXGBError(f"{what}: feature holder '{p}' must be a compute party of the MPC device {self.mpc.parties}")
        if n_features is not None and sorted(X) != sorted(n_features):
            raise SSXGBError(f"{what}: expected features of parties {sorted(n_features)}, got {sorted(X)}")
        rows = None
        for p in sorted(X):
            shape = announced_shape(self.ctx, X[p], f"{what} X", ndim=(2,), error=SSXGBError)
            if n_features is not None and shape[1] != n_features[p]:
                raise SSXGBError(f"{what}: party '{p}' has {shape[1]} features, the model was trained with {n_features[p]}")
            if rows is not None and shape[0] != rows:
                raise SSXGBError(f"{what}: party '{p}' has {shape[0]} rows, others have {rows}")
            rows = shape[0]
        return {p: X[p] for p in sorted(X)}, int(rows)  # type: ignore[arg-type]

    def _below_threshold(self, mine: np.ndarray | None, j: int, t: int, node: int) -> np.ndarray:
        """At the owner of node `node` of tree `t`: which rows fall below its threshold on column j."""
        assert mine is not None  # evaluated at the owner only
        return np.asarray(mine[:, j] < self.thresholds_[(t, node)])

    def _share_bits(self, owner: str, fn: Callable[[], np.ndarray], n: int) -> SecretArray:
        """The owner evaluates fn() -> (n,) bool locally and secret-shares it (integer 0/1)."""
        obj = self.ctx.party(owner).run(lambda: np.asarray(fn(), dtype=np.int64).reshape(n))
        return obj.to(self.mpc, fxp=False)

    # -- training ----------------------------------------------------------------------------
    def fit(self, X: dict, y: PartyObject) -> SSXGBClassifier:
        """Train on the feature blocks X ({holder: PartyObject}) and the labels y (a PartyObject, 0/1)."""
        self._validate_params()
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        sent = lambda: int(self.ctx.stats().get("bytes_sent", 0))  # noqa: E731 - this party's traffic
        b0 = sent()
        traffic: dict[str, int] = {}
        X, n = self._check_X(X, "fit")
        if not isinstance(y, PartyObject):
            raise SSXGBError("fit: y must be a PartyObject (the label holder's labels)")

        def check_y(v: np.ndarray) -> str | None:
            v = v.reshape(-1)
            if v.shape[0] != n:
                return f"has {v.shape[0]} rows, X has {n}"
            if not np.isin(v, (0, 1)).all():
                return "must hold 0/1 labels"
            return None

        announced_shape(self.ctx, y, "fit y", ndim=(1, 2), check=check_y, error=SSXGBError)
        parties = list(X)
        bins, codes, counts = self._bin_locally(X, parties)
        cand = [(p, j, b) for p in parties for j, c in enumerate(counts[p]) for b in range(c)]
        if not cand:
            raise SSXGBError("fit: no feature has two distinct values: nothing to split on")
        mats = self._cumulative_matrices(parties, codes, counts, n)
        self._owner_bits = OwnerBits(self.mpc) if supported(self.mpc, n) else None
        ys = self.ctx.party(y.owner).run(lambda v: np.asarray(v, dtype=np.float64).reshape(-1), y).to(self.mpc, fxp=True)
        timings["setup"] = time.perf_counter() - t0
        traffic["setup"] = sent() - b0
        margin = ys * 0.0 + float(np.log(self.base_score / (1 - self.base_score)))
        trees, weights = [], []
        my_thr: dict = {}
        for t in range(int(self.n_estimators)):
            tt, bt = time.perf_counter(), sent()
            tree, wleaf, margin = self._grow_tree(t, margin, ys, mats, cand, bins, codes, n, my_thr)
            trees.append(tree)
            weights.append(wleaf)
            timings[f"tree{t}"] = time.perf_counter() - tt
            traffic[f"tree{t}"] = sent() - bt
        self._owner_bits = None  # fit-time helper only
        self.trees_ = trees
        self.leaf_weights_ = stack(weights, axis=0)
        self.thresholds_ = my_thr
        self.label_owner_ = y.owner
        self.feature_parties_ = parties
        self.n_features_ = {p: len(counts[p]) for p in parties}
        self.n_candidates_ = {p: list(counts[p]) for p in parties}
        timings["total"] = time.perf_counter() - t0
        self.timings_ = timings
        self.traffic_ = traffic
        return self

    def _bin_locally(self, X: dict, parties: list[str]) -> tuple[QuantileBins | None, np.ndarray | None, dict[str, list[int]]]:
        """Quantile binning at each feature holder (cut points stay there); the candidate counts are announced."""
        ctx = self.ctx
        bins, codes = None, None
        counts: dict[str, list[int]] = {}
        for p in parties:
            info = None
            if ctx.me == p:
                Xp = np.asarray(X[p].value, dtype=np.float64)
                bins = QuantileBins.fit(Xp, int(self.max_bin))
                codes = bins.transform(Xp)
                info = {"counts": [len(c) for c in bins.cuts]}
            counts[p] = [int(c) for c in broadcast(ctx, p, meta=info, name=f"ssxgb-bins:{p}").meta["counts"]]
        return bins, codes, counts

    def _cumulative_matrices(self, parties: list[str], codes: np.ndarray | None, counts: dict[str, list[int]],
                             n: int) -> dict:
        """Each holder's private 0/1 cumulative bin matrix, transposed (``C_p^T``, K_p x n), masked once.

        Transposed because every product is ``C_p^T V``: the masked matrix is then read row by
        row (contiguous) by the ring products of all three parties, 3-9x faster than a
        transposed view of ``C_p``."""
        mats: dict = {}
        D = int(self.max_depth)
        # the columns of every bin-statistics product: the root (g, h), then 2 per left child
        schedule = ([2] + [2 ** (d + 1) for d in range(D - 1)]) * int(self.n_estimators)
        if supported(self.mpc, n):  # semi2k, two compute parties: the k-bit ring product (._owner_hist)
            for p in parties:
                if sum(counts[p]):
                    mats[p] = OwnerHistogram(self.mpc, p, codes if self.ctx.me == p else None, counts[p], n,
                                             schedule=schedule)
            return mats
        for p in parties:
            if sum(counts[p]) == 0:
                continue

            def cum_t(p: str = p) -> np.ndarray:
                assert codes is not None
                cols = [np.arange(c)[:, None] >= codes[None, :, j] for j, c in enumerate(counts[p]) if c]
                return np.concatenate(cols, axis=0).astype(np.int64)

            mats[p] = PrivateMaskedMatrix(self.mpc, self.ctx.party(p).run(cum_t), fxp=False)
        return mats

    def _histograms(self, mats: dict, V: SecretArray) -> SecretArray:
        """``[C_p^T V]`` stacked over the holders p: (K, cols) left statistics of every candidate.

        Exact: C_p is an integer matrix, so the product keeps V's scale (no truncation)."""
        hists = [mats[p] for p in mats]
        if hists and isinstance(hists[0], OwnerHistogram):
            return concatenate(OwnerHistogram.matmul_many(hists, V), axis=0)
        return concatenate([m.matmul(V) for m in hists], axis=0)

    def _grow_tree(self, t: int, margin: SecretArray, ys: SecretArray, mats: dict, cand: list, bins: QuantileBins | None,
                   codes: np.ndarray | None, n: int, my_thr: dict) -> tuple[dict, SecretArray, SecretArray]:
        """One complete tree of depth max_depth: its public structure, secret leaf weights, the new margin.

        Level state (nn nodes, breadth-first): ``W`` (nn, 2, n) = secret [m g, m h] per node (m:
        the node's 0/1 membership),
        ``S`` (K, 2 nn) the nodes' candidate statistics (column 2i: G_L of node i, 2i+1: H_L)
        and ``T`` (2 nn,) the nodes' totals (G, H). Only the left children's statistics are
        computed (a right child's are its parent's minus its sibling's)."""
        lam, eta, D = float(self.reg_lambda), float(self.learning_rate), int(self.max_depth)
        bounds = (0.5 * lam, n / 4.0 + lam + 1.0)
        if t == 0:  # every margin is the public base score: so is p (no secure sigmoid)
            b = float(self.base_score)
            g = b - ys
            h = ys * 0.0 + b * (1.0 - b)
        else:
            prob = functions.sigmoid(margin, mode=self.sigmoid)
            g = prob - ys
            h = prob - prob * prob
        gh = stack([g, h], axis=0)  # (2, n)
        W = gh.reshape(1, 2, n)  # [m g, m h] of the root (m = 1)
        levels = []  # per level: X -> split bits (.) X
        S = self._histograms(mats, gh.transpose())  # (K, 2): the root's statistics
        T = gh.sum(axis=1)  # (2,)
        tree: dict[str, list] = {"party": [], "feature": [], "bin": []}
        for depth in range(D):
            nn = 2 ** depth
            chosen, onehot = self._choose_splits(S, T, len(cand), nn, n, lam, bounds)
            levels.append(self._split_bits(t, nn, chosen, cand, bins, codes, n, tree, my_thr))
            if depth == D - 1:
                wleaf = self._leaf_weights(S, T, onehot, nn, lam, eta, bounds)
                return tree, wleaf, margin + self._leaf_values(levels, wleaf, n)
            WL = levels[-1](W)  # one product for m g and m h of every left child (bits x fixed point: exact)
            WR = W - WL
            VL = WL.reshape(2 * nn, n)  # (2nn, n): row 2i = g of the left child of node i, 2i+1 = h
            HL = self._histograms(mats, VL.transpose())  # only the left children: right = parent - left
            HR = S - HL
            TL = VL.sum(axis=1)
            TR = T - TL
            K = S.shape[0]
            S = stack([HL.reshape(K, nn, 2), HR.reshape(K, nn, 2)], axis=2).reshape(K, 4 * nn)
            T = stack([TL.reshape(nn, 2), TR.reshape(nn, 2)], axis=1).reshape(4 * nn)
            W = stack([WL, WR], axis=1).reshape(2 * nn, 2, n)
        raise AssertionError("unreachable: the last level returns")  # pragma: no cover

    def _split_bits(self, t: int, nn: int, chosen: list[int], cand: list, bins: QuantileBins | None,
                    codes: np.ndarray | None, n: int, tree: dict, my_thr: dict) -> Callable[[SecretArray], SecretArray]:
        """Record the level's winners in the public structure; returns ``X -> bits (.) X`` for
        X (nn, r, n) or (nn, r, 1) (broadcast), the bits being each split's ``x < threshold`` for all n rows, computed by
        its owner. semi2k with two compute parties: the owners keep their bits in plaintext
        (:class:`._owner_hist.OwnerBits`); otherwise each owner secret-shares its bits."""
        owned: dict[str, list[int]] = {}
        for i, k in enumerate(chosen):
            p, j, b = cand[k]
            tree["party"].append(p)
            tree["feature"].append(j)
            tree["bin"].append(b)
            owned.setdefault(p, []).append(i)
            if self.ctx.me == p:
                assert bins is not None
                my_thr[(t, nn - 1 + i)] = bins.threshold(j, b)

        def plain(p: str) -> np.ndarray:  # at the owner: its nodes' bits, (nodes, n)
            return np.stack([_column_le(codes, cand[chosen[i]][1], cand[chosen[i]][2]) for i in owned[p]])

        ob = getattr(self, "_owner_bits", None)
        if ob is None:
            Bt = stack([self._share_bits(cand[k][0], functools.partial(_column_le, codes, cand[k][1], cand[k][2]), n)
                        for k in chosen], axis=0)
            return lambda X: Bt.reshape(nn, 1, n) * X  # integer bits x fixed point: exact
        order = [i for p in owned for i in owned[p]]
        inverse = np.argsort(order)

        def times(X: SecretArray) -> SecretArray:
            parts = [ob.times(p, plain(p) if self.ctx.me == p else None, X[np.array(owned[p])], n) for p in owned]
            out = parts[0] if len(parts) == 1 else concatenate(parts, axis=0)
            return out if len(parts) == 1 else out[inverse]

        return times

    def _leaf_weights(self, S: SecretArray, T: SecretArray, onehot: SecretArray, nn: int, lam: float, eta: float,
                      bounds: tuple[float, float]) -> SecretArray:
        """``w = -eta G / (H + lambda)`` of the 2 nn leaves (leaf 2i: left child of node i). The leaves'
        (G, H) are the winning candidates' statistics, already computed: ``onehot . S`` per node
        (K x nn products, not n)."""
        K = S.shape[0]
        GHL = (onehot.reshape(nn, 1, K) * S.reshape(K, nn, 2).transpose(1, 2, 0)).sum(axis=2)  # (nn, 2), exact
        GHR = T.reshape(nn, 2) - GHL
        GH = stack([GHL, GHR], axis=1).reshape(2 * nn, 2)
        r = functions.reciprocal(GH[:, 1] + lam, positive=True, bounds=bounds)
        return (GH[:, 0] * r) * (-eta)

    def _leaf_values(self, levels: list[Callable[[SecretArray], SecretArray]], wleaf: SecretArray,
                     n: int) -> SecretArray:
        """Each row's leaf weight, bottom-up: a node's value is ``u_R + bits (.) (u_L - u_R)``; at the
        deepest level u_L, u_R are leaf weights (broadcast: one word each, not n). No membership
        vector is ever needed, and every step is exact (bits x fixed point)."""
        nn = len(wleaf) // 2
        w = wleaf.reshape(nn, 2, 1)
        u = w[:, 1:] + levels[-1](w[:, :1] - w[:, 1:])  # (nn, 1, n)
        for times in reversed(levels[:-1]):
            nn //= 2
            u = u.reshape(nn, 2, 1, n)
            uL, uR = u[:, 0], u[:, 1]
            u = uR + times(uL - uR)
        return u.reshape(n)

    def _choose_splits(self, S: SecretArray, T: SecretArray, K: int, nn: int, n: int, lam: float,
                       bounds: tuple[float, float]) -> tuple[list[int], SecretArray]:
        """The winning candidate of each of the nn nodes of a level (one batched score, tie-break and
        argmax for the whole level); only the winners' indices are opened, the one-hot stays secret
        (the kernels are :mod:`.split_kernels`, shared with SecureBoost's protected mode)."""
        # |g| <= 1 (logistic): |G_L| <= n
        score = split_scores(S[:, 0::2], S[:, 1::2], T[0::2].reshape(1, nn), T[1::2].reshape(1, nn), lam=lam,
                             bounds=bounds, shift=score_shift(float(n), lam), min_weight=float(self.min_child_weight))
        onehot = argmax_onehot(tie_break(self.mpc, score))  # (nn, K)
        idx = onehot @ np.arange(K, dtype=np.int64)
        return [int(k) for k in np.asarray(reveal_to_all(idx)).reshape(-1)], onehot  # one opening, forwarded to the rest

    # -- prediction ----------------------------------------------------------------------------
    def decision_function_shared(self, X: dict) -> SecretArray:
        """The margins of the rows of X, secret-shared (nothing is revealed)."""
        if not hasattr(self, "trees_"):
            raise SSXGBError("the model is not fitted: call fit() before predicting")
        ctx = self.ctx
        X, n = self._check_X(X, "predict", self.n_features_)
        mine = np.asarray(X[ctx.me].value, dtype=np.float64) if ctx.me in X else None
        margin = None
        for t, tree in enumerate(self.trees_):
            reach = None
            for depth in range(int(self.max_depth)):
                nn = 2 ** depth
                bits = []
                for i in range(nn):
                    node = nn - 1 + i
                    p, j = tree["party"][node], tree["feature"][node]
                    bits.append(self._share_bits(p, functools.partial(self._below_threshold, mine, j, t, node), n))
                Bt = stack(bits, axis=0)
                if reach is None:
                    L, R = Bt, 1 - Bt
                else:
                    L = reach * Bt
                    R = reach - L
                reach = stack([L, R], axis=1).reshape(2 * nn, n)
            assert reach is not None
            s = reach.transpose() @ self.leaf_weights_[t]
            margin = s if margin is None else margin + s
        assert margin is not None
        return margin + float(np.log(self.base_score / (1 - self.base_score)))

    def decision_function(self, X: dict, to: str | None = None) -> PartyObject:
        """Margins, revealed only to `to` (default: the label holder)."""
        return self.decision_function_shared(X).reveal(to=to or self.label_owner_)

    def predict_proba(self, X: dict, to: str | None = None) -> PartyObject:
        """(rows, 2) class probabilities, revealed only to `to` (default: the label holder)."""
        m = self.decision_function(X, to)
        return self.ctx.party(m.owner).run(lambda v: np.stack([1 - _sigmoid(v), _sigmoid(v)], axis=1), m)

    def predict(self, X: dict, to: str | None = None) -> PartyObject:
        """0/1 labels, revealed only to `to` (default: the label holder)."""
        m = self.decision_function(X, to)
        return self.ctx.party(m.owner).run(lambda v: (v > 0).astype(np.int64), m)

    # -- persistence (runtime.persist: one part per party) ---------------------------------------
    def _part_public(self) -> dict[str, Any]:
        mpc = self.device
        return {**mpc_part_public(mpc), "trees": self.trees_, "label_owner": self.label_owner_,
                "feature_parties": list(self.feature_parties_), "n_features": self.n_features_,
                "n_candidates": self.n_candidates_}

    def _part_state(self) -> dict[str, Any]:
        # the party's share of the leaf weights and its own thresholds (nobody else's)
        return {"thresholds": [[t, node, v] for (t, node), v in sorted(self.thresholds_.items())],
                "leaf_share": arrays_to_json(self.leaf_weights_.export_share())}

    def _leaf_shape(self, part: ModelPart) -> tuple[int, int]:
        return (len(part.public["trees"]), 2 ** int(part.params["max_depth"]))

    def _check_part(self, part: ModelPart) -> str | None:
        """A problem with this party's loaded part for the device (announced to every party)."""
        mpc = self.device
        me = mpc.ctx.me
        pub = part.public
        problem = mpc_part_problem(pub, mpc)
        if problem:
            return problem
        try:
            self._import_leaves(part)
        except (SSXGBError, ProtocolError) as e:
            return f"party '{me}': the model part's shares do not fit the device: {e}"
        return None

    def _import_leaves(self, part: ModelPart) -> SecretArray:
        """The saved share of the leaf weights as a secret (the protocol checks its layout)."""
        arrays = arrays_from_json(part.state["leaf_share"], "saved share of the leaf weights", SSXGBError)
        return self.device.import_share(arrays, self._leaf_shape(part))

    def _restore(self, part: ModelPart) -> None:
        pub, state = part.public, part.state
        self.trees_ = pub["trees"]
        self.label_owner_ = pub["label_owner"]
        self.feature_parties_ = list(pub["feature_parties"])
        self.n_features_ = {p: int(v) for p, v in pub["n_features"].items()}
        self.n_candidates_ = pub["n_candidates"]
        self.thresholds_ = {(int(t), int(node)): float(v) for t, node, v in state["thresholds"]}
        self.leaf_weights_ = self._import_leaves(part)
