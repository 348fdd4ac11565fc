"""Plaintext multilayer perceptrons in numpy: the twin the MPC MLP is tested against, and
the bottom and top models of split learning.

Nothing here is secret: the functions run on one party's own data (a split-learning bottom
model, the label holder's top model) or on pooled data in tests and benchmarks (the
plaintext twin of `jointml.ml.nn.MPCMLPClassifier`, trained with the same initialisation
and the same batches). Adversary model: none (local computation); what a party learns is
what it already holds.

Initial weights come from a public seed (`init_params`): weights are not data, so a
public initialisation reveals nothing about anybody's rows, and it lets every party and
the plaintext twin start from the same point.

>>> params = init_params([4, 3, 2], seed=0)
>>> [w.shape for w, _ in params]
[(4, 3), (3, 2)]
>>> X, Y = np.eye(4)[:2], np.eye(2)
>>> trained = train_plaintext(X, Y, params, epochs=3, batch_size=2, learning_rate=0.5)
>>> forward(X, trained)[-1].shape
(2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...core.errors import ParameterError
from ...core.prg import public_rng

__all__ = ["init_params", "forward", "backward", "train_plaintext", "activation_fn", "HIDDEN_ACTIVATIONS",
           "one_hot", "sgd_momentum", "dropout_masks",
           "adam_schedule", "adam_step", "ADAM_BETAS", "fold_batch_norm", "BatchNorm"]

Params = list[tuple[np.ndarray, np.ndarray]]

HIDDEN_ACTIVATIONS = ("relu", "sigmoid")


def init_params(sizes: Sequence[int], seed: int, activation: str = "relu") -> Params:
    """Public initial weights for layer sizes `[d, h1, ..., k]`: He-uniform for ReLU layers,
    Glorot-uniform otherwise, zero biases (the same at every party for the same seed).

    >>> a, b = init_params([3, 2], seed=7), init_params([3, 2], seed=7)
    >>> bool(np.array_equal(a[0][0], b[0][0]))
    True
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ParameterError(f"layer sizes must be >= 2 positive integers, got {list(sizes)}", field="sizes")
    rng = public_rng(int(seed))  # public: initial weights protect nothing (see the module docstring)
    out: Params = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        relu_in = activation == "relu" and i < len(sizes) - 2
        lim = np.sqrt(6.0 / a) if relu_in else np.sqrt(6.0 / (a + b))
        out.append((rng.uniform(-lim, lim, size=(int(a), int(b))), np.zeros(int(b))))
    return out


def activation_fn(name: str, z: np.ndarray) -> np.ndarray:
    """A hidden layer's activation.

    >>> activation_fn("relu", np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    raise ParameterError(f"unknown activation {name!r}; use one of {HIDDEN_ACTIVATIONS}", field="activation")


def _output(z: np.ndarray) -> np.ndarray:
    if z.shape[1] == 1:  # binary: one sigmoid unit
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(X: np.ndarray, params: Params, activation: str = "relu", output: bool = True,
            masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """The activations of every layer, input first; the last is the output layer's
    probabilities (sigmoid for one unit, softmax otherwise), or its pre-activation with
    `output=False` (a split-learning bottom model's cut layer). `masks`: dropout, one
    (rows, width) array per hidden layer (0 or 1/(1-p), see `dropout_masks`).

    >>> forward(np.ones((1, 2)), [(np.ones((2, 1)), np.zeros(1))])[-1].round(3).tolist()
    [[0.881]]
    """
    acts = [np.asarray(X, dtype=np.float64)]
    for i, (w, b) in enumerate(params):
        z = acts[-1] @ w + b
        last = i == len(params) - 1
        if last:
            acts.append(_output(z) if output else z)
        else:
            h = activation_fn(activation, z)
            acts.append(h if masks is None else h * masks[i])
    return acts


def backward(acts: list[np.ndarray], d_out: np.ndarray, params: Params,
             activation: str = "relu", masks: Sequence[np.ndarray] | None = None) -> tuple[Params, np.ndarray]:
    """Gradients of every (W, b) from `d_out`, the loss gradient w.r.t. the last layer's
    pre-activation, and the gradient w.r.t. the input (what split learning sends back).

    >>> acts = forward(np.ones((2, 2)), init_params([2, 2], 0))
    >>> g, dx = backward(acts, acts[-1] - np.eye(2), init_params([2, 2], 0))
    >>> dx.shape
    (2, 2)
    """
    grads: Params = []
    d = d_out
    for i in range(len(params) - 1, -1, -1):
        w = params[i][0]
        grads.append((acts[i].T @ d, d.sum(axis=0)))
        d = d @ w.T
        if i > 0:
            h = acts[i]
            if masks is not None:  # dropped units pass no gradient; kept ones were scaled
                mk = masks[i - 1]
                d = d * mk
                h = np.divide(h, mk, out=np.zeros_like(h), where=mk > 0)
            d = d * ((h > 0).astype(np.float64) if activation == "relu" else h * (1.0 - h))
    return grads[::-1], d


def sgd_momentum(params: Params, vel: Params, grads: Params, lr: float, momentum: float) -> tuple[Params, Params]:
    """One step of SGD with (heavy-ball) momentum: v = mu v + g; w = w - lr v.

    >>> p, v = sgd_momentum([(np.ones(1), np.zeros(1))], [(np.zeros(1), np.zeros(1))],
    ...                     [(np.ones(1), np.ones(1))], 0.5, 0.9)
    >>> p[0][0].tolist(), v[0][0].tolist()
    ([0.5], [1.0])
    """
    new_v = [(momentum * vw + gw, momentum * vb + gb) for (vw, vb), (gw, gb) in zip(vel, grads)]
    new_p = [(w - lr * vw, b - lr * vb) for (w, b), (vw, vb) in zip(params, new_v)]
    return new_p, new_v


ADAM_BETAS = (0.9, 0.999)


def adam_schedule(steps: int, learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Adam's constants per step t = 1..steps, public: a = lr (1 - b1) / (1 - b1^t) and
    s = sqrt((1 - b2) / (1 - b2^t)). With the moments kept unscaled (m = b1 m + g,
    v = b2 v + g^2: `adam_step`) the update a m / (sqrt(v) s + eps) is exactly Adam's, and
    v stays 1/(1 - b2) = 1000 times larger than Adam's own, far from fixed point's resolution.

    >>> a, s = adam_schedule(2, 0.1)
    >>> a.round(4).tolist(), s.round(3).tolist()
    ([0.1, 0.0526], [1.0, 0.707])
    """
    t = np.arange(1, int(steps) + 1, dtype=np.float64)
    b1, b2 = ADAM_BETAS
    return learning_rate * (1.0 - b1) / (1.0 - b1 ** t), np.sqrt((1.0 - b2) / (1.0 - b2 ** t))


def adam_step(params: Params, state: tuple[Params, Params], grads: Params, a: float, s: float,
              eps: float) -> tuple[Params, tuple[Params, Params]]:
    """One Adam step written as the MPC program computes it: m, v moments; w -= a m / (sqrt(v) s + eps)
    with (a, s) from `adam_schedule` (the bias corrections folded into public constants).

    >>> p, _ = adam_step([(np.ones(1), np.zeros(1))], ([(np.zeros(1), np.zeros(1))], [(np.zeros(1), np.zeros(1))]),
    ...                  [(np.ones(1), np.ones(1))], 1.0, 1.0, 1e-8)
    >>> p[0][0].round(3).tolist()
    [0.0]
    """
    b1, b2 = ADAM_BETAS
    ms = [(b1 * mw + gw, b1 * mb + gb) for (mw, mb), (gw, gb) in zip(state[0], grads)]
    vs = [(b2 * vw + gw * gw, b2 * vb + gb * gb) for (vw, vb), (gw, gb) in zip(state[1], grads)]
    new = [(w - a * mw / (np.sqrt(vw) * s + eps), b - a * mb / (np.sqrt(vb) * s + eps))
           for (w, b), (mw, mb), (vw, vb) in zip(params, ms, vs)]
    return new, (ms, vs)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Targets for the output layer: one-hot rows, or one 0/1 column for two classes.

    >>> one_hot(np.array([0, 2]), 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if n_classes == 2:
        return y.astype(np.float64).reshape(-1, 1)
    return np.eye(n_classes)[y]


def dropout_masks(seed: int, rows: int, widths: Sequence[int], rate: float) -> list[np.ndarray]:
    """Public dropout masks, one (rows, width) array per hidden layer: 0 for a dropped unit,
    1/(1-rate) for a kept one. Public, like the initial weights: which units a step drops
    depends on the seed only, never on the data, so revealing it reveals nothing.

    >>> m = dropout_masks(0, 4, [3], 0.5)[0]
    >>> m.shape, sorted(set(m.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    ((4, 3), True)
    """
    rng = public_rng(int(seed) + 7919)  # public (see the docstring)
    return [(rng.random((int(rows), int(w))) >= rate) / (1.0 - rate) for w in widths]


BatchNorm = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # gamma, beta, running mean, running variance


def fold_batch_norm(params: Params, norms: Sequence[BatchNorm | None], eps: float = 1e-5) -> Params:
    """Batch normalisation at inference folded into the dense layer before it: a layer
    z = x W + b followed by BN(z) = gamma (z - mean) / sqrt(var + eps) + beta becomes
    x (W s) + (b - mean) s + beta with s = gamma / sqrt(var + eps) (per unit). `norms` has
    one entry per dense layer, None where no BN follows it. At inference BN is affine with
    fixed statistics, so the folded network computes exactly the same function, and under
    MPC it costs nothing beyond the dense layer (no secure division or square root).

    >>> W, b = np.array([[2.0], [1.0]]), np.array([1.0])
    >>> bn = (np.array([3.0]), np.array([0.5]), np.array([1.0]), np.array([4.0 - 1e-5]))
    >>> (Wf, bf), = fold_batch_norm([(W, b)], [bn])
    >>> x = np.array([[1.0, 1.0]])
    >>> round(float((x @ Wf + bf)[0, 0]), 6), float(3.0 * ((x @ W + b)[0, 0] - 1.0) / 2.0 + 0.5)
    (5.0, 5.0)
    """
    if len(norms) != len(params):
        raise ParameterError(f"{len(norms)} batch-norm entries for {len(params)} dense layers (use None for a layer "
                             "without batch norm)", field="batch_norm")
    out: Params = []
    for i, ((w, b), bn) in enumerate(zip(params, norms)):
        if bn is None:
            out.append((np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)))
            continue
        gamma, beta, mean, var = (np.asarray(a, dtype=np.float64).reshape(-1) for a in bn)
        if not all(len(a) == w.shape[1] for a in (gamma, beta, mean, var)) or (var < 0).any():
            raise ParameterError(f"batch norm after layer {i}: gamma, beta, mean and var need {w.shape[1]} values each "
                                 "(var >= 0)", field="batch_norm")
        s = gamma / np.sqrt(var + eps)
        out.append((np.asarray(w, dtype=np.float64) * s, (np.asarray(b, dtype=np.float64) - mean) * s + beta))
    return out


def train_plaintext(X: np.ndarray, Y: np.ndarray, params: Params, *, epochs: int, batch_size: int,
                    learning_rate: float, momentum: float = 0.0, activation: str = "relu",
                    dropout: float = 0.0, seed: int = 0, optimizer: str = "sgd", adam_eps: float = 1e-2) -> Params:
    """Mini-batch SGD (with momentum) on contiguous batches of `batch_size` rows, the last
    partial batch dropped: the same schedule as the MPC trainer (shuffle rows beforehand).
    `Y` as from `one_hot`; the loss is cross-entropy (softmax or sigmoid output), so the
    output gradient is (P - Y) / batch_size. `optimizer="adam"`: `adam_step` (momentum unused).
    With `dropout` > 0 the hidden units are
    dropped by `dropout_masks(seed, epochs * batches * batch_size, ...)`, row block by row block.

    >>> p = train_plaintext(np.eye(2), np.eye(2)[:, :1], init_params([2, 1], 0), epochs=50,
    ...                     batch_size=2, learning_rate=1.0)
    >>> (forward(np.eye(2), p)[-1][:, 0] > 0.5).tolist()
    [True, False]
    """
    params = [(w.copy(), b.copy()) for w, b in params]
    vel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in params]
    state = (vel, [(np.zeros_like(w), np.zeros_like(b)) for w, b in params])
    n_batches = X.shape[0] // batch_size
    sched = adam_schedule(epochs * n_batches, learning_rate)
    hidden = [w.shape[1] for w, _ in params[:-1]]
    all_masks = dropout_masks(seed, epochs * n_batches * batch_size, hidden, dropout) if dropout else None
    for e in range(epochs):
        for i in range(n_batches):
            rows = slice(i * batch_size, (i + 1) * batch_size)
            at = (e * n_batches + i) * batch_size
            mk = None if all_masks is None else [m[at:at + batch_size] for m in all_masks]
            acts = forward(X[rows], params, activation, masks=mk)
            grads, _ = backward(acts, (acts[-1] - Y[rows]) / batch_size, params, activation, masks=mk)
            if optimizer == "adam":
                t = e * n_batches + i
                params, state = adam_step(params, state, grads, float(sched[0][t]), float(sched[1][t]), adam_eps)
            else:
                params, vel = sgd_momentum(params, vel, grads, learning_rate, momentum)
    return params
