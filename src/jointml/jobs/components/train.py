"""`train`: one training component over the model registry (`jointml.jobs.registry.MODELS`).

`model` names the registry entry (`ss_lr`, `ss_glm`, `secureboost`, `ss_xgb`); the other
parameters are that model's hyperparameters. What each party learns is the model's own
security model (see its module: SS-LR keeps weights shared and reveals each party its
own weights with `reveal="owners"`; SecureBoost shows split bins to the label holder;
SS-XGB reveals the tree structure). The step adds one broadcast: a model id from the
first party, so every party's saved record names the same training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ...core.errors import ConfigError
from ...data.io import labels
from ...data.woe_io import save_woe
from ...runtime.collectives import broadcast
from ...runtime.persist import new_model_id, read_manifest
from ..artifacts import Encoding, Label, ModelParts, Split, WoeModel
from ..registry import MODELS, Param, component, kind_of
from ..saved import ensure_manifest, save_encoding, write_record
from .features import model_features, raw_columns, resolve_view


def _model_params(given: dict) -> dict[str, Param]:
    name = given.get("model")
    if name is None:
        return {}
    if name not in MODELS:
        raise ConfigError(f"train: unknown model '{name}' (known: {sorted(MODELS)})", field="model")
    return MODELS[name].params()


def _needs_label(step: str, params: dict, have: set) -> str | None:
    if params.get("label") is None and Label not in have:
        return f"{step}: name the label column (here or in an earlier step such as woe_binning)"
    return None


@component("train", outputs=(ModelParts, Label), wiring=_needs_label, extra_params=_model_params)
def train(ctx: Any, state: Any, split: Split, known: Label | None = None, woe: WoeModel | None = None,
          enc: Encoding | None = None, *,
          model: str, label: str | None = None, pos_label: Any = None, features: Literal["woe", "raw"] | None = None,
          **hyper: Any) -> tuple[ModelParts, Label]:
    """Train a registered model (`model: ss_lr | ss_glm | secureboost | ss_xgb` and its hyperparameters)
    on the training rows; with an `output`, each party saves its part of it."""
    entry = MODELS[model]
    frame = split.train
    if label is None:
        if known is None:  # (the wiring check reports this before a run starts)
            raise ConfigError("train: name the label (label=) or run a step that names it first", field="label")
        label = known.name
    lab = Label(label, pos_label if pos_label is not None else (known.pos_label if known is not None else 1), None)
    lab.party = frame.owner_of(lab.name)
    view = resolve_view(entry, features, woe)
    w = woe.woe if (woe is not None and view == "woe") else None
    cols = {p: list(c) for p, c in w.columns.items()} if w is not None else raw_columns(frame, lab.name)
    X = model_features(ctx, lambda: state.device(ctx), entry, view, w, frame, cols)
    y = labels(ctx, frame, lab.name, lab.pos_label, binary=entry.binary(hyper))
    # Agreed before fit: a party outside the model (a dealer for SecureBoost) may leave fit
    # with its message counter behind the others', so no collective of all follows fit.
    model_id = broadcast(ctx, ctx.parties[0], meta={"id": new_model_id()} if ctx.me == ctx.parties[0] else None,
                         name="model-id").meta["id"]
    est = entry.build(state.device(ctx) if entry.device == "mpc" else ctx, **hyper)  # HE models: the context
    est.fit(X, y)
    parts = ModelParts(est, model, kind_of(est), view, lab, w, entry.model_parties(ctx, frame),
                       dict(state.spec.mpc) if entry.device == "mpc" else None, model_id, columns=cols,
                       encoding=enc if (enc is not None and enc.columns) else None)
    state.summary.update(entry.summary(ctx, est, frame, lab.name))
    if entry.device != "mpc" and hasattr(est, "key_bits"):  # HE models: the Paillier key size, for the record
        if getattr(est, "protection", "none") == "mpc":  # SecureBoost's protected mode uses no Paillier key
            state.summary["secureboost_protection"] = "mpc"
        else:
            state.summary.setdefault("paillier_key_bits", {})["train"] = int(est.key_bits)
            if hasattr(est, "he_scheme"):  # the HE scheme of that key: "ou" (default) or "paillier"
                state.summary.setdefault("he_scheme", {})["train"] = str(est.he_scheme)
    if state.spec.output:
        _save(ctx, state, parts)
    return parts, lab


def _save(ctx: Any, state: Any, parts: ModelParts) -> None:
    """Each party saves its own part (the model's parties), its WOE part and codes, and the record."""
    d = Path(state.spec.output) / "model"
    parts.directory = str(d)
    if parts.parties is None or ctx.me in parts.parties:
        before = read_manifest(d, ctx.me)
        parts.estimator.save(d)
        ensure_manifest(d, ctx.me, parts.kind, parts.model_id, before)
        if parts.woe is not None:
            save_woe(parts.woe, d, ctx.me)
        state.summary["model_dir"] = str(d)
    if parts.encoding is not None:
        save_encoding(d, ctx.me, parts.encoding)
    elif (d / f"encode.{ctx.me}.json").exists():
        (d / f"encode.{ctx.me}.json").unlink()  # codes of an earlier model must not apply to this one
    write_record(d, ctx.me, parts)
