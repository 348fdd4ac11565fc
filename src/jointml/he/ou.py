"""Okamoto-Uchiyama encryption over numpy arrays, on gmpy2: the fast backend of ``he``.

Scheme (Okamoto and Uchiyama, "A new public-key cryptosystem as secure as factoring",
EUROCRYPT 1998).  ``n = p^2 q`` with ``p``, ``q`` random primes of about ``|n|/3`` bits;
``g`` in ``Z_n^*`` such that ``g^(p-1) mod p^2`` has order ``p``; ``h = g^n mod n``.
Encryption of ``m`` is ``c = g^m h^r mod n`` with a fresh random ``r``; decryption is
``m = L(c^(p-1) mod p^2) / L(g^(p-1) mod p^2) mod p`` with ``L(x) = (x - 1) / p``.  The
plaintext space is ``Z_p``: values and packed slots must fit ``|p| - 3`` bits (679 bits
for a 2048-bit key), a third of Paillier's at the same key size, while ciphertexts live
mod ``n`` (not ``n^2``): a homomorphic addition is one 2048-bit multiplication instead of
a 4096-bit one (3.2x faster here), a decryption one exponentiation with a 682-bit
exponent mod ``p^2`` (~4x faster than Paillier's two CRT halves).

Negative values are encoded mod ``n`` (``n - |m|``); because ``p`` divides ``n`` they
decrypt to ``-|m| mod p``, so signed fixed point and signed slots work exactly as with
Paillier (:mod:`jointml.he.encoding`, :mod:`jointml.he.layout`).  An encryption computes
``g^|m|`` (inverted for negative ``m``) and ``h^r`` from fixed-base tables (window ``w``,
default 8, at most :data:`MAX_WINDOW`): ``ceil(|m|/w)`` plus ``ceil(r_bits/w)`` table
multiplications mod ``n``.  At ``w = 14`` (SecureBoost's key holder on large fits) a nonce is 16 table
products (19 at ``w = 12``) and the ``h`` table ~77 MB per process at 2048 bits, about the
size of Paillier's ``w = 12`` table; the ``g`` table grows only as far as the plaintexts need.

Security level.  Semantic security (IND-CPA) rests on the p-subgroup assumption
(Okamoto-Uchiyama); one-wayness is equivalent to factoring ``n = p^2 q``.  No method
factors ``p^2 q`` faster than the number field sieve at these sizes (ECM needs ``p`` far
smaller; lattice methods for ``p^r q`` need large ``r``), so the key size maps to the
same security level as RSA/Paillier: **2048-bit n ~ 112 bits** (the default, equal to the
Paillier default here, and what SecretFlow/HEU use), **3072-bit n ~ 128 bits**.  The
nonce exponent ``r`` is short: ``r_bits = 2 * lambda`` (224 bits at 2048, 256 at 3072;
:func:`nonce_bits`), the short-exponent assumption as in DJN-Paillier (whose 448-bit
exponent here is 4 * lambda) and HEU; generic attacks on an ``r_bits`` exponent cost
``2^(r_bits/2) = 2^lambda``.  A public key announcing a shorter ``r`` is refused.  Keys below 2048 bits are for tests only (see
:func:`~jointml.he.paillier.check_key_bits`).  Randomness (primes, ``g``, ``r``) comes
from :mod:`secrets` (the OS CSPRNG).

Parties are assumed semi-honest, exactly as for Paillier (:mod:`jointml.he.paillier`):

* the *key holder* (holds :class:`OUPrivateKey`) learns the plaintexts it decrypts, i.e.
  what the protocol sends it;
* the *evaluator* (holds only :class:`OUPublicKey`) learns nothing about encrypted values
  beyond shapes and public metadata; it must re-randomise results before they go back to
  the key holder (:meth:`~jointml.he.EncryptedArray.rerandomize`, or
  :func:`~jointml.he.compress_ciphertexts`, which does).

OU is malleable (not CCA-secure) like Paillier; integrity between parties comes from the
authenticated channel, and :meth:`OUPublicKey.ciphertexts_from_wire` checks that every
received ciphertext is in ``(0, n)`` and a unit mod ``n``.  This pure-Python code is not
hardened against local micro-architectural side channels on the encrypting host.

Example:
    >>> import numpy as np
    >>> pk, sk = generate_ou_keypair(768)       # 2048 (the default) outside tests
    >>> ct = pk.encrypt(np.array([1.5, -2.0, 3.25]))
    >>> sk.decrypt((ct + ct) * 2 - 1.0).tolist()
    [5.0, -9.0, 12.0]
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from ..core.errors import CryptoError, ParameterError, ParameterTypeError, UnsupportedOperation
from . import parallel
from .encoding import _object_array, bytes_to_ints, check_range, default_frac_bits, ints_to_bytes, max_int, to_fixed
from .layout import SlotLayout, plaintext_bits
from .paillier import DEFAULT_KEY_BITS, DEFAULT_WINDOW, MIN_KEY_BITS, EncryptedArray, decode_signed

__all__ = ["OUPublicKey", "OUPrivateKey", "generate_ou_keypair", "DEFAULT_R_BITS", "MAX_WINDOW", "SCHEME",
           "nonce_bits", "security_bits"]

#: Name of the scheme in serialised keys and in ``scheme=`` parameters.
SCHEME = "ou"
#: Largest fixed-base window (table ``2^w`` entries per ``w``-bit digit; 14: ~77 MB for ``h`` at 2048 bits).
MAX_WINDOW = 14
#: Bits of the nonce exponent ``r`` at the default key size: ``2 * lambda`` (see :func:`nonce_bits`).
DEFAULT_R_BITS = 224
_PRIME_REPS = 40
#: Element counts from which encryption / decryption go to the process pool (measured:
#: one encryption ~0.1 ms, one decryption ~0.8 ms at 2048 bits; a pool round trip < 1 ms).
ENCRYPT_PARALLEL_THRESHOLD = 512
DECRYPT_PARALLEL_THRESHOLD = 16
#: Packed-gradient ``g^m`` (~6 table products, ~15 us) goes to the pool from this many values.
G_POW_PARALLEL_THRESHOLD = 16384


# --------------------------------------------------------------------------- keys


def security_bits(key_bits: int) -> int:
    """Security level (bits) of an ``n`` of ``key_bits`` bits, as for RSA (NIST SP 800-57).

    >>> security_bits(2048), security_bits(3072), security_bits(7680)
    (112, 128, 192)
    """
    for bits, level in ((15360, 256), (7680, 192), (3072, 128)):
        if key_bits >= bits:
            return level
    return 112  # 2048 bits; smaller (test) keys are far weaker whatever r is


def nonce_bits(key_bits: int) -> int:
    """Bits of the nonce exponent ``r``: ``2 * lambda`` (generic attacks on a short exponent,
    e.g. Pollard's kangaroo, cost ``2^(r_bits/2)``).

    >>> nonce_bits(2048), nonce_bits(3072)
    (224, 256)
    """
    return 2 * security_bits(key_bits)


def _prime(bits: int) -> mpz:
    """A random prime of exactly ``bits`` bits (top two bits set), by next_prime on a random odd start."""
    while True:
        start = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1
        p = gmpy2.next_prime(start)
        if p.bit_length() == bits and gmpy2.is_prime(p, _PRIME_REPS):
            return p


def generate_ou_keypair(n_bits: int = DEFAULT_KEY_BITS, *, r_bits: int | None = None,
                        window: int = DEFAULT_WINDOW) -> tuple[OUPublicKey, OUPrivateKey]:
    """An Okamoto-Uchiyama key pair with an ``n_bits``-bit ``n = p^2 q`` (``|p| = n_bits // 3``).

    >>> pk, sk = generate_ou_keypair(768)
    >>> pk.key_bits, pk.p_bits, pk.plaintext_bits
    (768, 256, 253)
    """
    if n_bits % 2 or n_bits < MIN_KEY_BITS:
        raise ParameterError(f"must be even and >= {MIN_KEY_BITS}, got {n_bits}", field="n_bits")
    p_bits = n_bits // 3
    while True:
        p = _prime(p_bits)
        q = _prime(n_bits - 2 * p_bits)
        n = p * p * q
        if p != q and n.bit_length() == n_bits and gmpy2.gcd(p, q - 1) == 1 and gmpy2.gcd(q, p - 1) == 1:
            break
    psq = p * p
    while True:  # g^(p-1) mod p^2 must have order p, i.e. L(g^(p-1) mod p^2) != 0 mod p
        g = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(g, n) == 1 and ((gmpy2.powmod(g, p - 1, psq) - 1) // p) % p != 0:
            break
    pk = OUPublicKey(n, g, gmpy2.powmod(g, n, n), r_bits=nonce_bits(n_bits) if r_bits is None else r_bits,
                     window=window)
    return pk, OUPrivateKey(pk, p, q)


class OUPublicKey:
    """Okamoto-Uchiyama public key ``(n, g, h)``: encrypts, validates and (de)serialises.

    Same interface as :class:`~jointml.he.PublicKey` so that :class:`~jointml.he.EncryptedArray`,
    the packing, the grouped sums and the HE device serve both schemes: ``nsq`` is the
    *ciphertext modulus* (``n`` here, ``n^2`` for Paillier) and ``range_n`` the modulus that
    bounds the plaintext range (``2^(|p|-1) <= p`` here: ``p`` itself is secret).

    >>> pk, _ = generate_ou_keypair(768)
    >>> OUPublicKey.from_dict(pk.to_dict()) == pk
    True
    """

    __slots__ = ("n", "nsq", "g", "h", "r_bits", "window", "p_bits", "range_n", "max_int", "ciphertext_bytes")
    scheme = SCHEME

    def __init__(self, n: int, g: int, h: int, *, r_bits: int | None = None, window: int = DEFAULT_WINDOW) -> None:
        n, g, h = mpz(n), mpz(g), mpz(h)
        if n.bit_length() < MIN_KEY_BITS or n % 2 == 0:
            raise CryptoError(f"OU public key: n must be odd and >= {MIN_KEY_BITS} bits", field="n")
        for name, v in (("g", g), ("h", h)):
            if not 1 < v < n or gmpy2.gcd(v, n) != 1:
                raise CryptoError(f"OU public key: {name} must be in (1, n) and coprime to n", field=name)
        r_bits = nonce_bits(n.bit_length()) if r_bits is None else r_bits
        if not nonce_bits(n.bit_length()) <= r_bits <= 4096:  # a weaker nonce than the key's level is refused
            raise CryptoError(f"OU public key: r_bits must be in [{nonce_bits(n.bit_length())}, 4096] for a "
                              f"{n.bit_length()}-bit n, got {r_bits}", field="r_bits")
        if not 1 <= window <= MAX_WINDOW:
            raise ParameterError(f"OU public key: window must be in [1, {MAX_WINDOW}], got {window}", field="window")
        self.n, self.nsq, self.g, self.h = n, n, g, h  # nsq: the ciphertext modulus (see the class doc)
        self.r_bits, self.window = int(r_bits), int(window)
        self.p_bits = n.bit_length() // 3
        self.range_n = mpz(1) << (self.p_bits - 1)
        self.max_int = mpz(max_int(self.range_n))
        self.ciphertext_bytes = (n.bit_length() + 7) // 8

    @property
    def key_bits(self) -> int:
        """Bit length of ``n``."""
        return self.n.bit_length()

    @property
    def plaintext_bits(self) -> int:
        """Bits a packed plaintext may use (``|p| - 3``: keeps ``|V| <= p/3``)."""
        return plaintext_bits(self.range_n)

    @property
    def fingerprint(self) -> str:
        """Short hash of ``n`` for logs and error messages."""
        return hashlib.sha256(b"ou" + int(self.n).to_bytes(self.ciphertext_bytes, "big")).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OUPublicKey) and (self.n, self.g, self.h) == (other.n, other.g, other.h)

    def __hash__(self) -> int:
        return hash((int(self.n), int(self.g), int(self.h)))

    def __repr__(self) -> str:
        return f"OUPublicKey(bits={self.key_bits}, fingerprint={self.fingerprint})"

    # -- encryption ---------------------------------------------------------

    def encrypt(self, x: Any, frac_bits: int | None = None, *, method: str = "djn", n_jobs: int | None = None,
                nonces: Sequence[mpz] | None = None) -> EncryptedArray:
        """Encrypt a number or array (floats, ints, negatives) element by element (``method`` is ignored).

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt(pk.encrypt([[1, -2], [3, 4]])).tolist()
        [[1, -2], [3, 4]]
        """
        if frac_bits is None:
            frac_bits = default_frac_bits(x)
        signed = to_fixed(x, frac_bits)
        bound = check_range(signed, self.range_n)
        return self.encrypt_encoded(signed, frac_bits, bound=bound, n_jobs=n_jobs, nonces=nonces)

    def encrypt_encoded(self, signed: np.ndarray, frac_bits: int, *, bound: int | None = None,
                        layout: SlotLayout | None = None, method: str = "djn", n_jobs: int | None = None,
                        nonces: Sequence[mpz] | None = None) -> EncryptedArray:
        """Encrypt already-encoded signed integers (an object array) as an EncryptedArray.

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt(pk.encrypt_encoded(np.array([6, -2], dtype=object), 1)).tolist()
        [3.0, -1.0]
        """
        arr = np.asarray(signed, dtype=object)
        n = self.n
        cts = self.encrypt_residues([int(v) % n for v in arr.ravel().tolist()], n_jobs=n_jobs, nonces=nonces)
        return EncryptedArray(self, _object_array(cts, arr.shape), frac_bits, bound, layout)  # type: ignore[arg-type]

    def encrypt_residues(self, residues: Sequence[int], *, method: str = "djn", n_jobs: int | None = None,
                         nonces: Sequence[mpz] | None = None) -> list[mpz]:
        """Encrypt residues mod ``n`` (those above ``n/2`` stand for negatives); a list of mpz.

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt_residues(pk.encrypt_residues([3, int(pk.n) - 1]))[0]
        3
        """
        res = [int(v) for v in residues]
        jobs = parallel.resolve_n_jobs(n_jobs)
        if nonces is not None:
            if len(nonces) < len(res):
                raise ParameterError(f"{len(nonces)} nonces for {len(res)} values", field="nonces")
            return [gm * r % self.n for gm, r in zip(self._g_pows(res, jobs), nonces)]
        if jobs > 1 and len(res) >= ENCRYPT_PARALLEL_THRESHOLD:
            width = self.ciphertext_bytes
            parts = parallel.split(res, parallel.n_chunks_for(len(res), jobs, 4))
            blobs = parallel.map_chunks(_encrypt_kernel, [(self._params(), ints_to_bytes(ch, width)) for ch in parts], jobs)
            return [c for b in blobs for c in bytes_to_ints(b, width)]
        return _encrypt(self._params(), res)

    def trivial_encrypt(self, residues: Sequence[int]) -> list[mpz]:
        """``g^m mod n`` (no nonce) for integers ``m`` (signed, or residues mod ``n``): the plaintext
        operand of an addition.

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt_residues(pk.trivial_encrypt([7]))
        [7]
        """
        return _g_pow(_table(self._params(), "g"), self.n, residues)

    def _g_pows(self, res: list[int], jobs: int) -> list[mpz]:
        """``g^m`` for many residues; big batches on the pool (~6 table products each for
        packed gradients, a second of work per 100,000 rows on one core)."""
        if jobs <= 1 or len(res) < G_POW_PARALLEL_THRESHOLD:
            return self.trivial_encrypt(res)
        width = self.ciphertext_bytes
        parts = parallel.split(res, parallel.n_chunks_for(len(res), jobs, 2))
        blobs = parallel.map_chunks(_g_pow_kernel, [(self._params(), ints_to_bytes(ch, width)) for ch in parts], jobs)
        return [c for b in blobs for c in bytes_to_ints(b, width)]

    def nonces(self, count: int, *, n_jobs: int | None = None) -> list[mpz]:
        """``count`` fresh encryptions of zero ``h^r`` (``r`` of ``r_bits`` bits).

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt_residues(pk.nonces(2))
        [0, 0]
        """
        jobs = parallel.resolve_n_jobs(n_jobs)
        if jobs > 1 and count >= 2 * ENCRYPT_PARALLEL_THRESHOLD:
            width = self.ciphertext_bytes
            sizes = [len(r) for r in parallel.split(range(count), parallel.n_chunks_for(count, jobs, 4))]
            blobs = parallel.map_chunks(_nonce_kernel, [(self._params(), s) for s in sizes], jobs)
            return [c for b in blobs for c in bytes_to_ints(b, width)]
        return ou_zeros(self._params(), count)

    def raw_encrypt(self, m: int) -> mpz:
        """Encrypt one residue mod ``n``.

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.raw_decrypt(pk.raw_encrypt(5))
        5
        """
        return self.encrypt_residues([m], n_jobs=1)[0]

    def _params(self) -> tuple:
        return (SCHEME, int(self.n), int(self.g), int(self.h), self.r_bits, self.window)

    def _nonce_task(self, count: int) -> tuple[Any, tuple]:
        """(pool function, args) computing ``count`` nonces as bytes (for NoncePool)."""
        return _nonce_kernel, (self._params(), count)

    # -- wire -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description of the key (hex strings, no pickle).

        >>> sorted(generate_ou_keypair(768)[0].to_dict())
        ['g', 'h', 'key_bits', 'n', 'r_bits', 'scheme']
        """
        return {"scheme": SCHEME, "key_bits": self.key_bits, "n": format(int(self.n), "x"),
                "g": format(int(self.g), "x"), "h": format(int(self.h), "x"), "r_bits": self.r_bits}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, window: int = DEFAULT_WINDOW) -> OUPublicKey:
        """Rebuild a key received from a peer, validating every field.

        >>> OUPublicKey.from_dict({"scheme": "paillier-djn"})
        Traceback (most recent call last):
        ...
        jointml.core.errors.CryptoError: field 'scheme': OU public key: unknown scheme 'paillier-djn'
        """
        if not isinstance(d, dict):
            raise CryptoError(f"OU public key: expected a dict, got {type(d).__name__}")
        if d.get("scheme") != SCHEME:
            raise CryptoError(f"OU public key: unknown scheme {d.get('scheme')!r}", field="scheme")
        try:
            n, g, h = (int(d[k], 16) for k in ("n", "g", "h"))
            r_bits = int(d["r_bits"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CryptoError(f"OU public key: malformed field ({exc})") from None
        if "key_bits" in d and int(d["key_bits"]) != n.bit_length():
            raise CryptoError("OU public key: key_bits does not match n", field="key_bits")
        if gmpy2.powmod(g, n, n) != h:
            raise CryptoError("OU public key: h must equal g^n mod n", field="h")
        return cls(n, g, h, r_bits=r_bits, window=window)

    def validate_ciphertext(self, c: Any) -> mpz:
        """Check one ciphertext from a peer: an integer with ``0 < c < n``, ``gcd(c, n) = 1``.

        >>> pk, _ = generate_ou_keypair(768)
        >>> pk.validate_ciphertext(pk.n)
        Traceback (most recent call last):
        ...
        jointml.core.errors.CryptoError: ciphertext out of range: must satisfy 0 < c < n
        """
        if isinstance(c, bool) or not (isinstance(c, (int, np.integer)) or type(c) is mpz):
            raise CryptoError(f"ciphertext must be an integer, got {type(c).__name__}")
        c = mpz(c)
        if not 0 < c < self.n:
            raise CryptoError("ciphertext out of range: must satisfy 0 < c < n")
        if gmpy2.gcd(c, self.n) != 1:
            raise CryptoError("ciphertext not invertible: gcd(c, n) != 1")
        return c

    def ciphertexts_to_wire(self, cts: Sequence[Any]) -> np.ndarray:
        """Ciphertexts as a ``(k, ciphertext_bytes)`` big-endian uint8 array.

        >>> pk, _ = generate_ou_keypair(768)
        >>> pk.ciphertexts_to_wire(pk.nonces(3)).shape
        (3, 96)
        """
        width = self.ciphertext_bytes
        blob = bytearray().join(mpz(v).to_bytes(width, "big") for v in cts)
        return np.frombuffer(blob, dtype=np.uint8).reshape(len(blob) // width, width)

    def ciphertexts_from_wire(self, buf: Any, count: int | None = None, *, party: str | None = None) -> list[mpz]:
        """Parse and validate ciphertexts from a peer: shape ``(k, ciphertext_bytes)`` uint8,
        each ``0 < c < n`` and a unit mod ``n`` (one batched gcd, the culprit named on failure).

        >>> pk, _ = generate_ou_keypair(768)
        >>> len(pk.ciphertexts_from_wire(pk.encrypt([1, 2]).to_wire(), 2))
        2
        """
        if not isinstance(buf, np.ndarray) or buf.dtype != np.uint8:
            raise CryptoError(f"ciphertexts: expected a uint8 numpy array, got {type(buf).__name__}", party=party)
        width = self.ciphertext_bytes
        if buf.ndim != 2 or buf.shape[1] != width or (count is not None and buf.shape[0] != count):
            want = f"({'k' if count is None else count}, {width})"
            raise CryptoError(f"ciphertexts: expected shape {want}, got {buf.shape}", party=party)
        cts = bytes_to_ints(np.ascontiguousarray(buf).tobytes(), width)
        n = self.n
        acc = mpz(1)
        for i, c in enumerate(cts):
            if not 0 < c < n:
                raise CryptoError(f"ciphertext {i}: ciphertext out of range: must satisfy 0 < c < n", party=party)
            acc = acc * c % n
        if gmpy2.gcd(acc, n) != 1:
            bad = next(i for i, c in enumerate(cts) if gmpy2.gcd(c, n) != 1)
            raise CryptoError(f"ciphertext {bad}: ciphertext not invertible: gcd(c, n) != 1", party=party)
        return cts


class OUPrivateKey:
    """Okamoto-Uchiyama private key (``p``, ``q``). Never serialised or pickled.

    >>> pk, sk = generate_ou_keypair(768)
    >>> sk.decrypt(pk.encrypt(-7)).tolist()
    -7
    """

    __slots__ = ("public_key", "_p", "_q", "_psq", "_gp_inv")

    def __init__(self, public_key: OUPublicKey, p: int, q: int) -> None:
        p, q = mpz(p), mpz(q)
        if p == q or p * p * q != public_key.n:
            raise CryptoError("OU private key: p^2 * q must equal n with p != q")
        self.public_key = public_key
        self._p, self._q, self._psq = p, q, p * p
        lg = (gmpy2.powmod(public_key.g, p - 1, self._psq) - 1) // p
        self._gp_inv = gmpy2.invert(lg % p, p)

    def __repr__(self) -> str:
        return f"OUPrivateKey(bits={self.public_key.key_bits}, fingerprint={self.public_key.fingerprint})"

    def __reduce__(self) -> Any:
        raise UnsupportedOperation("OUPrivateKey must not be pickled")

    def _params(self) -> tuple[int, int]:
        return int(self._p), int(self._gp_inv)

    def raw_decrypt(self, c: int) -> int:
        """Decrypt one ciphertext to its residue in ``[0, p)``."""
        return self.decrypt_residues([c], n_jobs=1)[0]

    def decrypt_residues(self, cts: Sequence[int], *, n_jobs: int | None = None) -> list[int]:
        """Decrypt many ciphertexts to residues in ``[0, p)`` (no sign or scale decoding).

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt_residues(pk.encrypt_residues([3, 4]))
        [3, 4]
        """
        count = len(cts)
        jobs = parallel.resolve_n_jobs(n_jobs)
        if jobs > 1 and count >= DECRYPT_PARALLEL_THRESHOLD:
            cwidth, pwidth = self.public_key.ciphertext_bytes, (self.public_key.p_bits + 7) // 8
            chunks = parallel.split(list(cts), parallel.n_chunks_for(count, jobs, 2))
            args = [(self._params(), ints_to_bytes(ch, cwidth), cwidth, pwidth) for ch in chunks]
            blobs = parallel.map_chunks(_decrypt_kernel, args, jobs)
            return [int(m) for blob in blobs for m in bytes_to_ints(blob, pwidth)]
        return [int(m) for m in _decrypt(self._params(), cts)]

    def decrypt(self, ct: EncryptedArray, *, n_jobs: int | None = None) -> np.ndarray:
        """Decrypt and decode: floats, or ints when ``ct.frac_bits == 0``; packed and
        compressed arrays come back with their slot axes, as with Paillier.

        >>> pk, sk = generate_ou_keypair(768)
        >>> sk.decrypt(pk.encrypt([0.5, -0.25]).sum()).tolist()
        0.25
        """
        if not isinstance(ct, EncryptedArray):
            raise ParameterTypeError(f"expected EncryptedArray, got {type(ct).__name__}", field="ct")
        if ct.public_key != self.public_key:
            raise CryptoError(f"ciphertext is under key {ct.public_key.fingerprint}, "
                              f"this private key is {self.public_key.fingerprint}")
        residues = self.decrypt_residues(ct.data.ravel().tolist(), n_jobs=n_jobs)
        return decode_signed(_object_array(residues, ct.shape), self._p, ct)


# ------------------------------------------------------------------- kernels


class _Table:
    """Fixed-base powers ``base^(j * 2^(w*i)) mod n`` for ``j < 2^w``: one row per ``w``-bit digit.

    Rows are built on demand up to ``max_bits``: the g table of a packed-gradient workload
    (~90-bit plaintexts) needs 8 rows of 57 at 2048 bits (w = 12), which saves ~85 % of its
    build time and memory (~4,000 residues per row at w = 12).
    """

    def __init__(self, base: mpz, modulus: mpz, exp_bits: int, window: int, *, max_bits: int | None = None) -> None:
        self.window, self.modulus = window, modulus
        self.max_rows = -(-(exp_bits if max_bits is None else max_bits) // window)
        self.rows: list[list[mpz]] = []
        self._next = base
        self._lock = threading.Lock()
        self.grow(-(-exp_bits // window))

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def grow(self, n_rows: int) -> None:
        """Make sure the first ``n_rows`` rows exist (thread-safe; at most ``max_rows``)."""
        if n_rows <= len(self.rows):
            return
        with self._lock:
            size, mod = 1 << self.window, self.modulus
            while len(self.rows) < min(n_rows, self.max_rows):
                row, acc, b = [mpz(1)] * size, mpz(1), self._next
                for j in range(1, size):
                    acc = acc * b % mod
                    row[j] = acc
                self.rows.append(row)
                self._next = acc * b % mod


_TABLES: OrderedDict[tuple, _Table] = OrderedDict()
_LOCK = threading.Lock()


def _table(params: tuple, which: str) -> _Table:
    """The g table (``which="g"``, grown on demand up to |n|/3 bits, from 64) or the h table
    (``"h"``, r_bits), cached per key and process, each built only where it is used (the
    pool workers that compute ``g^m`` never build the h table, and conversely)."""
    key = (which, *params)
    with _LOCK:
        hit = _TABLES.get(key)
        if hit is None:
            _, n, g, h, r_bits, window = params
            n = mpz(n)
            hit = _Table(mpz(g), n, 64, window, max_bits=n.bit_length() // 3) if which == "g" \
                else _Table(mpz(h), n, r_bits, window)
            _TABLES[key] = hit
            while len(_TABLES) > 8:
                _TABLES.popitem(last=False)
        else:
            _TABLES.move_to_end(key)
        return hit


def _g_pow(table: _Table, n: mpz, residues: Sequence[int]) -> list[mpz]:
    """``g^m mod n`` for integers ``m`` taken mod ``n``; residues above ``n/2`` are ``-|m|``: ``(g^|m|)^-1``."""
    w, half = table.window, n >> 1
    mask = (1 << w) - 1
    limit = table.max_rows * w
    out = []
    for m in residues:
        m = int(m) % n
        neg = m > half
        e = int(n - m) if neg else m
        if e >> limit:
            raise ParameterError(f"plaintext of {e.bit_length()} bits exceeds the {limit}-bit plaintext space",
                                 field="plaintext")
        if e.bit_length() > table.n_rows * w:
            table.grow(-(-e.bit_length() // w))
        rows = table.rows
        acc, i = mpz(1), 0
        while e:  # only as many rows as the value has digits: small values are cheap
            d = e & mask
            if d:
                acc = acc * rows[i][d] % n
            e >>= w
            i += 1
        out.append(gmpy2.invert(acc, n) if neg else acc)
    return out


def ou_zeros(params: tuple, count: int) -> list[mpz]:
    """``count`` fresh ``h^r mod n`` (encryptions of zero) under the key with ``params``.

    ``params`` is ``("ou", n, g, h, r_bits, window)``, what a pool worker needs to rebuild
    (and cache) the key's tables.

    >>> pk, sk = generate_ou_keypair(768)
    >>> sk.decrypt_residues(ou_zeros(pk._params(), 2))
    [0, 0]
    """
    table = _table(params, "h")
    n = mpz(params[1])
    rows, k, w = table.rows, table.n_rows, table.window
    if count <= 0:
        return []
    # all digits at once: numpy turns CSPRNG bytes into w-bit digits (no big-int shifts per digit)
    nbytes = -(-k * w // 8)
    raw = np.frombuffer(secrets.token_bytes(nbytes * count), dtype=np.uint8).reshape(count, nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, : k * w].reshape(count, k, w)
    digits = (bits.astype(np.int64) << np.arange(w, dtype=np.int64)).sum(axis=2).tolist()
    first, rest = rows[0], rows[1:]
    out = []
    for ds in digits:
        acc = first[ds[0]]
        for row, d in zip(rest, ds[1:]):
            acc = acc * row[d] % n
        out.append(acc)
    return out


def _encrypt(params: tuple, residues: Sequence[int]) -> list[mpz]:
    n = mpz(params[1])
    gm = _g_pow(_table(params, "g"), n, residues)
    return [a * r % n for a, r in zip(gm, ou_zeros(params, len(gm)))]


def _encrypt_kernel(params: tuple, blob: bytes) -> bytes:
    width = (int(params[1]).bit_length() + 7) // 8
    return ints_to_bytes(_encrypt(params, bytes_to_ints(blob, width)), width)


def _g_pow_kernel(params: tuple, blob: bytes) -> bytes:
    n = mpz(params[1])
    width = (n.bit_length() + 7) // 8
    return ints_to_bytes(_g_pow(_table(params, "g"), n, bytes_to_ints(blob, width)), width)


def _nonce_kernel(params: tuple, count: int) -> bytes:
    width = (int(params[1]).bit_length() + 7) // 8
    return ints_to_bytes(ou_zeros(params, count), width)


def _decrypt(params: tuple[int, int], cts: Sequence[int]) -> list[mpz]:
    p, gp_inv = mpz(params[0]), mpz(params[1])
    psq, pm1 = p * p, p - 1
    # powmod_sec: constant time in the secret exponent p - 1; reducing mod p^2 first
    # makes the exponentiation work on |n|*2/3-bit numbers.
    return [(gmpy2.powmod_sec(mpz(c) % psq, pm1, psq) - 1) // p * gp_inv % p for c in cts]


def _decrypt_kernel(params: tuple[int, int], blob: bytes, cwidth: int, pwidth: int) -> bytes:
    return ints_to_bytes(_decrypt(params, bytes_to_ints(blob, cwidth)), pwidth)
