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
| keys | two X25519 public keys (c: encryption, s: masks), Ed25519-signed | the neighbours' signed public keys |
| shares | per neighbour v: AES-GCM(KA(c_u, c_v), share of s_u ‖ share of b_u), share hashes, SHA-256(b_u) | its ciphertexts |
| masked | y_u = q(x_u) + PRG(b_u) + Σ_v ±PRG(KA(s_u, s_v)) mod 2^bits | |
| consistency | Ed25519 signature of the survivor list | the survivor list |
| unmask | shares of b_v (v alive) and of s_v (v dropped), per neighbour | the signatures, the request |
| done | (an ack after a drop notice) | "done", or a drop notice in place of any request |

q is clipping + quantisation (`secagg_params.quantise`); PRG is `core.prg` (AES-CTR) keyed by
HKDF-SHA256 of the X25519 secret; b_u is a fresh 128-bit self-mask seed; keys are fresh each
round (a dropped client's mask key is rebuilt, so it must never serve again) and signed by
their owner, so the aggregator that routes them cannot substitute its own. Shamir shares
are over GF(2^521 − 1) (`shamir`), threshold t among the k neighbours. The Ed25519
verification keys are exchanged once per session *directly between the clients* over the
job's mutually authenticated links (that is the PKI the key signatures and the consistency
check need: the aggregator cannot substitute them).

Dropouts: the aggregator waits while answers keep coming; the clients still silent `timeout`
seconds after the last answer are dropped for the rest of the round and told so (a notice in place of its next request);
a slow client that answers late then acknowledges, and the aggregator reads the late answer
and the acknowledgement at the end of the round, so the links stay in step for the next
round (a client whose acknowledgement has not come sits the next rounds out until it does;
`SecAggSession.close` waits for all of them). Survivors' self-masks are removed with their b
shares, dropped clients' pairwise masks with their s keys, so the sum of the survivors
opens as long as every client has t surviving neighbours and `min_signers` clients sign;
otherwise `ProtocolError` (failure probability in `secagg_params`).

Adversary model and what each party learns:
- Aggregator, semi-honest or deviating: the sum of the (clipped, quantised) vectors of the
  survivors, who survived, the public keys, ciphertexts it cannot open, share hashes and
  SHA-256(b_u) (of 128-bit random values: nothing). Each masked y_u alone is uniform in
  Z_2^bits. To open one client's vector it would need both b_u and s_u of a survivor; an
  honest client reveals a neighbour's b share only for survivors and its s share only for
  the dropped, both derived from one survivor list that at least `min_signers` clients
  signed; a request naming a client both alive and dropped, or a list not matching the
  signed one, is refused (consistency check). Colluding with fewer than t of a client's
  neighbours it learns nothing more (bounds in `secagg_params`).
- Client: its neighbours' public keys and the shares they sent it (t − 1 of them reveal
  nothing); the survivor list. Not the sum (the FL loop sends the new model back).
- The graph is not the aggregator's choice: it comes from public randomness (Bell et al.), a
  hash of the round, its participants and the clients' verification keys (fresh per session,
  exchanged directly between the clients), which every client recomputes; a neighbour list
  that differs is refused. Residual: the aggregator picks each round's participants (client
  sampling), so it could try participant sets until the hash gives a victim a bad
  neighbourhood; an unbiasable coin (clients' commit-then-reveal) would close that.
- Not covered: a deviating client
  can send any vector within the clipping range (the sum is then wrong; no input proofs), and
  can make an honest neighbour look like the sender of a wrong share by hashing another share.

Cost per client and round, d values, k neighbours: d·bits/8 bytes of masked input (uint32
at bits ≤ 32: half a float64 model) + ~230·k bytes of keys, shares and signatures; k + 1
AES-CTR expansions of d words. The aggregator: one expansion per survivor and one per
(dropped, surviving neighbour) pair.

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
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...core.errors import LinkTimeout, PeerClosed, ProtocolError
from ...core.prg import Prg, new_seed
from ...runtime.collectives import Channel, Received, all_gather
from . import shamir
from .secagg_params import SecAggParams, dequantise_sum, harary_neighbours, quantise
from .stragglers import collect
from .timing import StageClock

__all__ = ["SecAggSession", "SecAggResult", "STAGES"]

#: the client's answers, in order; `drop_at` names the first one a simulated dropout skips
STAGES = ("keys", "shares", "masked", "signature", "unmask")
_KEY = 32
_SIG = 64
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


# -- primitives (cryptography's X25519, Ed25519, HKDF, AES-GCM) ---------------------
def _kdf(shared: bytes, info: str, n: int = 32) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=n, salt=None, info=info.encode()).derive(shared)


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

    Building it exchanges the clients' Ed25519 verification keys over the direct links (once);
    `aggregate` then runs one round. `last_view_` (aggregator) holds what it received in the
    last round, by stage and client, for audits and view tests.

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
        self.verify_keys: dict[str, bytes] = {}
        #: (aggregator) per client, the (round, message index) of drop notices not yet acknowledged:
        #: the client's late answer (if any) and its ack are read before it takes part again
        self.pending: dict[str, list[tuple[int, int]]] = {}
        #: this party's CPU time by stage (`timing`; a trainer hands in its own clock)
        self.clock = StageClock()
        if ctx.me in clients or ctx.me == server:
            self._exchange_verify_keys()

    def _exchange_verify_keys(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        me = self.ctx.me
        self._signer = Ed25519PrivateKey.generate() if me in self.clients else None
        mine = [np.frombuffer(self._signer.public_key().public_bytes_raw(), dtype=np.uint8)] if self._signer else []
        got = all_gather(self.ctx, self.clients, arrays=mine, to=[*self.clients, self.server], name="secagg-vk")
        for c, r in got.items():
            a = r.expect([np.uint8], [(_KEY,)])[0]
            self.verify_keys[c] = a.tobytes()

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

    # -- shared derivations (both sides compute them alike) -----------------------------
    def _label(self, rnd: int) -> str:
        return f"{self.prefix}|{rnd}"

    def _mask(self, seed: bytes, stream: str, dim: int, bits: int) -> np.ndarray:
        # uint32 words when the ring fits (half the keystream and memory traffic of uint64)
        dtype = _ring_dtype(bits)
        out = Prg(seed, stream=stream).random(dim, dtype)
        return out if bits in (32, 64) else out & dtype((1 << bits) - 1)

    def _pair_mask(self, shared: bytes, rnd: int, dim: int, bits: int) -> np.ndarray:
        return self._mask(_kdf(shared, "mask|" + self._label(rnd), 16), "pair", dim, bits)

    def _self_mask(self, b: bytes, rnd: int, dim: int, bits: int) -> np.ndarray:
        return self._mask(b, "self|" + self._label(rnd), dim, bits)

    def _key_text(self, rnd: int, owner: str, c_pk: bytes, s_pk: bytes) -> bytes:
        return _h("keys", self._label(rnd), owner, c_pk, s_pk)

    def _signed_text(self, rnd: int, survivors: Sequence[str]) -> bytes:
        return _h("consistency", self._label(rnd), ",".join(sorted(survivors)))

    def _share_hash(self, rnd: int, kind: str, owner: str, holder: str, share: bytes) -> bytes:
        return _h("share", self._label(rnd), kind, owner, holder, share)

    def _aad(self, rnd: int, sender: str, receiver: str) -> bytes:
        return _h("aad", self._label(rnd), sender, receiver)

    # -- the aggregator's choices (a test's deviating aggregator overrides these) ----------
    def _consistency_list(self, client: str, survivors: list[str]) -> list[str]:
        """The survivor list sent to `client` for signing (honest: the same for all)."""
        return survivors

    def graph_seed(self, rnd: int, parts: Sequence[str]) -> bytes:
        """The round's public random seed of the communication graph: a hash of the round, its
        participants and every client's Ed25519 verification key (which the clients exchanged
        directly, and which are fresh per session), so every client recomputes its neighbours
        and the aggregator cannot pick them."""
        return _h("graph", self._label(rnd), *parts, *(self.verify_keys[c] for c in self.clients))[:16]

    def _graph(self, parts: list[str], degree: int) -> dict[str, list[str]]:
        """The neighbours the aggregator announces (honest: the public graph; a test overrides it)."""
        return harary_neighbours(parts, degree, Prg(self.graph_seed(self.round, parts)))

    def _neighbour_keys(self, client: str, keys: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
        """The neighbours' (c_pk, s_pk, signature) forwarded to `client` (honest: as received)."""
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
        self.graph = s._graph(parts, int(p.degree or 0))
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
        keys = self._collect("keys", ready, [np.uint8, np.uint8, np.uint8], [(_KEY,), (_KEY,), (_SIG,)])
        u1 = list(keys)
        for c in u1:
            nb = self._nbrs(c, keys)
            fwd = self.s._neighbour_keys(c, {v: list(keys[v].arrays) for v in nb})
            pk = [np.stack([fwd[v][i] for v in nb]) if nb else np.zeros((0, w), np.uint8)
                  for i, w in ((0, _KEY), (1, _KEY), (2, _SIG))]
            self._send(c, "keys", {"from": nb}, pk)
        shares = self._collect_shares(u1)
        u2 = list(shares)
        for v in u2:
            senders = self._nbrs(v, shares)
            rows = [shares[u].arrays[0][shares[u].meta["to"].index(v)] for u in senders]
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

    def _collect_shares(self, u1: list[str]) -> dict[str, Received]:
        got = self._collect("shares", u1, [np.uint8, np.uint8, np.uint8], [None, None, (32,)])
        for c, r in got.items():
            want = self._nbrs(c, u1)
            n = len(want)
            if r.meta.get("to") != want or r.arrays[0].shape != (n, _CT) or r.arrays[1].shape != (n, 64):
                raise ProtocolError(f"sent shares for {r.meta.get('to')}, its neighbours are {want}", party=c,
                                    field="shares")
        return got

    def _consistency(self, u3: list[str]) -> dict[str, bytes]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        for c in u3:
            self._send(c, "consistency", {"survivors": self.s._consistency_list(c, u3)})
        sigs = self._collect("signature", u3, [np.uint8], [(_SIG,)])
        out = {}
        for c, r in sigs.items():
            sig = r.arrays[0].tobytes()
            try:
                Ed25519PublicKey.from_public_bytes(self.s.verify_keys[c]).verify(
                    sig, self.s._signed_text(self.rnd, self.s._consistency_list(c, u3)))
            except InvalidSignature:
                raise ProtocolError("its consistency signature does not verify", party=c, field="signature") from None
            out[c] = sig
        if len(out) < int(self.p.min_signers or 0):
            raise ProtocolError(f"round {self.rnd}: {len(out)} clients signed the survivor list, "
                                f"{self.p.min_signers} needed (min_signers)", field="min_signers")
        return out

    def _request_unmask(self, signers: dict[str, bytes], u3: list[str],
                        shares: dict[str, Received]) -> dict[str, Received]:
        names = list(signers)
        # `min_signers` signatures are what a client's check needs: forwarding all of them made
        # each client verify every survivor's (the largest CPU cost of a 100-client round)
        shown = names[: int(self.p.min_signers or len(names))]
        sig_rows = _u8([signers[c] for c in shown], _SIG)
        for c in names:
            req = self.s._unmask_request(c, self._nbrs(c, shares), u3)
            self._send(c, "unmask", {"signers": shown, **req}, [sig_rows])
        got = self._collect("unmask", names, [np.uint8, np.uint8], [None, None])
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

    def _gather_shares(self, owner: str, kind: str, answers: dict[str, Received],
                       shares: dict[str, Received]) -> dict[int, int]:
        """The shares of `owner`'s secret (`kind` 'b' or 'sk') returned by its neighbours, each
        checked against the hash `owner` committed to; a mismatch names the holder."""
        out: dict[int, int] = {}
        col = 0 if kind == "sk" else 1
        key = "b" if kind == "b" else "sk"
        for w, r in answers.items():
            listed = r.meta[key]
            if owner not in listed:
                continue
            raw = r.arrays[0 if kind == "b" else 1][listed.index(owner)].tobytes()
            committed = shares[owner].arrays[1][shares[owner].meta["to"].index(w)].tobytes()
            if self.s._share_hash(self.rnd, kind, owner, w, raw) != committed[32 * col: 32 * col + 32]:
                raise ProtocolError(f"returned a wrong {kind} share of client '{owner}'", party=w, field="unmask")
            out[self.parts.index(w) + 1] = shamir.share_from_bytes(raw)
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
        for c in u3:
            total += masked[c].arrays[0].astype(dtype, copy=False)
        for v in u3:
            b = shamir.reconstruct(self._gather_shares(v, "b", answers, shares), t, 16)
            if hashlib.sha256(b).digest() != shares[v].arrays[2].tobytes():
                raise ProtocolError("its self-mask shares do not match its commitment", party=v, field="shares")
            total -= self.s._self_mask(b, self.rnd, self.dim, bits)
        for v in u2:
            if v in u3:
                continue
            sk = _x25519_load(shamir.reconstruct(self._gather_shares(v, "sk", answers, shares), t, _KEY))
            if sk.public_key().public_bytes_raw() != keys[v].arrays[1].tobytes():
                raise ProtocolError("its mask-key shares do not match its public key", party=v, field="shares")
            for u in self._nbrs(v, u3):
                m = self.s._pair_mask(_exchange(sk, keys[u].arrays[1].tobytes(), u), self.rnd, self.dim, bits)
                # u added +m if u precedes v, −m otherwise: remove it
                if self.parts.index(u) < self.parts.index(v):
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
        public = harary_neighbours(self.parts, int(self.p.degree or 0), Prg(self.s.graph_seed(self.rnd, self.parts)))
        if nb != public[self.me]:
            raise self._refuse(f"the neighbours {nb} are not those of the round's public graph {public[self.me]}")
        if drop_at == "keys":
            return self._stop()
        c_sk, c_pk = _x25519()
        s_sk, s_pk = _x25519()
        sig = self._signer().sign(self.s._key_text(self.rnd, self.me, c_pk, s_pk))
        self._send("keys", arrays=[np.frombuffer(c_pk, np.uint8), np.frombuffer(s_pk, np.uint8),
                                   np.frombuffer(sig, np.uint8)])
        pks = self._neighbour_keys(nb)
        peers = list(pks)
        if drop_at == "shares":
            return self._stop()
        b = new_seed()
        # one X25519 agreement per neighbour serves both directions of the share exchange
        enc = {v: _kdf(_exchange(c_sk, pks[v][0], v), "enc|" + self.s._label(self.rnd)) for v in peers}
        self._send_shares(peers, enc, _priv_bytes(s_sk), b)
        held = self._receive_shares(pks, enc)
        if drop_at == "masked":
            return self._stop()
        self._send_masked(x, b, s_sk, pks, list(held))
        self._consistency_and_unmask(held, drop_at)

    def _signer(self) -> Any:
        signer = self.s._signer
        assert signer is not None  # every client made one when the session was built
        return signer

    def _neighbour_keys(self, nb: list[str]) -> dict[str, tuple[bytes, bytes]]:
        """The neighbours' public keys, each checked against its owner's Ed25519 signature (the
        verification keys came over the clients' direct authenticated links): an aggregator
        that substitutes its own key to read a client's shares is refused."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        r = self._recv("keys", [np.uint8, np.uint8, np.uint8])
        peers = list(r.meta.get("from", []))
        n = len(peers)
        if not set(peers) <= set(nb) or [a.shape for a in r.arrays] != [(n, _KEY), (n, _KEY), (n, _SIG)]:
            raise self._refuse(f"keys announced for {peers}, not all neighbours {nb}")
        if n < int(self.p.threshold or 0):
            raise self._refuse(f"only {n} neighbours left, the threshold is {self.p.threshold}")
        pks = {v: (r.arrays[0][i].tobytes(), r.arrays[1][i].tobytes()) for i, v in enumerate(peers)}
        for i, v in enumerate(peers):
            try:
                Ed25519PublicKey.from_public_bytes(self.s.verify_keys[v]).verify(
                    r.arrays[2][i].tobytes(), self.s._key_text(self.rnd, v, *pks[v]))
            except InvalidSignature:
                raise self._refuse(f"the public keys forwarded for '{v}' are not signed by '{v}'") from None
        return pks

    def _send_shares(self, peers: list[str], enc: dict[str, bytes], s_raw: bytes, b: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        t = int(self.p.threshold or 0)
        xs = [self.parts.index(v) + 1 for v in peers]
        sk_sh, b_sh = shamir.split(s_raw, t, xs), shamir.split(b, t, xs)
        cts, hashes = [], []
        for v, y_sk, y_b in zip(peers, sk_sh, b_sh):
            raw_sk, raw_b = shamir.share_to_bytes(y_sk), shamir.share_to_bytes(y_b)
            cts.append(AESGCM(enc[v]).encrypt(_h("nonce", self.me, v)[:12], raw_sk + raw_b,
                                           self.s._aad(self.rnd, self.me, v)))
            hashes.append(self.s._share_hash(self.rnd, "sk", self.me, v, raw_sk)
                          + self.s._share_hash(self.rnd, "b", self.me, v, raw_b))
        commit = np.frombuffer(hashlib.sha256(b).digest(), np.uint8)
        self._send("shares", {"to": peers}, [_u8(cts, _CT), _u8(hashes, 64), commit])

    def _receive_shares(self, pks: dict[str, tuple[bytes, bytes]],
                        enc: dict[str, bytes]) -> dict[str, tuple[bytes, bytes, bytes]]:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        r = self._recv("shares", [np.uint8])
        senders = list(r.meta.get("from", []))
        if not set(senders) <= set(pks) or r.arrays[0].shape != (len(senders), _CT):
            raise self._refuse(f"shares forwarded from {senders}, not all neighbours with keys")
        held = {}
        for i, u in enumerate(senders):
            try:
                pt = AESGCM(enc[u]).decrypt(_h("nonce", u, self.me)[:12], r.arrays[0][i].tobytes(),
                                         self.s._aad(self.rnd, u, self.me))
            except InvalidTag:
                raise ProtocolError(f"the encrypted shares from '{u}' do not decrypt at '{self.me}'", party=u,
                                    field="shares") from None
            held[u] = (pt[:shamir.SHARE_BYTES], pt[shamir.SHARE_BYTES:], pks[u][1])
        return held

    def _send_masked(self, x: np.ndarray, b: bytes, s_sk: Any, pks: dict[str, tuple[bytes, bytes]],
                     peers: list[str]) -> None:
        bits = int(self.p.bits or 64)
        dtype = _ring_dtype(bits)
        y = quantise(x, self.p, Prg()).astype(dtype) + self.s._self_mask(b, self.rnd, self.dim, bits)
        me = self.parts.index(self.me)
        for v in peers:
            m = self.s._pair_mask(_exchange(s_sk, pks[v][1], v), self.rnd, self.dim, bits)
            if me < self.parts.index(v):
                y += m
            else:
                y -= m
        if bits not in (32, 64):
            y &= dtype((1 << bits) - 1)
        self._send("masked", arrays=[y.astype(self.p.wire_dtype)])

    def _consistency_and_unmask(self, held: dict[str, tuple[bytes, bytes, bytes]], drop_at: str | None) -> None:
        u3 = self._recv("consistency", []).meta.get("survivors")
        if not isinstance(u3, list) or self.me not in u3 or not set(u3) <= set(self.parts):
            raise self._refuse(f"malformed survivor list {u3}")
        if drop_at == "signature":
            return self._stop()
        sig = self._signer().sign(self.s._signed_text(self.rnd, u3))
        self._send("signature", arrays=[np.frombuffer(sig, np.uint8)])
        r = self._recv("unmask", [np.uint8])
        self._check_request(r, u3, held)
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
        """The consistency check: enough valid signatures on *our* survivor list, and a request
        derived from it (never a client both alive and dropped)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        alive, dropped = list(r.meta.get("alive", [])), list(r.meta.get("dropped", []))
        both = sorted(set(alive) & set(dropped))
        if both:
            raise self._refuse(f"asked to unmask {both} both as dropped and as alive")
        if alive != [v for v in held if v in u3] or dropped != [v for v in held if v not in u3]:
            raise self._refuse(f"the request (alive {alive}, dropped {dropped}) does not follow the signed "
                               f"survivor list")
        signers = list(r.meta.get("signers", []))
        if len(set(signers)) < int(self.p.min_signers or 0) or not set(signers) <= set(u3):
            raise self._refuse(f"{len(set(signers))} signers of the survivor list, {self.p.min_signers} needed")
        if r.arrays[0].shape != (len(signers), _SIG):
            raise self._refuse("malformed signatures")
        text = self.s._signed_text(self.rnd, u3)
        for i, c in enumerate(signers):
            try:
                Ed25519PublicKey.from_public_bytes(self.s.verify_keys[c]).verify(r.arrays[0][i].tobytes(), text)
            except InvalidSignature:
                raise self._refuse(f"the signature of '{c}' does not verify on this survivor list "
                                   f"(the aggregator showed clients different lists)") from None
