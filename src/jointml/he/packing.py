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

The slot layout itself and the plaintext helpers :func:`pack` / :func:`unpack` live in
:mod:`jointml.he.layout`.

Example:
    >>> import numpy as np
    >>> from jointml.he.layout import pack, unpack
    >>> p = pack(np.array([[1, 2, 3]]), slot_bits=8)
    >>> unpack(p, slot_bits=8, n_slots=3).tolist()
    [[1, 2, 3]]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from ..core.errors import EncodingOverflowError, ParameterError
from . import parallel
from .encoding import _object_array, bytes_to_ints, default_frac_bits, ints_to_bytes, to_fixed
from .layout import SlotLayout

if TYPE_CHECKING:  # imported for annotations only: paillier imports this module
    from .paillier import EncryptedArray, PublicKey


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
    layout.check_fits(public_key.range_n)
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
    k = _per_ciphertext(ct.public_key.plaintext_bits, unit.total_bits, m, per_ciphertext)
    groups = max(1, -(-m // k))
    data = ct.data
    if groups * k > m:  # pad with the trivial encryption of zero (see compress_ciphertexts)
        data = np.concatenate([data, np.full(lead + (groups * k - m,), mpz(1), dtype=object)], axis=-1)
    out = compress_ciphertexts(ct.public_key, data.reshape(-1).tolist(), unit.slot_bits, ct.frac_bits,
                               unit_shape=unit_shape, signed=unit.signed, per_ciphertext=k,
                               rerandomize=rerandomize, n_jobs=n_jobs)
    layout = SlotLayout(unit.slot_bits, (k, *unit_shape), unit.signed, n_values=m)
    return type(ct)(ct.public_key, out.data.reshape(lead + (groups,)), ct.frac_bits, ct.bound, layout)


def _per_ciphertext(budget_bits: int, unit_bits: int, m: int, per_ciphertext: int | None) -> int:
    k = budget_bits // unit_bits
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
    k = _per_ciphertext(public_key.plaintext_bits, slot_bits * n_units, m, per_ciphertext)
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
    nsq, zeros = _scheme_kernels(params)
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
        out = [c * r % nsq for c, r in zip(out, zeros(params, len(out)))]
    return ints_to_bytes(out, width)


def _scheme_kernels(params: tuple) -> tuple[mpz, Any]:
    """(ciphertext modulus, encryptions-of-zero function) of the key with ``params``:
    ``("ou", n, ...)`` for Okamoto-Uchiyama (mod ``n``), ``(n, h_s, ...)`` for Paillier (mod ``n^2``)."""
    if params[0] == "ou":
        from .ou import ou_zeros  # ou imports paillier, which imports this module

        return mpz(params[1]), ou_zeros
    from .paillier import encrypt_zeros  # paillier imports this module

    n = mpz(params[0])
    return n * n, encrypt_zeros
