"""Statistics of a vertically partitioned frame: `describe`, Pearson `corr`, `vif`.

Three functions with three different disclosure levels (rule 3 of DESIGN.md: every
algorithm says exactly what each party learns):

* :func:`describe` - per-column summaries computed by each owner **in plaintext** and
  sent to every party of the job (public by definition). The output is public by definition of this function; note that
  min, max and quantiles are values of individual records.
* :func:`corr` - the Pearson correlation matrix of columns held by different parties.
  Each owner standardises its own columns (its means and standard deviations never
  leave it); cross-party blocks are computed under MPC; only the correlation matrix is
  revealed, to the parties of the frame or to one named party. :func:`corr_secret` keeps it secret
  for further MPC computation.
* :func:`vif` - variance inflation factors, either from the revealed correlation matrix
  (`secure=False`) or fully under MPC, revealing only the VIFs (`secure=True`).

Security model: that of the MPC device (semi2k: semi-honest, non-colluding dealer;
aby3: semi-honest honest majority). Public within the job in every function: the
schema (column names, dtypes, row count, as for every `VDataFrame`), which columns
fail validation, and which columns are constant.

Conventions shared by the three functions: `columns=None` means every column of the
frame (`describe`: every numeric column, like pandas); for `corr` and `vif`, `to=None`
returns the result at **every party of the frame and every compute party of the MPC
device** (which see the opened value anyway) and `None` at the other parties of the job:
a semi2k dealer outside the frame, which only supplies correlated randomness, gets no
result (`describe` likewise sends its table to the frame's parties only, unless its `to`
lists the recipients); `to="name"` returns a `PartyObject` owned by that party (a handle elsewhere),
like `SecretArray.reveal(to=...)`.

>>> import numpy as np, pandas as pd
>>> from jointml.runtime import simulate
>>> from jointml.mpc import MpcDevice
>>> from jointml.data.frames import from_pandas
>>> from jointml.data.secure import stats
>>> from jointml.core.prg import public_rng
>>> rng = public_rng(0)  # public example data
>>> a = pd.DataFrame({"x": rng.normal(size=200)})
>>> b = pd.DataFrame({"y": -a["x"] + 0.5 * rng.normal(size=200)})
>>> def prog(ctx):
...     vdf = from_pandas(ctx, {"alice": a, "bob": b})
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     return stats.corr(ctx, vdf, mpc)
>>> out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
>>> r = out["alice"]
>>> out["carol"] is None  # the dealer gets no result
True
>>> bool(abs(r.loc["x", "y"] - np.corrcoef(a["x"], b["y"])[0, 1]) < 1e-8)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from ...core.errors import DataError, ParameterError, ProtocolError
from ...mpc import MpcDevice, SecretArray, concatenate
from ...mpc.masked import MaskedMatrix, PrivateMaskedMatrix
from ...runtime.collectives import Received, agree, send_to
from ...runtime.context import PartyContext
from ...runtime.device import PartyObject
from ..frames import VDataFrame

__all__ = ["describe", "corr", "corr_secret", "SecretCorr", "vif", "vif_from_corr"]

# ---------------------------------------------------------------------------------------
# helpers: public messages, validation verdicts, reveal to every party
# ---------------------------------------------------------------------------------------


def _check_to(ctx: PartyContext, to: str | None) -> None:
    if to is not None and to not in ctx.parties:
        raise ParameterError(f"unknown recipient party '{to}' (cluster: {ctx.parties})", field="to")


def _recipients(vdf: VDataFrame, mpc: MpcDevice, to: str | None) -> list[str]:
    """Who gets a result: `to`, or (None) the parties of the frame and the compute parties of
    the device (which see the opened value anyway), in job order - never a semi2k dealer
    outside the frame: it only supplies correlated randomness and needs no result."""
    if to is not None:
        return [to]
    return [p for p in vdf.ctx.parties if p in vdf.parties or p in mpc.parties]


def _send_to(ctx: PartyContext, owner: str, to: list[str], name: str, value: np.ndarray | None) -> np.ndarray | None:
    """Plaintext float64 array from its owner to the parties `to`; None where not received."""
    value = None if value is None else np.asarray(value, dtype=np.float64)
    arrays = [value] if ctx.me == owner and value is not None else []
    got: Received | None = send_to(ctx, owner, to, arrays=arrays, name=name, dtypes=[np.float64])
    if got is None or ctx.me not in to:
        return None
    return got.arrays[0]


def _reveal_to(x: SecretArray, to: list[str]) -> np.ndarray | None:
    """Open `x` to the parties `to` (the same ndarray there, None elsewhere).

    When every compute party of the device is a recipient, the compute parties open it and
    the first forwards it to the other recipients (one open, as `reveal_to_all`, but never
    to a dealer or a party outside `to`); otherwise it is opened to each recipient alone."""
    ctx = x.device.ctx
    compute = list(x.device.parties)
    if len(to) > 1 and all(p in to for p in compute):
        val: np.ndarray = x.reveal()
        others = [p for p in to if p not in compute]
        dtype = np.float64 if x.fxp else np.int64
        sent = np.ascontiguousarray(val, dtype=dtype).reshape(-1) if ctx.me == compute[0] else None
        got = send_to(ctx, compute[0], others, arrays=[sent] if sent is not None else [], name="public",
                      dtypes=[dtype], shapes=[(int(np.prod(x.shape, dtype=np.int64)),)]) if others else None
        if ctx.me in others and got is not None:
            val = got.arrays[0].reshape(x.shape)
        return val if ctx.me in to else None
    out = None
    for p in to:
        obj = x.reveal(to=p)
        if ctx.me == p:
            out = obj.value
    return out


def _by_party(vdf: VDataFrame, columns: Sequence[str] | None) -> tuple[list[str], dict[str, list[str]]]:
    """(requested column order, {owner: its requested columns}) with owners in frame order."""
    if isinstance(columns, str):
        columns = [columns]
    names = [c for p in vdf.parties for c in vdf.columns[p]] if columns is None else [str(c) for c in columns]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise DataError(f"columns requested twice: {dup}")
    by: dict[str, list[str]] = {}
    for c in names:
        by.setdefault(vdf.owner_of(c), []).append(c)
    return names, {p: by[p] for p in vdf.parties if p in by}


def _numeric_problem(me: str, df: pd.DataFrame, cols: Sequence[str], allow_nan: bool, what: str) -> str | None:
    for c in cols:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            return f"party '{me}': column '{c}' is not numeric (dtype {col.dtype}); {what} needs numbers (encode it first)"
        if not allow_nan:
            v = col.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(v).any():
                return f"party '{me}': column '{c}' has {int(np.isnan(v).sum())} missing values (NaN); impute them before {what}"
            if np.isinf(v).any():
                return f"party '{me}': column '{c}' has {int(np.isinf(v).sum())} infinite values; {what} needs finite numbers"
    return None


# ---------------------------------------------------------------------------------------
# describe
# ---------------------------------------------------------------------------------------


def _describe_index(percentiles: Sequence[float]) -> list[str]:
    """Row labels of pandas' describe() for these percentiles (computed on a dummy frame, so
    every party gets identical labels and pandas validates the percentiles everywhere)."""
    idx = pd.DataFrame({"x": [0.0]}).describe(percentiles=list(percentiles)).index
    return [str(i) for i in idx] + ["var", "missing"]


def describe(
    ctx: PartyContext,
    vdf: VDataFrame,
    columns: Sequence[str] | None = None,
    *,
    percentiles: Sequence[float] = (0.25, 0.5, 0.75),
    ddof: int = 1,
    to: Sequence[str] | None = None,
) -> pd.DataFrame | None:
    """Per-column summary statistics, computed by each owner and returned to the frame's parties.

    **Disclosure: the whole table goes to the recipients.** Each owner computes pandas'
    ``describe()`` of its own columns in plaintext and sends the table to the parties of
    `to` - by default the parties of the frame, never a party of the job outside it (a
    semi2k dealer, which only supplies randomness, gets ``None`` and receives nothing);
    nothing else leaves the owner. Min, max and extreme quantiles are values of
    individual records, so call it only on columns whose summaries the recipients may see.

    Rows: ``count`` (non-missing), ``mean``, ``std`` (``ddof``, 1 like pandas), ``min``,
    the percentiles (linear interpolation, NaN skipped, labels as pandas: ``25%`` ...),
    ``max`` - identical to ``pandas.DataFrame.describe()`` of the joined frame - then
    ``var`` and ``missing`` (number of NaN). Columns: `columns` in the order given; by
    default every numeric, non-boolean column of the frame (pandas' default). A requested
    non-numeric column raises a `DataError` naming its party and column at every party;
    boolean columns are described as 0/1. NaN is allowed (it is what ``missing`` counts);
    a one-row frame gives ``std = var = NaN`` like pandas.

    >>> import pandas as pd
    >>> from jointml.runtime import simulate
    >>> from jointml.data.frames import from_pandas
    >>> a = pd.DataFrame({"age": [30, 40, None, 50]})
    >>> b = pd.DataFrame({"income": [1.0, 2.0, 3.0, 4.0], "city": list("abcd")})
    >>> def prog(ctx):
    ...     return describe(ctx, from_pandas(ctx, {"alice": a, "bob": b}))
    >>> t = simulate(prog, ["alice", "bob"], mode="thread")["bob"]
    >>> t.loc[["count", "mean", "missing"], "age"].tolist()
    [3.0, 40.0, 1.0]
    >>> list(t.columns)
    ['age', 'income']
    >>> def with_dealer(ctx):
    ...     return describe(ctx, from_pandas(ctx, {"alice": a, "bob": b}))
    >>> simulate(with_dealer, ["alice", "bob", "carol"], mode="thread")["carol"] is None
    True
    """
    recipients = _describe_recipients(ctx, vdf, to)
    if ctx.me not in recipients and ctx.me not in vdf.parties:
        return None  # a party outside the frame that is not a recipient takes part in nothing
    index = _describe_index(percentiles)
    explicit = columns is not None
    names, by = _by_party(vdf, columns)
    tables: dict[str, pd.DataFrame] = {}
    problems: list[tuple[str, str]] = []
    for owner in vdf.parties:
        if ctx.me != owner and ctx.me not in recipients:
            continue
        meta: dict[str, Any] | None = None
        arrays: list[np.ndarray] = []
        if ctx.me == owner:
            meta, arrays = _describe_local(
                ctx.me, vdf.parts[owner].value, by.get(owner, []) if explicit else None, index, percentiles, ddof
            )
        got = send_to(ctx, owner, [p for p in recipients if p != owner], meta=meta, arrays=arrays, name="describe")
        assert got is not None  # the owner and every recipient get the table
        if got.meta.get("problem"):
            problems.append((owner, str(got.meta["problem"])))
            continue
        tables[owner] = _checked_table(vdf, owner, got, index)
    if problems:
        raise DataError(problems[0][1], party=problems[0][0])
    if ctx.me not in recipients:
        return None
    out = pd.concat([tables[p] for p in vdf.parties if p in tables], axis=1) if tables else pd.DataFrame(index=index)
    if explicit:
        out = out[names]
    return out


def _describe_recipients(ctx: PartyContext, vdf: VDataFrame, to: Sequence[str] | None) -> list[str]:
    """Who receives describe()'s table: `to`, or the frame's parties (never a dealer by default)."""
    if to is None:
        return list(vdf.parties)
    for p in to:
        _check_to(ctx, p)
    return list(dict.fromkeys(to))


def _describe_local(
    me: str, df: pd.DataFrame, cols: list[str] | None, index: list[str], percentiles: Sequence[float], ddof: int
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The owner's (meta, [table]) for describe(): explicit `cols` are checked, None = numeric columns."""
    problem = _numeric_problem(me, df, cols, allow_nan=True, what="describe()") if cols is not None else None
    cols = [str(c) for c in (cols if cols is not None else df.select_dtypes(include="number").columns)]
    meta = {"problem": problem, "columns": cols}
    if problem is not None:
        return meta, []
    sub = df[cols].astype(np.float64)
    t = sub.describe(percentiles=list(percentiles)) if cols else pd.DataFrame(index=index[:-2])
    t.loc["std"] = sub.std(ddof=ddof)
    t.loc["var"] = sub.var(ddof=ddof)
    t.loc["missing"] = sub.isna().sum().astype(np.float64)
    return meta, [np.ascontiguousarray(t.reindex(index).to_numpy(dtype=np.float64)).reshape(len(index), len(cols))]


def _checked_table(vdf: VDataFrame, owner: str, got: Received, index: list[str]) -> pd.DataFrame:
    """Validate what arrived before using it (rule 1): names of this owner, one float table."""
    cols = got.meta.get("columns")
    if not isinstance(cols, list) or any(not isinstance(c, str) or c not in vdf.columns[owner] for c in cols):
        raise DataError("malformed describe() table (unknown columns)", party=owner)
    arrays = got.arrays
    if len(arrays) != 1 or arrays[0].dtype != np.float64 or arrays[0].shape != (len(index), len(cols)):
        raise DataError("malformed describe() table (shape or dtype)", party=owner)
    return pd.DataFrame(arrays[0], index=index, columns=cols)


# ---------------------------------------------------------------------------------------
# correlation
# ---------------------------------------------------------------------------------------


@dataclass
class SecretCorr:
    """A correlation matrix kept secret-shared (from :func:`corr_secret`).

    `matrix` is a d x d `SecretArray` (fixed point) in the order of `columns`; rows and
    columns of `constant` columns (public) are 0, including their diagonal entry. See
    :func:`corr_secret` for an example.

    >>> SecretCorr.__dataclass_fields__.keys()
    dict_keys(['matrix', 'columns', 'constant'])
    """

    matrix: SecretArray
    columns: list[str]
    constant: list[str]


@dataclass
class _Prepared:
    names: list[str]  # requested order
    by: dict[str, list[str]]  # owner -> columns, owners in frame order
    constant: list[str]
    w: dict[str, PartyObject]  # owner -> n x d_p matrix Z_p / sqrt(n) (unit-norm columns)


def _prepare(ctx: PartyContext, vdf: VDataFrame, columns: Sequence[str] | None, constant: str, what: str) -> _Prepared:
    if constant not in ("nan", "raise"):
        raise ParameterError(f"constant must be 'nan' or 'raise', got {constant!r}", field="constant")
    names, by = _by_party(vdf, columns)
    if not names:
        raise DataError(f"{what}: no columns selected")
    n = vdf.shape[0]
    if n < 2:
        raise DataError(f"{what} needs at least 2 rows, the frame has {n}")
    me = ctx.me
    problem, const = None, []
    if me in by:
        df = vdf.parts[me].value
        problem = _numeric_problem(me, df, by[me], allow_nan=False, what=what)
        if problem is None:
            x = df[by[me]].to_numpy(dtype=np.float64)
            # Exactly constant (max == min): the standard deviation is 0 and the correlation
            # undefined. Nearly constant columns are fine: standardisation is done in float64.
            const = [j for j, (lo, hi) in enumerate(zip(x.min(axis=0), x.max(axis=0))) if lo == hi]
            if const and constant == "raise":
                problem = f"party '{me}': column '{by[me][const[0]]}' is constant (zero variance); its correlation is undefined"
    # The verdict names constant columns by position in the owner's selected columns: every
    # party maps them to the names it knows (a dealer outside the frame knows placeholders and
    # needs only the shape), so no column name goes out with it.
    verdicts = agree(ctx, list(by), problem, details={"constant": const}, name=f"check:{what}")
    const_all = []
    for owner, v in verdicts.items():
        cs = v.get("constant", [])
        k = len(by[owner])
        if not isinstance(cs, list) or any(type(j) is not int or not 0 <= j < k for j in cs) or len(set(cs)) != len(cs):
            raise DataError("malformed verdict", party=owner)
        const_all += [by[owner][j] for j in cs]

    def standardise(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
        x = df[cols].to_numpy(dtype=np.float64)
        mu = x.mean(axis=0)
        sd = x.std(axis=0)  # population std: then sum_i z_a z_b / n is Pearson's r
        z = np.zeros_like(x)
        ok = sd > 0
        z[:, ok] = (x[:, ok] - mu[ok]) / sd[ok]
        # Scaled to unit column norm: W_a^T W_b is the correlation with no division by n
        # under MPC (a public 1/n in fixed point would cost precision), and |w| <= 1 keeps
        # every product far from the ring's limits.
        return z / math.sqrt(x.shape[0])

    w = {p: ctx.party(p).run(standardise, vdf.parts[p], cols) for p, cols in by.items()}
    return _Prepared(names, by, const_all, w)


#: Cross-party products use W encoded as integers round(W * 2^_K) on both sides: the
#: product of two unit-norm columns is at most 1 in magnitude (Cauchy-Schwarz), so the
#: exact ring result sum_i W_a W_b 2^(2K) stays below 2^61 - no truncation is needed and
#: the revealed entries are accurate to ~1e-9 instead of the 2^-f of the default fixed point.
_K = 30


def _cross_blocks(mpc: MpcDevice, prep: _Prepared) -> list[SecretArray]:
    """Secret integer blocks W_i^T [W_{i+1} | ... | W_k] 2^(2K), owners in frame order.

    Owner i's matrix is prepared once as a private masked matrix (semi2k: the owner alone
    sends E = W_i - A, once) and the later owners' matrices are secret-shared once (free
    for a semi2k compute party: PRG-derived shares) and enter the product as its right
    operand (semi2k: each non-owner compute party sends its masked share once). With two
    owners every n x d_p matrix crosses the links exactly once; with k owners, owner j's
    secret is opened (masked) again for each earlier owner. Under aby3 a matrix is shared
    once per role and products cost only their d_i x d_j output."""
    owners = list(prep.by)
    ctx = mpc.ctx
    enc = {p: ctx.party(p).run(lambda w: np.rint(w * float(1 << _K)).astype(np.int64), prep.w[p]) for p in owners}
    secret: dict[str, SecretArray] = {}

    def sec(p: str) -> SecretArray:
        if p not in secret:
            secret[p] = enc[p].to(mpc, fxp=False)
        return secret[p]

    blocks = []
    for i, left in enumerate(owners[:-1]):
        right = concatenate([sec(q) for q in owners[i + 1 :]], axis=1) if len(owners) - i > 2 else sec(owners[i + 1])
        pm: PrivateMaskedMatrix | MaskedMatrix
        if left in mpc.parties:
            pm = PrivateMaskedMatrix(mpc, enc[left], fxp=False)
        else:  # an owner outside the compute parties: share its matrix and mask the shares
            pm = MaskedMatrix(sec(left))
        blocks.append(pm.rmatmul_t(right))
    return blocks


def _to_fixed_point(x: SecretArray) -> SecretArray:
    """A cross block (integer secret at scale 2^(2K)) as a fixed-point secret with the device's
    f fractional bits: one truncation by 2K - f bits (the protocol's `trunc` kernel)."""
    f = x.device.frac_bits
    # The protocols' trunc rounds stochastically and without bias, so R carries no
    # systematic error (a biased R would bias every VIF computed from it).
    return SecretArray(x.device, x.proto.trunc(x.share, 2 * _K - f, x.shape), x.shape, f)


def _assemble(prep: _Prepared, cross: list[np.ndarray], local: dict[str, np.ndarray]) -> pd.DataFrame:
    """Plaintext d x d matrix (requested order) from the revealed blocks."""
    owners = list(prep.by)
    order = [c for p in owners for c in prep.by[p]]
    off = {}
    o = 0
    for p in owners:
        off[p] = o
        o += len(prep.by[p])
    d = o
    r = np.zeros((d, d))
    for p in owners:
        k = len(prep.by[p])
        r[off[p] : off[p] + k, off[p] : off[p] + k] = local[p]
    for i, left in enumerate(owners[:-1]):
        k = len(prep.by[left])
        blk = (np.asarray(cross[i], dtype=np.int64).astype(np.float64) / float(1 << (2 * _K))).reshape(k, d - off[left] - k)
        r[off[left] : off[left] + k, off[left] + k :] = blk
        r[off[left] + k :, off[left] : off[left] + k] = blk.T
    return _finish_corr(pd.DataFrame(r, index=order, columns=order).loc[prep.names, prep.names], prep.constant)


def _finish_corr(df: pd.DataFrame, constant: Sequence[str]) -> pd.DataFrame:
    # numpy.corrcoef clips to [-1, 1]; fixed-point rounding can step just outside.
    v = np.clip(df.to_numpy(dtype=np.float64), -1.0, 1.0)
    np.fill_diagonal(v, 1.0)  # exactly 1 by definition (numpy: 1 up to rounding)
    out = pd.DataFrame(v, index=df.index, columns=df.columns)
    if constant:
        # numpy.corrcoef gives NaN for the whole row and column of a zero-variance column.
        out.loc[list(constant), :] = np.nan
        out.loc[:, list(constant)] = np.nan
    return out


def _local_block(w: np.ndarray) -> np.ndarray:
    return w.T @ w


def corr_secret(
    ctx: PartyContext,
    vdf: VDataFrame,
    mpc: MpcDevice,
    columns: Sequence[str] | None = None,
    *,
    constant: Literal["nan", "raise"] = "nan",
) -> SecretCorr:
    """The Pearson correlation matrix, kept secret-shared on `mpc` (nothing revealed).

    Same computation as :func:`corr` with the within-party blocks secret-shared by their
    owners; use it to compute further under MPC (e.g. :func:`vif` with ``secure=True``).
    Public: the schema, which columns are constant (their rows and columns are 0).

    >>> import pandas as pd
    >>> from jointml.runtime import simulate
    >>> from jointml.mpc import MpcDevice
    >>> from jointml.data.frames import from_pandas
    >>> a = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    >>> b = pd.DataFrame({"y": [2.0, 1.0, 4.0, 3.0], "z": [1.0, 3.0, 2.0, 5.0]})
    >>> def prog(ctx):
    ...     vdf = from_pandas(ctx, {"alice": a, "bob": b})
    ...     sc = corr_secret(ctx, vdf, MpcDevice(ctx, ["alice", "bob"], dealer="carol"))
    ...     return sc.columns, sc.matrix.shape, sc.matrix[0, 1].reveal()
    >>> cols, shape, r_xy = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    >>> cols, shape, round(float(r_xy), 4)
    (['x', 'y', 'z'], (3, 3), 0.6)
    """
    prep = _prepare(ctx, vdf, columns, constant, "corr")
    return _secret_matrix(ctx, mpc, prep)


def _secret_matrix(ctx: PartyContext, mpc: MpcDevice, prep: _Prepared) -> SecretCorr:
    owners = list(prep.by)
    cross = [_to_fixed_point(c) for c in _cross_blocks(mpc, prep)]
    local = {p: ctx.party(p).run(_local_block, prep.w[p]).to(mpc) for p in owners}
    rows = []
    for i, p in enumerate(owners):
        parts = [cross[j][:, _col_slice(prep, owners, j, p)].T for j in range(i)]  # blocks left of the diagonal
        parts.append(local[p])
        if i < len(owners) - 1:
            parts.append(cross[i])
        rows.append(concatenate(parts, axis=1) if len(parts) > 1 else parts[0])
    m = concatenate(rows, axis=0) if len(rows) > 1 else rows[0]
    order = [c for p in owners for c in prep.by[p]]
    if order != prep.names:
        perm = np.array([order.index(c) for c in prep.names])
        m = m[perm][:, perm]
    return SecretCorr(m, list(prep.names), list(prep.constant))


def _col_slice(prep: _Prepared, owners: list[str], j: int, p: str) -> slice:
    """Columns of owner p inside cross block j (= W_j^T [W_{j+1} | ...])."""
    o = 0
    for q in owners[j + 1 :]:
        if q == p:
            return slice(o, o + len(prep.by[q]))
        o += len(prep.by[q])
    raise ProtocolError(f"owner not in cross block {j}", party=p)  # unreachable: blocks are built from owners


def corr(
    ctx: PartyContext,
    vdf: VDataFrame,
    mpc: MpcDevice,
    columns: Sequence[str] | None = None,
    *,
    to: str | None = None,
    local_blocks: Literal["reveal", "secret"] = "reveal",
    constant: Literal["nan", "raise"] = "nan",
) -> pd.DataFrame | PartyObject | None:
    """Pearson correlation matrix of columns held by different parties, revealing only the matrix.

    How: each owner standardises its columns in float64 with its own mean and (population)
    standard deviation, which never leave it, and scales them to unit norm:
    W_p = (X_p - mean) / (std sqrt(n)), so that W_a^T W_b is the correlation block of
    owners a and b. Blocks between two owners are secret products on `mpc` (each owner's
    n x d_p matrix crosses the links once with two owners - see `_cross_blocks`); blocks
    within one owner are W_p^T W_p computed locally.

    Disclosure: `to` (if None: every party of the frame and compute party of `mpc`, not a
    semi2k dealer) learns the d x d correlation matrix;
    nobody learns anything else about the data beyond the public schema and which columns
    are constant. `local_blocks` says how within-owner blocks travel - it changes precision,
    not what is learnt (the recipient learns those entries either way):

    * ``"reveal"`` (default): the owner sends its block in plaintext float64 straight to
      the recipient(s); those entries are exact.
    * ``"secret"``: the owner secret-shares its block and the whole matrix is opened in
      one reveal (fixed point, like the cross blocks).

    Accuracy: cross-party products are exact ring integers of W encoded with 30 fractional
    bits (no truncation): with ``local_blocks="reveal"`` every entry is within ~1e-9 of
    numpy.corrcoef (measured 9e-10 on German credit); with ``"secret"`` the matrix has the
    device's f fractional bits (|error| < 1e-5 for f = 18). The diagonal is set to exactly 1
    and entries are clipped to [-1, 1] like numpy.corrcoef.

    Bad input (raised at every party, naming party and column): a non-numeric column, NaN or
    infinite values, fewer than 2 rows. A constant column (zero variance): ``constant="nan"``
    (default) gives NaN in its whole row and column, as numpy.corrcoef does;
    ``constant="raise"`` raises a DataError.

    Returns a DataFrame indexed and labelled by column name (requested order) at every party
    of the frame and compute party of `mpc` (to=None; `None` at a semi2k dealer outside the
    frame), or a PartyObject holding it owned by `to`.

    >>> import pandas as pd
    >>> from jointml.runtime import simulate
    >>> from jointml.mpc import MpcDevice
    >>> from jointml.data.frames import from_pandas
    >>> a = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    >>> b = pd.DataFrame({"y": [2.0, 1.0, 4.0, 3.0], "z": [1.0, 3.0, 2.0, 5.0]})
    >>> def prog(ctx):
    ...     vdf = from_pandas(ctx, {"alice": a, "bob": b})
    ...     return corr(ctx, vdf, MpcDevice(ctx, ["alice", "bob"], dealer="carol"), to="bob")
    >>> out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
    >>> out["bob"].value.round(4).loc["x"].tolist(), out["alice"].owner
    ([1.0, 0.6, 0.8315], 'bob')
    """
    if local_blocks not in ("reveal", "secret"):
        raise ParameterError(f"local_blocks must be 'reveal' or 'secret', got {local_blocks!r}", field="local_blocks")
    _check_to(ctx, to)
    prep = _prepare(ctx, vdf, columns, constant, "corr")
    me, rec = ctx.me, _recipients(vdf, mpc, to)
    if local_blocks == "secret":
        sc = _secret_matrix(ctx, mpc, prep)
        val = _reveal_to(sc.matrix, rec)
        out = None
        if val is not None:
            out = _finish_corr(pd.DataFrame(val, index=prep.names, columns=prep.names), prep.constant)
    else:
        owners = list(prep.by)
        cross = _cross_blocks(mpc, prep)
        opened = None
        if cross:
            # One reveal for all cross blocks (one round, not one per block).
            flat = concatenate([c.reshape(-1) for c in cross], axis=0) if len(cross) > 1 else cross[0].reshape(-1)
            opened = _reveal_to(flat, rec)
        local: dict[str, np.ndarray] = {}  # at the recipients
        for p in owners:
            blk = _local_block(prep.w[p].value) if me == p else None
            got = _send_to(ctx, p, rec, "corr-local", blk)
            k = len(prep.by[p])
            if got is not None:
                if got.shape != (k, k):
                    raise DataError("malformed correlation block", party=p)
                local[p] = got
        out = None
        if me in rec:
            parts, o = [], 0
            for i, p in enumerate(owners[:-1]):
                assert opened is not None  # two owners or more: the cross blocks were revealed here
                size = len(prep.by[p]) * sum(len(prep.by[q]) for q in owners[i + 1 :])
                parts.append(opened[o : o + size])
                o += size
            out = _assemble(prep, parts, local)
    if to is None:
        return out
    return PartyObject(ctx.party(to), out)


# ---------------------------------------------------------------------------------------
# VIF
# ---------------------------------------------------------------------------------------


def vif_from_corr(r: pd.DataFrame | np.ndarray) -> pd.Series | np.ndarray:
    """Variance inflation factors from a correlation matrix: VIF_j = (R^-1)_jj.

    This equals 1 / (1 - R^2_j) of the regression of column j on the others (with an
    intercept). Columns whose row is NaN (constant columns from :func:`corr`) get NaN and
    are left out of the inverse; perfectly collinear columns (singular R) get inf.

    >>> import numpy as np
    >>> vif_from_corr(np.array([[1.0, 0.5], [0.5, 1.0]])).round(4).tolist()
    [1.3333, 1.3333]
    """
    m = np.asarray(r.to_numpy(dtype=np.float64) if isinstance(r, pd.DataFrame) else r, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"a correlation matrix must be square, got shape {m.shape}", field="r")
    ok = ~np.all(np.isnan(m), axis=1)
    out = np.full(m.shape[0], np.nan)
    sub = m[np.ix_(ok, ok)]
    if sub.size:
        w, v = np.linalg.eigh((sub + sub.T) / 2.0)
        # Eigenvalues at rounding level mean exact collinearity: infinite VIF for the
        # columns involved in those directions, finite VIF for the others.
        tol = max(sub.shape) * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(w))))
        big = w > tol
        vals = (v[:, big] ** 2) @ (1.0 / w[big])
        null = (v[:, ~big] ** 2).sum(axis=1) > 1e-12 if (~big).any() else np.zeros(len(vals), bool)
        vals[null] = np.inf
        out[ok] = vals
    if isinstance(r, pd.DataFrame):
        return pd.Series(out, index=r.index, name="vif")
    return out


def _ns_iterations(d: int, max_vif: float, frac_bits: int) -> int:
    """Newton-Schulz steps that resolve every VIF <= max_vif to ~1e-6 relative error.

    From X_0 = I/d the residual of an eigenvalue l of R is (1 - l/d)^(2^k); the smallest
    eigenvalue satisfies l >= 1 / (d max VIF), so 2^k >= 14 d^2 max_vif gives e^-14."""
    k = max(1, math.ceil(math.log2(14.0 * d * d * max_vif)))
    # Entries of X_k stay below 2^k / d (even for a singular R), products below 2^(k+1)
    # before truncation: they must stay under the truncation's 2^62 limit.
    if k + 2 * frac_bits > 61:
        limit = 2.0 ** (61 - 2 * frac_bits) / (14.0 * d * d)
        raise ParameterError(
            f"secure VIF: {d} columns with max_vif={max_vif:g} exceed the fixed-point range "
            f"(need max_vif <= {limit:.3g} for frac_bits={frac_bits}); lower max_vif or use secure=False", field="max_vif"
        )
    return k


def _secure_vif(r: SecretArray, max_vif: float) -> SecretArray:
    """diag(R^-1) by Newton-Schulz iteration X <- X (2I - R X) under MPC: only products.

    Every iterate is a polynomial in R, so it stays symmetric and commutes with R; with
    X_0 = I/d (eigenvalues of a correlation matrix lie in (0, d]) the iteration converges
    for any positive definite R. The first step is linear in R (free); each further step
    costs two d x d secret products (4 rounds)."""
    d = r.shape[0]
    k = _ns_iterations(d, max_vif, r.device.frac_bits)
    eye = np.eye(d)
    x = r * (-1.0 / (d * d)) + (2.0 / d) * eye  # X_1 = X_0 (2I - R X_0), X_0 = I/d
    for _ in range(k - 1):
        t = r @ x
        x = x @ (2.0 * eye - t)
    idx = np.arange(d)
    return x[idx, idx]


def vif(
    ctx: PartyContext,
    vdf: VDataFrame,
    mpc: MpcDevice,
    columns: Sequence[str] | None = None,
    *,
    to: str | None = None,
    secure: bool = False,
    max_vif: float = 1000.0,
    constant: Literal["nan", "raise"] = "nan",
) -> pd.Series | PartyObject | None:
    """Variance inflation factor of each column: VIF_j = (R^-1)_jj for the correlation matrix R.

    * ``secure=False`` (default): R is computed by :func:`corr` and **revealed to `to`**,
      which inverts it in float64 (:func:`vif_from_corr`). Disclosure: the correlation
      matrix (hence the VIFs).
    * ``secure=True``: R stays secret (:func:`corr_secret`) and R^-1 is computed under MPC by
      Newton-Schulz iteration (products only, no secure division); **only the d VIFs are
      revealed to `to`**. Accuracy: R has the device's f fractional bits and (R^-1)_jj
      amplifies that rounding by the condition number (about the largest VIF): relative
      error below 3e-5 x max VIF for f = 18 (3e-4 when all VIFs are <= 10; measured
      <= 0.25 % at VIF 550 over 40 runs; the iteration matches inv() of that R to 5e-6).
      Values >= `max_vif` (and perfect collinearity) are reported as ``inf`` - the iteration
      count is fixed by `max_vif` (public), so a VIF >= max_vif cannot be resolved. The
      ring bounds d^2 * max_vif (about 2.4e6 for f = 18: 48 columns at max_vif = 1000).

    Constant columns get NaN (``constant="nan"``) and are left out of the inverse, or raise
    (``constant="raise"``). Other bad input as :func:`corr`. Returns a Series indexed by
    column at every party of the frame and compute party (to=None; `None` at a semi2k dealer
    outside the frame) or a PartyObject owned by `to`.

    >>> import pandas as pd
    >>> from jointml.runtime import simulate
    >>> from jointml.mpc import MpcDevice
    >>> from jointml.data.frames import from_pandas
    >>> a = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    >>> b = pd.DataFrame({"y": [2.0, 1.0, 4.0, 3.0], "z": [1.0, 3.0, 2.0, 5.0]})
    >>> def prog(ctx):
    ...     vdf = from_pandas(ctx, {"alice": a, "bob": b})
    ...     return vif(ctx, vdf, MpcDevice(ctx, ["alice", "bob"], dealer="carol"), secure=True, max_vif=50.0)
    >>> out = simulate(prog, ["alice", "bob", "carol"], mode="thread")  # only the VIFs revealed
    >>> v = out["bob"]
    >>> out["carol"] is None  # the dealer gets no result
    True
    >>> v.round(1).tolist(), vif_from_corr(pd.concat([a, b], axis=1).corr()).round(1).tolist()  # 54.4 >= max_vif: inf
    ([inf, 16.9, 35.0], [54.4, 16.9, 35.0])
    """
    _check_to(ctx, to)
    if not (max_vif > 1.0):
        raise ParameterError(f"max_vif must be > 1, got {max_vif}", field="max_vif")
    if not secure:
        r = corr(ctx, vdf, mpc, columns, to=to, constant=constant)
        if to is None:
            return None if r is None else vif_from_corr(r)
        assert isinstance(r, PartyObject)  # to is set: a handle (the value at `to`)
        return PartyObject(ctx.party(to), vif_from_corr(r.value) if ctx.me == to else None)
    sc = corr_secret(ctx, vdf, mpc, columns, constant=constant)
    keep = np.array([c not in sc.constant for c in sc.columns])
    out = None
    if keep.any():
        idx = np.flatnonzero(keep)
        m = sc.matrix if keep.all() else sc.matrix[idx][:, idx]
        val = _reveal_to(_secure_vif(m, max_vif), _recipients(vdf, mpc, to))
        if val is not None:
            v = np.full(len(sc.columns), np.nan)
            vals = np.array(val, dtype=np.float64)  # received buffers are read-only
            vals[~(vals < max_vif)] = np.inf  # unresolved: at least max_vif
            v[idx] = vals
            out = pd.Series(v, index=sc.columns, name="vif")
    elif ctx.me in _recipients(vdf, mpc, to):
        out = pd.Series(np.full(len(sc.columns), np.nan), index=sc.columns, name="vif")
    if to is None:
        return out
    return PartyObject(ctx.party(to), out)
