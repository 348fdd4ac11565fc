"""Secret shares for parties outside an MPC program: split, combine, import, export.

A data owner that talks to the compute parties over attested enclave sessions (TECC),
or an enclave that hands a trained model to MPC parties (hybrid mode), is not a party
of the MPC program: it cannot call ``x.to(mpc)``. It splits a value into the shares
each compute party holds, sends each party its own over a protected channel, and a
result party later combines what the compute parties return.

Layout (the MPC protocols' own, see :mod:`jointml.mpc`): a real x is fixed-point
encoded (:class:`jointml.core.fixedpoint.FixedPoint`, ``DEFAULT_FRAC_BITS``) to
v in Z_2^64 and split into n additive components v = v_0 + ... + v_{n-1}. Under
``semi2k`` compute party i holds (v_i,); under ``aby3`` (n = 3, replicated) party i
holds (v_i, v_{i+1 mod 3}). Components come from the cryptographic PRG
(:mod:`jointml.core.prg`, a fresh OS seed per split).

Security: any n-1 components (aby3: any one party's pair) are uniformly random and
independent of x, so a single compute party learns nothing; whoever combines learns x.
The aby3 replicas let the combiner detect one party returning a wrong share.

Stopgap note: ``jointml.mpc.sharing`` (split/combine for outsiders, ``Protocol.
export_share``/``import_share``) is being written at the same time; these four
functions are written against the current protocols and are meant to be pointed at it.

>>> parts = split_for_outsider(np.array([1.5, -2.0]), "aby3", 3)
>>> [len(p) for p in parts]
[2, 2, 2]
>>> combine_from_outsider(parts, "aby3").tolist()
[1.5, -2.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..core.errors import ConfigError, ProtocolError
from ..core.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from ..core.prg import Prg

if TYPE_CHECKING:  # pragma: no cover - an enclave that only splits does not import the MPC engine
    from ..mpc import MpcDevice, SecretArray

__all__ = ["split_for_outsider", "combine_from_outsider", "import_share", "export_share"]


def _check_layout(protocol: str, n: int) -> None:
    if protocol == "aby3" and n == 3:
        return
    if protocol == "semi2k" and n >= 2:
        return
    raise ConfigError(f"no outsider share layout for protocol {protocol!r} with {n} compute parties "
                      "(semi2k: n >= 2, aby3: n = 3)", field="protocol")


def split_for_outsider(value, protocol: str, n_parties: int,
                       frac_bits: int = DEFAULT_FRAC_BITS) -> list[tuple[np.ndarray, ...]]:
    """Encode `value` (reals) and split it into the share tuple of each compute party, in order.

    Raises ``EncodingRangeError`` (a ValueError) for NaN/inf or out-of-range values.

    >>> parts = split_for_outsider(np.ones(3), "semi2k", 2)
    >>> [len(p) for p in parts], parts[0][0].dtype.name
    ([1, 1], 'uint64')
    """
    _check_layout(protocol, n_parties)
    enc = FixedPoint(frac_bits).encode(value)
    g = Prg()  # fresh seed from the OS CSPRNG: components protect the data
    comps = [g.uint64(enc.shape) for _ in range(n_parties - 1)]
    last = enc.copy()
    for c in comps:
        last -= c
    comps.append(last)
    if protocol == "semi2k":
        return [(c,) for c in comps]
    return [(comps[i], comps[(i + 1) % 3]) for i in range(3)]


def combine_from_outsider(parts: Sequence[Sequence[np.ndarray]], protocol: str,
                          frac_bits: int = DEFAULT_FRAC_BITS, names: Sequence[str] | None = None) -> np.ndarray:
    """Rebuild and decode a value from every compute party's share tuple (in party order).

    Under aby3 the replicated components must agree: party i's second component is
    party i+1's first; otherwise ``ProtocolError`` names the party (`names[i]`).

    >>> parts = split_for_outsider(np.array([0.25]), "aby3", 3)
    >>> bad = [parts[0], (parts[1][0], parts[1][1] + np.uint64(1)), parts[2]]
    >>> combine_from_outsider(bad, "aby3", names=["p0", "p1", "p2"])
    Traceback (most recent call last):
    ...
    jointml.core.errors.ProtocolError: p1 returned a share inconsistent with p2 (a faulty or malicious party)
    """
    n = len(parts)
    _check_layout(protocol, n)
    names = list(names) if names is not None else [f"party {i}" for i in range(n)]
    comps = [np.asarray(p[0], dtype=np.uint64) for p in parts]
    if protocol == "aby3":
        for i in range(3):  # party i also holds component i+1: the replicas must agree
            if not np.array_equal(np.asarray(parts[i][1], dtype=np.uint64), comps[(i + 1) % 3]):
                raise ProtocolError(f"{names[i]} returned a share inconsistent with {names[(i + 1) % 3]} "
                                    "(a faulty or malicious party)")
    total = comps[0].copy()
    for c in comps[1:]:
        total += c
    return FixedPoint(frac_bits).decode(total)


def import_share(mpc: MpcDevice, parts: Sequence[np.ndarray] | None, shape: tuple) -> SecretArray:
    """This party's share tuple (from :func:`split_for_outsider`) as a fixed-point SecretArray.

    Parties of the program outside the compute set pass ``None`` and get a handle.

    >>> from jointml.mpc import MpcDevice
    >>> parts = split_for_outsider(np.array([2.0, 3.0]), "aby3", 3)
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, protocol="aby3")
    ...     x = import_share(mpc, parts[mpc.parties.index(ctx.me)], (2,))
    ...     return x.sum().reveal().tolist()
    >>> simulate(prog, ["p0", "p1", "p2"], mode="thread")["p2"]
    5.0
    """
    from ..mpc import SecretArray

    shape = tuple(int(s) for s in shape)
    if parts is None:
        if mpc.ctx.me in mpc.parties:
            raise ConfigError("a compute party of the MPC device needs its share", party=mpc.ctx.me)
        return SecretArray(mpc, None, shape, mpc.frac_bits)
    want = 2 if mpc.protocol_name == "aby3" else 1
    arrs = [np.asarray(a) for a in parts]
    if len(arrs) != want or any(a.dtype != np.uint64 or a.shape != shape for a in arrs):
        raise ProtocolError(f"expected {want} uint64 share component(s) of shape {shape} for {mpc.protocol_name}, "
                            f"got {[(a.dtype.name, a.shape) for a in arrs]}", party=mpc.ctx.me)
    value = (arrs[0].copy(), arrs[1].copy()) if want == 2 else arrs[0].copy()
    return SecretArray(mpc, value, shape, mpc.frac_bits)


def export_share(x: SecretArray) -> tuple[np.ndarray, ...]:
    """This compute party's share tuple of `x` (the inverse of :func:`import_share`).

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, protocol="aby3")
    ...     x = ctx.party("p0").run(lambda: np.array([1.0, 4.0])).to(mpc)
    ...     return export_share(x)
    >>> out = simulate(prog, ["p0", "p1", "p2"], mode="thread")
    >>> combine_from_outsider([out[p] for p in ("p0", "p1", "p2")], "aby3").tolist()
    [1.0, 4.0]
    """
    if x.share is None:
        raise ConfigError("only a compute party holds a share to export", party=x.device.ctx.me)
    if x.fxp != x.device.frac_bits:
        raise ProtocolError(f"export needs a fixed-point secret at {x.device.frac_bits} fractional bits, got {x.fxp}",
                            party=x.device.ctx.me)
    if isinstance(x.share, tuple):
        return tuple(np.asarray(c, dtype=np.uint64).copy() for c in x.share)
    return (np.asarray(x.share, dtype=np.uint64).copy(),)
