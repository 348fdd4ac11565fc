"""The sigmoid family and softmax: sigmoid (three accuracy/cost modes), log_sigmoid,
softplus, softmax.

Built from one batched comparison for the sign and the clipping, e^-|x| (`exp_log`) and
polynomials; see each function for its cost and measured error. Nothing is revealed.

>>> from jointml.mpc import MpcDevice
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
...     x = ctx.party("alice").run(lambda: np.array([0.0, 2.0, -30.0])).to(mpc)
...     return sigmoid(x).reveal(), softmax(x).reveal()
>>> s, m = simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
>>> np.round(s, 4).tolist(), np.round(m, 4).tolist()
([0.5, 0.8808, 0.0], [0.1192, 0.8808, 0.0])
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from ...core.errors import ParameterError
from ..array import SecretArray
from .common import _as, _fint, _fx, _ltz, _mul, _mul1, _poly, _rescale
from .exp_log import _LOG_12, _exp_neg
from .reciprocal import _apply_factors, _recip_parts
from .reduce import max as _max

__all__ = ["sigmoid", "sigmoid_seg3_scaled", "log_sigmoid", "softplus", "softmax", "SIGMOID_MODES"]

#: 1/(1+e) for e in [0, 1] as a polynomial in w = 2e - 1; max abs error 1.1e-6.
_RECIP_1P = (
    0.666665598317, -0.222219351101, 0.0741071995694, -0.0247227520704,
    0.00807082569831, -0.00264937732762, 0.00115530522831, -0.000408519506941,
)

#: sigmoid(x) - 1/2 ~ u r(u^2), u = x/8, an odd degree-13 minimax polynomial on |x| <= 53/8;
#: beyond, the output saturates at 1/2 +- (_SIG_POLY_SAT - 1/2). Max abs error 6.8e-4 overall.
_SIG_POLY_T = 6.625
_SIG_POLY = (1.98561389757, -9.57058681284, 42.3242923784, -124.731557356, 219.895782096, -207.462020922, 80.1376301021)
_SIG_POLY_SAT = 0.999337488791

#: seg3: clip(1/2 + a x, 0, 1) with the minimax slope a = 725/4096 (max abs error 0.0561).
_SEG3_NUM, _SEG3_SHIFT = 725, 12

SIGMOID_MODES = ("accurate", "exp", "poly", "seg3")


def _abs_clip(x: SecretArray, T: int, extra: Any = ()) -> Any:
    """One batched comparison of 3 lanes: s = [x<0], h = [x>T], l = [x<-T]; returns
    (s, m = 1-2s, tc = min(|x|, T), [s*e for e in extra]). tc comes from a single xmul,
    c*x + (h+l)*T with c = 1-2s-h+l (0 when clipped), so it is exact for every encodable x."""
    T = int(T)
    s, above, below = _ltz([x, T - x, x + T])
    m = 1 - 2 * s
    cfac = m - above + below
    prods = _mul([(cfac, x, None)] + [(s, e, None) for e in extra])
    tc = prods[0] + (above + below) * T
    return s, m, tc, prods[1:]


def _sigmoid_accurate(x: SecretArray) -> SecretArray:
    f = x.device.frac_bits
    s, m, tc, _ = _abs_clip(x, 16)
    e = _exp_neg(tc)  # e^-|x| (clipped at |x| = 16: error <= 1.1e-7)
    w = 2 * e - 1
    g = _poly(w, _RECIP_1P, f)  # 1/(1+e)
    out: SecretArray = s + _mul1(m, g)
    return out


def _sigmoid_poly(x: SecretArray) -> SecretArray:
    f = x.device.frac_bits
    F = _fint(x)
    T = _SIG_POLY_T
    lo, hi = _ltz([x + T, T - x])  # x < -T, x > T
    # q is odd (q(0) = 0), so q(k u) = k q(u) for k in {0,1}: zero the input outside [-T, T]
    xk = _mul1(1 - lo - hi, x)
    u = _rescale(_as(xk, xk.fxp + 3), F)  # x/8 in [-0.83, 0.83]
    v = _mul1(u, u, F)
    q = _mul1(u, _poly(v, _SIG_POLY, F), f)
    return q + 0.5 + (hi - lo) * (_SIG_POLY_SAT - 0.5)


def _sigmoid_seg3(x: SecretArray) -> SecretArray:
    f = x.device.frac_bits
    a = _SEG3_NUM / float(1 << _SEG3_SHIFT)
    edge = 0.5 / a
    lo, hi = _ltz([x + edge, edge - x])  # x < -edge, x > edge
    y = _as(x * _SEG3_NUM, x.fxp + _SEG3_SHIFT) + 0.5  # 1/2 + a x (free: integer mul + relabel)
    k = lo + hi
    z = y - _mul1(k, y) + hi  # exact even where y overflowed (then k = 1)
    return _rescale(z, f)


def sigmoid_seg3_scaled(x: SecretArray, scale: float, fxp: int) -> SecretArray:
    """scale * sigmoid(x, "seg3") at `fxp` fractional bits, with the segment selection and the
    truncation in ONE product (for a gradient step: the public step size `scale` rides along).

    seg3 is clip(1/2 + a x, 0, 1) = (1 - k) y + h for y = 1/2 + a x, h = [x > edge] and
    k = [x < -edge] + h (one batched comparison). Here the public scale multiplies y
    before the selection (free: y is scaled by an integer), so (1 - k) (c y) is one product
    truncated to `fxp` (`mul_trunc` when the protocol fuses it, else mul then trunc): the
    product and the final rescale of `sigmoid(x, "seg3")` become one multiplication.
    x may carry more fractional bits than the device's (e.g. an untruncated product, 2f):
    the comparisons and y are exact at any scale. `scale` is kept with 13 significant bits
    or more (so that c y < 2^61 before truncation), e.g. a learning rate 0.5 / 1024 is
    off by at most 1.2e-4 relative. Cost: 2 cmp (one batch) + 1 mul_trunc; semi2k today
    6 + 2 rounds (6 + 1 with a fused mul_trunc) instead of 6 + 1 + 1 and a separate scaling.
    Same error as seg3 (max abs 0.056 of the sigmoid), times scale. Nothing is revealed.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], dealer="carol")
    ...     x = ctx.party("alice").run(lambda: np.array([-9.0, -1.0, 0.0, 2.0, 40.0])).to(mpc)
    ...     return sigmoid_seg3_scaled(x, 0.01, 30).reveal()
    >>> np.round(simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"] * 100, 4).tolist()
    [0.0, 0.323, 0.5, 0.854, 1.0]
    """
    x = _fx(x)
    c = float(scale)
    if not c > 0 or not 0 < fxp <= 48:
        raise ParameterError(f"sigmoid_seg3_scaled needs scale > 0 and 0 < fxp <= 48, got {scale}, {fxp}", field="scale")
    a = _SEG3_NUM / float(1 << _SEG3_SHIFT)
    edge = 0.5 / a
    lo, hi = _ltz([x + edge, edge - x])  # x < -edge, x > edge
    Y = x.fxp + _SEG3_SHIFT
    y = _as(x * _SEG3_NUM, Y) + 0.5  # 1/2 + a x at Y fractional bits: in [0, 1] where k = 0
    # c as an integer ci / 2^kc with ci < 2^(61 - Y): (1 - k) y ci 2^Y < 2^61 (protocols are exact below 2^62);
    # where k = 1, y may have wrapped and (1 - k) = 0 zeroes it exactly (ring product).
    budget = builtins.min(61 - Y, 24)
    kc = budget - 1 - math.floor(math.log2(c))
    ci = int(round(c * 2.0**kc))
    if ci <= 0 or Y + kc <= fxp:
        raise ParameterError(f"sigmoid_seg3_scaled: scale {c:g} cannot be kept at {fxp} fractional bits from an input "
                             f"with {x.fxp}", field="scale")
    yc = _as(y * ci, Y + kc)
    (sel,) = _mul([(1 - lo - hi, yc, fxp)])
    out: SecretArray = sel + _as(hi * int(round(c * 2.0**fxp)), fxp)
    return out


def sigmoid(x: SecretArray, mode: str = "accurate") -> SecretArray:
    """Logistic function 1/(1+e^-x), elementwise. Valid for every encodable x.

    mode:

    * ``"accurate"`` (alias ``"exp"``, default): s + (1-2s) / (1 + e^-|x|), s = [x < 0].
      3 cmp in one batch ([x<0], [x>16], [x<-16]) + 1 xmul giving min(|x|, 16);
      e^-|x| = p(|x|/8)^8 (quartic p fitted to the squared-up error, 3 squarings);
      1/(1+e) as a degree-7 minimax polynomial in 2e-1 (no division needed: 1+e is in
      [1, 2]); 1 xmul for the sign. semi2k: 306 B/party, 26 rounds. Max abs error
      (measured, 10^6 points) 7.9e-6 = 2.1 ulp (design: 3.1e-6 + 1.1e-6 + rounding).
    * ``"poly"``: clipped odd polynomial 1/2 + q(x) for |x| <= 6.625 (q odd of degree 13,
      minimax, in x/8), saturating to 1/2 +- 0.49934 outside. 2 cmp (one batch) + 1 xmul
      (zeroes x outside the range, so q never sees a large input) + 5 mul: 191 B/party,
      18 rounds. Max abs error 6.8e-4.
    * ``"seg3"``: clip(1/2 + a x, 0, 1) with the minimax slope a = 725/4096 = 0.177 (not 1/4
      or 1/8: error 0.056 instead of 0.12 / 0.13). 2 cmp + 1 xmul + 1 trunc: 62 B/party,
      8 rounds. Max abs error 0.056.

    Wall time for 10^6 elements, semi2k, 2 parties + dealer as processes over TLS on 2 cores
    (share + sigmoid + reveal), warm processes: accurate 1.7 s, poly 1.0 s, seg3 0.6 s; a
    fresh simulation adds 0.3-1 s (cold memory) and the shared machine varies by +-30%.
    """
    x = _fx(x)
    if mode in ("accurate", "exp"):
        return _sigmoid_accurate(x)
    if mode == "poly":
        return _sigmoid_poly(x)
    if mode == "seg3":
        return _sigmoid_seg3(x)
    raise ParameterError(f"unknown sigmoid mode {mode!r}; choose one of {SIGMOID_MODES}", field="mode")


def log_sigmoid(x: SecretArray) -> SecretArray:
    """log(sigmoid(x)) = min(x, 0) - log(1 + e^-|x|), stable for every encodable x.

    Same pipeline and cost as sigmoid(mode="accurate") (the product min(x, 0) = s x rides in
    the |x| round; log(1+e) is a degree-7 polynomial). semi2k: 306 B/party, 25 rounds. Max
    abs error (measured, 10^6 points) 7.1e-6."""
    x = _fx(x)
    f = x.device.frac_bits
    s, m, tc, (sx,) = _abs_clip(x, 16, extra=[x])
    e = _exp_neg(tc)
    w = 2 * e - 1
    h = _poly(w, _LOG_12, f)  # log(1 + e) = log(y), y = 1 + e in [1, 2], w = 2y - 3 = 2e - 1
    out: SecretArray = sx - h
    return out


def softplus(x: SecretArray) -> SecretArray:
    """log(1 + e^x) = -log_sigmoid(-x). Same cost and accuracy as log_sigmoid."""
    return -log_sigmoid(-x)


def softmax(x: SecretArray, axis: int = -1) -> SecretArray:
    """Softmax along `axis`: e^(x - max) / sum e^(x - max).

    max: tournament (ceil(log2 n) levels of 1 cmp + 1 xmul, n-1 comparisons per slice);
    t = max - x >= 0; 1 cmp for t > 16 (those terms become exactly 0; their true value is
    < 1.2e-7); e^-t with the quartic variant of sigmoid's exp (abs error 1.8e-7, since the
    errors add up in the sum); the sum lies in [1, n], so its reciprocal needs only
    ceil(log2(n)/4) - 1 threshold comparisons (none for n <= 16) + guess + 2 Newton; one
    final mul. semi2k, n = 10: 241 B/party per element, 66 rounds. Max abs error (measured)
    3.8e-6 for n = 10, 6.8e-6 for n = 100."""
    x = _fx(x)
    f = x.device.frac_bits
    nd = len(x.shape)
    if nd == 0:
        return softmax(x.reshape(1), 0).reshape(())
    n = x.shape[axis % nd]
    if n == 0 or x.size == 0:
        return x
    mx = _max(x, axis=axis, keepdims=True)
    t = mx - x
    (b,) = _ltz([16 - t])  # t > 16
    e = _exp_neg(t, precise=True)  # errors add up in the sum: use the quartic
    e = e - _mul1(b, e)  # exactly 0 where t > 16 (also kills any overflow there)
    S = e.sum(axis=axis, keepdims=True)  # in [1, n] (up to rounding)
    r, factors = _recip_parts(S, True, (1.0, builtins.max(n, 1)), 1.0)
    r = _apply_factors(r, factors, _fint(x))
    return _mul1(e, r, f)
