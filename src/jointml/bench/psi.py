"""`python -m jointml.bench.psi`: PSI (ECDH or KKRT16), two parties as processes over mutual TLS.

Each party holds `rows` string ids ("user0000000042"), half of them shared, in a
shuffled order. The time covers everything `psi_align` does at a party: reading and
hashing the ids, the curve work, the traffic and the matching; it is the slower
party's time. The plaintext baseline (a Python set intersection of the same ids, in
one process, no privacy) is measured in the same run. SecretFlow libpsi's ECDH-PSI
(curve25519) appears as a dated reference (74 s for 100,000 x 100,000, an earlier run on
this machine class), never divided by our figure; with `anchor=True` (`--anchor`)
libpsi runs now, on the same ids count, and the ratio to it is reported.

``protocol="kkrt"`` (``jointml bench psi --protocol kkrt``) times the OT-based PSI of
`jointml.psi.kkrt` instead; its reference is SecretFlow's RR22 (4.7 s at 1M x 1M, issue 19),
and ``--anchor`` runs libpsi's RR22 now.

>>> r = run(2000, mode="thread", n_jobs=1)
>>> r["figure"], r["rows"], r["intersection"], r["aligned"]
('psi_ecdh_x25519', 2000, 1000, True)
>>> run(2000, mode="thread", protocol="kkrt")["figure"]
'psi_kkrt16'
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from typing import Any

from ..core.errors import ProtocolError
from ..core.prg import public_rng
from ..psi import psi_align
from ..runtime.collectives import all_gather
from .anchors import reference, run_anchor
from .memory import simulate_rss

#: SecretFlow libpsi ECDH-PSI, curve25519, 100k x 100k, measured 2026-11-22 (issue 2), seconds: a dated reference.
SECRETFLOW_REFERENCE = {"rows": 100_000, "seconds": 74.0}
#: SecretFlow libpsi RR22, 1M x 1M, and jointml's ECDH-PSI in the same measurement run (issue 19).
RR22_REFERENCE = {"rows": 1_000_000, "seconds": 4.7, "jointml_ecdh_seconds": 71.0}
FIGURES = {"ecdh": "psi_ecdh_x25519", "kkrt": "psi_kkrt16"}
PARTIES = ["bank", "partner"]


def _ids(party: str, rows: int, shared: float) -> list[str]:
    # Public benchmark data (not secret): numpy's generator is fine here.
    offset = 0 if party == PARTIES[0] else int(round(rows * (1 - shared)))
    order = public_rng(7 if party == PARTIES[0] else 8).permutation(rows)
    return [f"user{offset + i:010d}" for i in order.tolist()]


def _busy_cpu_seconds() -> float | None:
    """CPU seconds spent by the whole machine (all processes) since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _barrier(ctx) -> None:
    # every party announces itself to every other: nobody starts the clock early
    all_gather(ctx, name="bench-barrier")


def _program(ctx, rows: int, shared: float, batch_size: int, n_jobs: int | None, progress: bool,
             protocol: str = "ecdh") -> dict:
    ids = _ids(ctx.me, rows, shared)
    importlib.import_module(f"jointml.psi.{protocol}")  # imported before the clock starts (pandas: ~1 s)
    _barrier(ctx)
    ctx.reset_stats()
    t0, c0, b0 = time.perf_counter(), _cpu_seconds(), _busy_cpu_seconds()
    res = psi_align(ctx, ids, batch_size=batch_size, n_jobs=n_jobs, progress=progress, protocol=protocol)
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds() - c0  # this party's process and its curve workers
    b1 = _busy_cpu_seconds()
    if res is None or res.positions is None:  # psi_align reveals to every party here
        raise ProtocolError("psi_align returned no intersection", party=ctx.me)
    aligned = [ids[i] for i in res.positions.tolist()]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "machine_busy_seconds": None if b0 is None or b1 is None else b1 - b0,
        "stats": res.stats,
        "size": res.size,
        # A fingerprint of the aligned keys: equal at both parties iff row i matches row i.
        "aligned_sha256": hashlib.sha256("\n".join(aligned).encode()).hexdigest(),
    }


def run(
    rows: int,
    *,
    shared: float = 0.5,
    batch_size: int = 100_000,
    n_jobs: int | None = None,
    mode: str = "process",
    progress: bool = False,
    anchor: bool = False,
    protocol: str = "ecdh",
) -> dict[str, Any]:
    """Benchmark PSI of `rows` x `rows` ids (a `shared` fraction in common); returns JSON-able figures.

    With `anchor`, SecretFlow libpsi's ECDH-PSI (RR22 for ``protocol="kkrt"``) runs first on
    `rows` x `rows` ids (same machine, same run; see `jointml.bench.anchors`) and the ratio
    to it is reported."""
    if protocol not in FIGURES:
        raise ProtocolError(f"unknown PSI protocol {protocol!r} (choose one of {sorted(FIGURES)})")
    libpsi = _libpsi_same_run(rows, "RR22" if protocol == "kkrt" else "ECDH") if anchor else None
    t_wall = time.perf_counter()
    res, rss = simulate_rss(_program, PARTIES, mode=mode, args=(rows, shared, batch_size, n_jobs, progress, protocol),
                            timeout=None)
    wall = time.perf_counter() - t_wall
    a, b = (res[p] for p in PARTIES)
    ids_a, ids_b = _ids(PARTIES[0], rows, shared), _ids(PARTIES[1], rows, shared)
    t0 = time.perf_counter()
    plain = len(set(ids_a) & set(ids_b))
    base = time.perf_counter() - t0
    seconds = max(r["seconds"] for r in res.values())
    mults = sum(r["stats"].get("mults", 0) for r in res.values())
    total_bytes = sum(r["stats"]["bytes_sent"] for r in res.values())
    phases = ("hash_s", "own_points_s", "peer_points_s", "wait_s", "match_s")
    if protocol == "kkrt":
        phases = ("hash_s", "cuckoo_s", "oprf_s", "tags_s", "match_s")
    ref = SECRETFLOW_REFERENCE
    cpu = sum(r["cpu_seconds"] for r in res.values())
    # The machine is shared: CPU that other users' processes took during the run
    # (all busy CPU minus this benchmark's) says how far a figure is from a quiet machine.
    others = None
    if a["machine_busy_seconds"] is not None and mode == "process":
        others = round(max(0.0, a["machine_busy_seconds"] - cpu), 2)
    return {
        "figure": FIGURES[protocol],
        "protocol": protocol,
        "rows": rows,
        "seconds": round(seconds, 3),
        "bytes": total_bytes,
        "rounds": max(r["stats"].get("rounds", 0) for r in res.values()),
        "intersection": a["size"],
        "aligned": a["aligned_sha256"] == b["aligned_sha256"] and a["size"] == plain,
        "mults": mults,
        "mults_per_s": round(mults / seconds) if mults else None,
        "bytes_per_id": round(total_bytes / (2 * rows), 2) if rows else 0.0,
        "phases": {p: {k: r["stats"].get(k, 0.0) for k in phases} for p, r in res.items()},
        "cpu_seconds": round(cpu, 2),
        "cpu_us_per_mult": round(cpu / mults * 1e6, 2) if mults else None,
        "cores_busy": round(cpu / seconds, 2),
        "other_processes_cpu_seconds": others,
        "plaintext_seconds": round(base, 4),
        "peak_rss_mb": rss,  # per party process; curve worker processes (n_jobs) not included
        "wall_seconds_incl_startup": round(wall, 2),
        "reference": reference(
            "SecretFlow libpsi ECDH-PSI (curve25519), 100k x 100k",
            "2026-11-22 (issue 2)",
            {"secretflow_libpsi_seconds_100k": ref["seconds"]},
        )
        if protocol == "ecdh"
        else reference(
            "SecretFlow libpsi RR22 and jointml ECDH-PSI, 1M x 1M, same measurement run",
            "issue 19",
            {"secretflow_rr22_seconds_1m": RR22_REFERENCE["seconds"],
             "jointml_ecdh_seconds_1m": RR22_REFERENCE["jointml_ecdh_seconds"]},
        ),
        "secretflow_libpsi_seconds_same_run": libpsi,
        "speedup_vs_secretflow_same_run": round(libpsi / seconds, 2) if libpsi else None,
        "transport": f"tcp+tls (loopback), one process per party, n_jobs={n_jobs or 'all cores'} per party"
        if mode == "process"
        else "in-process links (threads)",
    }


def _libpsi_same_run(rows: int, proto: str = "ECDH") -> float | None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="jointml-psi-anchor-") as work:
        for r in run_anchor("bench_psi.py", str(rows), proto, work):
            if "wall_s" in r:
                return float(r["wall_s"])
    return None


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--shared", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=100_000)
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--mode", choices=["process", "thread"], default="process")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--protocol", choices=sorted(FIGURES), default="ecdh")
    ap.add_argument(
        "--anchor", action="store_true", help="also run SecretFlow libpsi now (../shared/anchors) for a same-run ratio"
    )
    args = ap.parse_args(argv)
    for n in args.rows:
        r = run(
            n,
            shared=args.shared,
            batch_size=args.batch_size,
            n_jobs=args.n_jobs,
            mode=args.mode,
            progress=args.progress,
            anchor=args.anchor,
            protocol=args.protocol,
        )
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
