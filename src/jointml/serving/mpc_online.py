"""MPC-online scoring: serving a model whose parts stay secret-shared (SS-XGB).

An SS-XGB model (`jointml.ml.tree.ss_xgb`) keeps its leaf weights secret-shared between the
MPC parties; the tree structure (party, feature, bin index of each split) is public and each
split's threshold is known to its owner only. No party can score alone, and revealing the
weights or the split sides would show more than training and batch prediction did. So each
request runs the model's own batch prediction, under MPC, among the serving processes of the
same device: the bank, the partner and the dealer (semi2k; `jointml serve --party dealer`).
Per request every split owner computes its split bits for the ids (plaintext ``x <
threshold``) and secret-shares them; the leaf indicators are products of bits along the paths
and the margin ``sum_t reach_t . w_t`` stays secret until it is revealed to the bank.

What each party learns per request (semi-honest parties, the dealer not colluding):

- the bank: the score (margin) of each id, and whether the partner holds the id; nothing of
  the partner's split sides, the leaf weights or the partner's features;
- the partner: the ids asked for and when; nothing of the score or the bank's features;
- the dealer: the number of ids of each request (and when); no id, no value.

The bank learns the partner's contribution to the score only through the score itself (for
trees it is not a separable sum, so less than for a linear model). Costs: the MPC rounds of
`decision_function` (per tree, `max_depth` rounds of secret products) over the links, and the
dealer's randomness, per request: milliseconds on loopback, more on a WAN. SS-XGB rejects
missing values: an id whose features have one (at either party) is answered as an error, not
scored; an id the partner lacks is unknown (`--unknown missing` does not apply).

Example (the three parties in threads, a 2-tree model trained on the spot):

>>> from jointml.mpc import MpcDevice
>>> from jointml.ml.tree import SSXGBClassifier
>>> from jointml.core.prg import public_rng
>>> X = public_rng(0).normal(size=(60, 2)); y = (X.sum(axis=1) > 0).astype(float)
>>> def prog(ctx):
...     mpc = MpcDevice(ctx, ["bank", "partner"], dealer="dealer")
...     xs = {"bank": ctx.party("bank").put(X[:, :1]), "partner": ctx.party("partner").put(X[:, 1:])}
...     est = SSXGBClassifier(mpc, n_estimators=2, max_depth=2, max_bin=4).fit(xs, ctx.party("bank").put(y))
...     own = {"bank": X[:3, :1], "partner": X[:3, 1:]}.get(ctx.me)
...     got = margins(est, "bank", own, 3)
...     want = est.decision_function({p: ctx.party(p).put(X[:3, k:k + 1]) for k, p in enumerate(["bank", "partner"])})
...     return None if got is None else bool(np.allclose(got, want.value))
>>> simulate(prog, ["bank", "partner", "dealer"], mode="thread")["bank"]
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["open_model", "margins"]


def open_model(ctx: Any, predictor: Any) -> Any:
    """Load this party's secret-shared model part on the model's MPC device over the serving
    links (a collective of the bank, the partner and the dealer); returns the estimator."""
    from ..core.fixedpoint import DEFAULT_FRAC_BITS
    from ..jobs.registry import MODELS
    from ..mpc import MpcDevice

    m = predictor.mpc
    dealer = m.get("dealer") if m.get("protocol", "semi2k") == "semi2k" else None
    device = MpcDevice(ctx, list(m.get("parties") or predictor.parties), protocol=m.get("protocol", "semi2k"),
                       dealer=dealer, frac_bits=int(m.get("frac_bits") or DEFAULT_FRAC_BITS))
    return MODELS[predictor.model].load(device, predictor.kind, predictor.directory, None)


def margins(est: Any, label: str, own: np.ndarray | None, n: int) -> np.ndarray | None:
    """The margins of `n` rows at `label` (None elsewhere): every party calls it with its own
    rows `own` (rows, its columns), or None at the dealer."""
    ctx = est.ctx
    X = {p: ctx.party(p).run(lambda: np.asarray(own, dtype=np.float64)) for p in sorted(est.n_features_)}
    got = est.decision_function(X, to=label)
    return np.asarray(got.value, dtype=np.float64).reshape(n) if ctx.me == label else None
