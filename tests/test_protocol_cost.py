"""Protocol.cost() against the link counters of real runs, and the docstring tables against cost()."""

import numpy as np
import pytest

from jointml.mpc import MpcDevice, functions
from jointml.mpc.protocols import Aby3, Protocol, Semi2k, aby3, cost_table, semi2k
from jointml.mpc.shapes import matmul_shape, size
from jointml.runtime import simulate

PARTIES = ["alice", "bob", "carol", "dave"]  # dave is outside the device
HEADER = 160  # generous bound on a frame's header (tag, seq, dtypes, shapes) + length prefix


def _device(ctx, protocol):
    if protocol == "semi2k":
        return MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    return MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")


def _kernels(p: Protocol, ctx, shape, mshapes):
    """(name, thunk, op, shapes, params) for every costed kernel; SPMD at every party."""
    me = ctx.me
    sa, sb = mshapes

    def inp(owner, s, dt=np.uint64, boolean=False):
        v = (np.arange(size(s), dtype=np.uint64) * np.uint64(2654435761)).astype(dt).reshape(s)
        return p.share_in(owner, v if me == owner else None, s, dt, boolean=boolean)

    x, y = inp("alice", shape), inp("bob", shape)
    X, W = inp("alice", sa), inp("bob", sb)
    b64, c64 = inp("alice", shape, boolean=True), inp("bob", shape, boolean=True)
    b8, c8 = inp("bob", shape, np.uint8, True), inp("alice", shape, np.uint8, True)
    enc = np.ones(sa, np.uint64) if me == "alice" else None
    h = {}

    def masked():
        h["m"] = p.masked_setup(X, sa)

    def private():
        h["p"] = p.private_masked_setup("alice", enc, sa)

    return [
        ("share_in", lambda: inp("alice", shape), "share_in", (shape,), {}),
        ("share_in outsider", lambda: inp("dave", shape), "share_in", (shape,), {"outsider": True}),
        ("reveal", lambda: p.reveal(x, shape), "reveal", (shape,), {}),
        ("reveal member", lambda: p.reveal(x, shape, to="bob"), "reveal", (shape,), {"to": "member"}),
        ("reveal outsider", lambda: p.reveal(x, shape, to="dave"), "reveal", (shape,), {"to": "outsider"}),
        ("add", lambda: p.add(x, y), "add", (shape, shape), {}),
        ("mul", lambda: p.mul(x, y, shape, shape), "mul", (shape, shape), {}),
        ("square", lambda: p.square(x, shape), "square", (shape,), {}),
        ("matmul", lambda: p.matmul(X, W, sa, sb), "matmul", (sa, sb), {}),
        ("trunc", lambda: p.trunc(x, 18, shape), "trunc", (shape,), {"bits": 18}),
        ("trunc 7", lambda: p.trunc(x, 7, shape), "trunc", (shape,), {"bits": 7}),
        ("mul_trunc", lambda: p.mul_trunc(x, y, shape, shape, 18), "mul_trunc", (shape, shape), {"bits": 18}),
        ("square_trunc", lambda: p.square_trunc(x, shape, 18), "square_trunc", (shape,), {"bits": 18}),
        ("matmul_trunc", lambda: p.matmul_trunc(X, W, sa, sb, 18), "matmul_trunc", (sa, sb), {"bits": 18}),
        ("b_and 64", lambda: p.b_and([(b64, c64)], [shape], [np.uint64]), "b_and", (shape,), {}),
        ("b_and 8", lambda: p.b_and([(b8, c8)], [shape], [np.uint8]), "b_and", (shape,), {"itemsize": 1}),
        ("b2a_bits", lambda: p.b2a_bits(b8, shape), "b2a_bits", (shape,), {}),
        ("msb", lambda: p.msb(x, shape), "msb", (shape,), {}),
        ("eqz", lambda: p.eqz(x, shape), "eqz", (shape,), {}),
        ("masked_setup", masked, "masked_setup", (sa,), {}),
        ("masked_matmul", lambda: p.masked_matmul(h["m"], slice(None), W, sb), "masked_matmul", (sa, sb), {}),
        ("private_masked_setup", private, "private_masked_setup", (sa,), {}),
        ("private_masked_matmul", lambda: p.private_masked_matmul(h["p"], slice(None), W, sb),
         "private_masked_matmul", (sa, sb), {}),
    ]


def _measure(protocol, shape, mshapes):
    def prog(ctx):
        mpc = _device(ctx, protocol)
        p = mpc.proto
        for _, fn, *_ in _kernels(p, ctx, shape, mshapes):  # warm-up: pairwise seeds are agreed lazily
            fn()
        out = {}
        for name, fn, op, shapes, params in _kernels(p, ctx, shape, mshapes):
            ctx.comm.reset_stats()
            fn()
            st = ctx.comm.stats()
            out[name] = (st["bytes_sent"], st["msgs_sent"], st["rounds"], p.cost(op, *shapes, **params))
        return out

    return simulate(prog, PARTIES, mode="thread")


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
@pytest.mark.parametrize("shape,mshapes", [((4096,), ((48, 40), (40, 7))), ((64, 33), ((100, 9), (9,)))])
def test_cost_matches_link_counters(protocol, shape, mshapes):
    res = _measure(protocol, shape, mshapes)
    dealer = "carol" if protocol == "semi2k" else None
    for name in res["alice"]:
        want = res["alice"][name][3]
        assert all(res[p][name][3] == want for p in PARTIES)  # every party computes the same cost
        sent = sum(res[p][name][0] for p in PARTIES)
        msgs = sum(res[p][name][1] for p in PARTIES)
        rounds = max(res[p][name][2] for p in PARTIES)
        assert want.bytes <= sent <= want.bytes + HEADER * msgs, (protocol, name, sent, want)
        assert rounds == want.rounds, (protocol, name, rounds, want)
        if dealer:
            d_sent, d_msgs = res[dealer][name][0], res[dealer][name][1]
            assert want.dealer_bytes <= d_sent <= want.dealer_bytes + HEADER * d_msgs, (name, d_sent, want)
        if want.bytes == 0:
            assert sent == 0, (protocol, name)


def test_docstring_tables_come_from_cost():
    assert cost_table(Semi2k, semi2k.DOC_COST_ROWS) in semi2k.__doc__
    assert cost_table(Aby3, aby3.DOC_COST_ROWS) in aby3.__doc__


def test_functions_cost_vocabulary_agrees_with_cost():
    n = 1 << 20
    e = (n,)
    msb = Semi2k.static_cost("msb", e)
    per_party = (msb.bytes - msb.dealer_bytes) / n / 2
    doc = " ".join(functions.__doc__.split())
    assert f"semi2k {msb.rounds} rounds, {per_party:.1f} B/party (+ {msb.dealer_bytes // n} B from the dealer)" in doc
    a = Aby3.static_cost("msb", e)
    assert f"aby3 {a.rounds} rounds, {a.bytes // n} B in total" in doc
    mt = Semi2k.static_cost("mul_trunc", e, e, bits=18)
    assert f"semi2k {(mt.bytes - mt.dealer_bytes) // n // 2} B/party, {mt.rounds} rounds" in doc
    assert f"aby3 `mul_trunc`, {Aby3.static_cost('mul_trunc', e, e).rounds} rounds, " \
           f"{Aby3.static_cost('mul_trunc', e, e).bytes // n} B in total" in doc
    x = Semi2k.static_cost("mul", e, e)
    assert f"semi2k {(x.bytes - x.dealer_bytes) // n // 2} B/party, {x.rounds} round" in doc
    t = Aby3.static_cost("trunc", e, bits=18)
    assert f"aby3 {t.bytes // n} B in total, {t.rounds} rounds" in doc


def test_capabilities_and_unknown_ops():
    assert Aby3.capabilities >= {"mul_trunc", "square_trunc", "matmul_trunc"}
    assert "mul_trunc" not in Semi2k.capabilities and "private_masked" in Semi2k.capabilities
    with pytest.raises(ValueError):
        Semi2k.static_cost("fft", (3,))
    with pytest.raises(ValueError):
        Aby3.static_cost("mul", (3,), (3,), n_compute=4)
    # n compute parties: every open goes to n - 1 peers
    c3 = Semi2k.static_cost("mul", (10,), (10,), n_compute=3)
    assert c3.bytes == 3 * 2 * 8 * 20 + 80 and c3.rounds == 1
    assert matmul_shape((4, 3), (3, 2)) == (4, 2)


def test_protocol_is_abstract():
    with pytest.raises(TypeError):
        Protocol()  # abstract kernels cannot be left out
