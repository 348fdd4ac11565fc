"""TECC enclave-to-enclave links (SIMULATED TEE): fresh signed ephemeral keys, no (key, nonce) reuse,
and the three roles on distinct platforms.

The untrusted host relays every handshake message and record. These tests play that host:
they run the three enclave runtimes of ``jointml.apps.tecc`` in this process (fast; the
records and tasks are the ones the enclave processes exchange) and attack the links.
"""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointml.apps.tecc import PROGRAM, ROLES, tecc_config
from jointml.core.errors import AccessDenied, ProtocolError
from jointml.tee import ChannelError, PartyIdentity, Policy, SoftwareSimulationPlatform, TrustedPlatform
from jointml.tee import channel as ch
from jointml.tee._boot import EnclaveRuntime
from jointml.tee.tecc import require_distinct_platforms, role_config, role_platform_dirs

RUN = "run-0123456789abcdef"


class Node:
    """One TECC enclave runtime in this process; what it emits to the host is kept in `sent`."""

    def __init__(self, role: str, cfg: dict, platform_dir: str):
        self.rt = EnclaveRuntime(PROGRAM, role_config(cfg, role), False, platform_dir)
        self.sent: list[tuple[dict, list]] = []
        self.rt.emit = lambda kind, meta=None, arrays=(): self.sent.append((meta, list(arrays)))

    def task(self, **meta):
        return self.rt.program.on_task(meta["op"], meta, [])[0]

    @property
    def peers(self):
        return self.rt.program.peers


def _cluster(dirs: dict[str, str]) -> dict[str, Node]:
    trusted = tuple(TrustedPlatform.of(SoftwareSimulationPlatform(d)) for d in sorted(set(dirs.values())))
    cfg = tecc_config({"alice": PartyIdentity("alice").public_key}, feature_parties=["alice"], label_party="alice",
                      result_parties=["alice"], peer_policy=Policy(trusted_platforms=trusted, allow_simulation=True)
                      .to_config(), recv_timeout=1.0)
    return {r: Node(r, cfg, dirs[r]) for r in ROLES}


def _connect(nodes, a, b, run_id=RUN, tamper=None):
    """What TeccCluster.connect_pair does, with a hook for the host to alter peer_connect."""
    offer = {x: nodes[x].task(op="peer_challenge", peer=y, run_id=run_id) for x, y in ((a, b), (b, a))}
    sent = {}
    for x, y in ((a, b), (b, a)):
        meta = {"op": "peer_connect", "peer": y, "quote": nodes[y].rt.quote(offer[x]["nonce"]).to_dict(),
                "eph": offer[y]["eph"], "signature": offer[y]["signature"]}
        if tamper is not None:
            meta = tamper(x, meta, offer)
        sent[x] = meta
        nodes[x].task(**meta)
    return sent


def _send(nodes, a, b, payload: bytes) -> bytes:
    """`a` sends one message to `b` over their link; returns the record the host relayed."""
    nodes[a].peers.links[b].send("t", [np.frombuffer(payload, np.uint8)])
    meta, (rec,) = nodes[a].sent[-1]
    assert meta == {"from": a, "to": b}
    return rec.tobytes()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return role_platform_dirs(tmp_path_factory.mktemp("tecc-link-platforms"))


@pytest.fixture()
def nodes(dirs):
    ns = _cluster(dirs)
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1:]:
            _connect(ns, a, b)
    return ns


def test_links_carry_messages(nodes):
    rec = _send(nodes, "p0", "p1", b"hello")
    nodes["p1"].peers.deliver({"from": "p0"}, [np.frombuffer(rec, np.uint8)])
    assert nodes["p1"].peers.links["p0"].recv("t").arrays[0].tobytes() == b"hello"
    ctx = nodes["p2"].peers.context()
    assert ctx.me == "p2" and sorted(nodes["p2"].peers.peer_platforms) == ["p0", "p1"]


def test_reconnect_then_replayed_record_refused(nodes):
    """The attack of the old static-key links: the host reconnects a pair (sequence back
    at 0) and replays a recorded record; now the new connection has new keys."""
    rec = _send(nodes, "p0", "p1", b"secret share")
    _connect(nodes, "p0", "p1")  # host-triggered reconnection
    with pytest.raises(ChannelError, match="authentication failed"):
        nodes["p1"].peers.deliver({"from": "p0"}, [np.frombuffer(rec, np.uint8)])
    # the reconnected link works with its own keys
    rec2 = _send(nodes, "p0", "p1", b"after")
    nodes["p1"].peers.deliver({"from": "p0"}, [np.frombuffer(rec2, np.uint8)])
    assert nodes["p1"].peers.links["p0"].recv("t").arrays[0].tobytes() == b"after"


def test_same_inputs_give_new_ciphertexts_per_connection_and_run(nodes):
    """No (key, nonce) pair is ever used twice: the first record of every connection differs."""
    records = [_send(nodes, "p1", "p2", b"same plaintext")]
    _connect(nodes, "p1", "p2")  # the same run, reconnected
    records.append(_send(nodes, "p1", "p2", b"same plaintext"))
    _connect(nodes, "p1", "p2", run_id="another-run-0123456789")  # another run
    records.append(_send(nodes, "p1", "p2", b"same plaintext"))
    assert all(r[:8] == bytes(8) for r in records)  # each is sequence number 0 of its connection...
    assert len(set(records)) == 3  # ...under a different key
    # XOR of two ciphertexts under a reused (key, nonce) would equal XOR of the plaintexts (zero here)
    assert records[0][8:] != records[1][8:]


def test_replayed_handshake_refused(nodes):
    sent = _connect(nodes, "p0", "p2")
    with pytest.raises(ProtocolError, match="no open handshake"):
        nodes["p0"].task(**sent["p0"])  # the ephemeral key was used once and dropped


def test_substituted_or_tampered_ephemeral_key_refused(nodes):
    host = X25519PrivateKey.generate()
    host_sig = Ed25519PrivateKey.generate()

    def substitute(x, meta, offer):  # the host's own ephemeral key, signed by the host's key
        pub = ch.x25519_public(host)
        return {**meta, "eph": pub.hex(), "signature": host_sig.sign(ch.link_offer(RUN, meta["peer"], x, pub)).hex()}

    def flip(x, meta, offer):  # one bit of the peer's genuine offer
        eph = bytearray(bytes.fromhex(meta["eph"]))
        eph[0] ^= 1
        return {**meta, "eph": eph.hex()}

    for attack in (substitute, flip):
        with pytest.raises(ChannelError, match="ephemeral link key of enclave p1: signature is invalid"):
            _connect(nodes, "p0", "p1", tamper=attack)

    # an offer p2 made for p1, relayed to p0 as if it came from p2 for p0: bound to its receiver
    other = nodes["p2"].task(op="peer_challenge", peer="p1", run_id=RUN)

    def wrong_receiver(x, meta, offer):
        return {**meta, "eph": other["eph"], "signature": other["signature"]} if meta["peer"] == "p2" else meta

    with pytest.raises(ChannelError, match="signature is invalid"):
        _connect(nodes, "p0", "p2", tamper=wrong_receiver)
    # an offer moved to another run id
    with pytest.raises(ChannelError, match="signature is invalid"):
        _connect(nodes, "p0", "p1", tamper=lambda x, meta, offer: (
            nodes[x].task(op="peer_challenge", peer=meta["peer"], run_id="other-run-0123456789") and meta))


def test_two_roles_on_one_platform_refused_by_enclave(tmp_path):
    shared = str(tmp_path / "one-machine")
    ns = _cluster({"p0": str(tmp_path / "a"), "p1": shared, "p2": shared})
    pid = SoftwareSimulationPlatform(shared).platform_id
    _connect(ns, "p0", "p1")
    with pytest.raises(AccessDenied, match=f"TECC roles p1 and p2 run on the same platform {pid}"):
        _connect(ns, "p1", "p2")  # p1 itself runs on that platform
    with pytest.raises(AccessDenied, match=f"roles p1 and p2 run on the same platform {pid}"):
        _connect(ns, "p0", "p2")  # p0 already has p1 on that platform
    assert "p2" not in ns["p0"].peers.links


def test_data_owner_refuses_shared_platform_before_sending():
    from types import SimpleNamespace as NS

    from jointml.apps.tecc import share_input

    calls = []

    class Session:
        def __init__(self, pid):
            self.attested = NS(quote=NS(platform_id=pid))

        def call(self, *a):
            calls.append(a)

    with pytest.raises(AccessDenied, match="roles p0 and p2 run on the same platform X"):
        share_input({"p0": Session("X"), "p1": Session("Y"), "p2": Session("X")}, "X@alice", np.ones((2, 2)))
    assert calls == []  # nothing was sent to any enclave


def test_require_distinct_platforms():
    require_distinct_platforms({"p0": "a", "p1": "b", "p2": "c"})
    with pytest.raises(AccessDenied, match="p0 and p1"):
        require_distinct_platforms({"p0": "a", "p1": "a", "p2": "c"})


def test_tecc_cluster_on_one_platform_refused(tmp_path):
    """End to end with enclave processes: one platform directory for the three roles."""
    from jointml.apps.tecc import TeccCluster

    d = str(tmp_path / "p")
    plat = SoftwareSimulationPlatform(d)
    cfg = tecc_config({"alice": PartyIdentity("alice").public_key}, feature_parties=["alice"], label_party="alice",
                      result_parties=["alice"],
                      peer_policy=Policy(trusted_platforms=(TrustedPlatform.of(plat),), allow_simulation=True).to_config())
    with pytest.raises(AccessDenied, match=f"TECC roles p0 and p1 run on the same platform {plat.platform_id}"):
        TeccCluster(cfg, platform_dir=d)
