"""Slot packing: several small integers in one Paillier plaintext.

A plaintext ``V = sum_i s_i * 2**(b*i)`` holds ``k`` slots of ``b`` bits.  Paillier is
linear over the integers as long as nothing wraps modulo ``n``, so adding packed
ciphertexts (or multiplying one by a small integer) acts slot by slot, provided every
slot keeps *headroom*: a sum of ``t`` values below ``2**v`` needs ``b >= v + ceil(log2 t)``
bits (one more for signed slots).

Slots are **signed** by default, in balanced digits ``-2**(b-1) < s_i < 2**(b-1)``:
negative slots simply borrow from the slot above, and unpacking undoes the borrow.  So
fixed-point gradients can be packed and summed as they are, with no offset (an offset
scheme would have to subtract ``count * offset`` after decryption, which needs the
per-bin counts).  Unsigned slots (``signed=False``) give one more bit per slot for
values that are known to be non-negative (counts, shifted values).

Two uses in SecureBoost:

* :func:`encrypt_packed` packs the gradient and hessian of one row into one ciphertext,
  halving encryptions, traffic and additions;
* :func:`compress` folds many ciphertexts (e.g. histogram bin sums) into few, so the key
  holder decrypts ``1/k`` as many: ``c = prod_i c_i ** (2**(b*i))`` evaluated by Horner's
  rule, then re-randomised before it is sent back.

Plaintext helpers :func:`pack` / :func:`unpack` work on integer vectors without keys.

Example:
    >>> import numpy as np
    >>> p = pack(np.array([[1, 2, 3]]), slot_bits=8)
    >>> unpack(p, slot_bits=8, n_slots=3).tolist()
    [[1, 2, 3]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from ..core.errors import CryptoError, EncodingOverflowError, ParameterError
from . import parallel
from .encoding import _object_array, bytes_to_ints, default_frac_bits, ints_to_bytes, max_int, to_fixed

if TYPE_CHECKING:  # imported for annotations only: paillier imports this module
    from .paillier import EncryptedArray, PublicKey


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


def encrypt_packed(
    public_key: PublicKey,
    values: Any,
    slot_bits: int,
    frac_bits: int | None = None,
    *,
    signed: bool = True,
    method: str = "djn",
    n_jobs: int | None = None,
    nonces: Any = None,
) -> EncryptedArray:
    """Encrypt the last axis of ``values`` packed into one ciphertext per row.

    Values are fixed-point encoded first (``frac_bits`` defaults to 0 for integers and
    32 for floats), so ``slot_bits`` must cover ``value bits + headroom (+1 if signed)``.
    ``sk.decrypt`` returns the original shape. ``nonces`` (one per row, from a
    :class:`~jointml.he.NoncePool`) make each encryption one multiplication.

    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)
    >>> gh = np.array([[0.25, -0.5], [1.0, 0.125]])
    >>> ct = encrypt_packed(pk, gh, slot_bits=40, frac_bits=16)
    >>> ct.shape, sk.decrypt(ct.sum()).tolist()
    ((2,), [1.25, -0.375])
    """
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise ParameterError("encrypt_packed needs at least one axis to pack", field="values")
    if frac_bits is None:
        frac_bits = default_frac_bits(arr)
    layout = SlotLayout(slot_bits, (arr.shape[-1],), signed)
    layout.check_fits(public_key.n)
    slots = to_fixed(arr, frac_bits)
    bound = layout.check_values(slots)
    return public_key.encrypt_encoded(
        layout.pack(slots), frac_bits, bound=bound, layout=layout, method=method, n_jobs=n_jobs, nonces=nonces
    )


def compress(
    ct: EncryptedArray,
    slot_bits: int | None = None,
    *,
    per_ciphertext: int | None = None,
    rerandomize: bool = True,
    signed: bool = True,
    n_jobs: int | None = None,
) -> EncryptedArray:
    """Fold the last axis of ``ct`` into as few ciphertexts as the plaintext allows.

    For an unpacked array, each value becomes one ``slot_bits``-bit slot (signed
    balanced digits by default, so ``|value| < 2**(slot_bits-1)`` in encoded units).
    For an array made by :func:`encrypt_packed`, each ciphertext's slots are kept as a
    unit and ``slot_bits`` defaults to its slot width.  The result is for transport:
    decrypt it (``sk.decrypt`` returns the original shape), add it to a compressed array
    of the same layout, or re-randomise it.  Values whose bound the evaluator cannot
    know (ciphertexts from a peer) are the caller's responsibility to fit.

    Cost: ``(k-1) * slot_bits`` modular squarings per output ciphertext (Horner's rule)
    plus one re-randomisation, against ``k`` decryptions saved by the key holder.

    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)
    >>> ct = pk.encrypt(np.array([[3, -4, 5], [6, 7, -8]]))
    >>> small = compress(ct, slot_bits=16)
    >>> small.shape, sk.decrypt(small).tolist()
    ((2, 1), [[3, -4, 5], [6, 7, -8]])
    """
    if ct.ndim == 0:
        raise ParameterError("compress needs at least one axis", field="ct")
    inner = ct.layout
    if inner is not None and inner.compressed:
        raise ParameterError("array is already compressed", field="ct")
    if inner is None:
        if slot_bits is None:
            raise ParameterError("is required to compress an unpacked array", field="slot_bits")
        unit_shape: tuple[int, ...] = ()
        unit = SlotLayout(slot_bits, (1,), signed)
    else:
        if slot_bits not in (None, inner.slot_bits) or signed != inner.signed:
            raise ParameterError("a packed array keeps its own slot_bits and signedness", field="slot_bits")
        unit_shape, unit = inner.slot_shape, inner
    if ct.bound is not None and ct.bound > unit.slot_limit:
        raise EncodingOverflowError(
            f"values may need {ct.bound.bit_length()} bits, more than {unit.slot_bits}-bit slots hold"
        )
    m = ct.shape[-1]
    lead = ct.shape[:-1]
    k = _per_ciphertext(ct.public_key.n, unit.total_bits, m, per_ciphertext)
    groups = max(1, -(-m // k))
    data = ct.data
    if groups * k > m:  # pad with the trivial encryption of zero (see compress_ciphertexts)
        data = np.concatenate([data, np.full(lead + (groups * k - m,), mpz(1), dtype=object)], axis=-1)
    out = compress_ciphertexts(ct.public_key, data.reshape(-1).tolist(), unit.slot_bits, ct.frac_bits,
                               unit_shape=unit_shape, signed=unit.signed, per_ciphertext=k,
                               rerandomize=rerandomize, n_jobs=n_jobs)
    layout = SlotLayout(unit.slot_bits, (k, *unit_shape), unit.signed, n_values=m)
    return type(ct)(ct.public_key, out.data.reshape(lead + (groups,)), ct.frac_bits, ct.bound, layout)


def _per_ciphertext(n: int, unit_bits: int, m: int, per_ciphertext: int | None) -> int:
    k = plaintext_bits(n) // unit_bits
    if per_ciphertext is not None:
        k = min(k, per_ciphertext)
    if k < 1:
        raise ParameterError(f"one unit of {unit_bits} bits does not fit this key's plaintext", field="slot_bits")
    return min(k, max(m, 1))  # never pad a short axis up to the full capacity


def compress_ciphertexts(
    public_key: PublicKey,
    cts: list,
    slot_bits: int,
    frac_bits: int,
    *,
    unit_shape: tuple[int, ...] = (),
    signed: bool = True,
    per_ciphertext: int | None = None,
    rerandomize: bool = True,
    n_jobs: int | None = None,
) -> EncryptedArray:
    """Fold a flat list of ciphertexts into as few as the plaintext allows.

    The fast path behind :func:`compress`, on raw ciphertexts (e.g. the bin sums of
    :func:`~jointml.he.grouped.grouped_sums`). Each input ciphertext is one *unit*: a
    value of ``slot_bits`` bits (``unit_shape=()``) or a packed block of slots
    (``unit_shape=(2,)`` for a gradient/hessian pair). Consecutive groups of ``k`` units
    (as many as the plaintext holds, at most ``per_ciphertext``) become one ciphertext
    ``c_0 * c_1^(2^b) * ... * c_(k-1)^(2^(b(k-1)))`` (``b`` the unit's bits), padded
    with the trivial encryption of zero and re-randomised, which hides the padding and
    which inputs were combined. One pool round trip for all groups. The caller
    guarantees that every value fits its slots (a sum of received ciphertexts has no
    bound the evaluator could check).

    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)
    >>> ct = encrypt_packed(pk, np.array([[1, -2], [3, 4], [5, 6]]), slot_bits=16)
    >>> small = compress_ciphertexts(pk, list(ct.data), 16, 0, unit_shape=(2,))
    >>> small.shape, sk.decrypt(small).tolist()
    ((1,), [[1, -2], [3, 4], [5, 6]])
    """
    m = len(cts)
    n_units = max(1, math.prod(unit_shape))
    k = _per_ciphertext(public_key.n, slot_bits * n_units, m, per_ciphertext)
    groups = max(1, -(-m // k))
    padded = list(cts) + [mpz(1)] * (groups * k - m)
    width = public_key.ciphertext_bytes
    jobs = parallel.resolve_n_jobs(n_jobs)
    n_chunks = 1 if jobs <= 1 or groups < 4 else min(groups, 2 * jobs)
    parts = parallel.split(range(groups), n_chunks)
    params = public_key._params()
    args = [(params, ints_to_bytes(padded[r.start * k : r.stop * k], width), k, slot_bits * n_units, rerandomize)
            for r in parts]
    # compress_kernel is looked up at call time, so a test can count its calls
    blobs = parallel.map_chunks(compress_kernel, args, jobs if n_chunks > 1 else 1)
    data = _object_array([c for b in blobs for c in bytes_to_ints(b, width)], (groups,))
    layout = SlotLayout(slot_bits, (k, *unit_shape), signed, n_values=m)
    from .paillier import EncryptedArray  # paillier imports this module

    return EncryptedArray(public_key, data, frac_bits, None, layout)


def compress_kernel(params: tuple, blob: bytes, k: int, shift_bits: int, rerandomize: bool) -> bytes:
    """Horner-fold groups of ``k`` ciphertexts (a pool task; bytes in, bytes out).

    ``c_0 * c_1^(2^s) * ... * c_(k-1)^(2^(s(k-1))) mod n^2``, times a fresh encryption of
    zero when ``rerandomize``. ``params`` are the public key's ``(n, h_s, alpha_bits, window)``.

    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)
    >>> blob = ints_to_bytes(pk.encrypt([1, 2]).data.tolist(), pk.ciphertext_bytes)
    >>> out = compress_kernel(pk._params(), blob, 2, 8, True)
    >>> sk.decrypt_residues(bytes_to_ints(out, pk.ciphertext_bytes))
    [513]
    """
    from .paillier import encrypt_zeros  # paillier imports this module

    n = mpz(params[0])
    nsq = n * n
    width = (int(nsq).bit_length() + 7) // 8
    cts = bytes_to_ints(blob, width)
    e = mpz(1) << shift_bits
    out = []
    for g in range(0, len(cts), k):
        grp = cts[g : g + k]
        acc = grp[-1]
        for c in reversed(grp[:-1]):
            acc = gmpy2.powmod(acc, e, nsq) * c % nsq
        out.append(acc)
    if rerandomize:
        out = [c * r % nsq for c, r in zip(out, encrypt_zeros(params, len(out)))]
    return ints_to_bytes(out, width)


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
