"""`jointml demo --job fl`: five banks, SecAgg+ FedAvg; the summary says what the aggregator saw."""

from __future__ import annotations

from jointml.demo import fl_demo


def test_fl_demo_runs_and_reports_the_aggregator_view():
    s = fl_demo.run(mode="thread", rounds=3, verbose=False)
    assert s["banks"] == 5 and s["rounds"] == 3 and s["auc_federated"] > 0.7
    seen = s["aggregator_saw_last_round"]
    assert seen["masked"]["bank-a"] == ["uint32[50]"]  # one masked word per parameter (+ the weight)
    assert set(seen) == {"keys", "shares", "masked", "signature", "unmask"}
