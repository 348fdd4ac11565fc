"""Shared test helpers: run an SPMD program over an MPC device in simulation."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.mpc import MpcDevice
from jointml.runtime import simulate

PROTOCOL_PARTIES = {
    "semi2k": (["alice", "bob", "carol"], dict(parties=["alice", "bob"], dealer="carol")),
    "aby3": (["alice", "bob", "carol"], dict(parties=["alice", "bob", "carol"])),
}


def run_mpc(protocol: str, fn, *args, mode: str = "thread", frac_bits: int = 18, device_options=None, **kwargs):
    """Run fn(ctx, mpc, *args) at every party; returns {party: result}.

    Inside fn, `ctx.party("alice").run(lambda: x).to(mpc)` shares alice's input.
    `device_options` go to `MpcDevice` (e.g. {"trunc": "dealer"})."""
    parties, dev = PROTOCOL_PARTIES[protocol]

    def prog(ctx):
        mpc = MpcDevice(ctx, protocol=protocol, frac_bits=frac_bits, **dev, **(device_options or {}))
        return fn(ctx, mpc, *args, **kwargs)

    return simulate(prog, parties, mode=mode)


def shared(ctx, mpc, value, owner: str = "alice"):
    """Secret-share `value` (known to the test at every party) from `owner`."""
    return ctx.party(owner).run(lambda: np.asarray(value)).to(mpc)


@pytest.fixture(params=["semi2k", "aby3"])
def protocol(request):
    return request.param
