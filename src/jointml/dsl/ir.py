"""The DSL's intermediate representation: a typed SSA graph of array operations.

A `Graph` holds its `inputs` (declared `Value`s), a list of `Op`s in program order and its
`outputs`. Every `Value` is assigned once and carries its public shape, its kind (`"f"`:
fixed point, `"i"`: ring integer, e.g. a comparison bit) and its visibility:

| visibility | where the value lives | cost of computing on it |
| --- | --- | --- |
| `public` | in plaintext at every party | free, computed by everyone |
| `private(owner)` | in plaintext at `owner` only | free, computed by the owner |
| `secret` | secret-shared on the MPC device | the protocol's kernels |

A loop (`fori`) carries its body as a nested `Graph` whose inputs are the loop index,
the loop-carried values and the outer values the body reads (captures).

Security: the IR itself is public (every party traces the same program); it holds shapes,
never data. What a party learns is decided by where the passes place each operation: a
value leaves its owner only through a `share` op (secret-sharing) or a `reveal` op the
program wrote.

>>> g = Graph("f")
>>> x = g.add_input("x", (3,), "f", Vis.private("alice"))
>>> y = g.emit("mul", [x, x], (3,), "f").outs[0]
>>> g.outputs.append(y)
>>> print(g.dump())
func f(%0: f(3,) private(alice)) {
  %1: f(3,) = mul %0, %0
  return %1
}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Vis", "Value", "Op", "Graph", "PUBLIC", "SECRET", "INTERACTIVE", "op_label"]

#: ops that read nothing but their inputs' layout (no arithmetic): free on every kind of value
STRUCTURAL = frozenset({"reshape", "transpose", "getitem", "dynamic_slice", "concatenate", "sum", "broadcast"})
#: ops that cost communication when their inputs are secret
INTERACTIVE = frozenset({"mul", "matmul", "lt", "gt", "le", "ge", "eq", "where", "sigmoid", "exp", "log", "relu",
                         "reciprocal", "sqrt", "mean", "div", "abs", "max", "min", "softmax"})


@dataclass(frozen=True)
class Vis:
    """Visibility: `kind` is "public", "private" (with `owner`) or "secret"."""

    kind: str
    owner: str | None = None

    @staticmethod
    def private(owner: str) -> Vis:
        return Vis("private", owner)

    def __str__(self) -> str:
        return f"private({self.owner})" if self.kind == "private" else self.kind


PUBLIC = Vis("public")
SECRET = Vis("secret")
_ids = itertools.count()


@dataclass(eq=False)
class Value:
    """One SSA value: `id` (unique), public `shape`, `dtype` ("f" fixed point, "i" integer),
    `vis` (None until inferred), and `const` for a folded public constant."""

    id: int
    shape: tuple[int, ...]
    dtype: str
    vis: Vis | None = None
    name: str = ""
    const: Any = None

    def __repr__(self) -> str:
        return f"%{self.id}"

    def type_str(self) -> str:
        vis = f" {self.vis}" if self.vis is not None else ""
        return f"{self.dtype}{self.shape}{vis}"


@dataclass(eq=False)
class Op:
    """One operation: `op` name, input `ins`, results `outs`, static `attrs`, a nested `body`
    (loops), and `impl`: the implementation chosen by operator selection (None: default)."""

    op: str
    ins: list[Value]
    outs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    body: Graph | None = None
    impl: str | None = None

    def dump(self, indent: str = "  ", names: dict[int, str] | None = None) -> str:
        names = {} if names is None else names
        outs = ", ".join(f"{_name(o, names)}: {o.type_str()}" for o in self.outs)
        parts = [", ".join(_name(v, names) for v in self.ins)]
        parts += [f"{k}={_short(v)}" for k, v in self.attrs.items() if k not in ("value", "choice", "choice_text")]
        if self.op == "const":
            parts.append(_short(self.attrs["value"]))
        impl = f" [{self.impl}]" if self.impl else ""
        line = f"{indent}{outs} = {self.op}{impl} " + " ".join(p for p in parts if p)
        if self.body is not None:
            line = line.rstrip() + " " + self.body.dump(indent, names).lstrip()
        return line.rstrip()


def _name(v: Value, names: dict[int, str]) -> str:
    """Dumps number values in order of appearance (ids are global and not readable)."""
    if v.id not in names:
        names[v.id] = f"%{len(names)}"
    return names[v.id]


def _short(v: Any) -> str:
    import numpy as np

    if isinstance(v, np.ndarray):
        return repr(v.tolist()) if v.size <= 4 else f"array{v.shape}"
    if isinstance(v, slice):
        return f"{'' if v.start is None else v.start}:{'' if v.stop is None else v.stop}" + \
            ("" if v.step is None else f":{v.step}")
    if isinstance(v, tuple):
        return "(" + ",".join(_short(x) for x in v) + ")"
    return repr(v)


class Graph:
    """A function body: inputs, ops in program order, outputs (see the module docstring)."""

    def __init__(self, name: str = "f"):
        self.name = name
        self.inputs: list[Value] = []
        self.ops: list[Op] = []
        self.outputs: list[Value] = []
        #: outer value -> the body input standing for it (loop bodies only)
        self.captures: dict[int, Value] = {}
        self.capture_src: dict[int, Value] = {}

    def new_value(self, shape: tuple[int, ...], dtype: str, vis: Vis | None = None, name: str = "") -> Value:
        return Value(next(_ids), tuple(int(s) for s in shape), dtype, vis, name)

    def add_input(self, name: str, shape: tuple[int, ...], dtype: str, vis: Vis | None) -> Value:
        v = self.new_value(shape, dtype, vis, name)
        self.inputs.append(v)
        return v

    def emit(self, op: str, ins: list[Value], shape: tuple[int, ...], dtype: str, /, **attrs: Any) -> Op:
        o = Op(op, list(ins), [self.new_value(shape, dtype)], dict(attrs))
        self.ops.append(o)
        return o

    def walk(self) -> Iterator[Op]:
        """Every op, nested bodies included (pre-order)."""
        for o in self.ops:
            yield o
            if o.body is not None:
                yield from o.body.walk()

    def producers(self) -> dict[int, Op]:
        """value id -> the op of this graph (not nested) that defines it."""
        return {v.id: o for o in self.ops for v in o.outs}

    def dump(self, indent: str = "", names: dict[int, str] | None = None) -> str:
        """The graph as text (one op per line; `[impl]` after an op once a pass chose one)."""
        names = {} if names is None else names
        args = ", ".join(f"{_name(v, names)}: {v.type_str()}" for v in self.inputs)
        head = f"{indent}func {self.name}({args}) {{" if not indent else f"{{ ({args})"
        lines = [head] + [o.dump(indent + "  ", names) for o in self.ops]
        lines.append(f"{indent}  return {', '.join(_name(v, names) for v in self.outputs)}")
        lines.append(f"{indent}}}")
        return "\n".join(lines)

    def names(self) -> dict[int, str]:
        """value id -> its number in `dump()` (order of appearance: the same in every process)."""
        names: dict[int, str] = {}
        self.dump(names=names)
        return names

    def __repr__(self) -> str:
        return f"Graph({self.name}, {len(self.ops)} ops)"


def op_label(o: Op, names: dict[int, str]) -> str:
    """A stable label of `o` for reports: its op name and result number (e.g. "lt%6")."""
    return f"{o.op}{names.get(o.outs[0].id, '#' + str(o.outs[0].id))}"
