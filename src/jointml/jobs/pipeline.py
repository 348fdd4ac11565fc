"""Declarative pipelines: a YAML file names the parties, their inputs and a list of
components; every party runs the same pipeline (SPMD) on its own data.

```yaml
name: credit-scoring
parties: [bank, partner, dealer]
mpc: {protocol: semi2k, parties: [bank, partner], dealer: dealer}
inputs:                      # each party reads only its own file
  bank: data/bank.csv
  partner: data/partner.csv
steps:
  - psi: {key: id, sort_by: bank}
  - split: {test_fraction: 0.3, seed: 1}
  - woe_binning: {label: creditability, pos_label: bad, method: chimerge, max_bins: 6}
  - ss_lr.train: {epochs: 30, batch_size: 64, learning_rate: 0.5, l2: 0.001, sigmoid: accurate}
  - predict: {to: bank}
  - evaluate: {metrics: [auc, ks]}
output: out/credit           # model parts, one file per party, and summary.json
```

Components are named, versioned functions `fn(ctx, state, **params)` registered in
`COMPONENTS`; unknown components or parameters are rejected before anything runs.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from ..core.errors import ConfigError
from ..data.frames import DataError, VDataFrame
from ..mpc import MpcDevice


@dataclass
class JobState:
    """What the components of one pipeline run share at this party."""

    spec: "PipelineSpec"
    raw: dict = field(default_factory=dict)
    vdf: VDataFrame | None = None
    train: VDataFrame | None = None
    test: VDataFrame | None = None
    woe: Any = None
    label: str | None = None
    pos_label: Any = 1
    label_party: str | None = None
    mpc: MpcDevice | None = None
    model: Any = None
    scores: Any = None
    tree_features: str = "raw"
    summary: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def device(self, ctx) -> MpcDevice:
        if self.mpc is None:
            m = self.spec.mpc
            self.mpc = MpcDevice(ctx, m.get("parties"), protocol=m.get("protocol", "semi2k"), dealer=m.get("dealer"),
                                 frac_bits=int(m.get("frac_bits", 18)))
        return self.mpc


@dataclass
class Component:
    name: str
    version: str
    fn: Callable
    doc: str

    def params(self) -> list[str]:
        sig = inspect.signature(self.fn)
        return [p for p in list(sig.parameters)[2:]]


COMPONENTS: dict[str, Component] = {}


def component(name: str, version: str = "1"):
    def deco(fn):
        COMPONENTS[name] = Component(name, version, fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return deco


@dataclass
class PipelineSpec:
    name: str
    parties: list[str]
    inputs: dict[str, str]
    steps: list[tuple[str, dict]]
    mpc: dict = field(default_factory=dict)
    output: str | None = None
    base: Path = field(default_factory=Path.cwd)

    @classmethod
    def load(cls, path: str | Path) -> "PipelineSpec":
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"pipeline file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"pipeline file {path} is not valid YAML: {e}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict, base: Path | None = None) -> "PipelineSpec":
        if not isinstance(raw, dict):
            raise ConfigError("a pipeline must be a mapping")
        base = base or Path.cwd()
        for key in ("parties", "inputs", "steps"):
            if key not in raw:
                raise ConfigError(f"pipeline needs '{key}'")
        parties = list(raw["parties"])
        inputs = {}
        for p, v in dict(raw["inputs"]).items():
            if p not in parties:
                raise ConfigError(f"input for unknown party '{p}' (parties: {parties})")
            pth = Path(v)
            inputs[p] = str(pth if pth.is_absolute() else base / pth)
        steps = []
        for i, st in enumerate(raw["steps"]):
            if isinstance(st, str):
                st = {st: {}}
            if not isinstance(st, dict) or len(st) != 1:
                raise ConfigError(f"step {i + 1}: write each step as '- name: {{params}}'")
            (name, params), = st.items()
            params = dict(params or {})
            comp = COMPONENTS.get(name)
            if comp is None:
                raise ConfigError(f"step {i + 1}: unknown component '{name}' (known: {sorted(COMPONENTS)})")
            unknown = set(params) - set(comp.params())
            if unknown:
                raise ConfigError(f"step {i + 1} ({name}): unknown parameters {sorted(unknown)}; allowed: {comp.params()}")
            steps.append((name, params))
        mpc = dict(raw.get("mpc") or {})
        for p in (mpc.get("parties") or []) + ([mpc["dealer"]] if mpc.get("dealer") else []):
            if p not in parties:
                raise ConfigError(f"mpc: unknown party '{p}' (parties: {parties})")
        out = raw.get("output")
        if out is not None and not Path(out).is_absolute():
            out = str(base / out)
        return cls(name=str(raw.get("name", "pipeline")), parties=parties, inputs=inputs, steps=steps, mpc=mpc, output=out, base=base)


def run_pipeline(ctx, spec: PipelineSpec, verbose: bool = False) -> dict:
    """Run every step at this party; returns this party's summary."""
    state = JobState(spec=spec)
    t_all = time.perf_counter()
    for p, path in spec.inputs.items():
        state.raw[p] = ctx.party(p).run(lambda path=path, p=p: _read_input(path, p))
    for name, params in spec.steps:
        t = time.perf_counter()
        COMPONENTS[name].fn(ctx, state, **params)
        state.timings[name] = round(time.perf_counter() - t, 3)
        if verbose and ctx.me == (state.label_party or spec.parties[0]):
            print(f"  [{ctx.me}] {name:<14} done in {state.timings[name]:.2f} s", flush=True)
    state.summary.update(party=ctx.me, timings=state.timings, seconds=round(time.perf_counter() - t_all, 3), stats=ctx.comm.stats())
    if spec.output:
        out = Path(spec.output)
        out.mkdir(parents=True, exist_ok=True)
        summary_public = {k: v for k, v in state.summary.items() if k not in ("test_scores", "test_labels")}
        (out / f"summary.{ctx.me}.json").write_text(json.dumps(summary_public, indent=1, default=_json_default))
    return state.summary


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _read_input(path: str, party: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise DataError(f"party '{party}': input file not found: {path}")
    try:
        return pd.read_parquet(p) if p.suffix in (".parquet", ".pq") else pd.read_csv(p)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"party '{party}': cannot read {path}: {e}") from None


# -- components ---------------------------------------------------------------------------
@component("psi")
def psi_step(ctx, state: JobState, key="id", sort_by=None, parties=None):
    """Align the parties' rows on a key (ECDH-PSI); the key columns are dropped afterwards."""
    from ..psi import psi_frame

    keys = [key] if isinstance(key, str) else list(key)
    who = list(parties or state.raw)
    for p in who:
        if p not in state.raw:
            raise ConfigError(f"psi: party '{p}' has no input")
    aligned = psi_frame(ctx, {p: state.raw[p] for p in who}, key_columns=keys, sort_by=sort_by, progress=False)
    parts = {p: ctx.party(p).run(lambda df: df.drop(columns=keys), aligned[p]) for p in who}
    state.vdf = VDataFrame(ctx, parts)
    state.summary["rows_aligned"] = len(state.vdf)


@component("split")
def split_step(ctx, state: JobState, test_fraction=0.3, seed=1):
    """Random train/test split on public row positions (the same at every party)."""
    from .credit import public_split

    _need(state.vdf, "split", "psi (or aligned inputs)")
    tr, te = public_split(len(state.vdf), float(test_fraction), int(seed))
    state.train, state.test = state.vdf.take(tr), state.vdf.take(te)
    state.summary.update(train_rows=len(tr), test_rows=len(te))


@component("woe_binning")
def woe_step(ctx, state: JobState, label="label", pos_label=1, method="chimerge", max_bins=6, n_prebins=20,
             min_bin_frac=0.05, key_bits=2048, woe_to_owner=False):
    """Vertical WOE binning and IV (labels encrypted with Paillier at the label holder)."""
    from ..data.secure.woe import vertical_woe

    _need(state.train, "woe_binning", "split")
    state.label, state.pos_label = label, pos_label
    state.label_party = state.train.owner_of(label)
    state.woe = vertical_woe(ctx, state.train, label, pos_label=pos_label, method=method, max_bins=int(max_bins),
                             n_prebins=int(n_prebins), min_bin_frac=float(min_bin_frac), key_bits=int(key_bits),
                             woe_to_owner=bool(woe_to_owner))
    state.summary["features"] = {p: len(c) for p, c in state.woe.columns.items()}
    if state.woe.iv:
        state.summary["iv"] = {c: round(v, 4) for c, v in sorted(state.woe.iv.items(), key=lambda kv: -kv[1])}


@component("encode")
def encode_step(ctx, state: JobState, method="ordinal", label=None):
    """Each party encodes its own text columns as numbers, locally (no label used): category
    codes in sorted order ("ordinal"). Tree models then bin them at the owner."""
    from ..data.preprocessing import OrdinalEncoder

    if method != "ordinal":
        raise ConfigError(f"encode: method must be 'ordinal', got {method!r}")
    _need(state.vdf, "encode", "psi (or aligned inputs)")
    if label is not None:
        state.label, state.label_party = label, state.vdf.owner_of(label)
    label = state.label

    def enc(df):
        df = df.copy()
        cols = [c for c in df.columns if c != label and df[c].dtype.kind not in "biuf"]
        if cols:
            df[cols] = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit_transform(df[cols])
        return df

    state.vdf = VDataFrame(ctx, {p: ctx.party(p).run(enc, o) for p, o in state.vdf.parts.items()})


def _features(ctx, state: JobState, frame: VDataFrame):
    if state.woe is not None:
        return state.woe.transform(ctx, frame, state.device(ctx))
    feats = {}
    for p, cols in frame.columns.items():
        cs = [c for c in cols if c != state.label]
        if cs:
            frame[cs].check_numeric()
            feats[p] = frame.to_numpy(p, cs)
    return feats


def _labels(ctx, state: JobState, frame: VDataFrame):
    return ctx.party(state.label_party).run(lambda df: (df[state.label] == state.pos_label).to_numpy(np.float64), frame.parts[state.label_party])


@component("ss_lr.train")
def ss_lr_train(ctx, state: JobState, label=None, pos_label=None, epochs=30, batch_size=64, learning_rate=0.5, l2=0.0, l1=0.0,
                sigmoid="accurate", lr_schedule="constant", lr_decay=0.0, early_stopping=False, class_weight=None,
                reveal="owners", seed=0):
    """Secure logistic regression under MPC (weights stay shared during training)."""
    from ..ml.linear import SSLogisticRegression

    _label_for_training(state, "ss_lr.train", label, pos_label)
    mpc = state.device(ctx)
    x = _features(ctx, state, state.train)
    y = _labels(ctx, state, state.train)
    state.model = SSLogisticRegression(mpc, epochs=int(epochs), batch_size=batch_size, learning_rate=float(learning_rate),
                                       l2=float(l2), l1=float(l1), sigmoid=sigmoid, lr_schedule=lr_schedule,
                                       lr_decay=float(lr_decay), early_stopping=bool(early_stopping),
                                       class_weight=class_weight, reveal=reveal, random_state=int(seed))
    state.model.fit(x, y)
    state.summary["weights"] = {p: np.asarray(v).tolist() for p, v in state.model.coef_by_party_.items()}
    state.summary["feature_names"] = {p: [c for c in cols if c != state.label] for p, cols in state.train.columns.items()}
    if state.spec.output:
        from .credit import save_woe

        d = Path(state.spec.output) / "model"
        state.model.save(d)
        if state.woe is not None:
            save_woe(state.woe, d, ctx.me)
        state.summary["model_dir"] = str(d)


def _tree_features(ctx, state: JobState, frame: VDataFrame):
    """Raw numeric columns at their owners (trees bin them locally; names are kept)."""
    feats = {}
    for p, cols in frame.columns.items():
        cs = [c for c in cols if c != state.label]
        if cs:
            frame[cs].check_numeric()
            feats[p] = ctx.party(p).run(lambda df, cs=cs: df[cs], frame.parts[p])
    return feats


@component("secureboost.train")
def secureboost_train(ctx, state: JobState, label=None, pos_label=None, objective="binary", n_estimators=10, learning_rate=0.3,
                      max_depth=5, min_child_weight=1.0, reg_lambda=1.0, gamma=0.0, subsample=1.0,
                      colsample_bytree=1.0, max_bin=32, key_bits=2048, features="woe"):
    """SecureBoost (Paillier HE): gradient-boosted trees whose thresholds stay with their owners.

    `features="woe"` trains on the WOE features of a preceding woe_binning step where they
    are plaintext at their owner (needs woe_to_owner=True for feature holders); "raw" on the
    numeric columns as they are."""
    from ..ml.tree import SecureBoostClassifier, SecureBoostRegressor

    _label_for_training(state, "secureboost.train", label, pos_label)
    if objective not in ("binary", "regression"):
        raise ConfigError(f"secureboost.train: objective must be binary or regression, got {objective!r}")
    state.tree_features = features
    cls = SecureBoostClassifier if objective == "binary" else SecureBoostRegressor
    x = _secureboost_inputs(ctx, state, state.train)
    y = (_labels(ctx, state, state.train) if objective == "binary" else
         ctx.party(state.label_party).run(lambda df: df[state.label].to_numpy(np.float64), state.train.parts[state.label_party]))
    state.model = cls(ctx, n_estimators=int(n_estimators), learning_rate=float(learning_rate), max_depth=int(max_depth),
                      min_child_weight=float(min_child_weight), reg_lambda=float(reg_lambda), gamma=float(gamma),
                      subsample=float(subsample), colsample_bytree=float(colsample_bytree), max_bin=int(max_bin),
                      key_bits=int(key_bits))
    state.model.fit(x, y)
    state.summary["features"] = {p: len([c for c in cols if c != state.label]) for p, cols in state.train.columns.items()}
    if ctx.me not in state.train.parts:  # a party without data (e.g. a dealer) takes no part
        return
    state.summary["trees"] = len(state.model.trees_)
    if ctx.me == state.label_party:
        state.summary["importance_gain"] = state.model.get_importance("total_gain")
        state.summary["importance_splits"] = state.model.get_importance("weight")
    if state.spec.output:
        d = Path(state.spec.output) / "model"
        state.model.save(d)
        state.summary["model_dir"] = str(d)


def _secureboost_inputs(ctx, state: JobState, frame: VDataFrame):
    if getattr(state, "tree_features", "raw") == "woe" and state.woe is not None:
        feats = state.woe.transform(ctx, frame, None if state.woe.woe_to_owner else state.device(ctx))
        from ..mpc import SecretArray

        if any(isinstance(v, SecretArray) for v in feats.values()):
            raise ConfigError("secureboost.train on WOE features needs woe_binning(woe_to_owner=True): trees split plaintext features at their owners")
        return feats
    return _tree_features(ctx, state, frame)


@component("secureboost.predict")
def secureboost_predict(ctx, state: JobState, to=None):
    """Joint SecureBoost scores of the test rows, revealed to the label holder only."""
    from ..ml.tree import SecureBoostClassifier

    _need(state.model, "secureboost.predict", "secureboost.train")
    if to is not None and to != state.label_party:
        raise ConfigError("secureboost.predict: scores go to the label holder only")
    frame = state.test if state.test is not None else state.vdf
    x = _secureboost_inputs(ctx, state, frame)
    if ctx.me not in frame.parts:  # no data, no part in the trees: a handle to the bank's scores
        state.scores = ctx.party(state.label_party).put(None)
        state.summary["scores_to"] = state.label_party
        return
    if isinstance(state.model, SecureBoostClassifier):
        proba = state.model.predict_proba(x)
        state.scores = proba.device.run(lambda p: p[:, 1], proba)
    else:
        state.scores = state.model.predict(x)
    state.summary["scores_to"] = state.label_party


@component("ss_xgb.train")
def ss_xgb_train(ctx, state: JobState, label=None, pos_label=None, n_estimators=3, max_depth=3, learning_rate=0.3,
                 reg_lambda=1.0, min_child_weight=0.0, max_bin=16, sigmoid="accurate"):
    """XGBoost-style trees trained fully under MPC (only the tree structure is revealed)."""
    from ..ml.tree import SSXGBClassifier

    _label_for_training(state, "ss_xgb.train", label, pos_label)
    x = {p: ctx.party(p).run(lambda df: df.to_numpy(np.float64), o) for p, o in _tree_features(ctx, state, state.train).items()}
    y = _labels(ctx, state, state.train)
    state.model = SSXGBClassifier(state.device(ctx), n_estimators=int(n_estimators), max_depth=int(max_depth),
                                  learning_rate=float(learning_rate), reg_lambda=float(reg_lambda),
                                  min_child_weight=float(min_child_weight), max_bin=int(max_bin), sigmoid=sigmoid)
    state.model.fit(x, y)
    state.summary["trees"] = int(n_estimators)
    if state.spec.output:
        d = Path(state.spec.output) / "model"
        state.model.save(d)
        state.summary["model_dir"] = str(d)


@component("ss_xgb.predict")
def ss_xgb_predict(ctx, state: JobState):
    """Joint SS-XGB scores of the test rows, revealed to the label holder only."""
    _need(state.model, "ss_xgb.predict", "ss_xgb.train")
    frame = state.test if state.test is not None else state.vdf
    x = {p: ctx.party(p).run(lambda df: df.to_numpy(np.float64), o) for p, o in _tree_features(ctx, state, frame).items()}
    proba = state.model.predict_proba(x, to=state.label_party)
    state.scores = ctx.party(state.label_party).run(lambda p: np.asarray(p)[:, 1], proba)
    state.summary["scores_to"] = state.label_party


@component("predict")
def predict_step(ctx, state: JobState, to=None):
    """Joint prediction of the test rows; scores revealed only to `to` (default: the label holder)."""
    _need(state.model, "predict", "a training step")
    frame = state.test if state.test is not None else state.vdf
    to = to or state.label_party
    state.scores = state.model.predict(_features(ctx, state, frame), to=to)
    state.summary["scores_to"] = to


@component("evaluate")
def evaluate_step(ctx, state: JobState, metrics=("auc", "ks")):
    """AUC / KS / log-loss / accuracy at the party holding both scores and labels."""
    from ..data import metrics as M

    _need(state.scores, "evaluate", "predict")
    holder = state.scores.owner
    if holder != state.label_party:
        raise ConfigError(f"evaluate: scores went to '{holder}' but labels are at '{state.label_party}'")
    if ctx.me != holder:
        return
    frame = state.test if state.test is not None else state.vdf
    y = (frame.parts[holder].value[state.label] == state.pos_label).to_numpy(np.int64)
    s = np.asarray(state.scores.value)
    for m in metrics:
        if m == "auc":
            state.summary["auc"] = float(M.roc_auc(y, s))
        elif m == "ks":
            state.summary["ks"] = float(M.ks(y, s).statistic)
        elif m == "log_loss":
            state.summary["log_loss"] = float(M.log_loss(y, np.clip(s, 1e-6, 1 - 1e-6)))
        elif m == "accuracy":
            state.summary["accuracy"] = float(M.accuracy(y, (s >= 0.5).astype(int)))
        else:
            raise ConfigError(f"evaluate: unknown metric '{m}' (auc, ks, log_loss, accuracy)")
    state.summary["test_scores"] = s.tolist()
    state.summary["test_labels"] = y.tolist()
    state.summary["intercept"] = getattr(state.model, "intercept_", None)


def _label_for_training(state: JobState, step: str, label, pos_label) -> None:
    """A training step needs the split data and a label column (named here or by an earlier step)."""
    _need(state.train, step, "split")
    if label is not None:
        state.label, state.label_party = label, state.train.owner_of(label)
    if pos_label is not None:
        state.pos_label = pos_label
    if state.label is None:
        raise ConfigError(f"{step}: name the label column (here or in an earlier step such as woe_binning)")


def _need(obj, step: str, what: str) -> None:
    if obj is None:
        raise ConfigError(f"step '{step}' needs {what} before it")


def simulate_pipeline(spec: PipelineSpec, mode: str = "process", verbose: bool = True) -> dict:
    """Run a pipeline with every party as a local process (or thread)."""
    from ..runtime import simulate

    return simulate(run_pipeline, spec.parties, mode=mode, kwargs={"spec": spec, "verbose": verbose})
