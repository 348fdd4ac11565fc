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
import threading
from typing import Any, Callable

from ..runtime import simulate

__all__ = ["PartyRssWatcher", "peak_rss_mb", "process_peak_rss_mb", "simulate_rss"]

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


def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, start time in clock ticks) of `pid`, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[2]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        pass
    return out


class PartyRssWatcher:
    """Each party's peak RSS, watched from the launcher, for a benchmark that calls plain
    `simulate` (not `simulate_rss`): a thread polls the high-water mark (`VmHWM`) of this
    process's party processes every `interval` seconds while the block runs.

    Party processes are recognised as the children that lead their own process group
    (`simulate` starts each party that way) and named by start order, which is the order
    of `parties`. Being a high-water mark, a poll misses only growth in the party's last
    `interval` before it exits. Linux only (it reads /proc); elsewhere, and for parties
    run as threads, each party's value is `None`.

    >>> with PartyRssWatcher(["alice", "bob"]) as w:
    ...     _ = simulate(lambda ctx: ctx.me, ["alice", "bob"], mode="thread")
    >>> w.peak_rss_mb()
    {'alice': None, 'bob': None}
    """

    def __init__(self, parties: list[str], interval: float = 0.1):
        self.parties = list(parties)
        self.interval = interval
        self._seen: dict[int, tuple[int, float]] = {}  # pid -> (start ticks, peak MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="party-rss-watcher", daemon=True)

    def _poll(self) -> None:
        for pid in _children(os.getpid()):
            st = _proc_stat(pid)
            mb = _vm_hwm_mb(f"/proc/{pid}/status")
            if st is None or mb is None or st[1] != pid:  # not a party: not its own group's leader
                continue
            start, old = self._seen.get(pid, (st[2], 0.0))
            self._seen[pid] = (start, max(old, mb))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self) -> PartyRssWatcher:
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def peak_rss_mb(self) -> dict[str, float | None]:
        """{party: MB}, the first party processes seen, by start order (`None` where none was seen)."""
        first = sorted(self._seen.items(), key=lambda kv: (kv[1][0], kv[0]))[: len(self.parties)]
        mbs = [round(mb, 1) for _, (_, mb) in first]
        if len(mbs) < len(self.parties):
            return {p: None for p in self.parties}
        return dict(zip(self.parties, mbs))
