"""Nonlinear functions (jointml.mpc.functions) against numpy, on every protocol.

Tolerances follow the docstrings: results are compared with numpy evaluated on the
fixed-point-rounded input (the input's own quantisation is not the function's error),
and ULP = 2^-18 is the output resolution.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import run_mpc, shared
from jointml.mpc import functions as nl

F = 18
ULP = 2.0**-F


def expit(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def log_expit(x):
    return -np.logaddexp(0.0, -np.asarray(x, dtype=np.float64))


def np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.fixture
def proto(protocol):
    if protocol == "aby3" and importlib.util.find_spec("jointml.mpc.protocols.aby3") is None:
        pytest.skip("aby3 protocol not available yet")
    return protocol


def q(x):
    """The fixed-point value the parties actually hold."""
    return np.round(np.asarray(x, dtype=np.float64) * 2**F) / 2**F


def run(proto, fn, *values, owner="alice"):
    """Share `values`, apply fn(ctx, *secrets) -> dict of SecretArrays (or other), reveal all.

    Returns alice's dict and checks bob got the same values."""

    def prog(ctx, mpc):
        xs = [shared(ctx, mpc, v, owner) for v in values]
        out = fn(*xs)
        return {k: (v.reveal() if hasattr(v, "reveal") else v) for k, v in out.items()}

    res = run_mpc(proto, prog)
    a, b = res["alice"], res["bob"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    return a


def check(got, ref, abs_tol=0.0, rel_tol=0.0, what=""):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    err = np.abs(got - ref)
    bound = abs_tol + rel_tol * np.abs(ref)
    bad = err > bound
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} out of tolerance; e.g. got {got.ravel()[i]!r} ref {ref.ravel()[i]!r} "
            f"(err {err.ravel()[i]:.3g} > {bound.ravel()[i]:.3g})"
        )


rng = np.random.default_rng(20240607)


# ------------------------------------------------------------------------------------------------
# exact functions
# ------------------------------------------------------------------------------------------------


def test_sign_abs_relu_minmax_clip(proto):
    x = np.concatenate([rng.normal(0, 3, 60), [0.0, ULP, -ULP, 1e6, -1e6, 2.5, -2.5]]).reshape(67, 1)
    y = rng.normal(0, 3, (67, 1))
    xq, yq = q(x), q(y)

    def fn(sx, sy):
        return {
            "sign": nl.sign(sx),
            "abs": nl.abs(sx),
            "abs_op": abs(sx),
            "relu": nl.relu(sx),
            "relu_m": sx.relu(),
            "max": nl.maximum(sx, sy),
            "min": nl.minimum(sx, sy),
            "max_pub": nl.maximum(sx, 0.5),
            "min_pub": nl.minimum(1.0, sx),
            "clip": nl.clip(sx, -1.0, 2.0),
            "clip_lo": nl.clip(sx, lo=0.0),
            "clip_hi": sx.clip(hi=0.25),
            "clip_sec": nl.clip(sx, sy, sy + 1),
        }

    r = run(proto, fn, x, y)
    np.testing.assert_array_equal(r["sign"], np.sign(xq))
    assert r["sign"].dtype.kind == "i"
    for k, ref in [
        ("abs", np.abs(xq)),
        ("abs_op", np.abs(xq)),
        ("relu", np.maximum(xq, 0)),
        ("relu_m", np.maximum(xq, 0)),
        ("max", np.maximum(xq, yq)),
        ("min", np.minimum(xq, yq)),
        ("max_pub", np.maximum(xq, 0.5)),
        ("min_pub", np.minimum(xq, 1.0)),
        ("clip", np.clip(xq, -1, 2)),
        ("clip_lo", np.clip(xq, 0, None)),
        ("clip_hi", np.clip(xq, None, 0.25)),
        ("clip_sec", np.clip(xq, yq, yq + 1)),
    ]:
        check(r[k], ref, 0.0, what=k)  # exact: selection only


def test_where_select(proto):
    a = rng.normal(0, 2, (4, 5))
    b = rng.normal(0, 2, (4, 5))
    aq, bq = q(a), q(b)
    cond_pub = rng.random((4, 5)) < 0.5

    def fn(sa, sb):
        c = sa < sb
        return {
            "ss": nl.where(c, sa, sb),
            "sp": nl.where(c, sa, 7.25),
            "ps": nl.select(c, -1.5, sb),
            "pp": nl.where(c, np.arange(5), 10),
            "pp_f": nl.where(c, 0.5, -0.5),
            "row": nl.where(c[:, :1], sa, sb),  # broadcast the condition
            "pubcond": nl.where(cond_pub, sa, sb),
        }

    r = run(proto, fn, a, b)
    c = aq < bq
    check(r["ss"], np.where(c, aq, bq), what="ss")
    check(r["sp"], np.where(c, aq, 7.25), what="sp")
    check(r["ps"], np.where(c, -1.5, bq), what="ps")
    np.testing.assert_array_equal(r["pp"], np.where(c, np.arange(5), 10))
    check(r["pp_f"], np.where(c, 0.5, -0.5), what="pp_f")
    check(r["row"], np.where(c[:, :1], aq, bq), what="row")
    check(r["pubcond"], np.where(cond_pub, aq, bq), what="pubcond")


def test_where_rejects_fixed_point_condition(proto):
    def prog(ctx, mpc):
        x = shared(ctx, mpc, np.ones(3))
        with pytest.raises(TypeError):
            nl.where(x, x, x)
        return True

    assert all(run_mpc(proto, prog).values())


# ------------------------------------------------------------------------------------------------
# reductions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", [((7,), None), ((7,), 0), ((1,), 0), ((3, 1), 1), ((5, 6), 1), ((5, 6), 0), ((2, 3, 5), -2), ((4, 9), None)])
def test_max_argmax_ties(proto, shape, axis):
    x = rng.integers(-3, 4, shape).astype(np.float64) / 2  # many ties
    if x.size > 3:
        x.ravel()[-1] = 1e5  # a large value
        x.ravel()[0] = -1e5

    def fn(sx):
        return {
            "max": nl.max(sx, axis),
            "max_k": sx.max(axis, keepdims=True),
            "min": nl.min(sx, axis),
            "argmax": nl.argmax(sx, axis),
            "argmin": sx.argmin(axis),
            "argmax_k": nl.argmax(sx, axis, keepdims=True),
            "onehot": nl.argmax(sx, axis, one_hot=True),
            "onehot_min": nl.argmin(sx, axis, one_hot=True),
        }

    r = run(proto, fn, x)
    np.testing.assert_array_equal(r["max"], np.max(x, axis))
    np.testing.assert_array_equal(r["max_k"], np.max(x, axis, keepdims=True))
    np.testing.assert_array_equal(r["min"], np.min(x, axis))
    np.testing.assert_array_equal(r["argmax"], np.argmax(x, axis))
    np.testing.assert_array_equal(r["argmin"], np.argmin(x, axis))
    np.testing.assert_array_equal(r["argmax_k"], np.argmax(x, axis, keepdims=True))
    assert r["argmax"].dtype.kind == "i"

    def onehot(idx):
        if axis is None:
            oh = np.zeros(x.size, np.int64)
            oh[idx] = 1
            return oh.reshape(x.shape)
        ax = axis % x.ndim
        oh = np.zeros(x.shape, np.int64)
        np.put_along_axis(oh, np.expand_dims(idx, ax), 1, axis=ax)
        return oh

    np.testing.assert_array_equal(r["onehot"], onehot(np.argmax(x, axis)))
    np.testing.assert_array_equal(r["onehot_min"], onehot(np.argmin(x, axis)))


def test_max_rejects_empty_axis(proto):
    def prog(ctx, mpc):
        x = shared(ctx, mpc, np.zeros((3, 0)))
        with pytest.raises(ValueError):
            nl.max(x, axis=1)
        return nl.max(x, axis=0).shape

    assert run_mpc(proto, prog)["alice"] == (0,)


# ------------------------------------------------------------------------------------------------
# reciprocal, division, exp, log, sqrt
# ------------------------------------------------------------------------------------------------

# Errors: relative where the result is >= 1, absolute (in ULPs) below.
def check_fn(got, ref, rel, ulps, what):
    check(got, ref, abs_tol=ulps * ULP, rel_tol=rel, what=what)


def _magnitudes(n):
    """Log-uniform over the documented domain [2^-18, 2^26) plus the bucket edges."""
    m = np.exp(rng.uniform(np.log(2.0**-18), np.log(2.0**26 * 0.99), n))
    edges = 2.0 ** np.arange(-18, 26)
    return q(np.concatenate([m, edges, edges * (1 - 2**-10), [1.0, 3.0, 0.5]]))


def test_reciprocal_and_div(proto):
    m = _magnitudes(6000)
    x = np.concatenate([m, -m[::3]])
    a = rng.normal(0, 100, x.shape)
    aq = q(a)
    small_b = np.abs(x) > 1e-4  # keep |a/b| inside the documented range of div

    def fn(sx, sa):
        return {
            "recip": nl.reciprocal(sx),
            "recip_op": 1 / sx,
            "recip_pos": nl.reciprocal(sx[: len(m)], positive=True),
            "div": nl.div(sa, sx),
            "div_op": sa / sx,
            "div_pub": 2.5 / sx,
        }

    r = run(proto, fn, x, a)
    inv = 1 / x
    check_fn(r["recip"], inv, 5e-6, 1.5, "reciprocal")
    check_fn(r["recip_op"], inv, 5e-6, 1.5, "1/x")
    check_fn(r["recip_pos"], inv[: len(m)], 5e-6, 1.5, "reciprocal positive")
    # a secret numerator carries its own resolution: allow one ulp of a, amplified by 1/|b|
    amp = ULP / np.abs(x[small_b])
    check(r["div"][small_b], (aq / x)[small_b], 2 * ULP + amp, 8e-6, "div")
    check(r["div_op"][small_b], (aq / x)[small_b], 2 * ULP + amp, 8e-6, "a/b")
    check_fn(r["div_pub"], 2.5 / x, 1e-5, 1.5, "2.5/b")  # numerator 2.5 costs ~1 bit


def test_reciprocal_bounds_and_broadcast(proto):
    x = q(rng.uniform(1.0, 40.0, (3, 4)))
    y = q(rng.uniform(-5, 5, (2, 3, 4)))

    def fn(sx, sy):
        return {"b": nl.reciprocal(sx, positive=True, bounds=(1, 40)), "b16": nl.reciprocal(sx[:, :1] * 0 + 4.0, bounds=(1, 16)), "bc": sy / sx}

    r = run(proto, fn, x, y)
    check_fn(r["b"], 1 / x, 5e-6, 1.5, "bounded reciprocal")
    check_fn(r["b16"], np.full((3, 1), 0.25), 5e-6, 1.5, "single bucket")
    check(r["bc"], y / x, 2 * ULP + ULP / np.abs(x), 8e-6, "broadcast division")


def test_exp(proto):
    x = q(np.concatenate([np.linspace(-30, 17.3, 3000), [0.0, ULP, -ULP, -13.1, -13.2, -14, -1e3, -3e7, 1.0, 10.0]]))

    def fn(sx):
        return {"exp": nl.exp(sx), "exp_m": sx.exp()}

    r = run(proto, fn, x)
    ref = np.exp(x)
    check_fn(r["exp"], ref, 2.5e-5, 6, "exp")
    check_fn(r["exp_m"], ref, 2.5e-5, 6, "x.exp()")
    assert np.all(r["exp"][x < -14] == 0)


def test_log_sqrt_rsqrt(proto):
    x = _magnitudes(6000)

    def fn(sx):
        return {"log": nl.log(sx), "log_m": sx.log(), "sqrt": nl.sqrt(sx), "sqrt_m": sx.sqrt(), "rsqrt": nl.rsqrt(sx)}

    r = run(proto, fn, x)
    check_fn(r["log"], np.log(x), 1e-5, 2, "log")
    check_fn(r["sqrt"], np.sqrt(x), 6e-6, 1.5, "sqrt")
    check_fn(r["rsqrt"], 1 / np.sqrt(x), 6e-6, 1.5, "rsqrt")
    check_fn(r["log_m"], np.log(x), 1e-5, 2, "x.log()")
    check_fn(r["sqrt_m"], np.sqrt(x), 6e-6, 1.5, "x.sqrt()")


def test_sqrt_of_zero_and_tiny(proto):
    x = np.array([0.0, ULP, 4 * ULP, 1e-3])

    def fn(sx):
        return {"sqrt": nl.sqrt(sx)}

    r = run(proto, fn, x)
    check(r["sqrt"], np.sqrt(x), abs_tol=4 * ULP, rel_tol=1e-5, what="sqrt small")


# ------------------------------------------------------------------------------------------------
# sigmoid family, softmax
# ------------------------------------------------------------------------------------------------

SIGMOID_TOL = {"accurate": 1.5e-5, "exp": 1.5e-5, "poly": 7.5e-4, "seg3": 0.0565}


def _sigmoid_inputs():
    return q(np.concatenate([np.linspace(-20, 20, 4001), rng.normal(0, 6, 20000), [0, ULP, -ULP, 16, -16, 6.625, -6.625, 2.8249, -2.8249, 8192, -8192, 1e6, -1e6, 3e12, -3e12]]))


@pytest.mark.parametrize("mode", ["accurate", "poly", "seg3"])
def test_sigmoid_modes(proto, mode):
    x = _sigmoid_inputs()

    def fn(sx):
        return {"s": nl.sigmoid(sx, mode=mode), "m": sx.sigmoid(mode=mode), "2d": nl.sigmoid(sx[:12].reshape(3, 4), mode=mode)}

    r = run(proto, fn, x)
    check(r["s"], expit(x), SIGMOID_TOL[mode], what=f"sigmoid {mode}")
    check(r["m"], expit(x), SIGMOID_TOL[mode], what=f"x.sigmoid({mode})")
    check(r["2d"], expit(x[:12]).reshape(3, 4), SIGMOID_TOL[mode], what="2-D")
    assert np.all((r["s"] >= -ULP) & (r["s"] <= 1 + ULP))


def test_sigmoid_default_is_accurate_and_bad_mode(proto):
    def prog(ctx, mpc):
        x = shared(ctx, mpc, np.array([0.3]))
        with pytest.raises(ValueError):
            nl.sigmoid(x, mode="nope")
        return nl.sigmoid(x).reveal()

    r = run_mpc(proto, prog)["alice"]
    check(r, expit(q([0.3])), 1.5e-5, what="default sigmoid")


def test_log_sigmoid_softplus(proto):
    x = _sigmoid_inputs()[:-2]  # softplus(3e12) itself is not representable

    def fn(sx):
        return {"ls": nl.log_sigmoid(sx), "sp": nl.softplus(sx)}

    r = run(proto, fn, x)
    check(r["ls"], log_expit(x), 1.5e-5, what="log_sigmoid")
    check(r["sp"], -log_expit(-x), 1.5e-5, what="softplus")


@pytest.mark.parametrize("shape,axis", [((6, 5), -1), ((6, 5), 0), ((1,), 0), ((3, 1), 1), ((2, 40), 1)])
def test_softmax(proto, shape, axis):
    x = rng.normal(0, 4, shape)
    x.ravel()[0] = 500.0  # far above the rest of its row
    if x.size > 2:
        x.ravel()[1] = x.ravel()[2]  # a tie
    xq = q(x)

    def fn(sx):
        return {"sm": nl.softmax(sx, axis=axis)}

    r = run(proto, fn, x)
    ref = np_softmax(xq, axis=axis)
    check(r["sm"], ref, 2e-5, what="softmax")
    check(r["sm"].sum(axis=axis), np.ones(np.sum(ref, axis=axis).shape), 2e-5 * shape[axis], what="softmax sums")


# ------------------------------------------------------------------------------------------------
# shapes: empty, 0-d
# ------------------------------------------------------------------------------------------------


def test_empty_and_scalar_shapes(proto):
    e = np.zeros((2, 0))
    s = np.array(0.75)

    def fn(se, ss):
        return {
            "e_sig": nl.sigmoid(se),
            "e_relu": nl.relu(se),
            "e_exp": nl.exp(se),
            "e_recip": nl.reciprocal(se),
            "e_max0": nl.max(se, axis=0),
            "e_soft": nl.softmax(se, axis=0),
            "s_sig": nl.sigmoid(ss, mode="poly"),
            "s_recip": nl.reciprocal(ss),
            "s_log": nl.log(ss),
            "s_abs": nl.abs(ss),
            "s_max": nl.max(ss.reshape(1)),
        }

    r = run(proto, fn, e, s)
    for k in ("e_sig", "e_relu", "e_exp", "e_recip", "e_soft"):
        assert r[k].shape == (2, 0), k
    assert r["e_max0"].shape == (0,)
    assert r["s_sig"].shape == ()
    check(r["s_sig"], expit(0.75), 7.5e-4, what="0-d sigmoid")
    check_fn(r["s_recip"], 1 / 0.75, 5e-6, 1.5, "0-d reciprocal")
    check(r["s_log"], np.log(0.75), 2 * ULP, what="0-d log")
    check(r["s_abs"], 0.75, 0, what="0-d abs")
    assert r["s_max"].shape == () and r["s_max"] == 0.75


# ------------------------------------------------------------------------------------------------
# communication budget (semi2k, deterministic counts; timing lives in bench/)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,max_bytes,max_rounds", [("accurate", 365, 29), ("poly", 240, 21), ("seg3", 105, 11)])
def test_sigmoid_cost_semi2k(mode, max_bytes, max_rounds):
    n = 4096
    v = rng.normal(0, 3, n)

    def prog(ctx, mpc):
        x = shared(ctx, mpc, v)
        ctx.comm.reset_stats()
        nl.sigmoid(x, mode=mode)
        return ctx.stats()

    st = run_mpc("semi2k", prog)["alice"]
    assert st["bytes_sent"] / n <= max_bytes
    assert st["rounds"] <= max_rounds


@pytest.mark.parametrize("frac_bits", [14, 22])
def test_other_frac_bits(frac_bits):
    f = frac_bits
    ulp = 2.0**-f
    m = np.exp(rng.uniform(np.log(2.0 ** -min(f, 18)), np.log(2.0 ** (62 - 2 * f) * 0.99), 400))
    xs = rng.normal(0, 6, 400)
    xe = np.linspace(-20, (61 - 2 * f) * np.log(2) - 0.01, 400)
    qq = lambda v: np.round(v * 2**f) / 2**f  # noqa: E731

    def prog(ctx, mpc):
        sm, sx, se = shared(ctx, mpc, m), shared(ctx, mpc, xs), shared(ctx, mpc, xe)
        return {
            "recip": nl.reciprocal(sm).reveal(),
            "log": nl.log(sm).reveal(),
            "sqrt": nl.sqrt(sm).reveal(),
            "sig": nl.sigmoid(sx).reveal(),
            "poly": nl.sigmoid(sx, mode="poly").reveal(),
            "exp": nl.exp(se).reveal(),
            "softmax": nl.softmax(sx.reshape(20, 20)).reveal(),
        }

    r = run_mpc("semi2k", prog, frac_bits=f)["alice"]
    mq, xq, eq = qq(m), qq(xs), qq(xe)
    rel = max(5e-6, 4 * ulp)
    check(r["recip"], 1 / mq, 2 * ulp, rel, "reciprocal")
    check(r["log"], np.log(mq), 2 * ulp, rel, "log")
    check(r["sqrt"], np.sqrt(mq), 2 * ulp, rel, "sqrt")
    check(r["sig"], expit(xq), 1.5e-5 + 3 * ulp, what="sigmoid")
    check(r["poly"], expit(xq), 7.5e-4 + 3 * ulp, what="sigmoid poly")
    check(r["exp"], np.exp(eq), 8 * ulp, max(2.5e-5, 16 * ulp), "exp")
    check(r["softmax"], np_softmax(xq.reshape(20, 20), -1), 2e-5 + 4 * ulp, what="softmax")
