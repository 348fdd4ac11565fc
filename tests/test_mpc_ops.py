"""Secure operators against numpy, for every protocol (aby3 joins when its module exists)."""

import importlib.util

import numpy as np
import pytest

from conftest import run_mpc, shared
from jointml.mpc import MpcDevice, concatenate, stack
from jointml.runtime import simulate

HAS_ABY3 = importlib.util.find_spec("jointml.mpc.protocols.aby3") is not None
PROTOCOLS = ["semi2k"] + (["aby3"] if HAS_ABY3 else [])
G = np.random.default_rng(1234)  # public test data
EPS = 2.0**-16


@pytest.fixture(params=PROTOCOLS)
def proto(request):
    return request.param


def alice_of(res):
    return res["alice"]


def test_share_reveal_round_trip(proto):
    x = G.normal(size=(4, 5)) * 100
    r = alice_of(run_mpc(proto, lambda ctx, mpc: shared(ctx, mpc, x).reveal()))
    np.testing.assert_allclose(r, x, atol=EPS)


@pytest.mark.parametrize("shape_a,shape_b", [((6,), (6,)), ((3, 4), (4,)), ((1,), (5,)), ((2, 1, 3), (1, 4, 1)), ((), ())])
def test_add_sub_mul_broadcast(proto, shape_a, shape_b):
    a = G.normal(size=shape_a) * 30
    b = G.normal(size=shape_b) * 30

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a, "alice"), shared(ctx, mpc, b, "bob")
        return [(x + y).reveal(), (x - y).reveal(), (x * y).reveal(), (-x).reveal(), (x * x).reveal()]

    add, sub, mul, neg, sq = alice_of(run_mpc(proto, f))
    np.testing.assert_allclose(add, a + b, atol=EPS)
    np.testing.assert_allclose(sub, a - b, atol=EPS)
    np.testing.assert_allclose(mul, a * b, atol=1e-3)
    np.testing.assert_allclose(neg, -a, atol=EPS)
    np.testing.assert_allclose(sq, a * a, atol=1e-3)


def test_public_and_private_operands(proto):
    a = G.normal(size=7) * 10
    c = G.normal(size=7)

    def f(ctx, mpc):
        x = shared(ctx, mpc, a)
        priv = ctx.party("bob").run(lambda: c)  # bob's private vector, shared on the fly
        return [(x + 2.5).reveal(), (3 - x).reveal(), (x * 0.125).reveal(), (x * 3).reveal(), (x * c).reveal(), (x * priv).reveal(), (x + priv).reveal(), (x / 4).reveal()]

    r = alice_of(run_mpc(proto, f))
    for got, want in zip(r, [a + 2.5, 3 - a, a * 0.125, a * 3, a * c, a * c, a + c, a / 4]):
        np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("sa,sb", [((5, 7), (7, 3)), ((1, 4), (4, 1)), ((6,), (6, 2)), ((3, 6), (6,)), ((30, 200), (200, 10))])
def test_matmul(proto, sa, sb):
    a, b = G.normal(size=sa) * 3, G.normal(size=sb) * 3

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a, "alice"), shared(ctx, mpc, b, "bob")
        return [(x @ y).reveal(), (x @ b).reveal(), (a @ y).reveal()]

    for got in alice_of(run_mpc(proto, f)):
        np.testing.assert_allclose(got, a @ b, atol=1e-3 * sa[-1])


def test_truncation_exact_on_100k(proto):
    a = G.normal(size=100_000) * 50
    b = G.normal(size=100_000) * 50
    # semi2k's exact truncation is the dealer's (its default local one fails with probability
    # |x| / 2^64 per element: tests/test_semi2k_trunc.py measures that rate)
    opts = {"trunc": "dealer"} if proto == "semi2k" else None
    r = alice_of(run_mpc(proto, lambda ctx, mpc: (shared(ctx, mpc, a) * shared(ctx, mpc, b, "bob")).reveal(),
                         device_options=opts))
    # the product is exact up to the encoding error of the factors and one ulp of truncation
    assert np.max(np.abs(r - a * b) - 2**-18 * (np.abs(a) + np.abs(b) + 2)) < 2**-17


def test_comparisons_including_ties_and_extremes(proto):
    a = np.concatenate([G.normal(size=500) * 100, [0, 0, -1e-4, 1e-4, 5, -5, 3e6, -3e6, 2.0**-18]])
    b = np.concatenate([G.normal(size=500) * 100, [0, 1e-5, 0, 0, 5, -5, -3e6, 3e6, 0]])

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        return [(x < y).reveal(), (x <= y).reveal(), (x > y).reveal(), (x >= y).reveal(), x.eq(y).reveal(), (x < 0).reveal()]

    lt, le, gt, ge, eq, neg = alice_of(run_mpc(proto, f))
    fa, fb = FixedPointPair(a, b)
    assert (lt == (fa < fb)).all() and (le == (fa <= fb)).all()
    assert (gt == (fa > fb)).all() and (ge == (fa >= fb)).all()
    assert (eq == (fa == fb)).all() and (neg == (fa < 0)).all()


def FixedPointPair(a, b):
    from jointml.core import FixedPoint

    fp = FixedPoint(18)
    return fp.encode(a).view(np.int64), fp.encode(b).view(np.int64)


def test_integer_comparisons_large_magnitudes(proto):
    a = np.array([2**40, -(2**40), 2**61, -(2**61), 7, 0], dtype=np.int64)
    b = np.array([2**40 - 1, -(2**40) + 1, -(2**61), 2**61, 7, -1], dtype=np.int64)

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        return [(x < y).reveal(), x.eq(y).reveal()]

    lt, eq = alice_of(run_mpc(proto, f))
    assert (lt == (a < b)).all() and (eq == (a == b)).all()


def test_structural_ops(proto):
    a = G.normal(size=(3, 4, 5))

    def f(ctx, mpc):
        x = shared(ctx, mpc, a)
        return [
            x[1].reveal(), x[:, 1:3].reveal(), x[..., -1].reveal(), x.reshape(12, 5).reveal(), x.T.reveal(),
            x.transpose(1, 0, 2).reveal(), x.sum().reveal(), x.sum(axis=1).reveal(), x.sum(axis=(0, 2)).reveal(),
            x.mean(axis=0).reveal(), concatenate([x, x[:1]], axis=0).reveal(), stack([x[0], x[1]], axis=1).reveal(),
            x.flatten()[::7].reveal(), x.expand_dims(0).shape, x.broadcast_to((2, 3, 4, 5)).reveal(),
        ]

    r = alice_of(run_mpc(proto, f))
    want = [a[1], a[:, 1:3], a[..., -1], a.reshape(12, 5), a.T, a.transpose(1, 0, 2), a.sum(), a.sum(axis=1), a.sum(axis=(0, 2)),
            a.mean(axis=0), np.concatenate([a, a[:1]]), np.stack([a[0], a[1]], axis=1), a.flatten()[::7], (1, 3, 4, 5), np.broadcast_to(a, (2, 3, 4, 5))]
    for got, w in zip(r, want):
        if isinstance(w, tuple):
            assert got == w
        else:
            np.testing.assert_allclose(got, w, atol=1e-3)


def test_empty_and_one_element(proto):
    def f(ctx, mpc):
        e = shared(ctx, mpc, np.zeros((0, 3)))
        one = shared(ctx, mpc, np.array([2.5]))
        ee, lt = (e * e).reveal(), (e < e).reveal()
        return [None if ee is None else ee.shape, None if lt is None else lt.shape, (one * one).reveal(), (one < 3).reveal()]

    r = alice_of(run_mpc(proto, f))
    assert r[0] == (0, 3) and r[1] == (0, 3)
    np.testing.assert_allclose(r[2], [6.25], atol=1e-4)
    assert r[3].tolist() == [1]


def test_reveal_to_one_party_only(proto):
    a = G.normal(size=5)

    def f(ctx, mpc):
        v = shared(ctx, mpc, a).reveal(to="bob")
        return v.value if ctx.me == "bob" else (v.is_local, v.owner)

    res = run_mpc(proto, f)
    np.testing.assert_allclose(res["bob"], a, atol=EPS)
    assert res["alice"] == (False, "bob")


def test_outside_owner_and_receiver():
    """A fourth party that holds data but does not compute shares in and gets the result."""
    a = G.normal(size=6)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        x = ctx.party("dave").run(lambda: a).to(mpc)
        y = (x * 2).reveal(to="dave")
        return y.value if ctx.me == "dave" else None

    res = simulate(prog, ["alice", "bob", "carol", "dave"], mode="thread")
    np.testing.assert_allclose(res["dave"], 2 * a, atol=EPS)


def test_three_compute_parties_semi2k():
    a, b = G.normal(size=300) * 10, G.normal(size=300) * 10

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob", "erin"], dealer="carol")
        x = ctx.party("alice").run(lambda: a).to(mpc)
        y = ctx.party("erin").run(lambda: b).to(mpc)
        return [(x * y).reveal(), (x < y).reveal(), x.eq(x).reveal(), (x.reshape(30, 10) @ y.reshape(10, 30)).reveal()]

    mul, lt, eq, mm = simulate(prog, ["alice", "bob", "erin", "carol"], mode="thread")["bob"]
    np.testing.assert_allclose(mul, a * b, atol=1e-3)
    assert (lt == (a < b)).all() and eq.all()
    np.testing.assert_allclose(mm, a.reshape(30, 10) @ b.reshape(10, 30), atol=1e-2)


def test_shares_look_uniform_and_views_hide_plaintext(proto):
    """A party's share of a constant input is uniformly random, and nothing it receives contains the input."""
    const = np.full(20_000, 3.0)

    def f(ctx, mpc):
        x = shared(ctx, mpc, const, "alice")
        y = x * x
        got = []
        if ctx.me == "bob":
            s = np.asarray(x.share).reshape(-1).view(np.uint64)
            got.append(float(np.unpackbits(s.view(np.uint8)).mean()))
            got.append(int(len(np.unique(s))))
            got.append(bool(np.any(s == np.uint64(3 << 18))))
        y.reveal()
        return got

    res = run_mpc(proto, f)
    bitmean, uniq, contains = res["bob"]
    assert abs(bitmean - 0.5) < 0.01
    assert uniq > 0.99 * (20_000 * (2 if proto == "aby3" else 1))
    assert not contains


def test_process_mode_over_tls(proto):
    a, b = G.normal(size=1000), G.normal(size=1000)

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        return [(x * y).reveal(), (x < y).reveal()]

    mul, lt = alice_of(run_mpc(proto, f, mode="process"))
    np.testing.assert_allclose(mul, a * b, atol=1e-3)
    assert (lt == (a < b)).all()


def test_fixed_point_bits_configurable(proto):
    a = np.array([0.1, -0.2, 3.3])
    r = alice_of(run_mpc(proto, lambda ctx, mpc: (shared(ctx, mpc, a) * shared(ctx, mpc, a, "bob")).reveal(), frac_bits=24))
    np.testing.assert_allclose(r, a * a, atol=2**-21)


def test_bad_device_config():
    from jointml.runtime import PartyFailed

    def prog(ctx):
        MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer=None)

    with pytest.raises(PartyFailed, match="dealer"):
        simulate(prog, ["alice", "bob"], mode="thread")

    def prog2(ctx):
        MpcDevice(ctx, ["alice", "zed"], dealer="bob")

    with pytest.raises(PartyFailed, match="unknown party 'zed'"):
        simulate(prog2, ["alice", "bob"], mode="thread")


def test_outsider_inputs_get_fresh_masks_and_outsider_can_receive():
    """Two inputs from the same outside owner must not share a mask (x - y would leak)."""
    a, b = G.normal(size=50), G.normal(size=50)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        x = ctx.party("dave").run(lambda: a).to(mpc)
        y = ctx.party("dave").run(lambda: b).to(mpc)
        out = (x + y).reveal(to="erin")
        if ctx.me == "bob":
            return ("shares", np.asarray(x.share).copy(), np.asarray(y.share).copy())
        if ctx.me == "erin":
            return ("value", out.value)
        return None

    res = simulate(prog, ["alice", "bob", "carol", "dave", "erin"], mode="thread")
    _, xs, ys = res["bob"]
    from jointml.core import FixedPoint

    fp = FixedPoint(18)
    # bob's shares minus the encodings must differ (distinct masks)
    assert not np.array_equal(xs - fp.encode(a), ys - fp.encode(b))
    np.testing.assert_allclose(res["erin"][1], a + b, atol=1e-4)


def test_two_devices_use_independent_masks():
    def prog(ctx):
        m1 = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        m2 = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        x1 = ctx.party("alice").run(lambda: np.zeros(64)).to(m1)
        x2 = ctx.party("alice").run(lambda: np.zeros(64)).to(m2)
        return None if x1.share is None else (np.asarray(x1.share).copy(), np.asarray(x2.share).copy())

    b1, b2 = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    assert not np.array_equal(b1, b2)


def test_party_outside_the_device_runs_the_same_program(proto):
    """SPMD: a party that is not in the device executes every operation as a no-op handle."""
    a = G.normal(size=(4, 3))

    def prog(ctx):
        if proto == "semi2k":
            mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        else:
            mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
        x = ctx.party("dave").run(lambda: a).to(mpc)
        y = (x * x + 1) @ np.ones(3)
        z = (x < 0.5).sum(axis=0)
        out = [y.reveal(to="dave"), z.reveal(to="dave")]
        return [o.value for o in out] if ctx.me == "dave" else (y.shape, z.shape)

    res = simulate(prog, ["alice", "bob", "carol", "dave"], mode="thread")
    y, z = res["dave"]
    np.testing.assert_allclose(y, (a * a + 1) @ np.ones(3), atol=1e-3)
    assert (z == (a < 0.5).sum(axis=0)).all()
    assert res["alice"] == ((4,), (3,))


def test_dealer_receives_no_data():
    """semi2k: everything the dealer receives is public metadata or a PRG seed, never a share."""
    a, b = G.normal(size=(50, 4)), G.normal(size=4)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        got = []
        if ctx.me == "carol":
            for link in ctx.comm.links.values():
                orig = link.recv

                def spy(tag, timeout=None, _orig=orig):
                    m = _orig(tag, timeout)
                    got.append((m.tag, [(x.dtype.name, x.shape) for x in m.arrays]))
                    return m

                link.recv = spy
        x = ctx.party("alice").run(lambda: a).to(mpc)
        y = ctx.party("bob").run(lambda: b).to(mpc)
        z = x @ y
        (z < 0).reveal(to="alice")
        (x * x).sum().reveal()
        return got

    got = simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"]
    for tag, arrays in got:
        assert all(shape == (16,) and tag.startswith("seed:") for _, shape in arrays), (tag, arrays)
