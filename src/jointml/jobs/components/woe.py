"""`woe_binning`: vertical WOE binning and IV (`jointml.data.secure.woe`).

The label holder encrypts its labels with Paillier; each feature holder sums them per bin
of its own columns. The label holder learns the WOE/IV of every column (not the other
parties' bin boundaries); a feature holder learns nothing of the labels (and, with
`woe_to_owner=True`, the WOE values of its own bins). With `label_proofs` (default) each
label ciphertext comes with a zero-knowledge proof that it encrypts 0 or 1, checked by every
feature holder before it sums (a deviating label holder cannot read the partner's bins).
"""

from __future__ import annotations

from typing import Any

from ..artifacts import Label, Split, WoeModel
from ..registry import component


@component("woe_binning", outputs=(WoeModel, Label))
def woe_binning(ctx: Any, state: Any, split: Split, *, label: str = "label", pos_label: Any = 1, method: str = "chimerge",
                max_bins: int = 6, n_prebins: int = 20, min_bin_frac: float = 0.05, key_bits: int = 2048,
                woe_to_owner: bool = False, label_proofs: bool = True, monotonic: Any = "none",
                edges: dict | None = None, special_values: dict | None = None) -> tuple[WoeModel, Label]:
    """Vertical WOE binning and IV (labels encrypted with Paillier at the label holder)."""
    from ...data.secure.woe import vertical_woe

    lab = Label(label, pos_label, split.train.owner_of(label))
    woe = vertical_woe(ctx, split.train, label, pos_label=pos_label, method=method, max_bins=max_bins, n_prebins=n_prebins,
                       min_bin_frac=min_bin_frac, key_bits=key_bits, woe_to_owner=woe_to_owner,
                       label_proofs=label_proofs, monotonic=monotonic, edges=edges, special_values=special_values)
    state.summary["features"] = {p: len(c) for p, c in woe.columns.items()}
    state.summary.setdefault("paillier_key_bits", {})["woe_binning"] = int(key_bits)
    if woe.iv:
        state.summary["iv"] = {c: round(v, 4) for c, v in sorted(woe.iv.items(), key=lambda kv: -kv[1])}
    return WoeModel(woe), lab
