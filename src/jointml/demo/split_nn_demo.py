"""`jointml demo --job split_nn`: split learning on the German credit data, as a pipeline,
then the label-leakage attack on a feature party's view, with and without the defence.

The bank (label holder, 10 columns) and a partner (10 columns) align their customers by
PSI, encode and scale their own columns, and train a split network: each trains a bottom
model on its columns, the bank's top model sees the cut-layer outputs (`split_nn.train`,
`split_nn.predict`, `evaluate`). Then the demo shows what the partner's view holds: the
gradients of its cut layer, whose norms rank the bank's labels (Li et al., ICLR 2022),
and the same with label-DP noise on the gradients (`gradient_epsilon`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..jobs import PipelineSpec, simulate_pipeline
from ..ml.linear.base import public_permutation
from ..ml.nn import SplitNNClassifier, norm_attack_auc
from ..runtime import simulate
from .credit_demo import make_demo_files

PARTIES = ["bank", "partner", "dealer"]
HYPER = {"bottom_hidden": [16], "cut_dim": 4, "top_hidden": [8], "epochs": 5, "batch_size": 32, "learning_rate": 0.05}


def _attack_prog(ctx: Any, X: np.ndarray, y: np.ndarray, cut: int, eps: float | None) -> Any:
    xs = {"bank": ctx.party("bank").run(lambda: X[:, :cut]), "partner": ctx.party("partner").run(lambda: X[:, cut:])}
    m = SplitNNClassifier(ctx, bottom_hidden=(16,), cut_dim=4, top_hidden=(8,), epochs=3, batch_size=32,
                          learning_rate=0.05, gradient_epsilon=eps).fit(xs, ctx.party("bank").run(lambda: y))
    return m.gradient_norms_


def _credit_matrix() -> tuple[np.ndarray, np.ndarray, int]:
    import pandas as pd

    from ..datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") == "bad").astype(int).to_numpy()
    left = pd.get_dummies(df[df.columns[:10]], dtype=float).to_numpy()
    X = np.hstack([left, pd.get_dummies(df[df.columns[10:]], dtype=float).to_numpy()])
    X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-9)  # public scaling, for the demo only
    perm = public_permutation(len(y), 3)
    return X[perm][:700], y[perm][:700], left.shape[1]


def run(mode: str = "process", out_dir: str = "jointml-demo-out", verbose: bool = True) -> dict[str, Any]:
    """Run the demo; returns the summary (printed unless `verbose` is False)."""
    out = Path(out_dir)
    paths = make_demo_files(out / "data")
    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}},
             {"split": {"test_fraction": 0.3, "seed": 1}}, {"scale": {}},
             {"split_nn.train": {"pos_label": "bad", **HYPER}}, {"split_nn.predict": {}}, {"evaluate": {}}]
    spec = PipelineSpec.from_dict({"parties": PARTIES, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"],
                                                              "dealer": "dealer"},
                                   "inputs": {"bank": str(paths["bank"]), "partner": str(paths["partner"])},
                                   "steps": steps, "output": str(out / "split_nn")})
    t0 = time.perf_counter()
    res = simulate_pipeline(spec, mode=mode, verbose=False)
    seconds = time.perf_counter() - t0
    X, y, cut = _credit_matrix()
    attack = {}
    for name, eps in (("none", None), ("gradient_epsilon=4", 4.0)):
        norms = simulate(_attack_prog, ["bank", "partner"], mode="thread", args=(X, y, cut, eps))["partner"]
        attack[name] = round(norm_attack_auc(norms, y), 4)
    summary = {"job": "split_nn", "auc": round(float(res["bank"]["auc"]), 4), "seconds": round(seconds, 2),
               "model_dir": str(out / "split_nn" / "model"), "label_attack_auc": attack}
    if verbose:
        print("jointml demo: split learning on the German credit data (bank: labels + 10 columns, partner: 10 columns)")
        print(f"  pipeline psi -> encode -> split -> scale -> split_nn.train -> split_nn.predict -> evaluate: "
              f"test AUC {summary['auc']:.4f} in {seconds:.1f} s; model parts in {summary['model_dir']}")
        print("  what the partner's view leaks: AUC of ranking the bank's labels by the partner's cut-layer "
              f"gradient norms: {attack['none']:.3f} undefended, {attack['gradient_epsilon=4']:.3f} with label-DP noise "
              "(0.5 = nothing learned)")
    return summary
