"""Privacy budgets: refused before computing, persistent, append-only, charged exactly once."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from jointml.core.errors import ConfigError, ParameterError
from jointml.dp import PrivacyEvent, laplace
from jointml.dp.budget import BudgetExceeded, BudgetLedger, LedgerTampered, enforce
from jointml.runtime import simulate

pytest.importorskip("dp_accounting")


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "ledger.sqlite")


def test_over_spending_is_refused_with_the_source_and_remaining_budget(path):
    led = BudgetLedger(path, party="bank")
    led.declare("loans", epsilon=1.0, delta=1e-5)
    led.charge("loans", 0.7, 5e-6, release="r1")
    with pytest.raises(BudgetExceeded) as err:
        led.charge("loans", 0.5, 0.0, release="r2")
    msg = str(err.value)
    assert "'loans'" in msg and "epsilon=0.3" in msg and "party 'bank'" in msg
    assert err.value.source == "loans" and err.value.remaining == pytest.approx((0.3, 5e-6))
    assert led.spent("loans") == pytest.approx((0.7, 5e-6))  # nothing written by the refusal
    with pytest.raises(BudgetExceeded, match="delta"):
        led.charge("loans", 0.1, 1e-5, release="r3")  # delta is a budget too
    led.charge("loans", 0.3, 0.0, release="r4")  # exactly the rest is allowed
    assert led.remaining("loans") == pytest.approx((0.0, 5e-6))


def test_budgets_survive_a_restart_and_are_per_party_and_source(path):
    a = BudgetLedger(path, party="bank")
    a.declare("loans", 1.0, 0.0)
    a.declare("cards", 2.0, 0.0)
    a.charge("loans", 0.25, 0.0, release="r1")
    a.close()
    b = BudgetLedger(path, party="bank")
    assert b.remaining("loans") == (0.75, 0.0) and b.remaining("cards") == (2.0, 0.0)
    assert [c.release for c in b.charges()] == ["r1"]
    other = BudgetLedger(path, party="insurer")
    with pytest.raises(ConfigError, match="no privacy budget declared"):
        other.charge("loans", 0.1, 0.0, release="r2")


def test_a_release_is_charged_exactly_once(path):
    led = BudgetLedger(path, party="bank")
    led.declare("loans", 1.0, 0.0)
    first = led.charge("loans", 0.4, 0.0, release="r1", job="j")
    again = led.charge("loans", 0.4, 0.0, release="r1", job="j")  # a retry
    assert again == first and led.spent("loans") == (0.4, 0.0)
    with pytest.raises(ParameterError, match="different amount"):
        led.charge("loans", 0.5, 0.0, release="r1")
    with pytest.raises(ConfigError, match="cannot be changed"):
        led.declare("loans", 5.0, 0.0)  # no raising a budget after the fact


def test_the_ledger_is_append_only_and_tampering_is_detected(path):
    led = BudgetLedger(path, party="bank")
    led.declare("loans", 1.0, 0.0)
    led.charge("loans", 0.9, 0.0, release="r1")
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE ledger SET epsilon = 0 WHERE kind = 'charge'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM ledger WHERE kind = 'charge'")
    assert led.verify() == 2
    count, head = led.head()
    # someone drops the triggers and rewrites history: the hash chain exposes it
    raw.execute("DROP TRIGGER ledger_no_update")
    raw.execute("UPDATE ledger SET epsilon = 0.0 WHERE kind = 'charge'")
    raw.commit()
    with pytest.raises(LedgerTampered, match="row 2"):
        led.verify()
    # and a truncation changes the head recorded elsewhere
    raw.execute("DROP TRIGGER ledger_no_delete")
    raw.execute("DELETE FROM ledger WHERE kind = 'charge'")
    raw.commit()
    assert led.head() != (count, head)


def test_concurrent_charges_never_overspend(path):
    BudgetLedger(path, party="bank").declare("loans", 1.0, 0.0)
    ok, refused = [], []

    def worker(i):
        led = BudgetLedger(path, party="bank")  # one connection per thread, like separate processes
        for j in range(5):
            try:
                led.charge("loans", 0.1, 0.0, release=f"t{i}-{j}")
                ok.append(1)
            except BudgetExceeded:
                refused.append(1)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 10 and len(refused) == 10
    assert BudgetLedger(path, party="bank").spent("loans")[0] == pytest.approx(1.0)


def test_a_job_composes_its_events_and_charges_once(path):
    led = BudgetLedger(path, party="bank")
    led.declare("loans", 1.0, 1e-5)
    events = [laplace(1.0, 1.0, 0.2).event for _ in range(3)]
    c = led.charge_events("loans", events, 0.0, release="job-1")
    assert c.epsilon == pytest.approx(0.6, abs=1e-6)
    with pytest.raises(BudgetExceeded):
        led.charge_events("loans", events, 0.0, release="job-2")  # 1.2 > 1.0: refused as a whole
    assert led.spent("loans")[0] == pytest.approx(0.6, abs=1e-6)
    ev = PrivacyEvent("poisson_gaussian", sampling_rate=0.01, noise_multiplier=4.0, steps=100)
    c = led.charge_events("loans", [ev], 1e-5, release="job-3")
    assert 0 < c.epsilon < 0.4 and c.delta == 1e-5


def test_a_joint_release_is_refused_at_every_party_before_any_computation(tmp_path):
    computed = []

    def prog(ctx):
        led = BudgetLedger(str(tmp_path / f"{ctx.me}.sqlite"), party=ctx.me)
        led.declare("db", epsilon=1.0, delta=0.0)
        enforce(ctx, led, {"alice": [("db", 0.6, 0.0)], "bob": [("db", 0.6, 0.0)]}, release="q1")
        out = []
        try:
            enforce(ctx, led, {"alice": [("db", 0.3, 0.0)], "bob": [("db", 0.6, 0.0)]}, release="q2")
            computed.append(ctx.me)  # the release would run here
        except BudgetExceeded as e:
            out.append((e.party, e.source, round(e.remaining[0], 6)))
        return out, led.spent("db")

    res = simulate(prog, ["alice", "bob", "carol"], mode="thread")
    assert computed == []
    for p in ("alice", "bob", "carol"):
        assert res[p][0] == [("bob", "db", 0.4)]  # every party learns who refused and why
    assert res["alice"][1][0] == pytest.approx(0.6)  # alice was not charged for the refused release
    assert res["bob"][1][0] == pytest.approx(0.6)
