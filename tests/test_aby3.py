"""aby3 (3-party replicated sharing): every kernel against numpy, exactness, costs and views."""

import numpy as np
import pytest

from conftest import run_mpc, shared
from jointml.core import FixedPoint
from jointml.mpc import MpcDevice, concatenate, stack
from jointml.runtime import PartyFailed, simulate

G = np.random.default_rng(20261122)  # public test data, not secrets
PARTIES = ["alice", "bob", "carol"]
FP = FixedPoint(18)
U = np.uint64


def run(fn, **kw):
    return run_mpc("aby3", fn, **kw)


def fx(v):
    """Fixed-point encoding (as int64) of public test values: what the secure ops compute on."""
    return FP.encode(v).view(np.int64)


# -- construction ---------------------------------------------------------------------------
def test_needs_exactly_three_parties_and_no_dealer():
    def two(ctx):
        MpcDevice(ctx, ["alice", "bob"], protocol="aby3")

    with pytest.raises(PartyFailed, match="exactly 3"):
        simulate(two, ["alice", "bob"], mode="thread")

    def dealer(ctx):
        MpcDevice(ctx, PARTIES, protocol="aby3", dealer="carol")

    with pytest.raises(PartyFailed, match="no dealer"):
        simulate(dealer, PARTIES, mode="thread")

    def ok(ctx):
        mpc = MpcDevice(ctx, PARTIES, protocol="aby3")
        p = mpc.proto
        return p.compute == p.members == PARTIES and p.name == "aby3"

    assert all(simulate(ok, PARTIES, mode="thread").values())


# -- arithmetic through SecretArray ------------------------------------------------------------
@pytest.mark.parametrize(
    "sa,sb", [((7,), (7,)), ((3, 1), (1, 4)), ((2, 1, 3), (4, 1)), ((1,), (6,)), ((), (5,)), ((4, 5), ())]
)
def test_arithmetic_broadcasting(sa, sb):
    a = G.normal(size=sa) * 40
    b = G.normal(size=sb) * 40

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a, "alice"), shared(ctx, mpc, b, "carol")
        return [(x + y).reveal(), (x - y).reveal(), (y - x).reveal(), (-x).reveal(), (x * y).reveal(), (x * x).reveal(),
                (x + 1.5).reveal(), (2 - y).reveal(), (x * 3).reveal(), (x * -0.25).reveal(), (x * b).reveal(), (b + x).reveal()]

    r = run(f)["bob"]
    want = [a + b, a - b, b - a, -a, a * b, a * a, a + 1.5, 2 - b, a * 3, a * -0.25, a * b, b + a]
    for got, w in zip(r, want):
        assert got.shape == np.shape(w)
        np.testing.assert_allclose(got, w, atol=2e-3)


def test_edge_values_negative_zero_large():
    big = 2.0**26  # close to the product bound |x*y| < 2^(62-36)
    a = np.array([0.0, -0.0, 1.0, -1.0, 2.0**-18, -(2.0**-18), 3.0, -7.5, 1e3, -1e3, 8000.0, -8000.0])
    b = np.array([5.0, -5.0, 0.0, 0.0, 1.0, -1.0, -3.0, -2.0, 1e3, 1e3, -8000.0, -8000.0])
    c = np.array([big, -big, 1.0, 1e6, -1e6, 0.5])

    def f(ctx, mpc):
        x, y, z = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob"), shared(ctx, mpc, c, "carol")
        return [(x * y).reveal(), (z * 0.5).reveal(), (z + z).reveal(), (-z).reveal()]

    mul, half, dbl, neg = run(f)["alice"]
    np.testing.assert_allclose(mul, a * b, atol=2**-16)
    np.testing.assert_allclose(half, c * 0.5, atol=2**-16)
    np.testing.assert_allclose(dbl, 2 * c, atol=0)
    np.testing.assert_allclose(neg, -c, atol=0)


def test_integer_secrets_and_mixed_scales():
    ai = np.array([3, -4, 0, 2**40, -(2**40)], dtype=np.int64)
    af = np.array([0.5, 0.25, -1.5, 1.0, 2.0])

    def f(ctx, mpc):
        xi, xf = shared(ctx, mpc, ai), shared(ctx, mpc, af, "bob")
        return [(xi + 1).reveal(), (xi * 3).reveal(), (xi[:3] * xf[:3]).reveal(), (xi[:3] + xf[:3]).reveal()]

    plus, times3, mixed, addm = run(f)["carol"]
    assert plus.tolist() == (ai + 1).tolist() and times3.tolist() == (ai * 3).tolist()
    np.testing.assert_allclose(mixed, ai[:3] * af[:3], atol=1e-4)
    np.testing.assert_allclose(addm, ai[:3] + af[:3], atol=1e-4)


def test_structural_ops():
    a = G.normal(size=(3, 4, 5)) * 10
    m = G.normal(size=(6, 4))

    def f(ctx, mpc):
        x = shared(ctx, mpc, a)
        y = shared(ctx, mpc, m, "bob")
        return [
            x[1].reveal(), x[:, 1:3, ::2].reveal(), x[..., -1].reveal(), x[[0, 2]].reveal(), x[a > 0].reveal(),
            x.reshape(12, 5).reveal(), x.T.reveal(), x.transpose(2, 0, 1).reveal(), x.sum().reveal(),
            x.sum(axis=0).reveal(), x.sum(axis=-1, keepdims=True).reveal(), x.sum(axis=(0, 2)).reveal(),
            x.mean(axis=1).reveal(), concatenate([x, x[:1]], axis=0).reveal(), concatenate([x[:, :2], x], axis=1).reveal(),
            stack([x[0], x[2]], axis=2).reveal(), x.flatten()[5:17].reveal(), x.expand_dims(1).reveal(),
            x.broadcast_to((2, 3, 4, 5)).reveal(), x[:1].squeeze(0).reveal(), y[1:4, 1:3].reveal(), y[2:5].T.reveal(),
            (y[1:3] * y[3:5]).reveal(),
        ]

    r = run(f)["alice"]
    want = [
        a[1], a[:, 1:3, ::2], a[..., -1], a[[0, 2]], a[a > 0], a.reshape(12, 5), a.T, a.transpose(2, 0, 1), a.sum(),
        a.sum(axis=0), a.sum(axis=-1, keepdims=True), a.sum(axis=(0, 2)), a.mean(axis=1), np.concatenate([a, a[:1]]),
        np.concatenate([a[:, :2], a], axis=1), np.stack([a[0], a[2]], axis=2), a.flatten()[5:17], np.expand_dims(a, 1),
        np.broadcast_to(a, (2, 3, 4, 5)), a[:1].squeeze(0), m[1:4, 1:3], m[2:5].T, m[1:3] * m[3:5],
    ]
    for got, w in zip(r, want):
        assert got.shape == w.shape
        np.testing.assert_allclose(got, w, atol=1e-3)


@pytest.mark.parametrize("sa,sb", [((4, 7), (7, 3)), ((1, 5), (5, 1)), ((6,), (6, 2)), ((3, 6), (6,)), ((5,), (5,)), ((40, 300), (300, 20))])
def test_matmul(sa, sb):
    a, b = G.normal(size=sa) * 3, G.normal(size=sb) * 3

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a, "alice"), shared(ctx, mpc, b, "bob")
        # three products rotate the light party through every member
        return [(x @ y).reveal(), (x @ y).reveal(), (x @ y).reveal(), (x @ b).reveal(), (a @ y).reveal()]

    for got in run(f)["carol"]:
        assert got.shape == np.shape(a @ b)
        np.testing.assert_allclose(got, a @ b, atol=1e-3 * sa[-1])


def test_matmul_integer_ring_wraps_exactly():
    """Ring matmul of secrets is exact mod 2^64 (BLAS limbs), including wrap-around."""
    a = G.integers(-(2**62), 2**62, size=(9, 33), dtype=np.int64)
    b = G.integers(-(2**62), 2**62, size=(33, 4), dtype=np.int64)

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        return (x @ y).reveal()

    want = np.matmul(a.view(U), b.view(U)).view(np.int64)
    assert (run(f)["alice"] == want).all()


# -- truncation ---------------------------------------------------------------------------------------
def test_truncation_exact_on_100k():
    a = G.normal(size=100_000) * 100
    b = G.normal(size=100_000) * 100

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        return [(x * y).reveal(), (x * x).reveal(), (x * 0.3).reveal()]

    mul, sq, pub = run(f)["alice"]
    ea, eb = fx(a).astype(np.float64) / 2**18, fx(b).astype(np.float64) / 2**18  # the encoded factors
    assert np.max(np.abs(mul - ea * eb)) <= 2**-17
    assert np.max(np.abs(sq - ea * ea)) <= 2**-17
    assert np.max(np.abs(pub - ea * (fx(0.3) / 2**18))) <= 2**-17


def test_trunc_kernel_exact_for_large_ring_values():
    """Raw kernel: floor(x / 2^k) up to +1 for |x| < 2^62, every role of the rotating dealer."""
    x = np.concatenate([
        G.integers(-(2**62) + 1, 2**62, size=30_000, dtype=np.int64),
        np.array([0, 1, -1, 2**62 - 1, -(2**62) + 1, 2**61, -(2**61), 2**40, -(2**40), 5, -5], dtype=np.int64),
    ])

    def f(ctx, mpc):
        p = mpc.proto
        s = p.share_in("bob", x.view(U) if ctx.me == "bob" else None, x.shape)
        outs = []
        for k in (1, 18, 36):  # three calls: the dealer role visits every party
            outs.append(p.reveal(p.trunc(s, k, x.shape), x.shape))
        return outs

    outs = run(f)["carol"]
    for k, got in zip((1, 18, 36), outs):
        d = got.view(np.int64) - (x >> k)
        assert d.min() >= 0 and d.max() <= 1, k


def test_fused_product_truncation_kernels():
    a = G.normal(size=(20, 30)) * 20
    b = G.normal(size=(20, 30)) * 20
    m = G.normal(size=(30, 7))

    def f(ctx, mpc):
        p = mpc.proto
        x, y, w = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob"), shared(ctx, mpc, m, "carol")
        outs = [
            p.reveal(p.mul_trunc(x.share, y.share, x.shape, y.shape, 18), x.shape),
            p.reveal(p.square_trunc(x.share, x.shape, 18), x.shape),
            p.reveal(p.matmul_trunc(x.share, w.share, x.shape, w.shape, 18), (20, 7)),
        ]
        return [None if o is None else FP.decode(o) for o in outs]

    mul, sq, mm = run(f)["bob"]
    np.testing.assert_allclose(mul, a * b, atol=1e-3)
    np.testing.assert_allclose(sq, a * a, atol=1e-3)
    np.testing.assert_allclose(mm, a @ m, atol=1e-2)


# -- comparisons ----------------------------------------------------------------------------------
def test_comparisons_exact_with_ties_near_zero_and_large():
    tiny = 2.0**-18
    a = np.concatenate([G.normal(size=3000) * 50, [0, 0, tiny, -tiny, tiny, 0, 5, -5, 3e6, -3e6, 6e7, -6e7, 1e-7, 123.456]])
    b = np.concatenate([G.normal(size=3000) * 50, [0, tiny, 0, 0, -tiny, -tiny, 5, -5, -3e6, 3e6, -6e7, 6e7, 0, 123.456]])
    b[:300] = a[:300]  # many ties

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        return [(x < y).reveal(), (x <= y).reveal(), (x > y).reveal(), (x >= y).reveal(), x.eq(y).reveal(),
                x.ne(y).reveal(), (x < 0).reveal(), (x > 1.0).reveal(), (x < y).reveal(), (x < y).reveal()]

    lt, le, gt, ge, eq, ne, neg, gt1, lt2, lt3 = run(f)["alice"]
    ea, eb = fx(a), fx(b)
    assert lt.dtype == np.int64
    assert (lt == (ea < eb)).all() and (le == (ea <= eb)).all()
    assert (gt == (ea > eb)).all() and (ge == (ea >= eb)).all()
    assert (eq == (ea == eb)).all() and (ne == (ea != eb)).all()
    assert (neg == (ea < 0)).all() and (gt1 == (ea > fx(1.0))).all()
    assert (lt2 == lt).all() and (lt3 == lt).all()  # every role assignment gives the same bits


def test_integer_comparisons_at_large_magnitude():
    t = 2**40
    a = np.array([t, -t, t, -t, t + 1, -t - 1, 2**61, -(2**61), 0, -1, 1, 7, 2**62 - 1], dtype=np.int64)
    b = np.array([t - 1, -t + 1, t, -t, t, -t, -(2**61), 2**61, 0, 0, 0, 7, -(2**62) + 1], dtype=np.int64)

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "carol")
        return [(x < y).reveal(), (x > y).reveal(), x.eq(y).reveal(), (x >= y).reveal()]

    lt, gt, eq, ge = run(f)["bob"]
    assert (lt == (a < b)).all() and (gt == (a > b)).all() and (eq == (a == b)).all() and (ge == (a >= b)).all()


def test_msb_and_eqz_kernels_on_ring_edges():
    x = np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**62, 3 * 2**62, 12345, 2**63 + 1], dtype=np.uint64)
    x = np.concatenate([x, G.integers(0, 2**64, size=5000, dtype=np.uint64)])
    x[-7:] = 0

    def f(ctx, mpc):
        p = mpc.proto
        s = p.share_in("alice", x if ctx.me == "alice" else None, x.shape)
        out = []
        for _ in range(3):  # rotate the input party through every member
            out.append(p.reveal(p.msb(s, x.shape), x.shape))
            out.append(p.reveal(p.eqz(s, x.shape), x.shape))
        return out

    res = run(f)["carol"]
    for i, got in enumerate(res):
        want = (x >> U(63)) if i % 2 == 0 else (x == 0).astype(U)
        assert got.dtype == U and (got == want).all(), i


def test_empty_and_zero_d():
    def f(ctx, mpc):
        e = shared(ctx, mpc, np.zeros((0, 4)))
        s = shared(ctx, mpc, np.float64(2.5))
        t = shared(ctx, mpc, np.float64(-1.0), "bob")
        return [(e * e).reveal().shape, (e < e).reveal().shape, (e @ np.zeros((4, 2))).reveal().shape,
                (s * t).reveal(), (s < t).reveal(), s.eq(s).reveal()]

    r = run(f)["alice"]
    assert r[0] == (0, 4) and r[1] == (0, 4) and r[2] == (0, 2)
    assert abs(float(r[3]) + 2.5) < 1e-4 and int(r[4]) == 0 and int(r[5]) == 1


# -- boolean kernels -----------------------------------------------------------------------------
def test_boolean_kernels():
    w64 = G.integers(0, 2**64, size=(50,), dtype=np.uint64)
    v64 = G.integers(0, 2**64, size=(50,), dtype=np.uint64)
    w8 = G.integers(0, 256, size=(4, 5), dtype=np.uint8)
    v8 = G.integers(0, 256, size=(4, 5), dtype=np.uint8)
    w16 = G.integers(0, 2**16, size=(7,), dtype=np.uint16)
    bits = G.integers(0, 2, size=(3, 11), dtype=np.uint8)
    c = np.uint64(0x0F0F_F0F0_1234_8765)

    def f(ctx, mpc):
        p = mpc.proto
        me = ctx.me

        def inp(owner, v):
            return p.share_in(owner, v if me == owner else None, v.shape, v.dtype, boolean=True)

        a, b = inp("alice", w64), inp("bob", v64)
        a8, b8 = inp("carol", w8), inp("alice", v8)
        a16 = inp("bob", w16)
        bb = inp("carol", bits)
        z64, z8, z16 = p.b_and([(a, b), (a8, b8), (a16, a16)], [w64.shape, w8.shape, w16.shape], [U, np.uint8, np.uint16])
        rev = lambda s, shape, dt: p.reveal(s, shape, boolean=True, dtype=dt)  # noqa: E731
        return [
            rev(a, w64.shape, U), rev(p.b_xor(a, b), w64.shape, U), rev(z64, w64.shape, U), rev(z8, w8.shape, np.uint8),
            rev(z16, w16.shape, np.uint16), rev(p.b_xor_public(a, c), w64.shape, U), rev(p.b_and_public(a, c), w64.shape, U),
            rev(p.b_xor_public(a8, np.uint8(0xFF)), w8.shape, np.uint8), p.reveal(p.b2a_bits(bb, bits.shape), bits.shape),
            p.reveal(p.b2a_bits(bb, bits.shape), bits.shape), p.reveal(p.b2a_bits(bb, bits.shape), bits.shape),
        ]

    r = run(f)["bob"]
    assert (r[0] == w64).all() and (r[1] == w64 ^ v64).all() and (r[2] == w64 & v64).all()
    assert (r[3] == w8 & v8).all() and r[3].dtype == np.uint8 and (r[4] == w16).all()
    assert (r[5] == w64 ^ c).all() and (r[6] == w64 & c).all() and (r[7] == w8 ^ 0xFF).all()
    for got in r[8:]:
        assert got.dtype == U and (got == bits).all()


# -- input and output ------------------------------------------------------------------------------
def test_reveal_to_one_member_only():
    a = G.normal(size=(3, 4))

    def f(ctx, mpc):
        x = shared(ctx, mpc, a)
        out = {}
        for p in PARTIES:
            v = x.reveal(to=p)
            out[p] = v.value if ctx.me == p else v.is_local
        raw = mpc.proto.reveal(x.share, x.shape, to="carol")
        return out, raw

    res = run(f)
    for p in PARTIES:
        out, raw = res[p]
        for q in PARTIES:
            if q == p:
                np.testing.assert_allclose(out[q], a, atol=2**-18)
            else:
                assert out[q] is False
        assert (raw is None) == (p != "carol")


def test_outside_party_inputs_and_receives():
    """dave is in the cluster but not in the MPC group: he shares in, gets results, sees nothing else."""
    a = G.normal(size=(5, 2)) * 10
    b = G.normal(size=(5, 2))

    def prog(ctx):
        mpc = MpcDevice(ctx, PARTIES, protocol="aby3")
        x = ctx.party("dave").run(lambda: a).to(mpc)
        y = ctx.party("dave").run(lambda: b).to(mpc)
        z = x * y + x
        lt = x < y
        p = mpc.proto
        raw = p.reveal(z.share, None, to="dave")  # a receiver that does not know the shape checks consistency
        bits = lt.reveal(to="dave")
        everyone = z.reveal()
        return raw, (bits.value if ctx.me == "dave" else None), everyone, z.share is None

    res = simulate(prog, PARTIES + ["dave"], mode="thread")
    raw, bits, everyone, no_share = res["dave"]
    np.testing.assert_allclose(FP.decode(raw), a * b + a, atol=1e-3)
    assert (bits == (fx(a) < fx(b))).all()
    assert everyone is None and no_share
    for p in PARTIES:
        assert res[p][0] is None and res[p][1] is None and not res[p][3]
        np.testing.assert_allclose(res[p][2], a * b + a, atol=1e-3)


def test_boolean_share_in_from_outsider_and_reveal_to_outsider():
    w = G.integers(0, 2**32, size=9, dtype=np.uint32)

    def prog(ctx):
        p = MpcDevice(ctx, PARTIES, protocol="aby3").proto
        s = p.share_in("dave", w if ctx.me == "dave" else None, w.shape, np.uint32, boolean=True)
        return p.reveal(s, w.shape, to="dave", boolean=True, dtype=np.uint32), p.reveal(s, w.shape, boolean=True, dtype=np.uint32)

    res = simulate(prog, PARTIES + ["dave"], mode="thread")
    assert (res["dave"][0] == w).all() and res["dave"][1] is None
    assert all((res[p][1] == w).all() and res[p][0] is None for p in PARTIES)


# -- costs -----------------------------------------------------------------------------------------
def test_costs_match_the_docstring():
    n = 10_000
    a, b = G.normal(size=n), G.normal(size=n)

    def f(ctx, mpc):
        p = mpc.proto
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "bob")
        out = {}
        for name, op in [("mul", lambda: p.mul(x.share, y.share, x.shape, y.shape)),
                         ("trunc", lambda: p.trunc(x.share, 18, x.shape)),
                         ("mul_trunc", lambda: p.mul_trunc(x.share, y.share, x.shape, y.shape, 18)),
                         ("open", lambda: p.reveal(x.share, x.shape)),
                         ("msb", lambda: p.msb(x.share, x.shape))]:
            ctx.comm.reset_stats()
            op()
            st = ctx.comm.stats()
            out[name] = (st["bytes_sent"] / n, st["rounds"])
        return out

    res = run(f)
    total = {k: sum(res[p][k][0] for p in PARTIES) for k in res["alice"]}
    rounds = {k: max(res[p][k][1] for p in PARTIES) for k in res["alice"]}
    assert all(abs(res[p]["mul"][0] - 8) < 0.1 for p in PARTIES) and rounds["mul"] == 1
    assert abs(total["trunc"] - 44) < 0.5 and rounds["trunc"] == 2
    assert abs(total["mul_trunc"] - 60) < 0.5 and rounds["mul_trunc"] == 2
    assert all(abs(res[p]["open"][0] - 8) < 0.1 for p in PARTIES) and rounds["open"] == 1
    assert abs(total["msb"] - 121) < 1 and rounds["msb"] == 8


# -- what parties see ------------------------------------------------------------------------------
def test_shares_uniform_and_received_messages_hide_plaintext():
    n = 20_000
    const = np.full(n, 3.0)
    enc = U(3 << 18)
    sq = U(9 << 18)

    def f(ctx, mpc):
        seen = []
        orig = ctx.comm.recv

        def spy(peer, tag, **kw):
            msg = orig(peer, tag, **kw)
            seen.extend(a for a in msg.arrays if a.size >= 1000)
            return msg

        ctx.comm.recv = spy
        x1 = shared(ctx, mpc, const, "alice")
        x2 = shared(ctx, mpc, const, "alice")
        y = x1 * x2
        c = x1 < x2  # equal inputs
        e = x1.eq(x2)
        z = (y * 1.0).share
        rest = None
        if ctx.me != "alice":
            s = np.asarray(x1.share)
            s2 = np.asarray(x2.share)
            bitmean = float(np.unpackbits(s.view(np.uint8)).mean())
            rest = (s.shape, bitmean, len(np.unique(s)), bool(np.any(s == enc)), bool(np.any(s == s2)))
        ctx.comm.recv = orig
        msgs = []
        for a in seen:
            if a.dtype == U:
                msgs.append((float(np.unpackbits(a.view(np.uint8)).mean()), bool(np.any(a == enc)), bool(np.any(a == sq))))
        out = y.reveal(), c.reveal(), e.reveal()
        return rest, msgs, out, z is not None

    res = run(f)
    for p in ("bob", "carol"):
        (shape, bitmean, uniq, contains, equal_across), msgs, _, _ = res[p]
        assert shape == (2, n) and abs(bitmean - 0.5) < 0.01 and uniq > 0.999 * 2 * n
        assert not contains and not equal_across
    for p in PARTIES:
        _, msgs, (y, c, e), _ = res[p]
        assert len(msgs) >= 5
        for bitmean, has_x, has_sq in msgs:
            assert abs(bitmean - 0.5) < 0.01 and not has_x and not has_sq
        np.testing.assert_allclose(y, 9.0, atol=1e-4)
        assert (c == 0).all() and (e == 1).all()


def test_two_devices_never_share_masks():
    v = np.arange(1000.0)

    def prog(ctx):
        d1 = MpcDevice(ctx, PARTIES, protocol="aby3")
        d2 = MpcDevice(ctx, PARTIES, protocol="aby3")
        x1 = ctx.party("alice").run(lambda: v).to(d1)
        x2 = ctx.party("alice").run(lambda: v).to(d2)
        same = bool(np.any(np.asarray(x1.share) == np.asarray(x2.share)))
        return same, (x1 * x1).reveal(), (x2 * x2).reveal()

    for same, a, b in simulate(prog, PARTIES, mode="thread").values():
        assert not same
        np.testing.assert_allclose(a, v * v, atol=1e-3)
        np.testing.assert_allclose(b, v * v, atol=1e-3)


# -- TLS, one process per party --------------------------------------------------------------------
def test_process_mode_over_tls():
    a, b = G.normal(size=(40, 30)) * 5, G.normal(size=(30, 40))

    def f(ctx, mpc):
        x, y = shared(ctx, mpc, a), shared(ctx, mpc, b, "carol")
        return [(x @ y).reveal(), (x * y.T).reveal(), (x < y.T).reveal(), x.eq(x).reveal()]

    mm, mul, lt, eq = run(f, mode="process")["bob"]
    np.testing.assert_allclose(mm, a @ b, atol=1e-2)
    np.testing.assert_allclose(mul, a * b.T, atol=1e-3)
    assert (lt == (fx(a) < fx(b.T))).all() and eq.all()
