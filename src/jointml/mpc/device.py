"""The MPC device: a group of parties running one secret-sharing protocol."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import ConfigError
from ..core.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint


class MpcDevice:
    """A group of parties computing on secret shares.

    >>> # inside an SPMD program running at alice, bob and carol:
    >>> # mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
    >>> # x = ctx.party("alice").run(lambda: np.ones(3)).to(mpc)   # a SecretArray
    """

    def __init__(
        self,
        ctx,
        parties: Sequence[str] | None = None,
        protocol: str = "semi2k",
        dealer: str | None = None,
        frac_bits: int = DEFAULT_FRAC_BITS,
    ):
        self.ctx = ctx
        parties = list(parties) if parties is not None else [p for p in ctx.parties if p != dealer]
        for p in parties + ([dealer] if dealer else []):
            if p not in ctx.parties:
                raise ConfigError(f"mpc device: unknown party '{p}' (cluster: {ctx.parties})")
        self.fxp = FixedPoint(frac_bits)
        self.frac_bits = frac_bits
        self.protocol_name = protocol
        if protocol == "semi2k":
            from .semi2k import Semi2k

            self.proto = Semi2k(ctx, parties, dealer)
        elif protocol == "aby3":
            from .aby3 import Aby3

            if dealer is not None:
                raise ConfigError("aby3 needs no dealer (it is a 3-party honest-majority protocol)")
            self.proto = Aby3(ctx, parties)
        else:
            raise ConfigError(f"unknown MPC protocol '{protocol}' (choose 'semi2k' or 'aby3')")
        self.parties = self.proto.compute
        self.members = self.proto.members

    @property
    def is_member(self) -> bool:
        return self.ctx.me in self.members

    def transfer_in(self, obj, fxp: bool | None = None):
        """Secret-share a PartyObject (its owner's plaintext array) into this device.

        Floats are fixed-point encoded; integer and boolean arrays are shared as ring
        integers unless `fxp=True`. The owner announces the (public) shape and kind."""
        from .secret_array import SecretArray

        ctx = self.ctx
        owner = obj.owner
        tag = "share-meta"
        # Shape and scale are public: every party of the job learns them, so handles
        # at parties outside the device still know what they stand for.
        receivers = [p for p in ctx.parties if p != owner]
        if ctx.me == owner:
            v = np.asarray(obj.value)
            if v.dtype == object:
                raise TypeError(f"{owner}: cannot secret-share an object array")
            as_fxp = (v.dtype.kind == "f") if fxp is None else fxp
            if v.dtype.kind not in "fiub":
                raise TypeError(f"{owner}: cannot secret-share dtype {v.dtype}")
            enc = self.fxp.encode(v) if as_fxp else v.astype(np.int64).view(np.uint64)
            meta = {"shape": list(v.shape), "fxp": self.frac_bits if as_fxp else 0}
            for p in receivers:
                ctx.comm.send(p, tag, meta=meta)
            shape, bits = tuple(v.shape), meta["fxp"]
        else:
            enc = None
            m = ctx.comm.recv(owner, tag).meta
            shape, bits = tuple(int(v) for v in m.get("shape", ())), int(m.get("fxp", 0))
            if ctx.me not in self.members:
                return SecretArray(self, None, shape, bits)
        share = self.proto.share_in(owner, enc, shape)
        return SecretArray(self, share, shape, bits)

    def __repr__(self) -> str:
        return f"MpcDevice({self.protocol_name}, parties={self.parties})"
