"""The privacy-budget ledger in the job store (on SQLite and PostgreSQL): a release that
would exceed a source's budget is refused before anything is written, naming the source and
what remains; two coordinator workers charging the same source at once never overspend it
(exactly one of two charges that together exceed the budget is refused, and a charge waits
for a transaction that holds the source); a release is charged once; the ledger is
append-only in the database itself (UPDATE, DELETE and TRUNCATE refused) and offers no path
to change a row; nodes charge through the coordinator's API (mutual TLS: a node reaches its
own party's ledger only), and a joint release refused at one party is refused at every party."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("sqlalchemy")

import test_orch_store  # noqa: E402,I001 - the SQLite/PostgreSQL fixtures
from jointml.core.errors import ConfigError, ParameterError  # noqa: E402
from jointml.dp.budget import BudgetExceeded, BudgetLedger, Ledger, enforce  # noqa: E402
from jointml.orchestration.ledger import StoreLedger, ledger_summary  # noqa: E402
from jointml.orchestration.store import AuditEntry, JobStore, LedgerEntry, select, utcnow  # noqa: E402

pg_admin_url = test_orch_store.pg_admin_url
store_url = test_orch_store.store_url


def test_over_budget_release_is_refused_naming_source_and_remaining(store_url):
    store = JobStore(store_url)
    led = StoreLedger(store, "bank")
    led.declare("loans", epsilon=1.0, delta=1e-5)
    led.declare("loans", epsilon=1.0, delta=1e-5)  # the same budget again: no-op
    with pytest.raises(ConfigError, match="cannot be changed"):
        led.declare("loans", epsilon=5.0, delta=1e-5)
    c = led.charge("loans", 0.7, 1e-6, release="job-1/psi", job="job-1", mechanism="gaussian")
    assert (c.epsilon, c.delta, c.job, c.mechanism) == (0.7, 1e-6, "job-1", "gaussian")
    with pytest.raises(BudgetExceeded) as e:
        led.charge_many([("loans", 0.2, 0.0), ("loans", 0.2, 0.0)], release="job-2")  # 0.4 in all > 0.3 left
    assert e.value.source == "loans" and e.value.party == "bank"
    assert e.value.remaining == pytest.approx((0.3, 9e-6))
    assert "loans" in str(e.value) and "nothing was computed" in str(e.value)
    assert led.spent("loans") == (0.7, 1e-6) and len(led.charges()) == 1  # nothing written
    with pytest.raises(ConfigError, match="no privacy budget declared"):
        led.charge("crm", 0.1, 0.0, release="job-3")
    with pytest.raises(ParameterError):
        led.charge("loans", -0.1, 0.0, release="job-4")
    assert StoreLedger(store, "partner").sources() == []  # budgets are per party
    store.close()
    again = StoreLedger(JobStore(store_url), "bank")  # a restarted coordinator
    assert again.remaining("loans") == pytest.approx((0.3, 9e-6))
    # charged exactly once per release id: a retried release costs nothing twice
    assert again.charge("loans", 0.7, 1e-6, release="job-1/psi").seq == c.seq
    with pytest.raises(ParameterError, match="different amount"):
        again.charge("loans", 0.1, 0.0, release="job-1/psi")
    assert again.spent("loans") == (0.7, 1e-6)
    summary = ledger_summary(again.store)
    assert [(r["party"], r["source"], r["charges"]) for r in summary] == [("bank", "loans", 1)]
    with again.store.session() as s:
        assert [a.action for a in s.scalars(select(AuditEntry))] == ["dp-declare", "dp-charge"]
    again.store.close()


def test_two_concurrent_charges_over_the_budget_exactly_one_refused(store_url):
    JobStore(store_url).close()  # migrate once
    StoreLedger(JobStore(store_url), "bank").declare("loans", epsilon=1.0, delta=0.0)
    for rnd in range(3):
        stores = [JobStore(store_url, migrate=False) for _ in range(2)]  # two coordinator workers
        out = _race([StoreLedger(s, "bank") for s in stores], rnd)
        refused = [o for o in out if isinstance(o, BudgetExceeded)]
        # round 0: both fit (0.6 spent); round 1: 1.2 > 1.0, exactly one refused; round 2: both refused
        spent = StoreLedger(stores[0], "bank").spent("loans")[0]
        assert spent <= 1.0 + 1e-9
        assert len(refused) == [0, 1, 2][rnd], (rnd, out)
        for s in stores:
            s.close()
    assert StoreLedger(JobStore(store_url), "bank").spent("loans")[0] == pytest.approx(0.9)


def _race(leds: list[StoreLedger], rnd: int) -> list:
    """Both ledgers charge 0.3 of 'loans' at the same moment; each one's charge or refusal."""
    gate, out = threading.Barrier(len(leds)), [None] * len(leds)

    def charge(i: int) -> None:
        gate.wait()
        try:
            out[i] = leds[i].charge("loans", 0.3, 0.0, release=f"round-{rnd}-{i}")
        except BudgetExceeded as e:
            out[i] = e

    threads = [threading.Thread(target=charge, args=(i,)) for i in range(len(leds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_a_charge_waits_for_a_transaction_holding_the_source(store_url):
    store, other = JobStore(store_url), JobStore(store_url, migrate=False)
    led = StoreLedger(store, "bank")
    led.declare("loans", epsilon=1.0, delta=0.0)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_try(led, "late")))
    with other.session() as s:  # another coordinator worker, in the middle of its own charge
        s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "declare").with_for_update()).first()
        s.add(LedgerEntry(kind="charge", party="bank", source="loans", release="early", job_id=None, epsilon=0.8,
                          delta=0.0, mechanism="laplace", detail={}, at=utcnow()))
        s.flush()
        worker.start()
        time.sleep(0.6)
        assert worker.is_alive() and result == []  # waits: it may not read the spent budget before the commit
    worker.join(30)
    assert isinstance(result[0], BudgetExceeded) and result[0].remaining == pytest.approx((0.2, 0.0))
    assert [c.release for c in led.charges()] == ["early"]
    store.close()
    other.close()


def _try(led: Ledger, release: str):
    try:
        return led.charge("loans", 0.5, 0.0, release=release)
    except BudgetExceeded as e:
        return e


def test_ledger_is_append_only_in_the_database(store_url):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    store = JobStore(store_url)
    led = StoreLedger(store, "bank")
    led.declare("loans", epsilon=1.0, delta=0.0)
    led.charge("loans", 0.9, 0.0, release="r1")
    attempts = ["UPDATE dp_ledger SET epsilon = 0", "DELETE FROM dp_ledger WHERE kind = 'charge'"]
    if store.dialect == "postgresql":
        attempts.append("TRUNCATE dp_ledger")
    for sql in attempts:
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as c:
                c.execute(text(sql))
    with pytest.raises(DBAPIError, match="append-only"):  # through the ORM too
        with store.session() as s:
            row = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "charge")).one()
            row.epsilon = 0.0
    assert led.spent("loans") == (0.9, 0.0)  # the budget was not given back
    # no path in the API to change or remove a row
    names = [n for n in dir(StoreLedger) if not n.startswith("__")]
    assert not [n for n in names if any(w in n.lower() for w in ("update", "delete", "remove", "reset", "refund"))]
    store.close()


def test_the_local_sqlite_ledger_stays_the_default(tmp_path):
    led = BudgetLedger(tmp_path / "ledger.sqlite", party="bank")
    assert isinstance(led, Ledger)
    led.declare("loans", 1.0, 0.0)
    led.charge("loans", 0.25, 0.0, release="r", mechanism="laplace")
    assert led.charges()[0].epsilon == 0.25 and led.verify() == 2


def _simulate(prog, parties):
    from jointml.runtime import simulate

    return simulate(prog, parties, mode="thread")


def _bank_node(tmp_path, url, budgets):
    import yaml

    from jointml.orchestration.node import NodeAgent, NodeConfig

    cluster = {"parties": {p: {"address": f"127.0.0.1:{20000 + i}", "cert": f"certs/{p}.crt", "key": f"certs/{p}.key"}
                           for i, p in enumerate(("bank", "partner"))}, "ca": "certs/ca.crt"}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    cfg = NodeConfig.from_dict({"party": "bank", "coordinator": url, "cluster": "cluster.yaml", "workdir": "work/bank",
                                "data_sources": {"loans": "loans.csv"}, "policy": {"privacy_budgets": budgets}},
                               base=tmp_path)
    return NodeAgent(cfg)


def test_nodes_charge_through_the_coordinator_api(tmp_path):
    pytest.importorskip("fastapi")
    from jointml.net.certs import create_dev_pki
    from jointml.orchestration.client import NodeClient
    from jointml.orchestration.coordinator import Coordinator
    from jointml.orchestration.ledger import RemoteLedger

    certs = tmp_path / "certs"
    create_dev_pki(certs, ["bank", "partner", "coordinator"])
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    coord = Coordinator(store, certs / "coordinator.crt", certs / "coordinator.key", certs / "ca.crt", port=0)
    coord.start_in_thread()
    url = f"https://127.0.0.1:{coord.port}"
    clients = {p: NodeClient(url, ca=certs / "ca.crt", cert=certs / f"{p}.crt", key=certs / f"{p}.key")
               for p in ("bank", "partner")}
    try:
        # the bank's node: its config declares its budget, its agent charges through the API
        agent = _bank_node(tmp_path, url, {"loans": {"epsilon": 1.0, "delta": 1e-6}})
        assert agent._declare_once() is True
        bank, partner = agent.ledger, RemoteLedger(clients["partner"], "partner")
        partner.declare("features", 0.5, 0.0)
        assert bank.charge("loans", 0.4, 0.0, release="q1", job="j1", mechanism="laplace").mechanism == "laplace"
        with pytest.raises(BudgetExceeded) as e:
            bank.charge("loans", 0.7, 0.0, release="q2")
        assert e.value.source == "loans" and e.value.remaining == pytest.approx((0.6, 1e-6))
        with pytest.raises(ConfigError, match="no privacy budget declared"):
            bank.spent("features")  # the partner's source: a node sees its own party's ledger only
        # a joint release: the partner's source lacks budget, so every party refuses before computing
        need = {"bank": [("loans", 0.2, 0.0)], "partner": [("features", 0.6, 0.0)]}
        leds = {"bank": bank, "partner": partner}

        def prog(ctx):
            try:
                enforce(ctx, leds[ctx.me], need, release="joint-1")
            except BudgetExceeded as err:
                return err.party, err.source

        assert _simulate(prog, ["bank", "partner"]) == {"bank": ("partner", "features"),
                                                        "partner": ("partner", "features")}
        assert bank.spent("loans") == (0.4, 0.0) and partner.spent("features") == (0.0, 0.0)
        # the same release within budget: charged at both, once, visible in the store
        need["partner"] = [("features", 0.5, 0.0)]
        _simulate(lambda ctx: enforce(ctx, leds[ctx.me], need, release="joint-2"), ["bank", "partner"])
        assert [c.release for c in StoreLedger(store, "partner").charges()] == ["joint-2"]
        assert bank.spent("loans")[0] == pytest.approx(0.6)
        # a budget raised in the node's file is refused: the ledger keeps the first one
        agent.cfg.privacy_budgets["loans"] = (5.0, 1e-6)
        with pytest.raises(ConfigError, match="cannot be changed"):
            agent.declare_budgets()
        assert bank.budget("loans") == (1.0, 1e-6)
        agent.client.close()
    finally:
        for c in clients.values():
            c.close()
        coord.stop()
        store.close()


def test_a_revision_2_store_upgrades_in_place_keeping_its_jobs(store_url):
    from sqlalchemy import inspect

    from jointml.orchestration.flow import FlowManager
    from jointml.orchestration.store import upgrade

    old = JobStore(store_url, migrate=False)
    upgrade(old.engine, "v0002")  # a coordinator of the previous release
    assert "dp_ledger" not in inspect(old.engine).get_table_names()
    job = FlowManager(old).submit({"parties": ["bank"], "inputs": {}, "steps": ["psi"]}, user="alice")
    old.close()
    new = JobStore(store_url)  # the upgraded coordinator migrates on start
    assert {"dp_ledger", "slot_locks"} <= set(inspect(new.engine).get_table_names())
    assert FlowManager(new).status(job)["state"] == "awaiting_approval"
    StoreLedger(new, "bank").declare("loans", 1.0, 0.0)
    assert StoreLedger(new, "bank").remaining("loans") == (1.0, 0.0)
    new.close()


PPDT_STEPS = [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": "creditability"}},
              {"split": {"test_fraction": 0.3, "seed": 1}}, {"scale": {}},
              {"ppdt.train": {"pos_label": "bad", "k": 3, "epsilon": 2.0}}, {"ppdt.predict": {}}, {"evaluate": {}}]


@pytest.mark.slow
def test_a_ppdt_job_through_nodes_charges_the_partner_and_the_next_is_refused(tmp_path):
    """Three node processes and a coordinator: the ppdt job's release step charges the partner's
    source in the job store before it runs (its node declared the budget from its config); the
    same job again would exceed the budget and fails before the release, naming the source."""
    from jointml.bench.chaos import PARTIES, SOURCES, LocalDeployment

    spec = {"name": "ppdt-job", "parties": list(PARTIES), "inputs": dict(SOURCES),
            "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"}, "steps": PPDT_STEPS}
    budgets = {"partner_features": {"epsilon": 3.0, "delta": 1e-4}, "bank_loans": {"epsilon": 1.0}}
    dep = LocalDeployment(tmp_path, rows=300, specs=[spec], node_options={"privacy_budgets": budgets})
    try:
        first = dep.api.submit(spec)
        st = dep.wait_state(first, {"succeeded", "failed"}, timeout=150)
        assert st["state"] == "succeeded", st["reason"]
        partner = StoreLedger(dep.store, "partner")
        assert [(c.job, c.epsilon, c.delta) for c in partner.charges()] == [(first, 2.0, 1e-5)]
        assert StoreLedger(dep.store, "bank").charges() == []  # the label holder's columns are not released
        assert any("privacy budget of partner_features charged" in ln["message"]
                   for ln in dep.api.logs(first, party="partner"))
        second = dep.api.submit(spec)
        st = dep.wait_state(second, {"succeeded", "failed"}, timeout=150)
        assert st["state"] == "failed" and "partner_features" in st["reason"], st["reason"]
        assert "only epsilon=1" in st["reason"]
        assert st["current_step"] == 4  # refused at the release step, before it computed
        assert partner.spent("partner_features") == (2.0, 1e-5)
    finally:
        dep.close()
