"""`ppdt` as a pipeline model: the partners' privacy-preserving data transforms, a noise-aware
linear model at the label holder, each owner scoring its own rows (`jointml.ml.ppdt.PPDTClassifier`).

What each party learns is the model's own: the label holder gets each partner's release,
(epsilon, delta)-DP per source (record-level), and at scoring each row's partial scores;
each partner gets its k weights. No MPC and no dealer: the training is one message from
each partner and one back. `train` with `model: ppdt` runs it; `ppdt.train`/`ppdt.predict`
are the aliases.

>>> from jointml.jobs.registry import MODELS
>>> MODELS["ppdt"].device, MODELS["ppdt"].features
('party', 'raw')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ...core.errors import ConfigError
from ..registry import PARAM_HELP, ModelEntry, alias, register_model
from . import predict as _predict  # noqa: F401 - the components aliased below must be registered
from . import train as _train  # noqa: F401

if TYPE_CHECKING:
    from ...ml.base import SecureEstimator

__all__ = ["PPDTEntry"]


class PPDTEntry(ModelEntry):
    """`ppdt`: partners release DP transforms of their columns to the label holder, who fits a
    noise-aware linear model; scores at the label holder only."""

    name = "ppdt"
    device = "party"
    features = "raw"

    def build(self, device: Any, *, k: int = 4, epsilon: float = 8.0, delta: float = 1e-5, bounds: list[float] | None = None,
              clip_norm: float = 1.0, method: Literal["pca", "random"] = "pca") -> Any:
        from ...ml.ppdt import PPDTClassifier

        return PPDTClassifier(device, k=k, epsilon=epsilon, delta=delta,
                              bounds=tuple(bounds) if bounds is not None else (-4.0, 4.0), clip_norm=clip_norm,
                              method=method)

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ...ml.ppdt import PPDTClassifier

        return {"PPDTClassifier": PPDTClassifier}

    def scores(self, ctx: Any, model: Any, X: dict, to: str, label_party: str | None) -> Any:
        if to != label_party:
            raise ConfigError(f"predict: ppdt scores go to the label holder '{label_party}' only, not '{to}'",
                              field="to")
        s = model.decision_function(X)
        return ctx.party(s.owner).run(lambda v: v, s)

    def summary(self, ctx: Any, model: Any, frame: Any, label: str) -> dict[str, Any]:
        return {"ppdt_epsilon": {p: (None if e == float("inf") else round(e, 4)) for p, e in model.epsilon_.items()}}


register_model(PPDTEntry())
alias("ppdt.train", "train", "`train` with `model: ppdt`.", model="ppdt")
alias("ppdt.predict", "predict", "`predict` of a `ppdt` model.")
PARAM_HELP.update({
    ("*", "k"): "ppdt: dimensions of each partner's release",
    ("*", "bounds"): "ppdt: public [lo, hi] of the partners' features (after `scale`: e.g. [-4, 4])",
    ("*", "clip_norm"): "ppdt: L2 bound of each scaled row before the noise",
})
