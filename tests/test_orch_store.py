"""The job store on SQLite and on a real PostgreSQL server: the migrated schema is the
models' schema, the audit log refuses UPDATE/DELETE in the database itself, API tokens
are stored as digests only, timestamps come back timezone-aware, a reopened store keeps
its rows.

PostgreSQL: `JOINTML_TEST_PG_URL` (set by .ci/run, which starts the machine's server), or a
throwaway cluster started here with the machine's `initdb`/`pg_ctl` (as the `postgres` user
when run as root: initdb refuses root); skipped when neither is possible. In CI (CI=true)
an unreachable PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

pytest.importorskip("sqlalchemy")

from jointml.core.errors import ConfigError  # noqa: E402
from jointml.orchestration.store import AuditEntry, Base, Job, JobStore, select, utcnow  # noqa: E402


def _find(tool: str) -> str | None:
    found = shutil.which(tool) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)), None)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _throwaway_cluster():
    """Start a PostgreSQL cluster in a temp dir on a free port; yields its admin URL."""
    initdb, pg_ctl = _find("initdb"), _find("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    root = os.geteuid() == 0
    d = tempfile.mkdtemp(prefix="jointml-pg-")
    run_as: list[str] = []
    if root:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            yield None
            return
        os.chown(d, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(d, "data"), _free_port()
    try:
        subprocess.run(run_as + [initdb, "-D", data, "-U", "jointml", "--auth=trust", "-E", "UTF8"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(run_as + [pg_ctl, "-D", data, "-w", "-t", "60", "-l", os.path.join(d, "log"), "-o",
                                 f"-h 127.0.0.1 -p {port} -k {d} -F", "start"], check=True, capture_output=True, timeout=90)
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(d, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql+psycopg://jointml@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url():
    """An admin URL of a reachable PostgreSQL server, or None."""
    url = os.environ.get("JOINTML_TEST_PG_URL")
    if url:
        yield url
        return
    yield from _throwaway_cluster()


def _fresh_database(admin_url: str) -> tuple[str, object]:
    """A new empty database on the server; returns its URL and a dropper."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "jointml_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, pg_admin_url):
    """A fresh database URL: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    if pg_admin_url is None:
        if os.environ.get("CI") == "true" and os.environ.get("JOINTML_TEST_PG_URL"):
            pytest.fail("JOINTML_TEST_PG_URL is set but PostgreSQL is unreachable")
        pytest.skip("no PostgreSQL server (set JOINTML_TEST_PG_URL or install initdb/pg_ctl)")
    url, drop = _fresh_database(pg_admin_url)
    try:
        yield url
    finally:
        drop()


def test_migrated_schema_is_the_models_schema(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = JobStore(store_url)
    try:
        with store.engine.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
        assert diff == [], diff
        assert store.dialect == store_url.split(":")[0].split("+")[0]
    finally:
        store.close()


def test_audit_log_is_append_only_in_the_database(store_url):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    store = JobStore(store_url)
    try:
        with store.session() as s:
            store.audit(s, "alice", "submit", "job1", spec="x")
        for stmt in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"):
                with store.engine.begin() as c:
                    c.execute(text(stmt))
        with store.session() as s:
            rows = list(s.scalars(select(AuditEntry)))
        assert [(r.actor, r.action, r.job_id, r.detail) for r in rows] == [("alice", "submit", "job1", {"spec": "x"})]
    finally:
        store.close()


def test_tokens_are_stored_as_digests_only(store_url):
    from sqlalchemy import text

    store = JobStore(store_url)
    try:
        token = store.add_token("alice")
        assert store.check_token(token) == "alice"
        assert store.check_token(token + "x") is None
        with store.engine.connect() as c:
            dump = repr([tuple(r) for r in c.execute(text("SELECT * FROM api_tokens"))])
            dump += repr([tuple(r) for r in c.execute(text("SELECT * FROM audit_log"))])
        assert token not in dump  # a stolen database gives no usable token
    finally:
        store.close()


def test_reopened_store_keeps_rows_and_aware_times(store_url):
    t0 = utcnow()
    store = JobStore(store_url)
    with store.session() as s:
        s.add(Job(id="j1", name="n", spec={"steps": []}, pipeline_hash="h" * 64, parties=["bank"], state="submitted",
                  submitted_by="alice", max_retries=1, attempt=1, current_step=0, resume_from=0, created_at=t0,
                  updated_at=t0))
    store.close()
    again = JobStore(store_url)  # migrations run again: nothing to do, nothing lost
    try:
        with again.session() as s:
            job = s.get(Job, "j1")
            assert job is not None and job.parties == ["bank"]
            assert job.created_at.tzinfo is not None and abs(job.created_at - t0) < dt.timedelta(milliseconds=1)
    finally:
        again.close()


def test_naive_timestamps_and_unknown_databases_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unsupported database URL"):
        JobStore("mysql://x")
    store = JobStore(f"sqlite:///{tmp_path / 'j.db'}")
    from sqlalchemy.exc import StatementError

    with pytest.raises(StatementError, match="timezone-aware"):
        with store.session() as s:
            store.audit(s, "a", "b", None)
            s.flush()
            s.add(AuditEntry(at=dt.datetime(2026, 1, 1), actor="a", action="b", job_id=None, detail={}))
            s.flush()
    store.close()


def test_a_revoked_token_is_refused_once_the_cache_window_passed(tmp_path):
    import time

    from jointml.orchestration.store import ApiToken

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.TOKEN_CACHE_SECONDS = 0.2
    token = store.add_token("alice")
    assert store.check_token(token) == "alice"
    with store.session() as s:
        for row in s.scalars(select(ApiToken)):
            row.revoked = True
    time.sleep(0.25)
    assert store.check_token(token) is None
    store.close()
