"""The cost model: the protocols' declared kernel costs, under a network profile.

Predictions come from running the compiled program once on a *probe*: a stand-in protocol
that executes no cryptography and sends nothing, but records every kernel call the real
execution makes (the same executor, the same `jointml.mpc.functions`, the same batching)
and prices it with the real protocol's `Protocol.static_cost` (bytes of all parties,
rounds). So predicted bytes and rounds are those of the run, kernel by kernel. A
`Profile` turns them into seconds: rounds x RTT + bytes / bandwidth (+ a measured local
work per byte when calibrated on a run of this machine).

Security: the probe sees no data (inputs are filled with placeholders); the model reads
only public shapes.

>>> from jointml import dsl
>>> @dsl.function(x=dsl.private("alice", (100,)), y=dsl.private("bob", (100,)))
... def f(x, y):
...     return (x * y).sum().reveal()
>>> p = predict(f.compile(protocol="semi2k"), "semi2k", compute=["alice", "bob"])
>>> p.total.bytes, p.total.rounds
(4048, 3)
>>> round(LAN.seconds(p.total) * 1e3, 3), round(WAN.seconds(p.total) * 1e3, 3)
(0.615, 60.336)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import ParameterError, ProtocolError
from ..core.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from ..mpc import SecretArray
from ..mpc.protocols import Aby3, Protocol, Semi2k
from ..mpc.protocols.base import FREE, Cost
from ..mpc.shapes import broadcast_shape, matmul_shape, rows_shape, size
from .ir import Graph, Op, op_label

__all__ = ["Profile", "LAN", "WAN", "profile", "Prediction", "predict", "protocol_class"]

_U = np.uint64


@dataclass(frozen=True)
class Profile:
    """A network: round-trip time (s), bandwidth (bit/s) shared by all traffic, and the local
    work per byte of traffic (s/B, 0: ignored; see `calibrated`): the kernels' local work (ring
    products, masking, encoding) grows with the data they exchange."""

    name: str
    rtt: float
    bandwidth: float
    compute: float = 0.0

    @property
    def byte_seconds(self) -> float:
        """Seconds per byte of traffic: the wire, and the local work that comes with it."""
        return 8.0 / self.bandwidth + self.compute

    def seconds(self, c: Cost) -> float:
        """Predicted time of traffic `c`."""
        return c.rounds * self.rtt + c.bytes * self.byte_seconds

    def calibrated(self, c: Cost, measured_seconds: float) -> Profile:
        """This profile with the local work per byte that makes a program of traffic `c` take
        `measured_seconds` (a run on this machine); other programs are then predicted with it.

        >>> p = LAN.calibrated(Cost(1_000_000, 10), 0.012)
        >>> round(p.seconds(Cost(1_000_000, 10)), 6), round(p.compute * 1e9, 1)
        (0.012, 9.2)
        """
        base = Profile(self.name, self.rtt, self.bandwidth).seconds(c)  # the network alone
        extra = max(measured_seconds - base, 0.0)
        return Profile(self.name + "+calibrated", self.rtt, self.bandwidth, extra / max(c.bytes, 1))


#: local work per byte of traffic (s/B) of the built-in profiles: the per-byte cost `jointml
#: bench dsl --calibrate` fits on a 2-core x86 machine (3-6 ns; `Calibration.byte`). Without
#: it LAN and WAN would have the same bandwidth-delay product (2 Mbit) and so make every
#: choice alike; with it a byte costs 4.6x a LAN round's worth less than on the WAN.
LOCAL_WORK = 3e-9

LAN = Profile("lan", 0.2e-3, 10e9, LOCAL_WORK)
WAN = Profile("wan", 20e-3, 100e6, LOCAL_WORK)


def profile(p: Any) -> Profile:
    """A Profile from a name ("lan", "wan"), a Profile, or a dict {rtt, bandwidth[, compute]}.

    >>> profile("wan").rtt, profile({"rtt": 0.05, "bandwidth": 1e9}).name
    (0.02, 'custom')
    """
    if isinstance(p, Profile):
        return p
    if isinstance(p, str) and p.lower() in ("lan", "wan"):
        return LAN if p.lower() == "lan" else WAN
    if isinstance(p, dict):
        return Profile(str(p.get("name", "custom")), float(p["rtt"]), float(p["bandwidth"]),
                       float(p.get("compute", 0.0)))
    raise ParameterError(f"unknown network profile {p!r} (use 'lan', 'wan' or {{'rtt':, 'bandwidth':}})",
                         field="profile")


def protocol_class(name: str) -> type[Protocol]:
    if name not in ("semi2k", "aby3"):
        raise ParameterError(f"no cost model for protocol {name!r}", field="protocol")
    return Semi2k if name == "semi2k" else Aby3


@dataclass
class Prediction:
    """Per scheduled stage: (op labels, Cost); `total` the sum (stages run one after another)."""

    stages: list[tuple[list[str], Cost]] = field(default_factory=list)
    kernels: list[tuple[str, str, Cost]] = field(default_factory=list)
    #: per stage of `stages`: local work by kernel family (`work_family`: elements, or
    #: multiply-adds for matrix products), what `calibrate.Calibration` prices
    work: list[dict[str, float]] = field(default_factory=list)
    #: every scheduled stage, those without traffic included (each has a fixed overhead)
    n_stages: int = 0
    #: message latencies before the first stage: the owners' input-shape verdicts, announced
    #: one owner after the other (`Function.run`; not counted in the stages' traffic)
    setup_rounds: int = 0
    #: one-way message delays on the critical path beyond the counted rounds (a garbled
    #: circuit's size announcement and OT message: counted as one round, waited for as two)
    extra_delays: int = 0

    @property
    def total(self) -> Cost:
        t = FREE
        for _, c in self.stages:
            t = t + c
        return t

    def by_op(self) -> dict[str, Cost]:
        """Cost per op label (a batched stage's cost is split evenly in bytes, rounds shared)."""
        out: dict[str, Cost] = {}
        for labels, c in self.stages:
            for lab in labels:
                prev = out.get(lab, FREE)
                out[lab] = Cost(prev.bytes + c.bytes // max(len(labels), 1), prev.rounds + c.rounds,
                                prev.dealer_bytes + c.dealer_bytes // max(len(labels), 1))
        return out


#: kernel -> the families of local work it does (a fused product-truncation does both)
_FAMILIES = {"mul": ("mul",), "square": ("mul",), "matmul": ("matmul",), "masked_matmul": ("matmul",),
             "private_masked_matmul": ("matmul",), "trunc": ("trunc",), "trunc_product": ("trunc",),
             "mul_trunc": ("mul", "trunc"), "square_trunc": ("mul", "trunc"), "matmul_trunc": ("matmul", "trunc"),
             "msb": ("cmp",), "eqz": ("cmp",), "b2a_bits": ("b2a",), "b_and": ("b_and",)}


def work_units(op: str, shapes: list[tuple[int, ...]]) -> dict[str, float]:
    """{family: units} of kernel `op` on operands `shapes`: multiply-adds for the matrix part of
    a matrix product, elements of the result otherwise (sharing and opening: family `io`).

    >>> work_units("matmul_trunc", [(4, 3), (3,)])
    {'matmul': 12.0, 'trunc': 4.0}
    """
    fams = _FAMILIES.get(op, ("io",))
    if "matmul" in op and len(shapes) >= 2:
        out = matmul_shape(shapes[0], shapes[1])
        inner = shapes[0][-1] if len(shapes[0]) else 1
        return {f: float(size(out) * (inner if f == "matmul" else 1)) for f in fams}
    n = size(broadcast_shape(*shapes)) if len(shapes) >= 2 and op in ("mul", "mul_trunc") else (
        size(shapes[0]) if shapes else 0)
    return {f: float(n) for f in fams}


class _Ctx:
    def __init__(self, me: str, parties: list[str]):
        self.me = me
        self.parties = parties

    def party(self, name: str) -> Any:
        return _PartyStub(name, self)


class _PartyStub:
    def __init__(self, name: str, ctx: _Ctx):
        self.name = name
        self.ctx = ctx


class _Everyone:
    def __contains__(self, x: object) -> bool:
        return True


#: (rounds this party counts when the kernel runs alone, whether it sends first, whether it sends last)
Pattern = tuple[int, bool, bool]


class ProbeProtocol(Protocol):
    """Records kernel calls priced by a real protocol class; computes on zero shares.

    Besides the kernels' `Cost`, it keeps each party's round counter the way the link layer
    counts (`Communicator`: a round starts when a party sends after having received), from
    each kernel's message pattern per party: a party that only sends in a kernel (a semi2k
    dealer, the senders of a one-way transfer) folds its next send into the same round."""

    def __init__(self, real: type[Protocol], compute: list[str], parties: list[str], dealer: str | None = None):
        self.real = real
        self.name = real.name  # type: ignore[misc]
        self.capabilities = real.capabilities  # type: ignore[misc]
        self.compute = compute
        self.members = list(parties)
        self.dealer = dealer
        self.me = compute[0]
        self.is_compute = True
        self.log: list[tuple[str, Cost]] = []
        #: local work of each kernel of `log`: {family: units} (`work_family`)
        self.units: list[dict[str, float]] = []
        self.extra_delays = 0
        #: aby3's rotating role counter (`Aby3._role`): which party sends without receiving
        #: in a truncation, a comparison's input round or its bit conversion
        self.role = 0
        self.ctx = _Ctx(self.me, parties)  # type: ignore[assignment]
        self.reset_counters()

    def reset_counters(self) -> None:
        """A fresh stage: every party's counter at 0 and nothing sent yet (as `ctx.reset_stats()`)."""
        self.last_send: dict[str, bool] = {}
        self.counts: dict[str, int] = {}

    @property
    def stage_rounds(self) -> int:
        return max(self.counts.values(), default=0)

    def _count(self, pattern: dict[str, Pattern] | list[dict[str, Pattern]]) -> None:
        for step in pattern if isinstance(pattern, list) else [pattern]:
            for p, (iso, first, last) in step.items():
                fold = 1 if first and iso > 0 and self.last_send.get(p, False) else 0
                self.counts[p] = self.counts.get(p, 0) + iso - fold
                self.last_send[p] = last

    def _pattern(self, op: str, c: Cost, owner: str | None, to: Any) -> dict[str, Pattern] | list[dict[str, Pattern]]:
        """Who sends and receives in kernel `op` (see the class docstring)."""
        comp = self.compute
        if self.real.name == "aby3":
            steps = _aby3_steps(op, comp, self, owner, to)
            if steps is not None:
                return steps
        if c.rounds == 0 and c.bytes == 0:
            return {}
        one_way = {"share_in": owner, "private_masked_setup": owner, "send": owner}
        if op in one_way:
            receivers = to if to is not None else [p for p in comp if p != owner]
            pat = {p: (0, False, False) for p in receivers if p != owner}
            pat[str(owner)] = (1, True, True)
            return pat
        if op == "reveal" and to is not None:
            pat = {p: (1, True, True) for p in comp if p != to}
            pat[to] = (0, False, False)
            return pat
        if op == "private_masked_matmul" and self.real.name == "semi2k":
            pat = {p: (1, True, True) for p in comp if p != owner}
            pat[str(owner)] = (0, False, False)
        else:
            pat = {p: (c.rounds, True, False) for p in comp}
        if self.dealer is not None and c.dealer_bytes:
            pat[self.dealer] = (1, True, True)
            # the dealer's corrections go to the last compute party, which receives them before
            # its first send of the kernel: that send always starts a round
            last = comp[-1]
            if last in pat:
                pat[last] = (pat[last][0], False, pat[last][2])
        return pat

    def _rec(self, op: str, *shapes: Any, owner: str | None = None, to: Any = None, **params: Any) -> None:
        c = self.real.static_cost(op, *[tuple(s) for s in shapes], n_compute=len(self.compute), **params)
        self.log.append((op, c))
        self.units.append(work_units(op, [tuple(s) for s in shapes]))
        self._count(self._pattern(op, c, owner, to))

    def record_send(self, owner: str, receivers: list[str], c: Cost) -> None:
        """A plaintext array sent by `owner` (a reveal of a private value)."""
        self.log.append(("send", c))
        self.units.append({"io": float(c.bytes // 8)})
        self._count(self._pattern("send", c, owner, receivers))

    def gc_msb(self, n: int) -> None:
        """A garbled-circuit sign bit of n elements (`garbled.secret_msb`) between the first
        compute party (garbler) and the second (evaluator): the garbler announces the size,
        then per chunk of `CHUNK` elements receives the evaluator's OT message and replies."""
        from ..mpc.protocols.garbled import CHUNK, Garbled

        c = Garbled.static_cost("msb", (n,))
        chunks = max(-(-n // CHUNK), 1)
        self.log.append(("gc_msb", Cost(c.bytes, 1 + chunks)))
        self.units.append({"gc": float(n)})
        g, e = self.compute[0], self.compute[1]
        self._count({g: (1 + chunks, True, True), e: (chunks, False, False)})
        self.extra_delays += chunks  # per chunk: the OT message, then the tables (1 + 2 chunks delays)

    def record_paillier(self, m: int, k: int, owner: str, holder: str, c: Cost) -> None:
        """A Paillier matrix-vector product (`he_lowering`): the holder sends k ciphertexts,
        the owner replies with m (each party: one round)."""
        self.log.append(("paillier_matmul", c))
        self.units.append({"he": float(m * k)})
        self._count({holder: (1, True, False), owner: (1, False, True)})

    @classmethod
    def static_cost(cls, op: str, *shapes: Any, n_compute: int | None = None, **params: Any) -> Cost:
        raise ParameterError("the probe has no costs of its own", field="op")

    def export_share(self, share: Any) -> list[Any]:
        return [share]

    def import_share(self, arrays: Sequence[Any], shape: Any) -> Any:
        return np.asarray(arrays[0])

    def map(self, fn: Callable[..., Any], *shares: Any) -> Any:
        return np.asarray(fn(*shares))

    def share_in(self, owner: str, value: Any, shape: Any, dtype: Any = _U, boolean: bool = False) -> Any:
        outsider = owner not in self.compute
        to = [self.compute[-1]] if outsider and self.real.name == "semi2k" else None
        self._rec("share_in", shape, outsider=outsider, itemsize=np.dtype(dtype).itemsize, owner=owner, to=to)
        return np.zeros(tuple(shape), dtype)

    def reveal(self, x: Any, shape: Any, to: str | None = None, boolean: bool = False, dtype: Any = _U) -> Any:
        kind = "all" if to is None else ("member" if to in self.compute else "outsider")
        c = self.real.static_cost("reveal", np.shape(x), n_compute=len(self.compute), to=kind,
                                  itemsize=np.dtype(dtype).itemsize)
        self.log.append(("reveal", c))
        self.units.append({"io": float(size(np.shape(x)))})
        self._count(self._pattern("reveal", c, None, to))
        return np.zeros(np.shape(x), dtype)

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def sub(self, a: Any, b: Any) -> Any:
        return a - b

    def neg(self, a: Any) -> Any:
        return np.zeros_like(a)

    def add_public(self, a: Any, c: Any) -> Any:
        return a + np.zeros(np.shape(c), _U)

    def mul_public(self, a: Any, c: Any) -> Any:
        return a * np.zeros(np.shape(c), _U)

    def mul(self, a: Any, b: Any, shape_a: Any, shape_b: Any) -> Any:
        self._rec("mul", shape_a, shape_b)
        return np.zeros(broadcast_shape(tuple(shape_a), tuple(shape_b)), _U)

    def square(self, a: Any, shape: Any) -> Any:
        self._rec("square", shape)
        return np.zeros(tuple(shape), _U)

    def matmul(self, a: Any, b: Any, shape_a: Any, shape_b: Any) -> Any:
        self._rec("matmul", shape_a, shape_b)
        return np.zeros(matmul_shape(tuple(shape_a), tuple(shape_b)), _U)

    def trunc(self, a: Any, bits: int, shape: Any) -> Any:
        self._rec("trunc", shape, bits=bits)
        return np.zeros(tuple(shape), _U)

    def trunc_product(self, a: Any, bits: int, shape: Any) -> Any:
        try:  # a protocol without a cheaper product truncation prices it as `trunc`
            self.real.static_cost("trunc_product", tuple(shape), n_compute=len(self.compute), bits=bits)
        except ProtocolError:
            return self.trunc(a, bits, shape)
        self._rec("trunc_product", shape, bits=bits)
        return np.zeros(tuple(shape), _U)

    def mul_trunc(self, a: Any, b: Any, shape_a: Any, shape_b: Any, bits: int) -> Any:
        if not self.supports("mul_trunc"):
            return super().mul_trunc(a, b, shape_a, shape_b, bits)
        self._rec("mul_trunc", shape_a, shape_b, bits=bits)
        return np.zeros(broadcast_shape(tuple(shape_a), tuple(shape_b)), _U)

    def square_trunc(self, a: Any, shape: Any, bits: int) -> Any:
        if not self.supports("square_trunc"):
            return super().square_trunc(a, shape, bits)
        self._rec("square_trunc", shape, bits=bits)
        return np.zeros(tuple(shape), _U)

    def matmul_trunc(self, a: Any, b: Any, shape_a: Any, shape_b: Any, bits: int) -> Any:
        if not self.supports("matmul_trunc"):
            return super().matmul_trunc(a, b, shape_a, shape_b, bits)
        self._rec("matmul_trunc", shape_a, shape_b, bits=bits)
        return np.zeros(matmul_shape(tuple(shape_a), tuple(shape_b)), _U)

    def b_xor(self, a: Any, b: Any) -> Any:
        return a ^ b

    def b_xor_public(self, a: Any, c: Any) -> Any:
        return a

    def b_and_public(self, a: Any, c: Any) -> Any:
        return a

    def b_and(self, pairs: Any, shapes: Any, dtypes: Any) -> list[Any]:
        for s, dt in zip(shapes, dtypes):
            self._rec("b_and", s, itemsize=np.dtype(dt).itemsize)
        return [np.zeros(tuple(s), dt) for s, dt in zip(shapes, dtypes)]

    def msb(self, a: Any, shape: Any) -> Any:
        self._rec("msb", shape)
        return np.zeros(tuple(shape), _U)

    def eqz(self, a: Any, shape: Any) -> Any:
        self._rec("eqz", shape)
        return np.zeros(tuple(shape), _U)

    def b2a_bits(self, b: Any, shape: Any) -> Any:
        self._rec("b2a_bits", shape)
        return np.zeros(tuple(shape), _U)

    def masked_setup(self, x: Any, shape: Any) -> Any:
        self._rec("masked_setup", shape)
        return _Handle(tuple(shape))

    def private_masked_setup(self, owner: str, x: Any, shape: Any) -> Any:
        self._rec("private_masked_setup", shape, owner=owner)
        return _Handle(tuple(shape), owner)

    def private_masked_matmul_many(self, items: Sequence[tuple[Any, Any, Any, Any, bool]]) -> list[Any]:
        return [self.private_masked_matmul(*it) for it in items]

    def masked_matmul(self, handle: Any, rows: Any, y: Any, shape_y: Any, transpose: bool = False) -> Any:
        return self._mm("masked_matmul", handle, rows, shape_y, transpose)

    def private_masked_matmul(self, handle: Any, rows: Any, y: Any, shape_y: Any, transpose: bool = False) -> Any:
        return self._mm("private_masked_matmul", handle, rows, shape_y, transpose)

    def _mm(self, op: str, handle: Any, rows: Any, shape_y: Any, transpose: bool) -> Any:
        sub = rows_shape(handle.shape, rows)
        if transpose:
            sub = sub[::-1]
        self._rec(op, sub, shape_y, owner=getattr(handle, "owner", None))
        return np.zeros(matmul_shape(sub, tuple(shape_y)), _U)


def _aby3_steps(op: str, comp: list[str], probe: ProbeProtocol, owner: str | None,
                to: Any) -> list[dict[str, Pattern]] | None:
    """aby3's message pattern of kernel `op`, step by step, per party (None: the generic one).

    The kernels with a rotating asymmetric role (`Aby3._role`) advance the probe's role
    counter exactly as the protocol does; the counts per party then follow the link layer's
    rule. The stage's rounds (the maximum over parties) do not depend on where the counter
    starts: every kernel of a stage rotates with it."""
    n = len(comp)

    def role() -> int:
        r = probe.role % n
        probe.role += 1
        return r

    def sym(k: int) -> dict[str, Pattern]:  # every party sends, then receives (a reshare)
        return {p: (k, True, False) for p in comp}

    def sender(i: int, others_send: bool) -> dict[str, Pattern]:
        """P_i only sends; the others send too (then receive) or only receive."""
        pat = {p: ((1, True, False) if others_send else (0, False, False)) for p in comp}
        pat[comp[i]] = (1, True, True)
        return pat

    if op in ("mul", "square", "b_and"):
        return [sym(1)]
    if op in ("matmul", "masked_matmul", "private_masked_matmul"):
        role()  # the light party of the local product
        return [sym(1)]
    if op in ("trunc", "mul_trunc", "square_trunc", "matmul_trunc"):
        if op == "matmul_trunc":
            role()
        d = role()  # the truncation's helper D only sends; A and B exchange twice
        pat = sym(2)
        pat[comp[d]] = (1, True, True)
        return [pat]
    if op in ("msb", "eqz"):
        e = role()
        first = sender(e, others_send=op == "msb")  # msb: the others send their product parts too
        return [first, sym(6), sender(role(), True)]
    if op == "b2a_bits":
        return [sender(role(), True)]
    if op == "reveal" and to is not None and to in comp:
        t = comp.index(to)
        return [{comp[(t + 1) % n]: (1, True, True), to: (0, False, False)}]
    if op == "reveal" and to is not None:
        return [{comp[0]: (1, True, True), comp[1]: (1, True, True), str(to): (0, False, False)}]
    return None


class _Handle:
    def __init__(self, shape: tuple[int, ...], owner: str | None = None):
        self.shape = shape
        self.owner = owner


class ProbeDevice:
    """An MpcDevice look-alike around a `ProbeProtocol` (what `SecretArray` and the functions need)."""

    is_probe = True

    def __init__(self, protocol: str, compute: list[str], parties: list[str], frac_bits: int = DEFAULT_FRAC_BITS,
                 dealer: str | None = None):
        self.proto = ProbeProtocol(protocol_class(protocol), compute, parties, dealer)
        self.protocol_name = protocol
        self.parties = compute
        self.members = _Everyone()
        self.frac_bits = frac_bits
        self.fxp = FixedPoint(frac_bits)
        self.ctx = self.proto.ctx
        self.all_parties = parties

    def transfer_cost(self, shape: Any, receivers: int, itemsize: int = 8) -> Cost:
        """A plaintext array sent by its owner to `receivers` parties (a reveal of a private value)."""
        return Cost(receivers * itemsize * size(tuple(shape)), 1)


def _default_parties(protocol: str, n_compute: int | None, g: Graph | None = None) -> tuple[list[str], list[str]]:
    """Compute parties when none are given: the owners of the program's private values (they
    usually compute), completed with placeholders to the protocol's size; semi2k adds a dealer."""
    n = n_compute or (3 if protocol == "aby3" else 2)
    owners: list[str] = []
    for o in (g.walk() if g is not None else []):
        for v in o.ins + o.outs:
            if v.vis is not None and v.vis.kind == "private" and v.vis.owner not in owners:
                owners.append(str(v.vis.owner))
    for v in (g.inputs if g is not None else []):
        if v.vis is not None and v.vis.kind == "private" and v.vis.owner not in owners:
            owners.append(str(v.vis.owner))
    compute = owners[:n] + [f"p{i}" for i in range(max(n - len(owners), 0))]
    return compute, compute + (["dealer"] if protocol == "semi2k" else [])


def _placeholder(dev: ProbeDevice, vis: Any, shape: tuple[int, ...], dtype: str) -> Any:
    if vis.kind == "secret":
        return SecretArray(dev, np.zeros(shape, _U), shape, dev.frac_bits if dtype == "f" else 0)  # type: ignore[arg-type]
    # 0.5: a non-integral placeholder, so products with it take the fixed-point path (an
    # integral public float would skip a truncation; the prediction is then an upper bound)
    return np.full(shape, 0.5) if dtype == "f" else np.ones(shape, np.int64)


def predict(prog: Any, protocol: str, compute: Sequence[str] | None = None, parties: Sequence[str] | None = None,
            frac_bits: int = DEFAULT_FRAC_BITS) -> Prediction:
    """Run `prog` (a compiled `Program`, or a placed `Graph`) on the probe; see the module docstring.

    `compute` / `parties`: the device's compute parties and all parties of the job (they decide
    which reveals go to outsiders and which inputs come from outside the device)."""
    from .execute import Executor

    g: Graph = prog.graph if hasattr(prog, "graph") else prog
    batch = getattr(prog, "batch", True)
    dc, dp = _default_parties(protocol, len(compute) if compute else None, g)
    comp = list(compute) if compute else dc
    allp = list(parties) if parties else (comp + [p for p in dp if p not in dc])
    dealer = next((p for p in reversed(allp) if p not in comp), None) if protocol == "semi2k" else None
    dev = ProbeDevice(protocol, comp, allp, frac_bits, dealer)
    names = g.names()
    pred = Prediction()

    def on_stage(ops: list[Op], thunk: Callable[[], None]) -> None:
        start = len(dev.proto.log)
        dev.proto.reset_counters()  # as the run's report counts each stage alone
        thunk()
        pred.n_stages += 1
        new = dev.proto.log[start:]
        if not new:
            return
        work: dict[str, float] = {}
        for u in dev.proto.units[start:]:
            for k, v in u.items():
                work[k] = work.get(k, 0.0) + v
        pred.work.append(work)
        labels = [op_label(o, names) for o in ops]
        c = FREE
        for kname, kc in new:
            c = c + kc
            pred.kernels.append((",".join(labels), kname, kc))
        pred.stages.append((labels, Cost(c.bytes, dev.proto.stage_rounds, c.dealer_bytes)))

    ex = Executor(dev, batch=batch, on_stage=on_stage, omniscient=True)
    ex.run(g, [_placeholder(dev, v.vis, v.shape, v.dtype) for v in g.inputs])
    from .function import _crosses_parties

    pred.extra_delays = dev.proto.extra_delays
    if _crosses_parties(g):
        pred.setup_rounds = len({v.vis.owner for v in g.inputs if v.vis is not None and v.vis.kind == "private"})
    return pred


