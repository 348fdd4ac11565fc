"""The task flow manager: a pipeline turned into per-party tasks per step, moved through a
validated state machine, started step by step only when every party's node accepted the
step (gang scheduling), retried with a policy, resumed from the last checkpointed step,
and submitted again on cron schedules.

States (jobs and tasks): `submitted -> awaiting_approval -> queued -> running ->
succeeded | failed | cancelled`. `TRANSITIONS` (jobs) and `TASK_TRANSITIONS` (tasks) list
every allowed move; anything else raises `InvalidTransition` and changes nothing. A retry
moves a failed or cancelled job back to `queued`; its tasks from the resume point on go back
to `queued` with the next attempt number, and reports from an older attempt are ignored.

Gang scheduling: a job runs one step at a time. Each party's node *accepts* the current
step's task when it is ready; the step's tasks go to `running` together only when all
parties have accepted (no party starts a step a peer cannot join: that is what makes
data-plane jobs hang in other systems). A failure reported by any party fails the job at
once, with that party's reason.

Resume: a node reports, with each succeeded step, whether it kept a checkpoint of the run's
state after that step (`checkpoint=True`). `resume_point` is the first step after the longest
prefix of steps that succeeded *with a checkpoint at every party*; a retry starts there.

Adversary model: the flow manager holds metadata only (see `jointml.orchestration`). A
party's node decides its own approval; the coordinator cannot approve for it, and a node
that was not asked never runs anything (`jointml.orchestration.node`).

>>> store = JobStore("sqlite://")
>>> fm = FlowManager(store)
>>> job = fm.submit({"parties": ["bank", "partner"], "inputs": {"bank": "b", "partner": "p"}, "steps": ["psi"]}, user="alice")
>>> fm.status(job)["state"]
'awaiting_approval'
>>> for p in ("bank", "partner"):
...     state = fm.record_approval(job, p, approved=True, mode="auto")
>>> fm.accept_step(job, "bank", 0, attempt=1), fm.accept_step(job, "partner", 0, attempt=1)   # gang: both
(False, True)
>>> for p in ("bank", "partner"):
...     state = fm.report_step(job, p, 0, attempt=1, ok=True, metrics={"rows": 4})
>>> fm.status(job)["state"]
'succeeded'
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.errors import ConfigError, JointMLError
from .cron import CronSchedule
from .store import (
    Approval,
    Job,
    JobStore,
    LogLine,
    Metric,
    NodeRecord,
    Schedule,
    SlotLock,
    StagedArtifact,
    Task,
    Transition,
    utcnow,
)

__all__ = [
    "JOB_STATES",
    "TASK_TRANSITIONS",
    "TERMINAL",
    "TRANSITIONS",
    "FlowManager",
    "InvalidTransition",
    "UnknownJob",
    "RetryPolicy",
    "check_transition",
    "lock_parties",
    "plan_tasks",
    "resume_point",
]

JOB_STATES = ("submitted", "awaiting_approval", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "submitted": frozenset({"awaiting_approval", "cancelled"}),
    "awaiting_approval": frozenset({"queued", "failed", "cancelled"}),
    "queued": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "failed": frozenset({"queued", "awaiting_approval"}),  # retry (approval asked again if it was not complete)
    "cancelled": frozenset({"queued", "awaiting_approval"}),  # retry
    "succeeded": frozenset(),
}
# a task may also be queued again after it succeeded: a retry re-runs succeeded steps whose
# state was not checkpointed at every party
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    **TRANSITIONS, "succeeded": frozenset({"queued", "awaiting_approval"}),
    "queued": frozenset({"running", "failed", "cancelled", "awaiting_approval"})}


class InvalidTransition(JointMLError, ValueError):
    """A state change the state machine does not allow (nothing was changed)."""


class UnknownJob(JointMLError, KeyError):
    """No job with this id in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return JointMLError.__str__(self)


def check_transition(old: str, new: str, what: str = "job", table: dict[str, frozenset[str]] = TRANSITIONS) -> None:
    """Raise `InvalidTransition` unless `old -> new` is allowed.

    >>> check_transition("queued", "running")
    >>> check_transition("succeeded", "running", "job 1")
    Traceback (most recent call last):
    ...
    jointml.orchestration.flow.InvalidTransition: field 'state': job 1 cannot go from 'succeeded' to 'running' (allowed: none)
    """
    if new not in table.get(old, frozenset()):
        allowed = ", ".join(sorted(table.get(old, ()))) or "none"
        raise InvalidTransition(f"{what} cannot go from '{old}' to '{new}' (allowed: {allowed})", field="state")


def plan_tasks(spec: Any) -> list[tuple[int, str, str]]:
    """`(step index, step name, party)` for every task of a pipeline: every party takes part in
    every step (SPMD: a step is one joint computation).

    >>> from jointml.jobs.spec import PipelineSpec
    >>> plan_tasks(PipelineSpec.from_dict({"parties": ["a", "b"], "inputs": {}, "steps": ["split"]}))
    [(0, 'split', 'a'), (0, 'split', 'b')]
    """
    return [(i, name, p) for i, (name, _) in enumerate(spec.steps) for p in spec.parties]


def resume_point(done: dict[int, dict[str, bool]], parties: list[str], n_steps: int) -> int:
    """The step a retry starts at: after the longest prefix of steps that succeeded with a
    checkpoint at every party. `done[step][party]` is True for "succeeded with a checkpoint".

    >>> resume_point({0: {"a": True, "b": True}, 1: {"a": True, "b": False}}, ["a", "b"], 3)
    1
    """
    k = 0
    while k < n_steps and all(done.get(k, {}).get(p) for p in parties):
        k += 1
    return min(k, n_steps - 1) if n_steps else 0


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed job is started again by itself (`max_retries` automatic retries).

    >>> RetryPolicy(2).allows(attempt=2), RetryPolicy(2).allows(attempt=3)
    (True, False)
    """

    max_retries: int = 0

    def allows(self, attempt: int) -> bool:
        """Whether a job that failed in `attempt` (1-based) gets another automatic attempt."""
        return attempt <= self.max_retries


def lock_parties(s: Session, parties: list[str]) -> None:
    """Lock the `slot_locks` rows of `parties` for the rest of the transaction (PostgreSQL:
    `SELECT ... FOR UPDATE` in name order, so two jobs with common parties cannot deadlock;
    rows are created on first use. SQLite: the store's write transactions already hold the
    database's write lock, BEGIN IMMEDIATE).

    >>> store = JobStore("sqlite://")
    >>> with store.session() as s:
    ...     lock_parties(s, ["partner", "bank"])
    ...     sorted(s.scalars(select(SlotLock.party)))
    ['bank', 'partner']
    """
    names = sorted(set(parties))
    have = set(s.scalars(select(SlotLock.party).where(SlotLock.party.in_(names))))
    missing = [{"party": p} for p in names if p not in have]
    if missing:
        if s.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            s.execute(pg_insert(SlotLock).values(missing).on_conflict_do_nothing(index_elements=["party"]))
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            s.execute(sqlite_insert(SlotLock).values(missing).on_conflict_do_nothing(index_elements=["party"]))
    list(s.scalars(select(SlotLock.party).where(SlotLock.party.in_(names)).order_by(SlotLock.party)
                   .with_for_update()))


def _new_id() -> str:
    return uuid.uuid4().hex


def _parse(spec: dict) -> Any:
    from ..jobs.runner import check_wiring
    from ..jobs.spec import PipelineSpec

    if not isinstance(spec, dict):
        raise ConfigError("a job spec must be a mapping (a parsed pipeline YAML)", field="spec")
    parsed = PipelineSpec.from_dict(spec)
    check_wiring(parsed)
    return parsed


class FlowManager:
    """The task flow manager over a `JobStore` (used by the coordinator; no network here).

    Every public method is one database transaction: a coordinator restarted at any point
    finds every job in a state it recorded.
    """

    def __init__(self, store: JobStore, node_timeout: float = 120.0):
        self.store = store
        self.node_timeout = node_timeout  # seconds a node may stay silent while its peers wait for it

    # -- transitions ------------------------------------------------------------------
    def _job_to(self, s: Session, job: Job, new: str, reason: str | None = None) -> None:
        check_transition(job.state, new, f"job {job.id}")
        if new == "running":  # the first step of an attempt starts: its links need ports no running job holds
            job.slot = self._free_slot(s, job)
        now = utcnow()
        s.add(Transition(job_id=job.id, party=None, step_index=None, from_state=job.state, to_state=new, reason=reason,
                         at=now))
        job.state, job.updated_at = new, now
        if new in ("failed", "cancelled"):  # the job's reason is its last failure (transitions keep every reason)
            job.reason = reason

    def _free_slot(self, s: Session, job: Job) -> int:
        """The smallest data-plane slot no other running job of these parties holds (a node
        runs a job on its cluster ports + slot: concurrent jobs never share a port).

        Chosen under the lock rows of the job's parties (`lock_parties`), held until the
        transaction that marks the job running commits: two coordinator workers starting two
        jobs of a common party at once take turns, and the second sees the first one's slot."""
        lock_parties(s, job.parties)
        busy = set()
        # columns, not objects: rows read after the lock are the newest committed ones (an ORM
        # object already in the session would keep the attributes it was loaded with)
        for parties, slot in s.execute(select(Job.parties, Job.slot).where(Job.state == "running", Job.id != job.id)):
            if slot is not None and set(parties) & set(job.parties):
                busy.add(slot)
        return next(k for k in range(len(busy) + 1) if k not in busy)

    def _task_to(self, s: Session, t: Task, new: str, reason: str | None = None) -> None:
        check_transition(t.state, new, f"task {t.job_id}/{t.party}/step {t.step_index}", TASK_TRANSITIONS)
        now = utcnow()
        s.add(Transition(job_id=t.job_id, party=t.party, step_index=t.step_index, from_state=t.state, to_state=new,
                         reason=reason, at=now))
        t.state, t.updated_at = new, now
        if reason is not None:
            t.message = reason

    def _job(self, s: Session, job_id: str, lock: bool = True) -> Job:
        job = s.get(Job, job_id, with_for_update=lock)
        if job is None:
            raise UnknownJob(f"no job '{job_id}'", field="job")
        return job

    def _tasks(self, s: Session, job_id: str, step: int | None = None) -> list[Task]:
        q = select(Task).where(Task.job_id == job_id)
        if step is not None:
            q = q.where(Task.step_index == step)
        return list(s.scalars(q.order_by(Task.step_index, Task.id)))

    # -- submit, approve ------------------------------------------------------------------
    def submit(self, spec: dict, user: str, max_retries: int = 0, schedule_id: int | None = None) -> str:
        """Check a pipeline (registry, wiring) and record it as a job awaiting its parties'
        approval; returns the job id. `spec`'s inputs are data-source *names*."""
        parsed = _parse(spec)
        job_id, now = _new_id(), utcnow()
        with self.store.session() as s:
            job = Job(id=job_id, name=parsed.name, spec=spec, pipeline_hash=parsed.fingerprint(),
                      parties=list(parsed.parties), state="submitted", submitted_by=user, max_retries=int(max_retries),
                      attempt=1, current_step=0, resume_from=0, schedule_id=schedule_id, created_at=now, updated_at=now)
            s.add(job)
            s.add(Transition(job_id=job_id, to_state="submitted", at=now, reason=f"submitted by {user}"))
            for i, name, p in plan_tasks(parsed):
                s.add(Task(job_id=job_id, party=p, step_index=i, step_name=name, state="submitted", attempt=1,
                           checkpoint=False, updated_at=now))
            s.flush()
            self._job_to(s, job, "awaiting_approval")
            for t in self._tasks(s, job_id):
                self._task_to(s, t, "awaiting_approval")
            self.store.audit(s, user, "submit", job_id, pipeline_hash=job.pipeline_hash, name=job.name)
        return job_id

    def record_approval(self, job_id: str, party: str, approved: bool, mode: str, reason: str | None = None) -> str:
        """A party's node decided on a job; all approved -> queued, one refusal -> failed. Returns the job state."""
        with self.store.session() as s:
            job = self._job(s, job_id)
            if party not in job.parties:
                raise ConfigError(f"party '{party}' is not in job {job_id}", party=party, field="party")
            if job.state != "awaiting_approval":
                return job.state
            s.add(Approval(job_id=job_id, party=party, pipeline_hash=job.pipeline_hash, approved=approved, mode=mode,
                           reason=reason, at=utcnow()))
            self.store.audit(s, f"node:{party}", "approve" if approved else "refuse", job_id, mode=mode, reason=reason)
            if not approved:
                why = f"refused by {party}" + (f": {reason}" if reason else "")
                for t in self._tasks(s, job_id):
                    self._task_to(s, t, "cancelled", why)
                self._job_to(s, job, "failed", why)
                return job.state
            s.flush()
            if set(self._approved_parties(s, job)) >= set(job.parties):
                self._job_to(s, job, "queued", "approved by every party")
                for t in self._tasks(s, job_id):
                    if t.state == "awaiting_approval":
                        self._task_to(s, t, "queued")
            return job.state

    def node_refuses(self, job_id: str, party: str, reason: str) -> str:
        """`party`'s node refuses a job it was asked to run (its organisation did not approve it,
        or a data source is missing): the job fails at once, without automatic retry."""
        with self.store.session() as s:
            job = self._job(s, job_id)
            if party not in job.parties or job.state in TERMINAL:
                return job.state
            why = f"{party} refused: {reason}"
            for t in self._tasks(s, job_id):
                if t.state not in TERMINAL:
                    self._task_to(s, t, "cancelled", why)
            self._job_to(s, job, "failed", why)
            self.store.audit(s, f"node:{party}", "refuse", job_id, reason=reason)
            return job.state

    def _round_start(self, s: Session, job: Job) -> dt.datetime:
        """When the job last started waiting for approvals (decisions before that do not count)."""
        at = s.scalars(select(Transition.at).where(Transition.job_id == job.id, Transition.party.is_(None),
                                                   Transition.to_state == "awaiting_approval")
                       .order_by(Transition.id.desc())).first()
        return at if at is not None else job.created_at

    def _approved_parties(self, s: Session, job: Job) -> list[str]:
        rows = s.scalars(select(Approval).where(Approval.job_id == job.id, Approval.approved.is_(True),
                                                Approval.pipeline_hash == job.pipeline_hash,
                                                Approval.at >= self._round_start(s, job)))
        return [a.party for a in rows]

    # -- gang scheduling ------------------------------------------------------------------
    def accept_step(self, job_id: str, party: str, step: int, attempt: int) -> bool:
        """`party`'s node is ready for `step`; True once every party is (the step then runs).

        Refused (`InvalidTransition`) for a job that is not queued/running, another step, or
        a stale attempt: the node must stop.
        """
        with self.store.session() as s:
            job = self._job(s, job_id)
            if job.state in ("queued", "running") and job.attempt == attempt and job.current_step < step < len(
                    job.spec["steps"]):
                return False  # the next step, while peers still finish the current one: wait
            if job.state not in ("queued", "running") or job.attempt != attempt or job.current_step != step:
                raise InvalidTransition(f"job {job_id} is {job.state} at step {job.current_step} attempt {job.attempt}: "
                                        f"{party} may not start step {step} of attempt {attempt}", party=party,
                                        field="state")
            tasks = self._tasks(s, job_id, step)
            mine = next((t for t in tasks if t.party == party), None)
            if mine is None:
                raise ConfigError(f"party '{party}' is not in job {job_id}", party=party, field="party")
            if mine.state == "running":
                return True  # started (peers may even have finished a step that needs no messages)
            if mine.state != "queued":
                raise InvalidTransition(f"{party}'s task of step {step} of job {job_id} is {mine.state}", party=party,
                                        field="state")
            if mine.accepted_at is None:
                mine.accepted_at = utcnow()
            if all(t.accepted_at is not None for t in tasks):
                for t in tasks:
                    self._task_to(s, t, "running", "every party accepted")
                if job.state == "queued":
                    self._job_to(s, job, "running")
                return True
            silent = self._silent(s, job, [t.party for t in tasks if t.accepted_at is None])
            if not silent:
                return False
            # its peers would wait for it forever (a node that died between two steps): fail the job
            self._fail(s, job, f"step {step} cannot start: the node of {', '.join(silent)} has been silent for more "
                               f"than {self.node_timeout:g} s")
            reason = job.reason
        raise InvalidTransition(f"job {job_id} failed: {reason}", field="state")  # after the commit

    def withdraw_step(self, job_id: str, party: str, step: int, attempt: int) -> bool:
        """`party` takes back its acceptance of `step` while the gang has not formed (its node
        will run another job first); True if too late: the step started, the node must run it."""
        with self.store.session() as s:
            job = self._job(s, job_id)
            if job.attempt != attempt or job.current_step != step:
                return False
            mine = next((t for t in self._tasks(s, job_id, step) if t.party == party), None)
            if mine is None or mine.state != "queued":
                return mine is not None and mine.state == "running"
            mine.accepted_at = None
            return False

    def _silent(self, s: Session, job: Job, parties: list[str]) -> list[str]:
        """The parties whose node has not called in for `node_timeout` seconds (since the job
        last changed, for a node never seen)."""
        now, out = utcnow(), []
        for p in parties:
            rec = s.get(NodeRecord, p)
            last = rec.last_seen if rec is not None else job.updated_at
            if (now - max(last, job.updated_at)).total_seconds() > self.node_timeout:
                out.append(p)
        return out

    def report_step(self, job_id: str, party: str, step: int, attempt: int, ok: bool, message: str | None = None,
                    metrics: dict[str, float] | None = None, checkpoint: bool = False) -> str:
        """A party finished its task of `step` (ok or not); returns the job's state after it.

        A failure fails the job (and retries it automatically while the policy allows);
        the last party's success of the last step makes the job succeeded.
        """
        with self.store.session() as s:
            job = self._job(s, job_id)
            task = next((t for t in self._tasks(s, job_id, step) if t.party == party), None)
            if task is None or attempt != job.attempt or task.attempt != attempt or task.state != "running":
                return job.state  # a late report of an older attempt, or of a cancelled job: ignored
            now = utcnow()
            for name, v in (metrics or {}).items():
                s.add(Metric(job_id=job_id, party=party, step_index=step, name=str(name)[:100], value=float(v), at=now))
            task.checkpoint = bool(ok and checkpoint)
            self._task_to(s, task, "succeeded" if ok else "failed", message)
            if not ok:
                self._fail(s, job, f"{party} failed step {step} ({task.step_name}): {message or 'no reason given'}")
                return job.state
            s.flush()
            tasks = self._tasks(s, job_id, step)
            if all(t.state == "succeeded" for t in tasks):
                if step + 1 >= len(job.spec["steps"]):
                    self._job_to(s, job, "succeeded")
                else:
                    job.current_step, job.updated_at = step + 1, now
            return job.state

    def _fail(self, s: Session, job: Job, reason: str) -> None:
        if job.state in TERMINAL:
            return
        for t in self._tasks(s, job.id):
            if t.state == "running":  # the peers of a failed party cannot finish the joint step
                self._task_to(s, t, "failed", f"job failed: {reason}")
        self._job_to(s, job, "failed", reason)
        self.store.audit(s, "flow", "failed", job.id, reason=reason, attempt=job.attempt)
        if RetryPolicy(job.max_retries).allows(job.attempt):
            self._restart(s, job, "flow", f"automatic retry {job.attempt} of {job.max_retries}")

    # -- retry, cancel ------------------------------------------------------------------
    def retry(self, job_id: str, user: str, from_start: bool = False) -> int:
        """Start a failed or cancelled job again, from its resume point (or step 0); returns that step."""
        with self.store.session() as s:
            job = self._job(s, job_id)
            return self._restart(s, job, user, f"retry by {user}", from_start)

    def _restart(self, s: Session, job: Job, user: str, reason: str, from_start: bool = False) -> int:
        tasks = self._tasks(s, job.id)
        n = len(job.spec["steps"])
        done: dict[int, dict[str, bool]] = {}
        for t in tasks:
            done.setdefault(t.step_index, {})[t.party] = t.state == "succeeded" and t.checkpoint
        start = 0 if from_start else resume_point(done, job.parties, n)
        approved = set(self._approved_parties(s, job)) >= set(job.parties)
        target = "queued" if approved else "awaiting_approval"  # e.g. cancelled before every party approved
        self._job_to(s, job, target, reason)
        job.attempt += 1
        job.current_step = job.resume_from = start
        for t in tasks:
            if t.step_index >= start:
                if t.state != target:
                    self._task_to(s, t, target, reason)
                t.attempt, t.accepted_at, t.checkpoint = job.attempt, None, False
        self.store.audit(s, user, "retry", job.id, attempt=job.attempt, resume_from=start)
        return start

    def cancel(self, job_id: str, user: str) -> str:
        """Cancel a job that has not finished (its nodes stop before their next step)."""
        with self.store.session() as s:
            job = self._job(s, job_id)
            if job.state in TERMINAL:
                raise InvalidTransition(f"job {job_id} is already {job.state}", field="state")
            for t in self._tasks(s, job_id):
                if t.state not in TERMINAL:
                    self._task_to(s, t, "cancelled", f"cancelled by {user}")
            self._job_to(s, job, "cancelled", f"cancelled by {user}")
            self.store.audit(s, user, "cancel", job_id)
            return job.state

    # -- logs, nodes ----------------------------------------------------------------------
    def add_logs(self, job_id: str, party: str, lines: list[dict]) -> None:
        """Keep log lines a node published (`{"message", "level", "step"}` each)."""
        with self.store.session() as s:
            if party not in self._job(s, job_id).parties:  # a node writes only into its own jobs
                raise ConfigError(f"party '{party}' is not in job {job_id}", party=party, field="party")
            now = utcnow()
            for ln in lines:
                s.add(LogLine(job_id=job_id, party=party, step_index=ln.get("step"), level=str(ln.get("level", "info")),
                              message=str(ln.get("message", ""))[:10_000], at=now))

    def record_artifacts(self, job_id: str, party: str, step: int | None, attempt: int,
                         records: list[dict[str, Any]]) -> int:
        """Keep the name, SHA-256 and size of objects `party`'s node staged for a job (its
        stored, encrypted bytes); records of an older attempt are ignored. Returns how many were kept.

        >>> fm = FlowManager(JobStore("sqlite://"))
        >>> job = fm.submit({"parties": ["a"], "inputs": {}, "steps": ["psi"]}, user="u")
        >>> fm.record_artifacts(job, "a", 0, 1, [{"name": f"jobs/{job}/x", "sha256": "ab" * 32, "size": 40}])
        1
        >>> [r["size"] for r in fm.artifacts(job, "a")]
        [40]
        """
        with self.store.session() as s:
            job = self._job(s, job_id)
            if party not in job.parties:
                raise ConfigError(f"party '{party}' is not in job {job_id}", party=party, field="party")
            if attempt != job.attempt:
                return 0
            now = utcnow()
            for r in records:
                name, digest = str(r["name"]), str(r["sha256"]).lower()
                if name.startswith("/") or ".." in name.split("/") or len(digest) != 64 or \
                        any(c not in "0123456789abcdef" for c in digest):
                    raise ConfigError(f"an artifact record needs a relative name and a SHA-256 hex digest, got {name!r}",
                                      party=party, field="artifacts")
                s.add(StagedArtifact(job_id=job_id, party=party, step_index=step, attempt=attempt, name=name[:500],
                                     sha256=digest, size=int(r["size"]), at=now))
            return len(records)

    def artifacts(self, job_id: str, party: str | None = None) -> list[dict[str, Any]]:
        """The newest record of each staged object of a job (optionally one party's), by name."""
        with self.store.session(readonly=True) as s:
            self._job(s, job_id, lock=False)
            q = select(StagedArtifact).where(StagedArtifact.job_id == job_id)
            if party is not None:
                q = q.where(StagedArtifact.party == party)
            latest: dict[tuple[str, str], StagedArtifact] = {}
            for a in s.scalars(q.order_by(StagedArtifact.id)):
                latest[(a.party, a.name)] = a
            return [{"party": a.party, "step": a.step_index, "attempt": a.attempt, "name": a.name, "sha256": a.sha256,
                     "size": a.size} for a in sorted(latest.values(), key=lambda a: (a.party, a.name))]

    def seen(self, party: str, info: dict | None = None) -> None:
        """Record that `party`'s node called in (its health)."""
        with self.store.session() as s:
            rec = s.get(NodeRecord, party)
            if rec is None:
                s.add(NodeRecord(party=party, last_seen=utcnow(), info=dict(info or {})))
            else:
                rec.last_seen, rec.info = utcnow(), dict(info or rec.info)

    # -- queries ---------------------------------------------------------------------------
    def work_for(self, party: str) -> dict[str, list[dict]]:
        """What `party`'s node should look at: jobs awaiting its decision, and its current steps."""
        with self.store.session(readonly=True) as s:
            jobs = s.scalars(select(Job).where(Job.state.in_(("awaiting_approval", "queued", "running"))))
            out: dict[str, list[dict]] = {"approvals": [], "work": []}
            for job in jobs:
                if party not in job.parties:
                    continue
                if job.state == "awaiting_approval":
                    if party not in self._decided(s, job):
                        out["approvals"].append(self._brief(job))
                else:
                    brief = self._brief(job)
                    mine = s.scalars(select(Task).where(Task.job_id == job.id, Task.party == party,
                                                        Task.step_index == job.current_step)).first()
                    brief["task_state"] = mine.state if mine is not None else None
                    out["work"].append(brief)
            return out

    def _decided(self, s: Session, job: Job) -> set[str]:
        return {a.party for a in s.scalars(select(Approval).where(Approval.job_id == job.id,
                                                                  Approval.at >= self._round_start(s, job)))}

    @staticmethod
    def _brief(job: Job) -> dict:
        return {"job_id": job.id, "name": job.name, "state": job.state, "spec": job.spec,
                "pipeline_hash": job.pipeline_hash, "attempt": job.attempt, "step": job.current_step,
                "resume_from": job.resume_from, "created_at": job.created_at.isoformat() if job.created_at else None}

    def slots_in_use(self) -> dict[str, list[dict[str, Any]]]:
        """Each party's data-plane slots held by running jobs: `{party: [{"slot", "job_id", "name"}]}`.

        >>> fm = FlowManager(JobStore("sqlite://"))
        >>> fm.slots_in_use()
        {}
        """
        out: dict[str, list[dict[str, Any]]] = {}
        with self.store.session(readonly=True) as s:
            for job_id, name, parties, slot in s.execute(select(Job.id, Job.name, Job.parties, Job.slot)
                                                         .where(Job.state == "running").order_by(Job.slot, Job.id)):
                for p in parties:
                    out.setdefault(p, []).append({"slot": int(slot or 0), "job_id": job_id, "name": name})
        return out

    def job_slot(self, job_id: str) -> int:
        """The data-plane slot of a job's current attempt (0 before it runs)."""
        with self.store.session(readonly=True) as s:
            return int(self._job(s, job_id, lock=False).slot or 0)

    def job_state(self, job_id: str, party: str | None = None) -> tuple[str, int, int]:
        """`(state, attempt, current step)` of a job (what a node checks between steps; a node
        `party` sees only its own jobs)."""
        with self.store.session(readonly=True) as s:
            job = self._job(s, job_id, lock=False)
            if party is not None and party not in job.parties:
                raise UnknownJob(f"no job '{job_id}' for party '{party}'", field="job")
            return job.state, job.attempt, job.current_step

    def status(self, job_id: str) -> dict[str, Any]:
        """Everything public about a job: state, tasks, transitions, approvals, metrics."""
        with self.store.session(readonly=True) as s:
            job = self._job(s, job_id, lock=False)
            out = self._row(job)
            out["spec"] = job.spec
            out["tasks"] = [{"party": t.party, "step": t.step_index, "name": t.step_name, "state": t.state,
                             "attempt": t.attempt, "checkpoint": t.checkpoint, "message": t.message}
                            for t in self._tasks(s, job_id)]
            out["transitions"] = [{"party": r.party, "step": r.step_index, "from": r.from_state, "to": r.to_state,
                                   "reason": r.reason, "at": r.at.isoformat()}
                                  for r in s.scalars(select(Transition).where(Transition.job_id == job_id)
                                                     .order_by(Transition.id))]
            out["approvals"] = [{"party": a.party, "approved": a.approved, "mode": a.mode, "reason": a.reason}
                                for a in s.scalars(select(Approval).where(Approval.job_id == job_id).order_by(Approval.id))]
            out["artifacts"] = len(s.scalars(select(StagedArtifact.id).where(StagedArtifact.job_id == job_id)).all())
            out["metrics"] = [{"party": m.party, "step": m.step_index, "name": m.name, "value": m.value}
                              for m in s.scalars(select(Metric).where(Metric.job_id == job_id).order_by(Metric.id))]
            return out

    @staticmethod
    def _row(job: Job) -> dict[str, Any]:
        return {"id": job.id, "name": job.name, "state": job.state, "parties": job.parties,
                "pipeline_hash": job.pipeline_hash, "attempt": job.attempt, "max_retries": job.max_retries,
                "current_step": job.current_step, "resume_from": job.resume_from, "reason": job.reason, "slot": job.slot,
                "submitted_by": job.submitted_by, "created_at": job.created_at.isoformat(),
                "updated_at": job.updated_at.isoformat()}

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule, with its next run and last job."""
        with self.store.session(readonly=True) as s:
            return [{"id": r.id, "name": r.name, "cron": r.cron, "enabled": r.enabled, "max_retries": r.max_retries,
                     "next_run_at": r.next_run_at.isoformat() if r.next_run_at else None, "last_job_id": r.last_job_id,
                     "created_by": r.created_by} for r in s.scalars(select(Schedule).order_by(Schedule.id))]

    def list_jobs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest jobs first (optionally only those in `state`)."""
        with self.store.session(readonly=True) as s:
            q = select(Job).order_by(Job.created_at.desc()).limit(limit)
            if state is not None:
                q = q.where(Job.state == state)
            return [self._row(j) for j in s.scalars(q)]

    def logs(self, job_id: str, party: str | None = None) -> list[dict[str, Any]]:
        """The log lines nodes published for a job (optionally one party's)."""
        with self.store.session(readonly=True) as s:
            self._job(s, job_id, lock=False)
            q = select(LogLine).where(LogLine.job_id == job_id)
            if party is not None:
                q = q.where(LogLine.party == party)
            return [{"party": ln.party, "step": ln.step_index, "level": ln.level, "message": ln.message,
                     "at": ln.at.isoformat()} for ln in s.scalars(q.order_by(LogLine.id))]

    # -- schedules ---------------------------------------------------------------------------
    def add_schedule(self, name: str, cron: str, spec: dict, user: str, max_retries: int = 0,
                     now: dt.datetime | None = None) -> int:
        """Submit `spec` again at every time `cron` names (checked now); returns the schedule id."""
        _parse(spec)
        sched = CronSchedule(cron)
        now = now or utcnow()
        with self.store.session() as s:
            row = Schedule(name=name, cron=cron, spec=spec, max_retries=max_retries, enabled=True,
                           next_run_at=sched.next_after(now), created_by=user, created_at=now)
            s.add(row)
            s.flush()
            self.store.audit(s, user, "schedule", None, schedule=row.id, cron=cron)
            return row.id

    def run_due(self, now: dt.datetime | None = None) -> list[str]:
        """Submit the jobs of every schedule due at `now` (once each, however late); returns their ids."""
        now = now or utcnow()
        with self.store.session() as s:
            due = list(s.scalars(select(Schedule).where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)))
            todo = [(d.id, d.spec, d.created_by, d.max_retries) for d in due]
            for d in due:
                d.next_run_at = CronSchedule(d.cron).next_after(now)
        made = []
        for sid, spec, user, retries in todo:
            job = self.submit(spec, user=f"schedule:{sid}:{user}", max_retries=retries, schedule_id=sid)
            with self.store.session() as s:
                row = s.get(Schedule, sid)
                if row is not None:
                    row.last_job_id = job
            made.append(job)
        return made
