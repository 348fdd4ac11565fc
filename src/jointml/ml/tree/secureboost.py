"""SecureBoost: gradient-boosted trees on vertically partitioned data with Paillier HE.

Parties.  The *label holder* (owner of ``y``; it may also hold features) and one or more
*feature holders*.  Rows are aligned beforehand (PSI).  Every party runs the same
program (SPMD): ``SecureBoostClassifier(ctx, ...).fit({party: X_p}, y)``.

Protocol (per tree; Cheng et al., "SecureBoost: A Lossless Federated Learning
Framework", IEEE Intell. Syst. 2021, with XGBoost's objective):

1. The label holder computes gradients ``g`` and hessians ``h`` of the current margin,
   encodes both in fixed point (``hist_frac_bits`` fractional bits), packs the pair of
   each row into one plaintext (two signed slots wide enough for a sum over all rows)
   and encrypts it under its own Paillier key (DJN; the next tree's nonces
   ``h_s^alpha`` are precomputed on a low-priority process pool while the feature
   holders build histograms, so an encryption is one multiplication).  The
   ciphertexts, the random row sample and each holder's random column sample are sent
   to every feature holder.
2. Level by level, each feature holder bins its features locally (quantiles,
   ``max_bin``; a bin for missing values) and sums the encrypted (g, h) pairs of the
   rows of each node per (feature, bin): products of ciphertexts mod ``n^2``, over both
   cores (:mod:`._hist`).  Histogram subtraction: of two sibling nodes only the one
   with fewer sampled rows is summed; the label holder derives the other in plaintext
   as parent minus sibling.  The bin sums are compressed (many (g, h) pairs folded into
   one ciphertext), **re-randomised**, and sent back.
3. The label holder decrypts, evaluates every candidate split of every party
   (XGBoost gain ``GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda)`` against
   ``gamma``, ``min_child_weight`` on both sides, missing values tried on both sides)
   and its own features in plaintext, and picks the best one per node.
4. It tells the owner of each chosen split its (feature, bin, default direction); the
   owner turns the bin into its threshold (kept at the owner only), and returns which
   rows of the node go left.  The label holder sends the new node of every row to all
   feature holders.  Leaf weights ``-eta * G / (H + lambda)`` are computed and kept at
   the label holder.

Prediction: each party evaluates only its own split nodes and sends, per row and
tree, the set of leaves compatible with its splits (a bit mask); the label holder
intersects the masks (exactly one leaf remains) and alone obtains the scores.

Security model: semi-honest parties, no collusion between the label holder and a
feature holder; Paillier (DJN) with 2048-bit keys by default (1024 in tests only).
What each party learns, exactly:

* **label holder**: for every node and every feature of every feature holder, the
  per-bin sums of g and h of the node's sampled rows (with squared error, h = 1, so
  these are per-bin row counts); the chosen split as (party, feature index, bin index)
  -- never the threshold value nor the bin boundaries of another party; for every
  split of another party the partition of the node's training rows (left/right), i.e.
  whether each row's feature value is below that (unknown) threshold; at prediction
  (and on the validation rows, when early stopping),
  for every row and every split node of another party (on the row's path or not), the
  side the row falls on, as the leaf masks are the conjunction of those bits; the
  column names and bin counts (number of distinct values, up to
  ``max_bin``) of the feature holders' columns.
* **feature holder**: the encrypted (g, h) (semantically secure: nothing); the slot
  width and fixed-point scale, which reveal ``ceil(log2(max(|g|, h)))`` of the tree's
  sampled rows, i.e. the magnitude of the largest gradient to within a factor 2
  (for the logistic loss this is always about 1); the random
  row sample of each tree and its own random column sample; the tree structure (which
  nodes split, which children exist) and the node every training row reaches at every
  level (needed to build histograms), therefore also the partitions induced by the
  other parties' splits, but not who made them, on which feature, nor any threshold,
  gain, gradient, label or leaf weight; for its own splits the (feature, bin,
  default direction) and threshold; with early stopping, the stop decision and the
  index of the best tree (hence the number of trees kept).
* Nothing else is revealed: ciphertexts returned by feature holders are re-randomised
  (otherwise the label holder could tell which of its ciphertexts were multiplied
  into a bin); scores of ``predict``/``predict_proba`` are revealed to the label
  holder only.  Model parts: each party saves only what it learned above.

Learned state (sklearn style, trailing underscore): ``trees_`` (each party's view of
every tree), ``label_owner_``, ``feature_parties_``, ``n_features_``; at the label
holder also ``base_score_``, ``importance_splits_`` / ``importance_gain_`` (split counts
and total gain per ``"party:column"`` in ``importance_names_``), ``feature_importances_``
(normalised total gain), ``get_importance("weight" | "gain" | "total_gain")`` and, with
an ``eval_set``, ``history_`` / ``best_iteration_``; ``timings_`` and ``tree_seconds_``
everywhere.

Cost per tree (2048-bit keys, n rows, d features at a holder, depth D): n encryptions at
the label holder (one multiplication each with precomputed nonces; the nonces cost ~38
multiplications mod n^2 each with the 12-bit fixed-base window), at most ~1.5 n d
multiplications mod n^2 for the bin sums at each holder (root: n d / 2 with feature
pairs; deeper levels: the smaller children only), ``2 * slot_bits`` squarings per
(node, feature, bin) for the compression, and one decryption per ~23 bin sums at the
label holder.  Traffic: n ciphertexts (512 B) per holder and tree, plus the compressed
sums and 4 bytes per row and level for the node positions.  ``jointml bench trees``
measures it (100,000 rows, 20 + 20 features, depth 5, 32 bins: ~20 s per tree on two
shared cores).

Randomness: keys, nonces, row and column samples come from :mod:`secrets` /
:mod:`jointml.core.prg`.  Nothing received from a peer is unpickled: messages are
JSON-like headers plus raw arrays whose dtypes and shapes are checked.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from ...core.errors import JointMLError
from ...core.prg import Prg
from ...he import parallel
from ...runtime.device import PartyObject
from ._binning import QuantileBins
from ._hist import compress_pairs, encrypted_histograms

FORMAT = "jointml.secureboost/1"
_EPS = 1e-6


class SecureBoostError(JointMLError, ValueError):
    """Bad input or inconsistent state; the message names the party concerned."""


# ----------------------------------------------------------------------------- helpers


def _context(obj) -> Any:
    ctx = getattr(obj, "ctx", obj)
    if not hasattr(ctx, "comm") or not hasattr(ctx, "me"):
        raise SecureBoostError("expected a PartyContext (or a device with .ctx)")
    return ctx


def _as_matrix(value) -> tuple[np.ndarray, list[str] | None]:
    names = None
    if hasattr(value, "columns") and hasattr(value, "to_numpy"):
        names = [str(c) for c in value.columns]
        value = value.to_numpy()
    arr = np.asarray(value)
    return arr, names


def _broadcast(ctx, sender: str, to: list[str], tag: str, meta: dict | None = None, arrays=()):
    """`sender` sends (meta, arrays) to every party of `to`; returns the message everywhere."""
    if ctx.me == sender:
        for p in to:
            if p != sender:
                ctx.comm.send(p, tag, arrays, meta)
        return meta, list(arrays)
    if ctx.me in to:
        msg = ctx.comm.recv(sender, tag)
        return msg.meta, list(msg.arrays)
    return None, []


def _announce_all(ctx, parties: list[str], tag: str, info: dict | None) -> dict[str, dict]:
    """Every party of `parties` sends `info` to the others; returns {party: info}."""
    out = {}
    for p in parties:
        meta, _ = _broadcast(ctx, p, parties, f"{tag}:{p}", info if ctx.me == p else None)
        out[p] = meta
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _leaf_masks(tree: dict, X: np.ndarray) -> np.ndarray:
    """(rows, n_leaves) bool: leaves compatible with this party's own splits."""
    left, right, mine = tree["left"], tree["right"], tree["mine"]
    n = X.shape[0]
    reach = {0: np.ones(n, dtype=bool)}
    leaves = []
    for node in range(len(left)):  # children always have larger ids than parents
        r = reach.pop(node)
        if left[node] < 0:
            leaves.append(r)
            continue
        if mine[node]:
            x = X[:, tree["feature"][node]]
            go = x < tree["threshold"][node]
            go = np.where(np.isnan(x), bool(tree["default_left"][node]), go)
            reach[left[node]] = r & go
            reach[right[node]] = r & ~go
        else:
            reach[left[node]] = r
            reach[right[node]] = r
    return np.stack(leaves, axis=1) if leaves else np.ones((n, 1), dtype=bool)


def _validate_ciphertexts(pk, wire: np.ndarray, what: str) -> None:
    """Check ciphertexts from a peer: a ``(k, ciphertext_bytes)`` uint8 array with every
    ``0 < c < n^2`` and ``gcd(c, n) = 1``.

    The gcd test is batched: ``gcd(prod c_i mod n, n) = 1`` iff every ``c_i`` is a unit mod
    ``n`` (one mulmod mod n per ciphertext instead of one 4096-bit gcd); on failure the
    offending ciphertext is located one by one.
    """
    from ...he.paillier import _bytes_to_mpz

    width = pk.ciphertext_bytes
    if not isinstance(wire, np.ndarray) or wire.dtype != np.uint8 or wire.ndim != 2 or wire.shape[1] != width:
        raise SecureBoostError(f"{what}: expected a (k, {width}) uint8 array of ciphertexts")
    cts = _bytes_to_mpz(np.ascontiguousarray(wire).tobytes(), width)
    nsq, n = pk.nsq, pk.n
    acc = mpz(1)
    for c in cts:
        if not 0 < c < nsq:
            raise SecureBoostError(f"{what}: ciphertext out of range")
        acc = acc * c % n
    if gmpy2.gcd(acc, n) != 1:
        bad = next(i for i, c in enumerate(cts) if gmpy2.gcd(c, n) != 1)
        raise SecureBoostError(f"{what}: ciphertext {bad} is not invertible")


def _leaf_ids(tree: dict) -> list[int]:
    return [i for i, l in enumerate(tree["left"]) if l < 0]


_NONCE_POOL: dict[str, Any] = {"pid": None, "pool": None, "jobs": 0}
#: nonces per background task
NONCE_CHUNK = 1024


def _nonce_worker_init() -> None:
    try:
        os.nice(10)  # background work: decryption and bin sums keep priority on shared cores
    except OSError:
        pass
    parallel._init_worker()


def _nonce_kernel(params: tuple, count: int) -> bytes:
    from ...he.paillier import _encrypt, _ints_to_bytes

    width = (2 * int(params[0]).bit_length() + 7) // 8
    return _ints_to_bytes(_encrypt(params, "djn", [0] * count), width)


def _nonce_pool(jobs: int):
    """A low-priority process pool of this process for nonces (recreated after a fork)."""
    st = _NONCE_POOL
    if st["pool"] is None or st["pid"] != os.getpid() or st["jobs"] != jobs:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        mp = multiprocessing.get_context(parallel.start_method())
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp, initializer=_nonce_worker_init)
        if st["pool"] is not None and st["pid"] == os.getpid():
            st["pool"].shutdown(wait=False, cancel_futures=True)
        st.update(pid=os.getpid(), pool=pool, jobs=jobs)
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return st["pool"]


def shutdown() -> None:
    """Stop this process's background nonce pool (it restarts on next use)."""
    st = _NONCE_POOL
    if st["pool"] is not None and st["pid"] == os.getpid():
        st["pool"].shutdown(wait=True, cancel_futures=True)
    st.update(pid=None, pool=None, jobs=0)


class _NoncePrefetch:
    """Encryptions of zero (DJN nonces ``h_s^alpha``) computed ahead of use.

    ``start(k)`` queues ``k`` nonces on a low-priority pool and returns at once, so they
    are computed while the feature holders build histograms; ``take(k)`` collects them
    (computing any shortfall on the regular pool).  Each nonce is used once.
    """

    def __init__(self, pk, n_jobs):
        self.pk, self.n_jobs = pk, n_jobs
        self.futures: list = []

    def start(self, count: int) -> None:
        jobs = parallel.resolve_n_jobs(self.n_jobs)
        if jobs <= 1:
            return
        try:
            pool = _nonce_pool(jobs)
            params = self.pk._params()
            self.futures = [pool.submit(_nonce_kernel, params, min(NONCE_CHUNK, count - i))
                            for i in range(0, count, NONCE_CHUNK)]
        except Exception:  # noqa: BLE001 - prefetching is an optimisation only
            self.futures = []

    def take(self, count: int) -> list:
        from ...he.paillier import _bytes_to_mpz

        out: list = []
        width = self.pk.ciphertext_bytes
        for f in self.futures:
            try:
                out.extend(_bytes_to_mpz(f.result(), width))
            except Exception:  # noqa: BLE001 - a broken pool: compute the rest below
                break
        self.futures = []
        if len(out) < count:
            out.extend(self.pk.nonces(count - len(out), n_jobs=self.n_jobs))
        return out[:count]


# ------------------------------------------------------------------------- estimator


class _SecureBoostBase:
    """Shared implementation; use :class:`SecureBoostClassifier` or :class:`SecureBoostRegressor`."""

    objective = ""

    def __init__(
        self,
        ctx,
        *,
        n_estimators: int = 10,
        learning_rate: float = 0.3,
        max_depth: int = 5,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        gamma: float = 0.0,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        max_bin: int = 32,
        early_stopping_rounds: int | None = None,
        key_bits: int = 2048,
        hist_frac_bits: int = 24,
        base_score: float | None = None,
        encrypt_window: int = 12,
        n_jobs: int | None = None,
        verbose: bool = False,
    ):
        if n_estimators < 1:
            raise SecureBoostError(f"n_estimators must be >= 1, got {n_estimators}")
        if not learning_rate > 0:
            raise SecureBoostError(f"learning_rate must be > 0, got {learning_rate}")
        if not 1 <= max_depth <= 16:
            raise SecureBoostError(f"max_depth must be in [1, 16], got {max_depth}")
        if min_child_weight < 0 or reg_lambda < 0 or gamma < 0:
            raise SecureBoostError("min_child_weight, reg_lambda and gamma must be >= 0")
        if not (0 < subsample <= 1 and 0 < colsample_bytree <= 1):
            raise SecureBoostError("subsample and colsample_bytree must be in (0, 1]")
        if not 2 <= max_bin <= 1024:
            raise SecureBoostError(f"max_bin must be in [2, 1024], got {max_bin}")
        if early_stopping_rounds is not None and early_stopping_rounds < 1:
            raise SecureBoostError("early_stopping_rounds must be >= 1 or None")
        if not 8 <= hist_frac_bits <= 40:
            raise SecureBoostError("hist_frac_bits must be in [8, 40]")
        self.ctx = _context(ctx)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.max_depth = int(max_depth)
        self.min_child_weight = float(min_child_weight)
        self.reg_lambda = float(reg_lambda)
        self.gamma = float(gamma)
        self.subsample = float(subsample)
        self.colsample_bytree = float(colsample_bytree)
        self.max_bin = int(max_bin)
        self.early_stopping_rounds = early_stopping_rounds
        self.key_bits = int(key_bits)
        self.hist_frac_bits = int(hist_frac_bits)
        self.base_score = base_score
        if not 1 <= encrypt_window <= 12:
            raise SecureBoostError("encrypt_window must be in [1, 12]")
        self.encrypt_window = int(encrypt_window)
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- hooks -------------------------------------------------------------------------
    def _check_labels(self, y: np.ndarray) -> str | None:
        return None

    def _base(self, y: np.ndarray) -> float:
        raise NotImplementedError

    def _grad_hess(self, y, margin):
        raise NotImplementedError

    def _eval_loss(self, y, margin) -> float:
        raise NotImplementedError

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in (
            "n_estimators", "learning_rate", "max_depth", "min_child_weight", "reg_lambda", "gamma", "subsample",
            "colsample_bytree", "max_bin", "early_stopping_rounds", "key_bits", "hist_frac_bits", "base_score",
            "encrypt_window")}

    # -- input checks --------------------------------------------------------------------
    def _check_X(self, X, what: str, n_features: dict | None = None) -> tuple[dict, np.ndarray | None, dict | None]:
        """Validate {party: PartyObject} (or a VDataFrame) at this party: returns the mapping,
        this party's matrix (float64, or None) and the verdict it announces to the others."""
        ctx = self.ctx
        if not isinstance(X, dict) and hasattr(X, "parts") and hasattr(X, "owner_of"):  # a VDataFrame
            X = dict(X.parts)
        if not isinstance(X, dict) or not X:
            raise SecureBoostError(f"{what}: X must be a non-empty {{party: PartyObject}} mapping")
        for p, obj in X.items():
            if not isinstance(obj, PartyObject) or obj.owner != p:
                raise SecureBoostError(f"{what}: X['{p}'] must be a PartyObject owned by party '{p}'")
            if p not in ctx.parties:
                raise SecureBoostError(f"{what}: unknown party '{p}' (cluster: {ctx.parties})")
        local = None
        info = None
        if ctx.me in X:
            problem, names = None, None
            try:
                arr, names = _as_matrix(X[ctx.me].value)
                if arr.ndim != 2:
                    problem = f"party '{ctx.me}': {what} X must be 2-D, got shape {arr.shape}"
                elif arr.dtype.kind not in "fiub":
                    problem = f"party '{ctx.me}': {what} X is not numeric (dtype {arr.dtype})"
                else:
                    arr = arr.astype(np.float64)
                    if np.isinf(arr).any():
                        problem = f"party '{ctx.me}': {what} X has infinite values"
                    elif n_features is not None and arr.shape[1] != n_features.get(ctx.me):
                        problem = (f"party '{ctx.me}': {what} X has {arr.shape[1]} columns, "
                                   f"the model was trained on {n_features.get(ctx.me)}")
            except Exception as e:  # noqa: BLE001 - reported to every party
                arr, problem = np.zeros((0, 0)), f"party '{ctx.me}': {what} X cannot be read ({type(e).__name__}: {e})"
            local = arr
            info = {"rows": int(arr.shape[0]) if arr.ndim >= 1 else 0,
                    "cols": int(arr.shape[1]) if arr.ndim == 2 else 0,
                    "names": names or [f"x{j}" for j in range(arr.shape[1] if arr.ndim == 2 else 0)],
                    "problem": problem}
        return X, local, info

    # -- fit -------------------------------------------------------------------------------
    def fit(self, X: dict, y: PartyObject | None = None, eval_set: tuple | None = None):
        """Train on aligned rows: ``X`` {party: PartyObject of an ndarray/DataFrame}, ``y`` at the label holder.

        ``eval_set=(X_val, y_val)`` enables early stopping (``early_stopping_rounds``) on
        the validation loss, computed at the label holder with joint prediction.
        """
        ctx = self.ctx
        if y is None:
            raise SecureBoostError("fit needs y: the labels as a PartyObject of the label holder")
        if not isinstance(y, PartyObject):
            raise SecureBoostError("y must be a PartyObject (the labels, at the label holder)")
        label = y.owner
        X, Xloc, xinfo = self._check_X(X, "fit")
        parties = [p for p in ctx.parties if p in X or p == label]
        if ctx.me not in parties:
            return self
        yloc, yinfo = None, None
        if ctx.me == label:
            problem = None
            try:
                yloc = np.asarray(y.value, dtype=np.float64).ravel()
                if np.isnan(yloc).any():
                    bad = int(np.flatnonzero(np.isnan(yloc))[0])
                    problem = f"party '{label}': labels y have {int(np.isnan(yloc).sum())} NaN values (first at row {bad})"
                else:
                    problem = self._check_labels(yloc)
                    problem = None if problem is None else f"party '{label}': labels y {problem}"
            except (TypeError, ValueError) as e:
                yloc, problem = np.zeros(0), f"party '{label}': labels y cannot be read as numbers ({e})"
            yinfo = {"rows": len(yloc), "problem": problem}
        infos = _announce_all(ctx, parties, ctx.next_uid("sb:check"), {"x": xinfo, "y": yinfo})
        for p in parties:
            for key in ("y", "x"):
                v = infos[p].get(key)
                if v and v.get("problem"):
                    raise SecureBoostError(v["problem"])
        n = infos[label]["y"]["rows"]
        for p in parties:
            xi = infos[p].get("x")
            if xi is not None and xi["rows"] != n:
                raise SecureBoostError(
                    f"party '{p}': X has {xi['rows']} rows but the label holder '{label}' has {n} labels "
                    "(rows must be aligned, e.g. with PSI)")
        if n < 2:
            raise SecureBoostError(f"party '{label}': need at least 2 training rows, got {n}")
        val = None
        if eval_set is not None:
            Xv, yv = eval_set
            val = self._prepare_eval(Xv, yv, label, parties, {p: infos[p]["x"]["cols"] for p in parties if infos[p].get("x")})
        self.label_owner_ = label
        self.parties_ = parties
        self.feature_parties_ = [p for p in parties if infos[p].get("x")]
        self.n_features_ = {p: infos[p]["x"]["cols"] for p in self.feature_parties_}
        self.feature_names_ = {p: infos[p]["x"]["names"] for p in self.feature_parties_}
        self._train(Xloc, yloc, n, val)
        return self

    def _prepare_eval(self, Xv, yv, label, parties, n_features):
        ctx = self.ctx
        if not isinstance(yv, PartyObject) or yv.owner != label:
            raise SecureBoostError(f"eval_set: y_val must be a PartyObject of the label holder '{label}'")
        _, Xl, xi = self._check_X(Xv, "eval_set", n_features)
        yi, yl = None, None
        if ctx.me == label:
            yl = np.asarray(yv.value, dtype=np.float64).ravel()
            prob = None
            if np.isnan(yl).any():
                prob = f"party '{label}': eval_set labels have NaN values"
            elif self._check_labels(yl):
                prob = f"party '{label}': eval_set labels {self._check_labels(yl)}"
            yi = {"rows": len(yl), "problem": prob}
        infos = _announce_all(ctx, parties, ctx.next_uid("sb:vcheck"), {"x": xi, "y": yi})
        for p in parties:
            for key in ("y", "x"):
                v = infos[p].get(key)
                if v and v.get("problem"):
                    raise SecureBoostError(v["problem"])
        nv = infos[label]["y"]["rows"]
        for p in parties:
            if p in n_features and (infos[p].get("x") is None or infos[p]["x"]["rows"] != nv):
                got = None if infos[p].get("x") is None else infos[p]["x"]["rows"]
                raise SecureBoostError(f"party '{p}': eval_set X has {got} rows, the label holder has {nv} labels")
        return {"X": Xl, "y": yl, "n": nv}

    # -- training ---------------------------------------------------------------------------------
    def _train(self, Xloc, yloc, n, val):
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        holders = [p for p in self.feature_parties_ if p != label]
        is_label = me == label
        T = {"encrypt": 0.0, "hist": 0.0, "compress": 0.0, "decrypt": 0.0, "split": 0.0, "wait": 0.0,
             "predict": 0.0, "setup": 0.0}
        t0 = time.perf_counter()
        self.trees_: list[dict] = []
        self.tree_seconds_: list[float] = []
        # keys
        pk, sk = None, None
        if holders:
            if is_label:
                from ...he import generate_keypair

                # a wider fixed-base window (80 MB table per process at 2048 bits) makes the
                # label holder's encryptions ~30 % faster; the window is local, not part of the key
                pk, sk = generate_keypair(self.key_bits, window=self.encrypt_window)
            meta, _ = _broadcast(ctx, label, [label] + holders, ctx.next_uid("sb:pk"), {"pk": pk.to_dict()} if is_label else None)
            if me in holders:
                from ...he import PublicKey

                pk = PublicKey.from_dict(meta["pk"])
        prefetch = _NoncePrefetch(pk, self.n_jobs) if (is_label and holders) else None
        if prefetch is not None:  # the first tree's nonces, while the parties finish their setup
            prefetch.start(max(1, round(self.subsample * n)) if self.subsample < 1.0 else n)
        # binning at every feature owner
        codes, bins = None, None
        if Xloc is not None:
            bins = QuantileBins.fit(Xloc, self.max_bin)
            codes = bins.transform(Xloc)
            self._bins = bins
        # bin counts of every party's features are known to the label holder
        nb_of: dict[str, np.ndarray] = {}
        for p in holders:
            meta, _ = _broadcast(ctx, p, [p, label], ctx.next_uid("sb:nbins"),
                                 {"n_bins": bins.n_bins.tolist()} if me == p else None)
            if is_label:
                nb = np.asarray(meta["n_bins"], dtype=np.int64)
                if nb.shape != (self.n_features_[p],) or (nb < 1).any() or (nb > self.max_bin + 1).any():
                    raise SecureBoostError(f"party '{p}' announced invalid bin counts")
                nb_of[p] = nb + 1  # + missing bin
        if is_label and Xloc is not None:
            nb_of[label] = bins.n_bins + 1
        # model id (random, from the label holder)
        meta, _ = _broadcast(ctx, label, self.parties_, ctx.next_uid("sb:id"),
                             {"id": secrets.token_hex(8)} if is_label else None)
        self.model_id_ = meta["id"]
        margin = None
        if is_label:
            self.base_score_ = float(self.base_score) if self.base_score is not None else self._base(yloc)
            margin = np.full(n, self.base_score_)
            self.split_counts_ = {}
            self.split_gains_ = {}
            self.history_ = []
            vmargin = None if val is None else np.full(val["n"], self.base_score_)
        T["setup"] += time.perf_counter() - t0
        best, best_iter, since_best = math.inf, 0, 0
        n_cols_total = sum(self.n_features_.values())
        for t in range(self.n_estimators):
            tt = time.perf_counter()
            tag = ctx.next_uid("sb:tree")
            # 1. sampling and encrypted gradients
            if is_label:
                prg = Prg(stream="secureboost-sample")
                if self.subsample < 1.0:
                    k = max(1, round(self.subsample * n))
                    rows = np.sort(np.argsort(prg.uint64(n), kind="stable")[:k]).astype(np.int64)
                else:
                    rows = np.arange(n, dtype=np.int64)
                kc = max(1, round(self.colsample_bytree * n_cols_total))
                chosen = np.zeros(n_cols_total, dtype=bool)
                chosen[np.argsort(prg.uint64(n_cols_total), kind="stable")[:kc]] = True
                colmask, off = {}, 0
                for p in self.feature_parties_:
                    colmask[p] = chosen[off: off + self.n_features_[p]]
                    off += self.n_features_[p]
                g, h = self._grad_hess(yloc, margin)
                gs, hs = g[rows], h[rows]
                if holders:
                    te = time.perf_counter()
                    F = self.hist_frac_bits
                    gi = np.rint(gs * 2.0 ** F).astype(object)
                    hi = np.rint(hs * 2.0 ** F).astype(object)
                    vmax = max(int(np.abs(gs).max() * 2.0 ** F) + 1, int(hs.max() * 2.0 ** F) + 1, 1)
                    slot_bits = vmax.bit_length() + max(1, len(rows)).bit_length() + 2
                    from ...he.packing import plaintext_bits

                    if 2 * slot_bits > plaintext_bits(pk.n):
                        raise SecureBoostError(
                            f"party '{label}': gradients need {slot_bits}-bit slots, too wide for {self.key_bits}-bit keys "
                            "(lower hist_frac_bits or scale the target)")
                    nk = pk.n
                    # one plaintext per row: g in slot 0, h in slot 1 (balanced signed digits)
                    packed = [(int(a) + (int(b) << slot_bits)) % nk for a, b in zip(gi.tolist(), hi.tolist())]
                    nonces = prefetch.take(len(rows))
                    nsq = pk.nsq
                    cts = [(1 + m * nk) * r % nsq for m, r in zip(map(mpz, packed), nonces)]
                    from ...he.paillier import _ints_to_bytes

                    width = pk.ciphertext_bytes
                    wire = np.frombuffer(_ints_to_bytes(cts, width), dtype=np.uint8).reshape(len(cts), width)
                    T["encrypt"] += time.perf_counter() - te
                    for p in holders:
                        ctx.comm.send(p, tag, [rows, colmask[p].astype(np.uint8), wire],
                                      {"frac_bits": F, "slot_bits": int(slot_bits)})
                    if t + 1 < self.n_estimators:
                        prefetch.start(len(rows))  # next tree's nonces while the holders work
            elif me in holders:
                tw = time.perf_counter()
                msg = ctx.comm.recv(label, tag)
                T["wait"] += time.perf_counter() - tw
                if len(msg.arrays) != 3:
                    raise SecureBoostError(f"party '{me}': malformed gradient message from '{label}'")
                rows, cm, wire = msg.arrays
                slot_bits, F = msg.meta.get("slot_bits"), msg.meta.get("frac_bits")
                from ...he.packing import plaintext_bits

                if type(slot_bits) is not int or type(F) is not int or not (2 <= slot_bits and 2 * slot_bits <= plaintext_bits(pk.n)) \
                        or not 0 <= F < slot_bits:
                    raise SecureBoostError(f"party '{me}': invalid slot layout ({slot_bits} bits, {F} fractional) from '{label}'")
                if rows.dtype != np.int64 or rows.ndim != 1 or not len(rows) or rows.min() < 0 or rows.max() >= n \
                        or (np.diff(rows) <= 0).any():
                    raise SecureBoostError(f"party '{me}': invalid row sample from '{label}'")
                if cm.shape != (self.n_features_[me],):
                    raise SecureBoostError(f"party '{me}': invalid column sample from '{label}'")
                if wire.shape[0] != len(rows):
                    raise SecureBoostError(f"party '{me}': {wire.shape[0]} ciphertexts for {len(rows)} sampled rows")
                colsel = np.flatnonzero(cm)
                _validate_ciphertexts(pk, wire, f"party '{me}': gradients from '{label}'")
            else:  # label holder without holders is handled above; nothing else participates
                rows = None
            tree = self._grow(t, is_label, holders, n, rows, codes, bins, nb_of if is_label else None,
                              g if is_label else None, h if is_label else None,
                              colmask if is_label else None, colsel if me in holders else None,
                              wire if me in holders else None, pk, sk,
                              slot_bits if holders else None, self.hist_frac_bits if holders else None, T)
            self.trees_.append(tree)
            if is_label:
                margin = margin + tree["_train_values"]
                del tree["_train_values"]
            # early stopping on the validation set
            stop = False
            if val is not None:
                tp = time.perf_counter()
                contrib = self._joint_tree_values([tree], val["X"], val["n"])
                T["predict"] += time.perf_counter() - tp
                if is_label:
                    vmargin = vmargin + contrib
                    loss = self._eval_loss(val["y"], vmargin)
                    self.history_.append({"tree": t, "val_loss": loss})
                    if loss < best - 1e-12:
                        best, best_iter, since_best = loss, t, 0
                    else:
                        since_best += 1
                    stop = self.early_stopping_rounds is not None and since_best >= self.early_stopping_rounds
                meta, _ = _broadcast(ctx, label, self.parties_, ctx.next_uid("sb:stop"), {"stop": stop, "best": best_iter} if is_label else None)
                stop, best_iter = bool(meta["stop"]), int(meta["best"])
            self.tree_seconds_.append(round(time.perf_counter() - tt, 4))
            if self.verbose and is_label:
                print(f"[secureboost] tree {t} in {time.perf_counter() - tt:.2f} s", flush=True)
            if stop:
                break
        if val is not None and self.early_stopping_rounds is not None:
            self.trees_ = self.trees_[: best_iter + 1]
            self.best_iteration_ = best_iter
        self.timings_ = {k: round(v, 3) for k, v in T.items()}
        if is_label:
            self._finish_importance()

    def _grow(self, t, is_label, holders, n, rows, codes, bins, nb_of, g, h, colmask, colsel, wire, pk, sk,
              slot_bits, F, T) -> dict:
        """Grow one tree level by level (SPMD; see the module docstring)."""
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        left, right, mine = [-1], [-1], [False]
        feature, threshold, default_left = [-1], [math.nan], [False]
        party, fbin, gains, values = [None], [-1], [0.0], [0.0]
        pos = np.zeros(n, dtype=np.int64)
        frontier = [0]
        parent_hist: dict[int, dict[str, np.ndarray]] = {}  # label holder: node -> party -> (bins, 2)
        par_of: dict[int, int] = {}  # child -> parent, for the nodes of the current frontier
        own_sel = None
        if is_label and codes is not None:
            own_sel = np.flatnonzero(colmask[me])
        for depth in range(self.max_depth):
            counts = np.bincount(pos[rows], minlength=len(left))
            # which frontier nodes the holders sum: the root, or the smaller child of each pair
            if depth == 0:
                compute = [0]
            else:
                compute = []
                for i in range(0, len(frontier), 2):
                    a, b = frontier[i], frontier[i + 1]
                    compute.append(a if counts[a] <= counts[b] else b)
            htag = ctx.next_uid("sb:hist")
            if me in holders:
                th = time.perf_counter()
                slot_of = np.full(len(left), -1, dtype=np.int64)
                slot_of[compute] = np.arange(len(compute))
                srows_slot = slot_of[pos[rows]]
                sel = np.flatnonzero(srows_slot >= 0)
                sub_codes = codes[rows[sel]][:, colsel]
                nbins = bins.n_bins[colsel] + 1
                sums = encrypted_histograms(wire[sel], pk.nsq, sub_codes, srows_slot[sel],
                                            len(compute), nbins, n_jobs=self.n_jobs)
                T["hist"] += time.perf_counter() - th
                tc = time.perf_counter()
                small = compress_pairs(pk, sums, slot_bits, F, n_jobs=self.n_jobs)  # re-randomised inside
                T["compress"] += time.perf_counter() - tc
                ctx.comm.send(label, htag, [small.to_wire()],
                              {"layout": small.layout.to_dict(), "shape": list(small.shape), "n": len(sums)})
            hists: dict[int, dict[str, np.ndarray]] = {node: {} for node in frontier}
            if is_label:
                # own features, plaintext
                if own_sel is not None and len(own_sel):
                    nbo = nb_of[me][own_sel]
                    offs = np.concatenate([[0], np.cumsum(nbo)])
                    tot = int(offs[-1])
                    slot_of = np.full(len(left), -1, dtype=np.int64)
                    slot_of[frontier] = np.arange(len(frontier))
                    sl = slot_of[pos[rows]]
                    live = rows[sl >= 0]  # rows of nodes that stopped splitting are not in the frontier
                    sl = sl[sl >= 0]
                    keys = (sl[:, None] * tot + offs[None, :-1] + codes[live][:, own_sel]).ravel()
                    gw = np.repeat(g[live], len(own_sel))
                    hw = np.repeat(h[live], len(own_sel))
                    hg = np.bincount(keys, weights=gw, minlength=len(frontier) * tot).reshape(len(frontier), tot)
                    hh = np.bincount(keys, weights=hw, minlength=len(frontier) * tot).reshape(len(frontier), tot)
                    for i, node in enumerate(frontier):
                        hists[node][me] = np.stack([hg[i], hh[i]], axis=1)
                for p in holders:
                    tw = time.perf_counter()
                    msg = ctx.comm.recv(p, htag)
                    T["wait"] += time.perf_counter() - tw
                    td = time.perf_counter()
                    from ...he import EncryptedArray, SlotLayout

                    lay = SlotLayout.from_dict(msg.meta["layout"])
                    sel_p = np.flatnonzero(colmask[p])
                    tot = int(nb_of[p][sel_p].sum())
                    want = len(compute) * tot
                    if len(msg.arrays) != 1 or msg.meta.get("n") != want or lay.n_values != want or not lay.signed \
                            or lay.slot_shape[-1:] != (2,) or lay.slot_bits != slot_bits:
                        raise SecureBoostError(f"party '{label}': bin sums from '{p}' do not match the expected layout")
                    enc = EncryptedArray.from_wire(pk, msg.arrays[0], tuple(msg.meta["shape"]), F, lay)
                    vals = sk.decrypt(enc, n_jobs=self.n_jobs).reshape(len(compute), tot, 2)
                    T["decrypt"] += time.perf_counter() - td
                    for i, node in enumerate(compute):
                        hists[node][p] = vals[i]
                    if depth > 0:  # sibling = parent - computed child (plaintext subtraction)
                        for i in range(0, len(frontier), 2):
                            a, b = frontier[i], frontier[i + 1]
                            c, o = (a, b) if a in compute else (b, a)
                            hists[o][p] = parent_hist[par_of[c]][p] - hists[c][p]
                ts = time.perf_counter()
                Gn = np.bincount(pos[rows], weights=g[rows], minlength=len(left))
                Hn = np.bincount(pos[rows], weights=h[rows], minlength=len(left))
                decisions = []
                for node in frontier:
                    decisions.append(self._best_split(node, hists[node], Gn[node], Hn[node], nb_of, colmask))
                T["split"] += time.perf_counter() - ts
                parent_hist = hists
            # 2. split decisions to the owners
            stag = ctx.next_uid("sb:split")
            if is_label:
                for p in holders:
                    flags = np.array([0 if d is None else (2 if d[0] == p else 1) for d in decisions], dtype=np.uint8)
                    feats = np.array([d[1] if d is not None and d[0] == p else -1 for d in decisions], dtype=np.int64)
                    bns = np.array([d[2] if d is not None and d[0] == p else -1 for d in decisions], dtype=np.int64)
                    dl = np.array([d[3] if d is not None and d[0] == p else 0 for d in decisions], dtype=np.uint8)
                    ctx.comm.send(p, stag, [flags, feats, bns, dl])
            elif me in holders:
                k = len(frontier)
                flags, feats, bns, dl = ctx.comm.recv(label, stag, dtypes=[np.uint8, np.int64, np.int64, np.uint8],
                                                      shapes=[(k,), (k,), (k,), (k,)]).arrays
            # 3. owners compute directions; new nodes
            new_frontier, par_of_new = [], {}
            dtag = ctx.next_uid("sb:dirs")
            my_nodes = []
            for i, node in enumerate(frontier):
                if is_label:
                    d = decisions[i]
                    split = d is not None
                    owner_me = split and d[0] == me
                else:
                    split = flags[i] != 0
                    owner_me = flags[i] == 2
                if not split:
                    continue
                l_id, r_id = len(left), len(left) + 1
                left[node], right[node] = l_id, r_id
                for lst, v in ((left, -1), (right, -1), (mine, False), (feature, -1), (threshold, math.nan),
                               (default_left, False), (party, None), (fbin, -1), (gains, 0.0), (values, 0.0)):
                    lst.extend([v, v])
                par_of_new[l_id] = node
                par_of_new[r_id] = node
                new_frontier += [l_id, r_id]
                if is_label:
                    party[node], fbin[node], gains[node] = d[0], d[2], d[4]
                    self.split_counts_[(d[0], d[1])] = self.split_counts_.get((d[0], d[1]), 0) + 1
                    self.split_gains_[(d[0], d[1])] = self.split_gains_.get((d[0], d[1]), 0.0) + d[4]
                if owner_me:
                    f = int(d[1]) if is_label else int(feats[i])
                    b = int(d[2]) if is_label else int(bns[i])
                    dflt = bool(d[3]) if is_label else bool(dl[i])
                    if not (0 <= f < len(bins.cuts)) or not (0 <= b <= len(bins.cuts[f])):
                        raise SecureBoostError(f"party '{me}': invalid split (feature {f}, bin {b}) from '{label}'")
                    mine[node], feature[node], default_left[node] = True, f, dflt
                    threshold[node] = bins.threshold(f, b) if b < len(bins.cuts[f]) else math.inf
                    at = np.flatnonzero(pos == node)
                    my_nodes.append((node, at, f, b, dflt))
            # directions from codes: bin <= b goes left, missing bin by default direction
            go_left = {}
            for node, at, f, b, dflt in my_nodes:
                c = codes[at, f].astype(np.int64)
                miss = c == len(bins.cuts[f]) + 1
                go_left[node] = np.where(miss, dflt, c <= b)
            if me in holders:
                bits = np.concatenate([go_left[nd] for nd, *_ in my_nodes]) if my_nodes else np.zeros(0, bool)
                ctx.comm.send(label, dtag, [np.packbits(bits)], {"n": len(bits)})
            if is_label:
                newpos = pos.copy()
                for node, at, *_ in my_nodes:
                    newpos[at] = np.where(go_left[node], left[node], right[node])
                for p in holders:
                    msg = ctx.comm.recv(p, dtag, dtypes=[np.uint8])
                    nodes_p = [frontier[i] for i, d in enumerate(decisions) if d is not None and d[0] == p]
                    ats = [np.flatnonzero(pos == nd) for nd in nodes_p]
                    total = sum(len(a) for a in ats)
                    if int(msg.meta["n"]) != total:
                        raise SecureBoostError(f"party '{label}': '{p}' sent {msg.meta['n']} directions, expected {total}")
                    bits = np.unpackbits(msg.arrays[0], count=total).astype(bool)
                    o = 0
                    for nd, at in zip(nodes_p, ats):
                        newpos[at] = np.where(bits[o: o + len(at)], left[nd], right[nd])
                        o += len(at)
                pos = newpos
            ptag = ctx.next_uid("sb:pos")
            if holders:
                if is_label:
                    for p in holders:
                        ctx.comm.send(p, ptag, [pos.astype(np.uint32)])
                elif me in holders:
                    (p32,) = ctx.comm.recv(label, ptag, dtypes=[np.uint32], shapes=[(n,)]).arrays
                    if len(p32) and (p32.min() < 0 or p32.max() >= len(left)):
                        raise SecureBoostError(f"party '{me}': invalid node positions from '{label}'")
                    pos = p32.astype(np.int64)
            frontier = new_frontier
            par_of = par_of_new
            if not frontier:
                break
        tree = {"left": left, "right": right, "mine": mine, "feature": feature, "threshold": threshold,
                "default_left": default_left}
        if is_label:
            Gn = np.bincount(pos[rows], weights=g[rows], minlength=len(left))
            Hn = np.bincount(pos[rows], weights=h[rows], minlength=len(left))
            for node in range(len(left)):
                if left[node] < 0:
                    values[node] = float(-self.learning_rate * Gn[node] / (Hn[node] + self.reg_lambda))
            tree.update(party=party, bin=fbin, gain=gains, value=values)
            tree["_train_values"] = np.asarray(values)[pos]
        return tree

    def _best_split(self, node, hists: dict, G: float, H: float, nb_of, colmask):
        """(party, feature, bin, default_left, gain) of the best split of `node`, or None."""
        lam, mcw = self.reg_lambda, self.min_child_weight
        if H < 2 * mcw:
            return None
        parent = G * G / (H + lam)
        best = None
        best_gain = max(self.gamma, _EPS)
        for p, hist in hists.items():
            sel = np.flatnonzero(colmask[p])
            nb = nb_of[p][sel]
            offs = np.concatenate([[0], np.cumsum(nb)])
            for j, f in enumerate(sel):
                hb = hist[offs[j]: offs[j + 1]]
                reg, miss = hb[:-1], hb[-1]
                cg, ch = np.cumsum(reg[:, 0]), np.cumsum(reg[:, 1])
                has_miss = miss[1] > 0 or miss[0] != 0
                last = len(reg) if has_miss else len(reg) - 1
                for dflt, (gl, hl) in ((False, (cg[:last], ch[:last])),
                                       (True, (cg[:len(reg) - 1] + miss[0], ch[:len(reg) - 1] + miss[1]))):
                    if dflt and not has_miss:
                        continue
                    if len(gl) == 0:
                        continue
                    gr, hr = G - gl, H - hl
                    ok = (hl >= mcw) & (hr >= mcw)
                    gain = np.where(ok, gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent, -np.inf)
                    k = int(np.argmax(gain))
                    if gain[k] > best_gain:
                        best_gain = float(gain[k])
                        best = (p, int(f), k, dflt, best_gain)
        return best

    def _finish_importance(self):
        names, counts, gains = [], [], []
        for p in self.feature_parties_:
            for j, nm in enumerate(self.feature_names_[p]):
                names.append(f"{p}:{nm}")
                counts.append(self.split_counts_.get((p, j), 0))
                gains.append(self.split_gains_.get((p, j), 0.0))
        self.importance_names_ = names
        self.importance_splits_ = np.array(counts, dtype=np.int64)
        self.importance_gain_ = np.array(gains, dtype=np.float64)
        tot = self.importance_gain_.sum()
        self.feature_importances_ = self.importance_gain_ / tot if tot > 0 else np.zeros(len(names))

    def get_importance(self, importance_type: str = "gain") -> dict[str, float]:
        """At the label holder: {"party:feature": value}; ``weight`` (split counts), ``gain`` (mean), ``total_gain``."""
        if self.ctx.me != getattr(self, "label_owner_", None):
            raise SecureBoostError(f"party '{self.ctx.me}': feature importances are kept at the label holder")
        if importance_type == "weight":
            vals = self.importance_splits_.astype(float)
        elif importance_type == "total_gain":
            vals = self.importance_gain_
        elif importance_type == "gain":
            vals = self.importance_gain_ / np.maximum(self.importance_splits_, 1)
        else:
            raise SecureBoostError("importance_type must be weight, gain or total_gain")
        return {n: float(v) for n, v, c in zip(self.importance_names_, vals, self.importance_splits_) if c > 0}

    # -- prediction ------------------------------------------------------------------------
    def _joint_tree_values(self, trees: list[dict], Xloc, n_rows: int) -> np.ndarray | None:
        """Sum of the trees' leaf values per row, at the label holder (None elsewhere)."""
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        holders = [p for p in self.feature_parties_ if p != label]
        tag = ctx.next_uid("sb:masks")
        if me in holders:
            arrays = [np.packbits(_leaf_masks(tr, Xloc), axis=1) for tr in trees]
            ctx.comm.send(label, tag, arrays, {"n": n_rows})
            return None
        if me != label:
            return None
        masks = []
        for tr in trees:
            nl = len(_leaf_ids(tr))
            masks.append(_leaf_masks(tr, Xloc) if Xloc is not None else np.ones((n_rows, nl), dtype=bool))
        for p in holders:
            shapes = [(n_rows, (len(_leaf_ids(tr)) + 7) // 8) for tr in trees]
            msg = ctx.comm.recv(p, tag, dtypes=[np.uint8] * len(trees), shapes=shapes)
            for i, (tr, arr) in enumerate(zip(trees, msg.arrays)):
                masks[i] &= np.unpackbits(arr, axis=1, count=len(_leaf_ids(tr))).astype(bool)
        out = np.zeros(n_rows)
        for tr, m in zip(trees, masks):
            if not (m.sum(axis=1) == 1).all():
                raise SecureBoostError(f"party '{label}': leaf masks of the parties are inconsistent (model parts differ?)")
            vals = np.asarray(tr["value"])[_leaf_ids(tr)]
            out += vals[np.argmax(m, axis=1)]
        return out

    def decision_function(self, X: dict, to: str | None = None) -> PartyObject:
        """Raw margins (base score + sum of leaf values), revealed to the label holder only."""
        if to is not None and to != getattr(self, "label_owner_", to):
            raise SecureBoostError(f"SecureBoost reveals scores to the label holder '{self.label_owner_}' only, not to '{to}'")
        if not hasattr(self, "trees_"):
            raise SecureBoostError("the model is not fitted: call fit() (or load()) first")
        ctx = self.ctx
        X, Xloc, xinfo = self._check_X(X, "predict", self.n_features_)
        missing = [p for p in self.feature_parties_ if p not in X]
        if missing:
            raise SecureBoostError(f"predict: X has no features of party '{missing[0]}' (the model uses {self.feature_parties_})")
        if ctx.me not in self.parties_:
            return ctx.party(self.label_owner_).put(None)
        infos = _announce_all(ctx, self.parties_, ctx.next_uid("sb:pcheck"), {"x": xinfo})
        for p in self.parties_:
            v = infos[p].get("x")
            if v and v.get("problem"):
                raise SecureBoostError(v["problem"])
        rows = {infos[p]["x"]["rows"] for p in self.feature_parties_}
        if len(rows) != 1:
            raise SecureBoostError("predict: parties have different row counts: "
                                   + ", ".join(f"'{p}' {infos[p]['x']['rows']}" for p in self.feature_parties_))
        n = rows.pop()
        vals = self._joint_tree_values(self.trees_, Xloc, n)
        if ctx.me == self.label_owner_:
            return ctx.party(self.label_owner_).put(self.base_score_ + vals)
        return ctx.party(self.label_owner_).put(None)

    # -- export / import ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Each party writes its own part (JSON): structure, its thresholds; leaf values at the label holder."""
        ctx = self.ctx
        if not hasattr(self, "trees_"):
            raise SecureBoostError("the model is not fitted: call fit() before save()")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{type(self).__name__}.{ctx.me}.json"
        trees = []
        for tr in self.trees_:
            trees.append({k: [None if (isinstance(v, float) and math.isnan(v)) else (repr(v) if isinstance(v, float) and math.isinf(v) else v)
                              for v in tr[k]] for k in tr})
        doc = {"format": FORMAT, "model": type(self).__name__, "model_id": self.model_id_, "party": ctx.me,
               "params": self._params(), "label_owner": self.label_owner_, "parties": self.parties_,
               "feature_parties": self.feature_parties_, "n_features": self.n_features_,
               "feature_names": self.feature_names_, "trees": trees}
        if ctx.me == self.label_owner_:
            doc["base_score"] = self.base_score_
            doc["importance"] = {"names": self.importance_names_, "splits": self.importance_splits_.tolist(),
                                 "gain": self.importance_gain_.tolist()}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, ctx_or_device, directory: str | Path):
        """Load this party's part (every party calls it); mismatched parts fail at every party alike."""
        ctx = _context(ctx_or_device)
        path = Path(directory) / f"{cls.__name__}.{ctx.me}.json"
        doc, problem = None, None
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != FORMAT or doc.get("model") != cls.__name__ or doc.get("party") != ctx.me:
                problem = f"party '{ctx.me}': {path} is not this party's {cls.__name__} part"
        except FileNotFoundError:
            problem = f"party '{ctx.me}': model part not found: {path}"
        except (OSError, ValueError, AttributeError) as e:
            problem = f"party '{ctx.me}': cannot read model part {path}: {e}"
        parties = doc.get("parties") if doc and not problem else None
        parties = parties if isinstance(parties, list) and ctx.me in parties else None
        if parties is None:
            parties = list(ctx.parties)  # fall back to everyone so the verdict reaches all
            if problem is None:
                problem = f"party '{ctx.me}': {path} does not list this party"
        summary = None if problem else {"model_id": doc["model_id"], "parties": doc["parties"]}
        verdicts = _announce_all(ctx, list(ctx.parties), ctx.next_uid("sb:load"), {"problem": problem, "summary": summary})
        bad = [v["problem"] for v in verdicts.values() if v["problem"]]
        if bad:
            raise SecureBoostError(bad[0])
        ids = {(v["summary"]["model_id"]) for p, v in verdicts.items() if p in summary["parties"]}
        if len(ids) != 1:
            raise SecureBoostError(f"model parts in {directory} belong to different trainings")
        self = cls(ctx, **doc["params"])
        self.model_id_ = doc["model_id"]
        self.label_owner_ = doc["label_owner"]
        self.parties_ = doc["parties"]
        self.feature_parties_ = doc["feature_parties"]
        self.n_features_ = {k: int(v) for k, v in doc["n_features"].items()}
        self.feature_names_ = doc["feature_names"]
        self.trees_ = []
        for tr in doc["trees"]:
            t = dict(tr)
            t["threshold"] = [math.nan if v is None else float(v) for v in tr["threshold"]]
            self.trees_.append(t)
        if ctx.me == self.label_owner_:
            self.base_score_ = float(doc["base_score"])
            imp = doc["importance"]
            self.importance_names_ = imp["names"]
            self.importance_splits_ = np.array(imp["splits"], dtype=np.int64)
            self.importance_gain_ = np.array(imp["gain"], dtype=np.float64)
            tot = self.importance_gain_.sum()
            self.feature_importances_ = self.importance_gain_ / tot if tot > 0 else np.zeros(len(imp["names"]))
        return self


class SecureBoostClassifier(_SecureBoostBase):
    """Binary classifier (XGBoost ``binary:logistic``); labels 0/1 at the label holder.

    >>> # model = SecureBoostClassifier(ctx, n_estimators=10, max_depth=5).fit({"bank": xb, "partner": xp}, y)
    >>> # proba = model.predict_proba({"bank": xb_test, "partner": xp_test})  # PartyObject at bank
    """

    objective = "binary:logistic"

    def _check_labels(self, y):
        u = np.unique(y)
        if not np.isin(u, [0.0, 1.0]).all():
            return f"must be 0/1 for binary classification, got values {u[:5].tolist()}"
        if len(u) < 2:
            return "have a single class"
        return None

    def _base(self, y):
        p = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return math.log(p / (1 - p))

    def _grad_hess(self, y, margin):
        p = _sigmoid(margin)
        return p - y, np.maximum(p * (1 - p), 1e-16)

    def _eval_loss(self, y, margin):
        p = np.clip(_sigmoid(margin), 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def predict_proba(self, X: dict, to: str | None = None) -> PartyObject:
        """(rows, 2) class probabilities, revealed to the label holder only."""
        m = self.decision_function(X, to)
        return m.device.run(lambda v: np.stack([1 - _sigmoid(v), _sigmoid(v)], axis=1), m)

    def predict(self, X: dict, to: str | None = None) -> PartyObject:
        """0/1 predictions (probability >= 0.5), at the label holder only."""
        m = self.decision_function(X, to)
        return m.device.run(lambda v: (v >= 0).astype(np.int64), m)


class SecureBoostRegressor(_SecureBoostBase):
    """Regressor (XGBoost ``reg:squarederror``)."""

    objective = "reg:squarederror"

    def _base(self, y):
        return float(np.mean(y))

    def _grad_hess(self, y, margin):
        return margin - y, np.ones_like(y)

    def _eval_loss(self, y, margin):
        return float(np.sqrt(np.mean((margin - y) ** 2)))

    def predict(self, X: dict, to: str | None = None) -> PartyObject:
        """Predicted values, at the label holder only."""
        return self.decision_function(X, to)
