"""SS-XGB: XGBoost-style gradient-boosted trees trained fully under MPC (semi2k or aby3).

Parties.  Feature holders (each a compute party of the MPC device) hold column blocks of
row-aligned data; the *label holder* (any party of the job) holds ``y`` in {0, 1}.
Every party runs the same program (SPMD)::

    mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
    model = SSXGBClassifier(mpc, n_estimators=3, max_depth=3).fit({"alice": Xa, "bob": Xb}, y)
    proba = model.predict_proba({"alice": Xa_new, "bob": Xb_new})   # revealed to y's owner

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
   cut points never leave p) and a private 0/1 *cumulative* bin matrix ``C_p``
   (n x K_p) with ``C_p[i, (j, b)] = [x_ij < cut_j[b]]``, one column per candidate split
   of each of its features; ``C_p`` is masked once (:class:`PrivateMaskedMatrix`, in
   semi2k p sends ``C_p - A`` once).  The label holder secret-shares ``y``.
2. ``p = sigmoid(margin)``, ``g = p - y``, ``h = p (1 - p)``: secret.
3. Level by level, the rows of each node are a *secret* 0/1 membership vector ``m``
   (the root: all ones).  For all nodes of the level at once, the left statistics of
   every candidate are ``G_L = C_p^T (m * g)``, ``H_L = C_p^T (m * h)`` (a private-matrix
   times secret product: traffic proportional to the number of nodes, not to ``C_p``);
   ``G_R = G - G_L``, ``H_R = H - H_L``.  The split score
   ``G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda)`` (the gain plus a per-node constant) uses
   secure reciprocals with the public bounds ``[lambda, n/4 + lambda]``; with
   ``min_child_weight > 0``, candidates with ``H_L`` or ``H_R`` below it are masked by
   secure comparisons.  A secure argmax (tournament, one-hot) over all
   (party, feature, bin) candidates of each node selects the split, and only the index
   of the winner is opened.
4. The winning split's owner computes, for **all** n rows, the bit ``x_ij < cut_j[b]``
   and secret-shares it; the children's memberships are ``m * bit`` and ``m - m * bit``
   (secret).
5. At depth ``max_depth``: ``G = M g``, ``H = M h`` per leaf, leaf weights
   ``w = -eta G/(H + lambda)`` (secret, kept shared), ``margin += M^T w`` (secret).

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
* **the label holder** (or ``to=``): the margins / probabilities of the rows passed to
  ``predict_proba`` / ``predict`` / ``decision_function``; nothing during training.
* Nothing else is opened; model parts (``save``) hold a party's shares of the leaf
  weights, the public structure and, at an owner, its own thresholds.

Cost (measured, thread simulation on one machine, 2 feature holders x 10 features,
``max_bin=16``, depth 3, 3 trees, n = 10,000 rows): fit 1.1 s (semi2k) / 1.3 s (aby3);
traffic per compute party ~43 MB (semi2k; the dealer sends 24 MB in 10 rounds) / ~48 MB
(aby3), ~1,100-1,200 rounds; prediction of 10,000 rows 0.02 s.  Per tree and level the
bin statistics cost one private-matrix round (traffic ~ n x 2 x nodes), the scores
2 x K x nodes reciprocals and the argmax K x nodes comparisons (K = number of candidates).

Accuracy limits of fixed point (f = 18): leaf weights and scores carry relative errors
of ~1e-5 (the reciprocal's); the split score is computed exactly in range while
``n^2 / lambda < 2^25`` - beyond, G is pre-scaled by a public power of two (losing that
many bits of G's precision).  ``reg_lambda`` must be > 0 (the reciprocal's lower bound).
Split ties (equal fixed-point scores) go to the first candidate (party order, feature,
bin), like a first-index argmax.

Learned state: ``trees_`` (public structure per tree: ``{"party", "feature", "bin"}``
lists in breadth-first order of the ``2^max_depth - 1`` internal nodes), ``leaf_weights_``
(a SecretArray, ``(n_trees, 2^max_depth)``), ``thresholds_`` (this party's own splits:
``{(tree, node): threshold}``), ``label_owner_``, ``feature_parties_``, ``n_features_``,
``n_candidates_``, ``timings_``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ...core.errors import JointMLError
from ...mpc import SecretArray, concatenate, stack
from ...mpc import functions as nonlinear
from ...mpc.masked import PrivateMaskedMatrix
from ...runtime.device import PartyObject
from ..linear import _broadcast_meta, _shape_of, _share_from_json, _share_to_json
from ._binning import QuantileBins

FORMAT = "jointml.ss_xgb/1"


class SSXGBError(JointMLError, ValueError):
    """Bad input or inconsistent state; the message names the party concerned."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class SSXGBClassifier:
    """Binary XGBoost-style classifier trained under MPC; see the module docstring."""

    def __init__(
        self,
        mpc,
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
        if n_estimators < 1:
            raise SSXGBError(f"n_estimators must be >= 1, got {n_estimators}")
        if not 1 <= max_depth <= 6:
            raise SSXGBError(f"max_depth must be in [1, 6], got {max_depth}")
        if not learning_rate > 0:
            raise SSXGBError(f"learning_rate must be > 0, got {learning_rate}")
        if not reg_lambda > 0:
            raise SSXGBError(f"reg_lambda must be > 0 (lower bound of the secure reciprocal), got {reg_lambda}")
        if min_child_weight < 0:
            raise SSXGBError("min_child_weight must be >= 0")
        if not 2 <= max_bin <= 256:
            raise SSXGBError(f"max_bin must be in [2, 256], got {max_bin}")
        if not 0 < base_score < 1:
            raise SSXGBError("base_score must be in (0, 1)")
        if sigmoid not in nonlinear.SIGMOID_MODES:
            raise SSXGBError(f"sigmoid must be one of {nonlinear.SIGMOID_MODES}")
        self.mpc = mpc
        self.n_estimators = int(n_estimators)
        self.max_depth = int(max_depth)
        self.learning_rate = float(learning_rate)
        self.reg_lambda = float(reg_lambda)
        self.min_child_weight = float(min_child_weight)
        self.max_bin = int(max_bin)
        self.base_score = float(base_score)
        self.sigmoid = sigmoid

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("n_estimators", "max_depth", "learning_rate", "reg_lambda",
                                               "min_child_weight", "max_bin", "base_score", "sigmoid")}

    # -- helpers ---------------------------------------------------------------------------
    @property
    def ctx(self):
        return self.mpc.ctx

    def _check_X(self, X, what: str, n_features: dict | None = None) -> tuple[dict, int]:
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
            shape = _shape_of(self.ctx, X[p], f"{what} X", ndim=(2,))
            if n_features is not None and shape[1] != n_features[p]:
                raise SSXGBError(f"{what}: party '{p}' has {shape[1]} features, the model was trained with {n_features[p]}")
            if rows is not None and shape[0] != rows:
                raise SSXGBError(f"{what}: party '{p}' has {shape[0]} rows, others have {rows}")
            rows = shape[0]
        return {p: X[p] for p in sorted(X)}, int(rows)

    def _reveal_all(self, s: SecretArray) -> np.ndarray:
        """Open a (small, integer) secret to every party of the job."""
        out = None
        for p in self.ctx.parties:
            obj = s.reveal(to=p)
            if p == self.ctx.me:
                out = np.asarray(obj.value)
        return out

    def _share_bits(self, owner: str, fn, n: int) -> SecretArray:
        """The owner evaluates fn() -> (n,) bool locally and secret-shares it (integer 0/1)."""
        obj = self.ctx.party(owner).run(lambda: np.asarray(fn(), dtype=np.int64).reshape(n))
        return obj.to(self.mpc, fxp=False)

    # -- training ----------------------------------------------------------------------------
    def fit(self, X: dict, y: PartyObject) -> SSXGBClassifier:
        ctx, mpc = self.ctx, self.mpc
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        X, n = self._check_X(X, "fit")
        if not isinstance(y, PartyObject):
            raise SSXGBError("fit: y must be a PartyObject (the label holder's labels)")

        def check_y(v):
            v = v.reshape(-1)
            if v.shape[0] != n:
                return f"has {v.shape[0]} rows, X has {n}"
            if not np.isin(v, (0, 1)).all():
                return "must hold 0/1 labels"
            return None

        _shape_of(ctx, y, "fit y", ndim=(1, 2), check=check_y)
        parties = list(X)
        # 1. local binning at each feature holder; the candidate counts are announced
        bins, codes = None, None
        counts: dict[str, list[int]] = {}
        for p in parties:
            info = None
            if ctx.me == p:
                Xp = np.asarray(X[p].value, dtype=np.float64)
                bins = QuantileBins.fit(Xp, self.max_bin)
                codes = bins.transform(Xp)
                info = {"counts": [len(c) for c in bins.cuts]}
            counts[p] = [int(c) for c in _broadcast_meta(ctx, p, f"ssxgb-bins:{p}", info)["counts"]]
        cand = []  # (party, feature, bin) for every candidate, in party/feature/bin order
        for p in parties:
            for j, c in enumerate(counts[p]):
                cand.extend((p, j, b) for b in range(c))
        K = len(cand)
        if K == 0:
            raise SSXGBError("fit: no feature has two distinct values: nothing to split on")
        mats = {}
        for p in parties:
            if sum(counts[p]) == 0:
                continue

            def cum(p=p):
                cols = [codes[:, j:j + 1] <= np.arange(c)[None, :] for j, c in enumerate(counts[p]) if c]
                return np.concatenate(cols, axis=1).astype(np.int64)

            mats[p] = PrivateMaskedMatrix(mpc, ctx.party(p).run(cum), fxp=False)
        ys = ctx.party(y.owner).run(lambda v: np.asarray(v, dtype=np.float64).reshape(-1), y).to(mpc, fxp=True)
        timings["setup"] = time.perf_counter() - t0

        lam, eta, D = self.reg_lambda, self.learning_rate, self.max_depth
        bounds = (0.5 * lam, n / 4.0 + lam + 1.0)
        # keep |G_L * w_L| <= n^2/lambda below 2^25 (fixed-point product range, f = 18)
        shift = max(0, math.ceil(math.log2(max(n * n / lam, 1.0))) - 25)
        margin = ys * 0.0 + float(np.log(self.base_score / (1 - self.base_score)))
        trees, weights = [], []
        my_thr: dict = {}
        for t in range(self.n_estimators):
            tt = time.perf_counter()
            prob = nonlinear.sigmoid(margin, mode=self.sigmoid)
            g = prob - ys
            h = prob - prob * prob
            gh = stack([g, h], axis=0)  # (2, n)
            M = None  # (nodes, n) integer 0/1 memberships; None = the root (all ones)
            tree = {"party": [], "feature": [], "bin": []}
            for depth in range(D):
                nn = 2 ** depth
                if M is None:
                    V = gh.reshape(1, 2, n)
                else:
                    V = M.reshape(nn, 1, n).broadcast_to((nn, 2, n)) * gh.reshape(1, 2, n).broadcast_to((nn, 2, n))
                V = V.reshape(2 * nn, n).transpose()  # (n, 2nn): column 2i = g of node i, 2i+1 = h
                tot = V.sum(axis=0)
                S = concatenate([mats[p].rmatmul_t(V) for p in parties if p in mats], axis=0)  # (K, 2nn)
                GL, HL = S[:, 0::2], S[:, 1::2]
                G, H = tot[0::2].reshape(1, nn), tot[1::2].reshape(1, nn)
                GR, HR = G.broadcast_to((K, nn)) - GL, H.broadcast_to((K, nn)) - HL
                num = concatenate([GL, GR], axis=0)
                den = concatenate([HL, HR], axis=0) + lam
                r = nonlinear.reciprocal(den, positive=True, bounds=bounds)
                w = num * r
                if shift:
                    num = num * (2.0 ** -shift)
                sc = num * w  # (2K, nn)
                score = sc[:K] + sc[K:]
                if self.min_child_weight > 0:
                    ok = (concatenate([HL, HR], axis=0) >= self.min_child_weight)
                    ok = ok[:K] * ok[K:]
                    score = nonlinear.where(ok, score, -1.0)
                onehot = nonlinear.argmax(score.transpose(), axis=1, one_hot=True)  # (nn, K)
                idx = onehot @ np.arange(K, dtype=np.int64)
                chosen = [int(k) for k in self._reveal_all(idx)]
                bits = []
                for i, k in enumerate(chosen):
                    p, j, b = cand[k]
                    tree["party"].append(p)
                    tree["feature"].append(j)
                    tree["bin"].append(b)
                    if ctx.me == p:
                        my_thr[(t, nn - 1 + i)] = bins.threshold(j, b)
                    bits.append(self._share_bits(p, lambda j=j, b=b: codes[:, j] <= b, n))
                Bt = stack(bits, axis=0)  # (nn, n)
                if M is None:
                    ML, MR = Bt, 1 - Bt
                else:
                    ML = M * Bt
                    MR = M - ML
                M = stack([ML, MR], axis=1).reshape(2 * nn, n)
            # leaves
            GH = M @ gh.transpose()  # (L, 2), exact (M is integer)
            r = nonlinear.reciprocal(GH[:, 1] + lam, positive=True, bounds=bounds)
            wleaf = (GH[:, 0] * r) * (-eta)
            margin = margin + M.transpose() @ wleaf
            trees.append(tree)
            weights.append(wleaf)
            timings[f"tree{t}"] = time.perf_counter() - tt
        self.trees_ = trees
        self.leaf_weights_ = stack(weights, axis=0)
        self.thresholds_ = my_thr
        self.label_owner_ = y.owner
        self.feature_parties_ = parties
        self.n_features_ = {p: len(counts[p]) for p in parties}
        self.n_candidates_ = {p: list(counts[p]) for p in parties}
        timings["total"] = time.perf_counter() - t0
        self.timings_ = timings
        return self

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
            for depth in range(self.max_depth):
                nn = 2 ** depth
                bits = []
                for i in range(nn):
                    node = nn - 1 + i
                    p, j = tree["party"][node], tree["feature"][node]
                    bits.append(self._share_bits(p, lambda j=j, node=node, t=t: mine[:, j] < self.thresholds_[(t, node)], n))
                Bt = stack(bits, axis=0)
                if reach is None:
                    L, R = Bt, 1 - Bt
                else:
                    L = reach * Bt
                    R = reach - L
                reach = stack([L, R], axis=1).reshape(2 * nn, n)
            s = reach.transpose() @ self.leaf_weights_[t]
            margin = s if margin is None else margin + s
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

    # -- export / import -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Each party writes its own part: the public structure, its share of the leaf
        weights and its own thresholds (every party of the job calls it)."""
        if not hasattr(self, "trees_"):
            raise SSXGBError("the model is not fitted: call fit() before save()")
        ctx = self.ctx
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"SSXGBClassifier.{ctx.me}.json"
        doc = {
            "format": FORMAT, "party": ctx.me, "protocol": self.mpc.protocol_name,
            "mpc_parties": list(self.mpc.parties), "frac_bits": self.mpc.frac_bits,
            "params": self._params(), "trees": self.trees_, "label_owner": self.label_owner_,
            "feature_parties": self.feature_parties_, "n_features": self.n_features_,
            "n_candidates": self.n_candidates_,
            "thresholds": [[t, node, v] for (t, node), v in sorted(self.thresholds_.items())],
            "leaf_share": _share_to_json(self.leaf_weights_.share),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, mpc, directory: str | Path) -> SSXGBClassifier:
        """Load this party's part; all parties check that the parts belong together."""
        ctx = mpc.ctx
        path = Path(directory) / f"SSXGBClassifier.{ctx.me}.json"
        doc, problem, summary = None, None, None
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != FORMAT or doc.get("party") != ctx.me:
                problem = f"party '{ctx.me}': {path} is not this party's SSXGBClassifier part"
            elif doc["protocol"] != mpc.protocol_name or doc["frac_bits"] != mpc.frac_bits:
                problem = f"party '{ctx.me}': {path} was trained with {doc['protocol']} / {doc['frac_bits']} bits"
        except FileNotFoundError:
            problem = f"party '{ctx.me}': model part not found: {path}"
        except (OSError, ValueError, KeyError) as e:
            problem = f"party '{ctx.me}': cannot read model part {path}: {e}"
        if problem is None:
            summary = {k: doc[k] for k in ("trees", "params", "label_owner", "n_features")}
        verdicts = {p: _broadcast_meta(ctx, p, f"ssxgb-load:{p}", {"problem": problem, "summary": summary})
                    for p in ctx.parties}
        bad = [v["problem"] for v in verdicts.values() if v["problem"]]
        if bad:
            raise SSXGBError(bad[0])
        if any(v["summary"] != summary for v in verdicts.values()):
            raise SSXGBError(f"model parts in {directory} do not belong together")
        self = cls(mpc, **doc["params"])
        self.trees_ = doc["trees"]
        self.label_owner_ = doc["label_owner"]
        self.feature_parties_ = doc["feature_parties"]
        self.n_features_ = {p: int(v) for p, v in doc["n_features"].items()}
        self.n_candidates_ = doc["n_candidates"]
        self.thresholds_ = {(int(t), int(node)): float(v) for t, node, v in doc["thresholds"]}
        shape = (len(self.trees_), 2 ** self.max_depth)
        self.leaf_weights_ = SecretArray(mpc, _share_from_json(doc["leaf_share"], mpc, shape), shape, mpc.frac_bits)
        return self
