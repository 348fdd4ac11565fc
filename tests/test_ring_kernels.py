"""Property tests of the numpy backend's ring matrix products (float64 BLAS on limbs).

Every path (the 5-product Karatsuba path, the 4- and 3-product paths taken when an
operand's upper limbs are zero, chunked inner dimensions) is
compared with numpy's integer matmul, which wraps mod 2^64 exactly."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jointml.core.backend.numpy import _MAX_INNER, matmul, matmul_limbs

# values near the limb boundaries (balanced 22/22/20-bit limbs): the carries of the
# balancing and the sign of the top limb are where an exactness bug would show
_EDGES = [0, 1, -1, 2**21 - 1, 2**21, -(2**21), -(2**21) - 1, 2**43 - 1, 2**43, -(2**43), -(2**43) - 1,
          2**42 + 2**21, 2**63 - 1, -(2**63), 2**44 - 1, -(2**44)]
_BOUNDS = {"uniform": None, "43 bits": 2**43, "21 bits": 2**21, "edges": 0}


def _draw(seed: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
    g = np.random.default_rng(seed)  # public test data
    bound = _BOUNDS[kind]
    if bound is None:
        return g.integers(0, 2**64, size=shape, dtype=np.uint64)
    if bound == 0:
        return np.array(_EDGES, dtype=np.int64)[g.integers(0, len(_EDGES), size=shape)].view(np.uint64)
    return g.integers(-bound, bound, size=shape, dtype=np.int64).view(np.uint64)


_kinds = st.sampled_from(sorted(_BOUNDS))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(5, 700), n=st.integers(1, 40), ka=_kinds, kb=_kinds,
       seed=st.integers(0, 2**32 - 1))
def test_limb_product_is_exact_for_any_operand_range(m, k, n, ka, kb, seed):
    a = _draw(seed, (m, k), ka)
    b = _draw(seed + 1, (k, n), kb)
    want = np.matmul(a, b)
    assert (matmul_limbs(a, b) == want).all()
    assert (matmul(a, b) == want).all()


@settings(max_examples=8, deadline=None)
@given(k=st.integers(_MAX_INNER - 3, _MAX_INNER + 600), ka=_kinds, kb=_kinds, seed=st.integers(0, 2**32 - 1))
def test_limb_product_chunks_long_inner_dimensions_exactly(k, ka, kb, seed):
    a = _draw(seed, (3, k), ka)
    b = _draw(seed + 1, (k, 4), kb)
    assert (matmul_limbs(a, b) == np.matmul(a, b)).all()


def test_bounded_operand_takes_fewer_float_products():
    """A 21-bit operand (|x| < 2^21: one nonzero limb) needs 3 float products, a uniform one 5."""
    import jointml.core.backend.numpy as nb

    calls = []
    real = nb._f

    def counting(a, b, chunk):
        calls.append(chunk)
        return real(a, b, chunk)

    a = _draw(1, (50, 300), "21 bits")
    b = _draw(2, (300, 60), "uniform")
    nb._f = counting
    try:
        small = matmul_limbs(a, b)
        n_small = len(calls)
        calls.clear()
        full = matmul_limbs(b.T.copy(), b)
        n_full = len(calls)
    finally:
        nb._f = real
    assert (small == np.matmul(a, b)).all() and (full == np.matmul(b.T, b)).all()
    assert (n_small, n_full) == (3, 5)
