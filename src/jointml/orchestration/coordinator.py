"""The coordinator: the REST API over the job store and the task flow manager.

The dashboard (`/dashboard`, `jointml.orchestration.dashboard`) is served on the same port.
Two kinds of callers, on one HTTPS port (TLS 1.3, the cluster CA's certificate named
`coordinator`):

- **API users** (`/api/...`): a bearer token (`Authorization: Bearer <token>`), kept in the
  store as a SHA-256 digest (`jointml coordinator token NAME`). They submit, list, inspect,
  cancel and retry jobs, read logs and public metrics, add cron schedules.
- **Nodes** (`/node/...`): mutual TLS with their party certificate from the cluster CA; the
  party is the certificate's name (SAN), never a field of the request. A node polls for
  work, decides approvals, accepts steps (gang scheduling), reports states, public metrics
  and logs. A request to `/node/...` without a party certificate is refused (401).

Approvals are not an API-user action: an organisation approves a job at its own node
(policy by pipeline hash, or `jointml approve`), so a coordinator (or a stolen API token)
cannot approve on an organisation's behalf; the API shows who approved and how.

What the coordinator receives (adversary model): job specs (input *names*; the API refuses
file paths), task states, the public metrics and log lines nodes choose to publish. Never
data, model parts or per-party reports. A compromised coordinator can lie about states or
forge approvals in its store; every node still runs only what its own policy approved.

>>> app = create_app(JobStore("sqlite://"))
>>> sorted({r.path for r in app.routes if r.path.startswith("/api/jobs")})[:3]
['/api/jobs', '/api/jobs/{job_id}', '/api/jobs/{job_id}/artifacts']
"""

from __future__ import annotations

import re
import ssl
import threading
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..core.errors import ConfigError, JointMLError
from ..dp.budget import BudgetExceeded
from .dashboard import add_dashboard
from .flow import FlowManager, InvalidTransition, UnknownJob
from .ledger import StoreLedger, charge_json, ledger_summary
from .store import JobStore

__all__ = ["Coordinator", "create_app", "peer_protocol_class"]

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class SubmitBody(BaseModel):
    """A job: the pipeline (parsed, or as YAML text) with inputs as data-source names, and its retry policy."""

    spec: dict[str, Any] | None = None
    spec_yaml: str | None = Field(None, max_length=1_000_000)
    max_retries: int = Field(0, ge=0, le=10)

    def pipeline(self) -> dict[str, Any]:
        """The spec as a mapping (YAML parsed safely)."""
        import yaml

        if (self.spec is None) == (self.spec_yaml is None):
            raise ConfigError("give the pipeline as 'spec' (a mapping) or 'spec_yaml' (YAML text)", field="spec")
        if self.spec is not None:
            return self.spec
        try:
            raw = yaml.safe_load(self.spec_yaml or "")
        except yaml.YAMLError as e:
            raise ConfigError(f"the pipeline is not valid YAML: {e}", field="spec_yaml") from None
        if not isinstance(raw, dict):
            raise ConfigError("a pipeline must be a mapping", field="spec_yaml")
        return raw


class RetryBody(BaseModel):
    """Retry from the resume point, or from the first step."""

    from_start: bool = False


class ScheduleBody(BaseModel):
    """A cron schedule submitting `spec` again and again."""

    name: str
    cron: str
    spec: dict[str, Any]
    max_retries: int = Field(0, ge=0, le=10)


class ApprovalBody(BaseModel):
    """A node's decision on a job."""

    approved: bool
    mode: str = Field("manual", pattern="^(auto|manual)$")
    reason: str | None = None


class StepBody(BaseModel):
    """A node's acceptance or report of its task of one step."""

    attempt: int
    ok: bool = True
    message: str | None = Field(None, max_length=10_000)
    metrics: dict[str, float] = Field(default_factory=dict)
    checkpoint: bool = False


class ArtifactsBody(BaseModel):
    """Records of objects a node staged: name, SHA-256 and size of the stored (encrypted) bytes."""

    attempt: int
    step: int | None = None
    artifacts: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)


class DeclareBody(BaseModel):
    """A node declares the privacy budget of one of its data sources."""

    source: str = Field(..., min_length=1, max_length=200)
    epsilon: float
    delta: float


class ChargeBody(BaseModel):
    """A node's DP release: (source, epsilon, delta) charges, its release id, job and mechanism."""

    charges: list[tuple[str, float, float]] = Field(..., max_length=1000)
    release: str = Field("", max_length=200)
    job: str | None = Field(None, max_length=64)
    mechanism: str | None = Field(None, max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict)


class LogsBody(BaseModel):
    """Log lines a node publishes (`{"message", "level", "step"}` each)."""

    lines: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


def check_spec_inputs(spec: dict[str, Any]) -> None:
    """Refuse a spec whose inputs are not data-source names (a path would tell the coordinator
    where a party keeps its data, and nodes resolve names only).

    >>> check_spec_inputs({"inputs": {"bank": "bank_loans"}})
    >>> check_spec_inputs({"inputs": {"bank": "/data/bank.csv"}})
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: field 'inputs.bank': inputs name data sources ...not paths: got '/data/bank.csv'
    """
    for party, name in dict(spec.get("inputs") or {}).items():
        if not isinstance(name, str) or not _SOURCE_NAME.match(name):
            raise ConfigError("inputs name data sources registered at each node (letters, digits, '_', '.', '-'), "
                              f"not paths: got {name!r}", field=f"inputs.{party}")


def _error_response(status: int, e: Exception) -> JSONResponse:
    detail: dict[str, Any] = {"error": type(e).__name__, "message": str(e)}
    if isinstance(e, JointMLError):
        detail.update(party=e.party, field=e.field)
    return JSONResponse(status_code=status, content={"detail": detail})


def create_app(store: JobStore, node_timeout: float = 120.0) -> FastAPI:
    """The FastAPI app of a coordinator over `store` (OpenAPI at `/openapi.json`, docs at `/docs`);
    a step whose peers wait more than `node_timeout` seconds for a silent node fails."""
    flow = FlowManager(store, node_timeout=node_timeout)
    app = FastAPI(title="jointml coordinator", version="1",
                  description="Control plane of jointml: jobs, approvals, states, public metrics, logs. No data.")
    app.state.flow = flow

    @app.exception_handler(UnknownJob)
    async def _unknown(_: Request, e: UnknownJob) -> JSONResponse:
        return _error_response(404, e)

    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, e: InvalidTransition) -> JSONResponse:
        return _error_response(409, e)

    @app.exception_handler(BudgetExceeded)
    async def _over_budget(_: Request, e: BudgetExceeded) -> JSONResponse:
        return _error_response(409, e)

    @app.exception_handler(JointMLError)
    async def _bad(_: Request, e: JointMLError) -> JSONResponse:
        return _error_response(400, e)

    def api_user(authorization: str = Header("")) -> str:
        scheme, _, token = authorization.partition(" ")
        user = store.check_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if user is None:
            raise HTTPException(401, "a valid API token is needed (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        return user

    def node_party(request: Request) -> str:
        names = list(getattr(request.state, "peer_parties", None) or [])
        if len(names) != 1:
            raise HTTPException(401, "node calls need the party's client certificate from the cluster CA "
                                     "(mutual TLS), naming exactly one party")
        return names[0]

    _api_routes(app, flow, store, api_user)
    _node_routes(app, flow, node_party)
    _ledger_routes(app, store, api_user, node_party)
    add_dashboard(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _api_routes(app: FastAPI, flow: FlowManager, store: JobStore, api_user: Any) -> None:
    @app.post("/api/jobs", status_code=201)
    def submit(body: SubmitBody, user: str = Depends(api_user)) -> dict[str, str]:
        spec = body.pipeline()
        check_spec_inputs(spec)
        return {"job_id": flow.submit(spec, user=user, max_retries=body.max_retries)}

    @app.get("/api/jobs")
    def jobs(state: str | None = None, limit: int = 100, user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return flow.list_jobs(state=state, limit=min(max(limit, 1), 1000))

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str, user: str = Depends(api_user)) -> dict[str, Any]:
        return flow.status(job_id)

    @app.get("/api/jobs/{job_id}/logs")
    def logs(job_id: str, party: str | None = None, user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return flow.logs(job_id, party)

    @app.get("/api/jobs/{job_id}/artifacts")
    def artifacts(job_id: str, party: str | None = None, user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return flow.artifacts(job_id, party)

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str, user: str = Depends(api_user)) -> dict[str, str]:
        return {"state": flow.cancel(job_id, user)}

    @app.post("/api/jobs/{job_id}/retry")
    def retry(job_id: str, body: RetryBody | None = None, user: str = Depends(api_user)) -> dict[str, Any]:
        start = flow.retry(job_id, user, from_start=bool(body and body.from_start))
        return {"state": flow.job_state(job_id)[0], "resume_from": start}

    @app.post("/api/schedules", status_code=201)
    def schedule(body: ScheduleBody, user: str = Depends(api_user)) -> dict[str, int]:
        check_spec_inputs(body.spec)
        return {"schedule_id": flow.add_schedule(body.name, body.cron, body.spec, user, body.max_retries)}

    @app.get("/api/schedules")
    def schedules(user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return flow.schedules()

    @app.get("/api/nodes")
    def nodes(user: str = Depends(api_user)) -> list[dict[str, Any]]:
        from .store import NodeRecord, select

        slots = flow.slots_in_use()
        with store.session(readonly=True) as s:
            return [{"party": n.party, "last_seen": n.last_seen.isoformat(), "info": n.info,
                     "slots": slots.get(n.party, [])}
                    for n in s.scalars(select(NodeRecord).order_by(NodeRecord.party))]


def _node_routes(app: FastAPI, flow: FlowManager, node_party: Any) -> None:
    @app.post("/node/poll")
    def poll(info: dict[str, Any] | None = None, party: str = Depends(node_party)) -> dict[str, Any]:
        flow.seen(party, info)
        return {"party": party, **flow.work_for(party)}

    @app.get("/node/jobs/{job_id}/state")
    def job_state(job_id: str, party: str = Depends(node_party)) -> dict[str, Any]:
        state, attempt, step = flow.job_state(job_id, party)
        return {"state": state, "attempt": attempt, "step": step}

    @app.post("/node/jobs/{job_id}/approval")
    def approval(job_id: str, body: ApprovalBody, party: str = Depends(node_party)) -> dict[str, str]:
        return {"state": flow.record_approval(job_id, party, body.approved, body.mode, body.reason)}

    @app.post("/node/jobs/{job_id}/refuse")
    def refuse(job_id: str, body: ApprovalBody, party: str = Depends(node_party)) -> dict[str, str]:
        return {"state": flow.node_refuses(job_id, party, body.reason or "refused")}

    @app.post("/node/jobs/{job_id}/steps/{step}/accept")
    def accept(job_id: str, step: int, body: StepBody, party: str = Depends(node_party)) -> dict[str, Any]:
        start = flow.accept_step(job_id, party, step, body.attempt)
        return {"start": start, "slot": flow.job_slot(job_id) if start else None}

    @app.post("/node/jobs/{job_id}/steps/{step}/withdraw")
    def withdraw(job_id: str, step: int, body: StepBody, party: str = Depends(node_party)) -> dict[str, Any]:
        start = flow.withdraw_step(job_id, party, step, body.attempt)
        return {"start": start, "slot": flow.job_slot(job_id) if start else None}

    @app.post("/node/jobs/{job_id}/steps/{step}/report")
    def report(job_id: str, step: int, body: StepBody, party: str = Depends(node_party)) -> dict[str, str]:
        return {"state": flow.report_step(job_id, party, step, body.attempt, body.ok, body.message, body.metrics,
                                          body.checkpoint)}

    @app.post("/node/jobs/{job_id}/artifacts")
    def add_artifacts(job_id: str, body: ArtifactsBody, party: str = Depends(node_party)) -> dict[str, int]:
        return {"recorded": flow.record_artifacts(job_id, party, body.step, body.attempt, body.artifacts)}

    @app.get("/node/jobs/{job_id}/artifacts")
    def get_artifacts(job_id: str, party: str = Depends(node_party)) -> list[dict[str, Any]]:
        return flow.artifacts(job_id, party)  # a node reads only its own records

    @app.post("/node/jobs/{job_id}/logs")
    def add_logs(job_id: str, body: LogsBody, party: str = Depends(node_party)) -> dict[str, int]:
        flow.add_logs(job_id, party, body.lines)
        return {"lines": len(body.lines)}


def _ledger_routes(app: FastAPI, store: JobStore, api_user: Any, node_party: Any) -> None:
    """The privacy-budget ledger: a node reads and charges its own party's sources only (the
    party is its certificate's); API users read every party's budgets (no writes)."""

    @app.get("/api/ledger")
    def summary(user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return ledger_summary(store)

    @app.post("/node/ledger/declare")
    def declare(body: DeclareBody, party: str = Depends(node_party)) -> dict[str, Any]:
        StoreLedger(store, party).declare(body.source, body.epsilon, body.delta)
        return {"source": body.source}

    @app.get("/node/ledger/source")
    def source(source: str, party: str = Depends(node_party)) -> dict[str, Any]:
        led = StoreLedger(store, party)
        (be, bd), (se, sd) = led.budget(source), led.spent(source)
        return {"source": source, "epsilon": be, "delta": bd, "spent_epsilon": se, "spent_delta": sd}

    @app.get("/node/ledger/charges")
    def charges(source: str | None = None, party: str = Depends(node_party)) -> list[dict[str, Any]]:
        return [charge_json(c) for c in StoreLedger(store, party).charges(source)]

    @app.post("/node/ledger/existing")
    def existing(body: ChargeBody, party: str = Depends(node_party)) -> list[dict[str, Any] | None]:
        led = StoreLedger(store, party)
        out = []
        for src, eps, dl in body.charges:
            old = led.existing(src, body.release, eps, dl)
            out.append(charge_json(old) if old is not None else None)
        return out

    @app.post("/node/ledger/check")
    def check(body: ChargeBody, party: str = Depends(node_party)) -> dict[str, Any]:
        bad = StoreLedger(store, party).check(body.charges)
        return {"refusal": None if bad is None else str(bad)}

    @app.post("/node/ledger/charge")
    def charge(body: ChargeBody, party: str = Depends(node_party)) -> list[dict[str, Any]]:
        got = StoreLedger(store, party).charge_many(body.charges, release=body.release, job=body.job,
                                                    detail=body.detail, mechanism=body.mechanism)
        return [charge_json(c) for c in got]


def peer_protocol_class() -> type:
    """uvicorn's HTTP protocol, extended to put the party names of the client certificate
    (mutual TLS) into each request's `request.state.peer_parties`."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from ..net.tcp import cert_party_names

    class PeerCertProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_obj = transport.get_extra_info("ssl_object")
            cert = ssl_obj.getpeercert() if ssl_obj is not None else None
            names = sorted(cert_party_names(cert)) if cert else []
            self.app_state = {**self.app_state, "peer_parties": names}  # this connection's copy

    return PeerCertProtocol


class Coordinator:
    """A coordinator process: the app served by uvicorn over TLS, plus the schedule ticker.

    `cert`/`key`: the coordinator's certificate from the cluster CA (name `coordinator`);
    `ca`: the cluster CA, which client certificates of nodes must chain to.
    """

    def __init__(self, store: JobStore, cert: str | Path, key: str | Path, ca: str | Path,
                 host: str = "127.0.0.1", port: int = 8443, tick_seconds: float = 30.0, node_timeout: float = 120.0):
        import uvicorn

        self.store, self.host, self.tick_seconds = store, host, tick_seconds
        self.app = create_app(store, node_timeout)
        for what, path in (("cert", cert), ("key", key), ("ca", ca)):
            if not Path(path).is_file():
                raise ConfigError(f"coordinator: {what} file not found: {path}", field=what)
        config = uvicorn.Config(self.app, host=host, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                                ssl_ca_certs=str(ca), ssl_cert_reqs=ssl.CERT_OPTIONAL, http=peer_protocol_class(),
                                log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        """The port it listens on (the real one when started with port 0)."""
        servers = getattr(self.server, "servers", None) or []
        for srv in servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    def _tick(self) -> None:
        flow = FlowManager(self.store)
        while not self._stop.wait(self.tick_seconds):
            flow.run_due()

    def serve(self) -> None:
        """Serve until stopped (Ctrl-C, or `stop()` from another thread)."""
        ticker = threading.Thread(target=self._tick, name="jointml-schedules", daemon=True)
        ticker.start()
        try:
            self.server.run()
        finally:
            self._stop.set()

    def start_in_thread(self, timeout: float = 20.0) -> threading.Thread:
        """Serve in a background thread; returns once it accepts connections."""
        t = threading.Thread(target=self.serve, name="jointml-coordinator", daemon=True)
        t.start()
        if not _wait(lambda: self.server.started, timeout):
            raise ConfigError(f"coordinator did not start within {timeout} s on {self.host}")
        return t

    def stop(self) -> None:
        """Ask the server to finish (it stops after the requests in flight)."""
        self._stop.set()
        self.server.should_exit = True


def _wait(cond: Any, timeout: float) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())
