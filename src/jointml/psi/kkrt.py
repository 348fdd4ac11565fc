"""OT-based PSI (KKRT16): a batched OPRF over cuckoo-hashed ids, two parties.

Same interface and result as the ECDH-PSI (`jointml.psi.ecdh`): each party calls
`psi_align_kkrt` (or ``psi_align(..., protocol="kkrt")``) with its own keys and gets the
positions of its shared rows in one common order. Cost is AES and hashing over bit
matrices (no curve arithmetic past 128 base OTs), so it runs roughly an order of
magnitude faster than ECDH-PSI on large sets.

>>> keys = {"bank": np.array([10, 11, 12, 13]), "partner": np.array([13, 99, 11])}
>>> def prog(ctx):
...     return psi_align_kkrt(ctx, keys, sort_by="bank").positions.tolist()
>>> simulate(prog, ["bank", "partner"], mode="thread")
{'bank': [1, 3], 'partner': [2, 0]}

Protocol (semi-honest; M = the matcher, ``reveal_to`` or the first party; O = the other)
-------------------------------------------------------------------------------------
Ids are the 32-byte key digests of `jointml.psi._keys` (canonical, domain-separated), so
keys match exactly as in ECDH-PSI; duplicates are refused before anything is sent.

1. Both exchange a hello (protocol, set size, key column kinds, parameters).
2. M draws a fresh seed and cuckoo-hashes its ids into B = 1.27 n_M + 512 bins
   (`jointml.psi.cuckoo`, 3 hash functions, no stash: a failure re-draws the seed); it
   sends (B, seed). Bin b holding id x placed by hash function k gets the OPRF input
   x || k (120 bits of the digest, then k); empty bins get a random dummy.
3. One KKRT16 OPRF instance per bin (`jointml.mpc.ot.kkrt`): M learns F_b(input_b);
   O holds the key and can evaluate F_b anywhere.
4. O shuffles its ids (secret permutation) and sends, for each id y and each k in 0..2,
   the tag F_{h_k(y)}(y || k) truncated to l bytes, in batches.
5. M matches the tags of its occupied bins against O's: an id x is shared iff the tag of
   its bin appears among O's tags for the same k. M learns which of its rows are shared
   and at which shuffled positions O sent them.
6. Unless ``reveal_to`` names M, M sends O those positions (random order, or M's row
   order with ``sort_by=M``); O maps them to its rows. With ``sort_by=O``, O then sends
   the permutation to its own row order, as in ECDH-PSI.

Tag length l = ceil((40 + log2(n_M) + log2(3 n_O)) / 8) bytes (8 to 16): the chance that
any non-shared pair collides is at most 2^-40 per run.

What each party learns (semi-honest, the same as ECDH-PSI's two-party mode)
--------------------------------------------------------------------------
* M: the intersection (its shared rows, hence the shared ids) and n_O. For an id of O
  that M does not hold, its tags are OPRF outputs at points M never queried:
  pseudorandom (the security argument of KKRT16's PSI, with the OT extension and hash of `mpc.ot`).
* O: n_M (from the number of bins, 1.27 n_M + 512: the size up to rounding) and,
  unless ``reveal_to=M``, the intersection. Its view of the OPRF (the OT-extension
  matrix) is independent of M's ids; the cuckoo seed is independent of them up to the
  insertion failure probability (see `cuckoo`).
* ``reveal_to=M``: O learns n_M only.
* Neither learns the other's non-shared ids, nor the positions of shared rows in the
  other's data (O's tags are shuffled; the common order is random unless ``sort_by``).

Deviating parties: a malicious M can send non-codewords in the OT extension and learn
O's OPRF at more points (KKRT16 is semi-honest); a malicious O can send tags of ids it
does not hold to make M believe they are shared. Use ECDH-PSI's argument for
interoperability; neither protocol is maliciously secure here.

Cost (n = n_M = n_O)
--------------------
Traffic ~64 bytes per bin (1.27 n) from M, 3 l bytes per id from O (l = 11 at 10^6):
~115 bytes per id in all, against 32 + 32 + 16 for ECDH-PSI. Computation: AES over
~16 blocks per id at each party and a few numpy passes; 128 base OTs (~0.3 s of curve
arithmetic) once. Rounds: hello, setup (code key, base OTs, IKNP), the matrix, tags,
final: 6 messages one way or the other. Memory: ~200 bytes per id at each party, in
batches of ``batch_size`` ids for the tags.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ParameterError, WireFormatError
from ..core.prg import Prg
from ..mpc.ot.kkrt import KkrtReceiver, KkrtSender
from ..runtime.collectives import Channel
from ..runtime.context import PartyContext
from . import cuckoo
from ._keys import DIGEST_BYTES, check_unique, digest_keys
from .ecdh import PsiError, PsiResult, _local_input, _resolve_parties, _secret_permutation, aligned_frames

PROTOCOL = "jointml-kkrt-psi-v1"
_DUMMY = 0xFF  # the last input byte of an empty bin (real inputs end with k in 0..2)
_MAX_SEEDS = 8
_WAIT = 3600.0  # seconds a party waits for a peer that is still reading a large input


def tag_bytes(n_m: int, n_o: int) -> int:
    """Bytes per OPRF tag: 40 bits of statistical security plus log2 of the pairs compared.

    >>> tag_bytes(1_000_000, 1_000_000), tag_bytes(10, 10)
    (11, 8)
    """
    bits = 40 + math.log2(max(n_m, 1)) + math.log2(3 * max(n_o, 1))
    return min(16, max(8, math.ceil(bits / 8)))


def _inputs(digests: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """OPRF inputs: the first 15 bytes of each digest, then the hash-function index k."""
    x = np.empty((digests.shape[0], 16), np.uint8)
    x[:, :15] = digests[:, :15]
    x[:, 15] = k
    return x


def _hello(n: int, kinds: list, names: list, parties: list, reveal_to: str | None, sort_by: str | None) -> dict:
    return {"protocol": PROTOCOL, "n": n, "kinds": kinds, "columns": names, "parties": parties,
            "reveal_to": reveal_to, "sort_by": sort_by}


def _check_hello(me: str, mine: dict, peer: str, theirs: Any) -> int:
    """The same checks at both parties on the same pair of hellos, so both fail alike."""
    if not isinstance(theirs, dict) or theirs.get("protocol") != PROTOCOL:
        got = theirs.get("protocol") if isinstance(theirs, dict) else "?"
        raise PsiError(f"party '{peer}' runs PSI protocol {got}, '{me}' runs {PROTOCOL}: pass the same protocol=")
    for k in ("parties", "reveal_to", "sort_by"):
        if theirs.get(k) != mine.get(k):
            raise PsiError(f"psi called with {k}={mine.get(k)!r} at '{me}' but {k}={theirs.get(k)!r} at '{peer}'")
    kc, tc = mine["kinds"], theirs.get("kinds")
    if not isinstance(tc, list) or len(tc) != len(kc):
        raise PsiError(f"party '{me}' has {len(kc)} key columns {mine['columns']}, '{peer}' has {theirs.get('columns')}")
    for j, (a, b) in enumerate(zip(kc, tc)):
        if a is not None and b is not None and a != b:
            raise PsiError(
                f"key column {j}: '{mine['columns'][j]}' at '{me}' holds {a} ids, '{theirs['columns'][j]}' at "
                f"'{peer}' holds {b} ids; integer and string ids never match: convert one side (e.g. df[col].astype(str))"
            )
    n = theirs.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise WireFormatError(f"{me}: bad set size {n!r} from {peer}", party=peer)
    return n


def _cuckoo(d: np.ndarray) -> tuple[int, bytes, np.ndarray, np.ndarray]:
    """(bins, seed, table, which) for M's digests; re-draws the seed on a failed insertion."""
    bins = cuckoo.n_bins(d.shape[0])
    for _ in range(_MAX_SEEDS):
        seed = Prg().bytes(16)
        table, which = cuckoo.insert(cuckoo.candidate_bins(d[:, :16], seed, bins), bins)
        if table.size:
            return bins, seed, table, which
    raise PsiError(f"cuckoo hashing of {d.shape[0]} ids failed {_MAX_SEEDS} times (probability < 2^-300)")


class _Matcher:
    """M's OPRF tags of its occupied bins, sorted for lookup (first 8 bytes, then the rest)."""

    def __init__(self, tags: np.ndarray, rows: np.ndarray, ks: np.ndarray):
        w = _words(tags)
        order = np.lexsort((w[:, 1], w[:, 0]))
        self.a, self.b = w[order, 0], w[order, 1]
        self.rows, self.ks = rows[order], ks[order]

    def match(self, tags: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `tags`, M rows) of the tags that equal one of M's for hash function k."""
        if self.a.size == 0 or tags.shape[0] == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        w = _words(tags)
        # [lo, hi): M's tags whose first word matches; almost always 0 or 1 of them. The
        # needles are searched in sorted order: at 10M tags the table is far larger than the
        # caches and random binary searches were cache-miss bound (95 s of a 133 s 10M x 10M
        # run); sorted needles walk neighbouring paths (9x faster per batch, measured).
        first = w[:, 0]
        o = np.argsort(first, kind="stable")
        lo = np.empty(first.size, np.int64)
        lo[o] = np.searchsorted(self.a, first[o], "left")
        hit = np.flatnonzero(self.a[np.minimum(lo, self.a.size - 1)] == first)
        hi = lo.copy()
        hi[hit] = np.searchsorted(self.a, first[hit], "right")
        cand = np.flatnonzero(hi > lo)
        pos, rows = [], []
        for extra in range(int((hi - lo).max(initial=0))):
            c = cand[hi[cand] - lo[cand] > extra]
            j = lo[c] + extra
            ok = (self.b[j] == w[c, 1]) & (self.ks[j] == k)
            pos.append(c[ok])
            rows.append(self.rows[j[ok]])
        if not pos:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(pos), np.concatenate(rows)


def _words(tags: np.ndarray) -> np.ndarray:
    pad = np.zeros((tags.shape[0], 16), np.uint8)
    pad[:, : tags.shape[1]] = tags
    return pad.view(np.uint64)


def _lead(ch: Channel, d: np.ndarray, n_o: int, times: dict) -> tuple[np.ndarray, np.ndarray]:
    """M's side of steps 2-5: (M rows shared, O's shuffled positions of them)."""
    t0 = time.perf_counter()
    bins, seed, table, which = _cuckoo(d)
    ch.send("round", meta={"bins": bins, "seed": seed.hex()})
    occupied = np.flatnonzero(table >= 0)
    items = table[occupied]
    inputs = Prg().random((bins, 16), np.uint8)
    inputs[:, 15] = _DUMMY
    inputs[occupied] = _inputs(d[items], which[items])
    times["cuckoo_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ell = tag_bytes(d.shape[0], n_o)
    tags = KkrtReceiver(ch, out_bytes=ell).oprf(inputs)
    times["oprf_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = _Matcher(tags[occupied], items, which[items])
    got_pos, got_rows, done = [], [], 0
    while done < n_o:
        arrays = ch.recv("tags", timeout=_WAIT).expect([np.uint8] * cuckoo.N_HASH)
        k_rows = arrays[0].shape[0]
        if k_rows == 0 or k_rows > n_o - done or any(a.shape != (k_rows, ell) for a in arrays):
            raise WireFormatError(f"bad tag batch from '{ch.peer}'", party=ch.peer)
        for k, a in enumerate(arrays):
            p, r = m.match(a, k)
            got_pos.append(p + done)
            got_rows.append(r)
        done += k_rows
    times["match_s"] = time.perf_counter() - t0
    rows = np.concatenate(got_rows) if got_rows else np.empty(0, np.int64)
    pos = np.concatenate(got_pos) if got_pos else np.empty(0, np.int64)
    return rows, pos


def _follow(ch: Channel, d: np.ndarray, n_m: int, batch: int, times: dict) -> np.ndarray:
    """O's side of steps 2-4; returns the secret order in which O sent its ids."""
    msg = ch.recv("round", dtypes=[], timeout=_WAIT)
    bins, seed_hex = msg.meta.get("bins"), msg.meta.get("seed")
    if bins != cuckoo.n_bins(n_m) or not isinstance(seed_hex, str) or len(seed_hex) != 32:
        raise WireFormatError(f"bad cuckoo parameters from '{ch.peer}'", party=ch.peer)
    seed = bytes.fromhex(seed_hex)
    t0 = time.perf_counter()
    key = KkrtSender(ch, out_bytes=tag_bytes(n_m, d.shape[0]))
    key.extend(bins)
    times["oprf_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    order = _secret_permutation(d.shape[0])
    for lo in range(0, d.shape[0], batch):
        part = d[order[lo : lo + batch]]
        cand = cuckoo.candidate_bins(part[:, :16], seed, bins)
        ch.send("tags", arrays=[key.eval(cand[:, k], _inputs(part, k)) for k in range(cuckoo.N_HASH)])
    times["tags_s"] = time.perf_counter() - t0
    return order


def _final_lead(ch: Channel, rows: np.ndarray, pos: np.ndarray, sort_by: str | None, me: str) -> np.ndarray:
    """M: the common order of the shared rows; sends O its positions in that order."""
    o = np.argsort(rows, kind="stable") if sort_by == me else _secret_permutation(rows.size)
    ch.send("final", arrays=[pos[o].astype(np.uint64)])
    return rows[o]


def _final_follow(ch: Channel, order: np.ndarray, n_m: int) -> np.ndarray:
    pos = ch.recv("final", dtypes=[np.uint64], timeout=_WAIT).arrays[0]
    n = order.size
    if pos.ndim != 1 or pos.size > min(n, n_m) or (pos.size and (int(pos.max()) >= n or np.unique(pos).size != pos.size)):
        raise WireFormatError(f"invalid intersection positions from '{ch.peer}'", party=ch.peer)
    return order[pos.astype(np.int64)]


def _order_by(ch: Channel, positions: np.ndarray, owner: str, me: str) -> np.ndarray:
    """Reorder both parties' positions by `owner`'s row order (the owner sends the permutation)."""
    if me == owner:
        perm = np.argsort(positions, kind="stable")
        ch.send("order", arrays=[perm.astype(np.uint64)])
    else:
        perm = ch.recv("order", dtypes=[np.uint64]).arrays[0].astype(np.int64)
        if perm.shape != positions.shape or not np.array_equal(np.sort(perm), np.arange(positions.size)):
            raise WireFormatError(f"invalid order from '{owner}'", party=owner)
    return positions[perm]


def psi_align_kkrt(
    ctx: PartyContext,
    keys: Any,
    key_columns: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    *,
    parties: Sequence[str] | None = None,
    reveal_to: str | None = None,
    sort_by: str | None = None,
    batch_size: int = 100_000,
    read_csv_kwargs: Mapping[str, Any] | None = None,
    **ignored: Any,
) -> PsiResult | None:
    """Two-party PSI by KKRT16 OPRF: which of my rows are shared, aligned with the other party.

    Arguments, result and errors as `jointml.psi.psi_align` (``n_jobs`` and ``progress`` are
    accepted and ignored: this protocol runs in the party's process). Exactly two parties.

    >>> keys = {"bank": ["a", "b", "c"], "partner": ["c", "x"]}
    >>> def prog(ctx):
    ...     r = psi_align_kkrt(ctx, keys, reveal_to="bank")
    ...     return r.positions, r.set_sizes
    >>> out = simulate(prog, ["bank", "partner"], mode="thread")
    >>> out["bank"][0].tolist(), out["partner"]
    ([2], (None, {'partner': 2, 'bank': 3}))
    """
    unknown = set(ignored) - {"n_jobs", "progress"}
    if unknown:
        raise ParameterError(f"psi_align(protocol='kkrt') got unexpected arguments {sorted(unknown)}", field=sorted(unknown)[0])
    uid = ctx.next_uid("psi")  # every party draws it, as ECDH-PSI does: counters stay in step
    parties = _resolve_parties(ctx, keys, parties)
    if len(parties) != 2:
        raise ConfigError(f"protocol='kkrt' runs between two parties, got {parties}: use protocol='ecdh' for more")
    for name, v in (("reveal_to", reveal_to), ("sort_by", sort_by)):
        if v is not None and v not in parties:
            raise ConfigError(f"psi {name}={v!r} is not one of the parties {parties}")
    if reveal_to is not None and sort_by not in (None, reveal_to):
        raise ConfigError(f"psi sort_by={sort_by!r}: with reveal_to={reveal_to!r} only '{reveal_to}' has positions to sort")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive int, got {batch_size!r}", field="batch_size")
    if ctx.me not in parties:
        return None
    return _run(ctx, uid, keys, key_columns, parties, reveal_to, sort_by, batch_size, read_csv_kwargs)


def _run(ctx: PartyContext, uid: str, keys: Any, key_columns: Any, parties: list[str], reveal_to: str | None,
         sort_by: str | None, batch_size: int, read_csv_kwargs: Any) -> PsiResult:
    me = ctx.me
    peer = parties[1] if me == parties[0] else parties[0]
    matcher = reveal_to or parties[0]
    cols = key_columns.get(me) if isinstance(key_columns, Mapping) else key_columns
    if isinstance(cols, str):
        cols = [cols]
    stats0, t_start = ctx.stats(), time.perf_counter()
    times: dict[str, float] = {}
    digests, kinds, names = digest_keys(_local_input(ctx, keys), cols, me, batch_size, read_csv_kwargs)
    n = len(digests) // DIGEST_BYTES
    check_unique(digests, me, names)
    d = np.frombuffer(digests, np.uint8).reshape(n, DIGEST_BYTES)
    times["hash_s"] = time.perf_counter() - t_start
    ch = Channel(ctx, peer, uid)
    hello = _hello(n, kinds, names, parties, reveal_to, sort_by)
    ch.send("hello", meta=hello)
    n_peer = _check_hello(me, hello, peer, ch.recv("hello", dtypes=[], timeout=_WAIT).meta)
    sizes = {me: n, peer: n_peer}
    positions: np.ndarray | None
    slots: np.ndarray | None = None
    sent: np.ndarray | None = None
    if me == matcher:
        rows, pos = _lead(ch, d, n_peer, times) if n and n_peer else (np.empty(0, np.int64),) * 2
        if reveal_to is None:
            positions = _final_lead(ch, rows, pos, sort_by, me)
        else:  # label-only PSI needs, per shared row, its slot in O's secret send order
            o = np.argsort(rows, kind="stable")
            positions, slots = rows[o], pos[o].astype(np.int64)
    else:
        order = _follow(ch, d, n_peer, batch_size, times) if n and n_peer else _secret_permutation(n)
        positions = None if reveal_to is not None else _final_follow(ch, order, n_peer)
        sent = order if reveal_to is not None else None
    if positions is not None and sort_by is not None and sort_by != matcher and reveal_to is None:
        positions = _order_by(ch, positions, sort_by, me)
    stats1 = ctx.stats()
    times = {k: round(v, 4) for k, v in times.items()}
    res = PsiResult(me, positions, None if positions is None else len(positions), sizes, stats=dict(times),
                    peer_slots=slots, sent_order=sent)
    res.stats.update(
        protocol="kkrt",
        seconds=round(time.perf_counter() - t_start, 4),
        bytes_sent=stats1["bytes_sent"] - stats0["bytes_sent"],
        bytes_recv=stats1["bytes_recv"] - stats0["bytes_recv"],
        msgs_sent=stats1["msgs_sent"] - stats0["msgs_sent"],
    )
    return res


def psi_frame_kkrt(ctx: PartyContext, frames: Any, key_columns: Any = None, **kwargs: Any) -> Any:
    """`psi_align_kkrt`, then the aligned rows, in the structure given (as `jointml.psi.psi_frame`).

    >>> import pandas as pd
    >>> def prog(ctx):
    ...     bank = ctx.party("bank").run(lambda: pd.DataFrame({"id": ["a", "b", "c"], "x": [1, 2, 3]}))
    ...     partner = ctx.party("partner").run(lambda: pd.DataFrame({"id": ["c", "a"], "y": [9, 8]}))
    ...     out = psi_frame_kkrt(ctx, {"bank": bank, "partner": partner}, key_columns=["id"], sort_by="bank")
    ...     return out[ctx.me].value.to_dict("list")
    >>> simulate(prog, ["bank", "partner"], mode="thread")
    {'bank': {'id': ['a', 'c'], 'x': [1, 3]}, 'partner': {'id': ['a', 'c'], 'y': [8, 9]}}
    """
    return aligned_frames(psi_align_kkrt, ctx, frames, key_columns, **kwargs)


__all__ = ["psi_align_kkrt", "psi_frame_kkrt", "tag_bytes", "PROTOCOL"]
