"""dsl: a numpy-style language for secure algorithms and a compiler that picks the secure
operators and explains why.

Write ordinary numpy-style Python over `dsl` values, declare the inputs by visibility, and
`@dsl.function` traces it once into a typed SSA IR (`jointml.dsl.ir`). The passes
(`jointml.dsl.passes`) place every operation (local plaintext at an owner, or the MPC
device), simplify, hoist loop invariants, choose implementations by the protocols'
declared costs (`jointml.dsl.cost`), and batch independent openings into shared rounds;
`explain()` says what was chosen and why. See docs/dsl.md.

Security: that of the MPC device's protocol (semi2k: semi-honest with a non-colluding
dealer; aby3: semi-honest honest majority). Each party learns the public shapes and what
the program reveals to it, nothing else; private-only computations never leave their owner.

>>> from jointml import dsl
>>> from jointml.mpc import MpcDevice
>>> @dsl.function(x=dsl.private("alice", (4,)), t=dsl.private("bob", ()))
... def over(x, t):
...     return (x > t).sum().reveal(to="bob")
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob", "carol"], protocol="aby3")
...     x = np.array([0.5, 2.0, 3.5, -1.0]) if ctx.me == "alice" else None
...     t = np.array(1.0) if ctx.me == "bob" else None
...     return over.run(ctx, mpc, x, t)
>>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
array(2)
"""

from . import passes
from .function import Function, InputSpec, Program, function, private, public, secret
from .ir import Graph, Op, Value, Vis
from .trace import (
    Tensor,
    abs,
    concatenate,
    dynamic_slice,
    exp,
    fori_loop,
    log,
    matmul,
    reciprocal,
    relu,
    reveal,
    sigmoid,
    softmax,
    sqrt,
    where,
)

__all__ = [
    "function", "Function", "Program", "InputSpec", "public", "private", "secret",
    "Tensor", "fori_loop", "dynamic_slice", "where", "concatenate", "reveal", "matmul",
    "sigmoid", "exp", "log", "relu", "reciprocal", "sqrt", "softmax", "abs",
    "Graph", "Op", "Value", "Vis", "passes",
]
