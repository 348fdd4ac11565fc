"""`jointml bench nn`: neural networks under MPC and split learning.

Figures (one JSON line each; parties as separate processes over TLS on this machine):

* `mpc_mlp_digits`: `MPCMLPClassifier` 64-128-10 (ReLU, softmax, SGD with momentum) on
  scikit-learn's digits (1,400 training rows, features split across two parties, labels
  at one), beside its numpy twin (same initialisation, same batches): `accuracy` /
  `baseline_accuracy` on the 397 held-out rows, `samples_per_second` /
  `baseline_samples_per_second` (training rows x epochs / training seconds),
  `bytes_per_sample` (payload bytes of all parties per training sample), `rounds`;
* `mpc_mlp_crypten_ff`: the network of CrypTen's own model benchmark (20-10-5-1, ReLU,
  sigmoid output, binary cross-entropy, one full-batch epoch over 3,750 synthetic rows),
  measured here, with CrypTen's published figure beside it under `published_reference`
  (their 2-party CPU run dated 2020-06-26, their hardware: a dated reference, NOT measured
  here);
* `split_credit`: `SplitNNClassifier` on the German credit data (bank: 10 columns and
  the label, partner: 10 columns; one-hot encoded, standardised; 700 training rows, 300
  test rows), repeated over `seeds` seeds (each its own train/test split, initialisation
  and batch order), means with `_std` spreads beside them: `auc` (split learning) beside
  `baseline_auc`, the SAME network (bottom models side by side under the top model, same
  initialisation and batches) trained centrally in numpy (`max_abs_proba_diff_vs_baseline`:
  the largest difference of a predicted probability between the two over all seeds), and,
  for context only, `dense_mlp_auc` (a different network: one MLP over all columns).
  Label leakage from the partner's view of the cut-layer gradients (Li et al., ICLR 2022):
  `norm_attack_auc`, `direction_attack_auc` (mean over 20 rows taken as known) and
  `label_attack_auc` (the stronger of the two), undefended, with Marvell's perturbation
  (`_defended`: `auc_defended`, `auc_cost_defended` = paired AUC loss per seed) and with
  per-row label DP (`_dp`, `gradient_epsilon`). The timing fields are one run (seed 0) in
  processes, beside the centralised twin's.

Every line also has `seconds`, `baseline_seconds`, `peak_mb` (largest party) and `peak_rss_mb`
(each party's peak resident memory, MB).
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np

from ..core.prg import public_rng
from ..runtime import simulate
from .anchors import reference
from .memory import simulate_rss

__all__ = ["run", "FIGURES", "CRYPTEN_REFERENCE"]

FIGURES = ("mpc_mlp_digits", "mpc_mlp_crypten_ff", "split_credit")

#: CrypTen's published model benchmark (not measured here): facebookresearch/CrypTen,
#: benchmarks/dash_app/data/2020-06-26/2PC/model_benchmarks.csv, "feedforward neural
#: network" (benchmarks/models.py: 20-10-5-1, ReLU, sigmoid, BCELoss; benchmarks/data.py:
#: GaussianClusters, 5,000 rows, 3,750 for training), one full-batch epoch, 2 parties.
CRYPTEN_REFERENCE = {
    "source": "facebookresearch/CrypTen benchmarks/dash_app/data/2020-06-26/2PC/model_benchmarks.csv",
    "date": "2020-06-26", "network": "20-10-5-1 relu/sigmoid, BCE, full batch", "train_rows": 3750,
    "seconds_per_epoch": 0.5048, "samples_per_second": round(3750 / 0.5048, 1),
    "plaintext_seconds_per_epoch": 0.0200, "note": "published by CrypTen, their hardware; not measured here",
}


def _peak_mb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def _mlp_prog(ctx: Any, X: np.ndarray, y: np.ndarray, Xt: np.ndarray, cut: int, params: dict) -> dict[str, Any]:
    from ..ml.nn import MPCMLPClassifier
    from ..mpc import MpcDevice

    mpc = MpcDevice(ctx, ["alice", "bob"], dealer="dealer")

    def blocks(A: np.ndarray) -> dict:
        return {"alice": ctx.party("alice").run(lambda: A[:, :cut]), "bob": ctx.party("bob").run(lambda: A[:, cut:])}

    ctx.reset_stats()
    t0 = time.perf_counter()
    m = MPCMLPClassifier(mpc, **params).fit(blocks(X), ctx.party("bob").run(lambda: y))
    seconds = time.perf_counter() - t0
    stats = ctx.stats()
    pred = m.predict(blocks(Xt), to="bob")
    return {"seconds": seconds, "payload": stats["payload_sent"], "rounds": stats["rounds"], "peak_mb": _peak_mb(),
            "pred": pred.value if pred.is_local else None}


def _mlp_figure(name: str, X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray, params: dict) -> dict:
    from ..ml.linear.base import public_permutation
    from ..ml.nn import forward, init_params, one_hot, train_plaintext

    res, rss = simulate_rss(_mlp_prog, ["alice", "bob", "dealer"], mode="process", args=(X, y, Xt, X.shape[1] // 2, params),
                   options={"warm_heap_mb": 256})
    classes = np.unique(y)
    k = len(classes)
    sizes = [X.shape[1], *params["hidden_layer_sizes"], 1 if k == 2 else k]
    perm = public_permutation(len(X), params.get("random_state", 0))
    t0 = time.perf_counter()
    p = train_plaintext(X[perm], one_hot(y, k)[perm], init_params(sizes, params.get("random_state", 0)),
                        epochs=params["epochs"], batch_size=params["batch_size"], learning_rate=params["learning_rate"],
                        momentum=params.get("momentum", 0.9))
    base_s = time.perf_counter() - t0
    out = forward(Xt, p)[-1]
    base_pred = classes[(out[:, 0] > 0.5).astype(int)] if k == 2 else classes[np.argmax(out, axis=1)]
    samples = params["epochs"] * (len(X) // params["batch_size"]) * params["batch_size"]
    seconds = max(r["seconds"] for r in res.values())
    return {"figure": name, "protocol": "semi2k", "network": "-".join(str(s) for s in sizes), "train_rows": len(X),
            "epochs": params["epochs"], "batch_size": params["batch_size"],
            "accuracy": round(float(np.mean(res["bob"]["pred"] == yt)), 4),
            "baseline_accuracy": round(float(np.mean(base_pred == yt)), 4),
            "seconds": round(seconds, 4), "baseline_seconds": round(base_s, 4),
            "samples_per_second": round(samples / seconds, 1), "baseline_samples_per_second": round(samples / base_s, 1),
            "bytes_per_sample": round(sum(r["payload"] for r in res.values()) / samples, 1),
            "rounds": max(r["rounds"] for r in res.values()), "peak_mb": max(r["peak_mb"] for r in res.values()),
            "peak_rss_mb": rss}


def _digits(epochs: int) -> dict:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    params = dict(hidden_layer_sizes=(128,), epochs=epochs, batch_size=64, learning_rate=0.1, momentum=0.9)
    return _mlp_figure("mpc_mlp_digits", X[:1400], y[:1400], X[1400:], y[1400:], params)


def _crypten_ff() -> dict:
    g = public_rng(0)  # public synthetic data: two Gaussian clusters, 20 features, like CrypTen's benchmark
    n = 5000
    y = (g.random(n) < 0.5).astype(int)
    X = g.normal(size=(n, 20)) + np.where(y[:, None] == 1, 0.5, -0.5) * g.normal(size=(1, 20))
    params = dict(hidden_layer_sizes=(10, 5), epochs=1, batch_size=3750, learning_rate=0.1, momentum=0.0)
    row = _mlp_figure("mpc_mlp_crypten_ff", X[:3750], y[:3750], X[3750:], y[3750:], params)
    # a published figure, other hardware: labelled as a reference, never divided by ours
    figures = {k: v for k, v in CRYPTEN_REFERENCE.items() if k != "source"}
    row["published_reference"] = reference(f"CrypTen, published ({CRYPTEN_REFERENCE['source']})", "2020-06-26",
                                           figures, machine="CrypTen's hardware, not this machine")
    return row


def _credit() -> tuple[np.ndarray, np.ndarray, int]:
    import pandas as pd

    from ..datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") == "bad").astype(int).to_numpy()
    left, right = list(df.columns[:10]), list(df.columns[10:])
    enc = [df[[c]].to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(df[c])
           else pd.get_dummies(df[c], dtype=float).to_numpy() for c in left + right]
    widths = [e.shape[1] for e in enc]
    X = np.hstack(enc)
    X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-9)
    return X, y, int(sum(widths[:len(left)]))


#: split_credit's network and schedule (picked on the centralised twin: 3 epochs of SGD with
#: momentum, batches of 16; more epochs overfit these 700 rows)
SPLIT_PARAMS: dict[str, Any] = dict(bottom_hidden=(16,), cut_dim=4, top_hidden=(8,), epochs=3, batch_size=16,
                                    learning_rate=0.03, momentum=0.9)


def _split_prog(ctx: Any, X: np.ndarray, y: np.ndarray, Xt: np.ndarray, cut: int, params: dict) -> dict[str, Any]:
    from ..ml.nn import SplitNNClassifier

    def blocks(A: np.ndarray) -> dict:
        return {"bank": ctx.party("bank").run(lambda: A[:, :cut]), "partner": ctx.party("partner").run(lambda: A[:, cut:])}

    ctx.reset_stats()
    t0 = time.perf_counter()
    m = SplitNNClassifier(ctx, **params).fit(blocks(X), ctx.party("bank").run(lambda: y))
    seconds = time.perf_counter() - t0
    payload = ctx.stats()["payload_sent"]
    p = m.predict_proba(blocks(Xt))
    return {"seconds": seconds, "payload": payload, "peak_mb": _peak_mb(), "grads": m.cut_gradients_,
            "proba": p.value[:, 1] if p.is_local else None}


def _attacks(grads: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The norm attack's AUC and the direction attack's (mean over 20 rows taken as known)."""
    from ..ml.nn.split import direction_attack_auc, norm_attack_auc

    return (norm_attack_auc(np.linalg.norm(grads, axis=1), y),
            float(np.mean([direction_attack_auc(grads, y, known=k) for k in range(20)])))


def _split_seed(X: np.ndarray, y: np.ndarray, cut: int, seed: int, defences: dict[str, dict]) -> dict[str, Any]:
    """One seed (train/test split, initialisation, batch order): split learning undefended
    and with each defence, the same network trained centrally, and a dense MLP."""
    from sklearn.metrics import roc_auc_score

    from ..ml.linear.base import public_permutation
    from ..ml.nn import forward, init_params, one_hot, train_plaintext
    from ..ml.nn.split import predict_centralised, split_init, train_centralised

    perm = public_permutation(len(X), 100 + seed)
    tr, te = perm[:700], perm[700:]
    P = {**SPLIT_PARAMS, "random_state": seed}
    sched = dict(epochs=P["epochs"], batch_size=P["batch_size"], learning_rate=P["learning_rate"],
                 momentum=P["momentum"])
    init = split_init([cut, X.shape[1] - cut], P["bottom_hidden"], P["cut_dim"], P["top_hidden"], 1, seed)
    b, t = train_centralised([X[tr][:, :cut], X[tr][:, cut:]], one_hot(y[tr], 2), *init, seed=seed, **sched)
    central = predict_centralised([X[te][:, :cut], X[te][:, cut:]], b, t)[:, 0]
    order = public_permutation(700, seed)  # context only: a dense MLP on all columns (another network)
    dense = train_plaintext(X[tr][order], one_hot(y[tr], 2)[order], init_params([X.shape[1], 32, 8, 1], seed), **sched)
    out: dict[str, Any] = {"baseline_auc": roc_auc_score(y[te], central),
                           "dense_auc": roc_auc_score(y[te], forward(X[te], dense)[-1][:, 0])}
    for name, extra in {"plain": {}, **defences}.items():
        r = simulate(_split_prog, ["bank", "partner"], mode="thread", args=(X[tr], y[tr], X[te], cut, {**P, **extra}))
        out[name] = (roc_auc_score(y[te], r["bank"]["proba"]), *_attacks(r["partner"]["grads"], y[tr]))
        if name == "plain":
            out["proba_diff"] = float(np.max(np.abs(r["bank"]["proba"] - central)))
    return out


def _ms(v: list[float]) -> tuple[float, float]:
    return round(float(np.mean(v)), 4), round(float(np.std(v)), 4)


def _split_credit(seeds: int, marvell_sumkl: float, gradient_epsilon: float) -> dict:
    from ..ml.linear.base import public_permutation

    X, y, cut = _credit()
    perm = public_permutation(len(X), 100)  # the timed run: seed 0's split
    tr, te = perm[:700], perm[700:]
    timed, rss = simulate_rss(_split_prog, ["bank", "partner"], mode="process",
                              args=(X[tr], y[tr], X[te], cut, {**SPLIT_PARAMS, "random_state": 0}))
    defences = {"marvell": {"marvell_sumkl": marvell_sumkl}, "dp": {"gradient_epsilon": gradient_epsilon}}
    runs = [_split_seed(X, y, cut, s, defences) for s in range(seeds)]
    col = {k: [r[k] for r in runs] for k in ("baseline_auc", "dense_auc", "proba_diff")}
    row: dict[str, Any] = {"figure": "split_credit", "train_rows": 700, "test_rows": len(X) - 700, "seeds": seeds,
                           "network": f"bottoms {cut}-16-4 | {X.shape[1] - cut}-16-4, top 8-8-1",
                           **{k: v for k, v in SPLIT_PARAMS.items() if k in ("epochs", "batch_size", "learning_rate")}}
    for name, tag in (("plain", ""), ("marvell", "_defended"), ("dp", "_dp")):
        auc, norm, direction = (list(v) for v in zip(*[r[name] for r in runs]))
        row[f"auc{tag}"], row[f"auc{tag}_std"] = _ms(auc)
        row[f"label_attack_auc{tag}"] = round(max(float(np.mean(norm)), float(np.mean(direction))), 4)
        row[f"norm_attack_auc{tag}"], row[f"norm_attack_auc{tag}_std"] = _ms(norm)
        row[f"direction_attack_auc{tag}"], row[f"direction_attack_auc{tag}_std"] = _ms(direction)
        if tag:  # the defence's cost, paired per seed (same split, initialisation, batches)
            row[f"auc_cost{tag}"], row[f"auc_cost{tag}_std"] = _ms([r["plain"][0] - r[name][0] for r in runs])
    row["baseline_auc"], row["baseline_auc_std"] = _ms(col["baseline_auc"])
    row["max_abs_proba_diff_vs_baseline"] = float(max(col["proba_diff"]))
    row["dense_mlp_auc"], row["dense_mlp_auc_std"] = _ms(col["dense_auc"])
    row["defence"] = f"marvell sumKL<={marvell_sumkl}"
    row["gradient_epsilon"] = gradient_epsilon
    samples = SPLIT_PARAMS["epochs"] * (700 // SPLIT_PARAMS["batch_size"]) * SPLIT_PARAMS["batch_size"]
    seconds = max(r["seconds"] for r in timed.values())
    t0 = time.perf_counter()
    _split_seed_central_only(X, y, cut)
    base_s = time.perf_counter() - t0
    row.update({"seconds": round(seconds, 4), "baseline_seconds": round(base_s, 4),
                "samples_per_second": round(samples / seconds, 1), "baseline_samples_per_second": round(samples / base_s, 1),
                "bytes_per_sample": round(sum(r["payload"] for r in timed.values()) / samples, 1),
                "peak_mb": max(r["peak_mb"] for r in timed.values()), "peak_rss_mb": rss})
    return row


def _split_seed_central_only(X: np.ndarray, y: np.ndarray, cut: int) -> None:
    """The centralised twin of the timed run (seed 0), for the plaintext speed."""
    from ..ml.linear.base import public_permutation
    from ..ml.nn import one_hot
    from ..ml.nn.split import split_init, train_centralised

    tr = public_permutation(len(X), 100)[:700]
    P = SPLIT_PARAMS
    init = split_init([cut, X.shape[1] - cut], P["bottom_hidden"], P["cut_dim"], P["top_hidden"], 1, 0)
    train_centralised([X[tr][:, :cut], X[tr][:, cut:]], one_hot(y[tr], 2), *init, epochs=P["epochs"],
                      batch_size=P["batch_size"], learning_rate=P["learning_rate"], momentum=P["momentum"], seed=0)


def run(figures: list[str] | None = None, epochs: int = 5, gradient_epsilon: float = 4.0, marvell_sumkl: float = 0.25,
        seeds: int = 12) -> list[dict[str, Any]]:
    """The figures (see the module docstring) as dicts, one per figure. `epochs`: the MPC
    MLP on digits (split_credit has its own schedule, `SPLIT_PARAMS`); `seeds`: split_credit's
    repetitions (train/test split, initialisation and batch order per seed)."""
    out = []
    for name in figures or FIGURES:
        if name == "mpc_mlp_digits":
            out.append(_digits(epochs))
        elif name == "mpc_mlp_crypten_ff":
            out.append(_crypten_ff())
        elif name == "split_credit":
            out.append(_split_credit(seeds, marvell_sumkl, gradient_epsilon))
        else:
            from ..core.errors import ParameterError

            raise ParameterError(f"unknown figure {name!r}; use one of {FIGURES}", field="figure")
    return out
