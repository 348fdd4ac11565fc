"""Feature blocks of the linear models: collection, layout and the checks every party runs alike.

The joint feature matrix is given as column blocks keyed by their owners: a
`VDataFrame`, or a `{party: PartyObject | SecretArray}` mapping. The checks here run at
every party on public facts (which party holds a block, the announced shapes), so
every party raises the same `ModelError`; checks of the values themselves run at the
owner (`jointml.ml.checks.announced_shape`), which announces its verdict.

What every party learns: the owners, the number of rows and columns of each block,
and the feature names (the frame's public column names, or generated ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...core.errors import ModelError
from ...mpc import SecretArray
from ...runtime.device import PartyObject
from ..checks import announced_shape

if TYPE_CHECKING:  # pragma: no cover
    from ...mpc import MpcDevice
    from ...runtime.context import PartyContext

__all__ = ["FeatureLayout", "block_shapes", "check_blocks", "collect_blocks", "prediction_rows"]


@dataclass
class FeatureLayout:
    """Which party holds which columns of the joint matrix, in order (public).

    >>> lay = FeatureLayout(["bank", "partner"], [2, 3], [["age", "income"], ["a", "b", "c"]])
    >>> lay.d, lay.offsets()
    (5, [0, 2, 5])
    """

    owners: list[str]
    widths: list[int]
    names: list[list[str]]

    @property
    def d(self) -> int:
        return sum(self.widths)

    def offsets(self) -> list[int]:
        """Column offsets of the blocks: block i is columns offsets[i]:offsets[i + 1]."""
        out = [0]
        for w in self.widths:
            out.append(out[-1] + int(w))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"owners": list(self.owners), "widths": [int(w) for w in self.widths], "names": [list(n) for n in self.names]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeatureLayout:
        return cls(list(doc["owners"]), [int(w) for w in doc["widths"]], [list(n) for n in doc["names"]])


def collect_blocks(X: Any, feature_names: Mapping[str, list[str]] | None = None) -> tuple[dict, dict]:
    """`({party: block}, {party: names})` from a VDataFrame or a `{party: block}` mapping.

    >>> collect_blocks({"bank": None}, {"bank": ["age"]})
    ({'bank': None}, {'bank': ['age']})
    """
    if isinstance(X, dict):
        return dict(X), dict(feature_names or {})
    from ...data.frames import (
        VDataFrame,  # imports pandas (0.4 s): only when a frame is passed
    )

    if isinstance(X, VDataFrame):
        X.check_numeric()
        return {p: X.to_numpy(p) for p in X.parties}, X.columns
    raise ModelError("X must be a VDataFrame or a {party: PartyObject} mapping")


def check_blocks(ctx: PartyContext, mpc: MpcDevice, parts: Mapping[str, Any]) -> None:
    """Each block is keyed by its owner, a party of the job, and lives where the model can use it.

    Local checks on public facts: every party raises the same error.

    >>> check_blocks(None, None, {})
    Traceback (most recent call last):
    ...
    jointml.core.errors.ModelError: X has no feature blocks
    """
    if not parts:
        raise ModelError("X has no feature blocks")
    for p, o in parts.items():
        if p not in ctx.parties:
            raise ModelError(f"party '{p}' holding features is not in the cluster {ctx.parties}")
        if isinstance(o, PartyObject):
            if o.owner != p:
                raise ModelError(f"X['{p}'] is owned by party '{o.owner}', not '{p}' (each block must be keyed by its owner)")
        elif not isinstance(o, SecretArray):
            raise ModelError(f"X['{p}'] must be a PartyObject or a SecretArray, got {type(o).__name__}")
        elif o.device is not mpc:
            raise ModelError(f"X['{p}'] is a SecretArray of another MPC device")


def block_shapes(ctx: PartyContext, parts: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The public shape of every block: a secret's own, a plaintext block's announced by its owner.

    >>> def prog(ctx):
    ...     return block_shapes(ctx, {"bank": ctx.party("bank").run(lambda: np.ones((3, 2)))})
    >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    {'bank': (3, 2)}
    """
    shapes = {}
    for p, o in parts.items():
        if isinstance(o, SecretArray):
            if len(o.shape) != 2:
                raise ModelError(f"party '{p}': feature matrix must be 2-D, got shape {o.shape}")
            shapes[p] = tuple(o.shape)
        else:
            shapes[p] = announced_shape(ctx, o, "feature matrix", ndim=(2,))
    return shapes


def prediction_rows(ctx: PartyContext, parts: Mapping[str, Any], layout: FeatureLayout) -> int:
    """Check prediction blocks against the training layout; returns the (common) number of rows.

    The same parties in the same order, the same number of columns each, aligned rows.
    """
    if list(parts) != layout.owners:
        raise ModelError(f"prediction data must come from the same parties in the same order: {layout.owners}, got {list(parts)}")
    rows = {}
    for p, o in parts.items():
        if isinstance(o, PartyObject):
            if o.owner != p:
                raise ModelError(f"X['{p}'] is owned by party '{o.owner}', not '{p}'")
            s = announced_shape(ctx, o, "feature matrix", ndim=(2,))
        elif isinstance(o, SecretArray):
            s = tuple(o.shape)
        else:
            raise ModelError(f"X['{p}'] must be a PartyObject or a SecretArray, got {type(o).__name__}")
        want = layout.widths[layout.owners.index(p)]
        if len(s) != 2 or s[1] != want:
            raise ModelError(f"party '{p}': expected {want} feature columns (as in training), got shape {s}")
        rows[p] = s[0]
    if len(set(rows.values())) != 1:
        raise ModelError(f"row counts differ across parties: {rows}; align the data with PSI first")
    return int(next(iter(rows.values())))
