"""The task flow manager (no network): the state machine refuses every move it does not
list, a step starts only when every party accepted it, a refusal or failure fails the job
with the party's reason, automatic and manual retries resume from the last step that every
party checkpointed (stale reports ignored), cancel stops the job, a restarted coordinator
finds every state, cron schedules submit on time; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

pytest.importorskip("sqlalchemy")

import test_orch_store  # noqa: E402,I001 - the SQLite/PostgreSQL fixtures
from jointml.core.errors import ConfigError  # noqa: E402
from jointml.orchestration.cron import CronSchedule  # noqa: E402
from jointml.orchestration.flow import (  # noqa: E402
    JOB_STATES,
    TASK_TRANSITIONS,
    TRANSITIONS,
    FlowManager,
    InvalidTransition,
    check_transition,
)
from jointml.orchestration.store import AuditEntry, JobStore, select  # noqa: E402

pg_admin_url = test_orch_store.pg_admin_url
store_url = test_orch_store.store_url

UTC = dt.timezone.utc
PARTIES = ["bank", "partner", "dealer"]
SPEC = {"name": "t", "parties": PARTIES, "inputs": {"bank": "bank_data", "partner": "partner_data"},
        "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "steps": [{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5}}, {"woe_binning": {"label": "y"}}]}


def _approved(fm: FlowManager, **kw) -> str:
    job = fm.submit(SPEC, user="alice", **kw)
    for p in PARTIES:
        fm.record_approval(job, p, approved=True, mode="auto")
    return job


def _run_step(fm, job, step, attempt=1, checkpoint=True, fail_at=None):
    for p in PARTIES:
        fm.accept_step(job, p, step, attempt)
    for p in PARTIES:
        fm.report_step(job, p, step, attempt, ok=p != fail_at, message=None if p != fail_at else "disk full",
                       checkpoint=checkpoint)


def test_transition_table_is_enforced_for_every_pair():
    for table in (TRANSITIONS, TASK_TRANSITIONS):
        for old, new in itertools.product(JOB_STATES, JOB_STATES):
            if new in table[old]:
                check_transition(old, new, table=table)
            else:
                with pytest.raises(InvalidTransition):
                    check_transition(old, new, table=table)
    assert TRANSITIONS["succeeded"] == frozenset()  # a finished job is never reopened


def test_gang_scheduling_and_success(store_url):
    fm = FlowManager(JobStore(store_url))
    job = fm.submit(SPEC, user="alice")
    assert fm.status(job)["state"] == "awaiting_approval"
    with pytest.raises(InvalidTransition):  # not approved yet: no node may start
        fm.accept_step(job, "bank", 0, 1)
    for p in PARTIES:
        fm.record_approval(job, p, approved=True, mode="auto")
    assert fm.status(job)["state"] == "queued"
    assert fm.accept_step(job, "bank", 0, 1) is False
    assert fm.accept_step(job, "partner", 0, 1) is False
    st = fm.status(job)
    assert st["state"] == "queued" and {t["state"] for t in st["tasks"]} == {"queued"}  # nobody started alone
    assert fm.accept_step(job, "dealer", 0, 1) is True
    st = fm.status(job)
    assert st["state"] == "running" and [t["state"] for t in st["tasks"] if t["step"] == 0] == ["running"] * 3
    assert fm.accept_step(job, "bank", 1, 1) is False  # the next step waits until this one is done everywhere
    with pytest.raises(InvalidTransition):  # a stale attempt must stop
        fm.accept_step(job, "bank", 0, 2)
    for p in PARTIES:
        fm.report_step(job, p, 0, 1, ok=True, metrics={"rows": 10}, checkpoint=True)
    _run_step(fm, job, 1)
    with pytest.raises(InvalidTransition):  # a finished step is not started again
        fm.accept_step(job, "bank", 1, 1)
    _run_step(fm, job, 2)
    st = fm.status(job)
    assert st["state"] == "succeeded"
    assert {t["state"] for t in st["tasks"]} == {"succeeded"}
    assert [m["value"] for m in st["metrics"]] == [10.0] * 3
    ats = [t["at"] for t in st["transitions"]]
    assert ats == sorted(ats)
    job_moves = [(t["from"], t["to"]) for t in st["transitions"] if t["party"] is None]
    assert job_moves == [(None, "submitted"), ("submitted", "awaiting_approval"), ("awaiting_approval", "queued"),
                         ("queued", "running"), ("running", "succeeded")]


def test_refusal_fails_the_job_with_the_party_named(tmp_path):
    fm = FlowManager(JobStore(f"sqlite:///{tmp_path / 'j.db'}"))
    job = fm.submit(SPEC, user="alice")
    fm.record_approval(job, "bank", approved=True, mode="auto")
    fm.record_approval(job, "partner", approved=False, mode="manual", reason="pipeline not approved")
    st = fm.status(job)
    assert st["state"] == "failed" and "refused by partner" in st["reason"]
    assert {t["state"] for t in st["tasks"]} == {"cancelled"}
    with pytest.raises(InvalidTransition):
        fm.accept_step(job, "bank", 0, 1)
    with pytest.raises(ConfigError):
        fm.record_approval(job, "mallory", approved=True, mode="auto")
    with pytest.raises(ConfigError):  # a node outside the job cannot write into its log or see its state
        fm.add_logs(job, "mallory", [{"message": "x"}])
    with pytest.raises(KeyError):
        fm.job_state(job, "mallory")
    assert fm.work_for("dealer") == {"approvals": [], "work": []}


def test_automatic_retry_resumes_from_the_last_checkpoint_at_every_party(store_url):
    fm = FlowManager(JobStore(store_url))
    job = _approved(fm, max_retries=1)
    _run_step(fm, job, 0, checkpoint=True)
    for p in PARTIES:  # step 1: the dealer kept no checkpoint
        fm.accept_step(job, p, 1, 1)
    for p in PARTIES:
        fm.report_step(job, p, 1, 1, ok=True, checkpoint=p != "dealer")
    for p in PARTIES:
        fm.accept_step(job, p, 2, 1)
    assert fm.report_step(job, "partner", 2, 1, ok=False, message="killed") == "queued"  # retried at once
    st = fm.status(job)
    assert (st["attempt"], st["resume_from"], st["current_step"]) == (2, 1, 1)
    assert "partner failed step 2 (woe_binning): killed" in st["reason"]
    by = {(t["party"], t["step"]): t for t in st["tasks"]}
    assert by[("bank", 0)]["state"] == "succeeded" and by[("bank", 0)]["attempt"] == 1  # not run again
    assert by[("dealer", 1)]["state"] == "queued" and by[("dealer", 1)]["attempt"] == 2
    # the other parties' reports of attempt 1 arrive late: ignored
    assert fm.report_step(job, "bank", 2, 1, ok=False, message="peer closed") == "queued"
    _run_step(fm, job, 1, attempt=2, checkpoint=True)
    for p in PARTIES:
        fm.accept_step(job, p, 2, 2)
    assert fm.report_step(job, "bank", 2, 2, ok=False, message="killed again") == "failed"  # policy: one retry
    assert fm.retry(job, user="alice") == 2  # steps 0 and 1 checkpointed everywhere now
    assert fm.status(job)["attempt"] == 3
    fm.cancel(job, user="alice")
    assert fm.retry(job, user="alice", from_start=True) == 0
    actions = [a.action for a in _audit(fm)]
    assert actions.count("retry") == 3 and "cancel" in actions and actions[0] == "submit"


def _audit(fm):
    with fm.store.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_cancel_and_a_restarted_coordinator_sees_every_state(store_url):
    fm = FlowManager(JobStore(store_url))
    job = _approved(fm)
    fm.accept_step(job, "bank", 0, 1)
    assert fm.cancel(job, user="bob") == "cancelled"
    with pytest.raises(InvalidTransition):
        fm.cancel(job, user="bob")
    with pytest.raises(InvalidTransition):
        fm.accept_step(job, "partner", 0, 1)
    other = _approved(fm)
    fm.accept_step(other, "bank", 0, 1)
    fm.store.close()
    again = FlowManager(JobStore(store_url))  # a new coordinator process on the same database
    assert again.status(job)["state"] == "cancelled"
    assert [t["state"] for t in again.status(other)["tasks"] if t["step"] == 0] == ["queued"] * 3
    assert again.accept_step(other, "partner", 0, 1) is False  # the bank's acceptance survived the restart
    assert again.accept_step(other, "dealer", 0, 1) is True
    assert {j["id"] for j in again.list_jobs()} == {job, other}
    assert [j["id"] for j in again.list_jobs(state="cancelled")] == [job]
    assert [w["job_id"] for w in again.work_for("bank")["work"]] == [other]


def test_submit_refuses_bad_pipelines(tmp_path):
    fm = FlowManager(JobStore(f"sqlite:///{tmp_path / 'j.db'}"))
    with pytest.raises(ConfigError, match="unknown component"):
        fm.submit({**SPEC, "steps": ["no_such_step"]}, user="a")
    with pytest.raises(ConfigError, match="needs psi"):
        fm.submit({**SPEC, "steps": ["split"]}, user="a")
    assert fm.list_jobs() == []


@pytest.mark.parametrize("expr, after, want", [
    ("0 0 1 1 *", "2026-12-02T10:00", "2027-01-01T00:00"),
    ("0 12 * * 0", "2026-12-02T10:00", "2026-12-06T12:00"),  # Sunday
    ("0 12 * * 7", "2026-12-02T10:00", "2026-12-06T12:00"),  # 7 is Sunday too
    ("0 0 13 * fri", "2026-12-02T10:00", "2026-12-04T00:00"),  # Friday OR the 13th (cron's rule)
    ("0 0 29 feb *", "2026-03-01T00:00", "2028-02-29T00:00"),  # leap day
    ("5-10/5 */6 * * *", "2026-12-02T06:06", "2026-12-02T06:10"),
    ("59 23 31 dec *", "2026-12-31T23:59", "2027-12-31T23:59"),  # strictly after
])
def test_cron_next_after(expr, after, want):
    t = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert CronSchedule(expr).next_after(t) == dt.datetime.fromisoformat(want).replace(tzinfo=UTC)


def test_cron_matches_a_minute_by_minute_scan():
    start = dt.datetime(2026, 12, 2, 22, 58, tzinfo=UTC)
    for expr in ("*/7 1-3 * * 1,3", "0 0 * * *", "30 23 2 * sat"):
        c = CronSchedule(expr)
        t = start + dt.timedelta(minutes=1)
        while not (t.minute in c.minutes and t.hour in c.hours and c._day_matches(t.date())):
            t += dt.timedelta(minutes=1)
        assert c.next_after(start) == t


@pytest.mark.parametrize("expr", ["* * * *", "60 * * * *", "x * * * *", "5-1 * * * *", "0 0 31 feb *"])
def test_cron_refuses_bad_expressions(expr):
    with pytest.raises(ConfigError):
        CronSchedule(expr).next_after(dt.datetime(2026, 1, 1, tzinfo=UTC))


def test_schedules_submit_once_when_due(tmp_path):
    fm = FlowManager(JobStore(f"sqlite:///{tmp_path / 'j.db'}"))
    t0 = dt.datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    fm.add_schedule("nightly", "30 2 * * *", SPEC, user="alice", max_retries=2, now=t0)
    assert fm.run_due(t0 + dt.timedelta(hours=1)) == []
    late = t0 + dt.timedelta(hours=3)  # the coordinator was down at 02:30: one job, not a burst
    made = fm.run_due(late)
    assert len(made) == 1 and fm.run_due(late) == []
    st = fm.status(made[0])
    assert st["state"] == "awaiting_approval" and st["max_retries"] == 2 and st["submitted_by"].startswith("schedule:")
    assert len(fm.run_due(late + dt.timedelta(days=1))) == 1


def test_retry_before_every_approval_asks_again(tmp_path):
    fm = FlowManager(JobStore(f"sqlite:///{tmp_path / 'j.db'}"))
    job = fm.submit(SPEC, user="alice")
    fm.record_approval(job, "bank", approved=True, mode="auto")
    fm.record_approval(job, "partner", approved=False, mode="manual", reason="not yet reviewed")
    assert fm.status(job)["state"] == "failed"
    assert fm.retry(job, user="alice") == 0
    assert fm.status(job)["state"] == "awaiting_approval"
    # every party is asked again, the one that refused included; earlier decisions do not count
    assert [w["job_id"] for w in fm.work_for("partner")["approvals"]] == [job]
    assert [w["job_id"] for w in fm.work_for("bank")["approvals"]] == [job]
    for p in PARTIES:
        fm.record_approval(job, p, approved=True, mode="manual")
    st = fm.status(job)
    assert st["state"] == "queued" and {t["state"] for t in st["tasks"]} == {"queued"} and st["attempt"] == 2


def test_a_silent_node_fails_the_step_instead_of_a_hang(tmp_path):
    import time

    fm = FlowManager(JobStore(f"sqlite:///{tmp_path / 'j.db'}"), node_timeout=0.3)
    job = _approved(fm, max_retries=0)
    for p in PARTIES:
        fm.seen(p)
    assert fm.accept_step(job, "bank", 0, 1) is False
    assert fm.accept_step(job, "partner", 0, 1) is False  # the dealer is still within its timeout
    time.sleep(0.4)
    fm.seen("bank")
    fm.seen("partner")  # the waiting nodes keep polling; the dealer's node died
    with pytest.raises(InvalidTransition, match="dealer has been silent"):
        fm.accept_step(job, "bank", 0, 1)
    st = fm.status(job)
    assert st["state"] == "failed" and "the node of dealer has been silent" in st["reason"]


def test_concurrent_jobs_get_distinct_data_plane_slots_and_free_them(store_url):
    fm = FlowManager(JobStore(store_url))
    a, b = _approved(fm), _approved(fm)
    for job in (a, b):
        for p in PARTIES:
            fm.accept_step(job, p, 0, 1)
    assert sorted(fm.job_slot(j) for j in (a, b)) == [0, 1]  # two running jobs: never the same ports
    for p in PARTIES:
        fm.report_step(a, p, 0, 1, ok=True)
    assert fm.job_slot(a) == 0  # kept for the whole attempt (its links stay open)
    for step in (1, 2):
        _run_step(fm, a, step)
    assert fm.status(a)["state"] == "succeeded"
    c = _approved(fm)
    _run_step(fm, c, 0)
    assert fm.job_slot(c) == fm.status(a)["slot"] == 0  # a finished job's slot is free again


def test_artifact_records_of_an_older_attempt_are_ignored(store_url):
    fm = FlowManager(JobStore(store_url))
    job = _approved(fm)
    rec = {"name": f"jobs/{job}/checkpoints/after-0/frame.csv", "sha256": "ab" * 32, "size": 10}
    assert fm.record_artifacts(job, "bank", 0, 1, [rec]) == 1
    _run_step(fm, job, 0, fail_at="partner")
    fm.retry(job, "alice")
    assert fm.record_artifacts(job, "bank", 0, 1, [{**rec, "sha256": "cd" * 32}]) == 0  # a late write of attempt 1
    assert fm.record_artifacts(job, "bank", 0, 2, [{**rec, "sha256": "ef" * 32, "size": 11}]) == 1
    assert [(r["sha256"][:2], r["size"]) for r in fm.artifacts(job, "bank")] == [("ef", 11)]
    assert fm.artifacts(job, "partner") == []
    with pytest.raises(ConfigError):
        fm.record_artifacts(job, "bank", 0, 2, [{**rec, "name": "/etc/passwd"}])
    with pytest.raises(ConfigError):
        fm.record_artifacts(job, "mallory", 0, 2, [rec])


def _accept_all_but_last(fm: FlowManager, job: str) -> None:
    for p in PARTIES[:-1]:
        assert fm.accept_step(job, p, 0, 1) is False


def test_concurrent_workers_never_give_two_jobs_the_same_slot(store_url):
    import threading

    fm = FlowManager(JobStore(store_url))
    jobs = [_approved(fm) for _ in range(4)]
    for job in jobs:
        _accept_all_but_last(fm, job)
    workers = [FlowManager(JobStore(store_url, migrate=False)) for _ in jobs]  # four coordinator workers
    gate, errors = threading.Barrier(len(jobs)), []

    def last_accept(w: FlowManager, job: str) -> None:
        gate.wait()
        try:
            assert w.accept_step(job, PARTIES[-1], 0, 1) is True  # this call starts the job and picks its slot
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=last_accept, args=(w, j)) for w, j in zip(workers, jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(fm.job_slot(j) for j in jobs) == [0, 1, 2, 3]
    in_use = fm.slots_in_use()
    assert sorted(in_use) == sorted(PARTIES) and sorted(r["slot"] for r in in_use["bank"]) == [0, 1, 2, 3]


def test_slot_choice_waits_for_a_worker_holding_a_party_lock(store_url):
    import threading
    import time

    from jointml.orchestration.flow import lock_parties

    fm, other = FlowManager(JobStore(store_url)), JobStore(store_url, migrate=False)
    job = _approved(fm)
    _accept_all_but_last(fm, job)
    done: list = []
    t = threading.Thread(target=lambda: done.append(fm.accept_step(job, PARTIES[-1], 0, 1)))
    with other.session() as s:  # another worker choosing a slot for a job of the dealer
        lock_parties(s, ["dealer"])
        t.start()
        time.sleep(0.6)
        assert t.is_alive() and done == []  # waits for the lock instead of choosing beside it
    t.join(30)
    assert done == [True] and fm.job_slot(job) == 0
    other.close()


def test_nodes_take_running_jobs_first_then_the_oldest_queued():
    """A node at capacity that took a new queued job while its peers waited for it in a
    running one deadlocked both gangs (found by `jointml bench chaos`): every node now
    orders its work the same way, running jobs (furthest step first) before queued ones,
    then by age."""
    from jointml.orchestration.node import _work_order

    work = [
        {"job_id": "b", "state": "queued", "step": 0, "created_at": "2026-12-02T07:56:51"},
        {"job_id": "z", "state": "running", "step": 3, "created_at": "2026-12-02T07:56:52"},
        {"job_id": "a", "state": "queued", "step": 0, "created_at": "2026-12-02T07:56:50"},
        {"job_id": "y", "state": "running", "step": 5, "created_at": "2026-12-02T07:56:53"},
    ]
    assert [w["job_id"] for w in _work_order(work)] == ["y", "z", "a", "b"]


def test_withdrawn_acceptance_keeps_the_gang_from_forming_until_renewed(tmp_path):
    """A node that gave up waiting for a job's gang withdraws its acceptance: the step then
    cannot start without it (no task marked running that no worker runs); once started, a
    withdrawal is too late and tells the node to run the step (found by `bench chaos`)."""
    fm = FlowManager(JobStore(f"sqlite:///{tmp_path / 'j.db'}"))
    job = _approved(fm)
    assert fm.accept_step(job, "bank", 0, 1) is False
    assert fm.withdraw_step(job, "bank", 0, 1) is False  # withdrawn before the gang formed
    assert fm.accept_step(job, "partner", 0, 1) is False
    assert fm.accept_step(job, "dealer", 0, 1) is False  # the bank's acceptance no longer counts
    assert fm.status(job)["state"] == "queued"
    assert fm.accept_step(job, "bank", 0, 1) is True  # renewed: the gang forms
    assert fm.withdraw_step(job, "partner", 0, 1) is True  # too late: the step runs
    assert fm.status(job)["state"] == "running"
