"""Calibration of the cost model's time prediction on this machine.

The cost model predicts bytes and rounds exactly (`jointml.dsl.cost`); seconds depend on
the machine. `calibrate()` runs a few micro-programs (products, matrix products, masked
products, comparisons, openings, at two sizes each) on the real runtime, with each
party timing every scheduled stage (`RunReport.seconds`), and fits, by non-negative least
squares over the stages,

    stage seconds = stage + rounds x round + bytes x byte + sum over families f of work_f x units_f

where `units_f` is the stage's local work of kernel family f (`cost.work_units`: elements,
or multiply-adds of a matrix product). The fitted `Calibration` (per-round latency, cost per
byte, fixed cost per stage, seconds per unit of each family) is stored as JSON
(`save` / `load`, default file `default_path`) and predicts a whole program's seconds from
its `Prediction` (`Calibration.seconds`), optionally under an injected one-way link delay
(each counted round then waits that delay once more: both parties of an exchange send,
then receive).

Re-run it on a quiet machine (`jointml bench dsl --calibrate`): the fit absorbs whatever
load the machine had while it ran.

Security: the micro-programs run on public synthetic data; the calibration holds timings only.

>>> cal = Calibration("semi2k", "thread", stage=1e-4, round=5e-5, byte=1e-9, work={"mul": 2e-8})
>>> from jointml.mpc.protocols.base import Cost
>>> p = Prediction(stages=[(["mul%3"], Cost(1000, 2))], work=[{"mul": 100.0}], n_stages=3)
>>> round(cal.seconds(p) * 1e6, 3), round(cal.seconds(p, delay=0.01) * 1e3, 3)
(403.0, 20.403)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ParameterError
from .cost import Prediction, predict
from .function import Function, function, private

__all__ = ["Calibration", "calibrate", "default_path", "load", "fit"]


@dataclass
class Calibration:
    """Seconds per stage, per counted round, per byte (all parties' traffic) and per unit of
    local work of each kernel family, fitted on `protocol` with parties run as `mode`."""

    protocol: str
    mode: str
    stage: float
    round: float
    byte: float
    work: dict[str, float] = field(default_factory=dict)
    #: fixed cost of a run outside its stages (compilation cache, the input-shape agreement)
    run: float = 0.0
    #: relative error of the fit on the calibration programs' totals (median, max)
    fit_error: tuple[float, float] = (0.0, 0.0)

    def seconds(self, pred: Prediction, delay: float = 0.0) -> float:
        """Predicted wall time of a program with prediction `pred` (`delay`: injected one-way
        link delay in seconds, paid once per counted round, per input owner's verdict and per
        extra delay of a garbled circuit: `Prediction.extra_delays`)."""
        t = self.run + pred.n_stages * self.stage + (pred.setup_rounds + pred.extra_delays) * delay
        for (_, c), w in zip(pred.stages, pred.work):
            t += c.rounds * (self.round + delay) + c.bytes * self.byte
            t += sum(self.work.get(k, _declared(k)) * v for k, v in w.items())
        return t

    def save(self, path: str | Path | None = None) -> Path:
        """Write as JSON (to `default_path(protocol, mode)` unless given); returns the path."""
        p = Path(path) if path is not None else default_path(self.protocol, self.mode)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), indent=1))
        return p


def _declared(family: str) -> float:
    """The declared local work per unit of a family the calibration did not measure (the
    garbled comparison on aby3 or in an older file; the Paillier product, never measured)."""
    if family == "gc":
        from .passes.select import GC_LOCAL_SECONDS

        return GC_LOCAL_SECONDS
    if family == "he":
        from .he_lowering import LOCAL_SECONDS

        return LOCAL_SECONDS["muladd"]
    return 0.0


def default_path(protocol: str, mode: str = "process") -> Path:
    """$JOINTML_DSL_CALIBRATION_DIR (default ~/.cache/jointml)/dsl-calibration-<protocol>-<mode>.json"""
    base = os.environ.get("JOINTML_DSL_CALIBRATION_DIR") or str(Path.home() / ".cache" / "jointml")
    return Path(base) / f"dsl-calibration-{protocol}-{mode}.json"


def load(protocol: str, mode: str = "process", path: str | Path | None = None) -> Calibration | None:
    """The stored calibration (None if there is none at the path)."""
    p = Path(path) if path is not None else default_path(protocol, mode)
    if not p.exists():
        return None
    try:
        d = json.loads(p.read_text())
        d["fit_error"] = tuple(d.get("fit_error", (0.0, 0.0)))
        return Calibration(**d)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"the DSL calibration file {p} is unreadable ({e}); delete it and re-run "
                          "`jointml bench dsl --calibrate`", field="calibration") from None


# -- the micro-programs ---------------------------------------------------------------------
def programs(scale: float = 1.0, a: str = "alice", b: str = "bob") -> list[tuple[str, Function, dict[str, Any]]]:
    """(name, function, run options) of the calibration programs at `scale` (1.0: up to ~1M
    elements per kernel). Every family of `cost.work_units` appears at two sizes or more
    (the garbled comparison on semi2k only; the Paillier product is priced by its declared
    `he_lowering.LOCAL_SECONDS`, not calibrated)."""
    out: list[tuple[str, Function, dict[str, Any]]] = []
    sizes = {max(int(k * scale), 8): "msb" for k in (1_000, 20_000, 400_000)}
    # the garbled comparison (semi2k) at smaller sizes: 8 KB and ~50-150 us per element
    sizes.update({max(int(k * scale), 4): "garbled" for k in (100, 2_000)})
    for n, cmp in sorted(sizes.items()):
        @function(x=private(a, (n,)), y=private(b, (n,)))
        def elementwise(x, y):  # type: ignore[no-untyped-def]
            p = x * y  # Beaver product + truncation
            q = (x > y) * p  # comparison, its bit conversion, an exact product
            return (p + q).sum().reveal(), (q * 0.5).reveal(to=b)

        out.append((f"{'elementwise' if cmp == 'msb' else 'garbled'}{n}", elementwise, {"pins": {"compare": cmp}}))
    for rows, d in sorted({(max(int(r * scale), 8), d) for r, d in ((256, 16), (2048, 32), (16384, 100))}):
        @function(X=private(a, (rows, d)), w=private(b, (d,)))
        def product(X, w):  # type: ignore[no-untyped-def]
            return (X.T @ (X @ w)).reveal(to=a)

        out.append((f"beaver{rows}x{d}", product, {"pins": {"matmul": "beaver"}}))
        out.append((f"masked{rows}x{d}", product, {"pins": {"matmul": "private_masked"}}))
    return out


def _measure(ctx: Any, protocol: str, parties: list[str], scale: float, repeats: int) -> list[list[Any]]:
    """At each party: each calibration program run once to warm up, then `repeats` reported
    runs (their `RunReport`s, stage times and run time included)."""
    from ..mpc import MpcDevice

    mpc = (MpcDevice(ctx, parties[:2], dealer=parties[2]) if protocol == "semi2k"
           else MpcDevice(ctx, parties, protocol="aby3"))
    from ..core.prg import public_rng

    g = public_rng(7)  # public synthetic calibration data
    out: list[list[Any]] = []
    for _, fn, opts in programs(scale, parties[0], parties[1]):
        args = [g.normal(size=v.shape) if v.vis is not None and v.vis.owner == ctx.me else None
                for v in fn.graph.inputs]
        fn.run(ctx, mpc, *args, **opts)
        out.append([fn.run(ctx, mpc, *args, report=True, **opts)[1] for _ in range(repeats)])
    return out


_FAMS = ("mul", "matmul", "trunc", "cmp", "b2a", "b_and", "io", "gc", "he")
_COLS = ("stage", "round", "byte") + _FAMS


def stage_seconds(runs: list[list[Any]]) -> list[float]:
    """Per stage: the fastest over repeated runs of the mean over the compute parties of the
    stage's wall time (`runs[j][p]`: party p's report of run j). The minimum keeps the
    stages slowed by other work on the machine out of the figures (the calibration
    estimates the machine's own cost; on a shared machine every figure is a lower bound)."""
    per_run = [[float(np.mean([r.seconds[i] for r in reps])) for i in range(len(reps[0].seconds))] for reps in runs]
    return [float(np.min(col)) for col in zip(*per_run)]


def _rows(pred: Prediction, runs: list[list[Any]]) -> list[tuple[list[float], float]]:
    """One row (features, seconds) per measured stage (`stage_seconds`), aligned with the
    prediction's stages (stages without traffic have no work)."""
    reports = runs[0]
    n = len(reports[0].stages)
    k = 0
    rows = []
    secs_all = stage_seconds(runs)
    for i in range(n):
        labels = reports[0].stages[i][0]
        secs = secs_all[i]
        feats = [1.0] + [0.0] * (len(_COLS) - 1)
        if k < len(pred.stages) and pred.stages[k][0] == labels:
            c, w = pred.stages[k][1], pred.work[k]
            feats[1], feats[2] = float(c.rounds), float(c.bytes)
            for f, v in w.items():
                feats[_COLS.index(f)] += v
            k += 1
        rows.append((feats, secs))
    if k != len(pred.stages):
        raise ParameterError("calibration: the measured stages do not line up with the predicted ones",
                             field="calibration")
    return rows


def _nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares (active set: drop the most negative coefficient, refit)."""
    scale = np.maximum(np.abs(A).max(axis=0), 1e-30)
    As = A / scale
    active = [j for j in range(A.shape[1]) if np.abs(A[:, j]).max() > 0]
    x = np.zeros(A.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(As[:, active], b, rcond=None)
        if (sol >= 0).all():
            x[active] = sol
            break
        active.pop(int(np.argmin(sol)))
    return x / scale


def fit(protocol: str, mode: str, data: list[tuple[Prediction, list[list[Any]], float]]) -> Calibration:
    """The calibration from, per program, (its prediction, the compute parties' reports of
    each repeated run, the measured seconds of the run: median over the runs of the slowest
    party, fastest of the runs); its `fit_error` compares predicted and measured seconds."""
    # each program's stages weighted by 1 / its time: every program counts alike (the
    # prediction should be within a relative error on each, small or large)
    rows = [(r, 1.0 / max(t, 1e-6)) for pred, runs, t in data for r in _rows(pred, runs)]
    A = np.array([[v * wt for v in f] for (f, _), wt in rows])
    b = np.array([s * wt for (_, s), wt in rows])
    x = _nnls(A, b)
    cal = Calibration(protocol, mode, stage=float(x[0]), round=float(x[1]), byte=float(x[2]),
                      work={f: float(x[3 + i]) for i, f in enumerate(_FAMS) if A[:, 3 + i].any()})
    outside = [t - sum(stage_seconds(runs)) for _, runs, t in data]
    cal.run = max(float(np.median(outside)), 0.0)
    errs = [abs(cal.seconds(pred) - t) / t for pred, _, t in data if t > 0]
    cal.fit_error = (float(np.median(errs)), float(max(errs))) if errs else (0.0, 0.0)
    return cal


def calibrate(protocol: str = "semi2k", mode: str = "process", scale: float = 1.0, repeats: int = 3,
              parties: list[str] | None = None) -> Calibration:
    """Measure the calibration programs (`programs(scale)`) with the parties run as `mode` and
    fit a `Calibration` (not saved: call `.save()`).

    >>> [name for name, _, _ in programs(0.01)][:4]
    ['garbled4', 'elementwise10', 'garbled20', 'elementwise200']
    """
    from ..runtime import simulate

    if protocol not in ("semi2k", "aby3"):
        raise ParameterError(f"no calibration for protocol {protocol!r}", field="protocol")
    parties = parties or (["alice", "bob", "dealer"] if protocol == "semi2k" else ["alice", "bob", "carol"])
    compute = parties[:2] if protocol == "semi2k" else parties
    res = simulate(_measure, parties, mode=mode, args=(protocol, parties, scale, repeats))
    data = []
    for i, (_, fn, opts) in enumerate(programs(scale, parties[0], parties[1])):
        pred = predict(fn.compile(protocol=protocol, compute=compute, pins=opts.get("pins")), protocol,
                       compute=compute, parties=parties)
        runs = [[res[p][i][j] for p in compute] for j in range(repeats)]
        total = float(np.min([max(res[p][i][j].total_seconds for p in parties) for j in range(repeats)]))
        data.append((pred, runs, total))
    return fit(protocol, mode, data)
