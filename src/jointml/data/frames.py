"""Partitioned data frames: vertical (columns split across parties) and horizontal
(rows split, same columns).

Each partition is a pandas DataFrame that lives at its owner and never leaves it;
other parties hold a handle. Schema metadata — column names, dtypes, row counts —
is public within the job (every party needs it to run the same program) and is
exchanged once when the frame is built. Every operation runs at the owner.

Security model: nothing but the schema leaves an owner here; every party of a frame
learns the column names, dtypes and row counts of every partition, and which column
fails a check. A party of the job outside the frame (a semi2k dealer) gets, per partition,
the row count and the number of columns only, and which of the job's public names
(`public_columns`: the label and key a pipeline spec names, known to it anyway) the
partition holds; never another column name nor a dtype (a library program that declares no
public names, or a horizontal frame, sends it the names: its code may resolve them). Its copy of the frame names the
other columns with placeholders (`"<bank:3>"`), enough for the shapes it needs.

>>> import pandas as pd
>>> def prog(ctx):
...     vdf = from_pandas(ctx, {"bank": pd.DataFrame({"age": [30, 40]}),
...                             "partner": pd.DataFrame({"spend": [1.0, 2.0], "visits": [3, 4]})})
...     return vdf.shape, vdf.columns["partner"]
>>> simulate(prog, ["bank", "partner"], mode="thread")["bank"]
((2, 3), ['spend', 'visits'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.optional import require
from ..runtime.collectives import Received, agree, broadcast, send_to
from ..runtime.context import PartyContext
from ..runtime.device import PartyObject


@dataclass
class PartitionInfo:
    """The public schema of one partition: column names, dtypes (as strings), row count.

    >>> PartitionInfo(["age"], ["int64"], 3).rows
    3
    """

    columns: list[str]
    dtypes: list[str]
    rows: int


def _info(df: pd.DataFrame) -> dict:
    return {"columns": [str(c) for c in df.columns], "dtypes": [str(t) for t in df.dtypes], "rows": int(len(df))}


PUBLIC_COLUMNS = "frames.public_columns"  # context option: the column names public to every party of the job


def public_columns(ctx: PartyContext, names: Iterable[str]) -> None:
    """Declare `names` public to every party of the job (e.g. the label and key columns a pipeline
    spec names): from then on a party outside a frame (a semi2k dealer) gets no column name
    but these, which it can resolve; every other column reaches it only as an opaque
    placeholder (`"<bank:3>"`). All parties must declare the same names, before building the
    frames (the runner takes them from the spec they agreed on). Without a declaration, a
    party outside a frame gets the column names (library programs whose dealer code names columns).

    >>> import pandas as pd
    >>> def prog(ctx):
    ...     public_columns(ctx, ["y"])
    ...     vdf = from_pandas(ctx, {"bank": pd.DataFrame({"y": [0, 1], "age": [3, 4]}),
    ...                             "partner": pd.DataFrame({"spend": [1.0, 2.0]})})
    ...     return vdf.owner_of("y"), vdf.columns
    >>> simulate(prog, ["bank", "partner", "dealer"], mode="thread")["dealer"]
    ('bank', {'bank': ['<bank:0>', 'y'], 'partner': ['<partner:0>']})
    """
    ctx.options[PUBLIC_COLUMNS] = [str(n) for n in names]


def placeholder(owner: str, i: int) -> str:
    """The opaque name a party outside a frame gives to column `i` of `owner` (not a real name).

    >>> placeholder("bank", 3), is_placeholder("<bank:3>"), is_placeholder("age")
    ('<bank:3>', True, False)
    """
    return f"<{owner}:{i}>"


def is_placeholder(name: str) -> bool:
    """True for a name made by `placeholder` (a column whose real name this party does not know)."""
    return name.startswith("<") and name.endswith(">")


def _outside_meta(ctx: PartyContext, df: pd.DataFrame, vertical: bool) -> dict:
    """What a party outside the frame gets of a partition: its row count, its number of columns
    and which of the job's public names (by their index in the public list) it holds. Without a
    `public_columns` declaration (a library program outside a job), and for a horizontal frame
    (whose outside party, an FL aggregator, trains on the columns it names), the names as well."""
    public = ctx.options.get(PUBLIC_COLUMNS) if vertical else None
    if public is None:
        return {"columns": [str(c) for c in df.columns], "rows": int(len(df))}
    cols = {str(c) for c in df.columns}
    return {"rows": int(len(df)), "n_columns": int(len(df.columns)),
            "public": [i for i, n in enumerate(public) if n in cols]}


def _outside_columns(ctx: PartyContext, owner: str, meta: dict, vertical: bool) -> list[str]:
    """The column names a party outside the frame uses: placeholders, then the public names held."""
    public = ctx.options.get(PUBLIC_COLUMNS) if vertical else None
    if public is None:
        if not isinstance(meta.get("columns"), list):
            raise DataError("malformed schema", party=owner)
        return [str(c) for c in meta["columns"]]
    k, idx = meta.get("n_columns"), meta.get("public", [])
    if type(k) is not int or k < 0 or not isinstance(idx, list) or len(idx) > k or not all(
            type(i) is int and 0 <= i < len(public) for i in idx) or len(set(idx)) != len(idx):
        raise DataError("malformed schema", party=owner)
    return [placeholder(owner, i) for i in range(k - len(idx))] + [public[i] for i in idx]


def _exchange_info(ctx: PartyContext, parts: dict[str, PartyObject], vertical: bool = True) -> dict[str, PartitionInfo]:
    """Every owner announces its schema to the other parties of the frame; a party outside
    the frame (a semi2k dealer) gets only each partition's row count and number of columns,
    and which of the job's public column names (`public_columns`, by index) it holds: never
    a column name nor a dtype. There the other columns carry placeholder names (`placeholder`);
    its copy of the SPMD job needs shapes only (the values stay at their owners).
    """
    infos: dict[str, PartitionInfo] = {}
    members = list(parts)
    outside = [p for p in ctx.parties if p not in members]
    for owner, obj in parts.items():
        mine = _info(obj.value) if ctx.me == owner else None
        got: Received | None = broadcast(ctx, owner, meta=mine, to=members, name="schema")
        if outside:
            lean = _outside_meta(ctx, obj.value, vertical) if ctx.me == owner else None
            out = send_to(ctx, owner, outside, meta=lean, name="schema-out")
            if ctx.me in outside:
                if out is None or not isinstance(out.meta.get("rows"), int):
                    raise DataError("malformed schema", party=owner)
                cols = _outside_columns(ctx, owner, out.meta, vertical)
                infos[owner] = PartitionInfo(cols, [], int(out.meta["rows"]))
                continue
        if got is None:  # not a party of the job's frame nor outside it: cannot happen
            continue
        meta = got.meta
        if not isinstance(meta.get("columns"), list) or not isinstance(meta.get("rows"), int):
            raise DataError("malformed schema", party=owner)
        infos[owner] = PartitionInfo(
            [str(c) for c in meta["columns"]], [str(t) for t in meta.get("dtypes", [])], int(meta["rows"])
        )
    return infos


def _read_table(path: str, party: str, **kw) -> pd.DataFrame:
    if not os.path.exists(path):
        raise DataError(f"party '{party}': input file not found: {path}")
    if str(path).endswith((".parquet", ".pq")):
        # before the try: a missing extra is a configuration error, not a bad file
        require("pyarrow", "parquet", feature="reading Parquet files")
    try:
        if str(path).endswith((".parquet", ".pq")):
            return pd.read_parquet(path, **kw)
        return pd.read_csv(path, **kw)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"party '{party}': cannot read {path}: {e}") from None


class VDataFrame:
    """Columns split across parties; rows aligned (row i is the same entity everywhere).

    Built from each owner's `PartyObject` holding a DataFrame; the owners exchange their
    schemas (all parties must construct it at the same program point). Row counts must
    agree and a column name may be held by one party only.

    >>> import pandas as pd
    >>> def prog(ctx):
    ...     vdf = from_pandas(ctx, {"bank": pd.DataFrame({"age": [30, 40, 50]}),
    ...                             "partner": pd.DataFrame({"spend": [1.0, 2.0, 3.0]})})
    ...     sub = vdf.take(np.array([2, 0]))[["spend"]]
    ...     return sub.owner_of("spend"), len(sub), sub.local()
    >>> owner, n, local = simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    >>> owner, n, local["spend"].tolist()
    ('partner', 2, [3.0, 1.0])
    """

    def __init__(
        self,
        ctx: PartyContext,
        parts: dict[str, PartyObject],
        infos: dict[str, PartitionInfo] | None = None,
        check_aligned: bool = True,
    ):
        self.ctx = ctx
        self.parts = dict(parts)
        self.infos = infos if infos is not None else _exchange_info(ctx, self.parts)
        if check_aligned:
            rows = {p: i.rows for p, i in self.infos.items()}
            if len(set(rows.values())) > 1:
                raise DataError(f"vertical partitions are not aligned: row counts differ {rows}; align them with PSI first")
        seen: dict[str, str] = {}
        for p, i in self.infos.items():
            for c in i.columns:
                if c in seen:
                    raise DataError(f"column '{c}' is held by both '{seen[c]}' and '{p}'; rename one")
                seen[c] = p

    # -- schema -------------------------------------------------------------------
    @property
    def parties(self) -> list[str]:
        return list(self.parts)

    @property
    def columns(self) -> dict[str, list[str]]:
        return {p: list(i.columns) for p, i in self.infos.items()}

    @property
    def shape(self) -> tuple[int, int]:
        rows = next(iter(self.infos.values())).rows if self.infos else 0
        return rows, sum(len(i.columns) for i in self.infos.values())

    def __len__(self) -> int:
        return self.shape[0]

    def owner_of(self, column: str) -> str:
        for p, i in self.infos.items():
            if column in i.columns:
                return p
        if self.ctx.me not in self.parts and not is_placeholder(column):
            raise DataError(f"column '{column}' is not public to '{self.ctx.me}', a party outside the frame: it "
                            "knows only the column names the job names (`public_columns`)", party=self.ctx.me)
        raise DataError(f"unknown column '{column}' (columns: {self.columns})")

    def local(self) -> pd.DataFrame | None:
        """This party's own partition (None if it holds none)."""
        obj = self.parts.get(self.ctx.me)
        return obj.value if obj is not None else None

    # -- operations at the owners ----------------------------------------------------
    def __getitem__(self, cols: str | list[str]) -> "VDataFrame":
        if isinstance(cols, str):
            cols = [cols]
        by_party: dict[str, list[str]] = {}
        for c in cols:
            by_party.setdefault(self.owner_of(c), []).append(c)
        parts = {p: self.ctx.party(p).run(lambda df, cs=cs: df[cs], self.parts[p]) for p, cs in by_party.items()}
        infos = {
            p: PartitionInfo(
                cs,
                [self.infos[p].dtypes[self.infos[p].columns.index(c)] for c in cs] if self.infos[p].dtypes else [],
                self.infos[p].rows,
            )
            for p, cs in by_party.items()
        }
        return VDataFrame(self.ctx, parts, infos)

    def drop(self, columns: Iterable[str]) -> "VDataFrame":
        drop = set(columns)
        for c in drop:
            self.owner_of(c)
        keep = [c for p in self.parties for c in self.infos[p].columns if c not in drop]
        return self[keep]

    def apply(self, party: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> "VDataFrame":
        """Transform one party's partition at its owner (rows must stay aligned)."""
        parts = dict(self.parts)
        parts[party] = self.ctx.party(party).run(fn, self.parts[party])
        return VDataFrame(self.ctx, parts)

    def take(self, rows: np.ndarray) -> "VDataFrame":
        """The same row subset at every party (row positions are public within the job)."""
        rows = np.asarray(rows)
        parts = {p: self.ctx.party(p).run(lambda df: df.iloc[rows].reset_index(drop=True), o) for p, o in self.parts.items()}
        infos = {p: PartitionInfo(i.columns, i.dtypes, int(len(rows))) for p, i in self.infos.items()}
        return VDataFrame(self.ctx, parts, infos)

    def check_numeric(self, columns: Iterable[str] | None = None) -> None:
        """Raise a DataError naming party and column for non-numeric values or NaN (checked at the owner;
        every party learns only which column failed).

        >>> import pandas as pd
        >>> def prog(ctx):
        ...     vdf = from_pandas(ctx, {"bank": pd.DataFrame({"age": [30.0, None]}),
        ...                             "partner": pd.DataFrame({"spend": [1.0, 2.0]})})
        ...     try:
        ...         vdf.check_numeric()
        ...     except DataError as e:
        ...         return str(e)
        >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
        "party 'bank': column 'age' has 1 missing values (NaN); impute them first"
        """
        me = self.ctx.me
        problem = None
        if me in self.parts:
            df = self.parts[me].value
            cols = [c for c in (columns or df.columns) if c in df.columns]
            for c in cols:
                col = df[c]
                if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) and False:
                    problem = f"party '{me}': column '{c}' is not numeric (dtype {col.dtype})"
                    break
                if col.isna().any():
                    problem = f"party '{me}': column '{c}' has {int(col.isna().sum())} missing values (NaN); impute them first"
                    break
        # Everybody must fail alike: owners announce their verdict (the first one raises everywhere).
        agree(self.ctx, self.parties, problem, name="check")

    def to_numpy(self, party: str, columns: list[str] | None = None) -> PartyObject:
        """One party's columns as a float64 matrix, at that party."""
        cols = columns
        return self.ctx.party(party).run(lambda df: df[cols or list(df.columns)].to_numpy(dtype=np.float64), self.parts[party])

    def __repr__(self) -> str:
        return f"VDataFrame(rows={self.shape[0]}, columns={self.columns})"


class HDataFrame:
    """Rows split across parties, same columns everywhere.

    >>> import pandas as pd
    >>> def prog(ctx):
    ...     hdf = from_pandas(ctx, {"bank-a": pd.DataFrame({"x": [1, 2]}), "bank-b": pd.DataFrame({"x": [3]})},
    ...                       vertical=False)
    ...     return hdf.shape, hdf.columns
    >>> simulate(prog, ["bank-a", "bank-b"], mode="thread")["bank-b"]
    ((3, 1), ['x'])
    """

    def __init__(self, ctx: PartyContext, parts: dict[str, PartyObject], infos: dict[str, PartitionInfo] | None = None):
        self.ctx = ctx
        self.parts = dict(parts)
        self.infos = infos if infos is not None else _exchange_info(ctx, self.parts, vertical=False)
        cols = {p: tuple(i.columns) for p, i in self.infos.items()}
        if len(set(cols.values())) > 1:
            raise DataError(f"horizontal partitions have different columns: {cols}")

    @property
    def parties(self) -> list[str]:
        return list(self.parts)

    @property
    def columns(self) -> list[str]:
        return list(next(iter(self.infos.values())).columns) if self.infos else []

    @property
    def shape(self) -> tuple[int, int]:
        return sum(i.rows for i in self.infos.values()), len(self.columns)

    def __len__(self) -> int:
        return self.shape[0]

    def local(self) -> pd.DataFrame | None:
        obj = self.parts.get(self.ctx.me)
        return obj.value if obj is not None else None

    def __getitem__(self, cols: str | list[str]) -> "HDataFrame":
        if isinstance(cols, str):
            cols = [cols]
        missing = [c for c in cols if c not in self.columns]
        if missing:
            raise DataError(f"unknown columns {missing} (columns: {self.columns})")
        parts = {p: self.ctx.party(p).run(lambda df: df[list(cols)], o) for p, o in self.parts.items()}
        return HDataFrame(self.ctx, parts, {p: PartitionInfo(list(cols), [], i.rows) for p, i in self.infos.items()})

    def __repr__(self) -> str:
        return f"HDataFrame(rows={ {p: i.rows for p, i in self.infos.items()} }, columns={self.columns})"


def _read_parts(ctx: PartyContext, paths: dict[str, str], **kw: Any) -> dict[str, PartyObject]:
    for p in paths:
        if p not in ctx.parties:
            raise DataError(f"unknown party '{p}' in input paths (cluster: {ctx.parties})")
    return {p: ctx.party(p).run(lambda path=path, p=p: _read_table(path, p, **kw)) for p, path in paths.items()}


def read_csv(ctx: PartyContext, paths: dict[str, str], **kw: Any) -> VDataFrame:
    """Each party reads its own CSV/Parquet file (paths of other parties are never opened here).

    Rows must already be aligned; use `jointml.psi` to align them first. `kw` goes to
    ``pandas.read_csv`` (or ``read_parquet`` for ``.parquet``/``.pq``). A missing or
    unreadable file raises a `DataError` naming its party at every party.

    >>> import os, tempfile, pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> pd.DataFrame({"age": [30, 40]}).to_csv(os.path.join(d, "bank.csv"), index=False)
    >>> pd.DataFrame({"spend": [1.5, 2.5]}).to_csv(os.path.join(d, "partner.csv"), index=False)
    >>> paths = {p: os.path.join(d, f"{p}.csv") for p in ("bank", "partner")}
    >>> simulate(lambda ctx: read_csv(ctx, paths).columns, ["bank", "partner"], mode="thread")["bank"]
    {'bank': ['age'], 'partner': ['spend']}
    """
    return VDataFrame(ctx, _read_parts(ctx, paths, **kw))


def read_csv_horizontal(ctx: PartyContext, paths: dict[str, str], **kw: Any) -> HDataFrame:
    """Each party reads its own file of rows with the same columns (see :func:`read_csv`).

    >>> import os, tempfile, pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> for p, rows in (("a", [1, 2]), ("b", [3])):
    ...     pd.DataFrame({"x": rows}).to_csv(os.path.join(d, f"{p}.csv"), index=False)
    >>> paths = {p: os.path.join(d, f"{p}.csv") for p in ("a", "b")}
    >>> simulate(lambda ctx: read_csv_horizontal(ctx, paths).shape, ["a", "b"], mode="thread")["a"]
    (3, 1)
    """
    return HDataFrame(ctx, _read_parts(ctx, paths, **kw))


def from_pandas(
    ctx: PartyContext, frames: dict[str, pd.DataFrame | Callable[[], pd.DataFrame]], vertical: bool = True
) -> VDataFrame | HDataFrame:
    """Build a frame from DataFrames that each party holds (the value is used only at its owner).

    A value may be a callable returning the DataFrame, called at its owner only.

    >>> import pandas as pd
    >>> def prog(ctx):
    ...     return from_pandas(ctx, {"bank": lambda: pd.DataFrame({"age": [30]}),
    ...                             "partner": lambda: pd.DataFrame({"spend": [1.0]})}).shape
    >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    (1, 2)
    """
    parts = {p: ctx.party(p).run(lambda v=v: v() if callable(v) else v) for p, v in frames.items()}
    return VDataFrame(ctx, parts) if vertical else HDataFrame(ctx, parts)
