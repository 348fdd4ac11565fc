"""Local parallelism for the curve operations of one party.

Scalar multiplications hold the GIL inside `cryptography`, so threads alone do not
help; worker processes do. This is parallelism *inside* one party: chunks of bytes
(digests or points, plus the party's secret scalar) cross a local pipe to a child
process of the same user, never a party boundary.

Why plain subprocesses (``python -m jointml.psi._worker``) rather than
`multiprocessing`: a simulated party is itself a daemonic multiprocessing child,
which may not start multiprocessing children; and a worker reading its stdin exits
by itself on EOF when its party dies, so no worker (holding a secret scalar) is ever
orphaned. The pipe carries a fixed binary framing (see `_worker`), not pickle.

One thread per worker feeds it; `imap` keeps two tasks per worker in flight and
yields results in order. The pool lives for one PSI run (``with CurvePool(...)``).
`n_jobs <= 1` runs everything inline in the calling thread, with the same results.

>>> from jointml.psi import _curve
>>> with CurvePool(n_jobs=1) as pool:
...     [len(r) for r in pool.imap(_curve.h2c_exp, [(bytes(64), bytes(32))])]
[64]
"""

from __future__ import annotations

import os
import queue
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from . import _curve

#: ids per task sent to a worker: ~50-100 ms of curve work, small enough to balance.
CHUNK = 2048

OPS = {_curve.h2c_exp: 1, _curve.exp_received: 2}
_REQ = struct.Struct("<BB32sI")  # op, out_bytes, secret, payload length
_RESP = struct.Struct("<BII")  # status, a (length or index), b (length of message)


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None`` or ``-1``: all available cores; else a positive int.

    >>> resolve_n_jobs(3)
    3
    """
    if n_jobs is None or n_jobs == -1:
        return available_cores()
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive int, -1 or None, got {n_jobs!r}")
    return n_jobs


class WorkerError(RuntimeError):
    """A curve worker process failed (not a validation failure: those raise InvalidPoint)."""


def _read_exact(f, n: int) -> bytes:
    buf = f.read(n)
    if buf is None or len(buf) != n:
        raise WorkerError("curve worker exited unexpectedly")
    return buf


class _Worker:
    def __init__(self):
        env = dict(os.environ)
        # The worker must import this very package, wherever it was imported from.
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jointml.psi._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )

    def call(self, op: int, secret: bytes, payload: bytes, out_bytes: int) -> bytes:
        w, r = self.proc.stdin, self.proc.stdout
        try:
            w.write(_REQ.pack(op, out_bytes, secret, len(payload)))
            w.write(payload)
            w.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError("curve worker exited unexpectedly") from None
        status, a, b = _RESP.unpack(_read_exact(r, _RESP.size))
        if status == 0:
            return _read_exact(r, a)
        msg = _read_exact(r, b).decode("utf-8", "replace")
        if status == 1:
            raise _curve.InvalidPoint(a, msg)
        raise WorkerError(f"curve worker failed: {msg}")

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # EOF: the worker exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its handle
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class CurvePool:
    """An ordered, windowed map of curve kernels over chunks, in worker processes."""

    def __init__(self, n_jobs: int = 1):
        self.n_jobs = n_jobs
        self._workers: list[_Worker] = []
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._threads: ThreadPoolExecutor | None = None

    def __enter__(self) -> "CurvePool":
        if self.n_jobs > 1:
            try:
                for _ in range(self.n_jobs):
                    wk = _Worker()
                    self._workers.append(wk)
                    self._idle.put(wk)
            except BaseException:
                self.__exit__()
                raise
            self._threads = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="psi-curve")
        return self

    def __exit__(self, *exc) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        for wk in self._workers:
            wk.close()
        self._workers.clear()

    def _run(self, op: int, secret: bytes, payload: bytes, out_bytes: int) -> bytes:
        wk = self._idle.get()
        try:
            return wk.call(op, secret, payload, out_bytes)
        finally:
            self._idle.put(wk)

    def imap(self, fn: Callable[..., bytes], tasks: Iterable[tuple]) -> Iterator[bytes]:
        """Yield ``fn(payload, secret[, out_bytes])`` for each task tuple, in order.

        `fn` is one of the kernels in `_curve` (`h2c_exp`, `exp_received`)."""
        if self._threads is None:
            for t in tasks:
                yield fn(*t)
            return
        op = OPS[fn]
        window: deque[Future] = deque()
        limit = 2 * self.n_jobs
        try:
            for t in tasks:
                payload, secret = t[0], t[1]
                out_bytes = t[2] if len(t) > 2 else 0
                window.append(self._threads.submit(self._run, op, secret, payload, out_bytes))
                if len(window) >= limit:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for f in window:
                f.cancel()
