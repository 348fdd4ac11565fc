"""semi2k's truncations: local (SecureML, 2 parties) and dealer pairs; fused kernels; prefetch.

The local truncation's failure rate is measured against its stated probability
(|x| + 1) / 2^64 per element on a few million large values; products and matrix products
are checked against plaintext in both modes, and the dealer pair's fused kernels against
the separate ones."""

import numpy as np
import pytest

from jointml.core.errors import ConfigError
from jointml.core.prg import public_rng
from jointml.mpc import MpcDevice
from jointml.mpc.protocols import Semi2k
from jointml.runtime import simulate

PARTIES = ["alice", "bob", "carol"]
F = 18


def _run(prog, *args, parties=PARTIES):
    return simulate(prog, parties, mode="thread", args=args)


def test_local_truncation_failure_rate_matches_its_bound():
    n = 3_000_000
    g = public_rng(7)
    # magnitudes 2^56 .. 2^61, both signs: failures are frequent enough to count
    mag = np.exp2(g.uniform(56, 61, n))
    xs = (mag * g.choice([-1.0, 1.0], n)).astype(np.int64)

    def prog(ctx):
        p = Semi2k(ctx, ["alice", "bob"], dealer="carol", trunc="local")
        assert p.trunc_mode == "local"
        x = p.share_in("alice", xs.view(np.uint64) if ctx.me == "alice" else None, (n,))
        ctx.reset_stats()
        y = p.trunc_product(x, F, (n,))
        sent = ctx.stats()["bytes_sent"]
        return p.reveal(y, (n,), to="alice"), sent

    res = _run(prog)
    assert all(res[q][1] == 0 for q in PARTIES)  # local: no message at all
    got = res["alice"][0].view(np.int64)
    floor = xs >> F
    err = got - floor
    ok = (err == 0) | (err == 1)
    # a failure is off by exactly 2^(64-F) (mod 2^64)
    assert np.all(ok | (np.abs(err) >= (1 << (63 - F))))
    failures = int((~ok).sum())
    p = (np.abs(xs.astype(np.float64)) + 1) / 2.0**64
    expected, sd = p.sum(), np.sqrt((p * (1 - p)).sum())
    assert abs(failures - expected) < 5 * sd, (failures, expected, sd)
    assert failures > 0.02 * n  # the test does exercise failures


def test_local_truncation_rounds_stochastically_without_failures_for_small_values():
    n = 200_000
    g = public_rng(3)
    xs = g.integers(-(1 << 32), 1 << 32, n)  # 2e5 x 2^32 / 2^64: a failure in 1 run of ~20,000

    def prog(ctx):
        p = Semi2k(ctx, ["alice", "bob"], dealer="carol")
        x = p.share_in("bob", xs.view(np.uint64) if ctx.me == "bob" else None, (n,))
        return p.reveal(p.trunc_product(x, F, (n,)), (n,), to="alice")

    got = _run(prog)["alice"].view(np.int64)
    err = got - (xs >> F)
    assert set(np.unique(err).tolist()) <= {0, 1}
    # up with probability equal to the dropped fraction: unbiased on average
    frac = (xs & ((1 << F) - 1)) / float(1 << F)
    assert abs(err.mean() - frac.mean()) < 0.01


@pytest.mark.parametrize("mode", ["local", "dealer"])
def test_fixed_point_products_match_plaintext(mode):
    g = public_rng(11)
    # |x y| ~ 2.5: the local truncation fails once in ~10^4 runs of this test
    xv, yv = g.normal(size=2000) * 2, g.normal(size=2000) * 2
    A, B = g.normal(size=(40, 60)), g.normal(size=(60, 7))

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol", trunc=mode)
        x, y = ctx.party("alice").run(lambda: xv).to(mpc), ctx.party("bob").run(lambda: yv).to(mpc)
        a, b = ctx.party("alice").run(lambda: A).to(mpc), ctx.party("bob").run(lambda: B).to(mpc)
        ctx.reset_stats()
        z = x * y
        rounds = ctx.stats()["rounds"]
        return z.reveal(), (x * x).reveal(), (a @ b).reveal(), (x * 0.37).reveal(), rounds

    z, sq, mm, pub, rounds = _run(prog)["alice"]
    assert rounds == (1 if mode == "local" else 2)
    tol = 4 * 2.0**-F * 8  # encoding of both inputs and one unit of truncation
    assert np.abs(z - xv * yv).max() < tol
    assert np.abs(sq - xv * xv).max() < tol
    assert np.abs(pub - xv * 0.37).max() < 16 * 2.0**-F  # 0.37 is encoded with |x| <= 16 times its error
    assert np.abs(mm - A @ B).max() < 60 * 2 * 2.0**-F * 3


def test_fused_kernels_ship_the_pair_with_the_triple_and_match():
    g = public_rng(5)
    xv, yv = g.integers(-(1 << 40), 1 << 40, 3000), g.integers(-(1 << 20), 1 << 20, 3000)
    A, B = g.integers(-(1 << 30), 1 << 30, (9, 12)), g.integers(-(1 << 30), 1 << 30, (12, 4))

    def prog(ctx):
        p = Semi2k(ctx, ["alice", "bob", "dave"], dealer="carol")
        assert p.trunc_mode == "dealer" and p.supports("mul_trunc")

        def inp(owner, v):
            return p.share_in(owner, v.view(np.uint64) if ctx.me == owner else None, v.shape)

        x, y, a, b = inp("alice", xv), inp("bob", yv), inp("dave", A), inp("alice", B)
        ctx.reset_stats()
        out = [p.mul_trunc(x, y, x_s := xv.shape, x_s, F), p.square_trunc(y, yv.shape, F),
               p.matmul_trunc(a, b, A.shape, B.shape, F)]
        dealer_msgs = ctx.stats()["msgs_sent"] if ctx.me == "carol" else None
        return [p.reveal(o, s) for o, s in zip(out, [xv.shape, yv.shape, (9, 4)])], dealer_msgs

    res = _run(prog, parties=["alice", "bob", "carol", "dave"])
    (m, s, mm), _ = res["alice"]
    assert res["carol"][1] == 3  # one dealer message per fused kernel (triple and pair together)
    for got, want in [(m, xv * yv), (s, yv * yv), (mm, A @ B)]:
        err = got.view(np.int64) - (want >> F)
        assert set(np.unique(err).tolist()) <= {0, 1}


def test_local_truncation_refused_for_more_than_two_parties():
    def prog(ctx):
        with pytest.raises(ConfigError, match="2 compute parties"):
            Semi2k(ctx, ["alice", "bob", "dave"], dealer="carol", trunc="local")
        with pytest.raises(ConfigError, match="trunc"):
            MpcDevice(ctx, ["alice", "bob"], dealer="carol", trunc="fast")
        return Semi2k(ctx, ["alice", "bob", "dave"], dealer="carol").trunc_mode

    assert _run(prog, parties=["alice", "bob", "carol", "dave"])["alice"] == "dealer"


def test_prefetch_moves_generation_out_of_the_kernel():
    g = public_rng(2)
    xv, yv = g.normal(size=5000), g.normal(size=5000)
    A = g.normal(size=(30, 30))

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol", trunc="local")
        p = mpc.proto
        p.prefetch("mul", xv.shape, yv.shape)
        p.prefetch("matmul", A.shape, A.shape)
        p.prefetch("mul_trunc", xv.shape, yv.shape, bits=F)
        x, y = ctx.party("alice").run(lambda: xv).to(mpc), ctx.party("bob").run(lambda: yv).to(mpc)
        a = ctx.party("alice").run(lambda: A).to(mpc)
        ctx.reset_stats()
        z, zz, m = x * y, x.__class__(mpc, p.mul_trunc(x.share, y.share, xv.shape, yv.shape, F), xv.shape, F), a @ a
        st = ctx.stats()
        return z.reveal(), zz.reveal(), m.reveal(), st

    res = _run(prog)
    z, zz, m, _ = res["alice"]
    assert res["carol"][3]["bytes_sent"] == 0  # the dealer sent everything before the online phase
    assert np.abs(z - xv * yv).max() < 1e-4 and np.abs(zz - xv * yv).max() < 1e-4
    assert np.abs(m - A @ A).max() < 1e-3
    # the cost model prices the local product truncation at nothing
    assert Semi2k.static_cost("trunc_product", (10,), bits=F, trunc="local").rounds == 0
    assert Semi2k.static_cost("trunc_product", (10,), bits=F).rounds == 1  # the default: the dealer pair


def test_three_parties_secret_products_take_the_pair_with_the_triple():
    g = public_rng(9)
    xv, yv = g.normal(size=2000) * 3, g.normal(size=2000) * 3
    A, B = g.normal(size=(20, 30)), g.normal(size=(30, 6))

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob", "dave"], dealer="carol")
        x, y = ctx.party("alice").run(lambda: xv).to(mpc), ctx.party("bob").run(lambda: yv).to(mpc)
        a, b = ctx.party("dave").run(lambda: A).to(mpc), ctx.party("alice").run(lambda: B).to(mpc)
        ctx.reset_stats()
        z, sq, m = x * y, x * x, a @ b
        st = ctx.stats()
        return [z.reveal(), sq.reveal(), m.reveal()], st

    res = _run(prog, parties=["alice", "bob", "carol", "dave"])
    (z, sq, m), _ = res["alice"]
    assert res["carol"][1]["msgs_sent"] == 3  # one dealer message per product: triple and pair together
    assert max(res[p][1]["rounds"] for p in ["alice", "bob", "dave"]) == 6  # 2 rounds each: opening, pair
    tol = 2.0**-F * 16
    assert np.abs(z - xv * yv).max() < tol and np.abs(sq - xv * xv).max() < tol
    assert np.abs(m - A @ B).max() < 30 * tol


def test_prefetched_comparison_masks_give_the_same_results():
    g = public_rng(4)
    xv, yv = g.normal(size=3000), g.normal(size=3000)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        mpc.proto.prefetch("msb", xv.shape)
        mpc.proto.prefetch("eqz", xv.shape)
        x, y = ctx.party("alice").run(lambda: xv).to(mpc), ctx.party("bob").run(lambda: yv).to(mpc)
        ctx.reset_stats()
        lt, eq = x < y, x.eq(x)
        dealer_sent = ctx.stats()["bytes_sent"]
        return lt.reveal(), eq.reveal(), dealer_sent

    res = _run(prog)
    lt, eq, _ = res["alice"]
    assert (lt == (xv < yv)).all() and (eq == 1).all()
    # online, the dealer sends only the AND trees' triples: 7 of msb's 46 and 4 of eqz's 43 B per element
    assert res["carol"][2] < 20 * xv.size


def test_dealer_truncation_is_the_default():
    def prog(ctx):
        return Semi2k(ctx, ["alice", "bob"], dealer="carol").trunc_mode

    assert set(_run(prog).values()) == {"dealer"}


def test_pipeline_mpc_section_chooses_the_truncation():
    from jointml.core.errors import ConfigError
    from jointml.jobs.spec import device_params

    assert device_params({"dealer": "d", "trunc": "dealer"}, ["a", "b", "d"])["trunc"] == "dealer"
    for bad in ({"dealer": "d", "trunc": "fast"}, {"protocol": "aby3", "trunc": "local"}):
        with pytest.raises(ConfigError, match="trunc"):
            device_params(bad, ["a", "b", "c"])


@pytest.mark.parametrize("trunc", ["dealer", "local"])
def test_fxp_prefetch_covers_secret_products_in_either_truncation_mode(trunc):
    """prefetch("fxp_*") generates what `x * y`, `x * x` and `x @ y` of two secrets take (the
    fused triple + pair with the dealer's truncation): the dealer sends nothing online."""
    g = public_rng(12)
    xv, yv = g.normal(size=4000) * 3, g.normal(size=4000) * 3
    A, B = g.normal(size=(20, 30)), g.normal(size=(30, 6))

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol", trunc=trunc)
        p = mpc.proto
        p.prefetch("fxp_mul", xv.shape, yv.shape, bits=F)
        p.prefetch("fxp_square", xv.shape, bits=F)
        p.prefetch("fxp_matmul", A.shape, B.shape, bits=F)
        x, y = ctx.party("alice").run(lambda: xv).to(mpc), ctx.party("bob").run(lambda: yv).to(mpc)
        a, b = ctx.party("alice").run(lambda: A).to(mpc), ctx.party("bob").run(lambda: B).to(mpc)
        ctx.reset_stats()
        z, sq, m = x * y, x * x, a @ b
        sent = ctx.stats()["bytes_sent"]
        return [z.reveal(), sq.reveal(), m.reveal()], sent

    res = _run(prog)
    (z, sq, m), _ = res["alice"]
    assert res["carol"][1] == 0  # every correction crossed the link in the offline phase
    tol = 2.0**-F * 16
    assert np.abs(z - xv * yv).max() < tol and np.abs(sq - xv * xv).max() < tol
    assert np.abs(m - A @ B).max() < 30 * tol
