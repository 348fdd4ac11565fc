"""TECC: MPC whose parties each run in a separately attested (SIMULATED) enclave.

Three enclaves run the registered program ``jointml.tee.tecc``; each has a *role*
(``p0``, ``p1``, ``p2``) that is part of its measured configuration, so its measurement
says which role it plays, and the MPC engine it runs (``jointml.mpc``, ``jointml.net``,
``jointml.runtime``, ``jointml.core``) is measured too. The enclaves:

1. attest each other pairwise (each verifies the other's quote against its measured
   ``peer_policy`` and the exact measurement of the role the peer claims) and key a
   channel per pair from their attested X25519 keys (static-static ECDH, transcript =
   both roles and keys). MPC messages travel as AES-GCM records with sequence
   numbers, relayed by the untrusted host (``relay`` / ``deliver`` frames);
2. receive their inputs as *replicated secret shares*: each data owner verifies all
   three enclaves, splits its fixed-point encoded matrix into x0 + x1 + x2 (mod 2^64,
   OS randomness) and sends enclave i the pair (x_i, x_{i+1}) over its attested
   session (:func:`share_input`). No enclave ever holds a plaintext input;
3. run ABY3 (3-party, honest majority) over those shares: here, logistic regression by
   full-batch gradient descent (:data:`JOBS`);
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
learns the model; data owners learn the public shapes; the enclaves learn shapes and
the number of iterations.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Mapping, Sequence

import numpy as np

from . import channel as ch
from .attestation import Policy, Verifier, measure
from .enclave import Enclave, EnclaveDied, EnclaveError, EnclaveSession

PROGRAM = "jointml.tee.tecc"
ROLES = ("p0", "p1", "p2")
JOBS = ("logistic_regression_gd",)


# ------------------------------------------------------------------------------------
# configuration and data-owner helpers (host / party side)
# ------------------------------------------------------------------------------------


def tecc_config(parties: Mapping[str, bytes], *, feature_parties: Sequence[str], label_party: str,
                result_parties: Sequence[str], peer_policy: Mapping, epochs: int = 30, learning_rate: float = 1.0,
                l2: float = 0.0, frac_bits: int = 18, sigmoid: str = "accurate", recv_timeout: float = 60.0) -> dict:
    """The configuration shared by the three TECC enclaves (each adds its ``role``)."""
    for p in [*feature_parties, label_party, *result_parties]:
        if p not in parties:
            raise ValueError(f"party {p!r} has no identity key in the TECC configuration")
    return {"parties": {k: bytes(v).hex() for k, v in parties.items()}, "feature_parties": list(feature_parties),
            "label_party": label_party, "result_parties": list(result_parties), "peer_policy": dict(peer_policy),
            "tecc": {"roles": list(ROLES), "protocol": "aby3", "frac_bits": int(frac_bits),
                     "job": "logistic_regression_gd", "epochs": int(epochs), "learning_rate": float(learning_rate),
                     **({"l2": float(l2)} if l2 else {}),
                     "sigmoid": sigmoid, "recv_timeout": float(recv_timeout)}}


def role_config(config: Mapping, role: str) -> dict:
    return {**config, "role": role}


def role_measurements(config: Mapping) -> dict[str, str]:
    """What data owners allow-list: the measurement of each role's enclave."""
    return {r: measure(PROGRAM, role_config(config, r)) for r in config["tecc"]["roles"]}


def _encode(x: np.ndarray, frac_bits: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("cannot secret-share NaN or infinite values")
    bound = 2.0 ** (62 - frac_bits)
    if x.size and np.abs(x).max() >= bound:
        raise ValueError(f"value out of the fixed-point range |x| < {bound:g}")
    return np.rint(x * 2.0 ** frac_bits).astype(np.int64).view(np.uint64)


def _random_ring(shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    return np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64).reshape(shape).copy()


def share_input(sessions: Mapping[str, EnclaveSession], name: str, value: np.ndarray, frac_bits: int = 18) -> None:
    """Split `value` into replicated shares and send enclave i the pair (x_i, x_{i+1}).

    `sessions`: role -> the data owner's attested session with that role's enclave."""
    enc = _encode(value, frac_bits)
    x0, x1 = _random_ring(enc.shape), _random_ring(enc.shape)
    comps = [x0, x1, enc - x0 - x1]
    for i, r in enumerate(ROLES):
        sessions[r].call("tecc_input", {"name": name, "shape": list(enc.shape)}, [comps[i], comps[(i + 1) % 3]])


def reconstruct(sessions: Mapping[str, EnclaveSession], frac_bits: int = 18) -> np.ndarray:
    """A result party: fetch the result shares from the three enclaves, check, decode."""
    got = {r: sessions[r].call("tecc_result").arrays for r in ROLES}
    comps = [got[r][0] for r in ROLES]
    for i, r in enumerate(ROLES):  # role i also holds x_{i+1}: the replicas must agree
        if not np.array_equal(got[r][1], comps[(i + 1) % 3]):
            raise ValueError(f"TECC result: enclave {r} returned a share inconsistent with enclave "
                             f"{ROLES[(i + 1) % 3]} (a faulty or malicious enclave)")
    total = comps[0] + comps[1] + comps[2]
    return total.view(np.int64).astype(np.float64) / 2.0 ** frac_bits


class TeccCluster:
    """Host side: start the three role enclaves, connect them pairwise, route their records.

    The host is untrusted: it only forwards ciphertext records between enclaves (kept
    in :attr:`relay_log` of each enclave for inspection)."""

    def __init__(self, config: Mapping, *, platform_dir=None, debug: bool = False):
        self.config = dict(config)
        self.enclaves: dict[str, Enclave] = {}
        self._queues: dict[str, list] = {}
        self._cv = threading.Condition()
        self._stop = False
        self.events: list[str] = []
        try:
            for r in ROLES:
                e = Enclave(PROGRAM, role_config(self.config, r), platform_dir=platform_dir, debug=debug,
                            name=f"tecc-{r}")
                e.on_relay = self._route
                self.enclaves[r] = e
                self._queues[r] = []
            self._writers = [threading.Thread(target=self._writer, args=(r,), daemon=True, name=f"tecc-route-{r}")
                             for r in ROLES]
            for t in self._writers:
                t.start()
            self._connect()
        except BaseException:
            self.close()
            raise

    # routing: a reader thread never blocks on another enclave's pipe (no deadlock cycles)
    def _route(self, sender: Enclave, m) -> None:
        src = sender.name.removeprefix("tecc-")
        dst = m.meta.get("to")
        if m.meta.get("from") != src or dst not in self._queues:
            self.events.append(f"dropped a record from {src} with bad routing {m.meta}")
            return
        with self._cv:
            self._queues[dst].append((src, m.arrays))
            self._cv.notify_all()

    def _writer(self, role: str) -> None:
        while True:
            with self._cv:
                while not self._queues[role] and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                src, arrays = self._queues[role].pop(0)
            try:
                self.enclaves[role].post("deliver", {"from": src}, arrays)
            except EnclaveDied:
                return

    def _connect(self) -> None:
        """Pairwise mutual attestation inside the enclaves; each keys its channels."""
        for a in ROLES:
            for b in ROLES:
                if a == b:
                    continue
                nonce = self.enclaves[a].request("task", {"op": "peer_challenge", "peer": b}).meta["nonce"]
                quote = self.enclaves[b].attest(nonce)
                self.enclaves[a].request("task", {"op": "peer_connect", "peer": b, "quote": quote.to_dict()})
        self.events.append("TECC enclaves attested each other pairwise (SIMULATED TEE)")

    def run(self, timeout: float = 600.0) -> dict[str, dict]:
        """Run the configured MPC job in all three enclaves; fail fast if one fails or dies."""
        out: dict[str, dict] = {}
        errors: dict[str, BaseException] = {}

        def one(r):
            try:
                out[r] = dict(self.enclaves[r].request("task", {"op": "tecc_run"}, timeout=timeout).meta)
            except BaseException as e:  # noqa: BLE001
                errors[r] = e
                for other in self.enclaves.values():  # the others would wait for this one
                    if other is not self.enclaves[r]:
                        other.kill()

        ts = [threading.Thread(target=one, args=(r,), daemon=True) for r in ROLES]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout + 10)
        if errors:
            first = next((r for r, e in errors.items() if not isinstance(e, EnclaveDied)), next(iter(errors)))
            raise EnclaveError(f"TECC job failed at {first}: {errors[first]}", type(errors[first]).__name__,
                               f"tecc-{first}")
        return out

    @property
    def relay_log(self) -> list[tuple[str, bytes]]:
        return [rec for e in self.enclaves.values() for rec in list(e.relay_log)]

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for e in self.enclaves.values():
            e.close() if e.alive else e.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------
# enclave side
# ------------------------------------------------------------------------------------


def _enclave_link_class():
    from ..net.link import Link

    class EnclaveLink(Link):
        """A jointml link whose frames travel as channel records relayed by the host."""

        def __init__(self, me, peer, chan: ch.SecureChannel, emit, recv_timeout):
            super().__init__(me, peer, recv_timeout)
            self.chan = chan
            self.emit = emit

        def _write(self, bufs, nbytes):  # Link.send holds the send lock: records stay in order
            body = b"".join(bytes(b) for b in bufs)
            self.emit("relay", {"from": self.me, "to": self.peer}, [ch.as_bytes_array(self.chan.encrypt(body))])

        def deliver(self, record: bytes) -> None:
            self._inbox.put(self.chan.decrypt(record))

        def close(self) -> None:
            pass

    return EnclaveLink


class EnclaveProgram:
    """Runs inside each TECC enclave (see :mod:`jointml.tee._boot`)."""

    def __init__(self, rt):
        self.rt = rt
        cfg = rt.config
        self.cfg = cfg
        self.t = cfg["tecc"]
        self.roles = list(self.t["roles"])
        self.role = cfg["role"]
        if self.role not in self.roles or len(self.roles) != 3:
            raise ValueError(f"bad TECC role {self.role!r} / roles {self.roles}")
        base = {k: v for k, v in cfg.items() if k != "role"}
        self.peer_measurement = {r: measure(PROGRAM, role_config(base, r)) for r in self.roles if r != self.role}
        self.verifier = Verifier(Policy.from_config(cfg.get("peer_policy", {}), self.peer_measurement.values()))
        self.links: dict = {}
        self.inputs: dict[str, tuple] = {}
        self.result: tuple | None = None
        self._Link = _enclave_link_class()

    # -- peers ------------------------------------------------------------------------
    def on_deliver(self, meta, arrays) -> None:
        link = self.links.get(meta.get("from"))
        if link is None:
            raise ValueError(f"record from unknown peer {meta.get('from')!r}")
        (rec,) = arrays
        link.deliver(rec.tobytes())  # ChannelError on replay/tamper: dropped, the MPC then times out

    def on_task(self, op, meta, arrays):
        if op == "peer_challenge":
            return {"nonce": self.verifier.challenge()}, []
        if op == "peer_connect":
            peer = meta["peer"]
            if peer not in self.peer_measurement:
                raise ValueError(f"unknown peer role {peer!r}")
            att = self.verifier.verify(meta["quote"])
            if att.measurement != self.peer_measurement[peer]:
                raise PermissionError(f"enclave claiming role {peer} has the measurement of another role")
            lo, hi = sorted([self.role, peer])
            keys = {self.role: self.rt.x25519, peer: att.x25519}
            t = b"jointml-tecc-link-v1|" + lo.encode() + b"|" + hi.encode() + b"|" + keys[lo] + keys[hi]
            chan = ch.peer_channel(self.role, peer, self.rt.x25519_exchange(att.x25519), t)
            self.links[peer] = self._Link(self.role, peer, chan, self.rt.emit, float(self.t["recv_timeout"]))
            return {"peer": peer}, []
        if op == "tecc_run":
            return self._run()
        raise ValueError(f"unknown TECC task {op!r}")

    # -- data owners --------------------------------------------------------------------
    def on_call(self, party, op, meta, arrays):
        if op == "tecc_input":
            name = str(meta["name"])
            expected = {f"X@{p}": p for p in self.cfg["feature_parties"]}
            expected.update({f"Xtest@{p}": p for p in self.cfg["feature_parties"]})  # optional: rows to score
            expected["y"] = self.cfg["label_party"]
            if expected.get(name) != party:
                raise PermissionError(f"party {party!r} may not provide input {name!r}")
            shape = tuple(int(s) for s in meta["shape"])
            a, b = arrays
            if a.dtype != np.uint64 or b.dtype != np.uint64 or a.shape != shape or b.shape != shape:
                raise ValueError(f"input {name!r} from {party!r}: expected two uint64 shares of shape {shape}")
            self.inputs[name] = (a.copy(), b.copy())
            return {"name": name}, []
        if op == "tecc_result":
            if party not in self.cfg["result_parties"]:
                raise PermissionError(f"party {party!r} is not a result party of this TECC job")
            if self.result is None:
                raise RuntimeError("no TECC result yet")
            return {"role": self.role}, list(self.result)
        raise ValueError(f"unknown operation {op!r}")

    # -- the MPC job ------------------------------------------------------------------
    def _run(self):
        from ..mpc import MpcDevice
        from ..mpc.array import SecretArray, concatenate
        from ..net.link import Communicator
        from ..runtime.context import PartyContext

        if set(self.links) != set(self.peer_measurement):
            raise RuntimeError(f"not connected to all peers (have {sorted(self.links)})")
        missing = [n for n in [f"X@{p}" for p in self.cfg["feature_parties"]] + ["y"] if n not in self.inputs]
        if missing:
            raise RuntimeError(f"missing inputs {missing}")
        f = int(self.t["frac_bits"])
        ctx = PartyContext(self.role, self.roles, Communicator(self.role, dict(self.links)))
        mpc = MpcDevice(ctx, self.roles, protocol="aby3", frac_bits=f)

        def secret(name):
            a, b = self.inputs[name]
            return SecretArray(mpc, (a, b), a.shape, f)

        X = concatenate([secret(f"X@{p}") for p in self.cfg["feature_parties"]], axis=1)
        y = secret("y")
        n, d = X.shape
        if y.shape != (n,):
            raise ValueError(f"labels have shape {y.shape}, features {X.shape}")
        zero = np.zeros(d, dtype=np.uint64)
        w = SecretArray(mpc, (zero.copy(), zero.copy()), (d,), f)
        b = SecretArray(mpc, (np.zeros((), np.uint64), np.zeros((), np.uint64)), (), f)
        step = float(self.t["learning_rate"]) / n
        l2 = float(self.t.get("l2", 0.0))  # gradient of mean log-loss + l2/2 ||w||^2 (bias not penalised)
        t0 = time.perf_counter()
        for _ in range(int(self.t["epochs"])):
            r = (X @ w + b).sigmoid(self.t["sigmoid"]) - y
            g = (X.T @ r) * step
            if l2:
                g = g + w * (float(self.t["learning_rate"]) * l2)
            w = w - g
            b = b - r.sum() * step
        seconds = time.perf_counter() - t0
        model = concatenate([w, b.reshape(1)], axis=0)
        test_names = [f"Xtest@{p}" for p in self.cfg["feature_parties"]]
        m_test = 0
        if any(nm in self.inputs for nm in test_names):  # score rows inside: the result party gets w, b, scores
            if not all(nm in self.inputs for nm in test_names):
                raise RuntimeError(f"missing test inputs {[nm for nm in test_names if nm not in self.inputs]}")
            T = concatenate([secret(nm) for nm in test_names], axis=1)
            if T.shape[1] != d:
                raise ValueError(f"test rows have {T.shape[1]} features, training rows {d}")
            m_test = int(T.shape[0])
            model = concatenate([model, T @ w + b], axis=0)
        self.result = (np.asarray(model.share[0], np.uint64).copy(), np.asarray(model.share[1], np.uint64).copy())
        st = ctx.comm.stats()
        return {"role": self.role, "rows": int(n), "features": int(d), "test_rows": m_test, "seconds": seconds,
                "bytes_sent": int(st["bytes_sent"]), "rounds": int(st["rounds"])}, []


def plaintext_reference(X: np.ndarray, y: np.ndarray, epochs: int = 30, learning_rate: float = 1.0,
                        l2: float = 0.0) -> np.ndarray:
    """The same full-batch gradient descent in float64: what TECC should reproduce."""
    n, d = X.shape
    w, b = np.zeros(d), 0.0
    for _ in range(epochs):
        r = 1.0 / (1.0 + np.exp(-(X @ w + b))) - y
        w = w - learning_rate / n * (X.T @ r) - learning_rate * l2 * w
        b = b - learning_rate / n * r.sum()
    return np.concatenate([w, [b]])
