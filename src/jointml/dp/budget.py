"""Privacy budgets, enforced: a per-party ledger of (epsilon, delta) per data source.

Each party declares, for each of its data sources, a total budget (epsilon, delta). Every
DP release that touches a source is **charged before it runs**: a release that would take
the source past its budget is refused, with an error naming the source and what remains,
and nothing is computed. The ledger persists in a local SQLite file (stdlib `sqlite3`,
`BudgetLedger`, the default; with a coordinator, the job store takes over:
`jointml.orchestration.ledger.StoreLedger` and, at a node, `RemoteLedger`, all `Ledger`s)
and is **append-only**:

* rows are only inserted (declarations and charges, each with a UTC timestamp); SQLite
  triggers abort any UPDATE or DELETE;
* each row carries ``hash = sha256(previous hash | row)``, so a file edited by other
  means (triggers dropped, rows rewritten) fails `verify()`; `head()` (row count and last
  hash) can be recorded elsewhere (the job store, a peer) to detect truncation too.

Composition across releases in the ledger is basic composition (epsilons add, deltas add):
rigorous for any mix of mechanisms. Within one job, compose the job's events with
:class:`jointml.dp.Accountant` first (tighter) and charge the job's (epsilon(delta), delta)
once, before the job computes (`charge_events`).

Each charge names a `release` id, unique per source: charging the same release again
(a retry after a crash) costs nothing and returns the first charge; a different amount
under the same id is refused. So a release is charged exactly once.

In a job (SPMD), `enforce` charges every party's sources in two phases (check at every
owner, agree, then charge), so that all parties refuse together before any computation
when one source lacks budget. What other parties learn: the verdict (source name, the
release's cost and the remaining budget of a refused source), nothing else of the ledger.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
>>> led = BudgetLedger(path, party="bank")
>>> led.declare("loans", epsilon=1.0, delta=1e-5)
>>> _ = led.charge("loans", 0.6, 0.0, release="r1")
>>> try:
...     led.charge("loans", 0.6, 0.0, release="r2")
... except BudgetExceeded as e:
...     print(e.source, round(e.remaining[0], 6))
loans 0.4
>>> BudgetLedger(path, party="bank").remaining("loans")   # survives a restart
(0.4, 1e-05)
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..core.errors import ConfigError, JointMLError, ParameterError, PersistError
from .accounting import Accountant, PrivacyEvent

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.context import PartyContext

__all__ = ["BudgetExceeded", "LedgerTampered", "Charge", "Ledger", "BudgetLedger", "enforce"]

# floating-point slack: 0.1 + 0.2 spent of a 0.3 budget is within it
_EPS_SLACK = 1e-9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('declare', 'charge')),
    party TEXT NOT NULL,
    source TEXT NOT NULL,
    release TEXT,
    job TEXT,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    detail TEXT NOT NULL,
    ts TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (party, source, kind, release)
);
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only: rows cannot be deleted'); END;
"""

_GENESIS = "0" * 64


class BudgetExceeded(JointMLError, PermissionError):
    """A release would take a data source past its declared privacy budget.

    Its message names the source, the release's cost and the remaining budget (no data)."""

    safe_text = True

    def __init__(self, message: str, *, source: str | None = None, remaining: tuple[float, float] | None = None,
                 party: str | None = None, **_: Any):
        super().__init__(message, party=party, field="privacy_budget")
        # raised at a peer from the announced verdict: read the source and what remains from the text
        self.source = source if source is not None else _parse_source(message)
        self.remaining = remaining if remaining is not None else _parse_remaining(message)


class LedgerTampered(PersistError):
    """The ledger's hash chain does not verify: a row was changed or removed by other means."""


@dataclass(frozen=True)
class Charge:
    """One charge of the ledger (as stored)."""

    seq: int
    source: str
    release: str
    job: str | None
    epsilon: float
    delta: float
    ts: str


def _row_hash(prev: str, fields: Sequence[Any]) -> str:
    body = json.dumps([prev, *fields], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def check_amount(epsilon: float, delta: float, what: str) -> None:
    for name, v in (("epsilon", epsilon), ("delta", delta)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ParameterError(f"{what} {name} must be a finite number >= 0, got {v!r}", field=name)
    if delta >= 1:
        raise ParameterError(f"{what} delta must be < 1, got {delta!r}", field="delta")


class Ledger(ABC):
    """What every privacy ledger does, whatever stores it: this module's `BudgetLedger` (a
    local SQLite file, the default) or the coordinator's job store
    (`jointml.orchestration.ledger.StoreLedger`, and `RemoteLedger` for a node reaching it
    through the coordinator's API). `enforce` and every DP release take any of them.

    A subclass stores declarations and charges (`declare`, `budget`, `spent`, `charges`,
    `charge_many`, `_existing`); the refusal rule, composition and exactly-once logic are here.
    It offers no way to change or remove a row: ledgers are append-only.
    """

    party: str

    @abstractmethod
    def declare(self, source: str, epsilon: float, delta: float) -> None:
        """Declare the total budget of `source` (once; the same budget again is a no-op)."""

    @abstractmethod
    def budget(self, source: str) -> tuple[float, float]:
        """The declared (epsilon, delta) of `source`; ConfigError when none was declared."""

    @abstractmethod
    def spent(self, source: str) -> tuple[float, float]:
        """(epsilon, delta) charged so far against `source` (basic composition)."""

    @abstractmethod
    def charges(self, source: str | None = None) -> list[Charge]:
        """The charges, oldest first (of one source, or all)."""

    @abstractmethod
    def charge_many(self, charges: Sequence[tuple[str, float, float]], *, release: str, job: str | None = None,
                    detail: dict[str, Any] | None = None, mechanism: str | None = None) -> list[Charge]:
        """Charge one release against several sources, all or nothing, atomically."""

    @abstractmethod
    def _existing(self, source: str, release: str, epsilon: float, delta: float) -> Charge | None:
        """The charge already made for (source, release), checked to be the same amount."""

    def remaining(self, source: str) -> tuple[float, float]:
        """What `source` can still spend: budget minus spent (never below 0)."""
        (be, bd), (se, sd) = self.budget(source), self.spent(source)
        return max(0.0, be - se), max(0.0, bd - sd)

    def _refusal(self, source: str, epsilon: float, delta: float) -> BudgetExceeded | None:
        return refusal(source, self.budget(source), self.spent(source), epsilon, delta, self.party)

    def check(self, charges: Iterable[tuple[str, float, float]]) -> BudgetExceeded | None:
        """The refusal the charges (source, epsilon, delta) would meet now, or None (nothing is written)."""
        for source, (eps, dl) in totals(charges).items():
            bad = self._refusal(source, eps, dl)
            if bad is not None:
                return bad
        return None

    def pending(self, charges: Sequence[tuple[str, float, float]], release: str) -> list[tuple[str, float, float]]:
        """The charges not yet made for `release` (a retried release costs nothing twice)."""
        return [c for c in charges if self._existing(c[0], release, c[1], c[2]) is None]

    def charge(self, source: str, epsilon: float, delta: float, *, release: str, job: str | None = None,
               detail: dict[str, Any] | None = None, mechanism: str | None = None) -> Charge:
        """Charge one release against `source` before it runs; raises BudgetExceeded (nothing written)."""
        return self.charge_many([(source, epsilon, delta)], release=release, job=job, detail=detail,
                                mechanism=mechanism)[0]

    def charge_events(self, source: str, events: Sequence[PrivacyEvent], delta: float, *, release: str,
                      job: str | None = None, accountant: str = "auto") -> Charge:
        """Compose a job's events with the accountant and charge (epsilon(delta), delta) once.

        >>> led = BudgetLedger(":memory:", party="bank")
        >>> led.declare("crm", epsilon=1.0, delta=0.0)
        >>> ev = PrivacyEvent("discrete_laplace", parameter=0.1, sensitivity=1)
        >>> round(led.charge_events("crm", [ev, ev, ev], 0.0, release="job-7").epsilon, 6)
        0.3
        """
        acc = Accountant(accountant)
        for ev in events:
            acc.add(ev)
        eps = acc.epsilon(delta)
        return self.charge(source, eps, delta, release=release, job=job,
                           mechanism=",".join(sorted({e.kind for e in events})),
                           detail={"accountant": acc.used_kind(), "events": [e.to_json() for e in events]})


def totals(charges: Iterable[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    """(epsilon, delta) per source of a list of charges, each amount checked.

    >>> totals([("a", 0.5, 0.0), ("a", 0.25, 1e-6), ("b", 1.0, 0.0)])
    {'a': (0.75, 1e-06), 'b': (1.0, 0.0)}
    """
    total: dict[str, tuple[float, float]] = {}
    for source, eps, dl in charges:
        check_amount(eps, dl, "charge")
        e0, d0 = total.get(source, (0.0, 0.0))
        total[source] = (e0 + eps, d0 + dl)
    return total


def refusal(source: str, budget: tuple[float, float], spent: tuple[float, float], epsilon: float, delta: float,
            party: str | None) -> BudgetExceeded | None:
    """The refusal a charge of (epsilon, delta) against `source` meets, given its budget and what
    it spent (None: within the budget, up to a 1e-9 floating-point slack).

    >>> refusal("crm", (1.0, 0.0), (0.75, 0.0), 0.5, 0.0, "bank").remaining
    (0.25, 0.0)
    >>> refusal("crm", (1.0, 0.0), (0.5, 0.0), 0.5, 0.0, "bank") is None
    True
    """
    (be, bd), (se, sd) = budget, spent
    if se + epsilon <= be + _EPS_SLACK and sd + delta <= bd + _EPS_SLACK * bd:
        return None
    rem = (max(0.0, be - se), max(0.0, bd - sd))
    return BudgetExceeded(
        f"privacy budget of data source '{source}' exceeded: this release needs epsilon={epsilon:.6g}, "
        f"delta={delta:.3g}, but only epsilon={rem[0]:.6g}, delta={rem[1]:.3g} remain "
        f"(declared epsilon={be:.6g}, delta={bd:.3g}); nothing was computed",
        source=source, remaining=rem, party=party)


class BudgetLedger(Ledger):
    """The privacy ledger of one party: budgets declared per data source and the charges against them.

    `path` is the SQLite file (created if missing); `party` the owner (rows name it).

    >>> led = BudgetLedger(":memory:", party="bank")
    >>> led.declare("crm", epsilon=2.0, delta=1e-6)
    >>> led.charge("crm", 0.5, 1e-7, release="q1").epsilon
    0.5
    >>> led.spent("crm"), led.verify()
    ((0.5, 1e-07), 2)
    """

    def __init__(self, path: str | Path, party: str):
        self.path = str(path)
        self.party = party
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open the privacy ledger '{self.path}': {e}", party=party, field="ledger") from e

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()

    # -- reading ------------------------------------------------------------------------
    def budget(self, source: str) -> tuple[float, float]:
        """The declared (epsilon, delta) of `source`; ConfigError when none was declared."""
        row = self._db.execute(
            "SELECT epsilon, delta FROM ledger WHERE party=? AND source=? AND kind='declare' ORDER BY seq LIMIT 1",
            (self.party, source)).fetchone()
        if row is None:
            raise ConfigError(f"no privacy budget declared for data source '{source}': declare one "
                              f"(epsilon, delta) before any DP release touches it", party=self.party, field="source")
        return float(row[0]), float(row[1])

    def spent(self, source: str) -> tuple[float, float]:
        """(epsilon, delta) charged so far against `source` (basic composition)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0) FROM ledger "
            "WHERE party=? AND source=? AND kind='charge'", (self.party, source)).fetchone()
        return float(row[0]), float(row[1])

    def charges(self, source: str | None = None) -> list[Charge]:
        """The charges, oldest first (of one source, or all)."""
        q = "SELECT seq, source, release, job, epsilon, delta, ts FROM ledger WHERE party=? AND kind='charge'"
        args: tuple[Any, ...] = (self.party,)
        if source is not None:
            q += " AND source=?"
            args += (source,)
        return [Charge(int(r[0]), r[1], r[2], r[3], float(r[4]), float(r[5]), r[6])
                for r in self._db.execute(q + " ORDER BY seq", args)]

    def head(self) -> tuple[int, str]:
        """(number of rows, hash of the last row): record it elsewhere to detect truncation."""
        row = self._db.execute("SELECT COUNT(*), (SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1) FROM ledger").fetchone()
        return int(row[0]), row[1] or _GENESIS

    def verify(self) -> int:
        """Recompute the hash chain; returns the number of rows, or raises LedgerTampered."""
        prev = _GENESIS
        n = 0
        for r in self._db.execute("SELECT seq, kind, party, source, release, job, epsilon, delta, detail, ts, "
                                  "prev_hash, hash FROM ledger ORDER BY seq"):
            if r[10] != prev or _row_hash(prev, r[1:10]) != r[11]:
                raise LedgerTampered(f"privacy ledger '{self.path}' row {r[0]} does not match its hash chain: "
                                     f"it was modified outside jointml", party=self.party, field="ledger")
            prev = r[11]
            n += 1
        return n

    # -- writing ------------------------------------------------------------------------
    def _append(self, kind: str, source: str, release: str | None, job: str | None, epsilon: float, delta: float,
                detail: dict[str, Any]) -> int:
        """Insert one row inside the caller's transaction, chained to the last row."""
        last = self._db.execute("SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        prev = last[0] if last else _GENESIS
        ts = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        fields = (kind, self.party, source, release, job, float(epsilon), float(delta),
                  json.dumps(detail, sort_keys=True, separators=(",", ":")), ts)
        cur = self._db.execute(
            "INSERT INTO ledger (kind, party, source, release, job, epsilon, delta, detail, ts, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*fields, prev, _row_hash(prev, fields)))
        return int(cur.lastrowid or 0)

    def declare(self, source: str, epsilon: float, delta: float) -> None:
        """Declare the total budget of `source` (once: a budget is never raised afterwards).

        Declaring the same budget again is a no-op; a different one is refused (the ledger
        is append-only: a new budget means a new source name, e.g. a new data release)."""
        check_amount(epsilon, delta, "budget")
        if not source:
            raise ParameterError("a data source needs a non-empty name", party=self.party, field="source")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT epsilon, delta FROM ledger WHERE party=? AND source=? AND kind='declare'",
                                   (self.party, source)).fetchone()
            if row is None:
                self._append("declare", source, None, None, epsilon, delta, {})
            elif (float(row[0]), float(row[1])) != (float(epsilon), float(delta)):
                raise ConfigError(f"data source '{source}' already has a budget (epsilon={row[0]}, delta={row[1]}); "
                                  f"a budget cannot be changed", party=self.party, field="source")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def charge_many(self, charges: Sequence[tuple[str, float, float]], *, release: str, job: str | None = None,
                    detail: dict[str, Any] | None = None, mechanism: str | None = None) -> list[Charge]:
        """Charge one release against several sources, all or nothing (one transaction)."""
        detail = {**(detail or {}), **({"mechanism": mechanism} if mechanism else {})}
        if not release:
            raise ParameterError("a charge needs a release id", party=self.party, field="release")
        self._db.execute("BEGIN IMMEDIATE")  # check and insert atomically (other processes wait)
        try:
            done = [self._existing(s, release, e, d) for s, e, d in charges]
            todo = [c for c, old in zip(charges, done) if old is None]
            bad = self.check(todo)
            if bad is not None:
                raise bad
            for source, eps, dl in todo:
                self._append("charge", source, release, job, eps, dl, dict(detail or {}))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return [old or self._existing(s, release, e, d) for (s, e, d), old in zip(charges, done)]  # type: ignore[misc]

    def _existing(self, source: str, release: str, epsilon: float, delta: float) -> Charge | None:
        """The charge already made for (source, release), checked to be the same amount."""
        r = self._db.execute("SELECT seq, source, release, job, epsilon, delta, ts FROM ledger "
                             "WHERE party=? AND source=? AND kind='charge' AND release=?",
                             (self.party, source, release)).fetchone()
        if r is None:
            return None
        if (float(r[4]), float(r[5])) != (float(epsilon), float(delta)):
            raise ParameterError(f"release '{release}' was already charged to source '{source}' with a different "
                                 f"amount (epsilon={r[4]}, delta={r[5]})", party=self.party, field="release")
        return Charge(int(r[0]), r[1], r[2], r[3], float(r[4]), float(r[5]), r[6])


def enforce(ctx: PartyContext, ledger: Ledger | None, charges: Mapping[str, Sequence[tuple[str, float, float]]],
            *, release: str, job: str | None = None) -> None:
    """Charge a joint release at every owner, or refuse it at every party before it runs.

    `charges` maps each owner party to its (source, epsilon, delta) charges; each owner
    passes its own `ledger` (other parties may pass None). Phase 1: every owner checks its
    ledger and all parties agree on the verdicts (a refusal is raised everywhere, naming the
    party and the source). Phase 2: every owner charges (atomically per owner), agreed again.
    Should phase 2 fail at one owner (a concurrent job spent its budget in between), the
    owners that charged keep their charge: the ledger errs on the side of privacy.

    >>> def prog(ctx):
    ...     led = BudgetLedger(":memory:", party=ctx.me)
    ...     led.declare("db", epsilon=1.0, delta=0.0)
    ...     need = {"alice": [("db", 0.5, 0.0)], "bob": [("db", 2.0, 0.0)]}
    ...     try:
    ...         enforce(ctx, led, need, release="r1")
    ...     except BudgetExceeded as e:
    ...         return e.party, e.source, led.spent("db")
    >>> simulate(prog, ["alice", "bob"], mode="thread")["alice"]
    ('bob', 'db', (0.0, 0.0))
    """
    from ..runtime.collectives import agree

    owners = [p for p in ctx.parties if p in charges]
    mine = list(charges.get(ctx.me, []))
    if ctx.me in charges and ledger is None:
        raise ConfigError("this party's sources are charged but it has no privacy ledger", party=ctx.me, field="ledger")
    if ledger is not None and ctx.me in charges and ledger.party != ctx.me:
        raise ConfigError(f"ledger of party '{ledger.party}' used at party '{ctx.me}'", party=ctx.me, field="ledger")

    def verdict(charge: bool) -> str | None:
        assert ledger is not None
        try:
            if charge:
                ledger.charge_many(mine, release=release, job=job)
                return None
            bad = ledger.check(ledger.pending(mine, release))
        except BudgetExceeded as e:
            bad = e
        return None if bad is None else str(bad)

    agree(ctx, owners, (lambda: verdict(False)) if ctx.me in charges else None, error=BudgetExceeded, name="dp-budget-check")
    agree(ctx, owners, (lambda: verdict(True)) if ctx.me in charges else None, error=BudgetExceeded, name="dp-budget-charge")


def _parse_source(message: str) -> str:
    """The source named in a refusal's text ("data source 'name' exceeded")."""
    try:
        return message.split("data source '", 1)[1].split("' exceeded", 1)[0]
    except IndexError:
        return ""


def _parse_remaining(message: str) -> tuple[float, float]:
    """(epsilon, delta) remaining, read back from a refusal's text ('only epsilon=.., delta=.. remain')."""
    try:
        part = message.split("only epsilon=", 1)[1].split(" remain", 1)[0]
        eps, dl = part.split(", delta=")
        return float(eps), float(dl)
    except (IndexError, ValueError):
        return (math.nan, math.nan)
