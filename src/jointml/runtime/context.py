"""The party context: who this party is, its links, and its view of the devices.

Every party runs the same program (SPMD) with its own `PartyContext`. Operations on
a device are executed by the parties of that device; other parties hold opaque
handles. Nothing in an algorithm knows whether it runs in simulation or deployed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError
from ..core.prg import new_seed
from ..net.link import Communicator

if TYPE_CHECKING:  # pragma: no cover
    from .device import PartyDevice


class PartyContext:
    """One party's runtime state.

    Attributes: `me` (this party's name), `parties` (all parties, in cluster order),
    `comm` (the party's links and counters; only `runtime/` and `mpc/` use it — the
    layers above move data through `jointml.runtime.collectives`).

    >>> def prog(ctx):
    ...     return ctx.me, ctx.parties, ctx.next_uid("t:")
    >>> simulate(prog, ["alice", "bob"], mode="thread")["bob"]
    ('bob', ['alice', 'bob'], 't:1')
    """

    def __init__(self, me: str, parties: list[str], comm: Communicator, options: dict[str, Any] | None = None):
        if me not in parties:
            raise ConfigError(f"party '{me}' is not in the cluster {parties}")
        self.me = me
        self.parties = list(parties)
        self.comm = comm
        self.options = dict(options or {})
        self._pair_seeds: dict[tuple[str, ...], bytes] = {}
        self._uid = 0
        self._group_seq: dict[tuple[str, ...], int] = {}

    # -- devices -----------------------------------------------------------
    def party(self, name: str) -> PartyDevice:
        """The device of party `name` (plaintext computation at that party)."""
        from .device import PartyDevice

        if name not in self.parties:
            raise ConfigError(f"unknown party '{name}' (cluster: {self.parties})")
        return PartyDevice(self, name)

    def next_uid(self, prefix: str) -> str:
        """A tag identical at every party (they run the same program): `prefix` + a counter."""
        self._uid += 1
        return f"{prefix}{self._uid}"

    def next_group_seq(self, group: list[str] | tuple[str, ...]) -> int:
        """The number of this call among the calls for the same set of parties (1, 2, ...).

        Collectives tag their messages with it: the members of a group advance it alike,
        while a party outside the group may skip the group's calls altogether.

        >>> def prog(ctx):
        ...     return [ctx.next_group_seq(["a", "b"]), ctx.next_group_seq(["b", "a"]), ctx.next_group_seq(["a"])]
        >>> simulate(prog, ["a", "b"], mode="thread")["a"]
        [1, 2, 1]
        """
        key = tuple(sorted(set(group)))
        self._group_seq[key] = self._group_seq.get(key, 0) + 1
        return self._group_seq[key]

    # -- shared seeds ------------------------------------------------------
    def shared_seed(self, a: str, b: str, label: str = "") -> bytes:
        """A 128-bit seed known only to parties `a` and `b` (agreed over their TLS link once).

        Called by both `a` and `b` at the same point of the program."""
        if self.me not in (a, b):
            raise ConfigError(f"{self.me} is not one of {a}, {b}", party=self.me)
        key = tuple(sorted((a, b))) + (label,)
        if key in self._pair_seeds:
            return self._pair_seeds[key]
        first, second = sorted((a, b), key=self.parties.index)
        tag = f"seed:{first}:{second}:{label}"
        if self.me == first:
            seed = new_seed()
            self.comm.send(second, tag, np.frombuffer(seed, dtype=np.uint8))
        else:
            seed = bytes(self.comm.recv_array(first, tag, np.uint8, (16,)))
        self._pair_seeds[key] = seed
        return seed

    def stats(self) -> dict[str, int]:
        """This party's traffic counters: bytes and messages sent and received, rounds.

        >>> def prog(ctx):
        ...     ctx.reset_stats()
        ...     ctx.party("alice").run(lambda: np.zeros(2)).to(ctx.party("bob"))
        ...     return ctx.stats()["msgs_sent"]
        >>> simulate(prog, ["alice", "bob"], mode="thread")
        {'alice': 1, 'bob': 0}
        """
        return self.comm.stats()

    def reset_stats(self) -> None:
        """Zero the traffic counters (benchmarks measure one phase)."""
        self.comm.reset_stats()
