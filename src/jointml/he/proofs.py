"""Zero-knowledge proofs that Paillier ciphertexts encrypt 0 or 1 (Sigma OR-proofs, Fiat-Shamir).

Why. A party that encrypts values for a peer to sum (vertical WOE's labels) could encrypt
``2^i`` instead of its 0/1 label for row ``i``: the peer's per-bin sums would then decrypt
to a bitmask of the rows in each bin. With these proofs the peer checks, before it sums
anything, that every ciphertext encrypts 0 or 1.

Statement. Under a DJN key (:mod:`jointml.he.paillier`) an honest ciphertext is
``c = (1 + n)^m * h_s^alpha mod n^2``. For ``x_0 = c`` and ``x_1 = c * (1 - n) = c / (1 + n)``
the prover shows that ``x_0`` or ``x_1`` is a power of ``h_s``, knowing the exponent
``alpha`` (the *witness*, :meth:`~jointml.he.paillier.PublicKey.encrypt_with_witnesses`) of
one: a Schnorr proof of a discrete logarithm over the integers (group of unknown order),
composed as an OR-proof (Cramer, Damgard, Schoenmakers 1994).

* real branch ``b = m``: ``a_b = h_s^k`` with ``k`` uniform of ``K`` bits;
* simulated branch: ``e_s``, ``z_s`` uniform, ``a_(1-b) = h_s^(z_s) * x_(1-b)^(-e_s)``;
* challenge ``e = SHA-256(domain, n, h_s, context, row index, c, a_0, a_1)`` truncated to
  ``t = 128`` bits, ``e_b = e - e_s mod 2^t``, ``z_b = k + e_b * alpha`` (over the integers);
* proof ``(e_0, e_1, z_0, z_1)``; the verifier recomputes ``a_j = h_s^(z_j) * x_j^(-e_j)``
  and checks ``e_0 + e_1 = e mod 2^t`` and ``0 <= z_j < 2^(K+1)``.

``K = alpha_bits + 12 + t + 80``: ``z`` hides ``e * alpha`` with statistical distance below
``2^-80`` (zero knowledge, honest-verifier, hence zero knowledge in the random-oracle model).
Soundness: two accepting answers to one commitment with challenges differing in branch
``j`` give ``x_j^(de) = h_s^(dz)``, an n-th residue, with ``0 < |de| < 2^128 < p, q``; hence
``x_j`` itself encrypts 0, i.e. ``c`` encrypts ``j``. A cheating prover succeeds with
probability about ``q_H / 2^128`` (``q_H`` hash queries). The context string binds the proof
to the job step and the parties, the public key (fresh for every run) to the run, and the
row index to the row: a proof is refused for another ciphertext, row, key or context.

What each party learns: the verifier learns that each ciphertext encrypts 0 or 1, nothing
else (zero knowledge); the prover learns nothing. Randomness: :mod:`secrets`.
Cost (2048-bit keys): see docs/security.md (WOE section); per row, the prover does two
fixed-base exponentiations and one 128-bit exponentiation, the verifier two of each.

>>> from jointml.he import generate_keypair
>>> pk, sk = generate_keypair(512)
>>> cts, alphas = pk.encrypt_with_witnesses([0, 1, 1])
>>> proofs = prove_binary(pk, [0, 1, 1], cts, alphas, "example")
>>> verify_binary(pk, cts, proofs, "example").tolist()
[True, True, True]
>>> verify_binary(pk, cts, proofs, "another context").tolist()
[False, False, False]
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from ..core.errors import CryptoError, ParameterError
from . import parallel
from .paillier import PublicKey

__all__ = ["CHALLENGE_BITS", "STATISTICAL_BITS", "proof_width", "prove_binary", "verify_binary"]

#: Challenge length t (bits): a cheating prover passes one row with probability ~2^-128.
CHALLENGE_BITS = 128
#: Statistical zero-knowledge slack (bits) of the integer responses.
STATISTICAL_BITS = 80
#: Extra bits for the nonce exponent: the encryption table rounds alpha up to its window (<= 12).
_ALPHA_SLACK = 12
_DOMAIN = b"jointml/he/proofs/binary-or/v1"
#: Rows from which proving or verifying goes to the worker pool.
PARALLEL_THRESHOLD = 32


def _response_bits(pk: PublicKey) -> int:
    return pk.alpha_bits + _ALPHA_SLACK + CHALLENGE_BITS + STATISTICAL_BITS


def _widths(pk: PublicKey) -> tuple[int, int]:
    """(challenge bytes, response bytes): a response may reach K + 1 bits."""
    return CHALLENGE_BITS // 8, (_response_bits(pk) + 1 + 7) // 8


def proof_width(pk: PublicKey) -> int:
    """Bytes of one row's proof ``(e_0, e_1, z_0, z_1)``.

    >>> from jointml.he import generate_keypair
    >>> proof_width(generate_keypair(512)[0])
    200
    """
    eb, zb = _widths(pk)
    return 2 * eb + 2 * zb


def _prefix(pk: PublicKey, context: str | bytes) -> Any:
    ctx = context.encode() if isinstance(context, str) else bytes(context)
    nb = (pk.key_bits + 7) // 8
    h = hashlib.sha256(_DOMAIN)
    for part in (int(pk.n).to_bytes(nb, "big"), int(pk.hs).to_bytes(pk.ciphertext_bytes, "big"), ctx):
        h.update(len(part).to_bytes(8, "big") + part)
    return h


def _challenge(prefix: Any, width: int, index: int, c: mpz, a0: mpz, a1: mpz) -> int:
    h = prefix.copy()
    h.update(int(index).to_bytes(8, "big"))
    for v in (c, a0, a1):
        h.update(int(v).to_bytes(width, "big"))
    return int.from_bytes(h.digest()[: CHALLENGE_BITS // 8], "big")


def prove_binary(
    pk: PublicKey,
    plaintexts: Sequence[int],
    ciphertexts: Sequence[int],
    witnesses: Sequence[int],
    context: str | bytes,
    *,
    start: int = 0,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Proofs that ``ciphertexts[i]`` (row ``start + i``) encrypts ``plaintexts[i]`` in {0, 1}.

    ``witnesses`` are the nonce exponents from
    :meth:`~jointml.he.paillier.PublicKey.encrypt_with_witnesses`. Returns a ``(rows,
    proof_width(pk))`` uint8 array, ready to send beside the ciphertexts. A plaintext other
    than 0 or 1 is refused (ParameterError): an honest prover cannot prove it.

    >>> from jointml.he import generate_keypair
    >>> pk, _ = generate_keypair(512)
    >>> cts, alphas = pk.encrypt_with_witnesses([1])
    >>> prove_binary(pk, [1], cts, alphas, "doc").shape
    (1, 200)
    """
    rows = len(ciphertexts)
    if len(plaintexts) != rows or len(witnesses) != rows:
        raise ParameterError(f"{len(plaintexts)} plaintexts and {len(witnesses)} witnesses for {rows} ciphertexts",
                             field="witnesses")
    ms = [int(m) for m in plaintexts]
    if any(m not in (0, 1) for m in ms):
        raise ParameterError("a binary proof needs plaintexts 0 or 1", field="plaintexts")
    jobs = parallel.resolve_n_jobs(n_jobs)
    params = pk._params()
    if jobs <= 1 or rows < PARALLEL_THRESHOLD:
        return _unpack(_prove_kernel(params, context, start, ms, [int(c) for c in ciphertexts],
                                     [int(a) for a in witnesses]), proof_width(pk))
    parts = parallel.split(range(rows), parallel.n_chunks_for(rows, jobs, 8))
    args = [(params, context, start + r.start, ms[r.start : r.stop], [int(c) for c in ciphertexts[r.start : r.stop]],
             [int(a) for a in witnesses[r.start : r.stop]]) for r in parts]
    return _unpack(b"".join(parallel.map_chunks(_prove_kernel, args, jobs)), proof_width(pk))


def verify_binary(
    pk: PublicKey,
    ciphertexts: Sequence[int],
    proofs: np.ndarray,
    context: str | bytes,
    *,
    start: int = 0,
    n_jobs: int | None = None,
    party: str | None = None,
) -> np.ndarray:
    """For each row, True when its proof shows that the ciphertext encrypts 0 or 1.

    ``ciphertexts`` must already be validated (``0 < c < n^2``, invertible: what
    :meth:`~jointml.he.paillier.PublicKey.ciphertexts_from_wire` checks). A `proofs` array
    of the wrong dtype or shape raises CryptoError naming `party` (the prover).

    >>> from jointml.he import generate_keypair
    >>> pk, _ = generate_keypair(512)
    >>> cts, alphas = pk.encrypt_with_witnesses([0, 1])
    >>> proofs = prove_binary(pk, [0, 1], cts, alphas, "doc")
    >>> verify_binary(pk, cts[::-1], proofs, "doc").tolist()   # proofs of other ciphertexts
    [False, False]
    """
    rows = len(ciphertexts)
    width = proof_width(pk)
    if not isinstance(proofs, np.ndarray) or proofs.dtype != np.uint8 or proofs.shape != (rows, width):
        got = proofs.shape if isinstance(proofs, np.ndarray) else type(proofs).__name__
        raise CryptoError(f"binary proofs: expected a ({rows}, {width}) uint8 array, got {got}", party=party,
                          field="proofs")
    blob = np.ascontiguousarray(proofs).tobytes()
    cts = [int(c) for c in ciphertexts]
    jobs = parallel.resolve_n_jobs(n_jobs)
    params = pk._params()
    if jobs <= 1 or rows < PARALLEL_THRESHOLD:
        ok = _verify_kernel(params, context, start, cts, blob)
    else:
        parts = parallel.split(range(rows), parallel.n_chunks_for(rows, jobs, 8))
        args = [(params, context, start + r.start, cts[r.start : r.stop], blob[r.start * width : r.stop * width])
                for r in parts]
        ok = b"".join(parallel.map_chunks(_verify_kernel, args, jobs))
    return np.frombuffer(ok, dtype=np.uint8).astype(bool)


# ------------------------------------------------------------------- kernels (pool tasks)


def _unpack(blob: bytes, width: int) -> np.ndarray:
    arr = np.frombuffer(bytearray(blob), dtype=np.uint8)
    return arr.reshape(len(blob) // width, width)


def _prove_kernel(params: tuple[int, int, int, int], context: str | bytes, start: int, ms: list[int],
                  cts: list[int], alphas: list[int]) -> bytes:
    n, hs, alpha_bits, window = params
    pk = PublicKey(n, hs, alpha_bits=alpha_bits, window=window)
    nsq, kbits, width = pk.nsq, _response_bits(pk), pk.ciphertext_bytes
    eb, zb = _widths(pk)
    rows = len(cts)
    ks = [secrets.randbits(kbits) for _ in range(rows)]
    e_sim = [secrets.randbits(CHALLENGE_BITS) for _ in range(rows)]
    z_sim = [secrets.randbits(kbits) for _ in range(rows)]
    powers = pk.hs_pow(ks + z_sim)
    prefix = _prefix(pk, context)
    one_minus_n = (1 - pk.n) % nsq
    mask = (1 << CHALLENGE_BITS) - 1
    out = bytearray()
    for i in range(rows):
        c, m = mpz(cts[i]), ms[i]
        x_other = c * one_minus_n % nsq if m == 0 else c  # the branch the prover simulates
        a_real = powers[i]
        a_sim = powers[rows + i] * gmpy2.powmod(x_other, -e_sim[i], nsq) % nsq
        a0, a1 = (a_real, a_sim) if m == 0 else (a_sim, a_real)
        e = _challenge(prefix, width, start + i, c, a0, a1)
        e_real = (e - e_sim[i]) & mask
        z_real = ks[i] + e_real * int(alphas[i])
        e0, e1, z0, z1 = (e_real, e_sim[i], z_real, z_sim[i]) if m == 0 else (e_sim[i], e_real, z_sim[i], z_real)
        out += e0.to_bytes(eb, "big") + e1.to_bytes(eb, "big") + z0.to_bytes(zb, "big") + z1.to_bytes(zb, "big")
    return bytes(out)


def _verify_kernel(params: tuple[int, int, int, int], context: str | bytes, start: int, cts: list[int],
                   blob: bytes) -> bytes:
    n, hs, alpha_bits, window = params
    pk = PublicKey(n, hs, alpha_bits=alpha_bits, window=window)
    nsq, width = pk.nsq, pk.ciphertext_bytes
    eb, zb = _widths(pk)
    zmax = 1 << (_response_bits(pk) + 1)
    rows = len(cts)
    step = 2 * eb + 2 * zb
    fields = []
    for i in range(rows):
        rec = blob[i * step : (i + 1) * step]
        e0, e1 = int.from_bytes(rec[:eb], "big"), int.from_bytes(rec[eb : 2 * eb], "big")
        z0, z1 = int.from_bytes(rec[2 * eb : 2 * eb + zb], "big"), int.from_bytes(rec[2 * eb + zb :], "big")
        fields.append((e0, e1, z0, z1))
    ok_range = [z0 < zmax and z1 < zmax for _, _, z0, z1 in fields]
    # out-of-range responses are replaced by 0 for the table and rejected below
    zs = [f[2] if r else 0 for f, r in zip(fields, ok_range)] + [f[3] if r else 0 for f, r in zip(fields, ok_range)]
    powers = pk.hs_pow(zs)
    prefix = _prefix(pk, context)
    one_minus_n = (1 - pk.n) % nsq
    mask = (1 << CHALLENGE_BITS) - 1
    out = bytearray(rows)
    for i, (e0, e1, _, _) in enumerate(fields):
        if not ok_range[i]:
            continue
        c = mpz(cts[i])
        try:
            a0 = powers[i] * gmpy2.powmod(c, -e0, nsq) % nsq
            a1 = powers[rows + i] * gmpy2.powmod(c * one_minus_n % nsq, -e1, nsq) % nsq
        except ZeroDivisionError:  # not invertible: not a ciphertext
            continue
        out[i] = int(_challenge(prefix, width, start + i, c, a0, a1) == (e0 + e1) & mask)
    return bytes(out)

