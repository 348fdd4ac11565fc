"""The job store: jobs, per-party tasks per step, state transitions, approvals, the
append-only audit log, logs, public metrics, schedules, API tokens and nodes.

SQLAlchemy 2.x; SQLite by default (a file, nothing to start), PostgreSQL for deployments
(`postgresql+psycopg://user@host/db`). The schema is shipped as alembic migrations inside
the package (`migrations/`) and brought to the newest revision every time a store is
opened, so a coordinator upgraded in place migrates its database on start.

What it holds (adversary model): metadata only. Job specs carry input *names*, never file
paths or data; tasks and transitions carry states and the public reason of a failure;
metrics are the public figures a node chose to publish (AUC, row counts); API tokens are
stored as SHA-256 digests (a stolen database does not give a usable token). The audit log
is append-only in the database itself (a trigger refuses UPDATE and DELETE), so a
compromised coordinator process can add lies but not erase what it recorded.

>>> store = JobStore("sqlite://")
>>> token = store.add_token("alice")
>>> store.check_token(token), store.check_token("wrong")
('alice', None)
>>> with store.session() as s:
...     store.audit(s, "alice", "login", None)
>>> with store.session() as s:
...     [a.action for a in s.scalars(select(AuditEntry))]
['token-created', 'login']
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from ..core.errors import ConfigError

__all__ = [
    "ApiToken",
    "Approval",
    "AuditEntry",
    "Base",
    "Job",
    "JobStore",
    "LedgerEntry",
    "LogLine",
    "Metric",
    "NodeRecord",
    "Schedule",
    "SlotLock",
    "StagedArtifact",
    "Task",
    "Transition",
    "select",
    "upgrade",
    "utcnow",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///jointml-jobs.db"


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (what every timestamp of the store is).

    >>> utcnow().tzinfo is dt.timezone.utc
    True
    """
    return dt.datetime.now(dt.timezone.utc)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored with its time zone and always read back as aware UTC (SQLite
    keeps no zone: without this, times read back naive and compare wrongly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ConfigError("job store: timestamps must be timezone-aware (use utcnow())")
        return value.astimezone(dt.timezone.utc) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    """The models of the job store (their tables are made by the migrations, not `create_all`)."""


class Schedule(Base):
    """A cron-style schedule: a job spec submitted again at each time the `cron` expression names."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict] = mapped_column(JSON)
    max_retries: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Job(Base):
    """A submitted pipeline: its spec (input names only), hash, parties, state and attempt."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict] = mapped_column(JSON)
    pipeline_hash: Mapped[str] = mapped_column(String(64), index=True)
    parties: Mapped[list] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(24), index=True)
    submitted_by: Mapped[str] = mapped_column(String(200))
    max_retries: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    current_step: Mapped[int] = mapped_column(Integer)
    resume_from: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"), nullable=True)
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Task(Base):
    """One party's part of one step of a job."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("job_id", "party", "step_index", name="uq_task_job_party_step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int] = mapped_column(Integer)
    step_name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(24))
    attempt: Mapped[int] = mapped_column(Integer)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    checkpoint: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Transition(Base):
    """A state change of a job (party None) or of one party's task, with its time and reason."""

    __tablename__ = "transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str | None] = mapped_column(String(64), nullable=True)
    step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    from_state: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Approval(Base):
    """A party's decision on a job (`mode`: "auto" by pipeline hash, or "manual")."""

    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    pipeline_hash: Mapped[str] = mapped_column(String(64))
    approved: Mapped[bool] = mapped_column(Boolean)
    mode: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    """One line of the append-only audit log: who did what, to which job, when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    detail: Mapped[dict] = mapped_column(JSON)


class LogLine(Base):
    """A log line a node published for a job (and step)."""

    __tablename__ = "logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Metric(Base):
    """A public figure a node published (e.g. the bank's test AUC)."""

    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class StagedArtifact(Base):
    """An object a node staged (`jointml.orchestration.staging`): its name, and the SHA-256 and
    size of the stored (encrypted) bytes, which the node checks when it reads it back."""

    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """An API user's token, stored as its SHA-256 digest only."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class NodeRecord(Base):
    """A party's node as the coordinator last saw it (health for the dashboard)."""

    __tablename__ = "nodes"
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seen: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    info: Mapped[dict] = mapped_column(JSON)


class LedgerEntry(Base):
    """One row of the append-only privacy-budget ledger (`jointml.orchestration.ledger`): a
    party's declared budget of a data source (`kind` "declare") or one release charged against
    it ("charge": epsilon, delta, mechanism, job, release id, time). A trigger refuses UPDATE
    and DELETE in the database itself."""

    __tablename__ = "dp_ledger"
    __table_args__ = (UniqueConstraint("party", "source", "kind", "release", name="uq_dp_ledger_release"),
                      CheckConstraint("kind IN ('declare', 'charge')", name="ck_dp_ledger_kind"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    party: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
    release: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    mechanism: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class SlotLock(Base):
    """A party's lock row: the flow manager locks the rows of a job's parties (`SELECT ... FOR
    UPDATE`, in name order) while it chooses the job's data-plane slot."""

    __tablename__ = "slot_locks"
    party: Mapped[str] = mapped_column(String(64), primary_key=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of `engine` to `revision` with the package's alembic migrations."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # foreign keys are off by default in SQLite; WAL lets readers run beside the writer;
    # busy_timeout makes concurrent writers wait instead of failing at once
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin, not by the driver
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock when a transaction begins: with the driver's deferred BEGIN, two
    # transactions that read then write (two nodes accepting a step at once) make one fail
    # with "database is locked" (a stale WAL snapshot cannot be upgraded, and busy_timeout
    # does not help); IMMEDIATE makes the second wait instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def token_digest(token: str) -> str:
    """SHA-256 hex digest of an API token (what the store keeps).

    >>> len(token_digest("t"))
    64
    """
    return hashlib.sha256(token.encode()).hexdigest()


class JobStore:
    """A database of jobs, opened (and migrated to the newest schema) from a SQLAlchemy URL.

    `sqlite://` is an in-memory database (tests, examples); `sqlite:///path.db` a file;
    `postgresql+psycopg://user:pw@host:port/db` a PostgreSQL server.
    """

    def __init__(self, url: str = DEFAULT_URL, migrate: bool = True):
        self.url = url
        self.engine = _engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # reads (status polls, lists) on SQLite: a deferred BEGIN on their own connections, so
        # pollers read the WAL snapshot beside the writer instead of queueing for its lock
        self._read_engine = _engine(url, readonly=True) if url.startswith("sqlite") and ":memory:" not in url \
            and url != "sqlite://" else self.engine
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._token_cache: dict[str, tuple[str, float]] = {}  # digest -> (user, when checked)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """A session committed when the block ends without an error, rolled back otherwise
        (`readonly`: for reads only; on SQLite it does not wait for the write lock)."""
        with (self._read_sessions if readonly else self._sessions)() as s, s.begin():
            yield s

    def audit(self, s: Session, actor: str, action: str, job_id: str | None, **detail: Any) -> None:
        """Append one line to the audit log (in the caller's transaction)."""
        s.add(AuditEntry(at=utcnow(), actor=actor, action=action, job_id=job_id, detail=detail))

    def add_token(self, name: str) -> str:
        """A new API token for user `name`; returned once, stored as its digest only."""
        token = secrets.token_urlsafe(32)
        with self.session() as s:
            s.add(ApiToken(name=name, token_hash=token_digest(token), revoked=False, created_at=utcnow()))
            self.audit(s, name, "token-created", None)
        return token

    TOKEN_CACHE_SECONDS = 2.0  # a revoked token stops working within this many seconds

    def check_token(self, token: str) -> str | None:
        """The user a valid, unrevoked token belongs to, or None (valid answers are cached for
        `TOKEN_CACHE_SECONDS`: a dashboard polling every second costs no database read per call)."""
        digest, now = token_digest(token), time.monotonic()
        hit = self._token_cache.get(digest)
        if hit is not None and now - hit[1] < self.TOKEN_CACHE_SECONDS:
            return hit[0]
        with self.session(readonly=True) as s:
            row = s.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
            user = row.name if row is not None and not row.revoked else None
        if user is not None:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[digest] = (user, now)
        return user

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
        self._read_engine.dispose()


def _sqlite_begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _engine(url: str, readonly: bool = False) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        kw: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if memory:
            kw["poolclass"] = StaticPool  # one connection: every session sees the same memory database
        engine = create_engine(url, **kw)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_deferred if readonly else _sqlite_begin)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True)
    raise ConfigError(f"job store: unsupported database URL {url!r} (use sqlite:///file.db or "
                      "postgresql+psycopg://user@host/db)", field="store")
