"""mpc: SecretArray, protocols semi2k (n-party with dealer) and aby3 (3-party replicated),
correlated-randomness providers, and nonlinear functions."""

from .device import MpcDevice
from .secret_array import SecretArray, concatenate, stack

__all__ = ["MpcDevice", "SecretArray", "concatenate", "stack"]
