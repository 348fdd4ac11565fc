"""semi2k's product of two privately held matrices (`Semi2k.private_matmul`).

Checked against plaintext (2 and 3 compute parties, with and without the offline phase),
what each party receives (a uniformly masked operand, never the other's matrix; the dealer
nothing), one round and the cost model's bytes."""

import numpy as np
import pytest

from jointml.core.errors import ConfigError
from jointml.core.prg import public_rng
from jointml.mpc.protocols import Semi2k
from jointml.runtime import simulate

F = 18


def _enc(v):
    return np.round(v * 2.0**F).astype(np.int64).view(np.uint64)


def _spy(monkeypatch):
    from jointml.net import link as L

    seen: list[tuple[str, str, str, np.ndarray]] = []
    recv = L.Communicator.recv

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        seen.extend((self.me, peer, tag, np.array(x)) for x in msg.arrays)
        return msg

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    return seen


@pytest.mark.parametrize("parties", [["alice", "bob"], ["alice", "bob", "dave"]])
@pytest.mark.parametrize("prefetch", [False, True])
def test_private_matmul_matches_plaintext_and_masks_each_operand(monkeypatch, parties, prefetch):
    g = public_rng(3)
    X, Y = g.normal(size=(40, 60)) * 4, g.normal(size=(60, 30)) * 4
    ex, ey = _enc(X), _enc(Y)
    seen = _spy(monkeypatch)

    def prog(ctx):
        p = Semi2k(ctx, parties, dealer="carol")
        if prefetch:
            p.prefetch("private_matmul", X.shape, Y.shape, owners=("alice", "bob"))
        ctx.reset_stats()
        z = p.private_matmul("alice", ex if ctx.me == "alice" else None, "bob", ey if ctx.me == "bob" else None,
                             X.shape, Y.shape)
        st = ctx.stats()
        return p.reveal(z, (40, 30)), st

    res = simulate(prog, parties + ["carol"], mode="thread")
    assert (res["alice"][0] == np.matmul(ex, ey)).all()  # exact in the ring
    assert max(res[p][1]["rounds"] for p in parties) == 1
    dealer = res["carol"][1]["bytes_sent"]  # shares of U V only (plus a frame header), offline if prefetched
    assert dealer == 0 if prefetch else 8 * 40 * 30 <= dealer < 8 * 40 * 30 + 256
    pprod = {(me, peer): a for me, peer, tag, a in seen if tag == "pprod"}
    assert set(pprod) == {("bob", "alice"), ("alice", "bob")}  # only the two owners exchange operands
    to_bob, to_alice = pprod[("bob", "alice")], pprod[("alice", "bob")]
    assert not np.any(to_bob == ex) and not np.any(to_alice == ey)
    for m in (to_bob, to_alice):  # uniform masking: the sign bit is a fair coin, not the data's
        assert 0.4 < (m >> np.uint64(63)).mean() < 0.6
    assert res["carol"][1]["msgs_recv"] == 0  # the dealer receives nothing


def test_private_matmul_cost_and_owners():
    c = Semi2k.static_cost("private_matmul", (40, 60), (60, 30))
    assert (c.rounds, c.bytes) == (1, 8 * (40 * 60 + 60 * 30 + 40 * 30))

    def prog(ctx):
        p = Semi2k(ctx, ["alice", "bob"], dealer="carol")
        with pytest.raises(ConfigError, match="two different compute parties"):
            p.private_matmul("alice", None, "alice", None, (2, 2), (2, 2))
        return True

    assert simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
