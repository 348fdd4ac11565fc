"""Execution of a placed graph on the existing runtime (SPMD: every party runs the same ops).

Each value lives where placement put it: a public value is a numpy array at every party
(None at a semi2k dealer for values revealed to the compute parties), a private value a
numpy array at its owner (None elsewhere), a secret value a `SecretArray`. Public and
private operations are plain numpy at the parties that hold their inputs; secret
operations are the `SecretArray` operations and `jointml.mpc.functions`.

With `batch=True` (the round-batching of the compiler) ready operations are scheduled
together: local ones first, then all ready comparisons in one `msb` (`ltz_many`), all
ready secret products in one multiplication round (`mul_many`), all ready reveals to one
party in one opening (`reveal_many`); the order is a function of the graph only, so every
party issues the same kernels. `evaluate` runs the same graph on numpy alone (the
plaintext twin the tests compare against).

Security: that of the MPC device's protocol; a private value leaves its owner only
through a `share` (secret-sharing) or a `reveal` op of the program.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import DataError, ParameterError
from ..mpc import SecretArray, concatenate
from ..mpc import functions as F
from ..mpc.batched import ltz_many, mul_many, rescale_many, reveal_many
from ..runtime.collectives import broadcast, send_to
from .ir import SECRET, Graph, Op, Value

#: one garbled-circuit session per device (its base OTs run once, at its first comparison)
_YAO: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

__all__ = ["Executor", "evaluate", "NUMPY"]

_U = np.uint64


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


def _np_softmax(x: Any, axis: int) -> Any:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_dslice(x: Any, start: Any, size: int, axis: int) -> Any:
    s = int(start)
    return np.take(x, np.arange(s, s + size), axis=axis)


#: the plaintext implementation of every op (inputs, attrs) -> ndarray
NUMPY: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, **k: np.add(a, b),
    "sub": lambda a, b, **k: np.subtract(a, b),
    "mul": lambda a, b, **k: np.multiply(a, b),
    "div": lambda a, b, **k: np.divide(a, b),
    "neg": lambda a, **k: np.negative(a),
    "matmul": lambda a, b, **k: np.matmul(a, b),
    "lt": lambda a, b, **k: np.less(a, b).astype(np.int64),
    "gt": lambda a, b, **k: np.greater(a, b).astype(np.int64),
    "le": lambda a, b, **k: np.less_equal(a, b).astype(np.int64),
    "ge": lambda a, b, **k: np.greater_equal(a, b).astype(np.int64),
    "where": lambda c, a, b, **k: np.where(np.asarray(c).astype(bool), a, b),
    "sum": lambda a, axis=None, keepdims=False, **k: np.sum(a, axis=axis, keepdims=keepdims),
    "mean": lambda a, axis=None, keepdims=False, **k: np.mean(a, axis=axis, keepdims=keepdims),
    "getitem": lambda a, index, **k: np.asarray(a)[index],
    "dynamic_slice": lambda a, s, size, axis, **k: _np_dslice(a, s, size, axis),
    "reshape": lambda a, shape, **k: np.reshape(a, shape),
    "transpose": lambda a, axes, **k: np.transpose(a, axes),
    "concatenate": lambda *xs, axis, **k: np.concatenate(xs, axis=axis),
    "sigmoid": lambda a, **k: _sigmoid(a),
    "exp": lambda a, **k: np.exp(a),
    "log": lambda a, **k: np.log(a),
    "sqrt": lambda a, **k: np.sqrt(a),
    "reciprocal": lambda a, **k: 1.0 / np.asarray(a, dtype=np.float64),
    "relu": lambda a, **k: np.maximum(a, 0),
    "abs": lambda a, **k: np.abs(a),
    "softmax": lambda a, axis, **k: _np_softmax(a, axis),
}


def _sec_dslice(x: SecretArray, start: Any, size: int, axis: int) -> SecretArray:
    s = int(start)
    idx = (slice(None),) * (axis % x.ndim) + (slice(s, s + size),)
    return x[idx]


def _sec_concat(*xs: Any, axis: int, dev: Any) -> SecretArray:
    return concatenate([x if isinstance(x, SecretArray) else public_secret(dev, x) for x in xs], axis=axis)


#: the secret implementation of every op (operands: SecretArray or public ndarray)
SECRET_OPS: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, **k: a + b,
    "sub": lambda a, b, **k: a - b,
    "mul": lambda a, b, **k: a * b,
    "div": lambda a, b, **k: a / b,
    "neg": lambda a, **k: -a,
    "matmul": lambda a, b, **k: a @ b,
    "lt": lambda a, b, **k: a < b,
    "gt": lambda a, b, **k: a > b,
    "le": lambda a, b, **k: a <= b,
    "ge": lambda a, b, **k: a >= b,
    "where": lambda c, a, b, **k: F.where(c, a, b),
    "sum": lambda a, axis=None, keepdims=False, **k: a.sum(axis, keepdims),
    "mean": lambda a, axis=None, keepdims=False, **k: a.mean(axis, keepdims),
    "getitem": lambda a, index, **k: a[index],
    "dynamic_slice": lambda a, s, size, axis, **k: _sec_dslice(a, s, size, axis),
    "reshape": lambda a, shape, **k: a.reshape(shape),
    "transpose": lambda a, axes, **k: a.transpose(axes),
    "concatenate": lambda *xs, axis, dev, **k: _sec_concat(*xs, axis=axis, dev=dev),
    "sigmoid": lambda a, mode=None, **k: F.sigmoid(a, mode=mode or "accurate"),
    "exp": lambda a, **k: F.exp(a),
    "log": lambda a, **k: F.log(a),
    "sqrt": lambda a, **k: F.sqrt(a),
    "reciprocal": lambda a, **k: F.reciprocal(a),
    "relu": lambda a, **k: F.relu(a),
    "abs": lambda a, **k: F.abs(a),
    "softmax": lambda a, axis, **k: F.softmax(a, axis=axis),
}

#: secret ops that never communicate (linear or structural); anything else may
LOCAL_SECRET = frozenset({"add", "sub", "neg", "getitem", "dynamic_slice", "reshape", "transpose", "concatenate",
                          "sum", "const"})
_CMP = frozenset({"lt", "gt", "le", "ge"})


def public_secret(dev: Any, value: Any, fxp: bool | None = None) -> SecretArray:
    """A public array as a SecretArray of `dev` (zero shares plus the public value: free)."""
    v = np.asarray(value)
    as_fxp = v.dtype.kind == "f" if fxp is None else fxp
    zero = SecretArray(dev, dev.proto.map(lambda: np.zeros(v.shape, _U)), v.shape, dev.frac_bits if as_fxp else 0)
    return zero + (v if as_fxp else v.astype(np.int64))


class Executor:
    """Runs a placed graph at one party on `mpc` (an MpcDevice, or the cost model's probe)."""

    def __init__(self, mpc: Any, batch: bool = True, on_stage: Callable[[list[Op], Callable[[], None]], None] | None = None,
                 omniscient: bool = False):
        self.mpc = mpc
        self.me = mpc.ctx.me
        self.batch = batch
        #: the cost model's probe computes every party's part (on placeholders)
        self.omniscient = omniscient
        #: hook around every scheduled stage (the cost model labels kernels, the runner measures)
        self.on_stage = on_stage or (lambda ops, thunk: thunk())
        self.handles: dict[int, Any] = {}

    # -- entry --------------------------------------------------------------------------
    def run(self, g: Graph, args: Sequence[Any]) -> list[Any]:
        env: dict[int, Any] = {v.id: a for v, a in zip(g.inputs, args)}
        self._run_ops(g.ops, env)
        return [env[v.id] for v in g.outputs]

    def _run_ops(self, ops: list[Op], env: dict[int, Any]) -> None:
        if not self.batch:
            for o in ops:
                if o.op == "fori":
                    self._exec(o, env)
                else:
                    self.on_stage([o], lambda o=o: self._exec(o, env))  # type: ignore[misc]
            return
        pending = list(ops)
        height = _heights(ops)
        while pending:
            ready = [o for o in pending if all(v.id in env for v in o.ins)]
            local = [o for o in ready if not self.interactive(o)]
            if local:
                group = local
                self.on_stage(group, lambda g=group: self._exec_each(g, env))  # type: ignore[misc]
            else:
                # critical path first: the ready op with the longest chain of interactive ops
                # after it goes now, with every ready op it can share its rounds with
                first = max(ready, key=lambda o: height[id(o)])
                key = self.batch_key(first)
                group = [o for o in ready if key is not None and self.batch_key(o) == key] or [first]
                if first.op == "fori":  # its body's stages are the stages (not the loop as a whole)
                    self._exec(first, env)
                else:
                    self.on_stage(group, lambda g=group: self._exec_group(g, env))  # type: ignore[misc]
            done = {id(o) for o in group}
            pending = [o for o in pending if id(o) not in done]

    def _exec_each(self, ops: list[Op], env: dict[int, Any]) -> None:
        for o in ops:
            self._exec(o, env)

    # -- classification ---------------------------------------------------------------------
    @staticmethod
    def interactive(o: Op) -> bool:
        """Whether `o` may send messages (the scheduler runs every other ready op first)."""
        if o.op in ("fori", "reveal", "masked_setup", "masked_matmul", "paillier_matmul"):
            return True
        if o.op == "share":
            return True
        if o.outs[0].vis != SECRET:
            return False
        if o.op in LOCAL_SECRET:
            return o.impl == "truncate after"
        if o.op == "mul" and any(v.vis != SECRET and v.dtype == "i" for v in o.ins):
            return False
        return True

    @staticmethod
    def batch_key(o: Op) -> Any:
        if o.outs[0].vis == SECRET and o.op in _CMP:
            return "gcmp" if o.impl == "garbled" else "cmp"
        if o.op == "mul" and all(v.vis == SECRET for v in o.ins) and o.impl is None:
            return "mul"
        if o.op == "mul" and o.impl is None and o.outs[0].vis == SECRET:
            return "pmul"  # a secret times a public fraction: the truncations share one round
        if o.op == "reveal" and o.ins[0].vis == SECRET:
            return ("reveal", o.attrs.get("to"))
        if o.op == "share":
            return "share"  # independent inputs: each owner sends its own shares, in parallel
        if o.op == "masked_matmul" and o.impl == "private_masked":
            return "pmm"  # products with private matrices: one round for all (owners may differ)
        return None

    # -- groups -------------------------------------------------------------------------------
    def _exec_group(self, group: list[Op], env: dict[int, Any]) -> None:
        key = self.batch_key(group[0])
        if key == "share":  # one owner's sends back to back: every party waits at most once
            group = sorted(group, key=lambda o: str(o.ins[0].vis.owner if o.ins[0].vis else ""))
        if len(group) == 1 or key in (None, "share"):
            for o in group:
                self._exec(o, env)
        elif key == "cmp":
            diffs = []
            for o in group:
                a, b = (env[v.id] for v in o.ins)
                diffs.append(a - b if o.op in ("lt", "ge") else b - a)  # lt/ge: [a-b<0], gt/le: [b-a<0]
            for o, bit in zip(group, ltz_many([_as_secret(self.mpc, d) for d in diffs])):
                env[o.outs[0].id] = bit if o.op in ("lt", "gt") else 1 - bit
        elif key == "gcmp":
            self._garbled_compare(group, env)
        elif key == "pmm":
            from .lowering import run_private_many

            for o, r in zip(group, run_private_many(self, [[env[v.id] for v in o.ins] for o in group], group)):
                env[o.outs[0].id] = r
        elif key == "mul":
            for o, r in zip(group, mul_many([(env[o.ins[0].id], env[o.ins[1].id]) for o in group])):
                env[o.outs[0].id] = r
        elif key == "pmul":
            self._public_products(group, env)
        else:
            for o, r in zip(group, reveal_many([env[o.ins[0].id] for o in group], to=group[0].attrs.get("to"))):
                env[o.outs[0].id] = _unwrap(r)

    # -- one op --------------------------------------------------------------------------------
    def _exec(self, o: Op, env: dict[int, Any]) -> None:
        self._exec1(o, env)
        if self.omniscient:
            for v in o.outs:
                if env.get(v.id) is None:
                    env[v.id] = np.full(v.shape, 0.5) if v.dtype == "f" else np.ones(v.shape, np.int64)

    def _exec1(self, o: Op, env: dict[int, Any]) -> None:
        ins = [env[v.id] for v in o.ins]
        out = o.outs[0]
        if o.op == "const":
            env[out.id] = o.attrs["value"]
        elif o.op == "fori":
            self._loop(o, ins, env)
        elif o.op == "share":
            env[out.id] = self._share(o.ins[0], ins[0])
        elif o.op == "reveal":
            env[out.id] = self._reveal(o, ins[0])
        elif o.op in ("masked_setup", "masked_matmul"):
            env[out.id] = self._masked(o, ins)
        elif o.impl == "garbled":
            self._garbled_compare([o], env)
        elif o.op == "paillier_matmul":
            from .he_lowering import run_paillier

            env[out.id] = run_paillier(self, o, ins)
        elif out.vis == SECRET and o.impl in ("untruncated", "truncate after"):
            env[out.id] = self._deferred(o, ins)
        elif out.vis == SECRET:
            extra = {"dev": self.mpc} if o.op == "concatenate" else {}
            env[out.id] = SECRET_OPS[o.op](*ins, **o.attrs, **extra)
        elif out.vis is not None and out.vis.kind == "private" and out.vis.owner != self.me and not self.omniscient:
            env[out.id] = None
        elif any(x is None for x in ins):
            env[out.id] = None  # a public value this party does not hold (a dealer)
        else:
            env[out.id] = _cast(NUMPY[o.op](*ins, **o.attrs), out)

    def _public_products(self, group: list[Op], env: dict[int, Any]) -> None:
        """Secrets times public values: exact (integral factors) or at double scale, then one
        truncation for all (`rescale_many`), as `SecretArray.__mul__` does one by one."""
        raws: list[tuple[Op, SecretArray]] = []
        for o in group:
            a, b = (env[v.id] for v in o.ins)
            s, p = (a, b) if isinstance(a, SecretArray) else (b, a)
            p = np.asarray(p)
            integral = p.dtype.kind in "iub" or (p.dtype.kind == "f" and p.size > 0 and bool(np.all(np.mod(p, 1) == 0))
                                                  and bool(np.all(np.abs(p) < 2**52)))
            if integral or s.fxp == 0 and p.dtype.kind != "f":
                env[o.outs[0].id] = s * p
                continue
            share = self.mpc.proto.mul_public(s.share, self.mpc.fxp.encode(p))
            raws.append((o, SecretArray(self.mpc, share, o.outs[0].shape, s.fxp + self.mpc.frac_bits)))
        for (o, _), r in zip(raws, rescale_many([r for _, r in raws])):
            env[o.outs[0].id] = r

    def _garbled_compare(self, group: list[Op], env: dict[int, Any]) -> None:
        """Comparisons by one garbled circuit over all their elements (`secret_msb` of a - b)."""
        diffs = []
        for o in group:
            a, b = (_as_secret(self.mpc, env[v.id]) for v in o.ins)
            d = a - b if o.op in ("lt", "ge") else b - a
            diffs.append(d.reshape((int(np.prod(d.shape, dtype=np.int64)),)))
        flat = diffs[0] if len(diffs) == 1 else concatenate(diffs, axis=0)
        n = flat.shape[0]
        if self.omniscient:
            self.mpc.proto.gc_msb(n)
            bits = SecretArray(self.mpc, np.zeros(n, np.uint64), (n,), 0)
        else:
            from ..mpc.protocols.garbled import YaoSession, secret_msb

            if self.mpc not in _YAO:  # every party reaches this point in the same order (SPMD)
                _YAO[self.mpc] = YaoSession(self.mpc.ctx, self.mpc.parties[0], self.mpc.parties[1])
            bits = secret_msb(flat, _YAO[self.mpc])
        lo = 0
        for o, d in zip(group, diffs):
            k = d.shape[0]
            bit = bits[lo : lo + k].reshape(o.outs[0].shape)
            env[o.outs[0].id] = bit if o.op in ("lt", "gt") else 1 - bit
            lo += k

    def _deferred(self, o: Op, ins: list[Any]) -> SecretArray:
        """A product kept at double scale, or the sum of such products truncated once."""
        if o.impl == "untruncated":
            a, b = ins
            share = self.mpc.proto.mul(a.share, b.share, a.shape, b.shape)
            return SecretArray(self.mpc, share, o.outs[0].shape, a.fxp + b.fxp)
        return rescale_many([SECRET_OPS["sum"](ins[0], **o.attrs)])[0]

    def _loop(self, o: Op, ins: list[Any], env: dict[int, Any]) -> None:
        body = o.body
        assert body is not None
        n = o.attrs["n_carry"]
        carries, caps = ins[:n], ins[n:]
        for i in range(o.attrs["lo"], o.attrs["hi"]):
            carries = self.run(body, [np.int64(i), *carries, *caps])
        for v, c in zip(o.outs, carries):
            env[v.id] = c

    def _share(self, v: Value, x: Any) -> SecretArray:
        if isinstance(x, SecretArray):
            return x
        if v.vis is None or v.vis.kind == "public":
            return public_secret(self.mpc, x, v.dtype == "f")
        owner = v.vis.owner
        fxp = v.dtype == "f"
        enc = None
        if self.me == owner or self.omniscient:
            a = np.asarray(x, dtype=np.float64 if fxp else np.int64)
            if a.shape != v.shape:
                raise DataError(f"input {v.name or v!r}: shape {a.shape}, declared {v.shape}", party=owner,
                                field="shape")
            enc = self.mpc.fxp.encode(a) if fxp else a.view(_U)
        share = self.mpc.proto.share_in(owner, enc, v.shape)
        return SecretArray(self.mpc, share, v.shape, self.mpc.frac_bits if fxp else 0)

    def _reveal(self, o: Op, x: Any) -> Any:
        to = o.attrs.get("to")
        src = o.ins[0].vis
        if isinstance(x, SecretArray):
            return _unwrap(x.reveal(to))
        if src is None or src.kind == "public" or (src.kind == "private" and src.owner == to):
            return x
        v = o.ins[0]
        if self.omniscient:  # the probe: a plaintext array from its owner to `to` (or to all others)
            recv = [to] if to is not None else [p for p in self.mpc.all_parties if p != src.owner]
            self.mpc.proto.record_send(str(src.owner), recv, self.mpc.transfer_cost(v.shape, len(recv)))
            return x
        ctx = self.mpc.ctx
        owner = str(src.owner)
        dt = np.float64 if v.dtype == "f" else np.int64
        mine = [np.asarray(x, dtype=dt)] if self.me == src.owner else ()
        if to is None:  # a private value published by its owner
            return broadcast(ctx, owner, arrays=mine, name="dslrv", dtypes=[dt], shapes=[v.shape]).arrays[0]
        got = send_to(ctx, owner, to, arrays=mine, name="dslrv", dtypes=[dt], shapes=[v.shape])
        return got.arrays[0] if self.me == to and got is not None else None

    def _masked(self, o: Op, ins: list[Any]) -> Any:
        from .lowering import run_masked

        return run_masked(self, o, ins)


def _heights(ops: list[Op]) -> dict[int, int]:
    """Per op: the number of interactive ops on the longest chain from it to the end (itself
    included): the scheduler's priority."""
    consumers: dict[int, list[Op]] = {}
    for o in ops:
        for v in o.ins:
            consumers.setdefault(v.id, []).append(o)
    h: dict[int, int] = {}
    for o in reversed(ops):
        after = [h[id(c)] for v in o.outs for c in consumers.get(v.id, [])]
        h[id(o)] = int(Executor.interactive(o)) + max(after, default=0)
    return h


def _as_secret(dev: Any, x: Any) -> SecretArray:
    return x if isinstance(x, SecretArray) else public_secret(dev, x)


def _unwrap(r: Any) -> Any:
    from ..runtime.device import PartyObject

    if isinstance(r, PartyObject):
        return r.value if r.is_local else None
    return r


def _cast(a: Any, v: Value) -> Any:
    a = np.asarray(a)
    return a.astype(np.float64) if v.dtype == "f" else a.astype(np.int64)


def evaluate(g: Graph, args: Sequence[Any]) -> list[Any]:
    """The plaintext twin: every op of `g` on numpy (reveal and share are identities).

    >>> from jointml import dsl
    >>> @dsl.function(x=dsl.secret((3,)))
    ... def f(x):
    ...     return dsl.where(x > 0, x * 2.0, 0.0).reveal()
    >>> evaluate(f.graph, [np.array([1.0, -1.0, 2.0])])[0].tolist()
    [2.0, 0.0, 4.0]
    """
    env: dict[int, Any] = {}
    for v, a in zip(g.inputs, args):
        env[v.id] = _cast(a, v)
    for o in g.ops:
        ins = [env[v.id] for v in o.ins]
        if o.op == "const":
            env[o.outs[0].id] = o.attrs["value"]
        elif o.op in ("share", "reveal"):
            env[o.outs[0].id] = ins[0]
        elif o.op == "fori":
            assert o.body is not None
            n = o.attrs["n_carry"]
            carries = ins[:n]
            for i in range(o.attrs["lo"], o.attrs["hi"]):
                carries = evaluate(o.body, [np.int64(i), *carries, *ins[n:]])
            for v, c in zip(o.outs, carries):
                env[v.id] = c
        elif o.op in NUMPY:
            env[o.outs[0].id] = _cast(NUMPY[o.op](*ins, **o.attrs), o.outs[0])
        else:
            raise ParameterError(f"evaluate: op '{o.op}' has no plaintext meaning (run it before lowering)",
                                 field="op")
    return [env[v.id] for v in g.outputs]
