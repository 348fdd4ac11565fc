"""Secure logistic regression and GLMs on vertically partitioned data, trained under MPC.

- `SSLogisticRegression` (`logistic.py`) and `SSGLM` (`glm.py`): the estimators.
- `SecureLinearModel` (`base.py`): their shared mini-batch gradient-descent loop,
  prediction and persistence; the security model and the cost table are there.
- `DPSSLogisticRegression` (`dp_sgd.py`): SS-LR with DP-SGD (noise added inside MPC).
- `features.py`: the feature blocks' layout and the checks every party runs alike.

Errors are `ModelError`s naming the party and the field, raised alike at every party.
"""

from ...core.errors import ModelError
from .base import SecureLinearModel
from .dp_sgd import DPSSLogisticRegression
from .glm import SSGLM
from .logistic import SSLogisticRegression

__all__ = ["SSGLM", "ModelError", "SSLogisticRegression", "SecureLinearModel", "DPSSLogisticRegression"]
