"""The main job: joint credit scoring between a bank (labels + some features) and a
partner (other features), from two raw CSV files to a joint model, its AUC/KS, an
exported model whose parts stay with their owners, and joint predictions.

Steps (every party runs them, SPMD): read own CSV -> PSI on the id column -> public
train/test split -> vertical WOE binning (Paillier for the bank's labels) -> WOE
features (the partner's stay secret-shared) -> SS-LR under MPC -> joint prediction of
the test rows, scores revealed to the bank only -> AUC/KS at the bank -> each party
saves its part of the model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.prg import Prg
from ..data.frames import DataError, VDataFrame
from ..data.metrics import ks as ks_metric
from ..data.metrics import roc_auc
from ..data.vertical_woe import vertical_woe
from ..ml.linear import SSLogisticRegression
from ..mpc import MpcDevice
from ..psi import psi_frame


@dataclass
class CreditJobConfig:
    inputs: dict[str, str]  # party -> CSV path (each party opens only its own)
    label_party: str = "bank"
    id_column: str = "id"
    label: str = "creditability"
    pos_label: Any = "bad"
    protocol: str = "semi2k"
    dealer: str | None = "dealer"
    test_fraction: float = 0.3
    seed: int = 1
    binning: dict = field(default_factory=lambda: {"method": "chimerge", "max_bins": 6, "n_prebins": 20})
    model: dict = field(default_factory=lambda: {"epochs": 30, "batch_size": 64, "learning_rate": 0.5, "l2": 0.001, "sigmoid": "accurate"})
    key_bits: int = 2048
    output_dir: str | None = None
    verbose: bool = True

    @property
    def parties(self) -> list[str]:
        return list(self.inputs)


def public_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test row positions every party derives from the public seed (random, not stratified:
    a stratified split would need the labels and so show the partner label information)."""
    g = Prg(int(seed).to_bytes(16, "little"), stream="split")
    perm = np.argsort(g.uint64(n), kind="stable")
    n_test = int(round(test_fraction * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _log(cfg, ctx, msg: str) -> None:
    if cfg.verbose and ctx.me == cfg.label_party:
        print(f"  [{cfg.label_party}] {msg}", flush=True)


def run_credit_job(ctx, cfg: CreditJobConfig) -> dict:
    """Run the credit job at this party; returns this party's summary (metrics at the bank)."""
    t_start = time.perf_counter()
    me = ctx.me
    if cfg.label_party not in cfg.inputs:
        raise DataError(f"the label party '{cfg.label_party}' has no input file")
    for p in cfg.inputs:
        if p not in ctx.parties:
            raise DataError(f"input for unknown party '{p}' (cluster: {ctx.parties})")
    raw = {p: ctx.party(p).run(lambda path=path, p=p: _read(path, p, cfg)) for p, path in cfg.inputs.items()}
    timings: dict[str, float] = {}

    t = time.perf_counter()
    aligned = psi_frame(ctx, raw, key_columns=[cfg.id_column], sort_by=cfg.label_party, progress=False)
    timings["psi"] = time.perf_counter() - t
    parts = {p: ctx.party(p).run(lambda df: df.drop(columns=[cfg.id_column]), aligned[p]) for p in cfg.inputs}
    vdf = VDataFrame(ctx, parts)
    n = len(vdf)
    _log(cfg, ctx, f"PSI aligned {n} rows in {timings['psi']:.2f} s")
    if n < 10:
        raise DataError(f"only {n} rows are shared by all parties: too few to train")

    train_rows, test_rows = public_split(n, cfg.test_fraction, cfg.seed)
    train, test = vdf.take(train_rows), vdf.take(test_rows)

    t = time.perf_counter()
    woe = vertical_woe(ctx, train, cfg.label, pos_label=cfg.pos_label, key_bits=cfg.key_bits, **cfg.binning)
    timings["woe"] = time.perf_counter() - t
    _log(cfg, ctx, f"WOE binning of {sum(len(c) for c in woe.columns.values())} features in {timings['woe']:.2f} s")

    mpc = MpcDevice(ctx, cfg.parties, protocol=cfg.protocol, dealer=cfg.dealer if cfg.protocol == "semi2k" else None)
    t = time.perf_counter()
    x_train = woe.transform(ctx, train, mpc)
    x_test = woe.transform(ctx, test, mpc)
    y_train = ctx.party(cfg.label_party).run(lambda df: (df[cfg.label] == cfg.pos_label).to_numpy(np.float64), train.parts[cfg.label_party])
    model = SSLogisticRegression(mpc, random_state=cfg.seed, **cfg.model)
    model.fit(x_train, y_train)
    timings["train"] = time.perf_counter() - t
    _log(cfg, ctx, f"SS-LR trained ({model.n_epochs_} epochs) in {timings['train']:.2f} s")

    t = time.perf_counter()
    scores = model.predict(x_test, to=cfg.label_party)
    timings["predict"] = time.perf_counter() - t

    summary: dict[str, Any] = {"party": me, "rows_aligned": n, "train_rows": len(train_rows), "test_rows": len(test_rows)}
    summary["features"] = {p: len(c) for p, c in woe.columns.items()}
    if me == cfg.label_party:
        y_test = (test.parts[me].value[cfg.label] == cfg.pos_label).to_numpy(np.int64)
        s = np.asarray(scores.value)
        k = ks_metric(y_test, s)
        summary.update(
            auc=float(roc_auc(y_test, s)),
            ks=float(k.statistic),
            iv={c: round(v, 4) for c, v in sorted((woe.iv or {}).items(), key=lambda kv: -kv[1])},
            test_scores=s.tolist(),
            test_labels=y_test.tolist(),
            intercept=model.intercept_,
        )
    summary["weights"] = {p: np.asarray(v).tolist() for p, v in model.coef_by_party_.items()}
    summary["feature_names"] = {p: list(c) for p, c in woe.columns.items()}
    if cfg.output_dir:
        out = Path(cfg.output_dir)
        model.save(out / "model")
        save_woe(woe, out / "model", me)
        summary["model_dir"] = str(out / "model")
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    summary["seconds"] = round(time.perf_counter() - t_start, 3)
    summary["stats"] = ctx.comm.stats()
    return summary


def _read(path: str, party: str, cfg: CreditJobConfig) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise DataError(f"party '{party}': input file not found: {path}")
    df = pd.read_csv(p)
    if cfg.id_column not in df.columns:
        raise DataError(f"party '{party}': id column '{cfg.id_column}' not in {path} (columns: {list(df.columns)[:8]}...)")
    if party == cfg.label_party and cfg.label not in df.columns:
        raise DataError(f"party '{party}': label column '{cfg.label}' not in {path}")
    return df


def save_woe(woe, directory: Path, me: str) -> Path:
    """This party's part of the WOE transform: its bin maps (owner) and WOE tables (label holder)."""
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"format": "jointml.woe/1", "party": me, "label_owner": woe.label_owner, "columns": woe.columns, "bins": {}, "woe": {}}
    if me in woe.binners:
        b = woe.binners[me]
        for c in woe.columns[me]:
            cb = b.get_bins(c)
            doc["bins"][c] = {
                "kind": cb.kind,
                "edges": np.asarray(cb.edges, float).tolist(),
                "groups": [[_jsonable(v) for v in g] for g in cb.groups],
                "prebin_to_bin": woe.col[c].prebin_to_bin.tolist(),
            }
    for c, cw in woe.col.items():
        if cw.woe is not None:
            doc["woe"][c] = {"woe": cw.woe.tolist(), "iv": cw.iv}
    path = directory / f"woe.{me}.json"
    path.write_text(json.dumps(doc))
    return path


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v
