"""Tree models on vertically partitioned data.

* :class:`SecureBoostClassifier` / :class:`SecureBoostRegressor`: SecureBoost with
  Paillier HE (label holder + feature holders); see :mod:`.secureboost` (a package) for the
  protocol and exactly what each party learns.
* :class:`SSXGBClassifier`: XGBoost-style trees trained fully under MPC (semi2k or
  aby3): gradients, statistics and leaf weights stay secret-shared; only the tree
  structure (party, feature, bin per node) is revealed; see :mod:`.ss_xgb`.
"""

from .secureboost import SecureBoostClassifier, SecureBoostError, SecureBoostRegressor
from .ss_xgb import SSXGBClassifier, SSXGBError

__all__ = ["SecureBoostClassifier", "SecureBoostError", "SecureBoostRegressor", "SSXGBClassifier", "SSXGBError"]
