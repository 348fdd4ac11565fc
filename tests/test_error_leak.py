"""Issue 11 item 3: a party's error text (which may quote a dirty cell) never reaches a peer.

Peers learn the error class, the party and the field only (`public_summary`); the failing
party keeps its full error. Same for errors leaving an enclave.
"""

import numpy as np
import pytest

from jointml.core.errors import DataError, public_summary
from jointml.net.link import InProcessLink
from jointml.runtime import PartyFailed, simulate
from jointml.runtime.collectives import agree

SECRET = "ACCT-4711 John Q. Customer"


def _dirty(ctx):
    if ctx.me == "bank":
        raise DataError(f"column 'id': cannot parse value '{SECRET}'", party="bank", field="id")
    ctx.comm.recv("bank", "never")


def test_abort_frames_carry_no_data_values(monkeypatch):
    sent: list[tuple[str, str, bytes]] = []
    orig = InProcessLink._write

    def spy(self, bufs, nbytes):
        sent.append((self.me, self.peer, b"".join(bytes(b) for b in bufs)))
        return orig(self, bufs, nbytes)

    monkeypatch.setattr(InProcessLink, "_write", spy)
    with pytest.raises(PartyFailed) as ei:
        simulate(_dirty, ["bank", "partner", "dealer"], mode="thread", timeout=30)
    # the failing party's own error (its local report) keeps the full text
    assert ei.value.party == "bank" and SECRET in str(ei.value)
    frames_from_bank = [body for me, _, body in sent if me == "bank"]
    assert frames_from_bank, "bank sent no abort frame"
    assert all(SECRET.encode() not in body for body in frames_from_bank)
    assert all(b"ACCT-4711" not in body for _, _, body in sent)
    # what the peers raised: class, party and field, no value
    for p, (typ, msg, _) in ei.value.others.items():
        assert typ == "PeerAborted" and SECRET not in msg and "ACCT" not in msg, (p, msg)
        assert "DataError at party 'bank' (field 'id')" in msg


def test_abort_over_tls_carries_no_data_values():
    with pytest.raises(PartyFailed) as ei:
        simulate(_dirty, ["bank", "partner"], mode="process", timeout=60)
    assert SECRET in str(ei.value)
    typ, msg, tb = ei.value.others["partner"]
    assert typ == "PeerAborted" and "ACCT" not in msg and "ACCT" not in tb
    assert "DataError at party 'bank'" in msg


def test_builtin_errors_are_summarised_by_class_only():
    assert public_summary(ValueError(f"could not convert string to float: '{SECRET}'"), "bank") == (
        "ValueError at party 'bank'"
    )
    e = DataError(f"bad cell {SECRET}", party="bank", field="id", public="column 'id' has unparsable cells")
    assert e.public_message() == "DataError at party 'bank' (field 'id'): column 'id' has unparsable cells"
    assert SECRET in str(e)


def test_agree_announces_no_exception_text():
    def check():
        raise ValueError(f"could not convert '{SECRET}'")

    def prog(ctx):
        try:
            agree(ctx, "bank", check if ctx.me == "bank" else None)
        except DataError as e:
            return str(e), str(e.__cause__ or "")

    got = simulate(prog, ["bank", "partner"], mode="thread")
    assert SECRET not in got["partner"][0] and SECRET not in got["partner"][1]
    assert "ValueError at party 'bank'" in got["partner"][0]
    assert SECRET in got["bank"][1]  # the owner keeps its full error, locally


# -- errors leaving an enclave ----------------------------------------------------------


def _runtime(tmp_path, identity=None):
    from jointml.tee._boot import EnclaveRuntime

    parties = {"alice": identity.public_key.hex()} if identity else {}
    return EnclaveRuntime("jointml.apps.tee_train", {"parties": parties}, False, str(tmp_path))


def test_enclave_error_reply_to_host_carries_no_data_values(tmp_path):
    import queue

    from jointml.core import wire
    from jointml.tee._boot import _work

    rt = _runtime(tmp_path)

    def on_task(op, meta, arrays):
        raise DataError(f"row 17 holds '{SECRET}'", field="income")

    rt.program.on_task = on_task
    q: queue.Queue = queue.Queue()
    q.put(wire.Message("task", "host", 5, [], {"op": "train"}))
    q.put(None)
    out = []
    _work(rt, q, lambda kind, seq, meta=None, arrays=(): out.append((kind, seq, meta)))
    assert out == [("error", 5, {"error": "DataError", "message": "DataError (field 'income')"})]


def test_enclave_error_reply_to_party_carries_no_data_values(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from jointml.core import wire
    from jointml.tee import channel as ch

    ident = ch.PartyIdentity("alice")
    rt = _runtime(tmp_path, ident)

    def on_call(party, op, meta, arrays):
        raise DataError(f"feature row of '{SECRET}' has NaN", party="bob", field="X")

    rt.program.on_call = on_call
    priv = X25519PrivateKey.generate()
    pub = ch.x25519_public(priv)
    t = ch.session_transcript("alice", pub, rt.x25519, rt.measurement)
    meta, _ = rt.handle(wire.Message("session", "host", 1, [], {"party": "alice", "client_pub": pub.hex(),
                                                                 "signature": ident.sign(t).hex()}))
    chan = ch.client_channel(priv, rt.x25519, t + bytes.fromhex(meta["server_nonce"]))
    rec = chan.encrypt(ch.pack("predict", {}, []))
    _, (out,) = rt.handle(wire.Message("call", "host", 2, [ch.as_bytes_array(rec)], {"session": meta["session"]}))
    reply = ch.unpack(chan.decrypt(np.asarray(out).tobytes()))
    assert reply.kind == "error"
    assert reply.meta == {"error": "DataError", "message": "DataError at party 'bob' (field 'X')"}
