"""The tracer: numpy-style Python over `Tensor`s, recorded once into an SSA `Graph`.

`Tensor` overloads the numpy operators (`+ - * / @`, comparisons, indexing, `.T`,
`.sum()`, ...); every operation appends one `Op` to the graph being built and returns a new
`Tensor`. Nothing is computed: a trace holds shapes and kinds only. Python control flow runs
at trace time (a Python `for` loop unrolls); `fori_loop` records a loop once, with its body
as a nested graph. Constants (numbers, numpy arrays) become public `const` ops.

Security: tracing handles no data (shapes are public by the DSL's contract), so every
party traces the same graph and learns nothing from it.

>>> from jointml.dsl.ir import Vis
>>> t = Tracer("f")
>>> x = t.input("x", (2,), "f", Vis.private("alice"))
>>> with t:
...     y = (x * 2.0 + 1.0).sum()
>>> t.graph.outputs.append(y.value)
>>> [o.op for o in t.graph.ops]
['const', 'mul', 'const', 'add', 'sum']
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import ParameterError
from .ir import Graph, Value, Vis

__all__ = ["Tensor", "Tracer", "fori_loop", "dynamic_slice", "where", "concatenate", "reveal", "sigmoid", "exp",
           "log", "relu", "reciprocal", "sqrt", "softmax", "abs", "matmul", "current"]

_state = threading.local()


def _stack() -> list[Tracer]:
    st: list[Tracer] | None = getattr(_state, "stack", None)
    if st is None:
        st = _state.stack = []
    return st


def current() -> Tracer:
    """The tracer recording now (inside a `@dsl.function` body)."""
    st = _stack()
    if not st:
        raise ParameterError("dsl operations are only valid while a @dsl.function is traced", field="tracer")
    return st[-1]


class Tracer:
    """Records one graph; nested tracers (loop bodies) lift outer values as captures."""

    def __init__(self, name: str = "f", parent: Tracer | None = None):
        self.graph = Graph(name)
        self.parent = parent
        self.owned: set[int] = set()

    def __enter__(self) -> Tracer:
        _stack().append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _stack().pop()

    def input(self, name: str, shape: tuple[int, ...], dtype: str, vis: Vis | None) -> Tensor:
        v = self.graph.add_input(name, shape, dtype, vis)
        self.owned.add(v.id)
        return Tensor(v)

    def lift(self, v: Value) -> Value:
        """`v` as a value of this graph: an outer value becomes a capture input of the body."""
        if v.id in self.owned:
            return v
        if v.id in self.graph.captures:
            return self.graph.captures[v.id]
        if self.parent is None:
            raise ParameterError("a Tensor of another trace was used here", field="value")
        outer = self.parent.lift(v)
        if outer.id in self.graph.captures:
            return self.graph.captures[outer.id]
        inner = self.graph.add_input(f"cap{outer.id}", outer.shape, outer.dtype, None)
        self.owned.add(inner.id)
        self.graph.captures[outer.id] = inner
        self.graph.capture_src[inner.id] = outer
        return inner

    def emit(self, op: str, ins: Sequence[Value], shape: tuple[int, ...], dtype: str, /, **attrs: Any) -> Tensor:
        o = self.graph.emit(op, [self.lift(v) for v in ins], shape, dtype, **attrs)
        self.owned.add(o.outs[0].id)
        return Tensor(o.outs[0])

    def const(self, c: Any) -> Tensor:
        a = np.asarray(c)
        if a.dtype.kind not in "fiub":
            raise ParameterError(f"a dsl constant must be numeric, got {a.dtype}", field="value")
        kind = "i" if a.dtype.kind in "iub" else "f"
        a = a.astype(np.int64 if kind == "i" else np.float64)
        return self.emit("const", [], a.shape, kind, value=a)


def _val(x: Any) -> Value:
    return x.value if isinstance(x, Tensor) else current().const(x).value


def _kind(*vs: Value) -> str:
    return "f" if any(v.dtype == "f" for v in vs) else "i"


def _bshape(*vs: Value) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*[v.shape for v in vs]))
    except ValueError:
        raise ParameterError(f"shapes {[v.shape for v in vs]} do not broadcast", field="shape") from None


def _binary(op: str, a: Any, b: Any, kind: str | None = None) -> Tensor:
    va, vb = _val(a), _val(b)
    return current().emit(op, [va, vb], _bshape(va, vb), kind or _kind(va, vb))


def _shape_of(fn: Callable[..., Any], *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(fn(*[np.empty(s, np.int8) for s in shapes]).shape)
    except (ValueError, IndexError, TypeError) as e:
        raise ParameterError(f"invalid shape operation on {list(shapes)}: {e}", field="shape") from None


class Tensor:
    """A traced array value (see the module docstring); `.shape`, `.dtype` ("f"/"i"), `.ndim`."""

    __array_priority__ = 2000  # numpy defers its binary operators to us

    def __init__(self, value: Value):
        self.value = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> str:
        return self.value.dtype

    @property
    def ndim(self) -> int:
        return len(self.value.shape)

    def __repr__(self) -> str:
        return f"Tensor({self.value!r}: {self.value.type_str()})"

    def __len__(self) -> int:
        return self.shape[0]

    def __bool__(self) -> bool:
        raise ParameterError("a traced value has no truth value at trace time; use dsl.where for a choice",
                             field="value")

    # arithmetic
    def __add__(self, o: Any) -> Tensor:
        return _binary("add", self, o)

    def __radd__(self, o: Any) -> Tensor:
        return _binary("add", o, self)

    def __sub__(self, o: Any) -> Tensor:
        return _binary("sub", self, o)

    def __rsub__(self, o: Any) -> Tensor:
        return _binary("sub", o, self)

    def __mul__(self, o: Any) -> Tensor:
        return _binary("mul", self, o)

    def __rmul__(self, o: Any) -> Tensor:
        return _binary("mul", o, self)

    def __neg__(self) -> Tensor:
        return current().emit("neg", [self.value], self.shape, self.dtype)

    def __truediv__(self, o: Any) -> Tensor:
        if isinstance(o, Tensor):
            return _binary("div", self, o, "f")
        return _binary("mul", self, 1.0 / np.asarray(o, dtype=np.float64))

    def __rtruediv__(self, o: Any) -> Tensor:
        return _binary("div", o, self, "f")

    def __matmul__(self, o: Any) -> Tensor:
        return matmul(self, o)

    def __rmatmul__(self, o: Any) -> Tensor:
        return matmul(o, self)

    # comparisons: integer 0/1 results
    def __lt__(self, o: Any) -> Tensor:
        return _binary("lt", self, o, "i")

    def __gt__(self, o: Any) -> Tensor:
        return _binary("gt", self, o, "i")

    def __le__(self, o: Any) -> Tensor:
        return _binary("le", self, o, "i")

    def __ge__(self, o: Any) -> Tensor:
        return _binary("ge", self, o, "i")

    # structure
    def __getitem__(self, idx: Any) -> Tensor:
        if isinstance(idx, Tensor) or (isinstance(idx, tuple) and any(isinstance(i, Tensor) for i in idx)):
            raise ParameterError("index by a traced value with dsl.dynamic_slice(x, start, size)", field="index")
        shape = _shape_of(lambda a: a[idx], self.shape)
        return current().emit("getitem", [self.value], shape, self.dtype, index=idx)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        out = _shape_of(lambda a: a.reshape(shape), self.shape)
        return current().emit("reshape", [self.value], out, self.dtype, shape=out)

    def transpose(self, *axes: Any) -> Tensor:
        ax = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else tuple(axes)
        ax = ax or tuple(range(self.ndim))[::-1]
        return current().emit("transpose", [self.value], _shape_of(lambda a: a.transpose(ax), self.shape),
                              self.dtype, axes=ax)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        out = _shape_of(lambda a: a.sum(axis=axis, keepdims=keepdims), self.shape)
        return current().emit("sum", [self.value], out, self.dtype, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        out = _shape_of(lambda a: a.sum(axis=axis, keepdims=keepdims), self.shape)
        return current().emit("mean", [self.value], out, "f", axis=axis, keepdims=keepdims)

    def reveal(self, to: str | None = None) -> Tensor:
        return reveal(self, to)


def matmul(a: Any, b: Any) -> Tensor:
    """a @ b (numpy rules for 1-D and 2-D operands).

    >>> from jointml import dsl
    >>> dsl.function(lambda a: dsl.matmul(a, a.T), a=dsl.public((2, 3))).graph.ops[-1].outs[0].shape
    (2, 2)
    """
    va, vb = _val(a), _val(b)
    shape = _shape_of(lambda x, y: x.astype(np.int64) @ y.astype(np.int64), va.shape, vb.shape)
    return current().emit("matmul", [va, vb], shape, _kind(va, vb))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """numpy where: `a` where the 0/1 `cond` is 1, else `b` (oblivious when cond is secret).

    >>> from jointml import dsl
    >>> f = dsl.function(lambda x: dsl.where(x > 1.0, x, -x), x=dsl.secret(3))
    >>> f.evaluate(np.array([0.5, 2.0, 3.0])).tolist()
    [-0.5, 2.0, 3.0]
    """
    vc, va, vb = _val(cond), _val(a), _val(b)
    return current().emit("where", [vc, va, vb], _bshape(vc, va, vb), _kind(va, vb))


def concatenate(xs: Sequence[Any], axis: int = 0) -> Tensor:
    """numpy concatenate.

    >>> from jointml import dsl
    >>> dsl.function(lambda a: dsl.concatenate([a, a * 2.0]), a=dsl.public(2)).evaluate(np.ones(2)).tolist()
    [1.0, 1.0, 2.0, 2.0]
    """
    vs = [_val(x) for x in xs]
    shape = _shape_of(lambda *a: np.concatenate(a, axis=axis), *[v.shape for v in vs])
    return current().emit("concatenate", vs, shape, _kind(*vs), axis=axis)


def dynamic_slice(x: Tensor, start: Any, size: int, axis: int = 0) -> Tensor:
    """x[start : start + size] along `axis`, for a public (traced) `start` such as a loop index.

    >>> from jointml import dsl
    >>> f = dsl.function(lambda x: dsl.fori_loop(0, 2, lambda i, s: s + dsl.dynamic_slice(x, i * 2, 2), np.zeros(2)),
    ...                  x=dsl.secret(4))
    >>> f.evaluate(np.array([1.0, 2.0, 10.0, 20.0])).tolist()
    [11.0, 22.0]
    """
    vx, vs = _val(x), _val(start)
    if vs.shape != () or vs.dtype != "i":
        raise ParameterError("dynamic_slice: start must be an integer scalar", field="start")
    shape = list(vx.shape)
    shape[axis] = int(size)
    return current().emit("dynamic_slice", [vx, vs], tuple(shape), vx.dtype, size=int(size), axis=axis)


def _unary(op: str, kind: str | None = None) -> Callable[[Any], Tensor]:
    def fn(x: Any) -> Tensor:
        v = _val(x)
        return current().emit(op, [v], v.shape, kind or v.dtype)

    fn.__name__ = op
    fn.__doc__ = f"Elementwise {op} (secure version: `jointml.mpc.functions.{op}`)."
    return fn


def sigmoid(x: Any, mode: str | None = None, error: float | None = None) -> Tensor:
    """Elementwise logistic function. `mode` pins an approximation ("accurate", "poly", "seg3";
    see `jointml.mpc.functions.sigmoid`); otherwise the compiler picks the cheapest whose
    maximum error is within `error` (default: the accurate one).

    >>> from jointml import dsl
    >>> f = dsl.function(lambda x: dsl.sigmoid(x, error=1e-3).reveal(), x=dsl.secret(2))
    >>> [o.impl for o in f.compile(protocol="semi2k").graph.ops if o.op == "sigmoid"]
    ['poly']
    """
    v = _val(x)
    return current().emit("sigmoid", [v], v.shape, "f", mode=mode, error=error)


exp = _unary("exp", "f")
log = _unary("log", "f")
sqrt = _unary("sqrt", "f")
reciprocal = _unary("reciprocal", "f")
relu = _unary("relu")
abs = _unary("abs")  # noqa: A001 - numpy-style name


def softmax(x: Any, axis: int = -1) -> Tensor:
    """Softmax along `axis` (secure version: `jointml.mpc.functions.softmax`).

    >>> from jointml import dsl
    >>> f = dsl.function(lambda x: dsl.softmax(x), x=dsl.secret(2))
    >>> np.round(f.evaluate(np.array([0.0, np.log(3.0)])), 3).tolist()
    [0.25, 0.75]
    """
    v = _val(x)
    return current().emit("softmax", [v], v.shape, "f", axis=int(axis))


def reveal(x: Any, to: str | None = None) -> Tensor:
    """Open `x` to every party (`to=None`, the result is public) or to party `to` only.

    >>> from jointml import dsl
    >>> f = dsl.function(lambda x: dsl.reveal(x * 2.0, to="bob"), x=dsl.secret(1))
    >>> str(dsl.passes.infer_placement(f.graph).outputs[0].vis)
    'private(bob)'
    """
    v = _val(x)
    return current().emit("reveal", [v], v.shape, v.dtype, to=to)


def fori_loop(lo: int, hi: int, body: Callable[[Tensor, Any], Any], init: Any) -> Any:
    """`carry = body(i, carry)` for i in range(lo, hi), recorded once as a loop (`i` is a public
    integer Tensor). `init` is a Tensor, a constant or a tuple of them; returns the same structure.

    >>> from jointml import dsl
    >>> f = dsl.function(lambda x: dsl.fori_loop(0, 3, lambda i, c: (c[0] * x, c[1] + 1.0), (x, 0.0)),
    ...                  x=dsl.secret(()))
    >>> [float(v) for v in f.evaluate(np.array(2.0))]
    [16.0, 3.0]
    >>> [o.op for o in f.graph.ops]
    ['const', 'fori']
    """
    outer = current()
    single = not isinstance(init, (tuple, list))
    inits = [_val(x) for x in ([init] if single else init)]
    inner = Tracer(f"{outer.graph.name}.body", parent=outer)
    i = inner.input("i", (), "i", Vis("public"))
    carries = [inner.input(f"c{k}", v.shape, v.dtype, None) for k, v in enumerate(inits)]
    with inner:
        res = body(i, carries[0] if single else tuple(carries))
        res_list = [res] if single else list(res)
        if len(res_list) != len(inits):
            raise ParameterError(f"fori_loop body returned {len(res_list)} values for {len(inits)} carries",
                                 field="body")
        outs = [inner.lift(_val(r)) for r in res_list]
    for c, o in zip(carries, outs):
        if c.shape != o.shape or c.value.dtype != o.dtype:
            raise ParameterError(f"fori_loop carry changes type: {c.value.type_str()} -> {o.type_str()} "
                                 "(start from a value of the result's kind, e.g. 0.0 not 0)", field="body")
    inner.graph.outputs = outs
    capt = [inner.graph.capture_src[v.id] for v in inner.graph.inputs[1 + len(inits):]]
    g = outer.graph
    loop = g.emit("fori", [outer.lift(v) for v in inits + capt], inits[0].shape, inits[0].dtype,
                  lo=int(lo), hi=int(hi), n_carry=len(inits))
    loop.body = inner.graph
    loop.outs = [g.new_value(v.shape, v.dtype) for v in inits]
    outer.owned.update(v.id for v in loop.outs)
    res_t = [Tensor(v) for v in loop.outs]
    return res_t[0] if single else tuple(res_t)
