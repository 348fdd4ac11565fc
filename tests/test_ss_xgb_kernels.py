"""SS-XGB's semi2k kernels (ml/tree/_owner_hist): the owner's bin statistics in a k-bit ring
and the owner-held split bits, against plaintext; what the other party and the dealer see."""

from __future__ import annotations

import numpy as np

from conftest import run_mpc
from jointml.ml.tree._owner_hist import OwnerBits, OwnerHistogram, supported


def _data(n=600, features=3, nb=8, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, nb, (n, features))
    V = rng.uniform(-1, 1, (n, 3))
    V[:, 1] = np.abs(V[:, 1]) / 4  # a hessian-like column
    return codes, [nb - 1] * features, V


def _cumulative(codes, counts):
    return np.concatenate([(codes[None, :, j] <= np.arange(c)[:, None]) for j, c in enumerate(counts)], 0).astype(float)


def test_owner_histograms_match_plaintext_and_the_dealer_receives_nothing():
    codes_a, counts_a, V = _data(seed=1)
    codes_b, counts_b, _ = _data(seed=2, features=2, nb=5)

    def prog(ctx, mpc):
        assert supported(mpc, len(V))
        ha = OwnerHistogram(mpc, "alice", codes_a if ctx.me == "alice" else None, counts_a, len(V))
        hb = OwnerHistogram(mpc, "bob", codes_b if ctx.me == "bob" else None, counts_b, len(V))
        Vs = ctx.party("bob").run(lambda: V).to(mpc)
        ctx.reset_stats()
        out = OwnerHistogram.matmul_many([ha, hb], Vs)
        recv = ctx.stats()["bytes_recv"]
        return [o.reveal() for o in out], recv

    res = run_mpc("semi2k", prog)
    (Sa, Sb), _ = res["alice"]
    np.testing.assert_allclose(Sa, _cumulative(codes_a, counts_a) @ V, atol=1e-3)
    np.testing.assert_allclose(Sb, _cumulative(codes_b, counts_b) @ V, atol=1e-3)
    assert res["carol"][1] == 0  # the dealer only sends


def test_other_party_sees_a_uniform_masked_matrix_not_the_bins():
    """The non-owner holds E = C^T - A mod 2^k: its low bits are balanced coins whatever C is,
    and E does not equal C^T where C^T is 0/1."""
    codes, counts, _ = _data(n=400, seed=3)

    def prog(ctx, mpc):
        h = OwnerHistogram(mpc, "alice", codes if ctx.me == "alice" else None, counts, 400)
        return h.M if ctx.me == "bob" else None, h.k

    E, k = run_mpc("semi2k", prog)["bob"]
    C = _cumulative(codes, counts).astype(np.uint64)
    assert E.shape == C.shape and int(E.max()) < 2**k
    assert np.mean(E == C) < 0.01
    low = (E & np.uint64(1)).astype(float)
    assert abs(low[C == 1].mean() - 0.5) < 0.05 and abs(low[C == 0].mean() - 0.5) < 0.05


def test_owner_bits_times_secret_and_broadcast():
    rng = np.random.default_rng(4)
    n = 300
    bits = rng.integers(0, 2, (3, n))
    X = rng.normal(size=(3, 2, n))
    w = rng.normal(size=(3, 1, 1))

    def prog(ctx, mpc):
        ob = OwnerBits(mpc)
        mine = bits if ctx.me == "alice" else None
        Xs = ctx.party("bob").run(lambda: X).to(mpc)
        ws = ctx.party("alice").run(lambda: w).to(mpc)
        full = ob.times("alice", mine, Xs).reveal()
        bcast = ob.times("alice", mine, ws, n).reveal()
        return full, bcast

    full, bcast = run_mpc("semi2k", prog)["bob"]
    np.testing.assert_allclose(full, bits[:, None, :] * X, atol=1e-5)
    np.testing.assert_allclose(bcast, bits[:, None, :] * w, atol=1e-5)


class _SpyBits(OwnerBits):
    """OwnerBits that keeps, at the other party, the masked bits it receives."""

    def _received_bits(self, packed, shape):
        self.seen = super()._received_bits(packed, shape)
        return self.seen


def test_owner_bits_other_party_sees_coins_not_bits():
    """The other party receives e = b xor a only: e agrees with the owner's bits half the time."""
    n = 4000
    bits = np.ones((1, n), dtype=np.int64)  # the worst case: constant bits

    def prog(ctx, mpc):
        ob = _SpyBits(mpc)
        Xs = ctx.party("bob").run(lambda: np.ones((1, 1, n))).to(mpc)
        out = ob.times("alice", bits if ctx.me == "alice" else None, Xs).reveal()
        return out, getattr(ob, "seen", None)

    out, e = run_mpc("semi2k", prog)["bob"]
    np.testing.assert_allclose(out, np.ones((1, 1, n)), atol=1e-6)
    assert e is not None and abs(e.mean() - 0.5) < 0.05  # not the all-ones bits


def test_fast_path_only_where_it_applies():
    def prog(ctx, mpc):
        return supported(mpc, 1000)

    assert run_mpc("semi2k", prog)["alice"] is True
    assert run_mpc("aby3", prog)["alice"] is False


def test_prefetched_products_follow_the_schedule():
    """With a schedule, j and the dealer compute the next product ahead: results are unchanged,
    and a product that does not match the announced schedule is refused (streams would diverge)."""
    import pytest

    from jointml.core.errors import ProtocolError
    from jointml.runtime import PartyFailed

    codes, counts, V = _data(n=300, seed=5)

    def prog(ctx, mpc, cols):
        h = OwnerHistogram(mpc, "alice", codes if ctx.me == "alice" else None, counts, 300, schedule=[2, 3])
        first = OwnerHistogram.matmul_many([h], ctx.party("bob").run(lambda: V[:, :2]).to(mpc))[0].reveal()
        second = OwnerHistogram.matmul_many([h], ctx.party("bob").run(lambda: V[:, :cols]).to(mpc))[0].reveal()
        return first, second

    first, second = run_mpc("semi2k", prog, 3)["alice"]
    C = _cumulative(codes, counts)
    np.testing.assert_allclose(first, C @ V[:, :2], atol=1e-3)
    np.testing.assert_allclose(second, C @ V[:, :3], atol=1e-3)
    with pytest.raises(PartyFailed, match="expected a product with 3 columns") as ei:
        run_mpc("semi2k", prog, 2)
    types = {t for t, _, _ in ei.value.others.values()} | {type(ei.value.__cause__).__name__}
    assert ProtocolError.__name__ in types, types
