"""`@dsl.function`: declare the inputs, trace once, compile, run, explain.

Inputs are declared by visibility: `public(shape)` (known to every party, passed at every
party), `private(owner, shape)` (the owner's plaintext: pass the array at the owner, None
or a `PartyObject` handle elsewhere), `secret(shape)` (a `SecretArray`). Outputs are what
the function returns: `x.reveal(to=...)` opens a value, a secret returned unrevealed stays
a `SecretArray`, a private one stays at its owner.

Security: what each party learns is what the program reveals (and the public shapes);
placement keeps private-only computations at their owner; the protocol is the MPC device's.

>>> from jointml import dsl
>>> from jointml.mpc import MpcDevice
>>> @dsl.function(x=dsl.private("alice", (3,)), w=dsl.private("bob", (3,)))
... def score(x, w):
...     return (x * w).sum().reveal()
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = np.array([1.0, 2.0, 3.0]) if ctx.me == "alice" else None
...     w = np.array([0.5, 0.5, -1.0]) if ctx.me == "bob" else None
...     return score.run(ctx, mpc, x, w)
>>> round(float(simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]), 4)
-1.5
"""

from __future__ import annotations

import copy
import inspect
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import ParameterError
from .execute import Executor, evaluate
from .ir import PUBLIC, SECRET, Graph, Vis, op_label
from .trace import Tensor, Tracer

__all__ = ["InputSpec", "public", "private", "secret", "Function", "function", "Program", "RunReport", "combine",
           "measured_total"]


@dataclass(frozen=True)
class InputSpec:
    """A declared input: visibility, shape, kind ("f" fixed point, "i" integer)."""

    vis: Vis
    shape: tuple[int, ...]
    dtype: str = "f"


def _spec(vis: Vis, shape: Any, dtype: str) -> InputSpec:
    if dtype not in ("f", "i"):
        raise ParameterError(f"dtype must be 'f' (fixed point) or 'i' (integer), got {dtype!r}", field="dtype")
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    return InputSpec(vis, shape, dtype)


def public(shape: Any = (), dtype: str = "f") -> InputSpec:
    """A public input: the same array at every party.

    >>> public((2, 3)), private("bank", 4).vis, secret(()).dtype
    (InputSpec(vis=Vis(kind='public', owner=None), shape=(2, 3), dtype='f'), Vis(kind='private', owner='bank'), 'f')
    """
    return _spec(PUBLIC, shape, dtype)


def private(owner: str, shape: Any, dtype: str = "f") -> InputSpec:
    """A private input: plaintext at `owner` only."""
    return _spec(Vis.private(owner), shape, dtype)


def secret(shape: Any, dtype: str = "f") -> InputSpec:
    """A secret input: a SecretArray on the MPC device."""
    return _spec(SECRET, shape, dtype)


class Program:
    """A compiled function: the optimized graph and the options it runs with."""

    def __init__(self, graph: Graph, stages: list[tuple[str, str]], batch: bool, protocol: str):
        self.graph = graph
        #: (pass name, IR dump after it)
        self.stages = stages
        self.batch = batch
        self.protocol = protocol
        #: value id -> dump number: stable labels for reports across processes
        self.names = graph.names()

    def dump(self) -> str:
        return self.graph.dump()


class RunReport:
    """One party's measured traffic: per stage (op labels, payload bytes sent, rounds).

    Each stage is counted alone: the hook resets the party's counters (`ctx.reset_stats()`)
    before the stage and reads them after, so a stage's rounds are those of its operations
    run by themselves (the meaning of `Protocol.cost`); a send that directly follows the
    previous stage's send would otherwise be folded into it by the round counter. The
    party's counters therefore hold only the last stage after a reported run."""

    def __init__(self, party: str):
        self.party = party
        self.stages: list[tuple[list[str], int, int]] = []
        #: wall time of each stage at this party (s), parallel to `stages`
        self.seconds: list[float] = []
        #: wall time of the whole run at this party (s)
        self.total_seconds = 0.0

    def hook(self, ctx: Any, names: dict[int, str]) -> Callable[[list[Any], Callable[[], None]], None]:
        def on_stage(ops: list[Any], thunk: Callable[[], None]) -> None:
            ctx.reset_stats()
            t0 = time.perf_counter()
            thunk()
            self.seconds.append(time.perf_counter() - t0)
            b = ctx.stats()
            self.stages.append(([op_label(o, names) for o in ops], b["payload_sent"], b["rounds"]))

        return on_stage

    @property
    def bytes(self) -> int:
        return sum(s[1] for s in self.stages)


def combine(reports: Sequence[RunReport]) -> list[tuple[list[str], int, int]]:
    """Every party's reports of one run as one per-stage list: (labels, bytes sent by all parties,
    rounds = the most any party counted in the stage). Every party runs the same stages."""
    reports = list(reports)
    if len({len(r.stages) for r in reports}) > 1:
        raise ParameterError("the reports come from different runs (their stages differ)", field="measured")
    out = []
    for parts in zip(*[r.stages for r in reports]):
        out.append((parts[0][0], sum(p[1] for p in parts), max(p[2] for p in parts)))
    return out


def measured_total(reports: Sequence[RunReport]) -> tuple[int, int]:
    """(bytes, rounds) of a run from every party's report (see `combine`)."""
    st = combine(reports)
    return sum(s[1] for s in st), sum(s[2] for s in st)


class Function:
    """A traced DSL function (see the module docstring); `graph` is the traced IR."""

    def __init__(self, fn: Callable[..., Any], specs: Sequence[InputSpec], name: str | None = None):
        self.fn = fn
        self.specs = list(specs)
        self.name = name or fn.__name__
        self.graph = self._trace()
        self._programs: dict[tuple[Any, ...], Program] = {}
        self._lock = threading.Lock()  # parties of a threaded simulation compile concurrently

    def __getstate__(self) -> dict[str, Any]:  # a lock does not pickle (process simulations)
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _trace(self) -> Graph:
        params = list(inspect.signature(self.fn).parameters)
        t = Tracer(self.name)
        args = [t.input(p, s.shape, s.dtype, s.vis) for p, s in zip(params, self.specs)]
        with t:
            res = self.fn(*args)
            outs = list(res) if isinstance(res, (tuple, list)) else [res]
            vals = [t.lift((r if isinstance(r, Tensor) else t.const(r)).value) for r in outs]
        t.graph.outputs = vals
        self._single = not isinstance(res, (tuple, list))
        return t.graph

    def evaluate(self, *inputs: Any) -> Any:
        """The plaintext twin of the function on numpy arrays (for tests and baselines)."""
        return self._pack(evaluate(self.graph, inputs))

    def _pack(self, outs: list[Any]) -> Any:
        return outs[0] if self._single else tuple(outs)

    def compile(self, mpc: Any = None, protocol: str | None = None, profile: Any = "lan", optimize: bool = True,
                dump_ir: bool = False, pins: dict[str, str] | None = None,
                compute: Sequence[str] | None = None) -> Program:
        """The compiled program for `mpc` (an MpcDevice), or for a `protocol` name and its
        `compute` parties; with `dump_ir=True` every pass's output is printed. Compilations are
        cached (the same options give the same program, value numbers included)."""
        from .cost import profile as as_profile

        proto = protocol or (mpc.protocol_name if mpc is not None else "semi2k")
        comp = list(compute) if compute else (list(mpc.parties) if mpc is not None else None)
        n_compute = len(comp) if comp else None
        prof = as_profile(profile)
        key = (proto, tuple(comp or ()), prof, optimize, tuple(sorted((pins or {}).items())))
        with self._lock:
            return self._compiled(key, proto, comp, n_compute, prof, optimize, pins, dump_ir)

    def _compiled(self, key: tuple[Any, ...], proto: str, comp: list[str] | None, n_compute: int | None, prof: Any,
                  optimize: bool, pins: dict[str, str] | None, dump_ir: bool) -> Program:
        from .passes import pipeline

        if key not in self._programs:
            g = copy.deepcopy(self.graph)
            stages: list[tuple[str, str]] = []
            for name, p in pipeline(optimize):
                g = p(g, proto=proto, n_compute=n_compute, profile=prof, pins=pins or {}, compute=comp)
                stages.append((name, g.dump()))
            self._programs[key] = Program(g, stages, optimize, proto)
        prog = self._programs[key]
        if dump_ir:
            for name, text in prog.stages:
                print(f"--- after {name} ---\n{text}")
        return prog

    def run(self, ctx: Any, mpc: Any, *inputs: Any, optimize: bool = True, profile: Any = "lan",
            dump_ir: bool = False, report: bool = False, pins: dict[str, str] | None = None) -> Any:
        """Execute at this party (SPMD: every party of the program calls it with its inputs).

        With `report=True` returns (outputs, RunReport): this party's traffic per scheduled stage
        (from `ctx.stats()`), for `explain(measured=...)`."""
        if len(inputs) != len(self.specs):
            raise ParameterError(f"{self.name} takes {len(self.specs)} inputs, got {len(inputs)}", field="inputs")
        t0 = time.perf_counter()
        prog = self.compile(mpc, profile=profile, optimize=optimize, dump_ir=dump_ir, pins=pins)
        args = [_local(x) for x in inputs]
        if _crosses_parties(prog.graph):  # a program local to its owner has nobody waiting on it
            self._check_inputs(ctx, args)
        rep = RunReport(ctx.me)
        ex = Executor(mpc, batch=prog.batch, on_stage=rep.hook(ctx, prog.names) if report else None)
        out = self._pack(ex.run(prog.graph, args))
        rep.total_seconds = time.perf_counter() - t0
        return (out, rep) if report else out

    def _check_inputs(self, ctx: Any, args: list[Any]) -> None:
        """Each owner checks its private inputs' shapes against the declaration; every party
        raises the first owner's verdict, so nobody is left waiting on a failed owner (one
        small message per owner, before the program's first stage)."""
        from ..runtime.collectives import agree

        owners = sorted({str(s.vis.owner) for s in self.specs if s.vis.kind == "private"})
        if not owners:
            return
        problem = None
        for i, (spec, a) in enumerate(zip(self.specs, args)):
            if spec.vis.kind == "private" and spec.vis.owner == ctx.me and problem is None:
                got = np.shape(a) if a is not None else None
                if got != spec.shape:
                    problem = f"{self.name}: input {i} has shape {got}, declared {spec.shape}"
        agree(ctx, owners, problem, name="dsl-inputs")

    def explain(self, mpc: Any = None, protocol: str | None = None, profile: Any = "lan", measured: Any = None,
                **kw: Any) -> str:
        """Per operation: the chosen implementation, the runner-up, why, predicted bytes and rounds
        (and measured ones from a run's reports); see `jointml.dsl.explain`."""
        from .explain import explain

        return explain(self, mpc=mpc, protocol=protocol, profile=profile, measured=measured, **kw)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def _crosses_parties(graph: Graph) -> bool:
    """Whether running `graph` sends anything: a secret value, a reveal, or private values
    of more than one owner."""
    owners: set[str] = set()

    def walk(g: Graph) -> bool:
        for op in g.ops:
            if op.op in ("reveal", "share"):
                return True
            for v in op.outs:
                if v.vis is not None and v.vis.kind == "secret":
                    return True
                if v.vis is not None and v.vis.kind == "private":
                    owners.add(str(v.vis.owner))
            if op.body is not None and walk(op.body):
                return True
        return len(owners) > 1

    return walk(graph)


def _local(x: Any) -> Any:
    from ..runtime.device import PartyObject

    if isinstance(x, PartyObject):
        return x.value if x.is_local else None
    return x


def function(fn: Callable[..., Any] | None = None, *specs: InputSpec, name: str | None = None,
             **kwspecs: InputSpec) -> Any:
    """Decorator: `@dsl.function(x=dsl.private("alice", (n, d)), w=dsl.secret((d,)))` (or the
    specs positionally) traces the function once into a `Function`."""
    if fn is not None and not callable(fn):
        specs = (fn, *specs)
        fn = None

    def wrap(f: Callable[..., Any]) -> Function:
        params = list(inspect.signature(f).parameters)
        all_specs = list(specs)
        for p in params[len(all_specs):]:
            if p not in kwspecs:
                raise ParameterError(f"{f.__name__}: input '{p}' has no declaration (dsl.public/private/secret)",
                                     field=p)
            all_specs.append(kwspecs[p])
        return Function(f, all_specs, name)

    return wrap(fn) if fn is not None else wrap
