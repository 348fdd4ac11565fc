"""Online prediction servers: the label holder's HTTP API and the partners' answering loop.

Each organisation runs one process (`jointml serve`). The label holder (the *bank*) serves
`POST /v1/predict`, `GET /v1/health`, `GET /v1/model`, `POST /v1/reload` and `GET /metrics`
(FastAPI; OpenAPI at `/docs`). Every partner keeps a mutual-TLS link to the bank (the
cluster file's certificates, `jointml.net.tcp`) and answers the bank's requests with its
partial only (`jointml.serving.predictor`: a partial linear score, encrypted under the bank's
key when the bank holds the partner's WOE values (`jointml.serving.masked`), or per tree the
leaves its splits allow); an SS-XGB model is scored under MPC online with the dealer
(`jointml.serving.mpc_online`); a TEE-hosted model is scored inside the enclave the bank's
process hosts, each partner uploading its rows on its own attested session relayed by the bank
(`jointml.serving.tee_model`, SIMULATED TEE). Raw features never cross in the clear; what each
side learns is listed in `jointml.serving.predictor` and docs/serving.md. Adversary model: semi-honest parties;
a deviating bank can ask for any id (the partner logs every request's id hash).

Messages on the link (one `Channel` per partner, tag ``serve:req`` / ``serve:ans``, meta JSON):

| op | bank sends | partner answers |
| --- | --- | --- |
| hello | its model id | its model id (serving is refused while they differ) |
| predict | ids | which ids it holds, its partials (arrays, dtype and shape checked) |
| reload | - | the model id it loaded from its folder (kept pending) |
| commit / abort | - | its active model id |
| masked_setup | its public key and encrypted WOE tables (`masked`) | its model id, or why it refuses them |
| mpc_open (SS-XGB) | - | its model id, after the collective load of its shares (`mpc_online`) |
| predict (SS-XGB) | ids to the partner, only their number to the dealer | found flags, after the MPC |
| tee_open (TEE) | the model id | ``relay`` answers (attest, session), each met by a ``relay_reply``; then its model id |
| predict (TEE) | ids and a request id | one ``relay`` call (its rows, AES-GCM on its own session), then found flags |

A partner that does not answer within `timeout` seconds turns the request into a 503 and the
link is dropped and dialled again (a late answer would be out of step); the server never hangs.
The request log holds the SHA-256 of each id (truncated), the latency, the model version and the
outcome, never a feature value.
"""

# (no `from __future__ import annotations`: FastAPI reads the request models defined in create_app)

import dataclasses
import hashlib
import logging
import threading
import time
from typing import Any

import numpy as np

from ..core.errors import ConfigError, JointMLError, LinkError, ModelError
from ..runtime.cluster import ClusterConfig
from ..runtime.collectives import Channel
from ..runtime.context import PartyContext
from .mpc_online import margins, open_model
from .predictor import MPC_MODELS, TEE_MODELS, UNKNOWN_POLICIES, FeatureSource, PartyPredictor, lookup

__all__ = ["ServingError", "ServingLink", "BankService", "PartnerService", "connect_serving", "create_app"]

log = logging.getLogger("jointml.serving")
PREFIX = "serve"


class ServingError(JointMLError):
    """A request cannot be answered; `status` is the HTTP status it maps to.

    >>> ServingError("partner 'p' did not answer within 1 s", status=503).status
    503
    """

    def __init__(self, message: str, status: int = 503, **kw: Any):
        super().__init__(message, **kw)
        self.status = status


def id_hash(i: str) -> str:
    """The short SHA-256 of an id that the request log keeps instead of the id.

    >>> len(id_hash("customer-1"))
    16
    """
    return hashlib.sha256(str(i).encode()).hexdigest()[:16]


@dataclasses.dataclass
class ServingLink:
    """The links this server opened (it closes them itself) and the party context over them."""

    ctx: PartyContext
    links: Any  # the Communicator from `connect_all`

    def close(self) -> None:
        self.links.close()


def connect_serving(cluster: ClusterConfig, me: str, parties: list[str], connect_timeout: float | None = None,
                    recv_timeout: float | None = None) -> ServingLink:
    """Open the mutual-TLS links among the serving `parties` only (a cluster file's dealer stays out)."""
    from ..net.tcp import connect_all

    missing = [p for p in parties if p not in cluster.parties]
    if missing:
        raise ConfigError(f"the cluster file has no address for the model's parties {missing}", field="cluster")
    sub = dataclasses.replace(cluster, parties={p: s for p, s in cluster.parties.items() if p in parties})
    links = connect_all(me, sub.addresses(), sub.tls_for(me), connect_timeout=connect_timeout or sub.connect_timeout,
                        recv_timeout=recv_timeout or sub.recv_timeout, order=sub.names)
    return ServingLink(PartyContext(me, sub.names, links), links)


class Metrics:
    """Counters and a latency histogram in the Prometheus text format.

    >>> m = Metrics(); m.observe("ok", 0.004); "jointml_serve_requests_total" in m.text()
    True
    """

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: dict[str, int] = {}
        self.ids = 0
        self.link_bytes = 0
        self.buckets = [0] * len(self.BUCKETS)
        self.total, self.count = 0.0, 0

    def observe(self, outcome: str, seconds: float, ids: int = 0) -> None:
        with self.lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.ids += ids
            self.total += seconds
            self.count += 1
            for k, b in enumerate(self.BUCKETS):
                if seconds <= b:
                    self.buckets[k] += 1

    def add_bytes(self, n: int) -> None:
        with self.lock:
            self.link_bytes += max(0, n)

    def text(self) -> str:
        with self.lock:
            lines = ["# TYPE jointml_serve_requests_total counter"]
            lines += [f'jointml_serve_requests_total{{outcome="{o}"}} {n}' for o, n in sorted(self.outcomes.items())]
            lines += ["# TYPE jointml_serve_ids_scored_total counter", f"jointml_serve_ids_scored_total {self.ids}",
                      "# TYPE jointml_serve_link_bytes_total counter",
                      f"jointml_serve_link_bytes_total {self.link_bytes}",
                      "# TYPE jointml_serve_latency_seconds histogram"]
            lines += [f'jointml_serve_latency_seconds_bucket{{le="{b}"}} {n}' for b, n in zip(self.BUCKETS, self.buckets)]
            lines += [f'jointml_serve_latency_seconds_bucket{{le="+Inf"}} {self.count}',
                      f"jointml_serve_latency_seconds_sum {self.total:.6f}", f"jointml_serve_latency_seconds_count {self.count}"]
        return "\n".join(lines) + "\n"


# -- the partner ---------------------------------------------------------------------------------
class PartnerService:
    """A feature holder's side: answers the label holder's requests with its partials only.

    `run()` keeps a link to the label holder, re-dialling after it drops, until `stop()`.
    `unknown`: what an id it does not hold gets ("error": reported unknown, no partial used;
    "missing": the partial of an all-missing row).
    """

    def __init__(self, model_dir: str, party: str, cluster: ClusterConfig, source: FeatureSource,
                 unknown: str = "error", reason_codes: dict[str, str] | None = None):
        if unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown must be one of {UNKNOWN_POLICIES}, got {unknown!r}", field="unknown")
        self.model_dir, self.party, self.cluster, self.source, self.unknown = model_dir, party, cluster, source, unknown
        self.reason_codes = dict(reason_codes or {})
        self.predictor = PartyPredictor.load(model_dir, party)
        unknown_cols = [c for c in self.reason_codes if c not in self.predictor.columns]
        if unknown_cols:
            raise ConfigError(f"reason codes name columns {unknown_cols} that are not this party's model columns "
                              f"{self.predictor.columns}", party=party, field="reason_codes")
        if self.predictor.role == "label":
            raise ConfigError(f"party '{party}' holds the labels: it serves the HTTP API (BankService)", party=party)
        if self.predictor.model in TEE_MODELS:
            from .tee_model import check_unknown_policy

            check_unknown_policy(unknown, party)
        if self.predictor.role == "helper" and self.predictor.model not in MPC_MODELS:
            raise ConfigError(f"party '{party}' has no part in serving a {self.predictor.model} model (only an "
                              "MPC-online model needs its dealer)", party=party)
        self.est: Any = None  # an MPC-online model's estimator, loaded over the links when they come up
        self.pending: PartyPredictor | None = None
        self.stopped = threading.Event()
        self.link: ServingLink | None = None
        self.requests = 0

    def stop(self) -> None:
        self.stopped.set()
        if self.link is not None:
            self.link.close()

    def run(self) -> None:
        """Serve until `stop()`: dial / accept the label holder, answer, re-connect on loss."""
        while not self.stopped.is_set():
            try:
                self.link = connect_serving(self.cluster, self.party, self.predictor.peers, connect_timeout=2.0)
            except (LinkError, OSError, JointMLError) as e:
                log.debug("partner %s: no link yet (%s)", self.party, e)
                self.stopped.wait(0.2)
                continue
            try:
                self._session(self.link.ctx)
            except (LinkError, OSError) as e:
                log.info("partner %s: link lost (%s); reconnecting", self.party, type(e).__name__)
            finally:
                self.link.close()

    def _session(self, ctx: PartyContext) -> None:
        ch = Channel(ctx, self.predictor.label_party, PREFIX)
        while not self.stopped.is_set():
            try:
                msg = ch.recv("req", timeout=0.5)
            except LinkError as e:
                if isinstance(e, TimeoutError):  # idle: check the stop flag, keep the link
                    continue
                raise
            if self.predictor.model in MPC_MODELS and msg.meta.get("op") in ("mpc_open", "predict"):
                if not self._mpc_op(ctx, ch, msg):
                    return  # out of step with the others: drop the links, dial again
                continue
            if msg.meta.get("op") in ("tee_open", "predict") and (self.predictor.model in TEE_MODELS or (
                    self.pending is not None and self.pending.model in TEE_MODELS and msg.meta["op"] == "tee_open")):
                try:
                    meta = self._tee_op(ch, msg.meta)
                except JointMLError as e:  # refused (attestation, enclave, request): say so, keep serving
                    if isinstance(e, LinkError):
                        raise
                    meta = {"error": str(e)}
                ch.send("ans", meta=meta)
                continue
            try:
                if msg.meta.get("op") == "masked_setup":
                    meta, arrays = self._masked_setup(msg.meta, msg.expect([np.uint8]))
                else:
                    msg.expect([])  # every other request carries no array
                    meta, arrays = self.answer(msg.meta)
            except JointMLError as e:  # a malformed request: say so, keep serving
                meta, arrays = {"error": str(e)}, []
            ch.send("ans", meta=meta, arrays=arrays)

    def answer(self, req: dict[str, Any]) -> tuple[dict[str, Any], list[np.ndarray]]:
        """The reply to one request of the label holder (see the module's table)."""
        op = req.get("op")
        if op == "hello":
            return {"model_id": self.predictor.model_id}, []
        if op == "reload":
            try:
                self.pending = PartyPredictor.load(self.model_dir, self.party)
                return {"model_id": self.pending.model_id}, []
            except JointMLError as e:
                return {"error": str(e)}, []
        if op in ("commit", "abort"):
            if op == "commit" and self.pending is not None:
                self.predictor = self.pending
            self.pending = None
            return {"model_id": self.predictor.model_id}, []
        if op == "predict":
            return self._predict(req)
        return {"error": f"unknown request {op!r}"}, []

    def _mpc_op(self, ctx: PartyContext, ch: Channel, msg: Any) -> bool:
        """This party's side of an MPC-online collective (load the shares, or score a batch);
        False when it failed (the links are then dropped: the message counters are out of step)."""
        req = msg.meta
        try:
            if req["op"] == "mpc_open":
                self.est = open_model(ctx, self.predictor)
                ch.send("ans", meta={"model_id": self.predictor.model_id})
                return True
            if self.est is None:
                raise ServingError("no MPC model loaded on this link yet", status=503)
            if self.predictor.role == "helper":  # the dealer: only the number of ids
                n = req.get("n")
                if type(n) is not int or n < 1:
                    raise ServingError("a dealer's request names the number of ids", status=502)
                margins(self.est, self.predictor.label_party, None, n)
                ch.send("ans", meta={"model_id": self.predictor.model_id})
                return True
            ids = req.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
                raise ServingError("ids must be a non-empty list of strings", status=502)
            df, found = lookup(self.source, ids)
            X = self.predictor.features(df, len(ids))
            found = [f and not bad for f, bad in zip(found, np.isnan(X).any(axis=1).tolist())]
            margins(self.est, self.predictor.label_party, np.where(np.isnan(X), 0.0, X), len(ids))
            log.info("partner %s: request ids=%s", self.party, ",".join(id_hash(i) for i in ids[:8]))
            ch.send("ans", meta={"found": found, "model_id": self.predictor.model_id})
            return True
        except Exception as e:  # noqa: BLE001 - whatever failed, this session is out of step: drop it
            log.warning("partner %s: MPC request failed (%s: %s)", self.party, type(e).__name__, e)
            return False

    def _tee_op(self, ch: Channel, req: dict[str, Any]) -> dict[str, Any]:
        """A TEE-hosted model (`tee_model`): attest the bank's enclave and open this party's
        session through the bank's relay (``tee_open``), or upload a request's rows on it."""
        from .tee_model import open_partner_session

        if req["op"] == "tee_open":
            target = self.pending if self.pending is not None and req.get("model_id") == self.pending.model_id \
                else self.predictor
            if req.get("model_id") != target.model_id:
                return {"error": f"enclave setup for model {req.get('model_id')!r}: partner serves {target.model_id}"}
            target._prep["tee_session"] = open_partner_session(target, ch)  # raises AttestationError when refused
            log.info("partner %s: attested the enclave of model %s (measurement %s...) [SIMULATED TEE]", self.party,
                     target.model_id, target.tee["measurement"][:16])
            return {"model_id": target.model_id}
        pred = self.predictor
        ids, rid = req.get("ids"), req.get("request")
        if req.get("model_id") != pred.model_id:
            return {"error": f"model id differs: partner serves {pred.model_id}"}
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids) or not isinstance(rid, str):
            return {"error": "ids must be a non-empty list of strings, with a request id"}
        session = pred._prep.get("tee_session")
        if session is None:
            return {"error": "no attested session with the enclave yet"}
        self.requests += 1
        df, found = lookup(self.source, ids)
        X = pred.features(df, len(ids))
        usable = np.asarray(found) & ~np.isnan(X).any(axis=1)  # the enclave scores complete rows only
        X = np.where(usable[:, None], X, 0.0)
        log.info("partner %s: request ids=%s", self.party, ",".join(id_hash(i) for i in ids[:8]))
        session.call("predict_upload", {"request": rid}, [np.ascontiguousarray(X, dtype=np.float64)])
        return {"found": usable.tolist(), "model_id": pred.model_id}

    def _masked_setup(self, req: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Take the label holder's encrypted WOE tables (`jointml.serving.masked`), for the
        model it names (the active one, or the one a reload keeps pending)."""
        target = self.pending if self.pending is not None and req.get("model_id") == self.pending.model_id \
            else self.predictor
        if req.get("model_id") != target.model_id or not target.masked:
            return {"error": f"masked setup for model {req.get('model_id')!r}: partner serves {target.model_id} "
                             f"({'masked' if target.masked else 'plain'} partials)"}, []
        try:
            target.accept_masked(req, arrays)
        except JointMLError as e:
            return {"error": f"masked setup refused: {e}"}, []
        return {"model_id": target.model_id}, []

    def _predict(self, req: dict[str, Any]) -> tuple[dict[str, Any], list[np.ndarray]]:
        ids = req.get("ids")
        if req.get("model_id") != self.predictor.model_id:
            return {"error": f"model id differs: partner serves {self.predictor.model_id}"}, []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return {"error": "ids must be a list of strings"}, []
        self.requests += 1
        df, found = lookup(self.source, ids)
        if self.unknown == "missing":
            found = [True] * len(ids)
        arrays = self.predictor.partial(self.predictor.features(df, len(ids)))
        log.info("partner %s: request ids=%s", self.party, ",".join(id_hash(i) for i in ids[:8]))
        meta: dict[str, Any] = {"found": found, "model_id": self.predictor.model_id}
        k = req.get("reasons")
        if type(k) is int and 0 < k <= 20 and self.reason_codes and self.predictor.scorecard is not None:
            meta["reasons"] = self._reasons(df, len(ids), k)
        return meta, arrays

    def _reasons(self, df: Any, n: int, k: int) -> list[list[str]]:
        """Per id, the codes of the (at most `k`) most adverse features among those the reason
        policy lets this party name, most adverse first; the points stay here."""
        lost = self.predictor.points_lost(df)
        allowed = {c: v for c, v in lost.items() if c in self.reason_codes}
        return [[self.reason_codes[c] for c in sorted((c for c in allowed if allowed[c][i] > 0),
                                                      key=lambda c: -allowed[c][i])[:k]] for i in range(n)]


# -- the label holder ----------------------------------------------------------------------------
class BankService:
    """The label holder's side: scores ids with its own features and the partners' partials.

    One request at a time on the link (a lock), so a reload switches between two requests;
    `timeout` bounds every wait for a partner.
    """

    def __init__(self, model_dir: str, party: str, cluster: ClusterConfig, source: FeatureSource | None,
                 timeout: float = 2.0, key_bits: int = 2048, tee_platform_dir: str | None = None):
        self.model_dir, self.party, self.cluster, self.source, self.timeout = model_dir, party, cluster, source, timeout
        self.key_bits, self.tee_platform_dir = key_bits, tee_platform_dir
        self.predictor = PartyPredictor.load(model_dir, party)
        if self.predictor.role != "label":
            raise ConfigError(f"party '{party}' does not hold the labels ('{self.predictor.label_party}' does): "
                              "it runs the partner side", party=party)
        self.tables = self._tables(self.predictor)
        self.enclave = self._enclave(self.predictor)  # a TEE-hosted model: the enclave this process hosts
        self.partners = [p for p in self.predictor.parties if p != party]
        self.helpers = [p for p in self.predictor.peers if p not in self.predictor.parties]  # an MPC dealer
        self.est: Any = None  # an MPC-online model's estimator, loaded over the links (`mpc_online`)
        self.lock = threading.RLock()
        self.link: ServingLink | None = None
        self.problem: str | None = "no link to the partners yet"
        self.metrics = Metrics()
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _tables(self, pred: PartyPredictor) -> dict[str, Any]:
        """The masked variant's key and encrypted tables for each partner that needs them."""
        from .masked import BankTables

        out = {}
        for p in pred.masked_partners:  # the tables committed at export (a partner refuses others)
            t = BankTables.committed(pred.masked_tables(p), pred.directory, self.party, p, pred.model_id)
            out[p] = t or BankTables(pred.masked_tables(p), self.key_bits, party=self.party)
        return out

    def _enclave(self, pred: PartyPredictor) -> Any:
        """A TEE-hosted model's enclave, started here, attested and loaded with the sealed model."""
        if pred.model not in TEE_MODELS:
            return None
        from .tee_model import BankEnclave

        return BankEnclave(pred, self.tee_platform_dir)

    def _setup_tee(self, pred: PartyPredictor, enclave: Any) -> None:
        """Each partner attests `enclave` (through this party's relay) and opens its session."""
        if enclave is None:
            return
        for p in self.partners:
            self._ask_relayed(p, {"op": "tee_open", "model_id": pred.model_id}, enclave, timeout=max(self.timeout, 30.0))

    def _ask_relayed(self, p: str, req: dict[str, Any], enclave: Any, timeout: float | None = None) -> Any:
        """A request whose answer may come after a few enclave requests of the partner, which
        are relayed to `enclave` (attestation, session, encrypted calls; nothing else)."""
        self._send(p, req)
        for _ in range(8):  # tee_open: attest and session; predict: one call
            got = self._answer(p, timeout=timeout)
            if "relay" not in got.meta:
                return got
            meta, arrays = enclave.relay(p, got.meta, list(got.arrays))
            self._send(p, {"op": "relay_reply", **meta}, arrays)
        why = f"partner '{p}' asked for too many enclave relays in one request"
        self._drop(why)
        raise ServingError(why, status=502, party=p)

    def _setup_masked(self, pred: PartyPredictor, tables: dict[str, Any]) -> None:
        """Send each masked partner its encrypted tables (it weights them: slow, a longer wait)."""
        for p, t in tables.items():
            meta, arrays = t.offer()
            self._ask(p, {"op": "masked_setup", "model_id": pred.model_id, **meta}, arrays=arrays,
                      timeout=max(self.timeout, 120.0))

    # link management
    def start(self) -> None:
        """Keep the links up in the background (dial again after a loss)."""
        self._thread = threading.Thread(target=self._keep_linked, name="jointml-serve-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopped.set()
        with self.lock:
            self._drop("stopped")
            if self.enclave is not None:
                self.enclave.close()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.link is not None and self.problem is None:
                return True
            time.sleep(0.02)
        return False

    def _keep_linked(self) -> None:
        while not self.stopped.is_set():
            if self.link is None:
                try:
                    # the links' own timeout bounds every wait inside an MPC-online request too
                    link = connect_serving(self.cluster, self.party, self.predictor.peers, connect_timeout=2.0,
                                           recv_timeout=self.timeout)
                except (LinkError, OSError, JointMLError) as e:
                    self.problem = f"partner not reachable ({type(e).__name__}: {e})"
                    self.stopped.wait(0.2)
                    continue
                with self.lock:
                    self.link = link
                    self.problem = self._hello()
            self.stopped.wait(0.1)

    def _drop(self, why: str) -> None:
        if self.link is not None:
            self.link.close()
        self.link, self.problem = None, why

    def _ask(self, p: str, req: dict[str, Any], dtypes: list[Any] | None = None,
             shapes: list[Any] | None = None, arrays: list[np.ndarray] | None = None,
             timeout: float | None = None) -> Any:
        """One request to partner `p` and its answer; a silent or lost partner raises ServingError(503)."""
        self._send(p, req, arrays)
        return self._answer(p, dtypes, shapes, timeout)

    def _send(self, p: str, req: dict[str, Any], arrays: list[np.ndarray] | None = None) -> None:
        if self.link is None:
            raise ServingError(f"partner '{p}' is not connected: {self.problem}", status=503)
        try:
            Channel(self.link.ctx, p, PREFIX).send("req", meta=req, arrays=arrays or [])
        except LinkError as e:
            why = f"link to partner '{p}' lost ({type(e).__name__})"
            self._drop(why)
            raise ServingError(why, status=503, party=p) from None

    def _answer(self, p: str, dtypes: list[Any] | None = None, shapes: list[Any] | None = None,
                timeout: float | None = None) -> Any:
        """Partner `p`'s answer to the request sent last (see `_ask`)."""
        if self.link is None:
            raise ServingError(f"partner '{p}' is not connected: {self.problem}", status=503)
        ch = Channel(self.link.ctx, p, PREFIX)
        wait = timeout or self.timeout
        try:
            got = ch.recv("ans", timeout=wait)
        except LinkError as e:
            why = (f"partner '{p}' did not answer within {wait:g} s" if isinstance(e, TimeoutError)
                   else f"link to partner '{p}' lost ({type(e).__name__})")
            self._drop(why)
            raise ServingError(why, status=503, party=p) from None
        if got.meta.get("error"):
            raise ServingError(f"partner '{p}': {got.meta['error']}", status=409 if "model id" in
                               str(got.meta["error"]) else 502, party=p)
        if dtypes is not None:
            try:
                got.expect(dtypes, shapes)
            except JointMLError as e:  # the partner's fault, not the client's: 502
                raise ServingError(f"partner '{p}' sent a malformed answer: {e}", status=502, party=p) from None
        return got

    def _hello(self) -> str | None:
        for p in self.partners + self.helpers:
            try:
                other = self._ask(p, {"op": "hello"}).meta.get("model_id")
            except ServingError as e:
                return str(e)
            if other != self.predictor.model_id:
                return (f"model ids differ: '{self.party}' serves {self.predictor.model_id}, '{p}' serves {other}; "
                        "refusing to score (load the same model at both, then POST /v1/reload)")
        try:
            self._setup_masked(self.predictor, self.tables)
            self._setup_tee(self.predictor, self.enclave)
            if self.predictor.model in MPC_MODELS:
                self.est = self._mpc_round({p: {"op": "mpc_open"} for p in self.partners + self.helpers},
                                           lambda: open_model(self._ctx(), self.predictor))[0]
        except ServingError as e:
            return str(e)
        return None

    def _ctx(self) -> PartyContext:
        if self.link is None:
            raise ServingError(f"the partners are not connected: {self.problem}", status=503)
        return self.link.ctx

    def _mpc_round(self, reqs: dict[str, dict[str, Any]], local: Any) -> tuple[Any, dict[str, Any]]:
        """Send each party its request, run this party's side of the collective `local()`, then
        collect the answers; a failure in between drops the links (the parties' message
        counters would be out of step) and gives a 503."""
        assert self.link is not None
        for p, req in reqs.items():
            self._send(p, req)
        try:
            out = local()
        except (LinkError, JointMLError) as e:
            why = f"MPC scoring failed ({type(e).__name__}: {e})"
            self._drop(why)
            raise ServingError(why, status=503) from None
        return out, {p: self._answer(p) for p in reqs}

    # requests
    def _link_bytes(self) -> int:
        if self.link is None:
            return 0
        st = self.link.ctx.stats()
        return int(st["bytes_sent"] + st["bytes_recv"])

    def predict(self, ids: list[str], features: dict[str, list[Any]] | None = None,
                reasons: int | None = None) -> list[dict[str, Any]]:
        """Score `ids` (see `_score`); the bytes on the partner links count in the metrics."""
        with self.lock:
            b0 = self._link_bytes()
            try:
                return self._score(ids, features, reasons)
            finally:
                self.metrics.add_bytes(self._link_bytes() - b0)

    def _score(self, ids: list[str], features: dict[str, list[Any]] | None = None,
               reasons: int | None = None) -> list[dict[str, Any]]:
        """Score `ids` (this party's own features from the request's `features`, else its source).

        With a scorecard, each row also gets its `points` and up to `reasons` (default 3) reason
        codes: this party's own most adverse features (points lost against each feature's best
        bin) and, per partner, the codes its reason policy lets it name (`PartnerService`).
        """
        with self.lock:
            if self.problem is not None:
                raise ServingError(self.problem, status=409 if "model ids differ" in self.problem else 503)
            pred = self.predictor
            k = (3 if reasons is None else reasons) if pred.scorecard is not None else 0
            own_df = self._own_rows(ids, features)
            if pred.model in MPC_MODELS:
                return self._predict_mpc(ids, own_df)
            if pred.model in TEE_MODELS:
                return self._predict_tee(ids, own_df)
            own = pred.partial(pred.features(own_df, len(ids)))
            found = [True] * len(ids)
            others, codes = [], {}
            for p in self.partners:
                masked = self.tables.get(p)
                dt, sh = ([np.uint8], [masked.answer_shape(len(ids))]) if masked else pred.partial_shapes(len(ids))
                req = {"op": "predict", "ids": ids, "model_id": pred.model_id, **({"reasons": k} if k else {})}
                got = self._ask(p, req, dt, sh)
                f = got.meta.get("found")
                if not isinstance(f, list) or len(f) != len(ids):
                    raise ServingError(f"partner '{p}' sent a malformed answer", status=502, party=p)
                found = [a and bool(b) for a, b in zip(found, f)]
                if "reasons" in got.meta:
                    codes[p] = _check_codes(got.meta["reasons"], len(ids), k, p)
                try:
                    others.append([masked.decode(got.arrays, len(ids))] if masked else got.arrays)
                except JointMLError as e:
                    raise ServingError(f"partner '{p}' sent a malformed answer: {e}", status=502, party=p) from None
        margin = pred.combine(own, others)
        proba = pred.probability(margin)
        value = pred.prediction(margin)
        lost = pred.points_lost(own_df) if k else {}
        out = []
        for n, i in enumerate(ids):
            if not found[n]:
                out.append({"id": i, "error": "unknown id at a partner"})
                continue
            row: dict[str, Any] = {"id": i, "score": float(margin[n])}
            if proba is not None:
                row["probability"] = float(proba[n])
            else:
                row["prediction"] = float(value[n])
            if pred.scorecard is not None:
                row["points"] = float(pred.scorecard["offset"] - pred.scorecard["factor"] * margin[n])
                row["reasons"] = _own_reasons(lost, n, k, self.party)
                if codes:
                    row["partner_reasons"] = {p: c[n] for p, c in codes.items()}
            out.append(row)
        return out

    def _predict_mpc(self, ids: list[str], own_df: Any) -> list[dict[str, Any]]:
        """Score under MPC online (`mpc_online`): the partner gets the ids, the dealer their count."""
        pred, n = self.predictor, len(ids)
        if self.est is None:
            raise ServingError("the MPC model is not loaded on the links yet", status=503)
        X = pred.features(own_df, n)
        usable = ~np.isnan(X).any(axis=1)  # SS-XGB has no missing values: such rows are not scored
        X = np.where(np.isnan(X), 0.0, X)
        reqs: dict[str, dict[str, Any]] = {p: {"op": "predict", "ids": ids, "model_id": pred.model_id}
                                           for p in self.partners}
        reqs.update({p: {"op": "predict", "n": n, "model_id": pred.model_id} for p in self.helpers})
        margin, answers = self._mpc_round(reqs, lambda: margins(self.est, self.party, X, n))
        found = [True] * n
        for p in self.partners:
            f = answers[p].meta.get("found")
            if not isinstance(f, list) or len(f) != n:
                raise ServingError(f"partner '{p}' sent a malformed answer", status=502, party=p)
            found = [a and bool(b) for a, b in zip(found, f)]
        proba = pred.probability(margin)
        assert proba is not None  # SS-XGB is a classifier
        out: list[dict[str, Any]] = []
        for j, i in enumerate(ids):
            if not usable[j]:
                out.append({"id": i, "error": "a missing feature value at the label holder (SS-XGB has none)"})
            elif not found[j]:
                out.append({"id": i, "error": "unknown id at a partner"})
            else:
                out.append({"id": i, "score": float(margin[j]), "probability": float(proba[j])})
        return out

    def _predict_tee(self, ids: list[str], own_df: Any) -> list[dict[str, Any]]:
        """Score in the enclave (`tee_model`): each partner uploads its rows on its own session,
        then this party uploads its own and gets the scores (the enclave's result party)."""
        from ..tee import EnclaveError
        from .tee_model import new_request_id

        pred, n, rid = self.predictor, len(ids), new_request_id()
        X = pred.features(own_df, n)
        usable = ~np.isnan(X).any(axis=1)  # the enclave scores complete rows only
        found = [True] * n
        for p in self.partners:
            got = self._ask_relayed(p, {"op": "predict", "ids": ids, "request": rid, "model_id": pred.model_id},
                                    self.enclave)
            f = got.meta.get("found")
            if not isinstance(f, list) or len(f) != n or got.arrays:
                raise ServingError(f"partner '{p}' sent a malformed answer", status=502, party=p)
            found = [a and bool(b) for a, b in zip(found, f)]
        try:
            margin = self.enclave.score(rid, np.where(usable[:, None], X, 0.0))
        except EnclaveError as e:
            raise ServingError(f"the enclave did not score the request: {e}", status=503) from None
        if margin.shape != (n,):
            raise ServingError("the enclave returned a malformed answer", status=502)
        proba = 1.0 / (1.0 + np.exp(-margin))  # both TEE model kinds are binary classifiers (log-odds)
        out: list[dict[str, Any]] = []
        for j, i in enumerate(ids):
            if not usable[j]:
                out.append({"id": i, "error": "a missing feature value at the label holder (the TEE model has none)"})
            elif not found[j]:
                out.append({"id": i, "error": "unknown id at a partner"})
            else:
                out.append({"id": i, "score": float(margin[j]), "probability": float(proba[j])})
        return out

    def _own_rows(self, ids: list[str], features: dict[str, list[Any]] | None) -> dict[str, Any]:
        cols = self.predictor.columns
        if features:
            bad = [c for c in features if c not in cols] + [c for c, v in features.items()
                                                            if not isinstance(v, list) or len(v) != len(ids)]
            if bad:
                raise ServingError(f"features: unknown column or wrong length: {bad[0]!r} (columns: {cols}; one "
                                   "value per id)", status=422)
        base: dict[str, Any] = dict(lookup(self.source, ids)[0]) if self.source is not None else {}
        for c, v in (features or {}).items():
            base[c] = np.asarray(v, dtype=object)
        lacking = [c for c in cols if c not in base]
        if lacking:
            raise ServingError(f"features: no value for the label holder's columns {lacking}", status=422)
        return base

    def reload(self) -> dict[str, Any]:
        """Load the model folder again at every party; switch together, or keep the old one."""
        with self.lock:
            new = PartyPredictor.load(self.model_dir, self.party)
            if new.role != "label":
                raise ServingError(f"the reloaded model names '{new.label_party}' as label holder", status=409)
            tables = self._tables(new)
            enclave = self._enclave(new) if new.model_id != self.predictor.model_id else self.enclave
            try:
                self._switch(new, tables, enclave)
            except BaseException:
                if enclave is not None and enclave is not self.enclave:
                    enclave.close()
                raise
            old, self.enclave = self.enclave, enclave
            if old is not None and old is not enclave:
                old.close()
            self.predictor, self.tables = new, tables
            self.problem = None
            return self.predictor.describe()

    def _switch(self, new: PartyPredictor, tables: dict[str, Any], enclave: Any) -> None:
        """Every party loads `new` (pending), its masked tables / enclave sessions are set up,
        then all commit together; any refusal aborts (every party keeps the old model)."""
        others = self.partners + self.helpers
        ids = {p: self._ask(p, {"op": "reload"}).meta.get("model_id") for p in others}
        ok = all(m == new.model_id for m in ids.values())
        why = ""
        if ok:
            try:  # the pending model's tables / enclave first: a refusal keeps both on the old model
                self._setup_masked(new, tables)
                self._setup_tee(new, enclave)
            except ServingError as e:
                ok, why = False, f" ({e})"
                if self.link is None:
                    raise
        for p in others:
            self._ask(p, {"op": "commit" if ok else "abort"})
        if not ok:
            raise ServingError(f"model ids differ or the masked / enclave setup failed after reload{why}: "
                               f"'{self.party}' {new.model_id}, partners {ids}; still serving "
                               f"{self.predictor.model_id}", status=409)
        if new.model in MPC_MODELS:  # every party loads its new shares (a collective)
            self.est = self._mpc_round({p: {"op": "mpc_open"} for p in others},
                                       lambda: open_model(self._ctx(), new))[0]

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.problem is None else "unavailable", "party": self.party,
                               "model_id": self.predictor.model_id, "partners": self.partners,
                               "problem": self.problem}
        if self.enclave is not None:
            from ..tee import SIMULATION_LABEL

            out["enclave"] = {"alive": self.enclave.alive, "measurement": self.predictor.tee["measurement"],
                              "platform": SIMULATION_LABEL if self.predictor.tee["platform"]["simulation"]
                              else self.predictor.tee["platform"]["name"]}
            if not self.enclave.alive:
                out["status"] = "unavailable"
        return out


def _own_reasons(lost: dict[str, np.ndarray], row: int, k: int, party: str) -> list[dict[str, Any]]:
    """The `k` own features with the most points lost for `row` (only those that lost some).

    >>> _own_reasons({"a": np.array([0.0]), "b": np.array([7.5]), "c": np.array([2.0])}, 0, 2, "bank")
    [{'party': 'bank', 'feature': 'b', 'points_lost': 7.5}, {'party': 'bank', 'feature': 'c', 'points_lost': 2.0}]
    """
    ranked = sorted(((float(v[row]), c) for c, v in lost.items() if v[row] > 0), key=lambda t: -t[0])[:k]
    return [{"party": party, "feature": c, "points_lost": v} for v, c in ranked]


def _check_codes(codes: Any, n: int, k: int, p: str) -> list[list[str]]:
    """A partner's reason codes: per id a list of at most `k` strings, else a 502."""
    if not isinstance(codes, list) or len(codes) != n or not all(
            isinstance(c, list) and len(c) <= k and all(isinstance(x, str) and len(x) <= 64 for x in c) for c in codes):
        raise ServingError(f"partner '{p}' sent malformed reason codes", status=502, party=p)
    return codes


def create_app(service: BankService) -> Any:
    """The label holder's FastAPI application (OpenAPI at `/docs`, `/openapi.json`)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import PlainTextResponse
    from pydantic import BaseModel, Field

    from .. import __version__

    class PredictRequest(BaseModel):
        id: str | None = Field(None, description="one id", max_length=256)
        ids: list[str] | None = Field(None, description="a batch of ids", max_length=100_000)
        features: dict[str, list[Any]] | None = Field(
            None, description="the label holder's own feature values, one list per column, one value per id")
        reasons: int | None = Field(None, ge=0, le=20, description="reason codes per id (scorecard models; default 3)")

    app = FastAPI(title="jointml serving", version=__version__,
                  description="Joint model scoring: the partners' features stay at the partners.")

    @app.post("/v1/predict")
    def predict(req: PredictRequest) -> dict[str, Any]:
        if (req.id is None) == (req.ids is None):
            raise HTTPException(422, "give exactly one of 'id' or 'ids'")
        ids = [req.id] if req.id is not None else list(req.ids or [])
        if not ids:
            raise HTTPException(422, "'ids' is empty")
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            rows = service.predict(ids, req.features, req.reasons)
            if req.id is not None and "error" in rows[0]:
                raise ServingError(f"id {req.id!r}: {rows[0]['error']}", status=404)
        except ServingError as e:
            outcome = f"error_{e.status}"
            raise HTTPException(e.status, str(e)) from None
        except JointMLError as e:
            outcome = "error_422"
            raise HTTPException(422, str(e)) from None
        finally:
            dt = time.perf_counter() - t0
            service.metrics.observe(outcome, dt, len(ids) if outcome == "ok" else 0)
            log.info("predict ids=%s n=%d latency_ms=%.2f model=%s outcome=%s", id_hash(ids[0]), len(ids), dt * 1e3,
                     service.predictor.model_id, outcome)
        return {"model_id": service.predictor.model_id, "results": rows}

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        return {"jointml_version": __version__, **service.predictor.describe()}

    @app.post("/v1/reload")
    def reload() -> dict[str, Any]:
        try:
            return service.reload()
        except ServingError as e:
            raise HTTPException(e.status, str(e)) from None
        except ModelError as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return service.metrics.text()

    return app
