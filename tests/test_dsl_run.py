"""DSL programs executed on the MPC runtime (semi2k with a dealer, aby3) equal their plaintext
numpy twin; private-only work stays at its owner; reveals go only where the program says."""

import numpy as np
import pytest

from jointml import dsl
from jointml.mpc import MpcDevice
from jointml.runtime import simulate

PARTIES = ["alice", "bob", "carol"]
TOL = 2e-3  # fixed point (2^-18) through products, and the sigmoid/exp/reciprocal approximations


def _device(ctx, protocol):
    if protocol == "semi2k":
        return MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    return MpcDevice(ctx, PARTIES, protocol="aby3")


def _run(fn, protocol, inputs, owners, **kw):
    """Run `fn` at every party; inputs[i] goes to owners[i] (None: every party)."""

    def prog(ctx):
        mpc = _device(ctx, protocol)
        args = [x if o is None or o == ctx.me else None for x, o in zip(inputs, owners)]
        return fn.run(ctx, mpc, *args, **kw)

    return simulate(prog, PARTIES, mode="thread")


X = np.array([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5], [0.1, 0.2, 0.3]])
W = np.array([0.3, -0.6, 0.9])


@dsl.function(x=dsl.private("alice", (4, 3)), w=dsl.private("bob", (3,)), b=dsl.public(()))
def many_ops(x, w, b):
    z = x @ w + b  # secret (alice x bob)
    h = dsl.relu(z) * 0.5 - z[::-1] * z  # broadcasting, slicing, products
    m = dsl.where(z > 0.2, dsl.sigmoid(z), dsl.exp(z * 0.5))
    c = dsl.concatenate([h.reshape(2, 2), m.reshape(2, 2).T], axis=1)
    r = dsl.reciprocal(x.sum(axis=1) * 0 + 2.0 + (z * z))  # private part stays at alice
    loc = (x * x).mean(axis=0)  # alice alone, revealed to bob
    sm = dsl.softmax(dsl.abs(z).reshape(2, 2), axis=1)
    return (c.sum(axis=0) + sm.sum()).reveal(), (z <= 0.0).reveal(), r.reveal(to="carol"), loc.reveal(to="bob")


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
@pytest.mark.parametrize("optimize", [False, True])
def test_ops_match_plaintext(protocol, optimize):
    b = np.array(0.25)
    want = many_ops.evaluate(X, W, b)
    res = _run(many_ops, protocol, [X, W, b], ["alice", "bob", None], optimize=optimize)
    c, le, r, loc = res["alice"]
    assert np.allclose(c, want[0], atol=TOL) and le.tolist() == want[1].tolist()
    assert r is None and loc is None  # alice receives neither reveal to carol nor to bob
    assert np.allclose(res["carol"][2], want[2], atol=TOL)
    assert np.allclose(res["bob"][3], want[3], atol=1e-12)  # computed in plaintext at alice
    assert res["bob"][2] is None


@dsl.function(X=dsl.private("alice", (8, 2)), y=dsl.private("bob", (8,)))
def gd(X, y):
    def step(i, w):
        xb, yb = dsl.dynamic_slice(X, i * 4, 4), dsl.dynamic_slice(y, i * 4, 4)
        return w - xb.T @ (xb @ w - yb) * 0.05

    w = dsl.fori_loop(0, 2, step, np.zeros(2))
    for _ in range(2):  # a Python loop unrolls
        w = w * 1.0
    return w.reveal()


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_fori_loop_matches_plaintext(protocol):
    Xv = np.arange(16.0).reshape(8, 2) / 8
    yv = np.linspace(-1, 1, 8)
    res = _run(gd, protocol, [Xv, yv], ["alice", "bob"])
    assert np.allclose(res["bob"], gd.evaluate(Xv, yv), atol=1e-4)


def test_private_only_function_sends_nothing():
    @dsl.function(x=dsl.private("alice", (3,)))
    def f(x):
        return dsl.exp(x).sum() * 2.0

    def prog(ctx):
        mpc = _device(ctx, "semi2k")
        ctx.reset_stats()
        out = f.run(ctx, mpc, np.array([0.0, 1.0, 2.0]) if ctx.me == "alice" else None)
        return out, ctx.stats()["msgs_sent"]

    res = simulate(prog, PARTIES, mode="thread")
    assert np.isclose(res["alice"][0], 2 * np.exp([0, 1, 2]).sum())
    assert res["bob"] == (None, 0) and res["carol"] == (None, 0) and res["alice"][1] == 0


def test_secret_inputs_and_outputs():
    @dsl.function(s=dsl.secret((2,)))
    def f(s):
        return s * s  # returned unrevealed: a SecretArray

    def prog(ctx):
        mpc = _device(ctx, "aby3")
        s = ctx.party("bob").run(lambda: np.array([1.5, -2.0])).to(mpc)
        return f.run(ctx, mpc, s).reveal()

    assert simulate(prog, PARTIES, mode="thread")["carol"].tolist() == [2.25, 4.0]


@dsl.function(X=dsl.private("alice", (8, 2)), y=dsl.private("bob", (8,)))
def nested(X, y):
    def epoch(e, w):
        def step(i, w):
            xb = dsl.dynamic_slice(X, i * 4, 4)
            return w - xb.T @ (xb @ w - dsl.dynamic_slice(y, i * 4, 4)) * 0.05

        return dsl.fori_loop(0, 2, step, w) * 1.0

    return dsl.fori_loop(0, 3, epoch, np.zeros(2)).reveal()


def test_nested_loops_hoist_to_the_top():
    prog = nested.compile(protocol="semi2k", compute=["alice", "bob"], pins={"matmul": "private_masked"})
    assert [o.op for o in prog.graph.ops].count("masked_setup") == 1  # out of both loops
    inner = next(o for o in next(o for o in prog.graph.ops if o.op == "fori").body.ops if o.op == "fori")
    assert len({v.id for v in inner.ins}) == len(inner.ins)  # no duplicated captures
    Xv, yv = np.arange(16.0).reshape(8, 2) / 8, np.linspace(-1, 1, 8)
    res = _run(nested, "semi2k", [Xv, yv], ["alice", "bob"], pins={"matmul": "private_masked"})
    assert np.allclose(res["bob"], nested.evaluate(Xv, yv), atol=1e-4)


def test_wrong_input_shape_fails_at_every_party_not_only_the_owner():
    """An owner whose private input does not match its declaration announces it: every party
    raises the same DataError naming the owner at once, nobody waits for a share."""
    from jointml.core.errors import DataError

    @dsl.function(x=dsl.private("alice", (3,)), w=dsl.secret((3,)))
    def f(x, w):
        return (x * w).sum().reveal(to="bob")

    def prog(ctx):
        mpc = _device(ctx, "semi2k")
        x = np.ones(4) if ctx.me == "alice" else None  # declared (3,)
        try:
            f.run(ctx, mpc, x, None)
        except DataError as e:
            return e.party, "declared (3,)" in str(e)
        return None

    res = simulate(prog, PARTIES, mode="thread", timeout=20)
    assert all(res[p] == ("alice", True) for p in PARTIES)
