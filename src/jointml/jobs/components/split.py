"""`split`: a random train/test split on public row positions (`jointml.data.split`).

Every party derives the same positions from the public seed; no message, no data used.
"""

from __future__ import annotations

from typing import Any

from ...data.split import public_split
from ..artifacts import AlignedFrame, Split
from ..registry import component


@component("split", outputs=(Split,))
def split(ctx: Any, state: Any, frame: AlignedFrame, *, test_fraction: float = 0.3, seed: int = 1) -> Split:
    """Random train/test split on public row positions (the same at every party)."""
    tr, te = public_split(len(frame.frame), test_fraction, seed)
    state.summary.update(train_rows=len(tr), test_rows=len(te))
    return Split(frame.frame.take(tr), frame.frame.take(te), tr, te)
