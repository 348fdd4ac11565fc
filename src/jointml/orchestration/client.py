"""HTTP clients of the coordinator: `ApiClient` (API users, bearer token) and `NodeClient`
(a node, mutual TLS with its party certificate). Both check the coordinator's certificate
against the cluster CA and its name (`coordinator` by default), whatever address it is
reached at.

What travels: specs, states, public metrics and log lines (see `jointml.orchestration`).

>>> ApiClient("http://127.0.0.1:1", token="t")
Traceback (most recent call last):
...
jointml.core.errors.ConfigError: field 'coordinator': the coordinator is reached over HTTPS only, got 'http://127.0.0.1:1'
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from ..core.errors import ConfigError, JointMLError

__all__ = ["ApiClient", "CoordinatorError", "NodeClient"]


class CoordinatorError(JointMLError):
    """The coordinator refused a request or could not be reached (`status` is the HTTP status, 0 if
    unreachable; `error` the class name of the coordinator's error, e.g. "BudgetExceeded")."""

    safe_text = True

    def __init__(self, message: str, status: int = 0, error: str | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.status = status
        self.error = error


class _Client:
    def __init__(self, url: str, ca: str | Path | None, cert: str | Path | None = None, key: str | Path | None = None,
                 server_name: str = "coordinator", timeout: float = 30.0, headers: dict[str, str] | None = None):
        if not url.startswith("https://"):
            raise ConfigError(f"the coordinator is reached over HTTPS only, got {url!r}", field="coordinator")
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        if cert is not None:
            ctx.load_cert_chain(str(cert), str(key))
        self.server_name = server_name
        self.http = httpx.Client(base_url=url.rstrip("/"), verify=ctx, timeout=timeout, headers=headers or {})

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """One call; the JSON answer, or `CoordinatorError` with the coordinator's reason."""
        try:
            r = self.http.request(method, path, extensions={"sni_hostname": self.server_name}, **kw)
        except httpx.HTTPError as e:
            raise CoordinatorError(f"coordinator unreachable at {self.http.base_url}: {type(e).__name__}: {e}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            msg = detail.get("message") if isinstance(detail, dict) else detail
            err = detail.get("error") if isinstance(detail, dict) else None
            raise CoordinatorError(f"coordinator: {r.status_code} {msg}", status=r.status_code, error=err)
        return r.json()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()


class ApiClient(_Client):
    """An API user's client (`token` from `jointml coordinator token NAME`)."""

    def __init__(self, url: str, token: str, ca: str | Path | None = None, server_name: str = "coordinator",
                 timeout: float = 30.0):
        super().__init__(url, ca, server_name=server_name, timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def submit(self, spec: dict, max_retries: int = 0) -> str:
        """Submit a pipeline (inputs as data-source names); returns the job id."""
        return str(self.request("POST", "/api/jobs", json={"spec": spec, "max_retries": max_retries})["job_id"])

    def jobs(self, state: str | None = None) -> list[dict]:
        """The newest jobs first."""
        return list(self.request("GET", "/api/jobs", params={"state": state} if state else None))

    def status(self, job_id: str) -> dict:
        """A job's state, tasks, transitions, approvals and public metrics."""
        return dict(self.request("GET", f"/api/jobs/{job_id}"))

    def logs(self, job_id: str, party: str | None = None) -> list[dict]:
        """The log lines nodes published for a job."""
        return list(self.request("GET", f"/api/jobs/{job_id}/logs", params={"party": party} if party else None))

    def cancel(self, job_id: str) -> dict:
        """Cancel a job."""
        return dict(self.request("POST", f"/api/jobs/{job_id}/cancel"))

    def retry(self, job_id: str, from_start: bool = False) -> dict:
        """Retry a failed or cancelled job from its resume point (or the first step)."""
        return dict(self.request("POST", f"/api/jobs/{job_id}/retry", json={"from_start": from_start}))


class NodeClient(_Client):
    """A node's client: authenticated by its party certificate (mutual TLS)."""

    def __init__(self, url: str, ca: str | Path, cert: str | Path, key: str | Path, server_name: str = "coordinator",
                 timeout: float = 30.0):
        super().__init__(url, ca, cert, key, server_name=server_name, timeout=timeout)
