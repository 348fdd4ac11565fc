"""Programs written in the DSL: the proof points of docs/dsl.md, the tests and `jointml bench dsl`.

* `logistic_regression`: SS-LR mini-batch training on vertically partitioned data (the
  label holder holds y and some features, a partner the other features);
* `feature_flags`: a feature-engineering expression with many independent comparisons
  (round batching turns k comparisons into the rounds of one);
* `mlp_step`: a two-layer MLP forward and backward pass (squared error);
* `private_product`: one product of a private matrix with another party's vector (the
  WAN proof point: its implementation depends on the network).

Security: each program's reveals are its outputs: the trained weights to the label holder,
the score to the label holder, the MLP outputs and gradients to every compute party.

>>> train = logistic_regression(10_000, 20, 20, epochs=1, batch=500, lr=1.0)
>>> [o.op for o in train.compile(protocol="semi2k", compute=["bank", "partner"]).graph.ops].count("masked_setup")
2
"""

from __future__ import annotations

import numpy as np

from .function import Function, function, private, secret
from .trace import concatenate, dynamic_slice, fori_loop, relu, sigmoid

__all__ = ["logistic_regression", "feature_flags", "mlp_step", "private_product"]


def logistic_regression(n: int, da: int, db: int, epochs: int, batch: int, lr: float,
                        sigmoid_error: float = 0.06, owner: str = "bank", partner: str = "partner") -> Function:
    """SS-LR: `epochs` passes of mini-batch gradient descent over contiguous batches (shuffle the
    rows by a public permutation first); returns [w_owner, w_partner, b] revealed to `owner`."""

    @function(Xa=private(owner, (n, da)), Xb=private(partner, (n, db)), y=private(owner, (n,)))
    def train(Xa, Xb, y):  # type: ignore[no-untyped-def]
        def step(i, w):  # type: ignore[no-untyped-def]
            wa, wb, b = w
            xa, xb = dynamic_slice(Xa, i * batch, batch), dynamic_slice(Xb, i * batch, batch)
            r = sigmoid(xa @ wa + xb @ wb + b, error=sigmoid_error) - dynamic_slice(y, i * batch, batch)
            g = lr / batch
            return wa - (xa.T @ r) * g, wb - (xb.T @ r) * g, b - r.sum() * g

        w = (np.zeros(da), np.zeros(db), np.array(0.0))
        for _ in range(epochs):  # unrolled: one loop per epoch, the matrices masked once for all
            w = fori_loop(0, n // batch, step, w)
        return concatenate([w[0], w[1], w[2].reshape(1)]).reveal(to=owner)

    return train


def feature_flags(n: int, owner: str = "alice", partner: str = "bob") -> Function:
    """A score from eight threshold flags on joint values of two parties (revealed to `owner`)."""

    @function(x=private(owner, (n,)), y=private(partner, (n,)))
    def flags(x, y):  # type: ignore[no-untyped-def]
        s, d = x + y, x - y
        fl = [s > 0.5, s < -0.5, d > 1.0, d < -1.0, s > d, s * 2.0 < y, s + d > 0.0, d * 0.5 < x]
        score = fl[0] * 1
        for k, f in enumerate(fl[1:]):
            score = score + f * (k + 2)
        return score.reveal(to=owner)

    return flags


def mlp_step(m: int, d: int, h: int, owner: str = "bank", partner: str = "partner") -> Function:
    """Forward and backward pass of relu(x W1) W2 under squared error on a batch of m rows:
    (outputs, dL/dW1, dL/dW2), revealed to every compute party."""

    @function(x=private(owner, (m, d)), y=private(partner, (m, 1)), w1=secret((d, h)), w2=secret((h, 1)))
    def step(x, y, w1, w2):  # type: ignore[no-untyped-def]
        h_pre = x @ w1
        hid = relu(h_pre)
        out = hid @ w2
        d_out = (out - y) * (2.0 / m)
        g2 = hid.T @ d_out
        d_h = (d_out @ w2.T) * (h_pre > 0.0)
        g1 = x.T @ d_h
        return out.reveal(), g1.reveal(), g2.reveal()

    return step


def private_product(n: int, d: int, owner: str = "alice", partner: str = "bob") -> Function:
    """X @ w for X (n x d) private to `owner` and w private to `partner`, revealed to `owner`.
    Used once, so masking X pays its one-time opening for one product: under a LAN profile the
    masked product (fewer bytes) wins at moderate sizes, under the WAN the Beaver product (one
    round fewer).

    >>> f = private_product(1250, 10)
    >>> [next(o.attrs["choice"]["chosen"] for o in f.compile(protocol="semi2k", profile=p).graph.walk()
    ...       if "choice" in o.attrs) for p in ("lan", "wan")]
    ['private_masked', 'beaver']
    """

    @function(X=private(owner, (n, d)), w=private(partner, (d,)))
    def product(X, w):  # type: ignore[no-untyped-def]
        return (X @ w).reveal(to=owner)

    return product
