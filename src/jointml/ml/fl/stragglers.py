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
from collections import deque
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
    waiting = deque(expected)
    last = time.monotonic()
    deadline = last + start_timeout

    def take(c: str, wait: float) -> bool:
        """Try `c`; True when it is settled (answered, or its link closed: dropped)."""
        nonlocal last, deadline
        try:
            r = recv(c, wait)
        except LinkTimeout:
            return False
        except PeerClosed:
            return True  # its link is gone: dropped
        got[c] = r
        last = time.monotonic()
        deadline = last + timeout
        return True

    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # block on the head only (no failed polls while answers come in order, as they mostly do);
        # when it stays silent for _POLL, take what the others already sent and move it to the back,
        # so an answer waits at most _POLL behind a silent client (the rule's clock is that exact)
        if take(waiting[0], min(_POLL, left)):
            waiting.popleft()
            continue
        head = waiting.popleft()
        waiting = deque(c for c in waiting if not take(c, 0.0))
        waiting.append(head)
    if waiting and clock is not None:
        clock.waited += time.monotonic() - last
    return got, [c for c in expected if c in waiting]
