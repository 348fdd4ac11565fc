"""`jointml serve`: one online prediction server per organisation (see docs/serving.md).

The label holder serves the HTTP API (`POST /v1/predict`, ...) on `--port`; a partner keeps
the mutual-TLS link to it (addresses and certificates from `--cluster`) and answers with its
partials only. Registered on the main group by `cli/main.py`.

>>> sorted(COMMANDS)
['serve', 'serve-commit']
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from ..core.errors import JointMLError

__all__ = ["COMMANDS"]


@click.command("serve")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The model folder a pipeline saved (<output>/model).")
@click.option("--party", required=True, help="This organisation's party name in the cluster file.")
@click.option("--cluster", "cluster_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Cluster YAML: addresses, CA, this party's certificate and key.")
@click.option("--features", "source", default=None,
              help="This party's features by id: a CSV or Parquet file, sqlite:PATH?table=NAME, or a database "
                   "URL with the table after '#' (postgresql+psycopg://user:pw@host/db#table=NAME) "
                   "(optional at the label holder when requests carry its feature values).")
@click.option("--id-column", default="id", show_default=True, help="The id column of the feature source.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP address (label holder).")
@click.option("--port", type=int, default=8080, show_default=True, help="HTTP port (label holder).")
@click.option("--timeout", type=float, default=2.0, show_default=True,
              help="Seconds to wait for a partner's answer before a 503.")
@click.option("--unknown", type=click.Choice(["error", "missing"]), default="error", show_default=True,
              help="Partner: an id it does not hold is reported unknown (error) or scored as all-missing.")
@click.option("--key-bits", type=int, default=2048, show_default=True,
              help="Label holder: Paillier key of the masked variant (a partner whose WOE values it holds).")
@click.option("--tee-platform-dir", default=None, type=click.Path(file_okay=False),
              help="Label holder of a TEE-hosted model: the (SIMULATED) TEE platform's state directory the model was "
                   "sealed on [default: $JOINTML_TEE_SIM_DIR or ~/.jointml/tee-simulation].")
@click.option("--reason-codes", default="",
              help="Partner: the reason policy: the own columns it agrees to name as reason codes, as col=CODE,... "
                   "(or 'all': every column under its name); none by default. Scorecard models only.")
def serve(model_dir: str, party: str, cluster_file: str, source: str | None, id_column: str, host: str, port: int,
          timeout: float, unknown: str, key_bits: int, reason_codes: str, tee_platform_dir: str | None = None) -> None:
    """Serve a saved joint model online at this organisation (label holder: HTTP API; partner: link)."""
    from ..runtime.cluster import ClusterConfig
    from ..serving.predictor import PartyPredictor, open_source
    from ..serving.server import BankService, PartnerService, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cluster = ClusterConfig.load(cluster_file)
        feats = open_source(source, id_column) if source else None
        role = PartyPredictor.load(model_dir, party).role
        if role == "label":
            svc = BankService(model_dir, party, cluster, feats, timeout=timeout, key_bits=key_bits,
                              tee_platform_dir=tee_platform_dir)
            svc.start()
            _reload_on_sighup(svc)
            _run_http(create_app(svc), host, port)
            svc.stop()
            return
        if feats is None and role == "feature":
            raise click.UsageError("a partner needs --features (its own feature source)")
        policy = _reason_policy(reason_codes, PartyPredictor.load(model_dir, party).columns)
        partner = PartnerService(model_dir, party, cluster, feats, unknown=unknown,  # type: ignore[arg-type]
                                 reason_codes=policy)
        _stop_on_signal(partner)
        click.echo(f"{party}: serving model {partner.predictor.model_id} to '{partner.predictor.label_party}'")
        partner.run()
    except JointMLError as e:
        raise click.ClickException(str(e)) from None


def _reason_policy(text: str, columns: list[str]) -> dict[str, str]:
    """`--reason-codes`: `col=CODE,...`, `col,...` (the column's name as its code) or `all`.

    >>> _reason_policy("age=P01,job", ["age", "job", "telephone"])
    {'age': 'P01', 'job': 'job'}
    >>> _reason_policy("all", ["age"])
    {'age': 'age'}
    """
    if text.strip() == "all":
        return {c: c for c in columns}
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        col, _, code = item.partition("=")
        out[col.strip()] = code.strip() or col.strip()
    return out


def _run_http(app: Any, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _reload_on_sighup(svc: Any) -> None:
    """`kill -HUP <pid>` at the label holder does what `POST /v1/reload` does (in a thread: a
    signal handler must not wait for the link)."""
    log = logging.getLogger("jointml.serving")

    def reload() -> None:
        try:
            log.info("reloaded: model %s", svc.reload()["model_id"])
        except JointMLError as e:
            log.warning("reload refused: %s", e)

    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=reload, daemon=True).start())


def _stop_on_signal(svc: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: svc.stop())


@click.command("serve-commit")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The model folder a pipeline saved (<output>/model).")
@click.option("--cluster", "cluster_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Cluster YAML: run ONE party of a real deployment (the bank and each masked partner run it).")
@click.option("--party", default=None, help="With --cluster: this organisation's party.")
@click.option("--key-bits", type=int, default=2048, show_default=True, help="The label holder's Paillier key.")
def serve_commit(model_dir: str, cluster_file: str | None, party: str | None, key_bits: int) -> None:
    """Fix the masked variant's encrypted WOE tables once after training (export): the label holder
    keeps its key and the ciphertexts, each masked partner the SHA-256 it checks at every serving start.
    Without --cluster every party of the folder runs here (the demo's layout)."""
    from pathlib import Path

    from ..serving.masked import commit_tables

    try:
        if cluster_file:
            from ..runtime import run_party

            if not party:
                raise click.UsageError("--cluster needs --party (the party this node runs)")
            got = run_party(commit_tables, party, cluster_file, model_dir, key_bits)
        else:
            from ..runtime import simulate

            parties = sorted(f.name.split(".")[1] for f in Path(model_dir).glob("pipeline.*.json"))
            if not parties:
                raise click.UsageError(f"{model_dir} holds no pipeline records (pipeline.<party>.json)")
            got = {}
            for v in simulate(commit_tables, parties, mode="thread", args=(model_dir, key_bits)).values():
                got.update(v)
    except JointMLError as e:
        raise click.ClickException(str(e)) from None
    if not got:
        click.echo("nothing to commit: the model has no partner whose WOE values the label holder holds")
    for p, digest in sorted(got.items()):
        click.echo(f"masked WOE tables for '{p}' committed: SHA-256 {digest}")


COMMANDS: dict[str, click.Command] = {"serve": serve, "serve-commit": serve_commit}
