"""Hybrid mode: train in a (SIMULATED) TEE, predict under MPC.

Training is cheap inside an attested enclave (:mod:`jointml.apps.tee_train`); prediction
then runs under MPC so that, after training, no single machine -- not the enclave host,
not any party -- holds the model in plaintext. The enclave's measured configuration
names the MPC device (``mpc={"protocol", "parties", "frac_bits"}``); each compute party
fetches its share of the fixed-point encoded model over its own attested session
(:func:`fetch_model_share`), then every party of the SPMD program rebuilds the secret
model (:func:`secret_model`) and scores rows whose features stay with their owners
(:func:`predict`), revealing scores to one named party only.

Security model: the TEE's (see :mod:`jointml.tee`) for training; for prediction the
MPC protocol's (semi2k: semi-honest, dealer trusted for correlated randomness; aby3:
semi-honest honest majority). The enclave returns the model only as shares, so it
must be configured with no ``result_parties`` for the model to stay secret. The party
that receives the scores learns them (and what they reveal about the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError
from ..mpc import MpcDevice, SecretArray, concatenate
from ..tee.enclave import EnclaveSession


@dataclass(frozen=True)
class ModelShare:
    """One compute party's share of a TEE-trained linear model (plain arrays, no secrets of others).

    >>> s = ModelShare("bob", "semi2k", ("alice", "bob"), 18, (1,), ("alice",), (np.zeros(2, np.uint64),))
    >>> s.party, len(s.shares)
    ('bob', 1)
    """

    party: str
    protocol: str
    parties: tuple[str, ...]
    frac_bits: int
    widths: tuple[int, ...]  # feature columns per feature party, in training order
    feature_parties: tuple[str, ...]
    shares: tuple[np.ndarray, ...]  # semi2k: (s_i,); aby3: (s_i, s_{i+1})


def fetch_model_share(session: EnclaveSession) -> ModelShare:
    """Over the party's attested session: its secret share of the trained model.

    >>> fetch_model_share.__module__  # needs a trained hybrid enclave: see tests/test_tee.py
    'jointml.apps.hybrid'
    """
    r = session.call("model_share")
    shares = tuple(a.astype(np.uint64, copy=True) for a in r.expect([np.uint64] * len(r.arrays)))
    m = r.meta
    return ModelShare(party=session.identity.name, protocol=m["protocol"], parties=tuple(m["parties"]),
                      frac_bits=int(m["frac_bits"]), widths=tuple(int(w) for w in m["widths"]),
                      feature_parties=tuple(m["columns"]), shares=shares)


def secret_model(mpc: MpcDevice, share: ModelShare | None, size: int) -> SecretArray:
    """Rebuild the secret model (coef..., intercept) on `mpc` from this party's share.

    Compute parties pass their ModelShare; other parties of the program (a dealer, an
    outside data owner) pass None. `size` (features + 1) is public.

    >>> from jointml.mpc import MpcDevice, sharing
    >>> parts = sharing.split(np.array([0.5, -1.0]), "semi2k", parties=2, frac_bits=18)
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
    ...     mine = {p: ModelShare(p, "semi2k", ("alice", "bob"), 18, (1,), ("alice",), parts[i])
    ...             for i, p in enumerate(("alice", "bob"))}.get(ctx.me)
    ...     w = secret_model(mpc, mine, 2).reveal(to="alice")  # a test: the model is normally never opened
    ...     return w.value.tolist() if ctx.me == "alice" else None
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    [0.5, -1.0]
    """
    me = mpc.ctx.me
    if share is None:
        if me in mpc.parties:
            raise ConfigError(f"party '{me}': compute party of the MPC device but no model share given")
        return mpc.import_share([], (size,))
    if share.protocol != mpc.protocol_name or tuple(share.parties) != tuple(mpc.parties):
        raise ConfigError(f"party '{me}': model shares are for {share.protocol} over {list(share.parties)}, "
                          f"the device is {mpc.protocol_name} over {list(mpc.parties)}")
    if share.frac_bits != mpc.frac_bits:
        raise ConfigError(f"party '{me}': model shares use {share.frac_bits} fractional bits, device {mpc.frac_bits}")
    if any(s.shape != (size,) for s in share.shares):
        raise ConfigError(f"party '{me}': model share has shape {share.shares[0].shape}, expected ({size},)")
    return mpc.import_share(share.shares, (size,))


def predict(mpc: MpcDevice, features: dict, w: SecretArray, to: str):
    """Scores (log-odds) of rows whose column blocks stay with their owners, revealed to `to`.

    `features`: feature party -> PartyObject of its block, in training order.

    >>> from jointml.mpc import MpcDevice
    >>> def prog(ctx):
    ...     mpc = MpcDevice(ctx, ["alice", "bob"], protocol="semi2k", dealer="carol")
    ...     w = ctx.party("alice").run(lambda: np.array([1.0, 2.0, 0.5])).to(mpc)  # coef, coef, intercept
    ...     feats = {"alice": ctx.party("alice").run(lambda: np.ones((2, 1))),
    ...              "bob": ctx.party("bob").run(lambda: np.full((2, 1), 2.0))}
    ...     out = predict(mpc, feats, w, to="bob")
    ...     return out.value.tolist() if ctx.me == "bob" else None
    >>> simulate(prog, ["alice", "bob", "carol"], mode="thread")["bob"]
    [5.5, 5.5]
    """
    X = concatenate([o.to(mpc, fxp=True) for o in features.values()], axis=1)
    d = X.shape[1]
    if w.shape != (d + 1,):
        raise ConfigError(f"model has {w.shape[0] - 1} features, the joined blocks have {d}")
    return (X @ w[:d] + w[d]).reveal(to=to)
