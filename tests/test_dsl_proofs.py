"""Proof points of the DSL: SS-LR mini-batch training in a few lines with the AUC of the
hand-written SSLogisticRegression; a two-layer MLP forward and backward pass."""

import numpy as np
import pytest

from jointml import dsl
from jointml.core.prg import public_rng
from jointml.dsl.examples import logistic_regression
from jointml.dsl.examples import mlp_step as make_mlp
from jointml.ml.linear import SSLogisticRegression
from jointml.ml.linear.base import public_permutation
from jointml.mpc import MpcDevice
from jointml.runtime import simulate

PARTIES = ["bank", "partner", "dealer"]


def _auc(y, s):
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    return (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


def make_lr(n, da, db, epochs, batch, lr, sigmoid_error=0.06):
    return logistic_regression(n, da, db, epochs, batch, lr, sigmoid_error)


def _data(n=1200, d=6):
    g = public_rng(3)
    X = g.normal(size=(n, d))
    y = (X @ np.linspace(1.0, -1.0, d) + 0.3 + g.normal(size=n) > 0).astype(float)
    return X, y


def test_ss_lr_in_the_dsl_matches_sslogisticregression():
    X, y = _data()
    n, d, da = X.shape[0], X.shape[1], 3
    epochs, batch, lr = 3, 100, 1.0
    perm = public_permutation(n, 0)  # SS-LR's public batch order
    Xp, yp = X[perm], y[perm]
    train = make_lr(n, da, d - da, epochs, batch, lr)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        me = ctx.me
        w = train.run(ctx, mpc, Xp[:, :da] if me == "bank" else None, Xp[:, da:] if me == "partner" else None,
                      yp if me == "bank" else None)
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :da]), "partner": ctx.party("partner").run(lambda: X[:, da:])}
        model = SSLogisticRegression(mpc, epochs=epochs, batch_size=batch, learning_rate=lr, sigmoid="seg3")
        model.fit(xs, ctx.party("bank").run(lambda: y))
        p = model.predict_proba(xs)
        return w, (p.value if me == "bank" else None)

    w, p_hand = simulate(prog, PARTIES, mode="thread")["bank"]
    auc_dsl = _auc(y, X @ w[:d] + w[d])
    auc_hand = _auc(y, p_hand)
    assert abs(auc_dsl - auc_hand) <= 0.002, (auc_dsl, auc_hand)
    # the plaintext twin of the same program (exact sigmoid) agrees too
    w_plain = train.evaluate(Xp[:, :da], Xp[:, da:], yp)
    assert abs(_auc(y, X @ w_plain[:d] + w_plain[d]) - auc_dsl) <= 0.01


def test_ss_lr_program_is_short_and_compiles_to_masked_products():
    import inspect

    src = inspect.getsource(logistic_regression).split('rows by a public permutation first)')[1]
    body = [ln for ln in src.splitlines()[2:] if ln.strip() and not ln.strip().startswith("#")]
    assert len(body) <= 20  # the whole training program, declarations included
    train = make_lr(1000, 5, 5, 2, 100, 1.0)
    prog = train.compile(protocol="semi2k", compute=["bank", "partner"])
    ops = [o.op for o in prog.graph.ops]
    assert ops.count("masked_setup") == 2  # each party's matrix masked once, outside both loops
    inner = [o for o in prog.graph.walk() if o.op == "masked_matmul"]
    assert inner and {o.impl for o in inner} == {"private_masked"}
    sig = next(o for o in prog.graph.walk() if o.op == "sigmoid")
    assert sig.impl == "seg3"  # the cheapest approximation within the 0.06 error budget
    text = train.explain(protocol="semi2k", compute=["bank", "partner"])
    assert "private_masked" in text and "runner-up" in text and "sigmoid (seg3" in text


mlp_step = make_mlp(16, 4, 8)


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_two_layer_mlp_forward_backward(protocol):
    g = public_rng(5)
    x, y = g.normal(size=(16, 4)), g.normal(size=(16, 1))
    w1, w2 = g.normal(size=(4, 8)) * 0.5, g.normal(size=(8, 1)) * 0.5

    def prog(ctx):
        if protocol == "semi2k":
            mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        else:
            mpc = MpcDevice(ctx, PARTIES, protocol="aby3")
        s1 = ctx.party("partner").run(lambda: w1).to(mpc)
        s2 = ctx.party("bank").run(lambda: w2).to(mpc)
        return mlp_step.run(ctx, mpc, x if ctx.me == "bank" else None, y if ctx.me == "partner" else None, s1, s2)

    out, g1, g2 = simulate(prog, PARTIES, mode="thread")["bank"]
    want = mlp_step.evaluate(x, y, w1, w2)
    # the plaintext twin is the hand-derived gradient
    h = np.maximum(x @ w1, 0)
    d = (h @ w2 - y) * 2 / 16
    assert np.allclose(want[2], h.T @ d) and np.allclose(want[1], x.T @ ((d @ w2.T) * (x @ w1 > 0)))
    for got, ref in zip((out, g1, g2), want):
        assert np.allclose(got, ref, atol=2e-3)


def test_partner_view_holds_no_plaintext_of_the_label_holder():
    """What bob (the partner) receives while the DSL trains: never alice's features or labels
    in plaintext or in fixed-point encoding, whichever product implementation is chosen."""
    X, y = _data(n=400, d=4)
    train = logistic_regression(400, 2, 2, 1, 100, 1.0)
    cols = (X[:, 0], X[:, 1], y, X[:, :2].reshape(-1)[:400])
    enc = {np.round(v * 2**18).astype(np.int64).view(np.uint64).tobytes() for v in cols}
    plain = {np.ascontiguousarray(v).tobytes() for v in cols}
    leak = dsl.function(lambda y: dsl.reveal(y * 1.0, to="partner"), y=dsl.private("bank", (400,)))

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        seen = []
        if ctx.me == "partner":
            orig = ctx.comm.recv

            def spy(peer, tag, *a, **k):
                msg = orig(peer, tag, *a, **k)
                seen.extend(np.asarray(arr) for arr in msg.arrays)
                return msg

            ctx.comm.recv = spy
        for impl in ("beaver", "private_masked"):
            train.run(ctx, mpc, X[:, :2] if ctx.me == "bank" else None, X[:, 2:] if ctx.me == "partner" else None,
                      y if ctx.me == "bank" else None, pins={"matmul": impl})
        n_train = len(seen)
        leak.run(ctx, mpc, y if ctx.me == "bank" else None)  # control: a reveal the program writes
        return seen[:n_train], seen[n_train:]

    def found(arrays):
        for arr in arrays:
            flat = arr.reshape(-1)
            for k in range(0, max(flat.size - 399, 1), 100):  # 400-element windows of each array
                window = flat[k : k + 400].tobytes()
                if window in enc or window in plain:
                    return True
        return False

    seen, control = simulate(prog, PARTIES, mode="thread")["partner"]
    assert seen and not found(seen)
    assert found(control)  # the detector does see a plaintext y when the program reveals it
