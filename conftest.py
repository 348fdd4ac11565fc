"""Root conftest: names every doctest may use without importing (numpy as np, simulate);
the test session's opt-in to small Paillier keys."""

import os

import numpy as np
import pytest

# Tests and doctests use 512-bit Paillier keys for speed. Jobs refuse keys below 2048 bits
# (jointml.he.paillier.check_key_bits) unless this explicit test-only switch is set; it is
# set here, for this test session (and the processes it starts) only.
os.environ["JOINTML_INSECURE_TEST_KEYS"] = "1"


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    from jointml.runtime import simulate

    doctest_namespace["np"] = np
    doctest_namespace["simulate"] = simulate
