"""Secure aggregation (SecAgg+): the aggregator learns the sum of the clients' vectors, not one of them.

Protocol: Bell, Bonawitz, Gascón, Lepoint, Raykova, "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", CCS 2020, on the base of Bonawitz et al., "Practical Secure
Aggregation for Privacy-Preserving Machine Learning", CCS 2017. One round, with the
aggregator `server` a party and each client a party; every message crosses a link
(`runtime.collectives.Channel`, client ↔ aggregator; clients never talk to each other
during a round):

| stage | client → aggregator | aggregator → client |
| --- | --- | --- |
| setup | | its neighbours in a Harary graph from public randomness (`secagg_params`) |
| keys | a fresh X25519 mask public key s_pk, a MAC of it per neighbour v under K(u, v) | the neighbours' s_pk and MACs |
| shares | per neighbour v: AES-GCM(K(u, v), share of s_u ‖ share of b_u), share hashes, SHA-256(b_u) | its ciphertexts |
| masked | y_u = q(x_u) + PRG(b_u) + Σ_v ±PRG(KA(s_u, s_v)) mod 2^bits | |
| consistency | a MAC of the survivor list for every other survivor w, under K(u, w) | the survivor list |
| unmask | shares of b_v (v alive) and of s_v (v dropped), per neighbour | the MACs addressed to it, the request |
| done | (an ack after a drop notice) | "done", or a drop notice in place of any request |

q is clipping + quantisation (`secagg_params.quantise`); PRG is `core.prg` (AES-CTR) keyed by
HKDF-SHA256 of the X25519 secret, with the round's label as the PRG's stream (a pair's masks
of different rounds are independent); b_u is a fresh 128-bit self-mask seed each round. Shamir shares are over
GF(2^521 − 1) (`shamir`), threshold t among the k neighbours.

**Mask keys across rounds**: a client keeps its mask key s_u for its next round only when
it *completed* this one, i.e. accepted a survivor list that contains it and that
`min_signers` clients endorsed (the consistency check below); otherwise (counted as
dropped, refused, timed out) it makes a new one, and so do the agreements KA(s_u, s_v)
with it. Why that is safe: an honest neighbour reveals its share of s_u only on a list
*without* u that it accepted; two different lists cannot both be accepted by honest
clients in a round (uniqueness, below), so when u accepted a list with itself no honest
neighbour revealed a share of s_u, and the aggregator holds fewer than t (those of corrupt
neighbours; each round's sharing is a fresh polynomial, so shares of different rounds do not
combine). A rebuilt s_u therefore never serves again: u rebuilt ⇒ u did not complete ⇒ u
re-keys; u decides this itself, so the aggregator cannot make it reuse an exposed key.
Saved: k X25519 agreements per client and round (the neighbours of the same key pair
again) out of k + 1. Cost: t corrupt neighbours in one round (the privacy failure event
of `secagg_params`) now expose u's masks for its later rounds with the same key too; the
per-round bound still bounds the whole run by a union over rounds.

**Session keys** (once per session): each client makes a static X25519 key c_u and sends
c_pk_u *directly to every other client* over the job's mutually authenticated links (the
PKI: the aggregator does not relay it, so cannot substitute it). Every pair of clients then
holds K(u, v) = HKDF(KA(c_u, c_v)), which the aggregator cannot compute; c_u is never
shared nor revealed (only the mask key s_u is, for a dropped client). HKDF of K(u, v) gives
the pair's AES-GCM key for shares (nonce and associated data name the round and the
direction: no nonce repeats under it), and HMAC-SHA256 under K(u, v) with the round's label
authenticates (i) u's mask key s_pk_u towards v — an aggregator that forwards its own key in
place of it is refused — and (ii) u's endorsement of the survivor list towards v. This is
Bonawitz et al.'s signature-based check with the signatures replaced by pairwise MACs: a
MAC convinces only its addressee, which is all the check needs (each client counts the
endorsements addressed to it), and the pairwise keys cost one X25519 agreement per pair
per session, where signatures cost an Ed25519 verification per neighbour key and per
endorsement every round (was ~100 per client and round at 100 clients: most of its CPU).
Uniqueness of the survivor list is argued as before: an honest client endorses one list
per round, and accepts a list only with `min_signers` endorsements (itself included);
since 2·min_signers > n + ⌈γn⌉, two honest clients cannot accept different lists unless
an honest client endorsed both. Given up with signatures: *transferability* — the
aggregator cannot check an endorsement, so a deviating client's bad MAC is not attributed
to it (it only costs its addressee one endorsement; a deviating client can stall a round
anyway). Forward secrecy within a session: a client's c_u stolen later opens the share
ciphertexts it exchanged in the session's rounds (shares of its neighbours' s and b, fewer
than t per owner unless t clients are robbed); per-round keys as in Bonawitz et al.
would protect them, at an X25519 agreement more per neighbour and round.

Dropouts: the aggregator waits while answers keep coming; the clients still silent `timeout`
seconds after the last answer are dropped for the rest of the round and told so (a notice in place of its next request);
a slow client that answers late then acknowledges, and the aggregator reads the late answer
and the acknowledgement at the end of the round, so the links stay in step for the next
round (a client whose acknowledgement has not come sits the next rounds out until it does;
`SecAggSession.close` waits for all of them). Survivors' self-masks are removed with their b
shares, dropped clients' pairwise masks with their s keys, so the sum of the survivors
opens as long as every client has t surviving neighbours and `min_signers` clients endorse
the survivor list; otherwise `ProtocolError` (failure probability in `secagg_params`).

Adversary model and what each party learns:
- Aggregator, semi-honest or deviating: the sum of the (clipped, quantised) vectors of the
  survivors, who survived, the public keys, ciphertexts and MACs it cannot open or forge,
  share hashes and SHA-256(b_u) (of 128-bit random values: nothing). Each masked y_u alone
  is uniform in Z_2^bits. To open one client's vector it would need both b_u and s_u of a
  survivor; an honest client reveals a neighbour's b share only for survivors and its s
  share only for the dropped, both derived from one survivor list that at least
  `min_signers` clients endorsed; a request naming a client both alive and dropped, or a
  list not matching the endorsed one, is refused (consistency check). Colluding with fewer
  than t of a client's neighbours it learns nothing more (bounds in `secagg_params`).
- Client: its neighbours' public keys and the shares they sent it (t − 1 of them reveal
  nothing); the survivor list. Not the sum (the FL loop sends the new model back).
- The graph is not the aggregator's choice: it comes from public randomness (Bell et al.), a
  hash of the session, the round's participants and the clients' session public keys (fresh
  per session, exchanged directly between the clients), which every client recomputes; a
  neighbour list that differs is refused. The same participants get the same graph every
  round of a session, so kept mask keys meet the same neighbours and their agreements serve
  again; a fixed graph is no weaker (its privacy failure event — t corrupt neighbours, a
  split — is drawn once, not once per round; dropouts still vary per round). Residual: the aggregator picks each round's
  participants (client sampling), so it could try participant sets until the hash gives a
  victim a bad neighbourhood; an unbiasable coin (clients' commit-then-reveal) would close that.
- Not covered: a deviating client
  can send any vector within the clipping range (the sum is then wrong; no input proofs), and
  can make an honest neighbour look like the sender of a wrong share by hashing another share.

Cost per client and round, d values, k neighbours, n survivors: d·bits/8 bytes of masked
input (uint32 at bits ≤ 32: half a float64 model) + ~200·k + 16·n bytes of keys, shares and
MACs; one X25519 key generation and k agreements; k + 1 AES-CTR expansions of d words into
one reused buffer, added in place; ~k + 2n HMACs. Once per session: n − 1 agreements for
the pairwise keys. The aggregator: one expansion per survivor and one per (dropped,
surviving neighbour) pair, and one Shamir reconstruction per client.

>>> def prog(ctx):
...     clients = ["c1", "c2", "c3"]
...     sa = SecAggSession(ctx, "agg", clients, SecAggParams(threshold=2, min_signers=2, timeout=2.0))
...     x = {"c1": [1.0, 2.0], "c2": [0.5, 0.5], "c3": [-1.0, 0.25]}.get(ctx.me)
...     out = sa.aggregate(None if x is None else np.array(x), dim=2)
...     return None if out is None else np.round(out.total, 3).tolist()
>>> simulate(prog, ["agg", "c1", "c2", "c3"], mode="thread")["agg"]
[0.5, 2.75]
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...core.errors import LinkTimeout, PeerClosed, ProtocolError
from ...core.prg import Prg, new_seed
from ...runtime.collectives import Channel, Received
from . import shamir
from .secagg_params import SecAggParams, dequantise_sum, harary_neighbours, quantise
from .stragglers import collect
from .timing import StageClock

__all__ = ["SecAggSession", "SecAggResult", "STAGES"]

#: the client's answers, in order; `drop_at` names the first one a simulated dropout skips
STAGES = ("keys", "shares", "masked", "signature", "unmask")
_KEY = 32
_MAC = 16  # truncated HMAC-SHA256 tags (128-bit: forging one is a 2^-128 guess)
_CT = 2 * shamir.SHARE_BYTES + 16  # two shares + the GCM tag


@dataclass
class SecAggResult:
    """What the aggregator opens in one round: the sum of the survivors' vectors (float64,
    after clipping and quantisation), their number and names, and who dropped.

    >>> SecAggResult(np.zeros(2), 2, ["a", "b"], ["c"], SecAggParams()).dropped
    ['c']
    """

    total: np.ndarray
    count: int
    survivors: list[str]
    dropped: list[str]
    params: SecAggParams
    stats: dict[str, Any] = field(default_factory=dict)


# -- primitives (cryptography's X25519 and AES-GCM; HMAC/HKDF-SHA256 from the standard library) --
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) for keys of at most 64 bytes, on hashlib's SHA-256 (equal to
    hmac.digest, tested; half its cost per call, and a client makes a few hundred a round)."""
    k = key.ljust(64, b"\0")
    return hashlib.sha256(k.translate(_OPAD) + hashlib.sha256(k.translate(_IPAD) + msg).digest()).digest()


def _hkdf(ikm: bytes, info: str, n: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) with an empty salt, `n` <= 64 bytes (equal to cryptography's HKDF, tested)."""
    prk = _hmac(bytes(32), ikm)
    t1 = _hmac(prk, info.encode() + b"\x01")
    return t1[:n] if n <= 32 else (t1 + _hmac(prk, t1 + info.encode() + b"\x02"))[:n]


def _mac(key: bytes, *parts: str | bytes) -> bytes:
    return _hmac(key, _h(*parts))[:_MAC]


def _x25519() -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk = X25519PrivateKey.generate()
    return sk, sk.public_key().public_bytes_raw()


def _x25519_load(raw: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.from_private_bytes(raw)


def _exchange(sk: Any, pk: bytes, who: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    try:
        return bytes(sk.exchange(X25519PublicKey.from_public_bytes(pk)))
    except ValueError:  # low-order point: a deviating peer
        raise ProtocolError("sent an invalid X25519 public key", party=who, field="public_key") from None


def _priv_bytes(sk: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization as s

    return bytes(sk.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption()))


def _h(*parts: str | bytes) -> bytes:
    h = hashlib.sha256(b"jointml-secagg")
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(4, "big") + b)
    return h.digest()


def _ring_dtype(bits: int) -> Any:
    """The unsigned dtype the ring Z_2^bits is computed in (wrap-around free at 32 and 64 bits)."""
    return np.uint32 if bits <= 32 else np.uint64


def _u8(rows: Sequence[bytes], width: int) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width).copy()


class SecAggSession:
    """Secure aggregation between one aggregator (`server`) and `clients` (SPMD: every one of
    them builds it at the same program point; other parties of the job need not).

    Building it exchanges the clients' session X25519 public keys over the direct links
    (once); `aggregate` then runs one round. `last_view_` (aggregator) holds what it
    received in the last round, by stage and client, for audits and view tests.

    >>> def prog(ctx):
    ...     sa = SecAggSession(ctx, "agg", ["a", "b", "c"], SecAggParams(threshold=2, min_signers=2))
    ...     out = sa.aggregate(None if ctx.me == "agg" else np.ones(2), dim=2)
    ...     return None if out is None else (out.total.round(3).tolist(), sorted(sa.last_view_["masked"]))
    >>> simulate(prog, ["agg", "a", "b", "c"], mode="thread")["agg"]
    ([3.0, 3.0], ['a', 'b', 'c'])
    """

    def __init__(self, ctx: Any, server: str, clients: Sequence[str], params: SecAggParams | None = None):
        clients = list(clients)
        if server in clients or len(set(clients)) != len(clients) or len(clients) < 2:
            raise ProtocolError(f"secure aggregation needs >= 2 distinct clients apart from the aggregator "
                                f"'{server}', got {clients}", field="clients")
        for p in [server, *clients]:
            if p not in ctx.parties:
                raise ProtocolError(f"'{p}' is not a party of this job {ctx.parties}", field="clients")
        self.ctx, self.server, self.clients = ctx, server, clients
        self.params = params if params is not None else SecAggParams()
        self.prefix = ctx.next_uid("secagg:")
        self.round = 0
        self.last_view_: dict[str, dict[str, list[np.ndarray]]] = {}
        #: every client's session X25519 public key, as received over the direct links
        self.session_keys: dict[str, bytes] = {}
        self._pairs: dict[str, bytes] = {}  # (client) K(me, v), made when first needed
        self._enc: dict[str, Any] = {}  # (client) the pair's AES-GCM, made when first needed
        #: (client) the mask key pair kept from a completed round, and its agreements {(peer, peer's s_pk): KA}
        self._mask_key: tuple[Any, bytes] | None = None
        self._mask_kas: dict[tuple[str, bytes], bytes] = {}
        self._digest_of: tuple[tuple[str, ...], bytes] = ((), b"")
        #: (aggregator) per client, the (round, message index) of drop notices not yet acknowledged:
        #: the client's late answer (if any) and its ack are read before it takes part again
        self.pending: dict[str, list[tuple[int, int]]] = {}
        #: this party's CPU time by stage (`timing`; a trainer hands in its own clock)
        self.clock = StageClock()
        if ctx.me in clients or ctx.me == server:
            self._exchange_session_keys()

    def _exchange_session_keys(self) -> None:
        me = self.ctx.me
        self._static: Any = None
        mine: list[np.ndarray] = []
        if me in self.clients:
            self._static, pk = _x25519()
            mine = [np.frombuffer(pk, dtype=np.uint8)]
        # one message per (client, other party) on the session's channels: an all_gather would cost a
        # tag over the whole group per sender at every party (the largest CPU item of a session's set-up)
        if mine:
            for p in [*self.clients, self.server]:
                if p != me:
                    Channel(self.ctx, p, self.prefix).send("pk", arrays=mine)
            self.session_keys[me] = mine[0].tobytes()
        for c in self.clients:
            if c != me:
                r = Channel(self.ctx, c, self.prefix).recv("pk", dtypes=[np.uint8], shapes=[(_KEY,)])
                self.session_keys[c] = r.arrays[0].tobytes()

    def pair_key(self, peer: str) -> bytes:
        """(Client) K(me, peer): HKDF of the X25519 agreement of the two session keys, named by
        both (sorted) and the session; computed once per peer and session."""
        k = self._pairs.get(peer)
        if k is None:
            a, b = sorted((self.ctx.me, peer))
            k = _hkdf(_exchange(self._static, self.session_keys[peer], peer), f"pair|{self.prefix}|{a}|{b}")
            self._pairs[peer] = k
        return k

    def aggregate(self, vector: np.ndarray | None, participants: Sequence[str] | None = None, *, dim: int,
                  drop_at: str | None = None) -> SecAggResult | None:
        """One round over `participants` (default: all clients; public, same list everywhere).

        A client passes its `vector` (`dim` floats); the aggregator passes None and gets the
        `SecAggResult`; clients get None. `drop_at` (a client, one of `STAGES`) simulates a
        dropout: the client stops answering from that stage on, for this round.
        """
        self.round += 1
        parts = list(self.clients if participants is None else participants)
        if any(p not in self.clients for p in parts):
            raise ProtocolError(f"participants {parts} are not all clients of the session", field="participants")
        p = self.params.resolved(len(parts))
        me = self.ctx.me
        if me == self.server:
            return _ServerRound(self, parts, p, dim).run()
        if me in parts:
            if vector is None or np.shape(vector) != (dim,):
                raise ProtocolError(f"a client's vector must have shape ({dim},)", party=me, field="vector")
            if drop_at is not None and drop_at not in STAGES:
                raise ProtocolError(f"drop_at must be one of {STAGES}", field="drop_at")
            _ClientRound(self, parts, p, dim).run(np.asarray(vector, dtype=np.float64), drop_at)
        return None

    def close(self, timeout: float | None = None) -> None:
        """(Aggregator) wait for the acknowledgements of every drop notice still pending, so no
        late message is left on a link when the program goes on (every party may call it)."""
        if self.ctx.me != self.server:
            return
        for c in list(self.pending):
            ch = Channel(self.ctx, c, self.prefix)
            if not self._drain(c, ch, time.monotonic() + (ch.timeout if timeout is None else timeout)):
                raise ProtocolError("a client counted as dropped never acknowledged (link out of step)", party=c,
                                    field="secagg")

    def _drain(self, c: str, ch: Channel, deadline: float) -> bool:
        """Read `c`'s late answers and acks of pending notices until `deadline`; True when all are read."""
        todo = self.pending.get(c, [])
        while todo:
            rnd, k = todo[0]
            try:
                r = ch.recv(f"{rnd}:c{k}", timeout=max(1e-3, deadline - time.monotonic()))
            except (LinkTimeout, PeerClosed):
                return False
            if r.meta.get("stage") == "ack":
                todo.pop(0)
            else:  # the answer it was still computing when the notice went out: the ack follows
                todo[0] = (rnd, k + 1)
        self.pending.pop(c, None)
        return True

    # -- the client's mask key across rounds ---------------------------------------------
    def _take_mask_key(self) -> tuple[Any, bytes]:
        """The mask key pair for this round: the one kept from the last round this client
        completed, else a fresh one. Taken away until the round completes (`_keep_mask_key`):
        a round that ends any other way (dropped, refused, timed out) may have let the
        aggregator rebuild it, so it never serves again."""
        if self._mask_key is None:
            self._mask_kas = {}
            return _x25519()
        key, self._mask_key = self._mask_key, None
        return key

    def _keep_mask_key(self, sk: Any, pk: bytes) -> None:
        """(Client) keep the key for the next round: this round completed."""
        self._mask_key = (sk, pk)

    def _mask_agreement(self, sk: Any, peer: str, peer_pk: bytes) -> bytes:
        """The mask seed of KA(s_me, s_peer) (`_mask_seed`), computed once per pair of mask keys
        (a peer's new key is a new entry)."""
        k = self._mask_kas.get((peer, peer_pk))
        if k is None:
            k = self._mask_kas[(peer, peer_pk)] = self._mask_seed(_exchange(sk, peer_pk, peer))
        return k

    def _encryptor(self, peer: str) -> Any:
        """(Client) AES-GCM under the pair's share-encryption key (per session; nonces and
        associated data name the round and the direction, so no nonce repeats under a key)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        e = self._enc.get(peer)
        if e is None:
            e = self._enc[peer] = AESGCM(_hkdf(self.pair_key(peer), f"enc|{self.prefix}"))
        return e

    # -- shared derivations (both sides compute them alike) -----------------------------
    def _label(self, rnd: int) -> str:
        return f"{self.prefix}|{rnd}"

    def _mask_seed(self, shared: bytes) -> bytes:
        return _hkdf(shared, "mask|" + self.prefix, 16)

    def _pair_stream(self, rnd: int) -> str:
        # the round's label separates the masks of a pair of keys kept across rounds
        return "pair|" + self._label(rnd)

    def _fill_mask(self, seed: bytes, stream: str, buf: np.ndarray) -> np.ndarray:
        # into one reused buffer: a fresh array per neighbour cost more in page faults than the AES;
        # uint32 words when the ring fits (half the keystream of uint64); reduced mod 2^bits at the end
        return Prg(seed, stream=stream).fill(buf)

    def _self_stream(self, rnd: int) -> str:
        return "self|" + self._label(rnd)

    def _key_mac(self, key: bytes, rnd: int, owner: str, holder: str, s_pk: bytes) -> bytes:
        return _mac(key, "keys", self._label(rnd), owner, holder, s_pk)

    def _endorsement(self, key: bytes, rnd: int, signer: str, verifier: str, survivors: Sequence[str]) -> bytes:
        return _mac(key, "consistency", self._label(rnd), signer, verifier, self._list_digest(survivors))

    def _list_digest(self, survivors: Sequence[str]) -> bytes:
        # one list is endorsed towards / checked from ~n clients a round: hash it once
        key = tuple(survivors)
        if self._digest_of[0] != key:
            self._digest_of = (key, _h("survivors", *sorted(survivors)))
        return self._digest_of[1]

    def _share_hash(self, rnd: int, kind: str, owner: str, holder: str, share: bytes) -> bytes:
        return _h("share", self._label(rnd), kind, owner, holder, share)

    def _aad(self, rnd: int, sender: str, receiver: str) -> bytes:
        return _h("aad", self._label(rnd), sender, receiver)

    # -- the aggregator's choices (a test's deviating aggregator overrides these) ----------
    def _consistency_list(self, client: str, survivors: list[str]) -> list[str]:
        """The survivor list sent to `client` for endorsement (honest: the same for all)."""
        return survivors

    def graph_seed(self, rnd: int, parts: Sequence[str]) -> bytes:
        """The public random seed of the communication graph of round `rnd`: a hash of the
        session, the round's participants and every client's session public key (which the
        clients exchanged directly, and which are fresh per session), so every client
        recomputes its neighbours and the aggregator cannot pick them. The same participants
        get the same graph in every round (see the module docstring)."""
        return _h("graph", self.prefix, *parts, *(self.session_keys[c] for c in self.clients))[:16]

    def _graph(self, parts: list[str], degree: int) -> dict[str, list[str]]:
        """The neighbours the aggregator announces (honest: the public graph; a test overrides it)."""
        return harary_neighbours(parts, degree, Prg(self.graph_seed(self.round, parts)))

    def _neighbour_keys(self, client: str, keys: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
        """The neighbours' (s_pk, MAC for `client`) forwarded to `client` (honest: as received)."""
        return keys

    def _unmask_request(self, client: str, held: list[str], survivors: list[str]) -> dict[str, list[str]]:
        """Which of the clients `client` holds shares of are to be unmasked as alive / as dropped."""
        return {"alive": [v for v in held if v in survivors], "dropped": [v for v in held if v not in survivors]}

    # -- a client's answer (a test's deviating client overrides it) ----------------------
    def _unmask_answer(self, b_shares: dict[str, bytes], sk_shares: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
        """The shares a client returns: of b for the alive, of s for the dropped (honest: all of them)."""
        return {"b": b_shares, "sk": sk_shares}


class _Dropped(Exception):
    """The aggregator counted this client as dropped for the round (internal)."""


class _ServerRound:
    """The aggregator's side of one round."""

    def __init__(self, s: SecAggSession, parts: list[str], p: SecAggParams, dim: int):
        self.s, self.parts, self.p, self.dim, self.rnd = s, parts, p, dim, s.round
        self.ch = {c: Channel(s.ctx, c, s.prefix) for c in parts}
        self.index = {c: i for i, c in enumerate(parts)}
        self.graph = s._graph(parts, int(p.degree or 0))
        self.gpos = {c: {v: i for i, v in enumerate(nb)} for c, nb in self.graph.items()}
        self.view: dict[str, dict[str, list[np.ndarray]]] = {}
        self.n_out = dict.fromkeys(parts, 0)  # messages sent to / received from each client this round
        self.n_in = dict.fromkeys(parts, 0)

    def _send(self, c: str, stage: str, meta: dict[str, Any] | None = None, arrays: Sequence[np.ndarray] = ()) -> None:
        # tags count the messages of the round, so a notice can take the place of any request
        self.ch[c].send(f"{self.rnd}:s{self.n_out[c]}", meta={"stage": stage, **(meta or {})}, arrays=list(arrays))
        self.n_out[c] += 1

    def _recv(self, c: str, timeout: float) -> Received:
        r = self.ch[c].recv(f"{self.rnd}:c{self.n_in[c]}", timeout=timeout)
        self.n_in[c] += 1
        return r

    def _notify(self, c: str) -> None:
        """Tell `c` it is dropped for this round (in place of its next request); its ack is pending."""
        try:
            self._send(c, "dropped")
        except PeerClosed:
            return  # gone: nothing will come back on that link
        self.s.pending.setdefault(c, []).append((self.rnd, self.n_in[c]))

    def _drain_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for c in [c for c in self.parts if c in self.s.pending]:
            self.s._drain(c, self.ch[c], deadline)

    def _collect(self, stage: str, expected: list[str], dtypes: list[Any], shapes: list[Any]) -> dict[str, Received]:
        """Answers of `expected` to `stage`. The aggregator waits while answers keep coming: the
        clients still silent `timeout` seconds after the last answer (or the stage's start) have
        dropped (a busy machine's stragglers are not cut off while others are still answering)."""
        def recv(c: str, wait: float) -> Received:
            return self._check_answer(c, self._recv(c, wait), stage, dtypes, shapes)

        # a closed link counts as dropped at once, with nobody to notify
        self.s.clock.enter(f"secagg:{stage}")
        got, waiting = collect(recv, expected, start_timeout=self.p.start_timeout, timeout=self.p.timeout,
                               clock=self.s.clock)
        for c in waiting:
            self._notify(c)  # counted as dropped; told so, so that a slow client stops and acknowledges
        got = {c: got[c] for c in expected if c in got}  # the participants' order, whatever the arrival order
        self.view[stage] = {c: list(r.arrays) for c, r in got.items()}
        if len(got) < min(int(self.p.threshold or 0) + 1, len(self.parts)):
            raise ProtocolError(f"round {self.rnd}: only {len(got)} of {len(self.parts)} clients answered stage "
                                f"'{stage}' (dropped: {[c for c in self.parts if c not in got]}); the threshold "
                                f"{self.p.threshold} cannot be met", field="threshold")
        return got

    def _check_answer(self, c: str, r: Received, stage: str, dtypes: list[Any], shapes: list[Any]) -> Received:
        if r.meta.get("stage") != stage:
            raise ProtocolError(f"sent '{r.meta.get('stage')}' where '{stage}' was expected", party=c, field=stage)
        try:
            r.expect(dtypes, shapes)
        except Exception as e:  # noqa: BLE001 - a malformed answer names its client
            raise ProtocolError(f"malformed '{stage}' message: {e}", party=c, field=stage) from None
        return r

    def _nbrs(self, c: str, alive: Sequence[str] | dict[str, Any]) -> list[str]:
        return [v for v in self.graph[c] if v in alive]

    def run(self) -> SecAggResult:
        t0 = time.monotonic()
        self.s.clock.enter("secagg:setup")
        self._drain_all(self.p.timeout)  # late answers of earlier rounds
        ready = [c for c in self.parts if c not in self.s.pending]
        for c in self.parts:
            if c in ready:
                self._send(c, "setup", {"neighbours": self.graph[c]})
            else:
                self._notify(c)  # still behind: it sits this round out
        keys = self._collect_keys(ready)
        u1 = list(keys)
        for c in u1:
            self._forward_keys(c, keys)
        shares = self._collect_shares(u1)
        u2 = list(shares)
        to = {u: {v: i for i, v in enumerate(shares[u].meta["to"])} for u in u2}
        for v in u2:
            senders = self._nbrs(v, shares)
            rows = [shares[u].arrays[0][to[u][v]] for u in senders]
            ct = np.stack(rows) if rows else np.zeros((0, _CT), np.uint8)
            self._send(v, "shares", {"from": senders}, [ct])
        masked = self._collect("masked", u2, [self.p.wire_dtype], [(self.dim,)])
        u3 = list(masked)
        signers = self._consistency(u3)
        answers = self._request_unmask(signers, u3, shares)
        self.s.clock.enter("secagg:reconstruct")
        total = self._unmask(u2, u3, keys, shares, masked, answers)
        for c in answers:  # the last message of a round: every client reads "done" or a drop notice
            self._send(c, "done")
        self._drain_all(min(self.p.timeout, 1.0))  # simulated dropouts acknowledge at once
        self.s.last_view_ = self.view
        return SecAggResult(dequantise_sum(total, len(u3), self.p), len(u3), u3,
                            [c for c in self.parts if c not in u3], self.p,
                            {"seconds": time.monotonic() - t0, "degree": self.p.degree, "threshold": self.p.threshold})

    def _collect_keys(self, ready: list[str]) -> dict[str, Received]:
        got = self._collect("keys", ready, [np.uint8, np.uint8], [(_KEY,), None])
        for c, r in got.items():
            if r.arrays[1].shape != (len(self.graph[c]), _MAC):
                raise ProtocolError(f"sent {r.arrays[1].shape[0]} key MACs for {len(self.graph[c])} neighbours",
                                    party=c, field="keys")
        return got

    def _forward_keys(self, c: str, keys: dict[str, Received]) -> None:
        """To `c`: each neighbour's s_pk and the MAC that neighbour made for `c`."""
        nb = self._nbrs(c, keys)
        own = {v: [keys[v].arrays[0], keys[v].arrays[1][self.gpos[v][c]]] for v in nb}
        fwd = self.s._neighbour_keys(c, own)
        pk = np.stack([fwd[v][0] for v in nb]) if nb else np.zeros((0, _KEY), np.uint8)
        mac = np.stack([fwd[v][1] for v in nb]) if nb else np.zeros((0, _MAC), np.uint8)
        self._send(c, "keys", {"from": nb}, [pk, mac])

    def _collect_shares(self, u1: list[str]) -> dict[str, Received]:
        got = self._collect("shares", u1, [np.uint8, np.uint8, np.uint8], [None, None, (32,)])
        for c, r in got.items():
            want = self._nbrs(c, u1)
            n = len(want)
            if r.meta.get("to") != want or r.arrays[0].shape != (n, _CT) or r.arrays[1].shape != (n, 64):
                raise ProtocolError(f"sent shares for {r.meta.get('to')}, its neighbours are {want}", party=c,
                                    field="shares")
        return got

    def _consistency(self, u3: list[str]) -> dict[str, Received]:
        """The survivor list to each survivor; back, each one's endorsements (a MAC per other
        survivor, in the order of the list it was shown, which the aggregator cannot check:
        they convince their addressees only)."""
        lists = {c: self.s._consistency_list(c, u3) for c in u3}
        for c in u3:
            self._send(c, "consistency", {"survivors": lists[c]})
        got = self._collect("signature", u3, [np.uint8], [None])
        for c, r in got.items():
            if r.arrays[0].shape != (len(lists[c]) - 1, _MAC):
                raise ProtocolError(f"sent {r.arrays[0].shape} endorsements for a list of {len(lists[c])}",
                                    party=c, field="signature")
        if len(got) < int(self.p.min_signers or 0):
            raise ProtocolError(f"round {self.rnd}: {len(got)} clients endorsed the survivor list, "
                                f"{self.p.min_signers} needed (min_signers)", field="min_signers")
        self.lists = lists
        return got

    def _request_unmask(self, signers: dict[str, Received], u3: list[str],
                        shares: dict[str, Received]) -> dict[str, Received]:
        # where each signer put each addressee among its MACs (the list it was shown, without itself)
        pos = {w: {x: i for i, x in enumerate(x for x in self.lists[w] if x != w)} for w in signers}
        for c in signers:
            names = [w for w in signers if w != c and c in pos[w]]
            rows = [signers[w].arrays[0][pos[w][c]] for w in names]
            macs = np.stack(rows) if rows else np.zeros((0, _MAC), np.uint8)
            req = self.s._unmask_request(c, self._nbrs(c, shares), u3)
            self._send(c, "unmask", {"signers": names, **req}, [macs])
        got = self._collect("unmask", list(signers), [np.uint8, np.uint8], [None, None])
        for c, r in got.items():
            want = {"alive": [v for v in self._nbrs(c, shares) if v in u3],
                    "dropped": [v for v in self._nbrs(c, shares) if v not in u3]}
            if r.meta.get("b") != want["alive"] or r.meta.get("sk") != want["dropped"]:
                raise ProtocolError(f"returned shares for alive {r.meta.get('b')} / dropped {r.meta.get('sk')}, "
                                    f"expected {want['alive']} / {want['dropped']} (missing shares)", party=c,
                                    field="unmask")
            for i, k in enumerate(("alive", "dropped")):
                if r.arrays[i].shape != (len(want[k]), shamir.SHARE_BYTES):
                    raise ProtocolError(f"malformed {k} shares {r.arrays[i].shape}", party=c, field="unmask")
        return got

    def _returned(self, answers: dict[str, Received]) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
        """{(kind, owner): [(holder, share bytes)]} from the unmask answers (one pass over them)."""
        out: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        for w, r in answers.items():
            for i, kind in enumerate(("b", "sk")):
                for owner, row in zip(r.meta[kind], r.arrays[i]):
                    out.setdefault((kind, owner), []).append((w, row.tobytes()))
        return out

    def _gather_shares(self, owner: str, kind: str, returned: dict[tuple[str, str], list[tuple[str, bytes]]],
                       shares: dict[str, Received]) -> dict[int, int]:
        """The shares of `owner`'s secret (`kind` 'b' or 'sk') returned by its neighbours, each
        checked against the hash `owner` committed to; a mismatch names the holder."""
        out: dict[int, int] = {}
        col = 0 if kind == "sk" else 1
        to = {w: i for i, w in enumerate(shares[owner].meta["to"])}
        hashes = shares[owner].arrays[1]
        for w, raw in returned.get((kind, owner), []):
            committed = hashes[to[w]].tobytes()
            if self.s._share_hash(self.rnd, kind, owner, w, raw) != committed[32 * col: 32 * col + 32]:
                raise ProtocolError(f"returned a wrong {kind} share of client '{owner}'", party=w, field="unmask")
            out[self.index[w] + 1] = shamir.share_from_bytes(raw)
        if len(out) < int(self.p.threshold or 0):
            raise ProtocolError(f"round {self.rnd}: only {len(out)} shares of client '{owner}' came back, "
                                f"{self.p.threshold} needed to unmask it (too many dropouts)", party=owner,
                                field="threshold")
        return out

    def _unmask(self, u2: list[str], u3: list[str], keys: dict[str, Received], shares: dict[str, Received],
                masked: dict[str, Received], answers: dict[str, Received]) -> np.ndarray:
        bits, t = int(self.p.bits or 64), int(self.p.threshold or 0)
        dtype = _ring_dtype(bits)
        total = np.zeros(self.dim, dtype=dtype)
        buf = np.empty(self.dim, dtype=dtype)
        returned = self._returned(answers)
        for c in u3:
            total += masked[c].arrays[0].astype(dtype, copy=False)
        for v in u3:
            b = shamir.reconstruct(self._gather_shares(v, "b", returned, shares), t, 16)
            if hashlib.sha256(b).digest() != shares[v].arrays[2].tobytes():
                raise ProtocolError("its self-mask shares do not match its commitment", party=v, field="shares")
            total -= self.s._fill_mask(b, self.s._self_stream(self.rnd), buf)
        for v in u2:
            if v in u3:
                continue
            sk = _x25519_load(shamir.reconstruct(self._gather_shares(v, "sk", returned, shares), t, _KEY))
            if sk.public_key().public_bytes_raw() != keys[v].arrays[0].tobytes():
                raise ProtocolError("its mask-key shares do not match its public key", party=v, field="shares")
            for u in self._nbrs(v, u3):
                seed = self.s._mask_seed(_exchange(sk, keys[u].arrays[0].tobytes(), u))
                m = self.s._fill_mask(seed, self.s._pair_stream(self.rnd), buf)
                # u added +m if u precedes v, −m otherwise: remove it
                if self.index[u] < self.index[v]:
                    total -= m
                else:
                    total += m
        total = total if bits in (32, 64) else total & dtype((1 << bits) - 1)
        return total.astype(np.uint64)


class _ClientRound:
    """A client's side of one round."""

    def __init__(self, s: SecAggSession, parts: list[str], p: SecAggParams, dim: int):
        self.s, self.parts, self.p, self.dim, self.rnd = s, parts, p, dim, s.round
        self.me = s.ctx.me
        self.ch = Channel(s.ctx, s.server, s.prefix)
        self.wait = self.ch.timeout + p.start_timeout + 6 * p.timeout
        self.n_in = self.n_out = 0

    def _recv(self, stage: str, dtypes: list[Any]) -> Received:
        r = self.ch.recv(f"{self.rnd}:s{self.n_in}", timeout=self.wait)
        self.n_in += 1
        self.s.clock.enter(f"secagg:{r.meta.get('stage')}")
        if r.meta.get("stage") == "dropped":
            raise _Dropped()
        if r.meta.get("stage") != stage:
            raise self._refuse(f"sent '{r.meta.get('stage')}' where '{stage}' was expected")
        r.expect(dtypes)
        return r

    def _send(self, stage: str, meta: dict[str, Any] | None = None, arrays: Sequence[np.ndarray] = ()) -> None:
        self.ch.send(f"{self.rnd}:c{self.n_out}", meta={"stage": stage, **(meta or {})}, arrays=list(arrays))
        self.n_out += 1

    def run(self, x: np.ndarray, drop_at: str | None) -> None:
        """The round; a client the aggregator counted as dropped (slow, or `drop_at`) acknowledges and stops."""
        try:
            self._run(x, drop_at)
        except _Dropped:
            self._send("ack")

    def _refuse(self, why: str) -> ProtocolError:
        return ProtocolError(f"client '{self.me}' refuses round {self.rnd}: {why}", party=self.s.server,
                             field="secagg", public=True)

    def _stop(self) -> None:
        """A simulated dropout: answer nothing until the aggregator's notice."""
        self._recv("never", [])

    def _run(self, x: np.ndarray, drop_at: str | None) -> None:
        nb = self._recv("setup", []).meta.get("neighbours")
        if not isinstance(nb, list) or not set(nb) <= set(self.parts) - {self.me} or len(nb) != self.p.degree:
            raise self._refuse(f"a neighbour list of {self.p.degree} other participants was expected, got {nb}")
        public = harary_neighbours(self.parts, int(self.p.degree or 0), Prg(self.s.graph_seed(self.rnd, self.parts)),
                                   only=self.me)[self.me]
        if nb != public:
            raise self._refuse(f"the neighbours {nb} are not those of the round's public graph {public}")
        if drop_at == "keys":
            return self._stop()
        s_sk, s_pk = self.key = self.s._take_mask_key()
        macs = [self.s._key_mac(self.s.pair_key(v), self.rnd, self.me, v, s_pk) for v in nb]
        self._send("keys", arrays=[np.frombuffer(s_pk, np.uint8), _u8(macs, _MAC)])
        pks = self._neighbour_keys(nb)
        peers = list(pks)
        if drop_at == "shares":
            return self._stop()
        b = new_seed()
        enc = {v: self.s._encryptor(v) for v in peers}
        self._send_shares(peers, enc, _priv_bytes(s_sk), b)
        held = self._receive_shares(pks, enc)
        if drop_at == "masked":
            return self._stop()
        self._send_masked(x, b, s_sk, pks, list(held))
        self._consistency_and_unmask(held, drop_at)

    def _neighbour_keys(self, nb: list[str]) -> dict[str, bytes]:
        """The neighbours' mask public keys, each checked against the MAC its owner made for us
        under our pairwise key (from the session keys exchanged over the direct authenticated
        links): an aggregator that substitutes its own key to learn a client's masks is refused."""
        r = self._recv("keys", [np.uint8, np.uint8])
        peers = list(r.meta.get("from", []))
        n = len(peers)
        if not set(peers) <= set(nb) or [a.shape for a in r.arrays] != [(n, _KEY), (n, _MAC)]:
            raise self._refuse(f"keys announced for {peers}, not all neighbours {nb}")
        if n < int(self.p.threshold or 0):
            raise self._refuse(f"only {n} neighbours left, the threshold is {self.p.threshold}")
        pks = {v: r.arrays[0][i].tobytes() for i, v in enumerate(peers)}
        for i, v in enumerate(peers):
            want = self.s._key_mac(self.s.pair_key(v), self.rnd, v, self.me, pks[v])
            if not hmac.compare_digest(want, r.arrays[1][i].tobytes()):
                raise self._refuse(f"the mask key forwarded for '{v}' is not authenticated by '{v}' (its MAC "
                                   f"under our pairwise key does not verify)")
        return pks

    def _send_shares(self, peers: list[str], enc: dict[str, Any], s_raw: bytes, b: bytes) -> None:
        t = int(self.p.threshold or 0)
        xs = [self.parts.index(v) + 1 for v in peers]
        sk_sh, b_sh = shamir.split(s_raw, t, xs), shamir.split(b, t, xs)
        cts, hashes = [], []
        for v, y_sk, y_b in zip(peers, sk_sh, b_sh):
            raw_sk, raw_b = shamir.share_to_bytes(y_sk), shamir.share_to_bytes(y_b)
            cts.append(enc[v].encrypt(_h("nonce", self.s._label(self.rnd), self.me, v)[:12], raw_sk + raw_b,
                                           self.s._aad(self.rnd, self.me, v)))
            hashes.append(self.s._share_hash(self.rnd, "sk", self.me, v, raw_sk)
                          + self.s._share_hash(self.rnd, "b", self.me, v, raw_b))
        commit = np.frombuffer(hashlib.sha256(b).digest(), np.uint8)
        self._send("shares", {"to": peers}, [_u8(cts, _CT), _u8(hashes, 64), commit])

    def _receive_shares(self, pks: dict[str, bytes], enc: dict[str, Any]) -> dict[str, tuple[bytes, bytes, bytes]]:
        from cryptography.exceptions import InvalidTag

        r = self._recv("shares", [np.uint8])
        senders = list(r.meta.get("from", []))
        if not set(senders) <= set(pks) or r.arrays[0].shape != (len(senders), _CT):
            raise self._refuse(f"shares forwarded from {senders}, not all neighbours with keys")
        held = {}
        for i, u in enumerate(senders):
            try:
                pt = enc[u].decrypt(_h("nonce", self.s._label(self.rnd), u, self.me)[:12], r.arrays[0][i].tobytes(),
                                         self.s._aad(self.rnd, u, self.me))
            except InvalidTag:
                raise ProtocolError(f"the encrypted shares from '{u}' do not decrypt at '{self.me}'", party=u,
                                    field="shares") from None
            held[u] = (pt[:shamir.SHARE_BYTES], pt[shamir.SHARE_BYTES:], pks[u])
        return held

    def _send_masked(self, x: np.ndarray, b: bytes, s_sk: Any, pks: dict[str, bytes], peers: list[str]) -> None:
        bits = int(self.p.bits or 64)
        dtype = _ring_dtype(bits)
        y = quantise(x, self.p, Prg(), dtype)
        buf = np.empty(self.dim, dtype=dtype)
        y += self.s._fill_mask(b, self.s._self_stream(self.rnd), buf)
        me = self.parts.index(self.me)
        for v in peers:
            m = self.s._fill_mask(self.s._mask_agreement(s_sk, v, pks[v]), self.s._pair_stream(self.rnd), buf)
            if me < self.parts.index(v):
                y += m
            else:
                y -= m
        if bits not in (32, 64):
            y &= dtype((1 << bits) - 1)
        self._send("masked", arrays=[y.astype(self.p.wire_dtype, copy=False)])

    def _consistency_and_unmask(self, held: dict[str, tuple[bytes, bytes, bytes]], drop_at: str | None) -> None:
        u3 = self._recv("consistency", []).meta.get("survivors")
        if not isinstance(u3, list) or self.me not in u3 or not set(u3) <= set(self.parts) or len(set(u3)) != len(u3):
            raise self._refuse(f"malformed survivor list {u3}")
        if drop_at == "signature":
            return self._stop()
        # our endorsement of this list, to every other survivor (a MAC under our pairwise key)
        macs = [self.s._endorsement(self.s.pair_key(w), self.rnd, self.me, w, u3) for w in u3 if w != self.me]
        self._send("signature", arrays=[_u8(macs, _MAC)])
        r = self._recv("unmask", [np.uint8])
        self._check_request(r, u3, held)
        self.s._keep_mask_key(*self.key)  # on a list we are in, that `min_signers` endorsed: s stays secret
        if drop_at == "unmask":
            return self._stop()
        alive = [v for v in held if v in u3]
        dropped = [v for v in held if v not in u3]
        answer = self.s._unmask_answer({v: held[v][1] for v in alive}, {v: held[v][0] for v in dropped})
        rows_b = _u8(list(answer["b"].values()), shamir.SHARE_BYTES)
        rows_sk = _u8(list(answer["sk"].values()), shamir.SHARE_BYTES)
        self._send("unmask", {"b": list(answer["b"]), "sk": list(answer["sk"])}, [rows_b, rows_sk])
        self._recv("done", [])

    def _check_request(self, r: Received, u3: list[str], held: dict[str, Any]) -> None:
        """The consistency check: `min_signers` endorsements of *our* survivor list (ours and the
        valid MACs of other survivors addressed to us), and a request derived from it (never a
        client both alive and dropped)."""
        alive, dropped = list(r.meta.get("alive", [])), list(r.meta.get("dropped", []))
        both = sorted(set(alive) & set(dropped))
        if both:
            raise self._refuse(f"asked to unmask {both} both as dropped and as alive")
        if alive != [v for v in held if v in u3] or dropped != [v for v in held if v not in u3]:
            raise self._refuse(f"the request (alive {alive}, dropped {dropped}) does not follow the endorsed "
                               f"survivor list")
        signers = list(r.meta.get("signers", []))
        if len(set(signers)) != len(signers) or not set(signers) <= set(u3) - {self.me}:
            raise self._refuse(f"malformed signer list {signers}")
        if r.arrays[0].shape != (len(signers), _MAC):
            raise self._refuse("malformed endorsements")
        need, valid = int(self.p.min_signers or 0), 1
        for i, w in enumerate(signers):  # until enough: each check costs a pairwise key the first time
            if valid >= need:
                break
            valid += hmac.compare_digest(self.s._endorsement(self.s.pair_key(w), self.rnd, w, self.me, u3),
                                         r.arrays[0][i].tobytes())
        if valid < need:
            raise self._refuse(f"{valid} signers endorsed this survivor list (ours included), {self.p.min_signers} "
                               f"needed: the aggregator showed clients different lists, or too few answered")
