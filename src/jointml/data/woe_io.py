"""Persistence of a party's part of a fitted vertical WOE transform.

Each party writes only what it already holds after `vertical_woe`: a feature holder its
own bin boundaries (pre-binning and the bin merge map) of its own columns; the label
holder the WOE values and IV of every column (the partner's WOE values too, which it
computed); every party the public layout (who owns which column). A feature holder's
part holds no WOE value unless the transform was fitted with `woe_to_owner=True`, and the
label holder's part holds no bin boundary of another party. Nothing is unpickled: JSON.

Files: `woe.<party>.json` in the model directory, next to the model parts.

>>> import tempfile
>>> from jointml.data.secure.woe import ColumnWOE, VerticalWOE
>>> w = VerticalWOE(label_owner="bank", columns={"bank": [], "partner": ["age"]})
>>> w.col["age"] = ColumnWOE("partner", 2, woe=np.array([0.5, -0.5]), iv=0.1)
>>> d = tempfile.mkdtemp()
>>> _ = save_woe(w, d, "bank")
>>> load_woe(d, "bank").col["age"].woe.tolist()
[0.5, -0.5]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..runtime.persist import atomic_write, read_party_json

__all__ = ["WOE_FORMAT", "SavedBinner", "load_woe", "save_woe"]

WOE_FORMAT = "jointml.woe/1"


def save_woe(woe: Any, directory: str | Path, me: str) -> Path:
    """Write this party's part of the WOE transform (`woe.<me>.json`, atomic); returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"format": WOE_FORMAT, "party": me, "label_owner": woe.label_owner, "columns": woe.columns,
                           "woe_to_owner": bool(getattr(woe, "woe_to_owner", False)), "bins": {}, "woe": {}}
    if me in woe.binners:
        b = woe.binners[me]
        for c in woe.columns[me]:
            cb = b.get_bins(c)
            doc["bins"][c] = {
                "kind": cb.kind,
                "edges": np.asarray(cb.edges, float).tolist(),
                "groups": [[_jsonable(v) for v in g] for g in cb.groups],
                "specials": [_jsonable(v) for v in getattr(cb, "specials", ())],
                "prebin_to_bin": woe.col[c].prebin_to_bin.tolist(),
            }
    for c, cw in woe.col.items():
        if cw.woe is not None:
            doc["woe"][c] = {"woe": cw.woe.tolist(), "iv": cw.iv}
    return atomic_write(directory / f"woe.{me}.json", json.dumps(doc))


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


class SavedBinner:
    """Pre-binning restored from a saved part (the owner's bin boundaries).

    >>> b = SavedBinner({"x": {"kind": "numeric", "edges": [1.5], "groups": []}})
    >>> b.transform(pd.DataFrame({"x": [1.0, 2.0]}))[:, 0].tolist()
    [0, 1]
    """

    def __init__(self, bins: dict):
        from .preprocessing import ColumnBins

        self._bins = {
            c: ColumnBins(c, b["kind"], edges=np.asarray(b["edges"], float), groups=tuple(tuple(g) for g in b["groups"]),
                          handle_unknown="missing", specials=tuple(b.get("specials", ())))
            for c, b in bins.items()
        }

    def get_bins(self, c: str) -> Any:
        return self._bins[c]

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        if not len(df.columns):
            return np.zeros((len(df), 0), np.int64)
        return np.stack([self._bins[c].transform(df[c]) for c in df.columns], axis=1)


def load_woe(directory: str | Path, me: str) -> Any:
    """This party's part of a saved WOE transform (see `save_woe`), or None when it has none."""
    from .secure.woe import ColumnWOE, VerticalWOE

    doc = read_party_json(Path(directory) / f"woe.{me}.json", me, lambda d: d.get("format") == WOE_FORMAT,
                          "a jointml WOE part")
    if doc is None:
        return None
    columns = {p: list(c) for p, c in doc["columns"].items()}
    model = VerticalWOE(label_owner=doc["label_owner"], columns=columns, woe_to_owner=bool(doc.get("woe_to_owner", False)))
    if doc["bins"]:
        model.binners[me] = SavedBinner(doc["bins"])
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
