"""`jointml bench fl`: federated learning with SecAgg+ beside plain FedAvg, in the same run.

N clients and one aggregator train an MLP of about `params` parameters (default 100,000:
64 inputs, one hidden layer sized to fit, 10 classes) on scikit-learn's digits split by rows
across the clients, for `rounds` rounds; each round a `dropout` fraction of the clients
(drawn from a public generator, not secret) stops after sharing its keys, so the aggregator
waits `timeout` seconds and rebuilds their masks. The same training then runs without
secure aggregation (plain FedAvg: clients send their parameters) with the same clients
dropping (they send no update; the aggregator waits by the same rule, `timeout` after the
last answer), and the same model is trained centrally on the pooled rows (the baseline
accuracy). `time_ratio` and `bytes_ratio` are secure over plain.

Parties are processes over mutual-TLS TCP links while N + 1 <= 4 x cores, threads with
in-process links beyond (the JSON's `mode` and `transport` say which). Keys: `figure`,
`clients`, `dropout`, `seconds_per_round`, `plain_seconds_per_round`, `bytes_per_client`,
`plain_bytes_per_client` (sent + received per client and round), `accuracy`,
`baseline_accuracy`, `peak_rss_mb` (the aggregator's and the largest client's, MB), `secagg` (degree, threshold, failure bounds).

Two time figures per round, for each of SecAgg+ and plain FedAvg:
- `seconds_per_round` / `plain_seconds_per_round`: the aggregator's wall clock. Under
  threads (more parties than the machine holds as processes) the clients share the cores,
  so this is the *serialised* cost: every client's CPU time one after the other.
- `critical_path_seconds_per_round` / `plain_...`: what one machine per party would take
  (`ml.fl.timing`): per stage the slowest client's own CPU time (`time.thread_time`), plus
  all of the aggregator's CPU time and its waits for dropped clients (wall time).
`time_ratio` (secure / plain, wall clock) is what the issue's 2x target is judged on, as
measured in the mode the JSON states (`target_judged_on`); `critical_path_time_ratio`
beside it. `cpu_seconds_per_round` lists CPU seconds per round by stage: the aggregator's,
the slowest client's and the clients' mean.

>>> r = run(clients=3, params=2000, rounds=1, mode="thread", timeout=0.5)
>>> r["figure"], r["clients"], r["bytes_per_client"] > 0
('fl_secagg', 3, True)
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import numpy as np

from ..core.prg import public_rng
from ..ml.fl import FedAvg, FederatedTrainer, FLClient, MLPModel, SecAggParams, local_train
from ..ml.fl.timing import critical_path
from ..runtime.collectives import all_gather
from .memory import simulate_rss

AGG = "aggregator"


@functools.lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # loaded once per process (every thread party used to parse the CSV again), read-only
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = public_rng(0).permutation(len(y))  # public benchmark data
    X, y = X[order] / 16.0, y[order].astype(np.float64)
    cut = int(0.7 * len(y))
    out = (X[:cut], y[:cut], X[cut:], y[cut:])
    for a in out:
        a.setflags(write=False)
    return out


def _hidden(params: int) -> int:
    return max(1, (params - 10) // (64 + 1 + 10))


def _program(ctx: Any, clients: list[str], secure: bool, params: int, rounds: int, dropout: float,
             timeout: float) -> dict[str, Any]:
    Xtr, ytr, Xte, yte = _data()
    model = MLPModel(64, (_hidden(params),), 10)
    client = None
    if ctx.me in clients:
        i = clients.index(ctx.me)
        client = FLClient(model, Xtr[i::len(clients)], ytr[i::len(clients)], batch_size=16, learning_rate=0.1)
    k = int(round(dropout * len(clients)))
    rng = public_rng(1)  # who drops is public benchmark scenery
    drops = {r: {str(c): "masked" for c in rng.choice(clients, size=k, replace=False)} for r in range(1, rounds + 1)}
    tr = FederatedTrainer(ctx, AGG, clients, model, FedAvg(min_fit_clients=len(clients)), rounds=rounds,
                          secure=secure, secagg=SecAggParams(clip=2.0, timeout=timeout), weight_cap=100.0)
    all_gather(ctx, name="bench-barrier")
    ctx.reset_stats()
    t0 = time.perf_counter()
    w = tr.run(client, dropouts=drops)  # the same clients drop in plain FedAvg: like with like
    seconds = time.perf_counter() - t0
    st = ctx.stats()
    out: dict[str, Any] = {"seconds": seconds, "bytes": st["bytes_sent"] + st["bytes_recv"], "cpu": tr.cpu_}
    if ctx.me == AGG:
        out["accuracy"] = float((model.predict_proba(w, Xte).argmax(axis=1) == yte).mean())
        if secure and tr.session is not None:
            p = tr.secagg.resolved(len(clients))
            out["secagg"] = {"degree": p.degree, "threshold": p.threshold, "min_signers": p.min_signers,
                             "failure_bounds": p.failure_bounds(len(clients)), "timeout_s": timeout}
    return out


def _cpu_profile(res: dict[str, Any], names: list[str], rounds: int) -> dict[str, Any]:
    """The critical path per round (`timing.critical_path`, phase by phase: set-up and round 1,
    the other rounds, the final broadcast) and CPU seconds per round by stage: the aggregator's,
    the slowest client's and the clients' mean (the serialised total is clients x mean)."""
    phases = len(res[AGG]["cpu"])
    crit = sum(critical_path(res[AGG]["cpu"][i], [res[c]["cpu"][i] for c in names]) for i in range(phases))

    def per_stage(cpu: list[dict[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for ph in cpu:
            for k, v in ph.items():
                out[k] = out.get(k, 0.0) + v / rounds
        return out

    clients = [per_stage(res[c]["cpu"]) for c in names]
    stages = sorted({k for c in clients for k in c})
    return {"critical_path_seconds_per_round": round(crit / rounds, 3),
            "aggregator_cpu": {k: round(v, 4) for k, v in per_stage(res[AGG]["cpu"]).items()},
            "client_cpu_max": {k: round(max(c.get(k, 0.0) for c in clients), 4) for k in stages},
            "client_cpu_mean": {k: round(float(np.mean([c.get(k, 0.0) for c in clients])), 4) for k in stages}}


def run(*, clients: int = 100, dropout: float = 0.1, params: int = 100_000, rounds: int = 3,
        mode: str | None = None, timeout: float = 1.0) -> dict[str, Any]:
    """One secure and one plain training of `rounds` rounds; returns the JSON figures."""
    names = [f"client{i:03d}" for i in range(clients)]
    if mode is None:
        mode = "process" if clients + 1 <= 4 * (os.cpu_count() or 1) else "thread"
    res, rss = {}, {}
    for secure in (True, False):
        res[secure], rss[secure] = simulate_rss(_program, [AGG, *names], mode=mode,
                                                args=(names, secure, params, rounds, dropout, timeout), timeout=None)
    sec, plain = res[True], res[False]
    prof = {"secure": _cpu_profile(sec, names, rounds), "plain": _cpu_profile(plain, names, rounds)}
    client_rss = [m for c, m in rss[True].items() if c != AGG and m is not None]
    Xtr, ytr, Xte, yte = _data()
    model = MLPModel(64, (_hidden(params),), 10)
    t0 = time.perf_counter()
    w = local_train(model, model.init(0), Xtr, ytr, epochs=rounds, learning_rate=0.1, batch_size=16)
    central_s = time.perf_counter() - t0
    n_params = sum(int(np.size(p)) for p in model.init(0))
    return {
        "figure": "fl_secagg",
        "clients": clients,
        "dropout": dropout,
        "params": n_params,
        "rounds": rounds,
        "seconds_per_round": round(sec[AGG]["seconds"] / rounds, 3),
        "plain_seconds_per_round": round(plain[AGG]["seconds"] / rounds, 3),
        "critical_path_seconds_per_round": prof["secure"]["critical_path_seconds_per_round"],
        "plain_critical_path_seconds_per_round": prof["plain"]["critical_path_seconds_per_round"],
        "bytes_per_client": int(np.mean([sec[c]["bytes"] for c in names]) / rounds),
        "plain_bytes_per_client": int(np.mean([plain[c]["bytes"] for c in names]) / rounds),
        "accuracy": round(sec[AGG]["accuracy"], 4),
        "plain_accuracy": round(plain[AGG]["accuracy"], 4),
        "baseline_accuracy": round(float((model.predict_proba(w, Xte).argmax(axis=1) == yte).mean()), 4),
        "central_seconds_per_epoch": round(central_s / rounds, 3),
        # the aggregator's, and the largest client's (one process each; None under threads)
        "peak_rss_mb": {AGG: rss[True][AGG], "client (largest)": max(client_rss) if client_rss else None},
        "time_ratio": round(sec[AGG]["seconds"] / plain[AGG]["seconds"], 2),
        "critical_path_time_ratio": round(prof["secure"]["critical_path_seconds_per_round"]
                                          / max(1e-9, prof["plain"]["critical_path_seconds_per_round"]), 2),
        "bytes_ratio": round(float(np.mean([sec[c]["bytes"] for c in names]) / np.mean([plain[c]["bytes"] for c in names])), 2),
        "secagg": sec[AGG].get("secagg"),
        "cpu_seconds_per_round": {k: {x: v for x, v in prof[k].items() if x != "critical_path_seconds_per_round"}
                                  for k in prof},
        "mode": mode,
        "transport": "tcp+tls (loopback), one process per party" if mode == "process" else
                     "in-process links, one thread per party (more parties than the machine holds as processes)",
        "target_judged_on": "time_ratio: the aggregator's wall clock, secure over plain, in the mode stated (threads "
                            "on this machine: the clients' CPU serialised); critical_path_time_ratio: one machine per party",
        "note": "both seconds_per_round figures include waiting `timeout` for the same dropped clients",
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--params", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", choices=["process", "thread"], default=None)
    ap.add_argument("--timeout", type=float, default=1.0)
    a = ap.parse_args(argv)
    print(json.dumps(run(clients=a.clients, dropout=a.dropout, params=a.params, rounds=a.rounds, mode=a.mode,
                         timeout=a.timeout)), flush=True)


if __name__ == "__main__":
    main()
