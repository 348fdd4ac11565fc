"""Paillier homomorphic encryption (DJN variant) over numpy arrays.

Security model, scheme and costs: see :mod:`jointml.he.paillier`; fixed-point encoding
and the representable range: :mod:`jointml.he.encoding`; slot layouts (no keys):
:mod:`jointml.he.layout`; encrypted packing and ciphertext compression:
:mod:`jointml.he.packing`; grouped sums over encrypted rows:
:mod:`jointml.he.grouped`; the HE device (``x.to(he)``, grouped sums, ``reveal(to=holder)``):
:mod:`jointml.he.device`; the shared worker pool: :mod:`jointml.he.parallel`
(:mod:`jointml.core.workers`).

Example:
    >>> import numpy as np
    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)          # 2048 (the default) outside tests
    >>> ct = pk.encrypt(np.array([0.5, -1.25]))
    >>> sk.decrypt(ct * 3 + 1.0).tolist()
    [2.5, -2.75]
"""

from .device import HeArray, HeDevice
from .encoding import DEFAULT_FRAC_BITS, bytes_to_ints, decode, encode, ints_to_bytes, max_int
from .grouped import grouped_sums
from .layout import SlotLayout, headroom_bits, max_slots, pack, plaintext_bits, unpack
from .packing import compress, compress_ciphertexts, encrypt_packed
from .paillier import (
    DEFAULT_ALPHA_BITS,
    DEFAULT_KEY_BITS,
    DEFAULT_WINDOW,
    EncryptedArray,
    NoncePool,
    PrivateKey,
    PublicKey,
    concatenate,
    encrypt_zeros,
    generate_keypair,
)
from .parallel import shutdown as shutdown_pool

__all__ = [
    "DEFAULT_ALPHA_BITS",
    "DEFAULT_FRAC_BITS",
    "DEFAULT_KEY_BITS",
    "DEFAULT_WINDOW",
    "EncryptedArray",
    "HeArray",
    "HeDevice",
    "NoncePool",
    "PrivateKey",
    "PublicKey",
    "SlotLayout",
    "bytes_to_ints",
    "compress",
    "compress_ciphertexts",
    "concatenate",
    "decode",
    "encode",
    "encrypt_packed",
    "encrypt_zeros",
    "generate_keypair",
    "grouped_sums",
    "headroom_bits",
    "ints_to_bytes",
    "max_int",
    "max_slots",
    "pack",
    "plaintext_bits",
    "shutdown_pool",
    "unpack",
]
