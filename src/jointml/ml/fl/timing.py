"""Per-stage CPU clocks of one party, and the round's critical path built from them.

When a benchmark runs a hundred clients as threads on a machine with two cores, its wall
clock is the *serialised* cost: every client's CPU time one after the other. A deployment
runs each client on its own machine, where a round takes the *critical path*: in each
stage the slowest client's own CPU time, plus the aggregator's CPU time, plus the time the
aggregator waits for clients that dropped. `StageClock` measures the first two with
`time.thread_time()` (CPU of the calling thread only: time blocked on a link or on the
interpreter lock is not counted), and the third as wall time (`waited`);
`critical_path` adds them up.

The aggregator's CPU time is all counted, also what it spends checking answers while
clients are still computing (it overlaps theirs in a deployment): the figure is an upper
bound of the critical path in that respect.

No party data is involved: only how long each stage took.

>>> clients = [{"fit": 0.5, "keys": 0.1}, {"fit": 0.3, "keys": 0.2}]
>>> critical_path({"forward": 0.05, "waited": 1.0}, clients)
1.75
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

__all__ = ["StageClock", "critical_path"]


class StageClock:
    """The calling thread's CPU seconds, by stage; `enter(stage)` closes the stage before.

    Each party's thread holds its own clock (a clock must be used from one thread only).
    `waited` (wall seconds) is added by the aggregator's straggler wait.

    >>> c = StageClock()
    >>> c.enter("work"); _ = sum(range(10_000)); c.enter("idle")
    >>> c.snapshot()["work"] > 0
    True
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything measured so far (the current stage goes on)."""
        self.cpu: dict[str, float] = {}
        self.waited = 0.0
        self._stage: str | None = getattr(self, "_stage", None)
        self._t = time.thread_time()

    def enter(self, stage: str) -> None:
        """Charge the CPU time since the last call to the stage then running, and start `stage`."""
        now = time.thread_time()
        if self._stage is not None:
            self.cpu[self._stage] = self.cpu.get(self._stage, 0.0) + (now - self._t)
        self._stage, self._t = stage, now

    def snapshot(self) -> dict[str, float]:
        """{stage: CPU seconds} so far (the running stage included), with 'waited' when non-zero."""
        self.enter(self._stage or "other")
        out = dict(self.cpu)
        if self.waited:
            out["waited"] = self.waited
        return out


def critical_path(server: Mapping[str, float], clients: Sequence[Mapping[str, float]]) -> float:
    """Seconds of one phase on one machine per party: the aggregator's CPU (all its stages) and
    its `waited` wall time, plus, per client stage, the slowest client's CPU in that stage."""
    stages = {s for c in clients for s in c if s != "waited"}
    slowest = sum(max(c.get(s, 0.0) for c in clients) for s in stages)
    return round(sum(server.values()) + slowest, 6)
