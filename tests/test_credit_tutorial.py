"""docs/tutorial.md is a test: its Python block makes the files, its YAML block is the
pipeline, its `$ jointml ...` lines run (parties as threads; 512-bit Paillier keys for speed),
and they produce the reports, the scorecards and the scores the page promises."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from jointml.cli.main import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_tutorial_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (python,) = _blocks("python")
    exec(compile(python, "tutorial.md", "exec"), {})  # noqa: S102 - our own documentation's example
    (pipeline,) = _blocks("yaml")
    assert pipeline.startswith("# pipeline.yaml")
    Path("pipeline.yaml").write_text(pipeline.replace("key_bits: 2048", "key_bits: 512"))
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ jointml ")]
    assert len(commands) == 3
    outputs = []
    for cmd in commands:
        args = shlex.split(cmd)[1:] + ["--mode", "thread"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (cmd, res.output)
        outputs.append(res.output)
    assert "passed its checks at every party" in outputs[0]
    assert "psi matched 280 rows" in outputs[1] and "ks_uplift_pct" in outputs[1]
    for p in ("bank", "partner", "dealer"):
        assert Path(f"out/report.{p}.html").exists()
    assert Path("out/scorecard.bank.json").exists() and Path("out/scorecard.partner.json").exists()
    assert Path("out/reasons.bank.csv").exists() and not Path("out/reasons.partner.csv").exists()
    scores = pd.read_csv("scores.csv")
    assert len(scores) == 280 and scores["score"].between(0, 1).all()
    assert len(pd.read_csv("scores.unmatched.csv")) == 20 and "20 had no match" in outputs[2]
