"""ristretto255 (RFC 9496): a prime-order group built on Curve25519, for the base OTs.

`cryptography` exposes X25519 (an x-only Montgomery ladder) but no point addition,
and the "simplest OT" needs A + B and B - A. This module implements the group on
edwards25519 in extended coordinates with gmpy2 integers, and the ristretto255
encoding on top of it:

* every 32-byte string decodes to at most one group element, and the decoder rejects
  everything else (non-canonical field elements, negative s, non-square cases, the
  points of small order that make up the cofactor of Curve25519): a received point is
  either a valid element of the prime-order group or refused. This is the fix for the
  cofactor pitfall of the original simplest-OT implementation (points of order 8 let a
  receiver learn both keys' relation) without cofactor-clearing tricks;
* equality is the ristretto equality (x1*y2 == y1*x2 or y1*y2 == x1*x2), so each
  group element has one encoding.

Speed: a variable-base scalar multiplication is ~0.9 ms in Python; multiples of a point
used many times (the generator, the sender's A) go through a `FixedBase` table of its
2^i multiples (~0.35 ms each). The base OTs need 128 of them per party per run, once;
everything else is AES. Timing: not constant time (Python integers); the scalars are
fresh per run and only local timing of the owner's machine depends on them.

>>> b = decode(BASE_BYTES)
>>> encode(add(b, b)).hex()[:16]            # 2*B, RFC 9496 test vector
'6a493210f7499cd1'
>>> encode(mul(3, b)) == encode(add(b, add(b, b)))
True
"""

from __future__ import annotations

import secrets

import gmpy2

from ...core.errors import CryptoError

P = 2**255 - 19
#: The order of the ristretto255 group (and of edwards25519's prime-order subgroup).
L = 2**252 + 27742317777372353535851937790883648493
_P = gmpy2.mpz(P)
_D = gmpy2.mpz((-121665 * pow(121666, P - 2, P)) % P)
_D2 = (2 * _D) % _P
_SQRT_M1 = gmpy2.mpz(pow(2, (P - 1) // 4, P))
_SQRT_AD_MINUS_ONE = gmpy2.mpz(25063068953384623474111414158702152701244531502492656460079210482610430750235)
_INVSQRT_A_MINUS_D = gmpy2.mpz(54469307008909316920995813868745141605393597292927456921205312896311721017578)
#: The ristretto255 generator's encoding (RFC 9496).
BASE_BYTES = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
POINT_BYTES = 32

Point = tuple[gmpy2.mpz, gmpy2.mpz, gmpy2.mpz, gmpy2.mpz]  # extended (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
IDENTITY: Point = (gmpy2.mpz(0), gmpy2.mpz(1), gmpy2.mpz(1), gmpy2.mpz(0))


def _neg(x: gmpy2.mpz) -> bool:
    return bool(x % 2)


def _abs(x: gmpy2.mpz) -> gmpy2.mpz:
    return (-x) % _P if _neg(x) else x


def _sqrt_ratio_m1(u: gmpy2.mpz, v: gmpy2.mpz) -> tuple[bool, gmpy2.mpz]:
    v3 = v * v % _P * v % _P
    v7 = v3 * v3 % _P * v % _P
    r = u * v3 % _P * gmpy2.powmod(u * v7 % _P, (P - 5) // 8, _P) % _P
    check = v * r % _P * r % _P
    correct = check == u % _P
    flipped = check == (-u) % _P
    flipped_i = check == (-u) * _SQRT_M1 % _P
    if flipped or flipped_i:
        r = r * _SQRT_M1 % _P
    return correct or flipped, _abs(r)


def decode(data: bytes) -> Point:
    """The group element encoded by 32 bytes; `CryptoError` for anything that is not one.

    >>> decode(bytes(32)) == IDENTITY
    True
    >>> decode(b"\\xff" * 32)
    Traceback (most recent call last):
    jointml.core.errors.CryptoError: not a ristretto255 encoding (non-canonical)
    """
    if len(data) != POINT_BYTES:
        raise CryptoError(f"a ristretto255 point is {POINT_BYTES} bytes, got {len(data)}")
    s = gmpy2.mpz(int.from_bytes(data, "little"))
    if s >= _P or _neg(s):
        raise CryptoError("not a ristretto255 encoding (non-canonical)")
    ss = s * s % _P
    u1 = (1 - ss) % _P
    u2 = (1 + ss) % _P
    u2_sqr = u2 * u2 % _P
    v = (-(_D * u1 % _P * u1) - u2_sqr) % _P
    was_square, invsqrt = _sqrt_ratio_m1(gmpy2.mpz(1), v * u2_sqr % _P)
    den_x = invsqrt * u2 % _P
    den_y = invsqrt * den_x % _P * v % _P
    x = _abs(2 * s * den_x % _P)
    y = u1 * den_y % _P
    t = x * y % _P
    if not was_square or _neg(t) or y == 0:
        raise CryptoError("not a ristretto255 encoding (not a point of the group)")
    return (x, y, gmpy2.mpz(1), t)


def encode(pt: Point) -> bytes:
    """The canonical 32-byte encoding of a group element.

    >>> encode(decode(BASE_BYTES)) == BASE_BYTES
    True
    """
    x0, y0, z0, t0 = pt
    u1 = (z0 + y0) * (z0 - y0) % _P
    u2 = x0 * y0 % _P
    _, invsqrt = _sqrt_ratio_m1(gmpy2.mpz(1), u1 * u2 % _P * u2 % _P)
    den1 = invsqrt * u1 % _P
    den2 = invsqrt * u2 % _P
    z_inv = den1 * den2 % _P * t0 % _P
    if _neg(t0 * z_inv % _P):  # rotate
        x, y, den_inv = y0 * _SQRT_M1 % _P, x0 * _SQRT_M1 % _P, den1 * _INVSQRT_A_MINUS_D % _P
    else:
        x, y, den_inv = x0, y0, den2
    if _neg(x * z_inv % _P):
        y = (-y) % _P
    s = _abs(den_inv * (z0 - y) % _P)
    return int(s).to_bytes(32, "little")


def add(p: Point, q: Point) -> Point:
    """p + q (complete twisted-Edwards addition, a = -1; "add-2008-hwcd-3").

    >>> b = decode(BASE_BYTES); equal(add(b, IDENTITY), b)
    True
    """
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 % _P * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def neg(p: Point) -> Point:
    """-p.

    >>> b = decode(BASE_BYTES); encode(add(b, neg(b))) == bytes(32)
    True
    """
    x, y, z, t = p
    return ((-x) % _P, y, z, (-t) % _P)


def sub(p: Point, q: Point) -> Point:
    """p - q.

    >>> b = decode(BASE_BYTES); encode(sub(add(b, b), b)) == BASE_BYTES
    True
    """
    return add(p, neg(q))


def mul(k: int, p: Point) -> Point:
    """k * p by double-and-add (variable base).

    >>> encode(mul(L, decode(BASE_BYTES))) == bytes(32)   # the group has order L
    True
    """
    k %= L
    acc = IDENTITY
    for bit in bin(k)[2:]:
        acc = add(acc, acc)
        if bit == "1":
            acc = add(acc, p)
    return acc


class FixedBase:
    """Multiples of one point from a table of its 2^i multiples (4x fewer additions than `mul`).

    >>> b = decode(BASE_BYTES)
    >>> encode(FixedBase(b).mul(12345)) == encode(mul(12345, b))
    True
    """

    def __init__(self, p: Point):
        table = [p]
        for _ in range(252):
            q = table[-1]
            table.append(add(q, q))
        self._table = table

    def mul(self, k: int) -> Point:
        """k * p."""
        k %= L
        acc = IDENTITY
        i = 0
        while k:
            if k & 1:
                acc = add(acc, self._table[i])
            k >>= 1
            i += 1
        return acc


def random_scalar() -> int:
    """A uniform scalar in [1, L) from `secrets` (64 bytes reduced mod L: bias 2^-260).

    >>> 0 < random_scalar() < L
    True
    """
    while True:
        k = int.from_bytes(secrets.token_bytes(64), "little") % L
        if k:
            return k


def equal(p: Point, q: Point) -> bool:
    """Group equality (the ristretto relation, which identifies the cofactor cosets).

    >>> b = decode(BASE_BYTES); equal(mul(2, b), add(b, b)), equal(b, IDENTITY)
    (True, False)
    """
    x1, y1, _, _ = p
    x2, y2, _, _ = q
    return bool((x1 * y2 - y1 * x2) % _P == 0 or (y1 * y2 - x1 * x2) % _P == 0)


BASE: Point = decode(BASE_BYTES)


def _selfcheck() -> None:
    # RFC 9496 A.1: encodings of 2B and 3B. A wrong constant fails here at import, not in a run.
    want = ("6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919",
            "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259")
    got = (encode(add(BASE, BASE)).hex(), encode(add(BASE, add(BASE, BASE))).hex())
    if got != want:  # pragma: no cover
        raise CryptoError("ristretto255 self-check failed")


_selfcheck()
