"""Split learning (vertical): bottom models at the feature parties, a top model at the label holder.

Each feature party trains a bottom model (a numpy MLP, `jointml.ml.nn.plain`, or the same
network in torch with `backend="torch"`: `jointml.ml.nn.torch_bottom`) on its own columns;
its cut-layer outputs (embeddings) for a batch go to the label holder, whose top model
takes their concatenation, computes the cross-entropy loss against its labels, and sends
each party the gradient of the loss w.r.t. that party's embeddings; each side then updates
its own model. The messages cross the links through the collectives (`gather` of the
embeddings, one `send_to` per party for the gradients): two messages per party and batch.
Batches follow a public order drawn from `random_state`. Undefended, this is exactly the
SGD of the composed network trained in one place (`train_centralised`, same `split_init`
weights and batches): split learning costs no accuracy, only its defences do. Prediction
sends the embeddings of the rows to the label holder, which alone sees the probabilities.

Adversary model: semi-honest parties, no cryptography. What each party learns:

* **The label holder** sees every party's cut-layer activations of every training and
  prediction row, in clear. They are a function of the raw features and a known leakage
  channel: feature/model inversion from intermediate representations (He, Zhang and Lee,
  "Model inversion attacks against collaborative inference", ACSAC 2019; Luo et al.,
  "Feature inference attack on model predictions in vertical federated learning", ICDE
  2021). Mitigation here: `embedding_epsilon` clips each row's embedding to L2 norm
  `embedding_clip` and adds Gaussian noise through `jointml.dp.gaussian` (an
  (epsilon, delta) release per row and per epoch; epochs and prediction compose).
* **A feature party** sees, per training row, the gradient of the loss w.r.t. its
  embedding. Its norm and direction depend on the label: the norm and direction scoring
  attacks of Li et al., "Label leakage and protection in two-party split learning"
  (ICLR 2022) recover the labels with high AUC (`norm_attack_auc` measures it on a
  party's own view: `gradient_norms_`; `direction_attack_auc` on `cut_gradients_`).
  Mitigations here, applied by the label holder to the gradients that leave it (its own
  block never leaves and is never perturbed): `marvell_sumkl` / `marvell_power` add
  Marvell's per-class Gaussian noise (`jointml.ml.nn.marvell`: optimised so the two
  classes' perturbed gradients are hard to tell apart; two classes only; noise from
  `jointml.core.prg` at the label holder); `gradient_epsilon` clips each row's gradient to
  `gradient_clip` and adds Gaussian noise calibrated to the change one label can make
  (2 x clip) through `jointml.dp.gaussian` (label DP per epoch). Measured on the credit
  data: docs/nn.md.
* Everyone learns the public shapes, hyperparameters, the class set (announced by the
  label holder) and the batch order. A deviating label holder can send crafted gradients
  to steer a bottom model (e.g. toward revealing features); a deviating feature party can
  poison the model. Nothing detects either.

>>> X = np.array([[0., 1.], [1., 0.], [0., 2.], [2., 0.]] * 8); y = (X[:, 0] > X[:, 1]).astype(int)
>>> def prog(ctx):
...     xs = {"bank": ctx.party("bank").run(lambda: X[:, :1]), "shop": ctx.party("shop").run(lambda: X[:, 1:])}
...     m = SplitNNClassifier(ctx, bottom_hidden=(4,), cut_dim=2, top_hidden=(), epochs=30, batch_size=8,
...                           learning_rate=0.3).fit(xs, ctx.party("bank").run(lambda: y))
...     p = m.predict(xs)                           # the label holder alone gets the classes
...     return p.value if p.is_local else None
>>> bool((simulate(prog, ["bank", "shop"], mode="thread")["bank"] == y).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import ModelError
from ...core.prg import Prg
from ...dp import gaussian
from ...runtime.collectives import broadcast, gather, send_to
from ...runtime.device import PartyObject
from ...runtime.persist import ModelPart
from ..base import SecureEstimator, check_param
from ..checks import announced_shape
from ..linear.base import public_permutation
from ..linear.features import FeatureLayout, block_shapes, collect_blocks, prediction_rows
from . import marvell
from .plain import HIDDEN_ACTIVATIONS, Params, backward, forward, init_params, one_hot, sgd_momentum
from .torch_bottom import TorchBottom

__all__ = ["SplitNNClassifier", "norm_attack_auc", "direction_attack_auc", "clip_rows", "split_init",
           "train_centralised", "predict_centralised"]


def split_init(widths: list[int], bottom_hidden: tuple[int, ...], cut_dim: int, top_hidden: tuple[int, ...],
               n_outputs: int, seed: int, activation: str = "relu") -> tuple[list[Params], Params]:
    """The public initial weights of a split network: one bottom model per feature block
    (`widths`, in the layout's order) and the top model; what `SplitNNClassifier` draws.

    >>> bottoms, top = split_init([3, 2], (4,), 2, (), 1, seed=0)
    >>> [[w.shape for w, _ in b] for b in bottoms], [w.shape for w, _ in top]
    ([[(3, 4), (4, 2)], [(2, 4), (4, 2)]], [(4, 1)])
    """
    bottoms = [init_params([int(w), *[int(h) for h in bottom_hidden], int(cut_dim)], int(seed) * 1009 + i + 1,
                           activation) for i, w in enumerate(widths)]
    top = init_params([int(cut_dim) * len(widths), *[int(h) for h in top_hidden], int(n_outputs)], int(seed), activation)
    return bottoms, top


def predict_centralised(blocks: list[np.ndarray], bottoms: list[Params], top: Params,
                        activation: str = "relu") -> np.ndarray:
    """The output probabilities of the composed network (bottoms side by side, then the top).

    >>> bottoms, top = split_init([1, 1], (2,), 1, (), 1, seed=0)
    >>> predict_centralised([np.ones((3, 1)), np.zeros((3, 1))], bottoms, top).shape
    (3, 1)
    """
    E = np.hstack([forward(b, p, activation, output=False)[-1] for b, p in zip(blocks, bottoms)])
    return forward(E, top, activation)[-1]


def train_centralised(blocks: list[np.ndarray], Y: np.ndarray, bottoms: list[Params], top: Params, *, epochs: int,
                      batch_size: int, learning_rate: float, momentum: float = 0.9, activation: str = "relu",
                      seed: int = 0) -> tuple[list[Params], Params]:
    """The plaintext twin of split learning: the SAME network (bottom models side by side
    under the top model) trained in one place by mini-batch SGD with momentum, in the batch
    order `SplitNNClassifier` draws from `seed`. Undefended split learning computes exactly
    this (each side's gradients are the composed network's), so the two agree to rounding.

    >>> X = np.array([[0., 1.], [1., 0.]] * 8); Y = one_hot((X[:, 0] > 0).astype(int), 2)
    >>> b, t = train_centralised([X[:, :1], X[:, 1:]], Y, *split_init([1, 1], (4,), 2, (), 1, 0), epochs=20,
    ...                          batch_size=4, learning_rate=0.3)
    >>> (predict_centralised([X[:, :1], X[:, 1:]], b, t)[:, 0] > 0.5).astype(int).tolist() == Y[:, 0].tolist()
    True
    """
    n, m, c = len(Y), int(batch_size), bottoms[0][-1][0].shape[1]
    bottoms = list(bottoms)
    perm = public_permutation(n, int(seed))
    bvel = [[(np.zeros_like(w), np.zeros_like(b)) for w, b in p] for p in bottoms]
    tvel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in top]
    for _ in range(int(epochs)):
        for i in range(n // m):
            rows = perm[i * m:(i + 1) * m]
            acts = [forward(x[rows], p, activation, output=False) for x, p in zip(blocks, bottoms)]
            tacts = forward(np.hstack([a[-1] for a in acts]), top, activation)
            tg, dE = backward(tacts, (tacts[-1] - Y[rows]) / m, top, activation)
            top, tvel = sgd_momentum(top, tvel, tg, learning_rate, momentum)
            for j, a in enumerate(acts):
                bg, _ = backward(a, dE[:, j * c:(j + 1) * c], bottoms[j], activation)
                bottoms[j], bvel[j] = sgd_momentum(bottoms[j], bvel[j], bg, learning_rate, momentum)
    return bottoms, top


def clip_rows(a: np.ndarray, c: float) -> np.ndarray:
    """Each row scaled down to L2 norm at most `c`.

    >>> clip_rows(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0).round(2).tolist()
    [[0.6, 0.8], [0.3, 0.4]]
    """
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a * np.minimum(1.0, c / np.maximum(norms, 1e-12))


def norm_attack_auc(norms: np.ndarray, labels: np.ndarray) -> float:
    """AUC of the norm attack (Li et al., ICLR 2022): score each row by its cut-layer
    gradient norm and rank against the true binary labels (0.5: nothing learned). The
    attacker picks the better orientation, so the result is max(AUC, 1 - AUC).

    >>> norm_attack_auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 1, 1]))
    1.0
    """
    s, y = np.asarray(norms, dtype=np.float64), np.asarray(labels).astype(bool)
    ranks = np.empty(len(s))
    ranks[np.argsort(s, kind="stable")] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # ties share their mean rank
        ranks[s == v] = ranks[s == v].mean()
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ModelError("the norm attack's AUC needs both labels among the rows", field="labels")
    auc = (ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg)
    return float(max(auc, 1.0 - auc))


def direction_attack_auc(grads: np.ndarray, labels: np.ndarray, known: int) -> float:
    """AUC of the direction (cosine) attack (Li et al., ICLR 2022): a feature party that
    knows the label of one row `known` scores every row by the cosine between its cut-layer
    gradient and that row's; for a sigmoid output the gradient is (p - y) times a shared
    Jacobian, so same-label rows point the same way. Ranked against "same label as `known`".

    >>> g = np.array([[1.0, 0.1], [0.9, 0.0], [-1.0, 0.0], [-0.8, -0.1]])
    >>> direction_attack_auc(g, np.array([1, 1, 0, 0]), known=0)
    1.0
    """
    g = np.asarray(grads, dtype=np.float64)
    ref = g[int(known)]
    cos = g @ ref / np.maximum(np.linalg.norm(g, axis=1) * np.linalg.norm(ref), 1e-30)
    same = (np.asarray(labels) == np.asarray(labels)[int(known)]).astype(int)
    return norm_attack_auc(cos, same)


class SplitNNClassifier(SecureEstimator):
    """Split-learning classifier (see the module docstring). The device is the party context."""

    error = ModelError
    _fitted_attr = "layout_"
    bottom_: Params | None  # this party's bottom model (feature parties)
    top_: Params | None     # the top model (label holder)
    _torch: TorchBottom | None

    def __init__(self, device: Any, *, bottom_hidden: tuple[int, ...] = (16,), cut_dim: int = 8,
                 top_hidden: tuple[int, ...] = (16,), activation: str = "relu", epochs: int = 5,
                 batch_size: int = 32, learning_rate: float = 0.1, momentum: float = 0.9, random_state: int = 0,
                 embedding_epsilon: float | None = None, embedding_clip: float = 4.0,
                 gradient_epsilon: float | None = None, gradient_clip: float = 0.05, delta: float = 1e-5,
                 marvell_sumkl: float | None = None, marvell_power: float | None = None, backend: str = "numpy"):
        self.device = device
        self.bottom_hidden = bottom_hidden
        self.cut_dim = cut_dim
        self.top_hidden = top_hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.random_state = random_state
        self.embedding_epsilon = embedding_epsilon
        self.embedding_clip = embedding_clip
        self.gradient_epsilon = gradient_epsilon
        self.gradient_clip = gradient_clip
        self.delta = delta
        self.marvell_sumkl = marvell_sumkl
        self.marvell_power = marvell_power
        self.backend = backend

    def _validate_params(self) -> None:
        pos_ints = "a tuple of positive integers"
        check_param("bottom_hidden", self.bottom_hidden, lambda v: all(int(h) == h >= 1 for h in v), pos_ints)
        check_param("top_hidden", self.top_hidden, lambda v: all(int(h) == h >= 1 for h in v), pos_ints)
        check_param("cut_dim", self.cut_dim, lambda v: int(v) == v >= 1, "an integer >= 1")
        check_param("activation", self.activation, lambda v: v in HIDDEN_ACTIVATIONS, f"one of {HIDDEN_ACTIVATIONS}")
        check_param("epochs", self.epochs, lambda v: int(v) == v >= 1, "an integer >= 1")
        check_param("batch_size", self.batch_size, lambda v: int(v) == v >= 1, "an integer >= 1")
        check_param("learning_rate", self.learning_rate, lambda v: v > 0, "> 0")
        check_param("momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        for f in ("embedding_epsilon", "gradient_epsilon"):
            check_param(f, getattr(self, f), lambda v: v is None or v > 0, "None or > 0")
        for f in ("embedding_clip", "gradient_clip"):
            check_param(f, getattr(self, f), lambda v: v > 0, "> 0")
        check_param("delta", self.delta, lambda v: 0 < v < 1, "in (0, 1)")
        check_param("backend", self.backend, lambda v: v in ("numpy", "torch"), "'numpy' or 'torch' (jointml[torch])")
        for f in ("marvell_sumkl", "marvell_power"):
            check_param(f, getattr(self, f), lambda v: v is None or v > 0, "None or > 0")
        chosen = [f for f in ("gradient_epsilon", "marvell_sumkl", "marvell_power") if getattr(self, f) is not None]
        if len(chosen) > 1:
            raise ModelError(f"choose one label-leakage defence, not {chosen}", field=chosen[1])

    # -- training ----------------------------------------------------------------------
    def fit(self, X: Any, y: PartyObject, feature_names: dict | None = None) -> SplitNNClassifier:
        """Train on X (a VDataFrame or {party: PartyObject}) and the label holder's classes y
        (every party calls it: SPMD)."""
        self._validate_params()
        ctx = self.ctx
        parts, names = collect_blocks(X, feature_names)
        if not isinstance(y, PartyObject):
            raise ModelError(f"y must be the label holder's PartyObject, got {type(y).__name__}", field="y")
        for p, o in parts.items():
            if not isinstance(o, PartyObject) or o.owner != p:
                raise ModelError(f"X['{p}'] must be a PartyObject owned by '{p}' (split learning keeps data in clear "
                                 "at its owner)", field="X")
        shapes = block_shapes(ctx, parts)
        n = self._rows(shapes, announced_shape(ctx, y, "label vector", ndim=(1,)), y.owner)
        classes = np.unique(y.value).tolist() if y.is_local else None
        got = broadcast(ctx, y.owner, meta={"classes": classes} if y.is_local else None, name="split-classes")
        self.classes_ = np.array(got.meta["classes"])
        if len(self.classes_) < 2:
            raise ModelError(f"party '{y.owner}': the labels hold one class; need >= 2", field="y")
        if self._marvell() and len(self.classes_) != 2:
            raise ModelError(f"Marvell's gradient perturbation is for two classes; the labels hold {len(self.classes_)}"
                             " (use gradient_epsilon= for more)", field="marvell_sumkl")
        self.label_owner_ = y.owner
        self.layout_ = FeatureLayout(list(parts), [int(shapes[p][1]) for p in parts],
                                     [list(names.get(p, [f"{p}_x{i}" for i in range(shapes[p][1])])) for p in parts])
        self._init_models()
        # the defences' noise: fresh OS-seeded AES-CTR at the label holder, unknown to the others
        self._prg = Prg() if ctx.me == y.owner else None
        self.sumkl_: list[float] = []  # Marvell: each batch's sumKL bound (label holder)
        perm = public_permutation(n, int(self.random_state))
        Y = one_hot(np.searchsorted(self.classes_, y.value), len(self.classes_)) if y.is_local else None
        mine = parts[ctx.me].value if ctx.me in parts else None
        self.gradient_norms_ = np.zeros(n) if mine is not None else None
        # this party's view of the last epoch: the cut-layer gradient per row (the attacks' input)
        self.cut_gradients_ = np.zeros((n, int(self.cut_dim))) if mine is not None else None
        m = int(self.batch_size)
        for _ in range(int(self.epochs)):
            for i in range(n // m):
                rows = perm[i * m:(i + 1) * m]
                self._step(mine, rows, None if Y is None else Y[rows])
        if self._torch is not None:  # the trained weights, as the numpy model's (prediction, saving)
            self.bottom_ = self._torch.params()
        self.__dict__.pop("model_id_", None)  # a new training gets a new id at save
        return self

    def _rows(self, shapes: dict, yshape: tuple[int, ...], owner: str) -> int:
        rows = {p: s[0] for p, s in shapes.items()}
        rows["labels@" + owner] = yshape[0]
        if len(set(rows.values())) != 1:
            raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
        n = int(yshape[0])
        if n < int(self.batch_size):
            raise ModelError(f"{n} training rows is fewer than one batch ({self.batch_size})", field="batch_size")
        return n

    def _init_models(self) -> None:
        """Public initialisations (weights are not data): each party its bottom model, the
        label holder the top model."""
        me, lay = self.ctx.me, self.layout_
        k = 1 if len(self.classes_) == 2 else len(self.classes_)
        bottoms, top = split_init(lay.widths, self.bottom_hidden, int(self.cut_dim), self.top_hidden, k,
                                  int(self.random_state), self.activation)
        self.bottom_ = self.top_ = self._torch = None
        if me in lay.owners:
            self.bottom_ = bottoms[lay.owners.index(me)]
            self._bvel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in self.bottom_]
            if self.backend == "torch":  # the same initial weights, trained by torch
                self._torch = TorchBottom(self.bottom_, self.activation, learning_rate=float(self.learning_rate),
                                          momentum=float(self.momentum))
        if me == self.label_owner_:
            self.top_ = top
            self._tvel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in self.top_]

    def _embed(self, mine: np.ndarray | None, rows: np.ndarray | slice, train: bool) -> tuple[list, np.ndarray | None]:
        """This party's bottom activations and its (clipped, noised) cut-layer output."""
        if mine is None or self.bottom_ is None:
            return [], None
        tb = getattr(self, "_torch", None)  # absent on a loaded model (it predicts with numpy)
        if train and tb is not None:
            acts, e = [], tb.forward(mine[rows], train=True)
        else:
            acts = forward(mine[rows], self.bottom_, self.activation, output=False)
            e = acts[-1]
        if self.embedding_epsilon is not None:  # DP embeddings: rows clipped, Gaussian noise
            e = gaussian(clip_rows(e, float(self.embedding_clip)), float(self.embedding_clip),
                         float(self.embedding_epsilon), float(self.delta), dim=e.shape[1]).value
        return acts, e

    def _gather_embeddings(self, e: np.ndarray | None, m: int) -> np.ndarray | None:
        ctx, lay, c = self.ctx, self.layout_, int(self.cut_dim)
        got = gather(ctx, self.label_owner_, arrays=[] if e is None else [e], senders=lay.owners, name="split-embed")
        if got is None:
            return None
        return np.hstack([got[p].expect([np.float64], [(m, c)])[0] for p in lay.owners])

    def _step(self, mine: np.ndarray | None, rows: np.ndarray, Y: np.ndarray | None) -> None:
        ctx, lay, c, m = self.ctx, self.layout_, int(self.cut_dim), len(rows)
        acts, e = self._embed(mine, rows, True)
        E = self._gather_embeddings(e, m)
        grads_e: dict[str, np.ndarray] = {}
        if E is not None and self.top_ is not None and Y is not None:
            tacts = forward(E, self.top_, self.activation)
            tg, dE = backward(tacts, (tacts[-1] - Y) / m, self.top_, self.activation)
            self.top_, self._tvel = sgd_momentum(self.top_, self._tvel, tg, float(self.learning_rate), float(self.momentum))
            grads_e = {p: self._defend(dE[:, j * c:(j + 1) * c], Y) if p != self.label_owner_ else dE[:, j * c:(j + 1) * c]
                       for j, p in enumerate(lay.owners)}
        for p in lay.owners:
            got = send_to(ctx, self.label_owner_, p, arrays=[grads_e[p]] if p in grads_e else [],
                          name="split-grad", dtypes=[np.float64], shapes=[(m, c)])
            if ctx.me == p and got is not None and self.bottom_ is not None:
                g = got.arrays[0]
                if self.gradient_norms_ is not None and self.cut_gradients_ is not None:
                    self.gradient_norms_[rows] = np.linalg.norm(g, axis=1)
                    self.cut_gradients_[rows] = g  # this party's view (see norm_attack_auc)
                if self._torch is not None:
                    self._torch.step(g)
                    continue
                bg, _ = backward(acts, g, self.bottom_, self.activation)
                self.bottom_, self._bvel = sgd_momentum(self.bottom_, self._bvel, bg, float(self.learning_rate),
                                                        float(self.momentum))

    def _marvell(self) -> bool:
        return self.marvell_sumkl is not None or self.marvell_power is not None

    def _defend(self, g: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """The label-leakage defence on one party's block of a batch's cut-layer gradients,
        at the label holder, before it leaves (its own block stays as it is: nothing leaks)."""
        assert self._prg is not None
        if self.gradient_epsilon is not None:  # label DP: rows clipped, Gaussian noise
            gc = float(self.gradient_clip) / len(g)
            return gaussian(clip_rows(g, gc), 2 * gc, float(self.gradient_epsilon), float(self.delta), dim=g.shape[1]).value
        if self._marvell():
            noisy, kl = marvell.perturb(g, Y[:, 0] > 0.5, prg=self._prg, sumkl=self.marvell_sumkl,
                                        power=self.marvell_power)
            self.sumkl_.append(kl)
            return noisy
        return g

    # -- prediction --------------------------------------------------------------------
    def predict_proba(self, X: Any) -> PartyObject:
        """Class probabilities (n, n_classes) at the label holder only."""
        ctx = self.ctx
        if not hasattr(self, "layout_"):
            raise ModelError("the model is not fitted: call fit() before predict_proba()")
        parts, _ = collect_blocks(X, None)
        n = prediction_rows(ctx, parts, self.layout_)
        mine = parts[ctx.me].value if ctx.me in parts and parts[ctx.me].is_local else None
        _, e = self._embed(mine, slice(None), False)
        E = self._gather_embeddings(e, n)
        p = None
        if E is not None and self.top_ is not None:
            out = forward(E, self.top_, self.activation)[-1]
            p = np.column_stack([1.0 - out[:, 0], out[:, 0]]) if out.shape[1] == 1 else out
        return ctx.party(self.label_owner_).run(lambda: p)

    def predict(self, X: Any) -> PartyObject:
        """The predicted class per row, at the label holder only."""
        proba = self.predict_proba(X)
        return self.ctx.party(proba.owner).run(lambda q: self.classes_[np.argmax(q, axis=1)], proba)

    # -- persistence -------------------------------------------------------------------
    def _part_public(self) -> dict[str, Any]:
        return {"features": self.layout_.to_json(), "classes": np.asarray(self.classes_).tolist(),
                "label_owner": self.label_owner_}

    def _part_state(self) -> dict[str, Any]:
        def js(ps: Any) -> Any:
            return None if ps is None else [[w.tolist(), b.tolist()] for w, b in ps]

        return {"bottom": js(self.bottom_), "top": js(self.top_)}  # only this party's own models

    def _restore(self, part: ModelPart) -> None:
        def arr(ps: Any) -> Any:
            return None if ps is None else [(np.array(w, dtype=np.float64), np.array(b, dtype=np.float64)) for w, b in ps]

        self.layout_ = FeatureLayout.from_json(part.public["features"])
        self.classes_ = np.array(part.public["classes"])
        self.label_owner_ = part.public["label_owner"]
        self.bottom_, self.top_ = arr(part.state["bottom"]), arr(part.state["top"])
