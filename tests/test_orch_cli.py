"""The orchestration CLI against a live coordinator (TLS, tokens) and a node agent: submit,
jobs, status, approve at the node (bound to the hash the node computed), cancel, retry,
logs, node hash, coordinator token, all with --json; refusals surface as one error line."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")

import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from jointml.cli.main import main  # noqa: E402
from jointml.jobs.spec import PipelineSpec  # noqa: E402
from jointml.net.certs import create_dev_pki  # noqa: E402
from jointml.orchestration.coordinator import Coordinator  # noqa: E402
from jointml.orchestration.node import NodeAgent, NodeConfig  # noqa: E402
from jointml.orchestration.store import JobStore  # noqa: E402

PARTIES = ["bank", "partner", "dealer"]
PIPELINE = {"name": "cli-test", "parties": PARTIES, "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"],
                                                           "dealer": "dealer"},
            "inputs": {"bank": "bank_loans", "partner": "partner_features"},
            "steps": [{"psi": {"key": "id"}}, {"split": {"seed": 3}}]}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("orch-cli")
    create_dev_pki(root / "certs", PARTIES + ["coordinator"])
    (root / "cluster.yaml").write_text(yaml.safe_dump({
        "parties": {p: {"address": f"127.0.0.1:{9000 + i}", "cert": f"certs/{p}.crt", "key": f"certs/{p}.key"}
                    for i, p in enumerate(PARTIES)}, "ca": "certs/ca.crt"}))
    store_url = f"sqlite:///{root / 'jobs.db'}"
    store = JobStore(store_url)
    coord = Coordinator(store, root / "certs/coordinator.crt", root / "certs/coordinator.key", root / "certs/ca.crt",
                        port=0)
    coord.start_in_thread()
    url = f"https://127.0.0.1:{coord.port}"
    token = CliRunner().invoke(main, ["coordinator", "token", "alice", "--store", store_url, "--json"]).output
    (root / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
    (root / "node-dealer.yaml").write_text(yaml.safe_dump({"party": "dealer", "coordinator": url,
                                                           "cluster": "cluster.yaml", "workdir": "work/dealer"}))
    api = {"JOINTML_COORDINATOR": url, "JOINTML_TOKEN": json.loads(token)["token"],
           "JOINTML_CA": str(root / "certs/ca.crt")}
    yield root, api, store
    coord.stop()
    store.close()


def cli(api, *args, ok=True):
    r = CliRunner().invoke(main, list(args), env=api)
    assert (r.exit_code == 0) == ok, r.output
    return json.loads(r.output) if ok and "--json" in args else r.output


def test_submit_approve_cancel_retry(env):
    root, api, store = env
    job = cli(api, "submit", str(root / "pipeline.yaml"), "--max-retries", "1", "--json")["job_id"]
    assert [j["id"] for j in cli(api, "jobs", "--json")] == [job]
    st = cli(api, "status", job, "--json")
    assert st["state"] == "awaiting_approval" and st["max_retries"] == 1 and len(st["tasks"]) == 6
    assert "awaiting_approval" in cli(api, "status", job)  # the table form
    node_yaml = str(root / "node-dealer.yaml")
    agent = NodeAgent(NodeConfig.load(node_yaml))
    agent.tick()  # the job arrives at the dealer's node: no policy covers it, so it waits for the operator
    waiting = cli(api, "approve", "--list", "--node", node_yaml, "--json")
    digest = PipelineSpec.from_dict(PIPELINE).fingerprint()
    assert [(w["job_id"], w["pipeline_hash"]) for w in waiting] == [(job, digest)]
    got = cli(api, "approve", job, "--node", node_yaml, "--json")
    assert got["approved"] and got["pipeline_hash"] == digest
    assert cli(api, "status", job, "--json")["approvals"] == []  # nothing reaches the coordinator before the node says so
    agent.tick()
    st = cli(api, "status", job, "--json")
    assert st["approvals"] == [{"party": "dealer", "approved": True, "mode": "manual", "reason": None}]
    assert cli(api, "approve", "--list", "--node", node_yaml, "--json") == []
    assert cli(api, "cancel", job, "--json")["state"] == "cancelled"
    assert "already cancelled" in cli(api, "cancel", job, ok=False)
    # cancelled before the bank and the partner approved: the retry asks every party again
    assert cli(api, "retry", job, "--json") == {"state": "awaiting_approval", "resume_from": 0}
    agent.tick()  # the dealer's operator approved this pipeline hash already: the node says so again
    assert [a["party"] for a in cli(api, "status", job, "--json")["approvals"]] == ["dealer", "dealer"]
    assert cli(api, "logs", job, "--party", "dealer", "--json") == []
    assert cli(api, "node", "hash", str(root / "pipeline.yaml"), "--json")["hash"] == digest


def test_errors_are_one_line(env):
    root, api, _ = env
    assert "no job 'nope'" in cli(api, "status", "nope", ok=False)
    bad = dict(PIPELINE, inputs={"bank": "/home/bank/loans.csv", "partner": "p"})
    (root / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert "not paths" in cli(api, "submit", str(root / "bad.yaml"), ok=False)
    assert "401" in cli(dict(api, JOINTML_TOKEN="stolen?"), "jobs", ok=False)
    assert "not waiting" in cli(api, "approve", "abc", "--node", str(root / "node-dealer.yaml"), ok=False)


def test_schedules_through_the_api(env):
    from jointml.orchestration.client import ApiClient, CoordinatorError

    root, api, store = env
    client = ApiClient(api["JOINTML_COORDINATOR"], token=api["JOINTML_TOKEN"], ca=api["JOINTML_CA"])
    got = client.request("POST", "/api/schedules", json={"name": "nightly", "cron": "30 2 * * *", "spec": PIPELINE})
    rows = client.request("GET", "/api/schedules")
    assert [(r["id"], r["cron"], r["created_by"]) for r in rows] == [(got["schedule_id"], "30 2 * * *", "alice")]
    assert rows[0]["next_run_at"].endswith("02:30:00+00:00")
    with pytest.raises(CoordinatorError, match="outside 0-59"):
        client.request("POST", "/api/schedules", json={"name": "bad", "cron": "99 * * * *", "spec": PIPELINE})
    client.close()
