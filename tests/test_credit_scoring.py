"""Scoring and running across organisations: `jointml predict` uses the model of the last
run (the runner retires an earlier run's parts), refuses a folder whose parts do not belong
together, scores SecureBoost models, reports unmatched ids at the receiver only; a silent
partner stops the job with an error naming it and the step; `run` prints per-step progress
and writes one report per party, each with only what that party may see."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from jointml.cli.main import main
from jointml.jobs import PipelineSpec, predict_job, run_pipeline, simulate_pipeline
from jointml.runtime import PartyFailed, simulate

N = 80
PARTIES = ["bank", "partner", "dealer"]


def _data(tmp, extra_bank: int = 0):
    i = np.arange(N + extra_bank)
    y = np.where((np.sin(i) + 0.5 * np.cos(i * 1.3)) > 0.3, "bad", "good")
    bank = pd.DataFrame({"id": [f"C{k:04d}" for k in i], "y": y, "b1": np.sin(i), "b2": np.cos(i * 0.7)})
    partner = pd.DataFrame({"id": [f"C{k:04d}" for k in range(N)][::-1], "p1": np.cos(np.arange(N) * 1.3)[::-1]})
    bank.to_csv(tmp / "bank.csv", index=False)
    partner.to_csv(tmp / "partner.csv", index=False)
    return bank, partner


LR = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
      {"woe_binning": {"label": "y", "pos_label": "bad", "key_bits": 512, "max_bins": 3, "label_proofs": False}},
      {"ss_lr.train": {"epochs": 2, "batch_size": 32}}, {"predict": {}}, {"evaluate": {}}]
SB = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
      {"secureboost.train": {"label": "y", "pos_label": "bad", "features": "raw", "n_estimators": 1, "max_depth": 2,
                             "key_bits": 512}}, {"secureboost.predict": {}}, {"evaluate": {}}]


def _pipeline(tmp, steps, name="p.yaml"):
    doc = {"name": "t", "parties": PARTIES, "mpc": {"protocol": "semi2k", "dealer": "dealer"},
           "inputs": {"bank": "bank.csv", "partner": "partner.csv"}, "steps": steps, "output": "out"}
    (tmp / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp / name


@pytest.fixture(scope="module")
def lr_then_sb(tmp_path_factory):
    """An SS-LR run, then a SecureBoost run into the same output folder."""
    tmp = tmp_path_factory.mktemp("scoring")
    _data(tmp)
    r1 = CliRunner().invoke(main, ["run", str(_pipeline(tmp, LR)), "--mode", "thread"])
    assert r1.exit_code == 0, r1.output
    shutil.copytree(tmp / "out", tmp / "lr-out")  # the SS-LR run's outputs, before the next run retires them
    r2 = CliRunner().invoke(main, ["run", str(_pipeline(tmp, SB, "sb.yaml")), "--mode", "thread"])
    assert r2.exit_code == 0, r2.output
    return tmp, r1.output, r2.output


def test_run_prints_progress_per_step_and_epoch(lr_then_sb):
    _, out_lr, _ = lr_then_sb
    assert "[bank] psi matched 80 rows" in out_lr
    for step in ("psi", "split", "woe_binning", "ss_lr.train", "predict", "evaluate"):
        assert f"[bank] {step}" in out_lr and "start" in out_lr
    assert "epoch 1 at" in out_lr and "epoch 2 at" in out_lr
    assert "[partner]" not in out_lr  # a simulation prints at the label holder only


def test_a_new_run_retires_the_previous_model(lr_then_sb):
    tmp, _, _ = lr_then_sb
    model = tmp / "out" / "model"
    assert not list(model.glob("SSLogisticRegression.*")) and not list(model.glob("woe.*"))
    assert (tmp / "out" / "model.previous" / "SSLogisticRegression.bank.json").exists()
    assert (model / "SecureBoostClassifier.bank.json").exists()


def test_predict_scores_with_the_secureboost_model_and_names_it(lr_then_sb):
    tmp, _, _ = lr_then_sb
    res = CliRunner().invoke(main, ["predict", "--model", str(tmp / "out" / "model"), "--input", f"bank={tmp / 'bank.csv'}",
                                    "--input", f"partner={tmp / 'partner.csv'}", "--to", "bank", "--mode", "thread",
                                    "--out", str(tmp / "scores.csv")])
    assert res.exit_code == 0, res.output
    assert "scored with the secureboost model" in res.output
    scores = pd.read_csv(tmp / "scores.csv")
    assert len(scores) == N and scores["score"].between(0, 1).all() and scores["score"].std() > 0


def test_predict_refuses_parts_of_different_trainings(lr_then_sb, tmp_path):
    """A stale SS-LR part put back at the bank: every party refuses, naming the bank."""
    tmp, _, _ = lr_then_sb
    model = tmp_path / "model"
    shutil.copytree(tmp / "out" / "model", model)
    for f in ("SSLogisticRegression.bank.json", "manifest.bank.json"):
        shutil.copy(tmp / "out" / "model.previous" / f, model / f)
    res = CliRunner().invoke(main, ["predict", "--model", str(model), "--input", f"bank={tmp / 'bank.csv'}",
                                    "--input", f"partner={tmp / 'partner.csv'}", "--to", "bank", "--mode", "thread"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "party 'bank'" in res.output and "SSLogisticRegression" in res.output and "SecureBoostClassifier" in res.output


def test_unmatched_ids_are_counted_at_the_receiver_only(lr_then_sb, tmp_path):
    tmp, _, _ = lr_then_sb
    bank, _ = _data(tmp_path, extra_bank=5)  # 5 customers the partner does not know
    got = simulate(predict_job, PARTIES, mode="thread", args=(str(tmp / "out" / "model"),
                   {"bank": str(tmp_path / "bank.csv"), "partner": str(tmp_path / "partner.csv")}, "bank"))
    b, p = got["bank"], got["partner"]
    new_ids = [f"C{k:04d}" for k in range(N, N + 5)]
    assert b["unmatched_rows"] == 5 and sorted(b["unmatched_ids"]) == new_ids and b["rows"] == N
    assert p["unmatched_rows"] == 0 and "unmatched_ids" not in p and "ids" not in p and "scores" not in p
    assert not any(i in repr(p) for i in new_ids)  # the partner never sees the bank's unmatched ids
    res = CliRunner().invoke(main, ["predict", "--model", str(tmp / "out" / "model"), "--input", f"bank={tmp_path / 'bank.csv'}",
                                    "--input", f"partner={tmp_path / 'partner.csv'}", "--to", "bank", "--mode", "thread",
                                    "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output and "5 had no match" in res.output
    assert sorted(pd.read_csv(tmp_path / "s.unmatched.csv")["id"]) == new_ids


def _frozen_partner(ctx, spec):
    if ctx.me == "partner":
        time.sleep(1.2)  # a node that started but never answers in time
        return None
    return run_pipeline(ctx, spec)


def test_a_silent_partner_stops_the_job_naming_it_and_the_step(tmp_path):
    _data(tmp_path)
    spec = PipelineSpec.load(_pipeline(tmp_path, LR))
    t = time.perf_counter()
    with pytest.raises(PartyFailed) as ei:
        simulate(_frozen_partner, PARTIES, mode="thread", args=(spec,), recv_timeout=0.3)
    failures = {ei.value.party: (ei.value.error_type, ei.value.message), **{k: v[:2] for k, v in ei.value.others.items()}}
    typ, msg = failures["bank"]
    assert typ == "LinkTimeout" and "job agreement" in msg and "party 'partner' did not answer in time" in msg
    assert time.perf_counter() - t < 10


def test_simulate_pipeline_passes_the_timeout(tmp_path):
    """`jointml run --timeout` reaches the links (a job that fits in it runs normally)."""
    _data(tmp_path)
    spec = PipelineSpec.load(_pipeline(tmp_path, LR[:2]))
    res = simulate_pipeline(spec, mode="thread", verbose=False, recv_timeout=30)
    assert res["bank"]["rows_aligned"] == N


# -- reports ---------------------------------------------------------------------------------
def _text(path):
    return path.read_text()


def test_every_party_gets_its_own_report(lr_then_sb):
    tmp, _, _ = lr_then_sb
    for d in ("lr-out", "out"):
        for p in PARTIES:
            assert (tmp / d / f"report.{p}.html").exists()
    bank = _text(tmp / "lr-out" / "report.bank.html")
    assert bank.count("<svg") == 4  # ROC, KS, score distribution by class, calibration
    assert "own features only AUC" in bank  # the bank-only model's ROC beside the joint one
    assert "Gains by score decile" in bank and "Features: IV and weights" in bank
    assert "<svg" not in _text(tmp / "lr-out" / "report.partner.html")  # no scores at the partner


def test_reports_hold_only_what_their_party_may_see(lr_then_sb):
    tmp, _, _ = lr_then_sb
    bank_sum = json.loads((tmp / "lr-out" / "summary.bank.json").read_text())
    partner_sum = json.loads((tmp / "lr-out" / "summary.partner.json").read_text())
    bank, partner = _text(tmp / "lr-out" / "report.bank.html"), _text(tmp / "lr-out" / "report.partner.html")
    bank_values = [f"{bank_sum['auc']:.4f}", f"{bank_sum['ks']:.4f}"] + [f"{v:.4f}" for v in bank_sum["iv"].values() if v]
    bank_values += [f"{w:.4f}" for w in bank_sum["weights"]["bank"]]
    assert all(v in bank for v in bank_values)
    assert not any(v in partner for v in bank_values if v != "0.0000")
    partner_w = [f"{w:.4f}" for w in partner_sum["weights"]["partner"] if abs(w) > 1e-4]
    assert all(v in partner for v in partner_w) and not any(v in bank for v in partner_w)


def test_reports_are_readable_offline_and_at_1280px(lr_then_sb):
    import re

    tmp, _, _ = lr_then_sb
    for d in ("lr-out", "out"):
        for p in PARTIES:
            t = _text(tmp / d / f"report.{p}.html")
            assert "<script" not in t and not re.search(r'(src|href)="https?:', t)  # no CDN, works offline
            assert "@media print" in t
            assert all(int(w) <= 1100 for w in re.findall(r'width="(\d+)"', t))  # nothing wider than the page
            assert all("max-width:100%" in svg for svg in re.findall(r"<svg[^>]*>", t))  # charts shrink with it
            assert not re.search(r"<td>[^<]*[{}][^<]*</td>", t)  # no JSON dict dumped in a cell


REPORT_LAYOUT_JS = """() => {
  const vw = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('section, table, svg, img, pre')]
    .filter((e) => e.getBoundingClientRect().right > vw + 1).map((e) => e.tagName + ':' + e.getBoundingClientRect().right);
  const sections = [...document.querySelectorAll('section')].map((s) => [s.querySelector('h2').textContent,
    s.getBoundingClientRect().height]);
  return {scroll: document.documentElement.scrollWidth, wide, sections};
}"""


@pytest.mark.slow
def test_reports_render_in_chromium_at_1280px(lr_then_sb, tmp_path):
    """Each party's report, SS-LR and SecureBoost runs, in a real headless Chromium at 1280 px:
    every section renders with content, nothing is wider than the window (charts included), and
    the page loads nothing from the network (offline)."""
    import shutil as sh

    pytest.importorskip("playwright.sync_api")
    exe = sh.which("chromium") or sh.which("chromium-browser")
    if exe is None:
        pytest.skip("no Chromium (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    tmp, _, _ = lr_then_sb
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        for d in ("lr-out", "out"):
            for p in PARTIES:
                path = tmp / d / f"report.{p}.html"
                if not path.exists():
                    continue  # the dealer gets no report
                page.goto(path.as_uri())
                got = page.evaluate(REPORT_LAYOUT_JS)
                assert got["sections"] and all(h > 20 for _, h in got["sections"]), (d, p, got["sections"])
                assert got["scroll"] <= 1280 and got["wide"] == [], (d, p, got)
                page.screenshot(path=str(tmp_path / f"{d}-{p}.png"), full_page=True)
        browser.close()
    assert all(u.startswith("file://") for u in requests), requests


def test_secureboost_report_describes_secureboost(lr_then_sb):
    tmp, _, _ = lr_then_sb
    bank = _text(tmp / "out" / "report.bank.html")
    assert "SecureBoost: gradient-boosted trees" in bank and "Secure logistic regression" not in bank
    assert "Feature importance" in bank and "WOE binning" not in bank
    lr_bank = _text(tmp / "lr-out" / "report.bank.html")
    assert "Secure logistic regression" in lr_bank and "SecureBoost" not in lr_bank


def test_demo_report_uses_the_shared_report(tmp_path):
    from jointml.demo.credit_demo import write_report

    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.8, 0.3, 0.7, 0.4, 0.2])
    bank = {"test_scores": s.tolist(), "test_labels": y.tolist(), "auc": 0.9, "ks": 0.6, "model": "secureboost",
            "importance_gain": {"bank:a": 2.0}, "label_party": "bank", "features": {"bank": 1, "partner": 2}}
    summary = {"model": "secureboost", "protocol": "semi2k", "baseline_auc": 0.91}
    path = write_report(tmp_path / "r.html", summary, bank, {"auc": 0.91, "scores": s, "labels": y})
    t = path.read_text()
    assert "plaintext twin AUC 0.9100" in t and "SecureBoost: gradient-boosted trees" in t
    assert "bank: 1; partner: 2" in t and "SS-LR" not in t


def test_predict_as_one_node_per_party(lr_then_sb, tmp_path):
    """`jointml predict --cluster --party` at each of three nodes over mutual TLS (a SecureBoost
    model): each node names only its own file; the scores reach the bank only."""
    import socket
    import threading

    from jointml.cli.main import predict
    from jointml.net.certs import create_dev_pki

    tmp, _, _ = lr_then_sb
    create_dev_pki(tmp_path / "certs", PARTIES)
    ports = []
    for _ in PARTIES:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    doc = {"ca": "certs/ca.crt", "connect_timeout": 30, "recv_timeout": 60,
           "parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"certs/{n}.crt", "key": f"certs/{n}.key"}
                       for n, p in zip(PARTIES, ports)}}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(doc))
    own = {"bank": f"bank={tmp / 'bank.csv'}", "partner": f"partner={tmp / 'partner.csv'}"}
    errors = {}

    def node(me):
        inputs = tuple(own[p] if p == me else p for p in ("bank", "partner"))
        out = str(tmp_path / "scores.csv") if me == "bank" else None
        try:
            predict.callback(model_dir=str(tmp / "out" / "model"), inputs=inputs, to="bank", id_column="id",
                             dealer="dealer", out_path=out, unmatched_path=None, mode="thread",
                             cluster=str(tmp_path / "cluster.yaml"), party=me, recv_timeout=None)
        except Exception as e:  # noqa: BLE001
            errors[me] = e

    threads = [threading.Thread(target=node, args=(p,)) for p in PARTIES]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert not errors, errors
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == N and scores["score"].between(0, 1).all()


def test_label_holder_sees_what_the_partner_adds(lr_then_sb):
    """The bank's own-features model on the same split, beside the joint one (KS uplift)."""
    from jointml.data.metrics import roc_auc
    from jointml.data.split import public_split
    from jointml.data.woe_io import load_woe
    from jointml.jobs.components.evaluate import local_baseline_scores

    tmp, _, _ = lr_then_sb
    bank = json.loads((tmp / "lr-out" / "summary.bank.json").read_text())
    partner = json.loads((tmp / "lr-out" / "summary.partner.json").read_text())
    assert bank["local_model"] == "logistic regression on its own WOE features"
    assert bank["ks_uplift_pct"] == pytest.approx(100 * (bank["ks"] - bank["local_ks"]) / bank["local_ks"])
    assert not any(k.startswith("local") or "uplift" in k for k in partner)
    # the same rows and split, recomputed from the bank's own file and saved WOE part
    df = pd.read_csv(tmp / "bank.csv")
    tr, te = public_split(len(df), 0.3, 1)
    y = (df["y"] == "bad").to_numpy(int)
    woe = load_woe(tmp / "out" / "model.previous", "bank")  # the SS-LR run's parts, retired by the SecureBoost run
    s, _ = local_baseline_scores(df.iloc[tr], df.iloc[te], y[tr], "y", "bank", woe)
    assert roc_auc(y[te], s) == pytest.approx(bank["local_auc"], abs=1e-9)
    assert "ks_uplift_pct" in (tmp / "lr-out" / "report.bank.html").read_text()


def test_components_command_lists_parameters_and_ranges():
    res = CliRunner().invoke(main, ["components"])
    assert res.exit_code == 0
    assert "test_fraction: default 0.3; allowed 0 < x < 1" in res.output and "model secureboost" in res.output


def test_each_party_reports_the_stability_of_its_own_features(lr_then_sb):
    from jointml.data.metrics import psi
    from jointml.data.split import public_split

    tmp, _, _ = lr_then_sb
    bank = json.loads((tmp / "lr-out" / "summary.bank.json").read_text())
    partner = json.loads((tmp / "lr-out" / "summary.partner.json").read_text())
    assert set(bank["stability"]) == {"b1", "b2"} and set(partner["stability"]) == {"p1"}  # own columns only
    df = pd.read_csv(tmp / "bank.csv")  # every id matched: the aligned order is the bank's file order
    tr, te = public_split(len(df), 0.3, 1)
    assert bank["stability"]["b1"] == pytest.approx(psi(df["b1"].iloc[tr], df["b1"].iloc[te]), abs=1e-4)
    assert "Population stability" in (tmp / "lr-out" / "report.partner.html").read_text()


def test_predict_remembers_the_id_column_from_training(lr_then_sb, tmp_path):
    from jointml.jobs.saved import read_record, remember

    tmp, _, _ = lr_then_sb
    assert read_record(tmp / "out" / "model", "bank")["id_column"] == "id"  # the run's PSI key
    model = tmp_path / "model"
    shutil.copytree(tmp / "out" / "model", model)
    for p in ("bank", "partner"):  # as if trained on a key named 'cust'
        remember(model, p, id_column="cust")
        pd.read_csv(tmp / f"{p}.csv").rename(columns={"id": "cust"}).to_csv(tmp_path / f"{p}.csv", index=False)
    res = CliRunner().invoke(main, ["predict", "--model", str(model), "--input", f"bank={tmp_path / 'bank.csv'}",
                                    "--input", f"partner={tmp_path / 'partner.csv'}", "--to", "bank", "--mode", "thread",
                                    "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == ["cust", "score"]


def test_every_run_has_a_run_folder_and_runs_lists_them(lr_then_sb):
    import hashlib

    tmp, _, _ = lr_then_sb
    runs = sorted((tmp / "out" / "runs").iterdir())
    assert len(runs) == 2
    for d in runs:
        assert sorted(f.name for f in d.glob("manifest.*.json")) == [f"manifest.{p}.json" for p in sorted(PARTIES)]
        bank = json.loads((d / "manifest.bank.json").read_text())
        partner = json.loads((d / "manifest.partner.json").read_text())
        assert bank["input"]["sha256"] == hashlib.sha256((tmp / "bank.csv").read_bytes()).hexdigest()
        assert partner["input"]["sha256"] == hashlib.sha256((tmp / "partner.csv").read_bytes()).hexdigest()
        assert "auc" in bank["metrics"] and "auc" not in partner["metrics"]  # metrics stay at the label holder
        assert bank["job_fingerprint"] == partner["job_fingerprint"] and bank["run_id"] == d.name
        assert (d / "report.bank.html").exists() and set(bank["files"]) == {"report.bank.html", "summary.bank.json"}
    res = CliRunner().invoke(main, ["runs", str(tmp / "out")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 0 and len(lines) == 2
    assert "secureboost" in lines[0] and "ss_lr" in lines[1] and "auc 0." in lines[0]  # newest first


def test_an_unexpected_error_is_still_one_paragraph(lr_then_sb, tmp_path):
    tmp, _, _ = lr_then_sb
    res = CliRunner().invoke(main, ["predict", "--model", str(tmp / "out" / "model"), "--input", f"bank={tmp / 'bank.csv'}",
                                    "--input", f"partner={tmp / 'partner.csv'}", "--to", "bank", "--mode", "thread",
                                    "--out", str(tmp_path / "no-such-folder" / "s.csv")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "Error: unexpected OSError" in res.output and "--debug" in res.output
