"""semi2k's in-place product paths (Beaver mul into the opened arrays, square on one
temporary, the pair's truncation in place) against plaintext ring arithmetic, for equal,
broadcast and 0-d shapes and 2 or 3 compute parties."""

import numpy as np
import pytest

from jointml.core.prg import public_rng
from jointml.mpc.protocols import Semi2k
from jointml.runtime import simulate

F = 18
SHAPES = [((6, 4), (6, 4)), ((6, 1), (1, 4)), ((4,), (3, 4)), ((), (5,)), ((), ())]


@pytest.mark.parametrize("compute", [["alice", "bob"], ["alice", "bob", "dave"]])
def test_products_are_exact_for_every_shape(compute):
    g = public_rng(11)
    vals = [(g.integers(-(1 << 20), 1 << 20, sa), g.integers(-(1 << 20), 1 << 20, sb)) for sa, sb in SHAPES]

    def prog(ctx):
        p = Semi2k(ctx, compute, dealer="carol")
        out = []
        for (sa, sb), (xv, yv) in zip(SHAPES, vals):
            x = p.share_in("alice", np.asarray(xv).view(np.uint64) if ctx.me == "alice" else None, sa)
            y = p.share_in("bob", np.asarray(yv).view(np.uint64) if ctx.me == "bob" else None, sb)
            sc = np.broadcast_shapes(sa, sb)
            out.append([p.reveal(p.mul(x, y, sa, sb), sc), p.reveal(p.square(x, sa), sa),
                        p.reveal(p.mul_trunc(x, y, sa, sb, F), sc), p.reveal(p.square_trunc(x, sa, F), sa)])
        return out

    res = simulate(prog, compute + ["carol"], mode="thread")["alice"]
    for (xv, yv), (m, sq, mt, st) in zip(vals, res):
        xv, yv = np.asarray(xv, np.int64), np.asarray(yv, np.int64)
        assert (np.asarray(m).view(np.int64) == xv * yv).all()
        assert (np.asarray(sq).view(np.int64) == xv * xv).all()
        # the pair's truncation: floor or one more
        assert set(np.unique(np.asarray(mt).view(np.int64) - ((xv * yv) >> F)).tolist()) <= {0, 1}
        assert set(np.unique(np.asarray(st).view(np.int64) - ((xv * xv) >> F)).tolist()) <= {0, 1}
