"""Slot layouts: several small integers in one Paillier plaintext, with no key involved.

A plaintext ``V = sum_i s_i * 2**(b*i)`` holds ``k`` slots of ``b`` bits. Paillier is
linear over the integers as long as nothing wraps modulo ``n``, so adding packed
ciphertexts (or multiplying one by a small integer) acts slot by slot, provided every
slot keeps *headroom*: a sum of ``t`` values below ``2**v`` needs ``b >= v + ceil(log2 t)``
bits (one more for signed slots). Slots are signed by default, in balanced digits
``-2**(b-1) < s_i < 2**(b-1)``; unsigned slots give one more bit to non-negative values.

This module is the plaintext side: :class:`SlotLayout` (how slots sit in each
ciphertext of a packed :class:`~jointml.he.paillier.EncryptedArray`, and the checks that
keep them from overflowing), the bit budgets, and :func:`pack` / :func:`unpack` of integer
vectors. Encrypting packed rows and compressing ciphertexts: :mod:`jointml.he.packing`.

>>> p = pack(np.array([[1, 2, 3]]), slot_bits=8)
>>> unpack(p, slot_bits=8, n_slots=3).tolist()
[[1, 2, 3]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import CryptoError, EncodingOverflowError, ParameterError
from .encoding import _object_array, max_int, to_fixed

__all__ = ["SlotLayout", "plaintext_bits", "max_slots", "headroom_bits", "pack", "unpack"]


@dataclass(frozen=True)
class SlotLayout:
    """How slots are laid out in each ciphertext of a packed :class:`EncryptedArray`.

    ``slot_shape`` is the logical shape of one ciphertext's slots (``(2,)`` for a
    gradient/hessian pair, ``(k, 2)`` after compressing ``k`` such pairs).  Slot 0 is the
    least significant.  ``n_values`` is set on compressed arrays: the length of the
    original last axis, used to drop padding after decryption.

    >>> SlotLayout(16, (4,)).n_slots, SlotLayout(16, (4,)).slot_limit
    (4, 32767)
    """

    slot_bits: int
    slot_shape: tuple[int, ...]
    signed: bool = True
    n_values: int | None = None

    def __post_init__(self) -> None:
        if self.slot_bits < 2:
            raise ParameterError(f"must be >= 2, got {self.slot_bits}", field="slot_bits")
        if not self.slot_shape or any(s < 1 for s in self.slot_shape):
            raise ParameterError(f"must be non-empty and positive, got {self.slot_shape}", field="slot_shape")

    @property
    def n_slots(self) -> int:
        """Slots per ciphertext (product of ``slot_shape``)."""
        return math.prod(self.slot_shape)

    @property
    def total_bits(self) -> int:
        """Plaintext bits one ciphertext uses."""
        return self.slot_bits * self.n_slots

    @property
    def slot_limit(self) -> int:
        """Largest magnitude a slot can hold without corrupting its neighbour.

        >>> SlotLayout(8, (2,), signed=False).slot_limit
        255
        """
        return (1 << (self.slot_bits - 1)) - 1 if self.signed else (1 << self.slot_bits) - 1

    @property
    def compressed(self) -> bool:
        """True for the output of :func:`compress` (transport only)."""
        return self.n_values is not None

    def check_fits(self, n: int) -> None:
        """Raise ParameterError if the packed plaintext cannot stay within ``|V| <= n//3``.

        >>> SlotLayout(64, (40,)).check_fits(2**2048 - 1)
        Traceback (most recent call last):
        ...
        jointml.core.errors.ParameterError: 40 slots x 64 bits = 2560 bits do not fit the 2046 usable plaintext bits of this key
        """
        budget = plaintext_bits(n)
        if self.total_bits > budget:
            raise ParameterError(
                f"{self.n_slots} slots x {self.slot_bits} bits = {self.total_bits} bits do not fit "
                f"the {budget} usable plaintext bits of this key"
            )

    def check_values(self, signed: np.ndarray) -> int:
        """Largest ``|slot|`` in ``signed``; raise OverflowError if a slot would not fit.

        >>> SlotLayout(8, (2,)).check_values(np.array([3, -100], dtype=object))
        100
        """
        flat = signed.ravel().tolist()
        if not self.signed and any(v < 0 for v in flat):
            raise ParameterError("unsigned slots cannot hold negative values (use signed=True)")
        bound = max((abs(v) for v in flat), default=0)
        if bound > self.slot_limit:
            raise EncodingOverflowError(
                f"slot value needs {bound.bit_length()} bits but {'signed ' if self.signed else ''}"
                f"slots of {self.slot_bits} bits hold at most {self.slot_limit.bit_length()}"
            )
        return bound

    def to_dict(self) -> dict[str, Any]:
        """Header-friendly description (ints, bools and lists only).

        >>> SlotLayout.from_dict(SlotLayout(16, (3, 2)).to_dict())
        SlotLayout(slot_bits=16, slot_shape=(3, 2), signed=True, n_values=None)
        """
        return {
            "slot_bits": self.slot_bits,
            "slot_shape": list(self.slot_shape),
            "signed": self.signed,
            "n_values": self.n_values,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SlotLayout:
        """Rebuild a layout from a peer's message header, checking every field's type."""
        if not isinstance(d, dict):
            raise CryptoError(f"slot layout: expected a dict, got {type(d).__name__}", field="layout")
        bits, shape = d.get("slot_bits"), d.get("slot_shape")
        signed, n_values = d.get("signed"), d.get("n_values")
        if type(bits) is not int or not isinstance(shape, (list, tuple)) or type(signed) is not bool:
            raise CryptoError(
                "slot layout: slot_bits (int), slot_shape (list) and signed (bool) are required"
            )
        if not all(type(s) is int for s in shape) or not (n_values is None or type(n_values) is int):
            raise CryptoError("slot layout: slot_shape entries and n_values must be ints", field="layout")
        if n_values is not None and n_values < 0:
            raise CryptoError("slot layout: n_values must be >= 0", field="layout")
        return cls(bits, tuple(shape), signed, n_values)

    def pack(self, slots: np.ndarray) -> np.ndarray:
        """(..., n_slots) integers -> (...) packed Python ints (negative for signed sums).

        >>> SlotLayout(8, (2,)).pack(np.array([[1, -1]], dtype=object)).tolist()
        [-255]
        """
        return _pack_last(slots, self.slot_bits)

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        """(...) packed integers -> (..., n_slots) object array of Python ints.

        >>> SlotLayout(8, (2,)).unpack(np.array([-255], dtype=object)).tolist()
        [[1, -1]]
        """
        return _unpack_last(packed, self.slot_bits, self.n_slots, self.signed)


def plaintext_bits(n: int) -> int:
    """Bits available to a packed plaintext under modulus ``n`` (keeps ``|V| <= n//3``).

    >>> plaintext_bits(2**2048 - 1)
    2046
    """
    return max_int(n).bit_length() - 1


def max_slots(n: int, slot_bits: int) -> int:
    """How many slots of ``slot_bits`` bits fit in one plaintext under modulus ``n``.

    >>> max_slots(2**2048 - 1, 64)
    31
    """
    return plaintext_bits(n) // slot_bits


def headroom_bits(n_summands: int) -> int:
    """Extra bits a slot needs so that a sum of ``n_summands`` values cannot overflow it.

    >>> headroom_bits(1000)
    10
    """
    return max(0, math.ceil(math.log2(max(1, n_summands))))


def pack(values: Any, slot_bits: int, *, signed: bool = False) -> np.ndarray:
    """Pack the last axis of an integer array into one Python int per row.

    >>> pack([[3, -1]], slot_bits=4, signed=True).tolist()
    [-13]
    """
    arr = np.asarray(values)
    layout = SlotLayout(slot_bits, (arr.shape[-1],) if arr.ndim else (1,), signed)
    ints = to_fixed(arr if arr.ndim else arr.reshape(1), 0)
    layout.check_values(ints)
    return layout.pack(ints)


def unpack(packed: Any, slot_bits: int, n_slots: int, *, signed: bool = False) -> np.ndarray:
    """Inverse of :func:`pack`: shape (...) -> (..., n_slots), int64 when it fits.

    >>> unpack([-13], slot_bits=4, n_slots=2, signed=True).tolist()
    [[3, -1]]
    """
    arr = np.asarray(packed, dtype=object)
    out = _unpack_last(arr, slot_bits, n_slots, signed)
    if slot_bits <= 63:
        return out.astype(np.int64)
    return out


def _pack_last(slots: np.ndarray, slot_bits: int) -> np.ndarray:
    arr = np.asarray(slots, dtype=object)
    k = arr.shape[-1]
    flat = arr.reshape(-1, k).tolist()
    out = []
    for row in flat:
        v = 0
        for s in reversed(row):  # most significant slot first
            v = (v << slot_bits) + int(s)
        out.append(v)
    return _object_array(out, arr.shape[:-1])


def _unpack_last(packed: np.ndarray, slot_bits: int, n_slots: int, signed: bool) -> np.ndarray:
    arr = np.asarray(packed, dtype=object)
    mask = (1 << slot_bits) - 1
    half = 1 << (slot_bits - 1)
    full = 1 << slot_bits
    out = []
    for v in arr.ravel().tolist():
        v = int(v)
        if not signed and v < 0:
            raise EncodingOverflowError("unsigned packed value is negative: a slot underflowed")
        for _ in range(n_slots):
            s = v & mask  # Python ints act as infinite two's complement here
            if signed and s >= half:
                s -= full
            out.append(s)
            v = (v - s) >> slot_bits
        if v:
            raise EncodingOverflowError("packed value has bits above the last slot: a slot overflowed")
    return _object_array(out, arr.shape + (n_slots,))
