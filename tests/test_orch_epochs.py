"""Per-epoch checkpoints of SS-LR: a training that crashed after epoch 2 resumes at epoch 3
(from the shares every party saved) and ends with the model of an uninterrupted run within
fixed-point noise; a checkpoint of another configuration is not resumed from; what a party
saves is its share only (the weights cannot be read from it); the dealer, which holds no
share, needs no saved epoch to resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")

from jointml.core.prg import public_rng  # noqa: E402
from jointml.ml.linear import SSLogisticRegression  # noqa: E402
from jointml.mpc import MpcDevice  # noqa: E402
from jointml.orchestration.epochs import EpochCheckpoints  # noqa: E402
from jointml.runtime import simulate  # noqa: E402
from jointml.runtime.launcher import PartyFailed  # noqa: E402

PARTIES = ["bank", "partner", "dealer"]
rng = public_rng(7)
XB, XP = rng.normal(size=(80, 2)), rng.normal(size=(80, 2))
Y = ((XB @ [1.5, -1.0] + XP @ [0.8, 0.5] + 0.2 * rng.normal(size=80)) > 0).astype(float)


class Crash(Exception):
    pass


class CrashAfter(EpochCheckpoints):
    def __init__(self, directory, at):
        super().__init__(directory)
        self.at = at

    def after_epoch(self, est, epoch, w, b, kept):
        super().after_epoch(est, epoch, w, b, kept)
        if epoch == self.at:
            raise Crash(f"killed after epoch {epoch}")


def _fit(hook_for, epochs=4, l2=0.0):
    def prog(ctx):
        if hook_for is not None:
            ctx.options["ml.epoch_hook"] = hook_for(ctx.me)
        mpc = MpcDevice(ctx, ["bank", "partner"], protocol="semi2k", dealer="dealer")
        m = SSLogisticRegression(mpc, epochs=epochs, batch_size=32, learning_rate=1.0, l2=l2, sigmoid="poly", reveal="bank")
        m.fit({"bank": ctx.party("bank").run(lambda: XB), "partner": ctx.party("partner").run(lambda: XP)},
              ctx.party("bank").run(lambda: Y))
        hook = ctx.options.get("ml.epoch_hook")
        return np.asarray(m.coef_), [h["epoch"] for h in m.history_], getattr(hook, "resumed_from", None)
    return simulate(prog, PARTIES, mode="thread")


def test_crash_after_epoch_two_resumes_at_three_with_the_same_model(tmp_path):
    plain = _fit(None)["bank"][0]
    with pytest.raises(PartyFailed):
        _fit(lambda p: CrashAfter(tmp_path / p, at=2))
    assert all(sorted(f.name for f in (tmp_path / p).glob("epoch-*.json")) == ["epoch-1.json", "epoch-2.json"]
               for p in PARTIES)
    shutil.rmtree(tmp_path / "dealer")  # the dealer holds no share (and runs ahead in a deployment): it needs none
    out = _fit(lambda p: EpochCheckpoints(tmp_path / p))
    coef, epochs, resumed = out["bank"]
    assert resumed == 2 and epochs == [1, 2, 3, 4]  # epochs 1-2 from the checkpoint, 3-4 trained now
    assert np.allclose(coef, plain, atol=2e-3), (coef, plain)
    # each party saved its own share: the weights are not in it (one share is uniformly random)
    rec = json.loads((tmp_path / "partner" / "epoch-4.json").read_text())
    share = np.asarray(rec["w_share"], dtype=np.uint64).view(np.int64) / 2.0 ** 16
    assert not np.allclose(share.ravel()[: coef.size], coef.ravel(), atol=0.5)
    assert json.loads((tmp_path / "dealer" / "epoch-4.json").read_text())["w_share"] is None
    assert out["dealer"][2] == 2


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    with pytest.raises(PartyFailed):
        _fit(lambda p: CrashAfter(tmp_path / p, at=1))
    out = _fit(lambda p: EpochCheckpoints(tmp_path / p), epochs=2, l2=0.1)  # other hyperparameters
    assert out["bank"][2] is None and out["bank"][1] == [1, 2]
