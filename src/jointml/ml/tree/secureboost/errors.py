"""SecureBoost's errors: model problems (`SecureBoostError`, a `ModelError`) and bad
hyperparameters (`SecureBoostParameterError`, also a `ParameterError` naming the field).

>>> issubclass(SecureBoostParameterError, SecureBoostError), issubclass(SecureBoostError, ValueError)
(True, True)
"""

from __future__ import annotations

from ....core.errors import ModelError, ParameterError

__all__ = ["SecureBoostError", "SecureBoostParameterError"]


class SecureBoostError(ModelError):
    """Bad input or inconsistent state; the message names the party concerned."""


class SecureBoostParameterError(SecureBoostError, ParameterError):
    """A hyperparameter is out of range; the message names the field."""
