"""Exact samplers of integer noise from cryptographic random bits (Canonne, Kamath, Steinke 2020).

Why exact integer sampling: the textbook Laplace sampler ``x + b * log(u)`` in double
precision leaks its input (Mironov, CCS 2012): the set of floats it can output depends on
``x``, so the low bits of one release can tell ``x = 0`` from ``x = 1``. Here no floating
point touches the noise: every sampler below draws uniform integers from
:class:`jointml.core.prg.Prg` (AES-CTR keyed from ``secrets``) by rejection, and decides
Bernoulli(exp(-gamma)) for a rational gamma with integer arithmetic only (CKS Algorithm 1).
The discrete Laplace (two-sided geometric) is CKS Algorithm 2 and the discrete Gaussian CKS
Algorithm 3: the output law is exactly the stated one, whatever the platform.

Two implementations of the same algorithms:

* vectorised (numpy int64): for integer parameters small enough that every intermediate
  fits 62 bits (checked; `discrete_laplace` needs ``scale < 2**40``, `discrete_gaussian`
  ``sigma2 < 2**26``) - used for large arrays (PPDT, noise on a grid);
* scalar (Python integers, any rational parameter): `discrete_laplace_exact`,
  `discrete_gaussian_exact` - used for the few values of an aggregate (noise on the fine
  fixed-point grid of a secret-shared sum, DP-SGD).

Adversary model: the samplers run at one party, on its own random bits; what others learn
is what the caller releases. The running time depends on the random draws only (it is not
constant-time: a timing side channel on the number of rejections is out of scope, as in
the CKS reference implementation).

>>> src = RandomBits()
>>> z = discrete_gaussian(src, 4, 1000)   # sigma^2 = 4
>>> z.dtype, bool(abs(z.var() - 4) < 1.5)
(dtype('int64'), True)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import ParameterError
from ..core.prg import Prg

__all__ = [
    "RandomBits",
    "uniform_below",
    "bernoulli_exp",
    "discrete_laplace",
    "discrete_gaussian",
    "discrete_laplace_exact",
    "discrete_gaussian_exact",
    "bernoulli_exp_exact",
]

IntArray = npt.NDArray[np.int64]
_LIMIT = 1 << 62  # every vectorised intermediate stays below this (int64 headroom)


class RandomBits:
    """Uniform random integers from the cryptographic PRG (a fresh OS seed by default).

    Buffered: the scalar samplers draw a few bytes at a time, and one AES call per byte would
    dominate their cost.

    >>> r = RandomBits(b"s" * 16)
    >>> 0 <= r.below(10) < 10, r.uint64(3).dtype
    (True, dtype('uint64'))
    """

    _BUF = 1 << 12

    def __init__(self, seed: bytes | None = None, stream: str = "jointml-dp"):
        self.prg = Prg(seed, stream=stream)
        self._buf = b""
        self._pos = 0

    def uint64(self, n: int) -> npt.NDArray[np.uint64]:
        """`n` uniform 64-bit words."""
        return self.prg.uint64(n)

    def _take(self, nbytes: int) -> int:
        if self._pos + nbytes > len(self._buf):
            self._buf = self.prg.bytes(max(self._BUF, nbytes))
            self._pos = 0
        out = int.from_bytes(self._buf[self._pos : self._pos + nbytes], "little")
        self._pos += nbytes
        return out

    def below(self, n: int) -> int:
        """A uniform integer in [0, n) for any Python int n >= 1, exactly (rejection).

        >>> RandomBits(b"t" * 16).below(1)
        0
        """
        if n < 1:
            raise ParameterError(f"uniform bound must be >= 1, got {n}", field="n")
        bits = (n - 1).bit_length()
        nbytes = (bits + 7) // 8
        mask = (1 << bits) - 1
        while True:
            v = self._take(nbytes) & mask if nbytes else 0
            if v < n:
                return v


# ---------------------------------------------------------------------------------------
# vectorised (int64) samplers
# ---------------------------------------------------------------------------------------


def uniform_below(src: RandomBits, n: Any) -> IntArray:
    """Uniform integers in [0, n) elementwise (n: int64 array, 1 <= n < 2**62), exactly.

    >>> int(uniform_below(RandomBits(), np.full(100, 3)).max()) <= 2
    True
    """
    n = np.asarray(n, dtype=np.int64)
    if n.size and (int(n.min()) < 1 or int(n.max()) >= _LIMIT):
        raise ParameterError("uniform bound out of range [1, 2^62)", field="n")
    # mask = smallest 2^k - 1 >= n - 1 (bit smearing), so a draw is accepted w.p. > 1/2
    m = (n - 1).astype(np.uint64)
    for s in (1, 2, 4, 8, 16, 32):
        m |= m >> np.uint64(s)
    out = np.empty(n.shape, dtype=np.int64)
    flat_n, flat_m, flat_out = n.reshape(-1), m.reshape(-1), out.reshape(-1)
    todo = np.arange(flat_n.size)
    while todo.size:
        draw = (src.uint64(todo.size) & flat_m[todo]).astype(np.int64)
        ok = draw < flat_n[todo]
        flat_out[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return out


def _bern_exp_le1(src: RandomBits, num: IntArray, den: IntArray) -> npt.NDArray[np.bool_]:
    """Bernoulli(exp(-num/den)) for 0 <= num <= den (CKS Algorithm 1, gamma in [0, 1])."""
    k_out = np.zeros(num.shape, dtype=np.int64)
    active = np.arange(num.size)
    k = 1
    while active.size:
        den_k = den[active] * k
        if int(den_k.max()) >= _LIMIT:
            raise ParameterError("Bernoulli(exp) denominator overflows 62 bits", field="den")
        a = uniform_below(src, den_k) < num[active]
        k_out[active[~a]] = k
        active = active[a]
        k += 1
    return (k_out % 2) == 1


def bernoulli_exp(src: RandomBits, num: Any, den: Any) -> npt.NDArray[np.bool_]:
    """Exact Bernoulli(exp(-num/den)) elementwise for integers num >= 0, den >= 1 (CKS Alg. 1).

    >>> b = bernoulli_exp(RandomBits(), np.full(4000, 1), np.full(4000, 1))
    >>> bool(abs(b.mean() - np.exp(-1)) < 0.05)
    True
    """
    num = np.asarray(num, dtype=np.int64).reshape(-1)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), num.shape).reshape(-1).copy()
    if num.size and (int(num.min()) < 0 or int(den.min()) < 1):
        raise ParameterError("Bernoulli(exp(-num/den)) needs num >= 0 and den >= 1", field="num")
    whole, rem = num // den, num % den
    out = np.ones(num.shape, dtype=bool)
    ones = np.ones(num.shape, dtype=np.int64)
    # exp(-gamma) = exp(-1)^floor(gamma) * exp(-frac(gamma)); stop a value at its first failure
    for i in range(int(whole.max()) if whole.size else 0):
        idx = np.nonzero(out & (whole > i))[0]
        if not idx.size:
            break
        out[idx] = _bern_exp_le1(src, ones[idx], ones[idx])
    idx = np.nonzero(out)[0]
    out[idx] = _bern_exp_le1(src, rem[idx], den[idx])
    return out


def _geometric_exp1(src: RandomBits, m: int) -> IntArray:
    """V = number of successes of Bernoulli(exp(-1)) before the first failure."""
    v = np.zeros(m, dtype=np.int64)
    act = np.arange(m)
    one = np.ones(m, dtype=np.int64)
    while act.size:
        a = _bern_exp_le1(src, one[: act.size], one[: act.size])
        v[act[a]] += 1
        act = act[a]
    return v


def discrete_laplace(src: RandomBits, scale: int, size: int) -> IntArray:
    """`size` draws of the discrete Laplace law P(x) proportional to exp(-|x|/scale), exactly.

    `scale` is a positive integer below 2**40 (CKS Algorithm 2 with s = 1).

    >>> z = discrete_laplace(RandomBits(), 3, 2000)
    >>> bool(abs(np.abs(z).mean() - 3) < 0.6)
    True
    """
    t = int(scale)
    if not 1 <= t < 1 << 40:
        raise ParameterError(f"discrete Laplace scale must be an integer in [1, 2^40), got {scale}", field="scale")
    out = np.empty(int(size), dtype=np.int64)
    todo = np.arange(out.size)
    while todo.size:
        m = todo.size
        u = uniform_below(src, np.full(m, t))
        d = bernoulli_exp(src, u, np.full(m, t))
        x = u + t * _geometric_exp1(src, m)
        b = uniform_below(src, np.full(m, 2)) == 1
        ok = d & ~(b & (x == 0))  # reject -0 so that 0 is not counted twice
        out[todo[ok]] = np.where(b, -x, x)[ok]
        todo = todo[~ok]
    return out


def discrete_gaussian(src: RandomBits, sigma2: int, size: int) -> IntArray:
    """`size` draws of the discrete Gaussian P(x) proportional to exp(-x^2 / (2 sigma2)), exactly.

    `sigma2` is a positive integer below 2**26 (CKS Algorithm 3); use
    `discrete_gaussian_exact` for other rational variances.

    >>> z = discrete_gaussian(RandomBits(), 9, 3000)
    >>> bool(abs(z.mean()) < 0.4), bool(abs(z.var() - 9) < 1.5)
    (True, True)
    """
    p = int(sigma2)
    if not 1 <= p < 1 << 26:
        raise ParameterError(f"discrete Gaussian sigma2 must be an integer in [1, 2^26), got {sigma2}", field="sigma2")
    t = math.isqrt(p) + 1  # floor(sigma) + 1
    out = np.empty(int(size), dtype=np.int64)
    todo = np.arange(out.size)
    den = 2 * p * t * t
    while todo.size:
        y = discrete_laplace(src, t, todo.size)
        # accept w.p. exp(-(|y| - sigma^2/t)^2 / (2 sigma^2)) = exp(-(|y| t - p)^2 / (2 p t^2))
        dist = np.abs(y) * t - p
        far = np.abs(dist) >= 1 << 30  # beyond ~2^30/t sigma: decided exactly in Python ints
        num = np.where(far, 0, dist) ** 2
        ok = bernoulli_exp(src, num, np.full(y.size, den))
        for i in np.nonzero(far)[0]:
            ok[i] = bernoulli_exp_exact(src, Fraction(int(dist[i]) ** 2, den))
        out[todo[ok]] = y[ok]
        todo = todo[~ok]
    return out


# ---------------------------------------------------------------------------------------
# scalar samplers: any rational parameter, Python integers
# ---------------------------------------------------------------------------------------


def bernoulli_exp_exact(src: RandomBits, gamma: Fraction) -> bool:
    """Bernoulli(exp(-gamma)) for a rational gamma >= 0, exactly (CKS Algorithm 1).

    >>> bernoulli_exp_exact(RandomBits(), Fraction(0))
    True
    """
    while gamma > 1:
        if not bernoulli_exp_exact(src, Fraction(1)):
            return False
        gamma -= 1
    k = 1
    num, den = gamma.numerator, gamma.denominator
    while src.below(den * k) < num:  # Bernoulli(gamma / k)
        k += 1
    return k % 2 == 1


def discrete_laplace_exact(src: RandomBits, scale: Fraction | int) -> int:
    """One draw of the discrete Laplace law with a rational `scale` = t/s > 0, exactly (CKS Alg. 2).

    >>> isinstance(discrete_laplace_exact(RandomBits(), Fraction(7, 2)), int)
    True
    """
    sc = Fraction(scale)
    if sc <= 0:
        raise ParameterError("discrete Laplace scale must be > 0", field="scale")
    t, s = sc.numerator, sc.denominator
    while True:
        u = src.below(t)
        if not bernoulli_exp_exact(src, Fraction(u, t)):
            continue
        v = 0
        while bernoulli_exp_exact(src, Fraction(1)):
            v += 1
        y = (u + t * v) // s
        if src.below(2):
            if y == 0:
                continue
            return -y
        return y


def discrete_gaussian_exact(src: RandomBits, sigma2: Fraction | int) -> int:
    """One draw of the discrete Gaussian with a rational variance parameter `sigma2`, exactly.

    >>> isinstance(discrete_gaussian_exact(RandomBits(), Fraction(1, 3)), int)
    True
    """
    s2 = Fraction(sigma2)
    if s2 <= 0:
        raise ParameterError("discrete Gaussian sigma2 must be > 0", field="sigma2")
    t = _floor_sqrt_fraction(s2) + 1
    while True:
        y = discrete_laplace_exact(src, t)
        gamma = (abs(y) - s2 / t) ** 2 / (2 * s2)
        if bernoulli_exp_exact(src, gamma):
            return y


def _floor_sqrt_fraction(x: Fraction) -> int:
    """floor(sqrt(x)) for a rational x >= 0, exactly."""
    r = math.isqrt(x.numerator // x.denominator)
    while Fraction((r + 1) ** 2) <= x:
        r += 1
    while Fraction(r * r) > x:
        r -= 1
    return r
