"""Vertical WOE binning and IV: labels at one party, features at others.

Protocol (semi-honest; Paillier for the label holder's labels, on an
:class:`~jointml.he.HeDevice` held by the label holder; messages through
:mod:`jointml.runtime.collectives`):

1. The label holder checks its labels (every party raises its verdict), encodes them
   as 0/1 (1 = the positive, "bad" class) and sends them encrypted under its own
   Paillier key to every feature holder, each ciphertext with a zero-knowledge proof
   that it encrypts 0 or 1 (:mod:`jointml.he.proofs`, ``label_proofs=True``, the
   default). Every feature holder checks every proof before it sums anything; a
   failing proof makes every party raise CryptoError naming the label holder
   (:func:`~jointml.runtime.collectives.agree`).
2. Each feature holder fine-bins each of its columns locally (equal-frequency
   pre-bins for numbers, one bin per category, a bin for missing values), sums the
   encrypted labels of the rows in each pre-bin (:meth:`~jointml.he.HeArray.group_sum`)
   and returns the encrypted positive count of every pre-bin, compressed and
   re-randomised (:meth:`~jointml.he.HeArray.reveal`), with its row count.
3. The label holder decrypts the per-bin positive counts; for supervised methods it
   merges pre-bins (ChiMerge or tree splits on counts; categories ordered by bad
   rate first), renumbers the final bins by a fresh secret random permutation (from
   :mod:`jointml.core.prg`; otherwise the bin index would rank the partner's categories
   by default rate) and sends the pre-bin -> bin map back; it computes WOE and IV per
   final bin, in the renumbered order (the same values, relabelled).
4. WOE substitution: the label holder's own columns are replaced by WOE at the
   label holder. A feature holder's columns are, by default, turned into WOE
   *under MPC*: its one-hot bin matrix (private to it) times the WOE table
   (private to the label holder) gives a secret-shared WOE matrix, so neither side
   learns the other's part. With `woe_to_owner=True` the label holder sends the WOE
   tables to the owners instead, who substitute in plaintext.

Label-only PSI (`vdf` a `jointml.data.blind.BlindVDataFrame`): a feature holder whose rows
are aligned only under secret sharing does not know which of its rows are training rows.
Step 1 then sends it, for every one of its rows in its secret shuffled order, Enc(label)
and Enc(counts bit) -- 1 for a shared training row, Enc(0), Enc(0) for every other row --
each with its 0/1 proof; in step 2 it pre-bins *all* its rows (equal-frequency cut points
over its whole table) and sums both vectors per pre-bin, so the label holder decrypts the
positive and total counts of its training rows as before; in step 4 its one-hot bins are
aligned obliviously (`jointml.psi.label_only`) before the product with the WOE table.
What each party learns is as below, with "its rows" unknown to the feature holder.

What each party learns:
- label holder: per pre-bin row and positive counts of every feature holder's
  columns (not the bin boundaries, not which rows fall where), hence IV/WOE of
  those columns; nothing about individual feature values.
- every party of the frame: the number of final bins of every column (the MPC
  substitution needs the shapes); a party outside the frame (a semi2k dealer) only the
  total number of bins of each owner (the width of its secret WOE features).
- feature holder: the ciphertexts of the labels (semantically secure: nothing), the
  pre-bin -> bin map for supervised methods (which of its pre-bins the label holder
  merged, with the final bins in a secret random order: not their ranking by bad
  rate), and the WOE tables only with `woe_to_owner=True` (which then do rank its bins).
- a deviating label holder could still choose the merges (the partition of the
  partner's pre-bins) as it likes; the partition is all the map tells the partner.
- a deviating label holder that encrypts ``2^i`` instead of row ``i``'s 0/1 label
  would decrypt a bitmask of the rows in every pre-bin, i.e. every partner row's bin
  (tests/test_label_proofs.py reproduces it with ``label_proofs=False``). With the
  proofs it is caught before any sum: the most it can do is choose *other* 0/1 labels,
  so it learns the pre-bin sums of a 0/1 vector of its choice (e.g. a one-hot of one
  row per run reveals that row's bin in every column: one row per job, visible to
  the partner only as odd WOE/IV).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...core.errors import ConfigError, CryptoError, NotOwnerError
from ...core.prg import Prg
from ...he import EncryptedArray, HeArray, HeDevice
from ...he.paillier import check_key_bits
from ...he.proofs import prove_binary, verify_binary
from ...runtime.collectives import agree, broadcast, send_to
from ..blind import BlindVDataFrame, hidden_parties
from ..frames import DataError, VDataFrame
from ..preprocessing import (
    BinningControls,
    ControlledBinner,
    EqualFrequencyBinner,
    EqualWidthBinner,
    check_owned,
    chimerge_from_counts,
    enforce_min_share,
    merge_counts,
    tree_splits_from_counts,
    trend_cuts,
    woe_iv_from_counts,
)

METHODS = ("chimerge", "tree", "quantile", "equal_width")


def _prebinner(method: str, n_prebins: int, max_bins: int, controls: BinningControls | None = None):
    """The pre-binner of a party's columns. Unsupervised methods keep their pre-bins as the final
    bins, so they cut `max_bins` bins directly (`n_prebins` is for the supervised merges); manual
    edges and special values (`controls`) are applied at the owner by a `ControlledBinner`."""
    n = max_bins if method in ("quantile", "equal_width") else n_prebins
    base = EqualWidthBinner(n_bins=n, handle_unknown="missing") if method == "equal_width" else \
        EqualFrequencyBinner(n_bins=n, handle_unknown="missing")
    return ControlledBinner(base, controls or BinningControls())


def _layout_code(pre, c: str) -> int:
    """What the label holder needs to merge a column's pre-bins, in one public integer:
    bit 0 categorical, bit 1 manual edges (final bins), bits 2+ the number of special-value bins."""
    b = pre.get_bins(c)
    return int(b.kind == "categorical") | (int(pre.fixed(c)) << 1) | (len(b.specials) << 2)


def _cuts_for(method: str, pos: np.ndarray, neg: np.ndarray, max_bins: int, min_bin_frac: float) -> np.ndarray:
    if method == "chimerge":
        return np.asarray(chimerge_from_counts(pos, neg, max_bins=max_bins, min_bin_frac=min_bin_frac), dtype=np.int64)
    if method == "tree":
        return np.asarray(tree_splits_from_counts(pos, neg, max_bins=max_bins, min_bin_frac=min_bin_frac), dtype=np.int64)
    return np.arange(1, len(pos), dtype=np.int64)  # unsupervised: keep the pre-bins


def merge_map(method: str, categorical: bool, pos: np.ndarray, neg: np.ndarray, max_bins: int, min_bin_frac: float,
              *, n_special: int = 0, fixed: bool = False, trend: str = "none") -> np.ndarray:
    """Pre-bin -> final bin map decided on counts alone. The `n_special` special-value
    pre-bins and the missing pre-bin (last) stay bins of their own, in that order after the
    regular bins. Numeric pre-bins merge only with neighbours; categories are first ordered
    by bad rate (as supervised binners do), so any categories may share a bin. Then every
    bin gets at least `min_bin_frac` of the regular rows, and with `trend` (numeric columns)
    neighbours merge until the bad rate (WOE) is strictly monotonic. `fixed` (manual edges):
    no merge at all.

    >>> merge_map("quantile", False, np.array([1, 2, 0]), np.array([3, 4, 1]), 6, 0.05).tolist()
    [0, 1, 2]
    >>> merge_map("quantile", False, np.array([1, 3, 2, 8, 0, 0]), np.array([9, 7, 8, 2, 5, 1]), 6, 0.0,
    ...           n_special=1, trend="ascending").tolist()
    [0, 1, 1, 2, 3, 4]
    """
    k = len(pos) - 1 - n_special
    reg_pos, reg_neg = pos[:k], neg[:k]
    order = np.arange(k)
    if categorical and method in ("chimerge", "tree"):
        rate = reg_pos / np.maximum(reg_pos + reg_neg, 1)
        order = np.argsort(rate, kind="stable")
    if fixed or not k:
        cuts = np.arange(1, k, dtype=np.int64)
    else:
        cuts = _cuts_for(method, reg_pos[order], reg_neg[order], max_bins, min_bin_frac)
        if method in ("quantile", "equal_width"):  # the supervised merges enforce it themselves
            cuts = enforce_min_share(reg_pos[order], reg_neg[order], cuts, min_bin_frac)
        if trend != "none" and not categorical:
            starts = np.r_[0, cuts].astype(np.int64)
            cuts = starts[trend_cuts(merge_counts(reg_pos, cuts), merge_counts(reg_neg, cuts), trend)]
    mapping = np.empty(len(pos), dtype=np.int64)
    mapping[order] = np.searchsorted(cuts, np.arange(k), side="right")
    mapping[k:] = (len(cuts) + 1 if k else 0) + np.arange(n_special + 1)
    return mapping


def secret_permutation(n: int, prg: Prg | None = None) -> np.ndarray:
    """A uniformly random permutation of range(n) (Fisher-Yates on a cryptographic PRG).

    >>> sorted(secret_permutation(5).tolist())
    [0, 1, 2, 3, 4]
    """
    prg = prg or Prg()
    perm = np.arange(n, dtype=np.int64)
    draws = [int(prg.integers_below(i + 1, ())) for i in range(n - 1, 0, -1)]
    for i, j in zip(range(n - 1, 0, -1), draws):
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def secret_relabel(mapping: np.ndarray, prg: Prg | None = None) -> np.ndarray:
    """`mapping` (pre-bin -> final bin) with the final bins renumbered by a secret random
    permutation: the same partition of the pre-bins, in an order independent of the counts.

    >>> m = secret_relabel(np.array([0, 0, 1, 2]))
    >>> bool(m[0] == m[1] and len(set(m.tolist())) == 3 and set(m.tolist()) == {0, 1, 2})
    True
    """
    n_final = int(mapping.max()) + 1 if len(mapping) else 0
    return secret_permutation(n_final, prg)[mapping].astype(np.int64)


def final_counts(mapping: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per final bin, from the pre-bin counts and the pre-bin -> bin map.

    >>> [a.tolist() for a in final_counts(np.array([0, 1, 1]), np.array([1, 2, 3]), np.array([4, 5, 6]))]
    [[1, 5], [4, 11]]
    """
    nb = int(mapping.max()) + 1
    return (np.bincount(mapping, weights=pos, minlength=nb).astype(np.int64),
            np.bincount(mapping, weights=neg, minlength=nb).astype(np.int64))


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

    def bin_map(self) -> np.ndarray:
        """`prebin_to_bin`, at the column's owner.

        >>> ColumnWOE("shop", 2, prebin_to_bin=np.array([0, 0, 1])).bin_map().tolist()
        [0, 0, 1]
        """
        if self.prebin_to_bin is None:
            raise NotOwnerError(f"the pre-bin map of this column is held by '{self.owner}' only", party=self.owner)
        return self.prebin_to_bin

    def woe_table(self) -> np.ndarray:
        """`woe` per final bin, at the label holder (and the owner with `woe_to_owner`).

        >>> ColumnWOE("shop", 2, woe=np.array([0.5, -0.5])).woe_table().tolist()
        [0.5, -0.5]
        """
        if self.woe is None:
            raise NotOwnerError("the WOE table of this column is at the label holder (and, with woe_to_owner, its owner)")
        return self.woe


@dataclass
class VerticalWOE:
    """The fitted vertical WOE transform. Attributes hold only what this party may know."""

    label_owner: str
    columns: dict[str, list[str]]  # party -> its binned columns (public)
    binners: dict = field(default_factory=dict)  # this party's pre-binner (fitted), if it holds columns
    col: dict[str, ColumnWOE] = field(default_factory=dict)
    woe_to_owner: bool = False
    widths: dict[str, int] = field(default_factory=dict)  # at a party outside the frame: total bins per owner

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
        if not cols:
            return np.zeros((len(df), 0), np.int64)
        return np.stack([self.col[c].bin_map()[pre[:, j]] for j, c in enumerate(cols)], axis=1)

    def transform(self, ctx, vdf: VDataFrame, mpc=None) -> dict:
        """WOE features per party: PartyObjects (plaintext at the owner) or, for feature
        holders without `woe_to_owner`, SecretArrays on `mpc` (needs `mpc`)."""
        out: dict = {}
        for party, cols in self.columns.items():
            if not cols:
                continue
            if party == self.label_owner or self.woe_to_owner:
                def woe_matrix(df, p=party, cs=cols):
                    return np.stack([self.col[c].woe_table()[self.bin_indices(p, df)[:, j]] for j, c in enumerate(cs)],
                                    axis=1)

                if isinstance(vdf, BlindVDataFrame) and party in vdf.hidden:  # rows aligned under sharing: features too
                    if mpc is None:
                        raise DataError(f"the rows of '{party}' are aligned under secret sharing (label-only PSI): "
                                        "its WOE features need an MPC device")
                    out[party] = vdf.secret(party, woe_matrix, mpc, fxp=True)
                else:
                    out[party] = ctx.party(party).run(woe_matrix, vdf.parts[party])
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

        if party in hidden_parties(vdf):  # label-only PSI: the one-hot rows of all its rows, aligned obliviously
            oh = vdf.secret(party, onehot, mpc, fxp=False)
        else:
            oh = ctx.party(party).run(onehot, vdf.parts[party]).to(mpc, fxp=False)
        tb = ctx.party(self.label_owner).run(table).to(mpc, fxp=True)
        return oh @ tb


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
    label_proofs: bool = True,
    monotonic: str | dict[str, str] = "none",
    edges: dict[str, list[float]] | None = None,
    special_values: dict[str, list] | None = None,
) -> VerticalWOE:
    """Fit WOE binning on every feature column of a vertically partitioned frame.

    `label` is a column of the label holder; `pos_label` marks the positive ("bad")
    class. Returns a `VerticalWOE`; at the label holder `.iv` gives IV per column.
    Bins: `chimerge` and `tree` merge `n_prebins` equal-frequency pre-bins into at most
    `max_bins` bins by the label counts; `quantile` and `equal_width` cut `max_bins` bins of
    a numeric column directly (categories keep one bin each); every column also has a bin
    for missing values. Every party of the job calls it (SPMD). `key_bits` below 2048 are refused unless
    ``JOINTML_INSECURE_TEST_KEYS=1`` is set (tests only). With `label_proofs` (default) the
    label holder proves that every label ciphertext encrypts 0 or 1 and each feature holder
    checks every proof before it sums anything (:mod:`jointml.he.proofs`); a failing proof
    raises CryptoError naming the label holder at every party.

    Binning controls (:mod:`jointml.data.preprocessing.controls`): `monotonic` (``auto``,
    ``ascending``, ``descending``, ``none``, or per feature) merges neighbouring bins of
    numeric columns until WOE is strictly monotonic; `edges` (feature -> interior edges)
    gives a column manual, final bins; `special_values` (feature -> values) puts each such
    value in a bin of its own. Pre-binning and special values apply at the column's owner;
    the merges at the label holder, on counts. Bad settings raise ConfigError naming the
    field (and the column's party) at every party before any message.

    >>> import pandas as pd
    >>> from jointml.data.frames import from_pandas
    >>> bank = pd.DataFrame({"y": [1, 0, 1, 0, 1, 0, 0, 0], "age": [20, 30, 25, 40, 22, 50, 45, 35]})
    >>> shop = pd.DataFrame({"spend": [5.0, 1.0, 6.0, 2.0, 7.0, 1.5, 2.5, 3.0]})
    >>> def prog(ctx):
    ...     vdf = from_pandas(ctx, {"bank": lambda: bank, "shop": lambda: shop})
    ...     w = vertical_woe(ctx, vdf, "y", method="quantile", max_bins=2, key_bits=512)  # 512: examples only
    ...     # the shop's bins are numbered in a secret random order: sorted for the example
    ...     return sorted(w.col["spend"].pos.tolist()) if ctx.me == "bank" else w.col["spend"].n_bins
    >>> simulate(prog, ["bank", "shop"], mode="thread")
    {'bank': [0, 0, 3], 'shop': 3}
    """
    if method not in METHODS:
        raise DataError(f"method must be one of {METHODS}, got {method!r}")
    key_bits = check_key_bits(key_bits)  # before any message: every party refuses alike
    label_owner = vdf.owner_of(label)
    columns = {p: [c for c in cs if c != label] for p, cs in vdf.columns.items()}
    if features is not None:
        for p, cs in features.items():
            for c in cs:
                if vdf.owner_of(c) != p:
                    raise DataError(f"column '{c}' is not held by party '{p}'")
        columns = {p: list(features.get(p, [])) for p in vdf.parties}
    model = VerticalWOE(label_owner=label_owner, columns=columns, woe_to_owner=woe_to_owner)
    holders = [p for p in vdf.parties if p != label_owner and columns.get(p)]
    controls = BinningControls.checked(monotonic, edges, special_values,
                                       owners={c: p for p, cs in columns.items() for c in cs})
    _check_controls(ctx, vdf, columns, controls)
    y = _labels(ctx, vdf, label, label_owner, pos_label)
    params = (method, max_bins, min_bin_frac, controls)
    if holders:  # 1. labels, encrypted for the feature holders
        # Paillier: the label proofs (he.proofs) are proofs about DJN-Paillier ciphertexts
        he = HeDevice(ctx, label_owner, key_bits=key_bits, parties=[label_owner, *holders], scheme="paillier")
        blind = [p for p in holders if p in hidden_parties(vdf)]
        plain = [p for p in holders if p not in blind]
        if plain:
            enc_y = _send_labels(ctx, he, y, label_owner, plain, len(vdf), label_proofs)
            for p in plain:  # 2.-3. pre-bin sums at each holder, merged at the label holder
                _holder_counts(ctx, vdf, model, enc_y, p, n_prebins, params)
        for p in blind:  # the same over all of p's rows, one label and one "counts" bit per row (label-only PSI)
            _blind_holder_counts(ctx, vdf, model, he, y, p, n_prebins, params, label_proofs)
    if ctx.me == label_owner and columns.get(ctx.me):
        assert y is not None  # the label holder's labels passed the check above
        _own_columns(vdf, model, y, n_prebins, params)
    _share_bin_counts(ctx, vdf, model)
    if woe_to_owner:
        _send_tables(ctx, model, holders)
    return model


def _check_controls(ctx, vdf: VDataFrame, columns: dict[str, list[str]], controls: BinningControls) -> None:
    """Each owner checks the controls against its own columns (manual edges need a numeric
    column); every party raises the first owner's verdict, naming it and the field."""
    named = set(controls.edges)
    owners = [p for p in vdf.parties if named & set(columns.get(p, []))]
    if not owners:
        return

    def verdict() -> str | None:
        df = vdf.parts[ctx.me].value[[c for c in columns[ctx.me] if c in named]]
        return check_owned(controls, ctx.me, df)

    agree(ctx, owners, verdict if ctx.me in owners else None, error=ConfigError, name="woe:controls")


def _labels(ctx, vdf: VDataFrame, label: str, label_owner: str, pos_label) -> np.ndarray | None:
    """0/1 labels at the label holder; its verdict on them is raised at every party."""
    y, problem = None, None
    if ctx.me == label_owner:
        yraw = vdf.parts[label_owner].value[label]
        if yraw.isna().any():
            problem = f"party '{label_owner}': label column '{label}' has missing values"
        else:
            y = (yraw == pos_label).to_numpy().astype(np.int64)
            if y.sum() in (0, len(y)):
                problem = f"party '{label_owner}': label column '{label}' has a single class (pos_label={pos_label!r})"
    agree(ctx, label_owner, problem, error=DataError, name="woe:label-check")
    return y


def _send_labels(ctx, he: HeDevice, y: np.ndarray | None, label_owner: str, holders: list[str], rows: int,
                 label_proofs: bool) -> HeArray:
    """Step 1: 0/1 values (one per row) encrypted for `holders`, with proofs unless disabled;
    every holder checks that it got `rows` ciphertexts."""
    if label_proofs:
        enc = _send_proven_labels(ctx, he, y, label_owner, holders, rows)
    else:
        enc = ctx.party(label_owner).put(y).to(he, to=holders, name="woe:labels")
    got_shape = None if enc.data is None else enc.data.shape
    if ctx.me in holders and got_shape != (rows,):
        raise DataError(f"party '{ctx.me}': {got_shape} label ciphertexts for {rows} rows from '{label_owner}'")
    return enc


def _blind_holder_counts(ctx, vdf, model: VerticalWOE, he: HeDevice, y: np.ndarray | None, p: str, n_prebins: int,
                         params: tuple, label_proofs: bool) -> None:
    """Feature holder `p` whose rows are aligned only under secret sharing (label-only PSI):
    the label holder sends, for each of p's rows in p's secret shuffled order, Enc(label)
    and Enc(row counts) -- Enc(0), Enc(0) for rows that are not aligned training rows --
    each proven 0/1; p pre-bins all its rows and sums both per pre-bin; the label holder
    decrypts the positive and total counts of its training rows, merges, and returns the maps."""
    me, label_owner, cols = ctx.me, model.label_owner, model.columns[p]
    n_p = vdf.alignment.partner_rows
    vec = None
    if me == label_owner:
        assert y is not None  # the label holder's checked labels
        vec = np.concatenate([vdf.spread(y), vdf.spread(np.ones_like(y))]).astype(np.int64)
    enc = _send_labels(ctx, he, vec, label_owner, [p], 2 * n_p, label_proofs)
    codes = groups = None
    arrays: list[np.ndarray] = []
    if me == p:
        df = vdf.parts[me].value[cols]
        pre = _prebinner(params[0], n_prebins, params[1], params[3]).fit(df)  # on all of p's rows: it does not
        model.binners[me] = pre  # know which are aligned
        shuffled = vdf.alignment.shuffled(np.asarray(pre.transform(df), dtype=np.int64))
        codes, groups = np.vstack([shuffled, shuffled]), np.repeat(np.arange(2, dtype=np.int64), n_p)
        arrays = [np.array([pre.get_bins(c).n_bins for c in cols], np.int64),
                  np.array([_layout_code(pre, c) for c in cols], np.int64)]
    got = send_to(ctx, p, label_owner, arrays=arrays, name="woe:layout", dtypes=[np.int64] * 2,
                  shapes=[(len(cols),)] * 2)
    sizes = got.arrays[0] if got is not None else None
    total = int(sizes.sum()) if me == label_owner and sizes is not None else None
    if total is not None and sizes is not None and (sizes < 1).any():
        raise DataError(f"party '{p}' sent bin counts that do not match its {len(cols)} columns")
    sums = enc.group_sum(ctx.party(p).put(codes), sizes.tolist() if me == p and sizes is not None else [],
                         groups=ctx.party(p).put(groups), n_groups=2)
    both = sums.reveal(to=label_owner, slot_bits=n_p.bit_length() + 2, expect=None if total is None else 2 * total,
                       name="woe:sums")
    flat = None
    if me == label_owner:
        assert got is not None and total is not None  # the receiver
        vals = np.rint(both.value).astype(np.int64)
        flat = _merge_holder(model, p, vals[:total], vals[total:], got.arrays[0], got.arrays[1], params)
    got = send_to(ctx, label_owner, p, arrays=[flat] if flat is not None else [], name="woe:maps",
                  dtypes=[np.int64])
    if me == p:
        assert got is not None  # the receiver
        _set_maps(model, p, got.arrays[0], label_owner)


def _encrypted(pk, cts: list) -> EncryptedArray:
    data = np.empty(len(cts), dtype=object)
    data[:] = cts
    return EncryptedArray(pk, data, 0)


def _proof_context(label_owner: str, holders: list[str], rows: int) -> str:
    """What a label proof is bound to besides the (per-run) public key and the row index."""
    return f"jointml/woe/labels/v1|label_owner={label_owner}|holders={','.join(holders)}|rows={rows}"


def _send_proven_labels(ctx, he: HeDevice, y: np.ndarray | None, label_owner: str, holders: list[str],
                        rows: int) -> HeArray:
    """Step 1 with proofs: the label holder sends each label ciphertext with a proof that it
    encrypts 0 or 1; every feature holder checks all of them, and every party raises the
    first failing holder's verdict (CryptoError naming the label holder) before any sum."""
    pk, context = he.public_key, _proof_context(label_owner, holders, rows)
    meta, arrays, enc = None, [], None
    if ctx.me == label_owner:
        assert y is not None and pk is not None  # the label holder's checked labels, its key
        residues = [int(v) for v in y]
        cts, witnesses = pk.encrypt_with_witnesses(residues, n_jobs=he.n_jobs)
        proofs = prove_binary(pk, residues, cts, witnesses, context, n_jobs=he.n_jobs)
        enc = _encrypted(pk, cts)
        meta, arrays = {"rows": rows}, [enc.to_wire(), proofs]
    got = send_to(ctx, label_owner, holders, meta=meta, arrays=arrays, name="woe:labels")
    wire = None

    def verdict() -> str | None:
        nonlocal enc, wire
        assert got is not None and pk is not None  # a feature holder: the receiver, with the key
        if len(got.arrays) != 2:
            return f"label holder '{label_owner}' sent {len(got.arrays)} arrays for the labels, expected 2"
        wire, proofs = got.arrays
        try:
            cts = pk.ciphertexts_from_wire(wire, rows, party=label_owner)
            ok = verify_binary(pk, cts, proofs, context, n_jobs=he.n_jobs, party=label_owner)
        except CryptoError as e:
            return f"label ciphertexts or proofs from '{label_owner}' are malformed ({e})"
        if not ok.all():
            bad = np.flatnonzero(~ok)
            return (f"label holder '{label_owner}' sent label ciphertexts that are not proven to encrypt 0 or 1 "
                    f"({len(bad)} of {rows} rows, first row {int(bad[0])}): refusing to sum them")
        enc = _encrypted(pk, cts)
        return None

    try:
        agree(ctx, holders, verdict if ctx.me in holders else None, error=CryptoError, name="woe:label-proofs")
    except CryptoError as e:  # the verdict names the label holder: make it the party at fault
        text, head = str(e), f"party '{e.party}': "
        text = text[len(head):] if text.startswith(head) else text
        raise CryptoError(f"{text} (checked by '{e.party}')", party=label_owner, field="label_proofs",
                          public=True) from e
    located = [label_owner, *holders]
    return HeArray(he, located, enc if ctx.me in located else None, wire=wire)


def _holder_counts(ctx, vdf: VDataFrame, model: VerticalWOE, enc_y: HeArray, p: str, n_prebins: int,
                   params: tuple) -> None:
    """Feature holder `p`: pre-bins its columns and sums the encrypted labels per pre-bin;
    the label holder decrypts the positive counts, merges, and returns the bin maps."""
    me, label_owner, cols = ctx.me, model.label_owner, model.columns[p]
    method, max_bins, _, controls = params
    codes, arrays = None, []
    if me == p:
        df = vdf.parts[me].value[cols]
        pre = _prebinner(method, n_prebins, max_bins, controls).fit(df)
        model.binners[me] = pre
        codes = np.asarray(pre.transform(df))
        sizes = np.array([pre.get_bins(c).n_bins for c in cols], np.int64)
        kinds = np.array([_layout_code(pre, c) for c in cols], np.int64)
        counts = np.concatenate([np.bincount(codes[:, j], minlength=nb) for j, nb in enumerate(sizes)]) \
            if len(cols) else np.zeros(0, np.int64)
        arrays = [counts.astype(np.int64), sizes, kinds]
        codes_nb = sizes.tolist()
    got = send_to(ctx, p, label_owner, arrays=arrays, name="woe:counts", dtypes=[np.int64] * 3)
    total = None
    if me == label_owner:
        assert got is not None  # the receiver
        counts, sizes, kinds = got.arrays
        if sizes.shape != (len(cols),) or kinds.shape != sizes.shape or counts.shape != (int(sizes.sum()),) \
                or (sizes < 1).any():
            raise DataError(f"party '{p}' sent bin sums that do not match its {len(cols)} columns")
        total = int(sizes.sum())
    # Compressed and re-randomised by `reveal`: otherwise the label holder could test which
    # of its own ciphertexts were multiplied together, i.e. which rows share a bin.
    sums = enc_y.group_sum(ctx.party(p).put(codes), codes_nb if me == p else [])
    pos_all = sums.reveal(to=label_owner, slot_bits=len(vdf).bit_length() + 2, expect=total, name="woe:sums")
    flat = None
    if me == label_owner:
        flat = _merge_holder(model, p, np.rint(pos_all.value).astype(np.int64), counts, sizes, kinds, params)
    got = send_to(ctx, label_owner, p, arrays=[flat] if flat is not None else [], name="woe:maps",
                  dtypes=[np.int64])
    if me == p:
        assert got is not None  # the receiver
        _set_maps(model, p, got.arrays[0], label_owner)


def _merge_holder(model: VerticalWOE, p: str, pos_all: np.ndarray, counts: np.ndarray, sizes: np.ndarray,
                  kinds: np.ndarray, params: tuple) -> np.ndarray:
    """Label holder: WOE/IV of `p`'s columns from the decrypted counts; the flat bin maps."""
    method, max_bins, min_bin_frac, controls = params
    if pos_all.shape != counts.shape or (pos_all < 0).any() or (pos_all > counts).any():
        raise DataError(f"party '{p}' sent inconsistent bin sums")
    maps, off = [], 0
    for c, nb, kind in zip(model.columns[p], sizes, kinds):
        pos, cnt = pos_all[off : off + nb], counts[off : off + nb]
        off += nb
        n_special, fixed = int(kind) >> 2, bool(int(kind) & 2)
        if n_special != controls.n_special(c) or fixed != (c in controls.edges) or nb < n_special + 1:
            raise DataError(f"party '{p}' binned column '{c}' against the job's settings ({n_special} special-value "
                            f"bins, manual edges {fixed}; the job says {controls.n_special(c)}, {c in controls.edges})",
                            party=p, field=c)
        # The merge orders categories by bad rate, so the final bin index would rank the
        # partner's categories by default rate: the partner gets the bins relabelled by a
        # fresh secret permutation, and the label holder keeps its tables in that labelling.
        mapping = secret_relabel(merge_map(method, bool(int(kind) & 1), pos, cnt - pos, max_bins, min_bin_frac,
                                           n_special=n_special, fixed=fixed, trend=controls.trend(c)))
        pos_m, neg_m = final_counts(mapping, pos, cnt - pos)
        woe, _, iv = woe_iv_from_counts(pos_m, neg_m)
        model.col[c] = ColumnWOE(p, len(pos_m), woe=np.asarray(woe, float), iv=float(iv), pos=pos_m, neg=neg_m)
        maps.append(mapping)
    return (np.concatenate(maps) if maps else np.zeros(0, np.int64)).astype(np.int64)


def _set_maps(model: VerticalWOE, me: str, flat: np.ndarray, label_owner: str) -> None:
    """Feature holder: check and keep its pre-bin -> bin maps."""
    pre = model.binners[me]
    sizes = [pre.get_bins(c).n_bins for c in model.columns[me]]
    if flat.shape != (sum(sizes),):
        raise DataError(f"party '{me}': bin maps of shape {flat.shape} from '{label_owner}', expected ({sum(sizes)},)")
    off = 0
    for c, nb in zip(model.columns[me], sizes):
        mapping = flat[off : off + nb]
        off += nb
        n_final = int(mapping.max()) + 1 if nb else 0
        if mapping.min() < 0 or set(np.unique(mapping)) != set(range(n_final)):
            raise DataError(f"party '{me}': invalid bin map for column '{c}' from '{label_owner}'")
        model.col[c] = ColumnWOE(me, n_final, prebin_to_bin=mapping.copy())


def _own_columns(vdf: VDataFrame, model: VerticalWOE, y: np.ndarray, n_prebins: int, params: tuple) -> None:
    """Label holder: its own columns, in plaintext."""
    method, max_bins, min_bin_frac, controls = params
    me, own = model.label_owner, model.columns[model.label_owner]
    df = vdf.parts[me].value
    pre = _prebinner(method, n_prebins, max_bins, controls).fit(df[own])
    model.binners[me] = pre
    codes = np.asarray(pre.transform(df[own]))
    for j, c in enumerate(own):
        nb = pre.get_bins(c).n_bins
        pos = np.bincount(codes[:, j], weights=y, minlength=nb).astype(np.int64)
        cnt = np.bincount(codes[:, j], minlength=nb).astype(np.int64)
        mapping = merge_map(method, pre.get_bins(c).kind == "categorical", pos, cnt - pos, max_bins, min_bin_frac,
                            n_special=len(pre.get_bins(c).specials), fixed=pre.fixed(c), trend=controls.trend(c))
        pos_m, neg_m = final_counts(mapping, pos, cnt - pos)
        woe, _, iv = woe_iv_from_counts(pos_m, neg_m)
        model.col[c] = ColumnWOE(me, len(pos_m), prebin_to_bin=mapping, woe=np.asarray(woe, float), iv=float(iv),
                                 pos=pos_m, neg=neg_m)


def _share_bin_counts(ctx, vdf: VDataFrame, model: VerticalWOE) -> None:
    """Per-column bin counts go to the parties of the frame (they need them for the MPC
    shapes); a party outside it (a semi2k dealer) gets only each owner's total width, the
    shape of the secret WOE features it supplies randomness for (kept as `model.widths`)."""
    outside = [q for q in ctx.parties if q not in vdf.parties]
    for p in vdf.parties:
        cols = model.columns.get(p, [])
        if not cols:
            continue
        mine = {c: int(model.col[c].n_bins) for c in cols} if ctx.me == p else None
        got = broadcast(ctx, p, meta={"n_bins": mine} if mine is not None else None, to=vdf.parties, name="woe:nb")
        width = send_to(ctx, p, outside, meta={"width": sum(mine.values())} if mine is not None else None,
                        name="woe:width") if outside else None
        if ctx.me in outside:
            w = width.meta.get("width") if width is not None else None
            if type(w) is not int or w < 0:
                raise DataError("invalid total bin count", party=p)
            model.widths[p] = w
            for c in cols:  # per-column counts are not sent here: unknown (0)
                model.col.setdefault(c, ColumnWOE(p, 0))
            continue
        for c in cols:
            if c not in model.col:
                n_b = got.meta.get("n_bins", {}).get(c)
                if type(n_b) is not int or n_b < 0:
                    raise DataError(f"invalid bin count for column '{c}'", party=p)
                model.col[c] = ColumnWOE(p, n_b)


def _send_tables(ctx, model: VerticalWOE, holders: list[str]) -> None:
    """`woe_to_owner`: the label holder sends each feature holder its WOE tables."""
    for p in holders:
        cols = model.columns[p]
        arrays = [np.concatenate([model.col[c].woe for c in cols])] if ctx.me == model.label_owner else []
        got = send_to(ctx, model.label_owner, p, arrays=arrays, name="woe:tables", dtypes=[np.float64],
                      shapes=[(sum(model.col[c].n_bins for c in cols),)])
        if ctx.me == p:
            assert got is not None  # the receiver
            off = 0
            for c in cols:
                k = model.col[c].n_bins
                model.col[c].woe = got.arrays[0][off : off + k]
                off += k
