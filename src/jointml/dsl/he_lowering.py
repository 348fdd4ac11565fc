"""The Paillier matrix-vector product: X @ y for a matrix X private to one compute party (the
owner) and a secret vector y, on a two-party semi2k device.

With y = y_o + y_h (the owner's and the other party's shares, over Z_2^64), X @ y_o is
local at the owner; for X @ y_h the other party (the key holder) sends its share encrypted
under its Paillier key, the owner computes Enc(X @ y_h + r) homomorphically (integers, no
wrap-around: |X @ y_h| < 2^(127 + log2 k) << n / 3), re-randomises it and sends it back;
the holder decrypts and keeps (X @ y_h + r) mod 2^64, the owner (X @ y_o - r) mod 2^64.
The sum is X @ y mod 2^64: an additive sharing of the double-scale product, truncated as
every product (`rescale_many`).

Cost per product of an (m, k) block: k + m ciphertexts (2 x key bits each, 512 B at 2048
bits), one message each way; the local work is the price (k encryptions, m k ciphertext
exponentiations, m decryptions: `LOCAL_SECONDS`), so the cost model picks it only where
bytes are very expensive and X is wide (512 (m + k) < 8 m k).

Security (semi-honest, as the device): the owner sees k Paillier ciphertexts (IND-CPA under
the holder's key); the holder decrypts X @ y_h + r with r uniform on 40 more bits than
|X @ y_h| can have (statistical distance < 2^-40 from a value independent of X), from
ciphertexts re-randomised by the owner (their nonces reveal nothing of X). The dealer
receives nothing. A deviating owner could return another linear function of y_h: the
device's model is semi-honest. The key pair is made once per device by the holder; only
its public key crosses the link.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from ..core.prg import Prg
from ..mpc import SecretArray
from ..mpc.batched import rescale_many
from ..mpc.protocols.base import Cost
from ..mpc.shapes import rows_shape
from ..runtime.collectives import send_to
from .ir import Op

__all__ = ["KEY_BITS", "LOCAL_SECONDS", "ciphertext_bytes", "paillier_cost", "paillier_local", "run_paillier"]

#: key size of the product's Paillier keys
KEY_BITS = 2048
#: local work of the product at 2048 bits (s): per encryption, per ciphertext exponentiation
#: by a 64-bit factor (with its multiplication into the sum), per decryption (incl. the
#: re-randomisation's nonce); measured on a 2-core x86 machine under load, rounded down
LOCAL_SECONDS = {"enc": 2e-3, "muladd": 5e-4, "dec": 5e-3}
_STAT = 40  # statistical masking bits

#: one key pair per device: {device: (public key, private key or None)}
_KEYS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def ciphertext_bytes(key_bits: int = KEY_BITS) -> int:
    """Bytes of one Paillier ciphertext (mod n^2) on the wire."""
    return 2 * key_bits // 8


def paillier_cost(sub: tuple[int, ...]) -> Cost:
    """Traffic of one product of an (m, k) block with a k-vector: k ciphertexts to the owner,
    m back (2 messages one after the other).

    >>> paillier_cost((100, 10))
    Cost(bytes=56320, rounds=2, dealer_bytes=0)
    """
    m, k = sub
    return Cost(ciphertext_bytes() * (m + k), 2)


def paillier_local(sub: tuple[int, ...]) -> float:
    """Local seconds of one product of an (m, k) block (`LOCAL_SECONDS`)."""
    m, k = sub
    return k * LOCAL_SECONDS["enc"] + m * k * LOCAL_SECONDS["muladd"] + m * LOCAL_SECONDS["dec"]


def _keys(mpc: Any, holder: str, owner: str) -> Any:
    """The device's key pair (made by the holder once; its public key sent to the owner)."""
    if mpc in _KEYS:
        return _KEYS[mpc]
    from ..he import PublicKey, generate_keypair

    ctx = mpc.ctx
    pk, sk = generate_keypair(KEY_BITS) if ctx.me == holder else (None, None)
    got = send_to(ctx, holder, owner, meta=pk.to_dict() if pk is not None else None, name="dslpk")
    if ctx.me == owner and got is not None:
        pk = PublicKey.from_dict(got.meta)
    _KEYS[mpc] = (pk, sk)
    return _KEYS[mpc]


def _mask(m: int, bits: int) -> list[int]:
    """m uniform integers of `bits` bits (cryptographic PRG)."""
    words = -(-bits // 64)
    raw = Prg().uint64(m * words).reshape(m, words)
    return [sum(int(w) << (64 * j) for j, w in enumerate(row)) % (1 << bits) for row in raw]


def run_paillier(ex: Any, o: Op, ins: list[Any]) -> SecretArray:
    """Execute a `paillier_matmul` op at this party (SPMD); see the module docstring."""
    mpc = ex.mpc
    x_val, y = ins[0], ins[1]
    owner = str(o.ins[0].vis.owner)  # type: ignore[union-attr]
    holder = next(p for p in mpc.parties if p != owner)
    size = o.attrs["size"]
    rows = slice(None) if size is None else slice(int(ins[2]), int(ins[2]) + size)
    sub = rows_shape(o.ins[0].shape, rows)
    if o.attrs["transpose"]:
        sub = sub[::-1]
    m, k = sub
    fxp = mpc.frac_bits if o.ins[0].dtype == "f" else 0
    if ex.omniscient:
        mpc.proto.record_paillier(m, k, owner, holder, paillier_cost(sub))
        return rescale_many([SecretArray(mpc, np.zeros(m, np.uint64), (m,), fxp + y.fxp)])[0]
    share = _exchange(mpc, x_val, y, rows, o.attrs["transpose"], owner, holder, (m, k), fxp)
    return rescale_many([SecretArray(mpc, share, (m,), fxp + y.fxp)])[0]


def _exchange(mpc: Any, x_val: Any, y: SecretArray, rows: Any, transpose: bool, owner: str, holder: str,
              sub: tuple[int, int], fxp: int) -> Any:
    """The two messages; this party's share of X @ y (None at the dealer)."""
    from ..he import EncryptedArray

    ctx, me = mpc.ctx, mpc.ctx.me
    pk, sk = _keys(mpc, holder, owner)
    m, k = sub
    width = ciphertext_bytes()
    enc = None
    if me == holder:
        mine = np.array([int(v) for v in np.asarray(y.share, np.uint64)], dtype=object)
        enc = [pk.ciphertexts_to_wire(pk.encrypt(mine).data.ravel().tolist())]
    got = send_to(ctx, holder, owner, arrays=enc or (), name="dslhe1", dtypes=[np.uint8], shapes=[(k, width)])
    back = None
    if me == owner:
        assert got is not None
        cts = pk.ciphertexts_from_wire(got.arrays[0], k, party=holder)
        e = EncryptedArray(pk, np.array(cts, dtype=object))
        a = np.asarray(x_val, np.float64)[rows]
        X = (mpc.fxp.encode(a) if fxp else a.astype(np.int64).view(np.uint64)).view(np.int64)
        X = X.T if transpose else X
        prod = X @ e  # Enc(X @ y_h) over the integers
        # r > |X @ y_h| (< 2^bound), so X @ y_h + r is positive: the holder's residue is it
        bound = 127 + max(math.ceil(math.log2(max(k, 1))), 0)
        r = [(1 << bound) + v for v in _mask(m, bound + _STAT)]
        n, nsq = pk.n, pk.nsq
        masked = EncryptedArray(pk, np.array([c * (1 + n * ri) % nsq for c, ri in zip(prod.data, r)], dtype=object))
        back = [pk.ciphertexts_to_wire(masked.rerandomize().data.ravel().tolist())]
        local = X.view(np.uint64) @ np.asarray(y.share, np.uint64)  # X @ y_o mod 2^64
        share = local - np.array([ri % (1 << 64) for ri in r], dtype=np.uint64)
    got = send_to(ctx, owner, holder, arrays=back or (), name="dslhe2", dtypes=[np.uint8], shapes=[(m, width)])
    if me == holder:
        assert got is not None and sk is not None
        cts = pk.ciphertexts_from_wire(got.arrays[0], m, party=owner)
        v = sk.decrypt_residues(cts)
        return np.array([int(t) % (1 << 64) for t in v], dtype=np.uint64)
    return share if me == owner else None
