"""The dashboard in headless Chromium (Playwright), against a real coordinator (uvicorn,
mutual TLS) whose jobs were moved by node calls over its API: a job's page lists its staged
artifacts (name, SHA-256, size; never contents) and the nodes page shows the data-plane slots
that two running jobs hold at each node (distinct) and the parties' privacy budgets; the page
stays within 1280 px with 64-character digests."""

from __future__ import annotations

import hashlib
import shutil

import pytest

pytest.importorskip("fastapi")

from jointml.orchestration.store import JobStore  # noqa: E402

PARTIES = ["bank", "partner", "dealer"]
SPEC = {"name": "dash", "parties": PARTIES, "inputs": {"bank": "bank_data", "partner": "partner_data"},
        "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "steps": [{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5}}]}


@pytest.fixture()
def deployment(tmp_path):
    from jointml.net.certs import create_dev_pki
    from jointml.orchestration.client import ApiClient, NodeClient
    from jointml.orchestration.coordinator import Coordinator

    certs = tmp_path / "certs"
    create_dev_pki(certs, PARTIES + ["coordinator"])
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    coord = Coordinator(store, certs / "coordinator.crt", certs / "coordinator.key", certs / "ca.crt", port=0)
    coord.start_in_thread()
    url = f"https://127.0.0.1:{coord.port}"
    token = store.add_token("alice")
    api = ApiClient(url, token=token, ca=certs / "ca.crt")
    nodes = {p: NodeClient(url, ca=certs / "ca.crt", cert=certs / f"{p}.crt", key=certs / f"{p}.key") for p in PARTIES}
    try:
        yield url, token, api, nodes
    finally:
        for c in [api, *nodes.values()]:
            c.close()
        coord.stop()
        store.close()


def _start(api, nodes) -> str:
    """Submit a job; every node approves it and accepts its first step (the job runs and gets a slot)."""
    job = api.submit(SPEC)
    for c in nodes.values():
        c.request("POST", "/node/poll", json={})
        c.request("POST", f"/node/jobs/{job}/approval", json={"approved": True, "mode": "auto"})
    for c in nodes.values():
        got = c.request("POST", f"/node/jobs/{job}/steps/0/accept", json={"attempt": 1})
    assert got["start"] is True
    return job


@pytest.mark.slow
def test_dashboard_shows_artifacts_and_slots_in_chromium(deployment, tmp_path):
    pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no Chromium (Debian package 'chromium')")
    from playwright.sync_api import expect, sync_playwright

    from jointml.orchestration.ledger import RemoteLedger

    url, token, api, nodes = deployment
    a, b = _start(api, nodes), _start(api, nodes)
    assert sorted(api.status(j)["slot"] for j in (a, b)) == [0, 1]
    secret = b"encrypted object bytes " * 60_000  # what the node stored; only its digest and size travel
    digest = hashlib.sha256(secret).hexdigest()
    name = f"jobs/{a}/checkpoints/after-0/frame.csv.jmenc"
    nodes["bank"].request("POST", f"/node/jobs/{a}/artifacts",
                          json={"attempt": 1, "step": 0, "artifacts": [{"name": name, "sha256": digest,
                                                                        "size": len(secret)}]})
    led = RemoteLedger(nodes["partner"], "partner")
    led.declare("partner_data", 4.0, 1e-5)
    led.charge("partner_data", 1.5, 0.0, release=f"{a}/ppdt", job=a, mechanism="gaussian")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
        page.goto(url + "/dashboard")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.goto(url + f"/dashboard#/job/{a}")
        table = page.locator("table[aria-label='Artifacts']")
        expect(table).to_contain_text(name)
        expect(table).to_contain_text(digest)
        expect(table).to_contain_text("1.4 MB")
        assert "encrypted object bytes" not in page.content()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # long names and digests wrap
        page.goto(url + f"/dashboard#/job/{b}")
        expect(page.locator("#no-artifacts")).to_be_visible()
        page.get_by_role("link", name="Nodes").click()
        rows = page.locator("table[aria-label='Nodes'] tbody tr")
        expect(rows).to_have_count(3)
        for p in PARTIES:
            cell = page.locator("table[aria-label='Nodes'] tbody tr", has_text=p).locator("td.slots")
            expect(cell).to_contain_text("slot 0")
            expect(cell).to_contain_text("slot 1")
        budgets = page.locator("table[aria-label='Privacy budgets']")
        expect(budgets).to_contain_text("partner_data")
        expect(budgets).to_contain_text("2.5000")  # remaining epsilon
        page.screenshot(path=str(tmp_path / "nodes.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        browser.close()
    assert (tmp_path / "nodes.png").stat().st_size > 5_000
