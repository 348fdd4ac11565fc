"""`MPCMLPClassifier`: a multilayer perceptron trained and evaluated under MPC.

Dense layers, ReLU or sigmoid hidden units, a softmax output (or one sigmoid unit for two
classes) under cross-entropy, mini-batch SGD with momentum or Adam (`optimizer="adam"`:
a secure square root and reciprocal per weight and step; `adam_eps` is larger than the
usual 1e-8 because the second moments live in fixed point), dropout with public masks. The forward and backward
passes are DSL programs (`jointml.ml.nn.programs`); the compiler masks each party's
feature block once for the whole training, batches the openings, and picks the sigmoid
approximation within `sigmoid_error`. Training data is a `VDataFrame` (or a
`{party: PartyObject}` mapping: features split by columns across parties) or secret-shared
blocks; the labels are the label holder's integer classes or secret targets.

Initialisation is public: every party draws the same weights from `random_state`
(`jointml.ml.nn.plain.init_params`). Weights are not data, so a public starting point
reveals nothing about anybody's rows; the first update mixes in secret gradients, and from
then on the weights are secret-shared. The rows are put in an order drawn from the same
public seed, and batches are contiguous in it (the last partial batch is dropped), so a
numpy network trained with the same initialisation and batches is a plaintext twin.

Security (semi2k: semi-honest, non-colluding dealer; aby3: semi-honest honest majority).
Every party learns the public shapes (rows, each block's width, layer sizes), the
hyperparameters and the class set announced by the label holder (`classes_`); nothing of
the features, labels, activations, gradients or weights (secret-shared throughout; a
party's block enters the products masked by a one-time mask). Prediction reveals the
output probabilities of the rows to the one named party. A deviating party can corrupt
the model (semi-honest protocols detect nothing) but learns no more than the above.
Saved parts hold this party's shares of the weights only.

>>> from jointml.mpc import MpcDevice
>>> X = np.array([[0., 1.], [1., 0.], [0., 2.], [2., 0.]] * 4); y = (X[:, 0] > X[:, 1]).astype(int)
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
...     Xp = {"bank": ctx.party("bank").run(lambda: X[:, :1]), "shop": ctx.party("shop").run(lambda: X[:, 1:])}
...     m = MPCMLPClassifier(mpc, hidden_layer_sizes=(4,), epochs=20, batch_size=4, learning_rate=0.5)
...     m.fit(Xp, ctx.party("bank").run(lambda: y))
...     pred = m.predict(Xp, to="bank")             # every party takes part; only bank gets the classes
...     return pred.value if pred.is_local else None
>>> bool((simulate(prog, ["bank", "shop", "dealer"], mode="thread")["bank"] == y).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...core.errors import ModelError
from ...mpc import MpcDevice, SecretArray
from ...runtime.collectives import broadcast
from ...runtime.device import PartyObject
from ...runtime.persist import ModelPart
from ..arrays_json import arrays_from_json, arrays_to_json
from ..base import SecureEstimator, check_param, mpc_part_problem, mpc_part_public
from ..checks import announced_shape
from ..linear.base import public_permutation
from ..linear.features import FeatureLayout, block_shapes, check_blocks, collect_blocks, prediction_rows
from .plain import HIDDEN_ACTIVATIONS, BatchNorm, adam_schedule, dropout_masks, fold_batch_norm, init_params, one_hot
from .programs import param_shapes, prediction_program, training_program

__all__ = ["MPCMLPClassifier", "flat_params"]


def flat_params(params: list[tuple[np.ndarray, np.ndarray]], widths: list[int]) -> list[np.ndarray]:
    """Layer-wise (W, b) as the programs' flat list: the first W split by block rows.

    >>> [a.shape for a in flat_params(init_params([3, 2, 1], 0), [1, 2])]
    [(1, 2), (2, 2), (2,), (2, 1), (1,)]
    """
    offs = np.cumsum([0] + list(widths))
    first = [params[0][0][offs[i]:offs[i + 1]] for i in range(len(widths))]
    rest = [a for w, b in params[1:] for a in (w, b)]
    return first + [params[0][1]] + rest


class MPCMLPClassifier(SecureEstimator):
    """An MLP classifier trained under MPC (see the module docstring)."""

    error = ModelError
    _fitted_attr = "params_"

    def __init__(self, device: MpcDevice, *, hidden_layer_sizes: tuple[int, ...] = (16,), activation: str = "relu",
                 epochs: int = 5, batch_size: int = 32, learning_rate: float = 0.1, momentum: float = 0.9,
                 random_state: int = 0, sigmoid_error: float = 1e-3, n_classes: int | None = None,
                 dropout: float = 0.0, optimizer: str = "sgd", adam_eps: float = 1e-2):
        self.device = device
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.random_state = random_state
        self.sigmoid_error = sigmoid_error
        self.n_classes = n_classes
        self.dropout = dropout
        self.optimizer = optimizer
        self.adam_eps = adam_eps

    def _validate_params(self) -> None:
        check_param("hidden_layer_sizes", self.hidden_layer_sizes,
                    lambda v: all(int(h) >= 1 and int(h) == h for h in v), "a tuple of positive integers")
        check_param("activation", self.activation, lambda v: v in HIDDEN_ACTIVATIONS, f"one of {HIDDEN_ACTIVATIONS}")
        check_param("epochs", self.epochs, lambda v: int(v) == v and v >= 1, "an integer >= 1")
        check_param("batch_size", self.batch_size, lambda v: int(v) == v and v >= 1, "an integer >= 1")
        check_param("learning_rate", self.learning_rate, lambda v: v > 0, "> 0")
        check_param("momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        check_param("sigmoid_error", self.sigmoid_error, lambda v: v > 0, "> 0")
        check_param("optimizer", self.optimizer, lambda v: v in ("sgd", "adam"), "'sgd' or 'adam'")
        check_param("adam_eps", self.adam_eps, lambda v: v > 0, "> 0")
        check_param("dropout", self.dropout, lambda v: 0 <= v < 1, "in [0, 1)")
        check_param("n_classes", self.n_classes, lambda v: v is None or (int(v) == v and v >= 2), "None or >= 2")

    # -- training ----------------------------------------------------------------------
    def _labels(self, y: Any, n_rows: int) -> tuple[Any, int]:
        """(targets (n, k) at the label holder or secret, k); sets `classes_`, `label_owner_`."""
        ctx = self.ctx
        if isinstance(y, SecretArray):
            if self.n_classes is None:
                raise ModelError("secret targets need n_classes (the class set cannot be read from secret labels)",
                                 field="n_classes")
            k = 1 if self.n_classes == 2 else int(self.n_classes)
            if tuple(y.shape) not in ((n_rows, k), (n_rows,)) or (y.ndim == 1 and k != 1):
                raise ModelError(f"secret targets must be one-hot ({n_rows}, {k}) (or ({n_rows},) 0/1 for two "
                                 f"classes), got {tuple(y.shape)}", field="y")
            self.label_owner_, self.classes_ = None, np.arange(int(self.n_classes))
            return (y.astype_fxp() if y.fxp == 0 else y).reshape(n_rows, k), int(self.n_classes)
        if not isinstance(y, PartyObject):
            raise ModelError(f"y must be the label holder's PartyObject or a SecretArray, got {type(y).__name__}",
                             field="y")
        shape = announced_shape(ctx, y, "label vector", ndim=(1,))
        if shape[0] != n_rows:
            raise ModelError(f"party '{y.owner}': {shape[0]} labels for {n_rows} rows; align the data with PSI first",
                             field="y")
        # The class set is public to the job: it fixes the output layer's width.
        classes = np.unique(y.value).tolist() if y.is_local else None
        got = broadcast(ctx, y.owner, meta={"classes": classes} if y.is_local else None, name="mlp-classes")
        self.classes_ = np.array(got.meta["classes"])
        if len(self.classes_) < 2:
            raise ModelError(f"party '{y.owner}': the labels hold {len(self.classes_)} class; need >= 2", field="y")
        self.label_owner_ = y.owner
        targets = one_hot(np.searchsorted(self.classes_, y.value), len(self.classes_)) if y.is_local else None
        return targets, len(self.classes_)

    def fit(self, X: Any, y: Any, feature_names: dict | None = None) -> MPCMLPClassifier:
        """Train on X (a VDataFrame or {party: PartyObject | SecretArray}) and labels y (the
        label holder's PartyObject of classes, or secret one-hot targets with `n_classes`).
        Every party calls it (SPMD)."""
        self._validate_params()
        ctx, mpc = self.ctx, self.device
        parts, names = collect_blocks(X, feature_names)
        check_blocks(ctx, mpc, parts)
        shapes = block_shapes(ctx, parts)
        rows = {p: s[0] for p, s in shapes.items()}
        if len(set(rows.values())) != 1:
            raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
        n = int(next(iter(rows.values())))
        if n < int(self.batch_size):
            raise ModelError(f"{n} training rows is fewer than one batch ({self.batch_size})", field="batch_size")
        targets, k = self._labels(y, n)
        self.features_ = FeatureLayout(list(parts), [int(shapes[p][1]) for p in parts],
                                       [list(names.get(p, [f"{p}_x{i}" for i in range(shapes[p][1])])) for p in parts])
        self.sizes_ = [self.features_.d, *[int(h) for h in self.hidden_layer_sizes], 1 if k == 2 else k]
        perm = public_permutation(n, int(self.random_state))  # public batch order
        blocks = [(None if isinstance(o, SecretArray) else p, int(shapes[p][1])) for p, o in parts.items()]
        prog = training_program(blocks, self.label_owner_, n=n, sizes=self.sizes_, epochs=int(self.epochs),
                                batch_size=int(self.batch_size), learning_rate=float(self.learning_rate),
                                momentum=float(self.momentum), activation=self.activation,
                                sigmoid_error=float(self.sigmoid_error), dropout=bool(self.dropout), optimizer=self.optimizer,
                                adam_eps=float(self.adam_eps))
        init = flat_params(init_params(self.sizes_, int(self.random_state), self.activation), self.features_.widths)
        data = [_rows(o, perm) for o in parts.values()] + [_rows(targets, perm)]
        if self.dropout:  # public masks (see jointml.ml.nn.plain.dropout_masks)
            n_masked = int(self.epochs) * (n // int(self.batch_size)) * int(self.batch_size)
            init += dropout_masks(int(self.random_state), n_masked, self.sizes_[1:-1], float(self.dropout))
        if self.optimizer == "adam":  # bias corrections: public per-step constants
            init += list(adam_schedule(int(self.epochs) * (n // int(self.batch_size)), float(self.learning_rate)))
        self.params_ = list(prog.run(ctx, mpc, *data, *init))
        self.__dict__.pop("model_id_", None)  # a new training gets a new id at save
        return self

    # -- a network trained elsewhere ------------------------------------------------------
    @classmethod
    def from_weights(cls, device: MpcDevice, params: PartyObject, *, blocks: dict[str, int], classes: Sequence[Any],
                     activation: str = "relu", batch_norm: Sequence[BatchNorm | None] | None = None,
                     bn_eps: float = 1e-5) -> MPCMLPClassifier:
        """A classifier for secure prediction from a network its owner trained elsewhere:
        `params` is that party's PartyObject of layer-wise [(W, b), ...] (numpy); batch norm
        at inference after any dense layer (`batch_norm`: one (gamma, beta, running mean,
        running variance) or None per layer, read at the owner only) is folded into the
        layer before it at the owner (`fold_batch_norm`), then the weights are
        secret-shared. `blocks`: each feature party's width, in column order (public).
        The others learn the layer sizes, nothing of the weights or the statistics. Every
        party calls it (SPMD).

        >>> from jointml.mpc import MpcDevice
        >>> W = [(np.array([[1.0], [-1.0]]), np.array([0.0]))]
        >>> bn = [(np.array([2.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]))]
        >>> def prog(ctx):
        ...     mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        ...     net = ctx.party("shop").run(lambda: W)
        ...     m = MPCMLPClassifier.from_weights(mpc, net, blocks={"bank": 1, "shop": 1}, classes=[0, 1], batch_norm=bn)
        ...     X = {"bank": ctx.party("bank").run(lambda: np.ones((1, 1))),
        ...          "shop": ctx.party("shop").run(lambda: np.zeros((1, 1)))}
        ...     p = m.predict_proba(X, to="shop")
        ...     return round(float(p.value[0, 1]), 2) if p.is_local else None
        >>> simulate(prog, ["bank", "shop", "dealer"], mode="thread")["shop"]   # sigmoid(2 * 1)
        0.88
        """
        ctx, owner = device.ctx, params.owner
        m = cls(device, activation=activation)
        m._validate_params()
        folded = None
        if params.is_local:
            layers = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)) for w, b in params.value]
            folded = fold_batch_norm(layers, list(batch_norm) if batch_norm is not None else [None] * len(layers),
                                     float(bn_eps))
        sizes_meta = {"sizes": [folded[0][0].shape[0]] + [w.shape[1] for w, _ in folded]} if folded else None
        sizes = [int(v) for v in broadcast(ctx, owner, meta=sizes_meta, name="mlp-weights").meta["sizes"]]
        widths = [int(w) for w in blocks.values()]
        k = len(classes)
        if sizes[0] != sum(widths) or sizes[-1] != (1 if k == 2 else k):
            raise ModelError(f"party '{owner}': a network with layer sizes {sizes} does not fit {sum(widths)} feature "
                             f"columns and {k} classes", party=owner, field="params")
        m.features_ = FeatureLayout(list(blocks), widths, [[f"{p}_x{i}" for i in range(w)] for p, w in blocks.items()])
        m.sizes_, m.classes_, m.label_owner_ = sizes, np.asarray(list(classes)), owner
        m.hidden_layer_sizes = tuple(sizes[1:-1])
        flat = flat_params(folded, widths) if folded else [None] * len(param_shapes(widths, sizes))
        m.params_ = [device.transfer_in(ctx.party(owner).run(lambda a=a: a), fxp=True) for a in flat]
        return m

    # -- prediction --------------------------------------------------------------------
    def predict_proba(self, X: Any, to: str | None = None) -> PartyObject:
        """Output probabilities (n, n_classes) revealed to `to` only (default: the label
        holder, or the first MPC party for a model trained on secret labels)."""
        if not hasattr(self, "params_"):
            raise ModelError("the model is not fitted: call fit() before predict_proba()")
        ctx = self.ctx
        to = to or self.label_owner_ or self.device.parties[0]
        if to not in ctx.parties:
            raise ModelError(f"party '{to}' is not in the cluster {ctx.parties}", field="to")
        parts, _ = collect_blocks(X, None)
        n = prediction_rows(ctx, parts, self.features_)
        blocks = [(None if isinstance(o, SecretArray) else p, w)
                  for (p, o), w in zip(parts.items(), self.features_.widths)]
        prog = prediction_program(blocks, n=n, sizes=self.sizes_, to=to, activation=self.activation,
                                  sigmoid_error=float(self.sigmoid_error))
        p = prog.run(ctx, self.device, *[_rows(o, None) for o in parts.values()], *self.params_)
        if p is not None and self.sizes_[-1] == 1:
            p = np.column_stack([1.0 - p[:, 0], p[:, 0]])
        return ctx.party(to).run(lambda: p)

    def predict(self, X: Any, to: str | None = None) -> PartyObject:
        """The predicted class per row, at `to` only (argmax of `predict_proba` there)."""
        proba = self.predict_proba(X, to)
        return self.ctx.party(proba.owner).run(lambda q: self.classes_[np.argmax(q, axis=1)], proba)

    # -- persistence -------------------------------------------------------------------
    def _part_public(self) -> dict[str, Any]:
        return {**mpc_part_public(self.device), "features": self.features_.to_json(), "sizes": list(self.sizes_),
                "classes": np.asarray(self.classes_).tolist(), "label_owner": self.label_owner_}

    def _part_state(self) -> dict[str, Any]:
        return {"shares": [arrays_to_json(w.export_share()) for w in self.params_]}

    def _check_part(self, part: ModelPart) -> str | None:
        problem = mpc_part_problem(part.public, self.device)
        if problem:
            return problem
        try:
            self._import(part)
        except (ModelError, ValueError, KeyError) as e:
            return f"party '{self.ctx.me}': the model part's shares do not fit the device: {e}"
        return None

    def _import(self, part: ModelPart) -> list[SecretArray]:
        lay = FeatureLayout.from_json(part.public["features"])
        shapes = param_shapes(lay.widths, part.public["sizes"])
        saved = part.state["shares"]
        if len(saved) != len(shapes):
            raise ModelError(f"{len(saved)} saved weight arrays, the layout needs {len(shapes)}")
        return [self.device.import_share(arrays_from_json(s, "saved share of the weights"), sh)
                for s, sh in zip(saved, shapes)]

    def _restore(self, part: ModelPart) -> None:
        self.features_ = FeatureLayout.from_json(part.public["features"])
        self.sizes_ = list(part.public["sizes"])
        self.classes_ = np.array(part.public["classes"])
        self.label_owner_ = part.public["label_owner"]
        self.params_ = self._import(part)


def _rows(o: Any, perm: np.ndarray | None) -> Any:
    """This party's input for a program: its own block's rows in the public order, a
    secret's rows, or None for another party's block."""
    if isinstance(o, SecretArray):
        return o if perm is None else o[perm]
    if isinstance(o, PartyObject):
        o = o.value if o.is_local else None
    if o is None:
        return None
    a = np.asarray(o, dtype=np.float64)
    return a if perm is None else a[perm]
