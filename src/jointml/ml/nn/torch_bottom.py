"""Split learning's bottom model in torch (`SplitNNClassifier(..., backend="torch")`).

The optional `jointml[torch]` extra (the CPU wheel is enough). A feature party's bottom model
becomes a `torch.nn.Sequential` of `Linear` layers (float64) with the same public initial
weights as the numpy model (`split_init`), trained with `torch.optim.SGD` with momentum
(v = mu v + g; w -= lr v: the numpy trainer's rule), so both backends train the same model up
to rounding. The label holder's gradient w.r.t. the cut layer comes in as a numpy array from
the link and is fed to `backward`; nothing else crosses a party boundary (no pickled torch
objects: the saved model part holds the weights as lists, like the numpy backend's).

Adversary model: local computation at one party on its own data; what it learns is what it
already holds.

>>> import pytest; _ = pytest.importorskip("torch")
>>> from jointml.ml.nn.plain import init_params
>>> b = TorchBottom(init_params([3, 4, 2], 0), "relu", learning_rate=0.1, momentum=0.9)
>>> e = b.forward(np.ones((5, 3)), train=True)
>>> b.step(np.ones((5, 2)) / 5); [w.shape for w, _ in b.params()]
[(3, 4), (4, 2)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.optional import require
from .plain import Params

__all__ = ["TorchBottom"]


class TorchBottom:
    """A bottom model in torch: `forward` (the cut-layer output as numpy), `step` (backward
    from the cut-layer gradient, then an SGD-with-momentum step), `params` (numpy weights)."""

    def __init__(self, params: Params, activation: str, *, learning_rate: float, momentum: float):
        torch = require("torch", "torch", feature="split learning's torch backend")
        layers: list[Any] = []
        for i, (w, b) in enumerate(params):
            lin = torch.nn.Linear(w.shape[0], w.shape[1], dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                lin.bias.copy_(torch.from_numpy(np.asarray(b)))
            layers.append(lin)
            if i < len(params) - 1:
                layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.Sigmoid())
        self._torch = torch
        self.net = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=float(learning_rate), momentum=float(momentum))
        self._out: Any = None

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """The cut-layer output of rows `x`; with `train` the graph is kept for `step`."""
        t = self._torch.tensor(np.asarray(x, dtype=np.float64))  # a copy (the party's rows may be read-only)
        if not train:
            with self._torch.no_grad():
                return self.net(t).numpy().copy()
        self._out = self.net(t)
        return self._out.detach().numpy().copy()

    def step(self, grad: np.ndarray) -> None:
        """Backpropagate the label holder's gradient of the last `forward(train=True)` and update."""
        self.opt.zero_grad()
        self._out.backward(self._torch.tensor(np.asarray(grad, dtype=np.float64)))  # a copy: wire arrays are read-only
        self.opt.step()
        self._out = None

    def params(self) -> Params:
        """The weights as the numpy backend's layer-wise (W, b) (for saving and prediction)."""
        lins = [m for m in self.net if isinstance(m, self._torch.nn.Linear)]
        return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in lins]
