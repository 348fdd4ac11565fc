"""Run an SPMD program as several parties: simulated on one machine, or as one node.

`simulate(fn, parties)` starts one OS process per party connected by TCP + mutual
TLS on loopback (default), or one thread per party with in-process links
(`mode="thread"`, for fast tests). `fn(ctx, *args)` runs at every party; the result
is a dict party -> return value. A party that fails makes the others fail fast: it
sends an abort frame naming its error before closing its links, and the launcher
re-raises the root cause as `PartyFailed`.

What a peer learns of a failure: the abort frame carries only
`jointml.core.errors.public_summary` of the error -- its class, the party, the field,
and the message only where the raising code marked it safe -- never the full text,
which may quote a data value (a dirty cell in a `DataError`). The full error stays
with the failing party: raised by `run_party`, and in `simulate` (one machine, one
user) reported by the launcher as the `PartyFailed` root cause.

`run_party(fn, me, cluster)` runs one party of a real deployment from a
`ClusterConfig`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import traceback
from typing import Any, Callable

from ..core.errors import ConfigError, JointMLError, LinkError, ParameterError, ParameterTypeError, public_summary
from ..core.memory import tune_allocator, warm_heap
from ..net.certs import check_party_name, create_dev_pki
from ..net.link import Communicator, InProcessLink
from ..net.tcp import TlsFiles, connect_all
from .cluster import ClusterConfig
from .context import PartyContext

#: A party's failure as reported to the launcher: (error type, message, traceback).
Failure = tuple[str, str, str]


class SimulationTimeout(JointMLError, TimeoutError):
    """A simulation did not finish within its timeout (a ``TimeoutError`` too).

    >>> isinstance(SimulationTimeout("simulation did not finish within 5 s"), TimeoutError)
    True
    """


class PartyFailed(JointMLError):
    """A party's program raised; carries the party, the error type and its traceback.

    >>> def prog(ctx):
    ...     if ctx.me == "bob":
    ...         raise KeyError("no column 'age'")
    ...     return 1
    >>> try:
    ...     simulate(prog, ["alice", "bob"], mode="thread")
    ... except PartyFailed as e:
    ...     print(e.party, e.error_type)
    bob KeyError
    """

    def __init__(self, party: str, error_type: str, message: str, tb: str = "", others: dict[str, Failure] | None = None):
        where = ""
        frames = [l.strip() for l in tb.splitlines() if l.strip().startswith("File ")]
        if frames:
            where = f" ({frames[-1]})"
        super().__init__(f"party '{party}' failed: {error_type}: {message}{where}")
        self.party = party
        self.error_type = error_type
        self.message = message
        self.traceback = tb
        self.others = others or {}


def _goodbye(comm: Communicator) -> None:
    """Barrier at the end of a program: nobody closes a link a peer may still read from."""
    for p in comm.peers:
        comm.link(p).send("__bye__")
    for p in comm.peers:
        comm.link(p).recv("__bye__")


def _run_in_context(fn: Callable[..., Any], ctx: PartyContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        result = fn(ctx, *args, **kwargs)
        _goodbye(ctx.comm)
        return result
    except BaseException as e:
        if not isinstance(e, LinkError):
            # peers get the safe summary only; the full text is re-raised here, locally
            ctx.comm.abort(public_summary(e, ctx.me))
        raise
    finally:
        ctx.comm.close()


def _pick_root(failures: dict[str, Failure]) -> tuple[str, Failure]:
    """The party whose failure is the cause, not a consequence (peer closed/aborted).

    When every party raises the same validation error (checks that make all parties fail
    alike), the party the message names is the cause."""
    consequences = {"PeerAborted", "PeerClosed", "LinkTimeout"}
    causes = {p: f for p, f in failures.items() if f[0] not in consequences}
    for p, f in causes.items():
        if f"'{p}'" in f[1]:
            return p, f
    if causes:
        return next(iter(causes.items()))
    return next(iter(failures.items()))


def _check_parties(parties: list[str]) -> list[str]:
    if len(set(parties)) != len(parties) or len(parties) < 1:
        raise ConfigError(f"parties must be distinct names, got {parties}")
    for p in parties:
        check_party_name(p)
    return list(parties)


def simulate(
    fn: Callable[..., Any],
    parties: list[str],
    *,
    mode: str = "process",
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    timeout: float | None = 600.0,
    recv_timeout: float | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `fn(ctx, *args, **kwargs)` at every party; returns {party: result}.

    >>> def prog(ctx):
    ...     return ctx.me.upper()
    >>> simulate(prog, ["alice", "bob"], mode="thread")
    {'alice': 'ALICE', 'bob': 'BOB'}
    """
    parties = _check_parties(parties)
    kwargs = kwargs or {}
    tune_allocator()
    if mode == "thread":
        return _simulate_threads(fn, parties, args, kwargs, timeout, recv_timeout, options)
    if mode == "process":
        return _simulate_processes(fn, parties, args, kwargs, timeout, recv_timeout, options)
    raise ParameterError(f"mode must be 'process' or 'thread', got {mode!r}", field="mode")


def _simulate_threads(
    fn: Callable[..., Any],
    parties: list[str],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    recv_timeout: float | None,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    links: dict[str, dict[str, InProcessLink]] = {p: {} for p in parties}
    for i, a in enumerate(parties):
        for b in parties[i + 1 :]:
            la, lb = InProcessLink.pair(a, b, recv_timeout)
            links[a][b], links[b][a] = la, lb
    results: dict[str, Any] = {}
    failures: dict[str, Failure] = {}

    def worker(me: str) -> None:
        ctx = PartyContext(me, parties, Communicator(me, links[me]), options)
        try:
            results[me] = _run_in_context(fn, ctx, args, kwargs)
        except BaseException as e:  # noqa: BLE001
            failures[me] = (type(e).__name__, str(e), traceback.format_exc())

    threads = [threading.Thread(target=worker, args=(p,), name=f"party-{p}", daemon=True) for p in parties]
    for t in threads:
        t.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        for p in parties:
            for l in links[p].values():
                l.close()
        raise SimulationTimeout(f"simulation did not finish within {timeout} s")
    if failures:
        p, (typ, msg, tb) = _pick_root(failures)
        raise PartyFailed(p, typ, msg, tb, others={k: v for k, v in failures.items() if k != p})
    return {p: results[p] for p in parties}


def _limit_blas_threads(n_processes: int) -> None:
    """Parties simulated as processes share the machine's cores: BLAS threads that
    outnumber cores spin against each other (a 1000^3 ring matmul ran 35 % slower)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed matter
        return
    threadpool_limits(max(1, (os.cpu_count() or 1) // n_processes), user_api="blas")


def _child_main(
    me: str,
    parties: list[str],
    addresses: dict[str, tuple[str, int]],
    listener: socket.socket,
    tls: TlsFiles,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    recv_timeout: float | None,
    options: dict[str, Any] | None,
    out: Any,
) -> None:
    try:
        # Own process group: the launcher reaps whatever this party started (worker
        # pools) even if the party is killed before it could shut them down.
        os.setpgid(0, 0)
    except OSError:
        pass
    try:
        tune_allocator()
        _limit_blas_threads(len(parties))
        if options and options.get("warm_heap_mb"):
            warm_heap(int(options["warm_heap_mb"]))
        comm = connect_all(me, addresses, tls, listener=listener, connect_timeout=60.0, recv_timeout=recv_timeout, order=parties)
        ctx = PartyContext(me, parties, comm, options)
        result = _run_in_context(fn, ctx, args, kwargs)
        try:
            # The queue pickles in a background thread and drops what fails: check here so
            # an unreturnable result is an error, not a silent hang.
            import pickle  # noqa: TID251 - local check of what the launcher's queue will pickle; nothing crosses a link

            pickle.dumps(result)
        except Exception as e:  # noqa: BLE001
            raise ParameterTypeError(
                f"the program's return value at '{me}' cannot be sent back to the launcher "
                f"({type(result).__name__}: {e}); return plain values (numbers, lists, dicts, arrays)",
                party=me,
            ) from None
        out.put(("ok", me, result))
    except BaseException as e:  # noqa: BLE001
        out.put(("err", me, (type(e).__name__, str(e), traceback.format_exc())))


def _reap_group(pgid: int | None) -> None:
    """Kill leftovers in a finished party's process group (e.g. orphaned pool workers)."""
    if not pgid or os.name != "posix":
        return
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _mp_context() -> Any:
    """fork on POSIX: fast (no re-import) and it runs programs defined anywhere (closures,
    notebooks), which spawn cannot pickle. Parties use only the state they create after
    the fork; JOINTML_START_METHOD=spawn|forkserver overrides."""
    method = os.environ.get("JOINTML_START_METHOD") or ("fork" if os.name == "posix" else "spawn")
    return mp.get_context(method)


def _simulate_processes(
    fn: Callable[..., Any],
    parties: list[str],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    recv_timeout: float | None,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="jointml-pki-")
    procs: dict[str, Any] = {}
    try:
        certs = create_dev_pki(tmp, parties, days=1)
        listeners: dict[str, socket.socket] = {}
        addresses: dict[str, tuple[str, int]] = {}
        for p in parties:
            s = socket.create_server(("127.0.0.1", 0))
            listeners[p] = s
            addresses[p] = ("127.0.0.1", s.getsockname()[1])
        ctxmp = _mp_context()
        out = ctxmp.Queue()
        for p in parties:
            tls = TlsFiles(ca=certs[p].ca, cert=certs[p].cert, key=certs[p].key)
            pr = ctxmp.Process(
                target=_child_main,
                args=(p, parties, addresses, listeners[p], tls, fn, args, kwargs, recv_timeout, options, out),
                name=f"jointml-party-{p}",
                # Not daemonic: a party may start its own local worker pools (Paillier,
                # PSI curve operations). The finally-block below reaps every child.
                daemon=False,
            )
            pr.start()
            procs[p] = pr
        for s in listeners.values():
            s.close()
        results, failures = _collect(out, procs, parties, timeout)
        for pr in procs.values():
            pr.join(timeout=2.0)
            if pr.is_alive():
                pr.terminate()
                pr.join(timeout=2.0)
        if failures:
            p, (typ, msg, tb) = _pick_root(failures)
            raise PartyFailed(p, typ, msg, tb, others={k: v for k, v in failures.items() if k != p})
        missing = [p for p in parties if p not in results]
        if missing:
            raise SimulationTimeout(f"simulation did not finish within {timeout} s (parties still running: {missing})")
        return {p: results[p] for p in parties}
    finally:
        for pr in procs.values():
            if pr.is_alive():
                pr.kill()
                pr.join(timeout=2.0)
            _reap_group(pr.pid)
        shutil.rmtree(tmp, ignore_errors=True)


def _collect(
    out: Any, procs: dict[str, Any], parties: list[str], timeout: float | None
) -> tuple[dict[str, Any], dict[str, Failure]]:
    """Read the parties' reports until all reported, the timeout passed, or 10 s after a failure."""
    results: dict[str, Any] = {}
    failures: dict[str, Failure] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    grace_until: float | None = None
    while len(results) + len(failures) < len(parties):
        now = time.monotonic()
        if deadline is not None and now > deadline:
            break
        if grace_until is not None and now > grace_until:
            break
        try:
            kind, p, payload = out.get(timeout=0.1)
        except queue.Empty:
            _check_dead(out, procs, results, failures)
            if failures and grace_until is None:
                grace_until = time.monotonic() + 10.0
            continue
        if kind == "ok":
            results[p] = payload
        else:
            failures[p] = payload
            if grace_until is None:
                grace_until = time.monotonic() + 10.0
    return results, failures


def _check_dead(out: Any, procs: dict[str, Any], results: dict[str, Any], failures: dict[str, Failure]) -> None:
    """A child that died without reporting (killed, segfault) is a failure too."""
    for p, pr in procs.items():
        if p not in results and p not in failures and not pr.is_alive() and pr.exitcode is not None:
            try:
                kind, q, payload = out.get(timeout=0.5)
                (results if kind == "ok" else failures)[q] = payload
            except queue.Empty:
                failures[p] = ("ProcessDied", f"process exited with code {pr.exitcode} without a result", "")


def run_party(
    fn: Callable[..., Any],
    me: str,
    cluster: ClusterConfig | str,
    *args: Any,
    options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run one party of a real deployment: connect to the others over mutual TLS and run `fn`.

    >>> run_party(lambda ctx: None, "bank", ClusterConfig.from_dict({"parties": {"bank": {"address": "h:1"}}, "ca": "ca.crt"}))
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: cluster config: party 'bank' needs 'cert' and 'key'
    """
    tune_allocator()
    if not isinstance(cluster, ClusterConfig):
        cluster = ClusterConfig.load(cluster)
    tls = cluster.tls_for(me)
    comm = connect_all(
        me, cluster.addresses(), tls, connect_timeout=cluster.connect_timeout, recv_timeout=cluster.recv_timeout,
        order=cluster.names,
    )
    ctx = PartyContext(me, cluster.names, comm, options)
    return _run_in_context(fn, ctx, args, kwargs)
