"""Label-only PSI: only the label holder learns the intersection; the partner's rows
enter MPC aligned to the label holder's rows without the partner learning which.

The credit job's default PSI mode (``psi: {mode: label_only}``). Two steps:

1. **PSI to the label holder** (`psi_label_only`): ECDH-PSI (`jointml.psi.ecdh`) with the
   label holder H as matcher and ``reveal_to=H``. The partner P puts its rows in a
   secret uniformly random order pi (OS-seeded AES-CTR PRG) and sends its masked tags in
   that order; H learns which of its rows are shared and, for each, the position
   ("slot") of the matching row in P's shuffled list. H then announces the intersection
   size m (public to the job: every later shape depends on it).
2. **Oblivious selection** (`BlindAlignment.select`): P's per-row values X (n_P x w, its
   own row order) become additive shares of X[pi][slots] (m x w, H's row order) on the
   MPC device, with the help of a third party D (the semi2k dealer; for a device without
   one, a third member). All arithmetic is in Z_2^64; R and T are PRG streams::

       P -> D : seed s_R                       R = PRG(s_R)  (n_P x w)
       P -> H : Y = X[pi] + R                  (all n_P rows, in pi order)
       H -> D : seed s_T, idx = slots[rows]    T = PRG(s_T)  (k x w)
       D -> P : Z = T - R[idx]                 P's share
       H keeps  Y[idx] - T                     H's share;  sum = X[pi][idx]

   The shares are imported as a semi2k `SecretArray` when the device's compute parties
   are exactly {H, P}; on any other device each side inputs its share and the device adds
   them. Every selection draws fresh seeds; pi and the slots are reused (they are fixed
   for the run and each side's view below already contains all they imply).

Cost per selection: n_P x w x 8 bytes P -> H, k x w x 8 bytes D -> P, 8 k + 32 bytes to
D; 3 sequential messages; no public-key operation beyond the PSI itself.

>>> import pandas as pd
>>> from jointml.mpc import MpcDevice
>>> keys = {"bank": np.array([10, 11, 12, 13]), "partner": np.array([13, 99, 11])}
>>> spend = np.array([[1.0], [2.0], [3.0]])      # the partner's rows, in its own order
>>> def prog(ctx):
...     al = psi_label_only(ctx, keys, holder="bank")
...     mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
...     x = al.select(mpc, ctx.party("partner").put(spend if ctx.me == "partner" else None))
...     got = x.reveal(to="bank")
...     return al.positions, got.value if ctx.me == "bank" else None
>>> out = simulate(prog, ["bank", "partner", "dealer"], mode="thread")
>>> out["bank"][0].tolist(), out["bank"][1].ravel().tolist()  # bank rows 1 and 3: partner rows 2 and 0
([1, 3], [3.0, 1.0])
>>> out["partner"]  # the partner holds a share and knows no position
(None, None)

Adversary model and what each party learns
------------------------------------------
Semi-honest parties, no two of which collude (the model semi2k already assumes: the
dealer colludes with nobody); DDH on Curve25519 with H a random oracle for the PSI
(see `jointml.psi.ecdh`), AES-CTR as a PRG for the masks.

* **label holder H**: the intersection (which of its rows are shared), P's set size
  n_P, and for each shared row a slot in P's shuffled list: a uniformly random
  injective sequence, independent of P's data since pi is uniform and secret. From a
  selection it receives Y = X[pi] + R with R uniform and unknown to it: uniform, so
  nothing. From WOE (`jointml.data.secure.woe`), the per-pre-bin counts of the matched
  training rows, as in mode ``both``.
* **partner P**: H's set size and the intersection size m (the shape of its shares);
  nothing about which of its rows match, nor H's order. From the PSI: H's masked
  points (pseudorandom under DDH); from a selection only Z = T - R[idx] with T uniform
  and unknown to it: uniform; from WOE only label ciphertexts (semantically secure),
  one per row of its own, Enc(0) for rows that do not match or are not training rows.
  What a trained model reveals to P (e.g. its own SS-LR weights, or WOE tables with
  ``woe_to_owner``) is an aggregate of the matched rows: the model's disclosure, not
  the alignment's.
* **helper D** (the dealer): n_P, k = len(rows) (hence m) and idx, positions in P's
  secret random order: for any intersection of size m, idx is a uniformly random
  injective sequence, so it tells D nothing else; the seeds only give it R and T.
* **collusions** (outside the model, stated for a reviewer): D with P learns idx, hence
  which of P's rows match and H's order of them (what mode ``both`` shows P) and H's
  shares; D with H learns R, hence every row of X[pi], including P's rows that do *not*
  match (their values, not their ids). semi2k itself gives a colluding dealer every
  shared value, so a deployment that fears this runs the dealer on a separate
  organisation (or in a TEE).
* **deviating parties**: nothing a party receives depends on another's data beyond the
  above, so deviating cannot make P or D learn more: P's and D's received values stay
  masked by randomness they do not know. A deviating H can choose idx (duplicates and
  out-of-range slots are refused by D), i.e. which of P's (shuffled, anonymous) rows
  enter MPC, and in WOE could mark rows that do not match, learning the per-pre-bin
  histogram of P's other rows (no ids); the 0/1 label proofs stop it from learning any
  single row's bin. A deviating P or D can corrupt results, never read H's data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ParameterError, ProtocolError, WireFormatError
from ..core.prg import SEED_BYTES, Prg, new_seed
from ..runtime.collectives import agree, broadcast, send_to
from ..runtime.context import PartyContext
from .ecdh import PsiError

__all__ = ["BlindAlignment", "psi_label_only", "selection_helper"]

_R_STREAM = "jointml/psi/label-only/v1/partner-mask"
_T_STREAM = "jointml/psi/label-only/v1/holder-mask"


@dataclass
class BlindAlignment:
    """One party's view of a label-only alignment (see the module docstring).

    `size` (m, the intersection size) and `partner_rows` (n_P) are public to the job.
    At the holder, `positions` are its shared rows (ascending: the aligned order is its
    own row order) and `slots` their positions in the partner's shuffled list; at the
    partner, `shuffle` is its secret order (row ``shuffle[k]`` was sent k-th). These
    never leave their party; elsewhere they are None.

    >>> al = BlindAlignment("bank", "partner", 2, 3, positions=np.array([1, 3]), slots=np.array([2, 0]))
    >>> al.spread(np.array([7, 8])).tolist(), al.spread(np.array([8]), rows=np.array([1])).tolist()
    ([8, 0, 7], [8, 0, 0])
    """

    holder: str
    partner: str
    size: int
    partner_rows: int
    positions: np.ndarray | None = None
    slots: np.ndarray | None = field(default=None, repr=False)
    shuffle: np.ndarray | None = field(default=None, repr=False)

    def rows_of(self, rows: Any | None) -> np.ndarray:
        """Public aligned row positions (default: all m), checked.

        >>> BlindAlignment("bank", "partner", 3, 5).rows_of(None).tolist()
        [0, 1, 2]
        """
        if rows is None:
            return np.arange(self.size, dtype=np.int64)
        r = np.asarray(rows, dtype=np.int64).reshape(-1)
        if r.size and (r.min() < 0 or r.max() >= self.size):
            raise ParameterError(f"aligned rows must be in [0, {self.size})", field="rows")
        return r

    def spread(self, values: np.ndarray, rows: Any | None = None) -> np.ndarray:
        """At the holder: `values` of the aligned `rows`, placed at their slots of the
        partner's shuffled list (length n_P, zeros elsewhere): what the partner can sum
        over its own rows without learning which rows carry a value."""
        if self.slots is None:
            raise PsiError(f"only the label holder '{self.holder}' knows the slots of the aligned rows")
        r = self.rows_of(rows)
        v = np.asarray(values)
        if v.shape[:1] != r.shape:
            raise ParameterError(f"{v.shape[0] if v.ndim else 0} values for {len(r)} aligned rows", field="values")
        out = np.zeros((self.partner_rows, *v.shape[1:]), dtype=v.dtype)
        out[self.slots[r]] = v
        return out

    def shuffled(self, values: np.ndarray) -> np.ndarray:
        """At the partner: its per-row `values` (own row order) in its secret shuffled order.

        >>> BlindAlignment("bank", "partner", 1, 3, shuffle=np.array([2, 0, 1])).shuffled(np.array([5, 6, 7])).tolist()
        [7, 5, 6]
        """
        if self.shuffle is None:
            raise PsiError(f"only the partner '{self.partner}' knows its shuffled order")
        v = np.asarray(values)
        if v.shape[:1] != (self.partner_rows,):
            raise ParameterError(f"{len(v)} rows at '{self.partner}', the PSI saw {self.partner_rows}", field="values")
        return v[self.shuffle]

    def select(self, mpc: Any, value: Any, rows: Any | None = None, fxp: bool | None = None) -> Any:
        """The partner's per-row array `value` (a PartyObject at the partner, n_P rows in its
        own order) at the aligned `rows` (public positions in the holder's order; default
        all m), as a SecretArray on `mpc`. Every party of the job calls it.

        Floats are fixed-point encoded, integers shared as ring integers unless `fxp=True`
        (as `x.to(mpc)`). Messages as in the module docstring; a helper outside {holder,
        partner} (the semi2k dealer) is needed.
        """
        ctx, me = mpc.ctx, mpc.ctx.me
        H, P = self.holder, self.partner
        D = selection_helper(mpc, H, P)
        r = self.rows_of(rows)
        shape, bits, enc = _announce(ctx, mpc, self, value, fxp)
        out_shape = (len(r), *shape[1:])
        # P -> D: the seed of R (n_P x w);  P -> H: Y = X[pi] + R, every row of P, masked.
        seed_r = new_seed() if me == P else None
        got_r = send_to(ctx, P, D, arrays=[_seed_array(seed_r)] if seed_r else [], name="psi-lo:seed-r",
                        dtypes=[np.uint8], shapes=[(SEED_BYTES,)])
        y = None
        if me == P:
            assert enc is not None and seed_r is not None  # the partner's encoded rows, its seed
            y = self.shuffled(enc) + Prg(seed_r, _R_STREAM).uint64(shape)
        got_y = send_to(ctx, P, H, arrays=[y] if y is not None else [], name="psi-lo:masked",
                        dtypes=[np.uint64], shapes=[shape])
        # H -> D: the seed of T (k x w) and idx = slots[rows]; H keeps Y[idx] - T.
        share, arrays = None, []
        if me == H:
            assert got_y is not None and self.slots is not None  # the receiver; the holder's slots
            idx = self.slots[r]
            seed_t = new_seed()
            share = got_y.arrays[0][idx] - Prg(seed_t, _T_STREAM).uint64(out_shape)
            arrays = [_seed_array(seed_t), idx.astype(np.uint64)]
        got_t = send_to(ctx, H, D, arrays=arrays, name="psi-lo:slots", dtypes=[np.uint8, np.uint64],
                        shapes=[(SEED_BYTES,), (len(r),)])
        # D checks idx (every party raises its verdict), then D -> P: Z = T - R[idx].
        z = None
        if me == D:
            assert got_r is not None and got_t is not None  # the receiver of both
            z = _helper_share(got_r.arrays[0], got_t.arrays, shape, out_shape)
        agree(ctx, D, "the label holder's slots are out of range or repeat" if me == D and z is None else None,
              error=ProtocolError, name="psi-lo:check")
        got_z = send_to(ctx, D, P, arrays=[z] if z is not None else [], name="psi-lo:share",
                        dtypes=[np.uint64], shapes=[out_shape])
        if me == P:
            assert got_z is not None  # the receiver
            share = got_z.arrays[0]
        return _into_device(mpc, H, P, share, out_shape, bits)


def _seed_array(seed: bytes) -> np.ndarray:
    return np.frombuffer(seed, dtype=np.uint8).copy()


def _helper_share(seed_r: np.ndarray, got: list[np.ndarray], shape: tuple, out_shape: tuple) -> np.ndarray | None:
    """At the helper: Z = T - R[idx], or None when the holder's idx is invalid (out of range, repeated)."""
    seed_t, idx = got[0].tobytes(), got[1].astype(np.int64)
    k = out_shape[0]
    if k and (int(got[1].max()) >= shape[0] or np.unique(idx).size != k):
        return None
    r = Prg(seed_r.tobytes(), _R_STREAM).uint64(shape)
    return Prg(seed_t, _T_STREAM).uint64(out_shape) - r[idx]


def _announce(ctx: PartyContext, mpc: Any, al: BlindAlignment, value: Any, fxp: bool | None) -> tuple:
    """The partner announces its array's (public) shape and scale to every party, as
    `x.to(mpc)` does; returns (shape, fractional bits, its ring encoding at the partner)."""
    from ..mpc.shapes import received_fxp, received_shape

    P = al.partner
    meta: dict[str, Any] | None = None
    enc = None
    if ctx.me == P:
        v = np.asarray(value.value) if getattr(value, "owner", None) == P else np.empty(0, dtype=object)
        if v.dtype == object or v.dtype.kind not in "fiub" or v.ndim < 1:
            meta = {"problem": f"cannot align rows of dtype {v.dtype} and shape {v.shape} (a PartyObject at '{P}' "
                               "holding a numeric array, one row per row of its table, is needed)"}
        else:
            as_fxp = (v.dtype.kind == "f") if fxp is None else fxp
            enc = mpc.fxp.encode(v) if as_fxp else v.astype(np.int64).view(np.uint64)
            meta = {"shape": list(v.shape), "fxp": mpc.frac_bits if as_fxp else 0}
    m = broadcast(ctx, P, meta=meta, name="psi-lo:shape").meta
    if m.get("problem"):  # the partner's verdict, raised alike at every party (nobody is left waiting)
        raise ParameterError(str(m["problem"]), party=P, field="value")
    shape, bits = received_shape(m.get("shape", []), party=P), received_fxp(m.get("fxp", 0), party=P)
    if not shape or shape[0] != al.partner_rows:
        raise WireFormatError(f"an array of shape {shape} to align, the PSI saw {al.partner_rows} rows", party=P)
    return tuple(shape), bits, enc


def _into_device(mpc: Any, H: str, P: str, share: np.ndarray | None, shape: tuple, bits: int) -> Any:
    """The two additive shares as a SecretArray on `mpc`: imported as they are on a semi2k
    device of exactly {H, P}; on any other device each side inputs its share and the
    device adds them (one input each, no value revealed)."""
    ctx = mpc.ctx
    if mpc.protocol_name == "semi2k" and sorted(mpc.parties) == sorted([H, P]):
        return mpc.import_share([share] if ctx.me in (H, P) else [], shape, fxp=bits)
    parts = [ctx.party(p).put(share.view(np.int64) if ctx.me == p and share is not None else None).to(mpc, fxp=False)
             for p in (H, P)]
    total = parts[0] + parts[1]
    return mpc.import_share(total.export_share(), shape, fxp=bits)


def psi_label_only(
    ctx: PartyContext,
    keys: Any,
    key_columns: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    *,
    holder: str,
    partner: str | None = None,
    batch_size: int = 100_000,
    n_jobs: int | None = None,
    progress: bool | None = None,
    read_csv_kwargs: Mapping[str, Any] | None = None,
    protocol: str = "ecdh",
) -> BlindAlignment:
    """Label-only PSI between `holder` and `partner` (step 1 of the module docstring).

    `protocol`: "ecdh" (`jointml.psi.ecdh`) or "kkrt" (`jointml.psi.kkrt`, OT-based, much
    less computation); both run with ``reveal_to=holder`` and give the same alignment.

    Every party of the job calls it (SPMD; `keys` as for `jointml.psi.psi_align`, e.g. a
    dict {party: DataFrame or PartyObject}); parties outside the two get a `BlindAlignment`
    with the public sizes only. The holder's aligned rows are its shared rows in its own
    row order (`positions`); nobody else learns them.

    >>> keys = {"bank": np.array([5, 6, 7]), "partner": np.array([7, 8, 5, 9])}
    >>> out = simulate(lambda ctx: psi_label_only(ctx, keys, holder="bank"), ["bank", "partner"], mode="thread")
    >>> out["bank"].positions.tolist(), out["partner"].positions, out["partner"].size
    ([0, 2], None, 2)
    """
    if partner is None:
        others = [p for p in (keys if isinstance(keys, Mapping) else ctx.parties) if p != holder]
        if len(others) != 1:
            raise ConfigError(f"label-only PSI is between two parties: name the partner of '{holder}' "
                              f"(candidates {others})", field="partner")
        partner = others[0]
    if holder == partner or holder not in ctx.parties or partner not in ctx.parties:
        raise ConfigError(f"label-only PSI needs two distinct parties of the job, got holder={holder!r}, "
                          f"partner={partner!r}", field="holder")
    from . import psi_align as align  # the dispatcher (ecdh | kkrt); imported here: the package imports lazily

    res = align(ctx, keys, key_columns, protocol=protocol, parties=[holder, partner], reveal_to=holder,
                batch_size=batch_size, n_jobs=n_jobs, progress=progress, read_csv_kwargs=read_csv_kwargs)
    meta = None
    if ctx.me == holder:
        assert res is not None and res.positions is not None  # the matcher learns the intersection
        meta = {"rows": int(len(res.positions)), "partner_rows": int(res.set_sizes[partner])}
    got = broadcast(ctx, holder, meta=meta, name="psi-lo:sizes").meta
    m, n_p = got.get("rows"), got.get("partner_rows")
    if type(m) is not int or type(n_p) is not int or not 0 <= m <= n_p:
        raise WireFormatError(f"invalid intersection sizes {m!r}, {n_p!r}", party=holder)
    if ctx.me == partner and res is not None and n_p != len(res.sent_order if res.sent_order is not None else []):
        raise ProtocolError(f"the label holder saw {n_p} rows of '{partner}'", party=holder)
    al = BlindAlignment(holder, partner, m, n_p)
    if ctx.me == holder and res is not None:
        al.positions, al.slots = res.positions, res.peer_slots
    elif ctx.me == partner and res is not None:
        al.shuffle = res.sent_order
    return al


def selection_helper(mpc: Any, holder: str, partner: str) -> str:
    """The third party of an oblivious selection: the device's member outside {holder,
    partner}, preferring one that holds no share (the semi2k dealer).

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     return selection_helper(MpcDevice(ctx, ["bank", "partner"], dealer="dealer"), "bank", "partner")
    >>> simulate(prog, ["bank", "partner", "dealer"], mode="thread")["partner"]
    'dealer'
    """
    for p in (holder, partner):
        if p not in mpc.parties:
            raise ConfigError(f"label-only PSI: '{p}' is not a compute party of the MPC device {mpc.parties}",
                              party=p, field="mpc.parties")
    others = [p for p in mpc.members if p not in (holder, partner)]
    outside = [p for p in others if p not in mpc.parties]
    if not others:
        raise ConfigError("label-only PSI aligns the partner's rows with the help of a third party (the semi2k "
                          f"dealer, or a third MPC party); the device {mpc.parties} has none: add a dealer, or use "
                          "psi mode 'both'", field="psi.mode")
    return (outside or others)[0]
