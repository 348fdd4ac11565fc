"""ECDH-PSI on Curve25519: align the rows of partitioned data without showing the rest.

Every party calls `psi_align` with its own keys (SPMD); each gets back the positions
of its rows that are in the intersection of all parties' key sets, in one order
common to all parties, so row i of one party's aligned data and row i of another's
hold the same key. `psi_frame` returns the aligned DataFrames themselves.

>>> import pandas as pd
>>> from jointml.runtime import simulate
>>> from jointml.psi import psi_align
>>> data = {"bank": pd.DataFrame({"id": [1, 2, 3, 4], "limit": [5, 6, 7, 8]}),
...         "partner": pd.DataFrame({"id": [9, 4, 2], "spend": [1.0, 2.0, 3.0]})}
>>> def prog(ctx):
...     res = psi_align(ctx, data[ctx.me], key_columns=["id"])
...     return res.take(data[ctx.me])["id"].tolist()
>>> out = simulate(prog, ["bank", "partner"], mode="thread")
>>> out["bank"] == out["partner"] and sorted(out["bank"]) == [2, 4]
True

Protocol (semi-honest, two parties M = matcher and O)
-----------------------------------------------------
Let H map ids to Curve25519 points (domain-separated BLAKE2b digest, then
try-and-increment hash-to-curve: `_curve`), and let a, b be fresh X25519 secrets
drawn from `secrets` for this run. Each party first puts its rows in a secret random
order (a permutation from the OS-seeded PRG) so that positions on the wire say
nothing about positions in its data.

1. M -> O: a*H(x) for M's ids x;   O -> M: b*H(y) for O's ids y   (32 bytes each).
2. O -> M: b*(a*H(x)), in the order received (truncated to 16 bytes).
   M computes a*(b*H(y)) itself and keeps it.
3. M matches the two lists of ab*H(.) tags: it learns which of its rows are shared,
   and at which (shuffled) positions O sent them.
4. Unless ``reveal_to`` names M, M sends O those shuffled positions, in a fresh
   random order (or in M's row order with ``sort_by=M``); O maps them back to its rows.

Received points are validated (canonical, on the curve, not of small order); a bad
point fails the run with an error naming the peer. Each party does one hash to the
curve and one scalar multiplication per id of its own, and one multiplication per id
it receives: 2 * (n_M + n_O) multiplications in all. Traffic: 32 bytes per id each
way, 16 bytes back per matcher id, 8 bytes per shared row.

Choice of group and security argument
-------------------------------------
We use X25519 from `cryptography` (OpenSSL): measured on this machine class at
~37,000 multiplications/s/core against ~25,000 for libsodium's ristretto255
(which PyNaCl 1.6 does not even expose; it would need ctypes and a system
libsodium). Ristretto255 would be the cleaner group (prime order, canonical
encodings, hash-to-group built in); X25519 gets the same guarantees here with care:

* hash to the *curve*, not to arbitrary 32-byte strings: otherwise the curve/twist
  bit of H(x) would show through a*H(x) and leak one bit per non-shared id
  (enough to halve a dictionary of candidate phone numbers per point);
  try-and-increment with a random-oracle hash gives a uniform curve point;
* clamped secrets (2^254 + 8m) map every point into the prime-order subgroup and
  commute, so ab*H(x) = ba*H(x);
* under the decisional Diffie-Hellman assumption in that subgroup, with H a random
  oracle: for an id x that O does not hold, a*H(x) (and O's own b*a*H(x)) is
  indistinguishable from a random subgroup element given everything else O sees;
  for an id y that M does not hold, M's a*b*H(y) equals none of its tags and is
  likewise pseudorandom. So what a party receives about the other's non-shared ids
  can be simulated from the set sizes alone: the standard proof of DH-based PSI
  (Meadows 1986; Huberman, Franklin, Hogg 1999; Pinkas, Schneider, Zohner 2014).

What each party learns (semi-honest, non-colluding parties):

* two parties, ``reveal_to=None``: both learn the intersection (which of their own
  rows are shared, hence the shared ids) and the size of the other's set; nothing
  about the other's non-shared ids, nor the positions of the shared rows in the
  other's data (sets are shuffled before masking; the common order is random unless
  ``sort_by`` names a party, which then reveals its relative order of the shared rows).
* ``reveal_to=R``: R learns the intersection and the other's set size; the other
  learns only the size of R's set — not the intersection, not even its size.
* three or more parties (M = ``reveal_to`` or ``parties[0]`` leads; the others
  follow in order): M runs the two-party protocol with each follower in turn on the
  rows still shared so far. M learns every prefix intersection
  M ∩ O1, M ∩ O1 ∩ O2, ... (more than the final intersection) and every follower's
  set size; follower O_j learns the size of M ∩ O1 ∩ ... ∩ O_{j-1} (the set M sends
  it) and, unless ``reveal_to`` is given, the final intersection.

Cost (see `jointml.bench.psi`; 2-vCPU EPYC, both parties as processes over TLS)
--------------------------------------------------------------------------------
About 35 us of CPU per multiplication, all included: the X25519 ladder itself ~27 us
(OpenSSL's own `openssl speed` does 36,700/s/core), hash-to-curve ~6 us per own id
(two Jacobi symbols on average), validation ~2 us per received id, and ~2 us for
digests, pipes, TLS and matching. 100k x 100k takes ~7 s (SecretFlow libpsi: 74 s);
1M x 1M ~70-77 s. The floor of any ECDH-PSI here is 4 multiplications per id pair:
54 s for 1M x 1M on two cores before hashing anything. Going well below that takes
an OPRF built on OT extension (KKRT16, RR22), whose cost is AES and hashing over
bit matrices rather than curve arithmetic.

Memory: one batch of raw keys plus ~60 bytes per id (digest, permutation, tags).

Security model: semi-honest. A malicious party could, e.g., use a different key per
id or lie about its set; validation of points is a sanity check, not malicious
security. Timing: the number of hash-to-curve tries depends on the id, visible only
as local timing inside the owner's machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, ParameterError, ProtocolError, WireFormatError
from ..core.prg import Prg
from ..core.workers import WorkerPool as CurvePool
from ..core.workers import resolve_n_jobs
from ..runtime.collectives import Channel
from ..runtime.context import PartyContext
from ..runtime.device import PartyObject
from . import _curve
from ._curve import CHUNK
from ._keys import DIGEST_BYTES, DuplicateKeyError, KeyDataError, check_unique, digest_keys

PROTOCOL = "jointml-ecdh-psi-x25519-v1"
PT = _curve.POINT_BYTES
TAG = _curve.TAG_BYTES
#: Below this many curve operations a party computes inline: a pool would cost more to start.
MIN_POOL_OPS = 40_000
#: How long to wait for a peer that is still reading and hashing its input (seconds).
_HELLO_WAIT = 3600.0


class PsiError(ProtocolError):
    """A PSI run cannot proceed (incompatible parameters or keys across parties); a
    `ProtocolError`, hence a ``ValueError``.

    >>> isinstance(PsiError("parties disagree on reveal_to"), ValueError)
    True
    """


@dataclass
class PsiResult:
    """What one party gets from a PSI run.

    Attributes:
        party: this party.
        positions: int64 positions (0-based, in input order) of this party's rows in
            the intersection, in the order shared by all parties; None where the
            intersection is not revealed to this party (``reveal_to`` names another).
        size: len(positions), or None where not revealed.
        set_sizes: sizes of the sets this party learned (its own included).
        stats: seconds per phase, curve multiplications, bytes and messages.
        peer_slots: with ``reveal_to`` (two parties), at the party it names: for each of
            `positions`, the position at which the other party sent the matching row in
            its secret shuffled order (`jointml.psi.label_only` builds on it); else None.
        sent_order: with ``reveal_to``, at the other party: its secret shuffle (row
            ``sent_order[k]`` was sent k-th); else None. Neither ever leaves its party.

    >>> r = PsiResult("bank", np.array([2, 0]), 2, {"bank": 3, "partner": 4})
    >>> r.revealed, r.take(["a", "b", "c"])
    (True, ['c', 'a'])
    """

    party: str
    positions: np.ndarray | None
    size: int | None
    set_sizes: dict[str, int]
    stats: dict[str, Any] = field(default_factory=dict)
    peer_slots: np.ndarray | None = field(default=None, repr=False)
    sent_order: np.ndarray | None = field(default=None, repr=False)

    @property
    def revealed(self) -> bool:
        """Whether this party learned the intersection (False where ``reveal_to`` names another)."""
        return self.positions is not None

    def take(self, data: Any, read_csv_kwargs: Mapping | None = None, batch_size: int = 100_000) -> Any:
        """The aligned rows of `data` (this party's input, same row order as given to PSI).

        DataFrame -> DataFrame with a fresh RangeIndex (row i aligns with row i at the
        other parties); ndarray -> ndarray; CSV path -> DataFrame read in batches.

        >>> r = PsiResult("bank", np.array([2, 0]), 2, {})
        >>> r.take(np.array([10, 11, 12])).tolist()
        [12, 10]
        """
        if self.positions is None:
            raise PsiError(f"party '{self.party}': the intersection was not revealed to this party (reveal_to)")
        pos = self.positions
        if isinstance(data, np.ndarray):
            return data[pos]
        if isinstance(data, (pd.DataFrame, pd.Series)):
            return data.iloc[pos].reset_index(drop=True)
        if isinstance(data, (list, tuple)):
            return [data[i] for i in pos]
        # A file or an iterator of chunks: one pass, keeping only shared rows.
        want = np.sort(pos)
        pieces, offset = [], 0
        kw = dict(read_csv_kwargs or {})
        is_path = isinstance(data, (str, bytes)) or hasattr(data, "__fspath__")
        src = pd.read_csv(data, chunksize=batch_size, **kw) if is_path else data
        for chunk in src:
            lo, hi = np.searchsorted(want, [offset, offset + len(chunk)])
            if hi > lo:
                pieces.append(chunk.iloc[want[lo:hi] - offset])
            offset += len(chunk)
        if hasattr(src, "close"):
            src.close()
        if offset <= (int(want[-1]) if len(want) else -1):
            raise PsiError(f"party '{self.party}': data has {offset} rows, fewer than the PSI input")
        got = pd.concat(pieces) if pieces else None
        if got is None:
            return pd.DataFrame()
        return got.iloc[np.searchsorted(want, pos)].reset_index(drop=True)


# -- helpers ---------------------------------------------------------------------------
def _secret_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation from the OS-seeded cryptographic PRG (ties: 2^-64)."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.argsort(Prg().uint64(n), kind="stable").astype(np.int64)


def _local_input(ctx: PartyContext, keys: Any) -> Any:
    """This party's own key data from whatever SPMD form `keys` has."""
    if isinstance(keys, Mapping):
        if ctx.me not in keys:
            raise PsiError(f"party '{ctx.me}': no keys given for this party (keys for {sorted(keys)})")
        keys = keys[ctx.me]
    if isinstance(keys, (list, tuple)) and keys and all(isinstance(k, PartyObject) for k in keys):
        mine = [k for k in keys if k.owner == ctx.me]
        if len(mine) != 1:
            raise PsiError(f"party '{ctx.me}': expected exactly one PartyObject owned by this party, got {len(mine)}")
        keys = mine[0]
    if isinstance(keys, PartyObject):
        if keys.owner != ctx.me:
            raise PsiError(
                f"party '{ctx.me}': got keys owned by '{keys.owner}'; pass {{party: object}} so each party finds its own"
            )
        keys = keys.value
    if keys is None:
        raise PsiError(f"party '{ctx.me}': keys are None")
    return keys


def _resolve_parties(ctx: PartyContext, keys: Any, parties: Sequence[str] | None) -> list[str]:
    if parties is None:
        parties = list(keys) if isinstance(keys, Mapping) else list(ctx.parties)
    parties = list(parties)
    if len(parties) < 2 or len(set(parties)) != len(parties):
        raise ConfigError(f"psi needs at least two distinct parties, got {parties}")
    unknown = [p for p in parties if p not in ctx.parties]
    if unknown:
        raise ConfigError(f"psi parties {unknown} are not in the cluster {ctx.parties}")
    return parties


class _Bar:
    """A tqdm bar per party (or nothing): shown on long runs, position = party index."""

    def __init__(self, progress: bool | None, me: str, position: int):
        self.bar = None
        if progress is False:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return
        interactive = bool(progress) or sys.stderr.isatty()
        if not interactive:
            return
        # delay: a short run never draws a bar; a long one shows its progress.
        self.bar = tqdm(total=None, desc=f"psi {me}: hashing", unit="id", unit_scale=True, position=position,
                        leave=False, delay=0 if progress else 2.0, dynamic_ncols=True)

    def stage(self, name: str, total: int | None) -> None:
        if self.bar is not None:
            self.bar.set_description_str(f"{self.bar.desc.split(':')[0]}: {name}")
            self.bar.reset(total=total)

    def add_total(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total = (self.bar.total or 0) + n
            self.bar.refresh()

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Run:
    """State of one party's PSI run: links, pool, secrets never leave this object."""

    def __init__(self, ctx: PartyContext, uid: str, pool: CurvePool, batch_size: int, bar: _Bar):
        self.ctx, self.uid, self.pool, self.batch, self.bar = ctx, uid, pool, batch_size, bar
        self.mults = 0
        self.workers = 1
        self.times: dict[str, float] = {}
        self._channels: dict[str, Channel] = {}

    def link(self, peer: str) -> Channel:
        """The run's message stream with `peer` (tags `<uid>:<step>`, uid drawn by every party)."""
        if peer not in self._channels:
            self._channels[peer] = Channel(self.ctx, peer, self.uid)
        return self._channels[peer]

    def timed(self, key: str, t0: float) -> float:
        t = time.perf_counter()
        self.times[key] = self.times.get(key, 0.0) + t - t0
        return t

    def patience(self, peer: str, ops: int) -> float:
        # Waiting for a peer's curve work: the link timeout plus 2 ms per operation it may
        # still have to do, so a slow big run is not mistaken for a dead peer.
        return self.link(peer).timeout + 2e-3 * ops

    # -- sending our masked points ------------------------------------------------------
    def send_own_points(self, peer: str, digests: bytes, rows: np.ndarray, secret: bytes) -> None:
        """Send k*H(d) for the digests of `rows` (already in secret order), in batches."""
        t0 = time.perf_counter()
        table = np.frombuffer(digests, dtype=np.uint8).reshape(-1, DIGEST_BYTES)
        tasks = ((table[rows[i : i + CHUNK]].tobytes(), secret) for i in range(0, len(rows), CHUNK))
        pending: list[bytes] = []
        count = 0
        for out in self.pool.imap(_curve.h2c_exp, tasks):
            pending.append(out)
            count += len(out) // PT
            self.bar.update(len(out) // PT)
            if count >= self.batch:
                self._flush(peer, "x", pending, PT)
                count = 0
        self._flush(peer, "x", pending, PT)
        self.mults += len(rows)
        self.timed("own_points_s", t0)

    def _flush(self, peer: str, step: str, pending: list[bytes], width: int) -> None:
        if pending:
            buf = b"".join(pending)
            pending.clear()
            self.link(peer).send(step, arrays=np.frombuffer(buf, dtype=np.uint8).reshape(-1, width))

    # -- receiving and exponentiating the peer's points -----------------------------------
    def _recv_points(self, peer: str, total: int, secret: bytes, wait_ops: int) -> Iterator[tuple]:
        got = 0
        while got < total:
            t0 = time.perf_counter()
            msg = self.link(peer).recv("x", dtypes=[np.uint8], timeout=self.patience(peer, wait_ops))
            self.timed("wait_s", t0)
            arr = msg.arrays[0]
            if arr.ndim != 2 or arr.shape[1] != PT or not 0 < arr.shape[0] <= total - got:
                raise WireFormatError(
                    f"{self.ctx.me}: points from {peer} have shape {arr.shape}; expected (<= {total - got}, {PT})"
                )
            bad = _curve.check_canonical(arr)
            if bad >= 0:
                raise WireFormatError(f"{self.ctx.me}: {peer} sent a non-canonical point (u >= p) at position {got + bad}")
            raw = arr.tobytes()
            for i in range(0, len(raw), CHUNK * PT):
                yield (raw[i : i + CHUNK * PT], secret, TAG), got + i // PT
            got += arr.shape[0]

    def exp_peer_points(self, peer: str, total: int, secret: bytes, reply: bool, wait_ops: int) -> bytes:
        """k * Q for the peer's `total` points, as 16-byte tags: sent back (reply) or returned."""
        t0 = time.perf_counter()
        starts: list[int] = []

        def tasks():
            for args, start in self._recv_points(peer, total, secret, wait_ops):
                starts.append(start)
                yield args

        kept: list[bytes] = []
        pending: list[bytes] = []
        count = 0
        it = self.pool.imap(_curve.exp_received, tasks())
        k = 0
        while True:
            try:
                out = next(it)
            except StopIteration:
                break
            except _curve.InvalidPoint as e:
                raise WireFormatError(
                    f"{self.ctx.me}: {peer} sent an invalid point at position {starts[k] + e.index}: it {e.why}"
                ) from None
            k += 1
            n = len(out) // TAG
            self.bar.update(n)
            if reply:
                pending.append(out)
                count += n
                if count >= self.batch:
                    self._flush(peer, "y", pending, TAG)
                    count = 0
            else:
                kept.append(out)
        if reply:
            self._flush(peer, "y", pending, TAG)
        self.mults += total
        self.timed("peer_points_s", t0)
        return b"".join(kept)

    def recv_tags(self, peer: str, total: int, wait_ops: int) -> bytes:
        """The peer's k' * (our points), 16-byte tags in the order we sent the points."""
        parts, got = [], 0
        t0 = time.perf_counter()
        while got < total:
            msg = self.link(peer).recv("y", dtypes=[np.uint8], timeout=self.patience(peer, wait_ops))
            arr = msg.arrays[0]
            if arr.ndim != 2 or arr.shape[1] != TAG or not 0 < arr.shape[0] <= total - got:
                raise WireFormatError(
                    f"{self.ctx.me}: tags from {peer} have shape {arr.shape}; expected (<= {total - got}, {TAG})"
                )
            parts.append(arr.tobytes())
            got += arr.shape[0]
        self.timed("wait_s", t0)
        return b"".join(parts)


def _match(own_tags: bytes, peer_tags: bytes, me: str, peer: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) with own_tags[i] == peer_tags[j]; exact, by one sort of both lists."""
    n, m = len(own_tags) // TAG, len(peer_tags) // TAG
    if n == 0 or m == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e
    w = np.concatenate([np.frombuffer(own_tags, "<u8").reshape(n, 2), np.frombuffer(peer_tags, "<u8").reshape(m, 2)])
    order = np.lexsort((w[:, 1], w[:, 0]))
    s = w[order]
    eq = np.flatnonzero((s[1:, 0] == s[:-1, 0]) & (s[1:, 1] == s[:-1, 1]))
    a, b = order[eq], order[eq + 1]
    # Each list is duplicate-free (keys were checked unique; a 128-bit collision has
    # probability < 2^-88), so an equal pair holds one tag from each side.
    if np.any((a < n) == (b < n)) or (eq.size > 1 and np.any(eq[1:] == eq[:-1] + 1)):
        raise WireFormatError(f"{me}: tags from {peer} repeat; the peer is not following the protocol")
    i = np.where(a < n, a, b)
    j = np.where(a < n, b, a) - n
    return i.astype(np.int64), j.astype(np.int64)


def _hello(me: str, n: int, kinds: list, names: list, parties: list, reveal_to: str | None, sort_by: str | None) -> dict:
    return {"protocol": PROTOCOL, "n": n, "kinds": kinds, "columns": names, "parties": parties,
            "reveal_to": reveal_to, "sort_by": sort_by}


def _check_hello(me: str, mine: dict, peer: str, theirs: dict) -> int:
    """Both sides run the same checks on the same pair of hellos, so both fail alike."""
    if not isinstance(theirs, dict) or theirs.get("protocol") != PROTOCOL:
        theirs_protocol = theirs.get("protocol") if isinstance(theirs, dict) else "?"
        raise PsiError(f"party '{peer}' runs PSI protocol {theirs_protocol}, '{me}' runs {PROTOCOL}")
    for k in ("parties", "reveal_to", "sort_by"):
        if theirs.get(k) != mine.get(k):
            raise PsiError(f"psi called with {k}={mine.get(k)!r} at '{me}' but {k}={theirs.get(k)!r} at '{peer}'")
    kc, tc = mine["kinds"], theirs.get("kinds")
    if not isinstance(tc, list) or len(tc) != len(kc):
        n_theirs = len(tc) if isinstance(tc, list) else "?"
        raise PsiError(
            f"party '{me}' has {len(kc)} key columns {mine['columns']}, '{peer}' has {n_theirs} {theirs.get('columns')}"
        )
    for j, (a, b) in enumerate(zip(kc, tc)):
        if a is not None and b is not None and a != b:
            raise PsiError(
                f"key column {j}: '{mine['columns'][j]}' at '{me}' holds {a} ids, "
                f"'{theirs['columns'][j]}' at '{peer}' holds {b} ids; "
                "integer and string ids never match: convert one side (e.g. df[col].astype(str))"
            )
    n = theirs.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise WireFormatError(f"{me}: bad set size {n!r} from {peer}")
    return n


# -- the public entry point -------------------------------------------------------------
def psi_align(
    ctx: PartyContext,
    keys: Any,
    key_columns: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    *,
    parties: Sequence[str] | None = None,
    reveal_to: str | None = None,
    sort_by: str | None = None,
    batch_size: int = 100_000,
    n_jobs: int | None = None,
    progress: bool | None = None,
    read_csv_kwargs: Mapping[str, Any] | None = None,
) -> PsiResult | None:
    """Private set intersection of the parties' keys: which of my rows are shared, aligned.

    Every party of `parties` calls this at the same point of the program with its own
    keys (SPMD). Parties of the cluster outside `parties` get None.

    Args:
        ctx: this party's context.
        keys: this party's key data — a DataFrame, Series, ndarray (1-D, or 2-D with one
            column per key part), list, CSV path (read in batches; keys read as text),
            an iterator of such chunks (e.g. ``pd.read_csv(path, chunksize=...)``), a
            PartyObject holding one of these, or a dict {party: any of these} from which
            each party takes its own entry.
        key_columns: columns forming the key (a tuple of ints and strings per row), or a
            dict {party: columns} when the names differ; default: all columns.
        parties: who takes part, default: the keys of a dict `keys`, else every party.
        reveal_to: only this party learns the intersection (see module docstring).
        sort_by: a party whose row order defines the common order (that party's
            relative order of the shared rows is then revealed); default: random order.
            In ``reveal_to`` mode positions are ascending.
        batch_size: rows read, and points per message, per batch (bounds memory).
        n_jobs: worker processes for the curve operations; default: all cores once the
            run is big enough to pay for starting them (an explicit value is honoured).
        progress: tqdm bar: True, False, or None = on stderr terminals for long runs.
        read_csv_kwargs: extra ``pd.read_csv`` arguments for a CSV path (e.g. ``sep``).

    Returns:
        `PsiResult` (positions of this party's shared rows in the common order, sizes,
        timings) or None at a party not in `parties`.

    Raises:
        DuplicateKeyError: a party's keys repeat (the message names the party and counts).
        PsiError: parties disagree on parameters or key column kinds.

    >>> from jointml.runtime import simulate
    >>> keys = {"bank": np.array([10, 11, 12, 13]), "partner": np.array([13, 99, 11])}
    >>> def prog(ctx):
    ...     res = psi_align(ctx, keys, reveal_to="bank", sort_by="bank")
    ...     return res.positions, res.set_sizes
    >>> out = simulate(prog, ["bank", "partner"], mode="thread")
    >>> out["bank"][0].tolist(), out["partner"]  # the partner learns only the bank's set size
    ([1, 3], (None, {'partner': 3, 'bank': 4}))
    """
    uid = ctx.next_uid("psi")  # every party draws a uid, participants or not: counters stay in step
    parties = _resolve_parties(ctx, keys, parties)
    for name, v in (("reveal_to", reveal_to), ("sort_by", sort_by)):
        if v is not None and v not in parties:
            raise ConfigError(f"psi {name}={v!r} is not one of the parties {parties}")
    if reveal_to is not None and sort_by not in (None, reveal_to):
        raise ConfigError(f"psi sort_by={sort_by!r}: with reveal_to={reveal_to!r} only '{reveal_to}' has positions to sort")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive int, got {batch_size!r}", field="batch_size")
    if ctx.me not in parties:
        return None
    me = ctx.me
    cols = key_columns.get(me) if isinstance(key_columns, Mapping) else key_columns
    if isinstance(cols, str):
        cols = [cols]
    local = _local_input(ctx, keys)
    matcher = reveal_to or parties[0]
    followers = [p for p in parties if p != matcher]
    stats0 = ctx.stats()
    t_start = time.perf_counter()
    bar = _Bar(progress, me, parties.index(me))
    try:
        run = _Run(ctx, uid, CurvePool(1), batch_size, bar)
        # Pass 1: digests of every row, streamed; duplicates are refused before anything
        # leaves this party.
        digests, kinds, names = digest_keys(local, cols, me, batch_size, read_csv_kwargs, on_batch=bar.update)
        n = len(digests) // DIGEST_BYTES
        check_unique(digests, me, names)
        run.timed("hash_s", t_start)
        hello = _hello(me, n, kinds, names, parties, reveal_to, sort_by)
        # An explicit n_jobs > 1 is honoured; the default (all cores) only for enough work
        # to pay for starting the workers.
        jobs = resolve_n_jobs(n_jobs)
        min_ops = 0 if n_jobs is not None else MIN_POOL_OPS
        if me == matcher:
            result = _lead(run, hello, digests, n, followers, reveal_to, sort_by, jobs, min_ops)
        else:
            result = _follow(run, hello, digests, n, matcher, reveal_to, jobs, min_ops)
        if sort_by is not None and sort_by != matcher and reveal_to is None:
            result = _apply_order_of(run, result, sort_by, parties)
    finally:
        bar.close()
        _curve.forget()  # no reference to this run's secret stays in the party process
    stats1 = ctx.stats()
    result.stats.update({k: round(v, 4) for k, v in run.times.items()})
    result.stats.update(
        seconds=round(time.perf_counter() - t_start, 4),
        mults=run.mults,
        workers=run.workers,
        bytes_sent=stats1["bytes_sent"] - stats0["bytes_sent"],
        bytes_recv=stats1["bytes_recv"] - stats0["bytes_recv"],
        msgs_sent=stats1["msgs_sent"] - stats0["msgs_sent"],
    )
    return result


def _lead(
    run: _Run, hello: dict, digests: bytes, n: int, followers: list[str], reveal_to, sort_by, jobs: int, min_ops: int
) -> PsiResult:
    me = run.ctx.me
    for f in followers:
        run.link(f).send("hello", meta=hello)
    sizes = {me: n}
    for f in followers:
        # A follower first reads and hashes its whole input: allow for a big file.
        msg = run.link(f).recv("hello", dtypes=[], timeout=max(run.patience(f, 0), _HELLO_WAIT))
        sizes[f] = _check_hello(me, hello, f, msg.meta)
    cur = np.arange(n, dtype=np.int64)  # my rows still in the intersection
    their_pos: dict[str, np.ndarray] = {}
    total_ops = sum(sizes.values())
    use_pool = jobs > 1 and 2 * total_ops >= min_ops
    run.bar.stage("curve", None)
    with CurvePool(jobs if use_pool else 1) as pool:
        run.pool, run.workers = pool, pool.n_jobs
        for f in followers:
            secret = _curve.new_secret()  # fresh per run and per follower
            m, nf = len(cur), sizes[f]
            run.bar.add_total(m + nf)
            run.link(f).send("round", meta={"n": m})
            order = _secret_permutation(m)
            sent_rows = cur[order]
            run.send_own_points(f, digests, sent_rows, secret)
            peer_tags = run.exp_peer_points(f, nf, secret, reply=False, wait_ops=2 * nf)
            own_tags = run.recv_tags(f, m, wait_ops=m)
            t0 = time.perf_counter()
            i, j = _match(own_tags, peer_tags, me, f)
            pos = np.full(n, -1, dtype=np.int64)
            pos[sent_rows[i]] = j
            their_pos[f] = pos
            cur = np.sort(sent_rows[i])
            run.timed("match_s", t0)
        del secret
    if reveal_to is not None:
        slots = their_pos[followers[0]][cur] if len(followers) == 1 else None
        return PsiResult(me, cur, len(cur), sizes, peer_slots=slots)
    final = cur if sort_by == me else cur[_secret_permutation(len(cur))]
    for f in followers:
        run.link(f).send("final", arrays=their_pos[f][final].astype(np.uint64))
    return PsiResult(me, final, len(final), sizes)


def _follow(run: _Run, hello: dict, digests: bytes, n: int, leader: str, reveal_to, jobs: int, min_ops: int) -> PsiResult:
    me = run.ctx.me
    run.link(leader).send("hello", meta=hello)
    msg = run.link(leader).recv("hello", dtypes=[], timeout=max(run.patience(leader, n), _HELLO_WAIT))
    n_lead = _check_hello(me, hello, leader, msg.meta)
    secret = _curve.new_secret()
    order = _secret_permutation(n)  # my rows in the order I send their points
    use_pool = jobs > 1 and 2 * (n + n_lead) >= min_ops
    run.bar.stage("curve", n)
    with CurvePool(jobs if use_pool else 1) as pool:
        run.pool, run.workers = pool, pool.n_jobs
        run.send_own_points(leader, digests, order, secret)
        # The leader may first be busy with earlier followers: be patient in proportion.
        msg = run.link(leader).recv("round", dtypes=[], timeout=run.patience(leader, 4 * n_lead + 2 * n))
        m = msg.meta.get("n")
        if not isinstance(m, int) or isinstance(m, bool) or not 0 <= m <= n_lead:
            raise WireFormatError(f"{me}: bad round size {m!r} from {leader}")
        run.bar.add_total(m)
        run.exp_peer_points(leader, m, secret, reply=True, wait_ops=2 * m)
    del secret
    sizes = {me: n, leader: m}
    if reveal_to is not None:
        return PsiResult(me, None, None, sizes, sent_order=order)
    t0 = time.perf_counter()
    pos = run.link(leader).recv("final", dtypes=[np.uint64], timeout=run.patience(leader, 4 * n_lead + 2 * n)).arrays[0]
    run.timed("wait_s", t0)
    if pos.ndim != 1 or pos.size > min(n, m) or (pos.size and (int(pos.max()) >= n or np.unique(pos).size != pos.size)):
        raise WireFormatError(f"{me}: invalid intersection positions from {leader}")
    rows = order[pos.astype(np.int64)]
    return PsiResult(me, rows, len(rows), sizes)


def _apply_order_of(run: _Run, result: PsiResult, owner: str, parties: list[str]) -> PsiResult:
    """Reorder everyone's positions by `owner`'s row order (owner sends the permutation)."""
    me = run.ctx.me
    positions, size = result.positions, result.size
    if positions is None or size is None:  # not with reveal_to: the caller orders revealed-to-all runs only
        raise ProtocolError(f"{me}: no intersection to order", party=me)
    if me == owner:
        perm = np.argsort(positions, kind="stable")
        for p in parties:
            if p != me:
                run.link(p).send("order", arrays=perm.astype(np.uint64))
    else:
        perm = run.link(owner).recv("order", dtypes=[np.uint64]).arrays[0].astype(np.int64)
        if perm.shape != (size,) or not np.array_equal(np.sort(perm), np.arange(size)):
            raise WireFormatError(f"{me}: invalid order from {owner}")
    result.positions = positions[perm]
    return result


def psi_frame(
    ctx: PartyContext,
    frames: Any,
    key_columns: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> Any:
    """`psi_align`, then the aligned rows themselves, in the structure given.

    `frames` as for `psi_align` (a DataFrame, a CSV path, a PartyObject, or a dict
    {party: one of these}); returns a DataFrame (None where the intersection is not
    revealed), a PartyObject, or a dict {party: PartyObject} respectively. Row i of
    every party's aligned frame holds the same key; the index is a fresh RangeIndex.

    >>> import pandas as pd
    >>> from jointml.runtime import simulate
    >>> def prog(ctx):
    ...     bank = ctx.party("bank").run(lambda: pd.DataFrame({"id": ["a", "b", "c"], "x": [1, 2, 3]}))
    ...     partner = ctx.party("partner").run(lambda: pd.DataFrame({"id": ["c", "a"], "y": [9, 8]}))
    ...     out = psi_frame(ctx, {"bank": bank, "partner": partner}, key_columns=["id"], sort_by="bank")
    ...     return out[ctx.me].value.to_dict("list")
    >>> simulate(prog, ["bank", "partner"], mode="thread")
    {'bank': {'id': ['a', 'c'], 'x': [1, 3]}, 'partner': {'id': ['a', 'c'], 'y': [8, 9]}}
    """
    return aligned_frames(psi_align, ctx, frames, key_columns, **kwargs)


def aligned_frames(align: Any, ctx: PartyContext, frames: Any, key_columns: Any = None, **kwargs: Any) -> Any:
    """`align(ctx, frames, key_columns, **kwargs)` (a PSI protocol's `psi_align`), then the
    aligned rows in the structure given: what every protocol's `psi_frame` returns."""
    taking_part = ctx.me in _resolve_parties(ctx, frames, kwargs.get("parties"))
    if taking_part and isinstance(_local_input(ctx, frames), Iterator):
        raise PsiError(
            f"party '{ctx.me}': psi_frame reads the data twice (keys, then aligned rows): pass a DataFrame or a "
            "CSV path, or use psi_align(...).take(...) on an iterator you can re-create"
        )
    res = align(ctx, frames, key_columns, **kwargs)
    local = None
    if res is not None and res.revealed:
        local = res.take(_local_input(ctx, frames), read_csv_kwargs=kwargs.get("read_csv_kwargs"))
    if isinstance(frames, Mapping):
        return {p: ctx.party(p).put(local if p == ctx.me else None) for p in frames}
    if isinstance(frames, PartyObject):
        return ctx.party(ctx.me).put(local)
    return local


__all__ = ["PsiError", "PsiResult", "DuplicateKeyError", "KeyDataError", "psi_align", "psi_frame"]
