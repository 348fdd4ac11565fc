"""Joint modelling on PPDT data: each party transforms its features, the modeller trains on them.

`ppdt_share` runs at every party (SPMD). Each party of the frame other than the
`modeller` fits a :class:`PPDT` on its own columns and sends only the noisy transform Z
(n x k, float64) with its public parameters (k, epsilon, noise scale) to the modeller, who
gets its own columns unchanged (its own data) beside every partner's Z, and trains an
ordinary model (scikit-learn, xgboost) on them. Each transforming party charges its
privacy ledger before it computes anything (`jointml.dp.budget.enforce`).

What each party learns: the modeller learns the partners' Z and the DP k x k second moment
of their projected rows (together one (epsilon, delta)-DP release per source, record-level)
and their public parameters;
partners learn nothing from the modeller. Semi-honest parties; a partner that skips the
noise harms only its own data's privacy.

>>> import pandas as pd
>>> from jointml.data.frames import from_pandas
>>> from jointml.core.prg import public_rng
>>> rng = public_rng(0)          # public example data
>>> a, b = pd.DataFrame({"y": rng.integers(0, 2, 300)}), pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
>>> def prog(ctx):
...     vdf = from_pandas(ctx, {"bank": a, "shop": b})
...     out = ppdt_share(ctx, vdf, "bank", k=2, epsilon=4.0, bounds={"shop": (-4.0, 4.0)})
...     return None if out is None else (out.X.shape, out.columns, round(out.epsilon["shop"], 2) <= 4.0)
>>> simulate(prog, ["bank", "shop"], mode="thread")["bank"]
((300, 3), ['y', 'shop:z0', 'shop:z1'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ...core.errors import ParameterError
from ...dp.budget import Ledger, enforce
from ...runtime.collectives import agree, send_to
from .model import Release
from .transform import PPDT

if TYPE_CHECKING:  # pragma: no cover
    from ...data.frames import VDataFrame
    from ...runtime.context import PartyContext

__all__ = ["PPDTData", "ppdt_share", "ppdt_frame"]


@dataclass
class PPDTData:
    """What the modeller holds: the feature matrix, its column names, each partner's epsilon."""

    X: np.ndarray
    columns: list[str]
    epsilon: dict[str, float]
    noise_scale: dict[str, float]
    #: per partner, its Z with its DP k x k moment and noise scales (for `NoiseAwareLinear`)
    releases: dict[str, Release] = field(default_factory=dict)


def ppdt_share(ctx: PartyContext, vdf: VDataFrame, modeller: str, k: int, epsilon: float, delta: float = 1e-5, *,
               bounds: Mapping[str, Any] | None = None, method: str = "pca", clip_norm: float = 1.0,
               ledger: Ledger | None = None, sources: Mapping[str, str] | str = "default",
               release: str | None = None) -> PPDTData | None:
    """Every partner's PPDT at the modeller (None at other parties); see the module docstring.

    `bounds` maps a party to its public feature bounds (one (lo, hi) pair or one per column,
    default (-3, 3)); with `release`, every partner's source is charged (epsilon, delta) first.
    """
    if modeller not in vdf.parties:
        raise ParameterError(f"the modeller '{modeller}' holds no part of the frame", field="modeller")
    partners = [p for p in vdf.parties if p != modeller]
    if release is not None:
        srcs = {p: (sources if isinstance(sources, str) else sources.get(p, "default")) for p in partners}
        enforce(ctx, ledger if ctx.me in partners else None,
                {p: [(srcs[p], float(epsilon), float(delta))] for p in partners}, release=release)
    # every partner checks that k fits its columns before anyone computes
    agree(ctx, partners, (f"k={k} exceeds its {len(vdf.columns[ctx.me])} columns"
                          if ctx.me in partners and k > len(vdf.columns[ctx.me]) else None),
          error=ParameterError, name="ppdt-k")
    blocks: list[np.ndarray] = []
    names: list[str] = []
    eps: dict[str, float] = {}
    scale: dict[str, float] = {}
    releases: dict[str, Release] = {}
    if ctx.me == modeller:
        own = vdf.parts[modeller].value
        blocks.append(own.to_numpy(dtype=np.float64))
        names += list(own.columns)
    n = len(vdf)
    for p in partners:
        arrays: list[np.ndarray] = []
        meta: dict[str, Any] | None = None
        if ctx.me == p:
            t = PPDT(k, epsilon, delta, bounds=(bounds or {}).get(p, (-3.0, 3.0)), clip_norm=clip_norm, method=method)
            arrays = [np.ascontiguousarray(t.fit_transform(vdf.parts[p].value.to_numpy(dtype=np.float64))),
                      np.ascontiguousarray(t.moment_)]
            # the wire format carries no infinity: epsilon = inf (no noise) travels as None
            meta = {"epsilon": t.epsilon_ if np.isfinite(t.epsilon_) else None, "noise_scale": t.noise_scale_,
                    "moment_noise": t.moment_noise_}
        got = send_to(ctx, p, modeller, meta=meta, arrays=arrays, name="ppdt", dtypes=[np.float64, np.float64],
                      shapes=[(n, k), (k, k)])
        if ctx.me == modeller and got is not None:
            blocks.append(got.arrays[0])
            names += [f"{p}:z{i}" for i in range(k)]
            eps[p] = float(got.meta["epsilon"]) if got.meta["epsilon"] is not None else float("inf")
            scale[p] = float(got.meta["noise_scale"])
            releases[p] = Release(got.arrays[0], got.arrays[1], float(got.meta["moment_noise"]), scale[p])
    if ctx.me != modeller:
        return None
    return PPDTData(np.hstack(blocks), names, eps, scale, releases)


def ppdt_frame(ctx: PartyContext, vdf: VDataFrame, modeller: str, k: int, epsilon: float, delta: float = 1e-5,
               **kw: Any) -> VDataFrame:
    """`ppdt_share` as a frame: one partition, at the modeller (its columns, then each partner's z columns).

    Every party calls it (SPMD) and gets the same schema; only the modeller holds values.
    Keyword arguments are those of `ppdt_share`. A pipeline component `ppdt` wraps this.

    >>> import pandas as pd
    >>> from jointml.data.frames import from_pandas
    >>> from jointml.core.prg import public_rng
    >>> rng = public_rng(1)          # public example data
    >>> a, b = pd.DataFrame({"y": rng.integers(0, 2, 200)}), pd.DataFrame(rng.normal(size=(200, 3)), columns=list("abc"))
    >>> def prog(ctx):
    ...     f = ppdt_frame(ctx, from_pandas(ctx, {"bank": a, "shop": b}), "bank", k=2, epsilon=4.0)
    ...     return f.parties, f.columns["bank"], f.local() is not None
    >>> out = simulate(prog, ["bank", "shop"], mode="thread")
    >>> out["shop"]
    (['bank'], ['y', 'shop:z0', 'shop:z1'], False)
    """
    import pandas as pd

    from ...data.frames import VDataFrame

    got = ppdt_share(ctx, vdf, modeller, k, epsilon, delta, **kw)
    value = None if got is None else pd.DataFrame(got.X, columns=got.columns)
    part = ctx.party(modeller).run(lambda: value)
    return VDataFrame(ctx, {modeller: part})
