"""A vertical frame whose partner rows are aligned only under secret sharing (label-only PSI).

After `jointml.psi.label_only.psi_label_only`, the label holder knows which of its rows
are shared; the partner does not. `BlindVDataFrame` keeps the label holder's partition
aligned (its shared rows, in its own order) and the partner's partition as it is (all
its rows, its own order), with the public positions `rows` of the aligned rows the frame
stands for. Row selection (`take`, a train/test split) works on those public positions;
the partner's values reach a computation only as a SecretArray aligned by
`BlindAlignment.select` (`secret`), or summed by the partner under encryption with one
value per row of its own (vertical WOE, `jointml.data.secure.woe`).

What each party learns: the schema (as for `VDataFrame`: the partner's row count is its
set size n_P), the aligned row count m, and what the alignment's protocol says
(`jointml.psi.label_only`); nothing is sent by the frame's own operations.

>>> import pandas as pd
>>> from jointml.psi.label_only import psi_label_only
>>> from jointml.mpc import MpcDevice
>>> tables = {"bank": pd.DataFrame({"id": [1, 2, 3], "age": [30, 40, 50]}),
...           "partner": pd.DataFrame({"id": [3, 9, 1], "spend": [5.0, 6.0, 7.0]})}
>>> def prog(ctx):
...     raw = {p: ctx.party(p).put(tables[p] if ctx.me == p else None) for p in tables}
...     al = psi_label_only(ctx, raw, ["id"], holder="bank")
...     vdf = blind_frame(ctx, raw, al, drop=["id"])
...     mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
...     spend = vdf.take(np.array([1])).secret("partner", lambda df: df[["spend"]].to_numpy(), mpc)
...     got = spend.reveal(to="bank")
...     return len(vdf), vdf.hidden, got.value if ctx.me == "bank" else None
>>> out = simulate(prog, ["bank", "partner", "dealer"], mode="thread")
>>> out["bank"][0], out["bank"][1], out["bank"][2].ravel().tolist()   # bank row 2 (id 3) = partner row 0
(2, ['partner'], [5.0])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, DataError
from ..runtime.context import PartyContext
from ..runtime.device import PartyObject
from .frames import PartitionInfo, VDataFrame

__all__ = ["BlindVDataFrame", "blind_frame", "hidden_parties"]


def hidden_parties(frame: Any) -> list[str]:
    """The parties of `frame` whose rows are aligned only under secret sharing ([] for a plain frame).

    >>> hidden_parties(object())
    []
    """
    return list(getattr(frame, "hidden", []) or [])


class BlindVDataFrame(VDataFrame):
    """Columns split across a label holder (rows aligned) and a partner (rows blind).

    `alignment` is this party's `BlindAlignment`; `rows` the public aligned positions the
    frame stands for (default all m). See the module docstring for an example.
    """

    def __init__(self, ctx: PartyContext, parts: dict[str, PartyObject], alignment: Any,
                 rows: np.ndarray | None = None, infos: dict[str, PartitionInfo] | None = None):
        super().__init__(ctx, parts, infos, check_aligned=False)
        self.alignment = alignment
        self.rows = alignment.rows_of(rows)
        h, p = alignment.holder, alignment.partner
        if p not in self.infos or h not in self.infos or len(self.infos) != 2:
            raise DataError(f"a blind frame has two partitions, the label holder '{h}' and the partner '{p}'")
        if self.infos[h].rows != len(self.rows) or self.infos[p].rows != alignment.partner_rows:
            raise DataError(f"blind frame: '{h}' has {self.infos[h].rows} rows for {len(self.rows)} aligned rows, "
                            f"'{p}' {self.infos[p].rows} for {alignment.partner_rows}")

    @property
    def hidden(self) -> list[str]:
        """The parties whose rows are blind (the partner)."""
        return [self.alignment.partner]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), sum(len(i.columns) for i in self.infos.values())

    def _rebuild(self, parts: dict[str, PartyObject], infos: dict[str, PartitionInfo], rows: np.ndarray) -> VDataFrame:
        if set(parts) == {self.alignment.holder, self.alignment.partner}:
            return BlindVDataFrame(self.ctx, parts, self.alignment, rows, infos)
        if self.alignment.partner in parts:
            raise DataError(f"the rows of '{self.alignment.partner}' are aligned only together with "
                            f"'{self.alignment.holder}': keep a column of each")
        return VDataFrame(self.ctx, parts, infos)

    def __getitem__(self, cols: str | list[str]) -> VDataFrame:
        if isinstance(cols, str):
            cols = [cols]
        by_party: dict[str, list[str]] = {}
        for c in cols:
            by_party.setdefault(self.owner_of(c), []).append(c)
        for p in self.parts:  # a party keeps its (possibly empty) partition: the alignment needs both
            by_party.setdefault(p, [])
        parts = {p: self.ctx.party(p).run(lambda df, cs=cs: df[cs], self.parts[p]) for p, cs in by_party.items()}
        infos = {p: PartitionInfo(cs, [self.infos[p].dtypes[self.infos[p].columns.index(c)] for c in cs]
                                  if self.infos[p].dtypes else [], self.infos[p].rows) for p, cs in by_party.items()}
        return self._rebuild(parts, infos, self.rows)

    def drop(self, columns: Iterable[str]) -> VDataFrame:
        drop = set(columns)
        for c in drop:
            self.owner_of(c)
        return self[[c for p in self.parties for c in self.infos[p].columns if c not in drop]]

    def apply(self, party: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> VDataFrame:
        """Transform one party's partition at its owner (its row count must stay)."""
        parts = dict(self.parts)
        parts[party] = self.ctx.party(party).run(fn, self.parts[party])
        return BlindVDataFrame(self.ctx, parts, self.alignment, self.rows)

    def take(self, rows: np.ndarray) -> VDataFrame:
        """The aligned rows at public positions `rows` (of this frame): the label holder takes
        them; the partner keeps all its rows (it does not know which these are)."""
        rows = np.asarray(rows, dtype=np.int64)
        h = self.alignment.holder
        parts = dict(self.parts)
        parts[h] = self.ctx.party(h).run(lambda df: df.iloc[rows].reset_index(drop=True), self.parts[h])
        infos = dict(self.infos)
        infos[h] = PartitionInfo(self.infos[h].columns, self.infos[h].dtypes, int(len(rows)))
        return BlindVDataFrame(self.ctx, parts, self.alignment, self.rows[rows], infos)

    def to_numpy(self, party: str, columns: list[str] | None = None) -> PartyObject:
        if party in self.hidden:
            raise ConfigError(f"the rows of '{party}' are aligned only under secret sharing (psi mode 'label_only'): "
                              "use its features as a SecretArray (BlindVDataFrame.secret), or psi mode 'both'",
                              party=party, field="psi.mode")
        return super().to_numpy(party, columns)

    def secret(self, party: str, fn: Callable[[pd.DataFrame], np.ndarray], mpc: Any, fxp: bool | None = None) -> Any:
        """`fn` of `party`'s partition, for this frame's aligned rows, as a SecretArray on `mpc`.

        The owner computes `fn(df)` (one output row per input row); for the partner, over all
        its rows, aligned obliviously (`BlindAlignment.select`). Every party calls it."""
        value = self.ctx.party(party).run(fn, self.parts[party])
        if party not in self.hidden:
            return value.to(mpc, fxp=fxp)
        return self.alignment.select(mpc, value, self.rows, fxp=fxp)

    def spread(self, values: np.ndarray) -> np.ndarray:
        """At the label holder: one value per aligned row of this frame, placed at the partner's
        shuffled positions (zeros elsewhere; `BlindAlignment.spread`)."""
        return self.alignment.spread(values, self.rows)

    def __repr__(self) -> str:
        return f"BlindVDataFrame(rows={len(self.rows)}, columns={self.columns}, hidden={self.hidden})"


def blind_frame(ctx: PartyContext, frames: dict[str, PartyObject], alignment: Any,
                drop: Iterable[str] = ()) -> BlindVDataFrame:
    """The frame of a label-only PSI: the holder's shared rows (its order), the partner's rows
    as they are, without the columns `drop` (the PSI keys).

    `frames` are the two parties' tables as given to the PSI (same rows, same order). Every
    party of the job calls it.
    """
    h, gone = alignment.holder, list(drop)
    parts = {p: ctx.party(p).run(lambda df: df.drop(columns=[c for c in gone if c in df.columns]), frames[p])
             for p in (h, alignment.partner)}
    if ctx.me == h:
        pos = alignment.positions
        parts[h] = ctx.party(h).run(lambda df: df.iloc[pos].reset_index(drop=True), parts[h])
    return BlindVDataFrame(ctx, {p: parts[p] for p in (h, alignment.partner)}, alignment)
