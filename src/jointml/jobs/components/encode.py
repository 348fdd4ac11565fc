"""`encode`: each party encodes its own text columns as numbers, locally.

No message and no label: category codes in sorted order ("ordinal"), learned from this
party's own rows; the codes stay with the party (saved with the model for prediction).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ...data.frames import VDataFrame
from ..artifacts import AlignedFrame, Encoding, Label
from ..registry import component


def _produces(params: dict) -> set:
    return {AlignedFrame, Encoding} | ({Label} if params.get("label") is not None else set())


@component("encode", outputs=(AlignedFrame, Encoding, Label), produces=_produces)
def encode(ctx: Any, state: Any, frame: AlignedFrame, known: Label | None = None, *, method: Literal["ordinal"] = "ordinal",
           label: str | None = None) -> tuple:
    """Each party encodes its own text columns as numbers, locally (no label used): category
    codes in sorted order ("ordinal"). Tree models then bin them at the owner."""
    from ...data.preprocessing import OrdinalEncoder

    vdf = frame.frame
    lab = Label(label, known.pos_label if known else 1, vdf.owner_of(label)) if label is not None else known
    skip = lab.name if lab is not None else None
    enc = Encoding()

    def fit(df):
        df = df.copy()
        cols = [c for c in df.columns if c != skip and df[c].dtype.kind not in "biuf"]
        if cols:
            e = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
            df[cols] = e.fit_transform(df[cols])
            enc.columns, enc.categories = cols, [np.asarray(c).tolist() for c in e.categories_]
        return df

    out = VDataFrame(ctx, {p: ctx.party(p).run(fit, o) for p, o in vdf.parts.items()})
    return (AlignedFrame(out), enc, lab) if label is not None else (AlignedFrame(out), enc)
