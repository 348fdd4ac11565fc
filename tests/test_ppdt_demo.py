"""`jointml demo --job ppdt`: the partner's PPDT releases reach the bank, the bank's AUC on
them stays below the raw-data AUC and above the bank's own features alone (the release carries
signal), the report carries the utility curve as a chart (one line per k, the raw-data line),
the partner's ledger is charged once per finite-epsilon release (a re-run costs nothing twice)
and the release past the budget is refused naming the source."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

from jointml.demo import ppdt_demo  # noqa: E402


def test_small_curve_report_and_ledger(tmp_path):
    s = ppdt_demo.run(mode="thread", out_dir=tmp_path, verbose=False, ks=(2, 16), epsilons=(8.0, math.inf))
    assert [(r["k"], r["epsilon"]) for r in s["curve"]] == [(2, 8.0), (2, "inf"), (16, 8.0), (16, "inf")]
    X, y, cut = ppdt_demo._data()
    bank_only = ppdt_demo._auc(X[:, :cut], y, int(0.8 * len(y)))
    for r in s["curve"]:
        assert r["auc"] <= s["raw_auc"] + 0.02  # a transform of the partner's columns adds no information
    assert max(r["auc"] for r in s["curve"] if r["epsilon"] == "inf") > bank_only + 0.01
    led = s["ledger"]
    assert led["charges"] == 2 and led["spent"][0] == pytest.approx(16.0) and led["remaining"][0] == pytest.approx(0.0)
    assert "german_credit_partner" in s["refused"] and "nothing was computed" in s["refused"]
    page = (tmp_path / "ppdt_report.html").read_text()
    svg = page[page.index("<svg"): page.index("</svg>")]
    assert svg.count("<polyline") == 2 and "raw data AUC" in svg and "stroke-dasharray" in svg
    assert json.loads((tmp_path / "ppdt_summary.json").read_text())["raw_auc"] == s["raw_auc"]
    # a re-run of the demo charges the same release ids: each is charged once
    from jointml.dp.budget import BudgetLedger

    led_file = tmp_path / ppdt_demo._ledger_name((2, 16), (8.0, math.inf))
    ledger = BudgetLedger(led_file, party="partner")
    first = ledger.charges()[0]
    assert ledger.charge(ppdt_demo.SOURCE, first.epsilon, first.delta, release=first.release).seq == first.seq
    assert len(ledger.charges()) == 2 and ledger.verify() == 3

@pytest.mark.slow
def test_cli_demo_ppdt_full_curve(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jointml.cli.main", "demo", "--job", "ppdt", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "k=16 epsilon=inf" in out.stdout and "Report with the utility curve" in out.stdout
    s = json.loads((tmp_path / "ppdt_summary.json").read_text())
    assert len(s["curve"]) == 24 and s["ledger"]["charges"] == 20 and s["seconds"] < 60
    page = (tmp_path / "ppdt_report.html").read_text()
    assert page.count("<polyline") == 4
