"""Correlated randomness from a dealer (trusted third party that never sees data).

The dealer and each compute party share a PRG seed. For every correlated value
(a Beaver triple, a truncation pair, a comparison mask) the parties draw their
shares of the random inputs from their seed streams, and the dealer draws the same
streams to know the whole value; shares of derived values (c = a*b, r >> f, ...)
come from the streams too, except the last compute party's, which the dealer sends
as a correction. So the dealer sends at most one share per correlated value, and
it only ever sends: it runs ahead of the parties and its work overlaps the online
phase. The dealer learns nothing about the data: no protocol message is sent to it; it
receives only public metadata (array shapes) and the end-of-program barrier.
"""

from __future__ import annotations

import numpy as np

from ..core.prg import Prg


class DealerProvider:
    """Seed-expanded correlated randomness. All members call the same methods in the same order."""

    def __init__(self, proto, label: str = "semi2k"):
        self.proto = proto
        ctx = proto.ctx
        self.dealer = proto.dealer
        self.compute = proto.compute
        self.is_dealer = ctx.me == self.dealer
        self.last = self.compute[-1]
        if self.is_dealer:
            self.prgs = [Prg(ctx.shared_seed(p, self.dealer, label + ":corr"), stream="corr") for p in self.compute]
        elif ctx.me in self.compute:
            self.prg = Prg(ctx.shared_seed(ctx.me, self.dealer, label + ":corr"), stream="corr")
        self.is_last = ctx.me == self.last
        self.bytes_by_kind: dict[str, int] = {}

    # At the dealer these return the list of every party's share; at a party, its own share.
    def rand(self, shape, dtype=np.uint64):
        if self.is_dealer:
            return [g.random(shape, dtype) for g in self.prgs]
        return self.prg.random(shape, dtype)

    def shares_of(self, tag: str, value, shape, dtype=np.uint64, boolean: bool = False):
        """Shares of a dealer-computed value: PRG draws for all but the last party, a correction for the last."""
        if self.is_dealer:
            parts = [g.random(shape, dtype) for g in self.prgs[:-1]]
            corr = np.array(value, dtype=dtype, copy=True).reshape(shape)
            for p in parts:
                if boolean:
                    corr ^= p
                else:
                    corr -= p
            self.proto.comm.send(self.last, "corr:" + tag, corr)
            self.bytes_by_kind[tag] = self.bytes_by_kind.get(tag, 0) + corr.nbytes
            return None
        if self.is_last:
            return self.proto.comm.recv_array(self.dealer, "corr:" + tag, dtype, tuple(shape))
        return self.prg.random(shape, dtype)

    @staticmethod
    def total(parts, boolean: bool = False):
        out = parts[0].copy()
        for p in parts[1:]:
            if boolean:
                out ^= p
            else:
                out += p
        return out


class NullProvider:
    """What a party outside the device holds: it runs the same program, draws nothing."""

    is_dealer = False
    is_last = False

    def rand(self, shape, dtype=np.uint64):
        return None

    def shares_of(self, tag, value, shape, dtype=np.uint64, boolean=False):
        return None
