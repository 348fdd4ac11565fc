"""The worker pool as the HE code uses it: :mod:`jointml.core.workers`, shared with PSI
and the trees (one pool per party process, with priorities).

Bulk Paillier work (encryption, decryption, scalar multiplication, compression,
grouped sums) is cut into chunks of ints/bytes that go to the pool; nonces computed
ahead of need (:class:`~jointml.he.paillier.NoncePool`) run at low priority. What each
party learns: nothing, this is local parallelism inside one party.

>>> from jointml.he.parallel import map_chunks, resolve_n_jobs
>>> map_chunks(sum, [([1, 2],), ([3],)], n_jobs=1)
[3, 3]
>>> resolve_n_jobs(1)
1
"""

from __future__ import annotations

from ..core.workers import (
    CHUNKS_PER_WORKER,
    available_cores,
    in_worker,
    map_chunks,
    n_chunks_for,
    resolve_n_jobs,
    shutdown,
    split,
    start_method,
    submit,
    warm_up,
)

__all__ = [
    "CHUNKS_PER_WORKER",
    "available_cores",
    "in_worker",
    "map_chunks",
    "n_chunks_for",
    "resolve_n_jobs",
    "shutdown",
    "split",
    "start_method",
    "submit",
    "warm_up",
]
