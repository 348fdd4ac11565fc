"""Issue 12: the credit job's per-epoch progress is about five lines (a line every ceil(epochs / 5)
epochs, and the last), every epoch only when asked (`jointml demo --verbose`, a node's "all")."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from jointml.jobs import simulate_pipeline
from jointml.jobs.spec import PipelineSpec


def _doc(tmp_path, epochs: int) -> dict:
    i = np.arange(60)
    pd.DataFrame({"id": i, "y": np.where(i % 3 == 0, "bad", "good"), "b1": np.sin(i)}).to_csv(tmp_path / "b.csv",
                                                                                               index=False)
    pd.DataFrame({"id": i, "p1": np.cos(i * 1.3)}).to_csv(tmp_path / "p.csv", index=False)
    return {
        "parties": ["bank", "partner", "dealer"], "mpc": {"protocol": "semi2k", "dealer": "dealer"},
        "inputs": {"bank": str(tmp_path / "b.csv"), "partner": str(tmp_path / "p.csv")},
        "steps": [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
                  {"woe_binning": {"label": "y", "pos_label": "bad", "key_bits": 512, "max_bins": 3,
                                   "label_proofs": False}},
                  {"ss_lr.train": {"epochs": epochs, "batch_size": 64}}]}


def _spec(tmp_path, epochs: int) -> PipelineSpec:
    return PipelineSpec.from_dict(_doc(tmp_path, epochs))


def test_epoch_lines_every_n_then_all_with_verbose(tmp_path, capsys):
    spec = _spec(tmp_path, 12)
    simulate_pipeline(spec, mode="thread", verbose=True)
    out = capsys.readouterr().out
    epochs = [int(m) for m in re.findall(r"\[bank\]\s+epoch (\d+) at", out)]
    assert epochs == [3, 6, 9, 12], epochs  # ceil(12 / 5) = 3
    assert "a line every 3 epochs; --verbose for each" in out


def test_run_verbose_flag_prints_every_epoch(tmp_path):
    """`jointml run --verbose` (a node's full log alike): every epoch's line, at every party."""
    import yaml
    from click.testing import CliRunner

    from jointml.cli.main import main

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_doc(tmp_path, 7)))
    res = CliRunner().invoke(main, ["run", str(tmp_path / "p.yaml"), "--mode", "thread", "--verbose"])
    assert res.exit_code == 0, res.output
    assert [int(m) for m in re.findall(r"\[bank\]\s+epoch (\d+) at", res.output)] == list(range(1, 8))
    assert "[partner] ss_lr.train    start" in res.output
