"""The aggregator's wait for answers: one rule for secure and plain aggregation.

A federated round cannot wait for every client: some crash, some hang. The aggregator waits
up to `start_timeout` for the first answer of a stage (clients may still be training), then
keeps waiting while answers keep coming; the clients still silent `timeout` seconds after
the last answer count as dropped. A client whose link is closed counts as dropped at once.
SecAgg+ (`secagg.py`) and plain FedAvg (`trainer.py`) use this same rule, so a benchmark
that drops the same clients in both compares like with like.

No party data is involved: only who answered and when.

>>> answers = {"a": 1, "b": 2}
>>> def recv(c, wait):
...     if c not in answers:
...         raise LinkTimeout("silent", party=c)
...     return answers[c]
>>> got, silent = collect(recv, ["a", "b", "c"], start_timeout=1.0, timeout=0.05)
>>> got, silent
({'a': 1, 'b': 2}, ['c'])
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

from ...core.errors import LinkTimeout, PeerClosed
from .timing import StageClock

__all__ = ["collect", "LinkTimeout"]

T = TypeVar("T")

# the longest block on one silent client while others may have answered meanwhile
_POLL = 0.05


def collect(recv: Callable[[str, float], T], expected: Sequence[str], *, start_timeout: float,
            timeout: float, clock: StageClock | None = None) -> tuple[dict[str, T], list[str]]:
    """Answers of `expected` by `recv(client, wait)` (which raises `LinkTimeout` after `wait`
    seconds without a message, `PeerClosed` for a closed link); returns ({client: answer} in
    arrival order, the silent clients). When some stay silent, the wall time from the last
    answer to giving up is added to `clock.waited` (the benchmark's critical path).

    >>> collect(lambda c, w: c.upper(), ["x", "y"], start_timeout=1.0, timeout=0.1)
    ({'x': 'X', 'y': 'Y'}, [])
    """
    got: dict[str, T] = {}
    waiting = list(expected)
    last = time.monotonic()
    deadline = last + start_timeout
    while waiting and time.monotonic() < deadline:
        for i, c in enumerate(list(waiting)):
            # block (briefly) on the first silent client only; poll the others
            wait = min(_POLL, max(0.0, deadline - time.monotonic())) if i == 0 else 0.0
            try:
                r = recv(c, wait)
            except LinkTimeout:
                continue
            except PeerClosed:
                waiting.remove(c)  # its link is gone: dropped
                continue
            waiting.remove(c)
            got[c] = r
            last = time.monotonic()
            deadline = last + timeout
    if waiting and clock is not None:
        clock.waited += time.monotonic() - last
    return got, waiting
