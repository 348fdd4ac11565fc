"""`jointml bench chaos`: a coordinator and three nodes on loopback, N small credit jobs
submitted at once, nodes killed at random (rate P per job) and restarted; prints one JSON
line: `figure` ("chaos"), `jobs`, `succeeded`, `failed`, `retries`, `wrong_results`
(outputs that differ from an uninterrupted run), `kills`, `recovery_seconds` (mean time from a
kill to the end of the job it hit), `seconds`, and `uninterrupted_job_seconds`, the
reference job run alone without faults (the baseline). Target (issue 13): with N = 50 and P = 0.2,
`succeeded/jobs >= 0.99` and `wrong_results == 0`.

`LocalDeployment` is the harness: certificates from a dev CA, the German credit data split
between a bank and a partner (`party_files`, the first `rows` rows of each), a SQLite job
store, the coordinator in this process (uvicorn, mutual TLS) and one `jointml node start`
*process* per party, as organisations run them. The orchestration tests use it too.

Randomness here is public (which node to kill, when): `core.prg.public_rng`.

>>> spec = credit_spec(epochs=2)
>>> [list(s)[0] for s in spec["steps"]][:3], spec["inputs"]["bank"]
(['psi', 'split', 'woe_binning'], 'bank_loans')
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["LocalDeployment", "credit_spec", "party_files", "free_port_runs", "free_ports", "run", "s3_test_server"]

PARTIES = ["bank", "partner", "dealer"]
SOURCES = {"bank": "bank_loans", "partner": "partner_features"}


def credit_spec(epochs: int = 20, name: str = "credit-small", key_bits: int = 512) -> dict[str, Any]:
    """The small credit pipeline of the orchestration tests and benchmarks (PSI, split, WOE, SS-LR, predict, AUC/KS).

    `key_bits` of the WOE binning's Paillier key: 512 needs `JOINTML_INSECURE_TEST_KEYS=1`
    (the tests set it); the benchmark uses 2048."""
    return {
        "name": name, "parties": list(PARTIES),
        "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": dict(SOURCES),
        "steps": [
            {"psi": {"key": "id", "sort_by": "bank"}},
            {"split": {"test_fraction": 0.3, "seed": 1}},
            {"woe_binning": {"label": "creditability", "pos_label": "bad", "key_bits": key_bits, "method": "chimerge",
                             "max_bins": 4, "n_prebins": 10, "label_proofs": False}},
            {"ss_lr.train": {"epochs": epochs, "batch_size": 64, "learning_rate": 1.0, "l2": 0.001, "sigmoid": "poly",
                             "seed": 1}},
            {"predict": {"to": "bank"}},
            {"evaluate": {"metrics": ["auc", "ks"]}},
        ],
    }


BANK_COLUMNS = ["creditability", "status_of_existing_checking_account", "duration_in_month", "credit_history",
                "purpose", "credit_amount", "savings_account_and_bonds", "other_installment_plans",
                "number_of_existing_credits_at_this_bank"]


def party_files(out: Path, rows: int | None = None, seed: int = 11) -> dict[str, Path]:
    """The German credit data split between a bank (id, label, its columns) and a partner (id,
    the rest), with synthetic ids, 4 % of rows missing on each side and rows shuffled (PSI
    has work to do); `rows`: only the first rows of the data set. Public data, public shuffles.

    >>> import tempfile
    >>> f = party_files(Path(tempfile.mkdtemp()), rows=50)
    >>> sorted(f), open(f["bank"]).readline().split(",")[:2]
    (['bank', 'partner'], ['id', 'creditability'])
    """
    from ..core.prg import public_rng
    from ..datasets import load_germancredit

    df = load_germancredit()
    df = df.head(rows if rows is not None else len(df)).reset_index(drop=True)  # the same entities at both
    rng = public_rng(seed)
    n = len(df)
    df.insert(0, "id", [f"C{int(v):09d}" for v in rng.choice(10**9, size=n, replace=False)])
    k = int(0.04 * n)
    bank = df[["id", *BANK_COLUMNS]].drop(index=rng.choice(n, k, replace=False))
    partner = df.drop(columns=BANK_COLUMNS).drop(index=rng.choice(n, k, replace=False))
    out.mkdir(parents=True, exist_ok=True)
    paths = {"bank": out / "bank.csv", "partner": out / "partner.csv"}
    for p, frame in (("bank", bank), ("partner", partner)):
        frame.iloc[rng.permutation(len(frame))].to_csv(paths[p], index=False)
    return paths


def free_ports(n: int) -> list[int]:
    """`n` free TCP ports on loopback (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextmanager
def s3_test_server(log: Path | None = None, timeout: float = 30.0) -> Iterator[str]:
    """moto's standalone S3 server (a *test* server, `moto[server]`) in its own process on a
    free loopback port; yields its URL (credentials: any, e.g. "test"/"test").

    `MissingDependency` when moto's server is not installed.
    """
    from ..core.optional import require

    require("moto.server", "test", feature="the S3 test server")
    port = free_ports(1)[0]
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()  # a test server: nothing to flush
        proc.wait(10)
        if log is not None:
            out.close()  # type: ignore[union-attr]


def free_port_runs(n: int, length: int) -> list[int]:
    """`n` first ports of runs of `length` consecutive free loopback ports (a party's data-plane
    ports, one per concurrent job)."""
    out: list[int] = []
    while len(out) < n:
        base = free_ports(1)[0]
        socks = []
        try:
            for k in range(length):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        if all(abs(base - b) >= length for b in out):
            out.append(base)
    return out


class LocalDeployment:
    """A coordinator (this process) and one node process per party, all under `root`.

    `auto_approve`: party -> pipeline hashes its policy approves (default: `specs` hashed, at
    every party); `staging`: party -> its node's `staging:` section; `node_options`: extra
    keys of every node.yaml (e.g. `max_jobs`); `slots`: consecutive data-plane ports reserved
    per party (one per concurrent job: set it to the nodes' `max_jobs`).
    """

    def __init__(self, root: Path, rows: int = 300, specs: list[dict] | None = None,
                 auto_approve: dict[str, list[str]] | None = None, staging: dict[str, dict] | None = None,
                 node_options: dict[str, Any] | None = None, node_timeout: float = 120.0, slots: int = 1,
                 start_nodes: bool = True):
        import yaml

        from ..jobs.spec import PipelineSpec
        from ..net.certs import create_dev_pki
        from ..orchestration.client import ApiClient
        from ..orchestration.coordinator import Coordinator
        from ..orchestration.store import JobStore

        self.root, self.node_timeout = Path(root), node_timeout
        certs = self.root / "certs"
        create_dev_pki(certs, PARTIES + ["coordinator"])
        self.files = party_files(self.root / "data", rows=rows)  # a small job: the first rows of each file
        ports = free_port_runs(len(PARTIES), slots)
        cluster = {"parties": {p: {"address": f"127.0.0.1:{ports[i]}", "cert": f"certs/{p}.crt",
                                   "key": f"certs/{p}.key"} for i, p in enumerate(PARTIES)},
                   "ca": "certs/ca.crt", "connect_timeout": 20, "recv_timeout": 60}
        (self.root / "cluster.yaml").write_text(yaml.safe_dump(cluster))
        self.store = JobStore(f"sqlite:///{self.root / 'jobs.db'}")
        self.coord = Coordinator(self.store, certs / "coordinator.crt", certs / "coordinator.key", certs / "ca.crt",
                                 port=0, node_timeout=node_timeout)
        self.coord_thread = self.coord.start_in_thread()
        self.url = f"https://127.0.0.1:{self.coord.port}"
        self.token = self.store.add_token("alice")
        self.api = ApiClient(self.url, token=self.token, ca=certs / "ca.crt")
        hashes = [PipelineSpec.from_dict(s).fingerprint() for s in (specs or [credit_spec()])]
        auto = auto_approve if auto_approve is not None else {p: hashes for p in PARTIES}
        sources = {"bank": {"bank_loans": str(self.files["bank"])},
                   "partner": {"partner_features": str(self.files["partner"])}, "dealer": {}}
        for p in PARTIES:
            node = {"party": p, "coordinator": self.url, "cluster": "cluster.yaml", "workdir": f"work/{p}",
                    "data_sources": sources[p], "policy": {"auto_approve": list(auto.get(p, []))},
                    "poll_seconds": 0.2, **(node_options or {})}
            if staging and p in staging:
                node["staging"] = staging[p]
            (self.root / f"node-{p}.yaml").write_text(yaml.safe_dump(node))
        self.procs: dict[str, subprocess.Popen] = {}
        if start_nodes:
            for p in PARTIES:
                self.start_node(p)

    def start_node(self, party: str) -> None:
        """Start `party`'s node as `jointml node start --config node-<party>.yaml` (output in node-<party>.out)."""
        with open(self.root / f"node-{party}.out", "a") as log:
            self.procs[party] = subprocess.Popen(
                [sys.executable, "-m", "jointml.cli.main", "node", "start", "--config",
                 str(self.root / f"node-{party}.yaml")], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def kill_node(self, party: str) -> None:
        """SIGKILL `party`'s node (a crash: its links drop mid-message)."""
        proc = self.procs.get(party)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def restart_coordinator(self) -> None:
        """Stop the coordinator (a crash: a new process with a new store connection) and start it again."""
        from ..orchestration.client import ApiClient
        from ..orchestration.coordinator import Coordinator
        from ..orchestration.store import JobStore

        certs, port = self.root / "certs", self.coord.port
        self.coord.stop()
        self.coord_thread.join(20)
        self.store.close()
        self.store = JobStore(f"sqlite:///{self.root / 'jobs.db'}")
        self.coord = Coordinator(self.store, certs / "coordinator.crt", certs / "coordinator.key", certs / "ca.crt",
                                 port=port, node_timeout=self.node_timeout)
        self.coord_thread = self.coord.start_in_thread()
        self.api.close()
        self.api = ApiClient(self.url, token=self.token, ca=certs / "ca.crt")

    def workdir(self, party: str) -> Path:
        """`party`'s node work directory."""
        return self.root / "work" / party

    def wait(self, cond: Any, timeout: float = 60.0, what: str = "condition") -> Any:
        """Poll `cond()` until it is truthy (returned); `TimeoutError` with the nodes' output tails."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = cond()
            if got:
                return got
            time.sleep(0.05)
        tails = "\n".join((self.root / f"node-{p}.out").read_text()[-2000:] for p in PARTIES
                          if (self.root / f"node-{p}.out").exists())
        raise TimeoutError(f"timed out waiting for {what}\n{tails}")

    def wait_state(self, job: str, states: set[str], timeout: float = 90.0) -> dict:
        """The job's status once it is in one of `states`."""
        return self.wait(lambda: (st := self.api.status(job))["state"] in states and st, timeout,
                         f"job {job} to reach {states}")

    def close(self) -> None:
        """Kill the nodes, stop the coordinator, close the store."""
        for p in list(self.procs):
            self.kill_node(p)
        self.api.close()
        self.coord.stop()
        self.coord_thread.join(20)
        self.store.close()


def _auc(status: dict) -> float | None:
    vals = [m["value"] for m in status["metrics"] if m["party"] == "bank" and m["name"] == "auc"]
    return vals[-1] if vals else None


def run(jobs: int = 50, kill_rate: float = 0.2, rows: int = 300, epochs: int = 5, seed: int = 1,
        max_retries: int = 3, timeout: float = 3600.0) -> dict[str, Any]:
    """Run the chaos figure (see the module docstring); returns its JSON row."""
    import tempfile

    from ..core.prg import public_rng

    rng = public_rng(seed)
    spec = credit_spec(epochs=epochs, name="chaos", key_bits=2048)
    with tempfile.TemporaryDirectory(prefix="jointml-chaos-") as tmp:
        dep = LocalDeployment(Path(tmp), rows=rows, specs=[spec], node_timeout=20.0)
        try:
            t0 = time.perf_counter()
            ref = dep.wait_state(dep.api.submit(spec), {"succeeded", "failed"}, timeout=600)
            plain_s = time.perf_counter() - t0
            if ref["state"] != "succeeded":
                raise RuntimeError(f"the uninterrupted reference job failed: {ref['reason']}")
            auc0 = _auc(ref)
            t0 = time.perf_counter()
            ids = [dep.api.submit(spec, max_retries=max_retries) for _ in range(jobs)]
            kills, recover = _inject(dep, ids, kill_rate, rng, t0 + timeout)
            final = {j: dep.api.status(j) for j in ids}
            secs = time.perf_counter() - t0
        finally:
            dep.close()
    done = [s for s in final.values() if s["state"] == "succeeded"]
    wrong = [s for s in done if auc0 is None or _auc(s) is None or abs(_auc(s) - auc0) > 0.01]  # type: ignore[operator]
    return {"figure": "chaos", "jobs": jobs, "kill_rate": kill_rate, "rows": rows, "epochs": epochs,
            "succeeded": len(done), "failed": sum(s["state"] == "failed" for s in final.values()),
            "unfinished": sum(s["state"] not in ("succeeded", "failed") for s in final.values()),
            "retries": sum(int(s["attempt"]) - 1 for s in final.values()), "wrong_results": len(wrong),
            "kills": kills, "recovery_seconds": round(sum(recover) / len(recover), 3) if recover else None,
            "seconds": round(secs, 3), "uninterrupted_job_seconds": round(plain_s, 3),
            "baseline": "uninterrupted_job_seconds: the reference job alone, no fault, same deployment"}


def _inject(dep: LocalDeployment, ids: list[str], kill_rate: float, rng: Any, deadline: float) -> tuple[int, list[float]]:
    """Watch the jobs; when one starts a step, kill one of its nodes with probability
    `kill_rate` (once per job) and restart it a moment later. Returns (kills, recovery times)."""
    from ..orchestration.client import CoordinatorError

    hit: dict[str, float] = {}  # job -> when it was hit
    recover: list[float] = []
    pending = set(ids)
    decided: set[str] = set()
    while pending and time.perf_counter() < deadline:
        try:
            rows = {r["id"]: r for r in dep.api.jobs()}
        except CoordinatorError:
            time.sleep(0.5)
            continue
        for j in list(pending):
            r = rows.get(j)
            if r is None:
                continue
            if r["state"] in ("succeeded", "failed", "cancelled"):
                pending.discard(j)
                if j in hit:
                    recover.append(time.perf_counter() - hit[j])
            elif r["state"] == "running" and j not in decided:
                decided.add(j)
                if rng.random() < kill_rate:
                    time.sleep(float(rng.uniform(0.0, 2.0)))  # somewhere inside the step
                    victim = PARTIES[int(rng.integers(len(PARTIES)))]
                    dep.kill_node(victim)
                    hit[j] = time.perf_counter()
                    time.sleep(0.5)
                    dep.start_node(victim)
        time.sleep(0.2)
    return len(hit), recover
