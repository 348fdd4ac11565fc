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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.prg import Prg


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
    model: dict = field(default_factory=lambda: {"epochs": 30, "batch_size": 128, "learning_rate": 1.0, "l2": 0.001, "sigmoid": "poly"})
    key_bits: int = 2048
    model_type: str = "ss_lr"  # or "secureboost"
    trees: dict = field(default_factory=lambda: {"n_estimators": 10, "learning_rate": 0.3, "max_depth": 3, "max_bin": 32})
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


def credit_pipeline(cfg: CreditJobConfig, parties: list[str]) -> "PipelineSpec":
    """The credit job as a declarative pipeline (what `jointml run` executes from YAML)."""
    from .pipeline import PipelineSpec

    mpc = {"protocol": cfg.protocol, "parties": list(cfg.inputs)}
    if cfg.protocol == "semi2k":
        mpc["dealer"] = cfg.dealer
    else:
        mpc["parties"] = [p for p in parties]
    return PipelineSpec.from_dict({
        "name": "credit-scoring",
        "parties": parties,
        "mpc": mpc,
        "inputs": cfg.inputs,
        "steps": _credit_steps(cfg),
        "output": cfg.output_dir,
    })


def _credit_steps(cfg: CreditJobConfig) -> list[dict]:
    head = [{"psi": {"key": cfg.id_column, "sort_by": cfg.label_party}}]
    if cfg.model_type == "secureboost":
        return head + [
            {"encode": {"method": "ordinal", "label": cfg.label}},
            {"split": {"test_fraction": cfg.test_fraction, "seed": cfg.seed}},
            {"secureboost.train": {"label": cfg.label, "pos_label": cfg.pos_label, "key_bits": cfg.key_bits, "features": "raw", **cfg.trees}},
            {"secureboost.predict": {}},
            {"evaluate": {"metrics": ["auc", "ks"]}},
        ]
    if cfg.model_type != "ss_lr":
        raise ValueError(f"model_type must be 'ss_lr' or 'secureboost', got {cfg.model_type!r}")
    return head + [
        {"split": {"test_fraction": cfg.test_fraction, "seed": cfg.seed}},
        {"woe_binning": {"label": cfg.label, "pos_label": cfg.pos_label, "key_bits": cfg.key_bits, **cfg.binning}},
        {"ss_lr.train": {**cfg.model, "seed": cfg.seed}},
        {"predict": {"to": cfg.label_party}},
        {"evaluate": {"metrics": ["auc", "ks"]}},
    ]


def run_credit_job(ctx, cfg: CreditJobConfig) -> dict:
    """Run the credit job at this party; returns this party's summary (metrics at the bank)."""
    from .pipeline import run_pipeline

    return run_pipeline(ctx, credit_pipeline(cfg, ctx.parties), verbose=cfg.verbose)


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


class _SavedBinner:
    """Pre-binning restored from a saved model part (the owner's bin boundaries)."""

    def __init__(self, bins: dict):
        from ..data.preprocessing import ColumnBins

        self._bins = {
            c: ColumnBins(c, b["kind"], edges=np.asarray(b["edges"], float), groups=tuple(tuple(g) for g in b["groups"]), handle_unknown="missing")
            for c, b in bins.items()
        }

    def get_bins(self, c):
        return self._bins[c]

    def transform(self, df):
        return np.stack([self._bins[c].transform(df[c]) for c in df.columns], axis=1) if len(df.columns) else np.zeros((len(df), 0), np.int64)


def load_woe(directory: Path, me: str):
    """This party's part of a saved WOE transform (see `save_woe`)."""
    from ..data.secure.woe import ColumnWOE, VerticalWOE

    path = Path(directory) / f"woe.{me}.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if doc.get("format") != "jointml.woe/1":
        raise ValueError(f"{path} is not a jointml WOE part")
    columns = {p: list(c) for p, c in doc["columns"].items()}
    model = VerticalWOE(label_owner=doc["label_owner"], columns=columns)
    if doc["bins"]:
        model.binners[me] = _SavedBinner(doc["bins"])
    for p, cols in columns.items():
        for c in cols:
            cw = ColumnWOE(p, 0)
            if c in doc["bins"]:
                cw.prebin_to_bin = np.asarray(doc["bins"][c]["prebin_to_bin"], np.int64)
                cw.n_bins = int(cw.prebin_to_bin.max()) + 1
            if c in doc["woe"]:
                cw.woe = np.asarray(doc["woe"][c]["woe"], float)
                cw.iv = doc["woe"][c]["iv"]
                cw.n_bins = len(cw.woe)
            model.col[c] = cw
    return model


def predict_job(ctx, model_dir: str, inputs: dict[str, str], to: str, id_column: str | None = "id", protocol: str = "semi2k",
                dealer: str | None = "dealer") -> dict:
    """Score new rows jointly with saved model parts: each party loads its own part and its own rows.

    With `id_column` the rows are first aligned by PSI on that column (only shared ids are
    scored); with `id_column=None` they must already be aligned. Scores go to `to` only."""
    from ..data.frames import VDataFrame
    from ..ml.linear import SSLogisticRegression
    from ..mpc import MpcDevice
    from .pipeline import _read_input

    d = Path(model_dir)
    mpc = MpcDevice(ctx, list(inputs), protocol=protocol, dealer=dealer if protocol == "semi2k" else None)
    model = SSLogisticRegression.load(mpc, d)
    woe_local = load_woe(d, ctx.me)
    raw = {p: ctx.party(p).run(lambda path=path, p=p: _read_input(path, p)) for p, path in inputs.items()}
    ids = None
    if id_column:
        # Align the new rows by PSI on the id (common order: the receiver's).
        from ..psi import psi_frame

        raw = psi_frame(ctx, raw, key_columns=[id_column], sort_by=to if to in raw else None, progress=False)
        if to in raw:
            ids = ctx.party(to).run(lambda df: df[id_column].tolist(), raw[to])
        raw = {p: ctx.party(p).run(lambda df: df.drop(columns=[id_column]), o) for p, o in raw.items()}
    vdf = VDataFrame(ctx, raw)
    # Every party needs the (public) WOE layout: the columns and bin counts.
    woe = woe_local
    if woe is None:
        raise ValueError(f"party '{ctx.me}': no WOE part in {d}")
    for p, cols in woe.columns.items():
        for c in cols:
            tag = f"predict-nb:{c}"
            if ctx.me == p:
                for q in ctx.parties:
                    if q != p:
                        ctx.comm.send(q, tag, meta={"n": woe.col[c].n_bins})
            else:
                n_b = int(ctx.comm.recv(p, tag).meta["n"])
                if woe.col[c].n_bins == 0:
                    woe.col[c].n_bins = n_b
    feats = woe.transform(ctx, vdf[[c for p in vdf.parties for c in woe.columns.get(p, [])]], mpc)
    scores = model.predict(feats, to=to)
    out = {"party": ctx.me, "rows": len(vdf)}
    if ctx.me == to:
        out["scores"] = np.asarray(scores.value).tolist()
        out["ids"] = ids.value if ids is not None else None
    return out
