"""Base oblivious transfer: the "simplest OT" of Chou and Orlandi (2015) on ristretto255.

A batch of n random 1-out-of-2 OTs between a sender S and a receiver R over a
`Channel`; each OT gives S two 16-byte keys (k0, k1) and R the key k_c of its choice
bit c. OT extension (`iknp`) needs 128 of them once per session.

Protocol (sid: the channel's prefix, unique per run; G: the ristretto255 generator):

1. S draws a (uniform in [1, L)), sends A = aG.
2. R checks A, then for each OT i draws b_i and sends B_i = b_i G + c_i A.
3. S: k0_i = H(sid, i, A, B_i, a B_i), k1_i = H(sid, i, A, B_i, a B_i - a A);
   R: k_c_i = H(sid, i, A, B_i, b_i A).

H is BLAKE2b-128, personalised for this protocol.

Published pitfalls, and what this implementation does about each:

* *Cofactor / invalid points* (Curve25519 has cofactor 8; a point of small order sent
  as A or B makes keys predictable or correlated): the group is ristretto255, of prime
  order L, and every received 32-byte string goes through the strict ristretto decoder,
  which refuses non-canonical encodings and anything not in the group. R also refuses
  A = identity (all of S's keys would be public) and S refuses B_i = identity and B_i = A
  (semi-honest parties never send them; a bug or a tampered link is stopped early).
* *Batching / key derivation* (Genc, Iovino and Rial, ePrint 2017/1011, showed the original
  proof does not go through; McQuoid, Rosulek and Roy, "Batching base oblivious transfers",
  Asiacrypt 2021, show a batch reusing one A is secure when the keys hash the transcript):
  each key hashes the session id, the OT's index, A and B_i as well as the DH point, so
  keys of different OTs, batches or sessions are independent random-oracle outputs, and
  a B_i replayed at another index or in another run yields unrelated keys.
* *Order of messages*: R sends B only after receiving A (B depends on A), and S uses a
  fresh a per batch; scalars come from `secrets`.

Security (semi-honest, random-oracle model, CDH in ristretto255): S's view (A, B_i) is
independent of c_i, since b_i G is uniform and hides c_i A perfectly. The point behind
the key R did not choose is a(B_i - A) (c_i = 0) or a B_i (c_i = 1), i.e. ab_iG - a^2G or
ab_iG + a^2G: computing it from (A, b_i) takes a^2 G, a CDH instance; so that key is a
random-oracle output R never queried, uniform to R. Against an actively deviating party this is not
UC-secure as used here (no proof of knowledge); OT extension above it is semi-honest too.

Cost: S: one variable-base multiplication per OT (~0.9 ms in Python); R: two
fixed-base multiplications (~0.35 ms each). Traffic 32 bytes per OT + 32; 2 messages.

>>> def prog(ctx):
...     ch = Channel(ctx, "bob" if ctx.me == "alice" else "alice", "doc-base")
...     if ctx.me == "alice":
...         return base_send(ch, 4)
...     return base_receive(ch, np.array([0, 1, 1, 0], np.uint8))
>>> out = simulate(prog, ["alice", "bob"], mode="thread")
>>> k0, k1 = out["alice"]
>>> bool((out["bob"] == np.where(np.array([0, 1, 1, 0])[:, None] == 1, k1, k0)).all())
True
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from ...core.errors import CryptoError, ParameterError
from ...runtime.collectives import Channel
from . import ristretto as rg

KEY_BYTES = 16
_PERSON = b"jointml-ot-co15"  # BLAKE2b personalisation (<= 16 bytes)

U8 = npt.NDArray[np.uint8]


def _key(sid: bytes, i: int, a_enc: bytes, b_enc: bytes, point: rg.Point) -> bytes:
    h = hashlib.blake2b(digest_size=KEY_BYTES, person=_PERSON)
    h.update(len(sid).to_bytes(2, "little") + sid + i.to_bytes(8, "little") + a_enc + b_enc + rg.encode(point))
    return h.digest()


def _decode(data: bytes, what: str, peer: str) -> rg.Point:
    try:
        return rg.decode(data)
    except CryptoError:
        raise CryptoError(f"base OT: {what} from '{peer}' is not a valid ristretto255 point", party=peer) from None


def base_send(ch: Channel, n: int) -> tuple[U8, U8]:
    """Sender side of `n` random OTs: returns (k0, k1), each (n, 16) uint8.

    See the module example."""
    if n < 0:
        raise ParameterError(f"base OT count must be >= 0, got {n}", field="n")
    a = rg.random_scalar()
    big_a = rg.FixedBase(rg.BASE).mul(a)
    a_enc = rg.encode(big_a)
    ch.send("co15-A", arrays=[np.frombuffer(a_enc, np.uint8)])
    got = ch.recv("co15-B", dtypes=[np.uint8], shapes=[(n, rg.POINT_BYTES)]).arrays[0]
    sid = ch.prefix.encode()
    a_a = rg.mul(a, big_a)
    k0 = np.empty((n, KEY_BYTES), np.uint8)
    k1 = np.empty((n, KEY_BYTES), np.uint8)
    for i in range(n):
        b_enc = got[i].tobytes()
        big_b = _decode(b_enc, f"B[{i}]", ch.peer)
        if b_enc == bytes(32) or b_enc == a_enc:
            raise CryptoError(f"base OT: B[{i}] from '{ch.peer}' is the identity or A", party=ch.peer)
        ab = rg.mul(a, big_b)
        k0[i] = np.frombuffer(_key(sid, i, a_enc, b_enc, ab), np.uint8)
        k1[i] = np.frombuffer(_key(sid, i, a_enc, b_enc, rg.sub(ab, a_a)), np.uint8)
    return k0, k1


def base_receive(ch: Channel, choices: npt.ArrayLike) -> U8:
    """Receiver side: `choices` (n,) of 0/1; returns k_c, (n, 16) uint8.

    See the module example."""
    c = np.asarray(choices, dtype=np.uint8).reshape(-1)
    if c.size and int(c.max()) > 1:
        raise ParameterError("base OT choices must be 0 or 1", field="choices")
    a_enc = ch.recv("co15-A", dtypes=[np.uint8], shapes=[(rg.POINT_BYTES,)]).arrays[0].tobytes()
    big_a = _decode(a_enc, "A", ch.peer)
    if a_enc == bytes(32):
        raise CryptoError(f"base OT: A from '{ch.peer}' is the identity", party=ch.peer)
    g_table, a_table = rg.FixedBase(rg.BASE), rg.FixedBase(big_a)
    sid = ch.prefix.encode()
    b_all = np.empty((c.size, rg.POINT_BYTES), np.uint8)
    keys = np.empty((c.size, KEY_BYTES), np.uint8)
    for i, ci in enumerate(c.tolist()):
        b = rg.random_scalar()
        big_b = g_table.mul(b)
        if ci:
            big_b = rg.add(big_b, big_a)
        b_enc = rg.encode(big_b)
        b_all[i] = np.frombuffer(b_enc, np.uint8)
        keys[i] = np.frombuffer(_key(sid, i, a_enc, b_enc, a_table.mul(b)), np.uint8)
    ch.send("co15-B", arrays=[b_all])
    return keys
