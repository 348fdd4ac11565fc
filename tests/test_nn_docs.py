"""docs/nn.md: every example on the page runs and prints what the page says."""

from __future__ import annotations

import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "nn.md"


def test_nn_page_examples_run():
    res = doctest.testfile(str(DOC), module_relative=False, globs={},
                           optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 15 and res.failed == 0, res
