"""Hot path of SecureBoost: per-bin sums of Paillier ciphertexts at a feature holder.

A bin sum is a product of ciphertexts mod ``n^2``.  Every row in a node contributes one
multiplication per feature.  The kernel scatters each row's ciphertext into the bin
accumulators of all its features (one mulmod each, straight Python over gmpy2, which
measured faster than numpy object arrays: ~220k mulmods/s per core at 2048-bit keys),
split across the local process pool by row chunks whose partial sums are multiplied
together at the end.

Feature pairs.  When a node has many more rows than a pair of features has joint bins,
a row is scattered once into the joint (bin_a, bin_b) bucket of the pair instead of
once per feature, and the per-feature histograms are then read off the non-empty
buckets (two mulmods per bucket).  With many more rows than buckets (the root and upper
levels of large trainings) this nearly halves the mulmods of the hot path; the kernel
pairs two features only when the expected saving exceeds 10 % (:func:`_pair_pays`).

Payloads to and from the pool are bytes/ints/ndarrays, local to this party.
"""

from __future__ import annotations

import gmpy2
import numpy as np
from gmpy2 import mpz

from ...he import parallel
from ...he.paillier import _bytes_to_mpz, _ints_to_bytes

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


def hist_kernel(nsq_int: int, blob: bytes, codes: np.ndarray, slot: np.ndarray, n_nodes: int,
                n_bins: np.ndarray, use_pairs: bool) -> bytes:
    """Bin sums for one row chunk.

    ``codes`` (m, d) bin codes in ``[0, n_bins[j])``; ``slot`` (m,) the node slot of each
    row in ``[0, n_nodes)``.  Output: ``n_nodes * sum(n_bins)`` ciphertexts (node-major,
    then feature, then bin), the empty product being ``1``, as a bytes blob.
    """
    nsq = mpz(nsq_int)
    width = (int(nsq_int).bit_length() + 7) // 8
    cts = _bytes_to_mpz(blob, width)
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
    pout: dict[int, mpz] = {}
    if keys_single:
        ks = np.stack(keys_single, axis=1).tolist()
        for c, row in zip(cts, ks):
            for k in row:
                out[k] = out[k] * c % nsq
    if keys_pair:
        kp = np.stack(keys_pair, axis=1).tolist()
        get = pout.get
        for c, row in zip(cts, kp):
            for k in row:
                v = get(k)
                pout[k] = c if v is None else v * c % nsq
        # marginals: each non-empty joint bucket adds to one bin of each feature
        for key, v in pout.items():
            node, r = divmod(key, ptotal)
            k = int(np.searchsorted(pair_offs, r, side="right") - 1)
            a, b = pairs[k]
            ca, cb = divmod(r - int(pair_offs[k]), int(n_bins[b]))
            ia = node * total + int(offs[a]) + ca
            ib = node * total + int(offs[b]) + cb
            out[ia] = out[ia] * v % nsq
            out[ib] = out[ib] * v % nsq
    return _ints_to_bytes(out, width)


def encrypted_histograms(wire: np.ndarray, nsq: mpz, codes: np.ndarray, slot: np.ndarray, n_nodes: int,
                         n_bins: np.ndarray, *, n_jobs: int | None = None, use_pairs: bool = True) -> list:
    """Bin sums for every (node slot, feature, bin); list of mpz (``1`` for an empty bin).

    ``wire`` holds the rows' ciphertexts as a ``(m, ciphertext_bytes)`` uint8 array (as
    received and validated): row chunks go to the workers as raw bytes, no re-encoding.
    """
    m = len(wire)
    width = (int(nsq).bit_length() + 7) // 8
    jobs = parallel.resolve_n_jobs(n_jobs)
    n_chunks = 1 if jobs <= 1 or m < 2 * PARALLEL_MIN_ROWS else min(2 * jobs, max(1, m // PARALLEL_MIN_ROWS))
    codes = np.ascontiguousarray(codes)
    slot = np.ascontiguousarray(slot)
    parts = parallel.split(range(m), n_chunks)
    args = [(int(nsq), np.ascontiguousarray(wire[r.start:r.stop]).tobytes(), codes[r.start:r.stop], slot[r.start:r.stop],
             n_nodes, np.asarray(n_bins), use_pairs) for r in parts]
    blobs = parallel.map_chunks(hist_kernel, args, jobs if n_chunks > 1 else 1)
    acc = _bytes_to_mpz(blobs[0], width)
    for blob in blobs[1:]:
        nxt = _bytes_to_mpz(blob, width)
        acc = [a if b == 1 else (b if a == 1 else a * b % nsq) for a, b in zip(acc, nxt)]
    return acc


def compress_kernel(params: tuple, blob: bytes, k: int, shift_bits: int, rerandomize: bool) -> bytes:
    """Horner-fold groups of ``k`` ciphertexts: ``c_0 * c_1^(2^s) * ... * c_(k-1)^(2^(s(k-1)))``,
    times a fresh encryption of zero when ``rerandomize``."""
    from ...he.paillier import _encrypt

    n = mpz(params[0])
    nsq = n * n
    width = (int(nsq).bit_length() + 7) // 8
    cts = _bytes_to_mpz(blob, width)
    e = mpz(1) << shift_bits
    out = []
    for g in range(0, len(cts), k):
        grp = cts[g:g + k]
        acc = grp[-1]
        for c in reversed(grp[:-1]):
            acc = gmpy2.powmod(acc, e, nsq) * c % nsq
        out.append(acc)
    if rerandomize:
        out = [c * r % nsq for c, r in zip(out, _encrypt(params, "djn", [0] * len(out)))]
    return _ints_to_bytes(out, width)


def compress_pairs(pk, sums: list, slot_bits: int, frac_bits: int, *, n_jobs: int | None = None):
    """Fold packed (g, h) bin sums into few ciphertexts and re-randomise them.

    Same result and layout as :func:`jointml.he.packing.compress` (which ``sk.decrypt``
    unpacks), computed group-wise in one pool round trip instead of one per Horner step.
    """
    from ...he import EncryptedArray, SlotLayout
    from ...he.packing import plaintext_bits

    unit = 2 * slot_bits
    m = len(sums)
    k = max(1, min(plaintext_bits(pk.n) // unit, max(m, 1)))
    groups = max(1, -(-m // k))
    padded = list(sums) + [mpz(1)] * (groups * k - m)
    width = pk.ciphertext_bytes
    jobs = parallel.resolve_n_jobs(n_jobs)
    n_chunks = 1 if jobs <= 1 or groups < 4 else min(groups, 2 * jobs)
    parts = parallel.split(range(groups), n_chunks)
    args = [(pk._params(), _ints_to_bytes(padded[r.start * k:r.stop * k], width), k, unit, True) for r in parts]
    blobs = parallel.map_chunks(compress_kernel, args, jobs if n_chunks > 1 else 1)
    data = np.empty(groups, dtype=object)
    data[:] = [c for b in blobs for c in _bytes_to_mpz(b, width)]
    layout = SlotLayout(slot_bits, (k, 2), True, n_values=m)
    return EncryptedArray(pk, data, frac_bits, None, layout)
