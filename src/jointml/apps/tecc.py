"""TECC: logistic regression under ABY3 with each MPC party in its own attested enclave (SIMULATED TEE).

Three enclaves run the registered program ``jointml.apps.tecc``; each has a *role*
(``p0``, ``p1``, ``p2``) that is part of its measured configuration, and the code it
runs (this module, the MPC engine ``jointml.mpc``, the estimators ``jointml.ml``,
``jointml.net``, ``jointml.runtime``, ``jointml.core``) is measured too. The enclaves:

1. attest each other pairwise and connect over attested links relayed by the
   untrusted host (:mod:`jointml.tee.tecc`: :class:`~jointml.tee.tecc.TeccCluster`,
   :class:`~jointml.tee.tecc.PeerLinks`);
2. receive their inputs as *replicated secret shares*: each data owner verifies all
   three enclaves, splits its fixed-point encoded matrix into x0 + x1 + x2 (mod 2^64,
   cryptographic PRG) and sends enclave i the pair (x_i, x_{i+1}) over its attested
   session (:func:`share_input`). No enclave ever holds a plaintext input;
3. train :class:`jointml.ml.linear.SSLogisticRegression` -- the project's estimator --
   on an :class:`~jointml.mpc.MpcDevice` with protocol ``aby3`` whose parties are the
   three enclaves and whose links are the enclave-to-enclave links: full-batch gradient
   descent (``batch_size=None``) on mean log-loss + l2/2 ||w||^2, weights kept shared
   (``reveal="shared"``);
4. optionally score rows the data owners shared as ``Xtest@<party>`` (logits appended
   after the model);
5. return the model to a result party as shares only; the party reconstructs it
   (:func:`reconstruct`) and checks that the replicated components agree, which
   exposes a single enclave returning a wrong share.

Threat model: confidentiality holds if at most ONE of the three enclaves is broken
(its TEE compromised -- in SIMULATION: its host is curious, since the simulation gives
no hardware protection) and the others follow the protocol; the hosts and network see
only ciphertext, sizes and timing. TECC = TEE *and* MPC: breaking one TEE is not
enough, and a single MPC party's host learns nothing because its shares sit in an
enclave. Semi-honest ABY3: a malicious enclave can bias the result (detected at
reconstruction only for the output shares). Who learns what: the result party
learns the model (and the test scores); data owners learn the public shapes; the
enclaves learn shapes, the hyperparameters and the public batch order. The three
enclaves must run on three distinct platforms (checked by every enclave and by every
data owner before it sends a share): two roles on one platform would fall together.

>>> cfg = tecc_config({"alice": b"a" * 32}, feature_parties=["alice"], label_party="alice",
...                   result_parties=["alice"], peer_policy={}, epochs=5)
>>> cfg["tecc"]["protocol"], cfg["tecc"]["epochs"], sorted(role_measurements(cfg))
('aby3', 5, ['p0', 'p1', 'p2'])
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import AccessDenied, ConfigError, DataError, ParameterError, ProtocolError
from ..core.fixedpoint import DEFAULT_FRAC_BITS
from ..mpc import sharing
from ..tee import tecc as infra
from ..tee.attestation import measure
from ..tee.enclave import EnclaveSession
from ..tee.tecc import ROLES, role_config

PROGRAM = "jointml.apps.tecc"
JOBS = ("logistic_regression_gd",)
__all__ = ["PROGRAM", "ROLES", "TeccCluster", "tecc_config", "role_measurements", "share_input", "reconstruct",
           "plaintext_reference"]


# ------------------------------------------------------------------------------------
# configuration and data-owner helpers (host / party side)
# ------------------------------------------------------------------------------------


def tecc_config(parties: Mapping[str, bytes], *, feature_parties: Sequence[str], label_party: str,
                result_parties: Sequence[str], peer_policy: Mapping, epochs: int = 30, learning_rate: float = 1.0,
                l2: float = 0.0, frac_bits: int = DEFAULT_FRAC_BITS, sigmoid: str = "accurate",
                recv_timeout: float = 60.0) -> dict:
    """The configuration shared by the three TECC enclaves (each adds its ``role``).

    >>> tecc_config({"a": b"k" * 32}, feature_parties=["a"], label_party="a", result_parties=["b"], peer_policy={})
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: party 'b' has no identity key in the TECC configuration
    """
    for p in [*feature_parties, label_party, *result_parties]:
        if p not in parties:
            raise ConfigError(f"party {p!r} has no identity key in the TECC configuration")
    return {"parties": {k: bytes(v).hex() for k, v in parties.items()}, "feature_parties": list(feature_parties),
            "label_party": label_party, "result_parties": list(result_parties), "peer_policy": dict(peer_policy),
            "tecc": {"roles": list(ROLES), "protocol": "aby3", "frac_bits": int(frac_bits),
                     "job": "logistic_regression_gd", "epochs": int(epochs), "learning_rate": float(learning_rate),
                     **({"l2": float(l2)} if l2 else {}),
                     "sigmoid": sigmoid, "recv_timeout": float(recv_timeout)}}


def role_measurements(config: Mapping) -> dict[str, str]:
    """What data owners allow-list: the measurement of each role's enclave (they differ by role).

    >>> cfg = tecc_config({"a": b"k" * 32}, feature_parties=["a"], label_party="a", result_parties=["a"], peer_policy={})
    >>> len(set(role_measurements(cfg).values()))
    3
    """
    return {r: measure(PROGRAM, role_config(config, r)) for r in config["tecc"]["roles"]}


def share_input(sessions: Mapping[str, EnclaveSession], name: str, value: np.ndarray,
                frac_bits: int = DEFAULT_FRAC_BITS) -> None:
    """Split `value` into replicated shares and send enclave i the pair (x_i, x_{i+1}).

    `sessions`: role -> the data owner's attested session with that role's enclave. Nothing
    is sent unless the three sessions cover the three roles and their attested quotes name
    three distinct platforms (:func:`jointml.tee.tecc.require_distinct_platforms`). Labels
    (``name == "y"``) are checked to be 0/1 here, at their owner: the enclaves see shares only.

    >>> from types import SimpleNamespace as NS
    >>> class Session:  # stands in for an attested EnclaveSession on platform `pid`
    ...     def __init__(self, pid):
    ...         self.attested = NS(quote=NS(platform_id=pid))
    ...     def call(self, op, meta, arrays):
    ...         print(op, meta["name"], meta["shape"], [a.dtype.name for a in arrays])
    >>> share_input({r: Session(f"platform-{r}") for r in ROLES}, "y", np.array([0.0, 1.0]))
    tecc_input y [2] ['uint64', 'uint64']
    tecc_input y [2] ['uint64', 'uint64']
    tecc_input y [2] ['uint64', 'uint64']
    >>> share_input({r: Session("one-machine") for r in ROLES}, "y", np.array([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    jointml.core.errors.AccessDenied: field 'platform_id': TECC roles p0 and p1 run on the same platform one-machine: ...
    """
    if sorted(sessions) != sorted(ROLES):
        raise ConfigError(f"TECC input needs a session with each role {list(ROLES)}, got {sorted(sessions)}",
                          field="sessions")
    infra.require_distinct_platforms({r: sessions[r].attested.quote.platform_id for r in ROLES})
    value = np.asarray(value, dtype=np.float64)
    if name == "y" and not np.isin(value, (0.0, 1.0)).all():
        raise DataError("labels must be 0/1", field="y")
    parts = sharing.split(value, "aby3", parties=len(ROLES), frac_bits=frac_bits)
    for r, mine in zip(ROLES, parts, strict=True):
        sessions[r].call("tecc_input", {"name": name, "shape": list(value.shape)}, list(mine))


def reconstruct(sessions: Mapping[str, EnclaveSession], frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """A result party: fetch the result shares from the three enclaves, check, decode.

    >>> reconstruct.__module__  # needs a finished TECC job: see tests/test_tee.py
    'jointml.apps.tecc'
    """
    got = [sessions[r].call("tecc_result").arrays for r in ROLES]
    return sharing.combine(got, "aby3", frac_bits, names=[f"enclave {r}" for r in ROLES])


class TeccCluster(infra.TeccCluster):
    """The three role enclaves of the TECC program (host side); ``run()`` trains in all three.

    >>> TeccCluster.__mro__[1].__module__
    'jointml.tee.tecc'
    """

    def __init__(self, config: Mapping, *, platform_dir=None, debug: bool = False):
        super().__init__(PROGRAM, config, platform_dir=platform_dir, debug=debug)

    def run(self, timeout: float = 600.0) -> dict[str, dict]:  # type: ignore[override]
        """Run the configured MPC job in all three enclaves; each returns its public summary."""
        return super().run("tecc_run", timeout)


def plaintext_reference(X: np.ndarray, y: np.ndarray, epochs: int = 30, learning_rate: float = 1.0,
                        l2: float = 0.0) -> np.ndarray:
    """The same full-batch gradient descent in float64: what TECC should reproduce.

    >>> plaintext_reference(np.array([[1.0], [-1.0]]), np.array([1.0, 0.0]), epochs=1).round(3).tolist()
    [0.5, 0.0]
    """
    n, d = X.shape
    w, b = np.zeros(d), 0.0
    for _ in range(epochs):
        r = 1.0 / (1.0 + np.exp(-(X @ w + b))) - y
        w = w - learning_rate / n * (X.T @ r) - learning_rate * l2 * w
        b = b - learning_rate / n * r.sum()
    return np.concatenate([w, [b]])


# ------------------------------------------------------------------------------------
# enclave side
# ------------------------------------------------------------------------------------


class EnclaveProgram:
    """Runs inside each TECC enclave (see :mod:`jointml.tee._boot`); the host never calls it.

    >>> EnclaveProgram.__module__
    'jointml.apps.tecc'
    """

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.cfg = rt.config
        self.t = self.cfg["tecc"]
        self.peers = infra.PeerLinks(rt, self.t["roles"], float(self.t["recv_timeout"]))
        self.role = self.peers.role
        self.inputs: dict[str, tuple] = {}
        self.result: tuple | None = None

    # -- peers (infrastructure) ---------------------------------------------------------
    def on_deliver(self, meta, arrays) -> None:
        self.peers.deliver(meta, arrays)

    def on_task(self, op, meta, arrays):
        done = self.peers.handle(op, meta)
        if done is not None:
            return done
        if op == "tecc_run":
            return self._run()
        raise ParameterError(f"unknown TECC task {op!r}", field="op")

    # -- data owners --------------------------------------------------------------------
    def on_call(self, party, op, meta, arrays):
        if op == "tecc_input":
            name = str(meta["name"])
            expected = {f"X@{p}": p for p in self.cfg["feature_parties"]}
            expected.update({f"Xtest@{p}": p for p in self.cfg["feature_parties"]})  # optional: rows to score
            expected["y"] = self.cfg["label_party"]
            if expected.get(name) != party:
                raise AccessDenied(f"party {party!r} may not provide input {name!r}")
            shape = tuple(int(s) for s in meta["shape"])
            a, b = arrays
            if a.dtype != np.uint64 or b.dtype != np.uint64 or a.shape != shape or b.shape != shape:
                raise DataError(f"input {name!r} from {party!r}: expected two uint64 shares of shape {shape}")
            self.inputs[name] = (a.copy(), b.copy())
            return {"name": name}, []
        if op == "tecc_result":
            if party not in self.cfg["result_parties"]:
                raise AccessDenied(f"party {party!r} is not a result party of this TECC job")
            if self.result is None:
                raise ProtocolError("no TECC result yet")
            return {"role": self.role}, list(self.result)
        raise ParameterError(f"unknown operation {op!r}", field="op")

    # -- the MPC job ------------------------------------------------------------------
    def _run(self):
        from ..ml.linear import SSLogisticRegression
        from ..mpc import MpcDevice, concatenate

        names = [f"X@{p}" for p in self.cfg["feature_parties"]]
        missing = [n for n in names + ["y"] if n not in self.inputs]
        if missing:
            raise DataError(f"missing inputs {missing}")
        ctx = self.peers.context()
        mpc = MpcDevice(ctx, self.t["roles"], protocol="aby3", frac_bits=int(self.t["frac_bits"]))

        def secret(name):
            return mpc.import_share(self.inputs[name], self.inputs[name][0].shape)

        X = concatenate([secret(nm) for nm in names], axis=1)
        y = secret("y")
        n, d = X.shape
        if y.shape != (n,):
            raise DataError(f"labels have shape {y.shape}, features {X.shape}")
        model = SSLogisticRegression(mpc, epochs=int(self.t["epochs"]), batch_size=None,
                                     learning_rate=float(self.t["learning_rate"]), l2=float(self.t.get("l2", 0.0)),
                                     sigmoid=self.t["sigmoid"], reveal="shared")
        # the joint matrix is one secret block; its key only has to be a party of the job.
        # The labels are already secret-shared: fit has no label holder (the 0/1 check ran
        # at the data owner, in share_input).
        first = mpc.parties[0]
        t0 = time.perf_counter()
        model.fit({first: X}, y)
        seconds = time.perf_counter() - t0
        out = concatenate([model.w_shared_, model.b_shared_.reshape(1)], axis=0)
        m_test = self._score(model, first, d)
        if m_test:
            out = concatenate([out, m_test[1]], axis=0)
        if out.fxp != mpc.frac_bits:  # the result party decodes at the configured frac_bits
            raise ProtocolError(f"TECC result has {out.fxp} fractional bits, expected {mpc.frac_bits}", party=self.role)
        self.result = tuple(out.export_share())
        st = ctx.stats()
        return {"role": self.role, "rows": int(n), "features": int(d), "test_rows": m_test[0] if m_test else 0,
                "seconds": seconds, "bytes_sent": int(st["bytes_sent"]), "rounds": int(st["rounds"])}, []

    def _score(self, model, key: str, d: int):
        """Logits of the optional test rows under MPC: (rows, secret logits), or None."""
        from ..mpc import concatenate

        names = [f"Xtest@{p}" for p in self.cfg["feature_parties"]]
        if not any(nm in self.inputs for nm in names):
            return None
        if not all(nm in self.inputs for nm in names):
            raise DataError(f"missing test inputs {[nm for nm in names if nm not in self.inputs]}")
        mpc = model.mpc
        T = concatenate([mpc.import_share(self.inputs[nm], self.inputs[nm][0].shape) for nm in names], axis=1)
        if T.shape[1] != d:
            raise DataError(f"test rows have {T.shape[1]} features, training rows {d}")
        return int(T.shape[0]), model.decision_function_shared({key: T})
