"""Orchestration: the control plane of a deployment (DESIGN.md section 6).

- `store` — the job store (SQLAlchemy; SQLite by default, PostgreSQL for deployments), its
  schema shipped as alembic migrations run on start;
- `cron` — the cron expressions of scheduled jobs;
- `flow` — the task flow manager: a pipeline turned into per-party tasks per step, the
  validated state machine, gang scheduling, retries, resume points, cron schedules;
- `coordinator` — the REST API (FastAPI), API tokens, nodes authenticated by mutual TLS;
- `node` — the agent at each organisation: data sources, approval policy, runs the steps.

Adversary model: the coordinator is trusted with *metadata only*. It never receives data,
model parts or per-party reports: only pipeline specs (input *names*, never paths), task
states, the public metrics and the log lines that nodes choose to publish. A node runs only
registered components with its own data sources, and only jobs its organisation approved
(automatically by pipeline hash, or by hand); a coordinator that lies about a job can at
worst make a node refuse or fail it, since every party checks the job with its peers
(`jointml.jobs.runner.agree_on_job`) before any data moves.

The package needs the `server` extra (`pip install 'jointml[server]'`), checked here once.

>>> from jointml.orchestration import flow
>>> flow.JOB_STATES[:3]
('submitted', 'awaiting_approval', 'queued')
"""

from ..core.optional import require

for _mod in ("sqlalchemy", "alembic", "fastapi", "uvicorn", "httpx"):
    require(_mod, "server", feature="orchestration (coordinator, node, job store)")
