"""Paillier homomorphic encryption (DJN variant) over numpy arrays.

Security model, scheme and costs: see :mod:`jointml.he.paillier`; fixed-point encoding
and the representable range: :mod:`jointml.he.encoding`; slot packing and ciphertext
compression: :mod:`jointml.he.packing`; the local process pool: :mod:`jointml.he.parallel`.

Example:
    >>> import numpy as np
    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)          # 2048 (the default) outside tests
    >>> ct = pk.encrypt(np.array([0.5, -1.25]))
    >>> sk.decrypt(ct * 3 + 1.0).tolist()
    [2.5, -2.75]
"""

from .encoding import DEFAULT_FRAC_BITS, decode, encode, max_int
from .packing import SlotLayout, compress, encrypt_packed, headroom_bits, max_slots, pack, unpack
from .paillier import (
    DEFAULT_ALPHA_BITS,
    DEFAULT_KEY_BITS,
    DEFAULT_WINDOW,
    EncryptedArray,
    PrivateKey,
    PublicKey,
    concatenate,
    generate_keypair,
)
from .parallel import shutdown as shutdown_pool

__all__ = [
    "DEFAULT_ALPHA_BITS",
    "DEFAULT_FRAC_BITS",
    "DEFAULT_KEY_BITS",
    "DEFAULT_WINDOW",
    "EncryptedArray",
    "PrivateKey",
    "PublicKey",
    "SlotLayout",
    "compress",
    "concatenate",
    "decode",
    "encode",
    "encrypt_packed",
    "generate_keypair",
    "headroom_bits",
    "max_int",
    "max_slots",
    "pack",
    "shutdown_pool",
    "unpack",
]
