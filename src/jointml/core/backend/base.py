"""The ring backend interface: what the protocol kernels need from an array library.

Shares are arrays of the ring Z_2^64 (and XOR-shared words of 8..64 bits). The kernels
in `jointml.mpc.protocols` do their ring arithmetic through one `RingBackend` object, so
that another array library (torch, for CUDA) can plug in without touching them. The
interface is deliberately narrow (tinygrad-style): creation, elementwise ring ops,
logical shifts, bitwise ops, the BLAS-backed ring matmul, bit packing for the wire,
random fill from the cryptographic PRG, and bytes in/out.

Contract for an implementation:

* arithmetic wraps mod 2^w for words of w bits (two's complement), with no warnings;
* the backend's arrays also support the Python operators ``+ - * ^ & | << ~`` and
  ``>>`` with those semantics on *unsigned* words (a backend whose native type is
  signed must return unsigned-behaving arrays or route ``>>`` through `rshift`); the
  kernels use the operators in their inner loops, where a method call per operation
  would cost time;
* dtypes are named by numpy dtypes (``np.uint8`` .. ``np.uint64``) at this interface;
* ops return arrays (never numpy scalars, even for 0-d operands).

Nothing here is secret-specific: a backend computes on whatever it is given.

>>> from jointml.core.backend import backend as bk
>>> int(bk.rshift(bk.asarray([2**63]), 62)[0])
2
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

__all__ = ["RingBackend"]

Arr = Any  # the backend's array type
DType = Any


class RingBackend(ABC):
    """Array operations the MPC kernels use for ring arithmetic (see the module docstring)."""

    name: str = "abstract"

    # -- creation and conversion --------------------------------------------------------
    @abstractmethod
    def asarray(self, x: Any, dtype: DType = None) -> Arr:
        """x as a backend array of `dtype`, without a copy when it already is one. Without
        `dtype`, an array (or a 0-d scalar result) keeps its own dtype; Python values become uint64."""

    @abstractmethod
    def copy(self, x: Any, dtype: DType = None) -> Arr:
        """A fresh, writable copy of x (as `dtype`, default: x's own)."""

    @abstractmethod
    def zeros(self, shape: Sequence[int], dtype: DType = None) -> Arr:
        """An array of zeros (uint64 by default)."""

    @abstractmethod
    def empty(self, shape: Sequence[int], dtype: DType = None) -> Arr:
        """An uninitialised array (uint64 by default)."""

    @abstractmethod
    def astype(self, x: Arr, dtype: DType) -> Arr:
        """Convert the words of x to another width (truncating or zero-extending)."""

    @abstractmethod
    def stack(self, xs: Sequence[Arr], axis: int = 0) -> Arr:
        """Stack equally shaped arrays along a new axis."""

    # -- ring arithmetic (wrap-around) -----------------------------------------------------
    @abstractmethod
    def add(self, a: Arr, b: Arr, out: Arr | None = None) -> Arr:
        """a + b mod 2^w (broadcasting); into `out` when given."""

    @abstractmethod
    def sub(self, a: Arr, b: Arr, out: Arr | None = None) -> Arr:
        """a - b mod 2^w."""

    @abstractmethod
    def mul(self, a: Arr, b: Arr, out: Arr | None = None) -> Arr:
        """a * b mod 2^w, elementwise."""

    @abstractmethod
    def neg(self, a: Arr) -> Arr:
        """-a mod 2^w."""

    @abstractmethod
    def matmul(self, a: Arr, b: Arr) -> Arr:
        """Ring matrix product a @ b mod 2^64 (1-D/2-D operands as numpy)."""

    # -- bits ---------------------------------------------------------------------------------
    @abstractmethod
    def xor(self, a: Arr, b: Arr, out: Arr | None = None) -> Arr:
        """a ^ b."""

    @abstractmethod
    def and_(self, a: Arr, b: Arr, out: Arr | None = None) -> Arr:
        """a & b."""

    @abstractmethod
    def lshift(self, a: Arr, k: int) -> Arr:
        """a << k (bits shifted out are lost)."""

    @abstractmethod
    def rshift(self, a: Arr, k: int) -> Arr:
        """Logical right shift a >> k of unsigned words."""

    @abstractmethod
    def packbits(self, bits: Arr) -> Arr:
        """Pack a flat array of 0/1 bytes into uint8 words, 8 bits per byte (for the wire)."""

    @abstractmethod
    def unpackbits(self, packed: Arr, count: int) -> Arr:
        """The first `count` bits of `packed` as a flat uint8 0/1 array."""

    # -- randomness and bytes --------------------------------------------------------------------
    @abstractmethod
    def random(self, prg: Any, shape: Sequence[int], dtype: DType = None) -> Arr:
        """Uniform words from a `jointml.core.prg.Prg` stream (the same stream as `prg.random`)."""

    @abstractmethod
    def to_bytes(self, x: Arr) -> bytes:
        """The raw little-endian words of x (C order)."""

    @abstractmethod
    def from_bytes(self, data: bytes, dtype: DType, shape: Sequence[int]) -> Arr:
        """The inverse of `to_bytes` (a writable array)."""

    def __repr__(self) -> str:
        return f"<ring backend {self.name}>"
