"""Visibility and placement inference: where each operation runs.

Every value gets a visibility (see `jointml.dsl.ir`): constants and public inputs are
public; an operation whose inputs are public or private to one owner runs *at that owner
in plaintext, at no cost*; anything else runs on the MPC device. Where a secret operation
reads a private value, the pass inserts an explicit `share` op (the owner secret-shares it),
so the cost model, CSE and loop hoisting see every transfer. Loop-carried values take the
join of their initial and updated visibility (iterated to a fixed point).

Security: this pass decides what stays local. A private value leaves its owner only as
shares (`share`) or by a `reveal` written in the program; a value revealed to one party
becomes private to it, one revealed to all becomes public.

>>> from jointml import dsl
>>> @dsl.function(x=dsl.private("alice", (2,)), y=dsl.private("bob", (2,)))
... def f(x, y):
...     return (x * 2.0 + y).reveal()
>>> print(dsl.passes.infer_placement(f.graph).dump())
func f(%0: f(2,) private(alice), %1: f(2,) private(bob)) {
  %2: f() public = const 2.0
  %3: f(2,) private(alice) = mul %0, %2
  %4: f(2,) secret = share %3
  %5: f(2,) secret = share %1
  %6: f(2,) secret = add %4, %5
  %7: f(2,) public = reveal %6 to=None
  return %7
}
"""

from __future__ import annotations

from ...core.errors import ParameterError
from ..ir import PUBLIC, SECRET, Graph, Op, Value, Vis

__all__ = ["infer_placement", "join"]


def join(*vs: Vis | None) -> Vis:
    """The visibility of a result computed from operands of visibilities `vs`."""
    owners = {str(v.owner) for v in vs if v is not None and v.kind == "private"}
    if any(v is not None and v.kind == "secret" for v in vs) or len(owners) > 1:
        return SECRET
    if owners:
        return Vis.private(owners.pop())
    return PUBLIC


def infer_placement(g: Graph) -> Graph:
    """Set `vis` on every value of `g` (in place) and insert `share` ops before secret ops
    that read private values; returns `g`."""
    for v in g.inputs:
        if v.vis is None:
            raise ParameterError(f"input {v.name or v!r} has no declared visibility", field="inputs")
    _infer(g)
    _insert_shares(g)
    return g


def _infer(g: Graph) -> None:
    for o in g.ops:
        if o.op == "const":
            o.outs[0].vis = PUBLIC
        elif o.op == "reveal":
            to = o.attrs.get("to")
            o.outs[0].vis = PUBLIC if to is None else Vis.private(to)
        elif o.op == "share":
            o.outs[0].vis = SECRET
        elif o.op == "fori":
            _infer_loop(o)
        else:
            vis = join(*[v.vis for v in o.ins])
            for out in o.outs:
                out.vis = vis


def _infer_loop(o: Op) -> None:
    body = o.body
    assert body is not None
    n = o.attrs["n_carry"]
    carries = body.inputs[1 : 1 + n]
    for inner, outer in zip(body.inputs[1 + n :], o.ins[n:]):
        inner.vis = outer.vis
    state = [v.vis for v in o.ins[:n]]
    for _ in range(4):  # public < private < secret: at most 3 changes per carry
        for c, s in zip(carries, state):
            c.vis = s
        _infer(body)
        new: list[Vis | None] = [join(s, r.vis) for s, r in zip(state, body.outputs)]
        if new == state:
            break
        state = new
    for out, s in zip(o.outs, state):
        out.vis = s


def _share(g: Graph, v: Value, cache: dict[int, Value], new: list[Op]) -> Value:
    """`v` as a secret (once per value; the ops to insert are appended to `new`). A transpose or
    reshape of a private value is shared as its source, then transposed on the shares (free):
    the source is often shared anyway, and one sharing serves both."""
    if v.id in cache:
        return cache[v.id]
    prod = next((o for o in g.ops if v in o.outs), None)
    if prod is not None and prod.op in ("transpose", "reshape") and prod.ins[0].vis == v.vis:
        src = _share(g, prod.ins[0], cache, new)
        op = Op(prod.op, [src], [g.new_value(v.shape, v.dtype, SECRET)], dict(prod.attrs))
    else:
        op = Op("share", [v], [g.new_value(v.shape, v.dtype, SECRET)])
    new.append(op)
    cache[v.id] = op.outs[0]
    return cache[v.id]


def _insert_shares(g: Graph) -> None:
    """Private operands of secret ops become secret through an explicit `share`; so do the
    loop-carried values whose visibility grew to secret inside a loop."""
    cache: dict[int, Value] = {}
    i = 0
    while i < len(g.ops):
        o = g.ops[i]
        new: list[Op] = []
        if o.op == "fori":
            assert o.body is not None
            for k in range(o.attrs["n_carry"]):
                if o.outs[k].vis == SECRET and o.ins[k].vis != SECRET:
                    o.ins[k] = _share(g, o.ins[k], cache, new)
            _insert_body_shares(o)
        elif o.op not in ("reveal", "share", "const") and o.outs[0].vis == SECRET:
            for k, v in enumerate(o.ins):
                if v.vis is not None and v.vis.kind == "private":
                    o.ins[k] = _share(g, v, cache, new)
        g.ops[i:i] = new
        i += len(new) + 1


def _insert_body_shares(o: Op) -> None:
    body = o.body
    assert body is not None
    n = o.attrs["n_carry"]
    for c, out in zip(body.inputs[1 : 1 + n], o.outs):
        c.vis = out.vis
    _insert_shares(body)
    # a carry that is secret outside must be secret when the body returns it
    for k, (r, out) in enumerate(zip(body.outputs, o.outs)):
        if out.vis == SECRET and r.vis != SECRET:
            op = Op("share", [r], [body.new_value(r.shape, r.dtype, SECRET)])
            body.ops.append(op)
            body.outputs[k] = op.outs[0]
