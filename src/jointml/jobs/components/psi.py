"""`psi`: align the parties' rows on a key column (ECDH-PSI; see `jointml.psi`).

Each party learns the size of the intersection and which of its own rows are in it,
nothing about the other parties' other rows. The key columns are dropped afterwards.
"""

from __future__ import annotations

from typing import Any

from ...core.errors import ConfigError
from ...data.frames import VDataFrame
from ..artifacts import AlignedFrame, Inputs
from ..registry import component


@component("psi", outputs=(AlignedFrame,))
def psi(ctx: Any, state: Any, inputs: Inputs, *, key: str | list[str] = "id", sort_by: str | None = None,
        parties: list[str] | None = None) -> AlignedFrame:
    """Align the parties' rows on a key (ECDH-PSI); the key columns are dropped afterwards."""
    from ...psi import psi_frame

    keys = [key] if isinstance(key, str) else list(key)
    who = list(parties or inputs.frames)
    for p in who:
        if p not in inputs.frames:
            raise ConfigError(f"psi: party '{p}' has no input", party=p)
    aligned = psi_frame(ctx, {p: inputs.frames[p] for p in who}, key_columns=keys, sort_by=sort_by, progress=False)
    parts = {p: ctx.party(p).run(lambda df: df.drop(columns=keys), aligned[p]) for p in who}
    vdf = VDataFrame(ctx, parts)
    state.summary["rows_aligned"] = len(vdf)
    return AlignedFrame(vdf)
