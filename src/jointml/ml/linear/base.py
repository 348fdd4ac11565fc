"""`SecureLinearModel`: the training loop, prediction and persistence shared by SS-LR and SS-GLM.

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

Labels already secret-shared (`fit(X, y)` with `y` a `SecretArray` on the model's
device, e.g. shared into enclaves by a data owner outside the program): there is no
label holder. Nobody sees the labels in clear; the parties learn only y's public shape;
the model id is drawn by the first MPC party; with `reveal="owners"` the intercept
stays shared (nobody learns it) and `predict` needs an explicit `to=`. Whoever shared
the labels checks that they are 0/1 (or valid for the GLM family): the parties cannot.
`class_weight="balanced"` and `early_stopping`, which need a label holder computing in
clear, raise `ModelError`.

Objective: mean loss + l2/2 ||w||^2 + l1 ||w||_1 (the intercept is not penalised),
minimised by mini-batch (or full-batch, `batch_size=None`) gradient descent with a
proximal soft-threshold step for l1. Fixed point: the gradient is formed as X^T r and
then scaled by the public lr / m with 16 significant bits (one truncation round for the
gradient, the L2 term and the intercept step), so small steps keep full precision;
|X^T r| must stay below 2^26 (f = 18).

Protocol shape (why it is fast): the joint matrix X (n x d) is masked once
(`BlockMatrix`): in semi2k each owner sends E = X_p - A_p once and every later product
X[batch] @ w or X[batch].T @ e costs traffic proportional to w and e only. Per
sample and epoch, with batch size m and d features, 2 parties:

| step | traffic per sample | rounds per batch |
| --- | --- | --- |
| X[batch] @ w, X[batch].T @ r (masked once) | ~3 x 8 B + 8 d / m B | 2 |
| link (`seg3` sigmoid: two comparisons, the select) | ~80 B | 8 |
| scaling by lr / m, truncation of X^T r (one truncation) | 8 (d + 1) / m B | 1 |

With `seg3`, no sample weights and full batches at one step size (the default), the
step is fused (`_step_fused`, 11 rounds per batch instead of 12): the label holder scales
its labels by lr / m once, in clear, and shares them (no round); the link's selection
product carries lr / m and its truncation lands u = lr / m (sigmoid(eta) - y) at F
fractional bits (`sigmoid_seg3_scaled`); X^T u keeps f + F bits and one truncation (with
the L2 term and the intercept step) gives the update. lr / m keeps 13 significant bits
(a relative error <= 1.2e-4 of the step size); |X^T r| must stay below 2^28. A last,
shorter batch and a decaying step size take the unfused step. What each party learns is
unchanged: the scaled labels are shared like the labels.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.errors import ModelError, ProtocolError
from ...core.prg import Prg
from ...mpc import MpcDevice, SecretArray, concatenate, functions
from ...mpc.masked import BlockMatrix
from ...runtime.collectives import broadcast
from ...runtime.device import PartyObject
from ...runtime.persist import ModelPart
from ..arrays_json import arrays_from_json, arrays_to_json
from ..base import SecureEstimator, check_param, mpc_part_problem, mpc_part_public
from ..checks import announced_shape
from .features import (
    FeatureLayout,
    block_shapes,
    check_blocks,
    collect_blocks,
    prediction_rows,
)

__all__ = ["SecureLinearModel", "mul_consts", "public_permutation"]

LR_SCHEDULES = ("constant", "invscaling", "step")


def public_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation all parties derive identically from a public seed (the batch order is public).

    >>> sorted(public_permutation(5, 0).tolist())
    [0, 1, 2, 3, 4]
    """
    g = Prg(seed.to_bytes(16, "little"), stream="shuffle")
    return np.argsort(g.uint64(n), kind="stable")


def mul_consts(pairs: list[tuple[SecretArray, float]], sig_bits: int = 16) -> list[SecretArray]:
    """[x * c for (x, c) in pairs] for public reals c, in one truncation round.

    `x * c` would encode c with the device's frac_bits: lr / batch = 1e-5 becomes 3/2^18
    (15 % off), and scaling the residual before X^T r would leave each element a few bits.
    Here every c is encoded as round(c 2^k), with one k giving the smallest |c| `sig_bits`
    significant bits (and no constant more than 2^(sig_bits + 8)), and the products are
    truncated together by k. The truncations of semi2k and aby3 round stochastically
    (up with probability equal to the dropped fraction), so they are unbiased: adding
    half an ulp first would bias every step by +1/2 ulp (measured: w drifted by 1e-4 in
    30 steps). Exact while |x c| 2^(f + k) < 2^62: |x| < 2^28 for f = 18 when the
    constants are of similar size.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["a", "b"], dealer="d")
    ...     x = ctx.party("a").run(lambda: np.array([1000.0, -2000.0])).to(mpc)
    ...     y, = mul_consts([(x, 1e-5)])
    ...     out = y.reveal(to="a")
    ...     return np.round(out.value, 5).tolist() if ctx.me == "a" else None
    >>> simulate(prog, ["a", "b", "d"], mode="thread")["a"]
    [0.01, -0.02]
    """
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


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    """A tqdm bar over training steps at the party that asked for it (None when disabled)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)


@dataclass
class _TrainingData:
    """The masked training matrix and everything the loop needs, set up once per fit."""

    Xm: BlockMatrix
    y_train: SecretArray
    sw_train: SecretArray | None
    val_block: BlockMatrix | None
    val_rows: np.ndarray | None
    y: PartyObject | SecretArray  # the labels as passed to fit (in clear at a label holder, or secret)
    n_train: int
    m: int
    n_batches: int
    train_rows: np.ndarray | None = None  # positions of the training rows in y (public)


class SecureLinearModel(SecureEstimator):
    """Shared training loop of SS-LR and SS-GLM (mini-batch or full-batch gradient descent).

    Subclasses spell out their hyperparameters in `__init__` (the shared ones are listed
    in `_init_common`) and implement `_mean`, `_residual`, `_val_score`; see the module
    docstring for what each party learns.
    """

    error = ModelError
    _fitted_attr = "w_shared_"

    device: MpcDevice

    def _init_common(self, mpc: MpcDevice, epochs: Any, batch_size: Any, learning_rate: Any, lr_schedule: Any, lr_decay: Any,
                     l2: Any, l1: Any, fit_intercept: Any, early_stopping: Any, validation_fraction: Any,
                     n_iter_no_change: Any, tol: Any, reveal: Any, random_state: Any, verbose: Any) -> None:
        """Store the shared hyperparameters unchanged (scikit-learn contract)."""
        self.device = mpc
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

    @property
    def mpc(self) -> MpcDevice:
        """The MPC device the model computes on (its first argument)."""
        return self.device

    # -- hyperparameters -------------------------------------------------------------
    def _validate_params(self) -> None:
        """Check the hyperparameters that need no context (run by `__init__` and `fit`)."""
        E = ModelError
        check_param("epochs", self.epochs, lambda v: int(v) == v and v >= 1, "", error=E, message="epochs must be >= 1")
        check_param("batch_size", self.batch_size, lambda v: v is None or (int(v) == v and v >= 1), "", error=E,
                    message="batch_size must be >= 1 or None (full batch)")
        check_param("lr_schedule", self.lr_schedule, lambda v: v in LR_SCHEDULES, "", error=E,
                    message=f"lr_schedule must be constant, invscaling or step, got {self.lr_schedule!r}")
        check_param("learning_rate", self.learning_rate, lambda v: v > 0, "", error=E,
                    message=f"learning_rate must be > 0, got {self.learning_rate}")
        check_param("l2", (self.l2, self.l1, self.lr_decay), lambda v: min(v) >= 0, "", error=E,
                    message=f"l2, l1 and lr_decay must be >= 0, got l2={self.l2}, l1={self.l1}, lr_decay={self.lr_decay}")
        check_param("random_state", self.random_state, lambda v: int(v) == v and v >= 0, "", error=E,
                    message=f"random_state must be an integer >= 0, got {self.random_state!r}")

    def _validate_fit_params(self) -> None:
        """Checks that need the job (the parties) or only matter for training."""
        ctx = self.ctx
        if self.reveal not in ("owners", "shared") and self.reveal not in ctx.parties:
            raise ModelError(f"reveal must be 'owners', 'shared' or a party of the cluster {ctx.parties}, got {self.reveal!r}",
                             field="reveal")
        if self.early_stopping and not 0.0 < self.validation_fraction < 1.0:
            raise ModelError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}",
                             field="validation_fraction")

    # -- hooks -------------------------------------------------------------------------
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

    def _check_labels(self, y: np.ndarray) -> str | None:
        """At the label holder: why these labels are unusable (None if fine)."""
        return None

    def _before_training(self, y: PartyObject | SecretArray) -> None:
        """Hook run at every party after the inputs are checked, before any sharing."""

    def _needs_label_holder(self) -> tuple[str, str] | None:
        """(field, setting) of a hyperparameter that needs the labels in clear at a label holder."""
        if self.early_stopping:
            return "early_stopping", "early_stopping=True (the validation loss is computed in clear)"
        return None

    def _sample_weights(self, y: SecretArray) -> SecretArray | None:
        return None

    def _lr(self, step: int, epoch: int) -> float:
        if self.lr_schedule == "invscaling":
            return self.learning_rate / (1.0 + self.lr_decay * step)
        if self.lr_schedule == "step":
            return self.learning_rate * (self.lr_decay or 0.5) ** epoch
        return self.learning_rate

    # -- fit ---------------------------------------------------------------------------
    def fit(self, X: Any, y: PartyObject | SecretArray, feature_names: dict | None = None) -> SecureLinearModel:
        """Train on the rows of X (a VDataFrame or {party: PartyObject}) and labels y.

        `y` is the label holder's PartyObject, or a SecretArray on the model's device when
        the labels are already secret-shared (no label holder: see the module docstring for
        what changes). Rows must be aligned across parties (PSI first). Bad input raises
        `ModelError` at every party alike, naming the party and the field.

        >>> from jointml.mpc import MpcDevice
        >>> from jointml.ml.linear import SSLogisticRegression
        >>> X = np.array([[1.0], [-1.0], [2.0], [-2.0]]); y = np.array([1.0, 0.0, 1.0, 0.0])
        >>> def prog(ctx):  # the labels enter already shared (here by "bank"): no label holder
        ...     mpc = MpcDevice(ctx, ["bank", "partner", "insurer"], protocol="aby3")
        ...     ys = ctx.party("bank").run(lambda: y).to(mpc)
        ...     m = SSLogisticRegression(mpc, epochs=3, batch_size=None, learning_rate=1.0, reveal="shared")
        ...     m.fit({"partner": ctx.party("partner").run(lambda: X)}, ys)
        ...     return m.label_owner_, m.predict(X={"partner": ctx.party("partner").run(lambda: X)}, to="partner")
        >>> out = simulate(prog, ["bank", "partner", "insurer"], mode="thread")
        >>> out["bank"][0] is None, (out["partner"][1].value > 0.5).tolist()
        (True, [True, False, True, False])
        """
        self._validate_params()
        parts, y, n = self._check_inputs(X, y, feature_names)
        ctx = self.ctx
        # A public identifier of this training run (the label holder draws it, or the first
        # MPC party for secret labels): saved parts of one model carry the same id, so parts
        # of different models are never mixed.
        drawer = y.owner if isinstance(y, PartyObject) else self.device.parties[0]
        mine = {"id": secrets.token_hex(8) if ctx.me == drawer else None}
        self.model_id_ = broadcast(ctx, drawer, meta=mine, name="model-id").meta["id"]
        self._before_training(y)
        t_setup = time.perf_counter()
        data = self._prepare(parts, y, n)
        t0 = time.perf_counter()
        self.setup_seconds_ = t0 - t_setup
        w, b = self._train(data, t0)
        self.w_shared_ = w
        self.b_shared_ = b
        self._reveal_weights(w, b)
        return self

    def _check_inputs(self, X: Any, y: Any, feature_names: dict | None) -> tuple[dict, PartyObject | SecretArray, int]:
        """Check the blocks and labels at every party alike; sets `features_`, `label_owner_`."""
        ctx = self.ctx
        parts, names = collect_blocks(X, feature_names)
        if isinstance(y, SecretArray):
            self._check_secret_labels(y)
        elif not isinstance(y, PartyObject):
            raise ModelError("y must be a PartyObject (the label holder's label vector) or a SecretArray on the "
                             f"model's MPC device (labels already secret-shared), got {type(y).__name__}", field="y")
        check_blocks(ctx, self.device, parts)
        self._validate_fit_params()
        shapes = block_shapes(ctx, parts)
        if isinstance(y, SecretArray):  # the shape of a secret is public: nothing to announce
            yshape, where = tuple(y.shape), "labels (secret-shared)"
        else:
            yshape = announced_shape(ctx, y, "label vector", ndim=(1, 2), check=self._check_labels)
            where = "labels@" + y.owner
        if len(yshape) == 2 and yshape[1] != 1:
            who = f"party '{y.owner}': " if isinstance(y, PartyObject) else "secret labels: "
            raise ModelError(f"{who}label vector must be 1-D (or one column), got shape {yshape}")
        rows: dict[str, int] = {p: s[0] for p, s in shapes.items()}
        rows[where] = yshape[0]
        if len(set(rows.values())) != 1:
            raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
        n = yshape[0]
        if n == 0:
            raise ModelError("no training rows (0 rows at every party)")
        if len(yshape) == 2:
            if isinstance(y, SecretArray):
                y = y.reshape(-1)
            else:
                y = ctx.party(y.owner).run(lambda v: np.asarray(v).reshape(-1), y)
        self.label_owner_ = y.owner if isinstance(y, PartyObject) else None
        self.features_ = FeatureLayout(list(parts), [shapes[p][1] for p in parts],
                                       [list(names.get(p, [f"{p}_x{i}" for i in range(shapes[p][1])])) for p in parts])
        if self.features_.d == 0:
            raise ModelError(f"X has no feature columns: {shapes}")
        return parts, y, n

    def _check_secret_labels(self, y: SecretArray) -> None:
        """Public checks of labels given as a secret (every party alike, no message)."""
        mpc = self.device
        if y.device is not mpc:
            raise ModelError(f"secret labels y live on {y.device!r}, not on the model's device {mpc!r}", field="y")
        if len(y.shape) not in (1, 2):
            raise ModelError(f"secret labels: label vector must be 1-D (or one column), got shape {y.shape}", field="y")
        if y.fxp not in (0, mpc.frac_bits):
            raise ModelError(f"secret labels have {y.fxp} fractional bits; the device uses {mpc.frac_bits} (or 0: integers)",
                             field="y")
        need = self._needs_label_holder()
        if need is not None:
            raise ModelError(f"{need[1]} needs a label holder; labels given as a SecretArray have none", field=need[0])

    def _prepare(self, parts: dict, y: PartyObject | SecretArray, n: int) -> _TrainingData:
        """Public train/validation split, shares of the labels, the feature blocks masked once."""
        mpc = self.device
        perm = public_permutation(n, int(self.random_state))
        if self.early_stopping:
            n_val = max(1, int(round(self.validation_fraction * n)))
            if n_val >= n:
                raise ModelError(f"early stopping needs training rows left after the validation split ({n} rows, "
                                 f"validation_fraction={self.validation_fraction})")
            val_rows, train_rows = np.sort(perm[:n_val]), perm[n_val:]
        else:
            val_rows, train_rows = None, perm
        parts = self._share_outside_blocks(parts)
        # labels already shared stay as they are (integers are lifted to fixed point locally)
        ys = y.astype_fxp() if isinstance(y, SecretArray) else y.to(mpc, fxp=True)
        # Order training rows once by the public permutation so batches are contiguous;
        # each party's block is masked once (plaintext blocks by their owner alone).
        Xm = BlockMatrix(mpc, parts, rows=train_rows)
        y_train = ys[train_rows]
        sw_train = self._sample_weights(y_train)
        val_block = BlockMatrix(mpc, parts, rows=val_rows) if self.early_stopping else None
        n_train = len(train_rows)
        m = n_train if self.batch_size is None else min(int(self.batch_size), n_train)
        return _TrainingData(Xm, y_train, sw_train, val_block, val_rows, y, n_train, m, int(math.ceil(n_train / m)),
                             train_rows)

    def _share_outside_blocks(self, parts: dict) -> dict:
        """The blocks, with those held by a party outside the compute parties secret-shared.

        The private-matrix shortcut needs its owner among the compute parties."""
        mpc = self.device
        return {p: (o.to(mpc, fxp=True) if isinstance(o, PartyObject) and o.owner not in mpc.parties else o)
                for p, o in parts.items()}

    def _train(self, data: _TrainingData, t0: float) -> tuple[SecretArray, SecretArray]:
        """The epochs: gradient steps over the batches in a public order, early stopping."""
        ctx = self.ctx
        d = self.features_.d
        w, b = self._zeros(d), self._zeros(1)
        self._label_cache: tuple[float, int, SecretArray] | None = None
        best, bad_epochs = math.inf, 0
        self.history_: list[dict] = []
        step, seen = 0, 0
        batch_order_rng = Prg((int(self.random_state) + 1).to_bytes(16, "little"), stream="batches")
        lead = self.device.parties[0] if self.label_owner_ is None else self.label_owner_
        bar = _progress_bar(bool(self.verbose) and ctx.me == lead, int(self.epochs) * data.n_batches,
                            f"{type(self).__name__} [{ctx.me}]")
        # per-epoch checkpoints (e.g. jointml.orchestration.epochs.EpochCheckpoints): resume after
        # the last epoch every party saved, save after each epoch
        hook, first = ctx.options.get("ml.epoch_hook"), 0
        if hook is not None and (got := hook.resume(self, w, b)) is not None:
            first, w, b, kept = got
            self.history_, best, bad_epochs = list(kept["history"]), kept["best"], kept["bad_epochs"]
            step, seen = first * data.n_batches, first * data.n_train
        # rounds and seconds of the batch loop alone (benchmarks report rounds per batch)
        rounds0, t_loop = ctx.stats()["rounds"], time.perf_counter()
        for epoch in range(int(self.epochs)):
            order = np.argsort(batch_order_rng.uint64(data.n_batches), kind="stable") if data.n_batches > 1 else np.arange(1)
            if epoch < first:
                continue  # done before the crash (its public batch order is drawn all the same)
            for bi in order:
                if bar is not None:
                    bar.update(1)
                lo, hi = int(bi) * data.m, min(int(bi + 1) * data.m, data.n_train)
                w, b = self._step(data, w, b, slice(lo, hi), self._lr(step, epoch))
                step += 1
                seen += hi - lo
            rec: dict[str, Any] = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 3),
                                   "learning_rate": self._lr(step - 1, epoch)}
            stop = False
            if self.early_stopping:
                # Only the label holder learns the validation loss; the others learn the stop bit.
                score = self._validate(data, w, b)
                rec["val_loss"] = score
                if score is not None:
                    if score < best - self.tol:
                        best, bad_epochs = score, 0
                    else:
                        bad_epochs += 1
                assert self.label_owner_ is not None  # early stopping needs a label holder (checked in fit)
                got = broadcast(ctx, self.label_owner_, meta={"stop": bad_epochs >= self.n_iter_no_change}, name="early-stop")
                stop = bool(got.meta["stop"])
            self.history_.append(rec)
            if hook is not None:
                hook.after_epoch(self, epoch + 1, w, b, {"history": self.history_, "best": best, "bad_epochs": bad_epochs})
            if bar is not None:
                loss = f" val_loss={rec['val_loss']:.5f}" if rec.get("val_loss") is not None else ""
                bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs}{loss}")
            if stop:
                break
        if bar is not None:
            bar.close()
        self.loop_rounds_ = ctx.stats()["rounds"] - rounds0
        self.loop_seconds_ = time.perf_counter() - t_loop
        self.n_epochs_ = len(self.history_)
        self.n_iter_ = step
        self.n_samples_seen_ = seen
        return w, b

    def _step(self, data: _TrainingData, w: SecretArray, b: SecretArray, rows_b: slice,
              lr: float) -> tuple[SecretArray, SecretArray]:
        """One gradient step on the batch `rows_b` of the training rows."""
        scale = lr / (rows_b.stop - rows_b.start)
        fused = self._fused_labels(data, scale, rows_b.stop - rows_b.start)
        if fused is not None:
            return self._step_fused(data, w, b, rows_b, lr, scale, fused)
        # With a scale-generic link (seg3) the product's truncation is left to the
        # link, which truncates once at its end: one round fewer per batch.
        eta = data.Xm.matmul(w, rows=rows_b, truncate=not self._accepts_wide_eta())
        if self.fit_intercept:
            eta = eta + b
        r = self._residual(eta, data.y_train[rows_b])
        if data.sw_train is not None:
            r = r * data.sw_train[rows_b]
        scale = lr / (rows_b.stop - rows_b.start)
        # X^T r first (magnitude ~ batch), then the small public lr / m at full
        # precision: scaling r first would keep only a few bits of each element.
        # One truncation round for the gradient, the L2 term and the intercept step.
        gx, gb = self._gradient_sums(data.Xm.rmatmul_t(r, rows=rows_b), r.sum() if self.fit_intercept else None)
        pairs = [(gx, scale)]
        if self.l2:
            pairs.append((w, lr * self.l2))
        if gb is not None:
            pairs.append((gb, scale))
        upd = mul_consts(pairs)
        g = upd[0] + upd[1] if self.l2 else upd[0]
        w = w - g
        if self.l1:
            t = lr * self.l1
            w = w - functions.clip(w, -t, t)  # proximal step (soft threshold): w - clip(w, -t, t)
        if self.fit_intercept:
            b = b - upd[-1]
        return w, b

    def _fused_labels(self, data: _TrainingData, scale: float, m: int) -> tuple[int, SecretArray] | None:
        """(F, scale * y_train at F fractional bits) when this step can take the fused path, else None.

        The fused path needs a link with a fused scaled residual (`_scaled_residual`), no
        sample weights, every block at the device's scale, the plain gradient (DP-SGD adds
        noise in `_gradient_sums`) and a full batch at the step size whose scaled labels were
        computed (one truncation of the label vector per distinct step size; a last, shorter
        batch or a decaying schedule take the unfused path)."""
        f = self.device.frac_bits
        if (data.sw_train is not None or not self._has_scaled_residual() or m != data.m
                or type(self)._gradient_sums is not SecureLinearModel._gradient_sums
                or any(getattr(blk, "fxp", None) != f for blk in data.Xm.blocks)):
            return None
        cached = getattr(self, "_label_cache", None)
        if cached is not None and cached[0] == scale:
            return cached[1], cached[2]
        if cached is not None and self.lr_schedule == "invscaling":
            return None  # a new step size every step: scaling the labels each time would cost a round
        # scale * 2^F in [2^16, 2^17): 16 significant bits; X^T u then has f + F bits (|X^T r| < 2^28)
        F = 16 - math.floor(math.log2(scale))
        if not 1 <= F <= 40:
            return None
        yc = self._scale_labels(data, scale, F)
        self._label_cache = (scale, F, yc)
        return F, yc

    def _scale_labels(self, data: _TrainingData, scale: float, F: int) -> SecretArray:
        """scale * y_train at F fractional bits: computed in clear and shared by the label holder
        (no round when it is a compute party), or with one truncation when y is already secret."""
        mpc, ctx, n = self.device, self.ctx, data.n_train
        if isinstance(data.y, PartyObject) and data.train_rows is not None:
            owner, rows = data.y.owner, data.train_rows
            enc = None
            if ctx.me == owner:
                v = np.asarray(data.y.value, dtype=np.float64).reshape(-1)[rows] * scale
                enc = np.round(v * 2.0**F).astype(np.int64).view(np.uint64)
            if ctx.me != owner and ctx.me not in mpc.members:
                return SecretArray(mpc, None, (n,), F)
            return SecretArray(mpc, mpc.proto.share_in(owner, enc, (n,)), (n,), F)
        y = data.y_train.astype_fxp() if not data.y_train.fxp else data.y_train
        K = 30 - math.floor(math.log2(scale))  # scale * 2^K ~ 2^30: exact enough, |y| 2^(f + K) < 2^49
        yr = y * int(round(scale * 2.0**K))
        return SecretArray(mpc, yr.proto.trunc(yr.share, y.fxp + K - F, yr.shape), yr.shape, F)

    def _has_scaled_residual(self) -> bool:
        """True when `_scaled_residual` is implemented (the link has a fused scaled form)."""
        return False

    def _scaled_residual(self, eta: SecretArray, scale: float, fxp: int) -> SecretArray:
        """scale * mean(eta) at `fxp` fractional bits, the selection and the rescale in one product."""
        raise NotImplementedError

    def _step_fused(self, data: _TrainingData, w: SecretArray, b: SecretArray, rows_b: slice, lr: float,
                    scale: float, fused: tuple[int, SecretArray]) -> tuple[SecretArray, SecretArray]:
        """The step with the fewest rounds: u = scale (mean(eta) - y) comes at F fractional bits out
        of the link's one fused product (the labels were scaled once), X^T u keeps f + F bits, and
        one truncation by F gives the weight and intercept updates (the L2 term joins it)."""
        F, yc = fused
        mpc = self.device
        f = mpc.frac_bits
        eta = data.Xm.matmul(w, rows=rows_b, truncate=False)
        if self.fit_intercept:
            eta = eta + b
        u = self._scaled_residual(eta, scale, F) - yc[rows_b]
        g = data.Xm.rmatmul_t(u, rows=rows_b, truncate=False)  # f + F fractional bits (checked in _fused_labels)
        if self.l2:
            g = g + SecretArray(mpc, (w * int(round(lr * self.l2 * 2.0**F))).share, w.shape, f + F)
        parts = [g]
        if self.fit_intercept:
            gb = u.sum().reshape(1) * (1 << f)  # F -> f + F fractional bits (integer scaling: free)
            parts.append(SecretArray(mpc, gb.share, gb.shape, f + F))
        cat = concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        # |X^T u| 2^(f+F) is that of a product at the device's scale (scale 2^F < 2^17 < 2^f): the
        # protocol's product truncation applies where it has one (semi2k, 2 parties: local, no round)
        trunc = getattr(cat.proto, "trunc_product", cat.proto.trunc)
        upd = SecretArray(mpc, trunc(cat.share, F, cat.shape), cat.shape, f)
        d = self.features_.d
        w = w - upd[:d]
        if self.l1:
            t = lr * self.l1
            w = w - functions.clip(w, -t, t)
        if self.fit_intercept:
            b = b - upd[d:]
        return w, b

    def _gradient_sums(self, gx: SecretArray, gb: SecretArray | None) -> tuple[SecretArray, SecretArray | None]:
        """The batch's summed gradients (X^T r, sum r) before scaling: a hook (DP-SGD adds its noise here)."""
        return gx, gb

    def _zeros(self, k: int) -> SecretArray:
        """A public zero vector as a (trivially) shared fixed-point secret."""
        mpc = self.device
        share = mpc.proto.share_in(mpc.parties[0], np.zeros(k, dtype=np.uint64) if mpc.ctx.me == mpc.parties[0] else None, (k,))
        return SecretArray(mpc, share, (k,), mpc.frac_bits)

    def _validate(self, data: _TrainingData, w: SecretArray, b: SecretArray) -> float | None:
        """Validation loss of the current weights: a number at the label holder, None elsewhere."""
        assert data.val_block is not None and data.val_rows is not None
        eta = data.val_block.matmul(w)
        if self.fit_intercept:
            eta = eta + b
        pred = self._mean(eta).reveal(to=self.label_owner_)
        if self.ctx.me != self.label_owner_ or not isinstance(data.y, PartyObject):
            return None
        return float(self._val_score(np.asarray(data.y.value, dtype=np.float64)[data.val_rows], pred.value))

    def _reveal_weights(self, w: SecretArray, b: SecretArray) -> None:
        """Open the weights as `reveal` says; sets this party's view (`coef_`, `coef_by_party_`, `intercept_`)."""
        ctx = self.ctx
        feats = self.features_
        self.coef_: np.ndarray | None = None  # this party's view: {party: weights} it is allowed to see
        self.intercept_: float | None = None
        self.coef_by_party_: dict[str, np.ndarray] = {}
        if self.reveal == "shared":
            return
        offsets = feats.offsets()
        if self.reveal == "owners":
            for p, lo, hi in zip(feats.owners, offsets[:-1], offsets[1:]):
                v = w[lo:hi].reveal(to=p)
                if ctx.me == p:
                    self.coef_by_party_[p] = v.value
            if self.label_owner_ is None:  # secret labels: no label holder, the intercept stays shared
                return
            bi = b.reveal(to=self.label_owner_)
            if ctx.me == self.label_owner_:
                self.intercept_ = float(bi.value[0]) if self.fit_intercept else 0.0
        else:  # a party name (checked in fit)
            v = w.reveal(to=self.reveal)
            bi = b.reveal(to=self.reveal)
            if ctx.me == self.reveal:
                for p, lo, hi in zip(feats.owners, offsets[:-1], offsets[1:]):
                    self.coef_by_party_[p] = v.value[lo:hi]
                self.coef_ = v.value
                self.intercept_ = float(bi.value[0]) if self.fit_intercept else 0.0

    # -- prediction ----------------------------------------------------------------------
    def decision_function_shared(self, X: Any) -> SecretArray:
        """The linear predictor X w + b as a secret (nothing revealed).

        X has the training layout: the same parties in the same order, the same number of
        columns each, aligned rows. Plaintext blocks are masked by their owners (as in
        training), so the product costs traffic for X once, not a product of two secrets."""
        mpc = self.device
        if not hasattr(self, "w_shared_"):
            raise ModelError(f"{type(self).__name__} is not fitted: call fit() or load() first")
        parts, _ = collect_blocks(X)
        prediction_rows(self.ctx, parts, self.features_)
        parts = self._share_outside_blocks(parts)
        eta = BlockMatrix(mpc, parts).matmul(self.w_shared_)
        if self.fit_intercept:
            eta = eta + self.b_shared_
        return eta

    def predict_shared(self, X: Any) -> SecretArray:
        """The predicted mean (probability for logistic) as a secret (nothing revealed)."""
        return self._mean(self.decision_function_shared(X))

    def predict(self, X: Any, to: str | None = None) -> PartyObject:
        """Predicted mean (probability for logistic), revealed only to `to` (default: the label holder)."""
        to = to or getattr(self, "label_owner_", None)
        if to is None and hasattr(self, "w_shared_"):  # never reveal to everybody by default
            raise ModelError("the model has no label holder (it was trained on secret-shared labels): "
                             "name the party that receives the predictions with to=...", field="to")
        return self.predict_shared(X).reveal(to=to)

    # -- persistence (runtime.persist: one part per party) ----------------------------------
    def _part_public(self) -> dict[str, Any]:
        mpc = self.device
        return {**mpc_part_public(mpc), "features": self.features_.to_json(), "label_owner": self.label_owner_}

    def _part_state(self) -> dict[str, Any]:
        # a part holds this party's share, and only the weights this party may see in clear
        return {
            "w_share": arrays_to_json(self.w_shared_.export_share()),
            "b_share": arrays_to_json(self.b_shared_.export_share()),
            "coef_by_party": {p: np.asarray(v).tolist() for p, v in self.coef_by_party_.items()},
            "coef": None if self.coef_ is None else np.asarray(self.coef_).tolist(),
            "intercept": self.intercept_,
        }

    def _check_part(self, part: ModelPart) -> str | None:
        """A problem with this party's loaded part for the device (announced to every party)."""
        mpc = self.device
        me = mpc.ctx.me
        pub, state = part.public, part.state
        problem = mpc_part_problem(pub, mpc)
        if problem:
            return problem
        if (not state["w_share"]) == (me in mpc.parties):
            return f"party '{me}': the model part {'lacks' if me in mpc.parties else 'has'} a share of the weights"
        try:
            self._import_shares(state, FeatureLayout.from_json(pub["features"]).d)
        except (ModelError, ProtocolError) as e:
            return f"party '{me}': the model part's shares do not fit the device: {e}"
        return None

    def _import_shares(self, state: dict[str, Any], d: int) -> tuple[SecretArray, SecretArray]:
        """The saved shares of w (d,) and b (1,) as secrets (the protocol checks their layout)."""
        mpc = self.device
        w = mpc.import_share(arrays_from_json(state["w_share"], "saved share of w"), (d,))
        b = mpc.import_share(arrays_from_json(state["b_share"], "saved share of b"), (1,))
        return w, b

    def _restore(self, part: ModelPart) -> None:
        pub, state = part.public, part.state
        self.features_ = FeatureLayout.from_json(pub["features"])
        self.label_owner_ = pub["label_owner"]
        self.w_shared_, self.b_shared_ = self._import_shares(state, self.features_.d)
        self.coef_by_party_ = {p: np.array(v, dtype=np.float64) for p, v in state["coef_by_party"].items()}
        self.coef_ = None if state.get("coef") is None else np.array(state["coef"], dtype=np.float64)
        self.intercept_ = state["intercept"]
