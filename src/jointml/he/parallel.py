"""Local process pool for bulk Paillier work inside one party.

Encryption with a fixed-base table and constant-time decryption are pure-Python loops
over gmpy2 calls that hold the GIL, so threads do not help; processes do.  The pool is
created on first use, shared by every key in the process (workers cache per-key tables
themselves) and reused until :func:`shutdown` or interpreter exit.

This is parallelism *within* one party: chunks cross a local pipe between processes of
the same user, never a party boundary.  Payloads are plain ints/bytes (the
``concurrent.futures`` pipe pickles them, which is safe here because both ends are our
own processes); nothing from a peer goes through this module.

Start method: ``fork`` on Linux when the caller is single-threaded (fast start, tables
built in the parent are inherited); otherwise ``spawn``, which is safe when other threads
hold locks but, as always with spawn, needs the calling script to guard its entry point
with ``if __name__ == "__main__":``.  Override with the ``JOINTML_HE_START_METHOD``
environment variable.  If the workers cannot start, the work runs on one core with a
RuntimeWarning instead of failing.

Example:
    >>> from jointml.he.parallel import map_chunks, resolve_n_jobs
    >>> map_chunks(sum, [([1, 2],), ([3],)], n_jobs=1)
    [3, 3]
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

_pools: dict[int, ProcessPoolExecutor] = {}
_lock = threading.Lock()
_in_worker = False
_disabled = False


def _after_fork_in_child() -> None:
    # A pool inherited through fork (e.g. a party process of the simulation launcher)
    # belongs to the parent: its workers and pipes are not ours, and using it hangs.
    global _disabled
    _pools.clear()
    _disabled = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: Chunks per worker: more than one so a core slowed by a neighbour does not hold up
#: the whole batch on a shared machine.
CHUNKS_PER_WORKER = 4


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits).

    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None`` or ``-1`` -> all available cores; otherwise a positive int.

    Inside a pool worker, or after the pool failed to start, this is always 1.

    >>> resolve_n_jobs(1)
    1
    """
    valid = n_jobs is None or (type(n_jobs) is int and (n_jobs >= 1 or n_jobs == -1))
    if not valid:
        raise ValueError(f"n_jobs must be a positive int, -1 or None, got {n_jobs!r}")
    if _in_worker or _disabled:
        return 1
    if n_jobs is None or n_jobs == -1:
        return available_cores()
    return n_jobs


def split(items: Sequence[T], n_parts: int) -> list[Sequence[T]]:
    """Split ``items`` into at most ``n_parts`` contiguous, nearly equal slices.

    >>> [list(s) for s in split(range(5), 2)]
    [[0, 1, 2], [3, 4]]
    """
    n_parts = max(1, min(n_parts, len(items)))
    size, extra = divmod(len(items), n_parts)
    out, start = [], 0
    for i in range(n_parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def n_chunks_for(n_items: int, n_jobs: int, min_chunk: int) -> int:
    """How many chunks to cut ``n_items`` into: enough to balance, none below ``min_chunk``.

    >>> n_chunks_for(1000, 2, 50)
    8
    """
    return max(1, min(n_jobs * CHUNKS_PER_WORKER, n_items // max(1, min_chunk)))


def map_chunks(fn: Callable[..., T], args: list[tuple], n_jobs: int) -> list[T]:
    """Run ``fn(*a)`` for each tuple in ``args``, in a process pool when ``n_jobs > 1``.

    ``fn`` must be a module-level function (it is sent to workers by reference).
    Results come back in order.

    >>> map_chunks(max, [(1, 5), (7, 2)], n_jobs=1)
    [5, 7]
    """
    if n_jobs <= 1 or len(args) <= 1:
        return [fn(*a) for a in args]
    pool = _get_pool(n_jobs)
    try:
        futures = [pool.submit(fn, *a) for a in args]
        return [f.result() for f in futures]
    except BrokenProcessPool as exc:
        # Workers could not start or died (e.g. a script without an
        # ``if __name__ == "__main__"`` guard under spawn, or the OOM killer).
        # The work is pure, so computing it here gives the same result.
        global _disabled
        with _lock:
            if _pools.get(n_jobs) is pool:
                del _pools[n_jobs]
            _disabled = True  # do not pay for (or re-trigger) a failing start again
        warnings.warn(
            f"process pool failed ({exc}); continuing on one core", RuntimeWarning, stacklevel=2
        )
        return [fn(*a) for a in args]


def start_method() -> str:
    """The multiprocessing start method new pools use (see module docstring).

    >>> start_method() in ("fork", "spawn", "forkserver")
    True
    """
    forced = os.environ.get("JOINTML_HE_START_METHOD")
    if forced:
        return forced
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def shutdown() -> None:
    """Stop every pool this module started (they restart on next use).

    >>> shutdown()
    """
    global _disabled
    with _lock:
        _disabled = False
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def _get_pool(n_jobs: int) -> ProcessPoolExecutor:
    with _lock:
        pool = _pools.get(n_jobs)
        if pool is None:
            # Decided once per pool: the pool's own manager thread must not make the
            # next lookup think the caller became multi-threaded.
            ctx = multiprocessing.get_context(start_method())
            pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker)
            _pools[n_jobs] = pool
        return pool


def _init_worker() -> None:
    global _in_worker
    _in_worker = True


def _noop(x: Any) -> Any:
    return x


def warm_up(n_jobs: int | None = None) -> None:
    """Start the pool's workers now instead of inside the first timed call.

    >>> warm_up(1)
    """
    n = resolve_n_jobs(n_jobs)
    if n > 1:
        map_chunks(_noop, [(i,) for i in range(n * 2)], n)
