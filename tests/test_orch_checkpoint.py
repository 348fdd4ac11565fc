"""Checkpoints of a run at one party: what is restored equals what was saved (each party's own
rows, dtypes included; the split; the label; the WOE part), a lost checkpoint at one party
fails the resume at every party with that party named (no one is left waiting), and a run
holding model parts is not checkpointed."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sqlalchemy")

from jointml.core.errors import DataError  # noqa: E402
from jointml.data.frames import VDataFrame  # noqa: E402
from jointml.jobs.artifacts import AlignedFrame, Label, ModelParts, Split  # noqa: E402
from jointml.jobs.runner import JobState  # noqa: E402
from jointml.jobs.spec import PipelineSpec  # noqa: E402
from jointml.orchestration.checkpoint import can_checkpoint, restore_checkpoint, save_checkpoint  # noqa: E402
from jointml.runtime import simulate  # noqa: E402

FRAMES = {
    "bank": pd.DataFrame({"y": ["bad", "good", "good", "bad", "good"], "amount": [1200, 5400, 700, 2500, 999],
                          "rate": [0.1, 0.25, 1 / 3, 0.0, 2.5]}),
    "partner": pd.DataFrame({"age": np.array([31, 45, 23, 60, 38], dtype=np.int32), "city": pd.Categorical(list("abcab"))}),
}


def _state(ctx):
    state = JobState(PipelineSpec("p", ctx.parties, {}, []))
    vdf = VDataFrame(ctx, {p: ctx.party(p).run(lambda p=p: FRAMES[p].copy()) for p in FRAMES})
    state.store.put("psi", AlignedFrame(vdf))
    tr, te = np.array([4, 0, 2]), np.array([1, 3])
    state.store.put("split", Split(vdf.take(tr), vdf.take(te), tr, te))
    state.store.put("woe_binning", Label("y", "bad", "bank"))
    state.summary.update(rows_aligned=5, train_rows=3)
    return state


def test_restored_state_equals_saved(tmp_path):
    def prog(ctx):
        saved = save_checkpoint(ctx, _state(ctx), tmp_path / ctx.me)
        again = JobState(PipelineSpec("p", ctx.parties, {}, []))
        restore_checkpoint(ctx, again, tmp_path / ctx.me)
        return saved, again.train.local(), again.test.local(), again.label.describe(), again.summary, \
            [r["type"] for r in again.store.records()]

    out = simulate(prog, ["bank", "partner", "dealer"], mode="thread")
    for p in ("bank", "partner"):
        saved, train, test, label, summary, kinds = out[p]
        assert saved
        pd.testing.assert_frame_equal(train.reset_index(drop=True), FRAMES[p].iloc[[4, 0, 2]].reset_index(drop=True))
        pd.testing.assert_frame_equal(test.reset_index(drop=True), FRAMES[p].iloc[[1, 3]].reset_index(drop=True))
        assert label == {"label": "y", "pos_label": "bad", "party": "bank"} and summary["train_rows"] == 3
        assert kinds == ["Inputs", "AlignedFrame", "Split", "Label"]
    assert out["dealer"][1] is None  # the dealer holds no rows, before and after
    assert not (tmp_path / "dealer" / "frame.csv").exists()
    assert "amount" not in (tmp_path / "partner" / "frame.csv").read_text()  # each party saves only its own columns


def test_lost_checkpoint_fails_everywhere_naming_the_party(tmp_path):
    simulate(lambda ctx: save_checkpoint(ctx, _state(ctx), tmp_path / ctx.me), ["bank", "partner"], mode="thread")
    shutil.rmtree(tmp_path / "partner")  # the partner's node lost its work directory

    def prog(ctx):
        try:
            restore_checkpoint(ctx, JobState(PipelineSpec("p", ctx.parties, {}, [])), tmp_path / ctx.me)
        except DataError as e:
            return e.party, str(e)

    out = simulate(prog, ["bank", "partner"], mode="thread")
    assert {p: r[0] for p, r in out.items()} == {"bank": "partner", "partner": "partner"}
    assert "retry from the start" in out["bank"][1]


def test_model_parts_are_not_checkpointed(tmp_path):
    def prog(ctx):
        state = _state(ctx)
        state.store.put("train", ModelParts(None, "ss_lr", "SSLogisticRegression", "woe", Label("y", "bad", "bank")))
        return can_checkpoint(state), save_checkpoint(ctx, state, tmp_path / ctx.me)

    assert simulate(prog, ["bank", "partner"], mode="thread")["bank"] == (False, False)
    assert not (tmp_path / "bank").exists()
