"""What a pipeline's training step saves next to the model parts, and reads back to predict.

In the model folder (`<output>/model/`), each party writes only its own files:

    <Kind>.<party>.json, manifest.<party>.json   the model part (`runtime.persist` / the estimator's save)
    woe.<party>.json                             its part of the WOE transform (`data.woe_io`), when used
    encode.<party>.json                          its text-column codes, when an `encode` step ran
    pipeline.<party>.json                        the public record of the trained model (`ModelParts.describe()`)

The record names the registry model, the estimator kind, the feature view, the label,
the model's parties and MPC device, and a model id that every party agreed on at
training. Prediction trusts a record only when it matches the party's manifest (the
current model part), so a stale part of another model left in the folder is never used.

>>> import tempfile
>>> from jointml.jobs.artifacts import Label, ModelParts
>>> d = tempfile.mkdtemp()
>>> _ = write_record(d, "bank", ModelParts(None, "ss_xgb", "SSXGBClassifier", "raw", Label("y", 1, "bank"), model_id="m1"))
>>> read_record(d, "bank")["kind"]
'SSXGBClassifier'
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..core.errors import PersistError
from ..runtime.persist import FORMAT, FORMAT_VERSION, atomic_write, part_path, read_manifest, read_party_json
from .artifacts import Encoding, ModelParts

__all__ = ["RECORD_FORMAT", "ensure_manifest", "load_encoding", "read_record", "remember", "save_encoding", "write_record"]

RECORD_FORMAT = "jointml.pipeline-model/1"
ENCODING_FORMAT = "jointml.encoding/1"


def _write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(doc, default=str))


def _read(path: Path, party: str, fmt: str) -> dict | None:
    return read_party_json(path, party, lambda d: d.get("format") == fmt and d.get("party") == party,
                           f"this party's {fmt} file")


def write_record(directory: str | Path, party: str, parts: ModelParts) -> Path:
    """Write `pipeline.<party>.json`: the public record of the trained model."""
    return _write(Path(directory) / f"pipeline.{party}.json", {"format": RECORD_FORMAT, "party": party, **parts.describe()})


def read_record(directory: str | Path, party: str) -> dict | None:
    """This party's record in `directory` (None when it has none)."""
    return _read(Path(directory) / f"pipeline.{party}.json", party, RECORD_FORMAT)


def remember(directory: str | Path, party: str, **fields: object) -> bool:
    """Add `fields` (e.g. the PSI key `id_column`) to this party's record; False when it has none.

    >>> import tempfile
    >>> from jointml.jobs.artifacts import Label, ModelParts
    >>> d = tempfile.mkdtemp()
    >>> _ = write_record(d, "bank", ModelParts(None, "ss_lr", "SSLogisticRegression", "woe", Label("y", 1, "bank")))
    >>> remember(d, "bank", id_column="id"), read_record(d, "bank")["id_column"]
    (True, 'id')
    """
    rec = read_record(directory, party)
    if rec is None:
        return False
    rec.update(fields)
    _write(Path(directory) / f"pipeline.{party}.json", rec)
    return True


def save_encoding(directory: str | Path, party: str, enc: Encoding) -> Path:
    """Write this party's text-column codes (`encode.<party>.json`)."""
    return _write(Path(directory) / f"encode.{party}.json",
                  {"format": ENCODING_FORMAT, "party": party, "columns": enc.columns, "categories": enc.categories})


def load_encoding(directory: str | Path, party: str) -> Encoding | None:
    """This party's saved text-column codes (None when it has none).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = save_encoding(d, "bank", Encoding(["city"], [["Bonn"]]))
    >>> load_encoding(d, "bank").categories
    [['Bonn']]
    """
    doc = _read(Path(directory) / f"encode.{party}.json", party, ENCODING_FORMAT)
    return None if doc is None else Encoding(list(doc["columns"]), [list(c) for c in doc["categories"]])


def ensure_manifest(directory: str | Path, party: str, kind: str, model_id: str, before: dict | None) -> None:
    """Make the manifest name the part just saved.

    Transitional: estimators on `ml.base.SecureEstimator` write their manifest in `save`
    (then this does nothing); the others do not yet, and a manifest left by an earlier
    model would name a stale part. `before` is the manifest read before `save`.
    """
    now = read_manifest(directory, party)
    if now is not None and now != before and now.get("kind") == kind:
        return  # the estimator wrote it
    path = part_path(directory, kind, party)
    if not path.exists():
        raise PersistError(f"the model was saved without its part {path}", party=party)
    manifest = {"format": FORMAT + "-manifest", "version": FORMAT_VERSION, "party": party, "kind": kind,
                "model_id": model_id, "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "created": time.time()}
    _write(Path(directory) / f"manifest.{party}.json", manifest)
