"""mpc: SecretArray and MpcDevice; protocols semi2k (n-party with dealer) and aby3
(3-party replicated); correlated-randomness providers; secure functions.

| module | what |
| --- | --- |
| `array` | `SecretArray`, `concatenate`, `stack` |
| `device` | `MpcDevice` (the group of parties and its protocol) |
| `protocols` | the `Protocol` ABC (kernels, capabilities, costs), `Semi2k`, `Aby3`, circuits |
| `randomness` | `CorrelationProvider`, the dealer |
| `functions` | nonlinear functions (sigmoid, exp, reciprocal, max, ...) |
| `sharing` | `split` / `combine` for parties outside the protocol |
| `masked` | matrices masked once for training loops |
| `shapes` | shape arithmetic |

>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([1.0, -2.0])).to(mpc)
...     return functions.relu(x).reveal()
>>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"].tolist()
[1.0, 0.0]
"""

from . import functions
from .array import SecretArray, concatenate, stack
from .device import MpcDevice

__all__ = ["MpcDevice", "SecretArray", "concatenate", "stack", "functions"]
