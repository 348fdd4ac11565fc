"""Root conftest: names every doctest may use without importing (numpy as np, simulate)."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    from jointml.runtime import simulate

    doctest_namespace["np"] = np
    doctest_namespace["simulate"] = simulate
