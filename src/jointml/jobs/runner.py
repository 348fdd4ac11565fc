"""The runner: checks a pipeline's wiring, runs its steps at this party, stores the artifacts;
and `predict_job`, which scores new rows with a run's saved model parts.

SPMD: every party runs `run_pipeline` with the same spec; each step is a component whose
inputs are the latest artifacts of the declared types (see `jointml.jobs.artifacts`).

**Agreement first.** Each organisation runs its own copy of the pipeline file, so before
reading any input or sending any data every party announces the per-field hashes of its
canonical job (`PipelineSpec.fields_fingerprint()`: parties, MPC device parameters, every
step's validated parameters with defaults) to every party (`agree_on_job`, one
`all_gather`); on any mismatch every party raises the same `ConfigError` naming the first
differing field (e.g. ``steps[3].ss_lr.train.epochs``) and nothing else is sent.
`predict_job` agrees on its parameters the same way.

**Checks first.** Before the agreement each party reads and checks its own input for the job
(`jobs.check`); the verdicts ride on the agreement message, so a bad file, a missing id
column or a three-class label stops every party before any PSI, MPC or HE message, with one
paragraph naming the party and the field. After PSI, fewer rows than `min_rows` stop the job.

**Outputs.** With an `output`, each party writes its summary, its report
(`report.<party>.html`) and `runs/<run id>/` (a copy of both and a manifest); a new run first
moves this party's earlier model parts to `model.previous/`. A peer silent for longer than
the link timeout stops the job with an error naming it and the step.

What each party learns: from the agreement, the hashes of the other parties' job fields
(the job is public among its parties; input paths and output folders are not hashed), the
other parties' check verdicts (a field, a count, a rule: never a value), which party holds
the job's named columns (key, label), and a run id; otherwise what the components reveal
(see each component's module). The runner declares the column names the spec names public
(`data.frames.public_columns`): a party outside the frames (the semi2k dealer) gets no other
column name, only row and column counts; `predict_job` agrees on the saved record without
sending names (a digest of the columns from the parties with inputs). The runner itself sends nothing else. Semi-honest parties
run the job they agreed on; the check does not stop a deviating party from announcing the
right hashes and running something else (it catches configuration mistakes, which would
otherwise compute garbage or fail deep inside with "protocol out of sync").

>>> import pandas as pd, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for p, col in (("bank", "a"), ("partner", "b")):
...     _ = pd.DataFrame({"id": [1, 2, 3, 4], col: [1.0, 2.0, 3.0, 4.0]}).to_csv(d / f"{p}.csv", index=False)
>>> spec = PipelineSpec.from_dict({"parties": ["bank", "partner"], "inputs": {"bank": "bank.csv", "partner": "partner.csv"},
...                                "steps": [{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5}}]}, base=d)
>>> out = simulate_pipeline(spec, mode="thread", verbose=False)
>>> out["partner"]["rows_aligned"], out["partner"]["train_rows"]
(4, 2)
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..core.errors import ConfigError, DataError, LinkTimeout, ProtocolError
from ..core.fixedpoint import DEFAULT_FRAC_BITS
from ..data.frames import public_columns
from ..data.io import labels, read_input
from ..runtime.persist import atomic_write
from .artifacts import (
    AlignedFrame,
    Artifact,
    ArtifactStore,
    Inputs,
    Label,
    LocalDirStore,
    MemoryStore,
    ModelParts,
    Scores,
    Split,
    WoeModel,
)
from .check import Problem, announce, cross_problem, job_needs, read_checked
from .registry import COMPONENTS
from .spec import PipelineSpec, device_params, fields_digest, fingerprint_fields, first_difference

__all__ = ["JobState", "RunHooks", "agree_on_job", "check_wiring", "gather_job", "list_runs", "predict_job", "run_pipeline",
           "simulate_pipeline", "state_labels"]

A = TypeVar("A", bound=Artifact)


class JobState:
    """One party's state during a run: the spec, the artifact store, the MPC device, the summary.

    The properties (`vdf`, `train`, `woe`, `label_party`, ...) read the latest artifacts.

    >>> s = JobState(PipelineSpec("p", ["bank"], {}, []))
    >>> s.raw, s.train, s.label_party
    ({}, None, None)
    """

    def __init__(self, spec: PipelineSpec, store: ArtifactStore | None = None):
        self.spec = spec
        self.store = store if store is not None else MemoryStore()
        self.summary: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.mpc: Any = None
        self.store.put("inputs", Inputs({}))

    def device(self, ctx: Any) -> Any:
        """The MPC device of the spec's `mpc:` section (made once, on first use)."""
        if self.mpc is None:
            from ..mpc import MpcDevice

            m = device_params(self.spec.mpc, list(ctx.parties))  # what the parties agreed on
            self.mpc = MpcDevice(ctx, m["parties"], protocol=m["protocol"], dealer=m["dealer"], frac_bits=m["frac_bits"],
                                 trunc=m.get("trunc"))
        return self.mpc

    def latest(self, kind: type[A]) -> A | None:
        return self.store.latest(kind)

    # conveniences over the latest artifacts
    @property
    def raw(self) -> dict[str, Any]:
        """`{party: PartyObject}` of the raw inputs (the runner fills it before the steps)."""
        return self.store.latest(Inputs).frames  # type: ignore[union-attr]

    @property
    def vdf(self) -> Any:
        a = self.latest(AlignedFrame)
        return a.frame if a else None

    @property
    def train(self) -> Any:
        s = self.latest(Split)
        return s.train if s else None

    @property
    def test(self) -> Any:
        s = self.latest(Split)
        return s.test if s else None

    @property
    def woe(self) -> Any:
        w = self.latest(WoeModel)
        return w.woe if w else None

    @property
    def label(self) -> Label | None:
        return self.latest(Label)

    @property
    def label_party(self) -> str | None:
        lab = self.latest(Label)
        return lab.party if lab else None

    @property
    def model(self) -> Any:
        m = self.latest(ModelParts)
        return m.estimator if m else None

    @property
    def scores(self) -> Any:
        s = self.latest(Scores)
        return s.scores if s else None


def state_labels(ctx: Any, state: JobState, frame: Any) -> Any:
    """The 0/1 labels of `frame` at the label holder (the latest `Label` of the run)."""
    lab = state.label
    if lab is None:
        raise ConfigError("no label column named yet (woe_binning, encode or train name it)")
    return labels(ctx, frame, lab.name, lab.pos_label)


def check_wiring(spec: PipelineSpec) -> None:
    """Raise `ConfigError` unless each step's required inputs are made by an earlier step.

    >>> check_wiring(PipelineSpec("p", ["bank"], {}, [("split", {})]))
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: step 'split' needs psi (or aligned inputs) before it
    """
    have: set = {Inputs}
    for i, (name, params) in enumerate(spec.steps):
        comp = COMPONENTS.get(name)
        if comp is None:
            raise ConfigError(f"step {i + 1}: unknown component '{name}' (known: {sorted(COMPONENTS)})")
        full = comp.validate(params, f"step {i + 1} ({name})")
        comp.check_wiring(name, full, have)
        have |= comp.produces(full)
        if (comp.alias_of or name) == "psi" and full.get("mode") == "label_only":
            from .components.psi import later_steps_problem  # label-only rows: refused before any input is read

            problem = later_steps_problem(spec.steps[i + 1:])
            if problem:
                raise ConfigError(f"psi mode 'label_only': {problem}", field="psi.mode")


def _spec_columns(spec: PipelineSpec, named: list[str]) -> list[str]:
    """The column names the spec names (public to every party of the job, the dealer included):
    the key and label (`named`) and the explicit lists of the steps (`include`, `exclude`).

    >>> _spec_columns(PipelineSpec("p", ["a"], {}, [("select_features", {"include": ["x"]})]), ["id", "y"])
    ['id', 'y', 'x']
    """
    out = list(named)
    for _, params in spec.steps:
        for key in ("include", "exclude"):
            vals = (params or {}).get(key)
            if isinstance(vals, list):
                out += [str(v) for v in vals]
    return list(dict.fromkeys(out))


def agree_on_job(ctx: Any, fields: list[tuple[str, str]], what: str = "job", problem: Problem | None = None) -> str:
    """Every party announces its `(field path, hash)` list (`fingerprint_fields`); all raise the
    same `ConfigError` naming the first field where a party differs from the first party,
    or all return the job's fingerprint. One `all_gather`, before any data message.

    `problem`: this party's own failed pre-flight check (`jobs.check`); its public text goes
    to every party and all raise it (the party that found it with its local details).

    >>> from jointml.jobs.spec import fingerprint_fields
    >>> def prog(ctx):
    ...     try:
    ...         return agree_on_job(ctx, fingerprint_fields({"epochs": 3 if ctx.me == "bank" else 5}))[:8]
    ...     except ConfigError as e:
    ...         return str(e)
    >>> out = simulate(prog, ["bank", "partner"], mode="thread")
    >>> out["bank"] == out["partner"], out["bank"][:74]
    (True, "the parties do not agree on the job: field 'epochs' differs between 'bank'")
    """
    return gather_job(ctx, fields, what, problem)[0]


def gather_job(ctx: Any, fields: list[tuple[str, str]], what: str = "job", problem: Problem | None = None,
               columns: list[str] | None = None) -> tuple[str, dict[str, list[str]], str]:
    """`agree_on_job`, also returning what each party announced of `columns` (the job's named
    columns it has, `jobs.check.announce`) and a run id (the first party's proposal, a time
    stamp and random letters): `(fingerprint, {party: columns}, run id)`."""
    from ..runtime.collectives import all_gather
    from ..runtime.persist import new_model_id

    mine = [[p, h] for p, h in fields]
    meta: dict[str, Any] = {"fields": mine, "columns": list(columns or []),
                            "run_id": f"{time.strftime('%Y%m%d-%H%M%S')}-{new_model_id()[:6]}"}
    if problem is not None:
        meta["problem"] = {"public": problem.public, "kind": problem.kind, "field": problem.field}
    got = all_gather(ctx, meta=meta, name="job-agreement")
    announced = {p: _announced_fields(p, r.meta) for p, r in got.items()}
    ref_party, ref = next(iter(announced.items()))
    for p, other in announced.items():
        path = first_difference(ref, other)
        if path is not None:
            raise ConfigError(f"the parties do not agree on the {what}: field '{path}' differs between '{ref_party}' and "
                              f"'{p}' (run the same pipeline file with the same parameters at every party); nothing was sent",
                              party=p, field=path, public=True)
    for p, r in got.items():
        if r.meta.get("problem") is not None:
            pr = problem if p == ctx.me and problem is not None else _announced_problem(p, r.meta["problem"])
            raise pr.error(p, here=p == ctx.me)
    cols = {p: _announced_columns(p, r.meta) for p, r in got.items()}
    run_id = got[ref_party].meta.get("run_id")
    if not isinstance(run_id, str) or not re.fullmatch(r"[0-9A-Za-z-]{1,40}", run_id):
        raise ProtocolError("job agreement: malformed run id", party=ref_party, field="run_id")
    return fields_digest(ref), cols, run_id


def _announced_problem(party: str, raw: Any) -> Problem:
    if not isinstance(raw, dict) or not isinstance(raw.get("public"), str):
        raise ProtocolError("job agreement: malformed problem report", party=party, field="problem")
    fld = raw.get("field")
    return Problem(raw["public"], kind=str(raw.get("kind")), field=fld if isinstance(fld, str) else None)


def _announced_columns(party: str, meta: dict) -> list[str]:
    raw = meta.get("columns", [])
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ProtocolError("job agreement: malformed column list", party=party, field="columns")
    return list(raw)


def _announced_fields(party: str, meta: dict) -> list[tuple[str, str]]:
    """A peer's announced `(path, hash)` list, checked for shape (it arrives from another party)."""
    raw = meta.get("fields")
    if not isinstance(raw, list) or not all(
        isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in raw
    ):
        raise ProtocolError("job agreement: malformed field list", party=party, field="fields")
    return [(x[0], x[1]) for x in raw]


class RunHooks:
    """Callbacks of `run_pipeline` around its steps (these do nothing; a deployment's node
    subclasses them: `jointml.orchestration.node.NodeHooks`).

    >>> RunHooks().start(None, None)
    0
    """

    def start(self, ctx: Any, state: JobState) -> int:
        """Called once the inputs are read; returns the first step to run (earlier steps' artifacts restored)."""
        return 0

    def before_step(self, ctx: Any, state: JobState, i: int, name: str) -> None:
        """Called before step `i` runs."""

    def after_step(self, ctx: Any, state: JobState, i: int, name: str) -> None:
        """Called after step `i` ran and was checked."""

    def finish(self, ctx: Any, state: JobState) -> None:
        """Called once every step ran and the outputs were written."""


def run_pipeline(ctx: Any, spec: PipelineSpec, verbose: bool | str = False, check_only: bool = False,
                 hooks: RunHooks | None = None) -> dict:
    """Run every step at this party (all parties call it); returns this party's summary.

    Before any cryptography: each party reads and checks its own input (`jobs.check`), then
    the parties agree on the job and on the checks' verdicts (`gather_job`, one message);
    after PSI, fewer matched rows than `spec.min_rows` stop the job at every party.

    `verbose`: "all" prints timestamped start/done lines of each step (and SS-LR's epochs) at
    this party (a node of a deployment); True only at the label holder (simulations, where all
    parties share a terminal). `check_only`: stop after the checks (`jointml run --check`).

    `hooks` (`RunHooks`; a node of a deployment passes `jointml.orchestration.node.NodeHooks`):
    `start` restores a checkpoint and returns the first step to run; `before_step` and
    `after_step` wrap each step (gang scheduling, checkpoints, reports); `finish` runs once
    the outputs are written.
    """
    if sorted(ctx.parties) != sorted(spec.parties):
        raise ConfigError(f"the pipeline's parties {spec.parties} are not the parties running it {list(ctx.parties)} "
                          "(the cluster file must name every party of the job, the dealer included)", field="parties",
                          public=True)
    check_wiring(spec)  # before anything runs
    needs = job_needs(spec)
    df, problem = None, None
    if ctx.me in spec.inputs:
        df, problem = read_checked(spec.inputs[ctx.me], ctx.me, needs)
    t_wait = time.perf_counter()
    if verbose == "all":  # a node of a deployment: say whom it waits for
        print(f"  {time.strftime('%H:%M:%S')} [{ctx.me}] job agreement: waiting for "
              f"{', '.join(p for p in ctx.parties if p != ctx.me)}", flush=True)
    with _named_step("job agreement"):
        fingerprint, has, run_id = gather_job(ctx, spec.fields_fingerprint(), "pipeline", problem, announce(needs, df))
    if verbose == "all":
        print(f"  {time.strftime('%H:%M:%S')} [{ctx.me}] job agreement: every party agreed after "
              f"{time.perf_counter() - t_wait:.1f} s (job {fingerprint[:12]}, run {run_id})", flush=True)
    cross = cross_problem(needs, has)
    if cross is not None:
        raise cross[1].error(cross[0], here=False)
    if check_only:
        return {"party": ctx.me, "job_fingerprint": fingerprint, "checked": True,
                "label_party": next((p for p, cols in has.items() if needs.label in cols), None)}
    ctx.options.setdefault("jobs.epoch_lines", verbose == "all")  # every epoch's line (else about five)
    if verbose is True:
        holders = [p for p, cols in has.items() if needs.label in cols] or list(spec.parties)
        verbose = ctx.me == holders[0]
    verbose = bool(verbose)
    if spec.output:
        _retire_outputs(ctx.me, spec)
    ctx.options["jobs.progress"] = verbose  # read by the model entries (per-epoch progress of SS-LR)
    # The only column names a party outside the frames (the dealer) resolves: those the spec names.
    public_columns(ctx, _spec_columns(spec, needs.named_columns()))
    store: ArtifactStore = LocalDirStore(Path(spec.output) / "artifacts", ctx.me) if spec.output else MemoryStore()
    state = JobState(spec, store)
    t_all = time.perf_counter()
    for p in spec.inputs:
        state.raw[p] = ctx.party(p).run(lambda: df)  # runs at the owner only: its own table
    hooks = hooks or RunHooks()
    first = hooks.start(ctx, state)  # steps before it were restored by the hooks (a resumed job)
    for i, (name, params) in list(enumerate(spec.steps))[first:]:
        hooks.before_step(ctx, state, i, name)
        t = time.perf_counter()
        _progress(ctx, state, verbose, f"{name:<14} start")
        with _named_step(f"step {i + 1} ({name})"):
            COMPONENTS[name].fn(ctx, state, **params)
        state.timings[name] = round(time.perf_counter() - t, 3)
        _after_step(ctx, state, name, verbose)
        _progress(ctx, state, verbose, f"{name:<14} done in {state.timings[name]:.2f} s")
        hooks.after_step(ctx, state, i, name)
    state.summary.update(party=ctx.me, job_fingerprint=fingerprint, run_id=run_id, timings=state.timings,
                         seconds=round(time.perf_counter() - t_all, 3), stats=ctx.stats())
    if state.label_party is not None:
        state.summary.setdefault("label_party", state.label_party)
    stability = _own_stability(ctx.me, state)
    if stability:
        state.summary["stability"] = stability
    if spec.output:
        _write_outputs(ctx.me, spec, state.summary)
        if needs.keys and state.latest(ModelParts) is not None:  # predict's default --id-column
            from .saved import remember

            remember(Path(spec.output) / "model", ctx.me, id_column=needs.keys[0])
        _write_run_folder(ctx.me, spec, state.summary, run_id)
    hooks.finish(ctx, state)
    return state.summary


def _write_run_folder(me: str, spec: PipelineSpec, summary: dict, run_id: str) -> Path:
    """`<output>/runs/<run id>/`: this party's copy of its report and summary, and a manifest
    (jointml version, job fingerprint and parameters, the SHA-256 of its own input file, its
    metrics, which files are its own). Every party writes only its own files; nothing is sent."""
    import hashlib

    from .. import __version__

    out = Path(spec.output or ".")
    d = out / "runs" / run_id
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in (f"report.{me}.html", f"summary.{me}.json"):
        if (out / name).exists():
            atomic_write(d / name, (out / name).read_text())
            files[name] = hashlib.sha256((d / name).read_bytes()).hexdigest()
    inp = spec.inputs.get(me)
    manifest = {
        "format": "jointml.run/1", "run_id": run_id, "party": me, "jointml_version": __version__,
        "pipeline": spec.name, "job_fingerprint": summary.get("job_fingerprint"), "created": time.time(),
        "parameters": {k: v for k, v in spec.canonical_fields().items() if not k.startswith("inputs")},
        "input": {"path": inp, "sha256": hashlib.sha256(Path(inp).read_bytes()).hexdigest()} if inp else None,
        "metrics": {k: summary[k] for k in ("rows_aligned", "train_rows", "test_rows", "auc", "ks", "local_auc",
                                            "local_ks", "ks_uplift_pct") if k in summary},
        "model": summary.get("model"), "model_dir": summary.get("model_dir"), "files": files,
    }
    atomic_write(d / f"manifest.{me}.json", json.dumps(manifest, indent=1, default=_json_default))
    return d


def list_runs(output: str | Path) -> list[dict]:
    """The runs recorded in `output/runs/` (newest first): per run, the manifests found here (this
    organisation's parties), merged: run id, time, model, pipeline, metrics where a party has them.

    >>> list_runs("/nonexistent")
    []
    """
    rows = []
    for d in (Path(output) / "runs").glob("*"):
        mans = [json.loads(m.read_text()) for m in sorted(d.glob("manifest.*.json"))]
        if not mans:
            continue
        metrics: dict = {}
        for m in mans:
            metrics.update(m.get("metrics") or {})
        rows.append({"run_id": d.name, "created": max(m.get("created", 0) for m in mans), "pipeline": mans[0].get("pipeline"),
                     "model": next((m.get("model") for m in mans if m.get("model")), None),
                     "parties": [m.get("party") for m in mans], **metrics})
    return sorted(rows, key=lambda r: -r["created"])  # newest first (run ids of the same second tie)


def _own_stability(me: str, state: JobState) -> dict[str, float]:
    """Population stability index (train vs test rows) of this party's own numeric columns: local,
    on its own data only (nothing is sent)."""
    from ..data.metrics import psi

    if state.train is None or me not in getattr(state.train, "parts", {}):
        return {}
    tr, te = state.train.parts[me].value, state.test.parts[me].value
    label = state.label.name if state.label is not None else None
    out = {}
    for c in tr.columns:
        if c == label or tr[c].dtype.kind not in "biuf":
            continue
        a, b = tr[c].dropna().to_numpy(float), te[c].dropna().to_numpy(float)
        if len(a) >= 2 and len(b) >= 1:
            out[c] = round(psi(a, b), 4)
    return out


def _write_outputs(me: str, spec: PipelineSpec, summary: dict) -> None:
    """This party's summary (no scores) and its report (`report.<party>.html`: only what it may see)."""
    from .components.report import run_report

    out = Path(spec.output or ".")
    out.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in summary.items() if k not in ("test_scores", "test_labels", "local_test_scores")}
    protocol = device_params(spec.mpc, spec.parties)["protocol"]
    atomic_write(out / f"report.{me}.html", run_report(me, summary, spec.steps, protocol, title=f"jointml: {spec.name}"))
    atomic_write(out / f"summary.{me}.json", json.dumps(public, indent=1, default=_json_default))


@contextlib.contextmanager
def _named_step(step: str) -> Iterator[None]:
    """A peer that sends nothing within the link timeout: say which step waited for whom."""
    try:
        yield
    except LinkTimeout as e:
        raise LinkTimeout(f"{step}: {e}; party '{e.party}' did not answer in time (is its node running? a slow "
                          "step needs a larger recv_timeout in the cluster file, or --timeout)", party=e.party) from None


def _retire_outputs(me: str, spec: PipelineSpec) -> None:
    """Before a run writes, this party moves its files of an earlier run aside: its summary
    (a failed run leaves none that looks complete) and, when the job trains, its model parts
    (to `<output>/model.previous/`), so no stale part of another model is left to score with."""
    out = Path(spec.output or ".")
    for name in (f"summary.{me}.json", f"report.{me}.html"):
        (out / name).unlink(missing_ok=True)
    trains = any((COMPONENTS[n].alias_of or n) == "train" for n, _ in spec.steps)
    model = out / "model"
    if not trains or not model.is_dir():
        return
    mine = sorted(model.glob(f"*.{me}.json"))
    if not mine:
        return
    prev = out / "model.previous"
    prev.mkdir(parents=True, exist_ok=True)
    for old in prev.glob(f"*.{me}.json"):
        old.unlink()
    for part in mine:
        part.replace(prev / part.name)


def _progress(ctx: Any, state: JobState, verbose: bool, text: str) -> None:
    """A timestamped line: on stdout when `verbose`, and in this party's log file (context option
    `jobs.log_file`, `jointml run --log-file`) whatever `verbose` says."""
    line = f"  {time.strftime('%H:%M:%S')} [{ctx.me}] {text}"
    if verbose:
        print(line, flush=True)
    log = ctx.options.get("jobs.log_file")
    if log:
        with open(str(log).replace("{party}", ctx.me), "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _epoch_lines(ctx: Any, state: JobState, verbose: bool, history: list[dict]) -> None:
    """Per-epoch progress of SS-LR / SS-GLM: every epoch with the context option `jobs.epoch_lines`
    (`--verbose`), else a line every `ceil(epochs / 5)` epochs and the last one."""
    every = 1 if ctx.options.get("jobs.epoch_lines") else max(1, -(-len(history) // 5))
    for i, rec in enumerate(history):
        if i == len(history) - 1 or (i + 1) % every == 0:
            loss = f", validation loss {rec['val_loss']:.5f}" if rec.get("val_loss") is not None else ""
            _progress(ctx, state, verbose, f"  epoch {rec['epoch']} at {rec['seconds']:.2f} s{loss}")
    if every > 1:
        _progress(ctx, state, verbose, f"  (a line every {every} epochs; --verbose for each)")


def _after_step(ctx: Any, state: JobState, name: str, verbose: bool) -> None:
    """Checks on what a step made, the same at every party (row counts are public to the job)."""
    comp = COMPONENTS[name]
    if (comp.alias_of or comp.name) == "psi":
        n = len(state.vdf)
        _progress(ctx, state, verbose, f"psi matched {n} rows")
        if n < state.spec.min_rows:
            raise DataError(f"PSI matched {n} rows between {sorted(state.vdf.parties)} (the job needs at least "
                            f"{state.spec.min_rows}, min_rows): check that every party's id column holds the same "
                            "identifiers in the same format (leading zeros, case, spaces)", field="psi", public=True)
    if (comp.alias_of or comp.name) == "train":
        parts = state.latest(ModelParts)
        assert parts is not None  # train made it
        state.summary["model"] = parts.model
        if parts.columns:  # the columns the model was trained on (after any feature selection)
            state.summary["feature_names"] = {p: list(c) for p, c in parts.columns.items()}
    if (comp.alias_of or comp.name) == "train" and verbose and ctx.me == state.label_party:
        _epoch_lines(ctx, state, verbose, list(getattr(state.model, "history_", None) or []))
    if (comp.alias_of or comp.name) == "split":
        tr, te = len(state.train), len(state.test)
        if tr == 0 or te == 0:
            raise DataError(f"split: {tr + te} aligned rows give {tr} training and {te} test rows; both must be > 0 "
                            "(change test_fraction or align more rows)", field="test_fraction", public=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def simulate_pipeline(spec: PipelineSpec, mode: str = "process", verbose: bool | str = True,
                      party_specs: dict[str, PipelineSpec] | None = None, recv_timeout: float | None = None,
                      check_only: bool = False, log_file: str | None = None) -> dict:
    """Run a pipeline with every party as a local process (or thread); `{party: summary}`.

    `party_specs` gives some parties their own copy of the pipeline (as separate organisations
    have), e.g. to see the parties refuse a job they do not agree on; the others run `spec`.
    `recv_timeout`: seconds a party waits for a peer's message before it stops with an error
    naming the peer and the step (default: no limit). `log_file`: every party appends its
    progress lines there (`{party}` in the path is replaced by the party's name).
    """
    from ..runtime import simulate

    return simulate(_run_party_pipeline, spec.parties, mode=mode, recv_timeout=recv_timeout,
                    options={"jobs.log_file": log_file} if log_file else None,
                    kwargs={"spec": spec, "verbose": verbose, "party_specs": dict(party_specs or {}),
                            "check_only": check_only})


def _run_party_pipeline(ctx: Any, spec: PipelineSpec, verbose: bool | str, party_specs: dict[str, PipelineSpec],
                        check_only: bool = False) -> dict:
    return run_pipeline(ctx, party_specs.get(ctx.me, spec), verbose=verbose, check_only=check_only)


# -- prediction from saved parts ------------------------------------------------------------
def predict_job(ctx: Any, model_dir: str, inputs: dict[str, str], to: str, id_column: str | None = "id",
                protocol: str | None = None, dealer: str | None = "dealer", psi_mode: str | None = None) -> dict:
    """Score new rows jointly with a run's saved model parts (any registered model).

    Every party calls it; each loads only its own part and reads only its own rows. The
    model is the one each party's manifest names as current, and the parties first agree
    that their pipeline records name the same training (so a stale part of another model
    in the folder is never used). With `id_column` the rows are aligned by PSI on it (only
    shared ids are scored, in the receiver's order); with `id_column=None` they must already
    be aligned. `psi_mode`: "label_only" (only `to` learns which ids are shared; the other
    party's features enter MPC aligned under secret sharing, `jointml.psi.label_only`) or
    "both" (every party learns the shared ids and `to`'s order); default: "label_only" for
    models that keep the other party's features secret-shared (ss_lr, ss_glm), "both" for
    tree models that split them in plaintext (an explicit "label_only" is refused for those
    before any PSI message). Scores go to `to` only. `protocol`/`dealer` apply when the record names no
    MPC device (default: the one the model was trained with). Before anything else the parties
    agree (`agree_on_job`) on the parties, which of them have inputs, `to`, `id_column`,
    `protocol` and `dealer`.
    """
    from ..data.frames import VDataFrame
    from .components.features import model_features
    from .registry import MODELS
    from .saved import load_encoding

    d = Path(model_dir)
    # the parameters every party must share (model_dir and input paths are each party's own)
    agree_on_job(ctx, fingerprint_fields({"parties": list(ctx.parties), "inputs": sorted(inputs), "to": to,
                                          "id_column": id_column, "protocol": protocol, "dealer": dealer,
                                          "psi_mode": psi_mode}), "prediction")
    rec = _agree_on_record(ctx, d, inputs)
    public_columns(ctx, [id_column] if id_column else [])  # the only name the dealer may resolve here
    entry = MODELS[rec["model"]]
    mode = _predict_psi_mode(psi_mode, rec["model"], id_column, inputs, to)  # before any PSI message
    raw = {p: ctx.party(p).run(lambda path=path, p=p: read_input(path, p)) for p, path in inputs.items()}
    enc = load_encoding(d, ctx.me)  # this party's own codes; applied at the owner only
    raw = {p: ctx.party(p).run(lambda df: enc.apply(df) if enc is not None else df, o) for p, o in raw.items()}
    ids = None
    from .components.scale import apply_scale, load_scale

    stats = load_scale(d, ctx.me)  # this party's own standardisation (a `scale` step), at the owner only
    raw = {p: ctx.party(p).run(lambda df: apply_scale(df, stats) if stats else df, o) for p, o in raw.items()}
    own = raw[ctx.me].value if ctx.me in raw else None  # this party's own rows, to count the unmatched ones
    if id_column and own is not None and id_column not in own.columns:
        raise DataError(f"the id column '{id_column}' is not in its input (--id-column names it)", party=ctx.me,
                        field=id_column, public=True)
    mpc = _predict_device(ctx, rec, inputs, protocol, dealer) if entry.device == "mpc" else None
    psi_protocol = _predict_psi_protocol(ctx, raw) if id_column else "ecdh"
    if id_column and mode == "label_only":
        vdf, ids = _label_only_rows(ctx, raw, id_column, to, mpc, psi_protocol)
    elif id_column:
        from ..psi import psi_frame

        raw = psi_frame(ctx, raw, key_columns=[id_column], sort_by=to if to in raw else None, progress=False,
                        protocol=psi_protocol)
        if to in raw:
            ids = ctx.party(to).run(lambda df: df[id_column].tolist(), raw[to])
        raw = {p: ctx.party(p).run(lambda df: df.drop(columns=[id_column]), o) for p, o in raw.items()}
        vdf = VDataFrame(ctx, raw)
    else:
        vdf = VDataFrame(ctx, raw)
    cols = _model_columns(vdf, rec)
    outside = rec["parties"] is not None and ctx.me not in rec["parties"]  # e.g. a dealer of a SecureBoost model
    woe = None
    if rec["features"] == "woe":
        # Trees split WOE features at their owners: only the model's parties get the bin layout.
        # Secret-shared substitution (linear models) needs it at the frame's parties, for the
        # shapes; a party outside the frame (the dealer) works without it, as at training.
        layout_to = rec["parties"] if entry.woe_at_owner and rec["parties"] is not None else list(inputs)
        woe = _saved_woe(ctx, d, [p for p in ctx.parties if cols.get(p)], layout_to)
    vdf = vdf[[c for p in vdf.parties for c in cols.get(p, [])]]
    if outside and woe is None and rec["features"] == "woe":
        X: dict = {}  # no WOE part and no part of the model: nothing to compute here
    else:
        X = model_features(ctx, lambda: mpc, entry, rec["features"], woe, vdf, cols)
    # Load after the features: parties outside the model (a dealer for SecureBoost) take no
    # part in the load, and nothing collective follows that they would miss.
    est = None
    if rec["parties"] is None or ctx.me in rec["parties"]:
        est = entry.load(mpc if mpc is not None else ctx, rec["kind"], str(d), rec["parties"])
    scores = entry.scores(ctx, est, X, to, rec["label"]["party"])
    out: dict[str, Any] = {"party": ctx.me, "rows": len(vdf), "model": rec["model"], "model_id": rec.get("model_id")}
    _add_reasons(ctx, out, d, rec, woe, vdf, to, scores)
    if own is not None:
        # each party counts its own rows without a match; the ids stay with it (never sent)
        out["input_rows"] = len(own)
        out["unmatched_rows"] = len(own) - len(vdf)
    if ctx.me == to:
        out["scores"] = np.asarray(scores.value).tolist()
        out["ids"] = ids.value if ids is not None else None
        if ids is not None and own is not None:
            matched = set(ids.value)
            out["unmatched_ids"] = [i for i in own[id_column].tolist() if i not in matched]
    return out


def _add_reasons(ctx: Any, out: dict, d: Path, rec: dict, woe: Any, vdf: Any, to: str, scores: Any) -> None:
    """Reason codes per row from the scorecard parts saved with the model (a WOE model with a label
    holder; every party calls it): in `out["reasons"]` at the label holder."""
    if rec["features"] != "woe" or rec["label"]["party"] is None:
        return
    from .components.scorecard import batch_reasons

    reasons = batch_reasons(ctx, d, woe, vdf, rec["label"]["party"], to, scores.value if ctx.me == to else None,
                            rec.get("model_id"))
    if reasons:
        out["reasons"] = reasons


def _model_columns(vdf: Any, rec: dict) -> dict[str, list[str]]:
    """Each party's model columns: from this party's record, or at a party outside the frame (the
    dealer, which knows no name) as many of its frame's placeholder names: it needs shapes only."""
    if rec["columns"] is not None:
        return {p: list(c) for p, c in rec["columns"].items()}
    return {p: vdf.columns.get(p, [])[:n] for p, n in rec["widths"].items()}


def _predict_psi_mode(psi_mode: str | None, model: str, id_column: str | None, inputs: dict[str, str],
                      to: str) -> str:
    """The PSI mode of a prediction: the one asked for, checked, or the most private one the model supports."""
    from .components.psi import MODES, label_only_problem

    if psi_mode is not None and psi_mode not in MODES:
        raise ConfigError(f"psi_mode must be one of {MODES}, got {psi_mode!r}", field="psi_mode")
    problem = label_only_problem(model)
    if len(inputs) != 2 or to not in inputs:
        problem = problem or f"it aligns two parties' rows, one of them the receiver '{to}' (inputs: {sorted(inputs)})"
    if psi_mode == "label_only" and problem:
        raise ConfigError(f"psi_mode 'label_only': {problem}", field="psi_mode")
    if psi_mode is None:
        return "both" if problem or not id_column else "label_only"
    return psi_mode


def _predict_psi_protocol(ctx: Any, raw: dict) -> str:
    """KKRT for two large inputs, ECDH otherwise: the pipeline's psi step's `protocol: auto`."""
    from .artifacts import Inputs
    from .components.psi import choose_protocol

    return choose_protocol(ctx, Inputs(raw), list(raw), "auto")


def _label_only_rows(ctx: Any, raw: dict, id_column: str, to: str, mpc: Any,
                     protocol: str = "ecdh") -> tuple[Any, Any]:
    """Label-only PSI of the two inputs (only `to` learns the shared ids, in its own order): the
    blind frame of the shared rows and, at `to`, their ids."""
    from ..data.blind import blind_frame
    from ..psi.label_only import psi_label_only, selection_helper

    partner = next(p for p in raw if p != to)
    if mpc is not None:
        selection_helper(mpc, to, partner)  # a device without a third party fails here, before any PSI message
    al = psi_label_only(ctx, raw, [id_column], holder=to, partner=partner, progress=False, protocol=protocol)
    ids = None
    if ctx.me == to:
        pos = al.positions
        ids = ctx.party(to).run(lambda df: df[id_column].iloc[pos].tolist(), raw[to])
    return blind_frame(ctx, raw, al, drop=[id_column]), ids


def _agree_on_record(ctx: Any, d: Path, inputs: dict[str, str]) -> dict:
    """Every party checks its record against its manifest; all raise the same error or agree.

    What is compared goes to every party, the dealer included, so it holds no column name:
    the model fields, the label's owner, each party's number of model columns, and (from the
    parties with inputs, which know the names) a digest of the columns and the label. Returns
    this party's own record when it has inputs, else the agreed fields (`columns`: None)."""
    from ..core.errors import JointMLError, ModelError
    from ..runtime.collectives import all_gather
    from ..runtime.persist import read_manifest
    from .saved import read_record

    problem, public, rec = None, None, None
    try:
        rec = read_record(d, ctx.me)
        problem = _record_problem(ctx.me, d, rec, read_manifest, ctx.me in inputs)
        if rec is not None and problem is None:
            public = _public_record(rec, with_names=ctx.me in inputs)
    except JointMLError as e:
        problem = str(e)
    got = all_gather(ctx, meta={"problem": problem, "record": public}, name="predict-record")
    for p, r in got.items():
        if r.meta.get("problem"):
            raise ModelError(str(r.meta["problem"]), party=p)
    recs = {p: r.meta["record"] for p, r in got.items() if r.meta.get("record") is not None}
    if not recs:
        raise ModelError(f"no pipeline record (pipeline.<party>.json) in {d}: save the model with a pipeline `output`")
    ref_party, ref = next(iter(recs.items()))
    named = next(((p, r) for p, r in recs.items() if r.get("names") is not None), None)
    for p, r in recs.items():
        diff = sorted(k for k in ref if k != "names" and ref[k] != r.get(k))
        if named is not None and r.get("names") is not None and r["names"] != named[1]["names"]:
            diff.append("columns")
        if diff:
            base = named[0] if diff == ["columns"] and named is not None else ref_party
            raise ModelError(f"model parts in {d} do not belong together: party '{p}' differs from '{base}' in {diff}")
    for p in got:
        if p not in recs and (ref["parties"] is None or p in ref["parties"]):
            raise ModelError(f"no part of the model in {d}", party=p)
    if rec is not None and ctx.me in inputs:
        return rec
    return {**{k: v for k, v in ref.items() if k not in ("names", "label_party")},
            "label": {"party": ref["label_party"]}, "columns": None}


def _public_record(rec: dict, with_names: bool) -> dict:
    """The fields of a record that every party compares (no column name: see `_agree_on_record`)."""
    import hashlib

    pub = {k: rec.get(k) for k in ("model", "kind", "features", "parties", "mpc", "model_id")}
    pub["label_party"] = (rec.get("label") or {}).get("party")
    pub["widths"] = {p: len(c) for p, c in sorted((rec.get("columns") or {}).items())}
    names = json.dumps({"columns": rec.get("columns"), "label": rec.get("label")}, sort_keys=True, default=str)
    pub["names"] = hashlib.sha256(names.encode()).hexdigest() if with_names else None
    return pub


def _record_problem(me: str, d: Path, rec: dict | None, read_manifest: Any, has_input: bool) -> str | None:
    if rec is None:
        return f"no pipeline record pipeline.{me}.json in {d}" if has_input else None
    if rec["parties"] is not None and me not in rec["parties"]:
        return None  # this party holds no part of the model
    manifest = read_manifest(d, me)
    if manifest is None:
        return f"no model manifest manifest.{me}.json in {d}"
    if manifest.get("kind") != rec.get("kind"):
        return (f"the current model part in {d} is a {manifest.get('kind')}, but the pipeline record names a "
                f"{rec.get('kind')} (files of different trainings; train again into an empty folder)")
    if rec.get("features") == "woe" and not (d / f"woe.{me}.json").exists():
        return f"no WOE part woe.{me}.json in {d}"
    return None


def _saved_woe(ctx: Any, d: Path, owners: list[str], to: list[str] | None = None) -> Any:
    """This party's WOE part, completed with the bin counts of the other parties' columns
    (announced by their `owners` to the parties `to`, default every party)."""
    from ..data.woe_io import load_woe
    from ..runtime.collectives import all_gather

    woe = load_woe(d, ctx.me)
    mine = {c: int(woe.col[c].n_bins) for c in woe.columns.get(ctx.me, [])} if woe is not None else {}
    got = all_gather(ctx, owners, meta={"n_bins": mine}, to=to, name="woe-layout")
    for p, r in got.items():
        if r is None:  # not a recipient
            continue
        for c, n in r.meta["n_bins"].items():
            if woe is not None and p != ctx.me and woe.col[c].n_bins == 0:
                woe.col[c].n_bins = int(n)
    return woe


def _predict_device(ctx: Any, rec: dict, inputs: dict[str, str], protocol: str | None, dealer: str | None) -> Any:
    from ..mpc import MpcDevice

    m = dict(rec.get("mpc") or {})
    proto = protocol or m.get("protocol", "semi2k")
    deal = m.get("dealer", dealer) if proto == "semi2k" else None
    return MpcDevice(ctx, m.get("parties") or list(inputs), protocol=proto, dealer=deal,
                     frac_bits=int(m.get("frac_bits", DEFAULT_FRAC_BITS)), trunc=m.get("trunc") if proto == "semi2k" else None)
