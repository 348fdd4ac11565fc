"""Reading a party's own input table, and its label column.

Each party opens only its own file: nothing here sends a message. `labels` runs at the
label's owner and returns a `PartyObject` there (an opaque handle at every other
party), so the label values never leave their owner.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "bank.csv"
>>> _ = p.write_text("id,y\\n1,bad\\n2,good\\n")
>>> read_input(p, "bank")["y"].tolist()
['bad', 'good']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.device import PartyObject
    from .frames import VDataFrame

__all__ = ["labels", "read_input"]


def read_input(path: str | Path, party: str) -> pd.DataFrame:
    """Read `party`'s own table (CSV, or Parquet by suffix); errors name the party.

    >>> read_input("/nonexistent/x.csv", "partner")
    Traceback (most recent call last):
    ...
    jointml.core.errors.DataError: party 'partner': input file not found: /nonexistent/x.csv
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"input file not found: {path}", party=party)
    try:
        return pd.read_parquet(p) if p.suffix in (".parquet", ".pq") else pd.read_csv(p)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read {path}: {e}", party=party) from None


def labels(ctx: Any, frame: VDataFrame, label: str, pos_label: Any = 1, *, binary: bool = True) -> PartyObject:
    """The label column as float64 at its owner: 1.0 where it equals `pos_label` (binary),
    or the values themselves (`binary=False`). Every party calls it; only the owner computes.

    >>> from jointml.data.frames import VDataFrame
    >>> import pandas as pd
    >>> def prog(ctx):
    ...     df = {"bank": pd.DataFrame({"y": ["bad", "good"]}), "partner": pd.DataFrame({"x": [1.0, 2.0]})}
    ...     vdf = VDataFrame(ctx, {p: ctx.party(p).run(lambda p=p: df[p]) for p in df})
    ...     y = labels(ctx, vdf, "y", "bad")
    ...     return y.value.tolist() if ctx.me == "bank" else y.owner
    >>> out = simulate(prog, ["bank", "partner"], mode="thread")
    >>> out["bank"], out["partner"]
    ([1.0, 0.0], 'bank')
    """
    owner = frame.owner_of(label)
    if binary:
        return ctx.party(owner).run(lambda df: (df[label] == pos_label).to_numpy(np.float64), frame.parts[owner])
    return ctx.party(owner).run(lambda df: df[label].to_numpy(np.float64), frame.parts[owner])
