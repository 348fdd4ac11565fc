"""`jointml bench api`: the coordinator's REST API under concurrent clients.

Starts a coordinator as its own process (`jointml coordinator start`, HTTPS, a SQLite job
store in a temp dir), submits `jobs` jobs, then drives it from `processes` client processes
of `clients / processes` threads each (one keep-alive HTTPS connection per client), for
`seconds` seconds per figure. Rows (JSON):

- `api` (status polling, the issue's figure): each client polls `GET /api/jobs/{id}` of a
  random job every `interval` seconds (a dashboard's poll; default 1 s, the clients spread
  over the interval): `p50_ms`, `p99_ms`, `requests_per_second`, `errors`; target p99 <=
  50 ms at 100 clients;
- `api_saturated`: the same clients polling back to back (no pause): the throughput limit
  (latency is then queueing: clients / throughput);
- `api_submit`: `POST /api/jobs` by `submit_clients` clients (each a database write);
- the baseline in each row, `healthz_p50_ms` / `healthz_p99_ms`: `GET /healthz` (TLS, HTTP and
  the server, no token check, no database) with the same clients: the floor of any request.

Randomness (which job a client polls) is public: `core.prg.public_rng`.

>>> _percentiles([1.0, 2.0, 3.0, 4.0])
(2.5, 3.97)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["run"]

SPEC = {"name": "bench-api", "parties": ["bank", "partner", "dealer"],
        "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": {"bank": "bank_loans", "partner": "partner_features"},
        "steps": [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3, "seed": 1}}]}


def _percentiles(lat: list[float]) -> tuple[float, float]:
    import numpy as np

    if not lat:
        return float("nan"), float("nan")
    a = np.asarray(lat)
    return round(float(np.percentile(a, 50)), 3), round(float(np.percentile(a, 99)), 3)


def _client_proc(url: str, token: str, ca: str, kind: str, threads: int, seconds: float, job_ids: list[str],
                 seed: int, interval: float = 0.0) -> tuple[list[float], int]:
    """One client process: `threads` clients doing `kind` requests for `seconds`, each every
    `interval` seconds (0: back to back); (latencies ms, errors)."""
    import threading

    from ..core.prg import public_rng
    from ..orchestration.client import ApiClient, CoordinatorError

    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start_at = time.monotonic() + 0.5  # every thread connected before the clock starts
    end_at = start_at + seconds

    def worker(k: int) -> None:
        rng = public_rng(seed * 1000 + k)
        api = ApiClient(url, token=token, ca=ca, timeout=30)
        api.request("GET", "/healthz")  # connect (TLS handshake) before measuring
        mine: list[float] = []
        bad = 0
        next_at = start_at + (k * interval / max(threads, 1) if interval else 0.0)  # clients spread over the interval
        while time.monotonic() < end_at:
            wait = next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            next_at += interval
            t = time.perf_counter()
            try:
                if kind == "status":
                    api.request("GET", f"/api/jobs/{job_ids[int(rng.integers(len(job_ids)))]}")
                elif kind == "submit":
                    api.request("POST", "/api/jobs", json={"spec": SPEC})
                else:
                    api.request("GET", "/healthz")
                mine.append((time.perf_counter() - t) * 1000)
            except CoordinatorError:
                bad += 1
        api.close()
        with lock:
            lat.extend(mine)
            errors[0] += bad

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, errors[0]


def _drive(url: str, token: str, ca: str, kind: str, clients: int, processes: int, seconds: float,
           job_ids: list[str], interval: float = 0.0) -> dict[str, Any]:
    procs = max(1, min(processes, clients))
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    import multiprocessing

    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as ex:
        futs = [ex.submit(_client_proc, url, token, ca, kind, n, seconds, job_ids, i + 1, interval)
                for i, n in enumerate(per)]
        got = [f.result() for f in futs]
    lat = [x for g in got for x in g[0]]
    p50, p99 = _percentiles(lat)
    return {"p50_ms": p50, "p99_ms": p99, "requests": len(lat), "requests_per_second": round(len(lat) / seconds, 1),
            "errors": sum(g[1] for g in got)}


def _start_coordinator(root: Path) -> tuple[subprocess.Popen, str, str, str]:
    from ..net.certs import create_dev_pki
    from ..orchestration.store import JobStore
    from .chaos import free_ports

    certs = root / "certs"
    create_dev_pki(certs, ["bank", "partner", "dealer", "coordinator"])
    db = f"sqlite:///{root / 'jobs.db'}"
    store = JobStore(db)
    token = store.add_token("bench")
    store.close()
    port = free_ports(1)[0]
    log = open(root / "coordinator.out", "w")  # noqa: SIM115 (the process keeps it)
    proc = subprocess.Popen([sys.executable, "-m", "jointml.cli.main", "coordinator", "start", "--store", db,
                             "--cert", str(certs / "coordinator.crt"), "--key", str(certs / "coordinator.key"),
                             "--ca", str(certs / "ca.crt"), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ))
    return proc, f"https://127.0.0.1:{port}", token, str(certs / "ca.crt")


def run(clients: int = 100, seconds: float = 10.0, jobs: int = 50, processes: int = 4,
        submit_clients: int = 10, interval: float = 1.0) -> list[dict[str, Any]]:
    """The rows of the API figure (see the module docstring)."""
    from ..orchestration.client import ApiClient, CoordinatorError

    with tempfile.TemporaryDirectory(prefix="jointml-bench-api-") as tmp:
        proc, url, token, ca = _start_coordinator(Path(tmp))
        try:
            api = ApiClient(url, token=token, ca=ca)
            end = time.monotonic() + 60
            while True:
                try:
                    api.request("GET", "/healthz")
                    break
                except CoordinatorError:
                    if time.monotonic() > end or proc.poll() is not None:
                        raise RuntimeError("the coordinator did not start") from None
                    time.sleep(0.2)
            ids = [api.submit(SPEC) for _ in range(jobs)]
            api.close()
            base = _drive(url, token, ca, "healthz", clients, processes, min(seconds, 5.0), ids, interval)
            status = _drive(url, token, ca, "status", clients, processes, seconds, ids, interval)
            closed = _drive(url, token, ca, "status", clients, processes, seconds, ids, 0.0)
            submit = _drive(url, token, ca, "submit", submit_clients, min(processes, submit_clients), seconds, ids)
        finally:
            proc.terminate()
            proc.wait(20)
    floor = {"healthz_p50_ms": base["p50_ms"], "healthz_p99_ms": base["p99_ms"],
             "healthz_requests_per_second": base["requests_per_second"]}
    return [{"figure": "api", "request": "GET /api/jobs/{id}", "clients": clients, "poll_interval_s": interval,
             "jobs": jobs, "seconds": seconds, **status, **floor},
            {"figure": "api_saturated", "request": "GET /api/jobs/{id}", "clients": clients, "poll_interval_s": 0,
             "jobs": jobs, "seconds": seconds, **closed, **floor},
            {"figure": "api_submit", "request": "POST /api/jobs", "clients": submit_clients, "seconds": seconds,
             **submit, **floor}]
