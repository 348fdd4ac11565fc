"""`SSLogisticRegression`: logistic regression trained under MPC on vertically partitioned data.

Security model and what each party learns: see `jointml.ml.linear.base` (the shared
loop). In addition, with `class_weight` the two class weights are public to the job
(with "balanced" they reveal the class balance); per-sample weights stay secret.

scikit-learn equivalent: LogisticRegression with C = 1 / (l2 n) (or C = 1 / (l1 n),
l1_ratio=1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import ModelError
from ...mpc import MpcDevice, SecretArray, functions
from ...runtime.collectives import agree
from ...runtime.device import PartyObject
from ..base import check_param
from .base import SecureLinearModel

__all__ = ["SSLogisticRegression"]


class SSLogisticRegression(SecureLinearModel):
    """Logistic regression trained under MPC on vertically partitioned data.

    `sigmoid` selects the approximation used in training and prediction ("seg3",
    "poly", "accurate", "exp"; see `jointml.mpc.functions.sigmoid`). `class_weight` is None,
    "balanced" or {0: w0, 1: w1} (the weights multiply each sample's gradient; with
    "balanced" the label holder computes them from its labels and they stay secret).
    The other hyperparameters are those of the shared loop (`SecureLinearModel`).

    >>> from jointml.core.prg import public_rng
    >>> from jointml.mpc import MpcDevice
    >>> g = public_rng(0)
    >>> X = g.normal(size=(300, 4)); y = (X @ [1.0, -1.0, 0.5, 0.5] > 0).astype(float)
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    ...     xs = {"bank": ctx.party("bank").run(lambda: X[:, :2]), "partner": ctx.party("partner").run(lambda: X[:, 2:])}
    ...     model = SSLogisticRegression(mpc, epochs=2, batch_size=100, learning_rate=1.0)
    ...     model.fit(xs, ctx.party("bank").run(lambda: y))
    ...     p = model.predict_proba(xs)                 # revealed to the label holder only
    ...     return None if ctx.me != "bank" else float(np.mean((p.value > 0.5) == y))
    >>> simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"] > 0.9
    True
    """

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
        sigmoid: str = "seg3",
        class_weight: str | dict[int, float] | None = None,
    ):
        self._init_common(mpc, epochs, batch_size, learning_rate, lr_schedule, lr_decay, l2, l1, fit_intercept,
                          early_stopping, validation_fraction, n_iter_no_change, tol, reveal, random_state, verbose)
        self.sigmoid = sigmoid
        self.class_weight = class_weight
        # stored unchanged; also checked here so that a bad value fails at construction
        # (as it always did), and again in fit (after set_params)
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param("sigmoid", self.sigmoid, lambda v: v in functions.SIGMOID_MODES, "", error=ModelError,
                    message=f"sigmoid must be one of {functions.SIGMOID_MODES}, got {self.sigmoid!r}")
        cw = self.class_weight
        check_param("class_weight", cw, lambda v: v is None or v == "balanced" or isinstance(v, dict), "", error=ModelError,
                    message=f"class_weight must be None, 'balanced' or {{0: w0, 1: w1}}, got {cw!r}")

    def _mean(self, eta: SecretArray) -> SecretArray:
        return functions.sigmoid(eta, mode=self.sigmoid)

    def _accepts_wide_eta(self) -> bool:
        return self.sigmoid == "seg3"

    def _has_scaled_residual(self) -> bool:
        return self.sigmoid == "seg3"

    def _scaled_residual(self, eta: SecretArray, scale: float, fxp: int) -> SecretArray:
        # seg3's selection product, its final rescale and the step size in one multiplication
        return functions.sigmoid_seg3_scaled(eta, scale, fxp)

    def _residual(self, eta: SecretArray, y: SecretArray) -> SecretArray:
        return self._mean(eta) - y

    def _check_labels(self, y: np.ndarray) -> str | None:
        v = np.asarray(y)
        bad = ~((v == 0) | (v == 1))
        if bad.any():
            return f"must hold 0/1 labels; {int(bad.sum())} other values (first {v.reshape(-1)[np.argmax(bad.reshape(-1))]!r})"
        return None

    def _class_weights(self, y: PartyObject | None) -> dict[int, float]:
        """At the label holder: the two class weights (ModelError when unusable)."""
        if self.class_weight == "balanced":
            assert y is not None  # "balanced" needs the labels in clear
            pos = float(np.mean(np.asarray(y.value, dtype=np.float64)))
            if pos in (0.0, 1.0):
                raise ModelError("class_weight='balanced' needs both classes in the labels")
            return {0: 0.5 / (1 - pos), 1: 0.5 / pos}  # sklearn's n / (n_classes * n_c)
        assert isinstance(self.class_weight, dict)  # None and "balanced" are handled above (validated in fit)
        cw = {int(k): float(v) for k, v in self.class_weight.items()}
        if set(cw) - {0, 1}:
            raise ModelError(f"class_weight keys must be 0 and 1, got {sorted(cw)}")
        return {0: cw.get(0, 1.0), 1: cw.get(1, 1.0)}

    def _needs_label_holder(self) -> tuple[str, str] | None:
        if self.class_weight == "balanced":
            return "class_weight", "class_weight='balanced' (the class balance is computed in clear)"
        return super()._needs_label_holder()

    def _before_training(self, y: PartyObject | SecretArray) -> None:
        self.class_weight_: dict[int, float] | None = None
        if self.class_weight is None:
            return
        if isinstance(y, SecretArray):
            # no label holder; 'balanced' was refused in fit, fixed weights are public
            self.class_weight_ = self._class_weights(None)
            return
        cw, problem = None, None
        if self.ctx.me == y.owner:
            try:
                cw = self._class_weights(y)
            except ModelError as e:
                problem = f"party '{y.owner}': {e}"
        # The two class weights are public to the job (with 'balanced' they reveal the class
        # balance); per-sample weights stay secret because y does.
        got = agree(self.ctx, y.owner, problem, details={"w0": cw and cw[0], "w1": cw and cw[1]}, error=ModelError,
                    name="class-weight")[y.owner]
        self.class_weight_ = {0: float(got["w0"]), 1: float(got["w1"])}

    def _sample_weights(self, y: SecretArray) -> SecretArray | None:
        cw = self.class_weight_
        if cw is None:
            return None
        # y is secret 0/1: weight = w0 + (w1 - w0) * y, computed once without revealing y.
        return y * (cw[1] - cw[0]) + cw[0]

    def _val_score(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        p = np.clip(pred, 1e-6, 1 - 1e-6)
        return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))

    def predict_proba(self, X: Any, to: str | None = None) -> PartyObject:
        """The probability of class 1 per row, revealed only to `to` (default: the label holder)."""
        return self.predict(X, to)
