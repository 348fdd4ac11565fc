"""Neural networks as pipeline models: `split_nn` (split learning) and `mpc_mlp` (an MLP
trained under MPC), with the components `split_nn.train` / `split_nn.predict` and
`mpc_mlp.train` / `mpc_mlp.predict` (the `train` and `predict` components with the model fixed).

What each party learns is the model's own security model: `split_nn` shows the label
holder every party's cut-layer activations and each feature party the gradients w.r.t. its
own activations (`jointml.ml.nn.split`, with the defences `marvell_sumkl` (Marvell's
gradient perturbation), `gradient_epsilon` and `embedding_epsilon` (DP)); `mpc_mlp` keeps
features, labels and weights secret-shared and reveals the scores to `to` only
(`jointml.ml.nn.mlp`). Scores of `split_nn` go to the label holder only.

>>> from jointml.jobs.registry import COMPONENTS, MODELS
>>> COMPONENTS["split_nn.train"].fixed, MODELS["split_nn"].device, MODELS["mpc_mlp"].device
({'model': 'split_nn'}, 'party', 'mpc')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ...core.errors import ConfigError
from ..registry import PARAM_HELP, ModelEntry, alias, register_model
from . import predict as _predict  # noqa: F401 - the components aliased below must be registered
from . import train as _train  # noqa: F401

if TYPE_CHECKING:
    from ...ml.base import SecureEstimator

__all__ = ["SplitNNEntry", "MPCMLPEntry"]


class SplitNNEntry(ModelEntry):
    """`split_nn`: split learning (`jointml.ml.nn.SplitNNClassifier`): bottom models at the
    feature parties, the top model at the label holder; scores at the label holder only."""

    name = "split_nn"
    device = "party"
    features = "raw"

    def build(self, device: Any, *, bottom_hidden: list[int] | None = None, cut_dim: int = 8,
              top_hidden: list[int] | None = None, epochs: int = 10, batch_size: int = 32, learning_rate: float = 0.1,
              momentum: float = 0.9, seed: int = 0, gradient_epsilon: float | None = None,
              gradient_clip: float = 0.05, embedding_epsilon: float | None = None, embedding_clip: float = 4.0,
              marvell_sumkl: float | None = None, marvell_power: float | None = None) -> Any:
        from ...ml.nn import SplitNNClassifier

        return SplitNNClassifier(device, bottom_hidden=tuple(bottom_hidden or [16]), cut_dim=cut_dim,
                                 top_hidden=tuple(top_hidden if top_hidden is not None else [16]), epochs=epochs,
                                 batch_size=batch_size, learning_rate=learning_rate, momentum=momentum,
                                 random_state=seed, gradient_epsilon=gradient_epsilon, gradient_clip=gradient_clip,
                                 embedding_epsilon=embedding_epsilon, embedding_clip=embedding_clip,
                                 marvell_sumkl=marvell_sumkl, marvell_power=marvell_power)

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ...ml.nn import SplitNNClassifier

        return {"SplitNNClassifier": SplitNNClassifier}

    def scores(self, ctx: Any, model: Any, X: dict, to: str, label_party: str | None) -> Any:
        if to != label_party:
            raise ConfigError(f"predict: split_nn scores go to the label holder '{label_party}' only, not '{to}'",
                              field="to")
        proba = model.predict_proba(X)
        return ctx.party(proba.owner).run(lambda p: p[:, 1], proba)


class MPCMLPEntry(ModelEntry):
    """`mpc_mlp`: an MLP trained under MPC (`jointml.ml.nn.MPCMLPClassifier`); scores at `to` only."""

    name = "mpc_mlp"
    device = "mpc"
    features = "raw"

    def build(self, device: Any, *, hidden: list[int] | None = None, activation: str = "relu", epochs: int = 5,
              batch_size: int = 32, learning_rate: float = 0.1, momentum: float = 0.9, seed: int = 0,
              optimizer: Literal["sgd", "adam"] = "sgd", dropout: float = 0.0) -> Any:
        from ...ml.nn import MPCMLPClassifier

        return MPCMLPClassifier(device, hidden_layer_sizes=tuple(hidden or [16]), activation=activation,
                                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, momentum=momentum,
                                random_state=seed, optimizer=optimizer, dropout=dropout)

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ...ml.nn import MPCMLPClassifier

        return {"MPCMLPClassifier": MPCMLPClassifier}

    def scores(self, ctx: Any, model: Any, X: dict, to: str, label_party: str | None) -> Any:
        proba = model.predict_proba(X, to=to)
        return ctx.party(proba.owner).run(lambda p: p[:, 1], proba)


register_model(SplitNNEntry())
register_model(MPCMLPEntry())
for _m in ("split_nn", "mpc_mlp"):
    alias(f"{_m}.train", "train", f"`train` with `model: {_m}`.", model=_m)
    alias(f"{_m}.predict", "predict", f"`predict` of a `{_m}` model.")
PARAM_HELP.update({
    ("*", "bottom_hidden"): "split_nn: hidden layer sizes of each party's bottom model",
    ("*", "cut_dim"): "split_nn: width of each party's cut layer (what the label holder sees per row)",
    ("*", "top_hidden"): "split_nn: hidden layer sizes of the label holder's top model",
    ("*", "momentum"): "SGD momentum",
    ("*", "gradient_epsilon"): "split_nn: label-DP epsilon of the cut-layer gradients per epoch (None: no noise)",
    ("*", "gradient_clip"): "split_nn: L2 bound of each row's cut-layer gradient before the noise",
    ("*", "marvell_sumkl"): "split_nn: Marvell's bound on the sumKL between the classes' perturbed cut-layer gradients "
                            "(binary labels; smaller hides more; None: off)",
    ("*", "marvell_power"): "split_nn: Marvell's noise budget as a multiple of |g1 - g0|^2 (instead of marvell_sumkl)",
    ("*", "embedding_epsilon"): "split_nn: DP epsilon of the cut-layer outputs per epoch (None: no noise)",
    ("*", "embedding_clip"): "split_nn: L2 bound of each row's cut-layer output before the noise",
    ("*", "hidden"): "mpc_mlp: hidden layer sizes",
    ("*", "activation"): "mpc_mlp: hidden activation (relu or sigmoid)",
    ("*", "optimizer"): "mpc_mlp: sgd (with momentum) or adam (a secure square root and reciprocal per weight)",
    ("*", "dropout"): "mpc_mlp: dropout rate of the hidden units (public masks from the seed)",
})
