"""SecureBoost at the label holder: sampling, gradient encoding, split search, leaf weights.

Everything here runs at the label holder on its own plaintext (labels, gradients,
decrypted histograms); nothing is sent from this module. See
:mod:`jointml.ml.tree.secureboost` for the protocol and what each party learns.

>>> hist = {"bank": np.array([[-2.0, 2.0], [2.0, 2.0], [0.0, 0.0]])}   # 2 bins + missing
>>> best_split(hist, 0.0, 4.0, {"bank": np.array([3])}, {"bank": np.array([True])},
...            reg_lambda=1.0, min_child_weight=1.0, gamma=0.0)
('bank', 0, 0, False, 2.6666666666666665)
"""

from __future__ import annotations

import math

import numpy as np

from ....core.prg import Prg
from ....he import SCHEMES
from ...base import check_param
from .errors import SecureBoostError, SecureBoostParameterError

__all__ = ["sample", "gradient_slot_bits", "best_split", "check_params", "EPS"]

EPS = 1e-6


def sample(n: int, subsample: float, colsample: float, feature_parties: list[str],
           n_features: dict[str, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows of this tree and each party's column sample, from the cryptographic PRG.

    >>> rows, cols = sample(5, 1.0, 1.0, ["bank"], {"bank": 2})
    >>> rows.tolist(), cols["bank"].tolist()
    ([0, 1, 2, 3, 4], [True, True])
    """
    prg = Prg(stream="secureboost-sample")
    if subsample < 1.0:
        k = max(1, round(subsample * n))
        rows = np.sort(np.argsort(prg.uint64(n), kind="stable")[:k]).astype(np.int64)
    else:
        rows = np.arange(n, dtype=np.int64)
    total = sum(n_features.values())
    kc = max(1, round(colsample * total))
    chosen = np.zeros(total, dtype=bool)
    chosen[np.argsort(prg.uint64(total), kind="stable")[:kc]] = True
    colmask, off = {}, 0
    for p in feature_parties:
        colmask[p] = chosen[off: off + n_features[p]]
        off += n_features[p]
    return rows, colmask


def gradient_slot_bits(gs: np.ndarray, hs: np.ndarray, frac_bits: int, budget_bits: int, key_bits: int,
                       label: str) -> int:
    """Slot width for packed (g, h) so that a sum over all sampled rows fits.

    The bound is exact: a slot holds a sum of at most ``len(gs)`` encoded values of
    magnitude ``<= vmax``, so ``len(gs) * vmax`` must fit a signed slot (``2**(b-1) - 1``).
    At 100,000 rows and 24 fractional bits this gives 42-bit slots (84-bit pairs, 8 per
    2048-bit OU ciphertext instead of 7 with the former ``bits(vmax) + bits(rows) + 2``):
    fewer decryptions and compression squarings, one table product less per encryption.
    The slot width still reveals ``max(|g|, h)`` only to within a factor 2.

    >>> gradient_slot_bits(np.array([0.5, -1.0]), np.array([0.25, 0.25]), 8, 500, 512, "bank")
    11
    """
    F = frac_bits
    vmax = max(int(np.abs(gs).max() * 2.0 ** F) + 1, int(hs.max() * 2.0 ** F) + 1, 1)
    slot_bits = (max(1, len(gs)) * vmax).bit_length() + 1  # signed: |sum| <= 2**(b-1) - 1
    if 2 * slot_bits > budget_bits:
        raise SecureBoostError(
            f"party '{label}': gradients need {slot_bits}-bit slots, too wide for {key_bits}-bit keys "
            "(lower hist_frac_bits or scale the target)")
    return slot_bits


def best_split(hists: dict, G: float, H: float, nb_of: dict, colmask: dict, *, reg_lambda: float,
               min_child_weight: float, gamma: float) -> tuple | None:
    """(party, feature, bin, default_left, gain) of the best split of a node, or None.

    XGBoost's gain ``GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda)`` against
    ``gamma``, ``min_child_weight`` on both sides, missing values tried on both sides.
    """
    lam, mcw = reg_lambda, min_child_weight
    if H < 2 * mcw:
        return None
    parent = G * G / (H + lam)
    best = None
    best_gain = max(gamma, EPS)
    for p, hist in hists.items():
        sel = np.flatnonzero(colmask[p])
        nb = nb_of[p][sel]
        offs = np.concatenate([[0], np.cumsum(nb)])
        for j, f in enumerate(sel):
            cand = _best_in_feature(hist[offs[j]: offs[j + 1]], G, H, lam, mcw, parent)
            if cand is not None and cand[2] > best_gain:
                best_gain = cand[2]
                best = (p, int(f), cand[0], cand[1], best_gain)
    return best


def _best_in_feature(hb: np.ndarray, G: float, H: float, lam: float, mcw: float,
                     parent: float) -> tuple[int, bool, float] | None:
    reg, miss = hb[:-1], hb[-1]
    cg, ch = np.cumsum(reg[:, 0]), np.cumsum(reg[:, 1])
    has_miss = miss[1] > 0 or miss[0] != 0
    last = len(reg) if has_miss else len(reg) - 1
    best = None
    for dflt, (gl, hl) in ((False, (cg[:last], ch[:last])),
                           (True, (cg[:len(reg) - 1] + miss[0], ch[:len(reg) - 1] + miss[1]))):
        if (dflt and not has_miss) or len(gl) == 0:
            continue
        gr, hr = G - gl, H - hl
        ok = (hl >= mcw) & (hr >= mcw)
        gain = np.where(ok, gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent, -np.inf)
        k = int(np.argmax(gain))
        if best is None or gain[k] > best[2]:
            best = (k, dflt, float(gain[k]))
    return best


def check_params(est) -> None:
    """Validate the hyperparameters of a SecureBoost estimator (ParameterError is a
    SecureBoostError: both name the field)."""
    err = SecureBoostParameterError

    def chk(name, ok, expect):
        try:
            check_param(name, getattr(est, name), ok, expect)
        except Exception as e:  # noqa: BLE001 - re-raised as the model's error, same text
            raise err(str(e), field=None) from None

    chk("n_estimators", lambda v: int(v) == v and v >= 1, "an integer >= 1")
    chk("learning_rate", lambda v: v > 0, "> 0")
    chk("max_depth", lambda v: int(v) == v and 1 <= v <= 16, "an integer in [1, 16]")
    for name in ("min_child_weight", "reg_lambda", "gamma"):
        chk(name, lambda v: v >= 0, ">= 0")
    for name in ("subsample", "colsample_bytree"):
        chk(name, lambda v: 0 < v <= 1, "in (0, 1]")
    chk("max_bin", lambda v: int(v) == v and 2 <= v <= 1024, "an integer in [2, 1024]")
    chk("early_stopping_rounds", lambda v: v is None or (int(v) == v and v >= 1), "an integer >= 1 or None")
    chk("hist_frac_bits", lambda v: int(v) == v and 8 <= v <= 40, "an integer in [8, 40]")
    chk("encrypt_window", lambda v: v is None or (int(v) == v and 1 <= v <= 14),
        "an integer in [1, 14] or None (14 with OU, 12 with Paillier)")
    if est.he_scheme == "paillier":
        chk("encrypt_window", lambda v: v is None or v <= 12, "<= 12 with he_scheme='paillier'")
    chk("key_bits", lambda v: int(v) == v and v >= 256 and v % 2 == 0, "an even integer >= 256")
    chk("label_dp", lambda v: v is None or (v > 0 and math.isfinite(v)), "None or a finite epsilon > 0")
    if getattr(est, "label_dp", None) is not None and est.objective != "binary:logistic":
        raise err("label_dp (randomized response on the labels) is for SecureBoostClassifier only: "
                  "a regressor's labels are not classes", field="label_dp")
    chk("base_score", lambda v: v is None or float(v) == float(v), "a number or None")
    chk("he_scheme", lambda v: v in SCHEMES, f"one of {list(SCHEMES)}")
    chk("protection", lambda v: v in ("none", "mpc"), "'none' (HE bin sums: a semi-honest label holder) or 'mpc'")
    if est.protection == "mpc":
        chk("dealer", lambda v: isinstance(v, str) and v != "", "the name of the MPC dealer with protection='mpc'")
        chk("reg_lambda", lambda v: v > 0, "> 0 with protection='mpc' (lower bound of the secure reciprocal)")
