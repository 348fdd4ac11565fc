"""The MPC seams: a pluggable correlation provider, the share layout (export/import, split/combine),
the ring backend, shapes."""

import numpy as np
import pytest

from jointml.core.backend import backend as bk
from jointml.core.backend import get_backend
from jointml.core.errors import ProtocolError
from jointml.core.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from jointml.mpc import MpcDevice, sharing
from jointml.mpc.protocols import Semi2k
from jointml.mpc.randomness import CorrelationProvider, DealerProvider, NullProvider
from jointml.runtime import simulate

G = np.random.default_rng(7)  # public test data
PARTIES = ["alice", "bob", "carol"]


class CountingProvider(CorrelationProvider):
    """Another provider: delegates to the dealer and records what the kernels asked for."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __getattribute__(self, name):
        if name in ("inner", "calls") or name.startswith("__"):
            return object.__getattribute__(self, name)
        inner = object.__getattribute__(self, "inner")
        calls = object.__getattribute__(self, "calls")

        def call(*a, **k):
            calls.append(name)
            return getattr(inner, name)(*a, **k)

        return call

    # the abstract methods, so that the class can be instantiated (they are intercepted above)
    beaver = square_pair = trunc_pair = and_triples = compare_mask = random_bits = None
    matrix_mask = mask_triple = private_mask = private_triples = None


def test_a_provider_plugs_in_without_touching_kernels():
    a, b = G.normal(size=20), G.normal(size=20)
    fp = FixedPoint(DEFAULT_FRAC_BITS)

    def prog(ctx):
        label = "custom"
        if ctx.me in PARTIES:
            inner = DealerProvider(ctx, ["alice", "bob"], "carol", label)
            prov = CountingProvider(inner)
        p = Semi2k(ctx, ["alice", "bob"], dealer="carol", provider=prov)
        x = p.share_in("alice", fp.encode(a) if ctx.me == "alice" else None, a.shape)
        y = p.share_in("bob", fp.encode(b) if ctx.me == "bob" else None, b.shape)
        z = p.trunc(p.mul(x, y, a.shape, b.shape), DEFAULT_FRAC_BITS, a.shape)
        lt = p.msb(p.sub(x, y), a.shape)
        return p.reveal(z, a.shape), p.reveal(lt, a.shape), sorted(set(prov.calls))

    res = simulate(prog, PARTIES, mode="thread")
    z, lt, calls = res["alice"]
    np.testing.assert_allclose(fp.decode(z), a * b, atol=1e-4)
    assert (lt == (fp.encode(a).view(np.int64) < fp.encode(b).view(np.int64))).all()
    assert calls == ["and_triples", "beaver", "compare_mask", "random_bits", "trunc_pair"]
    assert res["carol"][2] == calls  # the dealer answered the same requests, in the same order


def test_null_provider_at_outsiders_holds_nothing():
    p = NullProvider()
    assert p.beaver("mul", (2,), (2,), (2,)) is None and p.matrix_mask((2, 2)).share is None


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_export_import_share_round_trip(protocol):
    v = G.normal(size=(3, 4))

    def prog(ctx):
        if protocol == "semi2k":
            mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        else:
            mpc = MpcDevice(ctx, PARTIES, protocol="aby3")
        x = ctx.party("alice").run(lambda: v).to(mpc)
        arrays = x.export_share()
        y = mpc.import_share(arrays, x.shape)
        bad = None
        if arrays:
            try:
                mpc.proto.import_share([a[:1] for a in arrays], x.shape)
            except ProtocolError as e:
                bad = str(e)
        return len(arrays), (y * 2).reveal(), bad

    res = simulate(prog, PARTIES, mode="thread")
    n = 1 if protocol == "semi2k" else 2
    assert res["alice"][0] == n and res["bob"][0] == n
    assert res["carol"][0] == (0 if protocol == "semi2k" else 2)
    np.testing.assert_allclose(res["alice"][1], 2 * v, atol=1e-4)
    assert "expected uint64" in res["alice"][2]


@pytest.mark.parametrize("protocol,n", [("semi2k", 2), ("semi2k", 3), ("aby3", 3)])
def test_split_combine_and_import_by_the_parties(protocol, n):
    v = G.normal(size=5) * 100
    parts = sharing.split(v, protocol, parties=n, frac_bits=18)
    np.testing.assert_allclose(sharing.combine(parts, protocol, frac_bits=18), v, atol=2**-18)
    names = ["alice", "bob", "erin"][:n]

    def prog(ctx):
        if protocol == "semi2k":
            mpc = MpcDevice(ctx, names, dealer="carol")
        else:
            mpc = MpcDevice(ctx, names, protocol="aby3")
        mine = parts[names.index(ctx.me)] if ctx.me in names else []
        return mpc.import_share(mine, (5,), fxp=18).reveal()

    res = simulate(prog, names + (["carol"] if protocol == "semi2k" else []), mode="thread")
    np.testing.assert_allclose(res["alice"], v, atol=2**-17)


def test_combine_detects_an_inconsistent_replica():
    parts = sharing.split(np.arange(4), "aby3")
    parts[1][1] = parts[1][1] + np.uint64(1)
    with pytest.raises(ProtocolError, match="party 1"):
        sharing.combine(parts, "aby3")


def test_combine_names_the_party_whose_replica_disagrees():
    parts = sharing.split(np.array([2.5]), "aby3", frac_bits=18)
    parts[2][1] = parts[2][1] + np.uint64(1)  # erin's copy of x_0 is wrong
    with pytest.raises(ProtocolError, match="erin returned a share inconsistent with alice") as ei:
        sharing.combine(parts, "aby3", frac_bits=18, names=["alice", "bob", "erin"])
    assert ei.value.party == "erin" and ei.value.field == "parts"
    with pytest.raises(ValueError, match="2 names for 3 parts"):
        sharing.combine(parts, "aby3", names=["alice", "bob"])


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_share_order_matters_is_declared_by_the_protocol(protocol):
    """A share imported at another position of the party order is wrong exactly when the protocol says so."""
    from jointml.mpc.protocols import Aby3, Protocol

    assert Protocol.share_order_matters is True  # conservative default for a new protocol
    assert (Semi2k.share_order_matters, Aby3.share_order_matters) == (False, True)
    v = np.array([1.0, -3.0])
    order = ["alice", "bob", "erin"] if protocol == "aby3" else ["alice", "bob"]

    def make(ctx, parties):
        if protocol == "semi2k":
            return MpcDevice(ctx, parties, dealer="carol")
        return MpcDevice(ctx, parties, protocol="aby3")

    def prog(ctx):
        mpc = make(ctx, order)
        saved = ctx.party("alice").run(lambda: v).to(mpc).export_share()
        other = make(ctx, [order[1], order[0], *order[2:]])  # the same parties, the first two swapped
        got = other.import_share(saved, (2,)).reveal()
        return other.proto.share_order_matters, got

    names = order + (["carol"] if protocol == "semi2k" else [])
    out = simulate(prog, names, mode="thread")
    matters, got = out["alice"]
    assert matters == (protocol == "aby3")
    assert np.allclose(got, v) != matters  # additive shares survive the new order; replicated ones do not


def test_ring_backend_ops_wrap_and_match_numpy():
    assert get_backend("numpy") is bk
    a = G.integers(0, 2**64, size=1000, dtype=np.uint64)
    b = G.integers(0, 2**64, size=1000, dtype=np.uint64)
    assert (bk.add(a, b) == a + b).all() and (bk.sub(a, b) == a - b).all() and (bk.mul(a, b) == a * b).all()
    assert (bk.neg(a) == np.uint64(0) - a).all() and (bk.rshift(a, 63) == a >> np.uint64(63)).all()
    assert (bk.lshift(a, 5) == a << np.uint64(5)).all() and (bk.xor(a, b) == a ^ b).all()
    assert (bk.from_bytes(bk.to_bytes(a), np.uint64, a.shape) == a).all()
    assert isinstance(bk.add(np.uint64(2**63), np.uint64(2**63)), np.ndarray)  # 0-d: an array, no warning
    bits = (a & np.uint64(1)).astype(np.uint8)
    assert (bk.unpackbits(bk.packbits(bits), bits.size) == bits).all()
    with pytest.raises(ValueError):
        get_backend("cuda")


def test_dealer_corrections_are_received_after_the_open(monkeypatch):
    """The dealer only sends, so its work overlaps the parties' round only if a party takes
    the dealer's correction after sending its own opening (a `Later`, resolved late)."""
    from jointml.net import link as L

    events: list[tuple[str, str]] = []
    send, recv = L.Communicator.send, L.Communicator.recv

    def spy_send(self, peer, tag, *a, **k):
        if self.me == "bob":
            events.append(("send", tag))
        return send(self, peer, tag, *a, **k)

    def spy_recv(self, peer, tag, *a, **k):
        if self.me == "bob":
            events.append(("recv", tag))
        return recv(self, peer, tag, *a, **k)

    monkeypatch.setattr(L.Communicator, "send", spy_send)
    monkeypatch.setattr(L.Communicator, "recv", spy_recv)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
        x = ctx.party("alice").run(lambda: np.arange(4.0)).to(mpc)
        y = ctx.party("bob").run(lambda: np.ones((4, 2))).to(mpc)
        z = (x * x).reshape((1, 4)) @ y
        return z.reveal()

    out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
    assert np.allclose(out["alice"], [[14.0, 14.0]], atol=1e-3)
    tags = [t for _, t in events]
    for op in ("square", "matmul"):  # x * x is a square; the truncation pair comes with the triple
        assert tags.index("corr:" + op + "+trunc") > events.index(("send", op)), events
