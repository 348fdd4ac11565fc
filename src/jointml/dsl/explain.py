"""`explain()`: what the compiler chose for each operation, what it would cost, and why.

One line per operation that costs traffic (loop bodies indented, with their trip count):
the implementation, the runner-up with its estimated cost where there was a choice, why
(the round-trip time at which the choice would flip under the profile's bandwidth), the
predicted bytes and rounds (all parties, `jointml.dsl.cost`), and after a run the measured
ones beside them (from the parties' `RunReport`s, i.e. the link counters). Operations
batched into one stage share its rounds (`batch k`).

Security: the explanation holds public shapes and costs only.

>>> from jointml import dsl
>>> @dsl.function(x=dsl.private("alice", (80,)), y=dsl.private("bob", (80,)))
... def f(x, y):
...     s = x + y
...     return ((s > 0.0) + (s < 1.0)).reveal()
>>> print(f.explain(protocol="semi2k"))
f on semi2k (2 compute parties), profile lan: rtt 0.2 ms, 10 Gbit/s, local work 3 ns/B
op                    impl                          pred bytes  rounds  note
%2 share              share_in by alice             0           0
%3 share              share_in by bob               0           0
%6 gt                 comparison (msb, batch 2)     6740        6       runner-up garbled (whole program): 1312000 B, ...
%8 lt                 comparison (msb, batch 2)     6740        6       runner-up garbled (whole program): 1312000 B, ...
%10 reveal            open to all                   1280        1
total                                               14760       7       predicted 1.456 ms
>>> print(f.explain(protocol="semi2k", profile="wan").splitlines()[4].split("; ")[1])
msb while RTT is below 28.918 ms at this bandwidth and local work, garbled above
"""

from __future__ import annotations

from typing import Any, Sequence

from ..mpc.protocols.base import Cost
from .cost import Profile, predict
from .cost import profile as as_profile
from .function import combine
from .ir import PUBLIC, Graph, Op, op_label

__all__ = ["explain", "IMPL_NAMES"]

#: the default implementation of each secret op, as explain() names it
IMPL_NAMES = {
    "mul": "Beaver product + trunc", "matmul": "Beaver matrix triple", "lt": "comparison (msb)",
    "gt": "comparison (msb)", "le": "comparison (msb)", "ge": "comparison (msb)", "where": "select (bit x diff)",
    "sigmoid": "sigmoid (accurate)", "exp": "exp (range-reduced)", "log": "log", "reciprocal": "reciprocal (Newton)",
    "sqrt": "sqrt", "relu": "relu (msb + select)", "div": "division (reciprocal)", "mean": "sum + public scale",
    "masked_setup": "mask X once", "masked_matmul": "masked-matrix product", "sum": "local sum",
    "softmax": "softmax (max, exp, reciprocal)", "abs": "abs (msb + select)",
}


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s >= 1e-5 else f"{s * 1e6:.3f} us"


def _name(o: Op, batch: int) -> str:
    if o.op == "share":
        vis = o.ins[0].vis
        return "share_in by " + (vis.owner if vis is not None and vis.owner else "all (public)")  # type: ignore[return-value]
    if o.op == "reveal":
        to = o.attrs.get("to")
        return "open to all" if to is None else f"open to {to}"
    if o.op == "mul" and o.impl is None:
        public = any(v.vis is not None and v.vis.kind == "public" for v in o.ins)
        exact = o.outs[0].dtype == "i" or (public and all(v.dtype == "i" for v in o.ins if v.vis == PUBLIC))
        name = ("public scale" if public else "Beaver product") + (" (exact)" if exact else " + trunc")
        return name + (f" (batch {batch})" if batch > 1 else "")
    base = IMPL_NAMES.get(o.op, o.op) if o.impl is None else (f"sigmoid ({o.impl})" if o.op == "sigmoid" else o.impl)
    if o.op in ("masked_setup", "masked_matmul") and o.impl:
        base = f"{o.impl}"
    if batch > 1:
        base = base.replace(")", f", batch {batch})") if base.endswith(")") else f"{base} (batch {batch})"
    return base


def _why(o: Op, prof: Profile) -> str:
    ch = o.attrs.get("choice")
    if not ch:
        return str(o.attrs.get("choice_text", ""))
    costs: dict[str, Cost] = ch["costs"]
    c, r = ch["chosen"], ch["runner_up"]
    if r is None:
        return f"only {c} applies"
    cc, rc = costs[c], costs[r]
    scope = " (whole program)" if ch.get("scope") == "program" else ""
    loc = ch.get("local") or {}
    lc, lr = loc.get(c, 0.0), loc.get(r, 0.0)  # declared local work (Paillier)
    note = (f"runner-up {r}{scope}: {rc.bytes} B, {rc.rounds} rounds" + (f", local {_ms(lr)}" if lr else "")
            + f", {_ms(prof.seconds(rc) + lr)}")
    if ch.get("pinned"):
        return note + " (pinned)"
    if cc.rounds != rc.rounds:
        rtt = ((rc.bytes - cc.bytes) * prof.byte_seconds + lr - lc) / (cc.rounds - rc.rounds)
        if rtt > 0:
            side = "above" if cc.rounds < rc.rounds else "below"
            other = "below" if side == "above" else "above"
            note += f"; {c} while RTT is {side} {_ms(rtt)} at this bandwidth and local work, {r} {other}"
    elif cc.bytes != rc.bytes:
        note += f"; {rc.bytes - cc.bytes:+d} B for the same rounds"
    return note + _breakeven_trips(ch, prof)


def _breakeven_trips(ch: dict[str, Any], prof: Profile) -> str:
    """The loop length at which the runner-up would win (one-time cost against per-iteration cost)."""
    split = ch.get("split")
    c, r = ch["chosen"], ch["runner_up"]
    if not split or r is None or ch.get("trips", 1) <= 1:
        return ""
    (oc, lc), (orr, lr) = split[c], split[r]
    d_loop = prof.seconds(lc) - prof.seconds(lr)
    d_once = prof.seconds(orr) - prof.seconds(oc)
    if d_loop == 0 or d_once / d_loop <= 0:
        return ""
    n = ch["trips"] * d_once / d_loop
    return f"; {r} below {n:.1f} iterations" if d_loop < 0 else f"; {r} above {n:.1f} iterations"


def _per_op(stages: Sequence[tuple[list[str], int, int]]) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """label -> (bytes, rounds) summed over the run (a stage's bytes split evenly among its ops),
    and label -> the largest batch it was part of."""
    out: dict[str, tuple[int, int]] = {}
    batch: dict[str, int] = {}
    for labels, b, r in stages:
        for lab in labels:
            pb, pr = out.get(lab, (0, 0))
            out[lab] = (pb + b // max(len(labels), 1), pr + r)
            batch[lab] = max(batch.get(lab, 1), len(labels))
    return out, batch


def explain(fn: Any, mpc: Any = None, protocol: str | None = None, profile: Any = "lan", measured: Any = None,
            n_compute: int | None = None, compute: Sequence[str] | None = None,
            parties: Sequence[str] | None = None, pins: dict[str, str] | None = None, html: bool = False,
            naive: bool = False) -> str:
    """The explanation of `fn` (a `Function`) compiled for `mpc` or `protocol` under `profile`;
    `measured`: the `RunReport`s of every party of one run (`fn.run(..., report=True)`); `pins` as
    in `Function.compile`; `html=True` returns the same text as an HTML page; `naive=True` adds the
    prediction for the same function without the passes (one kernel call per operation)."""
    prof = as_profile(profile)
    proto = protocol or (mpc.protocol_name if mpc is not None else "semi2k")
    comp = list(compute) if compute else (list(mpc.parties) if mpc is not None else None)
    if comp is None and n_compute:
        comp = [f"p{i}" for i in range(n_compute)]
    allp = list(parties) if parties else (list(mpc.ctx.parties) if mpc is not None else None)
    prog = fn.compile(mpc, protocol=proto, profile=prof, pins=pins, compute=comp)
    pred = predict(prog, proto, compute=comp, parties=allp)
    pstages = [(labels, c.bytes, c.rounds) for labels, c in pred.stages]
    p_op, batch = _per_op(pstages)
    m_op: dict[str, tuple[int, int]] = {}
    m_tot = None
    if measured:
        mst = combine(measured)
        m_op, _ = _per_op(mst)
        m_tot = (sum(s[1] for s in mst), sum(s[2] for s in mst))
    n = len(comp) if comp else (3 if proto == "aby3" else 2)
    head = [f"{fn.name} on {proto} ({n} compute parties), profile {prof.name}: rtt {prof.rtt * 1e3:g} ms, "
            f"{prof.bandwidth / 1e9:g} Gbit/s" + (f", local work {prof.compute * 1e9:g} ns/B" if prof.compute else ""),
            f"{'op':<22}{'impl':<30}{'pred bytes':<12}{'rounds':<8}" + ("meas bytes  rounds  " if measured else "")
            + "note"]
    names: dict[int, str] = {}
    prog.graph.dump(names=names)  # the value numbers of `prog.dump()`
    lines = head + _lines(prog.graph, p_op, m_op, batch, prof, measured is not None, "", names)
    tot = pred.total
    meas = f"{m_tot[0]:<12}{m_tot[1]:<8}" if m_tot else ""
    lines.append(f"{'total':<52}{tot.bytes:<12}{tot.rounds:<8}{meas}predicted {_ms(prof.seconds(tot))}")
    if naive:
        nv = predict(fn.compile(mpc, protocol=proto, profile=prof, optimize=False, compute=comp), proto,
                     compute=comp, parties=allp).total
        pad = " " * 20 if measured else ""
        lines.append(f"{'naive (no passes)':<52}{nv.bytes:<12}{nv.rounds:<8}{pad}predicted {_ms(prof.seconds(nv))}")
    text = "\n".join(line.rstrip() for line in lines)
    if html:
        import html as _html

        return (f"<!doctype html><meta charset='utf-8'><title>{_html.escape(fn.name)}: explain</title>"
                f"<pre>{_html.escape(text)}</pre>")
    return text


def _lines(g: Graph, p_op: dict[str, tuple[int, int]], m_op: dict[str, tuple[int, int]], batch: dict[str, int],
           prof: Profile, with_meas: bool, indent: str, names: dict[int, str]) -> list[str]:
    out = []
    for o in g.ops:
        if o.body is not None:
            trips = o.attrs["hi"] - o.attrs["lo"]
            out.append(f"{indent}loop x{trips} (figures: all iterations)")
            out += _lines(o.body, p_op, m_op, batch, prof, with_meas, indent + "  ", names)
            continue
        lab = op_label(o, names)
        if lab not in p_op and not o.attrs.get("choice") and not o.attrs.get("choice_text"):
            continue
        pb, pr = p_op.get(lab, (0, 0))
        row = f"{indent}{names.get(o.outs[0].id, '?')} {o.op}"
        meas = ""
        if with_meas:
            mb, mr = m_op.get(lab, (0, 0))
            meas = f"{mb:<12}{mr:<8}"
        out.append(f"{row:<22}{_name(o, batch.get(lab, 1)):<30}{pb:<12}{pr:<8}{meas}{_why(o, prof)}")
    return out



