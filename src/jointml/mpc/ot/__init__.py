"""Oblivious transfer: base OT, IKNP extension (random, correlated, chosen-message OT) and KKRT16.

The foundation of the OT-based PSI (`jointml.psi.kkrt`) and of garbled circuits
(`jointml.mpc.protocols.garbled`). Every protocol here runs between two parties over a
`jointml.runtime.collectives.Channel` (messages cross the link; nothing is pickled) and is
secure against semi-honest parties; each module states what each party learns.

| module | what | cost per OT |
| --- | --- | --- |
| `ristretto` | the prime-order group ristretto255 (RFC 9496) | - |
| `base` | Chou-Orlandi "simplest OT", with the published fixes | 32 B, ~1 ms |
| `iknp` | IKNP extension: `rot`, `cot`, chosen `send`/`receive` | 16 B, ~1 us |
| `kkrt` | KKRT16 batched OPRF and 1-out-of-N OT | 64 B, ~2 us |
| `prims` | fixed-key-AES hashes, AES-CTR expansion, bit-matrix transpose | - |

>>> from jointml.mpc.ot import IknpSender, IknpReceiver, KkrtSender, KkrtReceiver, base_send, base_receive
"""

from __future__ import annotations

from .base import base_receive, base_send
from .iknp import IknpReceiver, IknpSender
from .kkrt import KkrtReceiver, KkrtSender

__all__ = ["base_send", "base_receive", "IknpSender", "IknpReceiver", "KkrtSender", "KkrtReceiver"]
