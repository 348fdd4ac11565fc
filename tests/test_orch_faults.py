"""Fault injection through a real deployment (a coordinator and three node processes on
loopback; the bank reads its input from and stages its artifacts in S3 — moto's standalone
test server, a separate process — the partner in a directory with a quota, the dealer in a
plain directory):

- a staged job: every checkpoint, epoch and output is recorded in the job store with the
  SHA-256 of the stored object, and what the object stores hold is ciphertext;
- a full disk at the partner (its quota used up by other files) fails the step fast with a
  one-paragraph reason naming the party and the step; after room is made, `retry` finishes
  the job with the uninterrupted run's AUC, and the store is consistent (no task left running,
  every attempt's states recorded);
- a dropped link mid-training (the partner's node killed during SS-LR's epochs, and its
  work directory lost) fails the job fast; the restarted node fetches its checkpoints from
  staging (digests checked) and `retry` resumes the training after the last epoch every
  party saved, ending with the uninterrupted run's AUC;
- a staged object changed in S3 makes the resume fail at every party, naming the bank;
- two jobs at once on the same nodes (`max_jobs: 2`): they run at the same time on distinct
  data-plane ports, in their own work directories, and each ends with the reference AUC.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("fastapi")
pytest.importorskip("boto3")
pytest.importorskip("moto.server", reason="moto[server] (the `test` extra) is not installed")

from jointml.bench.chaos import PARTIES, LocalDeployment, credit_spec, s3_test_server  # noqa: E402
from jointml.orchestration.staging import make_object_store  # noqa: E402

EPOCHS = 30
QUOTA = 4_000_000
pytestmark = pytest.mark.slow


def _auc(st: dict) -> float:
    return next(m["value"] for m in st["metrics"] if m["party"] == "bank" and m["name"] == "auc")


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    with s3_test_server(root / "moto.log") as s3:
        staging = {
            "bank": {"backend": "s3", "bucket": "bank-artifacts", "endpoint_url": s3, "access_key_id": "test",
                     "secret_access_key": "test", "create_bucket": True, "key_file": str(root / "keys" / "bank.key")},
            "partner": {"backend": "dir", "root": str(root / "staging" / "partner"), "quota_bytes": QUOTA,
                        "key_file": str(root / "keys" / "partner.key")},
            "dealer": {"backend": "dir", "root": str(root / "staging" / "dealer")},
        }
        d = LocalDeployment(root, rows=300, specs=[credit_spec(EPOCHS)], staging=staging, node_timeout=30,
                            node_options={"max_jobs": 2}, slots=2, start_nodes=False)
        d.s3_url, d.staging_cfg = s3, staging
        # the bank's data source is a file in its own bucket (read by its node, never uploaded elsewhere)
        raw = make_object_store({**staging["bank"], "bucket": "bank-data"})
        raw.put("loans/bank.csv", d.files["bank"].read_bytes())
        cfg = yaml.safe_load((root / "node-bank.yaml").read_text())
        cfg["data_sources"] = {"bank_loans": "s3://bank-data/loans/bank.csv"}
        (root / "node-bank.yaml").write_text(yaml.safe_dump(cfg))
        for p in PARTIES:
            d.start_node(p)
        try:
            yield d
        finally:
            d.close()


@pytest.fixture(scope="module")
def reference(dep):
    job = dep.api.submit(credit_spec(EPOCHS))
    return job, dep.wait_state(job, {"succeeded", "failed"}, timeout=240)


def test_staged_job_records_digests_of_ciphertext_objects(dep, reference):
    job, st = reference
    assert st["state"] == "succeeded", st["reason"]
    recs = dep.api.request("GET", f"/api/jobs/{job}/artifacts")
    by_party = {p: [r for r in recs if r["party"] == p] for p in PARTIES}
    names = {r["name"] for r in by_party["bank"]}
    assert f"jobs/{job}/checkpoints/after-0/checkpoint.json" in names
    assert any(n.startswith(f"jobs/{job}/checkpoints/epochs-3/epoch-") for n in names)
    assert any(n.startswith(f"jobs/{job}/out/") for n in names)
    frame = dep.files["bank"].read_text().splitlines()[1].split(",")[0]  # a customer id of the bank
    for p in PARTIES:
        store = make_object_store(dep.staging_cfg[p])
        for r in by_party[p]:
            blob = store.get(r["name"])
            assert hashlib.sha256(blob).hexdigest() == r["sha256"] and len(blob) == r["size"]
            assert frame.encode() not in blob and b"creditability" not in blob  # ciphertext only
    assert str(dep.root) not in repr(recs)  # names, never paths
    assert "input read from the object store" in (dep.workdir("bank") / "node.log").read_text()


def test_full_disk_fails_the_step_naming_party_and_step_then_retry_finishes(dep, reference):
    _, ref = reference
    junk = Path(dep.staging_cfg["partner"]["root"]) / "other-files.bin"
    used = sum(p.stat().st_size for p in junk.parent.rglob("*") if p.is_file())
    junk.write_bytes(b"\0" * (QUOTA - used - 100))  # the partner's disk filled by something else
    job = dep.api.submit(credit_spec(EPOCHS))
    t0 = time.monotonic()
    st = dep.wait_state(job, {"failed", "succeeded"}, timeout=120)
    assert st["state"] == "failed" and time.monotonic() - t0 < 60
    reason = st["reason"]
    assert reason.startswith("partner failed step 0 (psi): StorageFull at party 'partner'"), reason
    assert "is full" in reason and "\n" not in reason and str(dep.root) not in reason
    assert not any(t["state"] == "running" for t in st["tasks"])
    assert {t["state"] for t in st["tasks"] if t["party"] == "partner" and t["step"] == 0} == {"failed"}
    junk.unlink()  # the operator makes room
    got = dep.api.retry(job)
    assert got["resume_from"] == 0  # step 0 was not checkpointed at the partner
    st = dep.wait_state(job, {"failed", "succeeded"}, timeout=240)
    assert st["state"] == "succeeded", st["reason"]
    assert {t["attempt"] for t in st["tasks"]} == {2} and {t["state"] for t in st["tasks"]} == {"succeeded"}
    assert abs(_auc(st) - _auc(ref)) < 0.01
    moves = [(t["from"], t["to"]) for t in st["transitions"] if t["party"] is None]
    assert moves[-4:] == [("running", "failed"), ("failed", "queued"), ("queued", "running"), ("running", "succeeded")]


def _epochs_saved(dep, job: str, party: str) -> int:
    recs = dep.api.request("GET", f"/api/jobs/{job}/artifacts", params={"party": party})
    return len([r for r in recs if "/epochs-3/epoch-" in r["name"]])


def test_dropped_link_mid_training_resumes_after_the_last_saved_epoch(dep, reference):
    _, ref = reference
    job = dep.api.submit(credit_spec(EPOCHS))
    dep.wait(lambda: all(_epochs_saved(dep, job, p) >= 3 for p in PARTIES) or
             dep.api.status(job)["state"] in ("failed", "succeeded"), 180, "three epochs saved at every party")
    dep.kill_node("partner")  # its links drop mid-message
    t0 = time.monotonic()
    st = dep.wait_state(job, {"failed", "succeeded"}, timeout=60)
    assert st["state"] == "failed", "the job finished before the node was killed"
    assert time.monotonic() - t0 < 30  # fails fast, no hang
    assert "failed step 3 (ss_lr.train)" in st["reason"]
    shutil.rmtree(dep.workdir("partner") / "jobs" / job)  # and its local checkpoints are lost
    dep.start_node("partner")
    assert dep.api.retry(job)["resume_from"] == 3
    st = dep.wait_state(job, {"failed", "succeeded"}, timeout=240)
    assert st["state"] == "succeeded", st["reason"]
    msgs = [ln["message"] for ln in dep.api.logs(job, "partner")]
    resumed = [m for m in msgs if "resumed after epoch" in m]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 3, msgs  # not from epoch 0
    assert "resumed from the checkpoint after step 2" in msgs  # fetched from staging: the local copy was gone
    assert abs(_auc(st) - _auc(ref)) < 0.01


def test_tampered_staged_checkpoint_fails_the_resume_naming_the_owner(dep):
    job = dep.api.submit(credit_spec(EPOCHS))
    dep.wait(lambda: _epochs_saved(dep, job, "bank") >= 1 or dep.api.status(job)["state"] in ("failed", "succeeded"),
             180, "training to start")
    dep.api.cancel(job)
    dep.wait_state(job, {"cancelled"})
    s3 = make_object_store(dep.staging_cfg["bank"])
    name = f"jobs/{job}/checkpoints/after-2/checkpoint.json"
    blob = bytearray(s3.get(name))
    blob[-1] ^= 1
    s3.put(name, bytes(blob))  # the object store changes one bit
    time.sleep(1.0)  # the nodes notice the cancellation
    dep.api.retry(job)
    st = dep.wait_state(job, {"failed", "succeeded"}, timeout=120)
    assert st["state"] == "failed"
    assert "cannot resume" in st["reason"] and "ArtifactTampered at party 'bank'" in st["reason"], st["reason"]


def test_two_jobs_run_at_once_on_every_node_without_cross_talk(dep, reference):
    _, ref = reference
    jobs = [dep.api.submit(credit_spec(EPOCHS)), dep.api.submit(credit_spec(EPOCHS))]
    sts = [dep.wait_state(j, {"succeeded", "failed"}, timeout=300) for j in jobs]
    assert [s["state"] for s in sts] == ["succeeded", "succeeded"], [s["reason"] for s in sts]

    def running(st):  # when the job went running and when it left it (job-level transitions)
        at = [(t["to"], t["at"]) for t in st["transitions"] if t["party"] is None]
        return next(a for s, a in at if s == "running"), next(a for s, a in at if s == "succeeded")

    (s0, e0), (s1, e1) = running(sts[0]), running(sts[1])
    assert max(s0, s1) < min(e0, e1)  # they overlapped
    assert sorted(s["slot"] for s in sts) == [0, 1]  # on distinct data-plane ports
    for st in sts:
        assert abs(_auc(st) - _auc(ref)) < 0.01  # no cross-talk: each is the reference job
        recs = dep.api.request("GET", f"/api/jobs/{st['id']}/artifacts")
        assert recs and all(r["name"].startswith(f"jobs/{st['id']}/") for r in recs)
    for p in PARTIES:
        dirs = {j: dep.workdir(p) / "jobs" / j for j in jobs}
        assert all((d / "out" / f"summary.{p}.json").is_file() for d in dirs.values())
