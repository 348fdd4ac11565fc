"""`DPSSLogisticRegression`: SS-LR trained with DP-SGD under MPC (record-level (epsilon, delta)).

The loop of `SecureLinearModel` with two changes:

1. **Per-example gradient bound, at the owners.** Each party clips each of its rows to
   L2 norm ``clip * sqrt(d_p / d)`` (d_p its feature count) in plaintext before sharing,
   so every joint row has ||x_i|| <= clip. For logistic regression the per-example
   gradient is ``r_i * (x_i, 1)`` with ``r_i = sigmoid(eta_i) - y_i`` in [-1, 1], so its norm
   is at most ``C_g = sqrt(clip^2 + 1)`` (``clip`` without intercept): the per-example
   clipping of DP-SGD holds by construction, with no comparison under MPC.
2. **Noise inside MPC.** Each batch's summed gradient (X^T r, sum r) gets discrete
   Gaussian noise from every compute party (:func:`jointml.dp.secure.add_noise`) before it
   is scaled and applied: no party ever sees a noiseless gradient, and each party's noise
   alone meets the guarantee (so with n compute parties the model carries n times the
   variance).

Accounting: the batches are a public partition of the rows (the public permutation of
`random_state`), so each record is in exactly one batch per epoch: an epoch is one
Gaussian mechanism per record, of replace-one sensitivity 2 C_g. The (epsilon, delta)
budget is split evenly over the epochs in zCDP and composed by the RDP accountant;
`history_[e]["epsilon"]` is the epsilon after epoch e+1 and `epsilon_` the total. No
amplification by subsampling is claimed: the batch membership is public to the compute
parties, so Poisson subsampling would not hide it from them (it would from outsiders, who
see only the released weights; that tighter figure is not reported).

What each party learns: as `SSLogisticRegression` (see `jointml.ml.linear.base`); the
revealed weights are a DP release of the training rows (post-processing of noisy
gradients), at the stated epsilon. Early stopping and class weights (which use labels in
clear outside the DP mechanism) are refused.

>>> from jointml.core.prg import public_rng
>>> from jointml.mpc import MpcDevice
>>> g = public_rng(0)
>>> X = g.normal(size=(2000, 4)); y = (X @ [1.0, -1.0, 0.5, 0.5] > 0).astype(float)
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
...     xs = {"bank": ctx.party("bank").run(lambda: X[:, :2]), "partner": ctx.party("partner").run(lambda: X[:, 2:])}
...     m = DPSSLogisticRegression(mpc, epsilon=8.0, delta=1e-5, clip=2.0, epochs=2, batch_size=500, learning_rate=2.0)
...     m.fit(xs, ctx.party("bank").run(lambda: y))
...     p = m.predict_proba(xs)
...     return None if ctx.me != "bank" else (float(np.mean((p.value > 0.5) == y)), m.epsilon_ <= 8.0)
>>> acc, ok = simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"]
>>> acc > 0.85, ok
(True, True)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ...core.errors import ModelError
from ...dp.accounting import Accountant, PrivacyEvent, rho_for
from ...dp.budget import BudgetLedger, enforce
from ...dp.secure import add_noise
from ...mpc import MpcDevice, SecretArray, concatenate
from ...runtime.device import PartyObject
from .logistic import SSLogisticRegression

__all__ = ["DPSSLogisticRegression"]


def _clip_rows(X: Any, bound: float) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X.reshape(len(X), -1), axis=1) / bound
    return X / np.maximum(norms, 1.0).reshape((-1,) + (1,) * (X.ndim - 1))


class DPSSLogisticRegression(SSLogisticRegression):
    """SS-LR with DP-SGD: `epsilon`, `delta` the total budget of `fit`, `clip` the joint row norm bound.

    Other hyperparameters as `SSLogisticRegression` (no early stopping, no class weights).
    `fit(..., ledger=, sources=, release=)`: each data owner (feature holders and the label
    holder) charges its own ledger for its source before anything is shared; a refusal
    anywhere stops `fit` at every party.
    After `fit`: `epsilon_` (at `delta`), `noise_multiplier_` (sigma / (2 C_g)), `events_`,
    and `history_[e]["epsilon"]`.
    """

    def __init__(
        self,
        mpc: MpcDevice,
        *,
        epsilon: float = 8.0,
        delta: float = 1e-5,
        clip: float = 1.0,
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
        # every hyperparameter spelled out: the scikit-learn contract (get_params/set_params)
        super().__init__(mpc, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, lr_schedule=lr_schedule,
                         lr_decay=lr_decay, l2=l2, l1=l1, fit_intercept=fit_intercept, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol,
                         reveal=reveal, random_state=random_state, verbose=verbose, sigmoid=sigmoid,
                         class_weight=class_weight)
        self.epsilon = epsilon
        self.delta = delta
        self.clip = clip

    def fit(self, X: Any, y: PartyObject | SecretArray, feature_names: dict | None = None, *,
            ledger: BudgetLedger | None = None, sources: Mapping[str, str] | str = "default",
            release: str | None = None) -> DPSSLogisticRegression:
        """Train with DP-SGD; with `release`, charge every data owner's ledger first (see the class).

        `ledger` is this party's own `BudgetLedger` (None at parties holding no data);
        `sources` names each owner's data source; `release` is the id charged (the same at
        every party). A budget is a property of the data, not of the model: it is not saved.
        """
        self._budget = (ledger, sources, release)
        super().fit(X, y, feature_names)
        return self

    def _before_training(self, y: PartyObject | SecretArray) -> None:
        """Charge every data owner's source (epsilon, delta) before anything is shared."""
        super()._before_training(y)
        ledger, src, release = getattr(self, "_budget", (None, "default", None))
        if release is None:
            if ledger is not None:
                raise ModelError("a privacy ledger needs a release id (release=...) to be charged", field="release")
            return
        owners = list(self.features_.owners) + ([y.owner] if isinstance(y, PartyObject) else [])
        charges = {p: [(src if isinstance(src, str) else src.get(p, "default"), float(self.epsilon), float(self.delta))]
                   for p in dict.fromkeys(owners)}
        enforce(self.ctx, ledger if self.ctx.me in charges else None, charges, release=str(release))

    def _validate_fit_params(self) -> None:
        super()._validate_fit_params()
        if not (self.epsilon > 0 and 0 < self.delta < 1 and self.clip > 0):
            raise ModelError("DP-SGD needs epsilon > 0, 0 < delta < 1 and clip > 0", field="epsilon")
        if self.early_stopping:
            raise ModelError("early stopping reveals validation losses outside the DP mechanism: not with DP-SGD",
                             field="early_stopping")
        if self.class_weight is not None:
            raise ModelError("class weights scale gradients past the DP bound: not with DP-SGD", field="class_weight")

    def _prepare(self, parts: dict, y: PartyObject | SecretArray, n: int) -> Any:
        feats = self.features_
        clipped = {}
        for p, o in parts.items():
            if not isinstance(o, PartyObject):
                raise ModelError("DP-SGD clips rows at their owner: feature blocks must be PartyObjects, not shares",
                                 party=p, field="X")
            bound = float(self.clip) * math.sqrt(feats.widths[feats.owners.index(p)] / feats.d)
            clipped[p] = self.ctx.party(o.owner).run(_clip_rows, o, bound)
        data = super()._prepare(clipped, y, n)
        # the budget: rho over the epochs (parallel composition within an epoch, batches are disjoint)
        self._c_g = math.sqrt(float(self.clip) ** 2 + (1.0 if self.fit_intercept else 0.0))
        self._rho_epoch = rho_for(float(self.epsilon), float(self.delta)) / int(self.epochs)
        self.noise_multiplier_ = 1 / math.sqrt(2 * self._rho_epoch)
        self._dp_event: PrivacyEvent | None = None
        return data

    def _gradient_sums(self, gx: SecretArray, gb: SecretArray | None) -> tuple[SecretArray, SecretArray | None]:
        d = gx.shape[0]
        v = gx if gb is None else concatenate([gx, gb.reshape(1)])
        # delta=0 with rho: no per-batch epsilon (the epochs are accounted together in _train)
        noisy = add_noise(v, 2 * self._c_g, float(self.epsilon), 0.0, mechanism="gaussian", dim=v.shape[0],
                          rho=self._rho_epoch)
        self._dp_event = noisy.event
        out = noisy.value
        return (out, None) if gb is None else (out[:d], out[d].reshape(()))

    def _train(self, data: Any, t0: float) -> tuple[SecretArray, SecretArray]:
        w, b = super()._train(data, t0)
        acc = Accountant("rdp")
        self.events_: list[PrivacyEvent] = []
        for rec in self.history_:
            assert self._dp_event is not None
            acc.add(self._dp_event)
            self.events_.append(self._dp_event)
            rec["epsilon"] = acc.epsilon(float(self.delta))
        self.epsilon_ = self.history_[-1]["epsilon"] if self.history_ else 0.0
        return w, b
