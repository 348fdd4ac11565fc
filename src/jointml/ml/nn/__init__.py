"""ml/nn: neural networks under MPC (`MPCMLPClassifier`) and split learning.

See docs/nn.md. The MPC MLP's programs are written in the DSL (`jointml.dsl`);
`jointml.ml.nn.plain` is its numpy twin and split learning's local models.
"""

from .mlp import MPCMLPClassifier, flat_params
from .plain import forward, init_params, one_hot, train_plaintext
from .split import SplitNNClassifier, direction_attack_auc, norm_attack_auc

__all__ = ["MPCMLPClassifier", "flat_params", "forward", "init_params", "one_hot", "train_plaintext",
           "SplitNNClassifier", "norm_attack_auc", "direction_attack_auc"]
