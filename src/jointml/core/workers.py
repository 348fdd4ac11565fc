"""One local worker pool per party process, shared by HE, PSI and the trees.

Paillier encryption and decryption, curve multiplications (PSI) and encrypted histogram
sums are pure-Python loops over gmpy2 / `cryptography` calls that hold the GIL: threads
do not help, processes do. Every such module submits its chunks here instead of keeping
its own pool, so a party never runs two pools fighting for the same cores.

Priorities. ``"normal"`` work (what the caller is waiting for) and ``"low"`` work
(computed ahead of need, e.g. the next tree's encryption nonces) go to separate worker
processes; the low-priority workers run at ``nice +10``, so on shared cores the work the
party waits for always comes first.

Lifetime. Pools start on first use and are reused until :func:`shutdown` or the end of
the party process (the executors are joined when the process exits, so no worker outlives
its party). A pool inherited through ``fork`` belongs to the parent: the child forgets it
and starts its own on first use. :class:`WorkerPool` scopes a pool to one run (PSI: the
workers that received a secret scalar stop with the run).

Security. This is parallelism *inside* one party: chunks (ints, bytes, ndarrays and, for
decryption or curve work, this party's own secret) cross a local pipe to child processes
of the same user, never a party boundary; nothing a peer sent is unpickled here (callers
pass bytes they validated). What each party learns: nothing, it is local.

Start method: ``fork`` on Linux when the caller is single-threaded (fast start, tables
built in the parent are inherited), otherwise ``spawn`` (safe when other threads hold
locks; as always with spawn, a script needs an ``if __name__ == "__main__":`` guard).
Override with ``JOINTML_WORKERS_START_METHOD`` (or the older ``JOINTML_HE_START_METHOD``).
If workers cannot start, the work runs in the calling process with a RuntimeWarning.

>>> map_chunks(sum, [([1, 2],), ([3],)], n_jobs=1)
[3, 3]
>>> with WorkerPool(n_jobs=1) as pool:
...     list(pool.imap(max, [(1, 5), (7, 2)]))
[5, 7]
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar, overload

from .errors import ParameterError

__all__ = [
    "CHUNKS_PER_WORKER",
    "PRIORITIES",
    "WorkerPool",
    "available_cores",
    "in_worker",
    "map_chunks",
    "n_chunks_for",
    "resolve_n_jobs",
    "shutdown",
    "split",
    "start_method",
    "submit",
    "warm_up",
]

T = TypeVar("T")

#: Chunks per worker: more than one so a core slowed by a neighbour does not hold up
#: the whole batch on a shared machine.
CHUNKS_PER_WORKER = 4
#: Worker priorities and their ``nice`` increments.
PRIORITIES = {"normal": 0, "low": 10}

#: live executors of this process, keyed by (priority, n_jobs)
_pools: dict[tuple[str, int], ProcessPoolExecutor] = {}
#: open WorkerPool scopes per pool, and the pools somebody uses outside any scope
_scopes: dict[tuple[str, int], int] = {}
_persistent: set[tuple[str, int]] = set()
_lock = threading.Lock()
_in_worker = False
_disabled = False


def _after_fork_in_child() -> None:
    # A pool inherited through fork (e.g. a party process of the simulation launcher)
    # belongs to the parent: its workers and pipes are not ours, and using it hangs.
    global _disabled
    _pools.clear()
    _scopes.clear()
    _persistent.clear()
    _disabled = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits).

    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def in_worker() -> bool:
    """True inside a pool worker (which never starts a pool of its own).

    >>> in_worker()
    False
    """
    return _in_worker


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None`` or ``-1`` -> all available cores; otherwise a positive int.

    Inside a pool worker, or after the pool failed to start, this is always 1.

    >>> resolve_n_jobs(1)
    1
    """
    valid = n_jobs is None or (type(n_jobs) is int and (n_jobs >= 1 or n_jobs == -1))
    if not valid:
        raise ParameterError(f"must be a positive int, -1 or None, got {n_jobs!r}", field="n_jobs")
    if _in_worker or _disabled:
        return 1
    if n_jobs is None or n_jobs == -1:
        return available_cores()
    return n_jobs


@overload
def split(items: range, n_parts: int) -> list[range]: ...


@overload
def split(items: Sequence[T], n_parts: int) -> list[Sequence[T]]: ...


def split(items: Sequence[T], n_parts: int) -> list[Sequence[T]] | list[range]:
    """Split ``items`` into at most ``n_parts`` contiguous, nearly equal slices.

    >>> [list(s) for s in split(range(5), 2)]
    [[0, 1, 2], [3, 4]]
    """
    n_parts = max(1, min(n_parts, len(items)))
    size, extra = divmod(len(items), n_parts)
    out: list[Sequence[T]] = []
    start = 0
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


def start_method() -> str:
    """The multiprocessing start method new pools use (see the module docstring).

    >>> start_method() in ("fork", "spawn", "forkserver")
    True
    """
    forced = os.environ.get("JOINTML_WORKERS_START_METHOD") or os.environ.get("JOINTML_HE_START_METHOD")
    if forced:
        return forced
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _init_worker(niceness: int) -> None:
    global _in_worker
    _in_worker = True
    if niceness:
        try:
            os.nice(niceness)  # background work: what the party waits for keeps the cores
        except OSError:
            pass


def _get_pool(n_jobs: int, priority: str, *, scoped: bool = False) -> ProcessPoolExecutor:
    if priority not in PRIORITIES:
        raise ParameterError(f"must be one of {sorted(PRIORITIES)}, got {priority!r}", field="priority")
    with _lock:
        pool = _pools.get((priority, n_jobs))
        if pool is None:
            # Decided once per pool: the pool's own manager thread must not make the
            # next lookup think the caller became multi-threaded.
            mp = multiprocessing.get_context(start_method())
            pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp, initializer=_init_worker,
                                       initargs=(PRIORITIES[priority],))
            _pools[(priority, n_jobs)] = pool
        if scoped:
            _scopes[(priority, n_jobs)] = _scopes.get((priority, n_jobs), 0) + 1
        else:
            _persistent.add((priority, n_jobs))
        return pool


def _drop_broken(pool: ProcessPoolExecutor, exc: BaseException) -> None:
    # Workers could not start or died (a script without an ``if __name__ == "__main__"``
    # guard under spawn, the OOM killer): the work is pure, so computing it here gives
    # the same result; do not pay for (or re-trigger) a failing start again.
    global _disabled
    with _lock:
        for key, p in list(_pools.items()):
            if p is pool:
                del _pools[key]
        _disabled = True
    warnings.warn(f"process pool failed ({exc}); continuing on one core", RuntimeWarning, stacklevel=3)


def map_chunks(fn: Callable[..., T], args: list[tuple[Any, ...]], n_jobs: int, *, priority: str = "normal") -> list[T]:
    """Run ``fn(*a)`` for each tuple in ``args``, on the pool when ``n_jobs > 1``.

    ``fn`` must be a module-level function (it is sent to workers by reference).
    Results come back in order.

    >>> map_chunks(max, [(1, 5), (7, 2)], n_jobs=1)
    [5, 7]
    """
    if n_jobs <= 1 or len(args) <= 1:
        return [fn(*a) for a in args]
    pool = _get_pool(n_jobs, priority)
    try:
        futures = [pool.submit(fn, *a) for a in args]
        return [f.result() for f in futures]
    except BrokenProcessPool as exc:
        _drop_broken(pool, exc)
        return [fn(*a) for a in args]


def submit(fn: Callable[..., T], *args: Any, n_jobs: int, priority: str = "low") -> Future[T] | None:
    """Queue ``fn(*args)`` on the pool and return its future at once (``None`` when
    ``n_jobs <= 1`` or the pool cannot start: the caller then computes inline).

    >>> submit(max, 1, 2, n_jobs=1) is None
    True
    """
    if n_jobs <= 1 or _in_worker or _disabled:
        return None
    try:
        return _get_pool(n_jobs, priority).submit(fn, *args)
    except (BrokenProcessPool, RuntimeError, OSError):  # an optimisation only
        return None


def shutdown(*, wait: bool = True) -> None:
    """Stop every pool this process started (they restart on next use).

    >>> shutdown()
    """
    global _disabled
    with _lock:
        _disabled = False
        pools = list(_pools.values())
        _pools.clear()
        _scopes.clear()
        _persistent.clear()
    for pool in pools:
        pool.shutdown(wait=wait, cancel_futures=True)


def _noop(x: Any) -> Any:
    return x


def warm_up(n_jobs: int | None = None, *, priority: str = "normal") -> None:
    """Start the pool's workers now instead of inside the first timed call.

    >>> warm_up(1)
    """
    n = resolve_n_jobs(n_jobs)
    if n > 1:
        map_chunks(_noop, [(i,) for i in range(n * 2)], n, priority=priority)


class WorkerPool:
    """An ordered, windowed map over the shared pool, scoped to one run.

    ``with WorkerPool(n_jobs) as pool: pool.imap(fn, tasks)`` yields ``fn(*task)`` in
    order, keeping ``2 * n_jobs`` tasks in flight. When the last open scope of a pool
    ends, its workers stop, unless code outside any scope (HE, trees) uses that pool too. With
    ``n_jobs <= 1`` everything runs inline in the calling thread, with the same results.

    >>> with WorkerPool(n_jobs=1) as pool:
    ...     pool.n_jobs, list(pool.imap(pow, [(2, 3), (3, 2)]))
    (1, [8, 9])
    """

    def __init__(self, n_jobs: int = 1, *, priority: str = "normal") -> None:
        self.n_jobs = 1 if _in_worker else int(n_jobs)
        self.priority = priority
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> WorkerPool:
        if self.n_jobs > 1:
            self._pool = _get_pool(self.n_jobs, self.priority, scoped=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        key = (self.priority, self.n_jobs)
        with _lock:
            left = _scopes.get(key, 1) - 1
            _scopes[key] = left
            # the last scope stops the workers, unless other code uses this pool too
            stop = left <= 0 and key not in _persistent and _pools.get(key) is pool
            if stop:
                del _pools[key]
                _scopes.pop(key, None)
        if stop:
            pool.shutdown(wait=True, cancel_futures=True)

    def imap(self, fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]]) -> Iterator[T]:
        """Yield ``fn(*task)`` for each task tuple, in order (``fn`` module-level)."""
        if self._pool is None:
            for t in tasks:
                yield fn(*t)
            return
        window: deque[Future[T]] = deque()
        limit = 2 * self.n_jobs
        try:
            for t in tasks:
                window.append(self._pool.submit(fn, *t))
                if len(window) >= limit:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for f in window:
                f.cancel()

    def map(self, fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]]) -> list[T]:
        """``list(self.imap(fn, tasks))``.

        >>> with WorkerPool() as pool:
        ...     pool.map(abs, [(-1,), (2,)])
        [1, 2]
        """
        return list(self.imap(fn, tasks))
