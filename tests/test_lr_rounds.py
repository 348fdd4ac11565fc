"""SS-LR rounds per batch (issue 20): the fused seg3 step against the unfused one and plaintext."""

import numpy as np
import pytest

from jointml.core.prg import public_rng
from jointml.ml.linear import SSLogisticRegression
from jointml.mpc import MpcDevice, SecretArray
from jointml.mpc.functions import sigmoid, sigmoid_seg3_scaled
from jointml.runtime import simulate

PARTIES = ["bank", "partner", "dealer"]


class _Unfused(SSLogisticRegression):
    """The same model on the unfused step (seg3, then X^T r, then the step size): the reference."""

    def _has_scaled_residual(self):
        return False


def _data(n=600, d=6, seed=3):
    g = public_rng(seed)
    X = g.normal(size=(n, d))
    y = (X @ g.normal(size=d) + 0.3 * g.normal(size=n) > 0).astype(float)
    return X, y


@pytest.mark.parametrize("secret_labels", [False, True])
def test_fused_step_saves_a_round_per_batch_and_learns_the_same_weights(secret_labels):
    X, y = _data()

    def prog(ctx, cls):
        mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :3]), "partner": ctx.party("partner").run(lambda: X[:, 3:])}
        yl = ctx.party("bank").run(lambda: y)
        m = cls(mpc, epochs=2, batch_size=100, learning_rate=0.5, l2=0.01, reveal="bank")
        m.fit(xs, yl.to(mpc) if secret_labels else yl)
        return m.loop_rounds_, m.n_iter_, m.coef_, m.intercept_

    fused = simulate(prog, PARTIES, mode="thread", args=(SSLogisticRegression,))["bank"]
    plain = simulate(prog, PARTIES, mode="thread", args=(_Unfused,))["bank"]
    # 12 batches of 100 rows: one round fewer each (the scaled labels cost one truncation round
    # when the labels are secret, none when the label holder scales them in clear)
    assert fused[1] == plain[1] == 12
    assert fused[0] == plain[0] - 12 + (1 if secret_labels else 0)
    assert plain[0] / plain[1] == 12
    # the same gradient descent up to fixed-point rounding (the step size keeps 13+ bits)
    assert np.max(np.abs(fused[2] - plain[2])) < 2e-3
    assert fused[3] == pytest.approx(plain[3], abs=2e-3)
    # and the plaintext twin: mini-batch SGD with the same seg3 link, batch order and L2
    assert np.corrcoef(fused[2], _twin(X, y)[0])[0, 1] > 0.999


def _twin(X, y, epochs=2, m=100, lr=0.5, l2=0.01):
    from jointml.core.prg import Prg
    from jointml.ml.linear.base import public_permutation

    n, d = X.shape
    perm = public_permutation(n, 0)
    Xp, yp = X[perm], y[perm]
    w, b = np.zeros(d), 0.0
    rng = Prg((1).to_bytes(16, "little"), stream="batches")
    nb = n // m
    for _ in range(epochs):
        for bi in np.argsort(rng.uint64(nb), kind="stable"):
            xb, yb = Xp[bi * m:(bi + 1) * m], yp[bi * m:(bi + 1) * m]
            r = np.clip(0.5 + (725 / 4096) * (xb @ w + b), 0, 1) - yb
            w, b = w - lr * (xb.T @ r / m + l2 * w), b - lr * r.mean()
    return w, b


def test_sigmoid_seg3_scaled_matches_the_scaled_link_at_any_input_scale():
    g = public_rng(1)
    v = np.concatenate([g.normal(scale=4, size=400), [0.0, 2.8248, -2.8248, 1e4, -1e4, 3e5, -3e5]])

    def prog(ctx):
        mpc = MpcDevice(ctx, ["a", "b"], dealer="d")
        x = ctx.party("a").run(lambda: v).to(mpc)
        # the same values at 2f = 36 fractional bits, as an untruncated product arrives
        wide = SecretArray(mpc, (x.share * np.uint64(1 << 18)) if x.share is not None else None, x.shape, 36)
        ctx.reset_stats()
        out = sigmoid_seg3_scaled(wide, 0.5 / 1024, 27)
        rounds = ctx.stats()["rounds"]
        ref = sigmoid(x, "seg3")
        return out.reveal(), ref.reveal(), rounds

    got, ref, rounds = simulate(prog, ["a", "b", "d"], mode="thread")["a"]
    want = np.clip(0.5 + (725 / 4096) * v, 0, 1) * (0.5 / 1024)
    assert np.max(np.abs(got - want)) < 2e-7  # 13-bit step size: relative 1.2e-4 of <= 4.9e-4
    assert np.max(np.abs(got - ref * (0.5 / 1024))) < 2e-7
    assert rounds <= 8  # 6 (batched comparison) + mul + trunc (one fused product when the protocol has it)
