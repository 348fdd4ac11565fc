"""Peers' figures: dated references, and same-run anchors.

A speed figure means something only as a ratio to another figure measured in the same
run on the same machine (shared machines vary by 2x between days). So benchmarks never
print a peer's figure as if it had been measured: a figure copied from an earlier run is
a *reference*, labelled with its source and date, and no ratio is computed from it.
A ratio to a peer comes only from an *anchor*: the peer's own code, run now by the
scripts in `../shared/anchors/` (SecretFlow SPU and its PSI library), in their own
virtual environment.

No party data is involved: benchmark inputs are public synthetic data.

>>> r = reference("SecretFlow SPU 0.9.5", "2026-12-01", {"mul_1M_seconds": 0.282})
>>> r["label"]
'dated reference, not measured in this run'
>>> anchor_status("no-such-anchor")["available"]
False
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

__all__ = ["REFERENCE_LABEL", "SPU_PARTS", "SPU_SETUP", "anchor_dir", "anchor_status", "compare_spu", "reference", "run_anchor"]

REFERENCE_LABEL = "dated reference, not measured in this run"
SPU_SETUP = "python3 -m venv /tmp/spu-venv && /tmp/spu-venv/bin/pip install -q spu==0.9.5"
# figure name in our benchmark -> (anchor script, its arguments, its figure name)
_SPU_FIGURES = {
    "mul_1M": "mul_1M",
    "lt_1M": "lt_1M",
    "matmul_1000": "matmul_1000",
    "sigmoid_1M": "sigmoid_1M",
}


def reference(source: str, date: str, figures: dict[str, Any], machine: str = "this machine class, one run") -> dict[str, Any]:
    """A peer's figure copied from an earlier measurement, labelled so nobody reads it as measured now.

    >>> reference("SecretFlow libpsi ECDH", "2026-11", {"seconds_100k": 74.0})["source"]
    'SecretFlow libpsi ECDH, measured 2026-11 on this machine class, one run'
    """
    return {"source": f"{source}, measured {date} on {machine}", "label": REFERENCE_LABEL, **figures}


def anchor_dir() -> Path | None:
    """Where the anchor scripts are: `$JOINTML_ANCHORS`, else `../shared/anchors` beside the
    current directory or beside the source tree; `None` if not found.

    >>> isinstance(anchor_dir(), (Path, type(None)))
    True
    """
    candidates = [os.environ.get("JOINTML_ANCHORS"), Path.cwd().parent / "shared" / "anchors"]
    here = Path(__file__).resolve()  # <repo>/src/jointml/bench/anchors.py
    candidates += [p / "shared" / "anchors" for p in here.parents[4:6]]  # <repo>/../shared/anchors
    for c in candidates:
        if c and (Path(c) / "spu").is_dir():
            return Path(c)
    return None


def _spu_python() -> str | None:
    py = os.environ.get("JOINTML_SPU_PYTHON", "/tmp/spu-venv/bin/python")
    return py if Path(py).exists() or shutil.which(py) else None


def anchor_status(kind: str = "spu") -> dict[str, Any]:
    """Whether the `kind` anchor can run here, and if not, how to set it up.

    >>> sorted(anchor_status("spu"))
    ['available', 'how']
    """
    if kind != "spu":
        return {"available": False, "how": f"no anchor named {kind!r} (known: spu)"}
    d, py = anchor_dir(), _spu_python()
    if d is None:
        return {"available": False, "how": "anchor scripts not found: set JOINTML_ANCHORS to the shared/anchors folder"}
    if py is None:
        return {"available": False, "how": f"set up SPU once ({SPU_SETUP}), or set JOINTML_SPU_PYTHON; see {d}/README.md"}
    return {"available": True, "how": f"{py} {d}/spu/bench_spu.py <protocol> ops|lr"}


def run_anchor(script: str, *args: str, timeout: float = 1800.0) -> list[dict[str, Any]]:
    """Run an SPU anchor script (`bench_spu.py` or `bench_psi.py`) now; its JSON lines.

    Raises `ResourceError` (naming the setup command) when the anchor cannot run here.
    """
    from ..core.errors import ResourceError

    status = anchor_status("spu")
    d, py = anchor_dir(), _spu_python()
    if not status["available"] or d is None or py is None:
        raise ResourceError(f"the SPU anchor cannot run here: {status['how']}")
    out = subprocess.run([py, str(d / "spu" / script), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise ResourceError(f"anchor {script} {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def spu_ops_same_run(protocol: str) -> dict[str, float]:
    """SPU's operator seconds (min of 3) measured now: `{figure: seconds}` for mul/lt/matmul/sigmoid."""
    rows = run_anchor("bench_spu.py", protocol, "ops")
    return {r["figure"]: float(r["min_s"]) for r in rows if r.get("figure") in _SPU_FIGURES}


def spu_lr_same_run() -> float | None:
    """SPU's LR training samples per second (one epoch, 100k x 100, batch 1024) measured now."""
    for r in run_anchor("bench_spu.py", "semi2k", "lr"):
        if str(r.get("figure", "")).startswith("lr_epoch") and r.get("samples"):
            return float(r["samples"]) / float(r["min_s"])
    return None


#: what `compare_spu` can run: SPU's operators, its LR epoch, its PSI (libpsi)
SPU_PARTS = ("ops", "lr", "psi")
# our operator figures beside SPU's (SPU has one sigmoid: its default)
_OPS_OURS = ("mul_1M", "lt_1M", "matmul_1000", "sigmoid_1M_seg3", "sigmoid_1M_accurate")


def _ratio_row(figure: str, ours: float, peer: float | None, unit: str, higher_is_better: bool, **extra: Any) -> dict[str, Any]:
    # speedup > 1: jointml is faster than SPU in this run
    speedup = None
    if peer and ours:
        speedup = round(ours / peer if higher_is_better else peer / ours, 2)
    return {"figure": figure, "unit": unit, "jointml": ours, "spu_same_run": peer, "speedup_vs_spu": speedup,
            "measured": "both in this run, on this machine", **extra}


def compare_spu(parts: tuple[str, ...] = SPU_PARTS, *, protocol: str = "semi2k", psi_rows: int = 1_000_000,
                psi_ecdh_rows: int = 100_000) -> Iterator[dict[str, Any]]:
    """SPU's anchors and our matching figures, run now one after the other; one row per figure
    with both values and `speedup_vs_spu` (> 1: jointml is faster).

    `ops`: mul/lt/matmul/sigmoid (SPU's default sigmoid against ours, seg3 and accurate);
    `lr`: an SS-LR epoch, 100k x 100, batch 1024 (samples/s); `psi`: KKRT16 against
    libpsi's RR22 at `psi_rows` a side and ECDH against libpsi's ECDH at `psi_ecdh_rows`.
    Raises `ResourceError` naming the setup command when SPU is not installed here.

    >>> import os
    >>> os.environ["JOINTML_SPU_PYTHON"], old = "/nonexistent/python", os.environ.get("JOINTML_SPU_PYTHON")
    >>> try:
    ...     next(compare_spu(("ops",)))
    ... except Exception as e:
    ...     print(type(e).__name__, SPU_SETUP in str(e))
    ResourceError True
    >>> _ = os.environ.pop("JOINTML_SPU_PYTHON") if old is None else os.environ.update(JOINTML_SPU_PYTHON=old)
    """
    from ..core.errors import ParameterError, ResourceError

    bad = [p for p in parts if p not in SPU_PARTS]
    if bad:
        raise ParameterError(f"unknown anchor part(s) {bad}; choose from {list(SPU_PARTS)}", field="parts")
    status = anchor_status("spu")
    if not status["available"]:
        raise ResourceError(f"the SPU anchor cannot run here: {status['how']}")
    if "ops" in parts:
        yield from _compare_ops(protocol)
    if "lr" in parts:
        from . import lr as blr

        spu = spu_lr_same_run()
        r = blr.run(rows=100_000, features=100, epochs=1, batch_size=1024, protocol=protocol)
        yield _ratio_row("ss_lr_epoch_100k_x_100", r["samples_per_second"], round(spu) if spu else None, "samples/s",
                         True, protocol=protocol, auc=r["auc"], peak_rss_mb=r.get("peak_rss_mb"))
    if "psi" in parts:
        from . import psi as bpsi

        for proto, peer, rows in (("kkrt", "RR22", psi_rows), ("ecdh", "ECDH", psi_ecdh_rows)):
            r = bpsi.run(rows, protocol=proto, anchor=True)  # runs libpsi first, then ours
            yield _ratio_row(f"psi_{proto}_{rows}", r["seconds"], r["secretflow_libpsi_seconds_same_run"], "seconds",
                             False, spu_protocol=f"libpsi {peer}", peak_rss_mb=r.get("peak_rss_mb"))


def _compare_ops(protocol: str) -> Iterator[dict[str, Any]]:
    from . import mpc as bmpc

    spu = spu_ops_same_run(protocol)
    for fig in _OPS_OURS:
        r = bmpc.run_figure(protocol, fig, spu)
        key = "sigmoid_1M" if fig.startswith("sigmoid") else fig
        yield _ratio_row(fig, r["seconds"], spu.get(key), "seconds", False, protocol=protocol,
                         spu_figure=key, peak_rss_mb=r.get("peak_rss_mb"))
