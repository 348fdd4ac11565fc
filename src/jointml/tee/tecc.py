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
  measured ``peer_policy`` and the exact measurement of the role the peer claims, and
  keys one channel per pair from both attested X25519 keys (static-static ECDH,
  transcript = both roles and keys). Over it runs an ordinary jointml link
  (:class:`~jointml.net.link.Link`: sequence-checked tags, counters), so the MPC engine
  inside sees a normal :class:`~jointml.runtime.context.PartyContext`
  (:meth:`PeerLinks.context`). Records are AES-GCM with sequence numbers: a replayed,
  reordered or tampered record is dropped (and the MPC then times out).

Threat model: an enclave talks only to peers whose quote verified (allow-listed
measurement of that role, trusted platform); the hosts and the network see ciphertext,
sizes and timing, and can stop the job (denial of service). SIMULATION: the enclaves
are software processes (see :mod:`jointml.tee`), so the host of an enclave can read it.
"""

from __future__ import annotations

import threading
from typing import Mapping

from ..core.errors import AccessDenied, ConfigError, ProtocolError
from . import channel as ch
from .attestation import Policy, Verifier, measure
from .enclave import Enclave, EnclaveDied, EnclaveError

ROLES = ("p0", "p1", "p2")


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
        self.enclaves: dict[str, Enclave] = {}
        self._queues: dict[str, list] = {}
        self._cv = threading.Condition()
        self._stop = False
        self.events: list[str] = []
        try:
            for r in ROLES:
                e = Enclave(program, role_config(self.config, r), platform_dir=platform_dir, debug=debug,
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
        """Pairwise mutual attestation inside the enclaves; each keys its channels."""
        for a in ROLES:
            for b in ROLES:
                if a == b:
                    continue
                nonce = self.enclaves[a].request("task", {"op": "peer_challenge", "peer": b}).meta["nonce"]
                quote = self.enclaves[b].attest(nonce)
                self.enclaves[a].request("task", {"op": "peer_connect", "peer": b, "quote": quote.to_dict()})
        self.events.append("TECC enclaves attested each other pairwise (SIMULATED TEE)")

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
        self._Link = _enclave_link_class()

    def deliver(self, meta, arrays) -> None:
        """A record relayed by the host from a peer (ChannelError on replay/tamper: dropped)."""
        link = self.links.get(meta.get("from"))
        if link is None:
            raise ProtocolError(f"record from unknown peer {meta.get('from')!r}")
        (rec,) = arrays
        link.deliver(rec.tobytes())

    def handle(self, op, meta) -> tuple[dict, list] | None:
        """The link tasks ``peer_challenge`` and ``peer_connect``; None for any other task."""
        if op == "peer_challenge":
            return {"nonce": self.verifier.challenge()}, []
        if op != "peer_connect":
            return None
        peer = meta["peer"]
        if peer not in self.peer_measurement:
            raise ConfigError(f"unknown peer role {peer!r}", field="peer")
        att = self.verifier.verify(meta["quote"])
        if att.measurement != self.peer_measurement[peer]:
            raise AccessDenied(f"enclave claiming role {peer} has the measurement of another role")
        lo, hi = sorted([self.role, peer])
        keys = {self.role: self.rt.x25519, peer: att.x25519}
        t = b"jointml-tecc-link-v1|" + lo.encode() + b"|" + hi.encode() + b"|" + keys[lo] + keys[hi]
        chan = ch.peer_channel(self.role, peer, self.rt.x25519_exchange(att.x25519), t)
        self.links[peer] = self._Link(self.role, peer, chan, self.rt.emit, self.recv_timeout)
        return {"peer": peer}, []

    def context(self):
        """A PartyContext of this role over the attested links (all peers must be connected)."""
        from ..net.link import Communicator
        from ..runtime.context import PartyContext

        if set(self.links) != set(self.peer_measurement):
            raise ProtocolError(f"not connected to all peers (have {sorted(self.links)})")
        return PartyContext(self.role, self.roles, Communicator(self.role, dict(self.links)))
