"""The MPC device: a group of parties running one secret-sharing protocol.

Every party of the program constructs the device (SPMD); the compute parties hold
shares, a semi2k dealer supplies correlated randomness, other parties hold handles.
`x.to(mpc)` (a `PartyObject`) secret-shares the owner's array: every party learns its
shape and whether it is fixed point (public), nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import ConfigError
from ..core.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from ..runtime.collectives import broadcast
from .array import SecretArray, SecretTypeError
from .protocols import Protocol, make_protocol
from .shapes import Shape, received_fxp, received_shape

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.context import PartyContext
    from ..runtime.device import PartyObject

__all__ = ["MpcDevice"]


class MpcDevice:
    """A group of parties computing on secret shares.

    `protocol` is "semi2k" (n compute parties and a `dealer`) or "aby3" (exactly three
    parties, no dealer); values are fixed point with `frac_bits` fractional bits. `trunc`
    picks how semi2k truncates fixed-point products: "dealer" (the default: one round, exact
    up to one unit) or "local" (opt-in, 2 compute parties: no round, a small but silent
    failure probability, see `Semi2k`).

    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
    ...     x = ctx.party("alice").run(lambda: np.array([1.5, -2.0])).to(mpc)   # a SecretArray
    ...     return (x * 2).reveal()
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"].tolist()
    [3.0, -4.0]
    """

    def __init__(
        self,
        ctx: PartyContext,
        parties: Sequence[str] | None = None,
        protocol: str = "semi2k",
        dealer: str | None = None,
        frac_bits: int = DEFAULT_FRAC_BITS,
        trunc: str | None = None,
    ):
        self.ctx = ctx
        parties = list(parties) if parties is not None else [p for p in ctx.parties if p != dealer]
        for p in parties + ([dealer] if dealer else []):
            if p not in ctx.parties:
                raise ConfigError(f"mpc device: unknown party '{p}' (cluster: {ctx.parties})", field="parties")
        self.fxp = FixedPoint(frac_bits)
        self.frac_bits = frac_bits
        self.protocol_name = protocol
        self.proto: Protocol = make_protocol(protocol, ctx, parties, dealer, trunc=trunc)
        self.parties = self.proto.compute
        self.members = self.proto.members

    @property
    def is_member(self) -> bool:
        """Whether this party executes the device's operations (compute party or dealer)."""
        return self.ctx.me in self.members

    def transfer_in(self, obj: PartyObject, fxp: bool | None = None) -> SecretArray:
        """Secret-share a PartyObject (its owner's plaintext array) into this device.

        Floats are fixed-point encoded; integer and boolean arrays are shared as ring
        integers unless `fxp=True`. The owner announces the (public) shape and kind."""
        ctx = self.ctx
        owner = obj.owner
        enc = None
        meta = None
        if ctx.me == owner:
            v = np.asarray(obj.value)
            if v.dtype == object or v.dtype.kind not in "fiub":
                raise SecretTypeError(f"cannot secret-share dtype {v.dtype}", party=owner, field="dtype")
            as_fxp = (v.dtype.kind == "f") if fxp is None else fxp
            enc = self.fxp.encode(v) if as_fxp else v.astype(np.int64).view(np.uint64)
            meta = {"shape": list(v.shape), "fxp": self.frac_bits if as_fxp else 0}
        # Shape and scale are public: every party of the job learns them, so handles
        # at parties outside the device still know what they stand for.
        m = broadcast(ctx, owner, meta=meta, name="sm").meta
        shape, bits = received_shape(m.get("shape", []), party=owner), received_fxp(m.get("fxp", 0), party=owner)
        if ctx.me != owner and ctx.me not in self.members:
            return SecretArray(self, None, shape, bits)
        share = self.proto.share_in(owner, enc, shape)
        return SecretArray(self, share, shape, bits)

    def import_share(self, arrays: Sequence[Any], shape: Shape, fxp: int | None = None) -> SecretArray:
        """A SecretArray from this party's share as plain arrays (see `SecretArray.export_share`).

        Compute parties pass their arrays, other parties []; `shape` and `fxp` (default:
        the device's `frac_bits`) are public.

        >>> def prog(ctx):
        ...     mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
        ...     x = ctx.party("alice").run(lambda: np.array([0.5, 4.0])).to(mpc)
        ...     y = mpc.import_share(x.export_share(), x.shape)  # e.g. after a save and a load
        ...     return y.reveal()
        >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["carol"].tolist()
        [0.5, 4.0]
        """
        shape = tuple(int(s) for s in shape)
        share = self.proto.import_share(list(arrays), shape)
        return SecretArray(self, share, shape, self.frac_bits if fxp is None else int(fxp))

    def __repr__(self) -> str:
        return f"MpcDevice({self.protocol_name}, parties={self.parties})"
