"""The `jointml` command line: demo, run, predict, bench, certs.

Each command runs this organisation's party (or, for `demo`, every party as a local
process); what each party learns is stated by the component it runs.

>>> from click.testing import CliRunner
>>> print(CliRunner().invoke(main, ["--version"]).output.strip())
jointml, version 0.1.0
>>> import tempfile
>>> out = CliRunner().invoke(main, ["certs", "--out", tempfile.mkdtemp(), "bank", "partner"]).output
>>> out.splitlines()[0].startswith("bank: cert ")
True
>>> d = tempfile.mkdtemp()
>>> r = CliRunner().invoke(main, ["certs", "init-ca", "--out", d])
>>> CliRunner().invoke(main, ["certs", "init-ca", "--out", d]).output.startswith("Error: refusing to overwrite")
True
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .. import __version__


class _Main(click.Group):
    """The `jointml` group: a jointml error (bad configuration or data, a failed or silent
    party) is one paragraph on stderr and exit status 1; the traceback only with `--debug`."""

    def invoke(self, ctx: click.Context) -> Any:
        from ..core.errors import JointMLError

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own usage errors and exits: click prints them
        except JointMLError as e:
            if ctx.meta.get("jointml.debug"):
                raise
            click.echo(f"Error: {error_paragraph(e)}", err=True)
            click.echo("(run with --debug for the traceback)", err=True)
            ctx.exit(1)
        except Exception as e:  # noqa: BLE001 - an error jointml did not name: still one paragraph
            if ctx.meta.get("jointml.debug"):
                raise
            click.echo(f"Error: unexpected {type(e).__name__}: {e}", err=True)
            click.echo("(not an error jointml recognised: run with --debug for the traceback, and please report it)",
                       err=True)
            ctx.exit(2)


def error_paragraph(e: BaseException) -> str:
    """One paragraph for a user: the error class, the party and field it names, its message
    (for a party that failed in a simulation, that party's own error, not the wrapper's).

    >>> from jointml.core.errors import DataError
    >>> error_paragraph(DataError("label column 'y' has 3 distinct values", party="bank", field="y"))
    "DataError: party 'bank': label column 'y' has 3 distinct values"
    """
    from ..runtime import PartyFailed

    if isinstance(e, PartyFailed):
        # the same error at every party: a verdict on the whole job, found by no one party
        job_wide = bool(e.others) and all(f[0] == e.error_type and f[1] == e.message for f in e.others.values())
        msg = e.message if f"'{e.party}'" in e.message or job_wide else f"party '{e.party}': {e.message}"
        return f"{e.error_type}: {msg}"
    return f"{type(e).__name__}: {e}"


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jointml")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error (default: one paragraph).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """jointml: joint modelling across organisations without sharing raw data."""
    ctx.meta["jointml.debug"] = debug


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--job",
    type=click.Choice(["credit", "stats", "fl", "split_nn", "ppdt"]),
    default="credit",
    show_default=True,
    help="credit: the joint credit-scoring job; stats: a small joint-statistics MPC demo; "
    "fl: five banks, federated LR with secure aggregation; split_nn: split learning and its label leakage; "
    "ppdt: the privacy-preserving data transform's utility curve (AUC vs epsilon per k, as a chart in the report).",
)
@click.option(
    "--mode",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="Parties as local processes over mutual TLS, or as threads.",
)
@click.option("--protocol", type=click.Choice(["semi2k", "aby3"]), default="semi2k", show_default=True)
@click.option("--out", "out_dir", default="jointml-demo-out", show_default=True, help="Folder for data, model parts and report.")
@click.option("--sigmoid", type=click.Choice(["seg3", "poly", "accurate"]), default=None, help="Sigmoid approximation for SS-LR.")
@click.option("--epochs", type=int, default=None)
@click.option(
    "--model",
    "model_type",
    type=click.Choice(["ss_lr", "secureboost"]),
    default="ss_lr",
    show_default=True,
    help="ss_lr: WOE + secure logistic regression (MPC); secureboost: gradient-boosted trees (Paillier).",
)
@click.option(
    "--tee",
    type=click.Choice(["none", "tecc"]),
    default="none",
    show_default=True,
    help="tecc: train in three attested TECC enclaves running ABY3 on secret shares (SIMULATED TEE; credit job, ss_lr).",
)
@click.option("--verbose", is_flag=True, default=False,
              help="credit: a progress line for every training epoch (default: a progress bar in a terminal and "
                   "about five epoch lines).")
def demo(
    as_json: bool,
    job: str,
    mode: str,
    protocol: str,
    out_dir: str,
    sigmoid: str | None,
    epochs: int | None,
    model_type: str,
    tee: str,
    verbose: bool = False,
) -> None:
    """Run the German credit job end to end: PSI, WOE binning, SS-LR, AUC/KS, model export, report."""
    if tee == "tecc":
        if job != "credit" or model_type != "ss_lr":
            raise click.UsageError("--tee tecc runs the credit job with logistic regression (--job credit --model ss_lr)")
        from ..demo import tecc_demo

        kw: dict[str, Any] = {"sigmoid": sigmoid} if sigmoid else {}
        if epochs:
            kw["epochs"] = epochs
        summary = tecc_demo.run(mode=mode, out_dir=out_dir, verbose=not as_json, **kw)
    elif job == "fl":
        from ..demo import fl_demo

        summary = fl_demo.run(mode=mode, verbose=not as_json)
    elif job == "ppdt":
        from ..demo import ppdt_demo

        summary = ppdt_demo.run(mode=mode, out_dir=out_dir, verbose=not as_json)
    elif job == "split_nn":
        from ..demo import split_nn_demo

        summary = split_nn_demo.run(mode=mode, out_dir=out_dir, verbose=not as_json)
    elif job == "stats":
        from ..demo import mpc_demo

        summary = mpc_demo.run(mode=mode, protocol=protocol, verbose=not as_json)
    else:
        from ..demo import credit_demo
        from ..jobs.credit import CreditJobConfig

        model = dict(CreditJobConfig.__dataclass_fields__["model"].default_factory())  # type: ignore[operator]  # a default_factory field
        if sigmoid:
            model["sigmoid"] = sigmoid
        if epochs:
            model["epochs"] = epochs
        summary = credit_demo.run(
            mode=mode, protocol=protocol, out_dir=out_dir, verbose=not as_json, model=model, model_type=model_type,
            epoch_lines=verbose,
        )
    if as_json:
        click.echo(json.dumps(summary))


@main.command("run")
@click.argument("pipeline", type=click.Path(exists=True, dir_okay=False))
@click.option("--mode", type=click.Choice(["process", "thread"]), default="process", show_default=True)
@click.option(
    "--cluster",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Cluster file (party addresses, certificates): run ONE party of a real deployment.",
)
@click.option("--party", default=None, help="With --cluster: the party this node runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the label holder's summary as JSON.")
@click.option("--timeout", "recv_timeout", type=float, default=None,
              help="Seconds a party waits for a peer's message before stopping with an error naming the peer and the "
                   "step (simulation; a deployment sets recv_timeout in its cluster file).")
@click.option("--quiet", is_flag=True, help="No progress lines (errors and the summary only).")
@click.option("--log-file", default=None, type=click.Path(dir_okay=False),
              help="Append every party's timestamped progress lines to this file ({party} in the name: one per party).")
@click.option("--check", "check_only", is_flag=True,
              help="Only check the job (parameters, every party's input, the cluster) and agree on the verdict; "
                   "nothing is computed.")
@click.option("--verbose", is_flag=True, default=False,
              help="Every party's progress lines, a line for every training epoch (default: the label holder's, "
                   "about five epoch lines).")
def run_cmd(pipeline: str, mode: str, cluster: str | None, party: str | None, as_json: bool,
            recv_timeout: float | None, quiet: bool, log_file: str | None, check_only: bool,
            verbose: bool = False) -> None:
    """Run a declarative pipeline (YAML): every party as a local process, or, with --cluster and
    --party, this organisation's party only (each organisation runs the same command)."""
    from ..jobs import PipelineSpec, run_pipeline, simulate_pipeline

    if party and not cluster:
        raise click.UsageError("--party needs --cluster (the cluster file with every party's address); without "
                               "--cluster every party runs here as a local process")
    spec = PipelineSpec.load(pipeline)
    if cluster:
        from ..runtime import run_party

        if not party:
            raise click.UsageError("--cluster needs --party (the party this node runs)")
        _check_cluster(cluster, party, spec.parties)
        summary = run_party(run_pipeline, party, cluster, spec, verbose=False if (as_json or quiet) else "all",
                            check_only=check_only, options={"jobs.log_file": log_file} if log_file else None)
        if check_only:
            click.echo(f"'{party}': the job passed its checks at every party (job {summary['job_fingerprint'][:12]})")
            return
        shown = {k: v for k, v in summary.items() if k not in ("test_scores", "test_labels", "local_test_scores", "scorecard")}
        click.echo(json.dumps(shown, default=str) if as_json else "\n".join(f"  {k:<14} {v}" for k, v in shown.items()))
        return
    if not (as_json or quiet):
        click.echo(f"pipeline '{spec.name}': parties {', '.join(spec.parties)}; steps " + " -> ".join(n for n, _ in spec.steps))
    shown_lines: bool | str = "all" if verbose else True
    res = simulate_pipeline(spec, mode=mode, verbose=False if (as_json or quiet) else shown_lines,
                            recv_timeout=recv_timeout, check_only=check_only, log_file=log_file)
    if check_only:
        first = next(iter(res.values()))
        click.echo(f"the job passed its checks at every party ({', '.join(res)}; label at '{first['label_party']}'; "
                   f"job {first['job_fingerprint'][:12]}); nothing was computed")
        return
    main_party = next((r for r in res.values() if "auc" in r), next(iter(res.values())))
    shown = {k: v for k, v in main_party.items()
             if k not in ("test_scores", "test_labels", "local_test_scores", "weights", "stats", "scorecard",
                          "selected_features", "stability")}
    if spec.output:
        shown["reports"] = f"{spec.output}/report.<party>.html (one per party)"
    shown["bytes"] = sum(r["stats"]["bytes_sent"] for r in res.values())
    if as_json:
        click.echo(json.dumps(shown, default=str))
    else:
        for k, v in shown.items():
            click.echo(f"  {k:<14} {v}")


@main.command("runs")
@click.argument("output", type=click.Path(file_okay=False), default="out")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
def runs_cmd(output: str, as_json: bool) -> None:
    """List the past runs recorded in OUTPUT/runs/ (newest first) with their metrics."""
    import time as _time

    from ..jobs.runner import list_runs

    rows = list_runs(output)
    if not rows:
        click.echo(f"no runs recorded in {output}/runs/")
        return
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, default=str))
            continue
        when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(r["created"]))
        metrics = "  ".join(f"{k} {r[k]:.4f}" if isinstance(r[k], float) else f"{k} {r[k]}"
                            for k in ("auc", "ks", "ks_uplift_pct", "rows_aligned") if k in r)
        click.echo(f"{r['run_id']}  {when}  {r['pipeline']}  {r['model'] or '-'}  {metrics}")


@main.command("components")
@click.option("--markdown", is_flag=True, help="The full reference page (docs/pipelines.md) instead of a list.")
def components_cmd(markdown: bool) -> None:
    """List the pipeline components and models with their parameters (type, default, allowed values)."""
    import jointml.jobs  # noqa: F401 - registers the components

    from ..jobs.registry import COMPONENTS, MODELS, param_help, param_rule, reference_markdown

    if markdown:
        click.echo(reference_markdown(), nl=False)
        return
    for c in COMPONENTS.values():
        if c.alias_of:
            click.echo(f"{c.name}  (= {c.alias_of}" + (f" with {c.fixed})" if c.fixed else ")"))
            continue
        click.echo(f"{c.name} (v{c.version}): {c.doc.splitlines()[0] if c.doc else ''}")
        for p in c.own_params.values():
            rule = param_rule(c.name, p.name)
            meaning = param_help(c.name, p.name)
            click.echo(f"    {p.name}: default {p.describe_default()}" + (f"; allowed {rule.describe()}" if rule else "")
                       + (f"  ({meaning})" if meaning else ""))
    for e in MODELS.values():
        click.echo(f"model {e.name} (train: {{model: {e.name}}}):")
        for p in e.params().values():
            rule = param_rule("train", p.name)
            click.echo(f"    {p.name}: default {p.describe_default()}" + (f"; allowed {rule.describe()}" if rule else ""))


def _check_cluster(cluster: str, party: str, needed: list[str]) -> None:
    """The cluster file names this node's party and every party the job needs (a dealer too)."""
    from ..core.errors import ConfigError
    from ..runtime import ClusterConfig

    names = ClusterConfig.load(cluster).names
    if party not in needed:
        raise ConfigError(f"--party '{party}' is not a party of the job (parties: {needed})", field="party")
    missing = [p for p in needed if p not in names]
    if missing:
        raise ConfigError(f"the cluster file {cluster} has no entry for {missing}, which the job needs "
                          f"(cluster parties: {names}); add their address and certificate", field="parties")
    extra = [p for p in names if p not in needed]
    if extra:
        raise ConfigError(f"the cluster file {cluster} names parties {extra} that the job does not use (job parties: "
                          f"{needed}); every cluster party must run the job", field="parties")


@main.command()
@click.option(
    "--model", "model_dir", type=click.Path(exists=True, file_okay=False), required=True, help="Folder with the model parts."
)
@click.option(
    "--input", "inputs", multiple=True, required=True,
    help="PARTY=path of that party's new rows (repeatable); with --cluster, give your own PARTY=path and the other "
         "parties with input as PARTY alone.",
)
@click.option("--to", "to", required=True, help="The party that receives the scores.")
@click.option("--id-column", default=None, help="The id column to align rows on [default: the training's PSI key, else id].")
@click.option("--dealer", default="dealer", show_default=True)
@click.option("--psi-mode", type=click.Choice(["label_only", "both"]), default=None,
              help="label_only: only --to learns which ids are shared; both: every party does. "
                   "Default: label_only for ss_lr/ss_glm, both for tree models.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False), default=None, help="CSV for the scores (written by the receiver)."
)
@click.option("--unmatched", "unmatched_path", type=click.Path(dir_okay=False), default=None,
              help="CSV for the receiver's ids that had no match (default: next to --out, <out>.unmatched.csv).")
@click.option("--mode", type=click.Choice(["process", "thread"]), default="process", show_default=True)
@click.option("--cluster", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Cluster file: run ONE party of a real deployment (each organisation runs the same command).")
@click.option("--party", default=None, help="With --cluster: the party this node runs.")
@click.option("--timeout", "recv_timeout", type=float, default=None,
              help="Seconds to wait for a peer's message before stopping with an error naming it (simulation).")
def predict(model_dir: str, inputs: tuple[str, ...], to: str, id_column: str | None, dealer: str, out_path: str | None,
            unmatched_path: str | None, mode: str, cluster: str | None, party: str | None, recv_timeout: float | None,
            psi_mode: str | None = None) -> None:
    """Score new rows jointly with saved model parts; only --to sees the scores.

    The model is the one the folder's manifests name as current (the parties first agree it
    is the same training); its name and id are printed. Rows are aligned by PSI on
    --id-column; the receiver learns how many of its rows had no match (their ids go to
    a file at the receiver, never to another party)."""
    from ..jobs import predict_job

    if party and not cluster:
        raise click.UsageError("--party needs --cluster (the cluster file with every party's address)")
    paths = _predict_inputs(inputs, cluster is not None, party)
    id_column = id_column or _trained_id_column(model_dir, [party] if party else list(paths))
    kwargs: dict[str, Any] = {"id_column": id_column or None, "dealer": dealer, "psi_mode": psi_mode}
    if cluster:
        from ..runtime import run_party

        if not party:
            raise click.UsageError("--cluster needs --party (the party this node runs)")
        got = run_party(predict_job, party, cluster, model_dir, paths, to, **kwargs)
    else:
        from ..runtime import simulate

        parties = list(paths) + ([dealer] if dealer and dealer not in paths else [])
        got = simulate(predict_job, parties, mode=mode, args=(model_dir, paths, to), kwargs=kwargs,
                       recv_timeout=recv_timeout)[to]
    if got["party"] != to:
        click.echo(f"'{got['party']}': scored {got['rows']} rows with the {got['model']} model {got.get('model_id')}; "
                   f"the scores went to '{to}' only ({got.get('unmatched_rows', 0)} of this party's rows had no match)")
        return
    _write_scores(got, to, id_column, out_path, unmatched_path)


def _trained_id_column(model_dir: str, parties: list[str]) -> str:
    """The PSI key the model was trained with (remembered in the party's record), else "id"."""
    from ..jobs.saved import read_record

    for p in parties:
        rec = read_record(model_dir, p)
        if rec is not None and isinstance(rec.get("id_column"), str):
            return str(rec["id_column"])
    return "id"


def _predict_inputs(items: tuple[str, ...], cluster: bool, me: str | None) -> dict[str, str]:
    paths = {}
    for item in items:
        p, sep, path = item.partition("=")
        if not sep and not (cluster and p != me):
            raise click.BadParameter(f"--input wants PARTY=path, got {item!r}")
        paths[p] = path  # another node's input: only its owner reads it
    return paths


def _write_scores(got: dict, to: str, id_column: str | None, out_path: str | None, unmatched_path: str | None) -> None:
    import pandas as pd

    df = pd.DataFrame({"score": got["scores"]})
    if got.get("reasons"):  # the scorecard's points and reason codes (top adverse contributions)
        extra = pd.DataFrame(got["reasons"]).drop(columns=["row"]).rename(columns={"score": "points"})
        df = pd.concat([df, extra], axis=1)
    if got.get("ids") is not None:
        df.insert(0, id_column or "id", got["ids"])
    note = (f"scored with the {got['model']} model {got.get('model_id')}; {len(df)} of {got.get('input_rows', len(df))} "
            f"rows of '{to}' matched, {got.get('unmatched_rows', 0)} had no match")
    unmatched = got.get("unmatched_ids") or []
    if unmatched and (unmatched_path or out_path):
        from pathlib import Path

        up = Path(unmatched_path) if unmatched_path else Path(str(out_path)).with_suffix(".unmatched.csv")
        pd.DataFrame({id_column or "id": unmatched}).to_csv(up, index=False)
        note += f" (their ids: {up})"
    if out_path:
        df.to_csv(out_path, index=False)
        click.echo(f"{len(df)} scores written to {out_path} (visible to '{to}' only); {note}")
    else:
        click.echo(df.to_csv(index=False), nl=False)
        click.echo(note, err=True)


_DELAY_HELP = ("Inject this one-way latency (ms) into every link, in the transport "
               "(JOINTML_NET_DELAY_MS): a ping-pong then costs 2x it. E.g. 10 for a 20 ms RTT WAN.")
_ANCHOR_HELP = "Also run the peer (SecretFlow SPU / libpsi, ../shared/anchors) now, for a same-run ratio."


def _check_anchor(anchor: bool) -> None:
    """Fail early, saying how to set the anchor up, when --anchor cannot run here."""
    if not anchor:
        return
    from ..bench.anchors import anchor_status

    status = anchor_status("spu")
    if not status["available"]:
        raise click.ClickException(f"--anchor: {status['how']}")


@main.group()
def bench() -> None:
    """Benchmarks: JSON lines with time, bytes, rounds and the plaintext baseline."""


@bench.command("mpc")
@click.option("--protocol", type=click.Choice(["semi2k", "aby3"]), default="semi2k", show_default=True)
@click.option("--figure", "figures", multiple=True, help="Only these figures (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines only (default prints JSON lines plus a table on stderr).")
@click.option("--anchor", is_flag=True, help=_ANCHOR_HELP)
@click.option("--delay-ms", type=float, default=None, help=_DELAY_HELP)
@click.option("--trunc", type=click.Choice(["dealer", "local"]), default="dealer", show_default=True,
              help="semi2k's product truncation: the dealer's pair (exact) or SecureML's local one (no round, rare huge errors).")
def bench_mpc(protocol: str, figures: tuple[str, ...], as_json: bool, anchor: bool, delay_ms: float | None,
              trunc: str) -> None:
    """Secure operators: mul_1M, lt_1M, matmul_1000, sigmoid_1M_<mode>."""
    from ..bench import mpc as bmpc
    from ..net.link import injected_latency

    _check_anchor(anchor)
    rows = []
    with injected_latency(delay_ms):
        for row in bmpc.run(protocol, list(figures) or None, anchor=anchor, trunc=trunc):
            row["delay_ms"] = delay_ms
            rows.append(row)
            click.echo(json.dumps(row))
    if not as_json:
        head = ("figure", "seconds", "bytes/elem", "rounds", "SPU s (now)", "speedup")
        click.echo("\n{:<22} {:>9} {:>12} {:>7} {:>12} {:>8}".format(*head), err=True)
        for r in rows:
            spu, ratio = r["spu_seconds_same_run"] or "-", r["speedup_vs_spu_same_run"] or "-"
            line = "{:<22} {:>9.3f} {:>12.1f} {:>7} {:>12} {:>8}"
            click.echo(line.format(r["figure"], r["seconds"], r["bytes_per_element"], r["rounds"], spu, ratio), err=True)
        if not anchor:
            click.echo("(SPU columns need --anchor: a ratio is only given against SPU measured in this run)", err=True)


@bench.command("he")
@click.option("--key-bits", type=int, default=2048, show_default=True)
@click.option("--n", "count", type=int, default=2000, show_default=True, help="Values per figure.")
@click.option("--jobs", "n_jobs", type=int, default=None, help="Worker processes (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines only.")
@click.option("--scheme", "schemes", type=click.Choice(["ou", "paillier"]), multiple=True,
              help="Scheme(s) to measure, in this order (repeatable; default: ou and paillier, same run).")
def bench_he(key_bits: int, count: int, n_jobs: int | None, as_json: bool, schemes: tuple[str, ...]) -> None:
    """Okamoto-Uchiyama and Paillier: encryptions/s, decryptions/s, additions/s, ... (JSON keys scheme, figure, per_second)."""
    from ..bench import he as bhe

    for row in bhe.run_schemes(schemes or ("ou", "paillier"), key_bits=key_bits, n=count, n_jobs=n_jobs):
        click.echo(json.dumps(row))


@bench.command("psi")
@click.option("--rows", type=int, default=100_000, show_default=True, help="Ids per party (half of them shared).")
@click.option("--jobs", "n_jobs", type=int, default=None, help="Curve worker processes per party (default: all cores).")
@click.option("--progress/--no-progress", default=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--anchor", is_flag=True, help=_ANCHOR_HELP)
@click.option("--protocol", type=click.Choice(["ecdh", "kkrt"]), default="ecdh", show_default=True,
              help="ecdh: ECDH-PSI on X25519; kkrt: the OT-based KKRT16 PSI (two parties).")
def bench_psi(rows: int, n_jobs: int | None, progress: bool, as_json: bool, anchor: bool, protocol: str) -> None:
    """PSI between two processes over TLS: seconds, bytes, intersection size."""
    from ..bench import psi as bpsi

    _check_anchor(anchor)
    click.echo(json.dumps(bpsi.run(rows, n_jobs=n_jobs, progress=progress, anchor=anchor, protocol=protocol)))


@bench.command("gc")
@click.option("--n", type=int, default=1_000_000, show_default=True, help="Pairs compared.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-semi2k", is_flag=True, help="Skip the semi2k dealer-mask comparison run beside it.")
def bench_gc(n: int, as_json: bool, no_semi2k: bool) -> None:
    """Garbled-circuit comparison (half-gates) between two processes over TLS: gc_lt_1M."""
    from ..bench import gc as bgc

    click.echo(json.dumps(bgc.run(n, compare_semi2k=not no_semi2k)))


@bench.command("trees")
@click.option("--rows", type=int, default=100_000, show_default=True, help="Training rows (plus max(1000, rows/10) test rows).")
@click.option("--features", type=int, default=40, show_default=True, help="Features in total, half at each party.")
@click.option("--trees", type=int, default=3, show_default=True)
@click.option("--depth", type=int, default=5, show_default=True)
@click.option("--bins", type=int, default=32, show_default=True)
@click.option("--key-bits", type=int, default=2048, show_default=True)
@click.option("--jobs", "n_jobs", type=int, default=None, help="Worker processes per party (default: all cores).")
@click.option("--model", "model", type=click.Choice(["secureboost", "ss_xgb"]), default="secureboost", show_default=True)
@click.option("--protection", type=click.Choice(["none", "mpc"]), default="none", show_default=True,
              help="SecureBoost: 'mpc' finds splits under semi2k (the bank never sees bin sums).")
@click.option("--json", "as_json", is_flag=True, help="JSON only (default adds a breakdown on stderr).")
@click.option("--scheme", "he_scheme", type=click.Choice(["ou", "paillier"]), default="ou", show_default=True,
              help="SecureBoost's HE scheme: Okamoto-Uchiyama or Paillier (same 2048-bit key size).")
def bench_trees(rows, features, trees, depth, bins, key_bits, n_jobs, model, protection, as_json, he_scheme):
    """SecureBoost (HE) or SS-XGB (MPC) over TLS between processes: seconds per tree, bytes, AUC, beside xgboost."""
    from ..bench import trees as btrees

    if model == "ss_xgb":
        click.echo(json.dumps(btrees.run_ss_xgb(rows=rows, features=features, trees=trees, depth=depth, bins=bins)))
        return
    row = btrees.run(rows=rows, features=features, trees=trees, depth=depth, bins=bins, key_bits=key_bits, n_jobs=n_jobs,
                     protection=protection, he_scheme=he_scheme)
    click.echo(json.dumps(row))
    if not as_json:
        click.echo(
            f"\n{row['seconds_per_tree']:.2f} s/tree "
            f"(xgboost {row['baseline_seconds_per_tree']:.3f} s, x{row['ratio_to_baseline']}), "
            f"AUC {row['auc']} vs {row['baseline_auc']}, {row['bytes_per_tree'] / 1e6:.1f} MB/tree",
            err=True,
        )
        for who in ("time_bank", "time_partner"):
            click.echo(f"  {who[5:]:<8} " + "  ".join(f"{k} {v:.2f}s" for k, v in row[who].items() if v), err=True)


@bench.command("tee")
@click.option("--rows", type=int, default=100_000, show_default=True)
@click.option("--features", type=int, default=50, show_default=True)
@click.option("--model", type=click.Choice(["logistic_regression", "gbdt"]), default="logistic_regression", show_default=True)
@click.option("--tecc", is_flag=True, help="TECC instead: ABY3 LR with each MPC party in its own attested enclave.")
@click.option("--epochs", type=int, default=20, show_default=True, help="With --tecc.")
def bench_tee(rows: int, features: int, model: str, tecc: bool, epochs: int) -> None:
    """TEE training rows/s beside plaintext (SIMULATED enclave: software, not hardware protection)."""
    from ..bench import tee as btee

    if tecc:
        click.echo(json.dumps(btee.run_tecc(rows=min(rows, 20_000), features=min(features, 20), epochs=epochs), default=str))
    else:
        click.echo(json.dumps(btee.run(rows=rows, features=features, model=model), default=str))


@bench.command("lr")
@click.option("--rows", type=int, default=100_000, show_default=True)
@click.option("--features", type=int, default=100, show_default=True)
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--sigmoid", type=click.Choice(["seg3", "poly", "accurate"]), default="seg3", show_default=True)
@click.option("--protocol", type=click.Choice(["semi2k", "aby3"]), default="semi2k", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--anchor", is_flag=True, help=_ANCHOR_HELP)
@click.option("--delay-ms", type=float, default=None, help=_DELAY_HELP)
@click.option("--bandwidth-mbps", type=float, default=None, help="Cap every link at this many Mbit/s (injected).")
def bench_lr(
    rows: int, features: int, epochs: int, batch_size: int, sigmoid: str, protocol: str, as_json: bool, anchor: bool,
    delay_ms: float | None, bandwidth_mbps: float | None,
) -> None:
    """SS-LR training: samples/s, bytes/sample, AUC beside numpy/scikit-learn; rounds per batch and
    microseconds per round beside a raw TLS round trip measured in the same run."""
    from ..bench import lr as blr

    _check_anchor(anchor)
    row = blr.run(
        rows=rows, features=features, epochs=epochs, batch_size=batch_size, sigmoid=sigmoid, protocol=protocol, anchor=anchor,
        delay_ms=delay_ms, bandwidth_mbps=bandwidth_mbps,
    )
    click.echo(json.dumps(row))


@bench.command("serve")
@click.option("--model", type=click.Choice(["all", "ss_lr", "ss_lr_masked", "secureboost", "ss_xgb", "tee"]),
              default="all", show_default=True,
              help="ss_lr_masked: SS-LR on WOE features whose values only the bank holds (the demo's default); ss_xgb: "
                   "scored under MPC online with the dealer; tee: an enclave-hosted model (SIMULATED TEE); all: each.")
@click.option("--requests", type=int, default=2000, show_default=True, help="Single-id requests.")
@click.option("--batch", type=int, default=1000, show_default=True, help="Ids per batched request.")
@click.option("--batch-requests", type=int, default=50, show_default=True, help="Batched requests.")
@click.option("--trees", type=int, default=100, show_default=True, help="SecureBoost trees.")
@click.option("--depth", type=int, default=5, show_default=True, help="SecureBoost depth.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only output format).")
def bench_serve(model: str, requests: int, batch: int, batch_requests: int, trees: int, depth: int,
                as_json: bool) -> None:
    """Online serving: p50/p99 latency of single-id requests, requests/s, batched ids/s, bytes per id."""
    from ..bench import serve as bserve

    models = bserve.MODELS if model == "all" else (model,)
    for m in models:  # one model at a time: each row is printed as soon as it is measured
        for row in bserve.run(m, requests=requests, batch=batch, batch_requests=batch_requests, trees=trees,
                              depth=depth):
            click.echo(json.dumps(row))


@bench.command("dp")
@click.option("--rows", type=int, default=100_000, show_default=True)
@click.option("--figure", "figures", multiple=True, type=click.Choice(["dp_sgd", "ppdt"]), help="Repeatable; default both.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only output format).")
def bench_dp(rows: int, figures: tuple[str, ...], as_json: bool) -> None:
    """DP-SGD SS-LR beside non-private SS-LR; PPDT utility and reconstruction error by epsilon and k."""
    from ..bench import dp as bdp

    for row in bdp.run(rows, figures or ("dp_sgd", "ppdt")):
        click.echo(json.dumps(row))


@bench.command("dsl")
@click.option("--protocol", type=click.Choice(["semi2k", "aby3"]), default="semi2k", show_default=True)
@click.option("--figure", "figures", multiple=True, help="dsl_lr, dsl_flags, dsl_mlp, dsl_wan, dsl_wan_flags (repeatable).")
@click.option("--rows", type=int, default=100_000, show_default=True)
@click.option("--features", type=int, default=100, show_default=True)
@click.option("--batch-size", type=int, default=1024, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--dump-ir", is_flag=True, help="Print each program's IR after every pass (stderr).")
@click.option("--calibrate", is_flag=True, help="Re-measure the cost model's time calibration first and store it.")
@click.option("--calibration-scale", type=float, default=1.0, show_default=True,
              help="Size of the calibration programs (1.0: up to ~1M elements per kernel).")
@click.option("--delay-ms", type=float, default=None, help="Injected one-way link delay (dsl_wan: 10 if not given).")
def bench_dsl(protocol: str, figures: tuple[str, ...], rows: int, features: int, batch_size: int, as_json: bool,
              dump_ir: bool, calibrate: bool, calibration_scale: float, delay_ms: float | None) -> None:
    """DSL programs: time beside hand-written and naive execution, predicted vs measured traffic and time."""
    from ..bench import dsl as bdsl

    for row in bdsl.run(protocol, list(figures) or None, rows=rows, features=features, batch=batch_size,
                        dump_ir=dump_ir, calibrate=calibrate, delay_ms=delay_ms, calibration_scale=calibration_scale):
        click.echo(json.dumps(row))


@bench.command("nn")
@click.option("--figure", "figures", multiple=True, help="mpc_mlp_digits, mpc_mlp_crypten_ff, split_credit (repeatable).")
@click.option("--epochs", type=int, default=5, show_default=True, help="MPC MLP figures (split_credit: 3, fixed).")
@click.option("--gradient-epsilon", type=float, default=4.0, show_default=True, help="split_credit: the DP defence's epsilon.")
@click.option("--marvell-sumkl", type=float, default=0.25, show_default=True, help="split_credit: Marvell's sumKL bound.")
@click.option("--seeds", type=int, default=12, show_default=True, help="split_credit: repetitions (mean and spread).")
@click.option("--json", "as_json", is_flag=True)
def bench_nn(figures: tuple[str, ...], epochs: int, gradient_epsilon: float, marvell_sumkl: float, seeds: int,
             as_json: bool) -> None:
    """Neural networks: MPC MLP samples/s beside its plaintext twin and CrypTen's published figure; split learning."""
    from ..bench import nn as bnn

    for row in bnn.run(list(figures) or None, epochs=epochs, gradient_epsilon=gradient_epsilon,
                       marvell_sumkl=marvell_sumkl, seeds=seeds):
        click.echo(json.dumps(row))


@bench.command("fl")
@click.option("--clients", type=int, default=100, show_default=True)
@click.option("--dropout", type=float, default=0.1, show_default=True, help="Fraction of clients dropping per round.")
@click.option("--params", type=int, default=100_000, show_default=True, help="Model size (MLP parameters).")
@click.option("--rounds", type=int, default=3, show_default=True)
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Aggregator's wait per SecAgg stage (s).")
@click.option("--json", "as_json", is_flag=True)
def bench_fl(clients: int, dropout: float, params: int, rounds: int, timeout: float, as_json: bool) -> None:
    """Federated learning: SecAgg+ vs plain FedAvg per round (time, bytes/client), accuracy vs centralised."""
    from ..bench import fl as bfl

    click.echo(json.dumps(bfl.run(clients=clients, dropout=dropout, params=params, rounds=rounds, timeout=timeout)))


@bench.command("scale")
@click.option("--json", "as_json", is_flag=True, help="JSON lines only (default adds a table of exponents on stderr).")
@click.option("--out", "out_dir", default="bench-scale", show_default=True, type=click.Path(file_okay=False),
              help="Folder for scale.jsonl and the chart scale.png.")
@click.option("--max-rows", type=int, default=None, help="Skip sizes above this many rows.")
@click.option("--quick", is_flag=True, help="Tiny sizes (under a minute): a smoke run, not a measurement.")
@click.option("--curve", "curves", multiple=True,
              type=click.Choice(["ss_lr", "psi_ecdh", "psi_kkrt", "secureboost"]), help="Only these curves (repeatable).")
def bench_scale(as_json: bool, out_dir: str, max_rows: int | None, quick: bool, curves: tuple[str, ...]) -> None:
    """How cost grows: SS-LR, PSI (ECDH, KKRT) and SecureBoost at log-spaced sizes; JSON lines,
    a log-log chart (seconds, bytes, peak RSS against rows) and the fitted exponent per curve."""
    from pathlib import Path

    from ..bench import scale as bscale

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(out / "scale.jsonl", "w") as f:
        for row in bscale.run(list(curves) or None, quick=quick, max_rows=max_rows):
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            click.echo(json.dumps(row))
        fits = bscale.fit_exponents(rows)
        fit_row = {"figure": "scale_fit", "exponents": fits}
        f.write(json.dumps(fit_row) + "\n")
    click.echo(json.dumps(fit_row))
    try:
        chart = bscale.write_chart(rows, out / "scale.png")
        click.echo(f"chart: {chart}", err=True)
    except ImportError:
        click.echo("no chart: matplotlib is not installed (pip install 'jointml[bench]')", err=True)
    if not as_json:
        click.echo("\n{:<12} {:>8} {:>8} {:>9} {:>10}".format("curve", "seconds", "bytes", "peak RSS", "plaintext"), err=True)
        for c, m in fits.items():
            vals = [m.get(k) for k in ("seconds", "bytes", "peak_rss_mb", "plaintext_seconds")]
            click.echo("{:<12} {:>8} {:>8} {:>9} {:>10}".format(c, *("-" if v is None else v for v in vals)), err=True)
        click.echo("(fitted exponent k of metric ~ rows^k, least squares on log-log)", err=True)


@bench.command("anchors")
@click.option("--part", "parts", multiple=True, type=click.Choice(["ops", "lr", "psi"]),
              help="Only these comparisons (repeatable; default all).")
@click.option("--protocol", type=click.Choice(["semi2k", "aby3"]), default="semi2k", show_default=True)
@click.option("--psi-rows", type=int, default=1_000_000, show_default=True, help="KKRT vs libpsi RR22 size (ids a side).")
@click.option("--psi-ecdh-rows", type=int, default=100_000, show_default=True, help="ECDH vs libpsi ECDH size.")
def bench_anchors(parts: tuple[str, ...], protocol: str, psi_rows: int, psi_ecdh_rows: int) -> None:
    """SecretFlow SPU's anchor scripts and our matching figures, in this run: JSON lines with
    both values and speedup_vs_spu (> 1: jointml faster). Needs SPU's own venv (see the error)."""
    from ..bench.anchors import SPU_PARTS, anchor_status, compare_spu
    from ..core.errors import JointMLError

    status = anchor_status("spu")
    if not status["available"]:
        raise click.ClickException(f"no same-run comparison: {status['how']}")
    try:
        for row in compare_spu(tuple(parts) or SPU_PARTS, protocol=protocol, psi_rows=psi_rows, psi_ecdh_rows=psi_ecdh_rows):
            click.echo(json.dumps(row))
    except JointMLError as e:
        raise click.ClickException(str(e)) from None


def _certs_errors(fn: Any) -> Any:
    """Report a refused or invalid certificate operation as a one-line CLI error."""
    import functools

    from ..core.errors import JointMLError

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JointMLError as e:
            raise click.ClickException(str(e)) from None

    return wrapped


class _CertsGroup(click.Group):
    """`jointml certs SUBCOMMAND ...`, or the development shortcut `jointml certs --out DIR PARTY...`."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "PARTY...", _certs_dev, args  # party names, not a subcommand
        return super().resolve_command(ctx, args)


_OUT_HELP = "Folder for the CA and party certificates (development shortcut)."


@main.group(cls=_CertsGroup, invoke_without_command=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help=_OUT_HELP)
@click.option("--days", type=int, default=None, help="Validity of the development certificates [default: 365].")
@click.option("--force", is_flag=True, help="Replace an existing CA, key or certificate.")
@click.pass_context
def certs(ctx: click.Context, out_dir: str | None, days: int | None, force: bool) -> None:
    """Certificates for mutual TLS between nodes.

    \b
    Real deployment (each key stays with its owner):
      jointml certs init-ca --out ca/                       (CA operator)
      jointml certs request --party bank --out certs/       (each organisation)
      jointml certs sign --ca ca/ --csr bank.csr --out bank.crt   (CA operator)
      jointml certs fingerprint certs/bank.crt              (pin for cluster.yaml)
    Development shortcut (CA and every key in one folder):
      jointml certs --out certs bank partner dealer
    """
    if ctx.invoked_subcommand is None:
        raise click.UsageError("give a subcommand (init-ca, request, sign, fingerprint) or party names", ctx=ctx)


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help=_OUT_HELP)
@click.option("--days", type=int, default=None)
@click.option("--force", is_flag=True)
@click.argument("parties", nargs=-1, required=True)
@click.pass_context
@_certs_errors
def _certs_dev(ctx: click.Context, out_dir: str | None, days: int | None, force: bool, parties: tuple[str, ...]) -> None:
    """Development shortcut: a CA and one key + certificate per party, all in one folder."""
    from ..net.certs import create_dev_pki

    group = ctx.parent.params if ctx.parent is not None else {}
    out_dir = out_dir or group.get("out_dir")
    if not out_dir:
        raise click.UsageError("the development shortcut needs --out DIR", ctx=ctx)
    days = days or group.get("days") or 365
    made = create_dev_pki(out_dir, list(parties), days=days, force=force or bool(group.get("force")))
    for name, pc in made.items():
        click.echo(f"{name}: cert {pc.cert}  key {pc.key}")
    click.echo(f"CA certificate: {next(iter(made.values())).ca} (give it to every party; keep ca.key offline)")


@certs.command("init-ca")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Folder for ca.crt and ca.key.")
@click.option("--days", type=int, default=1825, show_default=True, help="Validity of the CA certificate.")
@click.option("--name", default="jointml-ca", show_default=True, help="The CA's common name.")
@click.option("--force", is_flag=True, help="Replace an existing CA (invalidates every certificate it signed).")
@_certs_errors
def certs_init_ca(out_dir: str, days: int, name: str, force: bool) -> None:
    """CA operator: create the cluster CA key and self-signed certificate."""
    from ..net.certs import create_ca, fingerprint

    cert, key = create_ca(out_dir, name=name, days=days, force=force)
    click.echo(f"CA certificate: {cert} ({fingerprint(cert)}); give it to every party")
    click.echo(f"CA key: {key} (keep it offline; it can mint any party's certificate)")


@certs.command("request")
@click.option("--party", required=True, help="This organisation's party name (as in cluster.yaml).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Folder for <party>.key and <party>.csr.")
@click.option("--force", is_flag=True, help="Replace an existing key.")
@_certs_errors
def certs_request(party: str, out_dir: str, force: bool) -> None:
    """Each organisation: create its private key and a certificate request (CSR); only the CSR leaves."""
    from ..net.certs import create_request

    csr, key = create_request(out_dir, party, force=force)
    click.echo(f"key: {key} (stays here)")
    click.echo(f"request: {csr} (send it to the CA operator)")


@certs.command("sign")
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, exists=True), required=True,
              help="Folder with ca.crt and ca.key.")
@click.option("--csr", type=click.Path(dir_okay=False, exists=True), required=True, help="The party's certificate request.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Where to write the certificate.")
@click.option("--days", type=int, default=365, show_default=True, help="Validity of the certificate.")
@click.option("--force", is_flag=True, help="Replace an existing certificate file.")
@_certs_errors
def certs_sign(ca_dir: str, csr: str, out: str, days: int, force: bool) -> None:
    """CA operator: sign a party's CSR (the party name is the CSR's DNS subject-alternative name)."""
    from ..net.certs import fingerprint, sign_request

    party, cert = sign_request(ca_dir, csr, out, days=days, force=force)
    click.echo(f"{party}: certificate {cert} ({fingerprint(cert)})")


@certs.command("fingerprint")
@click.argument("cert_files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@_certs_errors
def certs_fingerprint(cert_files: tuple[str, ...]) -> None:
    """Print the SHA-256 fingerprint of certificates (the `fingerprint:` pin in cluster.yaml)."""
    from ..net.certs import fingerprint

    for f in cert_files:
        click.echo(fingerprint(f) if len(cert_files) == 1 else f"{f}: {fingerprint(f)}")


main.commands.update(__import__("jointml.cli.orchestration", fromlist=["COMMANDS"]).COMMANDS)  # coordinator, node, submit, ...
bench.commands.update(__import__("jointml.cli.orchestration", fromlist=["BENCH_COMMANDS"]).BENCH_COMMANDS)  # chaos, api
main.commands.update(__import__("jointml.cli.serving", fromlist=["COMMANDS"]).COMMANDS)  # serve


def _entry() -> None:  # pragma: no cover
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
