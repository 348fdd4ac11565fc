"""SecureBoost estimators (scikit-learn contract): input checks, the SPMD training loop,
joint prediction and model parts. The protocol and what each party learns are in
:mod:`jointml.ml.tree.secureboost`; the label holder's and feature holders' own steps in
:mod:`.label_holder` and :mod:`.feature_holder`, histograms in :mod:`.histogram`.

Every message goes through :mod:`jointml.runtime.collectives` among the parties of the
training (a party without data or labels takes no part); the HE key (OU or Paillier,
``he_scheme``) is an :class:`~jointml.he.HeDevice` held by the label holder.

>>> SecureBoostClassifier(None, max_depth=3).get_params()["max_depth"]
3
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ....he import DEFAULT_SCHEME, HeDevice
from ....he.paillier import check_key_bits
from ....runtime.collectives import broadcast, send_to
from ....runtime.device import PartyObject
from ....runtime.persist import ModelPart, new_model_id
from ...base import SecureEstimator, check_is_fitted
from .._binning import QuantileBins
from . import feature_holder as fh
from . import histogram as hist
from . import label_holder as lh
from .errors import SecureBoostError
from .protected import ProtectedMode

__all__ = ["SecureBoostClassifier", "SecureBoostRegressor"]


def _as_matrix(value: Any) -> tuple[np.ndarray, list[str] | None]:
    names = None
    if hasattr(value, "columns") and hasattr(value, "to_numpy"):
        names = [str(c) for c in value.columns]
        value = value.to_numpy()
    return np.asarray(value), names


def _announce(ctx: Any, parties: list[str], info: dict | None, name: str) -> dict[str, dict]:
    """Every party of `parties` announces `info` to the others; {party: info} there."""
    return {p: broadcast(ctx, p, meta=info if ctx.me == p else None, to=parties, name=f"{name}:{p}").meta
            for p in parties}


def _raise_problems(infos: dict[str, dict], parties: list[str]) -> None:
    for p in parties:
        for key in ("y", "x"):
            v = infos[p].get(key)
            if v and v.get("problem"):
                raise SecureBoostError(v["problem"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _SecureBoostBase(ProtectedMode, SecureEstimator):
    """Shared implementation; use :class:`SecureBoostClassifier` or :class:`SecureBoostRegressor`.

    The first argument is the device: a party context (the label holder then makes the
    HE key at `fit`, with `he_scheme`, `key_bits` and `encrypt_window`, because who holds the
    labels is only known from `y`), or an :class:`~jointml.he.HeDevice` whose holder is
    the label holder (its key is used; `he_scheme`, `key_bits` and `encrypt_window` are then
    unused). `he_scheme` is ``"ou"`` (Okamoto-Uchiyama, the default: ~3x faster bin sums and
    decryptions than Paillier at the same 2048-bit key and ~112-bit security) or ``"paillier"``.
    `encrypt_window` is the label holder's fixed-base table width (None: 14 under OU from 10^6
    encryptions per fit (rows x trees), ~77 MB per worker process at 2048 bits, else 12, ~20 MB
    under OU and ~80 MB under Paillier; smaller saves memory, costs speed).
    `label_dp=epsilon` (classifier only) makes the label holder replace its labels (and its
    eval_set labels) by randomized response before training: every gradient, split, tree and
    early-stopping decision the other parties see is then epsilon-label-DP towards them, at an
    AUC cost measured in docs/dp.md ("Label protection").
    Hyperparameters are stored unchanged; they are checked at construction (fail fast)
    and again in `fit` (after `set_params`). ``protection="mpc"`` with ``dealer=`` (the
    name of a party of the job that holds no data; it runs `fit` too) finds splits under
    MPC (:mod:`.protected`): the first argument must then be the party context, and every
    party of the job is the label holder, a feature holder or the dealer.
    """

    objective = ""
    error = SecureBoostError
    _fitted_attr = "trees_"

    def __init__(
        self,
        device: Any,
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
        encrypt_window: int | None = None,
        n_jobs: int | None = None,
        protection: str = "none",
        dealer: str | None = None,
        verbose: bool = False,
        he_scheme: str = DEFAULT_SCHEME,
        label_dp: float | None = None,
    ) -> None:
        self.device = device
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.gamma = gamma
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.key_bits = key_bits
        self.hist_frac_bits = hist_frac_bits
        self.base_score = base_score
        self.encrypt_window = encrypt_window
        self.n_jobs = n_jobs
        self.protection = protection
        self.dealer = dealer
        self.verbose = verbose
        self.he_scheme = he_scheme
        self.label_dp = label_dp
        if device is not None:
            self._check_device()
        self._validate_params()

    def _check_device(self) -> None:
        ctx = self.ctx
        if not hasattr(ctx, "comm") or not hasattr(ctx, "me"):
            raise SecureBoostError("expected a PartyContext or an HeDevice as the first argument")

    def _validate_params(self) -> None:
        lh.check_params(self)
        check_key_bits(self.key_bits)  # < 2048 bits only with JOINTML_INSECURE_TEST_KEYS=1 (tests)

    # -- hooks ---------------------------------------------------------------------------
    def _check_labels(self, y: np.ndarray) -> str | None:
        return None

    def _base(self, y: np.ndarray) -> float:
        raise NotImplementedError

    def _grad_hess(self, y: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _eval_loss(self, y: np.ndarray, margin: np.ndarray) -> float:
        raise NotImplementedError

    # -- input checks ----------------------------------------------------------------------
    def _check_X(self, X: Any, what: str, n_features: dict | None = None) -> tuple[dict, np.ndarray | None, dict | None]:
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
        if ctx.me not in X:
            return X, None, None
        arr, problem, names = self._read_local(X[ctx.me].value, what, n_features)
        info = {"rows": int(arr.shape[0]) if arr.ndim >= 1 else 0,
                "cols": int(arr.shape[1]) if arr.ndim == 2 else 0,
                "names": names or [f"x{j}" for j in range(arr.shape[1] if arr.ndim == 2 else 0)],
                "problem": problem}
        return X, arr, info

    def _read_local(self, value: Any, what: str, n_features: dict | None) -> tuple[np.ndarray, str | None, Any]:
        me = self.ctx.me
        try:
            arr, names = _as_matrix(value)
            if arr.ndim != 2:
                return arr, f"party '{me}': {what} X must be 2-D, got shape {arr.shape}", names
            if arr.dtype.kind not in "fiub":
                return arr, f"party '{me}': {what} X is not numeric (dtype {arr.dtype})", names
            arr = arr.astype(np.float64)
            if np.isinf(arr).any():
                return arr, f"party '{me}': {what} X has infinite values", names
            if n_features is not None and arr.shape[1] != n_features.get(me):
                return arr, (f"party '{me}': {what} X has {arr.shape[1]} columns, "
                             f"the model was trained on {n_features.get(me)}"), names
            return arr, None, names
        except Exception as e:  # noqa: BLE001 - reported to every party
            return np.zeros((0, 0)), f"party '{me}': {what} X cannot be read ({type(e).__name__})", None

    def _read_labels(self, y: PartyObject, label: str, what: str = "labels y") -> tuple[np.ndarray, dict]:
        try:
            yloc = np.asarray(y.value, dtype=np.float64).ravel()
        except (TypeError, ValueError) as e:
            return np.zeros(0), {"rows": 0, "problem": f"party '{label}': {what} cannot be read as numbers ({type(e).__name__})"}
        problem = None
        if np.isnan(yloc).any():
            bad = int(np.flatnonzero(np.isnan(yloc))[0])
            problem = f"party '{label}': {what} have {int(np.isnan(yloc).sum())} NaN values (first at row {bad})"
        elif self._check_labels(yloc):
            problem = f"party '{label}': {what} {self._check_labels(yloc)}"
        if problem is None and self.label_dp is not None:
            yloc = self._randomize_labels(yloc)
        return yloc, {"rows": len(yloc), "problem": problem}

    def _randomize_labels(self, y: np.ndarray) -> np.ndarray:
        # label DP (`label_dp=epsilon`): the label holder replaces its labels once, before
        # anything derived from them is computed, by randomized response on the cryptographic
        # PRG; every gradient, split, tree and stopping decision the other parties see is then
        # post-processing of epsilon-label-DP labels (training and eval_set rows are disjoint:
        # parallel composition, the same epsilon)
        from ....dp import randomized_response

        assert self.label_dp is not None  # checked by the caller
        rel = randomized_response(y.astype(np.int64), float(self.label_dp))
        out = np.asarray(rel.value, dtype=np.float64)
        self.label_dp_epsilon_ = rel.epsilon  # the label holder's own record; never sent
        self.label_dp_flipped_ = float(np.mean(out != y)) if len(y) else 0.0
        return out

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X: dict, y: PartyObject | None = None, eval_set: tuple | None = None) -> _SecureBoostBase:
        """Train on aligned rows: ``X`` {party: PartyObject of an ndarray/DataFrame}, ``y`` at the label holder.

        ``eval_set=(X_val, y_val)`` enables early stopping (``early_stopping_rounds``) on
        the validation loss, computed at the label holder with joint prediction.
        """
        self._validate_params()
        self._check_device()
        ctx = self.ctx
        if y is None:
            raise SecureBoostError("fit needs y: the labels as a PartyObject of the label holder")
        if not isinstance(y, PartyObject):
            raise SecureBoostError("y must be a PartyObject (the labels, at the label holder)")
        label = y.owner
        X, Xloc, xinfo = self._check_X(X, "fit")
        parties = [p for p in ctx.parties if p in X or p == label]
        self._check_dealer(parties)
        if self.protection == "mpc" and ctx.me == self.dealer:
            return self._dealer_fit(X, label, eval_set)
        if ctx.me not in parties:
            return self
        yloc, yinfo = self._read_labels(y, label) if ctx.me == label else (None, None)
        infos = _announce(ctx, parties, {"x": xinfo, "y": yinfo}, "sb:check")
        _raise_problems(infos, parties)
        n = infos[label]["y"]["rows"]
        for p in parties:
            xi = infos[p].get("x")
            if xi is not None and xi["rows"] != n:
                raise SecureBoostError(
                    f"party '{p}': X has {xi['rows']} rows but the label holder '{label}' has {n} labels "
                    "(rows must be aligned, e.g. with PSI)")
        if n < 2:
            raise SecureBoostError(f"party '{label}': need at least 2 training rows, got {n}")
        cols = {p: infos[p]["x"]["cols"] for p in parties if infos[p].get("x")}
        val = None if eval_set is None else self._prepare_eval(eval_set, label, parties, cols)
        self.label_owner_ = label
        self.parties_ = parties
        self.feature_parties_ = [p for p in parties if infos[p].get("x")]
        self.n_features_ = {p: infos[p]["x"]["cols"] for p in self.feature_parties_}
        self.feature_names_ = {p: infos[p]["x"]["names"] for p in self.feature_parties_}
        self._train(Xloc, yloc, n, val)
        return self

    def _prepare_eval(self, eval_set: tuple, label: str, parties: list[str], n_features: dict) -> dict:
        ctx = self.ctx
        Xv, yv = eval_set
        if not isinstance(yv, PartyObject) or yv.owner != label:
            raise SecureBoostError(f"eval_set: y_val must be a PartyObject of the label holder '{label}'")
        _, Xl, xi = self._check_X(Xv, "eval_set", n_features)
        yl, yi = None, None
        if ctx.me == label:
            yl, yi = self._read_labels(yv, label, "eval_set labels")
        infos = _announce(ctx, parties, {"x": xi, "y": yi}, "sb:vcheck")
        _raise_problems(infos, parties)
        nv = infos[label]["y"]["rows"]
        for p in parties:
            if p in n_features and (infos[p].get("x") is None or infos[p]["x"]["rows"] != nv):
                got = None if infos[p].get("x") is None else infos[p]["x"]["rows"]
                raise SecureBoostError(f"party '{p}': eval_set X has {got} rows, the label holder has {nv} labels")
        return {"X": Xl, "y": yl, "n": nv}

    # -- training ------------------------------------------------------------------------------
    def _window(self, n: int) -> int:
        """The label holder's table window: `encrypt_window`, or by default 14 under OU when
        the encryptions of the whole fit (rows x trees) repay the bigger tables, else 12.

        A 14-bit window saves 4 table products per encryption (3 per nonce, 1 per ``g^m``)
        but costs ~0.9 million products more to build the tables (once per worker process,
        in the first tree) and ~55 MB more per worker: worth it from ~10^6 encryptions.

        >>> SecureBoostClassifier(None, n_estimators=10)._window(100_000), SecureBoostClassifier(None)._window(20_000)
        (14, 12)
        """
        if self.encrypt_window is not None:
            return int(self.encrypt_window)
        rows = max(1, round(self.subsample * n))
        return 14 if self.he_scheme == "ou" and rows * int(self.n_estimators) >= 1_000_000 else 12

    def _he_device(self, holders: list[str], n: int) -> HeDevice | None:
        """The label holder's HE key (OU or Paillier), known to the feature holders (None without them)."""
        label = self.label_owner_
        if not holders:
            return None
        dev = self.device
        if isinstance(dev, HeDevice):
            if dev.holder != label or any(p not in dev.parties for p in holders):
                raise SecureBoostError(f"the HE device's key holder must be the label holder '{label}' and its "
                                       f"parties must include {holders} (got holder '{dev.holder}', {dev.parties})")
            return dev
        # a wide fixed-base window makes the label holder's encryptions faster (OU, w = 14: a
        # nonce is 16 table products instead of 19 at w = 12, 28 at 8; the h table is ~77 MB per
        # process at 2048 bits, as Paillier's at w = 12); the window is local, not part of the key
        return HeDevice(self.ctx, label, key_bits=int(self.key_bits), parties=[label, *holders],
                        window=self._window(n), n_jobs=self.n_jobs, scheme=str(self.he_scheme))

    def _setup(self, Xloc: np.ndarray | None, yloc: np.ndarray | None, n: int, holders: list[str]) -> dict:
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        protected = self.protection == "mpc"
        st: dict[str, Any] = {"holders": holders, "n": n, "he": None if protected else self._he_device(holders, n)}
        if st["he"] is not None and me == label:  # the first tree's nonces, while the parties finish their setup
            st["he"].prefetch(max(1, round(self.subsample * n)) if self.subsample < 1.0 else n)
        st["codes"], st["bins"] = None, None
        if Xloc is not None:  # binning at every feature owner
            st["bins"] = QuantileBins.fit(Xloc, int(self.max_bin))
            st["codes"] = st["bins"].transform(Xloc)
        st["nb_of"] = self._bin_counts(st["bins"], holders)
        self.model_id_ = broadcast(ctx, label, meta={"id": new_model_id()} if me == label else None,
                                   to=self.parties_, name="sb:id").meta["id"]
        if protected and holders:
            self._protected_setup(st)
        return st

    def _bin_counts(self, bins: QuantileBins | None, holders: list[str]) -> dict[str, np.ndarray]:
        """Bin counts of every party's features, known to the label holder (+ the missing bin)."""
        me, label = self.ctx.me, self.label_owner_
        nb_of: dict[str, np.ndarray] = {}
        for p in holders:
            got = send_to(self.ctx, p, label, meta={"n_bins": bins.n_bins.tolist()} if me == p and bins is not None else None,
                          name="sb:nbins")
            if me == label:
                assert got is not None  # the receiver
                nb = np.asarray(got.meta.get("n_bins"), dtype=np.int64)
                if nb.shape != (self.n_features_[p],) or (nb < 1).any() or (nb > self.max_bin + 1).any():
                    raise SecureBoostError(f"party '{p}' announced invalid bin counts")
                nb_of[p] = nb + 1
        if me == label and bins is not None:
            nb_of[label] = bins.n_bins + 1
        return nb_of

    def _train(self, Xloc: np.ndarray | None, yloc: np.ndarray | None, n: int, val: dict | None) -> None:
        me, label = self.ctx.me, self.label_owner_
        holders = [p for p in self.feature_parties_ if p != label]
        T = dict.fromkeys(("encrypt", "hist", "compress", "decrypt", "split", "wait", "predict", "setup"), 0.0)
        t0 = time.perf_counter()
        self.trees_: list[dict] = []
        self.tree_seconds_: list[float] = []
        st = self._setup(Xloc, yloc, n, holders)
        if me == label:
            assert yloc is not None  # the label holder's labels
            self.base_score_ = float(self.base_score) if self.base_score is not None else self._base(yloc)
            st["margin"] = np.full(n, self.base_score_)
            st["vmargin"] = None if val is None else np.full(val["n"], self.base_score_)
            self.split_counts_: dict[tuple[str, int], int] = {}  # (party, feature) -> splits
            self.split_gains_: dict[tuple[str, int], float] = {}  # (party, feature) -> total gain
            self.history_: list[dict[str, Any]] = []
        T["setup"] += time.perf_counter() - t0
        stopper = {"best": math.inf, "best_iter": 0, "since": 0}
        for t in range(int(self.n_estimators)):
            tt = time.perf_counter()
            tree = self._one_tree(t, st, yloc, T)
            self.trees_.append(tree)
            stop = self._early_stop(t, tree, st, val, stopper, T) if val is not None else False
            self.tree_seconds_.append(round(time.perf_counter() - tt, 4))
            if self.verbose and me == label:
                print(f"[secureboost] tree {t} in {time.perf_counter() - tt:.2f} s", flush=True)
            if stop:
                break
        if val is not None and self.early_stopping_rounds is not None:
            self.trees_ = self.trees_[: int(stopper["best_iter"]) + 1]
            self.best_iteration_ = int(stopper["best_iter"])
        self.timings_ = {k: round(v, 3) for k, v in T.items()}
        if me == label:
            self._finish_importance()

    def _one_tree(self, t: int, st: dict, yloc: np.ndarray | None, T: dict) -> dict:
        """Sampling and encrypted gradients, then the tree (SPMD)."""
        ctx, me, label, holders = self.ctx, self.ctx.me, self.label_owner_, st["holders"]
        lv: dict[str, Any] = {"t": t}
        if me == label:
            rows, colmask = lh.sample(st["n"], float(self.subsample), float(self.colsample_bytree),
                                      self.feature_parties_, self.n_features_)
            assert yloc is not None  # the label holder's labels
            g, h = self._grad_hess(yloc, st["margin"])
            lv.update(rows=rows, colmask=colmask, g=g, h=h)
        for p in holders:  # each holder's row and column sample
            arrays = [lv["rows"], lv["colmask"][p].astype(np.uint8)] if me == label else []
            got = send_to(ctx, label, p, arrays=arrays, name="sb:sample")
            if me == p:
                assert got is not None  # the receiver
                rows, cm = got.arrays if len(got.arrays) == 2 else (np.zeros(0, np.int64), None)
                if cm is None:
                    raise SecureBoostError(f"party '{me}': malformed sample message from '{label}'")
                lv["rows"] = rows
                lv["colsel"] = fh.check_sample(rows, cm, st["n"], self.n_features_[me], me, label)
        if st.get("mpc") is not None:
            lv["shift"] = self._tree_header(st, lv)
        lv["grad"] = self._send_gradients(t, st, lv, T)
        tree = self._grow(st, lv, T)
        if me == label:
            st["margin"] = st["margin"] + tree.pop("_train_values")
        return tree

    def _send_gradients(self, t: int, st: dict, lv: dict, T: dict) -> Any:
        """Label holder: packed (g, h) of the sampled rows, encrypted with prefetched nonces,
        to every feature holder; they check the layout."""
        ctx, me, label, he = self.ctx, self.ctx.me, self.label_owner_, st["he"]
        if he is None:
            return None
        F = int(self.hist_frac_bits)
        te = time.perf_counter()
        obj, slot_bits = ctx.party(label).put(None), None
        if me == label:
            gs, hs = lv["g"][lv["rows"]], lv["h"][lv["rows"]]
            slot_bits = lh.gradient_slot_bits(gs, hs, F, he.public_key.plaintext_bits, int(self.key_bits), label)
            obj = ctx.party(label).put(np.stack([gs, hs], axis=1))
        grad = obj.to(he, to=st["holders"], slot_bits=slot_bits, frac_bits=F, name="sb:grad")
        if me == label:
            T["encrypt"] += time.perf_counter() - te
            if t + 1 < self.n_estimators:
                he.prefetch(len(lv["rows"]))  # next tree's nonces while the holders work
        elif me in st["holders"]:
            T["wait"] += time.perf_counter() - te
            lv["slot_bits"], lv["F"] = fh.check_gradients(grad.data, len(lv["rows"]),
                                                          he.public_key.plaintext_bits, me, label)
        return grad

    def _early_stop(self, t: int, tree: dict, st: dict, val: dict, stopper: dict, T: dict) -> bool:
        """Validation loss at the label holder; the stop decision is announced to all."""
        me, label = self.ctx.me, self.label_owner_
        tp = time.perf_counter()
        contrib = self._joint_tree_values([tree], val["X"], val["n"])
        T["predict"] += time.perf_counter() - tp
        stop = False
        if me == label:
            st["vmargin"] = st["vmargin"] + contrib
            loss = self._eval_loss(val["y"], st["vmargin"])
            self.history_.append({"tree": t, "val_loss": loss})
            if loss < stopper["best"] - 1e-12:
                stopper.update(best=loss, best_iter=t, since=0)
            else:
                stopper["since"] += 1
            stop = self.early_stopping_rounds is not None and stopper["since"] >= self.early_stopping_rounds
        meta = broadcast(self.ctx, label, meta={"stop": stop, "best": stopper["best_iter"]} if me == label else None,
                         to=self._stop_parties(), name="sb:stop").meta
        stopper["best_iter"] = int(meta["best"])
        return bool(meta["stop"])

    # -- one tree ---------------------------------------------------------------------------------
    def _grow(self, st: dict, lv: dict, T: dict) -> dict:
        """Grow one tree level by level (SPMD; see the package docstring)."""
        me, label = self.ctx.me, self.label_owner_
        tr: dict[str, list] = {"left": [-1], "right": [-1], "mine": [False], "feature": [-1],
                               "threshold": [math.nan], "default_left": [False], "party": [None],
                               "bin": [-1], "gain": [0.0], "value": [0.0]}
        lv.update(pos=np.zeros(st["n"], dtype=np.int64), frontier=[0], parent_hist={}, par_of={})
        for depth in range(int(self.max_depth)):
            if st.get("mpc") is not None:  # protected mode: the level's splits under MPC
                decisions, seen = self._protected_level(st, lv, tr, T)
                prev = list(lv["frontier"])
                split = self._apply_splits(st, lv, tr, decisions, seen)
                self._holder_split_gains(st, lv, tr, prev, decisions)
            else:
                split = self._apply_splits(st, lv, tr, self._level_decisions(st, lv, tr, depth, T))
            if not split:
                break
        tree = {k: tr[k] for k in ("left", "right", "mine", "feature", "threshold", "default_left")}
        if me == label:
            pos, rows = lv["pos"], lv["rows"]
            Gn = np.bincount(pos[rows], weights=lv["g"][rows], minlength=len(tr["left"]))
            Hn = np.bincount(pos[rows], weights=lv["h"][rows], minlength=len(tr["left"]))
            for node in range(len(tr["left"])):
                if tr["left"][node] < 0:
                    tr["value"][node] = float(-self.learning_rate * Gn[node] / (Hn[node] + self.reg_lambda))
            tree.update(party=tr["party"], bin=tr["bin"], gain=tr["gain"], value=tr["value"])
            tree["_train_values"] = np.asarray(tr["value"])[pos]
        return tree

    def _level_decisions(self, st: dict, lv: dict, tr: dict, depth: int, T: dict) -> list | None:
        """Histograms of the frontier and, at the label holder, the best split of each node."""
        ctx, me, label, holders = self.ctx, self.ctx.me, self.label_owner_, st["holders"]
        pos, frontier, n_nodes = lv["pos"], lv["frontier"], len(tr["left"])
        counts = np.bincount(pos[lv["rows"]], minlength=n_nodes) if lv.get("rows") is not None else None
        compute = hist.compute_nodes(frontier, counts, depth) if counts is not None else []
        hists: dict[int, dict[str, np.ndarray]] = {node: {} for node in frontier}
        if me == label and st["codes"] is not None:
            own_sel = np.flatnonzero(lv["colmask"][me])
            if len(own_sel):
                own = hist.own_histograms(st["codes"], own_sel, st["nb_of"][me][own_sel], lv["g"], lv["h"],
                                          lv["rows"], pos, frontier, n_nodes)
                for node in frontier:
                    hists[node][me] = own[node]
        for p in holders:
            if (me == label and not lv["colmask"][p].any()) or (me == p and not len(lv["colsel"])):
                continue  # none of p's columns in this tree's sample (only p and the label holder know)
            local = None
            if me == p:
                local = {"rows": lv["rows"], "pos": pos, "codes": st["codes"], "bins": st["bins"],
                         "colsel": lv["colsel"], "n_nodes": n_nodes}
            want = None
            if me == label:
                sel_p = np.flatnonzero(lv["colmask"][p])
                want = len(compute) * int(st["nb_of"][p][sel_p].sum())
            got = hist.holder_histograms(ctx, lv["grad"], p, local, compute, want, T)
            if me == label:
                vals = np.asarray(got.value).reshape(len(compute), -1, 2)
                for i, node in enumerate(compute):
                    hists[node][p] = vals[i]
                if depth > 0:
                    hist.fill_siblings(hists, frontier, compute, lv["parent_hist"], lv["par_of"], p)
        if me != label:
            return None
        ts = time.perf_counter()
        pos_rows = pos[lv["rows"]]
        Gn = np.bincount(pos_rows, weights=lv["g"][lv["rows"]], minlength=n_nodes)
        Hn = np.bincount(pos_rows, weights=lv["h"][lv["rows"]], minlength=n_nodes)
        decisions = [lh.best_split(hists[node], Gn[node], Hn[node], st["nb_of"], lv["colmask"],
                                   reg_lambda=float(self.reg_lambda), min_child_weight=float(self.min_child_weight),
                                   gamma=float(self.gamma)) for node in frontier]
        T["split"] += time.perf_counter() - ts
        lv["parent_hist"] = hists
        return decisions

    def _send_decisions(self, st: dict, lv: dict, decisions: list | None) -> list[tuple]:
        """Each node's split as seen here: (split?, mine?, feature, bin, default_left)."""
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        k = len(lv["frontier"])
        if me == label:
            assert decisions is not None  # made at the label holder
            out = self._seen_at_label(decisions)
        for p in st["holders"]:
            arrays: list = []
            if me == label:
                assert decisions is not None
                mine = [d is not None and d[0] == p for d in decisions]
                arrays = [np.array([0 if d is None else (2 if m else 1) for d, m in zip(decisions, mine)], np.uint8),
                          np.array([d[1] if m else -1 for d, m in zip(decisions, mine)], np.int64),
                          np.array([d[2] if m else -1 for d, m in zip(decisions, mine)], np.int64),
                          np.array([d[3] if m else 0 for d, m in zip(decisions, mine)], np.uint8)]
            got = send_to(ctx, label, p, arrays=arrays, name="sb:split", dtypes=[np.uint8, np.int64, np.int64, np.uint8],
                          shapes=[(k,), (k,), (k,), (k,)])
            if me == p:
                assert got is not None  # the receiver
                flags, feats, bns, dl = got.arrays
                out = [(flags[i] != 0, flags[i] == 2, int(feats[i]), int(bns[i]), bool(dl[i])) for i in range(k)]
        return out if me == label or me in st["holders"] else []

    def _apply_splits(self, st: dict, lv: dict, tr: dict, decisions: list | None, seen: list | None = None) -> bool:
        """New nodes, directions from the split owners, new positions; False when no node split.
        `seen`: each node's split as this party knows it (protected mode); else the label holder sends it."""
        me, label = self.ctx.me, self.label_owner_
        if seen is None:
            seen = self._send_decisions(st, lv, decisions)
        bins, pos = st["bins"], lv["pos"]
        new_frontier, par_of_new, my_nodes = [], {}, []
        for i, node in enumerate(lv["frontier"]):
            split, owner_me, f, b, dflt = seen[i]
            if not split:
                continue
            l_id = len(tr["left"])
            tr["left"][node], tr["right"][node] = l_id, l_id + 1
            for key, v in (("left", -1), ("right", -1), ("mine", False), ("feature", -1), ("threshold", math.nan),
                           ("default_left", False), ("party", None), ("bin", -1), ("gain", 0.0), ("value", 0.0)):
                tr[key].extend([v, v])
            par_of_new.update({l_id: node, l_id + 1: node})
            new_frontier += [l_id, l_id + 1]
            if me == label:
                assert decisions is not None
                d = decisions[i]
                tr["party"][node], tr["bin"][node], tr["gain"][node] = d[0], d[2], d[4]
                self.split_counts_[(d[0], d[1])] = self.split_counts_.get((d[0], d[1]), 0) + 1
                self.split_gains_[(d[0], d[1])] = self.split_gains_.get((d[0], d[1]), 0.0) + d[4]
            if owner_me:
                if not (0 <= f < len(bins.cuts)) or not (0 <= b <= len(bins.cuts[f])):
                    raise SecureBoostError(f"party '{me}': invalid split (feature {f}, bin {b}) from '{label}'")
                tr["mine"][node], tr["feature"][node], tr["default_left"][node] = True, f, dflt
                tr["threshold"][node] = bins.threshold(f, b) if b < len(bins.cuts[f]) else math.inf
                my_nodes.append((node, np.flatnonzero(pos == node), f, b, dflt))
        go_left = fh.directions(st["codes"], bins, my_nodes) if my_nodes else {}
        lv["pos"] = self._new_positions(st, lv, tr, decisions, my_nodes, go_left)
        lv["frontier"], lv["par_of"] = new_frontier, par_of_new
        return bool(new_frontier)

    def _new_positions(self, st: dict, lv: dict, tr: dict, decisions: list | None, my_nodes: list,
                       go_left: dict) -> np.ndarray:
        """Owners' directions to the label holder; the new node of every row to the holders."""
        ctx, me, label, holders = self.ctx, self.ctx.me, self.label_owner_, st["holders"]
        pos, left, right, n = lv["pos"], tr["left"], tr["right"], st["n"]
        newpos = pos.copy() if me == label else pos
        if me == label:
            for node, at, *_ in my_nodes:
                newpos[at] = np.where(go_left[node], left[node], right[node])
        for p in holders:
            bits = None
            if me == p:
                bits = np.concatenate([go_left[nd] for nd, *_ in my_nodes]) if my_nodes else np.zeros(0, bool)
            got = send_to(ctx, p, label, meta={"n": len(bits)} if bits is not None else None,
                          arrays=[np.packbits(bits)] if bits is not None else [], name="sb:dirs", dtypes=[np.uint8])
            if me == label:
                assert got is not None and decisions is not None  # the receiver, which made the decisions
                nodes_p = [lv["frontier"][i] for i, d in enumerate(decisions) if d is not None and d[0] == p]
                ats = [np.flatnonzero(pos == nd) for nd in nodes_p]
                total = sum(len(a) for a in ats)
                if got.meta.get("n") != total:
                    raise SecureBoostError(f"party '{label}': '{p}' sent {got.meta.get('n')} directions, expected {total}")
                dirs = np.unpackbits(got.arrays[0], count=total).astype(bool)
                o = 0
                for nd, at in zip(nodes_p, ats):
                    newpos[at] = np.where(dirs[o: o + len(at)], left[nd], right[nd])
                    o += len(at)
        if not holders:
            return newpos
        got = broadcast(ctx, label, arrays=[newpos.astype(np.uint32)] if me == label else [], to=[label, *holders],
                        name="sb:pos", dtypes=[np.uint32], shapes=[(n,)])
        if me in holders:
            p32 = got.arrays[0]
            if len(p32) and p32.max() >= len(left):
                raise SecureBoostError(f"party '{me}': invalid node positions from '{label}'")
            return p32.astype(np.int64)
        return newpos

    def _seen_at_label(self, decisions: list) -> list[tuple]:
        me = self.ctx.me
        return [(d is not None, d is not None and d[0] == me, *(d[1:4] if d is not None else (-1, -1, False)))
                for d in decisions]

    # -- importance ---------------------------------------------------------------------------
    def _finish_importance(self) -> None:
        names, counts, gains = [], [], []
        for p in self.feature_parties_:
            for j, nm in enumerate(self.feature_names_[p]):
                names.append(f"{p}:{nm}")
                counts.append(self.split_counts_.get((p, j), 0))
                gains.append(self.split_gains_.get((p, j), 0.0))
        self._set_importance(names, counts, gains)

    def _set_importance(self, names: list[str], counts: list, gains: list) -> None:
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

    # -- prediction -----------------------------------------------------------------------------
    def _joint_tree_values(self, trees: list[dict], Xloc: np.ndarray | None, n_rows: int) -> np.ndarray | None:
        """Sum of the trees' leaf values per row, at the label holder (None elsewhere)."""
        ctx, me, label = self.ctx, self.ctx.me, self.label_owner_
        holders = [p for p in self.feature_parties_ if p != label]
        masks: list[np.ndarray] = []  # at the label holder
        if me == label:
            masks = [fh.leaf_masks(tr, Xloc) if Xloc is not None else
                     np.ones((n_rows, len(fh.leaf_ids(tr))), dtype=bool) for tr in trees]
        for p in holders:
            arrays = [np.packbits(fh.leaf_masks(tr, Xloc), axis=1) for tr in trees] if me == p and Xloc is not None else []
            shapes = [(n_rows, (len(fh.leaf_ids(tr)) + 7) // 8) for tr in trees]
            got = send_to(ctx, p, label, arrays=arrays, name="sb:masks", dtypes=[np.uint8] * len(trees),
                          shapes=shapes)
            if me == label:
                assert got is not None  # the receiver
                for i, (tr, arr) in enumerate(zip(trees, got.arrays)):
                    masks[i] &= np.unpackbits(arr, axis=1, count=len(fh.leaf_ids(tr))).astype(bool)
        if me != label:
            return None
        out = np.zeros(n_rows)
        for tr, m in zip(trees, masks):
            if not (m.sum(axis=1) == 1).all():
                raise SecureBoostError(f"party '{label}': leaf masks of the parties are inconsistent (model parts differ?)")
            out += np.asarray(tr["value"])[fh.leaf_ids(tr)][np.argmax(m, axis=1)]
        return out

    def decision_function(self, X: dict, to: str | None = None) -> PartyObject:
        """Raw margins (base score + sum of leaf values), revealed to the label holder only."""
        if to is not None and to != getattr(self, "label_owner_", to):
            raise SecureBoostError(f"SecureBoost reveals scores to the label holder '{self.label_owner_}' only, not to '{to}'")
        check_is_fitted(self, "predict")
        ctx = self.ctx
        X, Xloc, xinfo = self._check_X(X, "predict", self.n_features_)
        missing = [p for p in self.feature_parties_ if p not in X]
        if missing:
            raise SecureBoostError(f"predict: X has no features of party '{missing[0]}' (the model uses {self.feature_parties_})")
        if ctx.me not in self.parties_:
            return ctx.party(self.label_owner_).put(None)
        infos = _announce(ctx, self.parties_, {"x": xinfo}, "sb:pcheck")
        _raise_problems(infos, self.parties_)
        rows = {infos[p]["x"]["rows"] for p in self.feature_parties_}
        if len(rows) != 1:
            raise SecureBoostError("predict: parties have different row counts: "
                                   + ", ".join(f"'{p}' {infos[p]['x']['rows']}" for p in self.feature_parties_))
        vals = self._joint_tree_values(self.trees_, Xloc, rows.pop())
        if vals is not None:  # at the label holder
            return ctx.party(self.label_owner_).put(self.base_score_ + vals)
        return ctx.party(self.label_owner_).put(None)

    # -- model parts (runtime.persist) -------------------------------------------------------------
    def _part_public(self) -> dict[str, Any]:
        return {"label_owner": self.label_owner_, "parties": self.parties_, "feature_parties": self.feature_parties_,
                "n_features": self.n_features_, "feature_names": self.feature_names_}

    def _part_state(self) -> dict[str, Any]:
        """Each party's own view of the trees (its thresholds; leaf values at the label holder)."""
        def plain(v: Any) -> Any:
            if isinstance(v, float) and math.isnan(v):
                return None
            return repr(v) if isinstance(v, float) and math.isinf(v) else v

        state: dict[str, Any] = {"trees": [{k: [plain(v) for v in tr[k]] for k in tr} for tr in self.trees_]}
        if self.ctx.me == self.label_owner_:
            state["base_score"] = self.base_score_
            state["importance"] = {"names": self.importance_names_, "splits": self.importance_splits_.tolist(),
                                   "gain": self.importance_gain_.tolist()}
        return state

    def _check_part(self, part: ModelPart) -> str | None:
        if self.ctx.me not in part.public.get("parties", []):
            return f"party '{self.ctx.me}': the model part does not list this party"
        return None

    def _restore(self, part: ModelPart) -> None:
        pub, state = part.public, part.state
        self.label_owner_ = pub["label_owner"]
        self.parties_ = pub["parties"]
        self.feature_parties_ = pub["feature_parties"]
        self.n_features_ = {k: int(v) for k, v in pub["n_features"].items()}
        self.feature_names_ = pub["feature_names"]
        self.trees_ = []
        for tr in state["trees"]:
            t = dict(tr)
            t["threshold"] = [math.nan if v is None else float(v) for v in tr["threshold"]]
            self.trees_.append(t)
        if self.ctx.me == self.label_owner_:
            self.base_score_ = float(state["base_score"])
            imp = state["importance"]
            self._set_importance(imp["names"], imp["splits"], imp["gain"])


class SecureBoostClassifier(_SecureBoostBase):
    """Binary classifier (XGBoost ``binary:logistic``); labels 0/1 at the label holder.

    >>> X = np.array([[0.0, 5.0], [1.0, 4.0], [2.0, 1.0], [3.0, 0.0]] * 3)
    >>> y = np.array([0.0, 0.0, 1.0, 1.0] * 3)
    >>> def prog(ctx):
    ...     model = SecureBoostClassifier(ctx, n_estimators=2, max_depth=2, min_child_weight=0.1,
    ...                                   key_bits=512, n_jobs=1)   # 512-bit keys: examples only, for speed
    ...     parts = {"bank": ctx.party("bank")(lambda: X[:, :1]), "shop": ctx.party("shop")(lambda: X[:, 1:])}
    ...     model.fit(parts, ctx.party("bank")(lambda: y))
    ...     p = model.predict(parts)                     # a PartyObject at the label holder
    ...     return p.value.tolist() if ctx.me == "bank" else None
    >>> simulate(prog, ["bank", "shop"], mode="thread")["bank"]
    [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]
    """

    objective = "binary:logistic"
    _grad_max = 1.0  # |p - y| <= 1: a public bound for the protected mode's score range
    _hess_max = 0.25

    def _check_labels(self, y: np.ndarray) -> str | None:
        u = np.unique(y)
        if not np.isin(u, [0.0, 1.0]).all():
            return f"must be 0/1 for binary classification, got values {u[:5].tolist()}"
        if len(u) < 2:
            return "have a single class"
        return None

    def _base(self, y: np.ndarray) -> float:
        p = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return math.log(p / (1 - p))

    def _grad_hess(self, y: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _sigmoid(margin)
        return p - y, np.maximum(p * (1 - p), 1e-16)

    def _eval_loss(self, y: np.ndarray, margin: np.ndarray) -> float:
        p = np.clip(_sigmoid(margin), 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def predict_proba(self, X: dict, to: str | None = None) -> PartyObject:
        """(rows, 2) class probabilities, revealed to the label holder only."""
        m = self.decision_function(X, to)
        return self.ctx.party(m.owner).run(lambda v: np.stack([1 - _sigmoid(v), _sigmoid(v)], axis=1), m)

    def predict(self, X: dict, to: str | None = None) -> PartyObject:
        """0/1 predictions (probability >= 0.5), at the label holder only."""
        m = self.decision_function(X, to)
        return self.ctx.party(m.owner).run(lambda v: (v >= 0).astype(np.int64), m)


class SecureBoostRegressor(_SecureBoostBase):
    """Regressor (XGBoost ``reg:squarederror``).

    >>> SecureBoostRegressor(None, n_estimators=3).get_params()["n_estimators"]
    3
    """

    objective = "reg:squarederror"
    _grad_max = None  # unbounded: the label holder announces a power of two per tree (protected mode)
    _hess_max = 1.0

    def _base(self, y: np.ndarray) -> float:
        return float(np.mean(y))

    def _grad_hess(self, y: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return margin - y, np.ones_like(y)

    def _eval_loss(self, y: np.ndarray, margin: np.ndarray) -> float:
        return float(np.sqrt(np.mean((margin - y) ** 2)))

    def predict(self, X: dict, to: str | None = None) -> PartyObject:
        """Predicted values, at the label holder only."""
        return self.decision_function(X, to)
