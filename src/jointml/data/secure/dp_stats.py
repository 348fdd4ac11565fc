"""Statistics of partitioned frames released with differential privacy.

Three releases, each charged to the data sources it touches before it runs
(:func:`jointml.dp.budget.enforce`: refused at every party, with nothing computed, when a
source lacks budget) and each returning its epsilon at its delta:

* :func:`dp_describe` - sums, means, histograms and quantiles of columns of a vertical frame.
  Each owner computes its own columns in plaintext and releases them through exact DP
  mechanisms (:mod:`jointml.dp.mechanisms`) to every party: the owner sees its raw column
  (it is its data), every other party only the noisy table.
* :func:`dp_group_stats` - counts, sums and means of one party's column per category of
  another party's column (e.g. income per label class), computed under MPC; every compute
  party adds its own noise before the result is opened (:func:`jointml.dp.secure.add_noise`),
  so no party sees a noiseless per-group aggregate.
* :func:`dp_sum_horizontal` - sums and means of a horizontal frame: each party's local
  sums are secret-shared, added and noised under MPC.

What epsilon protects: **one record of a data source** (replace-one neighbouring: row counts
are public in jointml frames, so a neighbour replaces a row rather than removing it). Values
are clipped to the public `bounds` first, which bounds each record's contribution;
clipping is part of the mechanism. Adversary model: that of the MPC device (semi-honest;
semi2k with a non-colluding dealer, aby3 honest majority); the noise of one honest compute
party alone gives the stated guarantee. Public: the schema, the bounds, the categories, the
noise parameters and the budgets' verdicts.

>>> import pandas as pd
>>> from jointml.data.frames import from_pandas
>>> a = pd.DataFrame({"age": np.arange(1000) % 60 + 20.0})
>>> def prog(ctx):
...     vdf = from_pandas(ctx, {"alice": a, "bob": pd.DataFrame({"y": np.zeros(1000)})})
...     return dp_describe(ctx, vdf, {"age": (18.0, 90.0)}, epsilon=1.0, stats=("mean",))
>>> out = simulate(prog, ["alice", "bob"], mode="thread")["bob"]
>>> bool(abs(out.table.loc["mean", "age"] - a["age"].mean()) < 2), out.epsilon["age"]
(True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...core.errors import DataError, ParameterError
from ...dp import Accountant, exponential, geometric, laplace
from ...dp.accounting import PrivacyEvent
from ...dp.budget import BudgetLedger, enforce
from ...dp.secure import add_noise
from ...mpc import MpcDevice
from ...runtime.collectives import agree, broadcast
from ..frames import HDataFrame, VDataFrame

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import PartyContext

__all__ = ["DPResult", "dp_describe", "dp_group_stats", "dp_sum_horizontal"]

Bounds = Mapping[str, tuple[float, float]]


@dataclass
class DPResult:
    """A DP release: the noisy `table`, its epsilon (per column, or per release), delta and events."""

    table: pd.DataFrame | None
    epsilon: dict[str, float]
    delta: float
    events: list[PrivacyEvent] = field(default_factory=list)


def _check_bounds(bounds: Bounds, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in bounds:
            raise ParameterError(f"column '{c}' needs public clipping bounds (lo, hi)", field="bounds")
        lo, hi = bounds[c]
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ParameterError(f"bounds of column '{c}' must be finite with lo < hi, got {(lo, hi)}", field="bounds")


def _clipped(df: pd.DataFrame, col: str, bounds: Bounds, party: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(v).any():
        raise DataError("a DP statistic's column has missing or non-numeric values", party=party, field=col,
                        public="missing or non-numeric values")
    lo, hi = bounds[col]
    return np.clip(v, lo, hi)


def _source(sources: Mapping[str, str] | str, party: str) -> str:
    return sources if isinstance(sources, str) else sources.get(party, "default")


def _charge(ctx: PartyContext, ledger: BudgetLedger | None, owners: dict[str, float], delta: float,
            sources: Mapping[str, str] | str, release: str | None) -> None:
    """Charge every touched owner's source (when ledgers are in use) before anything is computed."""
    if release is None:
        if ledger is not None:
            raise ParameterError("a privacy ledger needs a release id (release=...) to be charged", field="release")
        return
    charges = {p: [(_source(sources, p), eps, delta)] for p, eps in owners.items()}
    enforce(ctx, ledger if ctx.me in owners else None, charges, release=release)


# ---------------------------------------------------------------------------------------
# dp_describe: per-owner releases of a vertical frame
# ---------------------------------------------------------------------------------------


def _quantile(v: np.ndarray, q: float, lo: float, hi: float, eps: float, grid: int) -> float:
    """Exponential mechanism over a public grid of candidates: score -|rank(c) - q n| (sensitivity 1)."""
    cand = np.linspace(lo, hi, grid)
    ranks = np.searchsorted(np.sort(v), cand, side="right")
    return float(cand[exponential(-np.abs(ranks - q * v.size), 1.0, eps).value])


def _describe_column(v: np.ndarray, lo: float, hi: float, eps: float, stats: Sequence[str], bins: int,
                     quantiles: Sequence[float]) -> tuple[dict[str, float], list[PrivacyEvent]]:
    share = eps / len(stats)
    out: dict[str, float] = {}
    events: list[PrivacyEvent] = []
    if "mean" in stats:  # noisy sum (replace-one: sensitivity hi - lo); mean = sum / n (n public)
        r = laplace(float(v.sum()), hi - lo, share)
        out["sum"], out["mean"] = r.value, r.value / v.size
        events.append(r.event)
    if "histogram" in stats:  # replace-one moves one record between bins: L1 sensitivity 2
        edges = np.linspace(lo, hi, bins + 1)
        counts = np.histogram(v, bins=edges)[0].astype(np.int64)
        r = geometric(counts, 2, share)
        out.update({f"[{edges[i]:.4g}, {edges[i + 1]:.4g})": float(c) for i, c in enumerate(r.value)})
        events.append(r.event)
    if "quantiles" in stats:
        for q in quantiles:
            out[f"{q * 100:g}%"] = _quantile(v, q, lo, hi, share / len(quantiles), 256)
            events.append(PrivacyEvent("pure", epsilon=share / len(quantiles)))
    return out, events


def _describe_owner(df: pd.DataFrame, owner: str, cols: list[str], bounds: Bounds, epsilon: float,
                    stats: Sequence[str], bins: int, quantiles: Sequence[float]) -> dict[str, Any]:
    """The owner's noisy table, or its (data-free) problem, as the message every party receives."""
    res, events = {}, []
    for c in cols:
        lo, hi = bounds[c]
        try:
            v = _clipped(df, c, bounds, owner)
        except DataError as e:
            return {"problem": f"column '{c}': {e.public or 'missing or non-numeric values'}"}
        res[c], ev = _describe_column(v, lo, hi, epsilon, stats, bins, quantiles)
        events += ev
    return {"table": res, "events": [e.to_json() for e in events]}


def dp_describe(ctx: PartyContext, vdf: VDataFrame, bounds: Bounds, epsilon: float, *,
                stats: Sequence[str] = ("mean", "histogram", "quantiles"), bins: int = 10,
                quantiles: Sequence[float] = (0.25, 0.5, 0.75), ledger: BudgetLedger | None = None,
                sources: Mapping[str, str] | str = "default", release: str | None = None) -> DPResult:
    """epsilon-DP sums, means, histograms and quantiles of the columns in `bounds`, at every party.

    `epsilon` is spent per column (split evenly over `stats`, quantiles split further); a
    party owning several columns is charged their sum. With `release` (an id), each owner
    charges `ledger` (its own) for its source (`sources[party]`) before anything runs.
    """
    bad = [s for s in stats if s not in ("mean", "histogram", "quantiles")]
    if bad or not stats:
        raise ParameterError(f"unknown DP statistics {bad} (mean, histogram, quantiles)", field="stats")
    cols = list(bounds)
    _check_bounds(bounds, cols)
    owners: dict[str, float] = {}
    for c in cols:
        owners[vdf.owner_of(c)] = owners.get(vdf.owner_of(c), 0.0) + float(epsilon)
    _charge(ctx, ledger, owners, 0.0, sources, release)
    tables: list[pd.DataFrame] = []
    events: list[PrivacyEvent] = []
    for owner in vdf.parties:
        mine = [c for c in cols if vdf.owner_of(c) == owner]
        if not mine:
            continue
        meta: dict[str, Any] | None = None
        if ctx.me == owner:
            meta = _describe_owner(vdf.parts[owner].value, owner, mine, bounds, epsilon, stats, bins, quantiles)
        got = broadcast(ctx, owner, meta=meta, name="dp-describe").meta
        if got.get("problem"):
            raise DataError(str(got["problem"]), party=owner)
        tables.append(pd.DataFrame(got["table"]))
        events += [PrivacyEvent.from_json(e) for e in got["events"]]
    table = pd.concat(tables, axis=1)[cols]
    return DPResult(table, {c: float(epsilon) for c in cols}, 0.0, events)


# ---------------------------------------------------------------------------------------
# dp_group_stats: per-category aggregates under MPC, noised before they are opened
# ---------------------------------------------------------------------------------------


def dp_group_stats(ctx: PartyContext, vdf: VDataFrame, mpc: MpcDevice, value: str, by: str,
                   categories: Sequence[Any], bounds: tuple[float, float], epsilon: float, delta: float = 0.0, *,
                   mechanism: str = "laplace", ledger: BudgetLedger | None = None,
                   sources: Mapping[str, str] | str = "default", release: str | None = None) -> DPResult:
    """DP count, sum and mean of `value` per category of `by` (two parties' columns), under MPC.

    The owner of `by` secret-shares a one-hot matrix over the public `categories` (rows of
    other categories count nowhere), the owner of `value` its clipped column; the per-group
    counts and sums are computed on shares, noised by every compute party (each spending
    epsilon/2 on counts and on sums: epsilon in all, at `delta` for the Gaussian), then
    opened to the compute parties. Other parties get ``table=None``.

    >>> import pandas as pd
    >>> from jointml.data.frames import from_pandas
    >>> from jointml.core.prg import public_rng
    >>> rng = public_rng(0)  # public example data
    >>> y = np.arange(2000) % 2
    >>> def prog(ctx):
    ...     vdf = from_pandas(ctx, {"alice": pd.DataFrame({"inc": 10.0 + 5 * y}), "bob": pd.DataFrame({"y": y})})
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     return dp_group_stats(ctx, vdf, mpc, "inc", "y", [0, 1], (0.0, 20.0), epsilon=2.0).table
    >>> t = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    >>> np.round(t["mean"].to_numpy()).tolist()
    [10.0, 15.0]
    """
    lo, hi = bounds
    _check_bounds({value: bounds}, [value])
    vo, bo = vdf.owner_of(value), vdf.owner_of(by)
    k = len(categories)
    if k < 1:
        raise ParameterError("dp_group_stats needs at least one category", field="categories")
    owners = {vo: float(epsilon)} | {bo: float(epsilon)}
    _charge(ctx, ledger, owners, delta, sources, release)

    def onehot() -> np.ndarray:
        col = vdf.parts[bo].value[by].to_numpy()
        return np.stack([(col == c) for c in categories], axis=1).astype(np.float64)

    def clipped() -> np.ndarray:
        return _clipped(vdf.parts[vo].value, value, {value: bounds}, vo).reshape(-1, 1)

    def problem() -> str | None:  # checked at the owner before any sharing, announced to all
        try:
            clipped()
        except DataError:
            return f"column '{value}' has missing or non-numeric values"
        return None

    agree(ctx, [vo], problem if ctx.me == vo else None, name="dp-group")
    h = ctx.party(bo).run(onehot).to(mpc)
    v = ctx.party(vo).run(clipped).to(mpc)
    counts = h.sum(axis=0)
    sums = (h.T @ v).reshape(k)
    # replace-one moves a record between two groups: 2 coordinates change
    b = max(abs(lo), abs(hi))
    l1 = mechanism == "laplace"
    nc = add_noise(counts, 2.0 if l1 else 2**0.5, epsilon / 2, delta / 2, mechanism=mechanism, dim=2)
    ns = add_noise(sums, 2 * b if l1 else 2**0.5 * b, epsilon / 2, delta / 2, mechanism=mechanism, dim=2)
    acc = Accountant()
    for ev in (nc.event, ns.event):
        acc.add(ev)
    c_val, s_val = nc.value.reveal(), ns.value.reveal()
    table = None
    if c_val is not None:
        table = pd.DataFrame({"count": c_val, "sum": s_val, "mean": s_val / np.maximum(c_val, 1.0)},
                             index=pd.Index(list(categories), name=by))
    return DPResult(table, {value: acc.epsilon(delta)}, delta, [nc.event, ns.event])


def dp_sum_horizontal(ctx: PartyContext, hdf: HDataFrame, mpc: MpcDevice, bounds: Bounds, epsilon: float,
                      delta: float = 0.0, *, mechanism: str = "laplace", ledger: BudgetLedger | None = None,
                      sources: Mapping[str, str] | str = "default", release: str | None = None) -> DPResult:
    """DP sums and means of the columns in `bounds` over every party's rows of a horizontal frame.

    Each party clips and sums its own rows in plaintext, secret-shares the sums; they are
    added and noised under MPC (every compute party's own noise), and opened to the compute
    parties. Every party of the frame is charged epsilon (its records are in the sum).

    >>> import pandas as pd
    >>> from jointml.data.frames import from_pandas
    >>> def prog(ctx):
    ...     hdf = from_pandas(ctx, {"alice": pd.DataFrame({"x": np.ones(500)}),
    ...                             "bob": pd.DataFrame({"x": np.full(1500, 3.0)})}, vertical=False)
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     return dp_sum_horizontal(ctx, hdf, mpc, {"x": (0.0, 5.0)}, epsilon=1.0).table
    >>> t = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    >>> bool(abs(t.loc["mean", "x"] - 2.5) < 0.1)
    True
    """
    cols = list(bounds)
    _check_bounds(bounds, cols)
    _charge(ctx, ledger, {p: float(epsilon) for p in hdf.parties}, delta, sources, release)
    total = None
    for p in hdf.parties:
        def local(p: str = p) -> np.ndarray:
            df = hdf.parts[p].value
            return np.array([_clipped(df, c, bounds, p).sum() for c in cols], dtype=np.float64)

        s = ctx.party(p).run(local).to(mpc)
        total = s if total is None else total + s
    assert total is not None
    widths = np.array([bounds[c][1] - bounds[c][0] for c in cols])
    sens = float(widths.sum()) if mechanism == "laplace" else float(np.sqrt((widths**2).sum()))
    noisy = add_noise(total, sens, epsilon, delta, mechanism=mechanism, dim=len(cols))
    val = noisy.value.reveal()
    table = None if val is None else pd.DataFrame([val, val / len(hdf)], index=["sum", "mean"], columns=cols)
    return DPResult(table, {c: noisy.epsilon for c in cols}, delta, [noisy.event])
