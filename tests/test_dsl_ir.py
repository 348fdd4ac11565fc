"""The DSL's tracer and IR: shapes, kinds, visibilities, loops, printing, the plaintext twin."""

import numpy as np
import pytest

from jointml import dsl
from jointml.core.errors import ParameterError
from jointml.dsl.passes import cse, dce, fold, hoist, infer_placement


def test_trace_records_typed_ssa():
    @dsl.function(x=dsl.private("alice", (4, 3)), w=dsl.secret((3,)), b=dsl.public(()))
    def f(x, w, b):
        z = x @ w + b
        return (z > 0).sum().reveal(to="bob"), z[1:3].reshape(1, 2)

    g = f.graph
    ops = [o.op for o in g.ops]
    assert ops == ["matmul", "add", "const", "gt", "sum", "reveal", "getitem", "reshape"]
    by = {o.op: o.outs[0] for o in g.ops}
    assert by["matmul"].shape == (4,) and by["matmul"].dtype == "f"
    assert by["gt"].dtype == "i" and by["sum"].shape == ()
    assert by["reshape"].shape == (1, 2)
    ids = [v.id for o in g.ops for v in o.outs]
    assert len(ids) == len(set(ids))  # single assignment
    text = g.dump()
    assert text.startswith("func f(%0: f(4, 3) private(alice), %1: f(3,) secret, %2: f() public)")
    assert "reveal %" in text and "to='bob'" in text


def test_placement_keeps_private_work_local():
    @dsl.function(x=dsl.private("alice", (3,)), y=dsl.private("bob", (3,)))
    def f(x, y):
        a = (x * 2.0 + 1.0).sum()  # alice alone
        return (a * y).reveal()

    g = infer_placement(f.graph)
    vis = {o.op: o.outs[0].vis for o in g.ops if o.op != "const"}
    assert str(vis["add"]) == "private(alice)" and str(vis["sum"]) == "private(alice)"
    assert str(vis["mul"]) == "secret"
    shares = [o for o in g.ops if o.op == "share"]
    assert [str(o.ins[0].vis) for o in shares] == ["private(alice)", "private(bob)"]
    # only the scalar a and y are shared, never x
    assert {o.ins[0].shape for o in shares} == {(), (3,)}


def test_fori_loop_body_captures_and_hoisting():
    @dsl.function(X=dsl.private("alice", (6, 2)), w=dsl.secret((2,)))
    def f(X, w):
        def step(i, w):
            xb = dsl.dynamic_slice(X, i * 2, 2)
            return w - xb.T @ (xb @ w) * 0.1

        return dsl.fori_loop(0, 3, step, w).reveal()

    loop = next(o for o in f.graph.ops if o.op == "fori")
    assert loop.attrs == {"lo": 0, "hi": 3, "n_carry": 1}
    assert [v.shape for v in loop.body.inputs] == [(), (2,), (6, 2)]  # i, carry, captured X
    g = hoist(infer_placement(f.graph))
    loop = next(o for o in g.ops if o.op == "fori")
    assert not any(o.op == "share" and o.ins[0].shape == (6, 2) for o in loop.body.ops)
    assert "fori" in g.dump() and "dynamic_slice" in g.dump()


def test_python_loops_unroll_and_fold_cse_dce():
    @dsl.function(x=dsl.secret((2,)))
    def f(x):
        acc = x
        for _ in range(3):
            acc = acc + x * (1.0 + 1.0)
        dead = x * 7.0  # noqa: F841
        return acc.reveal()

    g = dce(cse(fold(f.graph)))
    ops = [o.op for o in g.ops]
    assert ops.count("mul") == 1 and ops.count("add") == 3  # x*2 computed once, unrolled adds
    assert "7.0" not in g.dump()


def test_evaluate_is_numpy():
    @dsl.function(a=dsl.public((2, 3)), b=dsl.public((3,)))
    def f(a, b):
        c = dsl.concatenate([a, a * 2.0], axis=0).T
        return dsl.where(c[:, 0] < 1.5, dsl.sigmoid(c @ np.ones(4)), dsl.relu(b - 2.0)).mean(), dsl.exp(b)

    a, b = np.arange(6.0).reshape(2, 3), np.array([1.0, 2.0, 3.0])
    c = np.concatenate([a, 2 * a]).T
    want = np.where(c[:, 0] < 1.5, 1 / (1 + np.exp(-(c @ np.ones(4)))), np.maximum(b - 2, 0)).mean()
    got, e = f.evaluate(a, b)
    assert np.isclose(got, want) and np.allclose(e, np.exp(b))


def test_trace_errors_are_clear():
    with pytest.raises(ParameterError, match="no declaration"):
        dsl.function(lambda x, y: x, x=dsl.secret(2))
    with pytest.raises(ParameterError, match="do not broadcast"):
        dsl.function(lambda x: x + np.ones(3), x=dsl.secret(2))
    with pytest.raises(ParameterError, match="truth value"):
        dsl.function(lambda x: 1.0 if x > 0 else 0.0, x=dsl.secret(2))
    with pytest.raises(ParameterError, match="carry changes type"):
        dsl.function(lambda x: dsl.fori_loop(0, 2, lambda i, c: c + x, 0), x=dsl.secret(()))


def test_compile_prints_the_ir_after_every_pass(capsys):
    @dsl.function(x=dsl.private("alice", (3,)), y=dsl.private("bob", (3,)))
    def f(x, y):
        return ((x * y).sum() * (2.0 * 1.5)).reveal()

    prog = f.compile(protocol="semi2k", dump_ir=True)
    out = capsys.readouterr().out
    names = [line.split("after ")[1].rstrip(" -") for line in out.splitlines() if line.startswith("--- after")]
    assert names == [name for name, _ in prog.stages]
    assert names[:5] == ["fold", "placement", "cse", "dce", "select"] and "truncation" in names
    assert "const 3.0" in out.split("--- after placement")[0]  # folded before placement
    assert "[untruncated]" in prog.dump() and "[truncate after]" in prog.dump()
