"""Secure logistic regression and GLMs on vertically partitioned data (`SSLogisticRegression`, `SSGLM`).

Security model: the MPC device's (semi2k: semi-honest, dealer non-colluding; aby3:
semi-honest honest majority). During training every party sees only shares: the
feature matrix, labels, weights, predictions and gradients stay secret-shared.
What is revealed is a parameter:

- `reveal="owners"` (default): each party learns the weights of its own features;
  the label holder also learns the intercept.
- `reveal="shared"`: nobody learns any weight; each party keeps its share for joint
  prediction.
- `reveal="<party>"`: that party learns all weights.

Early stopping reveals the validation predictions to the label holder (it already
knows the labels; it learns the model's scores on those rows) and one stop/continue
bit per epoch to everybody. Batch order and the train/validation split are public
row positions.

Protocol shape (why it is fast): the joint matrix X (n x d) is masked once
(`MaskedMatrix`): in semi2k E = X - A crosses the links once and every later product
X[batch] @ w or X[batch].T @ e costs traffic proportional to w and e only. Per
sample and epoch, with batch size m and d features, 2 parties: the products cost
about 3 x 8 B (open e - B, corrections) + 8 x d / m B, and the sigmoid dominates
(`seg3`: two comparisons, ~80 B).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import JointMLError
from ..core.prg import Prg
from ..mpc import MpcDevice, SecretArray, concatenate
from ..mpc.masked import BlockMatrix
from ..runtime.device import PartyObject


class ModelError(JointMLError, ValueError):
    pass


def _public_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation all parties derive identically from a public seed (batch order is public)."""
    g = Prg(seed.to_bytes(16, "little"), stream="shuffle")
    return np.argsort(g.uint64(n), kind="stable")


@dataclass
class _Features:
    owners: list[str]
    widths: list[int]
    names: list[list[str]]

    @property
    def d(self) -> int:
        return sum(self.widths)


def _collect(ctx, X, feature_names=None):
    """Normalise inputs: a VDataFrame or a {party: PartyObject(ndarray) | SecretArray} mapping."""
    from ..data.frames import VDataFrame

    if isinstance(X, VDataFrame):
        X.check_numeric()
        parts = {p: X.to_numpy(p) for p in X.parties}
        names = X.columns
    elif isinstance(X, dict):
        parts = dict(X)
        names = feature_names or {}
    else:
        raise ModelError("X must be a VDataFrame or a {party: PartyObject} mapping")
    return parts, names


def _shape_of(ctx, obj: PartyObject, what: str) -> tuple:
    """The (public) shape of a party's matrix, announced by its owner, with checks at the owner."""
    tag = f"shape:{what}:{obj.owner}"
    if ctx.me == obj.owner:
        v = np.asarray(obj.value)
        problem = None
        if v.dtype.kind not in "fiub":
            problem = f"party '{obj.owner}': {what} is not numeric (dtype {v.dtype})"
        elif v.dtype.kind == "f" and not np.isfinite(v).all():
            bad = np.argwhere(~np.isfinite(v))
            problem = f"party '{obj.owner}': {what} has {len(bad)} NaN/inf values (first at row {bad[0][0]})"
        meta = {"shape": list(v.shape), "problem": problem}
        for p in ctx.parties:
            if p != obj.owner:
                ctx.comm.send(p, tag, meta=meta)
    else:
        meta = ctx.comm.recv(obj.owner, tag).meta
    if meta.get("problem"):
        raise ModelError(meta["problem"])
    return tuple(meta["shape"])


def _to_secret(mpc, parts: dict) -> SecretArray:
    """The joint feature matrix, secret-shared (parts already secret are used as they are)."""
    return concatenate([o if isinstance(o, SecretArray) else o.to(mpc, fxp=True) for o in parts.values()], axis=1)


class _SecureLinearBase:
    """Shared training loop of SS-LR and SS-GLM (mini-batch or full-batch gradient descent)."""

    def __init__(
        self,
        mpc: MpcDevice,
        *,
        epochs: int = 10,
        batch_size: int | None = 1024,
        learning_rate: float = 0.1,
        lr_schedule: str = "constant",
        lr_decay: float = 0.0,
        l2: float = 0.0,
        l1: float = 0.0,
        fit_intercept: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 3,
        tol: float = 1e-4,
        reveal: str = "owners",
        random_state: int = 0,
        verbose: bool = False,
    ):
        if epochs < 1:
            raise ModelError("epochs must be >= 1")
        if batch_size is not None and batch_size < 1:
            raise ModelError("batch_size must be >= 1 or None (full batch)")
        if lr_schedule not in ("constant", "invscaling", "step"):
            raise ModelError(f"lr_schedule must be constant, invscaling or step, got {lr_schedule!r}")
        self.mpc = mpc
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.l2 = l2
        self.l1 = l1
        self.fit_intercept = fit_intercept
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.reveal = reveal
        self.random_state = random_state
        self.verbose = verbose

    # -- hooks ---------------------------------------------------------------------
    def _residual(self, eta: SecretArray, y: SecretArray) -> SecretArray:
        """d loss / d eta for the batch (the gradient is X^T residual / m)."""
        raise NotImplementedError

    def _mean(self, eta: SecretArray) -> SecretArray:
        raise NotImplementedError

    def _val_score(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        """Validation loss at the label holder (lower is better)."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------
    def _lr(self, step: int, epoch: int) -> float:
        if self.lr_schedule == "invscaling":
            return self.learning_rate / (1.0 + self.lr_decay * step)
        if self.lr_schedule == "step":
            return self.learning_rate * (self.lr_decay or 0.5) ** epoch
        return self.learning_rate

    def _sample_weights(self, y: SecretArray) -> SecretArray | None:
        return None

    # -- fit ---------------------------------------------------------------------------
    def fit(self, X, y: PartyObject, feature_names: dict | None = None) -> "_SecureLinearBase":
        """Train on the rows of X (a VDataFrame or {party: PartyObject}) and labels y (a PartyObject).

        Rows must be aligned across parties (PSI first)."""
        mpc = self.mpc
        ctx = mpc.ctx
        parts, names = _collect(ctx, X, feature_names)
        if not isinstance(y, PartyObject):
            raise ModelError("y must be a PartyObject (the label holder's label vector)")
        for p in parts:
            if p not in ctx.parties:
                raise ModelError(f"party '{p}' holding features is not in the cluster {ctx.parties}")
        shapes = {p: (o.shape if isinstance(o, SecretArray) else _shape_of(ctx, o, "feature matrix")) for p, o in parts.items()}
        yshape = _shape_of(ctx, y, "label vector")
        rows = {p: s[0] for p, s in shapes.items()}
        rows["labels@" + y.owner] = yshape[0] if yshape else 0
        if len(set(rows.values())) != 1:
            raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
        for p, s in shapes.items():
            if len(s) != 2:
                raise ModelError(f"party '{p}': feature matrix must be 2-D, got shape {s}")
        n = yshape[0]
        if n == 0:
            raise ModelError("no training rows")
        self.label_owner_ = y.owner
        self.features_ = _Features(list(parts), [shapes[p][1] for p in parts], [list(names.get(p, [f"{p}_x{i}" for i in range(shapes[p][1])])) for p in parts])
        d = self.features_.d

        # Train / validation split on public row positions.
        perm = _public_permutation(n, self.random_state)
        if self.early_stopping:
            n_val = max(1, int(round(self.validation_fraction * n)))
            val_rows, train_rows = np.sort(perm[:n_val]), perm[n_val:]
        else:
            val_rows, train_rows = None, perm
        t_setup = time.perf_counter()
        ys = y.to(mpc, fxp=True)
        # Order training rows once by the public permutation so batches are contiguous;
        # each party's block is masked once (plaintext blocks by their owner alone).
        Xm = BlockMatrix(mpc, parts, rows=train_rows)
        y_train = ys[train_rows]
        n_train = len(train_rows)
        m = n_train if self.batch_size is None else min(self.batch_size, n_train)
        n_batches = int(math.ceil(n_train / m))

        w = self._zeros(d)
        b = self._zeros(1)
        best, bad_epochs = math.inf, 0
        self.history_ = []
        step = 0
        t0 = time.perf_counter()
        self.setup_seconds_ = t0 - t_setup
        batch_order_rng = Prg((self.random_state + 1).to_bytes(16, "little"), stream="batches")
        for epoch in range(self.epochs):
            order = np.argsort(batch_order_rng.uint64(n_batches), kind="stable") if n_batches > 1 else np.arange(1)
            for bi in order:
                lo, hi = int(bi) * m, min(int(bi + 1) * m, n_train)
                rows_b = slice(lo, hi)
                eta = Xm.matmul(w, rows=rows_b)
                if self.fit_intercept:
                    eta = eta + b
                r = self._residual(eta, y_train[rows_b])
                lr = self._lr(step, epoch)
                scale = lr / (hi - lo)
                g = Xm.rmatmul_t(r * scale, rows=rows_b)
                if self.l2:
                    g = g + w * (lr * self.l2)
                w = w - g
                if self.l1:
                    t = lr * self.l1
                    # proximal step (soft threshold): w - clip(w, -t, t)
                    from ..mpc import nonlinear

                    w = w - nonlinear.clip(w, -t, t)
                if self.fit_intercept:
                    b = b - r.sum() * scale
                step += 1
            rec = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 3)}
            if self.early_stopping:
                score = self._validate(parts, ys, val_rows, w, b, y)
                rec["val_loss"] = score
                if score < best - self.tol:
                    best, bad_epochs = score, 0
                else:
                    bad_epochs += 1
            self.history_.append(rec)
            if self.verbose and ctx.me == self.label_owner_:
                print(f"  epoch {epoch + 1}/{self.epochs}" + (f" val_loss={rec['val_loss']:.5f}" if "val_loss" in rec else ""), flush=True)
            if self.early_stopping and bad_epochs >= self.n_iter_no_change:
                break
        self.n_epochs_ = len(self.history_)
        self.n_samples_seen_ = step * m
        self.w_shared_ = w
        self.b_shared_ = b
        self._reveal_weights(w, b)
        return self

    def _zeros(self, k: int) -> SecretArray:
        """A public zero vector as a (trivially) shared fixed-point secret."""
        mpc = self.mpc
        share = mpc.proto.share_in(mpc.parties[0], np.zeros(k, dtype=np.uint64) if mpc.ctx.me == mpc.parties[0] else None, (k,))
        return SecretArray(mpc, share, (k,), mpc.frac_bits)

    def _validate(self, parts, ys, val_rows, w, b, y) -> float:
        ctx = self.mpc.ctx
        if not hasattr(self, "_val_block"):
            self._val_block = BlockMatrix(self.mpc, parts, rows=val_rows)
        eta = self._val_block.matmul(w)
        if self.fit_intercept:
            eta = eta + b
        pred = self._mean(eta).reveal(to=self.label_owner_)
        tag = "early-stop"
        if ctx.me == self.label_owner_:
            score = float(self._val_score(np.asarray(y.value, dtype=np.float64)[val_rows], pred.value))
            for p in ctx.parties:
                if p != ctx.me:
                    ctx.comm.send(p, tag, meta={"score": score})
        else:
            score = float(ctx.comm.recv(self.label_owner_, tag).meta["score"])
        return score

    def _reveal_weights(self, w: SecretArray, b: SecretArray) -> None:
        ctx = self.mpc.ctx
        feats = self.features_
        self.coef_ = None  # this party's view: {party: weights} it is allowed to see
        self.intercept_ = None
        self.coef_by_party_: dict[str, np.ndarray] = {}
        if self.reveal == "shared":
            return
        offsets = np.cumsum([0] + feats.widths)
        if self.reveal == "owners":
            for p, lo, hi in zip(feats.owners, offsets[:-1], offsets[1:]):
                v = w[int(lo) : int(hi)].reveal(to=p)
                if ctx.me == p:
                    self.coef_by_party_[p] = v.value
            bi = b.reveal(to=self.label_owner_)
            if ctx.me == self.label_owner_:
                self.intercept_ = float(bi.value[0]) if self.fit_intercept else 0.0
        elif self.reveal in ctx.parties:
            v = w.reveal(to=self.reveal)
            bi = b.reveal(to=self.reveal)
            if ctx.me == self.reveal:
                for p, lo, hi in zip(feats.owners, offsets[:-1], offsets[1:]):
                    self.coef_by_party_[p] = v.value[int(lo) : int(hi)]
                self.coef_ = v.value
                self.intercept_ = float(bi.value[0]) if self.fit_intercept else 0.0
        else:
            raise ModelError(f"reveal must be 'owners', 'shared' or a party name, got {self.reveal!r}")

    # -- prediction ----------------------------------------------------------------------
    def decision_function_shared(self, X) -> SecretArray:
        """The linear predictor X w + b as a secret (nothing revealed)."""
        mpc = self.mpc
        parts, _ = _collect(mpc.ctx, X)
        if list(parts) != self.features_.owners:
            raise ModelError(f"prediction data must come from the same parties in the same order: {self.features_.owners}, got {list(parts)}")
        for p, o in parts.items():
            s = o.shape if isinstance(o, SecretArray) else _shape_of(mpc.ctx, o, "feature matrix")
            want = self.features_.widths[self.features_.owners.index(p)]
            if len(s) != 2 or s[1] != want:
                raise ModelError(f"party '{p}': expected {want} feature columns, got shape {s}")
        xs = _to_secret(mpc, parts)
        eta = xs @ self.w_shared_
        if self.fit_intercept:
            eta = eta + self.b_shared_
        return eta

    def predict_shared(self, X) -> SecretArray:
        return self._mean(self.decision_function_shared(X))

    def predict(self, X, to: str | None = None) -> PartyObject:
        """Predicted mean (probability for logistic), revealed only to `to` (default: the label holder)."""
        return self.predict_shared(X).reveal(to=to or self.label_owner_)

    # -- export / import ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Each party writes its own part: its share of the weights (and what it may see in clear)."""
        ctx = self.mpc.ctx
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{type(self).__name__}.{ctx.me}.json"
        share = self.w_shared_.share
        bshare = self.b_shared_.share
        doc = {
            "format": "jointml.linear/1",
            "model": type(self).__name__,
            "party": ctx.me,
            "protocol": self.mpc.protocol_name,
            "frac_bits": self.mpc.frac_bits,
            "params": self._params(),
            "features": {"owners": self.features_.owners, "widths": self.features_.widths, "names": self.features_.names},
            "label_owner": self.label_owner_,
            "w_share": None if share is None else np.asarray(share).astype(np.uint64).tolist(),
            "b_share": None if bshare is None else np.asarray(bshare).astype(np.uint64).tolist(),
            "coef_by_party": {p: np.asarray(v).tolist() for p, v in self.coef_by_party_.items()},
            "intercept": self.intercept_,
        }
        path.write_text(json.dumps(doc))
        return path

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "learning_rate", "l2", "l1", "fit_intercept", "reveal")}

    @classmethod
    def load(cls, mpc: MpcDevice, directory: str | Path):
        """Load this party's part written by `save` (every party of the device calls it)."""
        ctx = mpc.ctx
        path = Path(directory) / f"{cls.__name__}.{ctx.me}.json"
        if not path.exists():
            raise ModelError(f"party '{ctx.me}': model part not found: {path}")
        doc = json.loads(path.read_text())
        if doc.get("format") != "jointml.linear/1" or doc.get("model") != cls.__name__:
            raise ModelError(f"{path} is not a {cls.__name__} part")
        if doc["protocol"] != mpc.protocol_name or doc["frac_bits"] != mpc.frac_bits:
            raise ModelError(f"{path} was trained with {doc['protocol']}/{doc['frac_bits']} bits; device is {mpc.protocol_name}/{mpc.frac_bits}")
        self = cls.__new__(cls)
        self.mpc = mpc
        for k, v in doc["params"].items():
            setattr(self, k, v)
        self._extra_load(doc)
        f = doc["features"]
        self.features_ = _Features(f["owners"], f["widths"], f["names"])
        self.label_owner_ = doc["label_owner"]
        d = sum(f["widths"])
        ws = None if doc["w_share"] is None else np.array(doc["w_share"], dtype=np.uint64)
        bs = None if doc["b_share"] is None else np.array(doc["b_share"], dtype=np.uint64)
        self.w_shared_ = SecretArray(mpc, ws, (d,), mpc.frac_bits)
        self.b_shared_ = SecretArray(mpc, bs, (1,), mpc.frac_bits)
        self.coef_by_party_ = {p: np.array(v) for p, v in doc["coef_by_party"].items()}
        self.intercept_ = doc["intercept"]
        return self

    def _extra_load(self, doc) -> None:
        pass


class SSLogisticRegression(_SecureLinearBase):
    """Logistic regression trained under MPC on vertically partitioned data.

    `sigmoid` selects the approximation used in training and prediction ("seg3",
    "poly", "accurate"; see `jointml.mpc.nonlinear.sigmoid`). `class_weight` is None,
    "balanced" or {0: w0, 1: w1} (the weights multiply each sample's gradient; with
    "balanced" the label holder computes them from its labels and they stay secret).

    >>> # inside an SPMD program with mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer"):
    >>> # model = SSLogisticRegression(mpc, epochs=5).fit({"bank": Xb, "partner": Xp}, y)
    >>> # p = model.predict({"bank": Xb_test, "partner": Xp_test})   # PartyObject at the bank
    """

    def __init__(self, mpc: MpcDevice, *, sigmoid: str = "seg3", class_weight=None, **kw):
        super().__init__(mpc, **kw)
        self.sigmoid = sigmoid
        self.class_weight = class_weight

    def _params(self) -> dict:
        d = super()._params()
        d["sigmoid"] = self.sigmoid
        return d

    def _mean(self, eta):
        from ..mpc import nonlinear

        return nonlinear.sigmoid(eta, mode=self.sigmoid)

    def _residual(self, eta, y):
        r = self._mean(eta) - y
        if self.class_weight is not None:
            r = r * self._weights_for(y)
        return r

    def _weights_for(self, y):
        cw = self._cw
        # y is secret 0/1: weight = w0 + (w1 - w0) * y, computed without revealing y.
        return y * (cw[1] - cw[0]) + cw[0]

    def fit(self, X, y: PartyObject, feature_names: dict | None = None):
        ctx = self.mpc.ctx
        self._cw = None
        if self.class_weight is not None:
            tag = "class-weight"
            if ctx.me == y.owner:
                yy = np.asarray(y.value)
                if self.class_weight == "balanced":
                    pos = float(np.mean(yy))
                    if pos in (0.0, 1.0):
                        raise ModelError("class_weight='balanced' needs both classes in the labels")
                    cw = {0: 0.5 / (1 - pos), 1: 0.5 / pos}
                else:
                    cw = {int(k): float(v) for k, v in dict(self.class_weight).items()}
                for p in ctx.parties:
                    if p != ctx.me:
                        ctx.comm.send(p, tag, meta={"w0": cw[0], "w1": cw[1]})
            else:
                m = ctx.comm.recv(y.owner, tag).meta
                cw = {0: m["w0"], 1: m["w1"]}
            # The two class weights are public to the job (they reveal the class balance when
            # 'balanced'); per-sample weights stay secret because y does.
            self._cw = cw
        return super().fit(X, y, feature_names)

    def _val_score(self, y_true, pred):
        p = np.clip(pred, 1e-6, 1 - 1e-6)
        return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))

    def predict_proba(self, X, to: str | None = None) -> PartyObject:
        return self.predict(X, to)


class SSGLM(_SecureLinearBase):
    """Generalised linear model under MPC: family "gaussian" (identity link),
    "poisson", "gamma" or "tweedie" (log link, `power` in (1, 2)).

    Gradients of the deviance w.r.t. the linear predictor eta:
    gaussian eta - y; poisson e^eta - y; gamma 1 - y e^-eta; tweedie e^((2-p)eta) - y e^((1-p)eta).
    The log-link families use the secure exp (`jointml.mpc.nonlinear.exp`); keep eta
    within a few units (standardise features, small learning rates)."""

    FAMILIES = ("gaussian", "poisson", "gamma", "tweedie")

    def __init__(self, mpc: MpcDevice, *, family: str = "gaussian", power: float = 1.5, **kw):
        if family not in self.FAMILIES:
            raise ModelError(f"family must be one of {self.FAMILIES}, got {family!r}")
        if family == "tweedie" and not 1 < power < 2:
            raise ModelError("tweedie power must be in (1, 2)")
        super().__init__(mpc, **kw)
        self.family = family
        self.power = power

    def _params(self) -> dict:
        d = super()._params()
        d.update(family=self.family, power=self.power)
        return d

    def _mean(self, eta):
        if self.family == "gaussian":
            return eta
        from ..mpc import nonlinear

        return nonlinear.exp(eta)

    def _residual(self, eta, y):
        from ..mpc import nonlinear

        if self.family == "gaussian":
            return eta - y
        if self.family == "poisson":
            return nonlinear.exp(eta) - y
        if self.family == "gamma":
            return 1.0 - y * nonlinear.exp(-eta)
        p = self.power
        return nonlinear.exp(eta * (2 - p)) - y * nonlinear.exp(eta * (1 - p))

    def _val_score(self, y_true, pred):
        mu = np.maximum(pred, 1e-9)
        if self.family == "gaussian":
            return float(np.mean((y_true - pred) ** 2))
        if self.family == "poisson":
            return float(np.mean(mu - y_true * np.log(mu)))
        if self.family == "gamma":
            return float(np.mean(y_true / mu + np.log(mu)))
        p = self.power
        return float(np.mean(mu ** (2 - p) / (2 - p) - y_true * mu ** (1 - p) / (1 - p)))
