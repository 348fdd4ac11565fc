"""End to end: a coordinator (uvicorn, mutual TLS) and three node processes (bank, partner,
dealer, started with `jointml node start`) run a small credit pipeline to success, with every
state visible through the API;
the coordinator's database holds no data value and no file path; nodes refuse a job their
organisation did not approve even when the coordinator says it is approved; a node killed
during a step fails the job fast, and `retry` resumes after the last checkpoint (PSI,
split and WOE binning are not run again) to the same AUC as the uninterrupted run, through a coordinator
restarted mid-step (it recovers every state from its store); the dashboard in Chromium;
API and node calls
without a token or certificate are refused."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from jointml.bench.chaos import PARTIES, LocalDeployment, credit_spec  # noqa: E402
from jointml.orchestration.client import ApiClient, CoordinatorError  # noqa: E402
from jointml.orchestration.flow import FlowManager  # noqa: E402
from jointml.orchestration.node import approve_locally, pending_jobs  # noqa: E402


class Cluster(LocalDeployment):
    """A coordinator in this process and one node process per party, in a temp dir; bank and
    partner approve the credit pipeline in advance, the dealer's operator approves by hand."""

    def __init__(self, root: Path):
        from jointml.jobs.spec import PipelineSpec

        self.approved_hash = PipelineSpec.from_dict(credit_spec()).fingerprint()
        super().__init__(root, rows=300, auto_approve={"bank": [self.approved_hash], "partner": [self.approved_hash]})

    def approve_at_dealer(self, job: str) -> None:
        self.wait(lambda: any(j["job_id"] == job for j in pending_jobs(self.workdir("dealer"))), 30,
                  "the job to wait for the dealer's approval")
        approve_locally(self.workdir("dealer"), job)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("orch"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def first_run(cluster):
    job = cluster.api.submit(credit_spec())
    st = cluster.api.status(job)
    assert st["state"] == "awaiting_approval"
    cluster.approve_at_dealer(job)
    return job, cluster.wait_state(job, {"succeeded", "failed"})


@pytest.mark.slow
def test_credit_job_runs_to_success_through_the_coordinator(cluster, first_run):
    job, st = first_run
    assert st["state"] == "succeeded", st["reason"]
    assert {t["state"] for t in st["tasks"]} == {"succeeded"} and len(st["tasks"]) == 3 * 6
    assert {(a["party"], a["mode"]) for a in st["approvals"]} == {("bank", "auto"), ("partner", "auto"),
                                                                    ("dealer", "manual")}
    metrics = {(m["party"], m["name"]): m["value"] for m in st["metrics"]}
    assert 0.6 < metrics[("bank", "auc")] <= 1.0  # published by the bank (its policy); the partner has no AUC
    assert ("partner", "auc") not in metrics and metrics[("partner", "rows_aligned")] == metrics[("bank", "rows_aligned")]
    # psi, split and WOE binning kept checkpoints at every party; the model is not checkpointed yet
    ck = {(t["step"], t["party"]): t["checkpoint"] for t in st["tasks"]}
    assert all(ck[(s, p)] for s in (0, 1, 2) for p in PARTIES) and not any(ck[(3, p)] for p in PARTIES)
    logs = cluster.api.logs(job, party="partner")
    assert [ln["step"] for ln in logs] == list(range(6)) and "psi" in logs[0]["message"]
    assert [j["id"] for j in cluster.api.jobs(state="succeeded")] == [job]


@pytest.mark.slow
def test_coordinator_store_holds_no_data_and_no_paths(cluster, first_run):
    from sqlalchemy import text

    with cluster.store.engine.connect() as c:
        tables = [r[0] for r in c.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
        dump = "\n".join(repr(list(c.execute(text(f'SELECT * FROM "{t}"')))) for t in tables)
    bank = pd.read_csv(cluster.files["bank"])
    partner = pd.read_csv(cluster.files["partner"])
    assert str(cluster.root) not in dump  # no data-source path, no work directory
    for value in list(bank["id"].head(50)) + list(partner["id"].head(50)):
        assert value not in dump  # no customer id
    tokens = set(re.findall(r"[A-Za-z0-9_.]+", dump))
    amounts = [str(v) for v in bank["credit_amount"].head(50) if v > 2100]  # distinctive (not a year, a port, ...)
    assert amounts and not tokens & set(amounts)
    assert not tokens & (set(bank["id"]) | set(partner["id"]))


@pytest.mark.slow
def test_nodes_refuse_a_job_the_coordinator_forged_approvals_for(cluster, first_run):
    job = cluster.api.submit(credit_spec(epochs=2))  # another pipeline: not in the bank's or partner's policy
    flow = FlowManager(cluster.store)
    for p in PARTIES:  # a compromised coordinator records approvals nobody gave
        flow.record_approval(job, p, approved=True, mode="manual")
    st = cluster.wait_state(job, {"failed"}, timeout=30)
    assert "refused: job not approved by" in st["reason"]
    assert {t["state"] for t in st["tasks"]} == {"cancelled"}
    for p in PARTIES:
        assert not (cluster.workdir(p) / "jobs" / job).exists()  # nothing ran, no data read


@pytest.mark.slow
def test_killed_node_fails_fast_and_retry_resumes_from_checkpoint(cluster, first_run):
    first_job, first = first_run
    job = cluster.api.submit(credit_spec())
    cluster.approve_at_dealer(job)

    def training():
        st = cluster.api.status(job)
        return any(t["step"] == 3 and t["state"] == "running" for t in st["tasks"]) or st["state"] in ("failed",
                                                                                                       "succeeded")
    cluster.wait(training, 60, "the training step to start")
    t_kill = time.monotonic()
    cluster.kill_node("partner")
    st = cluster.wait_state(job, {"failed", "succeeded"}, timeout=60)
    assert st["state"] == "failed", "the job finished before the node was killed"
    assert time.monotonic() - t_kill < 30  # fails fast: a peer's link breaks, no hang
    assert "failed step 3" in st["reason"]
    cluster.start_node("partner")
    got = cluster.api.retry(job)
    assert got["resume_from"] == 3  # after psi, split and WOE binning (checkpointed at every party)

    def training_again():
        st = cluster.api.status(job)
        return (st["attempt"] == 2 and st["state"] == "running" or st["state"] in ("failed", "succeeded")) and st
    before = cluster.wait(training_again, 60, "the retried training step to start")
    assert before["state"] == "running"
    cluster.restart_coordinator()  # mid-job: the nodes keep computing and report when it is back
    st = cluster.wait_state(job, {"succeeded", "failed"})
    assert st["state"] == "succeeded", st["reason"]
    by = {(t["step"], t["party"]): t for t in st["tasks"]}
    assert all(by[(s, p)]["attempt"] == 1 for s in (0, 1, 2) for p in PARTIES)  # PSI, split, WOE not run again
    assert all(by[(s, p)]["attempt"] == 2 for s in (3, 4, 5) for p in PARTIES)
    msgs = [ln["message"] for ln in cluster.api.logs(job, "bank")]
    assert "resumed from the checkpoint after step 2" in msgs
    assert sum(m.startswith("step 0 (psi) done") for m in msgs) == 1
    auc = {m["name"]: m["value"] for m in st["metrics"] if m["party"] == "bank" and m["step"] == 5}
    auc0 = {m["name"]: m["value"] for m in first["metrics"] if m["party"] == "bank" and m["step"] == 5}
    assert abs(auc["auc"] - auc0["auc"]) < 0.01  # same model as the uninterrupted run, within fixed-point noise


def test_calls_without_credentials_are_refused(cluster):
    import httpx

    bad = ApiClient(cluster.url, token="not-a-token", ca=cluster.root / "certs" / "ca.crt")
    with pytest.raises(CoordinatorError) as e:
        bad.jobs()
    assert e.value.status == 401
    bad.close()
    # a node endpoint reached with a valid API token but no party certificate
    with pytest.raises(CoordinatorError) as e:
        cluster.api.request("POST", "/node/poll", json={})
    assert e.value.status == 401
    # the coordinator's certificate is checked against the cluster CA
    with pytest.raises(httpx.ConnectError):
        httpx.get(cluster.url + "/healthz", verify=True)
    with pytest.raises(CoordinatorError) as e:
        cluster.api.submit({**credit_spec(), "inputs": {"bank": "/etc/passwd", "partner": "x"}})
    assert e.value.status == 400 and "not paths" in str(e.value)


def _chromium():
    pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no Chromium (Debian package 'chromium')")
    return exe


LAYOUT_JS = """() => {
  const out = [];
  const kids = [...document.querySelectorAll('main > *, header')].filter((e) => e.getBoundingClientRect().height > 0);
  for (const e of kids) { const r = e.getBoundingClientRect(); out.push([e.tagName, r.left, r.right, r.top, r.bottom]); }
  return out;
}"""
UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
  .map((e) => e.outerHTML)"""


@pytest.mark.slow
def test_dashboard_submit_approve_and_watch_in_chromium(cluster, first_run, tmp_path):
    exe = _chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
        page.goto(cluster.url + "/")  # redirects to the dashboard
        page.get_by_label("API token").fill(cluster.token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Submit a job").click()
        page.get_by_label("Pipeline YAML", exact=False).fill(yaml.safe_dump(credit_spec()))
        page.get_by_role("button", name="Submit", exact=True).click()
        page.wait_for_url("**#/job/*")
        job = page.url.split("#/job/")[1]
        expect(page.locator("#waiting")).to_contain_text("dealer")
        cluster.approve_at_dealer(job)  # the dealer's operator, at its node
        expect(page.locator("main h2 .state").first).to_have_text("succeeded", timeout=90_000)  # live, no reload
        cells = page.locator("table[aria-label='Tasks by party and step'] .state")
        expect(cells).to_have_count(18)
        assert set(cells.all_inner_texts()) == {"succeeded"}
        expect(page.locator("table[aria-label='Public metrics']")).to_contain_text("auc")
        expect(page.locator("#logs")).to_contain_text("step 5 (evaluate) done")
        expect(page.get_by_role("img", name="Public metrics between 0 and 1")).to_be_visible()
        # staged artifacts (names, digests, sizes): this deployment stages none, and says so
        expect(page.locator("#no-artifacts")).to_be_visible()
        page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
        # layout at 1280 px: nothing wider than the window, the page's blocks do not overlap
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        boxes = page.evaluate(LAYOUT_JS)
        assert all(right <= 1280 for _, _, right, _, _ in boxes), boxes
        assert all(a[4] <= b[3] + 1 for a, b in zip(boxes[1:], boxes[2:])), boxes
        assert page.evaluate(UNLABELLED_JS) == []
        # the jobs list with its filter, the nodes page
        page.get_by_role("link", name="Jobs").click()
        page.get_by_label("State", exact=True).select_option("succeeded")
        expect(page.locator("table[aria-label='Jobs']")).to_contain_text(job[:12])
        expect(page.locator("table[aria-label='Jobs'] tbody tr")).to_have_count(len(cluster.api.jobs("succeeded")))
        page.get_by_role("link", name="Nodes").click()
        expect(page.locator("table[aria-label='Nodes'] tbody tr")).to_have_count(3)
        expect(page.locator("table[aria-label='Nodes']")).not_to_contain_text("silent")
        expect(page.get_by_role("columnheader", name="Data-plane slots in use")).to_be_visible()
        expect(page.locator("table[aria-label='Nodes'] td.slots")).to_have_count(3)
        # text from the API is shown as text: a job name cannot inject markup or script
        evil = cluster.api.submit({**credit_spec(), "name": "<img src=x id=pwned onerror=alert(1)>"})
        page.get_by_role("link", name="Jobs").click()
        page.get_by_label("State", exact=True).select_option("")
        expect(page.locator("table[aria-label='Jobs']")).to_contain_text("<img src=x")
        assert page.locator("#pwned").count() == 0
        page.get_by_role("link", name="Approvals waiting").click()
        expect(page.locator("table[aria-label='Approvals waiting']")).to_contain_text("dealer")
        cluster.api.cancel(evil)
        browser.close()
    assert (tmp_path / "job.png").stat().st_size > 10_000
