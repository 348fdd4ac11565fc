"""`psi`: align the parties' rows on a key column (ECDH-PSI; see `jointml.psi`).

Two modes; what each side learns (semi-honest, non-colluding parties):

- ``mode: both`` (two or more parties, `jointml.psi.ecdh`): every party learns the
  intersection, i.e. which of its own rows are shared (hence the shared ids), and the
  other parties' set sizes; with ``sort_by: P``, the others also learn P's order of the
  shared rows. Nothing about the other parties' other rows.
- ``mode: label_only`` (two parties, `jointml.psi.label_only`; the credit job's default):
  only `holder` (default: `sort_by`, else the first party) learns the intersection (its
  shared rows, in its own order) and the partner's set size; the partner learns the
  holder's set size and the intersection size, not which of its rows are shared nor the
  holder's order. The partner's values enter later steps only secret-shared (aligned by
  an oblivious selection through the semi2k dealer, which learns the sizes and random
  positions only) or as encrypted per-row sums (WOE). Needs an MPC device with a third
  party (the semi2k dealer); the later steps must be ones that keep the partner's
  features secret-shared (`split`, `woe_binning`, `train`/`predict` with an MPC model
  such as `ss_lr`): tree models that split plaintext features at their owners
  (`secureboost`, `ss_xgb`) and `encode` are refused before anything is sent.

The key columns are dropped afterwards.
"""

from __future__ import annotations

from typing import Any, Literal

from ...core.errors import ConfigError
from ...data.frames import VDataFrame
from ..artifacts import AlignedFrame, Inputs
from ..registry import COMPONENTS, MODELS, component

MODES = ("both", "label_only")
PROTOCOLS = ("auto", "ecdh", "kkrt")
#: `protocol: auto` picks the OT-based KKRT PSI for two parties when the larger set has at
#: least this many ids (measured 1M x 1M: KKRT 5.1 s, ECDH 71 s on the 2-core reference
#: machine); below it ECDH, whose few messages cost less than KKRT's OT setup.
AUTO_KKRT_MIN_IDS = 10_000


def choose_protocol(ctx: Any, inputs: Inputs, who: list[str], protocol: str) -> str:
    """The PSI protocol this step runs: `protocol`, or for "auto" KKRT when exactly two
    parties align and the larger of their set sizes reaches `AUTO_KKRT_MIN_IDS`, else ECDH.

    The two parties exchange their row counts first (one message each; both learn the
    other's set size in either protocol anyway); parties outside the PSI send nothing.

    >>> import pandas as pd
    >>> from jointml.jobs.artifacts import Inputs
    >>> def prog(ctx):
    ...     df = pd.DataFrame({"id": range(20_000 if ctx.me == "bank" else 10)})
    ...     return choose_protocol(ctx, Inputs({p: ctx.party(p).put(df if p == ctx.me else None)
    ...                                         for p in ctx.parties}), list(ctx.parties), "auto")
    >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    'kkrt'
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"psi protocol must be one of {PROTOCOLS}, got {protocol!r}", field="psi.protocol")
    if protocol != "auto":
        return protocol
    if len(who) != 2:
        return "ecdh"
    if ctx.me not in who:
        return "ecdh"  # not a party of the PSI: nothing of it runs here
    from ...runtime.collectives import all_gather

    mine = {"rows": int(len(inputs.frames[ctx.me].value))}
    got = all_gather(ctx, parties=who, meta=mine, to=who, name="psi-sizes")
    sizes: list[int] = []
    for p in who:
        n = got[p].meta.get("rows")
        if type(n) is not int or n < 0:
            raise ConfigError("malformed row count in the PSI protocol choice", party=p, field="psi.protocol")
        sizes.append(n)
    return "kkrt" if max(sizes) >= AUTO_KKRT_MIN_IDS else "ecdh"


def label_only_problem(model: str | None) -> str | None:
    """Why a model cannot train or score on label-only aligned rows (None: it can).

    >>> label_only_problem("ss_lr") is None, label_only_problem("secureboost")[:40]
    (True, "model 'secureboost' splits plaintext fea")
    """
    entry = MODELS.get(model or "")
    if entry is None:
        return None
    if entry.device != "mpc" or entry.woe_at_owner or entry.raw_frames:
        return (f"model '{entry.name}' splits plaintext features at their owners, which needs the partner's rows "
                "aligned in plaintext: use psi mode 'both' (the partner then learns which of its rows are shared), "
                "or an MPC model such as ss_lr")
    return None


def later_steps_problem(steps: list) -> str | None:
    """The first later step that cannot run on label-only aligned rows (None: all can).

    >>> later_steps_problem([("split", {}), ("secureboost.train", {})])[:30]
    "step 'secureboost.train': mode"
    """
    for name, params in steps:
        comp = COMPONENTS.get(name)
        target = (comp.alias_of or name) if comp is not None else name
        if target == "encode":
            return "step 'encode' re-encodes the partner's plaintext rows as an aligned frame: use psi mode 'both'"
        if target in ("train", "predict"):
            model = (params or {}).get("model") or (comp.fixed.get("model") if comp is not None else None)
            problem = label_only_problem(model)
            if problem:
                return f"step '{name}': {problem}"
    return None


def _check_label_only(state: Any, who: list[str], holder: str) -> None:
    """Refuse a label-only run that could not finish, before any cryptography."""
    if len(who) != 2 or holder not in who:
        raise ConfigError(f"psi mode 'label_only' aligns two parties, one of them the holder; got parties {who} and "
                          f"holder {holder!r}", field="psi.mode")
    steps = list(state.spec.steps)
    names = [n for n, _ in steps]
    later = steps[names.index("psi") + 1:] if "psi" in names else steps
    problem = later_steps_problem(later)
    if problem:
        raise ConfigError(f"psi mode 'label_only': {problem}", field="psi.mode")
    mpc = dict(state.spec.mpc or {})
    if (mpc.get("protocol") or "semi2k") == "semi2k" and not mpc.get("dealer"):
        raise ConfigError("psi mode 'label_only' aligns the partner's rows through the semi2k dealer: name one in "
                          "the `mpc:` section (dealer: ...)", field="mpc.dealer")


@component("psi", outputs=(AlignedFrame,))
def psi(ctx: Any, state: Any, inputs: Inputs, *, key: str | list[str] = "id", sort_by: str | None = None,
        parties: list[str] | None = None, mode: Literal["both", "label_only"] = "both",
        holder: str | None = None, protocol: Literal["auto", "ecdh", "kkrt"] = "auto") -> AlignedFrame:
    """Align the parties' rows on a key (ECDH-PSI, or OT-based KKRT for two large sets); the
    key columns are dropped afterwards.

    `protocol`: "auto" (default) runs KKRT for two parties when the larger set has at least
    10,000 ids, ECDH otherwise (three or more parties: ECDH); the result and what each side
    learns are the same in both protocols.

    What each side learns (semi-honest, non-colluding parties); in both modes nothing about
    the other side's ids that are not shared:

    - `mode: both` (this step's default; two or more parties): every party learns the
      intersection (which of its own rows, hence which ids, are shared) and the other
      parties' set sizes; with `sort_by: P` the others also learn P's order of the shared rows.
    - `mode: label_only` (two parties; the credit job's default): only `holder` (default:
      `sort_by`, else the first party) learns the intersection, in its own row order, and the
      partner's set size. The partner learns the holder's set size and the intersection
      size, not which of its rows are shared nor the holder's order. Its features then enter
      later steps only secret-shared (aligned through the semi2k dealer, which learns the
      two sizes and positions in the partner's secret random order) or as encrypted per-row
      sums (`woe_binning`). Needs the semi2k dealer (or a third MPC party); later steps that
      need the partner's rows aligned in plaintext (`encode`, `secureboost`, `ss_xgb`) are
      refused before any PSI message. See `jointml.psi.label_only` (collusions, deviations).
    """
    from ...psi import psi_frame

    keys = [key] if isinstance(key, str) else list(key)
    who = list(parties or inputs.frames)
    for p in who:
        if p not in inputs.frames:
            raise ConfigError(f"psi: party '{p}' has no input", party=p)
    if mode not in MODES:
        raise ConfigError(f"psi mode must be one of {MODES}, got {mode!r}", field="psi.mode")
    if mode == "label_only":
        _check_label_only(state, who, holder or sort_by or who[0])
    proto = choose_protocol(ctx, inputs, who, protocol)
    state.summary["psi_protocol"] = proto
    if mode == "label_only":
        return _label_only(ctx, state, inputs, keys, who, holder or sort_by or who[0], proto)
    aligned = psi_frame(ctx, {p: inputs.frames[p] for p in who}, key_columns=keys, sort_by=sort_by, progress=False,
                        protocol=proto)
    parts = {p: ctx.party(p).run(lambda df: df.drop(columns=keys), aligned[p]) for p in who}
    vdf = VDataFrame(ctx, parts)
    state.summary["rows_aligned"] = len(vdf)
    state.summary["psi_mode"] = "both"
    return AlignedFrame(vdf)


def _label_only(ctx: Any, state: Any, inputs: Inputs, keys: list[str], who: list[str], holder: str,
                protocol: str) -> AlignedFrame:
    from ...data.blind import blind_frame
    from ...psi.label_only import psi_label_only

    frames = {p: inputs.frames[p] for p in who}
    partner = next(p for p in who if p != holder)
    al = psi_label_only(ctx, frames, keys, holder=holder, partner=partner, progress=False, protocol=protocol)
    vdf = blind_frame(ctx, frames, al, drop=keys)
    state.summary["rows_aligned"] = len(vdf)
    state.summary["psi_mode"] = "label_only"
    return AlignedFrame(vdf)
