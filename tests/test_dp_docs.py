"""docs/dp.md: every Python example on the page runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("dp_accounting")

DOC = Path(__file__).resolve().parents[1] / "docs" / "dp.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_example_runs(i, capsys):
    exec(compile(BLOCKS[i], f"docs/dp.md[{i}]", "exec"), {"__name__": f"dp_doc_{i}"})
    assert capsys.readouterr().out.strip()  # each example prints what it shows
