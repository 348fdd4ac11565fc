"""Nonlinear functions on SecretArrays, independent of the secret-sharing protocol.

Everything here is written against the `SecretArray` API and the narrow `Protocol`
kernels every protocol implements (`mul`, `square`, `trunc`, `mul_public`, `msb`,
`map`), so it runs unchanged on semi2k and aby3. Security is that of the protocol
(semi-honest for semi2k, honest majority for aby3): no function reveals anything;
every branch is computed obliviously and selected by multiplying with secret 0/1
bits, so every party learns only the (public) shapes. Like every SecretArray operation
they are executed by all members of the device (compute parties and dealer).

| module | functions |
| --- | --- |
| `select` | sign, abs, relu, where / select, clip, maximum, minimum |
| `reduce` | max, min, argmax, argmin |
| `reciprocal` | reciprocal, div, sqrt, rsqrt |
| `exp_log` | exp, log |
| `sigmoid` | sigmoid, log_sigmoid, softplus, softmax |

Cost vocabulary used in the docstrings, per element, from `Protocol.cost` (semi2k with
2 compute parties: bytes each compute party sends, the dealer's bytes apart; aby3:
bytes of the three parties together):

* **cmp** - one secure comparison (`Protocol.msb`): semi2k 6 rounds, 19.1 B/party
  (+ 46 B from the dealer); aby3 8 rounds, 121 B in total. Several comparisons are
  always *batched* into one `msb` call, so k comparisons cost k x the bytes but the
  rounds of one.
* **mul** - one product of two fixed-point secrets with truncation: semi2k 24 B/party,
  2 rounds (1 for the Beaver opening, 1 for the truncation); aby3 `mul_trunc`, 2 rounds,
  60 B in total.
* **xmul** - an *exact* product of an integer (0/1 or +-1) secret with any secret:
  no truncation, semi2k 16 B/party, 1 round (aby3 24 B in total, 1 round).
* **sq** - a square with truncation (semi2k: 16 B, 2 rounds); **trunc** - a lone
  truncation (semi2k 8 B, 1 round; aby3 44 B in total, 2 rounds).

Per-function byte and round figures below were measured on semi2k (2 parties + dealer)
and count every cmp at its semi2k cost above.

A protocol whose fused product-and-truncate kernels are cheaper (`supports("mul_trunc")`,
as aby3) gets them automatically; otherwise only the kernels above are used.

Products that do not depend on each other are batched into one round. Multiplying
by public constants and adding are free, and so is scaling by a power of two: a
SecretArray carries its own fixed-point scale (`fxp`), so `x / 2**k` is a relabel.
Internally the functions work at a higher precision `_fint(f)` (26 bits for the
default f = 18) and return results with the device's `frac_bits`.

Accuracy figures (max abs / rel error vs numpy float64 on the fixed-point input) were
measured with f = 18 on semi2k and aby3 (the same to two digits); the output itself has a
resolution of 2^-18 = 3.8e-6 ("ulp"), and truncations round down. The functions are tuned
for f = 18 and checked for f in [14, 24]; below f = 18 every error grows with the ulp.
tests/test_nonlinear.py holds the checks.

>>> from jointml.mpc import MpcDevice, functions as F
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
...     x = ctx.party("alice").run(lambda: np.array([-1.0, 0.5, 3.0])).to(mpc)
...     return F.abs(x).reveal(), F.maximum(x, 1.0).reveal()
>>> a, m = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
>>> a.tolist(), m.tolist()
([1.0, 0.5, 3.0], [1.0, 1.0, 3.0])
"""

from .exp_log import exp, log
from .reciprocal import div, reciprocal, rsqrt, sqrt
from .reduce import argmax, argmin, max, min
from .select import abs, clip, maximum, minimum, relu, select, sign, where
from .sigmoid import SIGMOID_MODES, log_sigmoid, sigmoid, sigmoid_seg3_scaled, softmax, softplus

__all__ = [
    "sign",
    "abs",
    "relu",
    "where",
    "select",
    "clip",
    "maximum",
    "minimum",
    "max",
    "min",
    "argmax",
    "argmin",
    "reciprocal",
    "div",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sigmoid",
    "sigmoid_seg3_scaled",
    "log_sigmoid",
    "softplus",
    "softmax",
    "SIGMOID_MODES",
]
