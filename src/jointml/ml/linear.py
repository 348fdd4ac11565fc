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

Public to every party of the job: the shapes of the inputs, the hyperparameters, the
batch order and the train/validation split (public row positions derived from
`random_state`), a random model id, and with `class_weight` the two class weights
(with "balanced" they reveal the class balance; per-sample weights stay secret).
Early stopping reveals the validation predictions and the validation loss to the
label holder (it already knows the labels) and one stop/continue bit per epoch to
everybody. Predictions are revealed only to the party named in `predict(to=...)`.
`save` writes each party's own share: one part alone reveals nothing more.

Objective: mean loss + l2/2 ||w||^2 + l1 ||w||_1 (the intercept is not penalised),
minimised by mini-batch (or full-batch, `batch_size=None`) gradient descent with a
proximal soft-threshold step for l1. scikit-learn equivalents: LogisticRegression with
C = 1 / (l2 n) (or C = 1 / (l1 n), l1_ratio=1); Poisson/Gamma/TweedieRegressor with
alpha = l2; Ridge with alpha = l2 n. Fixed point: the gradient is formed as
X^T r and then scaled by the public lr / m with 16 significant bits (one truncation
round for the gradient, the L2 term and the intercept step), so small steps keep full
precision; |X^T r| must stay below 2^26 (f = 18).

Protocol shape (why it is fast): the joint matrix X (n x d) is masked once
(`BlockMatrix`): in semi2k each owner sends E = X_p - A_p once and every later product
X[batch] @ w or X[batch].T @ e costs traffic proportional to w and e only. Per
sample and epoch, with batch size m and d features, 2 parties: the products cost
about 3 x 8 B (open e - B, corrections) + 8 x d / m B, and the sigmoid dominates
(`seg3`: two comparisons, ~80 B).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ModelError
from ..core.prg import Prg
from ..mpc import MpcDevice, SecretArray, concatenate
from ..mpc.masked import BlockMatrix
from ..runtime.device import PartyObject


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
    if isinstance(X, dict):
        return dict(X), feature_names or {}
    from ..data.frames import (
        VDataFrame,  # imports pandas (0.4 s): only when a frame is passed
    )

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


def _shape_of(ctx, obj: PartyObject, what: str, ndim: tuple[int, ...] | None = None, check=None) -> tuple:
    """The (public) shape of a party's matrix, announced by its owner, with checks at the owner.

    The owner checks dtype, NaN/inf, the number of dimensions (`ndim`: allowed values) and
    `check(v) -> problem | None`; every party receives the owner's verdict and raises the
    same `ModelError` (naming the party), so nobody is left waiting."""
    # a per-call tag (the same at every party running the same program): a party that
    # skipped a call gets "protocol out of sync", never another call's shape
    tag = ctx.next_uid(f"shape:{what}:{obj.owner}:")
    if ctx.me == obj.owner:
        problem = None
        try:
            v = np.asarray(obj.value)
        except Exception as e:  # noqa: BLE001 - reported to every party below
            v, problem = np.empty((0,)), f"party '{obj.owner}': {what} cannot be read as an array ({type(e).__name__}: {e})"
        if problem:
            pass
        elif v.dtype.kind not in "fiub":
            problem = f"party '{obj.owner}': {what} is not numeric (dtype {v.dtype})"
        elif ndim is not None and v.ndim not in ndim:
            want = " or ".join(f"{k}-D" for k in ndim)
            problem = f"party '{obj.owner}': {what} must be {want}, got shape {v.shape}"
        elif v.dtype.kind == "f" and not np.isfinite(v).all():
            bad = np.argwhere(~np.isfinite(v))
            problem = f"party '{obj.owner}': {what} has {len(bad)} NaN/inf values (first at row {bad[0][0]})"
        elif check is not None:
            msg = check(v)
            if msg:
                problem = f"party '{obj.owner}': {what} {msg}"
        meta = {"shape": [int(k) for k in v.shape], "problem": problem}
        for p in ctx.parties:
            if p != obj.owner:
                ctx.comm.send(p, tag, meta=meta)
    else:
        meta = ctx.comm.recv(obj.owner, tag).meta
    if meta.get("problem"):
        raise ModelError(meta["problem"])
    return tuple(int(k) for k in meta["shape"])


def _mul_consts(pairs, sig_bits: int = 16) -> list[SecretArray]:
    """[x * c for (x, c) in pairs] for public reals c, in one truncation round.

    `x * c` would encode c with the device's frac_bits: lr / batch = 1e-5 becomes 3/2^18
    (15 % off), and scaling the residual before X^T r would leave each element a few bits.
    Here every c is encoded as round(c 2^k), with one k giving the smallest |c| `sig_bits`
    significant bits (and no constant more than 2^(sig_bits + 8)), and the products are
    truncated together by k. The truncations of semi2k and aby3 round stochastically
    (up with probability equal to the dropped fraction), so they are unbiased: adding
    half an ulp first would bias every step by +1/2 ulp (measured: w drifted by 1e-4 in
    30 steps). Exact while |x c| 2^(f + k) < 2^62: |x| < 2^28 for f = 18 when the
    constants are of similar size."""
    xs = [x for x, _ in pairs]
    cs = [float(c) for _, c in pairs]
    nz = [abs(c) for c in cs if c != 0.0]
    if not nz:
        return [x * 0 for x in xs]
    k = sig_bits - 1 - math.floor(math.log2(min(nz)))
    k = min(k, sig_bits + 8 - 1 - math.floor(math.log2(max(nz))))
    k = max(k, 0)
    f = xs[0].device.frac_bits
    scaled = []
    for x, c in pairs:
        if x.fxp != f:
            x = x.astype_fxp() if not x.fxp else x
        ci = int(round(float(c) * 2.0**k))
        share = x.proto.mul_public(x.share, np.asarray(ci, dtype=np.int64).view(np.uint64))
        scaled.append(SecretArray(x.device, share, x.shape, x.fxp + k).reshape(-1))
    y = concatenate(scaled, axis=0) if len(scaled) > 1 else scaled[0]
    y = y._finish_product(y.share, y.shape, y.fxp)
    out, off = [], 0
    for x in xs:
        n = int(np.prod(x.shape)) if x.shape else 1
        out.append(y[off : off + n].reshape(x.shape))
        off += n
    return out


def _mul_const(x: SecretArray, c: float, sig_bits: int = 16) -> SecretArray:
    """x * c for a public real c with `sig_bits` significant bits (see `_mul_consts`)."""
    return _mul_consts([(x, c)], sig_bits)[0]


def _broadcast_meta(ctx, owner: str, tag: str, meta: dict | None) -> dict:
    """`owner` sends `meta` to every other party of the job; everybody returns it."""
    tag = ctx.next_uid(tag + ":")
    if ctx.me == owner:
        for p in ctx.parties:
            if p != owner:
                ctx.comm.send(p, tag, meta=meta)
        return meta
    return ctx.comm.recv(owner, tag).meta


def _share_to_json(share):
    """A share as JSON: None (a party holding nothing), a list (semi2k) or a pair of lists (aby3)."""
    if share is None:
        return None
    if isinstance(share, tuple):
        return [np.asarray(c).astype(np.uint64).tolist() for c in share]
    return np.asarray(share).astype(np.uint64).tolist()


def _share_from_json(v, mpc, shape: tuple):
    if v is None:
        return None
    a = np.array(v, dtype=np.uint64)
    if mpc.protocol_name == "aby3":
        if a.shape != (2,) + tuple(shape):
            raise ModelError(f"party '{mpc.ctx.me}': saved aby3 share has shape {a.shape}, expected {(2,) + tuple(shape)}")
        return (a[0].copy(), a[1].copy())
    if a.shape != tuple(shape):
        raise ModelError(f"party '{mpc.ctx.me}': saved share has shape {a.shape}, expected {tuple(shape)}")
    return a


def _to_secret(mpc, parts: dict) -> SecretArray:
    """The joint feature matrix, secret-shared (parts already secret are used as they are)."""
    return concatenate([o if isinstance(o, SecretArray) else o.to(mpc, fxp=True) for o in parts.values()], axis=1)


def _progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar over training steps at the party that asked for it (None when disabled)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)


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
        if not learning_rate > 0:
            raise ModelError(f"learning_rate must be > 0, got {learning_rate}")
        if l2 < 0 or l1 < 0 or lr_decay < 0:
            raise ModelError(f"l2, l1 and lr_decay must be >= 0, got l2={l2}, l1={l1}, lr_decay={lr_decay}")
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
    def _accepts_wide_eta(self) -> bool:
        """True when `_residual` is exact for eta at 2f fractional bits (untruncated)."""
        return False

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
    def fit(self, X, y: PartyObject, feature_names: dict | None = None) -> _SecureLinearBase:
        """Train on the rows of X (a VDataFrame or {party: PartyObject}) and labels y (a PartyObject).

        Rows must be aligned across parties (PSI first). Bad input raises `ModelError` at
        every party alike, naming the party and the field."""
        mpc = self.mpc
        ctx = mpc.ctx
        parts, names = _collect(ctx, X, feature_names)
        if not isinstance(y, PartyObject):
            raise ModelError(f"y must be a PartyObject (the label holder's label vector), got {type(y).__name__}")
        if not parts:
            raise ModelError("X has no feature blocks")
        for p, o in parts.items():
            if p not in ctx.parties:
                raise ModelError(f"party '{p}' holding features is not in the cluster {ctx.parties}")
            if isinstance(o, PartyObject):
                if o.owner != p:
                    raise ModelError(f"X['{p}'] is owned by party '{o.owner}', not '{p}' (each block must be keyed by its owner)")
            elif not isinstance(o, SecretArray):
                raise ModelError(f"X['{p}'] must be a PartyObject or a SecretArray, got {type(o).__name__}")
            elif o.device is not mpc:
                raise ModelError(f"X['{p}'] is a SecretArray of another MPC device")
        if self.reveal not in ("owners", "shared") and self.reveal not in ctx.parties:
            raise ModelError(f"reveal must be 'owners', 'shared' or a party of the cluster {ctx.parties}, got {self.reveal!r}")
        if self.early_stopping and not 0.0 < self.validation_fraction < 1.0:
            raise ModelError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        shapes = {}
        for p, o in parts.items():
            if isinstance(o, SecretArray):
                if len(o.shape) != 2:
                    raise ModelError(f"party '{p}': feature matrix must be 2-D, got shape {o.shape}")
                shapes[p] = o.shape
            else:
                shapes[p] = _shape_of(ctx, o, "feature matrix", ndim=(2,))
        yshape = _shape_of(ctx, y, "label vector", ndim=(1, 2), check=self._check_labels)
        if len(yshape) == 2 and yshape[1] != 1:
            raise ModelError(f"party '{y.owner}': label vector must be 1-D (or one column), got shape {yshape}")
        rows = {p: s[0] for p, s in shapes.items()}
        rows["labels@" + y.owner] = yshape[0]
        if len(set(rows.values())) != 1:
            raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
        n = yshape[0]
        if n == 0:
            raise ModelError("no training rows (0 rows at every party)")
        if len(yshape) == 2:
            y = ctx.party(y.owner).run(lambda v: np.asarray(v).reshape(-1), y)
        self.label_owner_ = y.owner
        self.features_ = _Features(list(parts), [shapes[p][1] for p in parts], [list(names.get(p, [f"{p}_x{i}" for i in range(shapes[p][1])])) for p in parts])
        d = self.features_.d
        if d == 0:
            raise ModelError(f"X has no feature columns: {shapes}")
        # A public identifier of this training run (the label holder draws it): saved parts
        # of one model carry the same id, so parts of different models are never mixed.
        import secrets

        self.model_id_ = _broadcast_meta(ctx, y.owner, "model-id", {"id": secrets.token_hex(8) if ctx.me == y.owner else None})["id"]
        self._before_training(y)

        # Train / validation split on public row positions.
        perm = _public_permutation(n, self.random_state)
        if self.early_stopping:
            n_val = max(1, int(round(self.validation_fraction * n)))
            if n_val >= n:
                raise ModelError(f"early stopping needs training rows left after the validation split ({n} rows, validation_fraction={self.validation_fraction})")
            val_rows, train_rows = np.sort(perm[:n_val]), perm[n_val:]
        else:
            val_rows, train_rows = None, perm
        t_setup = time.perf_counter()
        # A feature block held by a party outside the compute parties is secret-shared first
        # (the private-matrix shortcut needs its owner among the compute parties).
        parts = {p: (o.to(mpc, fxp=True) if isinstance(o, PartyObject) and o.owner not in mpc.parties else o) for p, o in parts.items()}
        ys = y.to(mpc, fxp=True)
        # Order training rows once by the public permutation so batches are contiguous;
        # each party's block is masked once (plaintext blocks by their owner alone).
        Xm = BlockMatrix(mpc, parts, rows=train_rows)
        y_train = ys[train_rows]
        sw_train = self._sample_weights(y_train)
        val_block = BlockMatrix(mpc, parts, rows=val_rows) if self.early_stopping else None
        n_train = len(train_rows)
        m = n_train if self.batch_size is None else min(self.batch_size, n_train)
        n_batches = int(math.ceil(n_train / m))

        w = self._zeros(d)
        b = self._zeros(1)
        best, bad_epochs = math.inf, 0
        self.history_ = []
        step = 0
        seen = 0
        t0 = time.perf_counter()
        self.setup_seconds_ = t0 - t_setup
        batch_order_rng = Prg((self.random_state + 1).to_bytes(16, "little"), stream="batches")
        bar = _progress_bar(self.verbose and ctx.me == self.label_owner_, self.epochs * n_batches, f"{type(self).__name__} [{ctx.me}]")
        for epoch in range(self.epochs):
            order = np.argsort(batch_order_rng.uint64(n_batches), kind="stable") if n_batches > 1 else np.arange(1)
            for bi in order:
                if bar is not None:
                    bar.update(1)
                lo, hi = int(bi) * m, min(int(bi + 1) * m, n_train)
                rows_b = slice(lo, hi)
                # With a scale-generic link (seg3) the product's truncation is left to the
                # link, which truncates once at its end: one round fewer per batch.
                eta = Xm.matmul(w, rows=rows_b, truncate=not self._accepts_wide_eta())
                if self.fit_intercept:
                    eta = eta + b
                r = self._residual(eta, y_train[rows_b])
                if sw_train is not None:
                    r = r * sw_train[rows_b]
                lr = self._lr(step, epoch)
                scale = lr / (hi - lo)
                # X^T r first (magnitude ~ batch), then the small public lr / m at full
                # precision: scaling r first would keep only a few bits of each element.
                # One truncation round for the gradient, the L2 term and the intercept step.
                pairs = [(Xm.rmatmul_t(r, rows=rows_b), scale)]
                if self.l2:
                    pairs.append((w, lr * self.l2))
                if self.fit_intercept:
                    pairs.append((r.sum(), scale))
                upd = _mul_consts(pairs)
                g = upd[0] + upd[1] if self.l2 else upd[0]
                w = w - g
                if self.l1:
                    t = lr * self.l1
                    # proximal step (soft threshold): w - clip(w, -t, t)
                    from ..mpc import functions as nonlinear

                    w = w - nonlinear.clip(w, -t, t)
                if self.fit_intercept:
                    b = b - upd[-1]
                step += 1
                seen += hi - lo
            rec = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 3), "learning_rate": self._lr(step - 1, epoch)}
            stop = False
            if self.early_stopping:
                # Only the label holder learns the validation loss; the others learn the stop bit.
                score = self._validate(val_block, val_rows, w, b, y)
                rec["val_loss"] = score
                if score is not None:
                    if score < best - self.tol:
                        best, bad_epochs = score, 0
                    else:
                        bad_epochs += 1
                stop = bool(_broadcast_meta(ctx, self.label_owner_, "early-stop", {"stop": bad_epochs >= self.n_iter_no_change})["stop"])
            self.history_.append(rec)
            if bar is not None:
                bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs}" + (f" val_loss={rec['val_loss']:.5f}" if rec.get("val_loss") is not None else ""))
            if stop:
                break
        if bar is not None:
            bar.close()
        self.n_epochs_ = len(self.history_)
        self.n_iter_ = step
        self.n_samples_seen_ = seen
        self.w_shared_ = w
        self.b_shared_ = b
        self._reveal_weights(w, b)
        return self

    def _check_labels(self, y: np.ndarray) -> str | None:
        """At the label holder: why these labels are unusable (None if fine)."""
        return None

    def _before_training(self, y: PartyObject) -> None:
        """Hook run at every party after the inputs are checked, before any sharing."""

    def _zeros(self, k: int) -> SecretArray:
        """A public zero vector as a (trivially) shared fixed-point secret."""
        mpc = self.mpc
        share = mpc.proto.share_in(mpc.parties[0], np.zeros(k, dtype=np.uint64) if mpc.ctx.me == mpc.parties[0] else None, (k,))
        return SecretArray(mpc, share, (k,), mpc.frac_bits)

    def _validate(self, val_block, val_rows, w, b, y) -> float | None:
        """Validation loss of the current weights: a number at the label holder, None elsewhere."""
        ctx = self.mpc.ctx
        eta = val_block.matmul(w)
        if self.fit_intercept:
            eta = eta + b
        pred = self._mean(eta).reveal(to=self.label_owner_)
        if ctx.me != self.label_owner_:
            return None
        return float(self._val_score(np.asarray(y.value, dtype=np.float64)[val_rows], pred.value))

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
        """The linear predictor X w + b as a secret (nothing revealed).

        X has the training layout: the same parties in the same order, the same number of
        columns each, aligned rows. Plaintext blocks are masked by their owners (as in
        training), so the product costs traffic for X once, not a product of two secrets."""
        mpc = self.mpc
        ctx = mpc.ctx
        if not hasattr(self, "w_shared_"):
            raise ModelError(f"{type(self).__name__} is not fitted: call fit() or load() first")
        parts, _ = _collect(ctx, X)
        if list(parts) != self.features_.owners:
            raise ModelError(f"prediction data must come from the same parties in the same order: {self.features_.owners}, got {list(parts)}")
        rows = {}
        for p, o in parts.items():
            if isinstance(o, PartyObject):
                if o.owner != p:
                    raise ModelError(f"X['{p}'] is owned by party '{o.owner}', not '{p}'")
                s = _shape_of(ctx, o, "feature matrix", ndim=(2,))
            elif isinstance(o, SecretArray):
                s = o.shape
            else:
                raise ModelError(f"X['{p}'] must be a PartyObject or a SecretArray, got {type(o).__name__}")
            want = self.features_.widths[self.features_.owners.index(p)]
            if len(s) != 2 or s[1] != want:
                raise ModelError(f"party '{p}': expected {want} feature columns (as in training), got shape {s}")
            rows[p] = s[0]
        if len(set(rows.values())) != 1:
            raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
        parts = {p: (o.to(mpc, fxp=True) if isinstance(o, PartyObject) and o.owner not in mpc.parties else o) for p, o in parts.items()}
        eta = BlockMatrix(mpc, parts).matmul(self.w_shared_)
        if self.fit_intercept:
            eta = eta + self.b_shared_
        return eta

    def predict_shared(self, X) -> SecretArray:
        return self._mean(self.decision_function_shared(X))

    def predict(self, X, to: str | None = None) -> PartyObject:
        """Predicted mean (probability for logistic), revealed only to `to` (default: the label holder)."""
        return self.predict_shared(X).reveal(to=to or self.label_owner_)

    # -- export / import ---------------------------------------------------------------------
    FORMAT = "jointml.linear/1"

    def save(self, directory: str | Path) -> Path:
        """Each party writes its own part: its share of the weights (and what it may see in clear).

        Every party of the job calls it (SPMD); a part holds only that party's share, so a
        single file reveals nothing of the shared weights."""
        ctx = self.mpc.ctx
        if not hasattr(self, "w_shared_"):
            raise ModelError("the model is not fitted: call fit() before save()")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{type(self).__name__}.{ctx.me}.json"
        doc = {
            "format": self.FORMAT,
            "model": type(self).__name__,
            "model_id": getattr(self, "model_id_", None),
            "party": ctx.me,
            "protocol": self.mpc.protocol_name,
            "mpc_parties": list(self.mpc.parties),
            "frac_bits": self.mpc.frac_bits,
            "params": self._params(),
            "features": {"owners": self.features_.owners, "widths": self.features_.widths, "names": self.features_.names},
            "label_owner": self.label_owner_,
            "w_share": _share_to_json(self.w_shared_.share),
            "b_share": _share_to_json(self.b_shared_.share),
            "coef_by_party": {p: np.asarray(v).tolist() for p, v in self.coef_by_party_.items()},
            "coef": None if self.coef_ is None else np.asarray(self.coef_).tolist(),
            "intercept": self.intercept_,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)  # never a half-written part that looks complete
        return path

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "learning_rate", "lr_schedule", "lr_decay", "l2", "l1",
                                               "fit_intercept", "reveal", "random_state")}

    @classmethod
    def load(cls, mpc: MpcDevice, directory: str | Path):
        """Load this party's part written by `save` (every party of the job calls it).

        The parties compare what they loaded (model id, protocol, parties, layout): a missing
        or mismatched part at any party raises the same `ModelError`, naming that party, at all."""
        ctx = mpc.ctx
        path = Path(directory) / f"{cls.__name__}.{ctx.me}.json"
        doc, problem = None, None
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            problem = f"party '{ctx.me}': model part not found: {path}"
        except (OSError, ValueError) as e:
            problem = f"party '{ctx.me}': cannot read model part {path}: {e}"
        if doc is not None:
            problem = cls._check_part(doc, mpc, path)
        if problem is None:
            try:
                d = sum(int(k) for k in doc["features"]["widths"])
                ws = _share_from_json(doc["w_share"], mpc, (d,))
                bs = _share_from_json(doc["b_share"], mpc, (1,))
                self = cls(mpc, **doc["params"])
            except (ModelError, KeyError, TypeError, ValueError) as e:
                problem = f"party '{ctx.me}': {path} is damaged: {e}"
        summary = None
        if problem is None:
            summary = {k: doc.get(k) for k in ("model_id", "protocol", "frac_bits", "label_owner")}
            summary["features"] = doc["features"]
        # Everybody fails alike: each party announces its verdict and what it loaded.
        verdicts = {}
        for owner in ctx.parties:
            verdicts[owner] = _broadcast_meta(ctx, owner, f"model-load:{owner}", {"problem": problem, "summary": summary})
        bad = [v["problem"] for v in verdicts.values() if v["problem"]]
        if bad:
            raise ModelError(bad[0])
        ref = verdicts[ctx.parties[0]]["summary"]
        for p, v in verdicts.items():
            if v["summary"] != ref:
                diff = sorted(k for k in ref if ref[k] != v["summary"].get(k))
                raise ModelError(f"model parts in {directory} do not belong together: party '{p}' differs from "
                                 f"'{ctx.parties[0]}' in {diff} (parts of different models or trainings)")
        self._extra_load(doc)
        f = doc["features"]
        self.features_ = _Features(f["owners"], f["widths"], f["names"])
        self.label_owner_ = doc["label_owner"]
        self.model_id_ = doc.get("model_id")
        self.w_shared_ = SecretArray(mpc, ws, (d,), mpc.frac_bits)
        self.b_shared_ = SecretArray(mpc, bs, (1,), mpc.frac_bits)
        self.coef_by_party_ = {p: np.array(v, dtype=np.float64) for p, v in doc["coef_by_party"].items()}
        self.coef_ = None if doc.get("coef") is None else np.array(doc["coef"], dtype=np.float64)
        self.intercept_ = doc["intercept"]
        return self

    @classmethod
    def _check_part(cls, doc, mpc, path) -> str | None:
        me = mpc.ctx.me
        if not isinstance(doc, dict) or doc.get("format") != cls.FORMAT or doc.get("model") != cls.__name__:
            return f"party '{me}': {path} is not a {cls.__name__} part"
        if doc.get("party") != me:
            return f"party '{me}': {path} is the part of party '{doc.get('party')}'"
        if doc["protocol"] != mpc.protocol_name or doc["frac_bits"] != mpc.frac_bits:
            return (f"party '{me}': {path} was trained with protocol {doc['protocol']} ({doc['frac_bits']} fractional bits); "
                    f"the device runs {mpc.protocol_name} ({mpc.frac_bits} bits)")
        saved = doc.get("mpc_parties")
        # additive (semi2k) shares do not depend on the parties' order; replicated (aby3) ones do
        same = (list(saved) == list(mpc.parties)) if mpc.protocol_name == "aby3" else (sorted(saved or []) == sorted(mpc.parties))
        if saved is not None and not same:
            return f"party '{me}': {path} was trained by the MPC parties {saved}; the device has {list(mpc.parties)}"
        return None

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
        from ..mpc.functions import SIGMOID_MODES

        if sigmoid not in SIGMOID_MODES:
            raise ModelError(f"sigmoid must be one of {SIGMOID_MODES}, got {sigmoid!r}")
        if not (class_weight is None or class_weight == "balanced" or isinstance(class_weight, dict)):
            raise ModelError(f"class_weight must be None, 'balanced' or {{0: w0, 1: w1}}, got {class_weight!r}")
        super().__init__(mpc, **kw)
        self.sigmoid = sigmoid
        self.class_weight = class_weight

    def _params(self) -> dict:
        d = super()._params()
        d["sigmoid"] = self.sigmoid
        return d

    def _mean(self, eta):
        from ..mpc import functions as nonlinear

        return nonlinear.sigmoid(eta, mode=self.sigmoid)

    def _accepts_wide_eta(self) -> bool:
        return self.sigmoid == "seg3"

    def _residual(self, eta, y):
        return self._mean(eta) - y

    def _check_labels(self, y):
        v = np.asarray(y)
        bad = ~((v == 0) | (v == 1))
        if bad.any():
            return f"must hold 0/1 labels; {int(bad.sum())} other values (first {v.reshape(-1)[np.argmax(bad.reshape(-1))]!r})"
        return None

    def _before_training(self, y):
        ctx = self.mpc.ctx
        self.class_weight_ = None
        if self.class_weight is None:
            return
        cw, problem = None, None
        if ctx.me == y.owner:
            yy = np.asarray(y.value, dtype=np.float64)
            try:
                if self.class_weight == "balanced":
                    pos = float(np.mean(yy))
                    if pos in (0.0, 1.0):
                        raise ModelError("class_weight='balanced' needs both classes in the labels")
                    # sklearn's n / (n_classes * n_c)
                    cw = {0: 0.5 / (1 - pos), 1: 0.5 / pos}
                elif isinstance(self.class_weight, dict):
                    cw = {int(k): float(v) for k, v in self.class_weight.items()}
                    if set(cw) - {0, 1}:
                        raise ModelError(f"class_weight keys must be 0 and 1, got {sorted(cw)}")
                    cw = {0: cw.get(0, 1.0), 1: cw.get(1, 1.0)}
                else:
                    raise ModelError(f"class_weight must be None, 'balanced' or {{0: w0, 1: w1}}, got {self.class_weight!r}")
            except ModelError as e:
                problem = f"party '{y.owner}': {e}"
        # The two class weights are public to the job (with 'balanced' they reveal the class
        # balance); per-sample weights stay secret because y does.
        meta = _broadcast_meta(ctx, y.owner, "class-weight", {"w0": cw and cw[0], "w1": cw and cw[1], "problem": problem})
        if meta.get("problem"):
            raise ModelError(meta["problem"])
        self.class_weight_ = {0: float(meta["w0"]), 1: float(meta["w1"])}

    def _sample_weights(self, y):
        cw = self.class_weight_
        if cw is None:
            return None
        # y is secret 0/1: weight = w0 + (w1 - w0) * y, computed once without revealing y.
        return y * (cw[1] - cw[0]) + cw[0]

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
        from ..mpc import functions as nonlinear

        return nonlinear.exp(eta)

    def _residual(self, eta, y):
        from ..mpc import functions as nonlinear

        if self.family == "gaussian":
            return eta - y
        if self.family == "poisson":
            return nonlinear.exp(eta) - y
        if self.family == "gamma":
            return 1.0 - y * nonlinear.exp(-eta)
        p = self.power
        return nonlinear.exp(eta * (2 - p)) - y * nonlinear.exp(eta * (1 - p))

    def _check_labels(self, y):
        v = np.asarray(y, dtype=np.float64)
        if self.family == "gamma" and (v <= 0).any():
            return f"must be > 0 for family 'gamma'; {int((v <= 0).sum())} values are not"
        if self.family in ("poisson", "tweedie") and (v < 0).any():
            return f"must be >= 0 for family '{self.family}'; {int((v < 0).sum())} values are negative"
        return None

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
