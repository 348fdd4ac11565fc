"""SecureBoost histograms: which nodes are summed, by whom, and how they come back.

Per level, every feature holder sums the encrypted (g, h) pairs of the sampled rows of
each node per (feature, bin) with :meth:`jointml.he.HeArray.group_sum` (the grouped-sum
kernel of :mod:`jointml.he.grouped`, feature pairs included), and returns them to the
label holder compressed and re-randomised (:meth:`~jointml.he.HeArray.reveal`, which
folds many pairs into one ciphertext with :func:`jointml.he.compress_ciphertexts`).
Histogram subtraction: of two sibling nodes only the one with fewer sampled rows is
summed; the label holder derives the other in plaintext as parent minus sibling. The
label holder's own features are summed in plaintext.

What each party learns here: the label holder, the per-bin sums of g and h of the
summed nodes (decrypted); a feature holder, nothing (ciphertexts only). See
:mod:`jointml.ml.tree.secureboost` for the whole protocol.

>>> compute_nodes([1, 2, 3, 4], np.array([0, 5, 3, 2, 9]), depth=1)
[2, 3]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ....he import EncryptedArray, HeArray, PublicKey, compress_ciphertexts

__all__ = ["compress_pairs", "compute_nodes", "own_histograms", "holder_histograms", "fill_siblings"]


def compress_pairs(pk: PublicKey, sums: list, slot_bits: int, frac_bits: int, *,
                   n_jobs: int | None = None) -> EncryptedArray:
    """Fold packed (g, h) bin sums into few ciphertexts and re-randomise them
    (:func:`jointml.he.compress_ciphertexts` with a unit of two slots).

    >>> from jointml.he import encrypt_packed, generate_keypair
    >>> pk, sk = generate_keypair(512)          # 512 bits: examples only, for speed
    >>> ct = encrypt_packed(pk, np.array([[0.5, 1.0], [-0.25, 1.0]]), slot_bits=24, frac_bits=8)
    >>> sk.decrypt(compress_pairs(pk, list(ct.data), 24, 8)).tolist()
    [[0.5, 1.0], [-0.25, 1.0]]
    """
    return compress_ciphertexts(pk, list(sums), slot_bits, frac_bits, unit_shape=(2,), n_jobs=n_jobs)


def compute_nodes(frontier: list[int], counts: np.ndarray, depth: int) -> list[int]:
    """The nodes the feature holders sum: the root, or the smaller child of each pair."""
    if depth == 0:
        return [0]
    out = []
    for i in range(0, len(frontier), 2):
        a, b = frontier[i], frontier[i + 1]
        out.append(a if counts[a] <= counts[b] else b)
    return out


def own_histograms(codes: np.ndarray, own_sel: np.ndarray, nb: np.ndarray, g: np.ndarray, h: np.ndarray,
                   rows: np.ndarray, pos: np.ndarray, frontier: list[int], n_nodes: int) -> dict[int, np.ndarray]:
    """Label holder: plaintext (bins, 2) histograms of its own sampled features, per frontier node."""
    offs = np.concatenate([[0], np.cumsum(nb)])
    tot = int(offs[-1])
    slot_of = np.full(n_nodes, -1, dtype=np.int64)
    slot_of[frontier] = np.arange(len(frontier))
    sl = slot_of[pos[rows]]
    live = rows[sl >= 0]  # rows of nodes that stopped splitting are not in the frontier
    sl = sl[sl >= 0]
    keys = (sl[:, None] * tot + offs[None, :-1] + codes[live][:, own_sel]).ravel()
    gw = np.repeat(g[live], len(own_sel))
    hw = np.repeat(h[live], len(own_sel))
    hg = np.bincount(keys, weights=gw, minlength=len(frontier) * tot).reshape(len(frontier), tot)
    hh = np.bincount(keys, weights=hw, minlength=len(frontier) * tot).reshape(len(frontier), tot)
    return {node: np.stack([hg[i], hh[i]], axis=1) for i, node in enumerate(frontier)}


def holder_histograms(ctx: Any, grad: HeArray, p: str, local: dict | None, compute: list[int], want: int | None,
                      T: dict) -> Any:
    """Encrypted histograms of feature holder `p` for the nodes `compute`, revealed to
    the label holder (a PartyObject there, ``(want, 2)`` values). SPMD: every party calls
    it for every holder; `local` (this holder's codes, bins, rows, positions, column
    sample) is only read at `p`."""
    codes = groups = sel_rows = None
    nbins: Any = []
    if ctx.me == p:
        assert local is not None  # read at `p` only, which passes it
        slot_of = np.full(local["n_nodes"], -1, dtype=np.int64)
        slot_of[compute] = np.arange(len(compute))
        rows = local["rows"]
        srows_slot = slot_of[local["pos"][rows]]
        sel = np.flatnonzero(srows_slot >= 0)
        codes = local["codes"][rows[sel]][:, local["colsel"]]
        groups, sel_rows = srows_slot[sel], sel
        nbins = local["bins"].n_bins[local["colsel"]] + 1
    dev = ctx.party(p)
    th = time.perf_counter()
    sums = grad.group_sum(dev.put(codes), nbins, groups=dev.put(groups), n_groups=len(compute),
                          rows=dev.put(sel_rows))
    tc = time.perf_counter()
    if ctx.me == p:
        T["hist"] += tc - th
    out = sums.reveal(to=grad.device.holder, expect=want, name="sb:hist")
    if ctx.me == p:
        T["compress"] += time.perf_counter() - tc
    elif ctx.me == grad.device.holder:
        T["decrypt"] += time.perf_counter() - tc
    return out


def fill_siblings(hists: dict, frontier: list[int], compute: list[int], parent_hist: dict, par_of: dict,
                  p: str) -> None:
    """Sibling = parent - computed child, in plaintext at the label holder."""
    for i in range(0, len(frontier), 2):
        a, b = frontier[i], frontier[i + 1]
        c, o = (a, b) if a in compute else (b, a)
        hists[o][p] = parent_hist[par_of[c]][p] - hists[c][p]
