"""`jointml demo --tee tecc`: the credit job trained in three attested TECC enclaves (SIMULATED TEE)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner


@pytest.fixture()
def sim_dir(tmp_path, monkeypatch):
    d = tmp_path / "tee-platform"
    monkeypatch.setenv("JOINTML_TEE_SIM_DIR", str(d))  # never touch ~/.jointml in tests
    return d


@pytest.mark.slow  # ~14 s: the whole credit job with three enclave processes
def test_tecc_credit_demo_matches_plaintext_twin(tmp_path, sim_dir, capsys):
    from jointml.demo import tecc_demo

    s = tecc_demo.run(out_dir=str(tmp_path / "out"), verbose=True)
    printed = capsys.readouterr().out
    assert s["tee"] == "tecc" and s["protocol"] == "aby3" and s["simulation"] is True
    assert s["rows_aligned"] == s["train_rows"] + s["test_rows"] and s["test_rows"] > 200
    assert s["features"]["bank"] > 0 and s["features"]["partner"] > 0
    assert s["auc"] > 0.7
    assert s["auc_gap"] <= 0.005  # same aligned rows, split, WOE and L2 objective as the plaintext twin
    assert abs(s["ks"] - s["baseline_ks"]) <= 0.05
    # three enclaves with distinct role-bound measurements; the host relayed only ciphertext
    assert len(set(s["measurements"].values())) == 3
    assert len(set(s["platforms"].values())) == 3  # one (simulated) platform per role
    assert (tmp_path / "out" / "model" / "tecc_model.bank.json").exists()
    assert s["relayed_records"] > 0 and s["relay_plaintext_found"] is False and s["enclave_bytes"] > 0
    # the SIMULATION label is printed and in the report
    assert "SIMULATION" in printed and "test AUC" in printed
    report = (tmp_path / "out" / "report.html").read_text()
    assert "SIMULATION" in report and "TECC" in report


@pytest.mark.slow  # ~13 s: the same through the CLI
def test_cli_demo_tee_tecc(tmp_path, sim_dir):
    from jointml.cli.main import main

    r = CliRunner().invoke(main, ["demo", "--tee", "tecc", "--mode", "thread", "--epochs", "200", "--json",
                                  "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output.strip().splitlines()[-1])
    assert s["tee"] == "tecc" and s["simulation"] is True and s["auc_gap"] <= 0.005
    assert "SIMULATION" in s["simulation_note"]


def test_cli_demo_tee_tecc_rejects_secureboost(tmp_path, sim_dir):
    from jointml.cli.main import main

    r = CliRunner().invoke(main, ["demo", "--tee", "tecc", "--model", "secureboost", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--tee tecc" in r.output
