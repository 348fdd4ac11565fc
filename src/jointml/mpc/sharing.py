"""Secret sharing for parties outside the protocol: `split` a value, `combine` shares.

A data owner that hands shares to an enclave cluster (TECC), an enclave that deals a
trained model to MPC parties, or a result party that rebuilds an output needs the
share *layout* of a protocol without running it. `split` gives, per compute party, the
plain arrays that party's `Protocol.import_share` (or `MpcDevice.import_share`) accepts,
and `combine` reverses it; both use the same layout as `Protocol.export_share`:

| protocol | party i holds |
| --- | --- |
| semi2k (n parties) | [x_i], with x_0 + ... + x_{n-1} = x mod 2^64 |
| aby3 (3 parties) | [x_i, x_{i+1}], with x_0 + x_1 + x_2 = x mod 2^64 |

Security: the random shares come from a fresh cryptographic PRG (`jointml.core.prg`),
so any n-1 semi2k shares (any single aby3 party's pair) are uniform and independent of
x. Whoever calls `split` sees x; whoever calls `combine` learns x. `combine` checks that
aby3 replicas agree, so a single faulty holder of a component is detected.

>>> x = np.array([1.5, -2.25])
>>> parts = split(x, "aby3", frac_bits=18)
>>> [len(p) for p in parts]
[2, 2, 2]
>>> combine(parts, "aby3", frac_bits=18).tolist()
[1.5, -2.25]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..core.errors import DataError, ParameterError, ProtocolError
from ..core.fixedpoint import DEFAULT_FRAC_BITS, FixedPoint
from ..core.prg import Prg
from ..core.ring import as_ring

Array = npt.NDArray[Any]

__all__ = ["split", "combine", "encode", "decode"]


def encode(x: Any, frac_bits: int | None = DEFAULT_FRAC_BITS) -> npt.NDArray[np.uint64]:
    """Ring encoding of x: fixed point with `frac_bits` fractional bits for floats, two's
    complement for integers (`frac_bits=None` requires integers).

    >>> encode(np.array([1.0, -0.5]), 2).view(np.int64).tolist()
    [4, -2]
    """
    a = np.asarray(x)
    if frac_bits is None:
        if a.dtype.kind not in "iub":
            raise DataError(f"cannot encode dtype {a.dtype} as ring integers; pass frac_bits", field="dtype")
        return as_ring(a)
    if a.dtype.kind not in "fiub":
        raise DataError(f"cannot secret-share dtype {a.dtype}", field="dtype")
    return FixedPoint(frac_bits).encode(a)


def decode(r: Any, frac_bits: int | None = DEFAULT_FRAC_BITS) -> Array:
    """Inverse of `encode`: float64 (fixed point) or int64 (`frac_bits=None`).

    >>> decode(encode(np.array([3.25])), 18).tolist()
    [3.25]
    """
    r = np.asarray(r, dtype=np.uint64)
    if frac_bits is None:
        ints: Array = r.view(np.int64).copy()
        return ints
    out: Array = FixedPoint(frac_bits).decode(r)
    return out


def split(value: Any, protocol: str, parties: int | None = None, frac_bits: int | None = None,
          prg: Prg | None = None) -> list[list[npt.NDArray[np.uint64]]]:
    """The shares of `value` for each compute party, in the layout of `protocol`.

    `value` is ring-encoded already (uint64 / integers) unless `frac_bits` is given, in
    which case it is fixed-point encoded first (floats). `parties` is the number of semi2k
    compute parties (default 2; aby3 has 3). Randomness: `prg` or a fresh `Prg()`.

    >>> parts = split(np.array([5], np.uint64), "semi2k", parties=3)
    >>> len(parts), combine(parts, "semi2k").tolist()
    (3, [5])
    """
    x = encode(value, frac_bits) if frac_bits is not None else as_ring(np.asarray(value))
    g = Prg() if prg is None else prg
    if protocol == "semi2k":
        n = 2 if parties is None else int(parties)
        if n < 2:
            raise ParameterError(f"semi2k needs at least 2 compute parties, got {n}", field="parties")
        shares = [g.random(x.shape, np.uint64) for _ in range(n - 1)]
        last = x.copy()
        for s in shares:
            last -= s
        return [[s] for s in shares + [last]]
    if protocol == "aby3":
        if parties not in (None, 3):
            raise ParameterError(f"aby3 has exactly 3 compute parties, not {parties}", field="parties")
        x0, x1 = g.random(x.shape, np.uint64), g.random(x.shape, np.uint64)
        comps = [x0, x1, x - x0 - x1]
        return [[comps[i], comps[(i + 1) % 3].copy()] for i in range(3)]
    raise ParameterError(f"unknown MPC protocol '{protocol}' (choose 'semi2k' or 'aby3')", field="protocol")


def combine(parts: Sequence[Sequence[Any]], protocol: str, frac_bits: int | None = None,
            names: Sequence[str] | None = None) -> Array:
    """Reconstruct a value from every compute party's share arrays (the output of `split`
    or of each party's `export_share`, in the device's party order).

    Returns ring elements (uint64), or decoded values when `frac_bits` is given
    (None: raw ring; for signed integers use `decode(..., None)`). aby3: raises
    `ProtocolError` naming the party whose replica disagrees: `names[i]` (default
    "party i") for the i-th entry of `parts`.

    >>> combine(split(np.array([-7]), "semi2k"), "semi2k").view(np.int64).tolist()
    [-7]
    >>> bad = split(np.array([1.0]), "aby3", frac_bits=18)
    >>> bad[1][1] = bad[1][1] + np.uint64(1)
    >>> combine(bad, "aby3", 18, names=["bank", "partner", "insurer"])
    Traceback (most recent call last):
    ...
    jointml.core.errors.ProtocolError: aby3: partner returned a share inconsistent with insurer (a faulty or malicious holder)
    """
    arrays = [[np.asarray(a, dtype=np.uint64) for a in p] for p in parts]
    who = [f"party {i}" for i in range(len(arrays))] if names is None else [str(n) for n in names]
    if len(who) != len(arrays):
        raise ParameterError(f"combine: {len(who)} names for {len(arrays)} parts", field="names")
    if protocol == "semi2k":
        if len(arrays) < 2 or any(len(p) != 1 for p in arrays):
            raise ProtocolError("semi2k: combine needs one array from each of at least 2 parties", field="parts")
        total = arrays[0][0].copy()
        for p in arrays[1:]:
            total += p[0]
    elif protocol == "aby3":
        if len(arrays) != 3 or any(len(p) != 2 for p in arrays):
            raise ProtocolError("aby3: combine needs two arrays from each of 3 parties", field="parts")
        comps = [p[0] for p in arrays]
        for i in range(3):  # party i also holds x_{i+1}: the replicas must agree
            if not np.array_equal(arrays[i][1], comps[(i + 1) % 3]):
                err = ProtocolError(f"aby3: {who[i]} returned a share inconsistent with {who[(i + 1) % 3]} "
                                    "(a faulty or malicious holder)")
                err.party, err.field = (who[i] if names is not None else None), "parts"  # named in the text already
                raise err
        total = comps[0] + comps[1] + comps[2]
    else:
        raise ParameterError(f"unknown MPC protocol '{protocol}' (choose 'semi2k' or 'aby3')", field="protocol")
    return total if frac_bits is None else decode(total, frac_bits)
