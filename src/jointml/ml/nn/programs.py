"""The MPC MLP's training and prediction programs, written in the DSL (`jointml.dsl`).

`training_program` builds a `dsl.Function` for one network shape: every feature block is
private to its owner (or already secret), the one-hot labels private to the label holder
(or secret), the initial weights public; one `fori_loop` per epoch runs mini-batch SGD with
momentum over contiguous batches, with the forward and backward passes written out
(dense layers, ReLU or sigmoid hidden units, a softmax or sigmoid output under
cross-entropy: the output gradient is P - Y). It returns the trained weights as secrets.
`prediction_program` reveals the output probabilities to one party.

Security: that of the MPC device's protocol (semi2k: semi-honest, non-colluding dealer;
aby3: semi-honest honest majority); the compiler adds no reveal. During training nobody
learns anything but the public shapes and hyperparameters (weights, activations, gradients
and labels stay secret-shared; the first layer's products with a party's private block use
the masked-matrix operators, which open that block minus a one-time mask, never the
block). Prediction reveals the output probabilities to the named party only.

>>> f = training_program([("a", 2)], "b", n=4, sizes=[2, 1], epochs=1, batch_size=2,
...                      learning_rate=0.5, momentum=0.0)
>>> len(f.specs)
4
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...dsl import (
    Function,
    InputSpec,
    dynamic_slice,
    fori_loop,
    private,
    public,
    reciprocal,
    relu,
    secret,
    sigmoid,
    softmax,
    sqrt,
)
from .plain import ADAM_BETAS

__all__ = ["training_program", "prediction_program", "param_shapes"]


def param_shapes(widths: Sequence[int], sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Shapes of the flat parameter list: the first layer's weights split by feature block
    (one (d_p, h1) matrix per block), its bias, then (W, b) of every later layer.

    >>> param_shapes([2, 3], [5, 4, 1])
    [(2, 4), (3, 4), (4,), (4, 1), (1,)]
    """
    out: list[tuple[int, ...]] = [(int(d), int(sizes[1])) for d in widths] + [(int(sizes[1]),)]
    for a, b in zip(sizes[1:-1], sizes[2:]):
        out += [(int(a), int(b)), (int(b),)]
    return out


def _spec(owner: str | None, shape: tuple[int, ...]) -> InputSpec:
    return secret(shape) if owner is None else private(owner, shape)


def _named(fn: Any, names: list[str]) -> Any:
    """Give a variadic function named parameters (the DSL binds inputs by signature)."""
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in names])
    return fn


def _act(name: str, z: Any, train: bool) -> tuple[Any, Any]:
    """(activation, what its derivative needs). ReLU in training reuses its mask for the
    backward pass (one comparison per unit, not two)."""
    if name == "relu":
        if not train:
            return relu(z), None
        mask = z > 0.0
        return z * mask, mask
    h = sigmoid(z, mode="accurate")
    return h, h


def _forward(xs: list[Any], ps: list[Any], act: str, sig_err: float, train: bool,
             masks: list[Any] | None = None) -> tuple[list[Any], list[Any], Any]:
    nb = len(xs)
    z = xs[0] @ ps[0]
    for x, w in zip(xs[1:], ps[1:nb]):
        z = z + x @ w
    z = z + ps[nb]
    hs: list[Any] = []
    keep: list[Any] = []
    rest = ps[nb + 1:]
    for j in range(len(rest) // 2):
        h, k = _act(act, z, train)
        if masks is not None:  # dropout: a public mask, a local product (no interaction)
            h = h * masks[j]
        hs.append(h)
        keep.append(k)
        z = h @ rest[2 * j] + rest[2 * j + 1]
    out = sigmoid(z, error=sig_err) if z.shape[-1] == 1 else softmax(z, axis=1)
    return hs, keep, out


def _backward(xs: list[Any], y: Any, ps: list[Any], hs: list[Any], keep: list[Any], p: Any,
              act: str, m: int, masks: list[Any] | None = None) -> list[Any]:
    nb = len(xs)
    d = (p - y) * (1.0 / m)  # cross-entropy through softmax / sigmoid: dL/dz = P - Y
    rest = ps[nb + 1:]
    tail: list[Any] = []
    for j in range(len(rest) // 2 - 1, -1, -1):
        tail = [hs[j].T @ d, d.sum(axis=0)] + tail
        d = d @ rest[2 * j].T
        if masks is not None:
            d = d * masks[j]
        d = d * keep[j] if act == "relu" else d * (keep[j] * (1.0 - keep[j]))
    return [x.T @ d for x in xs] + [d.sum(axis=0)] + tail


def _adam(ps: list[Any], ms: list[Any], vs: list[Any], grads: list[Any], a: Any, s: Any,
          eps: float) -> tuple[list[Any], list[Any], list[Any]]:
    """Adam as `jointml.ml.nn.plain.adam_step`: w - a m / (sqrt(v) s + eps), (a, s) public."""
    b1, b2 = ADAM_BETAS
    ms = [mm * b1 + g for mm, g in zip(ms, grads)]  # unscaled moments: see adam_schedule
    vs = [vv * b2 + g * g for vv, g in zip(vs, grads)]
    new = [w - (mm * reciprocal(sqrt(vv) * s + eps)) * a for w, mm, vv in zip(ps, ms, vs)]
    return new, ms, vs


def training_program(blocks: Sequence[tuple[str | None, int]], label_owner: str | None, *, n: int,
                     sizes: Sequence[int], epochs: int, batch_size: int, learning_rate: float,
                     momentum: float, activation: str = "relu", sigmoid_error: float = 1e-3,
                     dropout: bool = False, optimizer: str = "sgd", adam_eps: float = 1e-2) -> Function:
    """Training of an MLP with layer sizes `sizes` ([d, h1, ..., k], d the sum of the block
    widths; k = 1 for a sigmoid output) on `n` rows; inputs: the blocks (`owner` None: a
    secret block), the targets (n, k), the initial parameters (public, `param_shapes`), and
    with `dropout` one public mask per hidden layer, (epochs * batches * batch_size, width)
    (`jointml.ml.nn.plain.dropout_masks`). `optimizer="adam"` adds two public inputs of
    shape (epochs * batches,): Adam's bias corrections (`jointml.ml.nn.plain.adam_schedule`);
    the update is m / (sqrt(v) s + eps) (a secure square root and reciprocal per weight)."""
    widths = [d for _, d in blocks]
    shapes = param_shapes(widths, sizes)
    specs = [_spec(o, (n, d)) for o, d in blocks] + [_spec(label_owner, (n, int(sizes[-1])))]
    specs += [public(s) for s in shapes]
    nb, npar, m = len(blocks), len(shapes), int(batch_size)
    steps = n // m
    hidden = [int(h) for h in sizes[1:-1]]
    if dropout:
        specs += [public((int(epochs) * steps * m, h)) for h in hidden]
    adam = optimizer == "adam"
    if adam:
        specs += [public((int(epochs) * steps,)), public((int(epochs) * steps,))]
    nmask = len(hidden) if dropout else 0
    nstate = 3 * npar if adam else 2 * npar

    def step(i: Any, carry: Any, epoch: int) -> Any:
        ps, vs, data = list(carry[:npar]), list(carry[npar:2 * npar]), carry[nstate:]
        xs = [dynamic_slice(X, i * m, m) for X in data[:nb]]
        y = dynamic_slice(data[nb], i * m, m)
        mk = [dynamic_slice(M, i * m + epoch * steps * m, m) for M in data[nb + 1:nb + 1 + nmask]] if dropout else None
        hs, keep, p = _forward(xs, ps, activation, sigmoid_error, True, mk)
        grads = _backward(xs, y, ps, hs, keep, p, activation, m, mk)
        if adam:
            sched = [dynamic_slice(c, i + epoch * steps, 1) for c in data[nb + 1 + nmask:]]
            new, ms, vv = _adam(ps, vs, list(carry[2 * npar:3 * npar]), grads, sched[0], sched[1], adam_eps)
            return tuple(new + ms + vv) + tuple(data)
        if momentum:
            vs = [v * float(momentum) + g for v, g in zip(vs, grads)]
        else:
            vs = grads
        return tuple([w - v * float(learning_rate) for w, v in zip(ps, vs)] + vs) + tuple(data)

    def train(*args: Any) -> Any:
        data, init = list(args[:nb + 1]), list(args[nb + 1:nb + 1 + npar])
        zeros = [np.zeros(s) for s in shapes] * (2 if adam else 1)
        carry = tuple(init + zeros + data + list(args[nb + 1 + npar:]))
        for e in range(int(epochs)):  # unrolled: one recorded loop per epoch
            carry = fori_loop(0, steps, functools.partial(step, epoch=e), carry)
        return tuple(carry[:npar])

    names = [f"x{i}" for i in range(nb)] + ["y"] + [f"p{i}" for i in range(npar)]
    names += [f"mask{j}" for j in range(len(hidden))] if dropout else []
    names += ["adam_a", "adam_s"] if adam else []
    return Function(_named(train, names), specs, name="mlp_train")


def prediction_program(blocks: Sequence[tuple[str | None, int]], *, n: int, sizes: Sequence[int], to: str,
                       activation: str = "relu", sigmoid_error: float = 1e-3) -> Function:
    """Output probabilities (n, k) of the MLP on `n` rows, revealed to party `to`; inputs:
    the blocks, then the parameters (secret)."""
    shapes = param_shapes([d for _, d in blocks], sizes)
    specs = [_spec(o, (n, d)) for o, d in blocks] + [secret(s) for s in shapes]
    nb = len(blocks)

    def predict(*args: Any) -> Any:
        _, _, p = _forward(list(args[:nb]), list(args[nb:]), activation, sigmoid_error, False)
        return p.reveal(to=to)

    names = [f"x{i}" for i in range(nb)] + [f"p{i}" for i in range(len(shapes))]
    return Function(_named(predict, names), specs, name="mlp_predict")
