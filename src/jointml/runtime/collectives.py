"""Collectives: the few message patterns every algorithm above `mpc/` is built from.

Layers above `mpc/` (psi, he, tee, data, ml, jobs, ...) never touch `ctx.comm`; they
move plaintext between parties only through these functions, so that every transfer
is visible in one place, carries a tag drawn from the context's counter, and is
checked on receipt.

SPMD contract: **every party of a collective's group (its sender and receivers) calls it
at the same point of the program**; other parties may call it too (they return `None`)
or skip it.
The tag is ``name:n`` where n counts the collectives of that same group of parties
(sender and receivers) at this party: the members of a group advance it alike, so a
member that skipped or added a call gets `ProtocolOutOfSync` at its next message instead
of a hang or someone else's data, while a party outside the group is not affected when
it skips the group's calls altogether (a sub-protocol among some parties, e.g. trees
trained by the data holders while a dealer waits, may run a data-dependent number of
collectives without putting the others out of step).

What crosses a link is exactly what the caller passes (`meta`: a JSON object of plain
values; `arrays`: ndarrays of the wire's allowed dtypes), from the named sender to the
named receivers: these functions reveal nothing else.

| function | who sends | who receives | rounds |
| --- | --- | --- | --- |
| `broadcast` / `send_to` | one owner | every party / the listed parties | 1 |
| `gather` | the listed senders | one root | 1 |
| `all_gather` | every listed party | every listed party | 1 (one per sender in sequence) |
| `agree` | each owner (its verdict) | every party, which all raise the same error | 1 |
| `reveal_to_all` | the first compute party | the parties outside the MPC device | 1 |
| `Channel` | either of two parties | the other | 1 per message |

>>> import numpy as np
>>> from jointml.runtime import simulate
>>> def prog(ctx):
...     got = broadcast(ctx, "alice", meta={"rows": 3}, arrays=[np.arange(3.0)])
...     return got.meta["rows"], float(got.arrays[0].sum())
>>> out = simulate(prog, ["alice", "bob", "carol"], mode="thread")
>>> out["carol"]
(3, 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..core.errors import DataError, JointMLError, WireFormatError, public_summary

if TYPE_CHECKING:  # pragma: no cover
    from .context import PartyContext

__all__ = ["Received", "Channel", "broadcast", "send_to", "gather", "all_gather", "agree", "reveal_to_all"]


@dataclass
class Received:
    """What a party holds after a collective: the sender's `meta` and `arrays`.

    At the sender it is what it sent (so SPMD code reads the same object everywhere).
    """

    sender: str
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)

    def expect(
        self, dtypes: Sequence[npt.DTypeLike] | None = None, shapes: Sequence[Sequence[int] | None] | None = None
    ) -> list[np.ndarray]:
        """Check the arrays' count, dtypes and shapes (`None` in `shapes` = any); returns them.

        >>> Received("bob", arrays=[np.zeros(2)]).expect([np.float64], [(2,)])[0].shape
        (2,)
        """
        if dtypes is not None and len(dtypes) != len(self.arrays):
            raise WireFormatError(f"expected {len(dtypes)} arrays, got {len(self.arrays)}", party=self.sender)
        for i, a in enumerate(self.arrays):
            if dtypes is not None and a.dtype != np.dtype(dtypes[i]):
                raise WireFormatError(f"array {i} has dtype {a.dtype}, expected {np.dtype(dtypes[i])}", party=self.sender)
            want = shapes[i] if shapes is not None and i < len(shapes) else None
            if want is not None and tuple(a.shape) != tuple(want):
                raise WireFormatError(f"array {i} has shape {a.shape}, expected {tuple(want)}", party=self.sender)
        return self.arrays


class Channel:
    """An ordered stream of messages between this party and one `peer`.

    For two-party exchanges whose number of messages depends on the data (PSI batches,
    streamed ciphertexts), which the collectives above cannot express: they draw one tag
    per call at every party. A channel is named by a `prefix` that **every party of the
    job drew from `ctx.next_uid` at the same program point** (so parties outside the
    exchange stay in step); its messages are tagged ``prefix:step`` and the link's
    sequence numbers check their order, so a peer that diverges fails fast with
    `ProtocolOutOfSync`. Only the two ends use it; what crosses is exactly what is sent.

    >>> def prog(ctx):
    ...     uid = ctx.next_uid("demo")  # drawn by every party
    ...     if ctx.me == "alice":
    ...         for batch in (np.arange(3), np.arange(2)):
    ...             Channel(ctx, "bob", uid).send("x", arrays=[batch])
    ...     elif ctx.me == "bob":
    ...         ch = Channel(ctx, "alice", uid)
    ...         return [ch.recv("x", dtypes=[np.int64]).arrays[0].size for _ in range(2)]
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    [3, 2]
    """

    def __init__(self, ctx: PartyContext, peer: str, prefix: str):
        _check_party(ctx, peer, "peer")
        if peer == ctx.me:
            raise JointMLError(f"party '{ctx.me}' cannot open a channel to itself")
        self.ctx, self.peer, self.prefix = ctx, peer, prefix

    @property
    def timeout(self) -> float:
        """The link's default receive timeout (seconds), to scale a longer wait from."""
        return float(self.ctx.comm.link(self.peer).recv_timeout)

    def send(self, step: str, *, meta: dict[str, Any] | None = None, arrays: Sequence[np.ndarray] | np.ndarray = ()) -> None:
        """Send (`meta`, `arrays`) to the peer as message `step`."""
        self.ctx.comm.send(self.peer, f"{self.prefix}:{step}", _as_list(arrays), meta=meta)

    def recv(
        self,
        step: str,
        *,
        dtypes: Sequence[Any] | None = None,
        shapes: Sequence[Any] | None = None,
        timeout: float | None = None,
    ) -> Received:
        """The peer's next message, which must be `step`; arrays checked against `dtypes`/`shapes`
        (``dtypes=[]``: no arrays); waits up to `timeout` seconds (default: the link's)."""
        msg = self.ctx.comm.recv(self.peer, f"{self.prefix}:{step}", dtypes=dtypes, shapes=shapes, timeout=timeout)
        return Received(self.peer, dict(msg.meta or {}), list(msg.arrays))


def _tag(ctx: PartyContext, name: str, group: Sequence[str]) -> str:
    """``name:n``, n = collectives of this group (sender and receivers) so far at this party."""
    return f"{name}:{ctx.next_group_seq(list(group))}"


def _as_list(arrays: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray):
        return [arrays]
    return [np.asarray(a) for a in arrays]


def _check_party(ctx: PartyContext, p: str, what: str) -> None:
    if p not in ctx.parties:
        raise JointMLError(f"{what} '{p}' is not a party of this job {ctx.parties}")


def send_to(
    ctx: PartyContext,
    owner: str,
    to: str | Sequence[str],
    *,
    meta: dict[str, Any] | None = None,
    arrays: Sequence[np.ndarray] | np.ndarray = (),
    name: str = "send",
    dtypes: Sequence[npt.DTypeLike] | None = None,
    shapes: Sequence[Sequence[int] | None] | None = None,
) -> Received | None:
    """`owner` sends (`meta`, `arrays`) to the party or parties `to`.

    Returns a `Received` at the owner (what it sent) and at each receiver (checked
    against `dtypes`/`shapes` when given); `None` at every other party. `meta` and
    `arrays` are read at the owner only.

    >>> def prog(ctx):
    ...     got = send_to(ctx, "alice", "bob", arrays=[np.ones(2)], dtypes=[np.float64])
    ...     return None if got is None else got.arrays[0].tolist()
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"] is None
    True
    """
    receivers = [to] if isinstance(to, str) else list(to)
    _check_party(ctx, owner, "sender")
    for p in receivers:
        _check_party(ctx, p, "receiver")
    tag = _tag(ctx, name, [owner, *receivers])
    if ctx.me == owner:
        payload = _as_list(arrays)
        for p in receivers:
            if p != owner:
                ctx.comm.send(p, tag, payload, meta=dict(meta or {}))
        return Received(owner, dict(meta or {}), payload)
    if ctx.me in receivers:
        msg = ctx.comm.recv(owner, tag)
        got = Received(owner, dict(msg.meta or {}), list(msg.arrays))
        if dtypes is not None or shapes is not None:
            got.expect(dtypes, shapes)
        return got
    return None


def broadcast(
    ctx: PartyContext,
    owner: str,
    *,
    meta: dict[str, Any] | None = None,
    arrays: Sequence[np.ndarray] | np.ndarray = (),
    to: Sequence[str] | None = None,
    name: str = "bcast",
    dtypes: Sequence[npt.DTypeLike] | None = None,
    shapes: Sequence[Sequence[int] | None] | None = None,
) -> Received:
    """`owner` sends (`meta`, `arrays`) to every party of the job (or of `to`).

    Every receiving party returns the same `Received`; with `to`, parties outside it
    get `None` (typed as `Received` for the common all-parties case).

    >>> def prog(ctx):
    ...     return broadcast(ctx, "bob", meta={"k": ctx.me} if ctx.me == "bob" else None).meta["k"]
    >>> simulate(prog, ["alice", "bob"], mode="thread")["alice"]
    'bob'
    """
    receivers = list(ctx.parties) if to is None else list(to)
    return send_to(ctx, owner, receivers, meta=meta, arrays=arrays, name=name, dtypes=dtypes, shapes=shapes)  # type: ignore[return-value]


def gather(
    ctx: PartyContext,
    root: str,
    *,
    meta: dict[str, Any] | None = None,
    arrays: Sequence[np.ndarray] | np.ndarray = (),
    senders: Sequence[str] | None = None,
    name: str = "gather",
) -> dict[str, Received] | None:
    """Every party of `senders` (default: all but `root`) sends its (`meta`, `arrays`) to `root`.

    Returns `{sender: Received}` at the root (its own contribution included when it is a
    sender), `None` elsewhere.

    >>> def prog(ctx):
    ...     got = gather(ctx, "alice", meta={"n": len(ctx.me)})
    ...     return None if got is None else {p: r.meta["n"] for p, r in got.items()}
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    {'bob': 3, 'carol': 5}
    """
    _check_party(ctx, root, "root")
    group = [p for p in ctx.parties if p != root] if senders is None else list(senders)
    tag = _tag(ctx, name, [root, *group])
    if ctx.me in group and ctx.me != root:
        ctx.comm.send(root, tag, _as_list(arrays), meta=dict(meta or {}))
    if ctx.me != root:
        return None
    out: dict[str, Received] = {}
    for p in group:
        if p == root:
            out[p] = Received(p, dict(meta or {}), _as_list(arrays))
        else:
            msg = ctx.comm.recv(p, tag)
            out[p] = Received(p, dict(msg.meta or {}), list(msg.arrays))
    return out


def all_gather(
    ctx: PartyContext,
    parties: Sequence[str] | None = None,
    *,
    meta: dict[str, Any] | None = None,
    arrays: Sequence[np.ndarray] | np.ndarray = (),
    to: Sequence[str] | None = None,
    name: str = "allgather",
) -> dict[str, Received]:
    """Every party of `parties` (default: all) announces (`meta`, `arrays`) to every party of
    `to` (default: the job); returns `{party: Received}` at those parties, in the order of
    `parties` (values are `None` at a party outside `to`).

    >>> def prog(ctx):
    ...     got = all_gather(ctx, ["alice", "bob"], meta={"cols": 2 if ctx.me == "alice" else 5})
    ...     return [r.meta["cols"] for r in got.values()]
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"]
    [2, 5]
    """
    group = list(ctx.parties) if parties is None else list(parties)
    out: dict[str, Received] = {}
    for p in group:
        mine = ctx.me == p
        got = broadcast(ctx, p, meta=meta if mine else None, arrays=arrays if mine else (), to=to, name=f"{name}:{p}")
        out[p] = got
    return out


def agree(
    ctx: PartyContext,
    owners: str | Sequence[str],
    problem: str | Callable[[], str | None] | None,
    *,
    details: dict[str, Any] | None = None,
    error: type[JointMLError] = DataError,
    name: str = "agree",
) -> dict[str, dict[str, Any]]:
    """Check at each owner, then raise the owner's verdict at every party.

    At an owner, `problem` is its verdict: a message (something is wrong), `None` (all
    fine) or a callable returning either. The verdict goes to every party: build it from
    names, shapes and counts, never from data values. An exception inside the callable
    is announced by its `public_summary` only (class, party, field); the owner raises the
    announced error chained to the full exception, which stays local.
    Each owner announces `{"problem": ..., **details}` to every party; then every party
    raises the same `error(problem, party=owner)` for the first owner with a problem, so
    parties fail alike and nobody is left waiting (DESIGN rule 6). Returns
    `{owner: details}` when all agree.

    >>> def prog(ctx):
    ...     try:
    ...         agree(ctx, "bank", "column 'age' has NaN values" if ctx.me == "bank" else None)
    ...     except DataError as e:
    ...         return str(e)
    >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    "party 'bank': column 'age' has NaN values"
    """
    group = [owners] if isinstance(owners, str) else list(owners)
    verdicts: dict[str, dict[str, Any]] = {}
    cause: BaseException | None = None
    for owner in group:
        local = None
        if ctx.me == owner:
            verdict, cause = _evaluate(problem, owner)
            local = {"problem": verdict, **dict(details or {})}
        verdicts[owner] = broadcast(ctx, owner, meta=local, name=f"{name}:{owner}").meta
    for owner in group:
        msg = verdicts[owner].get("problem")
        if msg:
            # the owner keeps its full error as the cause (local traceback); peers got the summary
            raise error(str(msg), party=owner) from (cause if ctx.me == owner else None)
    return {o: {k: v for k, v in m.items() if k != "problem"} for o, m in verdicts.items()}


def _evaluate(problem: str | Callable[[], str | None] | None, owner: str) -> tuple[str | None, BaseException | None]:
    """The owner's verdict, and the exception it came from (kept local)."""
    if not callable(problem):
        return problem, None
    try:
        return problem(), None
    except Exception as e:  # noqa: BLE001 - the owner's failure is announced to every party
        # its text may quote a data value: peers learn the class, party and field only
        return public_summary(e, owner), e


def reveal_to_all(x: Any) -> np.ndarray:
    """Open a secret array to every party of the job; the same ndarray everywhere.

    The compute parties of `x`'s device open it; the first of them forwards the opened
    value to the parties outside the compute set (a semi2k dealer, data owners outside
    the device). Use it only for values the algorithm declares public.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
    ...     s = ctx.party("alice").run(lambda: np.array([1.5, 2.0])).to(mpc)
    ...     return reveal_to_all(s.sum()).tolist()
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"]
    3.5
    """
    ctx = x.device.ctx
    compute = list(x.device.parties)
    val: np.ndarray = x.reveal()
    others = [p for p in ctx.parties if p not in compute]
    dtype = np.float64 if x.fxp else np.int64
    sent = np.ascontiguousarray(val, dtype=dtype).reshape(-1) if ctx.me == compute[0] else None
    got = send_to(ctx, compute[0], others, arrays=[sent] if sent is not None else [], name="public",
                  dtypes=[dtype], shapes=[(int(np.prod(x.shape, dtype=np.int64)),)])
    if ctx.me in others and got is not None:
        val = got.arrays[0].reshape(x.shape)
    return val
