"""Vertical WOE binning and IV: labels at one party, features at others.

Protocol (semi-honest; Paillier for the label holder's labels):

1. The label holder encodes labels as 0/1 (1 = the positive, "bad" class),
   encrypts them under its own Paillier key and sends the ciphertexts (and its
   public key) to every feature holder.
2. Each feature holder fine-bins each of its columns locally (equal-frequency
   pre-bins for numbers, one bin per category, a bin for missing values), sums the
   encrypted labels of the rows in each pre-bin (homomorphic additions only), and
   returns the encrypted positive count of every pre-bin with its row count.
3. The label holder decrypts the per-bin positive counts; for supervised methods it
   merges pre-bins (ChiMerge or tree splits on counts; categories ordered by bad
   rate first) and sends the pre-bin -> bin map back; it computes WOE and IV per final bin.
4. WOE substitution: the label holder's own columns are replaced by WOE at the
   label holder. A feature holder's columns are, by default, turned into WOE
   *under MPC*: its one-hot bin matrix (private to it) times the WOE table
   (private to the label holder) gives a secret-shared WOE matrix, so neither side
   learns the other's part. With `woe_to_owner=True` the label holder sends the WOE
   tables to the owners instead, who substitute in plaintext.

What each party learns:
- label holder: per pre-bin row and positive counts of every feature holder's
  columns (not the bin boundaries, not which rows fall where), hence IV/WOE of
  those columns; nothing about individual feature values.
- feature holder: the ciphertexts of the labels (semantically secure: nothing), the
  pre-bin -> bin map for supervised methods (which of its pre-bins the label holder
  merged), and the WOE tables only with `woe_to_owner=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from ..runtime.device import PartyObject
from .frames import DataError, VDataFrame
from .preprocessing import (
    ChiMergeBinner,
    EqualFrequencyBinner,
    EqualWidthBinner,
    TreeBinner,
    chimerge_from_counts,
    tree_splits_from_counts,
    woe_iv_from_counts,
)

METHODS = ("chimerge", "tree", "quantile", "equal_width")


def _prebinner(method: str, n_prebins: int):
    if method == "equal_width":
        return EqualWidthBinner(n_bins=n_prebins, handle_unknown="missing")
    return EqualFrequencyBinner(n_bins=n_prebins, handle_unknown="missing")


def _cuts_for(method: str, pos: np.ndarray, neg: np.ndarray, max_bins: int, min_bin_frac: float) -> np.ndarray:
    if method == "chimerge":
        return np.asarray(chimerge_from_counts(pos, neg, max_bins=max_bins, min_bin_frac=min_bin_frac), dtype=np.int64)
    if method == "tree":
        return np.asarray(tree_splits_from_counts(pos, neg, max_bins=max_bins, min_bin_frac=min_bin_frac), dtype=np.int64)
    return np.arange(1, len(pos), dtype=np.int64)  # unsupervised: keep the pre-bins


def merge_map(method: str, categorical: bool, pos: np.ndarray, neg: np.ndarray, max_bins: int, min_bin_frac: float) -> np.ndarray:
    """Pre-bin -> final bin map decided on counts alone. The missing pre-bin (last)
    stays a bin of its own (last). Numeric pre-bins merge only with neighbours;
    categories are first ordered by bad rate (as supervised binners do), so any
    categories may share a bin."""
    reg_pos, reg_neg = pos[:-1], neg[:-1]
    k = len(reg_pos)
    order = np.arange(k)
    if categorical and method in ("chimerge", "tree"):
        rate = reg_pos / np.maximum(reg_pos + reg_neg, 1)
        order = np.argsort(rate, kind="stable")
    cuts = _cuts_for(method, reg_pos[order], reg_neg[order], max_bins, min_bin_frac) if k else np.zeros(0, np.int64)
    mapping = np.empty(k + 1, dtype=np.int64)
    mapping[order] = np.searchsorted(cuts, np.arange(k), side="right")
    mapping[k] = len(cuts) + 1 if k else 0
    return mapping


def _final_counts(mapping: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nb = int(mapping.max()) + 1
    return np.bincount(mapping, weights=pos, minlength=nb).astype(np.int64), np.bincount(mapping, weights=neg, minlength=nb).astype(np.int64)


@dataclass
class ColumnWOE:
    """A column's final binning: pre-bin -> final bin map (at the owner) and WOE (at the label holder)."""

    owner: str
    n_bins: int
    prebin_to_bin: np.ndarray | None = None  # at the owner
    woe: np.ndarray | None = None  # at the label holder (and the owner with woe_to_owner)
    iv: float | None = None  # at the label holder
    pos: np.ndarray | None = None
    neg: np.ndarray | None = None


@dataclass
class VerticalWOE:
    """The fitted vertical WOE transform. Attributes hold only what this party may know."""

    label_owner: str
    columns: dict[str, list[str]]  # party -> its binned columns (public)
    binners: dict = field(default_factory=dict)  # this party's pre-binner (fitted), if it holds columns
    col: dict[str, ColumnWOE] = field(default_factory=dict)
    woe_to_owner: bool = False

    @property
    def iv(self) -> dict[str, float] | None:
        """IV per column (at the label holder; None elsewhere)."""
        vals = {c: w.iv for c, w in self.col.items() if w.iv is not None}
        return vals or None

    def bin_indices(self, party: str, df: pd.DataFrame) -> np.ndarray:
        """Final bin index of every row for each of `party`'s columns (at the owner)."""
        b = self.binners[party]
        cols = self.columns[party]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"party '{party}': columns {missing} missing for the WOE transform")
        pre = np.asarray(b.transform(df[cols]))
        return np.stack([self.col[c].prebin_to_bin[pre[:, j]] for j, c in enumerate(cols)], axis=1) if cols else np.zeros((len(df), 0), np.int64)

    def transform(self, ctx, vdf: VDataFrame, mpc=None) -> dict:
        """WOE features per party: PartyObjects (plaintext at the owner) or, for feature
        holders without `woe_to_owner`, SecretArrays on `mpc` (needs `mpc`)."""
        out: dict = {}
        for party, cols in self.columns.items():
            if not cols:
                continue
            if party == self.label_owner or self.woe_to_owner:
                out[party] = ctx.party(party).run(
                    lambda df, p=party, cs=cols: np.stack([self.col[c].woe[self.bin_indices(p, df)[:, j]] for j, c in enumerate(cs)], axis=1),
                    vdf.parts[party],
                )
            else:
                if mpc is None:
                    raise DataError("secure WOE substitution needs an MPC device (or woe_to_owner=True)")
                out[party] = self._secure_substitute(ctx, vdf, party, cols, mpc)
        return out

    def _secure_substitute(self, ctx, vdf, party, cols, mpc):
        nb = [self.col[c].n_bins for c in cols]
        offs = np.concatenate([[0], np.cumsum(nb)])

        def onehot(df):
            idx = self.bin_indices(party, df)
            m = np.zeros((len(df), int(offs[-1])), dtype=np.int64)
            for j in range(len(cols)):
                m[np.arange(len(df)), offs[j] + idx[:, j]] = 1
            return m

        def table():
            t = np.zeros((int(offs[-1]), len(cols)))
            for j, c in enumerate(cols):
                t[offs[j] : offs[j + 1], j] = self.col[c].woe
            return t

        oh = ctx.party(party).run(onehot, vdf.parts[party]).to(mpc, fxp=False)
        tb = ctx.party(self.label_owner).run(table).to(mpc, fxp=True)
        return oh @ tb


def _send_all(ctx, tag, meta=None, arrays=(), to=None):
    for p in to if to is not None else ctx.parties:
        if p != ctx.me:
            ctx.comm.send(p, tag, arrays, meta)


def vertical_woe(
    ctx,
    vdf: VDataFrame,
    label: str,
    *,
    features: dict[str, list[str]] | None = None,
    method: str = "chimerge",
    max_bins: int = 6,
    n_prebins: int = 20,
    min_bin_frac: float = 0.05,
    pos_label=1,
    key_bits: int = 2048,
    woe_to_owner: bool = False,
) -> VerticalWOE:
    """Fit WOE binning on every feature column of a vertically partitioned frame.

    `label` is a column of the label holder; `pos_label` marks the positive ("bad")
    class. Returns a `VerticalWOE`; at the label holder `.iv` gives IV per column.

    >>> # woe = vertical_woe(ctx, vdf, "creditability", pos_label="bad", method="chimerge")
    >>> # feats = woe.transform(ctx, vdf, mpc)   # {party: PartyObject | SecretArray}
    """
    if method not in METHODS:
        raise DataError(f"method must be one of {METHODS}, got {method!r}")
    label_owner = vdf.owner_of(label)
    columns = {p: [c for c in cs if c != label] for p, cs in vdf.columns.items()}
    if features is not None:
        for p, cs in features.items():
            for c in cs:
                if vdf.owner_of(c) != p:
                    raise DataError(f"column '{c}' is not held by party '{p}'")
        columns = {p: list(features.get(p, [])) for p in vdf.parties}
    model = VerticalWOE(label_owner=label_owner, columns=columns, woe_to_owner=woe_to_owner)
    me = ctx.me
    holders = [p for p in vdf.parties if p != label_owner and columns.get(p)]

    # 1. labels: encoded at the label holder, encrypted for the feature holders.
    if me == label_owner:
        df = vdf.parts[me].value
        yraw = df[label]
        if yraw.isna().any():
            raise DataError(f"party '{me}': label column '{label}' has missing values")
        y = (yraw == pos_label).to_numpy().astype(np.int64)
        if y.sum() in (0, len(y)):
            raise DataError(f"party '{me}': label column '{label}' has a single class (pos_label={pos_label!r})")
        if holders:
            from ..he import generate_keypair

            pk, sk = generate_keypair(key_bits)
            ct = pk.encrypt(y)
            _send_all(ctx, "woe:labels", {"pk": pk.to_dict()}, [ct.to_wire()], to=holders)
    elif me in holders:
        from ..he import EncryptedArray, PublicKey

        msg = ctx.comm.recv(label_owner, "woe:labels")
        pk = PublicKey.from_dict(msg.meta["pk"])
        n_rows = len(vdf)
        if len(msg.arrays) != 1:
            raise DataError(f"party '{me}': malformed label ciphertexts from '{label_owner}'")
        enc_y = EncryptedArray.from_wire(pk, msg.arrays[0], (n_rows,))

    # 2. feature holders: pre-bin, sum encrypted labels per pre-bin.
    if me in holders:
        df = vdf.parts[me].value[columns[me]]
        pre = _prebinner(method, n_prebins).fit(df)
        model.binners[me] = pre
        codes = np.asarray(pre.transform(df))
        sums, counts, sizes, kinds = [], [], [], []
        for j, c in enumerate(columns[me]):
            nb = pre.get_bins(c).n_bins
            kinds.append(1 if pre.get_bins(c).kind == "categorical" else 0)
            order = np.argsort(codes[:, j], kind="stable")
            bounds = np.searchsorted(codes[order, j], np.arange(nb + 1))
            for b in range(nb):
                rows = order[bounds[b] : bounds[b + 1]]
                sums.append(enc_y[rows].sum() if len(rows) else pk.encrypt(np.array(0)))
                counts.append(len(rows))
            sizes.append(nb)
        from ..he import concatenate as he_concat

        # Re-randomise: otherwise the label holder could test which of its own
        # ciphertexts were multiplied together, i.e. which rows share a bin.
        enc = he_concat([s.reshape(1) for s in sums]).rerandomize() if sums else None
        ctx.comm.send(label_owner, "woe:sums", [enc.to_wire(), np.asarray(counts, np.int64), np.asarray(sizes, np.int64), np.asarray(kinds, np.int64)])
    # 3. label holder: decrypt, merge, WOE/IV.
    if me == label_owner:
        for p in holders:
            msg = ctx.comm.recv(p, "woe:sums")
            if len(msg.arrays) != 4:
                raise DataError(f"malformed bin sums from party '{p}'")
            wire, counts, sizes, kinds = msg.arrays
            if sizes.shape != (len(columns[p]),) or kinds.shape != sizes.shape or counts.shape != (int(sizes.sum()),) or (sizes < 1).any():
                raise DataError(f"party '{p}' sent bin sums that do not match its {len(columns[p])} columns")
            from ..he import EncryptedArray

            pos_all = np.rint(sk.decrypt(EncryptedArray.from_wire(pk, wire, (int(sizes.sum()),)))).astype(np.int64)
            if (pos_all < 0).any() or (pos_all > counts).any():
                raise DataError(f"party '{p}' sent inconsistent bin sums")
            maps = []
            off = 0
            for c, nb, kind in zip(columns[p], sizes, kinds):
                pos, cnt = pos_all[off : off + nb], counts[off : off + nb]
                off += nb
                mapping = merge_map(method, bool(kind), pos, cnt - pos, max_bins, min_bin_frac)
                pos_m, neg_m = _final_counts(mapping, pos, cnt - pos)
                woe, _, iv = woe_iv_from_counts(pos_m, neg_m)
                model.col[c] = ColumnWOE(p, len(pos_m), woe=np.asarray(woe, float), iv=float(iv), pos=pos_m, neg=neg_m)
                maps.append(mapping)
            flat = np.concatenate(maps) if maps else np.zeros(0, np.int64)
            ctx.comm.send(p, "woe:maps", [flat.astype(np.int64)])
        # own columns, in plaintext
        own = columns.get(me, [])
        if own:
            df = vdf.parts[me].value
            pre = _prebinner(method, n_prebins).fit(df[own])
            model.binners[me] = pre
            codes = np.asarray(pre.transform(df[own]))
            for j, c in enumerate(own):
                nb = pre.get_bins(c).n_bins
                pos = np.bincount(codes[:, j], weights=y, minlength=nb).astype(np.int64)
                cnt = np.bincount(codes[:, j], minlength=nb).astype(np.int64)
                mapping = merge_map(method, pre.get_bins(c).kind == "categorical", pos, cnt - pos, max_bins, min_bin_frac)
                pos_m, neg_m = _final_counts(mapping, pos, cnt - pos)
                woe, _, iv = woe_iv_from_counts(pos_m, neg_m)
                model.col[c] = ColumnWOE(me, len(pos_m), prebin_to_bin=mapping, woe=np.asarray(woe, float), iv=float(iv), pos=pos_m, neg=neg_m)
    # 4. feature holders receive their pre-bin -> bin maps.
    if me in holders:
        pre = model.binners[me]
        sizes = [pre.get_bins(c).n_bins for c in columns[me]]
        (flat,) = ctx.comm.recv(label_owner, "woe:maps", dtypes=[np.int64], shapes=[(sum(sizes),)]).arrays
        off = 0
        for c, nb in zip(columns[me], sizes):
            mapping = flat[off : off + nb]
            off += nb
            n_final = int(mapping.max()) + 1 if nb else 0
            if mapping.min() < 0 or set(np.unique(mapping)) != set(range(n_final)):
                raise DataError(f"party '{me}': invalid bin map for column '{c}' from '{label_owner}'")
            model.col[c] = ColumnWOE(me, n_final, prebin_to_bin=mapping.copy())
    # Bin counts are public within the job (every party needs them for the MPC shapes).
    for p in vdf.parties:
        for c in columns.get(p, []):
            tag = f"woe:nb:{c}"
            if me == p:
                _send_all(ctx, tag, {"n": model.col[c].n_bins})
            else:
                n_b = int(ctx.comm.recv(p, tag).meta["n"])
                if c not in model.col:
                    model.col[c] = ColumnWOE(p, n_b)
    if woe_to_owner:
        for p in holders:
            tag = "woe:tables"
            if me == label_owner:
                ctx.comm.send(p, tag, [np.concatenate([model.col[c].woe for c in columns[p]])])
            elif me == p:
                flat = ctx.comm.recv(label_owner, tag, dtypes=[np.float64]).arrays[0]
                off = 0
                for c in columns[p]:
                    k = model.col[c].n_bins
                    model.col[c].woe = flat[off : off + k]
                    off += k
    return model
