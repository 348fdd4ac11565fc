"""Fixed-point encoding of real numbers into the Paillier plaintext space Z_n.

Paillier encrypts integers modulo ``n``.  A real ``x`` is encoded with ``f``
fractional bits as the integer ``m = round(x * 2**f)``; negative integers are
stored as ``n - |m|`` (two's complement modulo ``n``).  Homomorphic addition and
multiplication by integers then act on ``m`` exactly, and the *scale* ``2**f``
travels beside the ciphertext as metadata (``frac_bits``).

Representable range (``max_int = n // 3``): an encoded integer must satisfy
``|m| <= max_int``, i.e. ``|x| <= (n // 3) / 2**f``.  Decoding maps residues in
``[0, max_int]`` to non-negative values and ``[n - max_int, n)`` to negative ones;
a residue in the middle third can only come from a computation that left the range,
so it raises :class:`OverflowError` instead of returning a wrong number.  (With a
2048-bit key and ``f = 32`` the range is about ``10**606``; the practical limit is
float64 on the way back.)

Example:
    >>> import numpy as np
    >>> n = 2**61 - 1  # any odd modulus works for the encoding alone
    >>> m = encode(np.array([1.5, -2.25]), n, frac_bits=8)
    >>> decode(m, n, frac_bits=8)
    array([ 1.5 , -2.25])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from gmpy2 import mpz

from ..core.errors import CryptoError, EncodingOverflowError, ParameterError, ParameterTypeError

#: Fractional bits used for float inputs when none are given: 2**-32 ~ 2.3e-10
#: absolute precision, far below float32 noise and cheap in a 2048-bit plaintext.
DEFAULT_FRAC_BITS = 32

_I64_LIMIT = 2**63


def max_int(n: int) -> int:
    """Largest magnitude an encoded integer may have under modulus ``n``.

    >>> max_int(30)
    10
    """
    return int(n) // 3


def is_integer_input(x: Any) -> bool:
    """True when ``x`` holds integers (bool, numpy integer or Python int objects).

    >>> is_integer_input(np.arange(3)), is_integer_input(np.ones(2))
    (True, False)
    """
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        return True
    if arr.dtype.kind == "O":
        return all(isinstance(v, (int, np.integer)) or _is_mpz(v) for v in arr.flat)
    return False


def default_frac_bits(x: Any) -> int:
    """Scale chosen for ``x`` when the caller does not choose: 0 for integers.

    >>> default_frac_bits([1, 2]), default_frac_bits([0.5])
    (0, 32)
    """
    return 0 if is_integer_input(x) else DEFAULT_FRAC_BITS


def to_fixed(x: Any, frac_bits: int) -> np.ndarray:
    """Signed integers ``round(x * 2**frac_bits)`` as an object array of Python ints.

    Integers are shifted exactly (no float round trip), so values beyond 2**53 survive.
    NaN and infinities are rejected.

    >>> to_fixed([0.5, -1.0], 2).tolist()
    [2, -4]
    """
    if frac_bits < 0:
        raise ParameterError(f"must be >= 0, got {frac_bits}", field="frac_bits")
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind in "biu":
        flat = [int(v) << frac_bits for v in arr.ravel().tolist()]
    elif kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ParameterError("cannot encode NaN or infinity")
        # Scaling by a power of two is exact in binary floating point, so the only
        # rounding is the final rint (to the nearest multiple of 2**-frac_bits).
        scaled = np.rint(arr.astype(np.float64) * np.float64(2.0) ** frac_bits)
        if scaled.size and float(np.max(np.abs(scaled))) < _I64_LIMIT:
            flat = scaled.astype(np.int64).ravel().tolist()
        else:
            flat = [int(v) for v in scaled.ravel().tolist()]
    elif kind == "O":
        flat = []
        for v in arr.ravel().tolist():
            if isinstance(v, (int, np.integer)) or _is_mpz(v):
                flat.append(int(v) << frac_bits)
            elif isinstance(v, (float, np.floating)):
                flat.extend(to_fixed(np.float64(v), frac_bits).tolist())
            else:
                raise ParameterTypeError(f"cannot encode value of type {type(v).__name__}", field="x")
    else:
        raise ParameterTypeError(f"cannot encode array of dtype {arr.dtype}", field="x")
    return _object_array(flat, arr.shape)


def encode(x: Any, n: int, frac_bits: int) -> np.ndarray:
    """Encode ``x`` into residues mod ``n`` (object array of Python ints in ``[0, n)``).

    Raises OverflowError when a value needs more than ``max_int(n)`` in magnitude.

    >>> encode([-1, 2], 101, 0).tolist()
    [100, 2]
    """
    signed = to_fixed(x, frac_bits)
    check_range(signed, n)
    return _object_array([v % n for v in signed.ravel().tolist()], signed.shape)


def check_range(signed: np.ndarray, n: int) -> int:
    """Largest ``|v|`` in ``signed``; raises OverflowError if it exceeds ``max_int(n)``.

    >>> check_range(np.array([3, -7], dtype=object), 101)
    7
    """
    bound = max((abs(v) for v in signed.ravel().tolist()), default=0)
    if bound > max_int(n):
        raise EncodingOverflowError(
            f"value needs {bound.bit_length()} bits but the key only represents "
            f"|m| <= n//3 ({max_int(n).bit_length()} bits); lower frac_bits or use a larger key"
        )
    return bound


def to_signed(residues: Any, n: int) -> np.ndarray:
    """Map residues in ``[0, n)`` back to signed integers, detecting overflow.

    >>> to_signed([100, 2], 101).tolist()
    [-1, 2]
    """
    arr = np.asarray(residues, dtype=object)
    limit = max_int(n)
    out = []
    for v in arr.ravel().tolist():
        v = int(v)
        if v <= limit:
            out.append(v)
        elif v >= n - limit:
            out.append(v - n)
        else:
            raise EncodingOverflowError(
                "decrypted value lies outside the representable range |m| <= n//3: "
                "a homomorphic computation overflowed (or the wrong key was used)"
            )
    return _object_array(out, arr.shape)


def from_fixed(signed: Any, frac_bits: int, as_int: bool | None = None) -> np.ndarray:
    """Signed fixed-point integers to numbers: floats, or ints when ``frac_bits == 0``.

    Integers come back as int64 when they fit, else as an object array of Python ints.

    >>> from_fixed(np.array([2, -4], dtype=object), 2).tolist()
    [0.5, -1.0]
    """
    arr = np.asarray(signed, dtype=object)
    flat = [int(v) for v in arr.ravel().tolist()]
    if as_int is None:
        as_int = frac_bits == 0
    fits = all(-_I64_LIMIT <= v < _I64_LIMIT for v in flat)
    if as_int:
        if frac_bits:
            raise ParameterError("integer output requires frac_bits == 0", field="frac_bits")
        if fits:
            return np.array(flat, dtype=np.int64).reshape(arr.shape)
        return _object_array(flat, arr.shape)
    if fits:
        # int64 -> float64 rounds once; multiplying by 2**-f is exact.
        return np.array(flat, dtype=np.int64).astype(np.float64).reshape(arr.shape) * (
            np.float64(2.0) ** -frac_bits
        )
    # Python's int / int is correctly rounded even for huge operands.
    den = 1 << frac_bits
    try:
        out = [v / den for v in flat]
    except OverflowError:
        raise EncodingOverflowError("decoded value does not fit in float64") from None
    return np.array(out, dtype=np.float64).reshape(arr.shape)


def decode(residues: Any, n: int, frac_bits: int, as_int: bool | None = None) -> np.ndarray:
    """Inverse of :func:`encode`.

    >>> decode([100, 2], 101, 0).tolist()
    [-1, 2]
    """
    return from_fixed(to_signed(residues, n), frac_bits, as_int)


def ints_to_bytes(values: Iterable[Any], width: int) -> bytes:
    """Fixed-width big-endian bytes of non-negative integers (ciphertexts, residues).

    The batched codec of the wire and of the worker pool's payloads.

    >>> ints_to_bytes([1, 258], 2).hex()
    '00010102'
    """
    return b"".join(mpz(v).to_bytes(width, "big") for v in values)


def bytes_to_ints(blob: bytes | memoryview, width: int) -> list[mpz]:
    """Inverse of :func:`ints_to_bytes`: a list of gmpy2 ``mpz``.

    Raises :class:`~jointml.core.errors.CryptoError` when ``blob`` is not a whole
    number of ``width``-byte values (a truncated message).

    >>> [int(v) for v in bytes_to_ints(bytes.fromhex("00010102"), 2)]
    [1, 258]
    """
    if len(blob) % width:
        raise CryptoError(f"byte string of length {len(blob)} is not a multiple of {width}")
    view = memoryview(blob)
    return [mpz.from_bytes(view[i : i + width], "big") for i in range(0, len(blob), width)]


def _object_array(flat: list, shape: tuple[int, ...]) -> np.ndarray:
    # Fill an empty object array instead of np.array(list): numpy must not try to
    # interpret big integers (or mpz) as nested sequences or convert them.
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(shape)


def _is_mpz(v: Any) -> bool:
    return type(v).__name__ == "mpz"
