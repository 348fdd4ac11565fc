"""Per-epoch checkpoints of SS-LR (and every `SecureLinearModel`): a training step that
crashed after epoch k resumes at epoch k + 1 instead of from zero.

`EpochCheckpoints` is the hook the model's fit loop calls (it reads it from
`ctx.options["ml.epoch_hook"]`, set by the node around a training step): `after_epoch`
saves this party's *share* of the weights and the public training record (history, the
early-stopping counters) as `epoch-<k>.json` in the step's checkpoint folder; `resume`
finds the last epoch every share-holding party saved (one all_gather of epoch numbers; a
dealer, which holds no share and runs ahead, needs none) and loads this party's share of
it. The public batch order is drawn from the job's seed for the skipped epochs too, so
the resumed run takes the same batches as an uninterrupted one: the model equals it
within fixed-point noise (probabilistic truncation).

What is saved and who learns what (adversary model): each party keeps its own share of w
and b on its own disk (a uniformly random share reveals nothing alone) and public facts
(epoch number, learning rate, timings; the validation loss only at the label holder, who
computes it anyway). The only message is the list of epoch numbers each party holds. A
checkpoint of another training configuration (other hyperparameters, features or MPC
parties) is ignored (its `config` differs), so a changed job never resumes from it.

>>> import tempfile, pathlib
>>> from jointml.mpc import MpcDevice
>>> from jointml.ml.linear import SSLogisticRegression
>>> X = np.array([[1.0], [-1.0], [2.0], [-2.0]]); y = np.array([1.0, 0.0, 1.0, 0.0])
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> def prog(ctx):
...     ctx.options["ml.epoch_hook"] = EpochCheckpoints(d / ctx.me)
...     mpc = MpcDevice(ctx, ["bank", "partner"], protocol="semi2k", dealer="dealer")
...     m = SSLogisticRegression(mpc, epochs=2, batch_size=None, learning_rate=1.0)
...     m.fit({"partner": ctx.party("partner").run(lambda: X)}, ctx.party("bank").run(lambda: y))
...     return sorted(p.name for p in (d / ctx.me).glob("epoch-*.json"))
>>> simulate(prog, ["bank", "partner", "dealer"], mode="thread")["partner"]
['epoch-1.json', 'epoch-2.json']
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..core.errors import DataError
from ..runtime.persist import atomic_write

__all__ = ["EpochCheckpoints"]


def _config(est: Any) -> str:
    """A digest of what makes two trainings the same one (hyperparameters, features, devices)."""
    from ..ml.base import mpc_part_public

    pub = {k: v for k, v in est.get_params().items() if k not in ("mpc", "device", "verbose")}
    desc = {"class": type(est).__name__, "params": {k: repr(v) for k, v in sorted(pub.items())},
            "features": est.features_.to_json(), "mpc": mpc_part_public(est.device),
            "label_owner": est.label_owner_}
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


class EpochCheckpoints:
    """Save after each epoch (`every` epochs), resume after the last epoch saved at every party.

    `directory`: this party's folder for one training step (created on the first save);
    `keep`: how many of the newest epochs to keep (older ones are deleted); `on_save(path)`
    is called after each save (the node stages the file in object storage there).
    """

    def __init__(self, directory: str | Path, every: int = 1, keep: int = 2, on_save: Any = None):
        self.directory, self.every, self.keep, self.on_save = Path(directory), max(1, int(every)), max(1, int(keep)), on_save
        self.resumed_from: int | None = None
        self.found: dict[str, list[int]] | None = None  # the epochs each party announced (for the node's log)

    def _saved(self, config: str) -> dict[int, Path]:
        out = {}
        for p in self.directory.glob("epoch-*.json"):
            try:
                rec = json.loads(p.read_text())
            except ValueError:
                continue  # damaged (a crash while writing cannot make one: writes are atomic)
            if rec.get("config") == config:
                out[int(rec["epoch"])] = p
        return out

    def after_epoch(self, est: Any, epoch: int, w: Any, b: Any, kept: dict[str, Any]) -> None:
        """Save this party's share of the weights after `epoch` (1-based)."""
        from ..ml.arrays_json import arrays_to_json

        if epoch % self.every:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        best = kept.get("best")
        rec = {"version": 1, "epoch": epoch, "config": _config(est), "w_share": arrays_to_json(w.export_share()),
               "b_share": arrays_to_json(b.export_share()), "history": kept.get("history", []),
               "best": None if best is None or math.isinf(best) else float(best), "bad_epochs": kept.get("bad_epochs", 0)}
        path = self.directory / f"epoch-{epoch}.json"
        atomic_write(path, json.dumps(rec, default=float))
        for k, p in self._saved(rec["config"]).items():
            if k <= epoch - self.keep * self.every:
                p.unlink(missing_ok=True)
        if self.on_save is not None:
            self.on_save(path)

    def resume(self, est: Any, w: Any, b: Any) -> tuple[int, Any, Any, dict[str, Any]] | None:
        """`(epochs done, w, b, kept)` from the last epoch every party saved, or None (start at 0)."""
        from ..ml.arrays_json import arrays_from_json
        from ..runtime.collectives import all_gather

        ctx, config = est.ctx, _config(est)
        mine = self._saved(config)
        holds = bool(w.export_share())  # a party outside the compute parties (the dealer) holds no share
        got = all_gather(ctx, meta={"epochs": sorted(mine), "holds_share": holds}, name="epoch-checkpoints")
        self.found = {p: sorted(int(e) for e in r.meta.get("epochs") or []) for p, r in got.items()}
        # the parties holding shares compute in lock step; a dealer runs ahead (it only sends
        # correlated randomness) and needs no saved state to restart at any epoch
        holders = [p for p, r in got.items() if r.meta.get("holds_share")]
        common = set.intersection(*(set(self.found[p]) for p in holders)) if holders else set()
        if not common:
            return None
        epoch = max(common)
        rec: dict[str, Any] = json.loads(mine[epoch].read_text()) if epoch in mine else {"w_share": None, "b_share": None}
        mpc = est.device
        try:
            w2 = mpc.import_share(arrays_from_json(rec["w_share"], "saved share of w"), w.shape)
            b2 = mpc.import_share(arrays_from_json(rec["b_share"], "saved share of b"), b.shape)
        except Exception as e:
            raise DataError(f"the checkpoint of epoch {epoch} does not fit the model ({type(e).__name__})",
                            party=ctx.me, field="checkpoint") from None
        best = rec.get("best")
        self.resumed_from = epoch
        return epoch, w2, b2, {"history": rec.get("history", []), "best": math.inf if best is None else best,
                               "bad_epochs": int(rec.get("bad_epochs", 0))}
