"""The orchestration commands: `jointml coordinator`, `jointml node`, `jointml submit`,
`jointml jobs`, `jointml status`, `jointml logs`, `jointml approve`, `jointml cancel`,
`jointml retry` (all with `--json`), and `jointml bench chaos` / `jointml bench api`
(`BENCH_COMMANDS`). Registered on the main group by `cli/main.py`.

API commands reach the coordinator over HTTPS with a token: `--coordinator URL --token T
--ca ca.crt`, or the environment variables `JOINTML_COORDINATOR`, `JOINTML_TOKEN`,
`JOINTML_CA`. `jointml approve` runs at an organisation's node (it writes the operator's
decision into the node's work directory; the coordinator cannot approve for anyone).

What the commands send: pipeline specs (inputs as data-source names), job ids and
decisions. No data.

>>> sorted(COMMANDS)
['approve', 'cancel', 'coordinator', 'jobs', 'logs', 'node', 'retry', 'status', 'submit']
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..core.errors import JointMLError

__all__ = ["BENCH_COMMANDS", "COMMANDS"]


def _errors(fn: Any) -> Any:
    """A jointml error (refused request, bad spec, unreachable coordinator) as one CLI line."""
    import functools

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JointMLError as e:
            raise click.ClickException(str(e)) from None

    return wrapped


def _api_options(fn: Any) -> Any:
    opts = [
        click.option("--coordinator", "url", envvar="JOINTML_COORDINATOR", required=True,
                     help="Coordinator URL, https://host:port [env JOINTML_COORDINATOR]."),
        click.option("--token", envvar="JOINTML_TOKEN", required=True, help="API token [env JOINTML_TOKEN]."),
        click.option("--ca", envvar="JOINTML_CA", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Cluster CA certificate that signed the coordinator's [env JOINTML_CA]."),
        click.option("--server-name", default="coordinator", show_default=True,
                     help="Name in the coordinator's certificate."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _client(url: str, token: str, ca: str | None, server_name: str) -> Any:
    from ..core.optional import require

    require("httpx", "server", feature="talking to a coordinator")
    from ..orchestration.client import ApiClient

    return ApiClient(url, token=token, ca=ca, server_name=server_name)


def _emit(as_json: bool, obj: Any, text: str) -> None:
    click.echo(json.dumps(obj, default=str) if as_json else text)


# -- coordinator ---------------------------------------------------------------------------
@click.group("coordinator")
def coordinator() -> None:
    """The coordinator: REST API and job store (start it, make API tokens)."""


@coordinator.command("start")
@click.option("--store", "store_url", default="sqlite:///jointml-jobs.db", show_default=True,
              help="Job store: sqlite:///file.db or postgresql+psycopg://user:pw@host/db.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The coordinator's certificate from the cluster CA (name 'coordinator').")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), required=True, help="Cluster CA certificate.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8443, show_default=True)
@click.option("--node-timeout", type=float, default=120.0, show_default=True,
              help="Seconds a node may stay silent while its peers wait for it at a step (then the job fails).")
@_errors
def coordinator_start(store_url: str, cert: str, key: str, ca: str, host: str, port: int, node_timeout: float) -> None:
    """Serve the REST API over TLS (nodes by mutual TLS, users by token) until Ctrl-C."""
    from ..orchestration.coordinator import Coordinator
    from ..orchestration.store import JobStore

    store = JobStore(store_url)
    click.echo(f"coordinator on https://{host}:{port} (store: {store.dialect})", err=True)
    Coordinator(store, cert, key, ca, host=host, port=port, node_timeout=node_timeout).serve()


@coordinator.command("token")
@click.argument("name")
@click.option("--store", "store_url", default="sqlite:///jointml-jobs.db", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_errors
def coordinator_token(name: str, store_url: str, as_json: bool) -> None:
    """Make an API token for user NAME (printed once; the store keeps its digest only)."""
    from ..orchestration.store import JobStore

    store = JobStore(store_url)
    token = store.add_token(name)
    store.close()
    _emit(as_json, {"user": name, "token": token}, token)


# -- node ----------------------------------------------------------------------------------
@click.group("node")
def node() -> None:
    """A party's node agent (start it, compute a pipeline's hash for its policy)."""


@node.command("start")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), required=True,
              help="node.yaml: party, coordinator, cluster, workdir, data_sources, policy.")
@_errors
def node_start(config: str) -> None:
    """Poll the coordinator and run this party's part of approved jobs until Ctrl-C."""
    from ..orchestration.node import NodeAgent, NodeConfig

    cfg = NodeConfig.load(config)
    click.echo(f"node '{cfg.party}' polling {cfg.coordinator}", err=True)
    NodeAgent(cfg).run()


@node.command("hash")
@click.argument("pipeline", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@_errors
def node_hash(pipeline: str, as_json: bool) -> None:
    """The pipeline's hash (for a node policy's `auto_approve`); input names and output do not count."""
    from ..jobs.spec import PipelineSpec

    spec = PipelineSpec.load(pipeline)
    digest = spec.fingerprint()
    _emit(as_json, {"pipeline": spec.name, "hash": digest}, digest)


# -- jobs (API users) -------------------------------------------------------------------
@click.command("submit")
@click.argument("pipeline", type=click.Path(exists=True, dir_okay=False))
@click.option("--max-retries", type=click.IntRange(0, 10), default=0, show_default=True,
              help="Automatic retries of a failed job (each resumes from the last checkpoint).")
@_api_options
@_errors
def submit(pipeline: str, max_retries: int, url: str, token: str, ca: str | None, server_name: str,
           as_json: bool) -> None:
    """Submit a pipeline YAML (its inputs name data sources registered at the nodes)."""
    import yaml

    with open(pipeline, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    job = _client(url, token, ca, server_name).submit(spec, max_retries=max_retries)
    _emit(as_json, {"job_id": job}, job)


@click.command("jobs")
@click.option("--state", default=None, help="Only jobs in this state.")
@_api_options
@_errors
def jobs(state: str | None, url: str, token: str, ca: str | None, server_name: str, as_json: bool) -> None:
    """List jobs, newest first."""
    rows = _client(url, token, ca, server_name).jobs(state)
    lines = [f"{r['id']}  {r['state']:<18} {r['name']:<20} step {r['current_step']}  attempt {r['attempt']}  "
             f"{r['created_at']}" for r in rows]
    _emit(as_json, rows, "\n".join(lines) or "(no jobs)")


@click.command("status")
@click.argument("job")
@_api_options
@_errors
def status(job: str, url: str, token: str, ca: str | None, server_name: str, as_json: bool) -> None:
    """A job's state, each party's task per step, approvals and public metrics."""
    st = _client(url, token, ca, server_name).status(job)
    if as_json:
        click.echo(json.dumps(st, default=str))
        return
    click.echo(f"{st['id']}  {st['name']}: {st['state']} (attempt {st['attempt']}, step {st['current_step']})")
    if st.get("reason"):
        click.echo(f"  reason: {st['reason']}")
    parties = st["parties"]
    click.echo("  " + f"{'step':<22}" + "".join(f"{p:<12}" for p in parties))
    steps: dict[tuple[int, str], dict[str, str]] = {}
    for t in st["tasks"]:
        steps.setdefault((t["step"], t["name"]), {})[t["party"]] = t["state"]
    for (i, name), by in sorted(steps.items()):
        click.echo("  " + f"{f'{i} {name}':<22}" + "".join(f"{by.get(p, '-'):<12}" for p in parties))
    for m in st["metrics"]:
        click.echo(f"  metric {m['party']}.{m['name']} = {m['value']:.4g} (step {m['step']})")


@click.command("logs")
@click.argument("job")
@click.option("--party", default=None, help="Only this party's lines.")
@_api_options
@_errors
def logs(job: str, party: str | None, url: str, token: str, ca: str | None, server_name: str, as_json: bool) -> None:
    """The log lines the nodes published for a job."""
    rows = _client(url, token, ca, server_name).logs(job, party)
    _emit(as_json, rows, "\n".join(f"{r['at']} [{r['party']}] {r['message']}" for r in rows) or "(no logs)")


@click.command("cancel")
@click.argument("job")
@_api_options
@_errors
def cancel(job: str, url: str, token: str, ca: str | None, server_name: str, as_json: bool) -> None:
    """Cancel a job (its nodes stop before their next step)."""
    got = _client(url, token, ca, server_name).cancel(job)
    _emit(as_json, got, got["state"])


@click.command("retry")
@click.argument("job")
@click.option("--from-start", is_flag=True, help="Run every step again instead of resuming from the last checkpoint.")
@_api_options
@_errors
def retry(job: str, from_start: bool, url: str, token: str, ca: str | None, server_name: str, as_json: bool) -> None:
    """Start a failed or cancelled job again, from the step after its last checkpoint."""
    got = _client(url, token, ca, server_name).retry(job, from_start=from_start)
    _emit(as_json, got, f"{got['state']} (resumes at step {got['resume_from']})")


# -- approve (at a node) -------------------------------------------------------------------
@click.command("approve")
@click.argument("job", required=False)
@click.option("--node", "node_config", type=click.Path(exists=True, dir_okay=False), required=True,
              help="This organisation's node.yaml (the decision is kept in its work directory).")
@click.option("--refuse", is_flag=True, help="Refuse the job instead.")
@click.option("--list", "list_only", is_flag=True, help="List the jobs waiting for this organisation's decision.")
@click.option("--json", "as_json", is_flag=True)
@_errors
def approve(job: str | None, node_config: str, refuse: bool, list_only: bool, as_json: bool) -> None:
    """Approve (or --refuse) a job at this organisation's node; the node reports it on its next poll."""
    from ..orchestration.node import NodeConfig, approve_locally, pending_jobs

    cfg = NodeConfig.load(node_config)
    if list_only or job is None:
        rows = pending_jobs(cfg.workdir)
        _emit(as_json, rows, "\n".join(f"{r['job_id']}  {r.get('name')}  steps {' -> '.join(r['steps'])}  "
                                       f"hash {r['pipeline_hash'][:16]}..." for r in rows) or "(nothing waiting)")
        return
    got = approve_locally(cfg.workdir, job, approve=not refuse)
    _emit(as_json, got, f"{'approved' if got['approved'] else 'refused'} {job} (pipeline hash {got['pipeline_hash']})")


# -- benchmarks (`jointml bench chaos`, `jointml bench api`) ---------------------------------
@click.command("chaos")
@click.option("--jobs", type=click.IntRange(1), default=50, show_default=True, help="Jobs submitted at once.")
@click.option("--kill-rate", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Probability that one node of a job is killed (and restarted) while it runs.")
@click.option("--rows", type=click.IntRange(50), default=300, show_default=True, help="Rows of each party's file.")
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True, help="SS-LR epochs of each job.")
@click.option("--max-retries", type=click.IntRange(0, 10), default=3, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the (public) fault schedule.")
@click.option("--json", "as_json", is_flag=True, help="JSON (the only output format).")
def bench_chaos(jobs: int, kill_rate: float, rows: int, epochs: int, max_retries: int, seed: int, as_json: bool) -> None:
    """A coordinator and three nodes on loopback, N credit jobs, nodes killed at random: success rate, recovery."""
    from ..bench import chaos

    click.echo(json.dumps(chaos.run(jobs=jobs, kill_rate=kill_rate, rows=rows, epochs=epochs, seed=seed,
                                    max_retries=max_retries)))


@click.command("api")
@click.option("--clients", type=click.IntRange(1), default=100, show_default=True, help="Concurrent status pollers.")
@click.option("--seconds", type=click.FloatRange(0.5), default=10.0, show_default=True, help="Per figure.")
@click.option("--jobs", type=click.IntRange(1), default=50, show_default=True, help="Jobs in the store being polled.")
@click.option("--processes", type=click.IntRange(1), default=4, show_default=True, help="Client processes.")
@click.option("--submit-clients", type=click.IntRange(1), default=10, show_default=True)
@click.option("--interval", type=click.FloatRange(0.01), default=1.0, show_default=True,
              help="Seconds between two polls of one client (figure `api`; `api_saturated` polls back to back).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only output format).")
def bench_api(clients: int, seconds: float, jobs: int, processes: int, submit_clients: int, interval: float,
              as_json: bool) -> None:
    """Coordinator API latency (p50/p99) and throughput: status polls and submissions."""
    from ..bench import api

    for row in api.run(clients=clients, seconds=seconds, jobs=jobs, processes=processes, submit_clients=submit_clients,
                       interval=interval):
        click.echo(json.dumps(row))


BENCH_COMMANDS: dict[str, click.Command] = {"chaos": bench_chaos, "api": bench_api}

COMMANDS: dict[str, click.Command] = {c.name: c for c in (coordinator, node, submit, jobs, status, logs, approve, cancel,
                                                          retry) if c.name}
