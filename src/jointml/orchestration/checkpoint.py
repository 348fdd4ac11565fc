"""Checkpoints of a run at one party, so a retried job resumes after its last completed step.

After each step the node saves what it holds of the run's artifacts, when all of them can
be saved: the PSI-aligned frame (this party's own partition only, as CSV with its dtypes),
the train/test split (public row positions), the label (its name, positive value and owner),
this party's category codes, and this party's part of a fitted WOE transform (the file
`jointml.data.woe_io.save_woe` writes for a saved model: its own bin boundaries; the WOE
values at the label holder). A run whose artifacts include model parts has no checkpoint
yet (resuming training after epoch k is for a later change), so a retry re-runs from the
step after the last checkpoint: in the credit pipeline, from training.

What is saved stays in the node's work directory: nothing is sent. On restore every party
first announces whether its checkpoint is there (one all_gather of a yes/no and a reason),
so a node that lost its disk fails the resume at every party with its name instead of
leaving the others waiting.

>>> import pandas as pd, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> def prog(ctx):
...     from jointml.data.frames import VDataFrame
...     from jointml.jobs.runner import JobState
...     from jointml.jobs.spec import PipelineSpec
...     state = JobState(PipelineSpec("p", ctx.parties, {}, []))
...     vdf = VDataFrame(ctx, {p: ctx.party(p).run(lambda p=p: pd.DataFrame({p: [1.5, 2.5, 3.5]})) for p in ctx.parties})
...     state.store.put("psi", AlignedFrame(vdf))
...     saved = save_checkpoint(ctx, state, d / ctx.me / "after-0")
...     again = JobState(PipelineSpec("p", ctx.parties, {}, []))
...     restore_checkpoint(ctx, again, d / ctx.me / "after-0")
...     return saved, again.vdf.local()[ctx.me].tolist()
>>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
(True, [1.5, 2.5, 3.5])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError, JointMLError, public_summary
from ..jobs.artifacts import AlignedFrame, Encoding, Label, Split, WoeModel
from ..runtime.persist import atomic_write

__all__ = ["CHECKPOINTABLE", "can_checkpoint", "restore_checkpoint", "save_checkpoint"]

CHECKPOINTABLE = {"Inputs", "AlignedFrame", "Split", "Label", "Encoding", "WoeModel"}
_MANIFEST = "checkpoint.json"


def can_checkpoint(state: Any) -> bool:
    """Whether every artifact of the run so far can be saved (and a split was taken from the
    latest aligned frame, which is how it is rebuilt)."""
    recs = state.store.records()
    if any(r["type"] not in CHECKPOINTABLE for r in recs):
        return False
    types = [r["type"] for r in recs]
    if "Split" in types and "AlignedFrame" in types:
        last_split = len(types) - 1 - types[::-1].index("Split")
        last_frame = len(types) - 1 - types[::-1].index("AlignedFrame")
        return last_split > last_frame
    return True


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def save_checkpoint(ctx: Any, state: Any, directory: Path) -> bool:
    """Save this party's view of the run (see the module docstring); False if it cannot be saved."""
    if not can_checkpoint(state):
        return False
    directory.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for rec in state.store.records():
        kind, step = rec["type"], rec["step"]
        if kind == "AlignedFrame":
            vdf = state.latest(AlignedFrame).frame
            own = vdf.local()
            if own is not None:
                own.to_csv(directory / "frame.csv", index=False)
                atomic_write(directory / "frame.dtypes.json", json.dumps({c: str(t) for c, t in own.dtypes.items()}))
            entries.append({"type": kind, "step": step, "parties": list(vdf.parties)})
        elif kind == "Split":
            sp = state.latest(Split)
            entries.append({"type": kind, "step": step, "train_rows": np.asarray(sp.train_rows).tolist(),
                            "test_rows": np.asarray(sp.test_rows).tolist()})
        elif kind == "Label":
            lab = state.latest(Label)
            entries.append({"type": kind, "step": step, "name": lab.name, "pos_label": _plain(lab.pos_label),
                            "party": lab.party})
        elif kind == "Encoding":
            enc = state.latest(Encoding)
            entries.append({"type": kind, "step": step, "columns": list(enc.columns),
                            "categories": _plain(enc.categories)})
        elif kind == "WoeModel":
            from ..data.woe_io import save_woe

            save_woe(state.latest(WoeModel).woe, directory, ctx.me)  # this party's part only (see data.woe_io)
            entries.append({"type": kind, "step": step})
    summary = {k: _plain(v) for k, v in state.summary.items() if isinstance(_plain(v), (int, float, str, bool))}
    atomic_write(directory / _MANIFEST, json.dumps({"version": 1, "party": ctx.me, "entries": entries,
                                                    "summary": summary}))  # written last: marks it complete
    return True


def _read_manifest(me: str, directory: Path) -> dict[str, Any]:
    # the texts name no path: they are announced to the peers and may reach the coordinator
    path = directory / _MANIFEST
    try:
        man = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no checkpoint of step '{directory.name}' at this node (its work directory was lost?); "
                        "retry from the start", party=me, public=True) from None
    except ValueError:
        raise DataError(f"the checkpoint of step '{directory.name}' is damaged; retry from the start", party=me,
                        public=True) from None
    if man.get("version") != 1 or man.get("party") != me:
        raise DataError(f"the checkpoint of step '{directory.name}' is not this party's (version 1)", party=me,
                        public=True)
    return man


def restore_checkpoint(ctx: Any, state: Any, directory: Path, problem: str | None = None) -> None:
    """Put the saved artifacts back into `state` (every party calls it at the same point).

    `problem`: why this party cannot resume, found before (its staged checkpoint could not be
    fetched): announced to every party like a missing checkpoint."""
    from ..runtime.collectives import all_gather

    man = None
    if problem is None:
        try:
            man = _read_manifest(ctx.me, directory)
        except JointMLError as err:
            problem = public_summary(err, ctx.me)
    got = all_gather(ctx, meta={"problem": problem}, name="checkpoint-check")
    for p, r in got.items():
        if r.meta.get("problem"):  # a text its party made public (no path, no data value)
            raise DataError(f"cannot resume: {r.meta['problem']}", party=p, public=True)
    assert man is not None
    vdf: Any = None
    for e in man["entries"]:
        kind = e["type"]
        if kind == "AlignedFrame":
            vdf = _load_frame(ctx, directory, list(e["parties"]))
            state.store.put(e["step"], AlignedFrame(vdf))
        elif kind == "Split":
            tr, te = np.asarray(e["train_rows"], dtype=np.int64), np.asarray(e["test_rows"], dtype=np.int64)
            state.store.put(e["step"], Split(vdf.take(tr), vdf.take(te), tr, te))
        elif kind == "Label":
            state.store.put(e["step"], Label(e["name"], e["pos_label"], e["party"]))
        elif kind == "Encoding":
            state.store.put(e["step"], Encoding(list(e["columns"]), list(e["categories"])))
        elif kind == "WoeModel":
            state.store.put(e["step"], WoeModel(_load_woe(ctx, directory)))
    state.summary.update(man.get("summary") or {})


def _load_woe(ctx: Any, directory: Path) -> Any:
    """This party's saved WOE part, completed with the bin counts of the other parties' columns
    (each owner announces its own columns' counts: the layout every party had after binning)."""
    from ..data.woe_io import load_woe
    from ..runtime.collectives import all_gather

    woe = load_woe(directory, ctx.me)
    if woe is None:
        raise DataError(f"checkpoint {directory} has no WOE part", party=ctx.me)
    owners = [p for p, cols in woe.columns.items() if cols]
    mine = {c: int(woe.col[c].n_bins) for c in woe.columns.get(ctx.me, [])}
    got = all_gather(ctx, owners, meta={"n_bins": mine if ctx.me in owners else {}}, name="checkpoint-woe-layout")
    for p, r in got.items():
        for c, n in dict(r.meta.get("n_bins") or {}).items():
            if p != ctx.me and c in woe.col and woe.col[c].n_bins == 0:
                woe.col[c].n_bins = int(n)
    return woe


def _load_frame(ctx: Any, directory: Path, parties: list[str]) -> Any:
    import pandas as pd

    from ..data.frames import VDataFrame

    def load(p: str) -> Any:
        dtypes = json.loads((directory / "frame.dtypes.json").read_text())
        df = pd.read_csv(directory / "frame.csv")
        return df.astype(dtypes) if len(df.columns) else df

    return VDataFrame(ctx, {p: ctx.party(p).run(lambda p=p: load(p)) for p in parties})


