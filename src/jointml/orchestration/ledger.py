"""The privacy-budget ledger in the job store, for deployments with a coordinator.

Without a coordinator each party keeps its ledger in a local SQLite file
(`jointml.dp.budget.BudgetLedger`, the default). With one, the ledger of every party lives in
the coordinator's job store (table `dp_ledger`, alembic revision v0003), so that every node
and every coordinator worker of an organisation charges the same budgets:

- `StoreLedger(store, party)`: the ledger of `party` over a `JobStore` (used inside the
  coordinator, and by tools that open the store directly);
- `RemoteLedger(client, party)`: what a node uses: the same operations through the
  coordinator's API (`/node/ledger/...`, mutual TLS: the party is the node's certificate,
  so a node reads and charges only its own organisation's sources).

Both are `jointml.dp.budget.Ledger`s: `enforce` and every DP release take them as they take
the local one.

**Atomic charges.** A charge checks the remaining budget and appends its row in one
transaction that holds the source's lock: on PostgreSQL the source's declaration row is
locked with `SELECT ... FOR UPDATE` (sources in name order, so two multi-source charges
cannot deadlock), and the sum of charges is read after the lock is granted (READ COMMITTED
reads the newest committed rows); on SQLite the store begins every write transaction with
`BEGIN IMMEDIATE`, which serialises writers. Two concurrent charges that together exceed a
budget: one is refused, naming the source and what remains, before anything is computed.
A release id is charged once per source (a unique key; a retry costs nothing twice).

**Append-only.** The class offers no update or delete, and the database refuses both (a
trigger on SQLite and PostgreSQL, and on PostgreSQL TRUNCATE too), so a compromised
coordinator process can add charges (spending budget: the safe direction) but cannot give
budget back by erasing them.

What the coordinator learns (adversary model): source names, declared budgets, each
release's (epsilon, delta), mechanism names and job ids; never data. The composition across
releases is basic (epsilons add, deltas add), as in the local ledger.

>>> from jointml.dp.budget import BudgetExceeded
>>> led = StoreLedger(JobStore("sqlite://"), party="bank")
>>> led.declare("loans", epsilon=1.0, delta=1e-6)
>>> led.charge("loans", 0.75, 0.0, release="job-1", mechanism="gaussian").mechanism
'gaussian'
>>> try:
...     led.charge("loans", 0.5, 0.0, release="job-2")
... except BudgetExceeded as e:
...     print(e.source, e.remaining)
loans (0.25, 1e-06)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.errors import ConfigError, ParameterError
from ..dp.budget import BudgetExceeded, Charge, Ledger, check_amount, refusal, totals
from .client import CoordinatorError, NodeClient
from .store import JobStore, LedgerEntry, utcnow

__all__ = ["DECLARE_RELEASE", "RemoteLedger", "StoreCharge", "StoreLedger", "ledger_summary"]

DECLARE_RELEASE = "budget"  # the release id of declaration rows (one declaration per party and source)


@dataclass(frozen=True)
class StoreCharge(Charge):
    """A charge as the job store keeps it (with its mechanism)."""

    mechanism: str | None = None


def _charge_of(r: LedgerEntry) -> StoreCharge:
    return StoreCharge(int(r.id), r.source, r.release, r.job_id, float(r.epsilon), float(r.delta), r.at.isoformat(),
                       r.mechanism)


class StoreLedger(Ledger):
    """The append-only ledger of `party` in a job store (see the module)."""

    def __init__(self, store: JobStore, party: str):
        if not party:
            raise ParameterError("a ledger needs its party's name", field="party")
        self.store, self.party = store, party

    # -- reading (each in its own read transaction) -------------------------------------------
    def budget(self, source: str) -> tuple[float, float]:
        """The declared (epsilon, delta) of `source`; ConfigError when none was declared."""
        with self.store.session(readonly=True) as s:
            return self._budget(s, source)

    def spent(self, source: str) -> tuple[float, float]:
        """(epsilon, delta) charged so far against `source`."""
        with self.store.session(readonly=True) as s:
            return self._spent(s, source)

    def charges(self, source: str | None = None) -> list[Charge]:
        """The charges, oldest first (of one source, or all)."""
        with self.store.session(readonly=True) as s:
            q = select(LedgerEntry).where(LedgerEntry.party == self.party, LedgerEntry.kind == "charge")
            if source is not None:
                q = q.where(LedgerEntry.source == source)
            return [_charge_of(r) for r in s.scalars(q.order_by(LedgerEntry.id))]

    def sources(self) -> list[str]:
        """The data sources of this party that have a declared budget."""
        with self.store.session(readonly=True) as s:
            return list(s.scalars(select(LedgerEntry.source).where(LedgerEntry.party == self.party,
                                                                   LedgerEntry.kind == "declare")
                                  .order_by(LedgerEntry.source)))

    def existing(self, source: str, release: str, epsilon: float, delta: float) -> Charge | None:
        """The charge already made for (source, release), or None; ParameterError when it was
        made with another amount (a release id names one release)."""
        with self.store.session(readonly=True) as s:
            return self._existing_in(s, source, release, epsilon, delta)

    def _existing(self, source: str, release: str, epsilon: float, delta: float) -> Charge | None:
        return self.existing(source, release, epsilon, delta)

    def _declaration(self, s: Session, source: str, lock: bool = False) -> LedgerEntry | None:
        q = select(LedgerEntry).where(LedgerEntry.party == self.party, LedgerEntry.source == source,
                                      LedgerEntry.kind == "declare")
        return s.scalars(q.with_for_update() if lock else q).first()

    def _budget(self, s: Session, source: str, lock: bool = False) -> tuple[float, float]:
        row = self._declaration(s, source, lock)
        if row is None:
            raise ConfigError(f"no privacy budget declared for data source '{source}': declare one "
                              f"(epsilon, delta) before any DP release touches it", party=self.party, field="source")
        return float(row.epsilon), float(row.delta)

    def _spent(self, s: Session, source: str) -> tuple[float, float]:
        row = s.execute(select(func.coalesce(func.sum(LedgerEntry.epsilon), 0.0),
                               func.coalesce(func.sum(LedgerEntry.delta), 0.0))
                        .where(LedgerEntry.party == self.party, LedgerEntry.source == source,
                               LedgerEntry.kind == "charge")).one()
        return float(row[0]), float(row[1])

    def _existing_in(self, s: Session, source: str, release: str, epsilon: float, delta: float) -> Charge | None:
        r = s.scalars(select(LedgerEntry).where(LedgerEntry.party == self.party, LedgerEntry.source == source,
                                                LedgerEntry.kind == "charge", LedgerEntry.release == release)).first()
        if r is None:
            return None
        if (float(r.epsilon), float(r.delta)) != (float(epsilon), float(delta)):
            raise ParameterError(f"release '{release}' was already charged to source '{source}' with a different "
                                 f"amount (epsilon={r.epsilon}, delta={r.delta})", party=self.party, field="release")
        return _charge_of(r)

    # -- writing (appends only) ---------------------------------------------------------------
    def declare(self, source: str, epsilon: float, delta: float) -> None:
        """Declare the total budget of `source` (once: the same budget again is a no-op, a
        different one is refused; a new budget means a new source name)."""
        check_amount(epsilon, delta, "budget")
        if not source or len(source) > 200:
            raise ParameterError("a data source needs a name of 1 to 200 characters", party=self.party, field="source")
        try:
            with self.store.session() as s:
                if self._declaration(s, source) is None:
                    s.add(LedgerEntry(kind="declare", party=self.party, source=source, release=DECLARE_RELEASE,
                                      job_id=None, epsilon=float(epsilon), delta=float(delta), mechanism=None,
                                      detail={}, at=utcnow()))
                    self.store.audit(s, f"ledger:{self.party}", "dp-declare", None, source=source, epsilon=epsilon,
                                     delta=delta)
                    return
        except IntegrityError:  # another worker declared it at the same moment: compare with theirs
            pass
        if self.budget(source) != (float(epsilon), float(delta)):
            be, bd = self.budget(source)
            raise ConfigError(f"data source '{source}' already has a budget (epsilon={be}, delta={bd}); "
                              f"a budget cannot be changed", party=self.party, field="source")

    def charge_many(self, charges: Sequence[tuple[str, float, float]], *, release: str, job: str | None = None,
                    detail: dict[str, Any] | None = None, mechanism: str | None = None) -> list[Charge]:
        """Charge one release against several sources, all or nothing, under the sources' locks
        (refused with `BudgetExceeded`, nothing written, when one source lacks budget)."""
        if not release or release == DECLARE_RELEASE or len(release) > 200:
            raise ParameterError(f"a charge needs a release id of 1 to 200 characters (not {DECLARE_RELEASE!r})",
                                 party=self.party, field="release")
        amounts = totals(charges)  # checks every amount before any lock is taken
        try:
            with self.store.session() as s:
                return self._charge_locked(s, list(charges), amounts, release, job, dict(detail or {}), mechanism)
        except IntegrityError as e:  # the same release charged by another worker meanwhile: it is charged once
            done = [self._existing(src, release, eps, dl) for src, eps, dl in charges]
            if all(d is not None for d in done):
                return [d for d in done if d is not None]
            raise ConfigError(f"the privacy ledger refused charge '{release}': {type(e.orig).__name__}",
                              party=self.party, field="ledger") from None

    def _charge_locked(self, s: Session, charges: list[tuple[str, float, float]],
                       amounts: dict[str, tuple[float, float]], release: str, job: str | None, detail: dict[str, Any],
                       mechanism: str | None) -> list[Charge]:
        # lock the sources' declaration rows in name order (PostgreSQL: FOR UPDATE; SQLite: the
        # transaction already holds the database's write lock), then read what they spent
        budgets = {src: self._budget(s, src, lock=True) for src in sorted(amounts)}
        done = [self._existing_in(s, src, release, eps, dl) for src, eps, dl in charges]
        todo = totals(c for c, old in zip(charges, done) if old is None)
        for src, (eps, dl) in todo.items():
            bad = refusal(src, budgets[src], self._spent(s, src), eps, dl, self.party)
            if bad is not None:
                raise bad
        now, rows = utcnow(), {}
        for src, (eps, dl) in todo.items():
            rows[src] = LedgerEntry(kind="charge", party=self.party, source=src, release=release, job_id=job,
                                    epsilon=eps, delta=dl, mechanism=mechanism, detail=detail, at=now)
            s.add(rows[src])
        s.flush()
        if todo:
            self.store.audit(s, f"ledger:{self.party}", "dp-charge", job, release=release,
                             sources=sorted(todo), epsilon=sum(e for e, _ in todo.values()))
        return [old if old is not None else _charge_of(rows[src]) for (src, _, _), old in zip(charges, done)]


def ledger_summary(store: JobStore) -> list[dict[str, Any]]:
    """Every party's sources: declared budget, spent and remaining (for the API and the dashboard).

    >>> store = JobStore("sqlite://")
    >>> StoreLedger(store, "bank").declare("loans", 2.0, 0.0)
    >>> [(r["party"], r["source"], r["remaining_epsilon"]) for r in ledger_summary(store)]
    [('bank', 'loans', 2.0)]
    """
    out = []
    with store.session(readonly=True) as s:
        decl = list(s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "declare")
                              .order_by(LedgerEntry.party, LedgerEntry.source)))
        for d in decl:
            se, sd = StoreLedger(store, d.party)._spent(s, d.source)
            n = s.scalar(select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.party == d.party, LedgerEntry.source == d.source, LedgerEntry.kind == "charge"))
            out.append({"party": d.party, "source": d.source, "epsilon": d.epsilon, "delta": d.delta,
                        "spent_epsilon": se, "spent_delta": sd, "remaining_epsilon": max(0.0, d.epsilon - se),
                        "remaining_delta": max(0.0, d.delta - sd), "charges": int(n or 0)})
    return out


class RemoteLedger(Ledger):
    """A node's ledger in the coordinator's job store, reached through the coordinator's API
    (the node's party certificate names the party; `party` must be the same name).

    A refusal comes back as `BudgetExceeded` naming the source and the remaining budget,
    exactly as the local ledger raises it.
    """

    def __init__(self, client: NodeClient, party: str):
        self.client, self.party = client, party

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Any:
        try:
            return self.client.request(method, "/node/ledger" + path, json=body, params=params)
        except CoordinatorError as e:
            msg = str(e).split(": ", 1)[-1]
            msg = msg.split(" ", 1)[1] if msg[:3].isdigit() else msg  # drop "409 "
            if e.error == "BudgetExceeded":
                raise BudgetExceeded(msg, party=self.party) from None
            if e.error in ("ConfigError", "ParameterError"):
                raise (ConfigError if e.error == "ConfigError" else ParameterError)(
                    msg, party=self.party, field="ledger") from None
            raise

    def declare(self, source: str, epsilon: float, delta: float) -> None:
        """Declare the budget of one of this party's sources at the coordinator."""
        self._call("POST", "/declare", {"source": source, "epsilon": epsilon, "delta": delta})

    def budget(self, source: str) -> tuple[float, float]:
        """The declared (epsilon, delta) of `source`."""
        r = self._call("GET", "/source", params={"source": source})
        return float(r["epsilon"]), float(r["delta"])

    def spent(self, source: str) -> tuple[float, float]:
        """(epsilon, delta) charged so far against `source`."""
        r = self._call("GET", "/source", params={"source": source})
        return float(r["spent_epsilon"]), float(r["spent_delta"])

    def charges(self, source: str | None = None) -> list[Charge]:
        """The charges, oldest first."""
        return [_from_json(c) for c in self._call("GET", "/charges", params={"source": source} if source else None)]

    def _existing(self, source: str, release: str, epsilon: float, delta: float) -> Charge | None:
        got = self._call("POST", "/existing", {"charges": [[source, epsilon, delta]], "release": release})
        return _from_json(got[0]) if got[0] is not None else None

    def pending(self, charges: Sequence[tuple[str, float, float]], release: str) -> list[tuple[str, float, float]]:
        """The charges not yet made for `release` (one call)."""
        got = self._call("POST", "/existing", {"charges": [list(c) for c in charges], "release": release})
        return [c for c, old in zip(charges, got) if old is None]

    def check(self, charges: Iterable[tuple[str, float, float]]) -> BudgetExceeded | None:
        """The refusal the charges would meet now, or None (one call, nothing written)."""
        got = self._call("POST", "/check", {"charges": [list(c) for c in charges]})
        return None if got.get("refusal") is None else BudgetExceeded(got["refusal"], party=self.party)

    def charge_many(self, charges: Sequence[tuple[str, float, float]], *, release: str, job: str | None = None,
                    detail: dict[str, Any] | None = None, mechanism: str | None = None) -> list[Charge]:
        """Charge one release against several sources at the coordinator, all or nothing."""
        got = self._call("POST", "/charge", {"charges": [list(c) for c in charges], "release": release, "job": job,
                                             "detail": dict(detail or {}), "mechanism": mechanism})
        return [_from_json(c) for c in got]


def charge_json(c: Charge) -> dict[str, Any]:
    """A charge as the API returns it.

    >>> charge_json(Charge(1, "s", "r", None, 0.5, 0.0, "t"))["epsilon"]
    0.5
    """
    return {"seq": c.seq, "source": c.source, "release": c.release, "job": c.job, "epsilon": c.epsilon,
            "delta": c.delta, "ts": c.ts, "mechanism": getattr(c, "mechanism", None)}


def _from_json(d: dict[str, Any]) -> StoreCharge:
    return StoreCharge(int(d["seq"]), str(d["source"]), str(d["release"]), d.get("job"), float(d["epsilon"]),
                       float(d["delta"]), str(d["ts"]), d.get("mechanism"))
