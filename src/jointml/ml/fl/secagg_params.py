"""SecAgg+ parameters, the sparse communication graph, quantisation and the failure probability.

Pure functions, no party and no link (the protocol is in `secagg.py`).

**Graph** (Bell et al., CCS 2020): each client shares keys with `degree` neighbours
only, on a random Harary graph H(k, n): the clients are put in a random cyclic order and
each is linked to the k/2 nearest on either side. With k = n − 1 the graph is complete
and the protocol is the original SecAgg (Bonawitz et al., CCS 2017).

**Failure probability** (`failure_bounds`), for n clients, degree k, share threshold t,
each client dropping independently with probability δ (`dropout_rate`) and a fraction γ
(`corrupt_fraction`) colluding with the aggregator; union bounds over the clients:

| event | bound |
| --- | --- |
| correctness: some client has fewer than t surviving neighbours, its mask cannot be removed | n · P[Bin(k, 1 − δ) < t] |
| privacy: some client has t corrupt neighbours, who can rebuild its keys with the server | n · P[Bin(k, γ) ≥ t] |
| privacy: honest survivors split into two components (the server learns partial sums) | C(n, 2) · (δ + γ)^k (0 for k = n − 1) |

`choose` picks the smallest even degree meeting 2^-40 for privacy and 2^-20 for
correctness (Bell et al.'s targets), with the smallest threshold above k/2 that meets the
privacy target; cohorts too small for that fall back to the complete graph with t = ⌈2k/3⌉
and report what they reach (5 clients at δ = γ = 0.1: correctness failure ≈ 0.26 per
round, i.e. a round with 2 of 5 dropping aborts). At the defaults (δ = γ = 0.1):

| clients n | degree k | threshold t | min_signers | bits | correctness bound | privacy bound |
| --- | --- | --- | --- | --- | --- | --- |
| 5 | 4 (complete) | 3 | 4 | 32 | 0.26 | 0.019 |
| 10 | 9 (complete) | 6 | 6 | 32 | 0.083 | 6.4e-4 |
| 20 | 19 (complete) | 13 | 12 | 32 | 0.034 | 3.0e-8 |
| 100 | 46 | 26 | 56 | 32 | 5.7e-8 | 7.4e-13 |
| 1000 | 50 | 29 | 551 | 32 | 5.4e-7 | 8.0e-14 |
| 10000 | 54 | 31 | 5501 | 64 | 6.8e-7 | 1.0e-13 |

**Quantisation**: each coordinate is clipped to [−clip, clip] and mapped to
{0, …, 2^quant_bits − 1} with stochastic rounding (unbiased, drawn from `core.prg`); the
masked sum lives in Z_2^bits, so `bits` ≥ quant_bits + ⌈log2(n + 1)⌉ keeps the sum from
wrapping. The error of the opened mean is at most one quantisation step 2·clip/(2^quant_bits − 1)
per coordinate (plus what clipping cuts).

>>> p = SecAggParams.choose(100)
>>> p.degree, p.threshold
(46, 26)
>>> round(math.log2(p.failure_bounds(100)["correctness"]))
-24
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ...core.errors import ParameterError
from ...core.prg import Prg

__all__ = ["SecAggParams", "harary_neighbours", "quantise", "dequantise_sum", "binomial_tail"]

PRIVACY_TARGET = 2.0 ** -40
CORRECTNESS_TARGET = 2.0 ** -20


def binomial_tail(k: int, p: float, t: int) -> float:
    """P[Bin(k, p) ≥ t].

    >>> binomial_tail(2, 0.5, 1)
    0.75
    """
    if t <= 0:
        return 1.0
    return float(sum(math.comb(k, i) * p ** i * (1.0 - p) ** (k - i) for i in range(t, k + 1)))


@dataclass(frozen=True)
class SecAggParams:
    """Parameters of secure aggregation (see the module docstring).

    `degree`/`threshold`: None = chosen from the cohort size by `choose` at each round.
    `timeout`: seconds without any answer after which the aggregator counts the clients still
    silent at a stage as dropped; `start_timeout`: how long it waits for the *first* answer of
    a stage (clients may still be training locally; a dropout costs only `timeout`).
    `min_signers`: None = ⌊(n + ⌈γ·n⌉)/2⌋ + 1 consistency endorsements (two different survivor
    lists cannot both collect that many without an honest client endorsing both).

    >>> SecAggParams(clip=2.0).quant_step
    3.8147009036072765e-06
    """

    clip: float = 4.0
    quant_bits: int = 20
    bits: int | None = None
    degree: int | None = None
    threshold: int | None = None
    dropout_rate: float = 0.1
    corrupt_fraction: float = 0.1
    timeout: float = 30.0
    min_signers: int | None = None
    start_timeout: float = 600.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ParameterError(f"must be > 0, got {self.clip!r}", field="clip")
        if not 2 <= self.quant_bits <= 48:
            raise ParameterError(f"must be in [2, 48], got {self.quant_bits!r}", field="quant_bits")
        if self.bits is not None and not self.quant_bits < self.bits <= 64:
            raise ParameterError(f"must be in (quant_bits, 64], got {self.bits!r}", field="bits")
        for name, v in (("dropout_rate", self.dropout_rate), ("corrupt_fraction", self.corrupt_fraction)):
            if not 0.0 <= v < 0.5:
                raise ParameterError(f"must be in [0, 0.5), got {v!r}", field=name)
        if not self.timeout > 0:
            raise ParameterError(f"must be > 0, got {self.timeout!r}", field="timeout")
        if not self.start_timeout >= self.timeout:
            raise ParameterError(f"must be >= timeout, got {self.start_timeout!r}", field="start_timeout")

    @property
    def quant_step(self) -> float:
        """The width of one quantisation level (the rounding error bound per coordinate and client)."""
        return 2.0 * self.clip / ((1 << self.quant_bits) - 1)

    @property
    def wire_dtype(self) -> type:
        """uint32 when the ring fits 32 bits (half the bytes of float64), uint64 otherwise."""
        return np.uint32 if self.bits is not None and self.bits <= 32 else np.uint64

    @classmethod
    def choose(cls, n: int, **kw: object) -> SecAggParams:
        """Parameters for a cohort of `n` clients: `kw` as for the class; degree and threshold
        chosen from the bounds unless given.

        >>> SecAggParams.choose(5).degree
        4
        """
        return cls(**kw).resolved(n)  # type: ignore[arg-type]

    def resolved(self, n: int) -> SecAggParams:
        """These parameters with degree, threshold and min_signers fixed for `n` clients (checked)."""
        if n < 2:
            raise ParameterError(f"secure aggregation needs at least 2 clients, got {n}", field="clients")
        bits = self.bits
        if bits is None:  # the smallest of 32 and 64 that holds the sum of n values
            bits = 32 if (1 << (32 - self.quant_bits)) > n else 64
        if (1 << (bits - self.quant_bits)) <= n:
            raise ParameterError(f"bits={bits} cannot hold the sum of {n} values of {self.quant_bits} bits; "
                                 f"raise bits or lower quant_bits", field="bits")
        k, t = self.degree, self.threshold
        if k is None:
            k, t0 = self._best_degree(n)
            t = t if t is not None else t0
        k = min(int(k), n - 1)
        if k < n - 1 and k % 2 and n % 2:
            k += 1  # an odd-degree Harary graph needs an even number of clients
        if t is None:
            t = self._best_threshold(n, k)
        if not k // 2 + 1 <= t <= k:
            raise ParameterError(f"threshold must be in [{k // 2 + 1}, {k}] for degree {k} (more than half the "
                                 f"neighbours, so two disjoint groups cannot both unmask), got {t}", field="threshold")
        corrupt = math.ceil(self.corrupt_fraction * n)
        s = self.min_signers if self.min_signers is not None else (n + corrupt) // 2 + 1
        if not 1 <= s <= n:
            raise ParameterError(f"must be in [1, {n}], got {s}", field="min_signers")
        return replace(self, bits=bits, degree=k, threshold=int(t), min_signers=int(s))

    def _best_threshold(self, n: int, k: int) -> int:
        """The smallest t in (k/2, k] meeting the privacy target (more only costs dropout
        tolerance); when none does, ⌈2k/3⌉ (Bonawitz et al.'s threshold against a deviating server)."""
        for t in range(k // 2 + 1, k + 1):
            if n * binomial_tail(k, self.corrupt_fraction, t) <= PRIVACY_TARGET:
                return t
        return max(k // 2 + 1, math.ceil(2 * k / 3))

    def _best_degree(self, n: int) -> tuple[int, int]:
        for k in range(2, n - 1, 2):
            t = self._best_threshold(n, k)
            b = self.failure_bounds(n, k, t)
            if b["privacy"] <= PRIVACY_TARGET and b["correctness"] <= CORRECTNESS_TARGET:
                return k, t
        # no sparse graph meets the targets: the complete graph (original SecAgg), t = ⌈2k/3⌉
        return n - 1, max((n - 1) // 2 + 1, math.ceil(2 * (n - 1) / 3))

    def failure_bounds(self, n: int, k: int | None = None, t: int | None = None) -> dict[str, float]:
        """Union bounds on the per-round failure probabilities (module docstring) for `n` clients.

        >>> b = SecAggParams(degree=4, threshold=3).failure_bounds(5)
        >>> round(b["correctness"], 3), round(b["privacy"], 4)
        (0.262, 0.0185)
        """
        k = int(k if k is not None else (self.degree if self.degree is not None else n - 1))
        t = int(t if t is not None else (self.threshold if self.threshold is not None else k // 2 + 1))
        correct = n * (1.0 - binomial_tail(k, 1.0 - self.dropout_rate, t))
        shares = n * binomial_tail(k, self.corrupt_fraction, t)
        split = 0.0 if k >= n - 1 else math.comb(n, 2) * (self.dropout_rate + self.corrupt_fraction) ** k
        return {"correctness": min(1.0, correct), "privacy": min(1.0, shares + split)}


def harary_neighbours(clients: Sequence[str], k: int, prg: Prg, only: str | None = None) -> dict[str, list[str]]:
    """A random Harary graph H(k, n) over `clients`: a random cyclic order, each client linked
    to the ⌈k/2⌉ nearest on one side and ⌊k/2⌋ on the other (symmetric; k = n − 1: complete).
    `only`: just that client's neighbours (what a client checks: O(k) after the order).

    >>> g = harary_neighbours(["a", "b", "c", "d", "e"], 2, Prg(b"g" * 16))
    >>> all(len(v) == 2 for v in g.values()), all(u in g[v] for u in g for v in g[u])
    (True, True)
    >>> harary_neighbours(["a", "b", "c", "d", "e"], 2, Prg(b"g" * 16), only="a")["a"] == g["a"]
    True
    """
    n = len(clients)
    who = list(clients) if only is None else [only]
    if k >= n - 1:
        return {c: [o for o in clients if o != c] for c in who}
    order = np.argsort(prg.uint64(n), kind="stable")  # position -> client index
    where = np.empty(n, dtype=np.int64)
    where[order] = np.arange(n)  # client index -> position
    steps = [j for j in range(1, k // 2 + 1)] + [-j for j in range(1, k // 2 + 1)]
    if k % 2:  # odd degree (n even): the diametric chord
        steps.append(n // 2)
    index = {c: i for i, c in enumerate(clients)}
    out = {}
    for c in who:
        nb = {int(order[(where[index[c]] + d) % n]) for d in steps}
        out[c] = [clients[i] for i in sorted(nb)]
    return out


def quantise(x: np.ndarray, params: SecAggParams, prg: Prg, dtype: type = np.uint64) -> np.ndarray:
    """Clip to [−clip, clip] and map to {0, …, 2^quant_bits − 1} by stochastic rounding (`dtype`:
    uint64, or uint32 when quant_bits ≤ 32). Rounds up with probability ⌊frac·2^32⌋/2^32 for the
    fractional part frac (one 32-bit draw per value): unbiased to within 2^-32 of a step.

    >>> q = quantise(np.array([-9.0, 0.0, 9.0]), SecAggParams(clip=1.0, quant_bits=4), Prg(b"q" * 16))
    >>> q[0], q[2]
    (np.uint64(0), np.uint64(15))
    """
    levels = (1 << params.quant_bits) - 1
    v = np.clip(np.asarray(x, dtype=np.float64), -params.clip, params.clip)
    v += params.clip
    v *= levels / (2 * params.clip)
    np.clip(v, 0.0, float(levels), out=v)  # float rounding must not push a value past the top level
    # stochastic rounding in fixed point: floor((v·2^32 + r) / 2^32) with r uniform in [0, 2^32)
    # rounds v up with probability ⌈frac(v)·2^32⌉/2^32 (v·2^32 < 2^52: exact in float64 and uint64)
    v *= 2.0 ** 32
    t = v.astype(np.int64)  # (the signed conversion is the vectorised one)
    t += prg.random(v.shape, np.uint32)
    t >>= 32
    out: np.ndarray = t.astype(dtype)
    return out


def dequantise_sum(total: np.ndarray, count: int, params: SecAggParams) -> np.ndarray:
    """The float sum of `count` quantised vectors whose ring sum is `total`.

    >>> p = SecAggParams(clip=1.0, quant_bits=4)
    >>> dequantise_sum(np.array([15 + 0], dtype=np.uint64), 2, p).tolist()
    [0.0]
    """
    return np.asarray(total, dtype=np.float64) * params.quant_step - count * params.clip
