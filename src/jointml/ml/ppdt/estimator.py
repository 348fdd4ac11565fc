"""`PPDTClassifier`: a joint model trained on the partners' PPDT releases (the `ppdt` pipeline model).

Training (every party calls `fit`: SPMD):
1. each party other than the label holder fits a `PPDT` on its own training rows and sends
   the label holder only the release: Z (n x k) and the DP k x k moment, with the noise
   scales (`ppdt_share`'s message); it keeps Q, its bounds and clip norm;
2. the label holder fits `NoiseAwareLinear` on its own columns, the labels and the releases,
   and sends each partner its block of the weights (k numbers);
3. scoring: each partner computes its partial score w_p . (scale(x) Q_p) on its own rows
   (`PPDT.project`, noise-free) and sends it to the label holder, who adds its own part and
   the intercept. `predict_proba` clips the linear score to [0, 1] (a linear probability
   model: it ranks like logistic regression; its level is not calibrated).

What each party learns:
- Label holder: each partner's release, an (epsilon, delta)-DP release of that partner's
  training rows (record-level, per source; `epsilon_` per partner); at scoring, each scored
  row's partial score of each partner (one linear projection of its features per row, as in
  plain vertical LR inference: outside the DP guarantee).
- Partner: its k weights, which depend on the label holder's columns and labels through
  B^T Z and Z^T y (as each party's own weights do in vertical LR with `reveal: owners`);
  nothing else.
- Semi-honest parties. A deviating label holder cannot see more than the DP release during
  training; a deviating partner can send any Z (the model suffers, no one's privacy).

>>> import pandas as pd
>>> from jointml.data.frames import from_pandas
>>> from jointml.ml.ppdt import make_credit
>>> X, y = make_credit(3000, 8, seed=5)
>>> bank = pd.DataFrame(X[:, :2], columns=["a", "b"]); shop = pd.DataFrame(X[:, 2:], columns=list("cdefgh"))
>>> def prog(ctx):
...     vdf = from_pandas(ctx, {"bank": bank, "shop": shop})
...     m = PPDTClassifier(ctx, k=3, epsilon=8.0, bounds=(-4.0, 4.0)).fit(vdf, ctx.party("bank").run(lambda: y))
...     p = m.predict_proba(vdf)
...     return p.value.shape if p.is_local else None
>>> simulate(prog, ["bank", "shop"], mode="thread")["bank"]
(3000, 2)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.errors import ModelError
from ...runtime.collectives import broadcast, gather, send_to
from ...runtime.device import PartyObject
from ...runtime.persist import ModelPart
from ..base import SecureEstimator, check_param
from ..checks import announced_shape
from ..linear.features import FeatureLayout, block_shapes, collect_blocks, prediction_rows
from .model import NoiseAwareLinear, Release
from .transform import PPDT

__all__ = ["PPDTClassifier"]


class PPDTClassifier(SecureEstimator):
    """The `ppdt` model (see the module docstring). The device is the party context.

    `k`: dimensions of each partner's release; `epsilon`, `delta`: each partner's budget for
    it; `bounds`: public (lo, hi) of the partners' features (one pair, or one per column);
    `clip_norm`, `method` ("pca" or "random"), `pca_share`: as in `PPDT`."""

    error = ModelError
    _fitted_attr = "layout_"

    def __init__(self, device: Any, *, k: int = 4, epsilon: float = 8.0, delta: float = 1e-5,
                 bounds: Any = (-4.0, 4.0), clip_norm: float = 1.0, method: str = "pca", pca_share: float = 0.2):
        self.device = device
        self.k = k
        self.epsilon = epsilon
        self.delta = delta
        self.bounds = bounds
        self.clip_norm = clip_norm
        self.method = method
        self.pca_share = pca_share

    def _validate_params(self) -> None:
        check_param("k", self.k, lambda v: int(v) == v >= 1, "an integer >= 1")
        check_param("epsilon", self.epsilon, lambda v: v > 0, "> 0 (math.inf: no noise, for comparison only)")
        check_param("delta", self.delta, lambda v: 0 < v < 1, "in (0, 1)")
        check_param("method", self.method, lambda v: v in ("pca", "random"), "'pca' or 'random'")

    def fit(self, X: Any, y: PartyObject, feature_names: dict | None = None) -> PPDTClassifier:
        """Train on X (a VDataFrame or {party: PartyObject}) and the label holder's 0/1 labels y."""
        self._validate_params()
        ctx = self.ctx
        parts, names = collect_blocks(X, feature_names)
        if not isinstance(y, PartyObject):
            raise ModelError(f"y must be the label holder's PartyObject, got {type(y).__name__}", field="y")
        shapes = block_shapes(ctx, parts)
        n = int(announced_shape(ctx, y, "label vector", ndim=(1,))[0])
        if any(int(s[0]) != n for s in shapes.values()):
            raise ModelError(f"row counts differ across parties: {({p: s[0] for p, s in shapes.items()})} vs {n} "
                             "labels; align the data with PSI first")
        self.label_owner_ = y.owner
        self.coef_ = np.zeros(0)  # a party without features (the dealer of a job) holds no weights
        self.layout_ = FeatureLayout(list(parts), [int(shapes[p][1]) for p in parts],
                                     [list(names.get(p, [f"{p}_x{i}" for i in range(shapes[p][1])])) for p in parts])
        partners = [p for p in parts if p != y.owner]
        for p in partners:
            if int(self.k) > int(shapes[p][1]):
                raise ModelError(f"party '{p}': k={self.k} exceeds its {shapes[p][1]} columns", field="k")
        releases = self._releases(parts, partners, n)
        own = parts[y.owner].value if y.owner in parts and ctx.me == y.owner else None
        weights: dict[str, np.ndarray] = {}
        if ctx.me == y.owner:
            yy = np.asarray(y.value, dtype=np.float64)
            if set(np.unique(yy).tolist()) != {0.0, 1.0}:
                raise ModelError(f"party '{y.owner}': PPDT models need 0/1 labels with both classes", field="y")
            own_X = np.zeros((n, 0)) if own is None else np.asarray(own, dtype=np.float64)
            m = NoiseAwareLinear().fit(own_X, yy, releases)
            self.intercept_, self.coef_ = m.intercept_, m.coef_["own"]
            weights = {p: m.coef_[p] for p in partners}
        for p in partners:  # each partner gets its own block only
            got = send_to(ctx, y.owner, p, arrays=[weights[p]] if ctx.me == y.owner else [], name="ppdt-weights",
                          dtypes=[np.float64], shapes=[(int(self.k),)])
            if ctx.me == p and got is not None:
                self.coef_ = got.arrays[0]
        self.__dict__.pop("model_id_", None)  # a new training gets a new id at save
        return self

    def _releases(self, parts: dict, partners: list[str], n: int) -> dict[str, Release]:
        """Each partner's PPDT release, sent to the label holder (it keeps its transform)."""
        ctx, k, out = self.ctx, int(self.k), {}
        eps: dict[str, float | None] = {}
        for p in partners:
            arrays, meta = [], None
            if ctx.me == p:
                t = PPDT(k, float(self.epsilon), float(self.delta), bounds=self.bounds, clip_norm=float(self.clip_norm),
                         method=self.method, pca_share=float(self.pca_share))
                Z = t.fit_transform(np.asarray(parts[p].value, dtype=np.float64))
                self.transform_ = t
                arrays = [np.ascontiguousarray(Z), np.ascontiguousarray(t.moment_)]
                meta = {"epsilon": None if math.isinf(t.epsilon_) else t.epsilon_, "noise": t.noise_scale_,
                        "moment_noise": t.moment_noise_}
            got = send_to(ctx, p, self.label_owner_, meta=meta, arrays=arrays, name="ppdt-release",
                          dtypes=[np.float64, np.float64], shapes=[(n, k), (k, k)])
            if got is not None and ctx.me == self.label_owner_:
                out[p] = Release(got.arrays[0], got.arrays[1], float(got.meta["moment_noise"]), float(got.meta["noise"]))
                eps[p] = got.meta["epsilon"]  # None: no noise (JSON has no infinity)
        # every party learns what each partner's release cost (public, for reports)
        got = broadcast(ctx, self.label_owner_, meta={"epsilon": eps} if ctx.me == self.label_owner_ else None,
                        name="ppdt-epsilon")
        self.epsilon_ = {str(p): (math.inf if v is None else float(v)) for p, v in got.meta["epsilon"].items()}
        return out

    def decision_function(self, X: Any) -> PartyObject:
        """The linear score per row, at the label holder only (each partner sends its partial score)."""
        ctx = self.ctx
        if not hasattr(self, "layout_"):
            raise ModelError("the model is not fitted: call fit() before decision_function()")
        parts, _ = collect_blocks(X, None)
        n = prediction_rows(ctx, parts, self.layout_)
        mine = parts[ctx.me].value if ctx.me in parts and parts[ctx.me].is_local else None
        partners = [p for p in self.layout_.owners if p != self.label_owner_]
        partial = []
        if ctx.me in partners and mine is not None:
            partial = [self.transform_.project(np.asarray(mine, dtype=np.float64)) @ self.coef_]
        got = gather(ctx, self.label_owner_, arrays=partial, senders=partners, name="ppdt-score")
        score = None
        if got is not None:
            own = np.zeros(n) if mine is None else np.asarray(mine, dtype=np.float64) @ self.coef_
            score = self.intercept_ + own + sum((got[p].expect([np.float64], [(n,)])[0] for p in partners),
                                                np.zeros(n))
        return ctx.party(self.label_owner_).run(lambda: score)

    def predict_proba(self, X: Any) -> PartyObject:
        """(n, 2): the linear score clipped to [0, 1] as the positive class, at the label holder only."""
        s = self.decision_function(X)
        return self.ctx.party(s.owner).run(lambda v: np.column_stack([1.0 - np.clip(v, 0, 1), np.clip(v, 0, 1)]), s)

    # -- persistence -------------------------------------------------------------------
    def _part_public(self) -> dict[str, Any]:
        return {"features": self.layout_.to_json(), "label_owner": self.label_owner_,
                "epsilon": {p: None if math.isinf(v) else v for p, v in self.epsilon_.items()}}

    def _part_state(self) -> dict[str, Any]:
        st: dict[str, Any] = {"coef": np.asarray(self.coef_).tolist()}
        if self.ctx.me == self.label_owner_:
            st["intercept"] = self.intercept_
        t = getattr(self, "transform_", None)
        if t is not None:  # the partner's own transform: its projection stays with it
            st["transform"] = {"components": t.components_.tolist(), "bounds": np.asarray(t.bounds).tolist(),
                               "clip_norm": t.clip_norm, "k": t.k}
        return st

    def _restore(self, part: ModelPart) -> None:
        self.layout_ = FeatureLayout.from_json(part.public["features"])
        self.label_owner_ = part.public["label_owner"]
        self.epsilon_ = {str(p): math.inf if v is None else float(v) for p, v in part.public["epsilon"].items()}
        self.coef_ = np.array(part.state["coef"], dtype=np.float64)
        if "intercept" in part.state:
            self.intercept_ = float(part.state["intercept"])
        if "transform" in part.state:
            tr = part.state["transform"]
            t = PPDT(int(tr["k"]), math.inf, bounds=tr["bounds"], clip_norm=float(tr["clip_norm"]))
            t.components_ = np.array(tr["components"], dtype=np.float64)
            self.transform_ = t
