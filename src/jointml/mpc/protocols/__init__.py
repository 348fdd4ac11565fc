"""Secret-sharing protocols behind `MpcDevice`: the `Protocol` ABC and its implementations.

| protocol | parties | security | correlated randomness |
| --- | --- | --- | --- |
| `semi2k` | n >= 2 compute parties + a dealer | semi-honest, any n-1 of the compute parties | a `CorrelationProvider` (dealer) |
| `aby3` | exactly 3 | semi-honest, honest majority | pairwise PRG seeds, no dealer |

`make_protocol(name, ctx, parties, dealer)` builds one by name.

>>> sorted(PROTOCOLS)
['aby3', 'semi2k']
>>> PROTOCOLS["aby3"].capabilities >= {"mul_trunc", "msb"}
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ...core.errors import ConfigError
from .aby3 import Aby3
from .base import CORE_CAPABILITIES, Cost, GenericMasked, Protocol, Share, cost_table
from .semi2k import Semi2k

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import PartyContext

__all__ = ["Protocol", "Cost", "Share", "GenericMasked", "CORE_CAPABILITIES", "Semi2k", "Aby3", "PROTOCOLS",
           "make_protocol", "cost_table"]

PROTOCOLS: dict[str, type[Protocol]] = {"semi2k": Semi2k, "aby3": Aby3}


def make_protocol(name: str, ctx: PartyContext, parties: Sequence[str], dealer: str | None = None,
                  trunc: str | None = None) -> Protocol:
    """The protocol `name` over the compute `parties` (and `dealer` for semi2k), at this party.

    `trunc` chooses semi2k's truncation of fixed-point products ("local" or "dealer", see
    `Semi2k`). Every party of the program calls it at the same point (seeds are agreed here)."""
    if name == "semi2k":
        return Semi2k(ctx, parties, dealer, trunc=trunc)
    if trunc not in (None, "dealer"):
        raise ConfigError(f"{name} has no '{trunc}' truncation (only semi2k with 2 parties truncates locally)",
                          field="trunc")
    if name == "aby3":
        if dealer is not None:
            raise ConfigError("aby3 needs no dealer (it is a 3-party honest-majority protocol)", field="dealer")
        return Aby3(ctx, parties)
    raise ConfigError(f"unknown MPC protocol '{name}' (choose 'semi2k' or 'aby3')", field="protocol")
