"""Histogram-based gradient-boosted trees on horizontally partitioned data, histograms summed by SecAgg+.

Each client holds rows (features and a 0/1 label). Trees are grown level by level:

1. **bins** (once): the feature ranges are public (given as `ranges`, else each client's
   per-feature min and max go to the aggregator, who announces the union); each client
   counts its rows on a fine grid of `grid` cells per feature, the counts are summed with
   secure aggregation, and the aggregator places `max_bins` − 1 quantile edges on the
   summed counts and announces them;
2. **base score**: log-odds of Σ y / Σ n (both securely summed);
3. **per level**: each client computes logistic gradients g and hessians h of its rows and,
   for every node of the level, per feature and bin, Σ g, Σ h and the row count in that node;
   one SecAgg+ round sums these histograms over the clients; the aggregator picks each
   node's best split (XGBoost gain with `reg_lambda`, `gamma`, `min_child_weight`) and
   announces (feature, bin) or "leaf" and the leaf values −G/(H + λ)·learning_rate.

The trees are public to the parties of the job (every party predicts locally).

Adversary model and what each party learns (secure mode):
- Aggregator: per node, the histograms of Σ g, Σ h and row counts over all clients
  (aggregate label statistics per feature bin, not per client), the summed fine-grid counts of every feature
  (the pooled data's marginal distributions), Σ y and Σ n; without `ranges`, each
  client's per-feature min and max. Not one client's histogram, count or label sum.
- Client: the bin edges, the trees (splits and leaf values) and the base score.
Plain mode (`secure=False`): the aggregator sees every client's histograms.
Histogram sums are scaled by 1/`weight_cap` (rows per client at most, else clipped) and
quantised (`quant_bits` = 24: error ≤ 2·weight_cap/2^24 per bin, client and statistic).

>>> import pandas as pd
>>> from jointml.core.prg import public_rng
>>> from jointml.data.frames import from_pandas
>>> from jointml.ml.fl import FederatedDevice
>>> def prog(ctx):
...     rng = public_rng(3)
...     X = rng.normal(size=(90, 2)); y = ((X[:, 0] > 0.3) ^ (X[:, 1] > 0)).astype(int)
...     frames = {p: pd.DataFrame({"a": X[i::3, 0], "b": X[i::3, 1], "y": y[i::3]}) for i, p in enumerate(["c1", "c2", "c3"])}
...     hdf = from_pandas(ctx, frames, vertical=False)
...     m = FLGBDTClassifier(FederatedDevice(ctx, "agg", ["c1", "c2", "c3"]), n_estimators=5, max_depth=2,
...                          learning_rate=0.5, threshold=2, min_signers=2).fit(hdf, "y")
...     return float((m.predict(X) == y).mean())
>>> simulate(prog, ["agg", "c1", "c2", "c3"], mode="thread")["agg"] > 0.9
True
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ...core.errors import ModelError
from ...runtime.collectives import agree, broadcast, gather
from ...runtime.persist import ModelPart
from ..base import SecureEstimator, check_param
from .secagg import SecAggSession
from .secagg_params import SecAggParams

__all__ = ["FLGBDTClassifier", "quantile_edges", "best_splits", "apply_bins", "grow_tree", "predict_trees"]

SumFn = Callable[[np.ndarray | None, int], np.ndarray]


def quantile_edges(counts: np.ndarray, lo: float, hi: float, max_bins: int) -> np.ndarray:
    """`max_bins` − 1 edges at the quantiles of a fine equal-width grid histogram on [lo, hi].

    >>> quantile_edges(np.array([10, 0, 0, 10.0]), 0.0, 4.0, 2).tolist()
    [1.0]
    """
    cells = len(counts)
    cum = np.cumsum(np.maximum(counts, 0.0))
    if cum[-1] <= 0:
        return np.linspace(lo, hi, max_bins + 1)[1:-1]
    right = lo + (hi - lo) * np.arange(1, cells + 1) / cells  # right edge of each cell
    qs = cum[-1] * np.arange(1, max_bins) / max_bins
    return np.unique(right[np.minimum(np.searchsorted(cum, qs), cells - 1)])


def apply_bins(X: np.ndarray, edges: Sequence[np.ndarray]) -> np.ndarray:
    """Bin index of every value: bin b holds edges[b−1] < x ≤ edges[b].

    >>> apply_bins(np.array([[0.5], [1.0], [3.0]]), [np.array([1.0, 2.0])]).ravel().tolist()
    [0, 0, 2]
    """
    return np.column_stack([np.searchsorted(e, X[:, j], side="left") for j, e in enumerate(edges)]).astype(np.int64)


def best_splits(G: np.ndarray, H: np.ndarray, *, reg_lambda: float, gamma: float, min_child_weight: float,
                counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: the best (feature, bin) split of per-bin gradient/hessian sums G, H (nodes, features, bins).

    Returns (feature, bin, gain); feature −1 where no split gains more than `gamma`.
    Rows with bin ≤ b go left. With per-bin row `counts`, only bins that hold rows are
    candidates (a split after an empty bin is the same partition as one before it), so
    the noise of securely summed empty bins never picks among equal partitions.

    >>> G = np.array([[[-2.0, 2.0]]]); H = np.array([[[1.0, 1.0]]])
    >>> best_splits(G, H, reg_lambda=0.0, gamma=0.0, min_child_weight=0.5)[:2]
    (array([0]), array([0]))
    """
    GL, HL = np.cumsum(G, axis=2)[:, :, :-1], np.cumsum(H, axis=2)[:, :, :-1]
    Gt, Ht = G.sum(axis=2, keepdims=True), H.sum(axis=2, keepdims=True)
    GR, HR = Gt - GL, Ht - HL

    def score(g: np.ndarray, h: np.ndarray) -> np.ndarray:
        return np.asarray(g * g / (h + reg_lambda))

    with np.errstate(divide="ignore", invalid="ignore"):
        gain = 0.5 * (score(GL, HL) + score(GR, HR) - score(Gt, Ht)) - gamma
    ok = (HL >= min_child_weight) & (HR >= min_child_weight) & np.isfinite(gain)
    if counts is not None:
        ok &= counts[:, :, :-1] > 0.5
    gain = np.where(ok, gain, -np.inf)
    flat = gain.reshape(len(G), -1)
    if flat.shape[1] == 0:
        return np.full(len(G), -1), np.zeros(len(G), np.int64), np.zeros(len(G))
    arg = flat.argmax(axis=1)
    best = flat[np.arange(len(G)), arg]
    nb = GL.shape[2]
    feat = np.where(best > 0, arg // nb, -1)
    return feat, (arg % nb).astype(np.int64), np.where(best > 0, best, 0.0)


def grow_tree(B: np.ndarray | None, g: np.ndarray | None, h: np.ndarray | None, n_features: int, n_bins: int,
              sum_fn: SumFn, announce: Callable[[dict[str, Any] | None], dict[str, Any]], *, max_depth: int,
              reg_lambda: float, gamma: float, min_child_weight: float, learning_rate: float) -> dict[str, list[Any]]:
    """One tree, level by level. At a client, (B, g, h) are its binned rows and gradients; `sum_fn`
    returns the histograms summed over the clients at the party that decides (None elsewhere)
    and `announce` sends that party's decision to all. Returns the tree as plain lists.

    One party holding every row (the sum is the identity, the announcement a no-op):

    >>> B = np.array([[0], [0], [1], [1]]); g = np.array([1.0, 1.0, -1.0, -1.0]); h = np.ones(4)
    >>> t = grow_tree(B, g, h, 1, 2, lambda v, dim: v, lambda d: d, max_depth=1, reg_lambda=0.0, gamma=0.0,
    ...               min_child_weight=1.0, learning_rate=1.0)
    >>> t["feature"], t["value"][1:]
    ([0, -1, -1], [-1.0, 1.0])
    """
    nodes = 2 ** (max_depth + 1) - 1
    tree: dict[str, list[Any]] = {"feature": [-1] * nodes, "bin": [0] * nodes, "value": [0.0] * nodes}
    pos = None if B is None else np.zeros(len(B), dtype=np.int64)  # node of each row
    for depth in range(max_depth + 1):
        first, width = 2 ** depth - 1, 2 ** depth
        local = None
        if B is not None and pos is not None and g is not None and h is not None:
            local = np.zeros((3, width, n_features, n_bins))
            node = pos - first
            live = (node >= 0) & (node < width)
            for j in range(n_features):
                idx = (node[live] * n_bins + B[live, j])
                local[0, :, j, :] = np.bincount(idx, g[live], width * n_bins).reshape(width, n_bins)
                local[1, :, j, :] = np.bincount(idx, h[live], width * n_bins).reshape(width, n_bins)
                local[2, :, j, :] = np.bincount(idx, None, width * n_bins).reshape(width, n_bins)
        total = sum_fn(None if local is None else local.ravel(), 3 * width * n_features * n_bins)
        decision = None
        if total is not None:
            tot = total.reshape(3, width, n_features, n_bins)
            G, H, C = tot[0], tot[1], np.round(tot[2])  # counts are integers: exact after rounding
            feat, b, _ = best_splits(G, H, reg_lambda=reg_lambda, gamma=gamma, min_child_weight=min_child_weight,
                                     counts=C)
            if depth == max_depth:
                feat = np.full(width, -1)
            b = np.where(feat >= 0, b, 0)  # a leaf has no bin
            Gn, Hn = G[:, 0, :].sum(axis=1), H[:, 0, :].sum(axis=1)
            leaf = -Gn / (Hn + reg_lambda) * learning_rate
            decision = {"feature": feat.tolist(), "bin": b.tolist(), "value": np.nan_to_num(leaf).tolist()}
        d = announce(decision)
        for i in range(width):
            tree["feature"][first + i], tree["bin"][first + i] = int(d["feature"][i]), int(d["bin"][i])
            tree["value"][first + i] = float(d["value"][i])
        if pos is not None and B is not None:
            at = pos - first
            for i in range(width):
                f = tree["feature"][first + i]
                rows = at == i
                if f >= 0 and rows.any():
                    go_left = B[rows, f] <= tree["bin"][first + i]
                    pos[rows] = np.where(go_left, 2 * (first + i) + 1, 2 * (first + i) + 2)
    return tree


def predict_trees(trees: Sequence[dict[str, Any]], B: np.ndarray, base: float) -> np.ndarray:
    """The raw margin of binned rows `B` (base score + the leaves they reach).

    >>> t = {"feature": [0, -1, -1], "bin": [0, 0, 0], "value": [0.0, -1.0, 1.0]}
    >>> predict_trees([t], np.array([[0], [1]]), 0.5).tolist()
    [-0.5, 1.5]
    """
    out = np.full(len(B), float(base))
    for t in trees:
        feat, bins, val = np.asarray(t["feature"]), np.asarray(t["bin"]), np.asarray(t["value"])
        pos = np.zeros(len(B), dtype=np.int64)
        while True:
            f = feat[pos]
            inner = f >= 0
            if not inner.any():
                break
            r = np.nonzero(inner)[0]
            left = B[r, f[r]] <= bins[pos[r]]
            pos[r] = np.where(left, 2 * pos[r] + 1, 2 * pos[r] + 2)
        out += val[pos]
    return out


class FLGBDTClassifier(SecureEstimator):
    """Federated histogram GBDT for binary labels (see the module docstring).

    >>> FLGBDTClassifier(None, n_estimators=3).get_params()["max_bins"]
    32
    """

    error = ModelError
    _fitted_attr = "trees_"

    def __init__(self, device: Any, *, n_estimators: int = 20, max_depth: int = 3, learning_rate: float = 0.3,
                 reg_lambda: float = 1.0, gamma: float = 0.0, min_child_weight: float = 1.0, max_bins: int = 32,
                 grid: int = 256, ranges: list[list[float]] | None = None, secure: bool = True,
                 weight_cap: float = 10000.0, quant_bits: int = 24, threshold: int | None = None,
                 min_signers: int | None = None, timeout: float = 30.0):
        self.device = device
        self.n_estimators, self.max_depth, self.learning_rate = n_estimators, max_depth, learning_rate
        self.reg_lambda, self.gamma, self.min_child_weight = reg_lambda, gamma, min_child_weight
        self.max_bins, self.grid, self.ranges, self.secure = max_bins, grid, ranges, secure
        self.weight_cap, self.quant_bits, self.threshold = weight_cap, quant_bits, threshold
        self.min_signers, self.timeout = min_signers, timeout

    def _validate_params(self) -> None:
        check_param("n_estimators", self.n_estimators, lambda v: int(v) >= 1, "an integer >= 1")
        check_param("max_depth", self.max_depth, lambda v: 1 <= int(v) <= 8, "an integer in [1, 8]")
        check_param("max_bins", self.max_bins, lambda v: 2 <= int(v) <= 256, "an integer in [2, 256]")
        check_param("grid", self.grid, lambda v: int(v) >= int(self.max_bins), "an integer >= max_bins")
        check_param("learning_rate", self.learning_rate, lambda v: float(v) > 0, "> 0")

    # -- the sums: SecAgg+ or plain ----------------------------------------------------------
    def _sum_fn(self, session: SecAggSession | None) -> SumFn:
        dev, cap = self.device, float(self.weight_cap)

        def secure(vec: np.ndarray | None, dim: int) -> np.ndarray:
            assert session is not None
            out = session.aggregate(None if vec is None else vec / cap, dim=dim)
            return None if out is None else out.total * cap  # type: ignore[return-value]

        def plain(vec: np.ndarray | None, dim: int) -> np.ndarray:
            got = gather(self.ctx, dev.server, senders=dev.clients, arrays=[] if vec is None else [vec],
                         name="gbdt-plain")
            return None if got is None else sum(r.expect([np.float64], [(dim,)])[0] for r in got.values())  # type: ignore

        return secure if session is not None else plain

    def _announce(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        dev = self.device
        return broadcast(self.ctx, dev.server, meta=meta if self.ctx.me == dev.server else None, to=dev.parties,
                         name="gbdt-decision").meta

    def _edges(self, X: np.ndarray | None, n_features: int, sum_fn: SumFn) -> list[np.ndarray]:
        dev, me = self.device, self.ctx.me
        if self.ranges is not None:
            ranges = np.asarray(self.ranges, dtype=np.float64).reshape(n_features, 2)
        else:  # each client's per-feature min and max go to the aggregator (documented)
            got = gather(self.ctx, dev.server, senders=dev.clients,
                         arrays=[] if X is None else [np.column_stack([X.min(axis=0), X.max(axis=0)])], name="gbdt-range")
            union = None
            if got is not None:
                mm = np.stack([r.expect([np.float64], [(n_features, 2)])[0] for r in got.values()])
                union = {"r": np.column_stack([mm[:, :, 0].min(axis=0), mm[:, :, 1].max(axis=0)]).tolist()}
            ranges = np.asarray(self._announce(union)["r"], dtype=np.float64)
        grid = int(self.grid)
        counts = None
        if X is not None:
            span = np.maximum(ranges[:, 1] - ranges[:, 0], 1e-12)
            cell = np.clip(((X - ranges[:, 0]) / span * grid).astype(np.int64), 0, grid - 1)
            counts = np.stack([np.bincount(cell[:, j], minlength=grid) for j in range(n_features)]).astype(float).ravel()
        total = sum_fn(counts, n_features * grid)
        edges = None
        if me == dev.server and total is not None:
            # counts are integers: the quantisation error (< 0.5 in all) rounds away, so the
            # edges are exactly those of the pooled rows
            t = np.round(total).reshape(n_features, grid)
            edges = {"e": [quantile_edges(t[j], ranges[j, 0], ranges[j, 1], int(self.max_bins)).tolist()
                           for j in range(n_features)]}
        return [np.asarray(e, dtype=np.float64) for e in self._announce(edges)["e"]]

    def fit(self, hdf: Any, label: str, features: Sequence[str] | None = None) -> FLGBDTClassifier:
        """Train on `hdf` held by the device's clients (every party of the job calls it)."""
        self._validate_params()
        dev, me = self.device, self.ctx.me
        if sorted(hdf.parties) != sorted(dev.clients) or label not in hdf.columns:
            raise self.error(f"the frame's parties {hdf.parties} must be the device's clients {dev.clients} and "
                             f"'{label}' one of its columns", field="hdf")
        feats = [c for c in (features or hdf.columns) if c != label]
        X = y = None
        problem = None
        if me in dev.clients:
            df = hdf.local()
            X, y = df[feats].to_numpy(dtype=np.float64), df[label].to_numpy(dtype=np.float64)
            if not (np.all(np.isfinite(X)) and set(np.unique(y).tolist()) <= {0.0, 1.0}):
                problem = f"client '{me}': features must be finite and the label 0/1"
        agree(self.ctx, dev.clients, problem, error=self.error, name="gbdt-data")
        session = None
        if self.secure:
            session = SecAggSession(self.ctx, dev.server, dev.clients,
                                    SecAggParams(clip=1.0, quant_bits=int(self.quant_bits), threshold=self.threshold,
                                                 min_signers=self.min_signers, timeout=self.timeout))
        sum_fn = self._sum_fn(session)
        self.edges_ = self._edges(X, len(feats), sum_fn)
        B = None if X is None else apply_bins(X, self.edges_)
        tot = sum_fn(None if y is None else np.array([y.sum(), float(len(y))]), 2)
        tot = None if tot is None else np.round(tot)  # integer counts, exactly
        p0 = None if tot is None else {"base": float(np.log(max(tot[0], 1e-9) / max(tot[1] - tot[0], 1e-9)))}
        self.base_score_ = float(self._announce(p0)["base"])
        self.trees_: list[dict[str, Any]] = []
        n_bins = int(self.max_bins)
        for _ in range(int(self.n_estimators)):
            g = h = None
            if B is not None and y is not None:
                p = 1.0 / (1.0 + np.exp(-predict_trees(self.trees_, B, self.base_score_)))
                g, h = p - y, p * (1.0 - p)
            self.trees_.append(grow_tree(B, g, h, len(feats), n_bins, sum_fn, self._announce,
                                         max_depth=int(self.max_depth), reg_lambda=float(self.reg_lambda),
                                         gamma=float(self.gamma), min_child_weight=float(self.min_child_weight),
                                         learning_rate=float(self.learning_rate)))
        if session is not None:
            session.close()
        self.features_, self.label_ = feats, label
        vars(self).pop("model_id_", None)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Raw margins for rows `X` held by this party (local)."""
        if not hasattr(self, "trees_"):
            raise self.error("the model is not fitted: call fit() before predicting")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features_):
            raise self.error(f"X has shape {X.shape}; the model takes {len(self.features_)} features", field="X")
        return predict_trees(self.trees_, apply_bins(X, self.edges_), self.base_score_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int64)

    def _part_public(self) -> dict[str, Any]:
        return {"trees": self.trees_, "edges": [e.tolist() for e in self.edges_], "base": self.base_score_,
                "features": self.features_, "label": self.label_, "server": self.device.server,
                "clients": list(self.device.clients)}

    def _part_state(self) -> dict[str, Any]:
        return {}

    def _restore(self, part: ModelPart) -> None:
        pub = part.public
        self.trees_, self.base_score_ = list(pub["trees"]), float(pub["base"])
        self.edges_ = [np.asarray(e, dtype=np.float64) for e in pub["edges"]]
        self.features_, self.label_ = list(pub["features"]), pub["label"]
