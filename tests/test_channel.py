"""runtime.collectives.Channel: a two-party stream with data-dependent length."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.errors import JointMLError, WireFormatError
from jointml.runtime import PartyFailed, simulate
from jointml.runtime.collectives import Channel, broadcast


def test_stream_of_batches_keeps_other_parties_in_step():
    def prog(ctx):
        uid = ctx.next_uid("stream")  # every party, including carol who takes no part
        total = 7
        if ctx.me == "alice":
            ch = Channel(ctx, "bob", uid)
            for lo in range(0, total, 3):
                ch.send("x", arrays=[np.arange(lo, min(total, lo + 3))])
            ch.send("end", meta={"n": total})
        elif ctx.me == "bob":
            ch = Channel(ctx, "alice", uid)
            got: list[int] = []
            while len(got) < total:
                got += ch.recv("x", dtypes=[np.int64]).arrays[0].tolist()
            assert ch.recv("end", dtypes=[]).meta == {"n": total}
        # a collective afterwards: counters are still the same everywhere
        return broadcast(ctx, "carol", meta={"ok": 1} if ctx.me == "carol" else None).meta["ok"]

    assert simulate(prog, ["alice", "bob", "carol"], mode="thread") == {"alice": 1, "bob": 1, "carol": 1}


def test_wrong_step_is_out_of_sync():
    def prog(ctx):
        uid = ctx.next_uid("s")
        ch = Channel(ctx, "bob" if ctx.me == "alice" else "alice", uid)
        if ctx.me == "alice":
            ch.send("x", arrays=[np.zeros(2)])
        else:
            ch.recv("y")

    with pytest.raises(PartyFailed) as e:
        simulate(prog, ["alice", "bob"], mode="thread")
    assert "out of sync" in str(e.value)


def test_checks_dtypes_and_peer():
    def prog(ctx):
        uid = ctx.next_uid("s")
        ch = Channel(ctx, "bob" if ctx.me == "alice" else "alice", uid)
        if ctx.me == "alice":
            ch.send("x", arrays=[np.zeros(2)])
        else:
            with pytest.raises(WireFormatError):
                ch.recv("x", dtypes=[np.int64])
            with pytest.raises(JointMLError):
                Channel(ctx, "bob", uid)  # to itself
            with pytest.raises(JointMLError):
                Channel(ctx, "mallory", uid)
        return ctx.me

    assert simulate(prog, ["alice", "bob"], mode="thread")["bob"] == "bob"


def test_timeout_is_the_links():
    def prog(ctx):
        return Channel(ctx, "bob" if ctx.me == "alice" else "alice", "t").timeout > 0

    assert all(simulate(prog, ["alice", "bob"], mode="thread").values())


def test_collectives_of_a_subgroup_do_not_put_outsiders_out_of_step():
    """Data holders run a data-dependent number of collectives among themselves (trees,
    early stopping) while a dealer skips them; a later all-party collective still works."""

    def prog(ctx):
        if ctx.me != "dealer":
            for i in range(3 if ctx.me else 0):
                broadcast(ctx, "bank", meta={"i": i} if ctx.me == "bank" else None, to=["bank", "partner"], name="sub")
        return broadcast(ctx, "bank", meta={"done": True} if ctx.me == "bank" else None, name="verdict").meta

    out = simulate(prog, ["bank", "partner", "dealer"], mode="thread")
    assert out["dealer"] == {"done": True} and out["partner"] == {"done": True}
