"""Fixed-point encoding of reals into Z_2^64.

A real x is represented by round(x * 2^f) in two's complement. With f fractional
bits the ring holds |x| < 2^(63-f); a product of two encoded values before
truncation is 2f-bit scaled, so secure multiplication needs |x*y| < 2^(62-2f)
(about 6.7e7 for f=18 is the encode bound, 8192 for factors of a product).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import EncodingRangeError, ParameterError
from .ring import RING_DTYPE

DEFAULT_FRAC_BITS = 18


class FixedPoint:
    """Encoder for a fixed number of fractional bits.

    >>> fp = FixedPoint(18)
    >>> float(fp.decode(fp.encode(-1.5))[()])
    -1.5
    """

    def __init__(self, frac_bits: int = DEFAULT_FRAC_BITS):
        if not 0 <= frac_bits <= 40:
            raise ParameterError(f"frac_bits must be in [0, 40], got {frac_bits}", field="frac_bits")
        self.frac_bits = frac_bits
        self.scale = float(1 << frac_bits)
        # Keep one bit of headroom below the sign bit so that a sum of two shares of
        # an in-range value and a later positive shift in truncation cannot overflow.
        self.max_abs = float(2 ** (62 - frac_bits))

    def encode(self, x: npt.ArrayLike) -> np.ndarray:
        """Encode reals (array-like) to ring elements; raises on NaN/inf or out-of-range values."""
        x = np.asarray(x, dtype=np.float64)
        if x.size:
            if not np.isfinite(x).all():
                raise EncodingRangeError("cannot encode NaN or infinite values to fixed point")
            m = float(np.max(np.abs(x)))
            if m >= self.max_abs:
                raise EncodingRangeError(
                    f"value {m:g} is out of the fixed-point range |x| < {self.max_abs:g} "
                    f"(frac_bits={self.frac_bits})"
                )
        out: np.ndarray = np.rint(x * self.scale).astype(np.int64).view(RING_DTYPE)  # Any in numpy's stubs
        return out

    def decode(self, r: np.ndarray) -> np.ndarray:
        """Decode ring elements to float64."""
        return np.asarray(r, dtype=RING_DTYPE).view(np.int64).astype(np.float64) / self.scale

    def __repr__(self) -> str:
        return f"FixedPoint(frac_bits={self.frac_bits})"
