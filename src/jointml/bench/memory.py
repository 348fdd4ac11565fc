"""Peak resident memory (RSS) of each party of a benchmark.

Every benchmark runs its parties as separate OS processes (`simulate(..., mode="process")`),
so each party's peak RSS is its own process's high-water mark (`VmHWM` in
`/proc/self/status`, `ru_maxrss` where /proc is missing), read inside the party after its
program returns and sent back with its result. A benchmark adopts it in one call: replace

    res = simulate(_program, parties, mode="process", ...)

by

    res, rss = simulate_rss(_program, parties, mode="process", ...)

and put ``"peak_rss_mb": rss`` in its JSON row (``{party: MB}``). `res` is exactly what
`simulate` returns. For a benchmark that starts its parties itself (`subprocess.Popen`),
`process_peak_rss_mb(pid)` reads a live process's high-water mark.

What is counted: every page resident in the party's process at its peak, including pages
shared with the launcher after the fork (the interpreter and the imported modules, ~60-100
MB) and a heap pre-faulted by ``options={"warm_heap_mb": ...}``. Worker pools a party
starts (Paillier, PSI curve workers) are separate processes and are not counted. With
``mode="thread"`` all parties share one process, so no per-party figure exists: each
party's value is `None`.

No party data is involved: only a number of megabytes leaves each party process, and only
to the launcher (one machine, one user), never over a link.

>>> def prog(ctx):
...     return ctx.me
>>> res, rss = simulate_rss(prog, ["alice", "bob"], mode="thread")
>>> res, rss
({'alice': 'alice', 'bob': 'bob'}, {'alice': None, 'bob': None})
>>> peak_rss_mb() > 1
True
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, Callable

from ..runtime import simulate

__all__ = ["peak_rss_mb", "process_peak_rss_mb", "simulate_rss"]

_KEY = "__jointml_peak_rss__"


def _vm_hwm_mb(path: str) -> float | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (2^20 bytes).

    >>> isinstance(peak_rss_mb(), float)
    True
    """
    mb = _vm_hwm_mb("/proc/self/status")
    if mb is not None:
        return round(mb, 1)
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kB on Linux and in bytes on macOS
    return round(raw / (2**20 if sys.platform == "darwin" else 1024), 1)


def process_peak_rss_mb(pid: int) -> float | None:
    """Another (live) process's peak resident memory in MB, or `None` if unreadable.

    >>> process_peak_rss_mb(os.getpid()) is not None or not os.path.exists("/proc")
    True
    """
    mb = _vm_hwm_mb(f"/proc/{pid}/status")
    return None if mb is None else round(mb, 1)


class _Measured:
    """`fn` run at a party, its result returned with the party process's peak RSS.

    A class (not a closure) so that it pickles with `fn` under a spawn start method."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, ctx: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = self.fn(ctx, *args, **kwargs)
        return {_KEY: True, "result": result, "peak_rss_mb": peak_rss_mb(), "pid": os.getpid()}


def simulate_rss(fn: Callable[..., Any], parties: list[str], **kwargs: Any) -> tuple[dict[str, Any], dict[str, float | None]]:
    """`simulate(fn, parties, **kwargs)`, and each party's peak RSS in MB (`None` under threads).

    >>> def prog(ctx, k):
    ...     return k * 2
    >>> simulate_rss(prog, ["alice"], mode="thread", args=(21,))[0]
    {'alice': 42}
    """
    raw = simulate(_Measured(fn), parties, **kwargs)
    res = {p: r["result"] for p, r in raw.items()}
    pids = {r["pid"] for r in raw.values()}
    if kwargs.get("mode", "process") == "thread" or len(pids) < len(raw):
        # parties shared a process (threads): no per-party figure
        return res, {p: None for p in raw}
    return res, {p: r["peak_rss_mb"] for p, r in raw.items()}
