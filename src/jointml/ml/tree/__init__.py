"""Tree models on vertically partitioned data.

* :class:`SecureBoostClassifier` / :class:`SecureBoostRegressor`: SecureBoost with
  Paillier HE (label holder + feature holders); see :mod:`.secureboost` for the
  protocol and exactly what each party learns.
"""

from .secureboost import SecureBoostClassifier, SecureBoostError, SecureBoostRegressor

__all__ = ["SecureBoostClassifier", "SecureBoostError", "SecureBoostRegressor"]
