"""core: ring and fixed-point encoding, cryptographic PRG, wire format, errors."""

from .errors import *  # noqa: F401,F403
from .fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from .prg import Prg, new_seed
from .ring import RING_DTYPE, matmul

__all__ = ["DEFAULT_FRAC_BITS", "FixedPoint", "Prg", "new_seed", "RING_DTYPE", "matmul"]
