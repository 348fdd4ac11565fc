"""bench fl: both time figures (the serialised wall clock and the per-party critical path), and the
aggregator's straggler rule (stragglers.collect) with answers arriving out of order."""

from __future__ import annotations

import time

import pytest

from jointml.bench.fl import run
from jointml.core.errors import LinkTimeout
from jointml.ml.fl.stragglers import collect
from jointml.ml.fl.timing import StageClock, critical_path


def test_bench_reports_serialised_and_critical_path_figures():
    r = run(clients=4, dropout=0.25, params=300, rounds=1, mode="thread", timeout=0.3)
    for k in ("seconds_per_round", "plain_seconds_per_round", "critical_path_seconds_per_round",
              "plain_critical_path_seconds_per_round", "time_ratio", "critical_path_time_ratio"):
        assert r[k] > 0, k
    # one client of four drops: both figures hold the aggregator's wait, as wall time
    assert r["critical_path_seconds_per_round"] >= 0.3 and r["plain_critical_path_seconds_per_round"] >= 0.3
    # the critical path is at most the serialised wall clock (a sum of per-stage maxima of CPU times)
    assert r["critical_path_seconds_per_round"] <= r["seconds_per_round"] + 0.05
    cpu = r["cpu_seconds_per_round"]["secure"]
    assert cpu["client_cpu_max"]["secagg:shares"] >= cpu["client_cpu_mean"]["secagg:shares"] > 0
    assert cpu["aggregator_cpu"]["waited"] >= 0.3


def test_critical_path_adds_the_slowest_client_per_stage():
    assert critical_path({"a": 0.1}, [{"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 2.0}]) == pytest.approx(3.1)
    c = StageClock()
    c.enter("busy")
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.02:
        pass
    c.enter("idle")
    time.sleep(0.05)  # blocked: no CPU
    snap = c.snapshot()
    assert snap["busy"] >= 0.02 and snap["idle"] < 0.02


def test_collect_takes_answers_out_of_order_and_drops_the_silent_after_the_timeout():
    # answers come in reverse order, one client never answers; the wait ends `timeout` after the last
    start = time.monotonic()
    due = {"a": 0.15, "b": 0.10, "c": 0.05, "d": float("inf")}

    def recv(c, wait):  # like a link: blocks up to `wait` for the message due at start + due[c]
        left = start + due[c] - time.monotonic()
        if left > wait:
            time.sleep(wait)
            raise LinkTimeout("silent", party=c)
        time.sleep(max(0.0, left))
        return c.upper()

    clock = StageClock()
    got, silent = collect(recv, ["a", "b", "c", "d"], start_timeout=5.0, timeout=0.3, clock=clock)
    elapsed = time.monotonic() - start
    assert got == {"a": "A", "b": "B", "c": "C"}
    assert silent == ["d"]
    assert 0.15 + 0.3 <= elapsed < 0.15 + 0.3 + 0.6  # the last answer plus `timeout` (+ a busy machine's slack)
    assert 0.3 <= clock.waited < 0.9
