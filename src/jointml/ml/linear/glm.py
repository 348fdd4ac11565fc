"""`SSGLM`: generalised linear models trained under MPC on vertically partitioned data.

Security model and what each party learns: see `jointml.ml.linear.base` (the shared
loop); the family and power are public hyperparameters.

scikit-learn equivalents: Poisson/Gamma/TweedieRegressor with alpha = l2; Ridge with
alpha = l2 n (family "gaussian").
"""

from __future__ import annotations

import numpy as np

from ...core.errors import ModelError
from ...mpc import MpcDevice, SecretArray, functions
from .base import SecureLinearModel

__all__ = ["SSGLM"]


class SSGLM(SecureLinearModel):
    """Generalised linear model under MPC: family "gaussian" (identity link),
    "poisson", "gamma" or "tweedie" (log link, `power` in (1, 2)).

    Gradients of the deviance w.r.t. the linear predictor eta:
    gaussian eta - y; poisson e^eta - y; gamma 1 - y e^-eta; tweedie e^((2-p)eta) - y e^((1-p)eta).
    The log-link families use the secure exp (`jointml.mpc.functions.exp`); keep eta
    within a few units (standardise features, small learning rates). The other
    hyperparameters are those of the shared loop (`SecureLinearModel`).

    >>> from jointml.core.prg import public_rng
    >>> from jointml.mpc import MpcDevice
    >>> g = public_rng(1)
    >>> X = g.normal(size=(200, 2)) * 0.5; y = X @ [0.5, -0.3] + 0.2
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
    ...     xs = {"bank": ctx.party("bank").run(lambda: X[:, :1]), "partner": ctx.party("partner").run(lambda: X[:, 1:])}
    ...     m = SSGLM(mpc, family="gaussian", epochs=30, batch_size=None, learning_rate=1.0, reveal="bank")
    ...     return m.fit(xs, ctx.party("bank").run(lambda: y)).coef_
    >>> np.round(simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"], 1)
    array([ 0.5, -0.3])
    """

    FAMILIES = ("gaussian", "poisson", "gamma", "tweedie")

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
        family: str = "gaussian",
        power: float = 1.5,
    ):
        self._init_common(mpc, epochs, batch_size, learning_rate, lr_schedule, lr_decay, l2, l1, fit_intercept,
                          early_stopping, validation_fraction, n_iter_no_change, tol, reveal, random_state, verbose)
        self.family = family
        self.power = power
        # stored unchanged; also checked here so that a bad value fails at construction
        # (as it always did), and again in fit (after set_params)
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.family not in self.FAMILIES:
            raise ModelError(f"family must be one of {self.FAMILIES}, got {self.family!r}", field="family")
        if self.family == "tweedie":
            try:
                ok = 1 < self.power < 2
            except TypeError:
                ok = False
            if not ok:
                raise ModelError("tweedie power must be in (1, 2)", field="power")

    def _mean(self, eta: SecretArray) -> SecretArray:
        if self.family == "gaussian":
            return eta
        return functions.exp(eta)

    def _residual(self, eta: SecretArray, y: SecretArray) -> SecretArray:
        if self.family == "gaussian":
            return eta - y
        if self.family == "poisson":
            return functions.exp(eta) - y
        if self.family == "gamma":
            return 1.0 - y * functions.exp(-eta)
        p = self.power
        return functions.exp(eta * (2 - p)) - y * functions.exp(eta * (1 - p))

    def _check_labels(self, y: np.ndarray) -> str | None:
        v = np.asarray(y, dtype=np.float64)
        if self.family == "gamma" and (v <= 0).any():
            return f"must be > 0 for family 'gamma'; {int((v <= 0).sum())} values are not"
        if self.family in ("poisson", "tweedie") and (v < 0).any():
            return f"must be >= 0 for family '{self.family}'; {int((v < 0).sum())} values are negative"
        return None

    def _val_score(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        mu = np.maximum(pred, 1e-9)
        if self.family == "gaussian":
            return float(np.mean((y_true - pred) ** 2))
        if self.family == "poisson":
            return float(np.mean(mu - y_true * np.log(mu)))
        if self.family == "gamma":
            return float(np.mean(y_true / mu + np.log(mu)))
        p = self.power
        return float(np.mean(mu ** (2 - p) / (2 - p) - y_true * mu ** (1 - p) / (1 - p)))
