"""KKRT16 OT-based PSI: the same intersection as ECDH-PSI and Python sets, edge cases, bad
input, and views (what each party receives)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jointml.core.prg import Prg, public_rng
from jointml.mpc.ot.prims import unpack_bits
from jointml.psi import psi_align, psi_frame
from jointml.psi.kkrt import tag_bytes
from jointml.runtime import PartyFailed, simulate

P = ["bank", "partner"]


def _sets(n_a, n_b, shared, seed=0):
    rng = public_rng(seed)  # public test data
    pool = rng.choice(10**9, n_a + n_b - shared, replace=False)
    a = pool[:n_a]
    b = np.concatenate([a[:shared], pool[n_a:]])
    return rng.permutation(a), rng.permutation(b)


def _both(keys, **kw):
    def prog(ctx):
        out = {}
        for proto in ("ecdh", "kkrt"):
            r = psi_align(ctx, keys, protocol=proto, **kw)
            out[proto] = (r.positions, r.set_sizes)
        return out

    return simulate(prog, P, mode="thread")


@pytest.mark.parametrize(("n_a", "n_b", "shared"), [(3000, 2000, 700), (1, 50, 1), (40, 40, 40), (30, 20, 0)])
def test_same_intersection_as_ecdh_and_sets(n_a, n_b, shared):
    a, b = _sets(n_a, n_b, shared)
    keys = {"bank": a, "partner": b}
    out = _both(keys, sort_by="bank")
    want = sorted(set(a.tolist()) & set(b.tolist()))
    for proto in ("ecdh", "kkrt"):
        pa, pb = out["bank"][proto][0], out["partner"][proto][0]
        assert sorted(a[pa].tolist()) == want
        assert (a[pa] == b[pb]).all()  # row i aligns with row i
        assert out["partner"][proto][1] == {"partner": n_b, "bank": n_a}
    assert (out["bank"]["kkrt"][0] == out["bank"]["ecdh"][0]).all()
    assert (out["partner"]["kkrt"][0] == out["partner"]["ecdh"][0]).all()


def test_empty_sets_and_random_order():
    for a, b in ((np.array([], np.int64), np.array([1, 2])), (np.array([5]), np.array([], np.int64)),
                 (np.array([], np.int64), np.array([], np.int64))):
        def prog(ctx, a=a, b=b):
            r = psi_align(ctx, {"bank": a, "partner": b}, protocol="kkrt")
            return r.positions.tolist(), r.set_sizes
        out = simulate(prog, P, mode="thread")
        assert out["bank"] == ([], {"bank": a.size, "partner": b.size})
    # default order is a secret random one, the same at both parties
    a, b = _sets(200, 200, 150, seed=3)
    out = simulate(lambda ctx: psi_align(ctx, {"bank": a, "partner": b}, protocol="kkrt").positions, P, mode="thread")
    assert (a[out["bank"]] == b[out["partner"]]).all() and out["bank"].size == 150
    assert not (np.diff(out["bank"]) > 0).all()


def test_strings_multicolumn_frames_and_sort_by_partner():
    bank = pd.DataFrame({"id": ["a", "b", "c", "d"], "k": [1, 2, 3, 4], "x": [1.0, 2.0, 3.0, 4.0]})
    partner = pd.DataFrame({"pid": ["d", "c", "a", "zz"], "k2": [4, 3, 9, 1], "y": [7, 8, 9, 10]})

    def prog(ctx):
        frames = {"bank": ctx.party("bank").run(lambda: bank), "partner": ctx.party("partner").run(lambda: partner)}
        out = psi_frame(ctx, frames, {"bank": ["id", "k"], "partner": ["pid", "k2"]}, protocol="kkrt", sort_by="partner")
        return out[ctx.me].value

    out = simulate(prog, P, mode="thread")
    assert out["bank"]["id"].tolist() == ["d", "c"] and out["partner"]["y"].tolist() == [7, 8]


def test_reveal_to_only_matcher_learns():
    a, b = _sets(300, 400, 100, seed=5)

    def prog(ctx):
        r = psi_align(ctx, {"bank": a, "partner": b}, protocol="kkrt", reveal_to="partner")
        return r.positions, r.set_sizes

    out = simulate(prog, P, mode="thread")
    assert out["bank"] == (None, {"bank": 300, "partner": 400})
    pos = out["partner"][0]
    assert (np.diff(pos) > 0).all() and sorted(b[pos].tolist()) == sorted(set(a.tolist()) & set(b.tolist()))


def test_bad_input_refused():
    dup = {"bank": np.array([1, 2, 2]), "partner": np.array([1])}
    with pytest.raises(PartyFailed, match="DuplicateKeyError"):
        simulate(lambda ctx: psi_align(ctx, dup, protocol="kkrt"), P, mode="thread")
    with pytest.raises(PartyFailed, match="two parties"):
        simulate(lambda ctx: psi_align(ctx, {p: [1] for p in P + ["ins"]}, protocol="kkrt"), P + ["ins"], mode="thread")
    with pytest.raises(PartyFailed, match="protocol"):  # one side ECDH, the other KKRT: a clear error, no hang
        simulate(lambda ctx: psi_align(ctx, {p: [1] for p in P}, protocol="kkrt" if ctx.me == "bank" else "ecdh"),
                 P, mode="thread")
    with pytest.raises(PartyFailed, match="integer and string"):
        simulate(lambda ctx: psi_align(ctx, {"bank": [1], "partner": ["1"]}, protocol="kkrt"), P, mode="thread")
    with pytest.raises(PartyFailed, match="unknown PSI protocol"):
        simulate(lambda ctx: psi_align(ctx, {p: [1] for p in P}, protocol="rr99"), P, mode="thread")


def _spy(monkeypatch):
    from jointml.net import link as L

    seen: dict[str, list] = {p: [] for p in P}
    recv = L.Communicator.recv

    def spy_recv(self, peer, tag, *a, **k):
        msg = recv(self, peer, tag, *a, **k)
        seen[self.me].append((tag, dict(msg.meta or {}), [np.asarray(x) for x in msg.arrays]))
        return msg

    monkeypatch.setattr(L.Communicator, "recv", spy_recv)
    return seen


def test_views(monkeypatch):
    seen = _spy(monkeypatch)
    n = 2000
    a = np.arange(n)  # the bank's ids: a structured set (worst case for patterns)
    b = np.concatenate([np.arange(n // 2), 10**6 + Prg(b"v" * 16).integers_below(10**6, n // 2).astype(np.int64)])
    b = np.unique(b)
    simulate(lambda ctx: psi_align(ctx, {"bank": a, "partner": b}, protocol="kkrt", reveal_to="bank"), P, mode="thread")
    partner_arrays = [(t, x) for t, _, xs in seen["partner"] for x in xs]
    # The partner (OPRF key holder) receives: base-OT points, the OT-extension matrix, nothing else.
    # The matrix is balanced bits whatever the bank's ids, and no id or digest appears in it.
    u = [x for t, x in partner_arrays if ":kkrt-u" in t]
    assert u and abs(unpack_bits(np.concatenate([x.reshape(-1) for x in u]), None).mean() - 0.5) < 0.005
    assert all("co15-B" in t or "kkrt-u" in t for t, _ in partner_arrays)
    # The bank receives 3 tags per partner id; only the shared ids' tags match its own, and the
    # tags of the partner's other ids are balanced bits with no repeats (pseudorandom).
    tags = [xs for t, _, xs in seen["bank"] if ":tags" in t]
    ell = tag_bytes(n, b.size)
    allt = np.concatenate([x for xs in tags for x in xs])
    assert allt.shape == (3 * b.size, ell)
    assert len({bytes(r) for r in allt}) == allt.shape[0]
    assert abs(unpack_bits(allt.reshape(-1), None).mean() - 0.5) < 0.01


def test_csv_input_read_in_batches(tmp_path):
    a, b = _sets(500, 300, 120, seed=9)
    paths = {}
    for p, v in (("bank", a), ("partner", b)):
        paths[p] = tmp_path / f"{p}.csv"
        pd.DataFrame({"id": v, "x": np.arange(v.size)}).to_csv(paths[p], index=False)

    def prog(ctx):
        return psi_frame(ctx, str(paths[ctx.me]), key_columns=["id"], protocol="kkrt", batch_size=64, sort_by="bank")

    out = simulate(prog, P, mode="thread")
    assert out["bank"]["id"].tolist() == out["partner"]["id"].tolist()
    assert sorted(out["bank"]["id"].tolist()) == sorted(set(a.tolist()) & set(b.tolist()))


def test_label_only_over_kkrt_aligns_like_ecdh():
    """Label-only PSI (only the bank learns the intersection) runs over KKRT too: the bank's
    shared rows and the partner's values aligned under secret sharing equal the ECDH run's,
    and the partner learns no position in either protocol."""
    from jointml.mpc import MpcDevice
    from jointml.psi.label_only import psi_label_only

    ids = np.arange(3000)
    keys = {"bank": ids[::2].copy(), "partner": np.concatenate([ids[1000:2500], ids[2990:]])[::-1].copy()}
    x = (keys["partner"] % 97).astype(float).reshape(-1, 1)

    def prog(ctx, protocol):
        al = psi_label_only(ctx, keys, holder="bank", protocol=protocol)
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        got = al.select(mpc, ctx.party("partner").put(x if ctx.me == "partner" else None)).reveal(to="bank")
        return al.positions, (got.value.ravel() if ctx.me == "bank" else None)

    out = {p: simulate(prog, ["bank", "partner", "dealer"], mode="thread", args=(p,)) for p in ("ecdh", "kkrt")}
    shared = np.intersect1d(keys["bank"], keys["partner"])
    for p in ("ecdh", "kkrt"):
        assert keys["bank"][out[p]["bank"][0]].tolist() == shared.tolist()
        np.testing.assert_allclose(out[p]["bank"][1], (shared % 97).astype(float), atol=1e-4)
        assert out[p]["partner"] == (None, None)


def test_psi_step_auto_picks_kkrt_for_large_sets():
    import pandas as pd

    from jointml.jobs.artifacts import Inputs
    from jointml.jobs.components.psi import AUTO_KKRT_MIN_IDS, choose_protocol

    def prog(ctx, n):
        df = pd.DataFrame({"id": range(n if ctx.me == "bank" else 10)})
        inputs = Inputs({p: ctx.party(p).put(df if p == ctx.me else None) for p in ["bank", "partner"]})
        return choose_protocol(ctx, inputs, ["bank", "partner"], "auto")

    for n, want in ((AUTO_KKRT_MIN_IDS - 1, "ecdh"), (AUTO_KKRT_MIN_IDS, "kkrt")):
        got = simulate(prog, ["bank", "partner", "dealer"], mode="thread", args=(n,))
        assert got["bank"] == got["partner"] == want and got["dealer"] == "ecdh"  # the dealer takes no part
