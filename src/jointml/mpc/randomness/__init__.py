"""Correlated-randomness providers for dealer-based protocols (semi2k).

`CorrelationProvider` is the interface the kernels consume; `DealerProvider` expands it
from PRG seeds shared with a dealer party; `NullProvider` is what a party outside the
device holds. See `provider.py` for the contract.
"""

from .dealer import DealerProvider, NullProvider
from .provider import CompareMask, CorrelationProvider, Mask

__all__ = ["CorrelationProvider", "DealerProvider", "NullProvider", "Mask", "CompareMask"]
