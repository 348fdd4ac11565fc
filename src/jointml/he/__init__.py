"""Additively homomorphic encryption over numpy arrays: Paillier (DJN) and Okamoto-Uchiyama.

Security model, scheme and costs: see :mod:`jointml.he.paillier` and :mod:`jointml.he.ou`
(the HE device's default, ``HeDevice(..., scheme="ou")``); fixed-point encoding
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
    >>> from jointml.he import generate_ou_keypair
    >>> opk, osk = generate_ou_keypair(768)     # Okamoto-Uchiyama, same interface
    >>> osk.decrypt(opk.encrypt(np.array([0.5, -1.25])) * 3 + 1.0).tolist()
    [2.5, -2.75]
"""

from .device import DEFAULT_SCHEME, SCHEMES, HeArray, HeDevice, check_scheme
from .encoding import DEFAULT_FRAC_BITS, bytes_to_ints, decode, encode, ints_to_bytes, max_int
from .grouped import grouped_sums
from .layout import SlotLayout, headroom_bits, max_slots, pack, plaintext_bits, unpack
from .ou import OUPrivateKey, OUPublicKey, generate_ou_keypair
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
    "DEFAULT_SCHEME",
    "SCHEMES",
    "OUPrivateKey",
    "OUPublicKey",
    "check_scheme",
    "generate_ou_keypair",
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
