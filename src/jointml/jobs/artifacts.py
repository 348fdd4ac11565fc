"""Typed artifacts: what pipeline components pass to each other, and where they are kept.

A component declares its inputs by artifact type (its signature) and its outputs (its
`@component(outputs=...)`); the runner wires the most recent artifact of each type to
the next component that asks for it, and keeps every artifact in an `ArtifactStore`.

Every party holds its own artifacts: the same *kind* of artifact everywhere (SPMD), with
the content this party may see (its own partition of a frame, its share of a model, the
scores only at the party they were revealed to). `describe()` gives the public metadata
the store records about an artifact at this party (never data values).

| artifact | produced by | holds |
| --- | --- | --- |
| `Inputs` | the runner | each party's raw table (at its owner) |
| `AlignedFrame` | `psi`, `encode` | the PSI-aligned `VDataFrame` |
| `Encoding` | `encode` | this party's category codes of its own text columns |
| `Split` | `split` | train/test frames and the public row positions |
| `Label` | `woe_binning`, `encode`, `train` | the label column, its positive value, its owner |
| `WoeModel` | `woe_binning` | the fitted vertical WOE transform (this party's view) |
| `ModelParts` | `train` | the fitted estimator (this party's part) and where its parts are saved |
| `Scores` | `predict` | the revealed scores (at the receiving party) and the rows scored |

>>> store = MemoryStore()
>>> key = store.put("encode", Label("creditability", "bad", "bank"))
>>> store.latest(Label).party, key
('bank', '1-encode-Label')
>>> store.records()[0]["describe"]
{'label': 'creditability', 'pos_label': 'bad', 'party': 'bank'}
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..runtime.persist import atomic_write

__all__ = [
    "AlignedFrame",
    "Artifact",
    "ArtifactStore",
    "Encoding",
    "Inputs",
    "Label",
    "LocalDirStore",
    "MemoryStore",
    "ModelParts",
    "Scores",
    "Split",
    "WoeModel",
]

A = TypeVar("A", bound="Artifact")


class Artifact:
    """Base class of artifacts. `produced_by` names what makes one (for wiring errors)."""

    produced_by: ClassVar[str] = "an earlier step"

    def describe(self) -> dict[str, Any]:
        """Public metadata about this artifact at this party (JSON-able, no data values)."""
        return {}


@dataclass
class Inputs(Artifact):
    """Each party's raw input table: `{party: PartyObject of a DataFrame}` (opaque elsewhere).

    >>> Inputs({}).describe()
    {'parties': []}
    """

    frames: dict[str, Any] = field(default_factory=dict)
    produced_by: ClassVar[str] = "inputs"

    def describe(self) -> dict[str, Any]:
        return {"parties": sorted(self.frames)}


@dataclass
class AlignedFrame(Artifact):
    """The rows of every party aligned by PSI (row i is the same entity everywhere).

    >>> def prog(ctx):
    ...     import pandas as pd
    ...     from jointml.data.frames import VDataFrame
    ...     vdf = VDataFrame(ctx, {p: ctx.party(p).run(lambda: pd.DataFrame({p[0]: [1.0, 2.0]})) for p in ctx.parties})
    ...     return AlignedFrame(vdf).describe()
    >>> simulate(prog, ["bank", "partner"], mode="thread")["bank"]
    {'rows': 2, 'columns': {'bank': ['b'], 'partner': ['p']}}
    """

    frame: Any  # VDataFrame
    produced_by: ClassVar[str] = "psi (or aligned inputs)"

    def describe(self) -> dict[str, Any]:
        return {"rows": len(self.frame), "columns": {p: list(c) for p, c in self.frame.columns.items()}}


@dataclass
class Encoding(Artifact):
    """This party's ordinal codes of its own text columns (`columns`, and the sorted
    `categories` of each): local, never sent. Applied again to new rows at prediction.

    >>> import pandas as pd
    >>> enc = Encoding(["city"], [["Bonn", "Köln"]])
    >>> enc.apply(pd.DataFrame({"city": ["Köln", "Paris"], "n": [1, 2]}))["city"].tolist()
    [1.0, -1.0]
    """

    columns: list[str] = field(default_factory=list)
    categories: list[list[Any]] = field(default_factory=list)
    produced_by: ClassVar[str] = "encode"

    def apply(self, df: Any) -> Any:
        """`df` with this party's text columns replaced by their codes (-1: unseen category)."""
        from ..data.preprocessing import OrdinalEncoder

        cols = [c for c in self.columns if c in df.columns]
        if not cols:
            return df
        df = df.copy()
        cats = [self.categories[self.columns.index(c)] for c in cols]
        enc = OrdinalEncoder(categories=cats, handle_unknown="use_encoded_value", unknown_value=-1)
        df[cols] = enc.fit(df[cols]).transform(df[cols])
        return df

    def describe(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}


@dataclass
class Split(Artifact):
    """Train and test frames, and the public row positions they were taken at.

    >>> Split(None, None, np.arange(7), np.arange(7, 10)).describe()
    {'train_rows': 7, 'test_rows': 3}
    """

    train: Any  # VDataFrame
    test: Any  # VDataFrame
    train_rows: np.ndarray
    test_rows: np.ndarray
    produced_by: ClassVar[str] = "split"

    def describe(self) -> dict[str, Any]:
        return {"train_rows": len(self.train_rows), "test_rows": len(self.test_rows)}


@dataclass
class Label(Artifact):
    """The label column: its name, its positive value and the party that holds it.

    >>> Label("y", 1, "bank").describe()
    {'label': 'y', 'pos_label': 1, 'party': 'bank'}
    """

    name: str
    pos_label: Any = 1
    party: str | None = None
    produced_by: ClassVar[str] = "a step naming the label (woe_binning, encode or train)"

    def describe(self) -> dict[str, Any]:
        return {"label": self.name, "pos_label": _plain(self.pos_label), "party": self.party}


@dataclass
class WoeModel(Artifact):
    """A fitted vertical WOE transform (`jointml.data.secure.woe.VerticalWOE`), this party's view.

    >>> from jointml.data.secure.woe import VerticalWOE
    >>> WoeModel(VerticalWOE("bank", {"bank": ["a"], "partner": ["b", "c"]})).describe()
    {'label_owner': 'bank', 'features': {'bank': 1, 'partner': 2}, 'woe_to_owner': False}
    """

    woe: Any
    produced_by: ClassVar[str] = "woe_binning"

    def describe(self) -> dict[str, Any]:
        return {"label_owner": self.woe.label_owner, "features": {p: len(c) for p, c in self.woe.columns.items()},
                "woe_to_owner": bool(self.woe.woe_to_owner)}


@dataclass
class ModelParts(Artifact):
    """A trained model: this party's estimator object, how it was trained, where its parts are.

    `model`: registry name (`ss_lr`, `secureboost`, ...); `kind`: the estimator class name
    (the persisted part's kind); `features`: the feature view it was trained on ("woe" or
    "raw"); `parties`: the parties holding a part (None: every party of the job);
    `directory`: where the parts were saved (None: in memory only); `columns`: the feature
columns of each party it was trained on; `encoding`: this party's text-column codes.

    >>> ModelParts(None, "ss_xgb", "SSXGBClassifier", "raw", Label("y", 1, "bank"), model_id="ab12").describe()["kind"]
    'SSXGBClassifier'
    """

    estimator: Any
    model: str
    kind: str
    features: str
    label: Label
    woe: Any = None
    parties: list[str] | None = None
    mpc: dict[str, Any] | None = None
    model_id: str = ""
    directory: str | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)
    encoding: Encoding | None = None
    produced_by: ClassVar[str] = "a training step"

    def describe(self) -> dict[str, Any]:
        """The public record of the model (the same at every party; saved as `pipeline.<party>.json`)."""
        return {"model": self.model, "kind": self.kind, "features": self.features, "label": self.label.describe(),
                "parties": self.parties, "mpc": self.mpc, "model_id": self.model_id, "directory": self.directory,
                "columns": self.columns}


@dataclass
class Scores(Artifact):
    """Scores revealed to one party (`scores` is a PartyObject there, opaque elsewhere) and
    the frame of the rows they score.

    >>> Scores(None, "bank", None, rows=3).describe()
    {'to': 'bank', 'rows': 3}
    """

    scores: Any
    to: str
    frame: Any = None  # VDataFrame of the scored rows
    rows: int = 0
    produced_by: ClassVar[str] = "predict"

    def describe(self) -> dict[str, Any]:
        return {"to": self.to, "rows": int(self.rows)}


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# -- stores ----------------------------------------------------------------------------
class ArtifactStore(ABC):
    """Where a run keeps its artifacts at this party.

    The runner calls `put` after each step and `latest` to wire inputs; a job store,
    checkpoints or resume implement the same interface (e.g. a database-backed store).
    """

    @abstractmethod
    def put(self, step: str, artifact: Artifact) -> str:
        """Keep `artifact` made by `step`; returns its key (unique within the run)."""

    @abstractmethod
    def latest(self, kind: type[A]) -> A | None:
        """The most recent artifact of type `kind` (None when there is none)."""

    @abstractmethod
    def records(self) -> list[dict[str, Any]]:
        """What the store holds, in order: key, step, type and `describe()` of each artifact."""


class MemoryStore(ArtifactStore):
    """Artifacts in memory (the default: nothing written)."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str, Artifact]] = []

    def put(self, step: str, artifact: Artifact) -> str:
        key = f"{len(self._items) + 1}-{step}-{type(artifact).__name__}"
        self._items.append((key, step, artifact))
        return key

    def latest(self, kind: type[A]) -> A | None:
        for _, _, a in reversed(self._items):
            if isinstance(a, kind):
                return a
        return None

    def records(self) -> list[dict[str, Any]]:
        return [{"key": k, "step": s, "type": type(a).__name__, "describe": a.describe()} for k, s, a in self._items]


class LocalDirStore(MemoryStore):
    """In memory, plus one JSON description per artifact in a per-party directory.

    `root/<party>/<key>.json` holds the artifact's description and `root/<party>/index.json`
    the list of them; model parts and WOE parts themselves are saved by the training step
    in the run's `model/` folder (the description says where).

    >>> import tempfile
    >>> s = LocalDirStore(tempfile.mkdtemp(), "bank")
    >>> key = s.put("split", Split(None, None, np.arange(3), np.arange(3, 4)))
    >>> json.loads((s.directory / f"{key}.json").read_text())["describe"]
    {'train_rows': 3, 'test_rows': 1}
    """

    def __init__(self, root: str | Path, party: str) -> None:
        super().__init__()
        self.directory = Path(root) / party
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.directory.glob("*.json"):  # a new run replaces the previous run's records
            old.unlink()

    def put(self, step: str, artifact: Artifact) -> str:
        key = super().put(step, artifact)
        rec = self.records()[-1]
        atomic_write(self.directory / f"{key}.json", json.dumps(rec, default=str))
        atomic_write(self.directory / "index.json", json.dumps([r["key"] for r in self.records()]))
        return key

