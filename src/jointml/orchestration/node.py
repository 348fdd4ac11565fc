"""The node agent: one per organisation, a long-running process that takes this party's part
in the jobs its organisation approved.

A node has its party certificate (the cluster CA's; the same one its data-plane links use),
its registered **data sources** (name -> local file, or `s3://bucket/key` in the owner's
object store, read into the job's folder; a job names sources, never paths, and nothing
is uploaded), its **approval policy** (pipeline hashes approved in advance, in
`auto_approve`; any other job waits for an operator's `jointml approve JOB` at this node),
and a work directory (outputs, checkpoints, pending approvals, its own full log).

It polls the coordinator over mutual TLS, decides approvals, and for each step of an
approved job *accepts* the step and waits until every party did (gang scheduling), then
runs the registered component (`jointml.jobs.registry.COMPONENTS`) with the data plane
directly between the nodes over the cluster's mutual-TLS links (`jointml.runtime.run_party`),
saves a checkpoint (`jointml.orchestration.checkpoint`) and reports the step's state and
public metrics. It never runs code sent to it: a spec only names registered components.

What leaves the node for the coordinator (adversary model): its approval decisions, task
states, the metrics named in `publish_metrics` (default: row counts, AUC, KS), and log
lines built from step names and timings; failure reasons are `public_summary` texts (the
error class, party and field, and messages only of errors that carry no data values). The
node checks every job itself before running it: its *own* fingerprint of the spec must be
approved by its policy or its operator (the coordinator's word is not enough), and every
input it owns must be a registered source. The parties also agree on the job among
themselves before any data moves (`agree_on_job`).

>>> cfg = NodeConfig.from_dict({"party": "bank", "coordinator": "https://127.0.0.1:8443", "cluster": "/c/cluster.yaml",
...                             "workdir": "/w", "data_sources": {"loans": "/d/loans.csv"}})
>>> cfg.data_sources, cfg.publish_metrics[:2]
({'loans': '/d/loans.csv'}, ['rows_aligned', 'train_rows'])
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError, JointMLError, LinkError, public_summary
from ..jobs.runner import RunHooks
from ..runtime.persist import atomic_write
from .client import CoordinatorError, NodeClient

__all__ = ["JobStopped", "NodeAgent", "NodeConfig", "NodeHooks", "approve_locally", "pending_jobs", "run_steps"]

DEFAULT_METRICS = ["rows_aligned", "train_rows", "test_rows", "auc", "ks"]


class JobStopped(JointMLError):
    """The job was cancelled, failed elsewhere or restarted: this node stops its part."""

    safe_text = True


class GangDeferred(JointMLError):
    """A job that had not started did not gather every party in time: this node withdrew its
    acceptance and will take the next job in the common order (`_work_order`)."""

    safe_text = True


#: Seconds a node waits for the other parties of a job that has not started (plus a per-party
#: offset, so that two nodes do not give up in lockstep)
GANG_PATIENCE = 4.0


@dataclass
class NodeConfig:
    """A node's configuration (YAML; relative paths are relative to the file)."""

    party: str
    coordinator: str
    cluster: Path
    workdir: Path
    data_sources: dict[str, str] = field(default_factory=dict)
    auto_approve: list[str] = field(default_factory=list)
    publish_metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    server_name: str = "coordinator"
    poll_seconds: float = 1.0
    staging: dict[str, Any] | None = None
    max_jobs: int = 1
    #: source -> (epsilon, delta): the privacy budgets this node declares in the coordinator's ledger
    privacy_budgets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> NodeConfig:
        """Read a node YAML file."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"node config not found: {path}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: Any, base: Path | None = None) -> NodeConfig:
        """Build from a mapping; `ConfigError` names what is missing."""
        if not isinstance(raw, dict):
            raise ConfigError("a node config must be a mapping")
        for key in ("party", "coordinator", "cluster", "workdir"):
            if key not in raw:
                raise ConfigError(f"node config needs '{key}'", field=key)
        base = base or Path.cwd()

        def res(p: Any) -> Path:
            return Path(p) if Path(p).is_absolute() else base / p

        policy = dict(raw.get("policy") or {})
        return cls(party=str(raw["party"]), coordinator=str(raw["coordinator"]), cluster=res(raw["cluster"]),
                   workdir=res(raw["workdir"]),
                   data_sources={str(k): str(v) if str(v).startswith("s3://") else str(res(v))
                                 for k, v in dict(raw.get("data_sources") or {}).items()},
                   auto_approve=[str(h) for h in policy.get("auto_approve", raw.get("auto_approve", [])) or []],
                   publish_metrics=list(policy.get("publish_metrics", DEFAULT_METRICS)),
                   server_name=str(raw.get("server_name", "coordinator")),
                   poll_seconds=float(raw.get("poll_seconds", 1.0)),
                   staging=_staging_config(raw.get("staging"), base), max_jobs=int(raw.get("max_jobs", 1)),
                   privacy_budgets=_budgets_config(policy.get("privacy_budgets", raw.get("privacy_budgets"))))


def _budgets_config(raw: Any) -> dict[str, tuple[float, float]]:
    """`privacy_budgets: {source: {epsilon: .., delta: ..}}` as {source: (epsilon, delta)}.

    >>> _budgets_config({"loans": {"epsilon": 4, "delta": 1e-5}})
    {'loans': (4.0, 1e-05)}
    """
    out: dict[str, tuple[float, float]] = {}
    for source, b in dict(raw or {}).items():
        if not isinstance(b, dict) or "epsilon" not in b:
            raise ConfigError(f"privacy_budgets.{source} needs 'epsilon' (and 'delta', default 0)",
                              field=f"privacy_budgets.{source}")
        out[str(source)] = (float(b["epsilon"]), float(b.get("delta", 0.0)))
    return out


def _staging_config(raw: Any, base: Path) -> dict[str, Any] | None:
    """The `staging:` section with its paths (root, key_file) resolved against the config's folder."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("'staging' must be a mapping (backend: dir | s3, ...)", field="staging")
    out = dict(raw)
    for k in ("root", "key_file"):
        if k in out and not Path(str(out[k])).is_absolute():
            out[k] = str(base / str(out[k]))
    return out


def _approvals_dir(workdir: Path) -> Path:
    return Path(workdir) / "approvals"


def _pending_dir(workdir: Path) -> Path:
    return Path(workdir) / "pending"


def pending_jobs(workdir: str | Path) -> list[dict[str, Any]]:
    """Jobs waiting for this organisation's decision (what the operator reviews)."""
    d = _pending_dir(Path(workdir))
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []


def approve_locally(workdir: str | Path, job_id: str, approve: bool = True) -> dict[str, Any]:
    """The operator's decision on a pending job, kept at the node (`jointml approve`): bound to
    the pipeline hash the node computed when the job arrived, so a spec changed later is not
    covered."""
    wd = Path(workdir)
    pending = _pending_dir(wd) / f"{job_id}.json"
    if not pending.is_file():
        raise ConfigError(f"job {job_id} is not waiting for this node's approval (see `jointml approve --list`)",
                          field="job")
    rec = json.loads(pending.read_text())
    decision = {"job_id": job_id, "pipeline_hash": rec["pipeline_hash"], "approved": bool(approve),
                "at": time.time()}
    _approvals_dir(wd).mkdir(parents=True, exist_ok=True)
    atomic_write(_approvals_dir(wd) / f"{job_id}.json", json.dumps(decision))
    return decision


class NodeAgent:
    """The agent of one party (see the module docstring). `tick()` does one poll; `run()` loops."""

    def __init__(self, cfg: NodeConfig):
        from ..runtime.cluster import ClusterConfig

        self.cfg = cfg
        self.cluster = ClusterConfig.load(cfg.cluster)
        tls = self.cluster.tls_for(cfg.party)
        self.client = NodeClient(cfg.coordinator, ca=tls.ca, cert=tls.cert, key=tls.key, server_name=cfg.server_name)
        self.workdir = Path(cfg.workdir)
        for d in (self.workdir, _approvals_dir(self.workdir), _pending_dir(self.workdir)):
            d.mkdir(parents=True, exist_ok=True)
        self._running: dict[str, threading.Thread] = {}  # job id -> its worker (at most max_jobs)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.staging = self._open_staging()

    @property
    def ledger(self) -> Any:
        """This party's privacy ledger in the coordinator's job store (`RemoteLedger`): every DP
        release of a job this node runs charges its sources through the coordinator's API."""
        from .ledger import RemoteLedger

        return RemoteLedger(self.client, self.cfg.party)

    def declare_budgets(self) -> None:
        """Declare the budgets of `privacy_budgets` in the coordinator's ledger, for this node's
        registered data sources (an unchanged budget again is a no-op; a changed one is
        refused: budgets are never raised)."""
        for source, (eps, dl) in self.cfg.privacy_budgets.items():
            if source in self.cfg.data_sources:
                self.ledger.declare(source, eps, dl)
            else:
                self.log(f"privacy budget of '{source}' not declared: no such data source at this node")

    def _declare_once(self) -> bool:
        """Declare the budgets; False while the coordinator is unreachable (tried again next poll)."""
        try:
            self.declare_budgets()
        except CoordinatorError:
            return False
        except JointMLError as e:  # e.g. a budget changed in the file: the ledger keeps the first one
            self.log(f"privacy budgets not declared: {e}")
        return True

    def _open_staging(self) -> Any:
        """The node's `Staging` (object store + the owner's key), or None without a `staging:` section."""
        if self.cfg.staging is None:
            return None
        from .staging import Staging, load_or_create_key, make_object_store

        key_file = self.cfg.staging.get("key_file") or str(self.workdir / "staging.key")
        return Staging(make_object_store(self.cfg.staging), load_or_create_key(key_file))

    # -- local log ------------------------------------------------------------------------
    def log(self, msg: str, job_id: str | None = None) -> None:
        """Append to this node's own log (full detail; never sent)."""
        with open(self.workdir / "node.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {job_id or '-'} {msg}\n")

    # -- approvals ------------------------------------------------------------------------
    def check_job(self, spec: dict[str, Any]) -> tuple[Any, str]:
        """Parse a job's spec with this node's data sources; `(PipelineSpec, this node's hash)`."""
        from ..jobs.runner import check_wiring
        from ..jobs.spec import PipelineSpec

        me = self.cfg.party
        if me not in (spec.get("parties") or []):
            raise ConfigError(f"this node's party '{me}' is not in the job", party=me, field="parties")
        inputs = dict(spec.get("inputs") or {})
        if me in inputs and inputs[me] not in self.cfg.data_sources:
            raise ConfigError(f"no data source named {inputs[me]!r} is registered at this node", party=me,
                              field=f"inputs.{me}")
        src = self.cfg.data_sources.get(inputs.get(me, ""), "-")
        remote = src.startswith("s3://")  # read into the job's folder when the job starts (not a local path)
        local = dict(spec, inputs={p: ("-" if remote else src) if p == me else "-" for p in inputs})
        parsed = PipelineSpec.from_dict(local)
        if remote:
            parsed.inputs[me] = src
        check_wiring(parsed)
        return parsed, parsed.fingerprint()

    def approved(self, job_id: str, digest: str) -> str | None:
        """'auto' or 'manual' if this organisation approved the job with this hash, else None."""
        if digest in self.cfg.auto_approve:
            return "auto"
        f = _approvals_dir(self.workdir) / f"{job_id}.json"
        if f.is_file():
            rec = json.loads(f.read_text())
            if rec.get("approved") and rec.get("pipeline_hash") == digest:
                return "manual"
        return None

    def _decide(self, item: dict[str, Any]) -> None:
        job_id = item["job_id"]
        try:
            _, digest = self.check_job(item["spec"])
        except JointMLError as e:
            self.log(f"refused: {e}", job_id)
            self.client.request("POST", f"/node/jobs/{job_id}/approval",
                                json={"approved": False, "mode": "auto", "reason": public_summary(e, self.cfg.party,
                                                                                                  (ConfigError,))})
            return
        mode = self.approved(job_id, digest)
        refused = (_approvals_dir(self.workdir) / f"{job_id}.json").is_file() and mode is None
        if mode is not None or refused:
            self.client.request("POST", f"/node/jobs/{job_id}/approval",
                                json={"approved": mode is not None, "mode": mode or "manual",
                                      "reason": None if mode else "refused by the operator"})
            self.log(f"{'approved (' + mode + ')' if mode else 'refused'} {digest}", job_id)
            (_pending_dir(self.workdir) / f"{job_id}.json").unlink(missing_ok=True)
            return
        pending = _pending_dir(self.workdir) / f"{job_id}.json"
        if not pending.is_file():
            steps = [list(s)[0] if isinstance(s, dict) else s for s in item["spec"].get("steps", [])]
            atomic_write(pending, json.dumps({"job_id": job_id, "name": item.get("name"), "pipeline_hash": digest,
                                              "parties": item["spec"].get("parties"), "steps": steps}))
            self.log(f"waiting for the operator's approval (jointml approve {job_id})", job_id)

    # -- work -------------------------------------------------------------------------------
    def tick(self) -> None:
        """One poll of the coordinator: decide approvals, start this party's part of a job."""
        got = self.client.request("POST", "/node/poll", json={"busy": len(self._running)})
        for item in got["approvals"]:
            self._decide(item)
        for item in _work_order(got["work"]):
            if item.get("task_state") == "running":
                self._orphaned(item)
                continue
            if item.get("task_state") != "queued":
                continue
            with self._lock:
                if item["job_id"] in self._running:
                    continue  # an older attempt still finishing here: start the new one after it
                if len(self._running) >= self.cfg.max_jobs:
                    continue  # this node runs max_jobs at once: a later poll starts it
                try:
                    spec, digest = self.check_job(item["spec"])
                except JointMLError as e:
                    self._refuse(item["job_id"], public_summary(e, self.cfg.party, (ConfigError,)))
                    continue
                if self.approved(item["job_id"], digest) is None:
                    self._refuse(item["job_id"], f"job not approved by {self.cfg.party}'s organisation "
                                                 f"(pipeline hash {digest[:16]}...)")
                    continue
                worker = threading.Thread(target=self._run_job, args=(item, spec), daemon=True,
                                          name=f"job-{item['job_id'][:8]}")
                self._running[item["job_id"]] = worker
                worker.start()

    def _fetch_inputs(self, job_id: str, spec: Any) -> None:
        """A data source at `s3://bucket/key` is read from the owner's object store into the
        job's folder (the copy stays at the node) before the job starts."""
        src = spec.inputs.get(self.cfg.party)
        if not isinstance(src, str) or not src.startswith("s3://"):
            return
        from .staging import read_s3_uri

        data = read_s3_uri(src, self.cfg.staging)
        local = self.job_dir(job_id) / "inputs" / Path(src.split("/", 3)[-1]).name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        spec.inputs[self.cfg.party] = str(local)
        self.log(f"input read from the object store ({len(data)} bytes)", job_id)

    def cluster_for(self, slot: int) -> Any:
        """The cluster with every party's data-plane port moved by `slot` (a job's own links:
        concurrent jobs never share a port; the cluster file reserves `max_jobs` ports per party)."""
        import dataclasses

        if not slot:
            return self.cluster
        return dataclasses.replace(self.cluster, parties={n: dataclasses.replace(p, port=p.port + slot)
                                                          for n, p in self.cluster.parties.items()})

    def _refuse(self, job_id: str, reason: str) -> None:
        self.log(f"refused to run: {reason}", job_id)
        self.client.request("POST", f"/node/jobs/{job_id}/refuse", json={"approved": False, "reason": reason})

    def run(self) -> None:
        """Poll until `stop()`; an unreachable coordinator is retried (logged), never fatal."""
        declared = not self.cfg.privacy_budgets
        while not self._stop.is_set():
            try:
                if not declared:
                    declared = self._declare_once()
                self.tick()
            except CoordinatorError as e:
                self.log(f"poll failed: {e}")
            except Exception as e:  # one bad job or answer must not stop the node
                self.log(f"poll error: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            self._stop.wait(self.cfg.poll_seconds)

    def stop(self) -> None:
        """Stop polling (a running step finishes or fails on its own)."""
        self._stop.set()

    # -- one job ------------------------------------------------------------------------------
    def call(self, method: str, path: str, json_body: dict[str, Any], patience: float = 120.0) -> Any:
        """A call the running job depends on, retried while the coordinator is unreachable or
        failing (it may be restarting: it recovers every state from its store) for up to
        `patience` seconds; a refusal (4xx) is raised at once."""
        end, delay = time.monotonic() + patience, 0.2
        while True:
            try:
                return self.client.request(method, path, json=json_body)
            except CoordinatorError as e:
                if 0 < e.status < 500 or time.monotonic() > end:
                    raise
                self.log(f"coordinator call {path} failed ({e}); retrying")
            if self._stop.wait(delay):
                raise JobStopped("node stopping")
            delay = min(delay * 2, 2.0)

    def wait_gang(self, job_id: str, step: int, attempt: int, patience: float | None = None) -> int:
        """Accept `step` and wait until every party did; the job's data-plane slot. `JobStopped`
        if the job moved on; `GangDeferred` after `patience` seconds without the gang (the
        acceptance is withdrawn: the node takes the next job in the common order)."""
        t0 = time.monotonic()
        while True:
            if patience is not None and time.monotonic() - t0 > patience:
                got = self.call("POST", f"/node/jobs/{job_id}/steps/{step}/withdraw", {"attempt": attempt})
                if got["start"]:
                    return int(got.get("slot") or 0)
                raise GangDeferred(f"job {job_id}: step {step} did not gather every party in {patience:g} s")
            try:
                got = self.call("POST", f"/node/jobs/{job_id}/steps/{step}/accept", {"attempt": attempt})
            except CoordinatorError as e:
                if e.status == 409:
                    raise JobStopped(f"job {job_id} no longer runs step {step} of attempt {attempt}") from None
                raise
            if got["start"]:
                return int(got.get("slot") or 0)
            if self._stop.wait(0.1):
                raise JobStopped("node stopping")

    def report(self, job_id: str, step: int, attempt: int, ok: bool, message: str | None = None,
               metrics: dict[str, float] | None = None, checkpoint: bool = False) -> None:
        """Report this party's task of `step`."""
        self.call("POST", f"/node/jobs/{job_id}/steps/{step}/report",
                  {"attempt": attempt, "ok": ok, "message": message, "metrics": metrics or {}, "checkpoint": checkpoint})

    def publish_log(self, job_id: str, step: int | None, message: str, level: str = "info") -> None:
        """Publish one log line to the coordinator (and keep it locally)."""
        self.log(message, job_id)
        self.call("POST", f"/node/jobs/{job_id}/logs", {"lines": [{"step": step, "level": level, "message": message}]})

    def public_metrics(self, summary: dict[str, Any]) -> dict[str, float]:
        """The figures of `summary` this node's policy publishes (numbers only)."""
        out = {}
        for k in self.cfg.publish_metrics:
            v = summary.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = float(v)
        return out

    # -- staging ----------------------------------------------------------------------------
    def stage(self, job_id: str, step: int | None, attempt: int, local: Path, what: str) -> int:
        """Stage the files under `local` as `jobs/<job>/<what>/...` (encrypted) and record their
        digests in the job store; how many (0 without staging)."""
        if self.staging is None or not local.exists():
            return 0
        files = [local] if local.is_file() else None
        if files:
            recs = [self.staging.put(f"jobs/{job_id}/{what}", local.read_bytes())]
        else:
            recs = self.staging.put_dir(local, f"jobs/{job_id}/{what}")
        if recs:
            self.call("POST", f"/node/jobs/{job_id}/artifacts",
                      {"attempt": attempt, "step": step, "artifacts": [r.to_json() for r in recs]})
        return len(recs)

    def fetch(self, job_id: str, what: str, local: Path) -> str | None:
        """Replace `local` by the staged copy of `jobs/<job>/<what>/`, each object checked
        against the job store's digest; None, or why it cannot (a public text)."""
        import shutil

        from .staging import ArtifactRecord

        if self.staging is None:
            return None
        prefix = f"jobs/{job_id}/{what}"
        try:
            got = self.call("GET", f"/node/jobs/{job_id}/artifacts", {})
            recs = [ArtifactRecord(r["name"], r["sha256"], int(r["size"])) for r in got
                    if str(r["name"]).startswith(prefix + "/")]
            if not recs:
                return f"party {self.cfg.party} has no staged copy of {what} (nothing recorded in the job store)"
            shutil.rmtree(local, ignore_errors=True)
            self.staging.get_dir(recs, prefix, local)
        except JointMLError as e:
            self.log(f"fetching {what} from staging failed: {e}", job_id)
            return public_summary(e, self.cfg.party, (ConfigError, CoordinatorError))
        return None

    def epoch_hook(self, job_id: str, step: int, attempt: int, ckpt: Path) -> Any:
        """The per-epoch checkpoints of a training step (`jointml.orchestration.epochs`): kept in
        `ckpt/epochs-<step>/`, each epoch also staged; on a retry, fetched from staging first."""
        from .epochs import EpochCheckpoints

        where = f"checkpoints/epochs-{step}"
        local = ckpt.parent / where
        if self.staging is not None and not local.is_dir():
            self.fetch(job_id, where, local)  # nothing staged yet (a first run): no resume, no error

        def on_save(path: Path) -> None:
            self.stage(job_id, step, attempt, path, f"{where}/{path.name}")

        return EpochCheckpoints(local, on_save=on_save if self.staging is not None else None)

    def job_dir(self, job_id: str) -> Path:
        """This node's folder for a job (outputs, checkpoints)."""
        return self.workdir / "jobs" / job_id

    def _orphaned(self, item: dict[str, Any]) -> None:
        """This party's task is running at the coordinator but no worker of this process runs
        its job: an earlier process of this node died inside the step. Its peers fail the step
        when they wait for it, but not when they had finished theirs (e.g. a killed node's last
        step): report the failure so the retry policy resumes the job from its checkpoint
        instead of leaving it running forever (found by `jointml bench chaos`)."""
        with self._lock:
            if item["job_id"] in self._running:
                return  # ours, still running (or finishing)
        msg = f"the node of {self.cfg.party} restarted while running step {item['step']}"
        self.log(msg, item["job_id"])
        try:
            self.report(item["job_id"], int(item["step"]), int(item["attempt"]), ok=False, message=msg)
        except CoordinatorError as e:
            self.log(f"could not report the failure: {e}", item["job_id"])

    def _run_job(self, item: dict[str, Any], spec: Any) -> None:
        from ..runtime import run_party

        job_id, attempt, start = item["job_id"], int(item["attempt"]), int(item["step"])
        progress = {"step": start}
        spec.output = str(self.job_dir(job_id) / "out")
        try:
            self._fetch_inputs(job_id, spec)
            # a job that has not started yet is given up after a few seconds without its gang
            # (another node may have taken another job: with max_jobs 1 both would wait forever)
            patience = (max(GANG_PATIENCE, 4 * self.cfg.poll_seconds) + (sum(map(ord, self.cfg.party)) % 7) / 2
                        if item.get("state") == "queued" else None)
            slot = self.wait_gang(job_id, start, attempt, patience)
            run_party(run_steps, self.cfg.party, self.cluster_for(slot), self, job_id, attempt, start, spec, progress,
                      dict(item["spec"].get("inputs") or {}),  # the data-source names (the ledger's sources)
                      options={"jobs.log_file": str(self.job_dir(job_id) / "run.log")})  # the runner's timed lines
        except GangDeferred as e:
            self.log(f"deferred: {e}", job_id)
        except JobStopped as e:
            self.log(f"stopped: {e}", job_id)
        except Exception as e:  # report any failure of this party's part, then keep serving
            self.log(f"failed at step {progress['step']}: {e}\n{traceback.format_exc()}", job_id)
            reason = public_summary(e, self.cfg.party, (ConfigError, LinkError, JobStopped))
            try:
                self.report(job_id, progress["step"], attempt, ok=False, message=reason)
            except CoordinatorError as ce:
                self.log(f"could not report the failure: {ce}", job_id)
        finally:
            with self._lock:
                self._running.pop(job_id, None)


def _work_order(work: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs already running before queued ones, then oldest first. With one job at a time per
    node (`max_jobs: 1`), a restarted node that took a new queued job while its peers wait
    for it in a running one would deadlock both (each gang waits for the other's node); every
    node choosing in the same order avoids it."""
    return sorted(work, key=lambda w: (w.get("state") != "running", -int(w.get("step") or 0), str(w.get("created_at") or ""),
                                       str(w["job_id"])))


def run_steps(ctx: Any, agent: NodeAgent, job_id: str, attempt: int, start: int, spec: Any,
              progress: dict[str, int], sources: dict[str, str] | None = None) -> dict[str, Any]:
    """This party's run of steps `start..` of a job (every party runs it, SPMD): the pipeline
    runner itself (`jointml.jobs.runner.run_pipeline`: input checks, the job agreement, the
    steps, the outputs) with this node's `NodeHooks` (`sources`: each party's data-source name)."""
    from ..jobs.runner import run_pipeline

    summary = run_pipeline(ctx, spec, hooks=NodeHooks(agent, job_id, attempt, start, progress, sources))
    return {k: v for k, v in summary.items() if k not in ("test_scores", "test_labels")}


class NodeHooks(RunHooks):
    """What a node adds to `run_pipeline`: restore the checkpoint before `start` (fetched from
    staging, digests checked), wait for every party before each step (gang scheduling), the
    per-epoch checkpoints of training, a checkpoint after each step (staged), log lines and
    the step's report with its public metrics. The last step is reported once the outputs are
    written and staged, so a job seen succeeded has its outputs in place.

    >>> issubclass(NodeHooks, RunHooks)
    True
    """

    def __init__(self, agent: NodeAgent, job_id: str, attempt: int, start: int, progress: dict[str, int],
                 sources: dict[str, str] | None = None):
        self.agent, self.job_id, self.attempt, self.first, self.progress = agent, job_id, attempt, start, progress
        self.sources = dict(sources or {})
        self.ckpt = agent.job_dir(job_id) / "checkpoints"
        self.published: dict[str, float] = {}
        self.last: tuple[int, bool] = (start, False)

    def start(self, ctx: Any, state: Any) -> int:
        """Restore the checkpoint after step `start - 1` (every party at once); the first step to run."""
        from .checkpoint import restore_checkpoint

        if self.first > 0:
            where = f"checkpoints/after-{self.first - 1}"
            problem = self.agent.fetch(self.job_id, where, self.ckpt.parent / where)
            restore_checkpoint(ctx, state, self.ckpt / f"after-{self.first - 1}", problem=problem)
            self.agent.publish_log(self.job_id, self.first, f"resumed from the checkpoint after step {self.first - 1}")
        else:
            shutil.rmtree(self.ckpt, ignore_errors=True)  # a run from the start: no epoch of an earlier run is resumed
        self.published = self.agent.public_metrics(state.summary)  # each step publishes what it changed
        return self.first

    def before_step(self, ctx: Any, state: Any, i: int, name: str) -> None:
        """Wait for every party (gang), then set the training's per-epoch checkpoints."""
        self.progress["step"] = i
        if i > self.first:
            self.agent.wait_gang(self.job_id, i, self.attempt)
        self._charge_privacy(ctx, state, i)
        ctx.options["ml.epoch_hook"] = self.agent.epoch_hook(self.job_id, i, self.attempt, self.ckpt)

    def _charge_privacy(self, ctx: Any, state: Any, i: int) -> None:
        """A step that makes a DP release of the parties' sources charges their ledgers in the
        coordinator's job store first (every party agrees; a source without budget stops the
        step at every party before it computes). The release id names the attempt: a retried
        step releases fresh noise, so it is charged again (the safe side)."""
        from ..dp.budget import enforce

        charges = dp_release_charges(state.spec.steps, i, self.sources, state.label_party)
        if not charges:
            return
        enforce(ctx, self.agent.ledger if ctx.me in charges else None, charges,
                release=f"{self.job_id}/attempt-{self.attempt}/step-{i}", job=self.job_id)
        if ctx.me in charges:
            src, eps, dl = charges[ctx.me][0]
            self.agent.publish_log(self.job_id, i, f"privacy budget of {src} charged: epsilon {eps:g}, delta {dl:g}")

    def after_step(self, ctx: Any, state: Any, i: int, name: str) -> None:
        """Checkpoint (and stage) the run, publish a log line, report the step (the last one: in `finish`)."""
        from .checkpoint import save_checkpoint

        hook = ctx.options.pop("ml.epoch_hook", None)
        saved = save_checkpoint(ctx, state, self.ckpt / f"after-{i}")
        if saved:
            self.agent.stage(self.job_id, i, self.attempt, self.ckpt / f"after-{i}", f"checkpoints/after-{i}")
        if hook is not None and hook.found is not None:
            self.agent.log(f"epoch checkpoints announced: {hook.found}", self.job_id)
        resumed = f", resumed after epoch {hook.resumed_from}" if hook is not None and hook.resumed_from else ""
        self.agent.publish_log(self.job_id, i, f"step {i} ({name}) done in {state.timings[name]:.2f} s"
                               + (", checkpoint kept" if saved else "") + resumed)
        self.last = (i, saved)
        if i < len(state.spec.steps) - 1:
            self._report(state)

    def finish(self, ctx: Any, state: Any) -> None:
        """Stage the outputs (model parts, report, summary), then report the last step."""
        out = Path(state.spec.output)
        self.agent.stage(self.job_id, self.last[0], self.attempt, out, "out")
        self._report(state)

    def _report(self, state: Any) -> None:
        now = self.agent.public_metrics(state.summary)
        self.agent.report(self.job_id, self.last[0], self.attempt, ok=True,
                          metrics={k: v for k, v in now.items() if self.published.get(k) != v}, checkpoint=self.last[1])
        self.published = now


def dp_release_charges(steps: list[tuple[str, Any]], i: int, sources: dict[str, str],
                       label_party: str | None) -> dict[str, list[tuple[str, float, float]]]:
    """The privacy-budget charges step `i` of a pipeline makes: `{party: [(source, epsilon, delta)]}`.

    A `ppdt` model's training (`ppdt.train`, or `train` with `model: ppdt`) releases every
    partner's columns (each party with an input other than the label holder) with the step's
    (epsilon, delta); epsilon = inf is no DP release and is not charged. Other steps: none.

    >>> steps = [("psi", {}), ("ppdt.train", {"pos_label": "bad", "epsilon": 2.0})]
    >>> dp_release_charges(steps, 1, {"bank": "loans", "partner": "bureau"}, "bank")
    {'partner': [('bureau', 2.0, 1e-05)]}
    >>> dp_release_charges(steps, 0, {"bank": "loans", "partner": "bureau"}, "bank")
    {}
    """
    import inspect
    import math

    from ..jobs.registry import COMPONENTS, MODELS

    name, params = steps[i]
    comp = COMPONENTS.get(name)
    if comp is None:
        return {}
    given = {**dict(comp.fixed), **dict(params or {})}
    if (comp.alias_of or comp.name) != "train" or given.get("model") != "ppdt":
        return {}
    defaults = inspect.signature(MODELS["ppdt"].build).parameters
    eps = float(given.get("epsilon", defaults["epsilon"].default))
    delta = float(given.get("delta", defaults["delta"].default))
    if not math.isfinite(eps):
        return {}
    return {p: [(src, eps, delta)] for p, src in sorted(sources.items()) if p != label_party}
