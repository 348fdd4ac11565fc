"""TECC infrastructure: three role enclaves and the attested links between them (SIMULATED TEE).

TECC runs an MPC protocol whose parties each sit in a separately attested enclave.
This module is the part that is not an application (the application, what the
enclaves compute, is :mod:`jointml.apps.tecc`):

* :class:`TeccCluster` (host side) starts the three enclaves of a registered program,
  each with a *role* (``p0``, ``p1``, ``p2``) that is part of its measured configuration
  (:func:`role_config`), so its measurement says which role it plays; it has every pair
  attest each other and relays their records (``relay`` / ``deliver`` frames). The host
  is untrusted: it forwards ciphertext only.
* :class:`PeerLinks` (enclave side): each enclave verifies a peer's quote against its
  measured ``peer_policy`` and the exact measurement of the role the peer claims,
  checks that the peer runs on another platform than itself and the other peer
  (:func:`require_distinct_platforms`), and keys one channel per pair from fresh
  ephemeral X25519 keys of both enclaves, each signed by the enclave's attested
  Ed25519 key (the host cannot substitute its own), bound to the cluster's run id,
  both roles and both ephemeral keys, with one AES-GCM key per direction. A
  reconnection is a new handshake with new keys: a sequence number never restarts
  under a used key, so a record of an earlier connection or run is refused. Over it
  runs an ordinary jointml link (:class:`~jointml.net.link.Link`: sequence-checked tags, counters), so the MPC engine
  inside sees a normal :class:`~jointml.runtime.context.PartyContext`
  (:meth:`PeerLinks.context`). Records are AES-GCM with sequence numbers: a replayed,
  reordered or tampered record is dropped (and the MPC then times out).

Threat model: an enclave talks only to peers whose quote verified (allow-listed
measurement of that role, trusted platform, a platform id distinct from its own and
the other peer's: the three roles on three platforms, so one broken platform breaks
one MPC party at most); the hosts and the network see ciphertext,
sizes and timing, and can stop the job (denial of service). SIMULATION: the enclaves
are software processes (see :mod:`jointml.tee`), so the host of an enclave can read it.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Mapping

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..core.errors import AccessDenied, ConfigError, ProtocolError
from . import channel as ch
from .attestation import Policy, Verifier, measure
from .enclave import Enclave, EnclaveDied, EnclaveError

ROLES = ("p0", "p1", "p2")


def require_distinct_platforms(platform_ids: Mapping[str, str]) -> None:
    """Refuse a TECC cluster where two roles run on the same platform (role -> platform id).

    The threat model counts on at most one broken TEE: two MPC parties on one platform
    fall together (one platform key forges both quotes, one host reads both). Data owners
    check it before sending shares, and every enclave before keying a link.

    >>> require_distinct_platforms({"p0": "aa", "p1": "bb", "p2": "cc"})
    >>> require_distinct_platforms({"p0": "aa", "p1": "bb", "p2": "aa"})
    Traceback (most recent call last):
    ...
    jointml.core.errors.AccessDenied: field 'platform_id': TECC roles p0 and p2 run on the same platform aa: ...
    """
    seen: dict[str, str] = {}
    for role in sorted(platform_ids):
        pid = platform_ids[role]
        if pid in seen:
            raise AccessDenied(f"TECC roles {seen[pid]} and {role} run on the same platform {pid}: the three MPC "
                               "enclaves must run on distinct platforms", field="platform_id")
        seen[pid] = role


def role_platform_dirs(base: str | os.PathLike) -> dict[str, str]:
    """One simulated platform directory per role under `base` (SIMULATION: three "machines").

    >>> sorted(role_platform_dirs("/tmp/x").items())[0]
    ('p0', '/tmp/x/p0')
    """
    return {r: os.path.join(os.fspath(base), r) for r in ROLES}


def role_config(config: Mapping, role: str) -> dict:
    """The configuration of one role's enclave: the shared one plus its ``role``.

    >>> role_config({"tecc": {}}, "p1")
    {'tecc': {}, 'role': 'p1'}
    """
    return {**config, "role": role}


class TeccCluster:
    """Host side: start the three role enclaves of `program`, connect them pairwise, route their records.

    The host is untrusted: it only forwards ciphertext records between enclaves (kept
    in :attr:`relay_log` of each enclave for inspection). The program's enclave side uses
    :class:`PeerLinks` for the ``peer_challenge`` / ``peer_connect`` tasks and ``deliver``.

    >>> TeccCluster.run.__doc__.split(";")[0]  # starting enclaves takes a program: see jointml.apps.tecc
    'Run task `op` in all three enclaves at once'
    """

    def __init__(self, program: str, config: Mapping, *, platform_dir=None, debug: bool = False):
        self.program = program
        self.config = dict(config)
        # role -> platform state dir; one directory for all roles is accepted here but the
        # enclaves then refuse each other (one platform for every role)
        dirs = dict(platform_dir) if isinstance(platform_dir, Mapping) else {r: platform_dir for r in ROLES}
        # fresh per cluster: bound into every link key, so no record crosses runs
        self.run_id = secrets.token_hex(16)
        self.enclaves: dict[str, Enclave] = {}
        self._queues: dict[str, list] = {}
        self._cv = threading.Condition()
        self._stop = False
        self.events: list[str] = []
        try:
            for r in ROLES:
                e = Enclave(program, role_config(self.config, r), platform_dir=dirs.get(r), debug=debug,
                            name=f"tecc-{r}")
                e.on_relay = self._route
                self.enclaves[r] = e
                self._queues[r] = []
            self._writers = [threading.Thread(target=self._writer, args=(r,), daemon=True, name=f"tecc-route-{r}")
                             for r in ROLES]
            for t in self._writers:
                t.start()
            self._connect()
        except BaseException:
            self.close()
            raise

    # routing: a reader thread never blocks on another enclave's pipe (no deadlock cycles)
    def _route(self, sender: Enclave, m) -> None:
        src = sender.name.removeprefix("tecc-")
        dst = m.meta.get("to")
        if m.meta.get("from") != src or dst not in self._queues:
            self.events.append(f"dropped a record from {src} with bad routing {m.meta}")
            return
        with self._cv:
            self._queues[dst].append((src, m.arrays))
            self._cv.notify_all()

    def _writer(self, role: str) -> None:
        while True:
            with self._cv:
                while not self._queues[role] and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                src, arrays = self._queues[role].pop(0)
            try:
                self.enclaves[role].post("deliver", {"from": src}, arrays)
            except EnclaveDied:
                return

    def _connect(self) -> None:
        """Pairwise mutual attestation and fresh signed ephemeral keys; each enclave keys its links."""
        for i, a in enumerate(ROLES):
            for b in ROLES[i + 1:]:
                self.connect_pair(a, b)
        self.events.append("TECC enclaves attested each other pairwise (SIMULATED TEE)")

    def connect_pair(self, a: str, b: str) -> None:
        """(Re)connect roles `a` and `b`: a new handshake, so new keys at both ends.

        Each enclave offers a fresh ephemeral key signed by its attested key and a nonce
        for the other's quote; the host only relays. It reads the platform ids of the
        quotes to refuse early, with a clear message, a cluster where two roles share a
        platform (the enclaves check it themselves too).
        """
        offer = {x: self.enclaves[x].request("task", {"op": "peer_challenge", "peer": y, "run_id": self.run_id}).meta
                 for x, y in ((a, b), (b, a))}
        quotes = {x: self.enclaves[y].attest(offer[x]["nonce"]) for x, y in ((a, b), (b, a))}  # y's quote for x
        require_distinct_platforms({b: quotes[a].platform_id, a: quotes[b].platform_id})
        for x, y in ((a, b), (b, a)):
            self.enclaves[x].request("task", {"op": "peer_connect", "peer": y, "quote": quotes[x].to_dict(),
                                              "eph": offer[y]["eph"], "signature": offer[y]["signature"]})

    def run(self, op: str, timeout: float = 600.0) -> dict[str, dict]:
        """Run task `op` in all three enclaves at once; fail fast if one fails or dies."""
        out: dict[str, dict] = {}
        errors: dict[str, BaseException] = {}

        def one(r):
            try:
                out[r] = dict(self.enclaves[r].request("task", {"op": op}, timeout=timeout).meta)
            except BaseException as e:  # noqa: BLE001
                errors[r] = e
                for other in self.enclaves.values():  # the others would wait for this one
                    if other is not self.enclaves[r]:
                        other.kill()

        ts = [threading.Thread(target=one, args=(r,), daemon=True) for r in ROLES]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout + 10)
        if errors:
            first = next((r for r, e in errors.items() if not isinstance(e, EnclaveDied)), next(iter(errors)))
            raise EnclaveError(f"TECC job failed at {first}: {errors[first]}", type(errors[first]).__name__,
                               f"tecc-{first}")
        return out

    @property
    def relay_log(self) -> list[tuple[str, bytes]]:
        return [rec for e in self.enclaves.values() for rec in list(e.relay_log)]

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for e in self.enclaves.values():
            e.close() if e.alive else e.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------
# enclave side
# ------------------------------------------------------------------------------------


def _enclave_link_class():
    from ..net.link import Link  # imported inside the enclave only

    class EnclaveLink(Link):
        """A jointml link whose frames travel as channel records relayed by the host."""

        def __init__(self, me, peer, chan: ch.SecureChannel, emit, recv_timeout):
            super().__init__(me, peer, recv_timeout)
            self.chan = chan
            self.emit = emit

        def _write(self, bufs, nbytes):  # Link.send holds the send lock: records stay in order
            body = b"".join(bytes(b) for b in bufs)
            self.emit("relay", {"from": self.me, "to": self.peer}, [ch.as_bytes_array(self.chan.encrypt(body))])

        def deliver(self, record: bytes) -> None:
            self._inbox.put(self.chan.decrypt(record))

        def close(self) -> None:
            pass

    return EnclaveLink


class PeerLinks:
    """Enclave side: attest the peer enclaves, key one channel per pair, carry jointml links over them.

    `rt` is the enclave runtime (its attested X25519 key, ``emit`` to the host); `roles`
    the three roles in protocol order. The measured configuration names the role of
    this enclave and the ``peer_policy`` (trusted platforms, simulation allowed or not).

    >>> PeerLinks.handle.__doc__.split(";")[0]
    'The link tasks ``peer_challenge`` and ``peer_connect``'
    """

    def __init__(self, rt, roles, recv_timeout: float):
        cfg = rt.config
        self.rt = rt
        self.roles = list(roles)
        self.role = cfg["role"]
        if self.role not in self.roles or len(self.roles) != 3:
            raise ConfigError(f"bad TECC role {self.role!r} / roles {self.roles}", field="role")
        base = {k: v for k, v in cfg.items() if k != "role"}
        self.peer_measurement = {r: measure(rt.program_name, role_config(base, r)) for r in self.roles if r != self.role}
        self.verifier = Verifier(Policy.from_config(cfg.get("peer_policy", {}), self.peer_measurement.values()))
        self.recv_timeout = float(recv_timeout)
        self.links: dict = {}
        self.peer_platforms: dict[str, str] = {}
        self._pending: dict[str, tuple[str, X25519PrivateKey]] = {}
        self._Link = _enclave_link_class()

    def deliver(self, meta, arrays) -> None:
        """A record relayed by the host from a peer (ChannelError on replay/tamper: dropped)."""
        link = self.links.get(meta.get("from"))
        if link is None:
            raise ProtocolError(f"record from unknown peer {meta.get('from')!r}")
        (rec,) = arrays
        link.deliver(rec.tobytes())

    def handle(self, op, meta) -> tuple[dict, list] | None:
        """The link tasks ``peer_challenge`` and ``peer_connect``; None for any other task.

        ``peer_challenge`` {peer, run_id} opens a handshake with `peer`: a nonce for the
        peer's quote and a fresh ephemeral X25519 key signed with this enclave's attested
        Ed25519 key. ``peer_connect`` {peer, quote, eph, signature} completes it with the
        peer's quote and signed offer; the ephemeral private key is used once, then dropped.
        """
        if op == "peer_challenge":
            return self._offer(meta), []
        if op != "peer_connect":
            return None
        peer = self._peer(meta)
        pending = self._pending.pop(peer, None)  # single use: a replayed peer_connect finds none
        if pending is None:
            raise ProtocolError(f"no open handshake with {peer}: every connection needs a fresh peer_challenge",
                                party=peer)
        run_id, eph = pending
        att = self.verifier.verify(meta["quote"])
        if att.measurement != self.peer_measurement[peer]:
            raise AccessDenied(f"enclave claiming role {peer} has the measurement of another role")
        platforms = {self.role: self.rt.platform.platform_id, **{r: p for r, p in self.peer_platforms.items() if r != peer},
                     peer: att.quote.platform_id}
        require_distinct_platforms(platforms)
        try:
            peer_eph, sig = bytes.fromhex(meta["eph"]), bytes.fromhex(meta["signature"])
        except (KeyError, TypeError, ValueError):
            raise ch.ChannelError(f"malformed link offer from {peer}") from None
        # the host relays the offer: only a key signed by the attested enclave of `peer` is accepted
        ch.verify_ed25519(att.ed25519, sig, ch.link_offer(run_id, peer, self.role, peer_eph),
                          f"ephemeral link key of enclave {peer}")
        chan = ch.link_channel(self.role, peer, eph, peer_eph, run_id)
        self.peer_platforms[peer] = att.quote.platform_id
        # a reconnection replaces the link: the old channel's keys are dropped, never reused
        self.links[peer] = self._Link(self.role, peer, chan, self.rt.emit, self.recv_timeout)
        return {"peer": peer, "platform_id": att.quote.platform_id}, []

    def _peer(self, meta) -> str:
        peer = meta.get("peer")
        if peer not in self.peer_measurement:
            raise ConfigError(f"unknown peer role {peer!r}", field="peer")
        return str(peer)

    def _offer(self, meta) -> dict:
        """Start a handshake with a peer: challenge nonce + signed fresh ephemeral key."""
        peer = self._peer(meta)
        run_id = meta.get("run_id")
        if not isinstance(run_id, str) or not 16 <= len(run_id) <= 128:
            raise ProtocolError("peer_challenge needs a run id of 16 to 128 characters", field="run_id")
        eph = X25519PrivateKey.generate()
        pub = ch.x25519_public(eph)
        self._pending[peer] = (run_id, eph)  # a newer offer replaces an unfinished one
        return {"nonce": self.verifier.challenge(), "eph": pub.hex(),
                "signature": self.rt.sign(ch.link_offer(run_id, self.role, peer, pub)).hex()}

    def context(self):
        """A PartyContext of this role over the attested links (all peers must be connected)."""
        from ..net.link import Communicator
        from ..runtime.context import PartyContext

        if set(self.links) != set(self.peer_measurement):
            raise ProtocolError(f"not connected to all peers (have {sorted(self.links)})")
        return PartyContext(self.role, self.roles, Communicator(self.role, dict(self.links)))
