"""Garbled circuits (half-gates, free-XOR, point-and-permute): results equal numpy on edge
values, ReLU on additive shares, views, declared cost against the link counters."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.prg import Prg
from jointml.mpc.ot.prims import unpack_bits
from jointml.mpc.protocols.garbled import (
    Builder,
    Garbled,
    YaoSession,
    add,
    comparison_circuit,
    from_bits,
    gc_compare,
    gc_relu_shares,
    to_bits,
)
from jointml.runtime import PartyFailed, simulate

P = ["g", "e"]
I64 = np.iinfo(np.int64)
EDGE = np.array([0, 1, -1, 2, -2, I64.max, I64.min, I64.max - 1, I64.min + 1, 1 << 32, -(1 << 32), 12345], np.int64)


def _pairs():
    x = np.repeat(EDGE, EDGE.size)
    y = np.tile(EDGE, EDGE.size)
    rnd = Prg(b"c" * 16).uint64((2, 300)).view(np.int64)
    small = (Prg(b"d" * 16).integers_below(7, (2, 100)).astype(np.int64) - 3)  # many ties
    return np.concatenate([x, rnd[0], small[0]]), np.concatenate([y, rnd[1], small[1]])


def _compare(x, y, ops, signed=True):
    def prog(ctx):
        s = YaoSession(ctx, "g", "e")
        mine = x if ctx.me == "g" else y
        return {op: gc_compare(ctx, mine, garbler="g", evaluator="e", op=op, signed=signed, session=s) for op in ops}

    return simulate(prog, P, mode="thread")


def test_comparisons_equal_numpy_signed_and_unsigned():
    x, y = _pairs()
    ops = ["lt", "le", "gt", "ge", "eq", "max"]
    out = _compare(x, y, ops)
    want = {"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y}
    for party in P:
        for op, w in want.items():
            assert (out[party][op] == w).all(), (party, op)
        assert (out[party]["max"].view(np.int64) == np.maximum(x, y)).all()
    xu, yu = x.view(np.uint64), y.view(np.uint64)
    out = _compare(x, y, ["lt", "ge"], signed=False)
    assert (out["e"]["lt"] == (xu < yu)).all() and (out["g"]["ge"] == (xu >= yu)).all()


def test_adder_garbled_equals_plain_and_numpy():
    b = Builder()
    xw, yw = b.garbler(64), b.evaluator(64)
    b.output(add(b, xw, yw))
    c = b.build()
    x, y = Prg(b"x" * 16).uint64(200), Prg(b"y" * 16).uint64(200)
    x[:3] = [2**64 - 1, 0, 2**63]
    y[:3] = [1, 0, 2**63]

    def prog(ctx):
        s = YaoSession(ctx, "g", "e")
        return s.run(c, to_bits(x if ctx.me == "g" else y), reveal_to="evaluator")

    out = simulate(prog, P, mode="thread")
    assert out["g"] is None
    assert (from_bits(out["e"]) == x + y).all()
    assert (from_bits(c.plain(to_bits(x), to_bits(y))) == x + y).all()


def test_relu_on_additive_shares():
    x = np.concatenate([EDGE, Prg(b"r" * 16).uint64(100).view(np.int64) >> 20])
    sg = Prg(b"s" * 16).uint64(x.size)
    se = x.view(np.uint64) - sg

    def prog(ctx):
        return gc_relu_shares(ctx, sg if ctx.me == "g" else se, garbler="g", evaluator="e")

    out = simulate(prog, P, mode="thread")
    assert ((out["g"] + out["e"]).view(np.int64) == np.maximum(x, 0)).all()
    # the evaluator's new share is masked by the garbler's fresh r: it is not relu(x) itself
    assert (out["e"].view(np.int64) != np.maximum(x, 0)).mean() > 0.99


def _spy(monkeypatch):
    from jointml.net import link as L

    seen = {p: [] for p in P}
    recv = L.Communicator.recv

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        seen[self.me].append((tag, [np.asarray(v) for v in msg.arrays]))
        return msg

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    return seen


def test_views(monkeypatch):
    """E's labels do not show G's input (permute bits are uniform whatever the value); G's
    view (the OT-extension matrix) is balanced whatever E's input; E's output bits are all
    G gets (reveal_to="evaluator": nothing at all past the OT)."""
    n = 2000
    lsb_means, g_views = [], []
    for bit in (0, 1):
        seen = _spy(monkeypatch)
        x = np.full(n, -1 if bit else 0, np.int64)  # all-ones or all-zeros input bits

        def prog(ctx, x=x):
            return gc_compare(ctx, x, garbler="g", evaluator="e", op="lt", reveal_to="evaluator")

        out = simulate(prog, P, mode="thread")
        assert out["g"] is None and out["e"].shape == (n,)
        tables = [arrs for tag, arrs in seen["e"] if "gc-tables" in tag][0]
        g_labels = tables[0]  # (n, 64, 16): the garbler's input labels
        lsb_means.append(float((g_labels[..., 0] & 1).mean()))
        g_views.append([(tag, arrs) for tag, arrs in seen["g"]])
        monkeypatch.undo()
    assert all(abs(m - 0.5) < 0.01 for m in lsb_means)
    for view in g_views:  # G receives the base-OT point A and the IKNP matrix only
        assert all("co15-A" in t or "iknp-u" in t for t, _ in view)
        u = [a for t, arrs in view if "iknp-u" in t for a in arrs][0]
        assert abs(unpack_bits(u.reshape(-1), None).mean() - 0.5) < 0.01


def test_declared_cost_matches_traffic():
    n = 500
    x, y = _pairs()
    x, y = x[:n], y[:n]

    def prog(ctx):
        s = YaoSession(ctx, "g", "e")
        gc_compare(ctx, x[:8] if ctx.me == "g" else y[:8], garbler="g", evaluator="e", session=s)  # base OTs
        ctx.reset_stats()
        gc_compare(ctx, x if ctx.me == "g" else y, garbler="g", evaluator="e", session=s)
        return ctx.stats()

    out = simulate(prog, P, mode="thread")
    sent = out["g"]["bytes_sent"] + out["e"]["bytes_sent"]
    want = Garbled.static_cost("lt", (n,))
    assert want.bytes <= sent <= want.bytes * 1.01 + 2000  # payload plus frame headers


def test_mismatched_instance_counts_refused():
    def prog(ctx):
        return gc_compare(ctx, np.arange(5 if ctx.me == "g" else 4), garbler="g", evaluator="e")

    with pytest.raises(PartyFailed, match="instances"):
        simulate(prog, P, mode="thread")


def test_circuit_sizes():
    assert comparison_circuit("lt").and_count == 64
    assert comparison_circuit("max").and_count == 128


def test_secret_less_on_semi2k_matches_numpy_and_dealer_gets_nothing(monkeypatch):
    from jointml.mpc import MpcDevice
    from jointml.mpc.protocols.garbled import secret_less, secret_relu

    seen = _spy_all(monkeypatch)
    xv = np.array([1.5, -2.0, 0.0, 1e6, -1e6, 3.25, -0.001, 0.001])
    yv = np.array([1.0, 1.0, 0.0, 1e6 + 1, -1e6, 3.25, 0.0, 0.0])

    def prog(ctx):
        mpc = MpcDevice(ctx, ["a", "b"], protocol="semi2k", dealer="d")
        x = ctx.party("a").run(lambda: xv).to(mpc)
        y = ctx.party("b").run(lambda: yv).to(mpc)
        n0 = len(seen["d"])
        z = secret_less(x, y)
        n1 = len(seen["d"])
        ref = (x < y).reveal()  # the dealer-mask comparison, for the same answer
        relu = secret_relu(x - y).reveal()
        return z.reveal(), ref, n1 - n0, relu

    out = simulate(prog, ["a", "b", "d"], mode="thread")
    got, ref, _, relu = out["a"]
    assert (got == (xv < yv)).all() and (got == ref).all()
    assert np.allclose(relu, np.maximum(xv - yv, 0), atol=2**-16)
    assert out["d"][2] == 0  # the garbled comparison sends the dealer nothing


def _spy_all(monkeypatch):
    from jointml.net import link as L

    seen: dict[str, list] = {"a": [], "b": [], "d": []}
    recv = L.Communicator.recv

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        seen[self.me].append(tag)
        return msg

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    return seen
