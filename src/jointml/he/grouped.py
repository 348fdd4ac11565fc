"""Grouped sums over encrypted rows: the hot path of SecureBoost and vertical WOE.

A party holding one ciphertext per row (under another party's key) and, in plaintext,
a bin per row and column and a group (tree node) per row, computes the encrypted sum
of every (group, column, bin): a product of ciphertexts mod ``n^2``. Every row in a
group contributes one multiplication per column. The kernel scatters each row's
ciphertext into the bin accumulators of all its columns (one mulmod each, straight
Python over gmpy2, which measured faster than numpy object arrays: ~220k mulmods/s per
core at 2048-bit Paillier keys, ~600k under 2048-bit OU), split across the shared worker
pool by columns (each worker all rows, its share of the columns; feature pairs kept
whole), or by row chunks whose partial sums are multiplied together when there are
fewer columns than workers.

Feature pairs.  When a group has many more rows than a pair of columns has joint bins,
a row is scattered once into the joint (bin_a, bin_b) bucket of the pair instead of
once per column, and the per-column sums are then read off the non-empty buckets (two
mulmods per bucket).  With many more rows than buckets (the root and upper levels of
large trainings) this nearly halves the mulmods; the kernel pairs two columns only when
the expected saving exceeds 10 % (:func:`_pair_pays`).

Security: the evaluator (this party) learns nothing about the encrypted values
(semantic security of Paillier); the key holder, if it receives the sums, learns the
per-bin totals and nothing else, provided they are re-randomised first (see
:func:`~jointml.he.packing.compress_ciphertexts`). Payloads to and from the pool are
bytes/ints/ndarrays, local to this party.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gmpy2 import mpz

from . import parallel
from .encoding import bytes_to_ints, ints_to_bytes

__all__ = ["grouped_sums", "grouped_sum_kernel", "PARALLEL_MIN_ROWS"]

#: rows per worker chunk below which a level is computed in-process
PARALLEL_MIN_ROWS = 2048


def _pair_pays(rows: float, buckets: int) -> bool:
    """Pairing costs ``rows`` scatters + 2 per non-empty bucket instead of ``2 * rows``
    scatters; expected non-empty buckets ``B (1 - exp(-rows / B))``; ask for a 10 % gain."""
    nonempty = buckets * (1.0 - np.exp(-rows / buckets))
    return rows - 2.0 * nonempty > 0.2 * rows


def _pairs(n_bins: np.ndarray, rows_per_node: float) -> tuple[list[tuple[int, int]], list[int]]:
    """Greedy pairing of features whose joint bucket count pays off; rest stay single."""
    order = np.argsort(n_bins, kind="stable")
    pairs, singles = [], []
    i = 0
    while i < len(order):
        if i + 1 < len(order):
            a, b = int(order[i]), int(order[i + 1])
            if _pair_pays(rows_per_node, int(n_bins[a] * n_bins[b])):
                pairs.append((a, b))
                i += 2
                continue
        singles.append(int(order[i]))
        i += 1
    return pairs, singles


def grouped_sum_kernel(nsq_int: int, blob: bytes, codes: np.ndarray, slot: np.ndarray, n_nodes: int,
                n_bins: np.ndarray, use_pairs: bool) -> bytes:
    """Bin sums for one row chunk (a pool task; see :func:`grouped_sums`).

    ``codes`` (m, d) bin codes in ``[0, n_bins[j])``; ``slot`` (m,) the node slot of each
    row in ``[0, n_nodes)``.  Output: ``n_nodes * sum(n_bins)`` ciphertexts (node-major,
    then feature, then bin), the empty product being ``1``, as a bytes blob.

    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)
    >>> blob = pk.encrypt([2, 3]).to_wire().tobytes()
    >>> out = grouped_sum_kernel(int(pk.nsq), blob, np.array([[0], [0]]), np.zeros(2, int), 1, np.array([1]), False)
    >>> sk.decrypt_residues(bytes_to_ints(out, pk.ciphertext_bytes))
    [5]
    """
    nsq = mpz(nsq_int)
    width = (int(nsq_int).bit_length() + 7) // 8
    cts = bytes_to_ints(blob, width)
    m, d = codes.shape
    n_bins = np.asarray(n_bins, dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(n_bins)]).astype(np.int64)
    total = int(offs[-1])
    out = [mpz(1)] * (n_nodes * total)
    rows_per_node = m / max(1, n_nodes)
    pairs, singles = _pairs(n_bins, rows_per_node) if use_pairs else ([], list(range(d)))
    base = slot.astype(np.int64) * total
    # one key per row and scatter group: a single feature's bin, or a pair's joint bucket
    keys_single = [base + offs[j] + codes[:, j] for j in singles]
    pair_space = [int(n_bins[a] * n_bins[b]) for a, b in pairs]
    pair_offs = np.concatenate([[0], np.cumsum(pair_space)]).astype(np.int64)
    ptotal = int(pair_offs[-1])
    pbase = slot.astype(np.int64) * ptotal
    keys_pair = [pbase + pair_offs[k] + codes[:, a].astype(np.int64) * n_bins[b] + codes[:, b]
                 for k, (a, b) in enumerate(pairs)]
    if keys_single:
        ks = np.stack(keys_single, axis=1).tolist()
        for c, row in zip(cts, ks):
            for k in row:
                out[k] = out[k] * c % nsq
    if keys_pair:
        _scatter_pairs(out, cts, keys_pair, pairs, n_bins, offs, pair_space, n_nodes, nsq)
    return ints_to_bytes(out, width)


def _scatter_pairs(out: list, cts: list, keys_pair: list, pairs: list, n_bins: np.ndarray, offs: np.ndarray,
                   pair_space: list, n_nodes: int, nsq: mpz) -> None:
    """Scatter rows into the joint buckets of feature pairs, then add each non-empty bucket
    to one bin of each feature of its pair (in place on ``out``)."""
    ptotal = int(sum(pair_space))
    buckets: list = [None] * (n_nodes * ptotal)  # a list, not a dict: ~10 % of the kernel's time
    kp = np.stack(keys_pair, axis=1).tolist()
    for c, row in zip(cts, kp):
        for k in row:
            v = buckets[k]
            buckets[k] = c if v is None else v * c % nsq
    # marginal targets of every bucket, vectorised once (no searchsorted per bucket)
    pair_of = np.repeat(np.arange(len(pairs)), pair_space)
    local = np.arange(ptotal) - np.concatenate([[0], np.cumsum(pair_space)])[:-1][pair_of]
    a_of = np.array([a for a, _ in pairs])[pair_of]
    b_of = np.array([b for _, b in pairs])[pair_of]
    nb_b = n_bins[b_of]
    ia_r = offs[a_of] + local // nb_b
    ib_r = offs[b_of] + local % nb_b
    filled = [k for k, v in enumerate(buckets) if v is not None]
    if not filled:
        return
    fk = np.asarray(filled, dtype=np.int64)
    node, r = np.divmod(fk, ptotal)
    total = int(offs[-1])
    for k, ia, ib in zip(filled, (node * total + ia_r[r]).tolist(), (node * total + ib_r[r]).tolist()):
        v = buckets[k]
        out[ia] = out[ia] * v % nsq
        out[ib] = out[ib] * v % nsq


def _column_groups(n_bins: np.ndarray, rows_per_node: float, n_groups: int, use_pairs: bool) -> list[list[int]]:
    """Split the columns into ``n_groups`` lists of about equal scatter cost, keeping the
    feature pairs that pay (:func:`_pairs`, decided on all rows) together: one row
    scatter per pair or single column, plus two products per non-empty pair bucket."""
    pairs, singles = _pairs(n_bins, rows_per_node) if use_pairs else ([], list(range(len(n_bins))))
    units: list[tuple[float, list[int]]] = []
    for a, b in pairs:
        buckets = float(n_bins[a] * n_bins[b])
        units.append((rows_per_node + 2.0 * buckets * (1.0 - np.exp(-rows_per_node / buckets)), [a, b]))
    units += [(rows_per_node, [j]) for j in singles]
    units.sort(key=lambda u: -u[0])  # longest first, each to the least loaded group
    load = [0.0] * n_groups
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    for cost, cols in units:
        i = int(np.argmin(load))
        load[i] += cost
        groups[i] += cols
    return [g for g in groups if g]


def grouped_sums(wire: np.ndarray, nsq: Any, codes: np.ndarray, slot: np.ndarray, n_nodes: int,
                 n_bins: np.ndarray, *, n_jobs: int | None = None, use_pairs: bool = True) -> list:
    """Homomorphic sums of row ciphertexts per (node slot, column, bin); list of mpz.

    ``wire`` holds the rows' ciphertexts as a ``(m, ciphertext_bytes)`` uint8 array (as
    received and validated, :meth:`~jointml.he.PublicKey.ciphertexts_from_wire`): they
    go to the workers as raw bytes, no re-encoding. ``codes`` (m, d) gives each
    row's bin per column (``0 <= codes[:, j] < n_bins[j]``), ``slot`` (m,) its group
    (node) in ``[0, n_nodes)``. The result is node-major, then column, then bin; an
    empty bin is ``1`` (the trivial encryption of zero). The sums are deterministic
    functions of the inputs: re-randomise (or compress) them before they go back to
    the key holder.

    Work split.  With several columns, each worker sums *all* rows for its share of the
    columns (feature pairs kept whole): pairing is then decided on every row of a node,
    as on one core, and no bucket marginals are computed twice.  Splitting the rows
    instead (one column, or few columns) made each worker pair on a fraction of a node's
    rows, which at deep levels stopped paying and doubled the products there.

    >>> from jointml.he import generate_keypair
    >>> pk, sk = generate_keypair(512)
    >>> wire = pk.encrypt([5, 7, 9]).to_wire()
    >>> sums = grouped_sums(wire, pk.nsq, np.array([[0], [1], [0]]), np.zeros(3, int), 1, np.array([2]))
    >>> sk.decrypt_residues(sums)
    [14, 7]
    """
    m = len(wire)
    width = (int(nsq).bit_length() + 7) // 8
    jobs = parallel.resolve_n_jobs(n_jobs)
    codes = np.ascontiguousarray(codes)
    slot = np.ascontiguousarray(slot)
    n_bins = np.asarray(n_bins, dtype=np.int64)
    if jobs > 1 and m >= 2 * PARALLEL_MIN_ROWS:
        cols = _column_groups(n_bins, m / max(1, n_nodes), jobs, use_pairs)
        if len(cols) >= 2:
            return _column_split(wire, nsq, codes, slot, n_nodes, n_bins, cols, jobs, use_pairs)
    n_chunks = 1 if jobs <= 1 or m < 2 * PARALLEL_MIN_ROWS else min(2 * jobs, max(1, m // PARALLEL_MIN_ROWS))
    parts = parallel.split(range(m), n_chunks)
    args = [(int(nsq), np.ascontiguousarray(wire[r.start:r.stop]).tobytes(), codes[r.start:r.stop], slot[r.start:r.stop],
             n_nodes, n_bins, use_pairs) for r in parts]
    blobs = parallel.map_chunks(grouped_sum_kernel, args, jobs if n_chunks > 1 else 1)
    acc = bytes_to_ints(blobs[0], width)
    for blob in blobs[1:]:
        nxt = bytes_to_ints(blob, width)
        acc = [a if b == 1 else (b if a == 1 else a * b % nsq) for a, b in zip(acc, nxt)]
    return acc


def _column_split(wire: np.ndarray, nsq: Any, codes: np.ndarray, slot: np.ndarray, n_nodes: int,
                  n_bins: np.ndarray, cols: list[list[int]], jobs: int, use_pairs: bool) -> list:
    """One pool task per column group (all rows each); the sums put back in column order."""
    width = (int(nsq).bit_length() + 7) // 8
    blob = np.ascontiguousarray(wire).tobytes()
    args = [(int(nsq), blob, np.ascontiguousarray(codes[:, c]), slot, n_nodes, n_bins[c], use_pairs) for c in cols]
    blobs = parallel.map_chunks(grouped_sum_kernel, args, jobs)
    offs = np.concatenate([[0], np.cumsum(n_bins)]).astype(np.int64)
    out = np.empty((n_nodes, int(offs[-1])), dtype=object)
    for c, b in zip(cols, blobs):
        dest = np.concatenate([np.arange(offs[j], offs[j + 1]) for j in c])
        vals = np.empty(n_nodes * len(dest), dtype=object)
        vals[:] = bytes_to_ints(b, width)
        out[:, dest] = vals.reshape(n_nodes, len(dest))
    return out.ravel().tolist()
