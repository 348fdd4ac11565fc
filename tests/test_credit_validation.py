"""A catalogue of bad inputs to `jointml run`: each exits non-zero with one clear paragraph
naming the cause (party, field), no traceback, before any cryptography runs, and leaves
no output that looks complete.

Each case writes a small bank/partner pair and a pipeline file, runs the CLI with the
parties as threads, and checks the message. The good twin of the data runs to the end
(`test_good_twin_runs`), so the cases fail for the reason they name, not another.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from jointml.cli.main import main

N = 60


def _good() -> tuple[pd.DataFrame, pd.DataFrame]:
    i = np.arange(N)
    bank = pd.DataFrame({"id": [f"C{k:04d}" for k in i], "y": np.where(i % 3 == 0, "bad", "good"),
                         "b1": np.sin(i) , "b2": np.cos(i * 0.7)})
    partner = pd.DataFrame({"id": [f"C{k:04d}" for k in i[::-1]], "p1": np.sin(i * 1.3)[::-1]})
    return bank, partner


LR_STEPS = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3, "seed": 1}},
            {"woe_binning": {"label": "y", "pos_label": "bad", "key_bits": 512, "max_bins": 3, "label_proofs": False}},
            {"ss_lr.train": {"epochs": 1, "batch_size": 32}}, {"predict": {}}, {"evaluate": {"metrics": ["auc", "ks"]}}]
RAW_LR = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
          {"train": {"model": "ss_lr", "label": "y", "pos_label": "bad", "epochs": 1, "batch_size": 32}}, {"predict": {}},
          {"evaluate": {}}]


def _cluster(tmp_path, names):
    """A cluster file naming `names` (addresses only: the checks run before any connection)."""
    doc = {"ca": "ca.crt", "parties": {n: {"address": f"127.0.0.1:{9700 + i}", "cert": f"{n}.crt", "key": f"{n}.key"}
                                       for i, n in enumerate(names)}}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(doc))
    return str(tmp_path / "cluster.yaml")


def _run(tmp_path, bank=None, partner=None, steps=None, raw=None, args=(), bank_text=None, pipeline_text=None, cluster=None):
    """Write the inputs and the pipeline, run `jointml run` (threads); (exit code, output, seconds)."""
    good_b, good_p = _good()
    bank = good_b if bank is None else bank
    partner = good_p if partner is None else partner
    if bank_text is not None:
        (tmp_path / "bank.csv").write_text(bank_text)
    else:
        bank.to_csv(tmp_path / "bank.csv", index=False)
    partner.to_csv(tmp_path / "partner.csv", index=False)
    doc = {"name": "t", "parties": ["bank", "partner", "dealer"], "mpc": {"protocol": "semi2k", "dealer": "dealer"},
           "inputs": {"bank": "bank.csv", "partner": "partner.csv"}, "steps": steps or LR_STEPS, "output": "out"}
    doc.update(raw or {})
    doc = {k: v for k, v in doc.items() if v is not None}
    pth = tmp_path / "pipeline.yaml"
    pth.write_text(pipeline_text if pipeline_text is not None else yaml.safe_dump(doc, sort_keys=False))
    if cluster is not None:
        args = ("--cluster", _cluster(tmp_path, cluster), *args)
    t = time.perf_counter()
    res = CliRunner().invoke(main, ["run", str(pth), "--mode", "thread", *args])
    return res.exit_code, res.output, time.perf_counter() - t


def _bank(**cols):
    b, _ = _good()
    for k, v in cols.items():
        if v is None:
            b = b.drop(columns=[k])
        else:
            b[k] = v
    return b


def _dup_ids():
    b, _ = _good()
    b.loc[5, "id"] = b.loc[4, "id"]
    return b


def _nan_feature():
    b, _ = _good()
    b.loc[3, "b1"] = np.nan
    return b


# (case id, kwargs for _run, regex the output must match)
CASES = [
    # -- the pipeline file -----------------------------------------------------------------
    ("bad-yaml", {"pipeline_text": "parties: [bank\nsteps: -"}, r"ConfigError: pipeline file .* is not valid YAML"),
    ("not-a-mapping", {"pipeline_text": "- psi\n- split\n"}, r"ConfigError: a pipeline must be a mapping"),
    ("no-steps", {"raw": {"steps": None}}, r"ConfigError: pipeline needs 'steps'"),
    ("unknown-top-key", {"raw": {"outptu": "x"}}, r"unknown pipeline keys \['outptu'\]"),
    ("unknown-component", {"steps": [{"psi": {}}, {"splt": {}}]}, r"step 2: unknown component 'splt'"),
    ("unknown-parameter", {"steps": [{"psi": {"kee": "id"}}]}, r"step 1 \(psi\): unknown parameters \['kee'\]"),
    ("wrong-type", {"steps": [{"psi": {}}, {"split": {"seed": "one"}}]}, r"field 'seed'.*must be int, got 'one'"),
    ("test-fraction-1.5", {"steps": [{"psi": {}}, {"split": {"test_fraction": 1.5}}]},
     r"field 'test_fraction'.*test_fraction must be between 0 and 1 \(both excluded\), got 1.5"),
    ("epochs-0", {"steps": LR_STEPS[:3] + [{"ss_lr.train": {"epochs": 0}}]}, r"field 'epochs'.*epochs must be >= 1, got 0"),
    ("learning-rate-negative", {"steps": LR_STEPS[:3] + [{"ss_lr.train": {"learning_rate": -0.1}}]},
     r"field 'learning_rate'.*must be > 0"),
    ("sigmoid-unknown", {"steps": LR_STEPS[:3] + [{"ss_lr.train": {"sigmoid": "tanh"}}]}, r"field 'sigmoid'.*must be one of"),
    ("max-bins-1", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "max_bins": 1}}]}, r"field 'max_bins'.*>= 2"),
    ("woe-method", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "method": "magic"}}]},
     r"field 'method'.*must be one of 'chimerge'"),
    ("woe-edges-decreasing", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "edges": {"p1": [0.5, -0.5]}}}]},
     r"ConfigError: field 'edges.p1'.*step 3 \(woe_binning\): edges of feature 'p1' must be strictly increasing"),
    ("woe-monotonic-unknown", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "monotonic": "upward"}}]},
     r"field 'monotonic'.*monotonic must be one of"),
    ("woe-edges-unknown-feature", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "pos_label": "bad", "edges": {"p9": [0.0]}}}]},
     r"ConfigError: field 'edges.p9'.*woe_binning edges name feature 'p9', which is in no party's input"),
    ("woe-edges-on-the-label", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "pos_label": "bad",
                                                                           "special_values": {"y": ["bad"]}}}]},
     r"ConfigError: field 'special_values.y'.*names 'y', the label column, which is not binned"),
    ("woe-edges-on-text", {"partner": _good()[1].assign(p2=["u", "v"] * (N // 2)),
                           "steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "pos_label": "bad", "edges": {"p2": [0.0]}}}]},
     r"ConfigError: party 'partner'.*field 'edges.p2'.*'p2', which holds text"),
    ("reason-codes-unknown-party", {"steps": LR_STEPS[:2] + [
        {"woe_binning": {"label": "y", "pos_label": "bad", "woe_to_owner": True}}, LR_STEPS[3], LR_STEPS[4],
        {"scorecard": {"reason_codes": {"insurer": "coded"}}}]},
     r"ConfigError: field 'reason_codes.insurer'.*reason_codes names 'insurer', which is not a party of the job"),
    ("reason-codes-bad-policy", {"steps": LR_STEPS[:2] + [
        {"woe_binning": {"label": "y", "pos_label": "bad", "woe_to_owner": True}}, LR_STEPS[3], LR_STEPS[4],
        {"scorecard": {"reason_codes": {"partner": "values"}}}]},
     r"ConfigError: field 'reason_codes.partner'.*must be one of \('coded', 'hidden'\)"),
    ("unknown-model", {"steps": LR_STEPS[:3] + [{"train": {"model": "svm"}}]}, r"unknown model 'svm'"),
    ("metric-gini-typo", {"steps": LR_STEPS[:5] + [{"evaluate": {"metrics": ["auc", "giny"]}}]},
     r"field 'metrics'.*step 6 \(evaluate\)"),
    ("train-before-split", {"steps": [{"psi": {}}, {"ss_lr.train": {"label": "y"}}]}, r"step 'ss_lr.train' needs split before it"),
    ("evaluate-before-predict", {"steps": LR_STEPS[:4] + [{"evaluate": {}}]}, r"step 'evaluate' needs predict"),
    ("input-unknown-party", {"raw": {"inputs": {"bank": "bank.csv", "insurer": "partner.csv"}}},
     r"input for unknown party 'insurer'"),
    ("dealer-not-a-party", {"raw": {"mpc": {"protocol": "semi2k", "dealer": "auditor"}}}, r"mpc: unknown party 'auditor'"),
    ("protocol-unknown", {"raw": {"mpc": {"protocol": "spdz"}}}, r"field 'mpc.protocol'.*must be one of \['semi2k', 'aby3'\]"),
    ("min-rows-0", {"raw": {"min_rows": 0}}, r"field 'min_rows'.*must be an integer >= 1"),
    ("party-without-cluster", {"args": ("--party", "bank")}, r"--party needs --cluster"),
    ("cluster-without-party", {"cluster": ["bank", "partner", "dealer"]}, r"--cluster needs --party"),
    ("cluster-missing-dealer", {"cluster": ["bank", "partner"], "args": ("--party", "bank")},
     r"ConfigError: field 'parties': the cluster file .* has no entry for \['dealer'\], which the job needs"),
    ("cluster-extra-party", {"cluster": ["bank", "partner", "dealer", "insurer"], "args": ("--party", "bank")},
     r"names parties \['insurer'\] that the job does not use"),
    ("party-not-in-job", {"cluster": ["bank", "partner", "dealer"], "args": ("--party", "insurer")},
     r"--party 'insurer' is not a party of the job"),
    # -- the data ---------------------------------------------------------------------------
    ("missing-file", {"raw": {"inputs": {"bank": "nosuch.csv", "partner": "partner.csv"}}},
     r"DataError: party 'bank': input file not found: .*nosuch.csv"),
    ("empty-file", {"bank_text": ""}, r"DataError: party 'bank': input file .*bank.csv is empty"),
    ("header-only", {"bank_text": "id,y,b1,b2\n"}, r"DataError: party 'bank': its input has a header but no rows"),
    ("id-column-missing", {"bank": _bank(id=None)}, r"ConfigError: party 'bank': the id column 'id' \(psi key\) is not in its input"),
    ("duplicate-ids", {"bank": _dup_ids()}, r"DataError: party 'bank': the id column 'id' has 1 duplicate ids"),
    ("label-third-value", {"bank": _bank(y=np.where(np.arange(N) % 3 == 0, "bad", np.where(np.arange(N) % 3 == 1, "good", "unknown")))},
     r"DataError: party 'bank': label column 'y' has 3 distinct values; a binary model needs exactly two"),
    ("label-missing-values", {"bank": _bank(y=np.where(np.arange(N) % 7 == 0, None, "good"))},
     r"party 'bank': label column 'y' has 9 missing values"),
    ("pos-label-absent", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "y", "pos_label": 1}}]},
     r"party 'bank': pos_label 1 does not occur in label column 'y'"),
    ("single-class", {"bank": _bank(y=["bad"] * N)}, r"label column 'y' holds a single class"),
    ("label-nowhere", {"steps": LR_STEPS[:2] + [{"woe_binning": {"label": "target"}}]},
     r"Error: ConfigError: label column 'target' is in no party's input"),
    ("label-at-both", {"partner": _good()[1].assign(y=_good()[0]["y"])}, r"label column 'y' is in the inputs of both 'bank' and 'partner'"),
    ("zero-overlap", {"partner": _good()[1].assign(id=[f"X{k}" for k in range(N)])},
     r"DataError: field 'psi': PSI matched 0 rows between \['bank', 'partner'\].*min_rows"),
    ("too-few-rows", {"raw": {"min_rows": 100}}, r"PSI matched 60 rows .*needs at least 100, min_rows"),
    ("raw-unscaled", {"bank": _bank(b1=np.arange(N) * 1000.0), "steps": RAW_LR},
     r"party 'bank': feature column 'b1' is not on a unit scale.*add a `scale` step"),
    ("raw-text-feature", {"bank": _bank(b2=["x", "y"] * (N // 2)), "steps": RAW_LR},
     r"party 'bank': feature column 'b2' is not numeric: add an `encode` step"),
    ("raw-nan-feature", {"bank": _nan_feature(), "steps": RAW_LR}, r"party 'bank': feature column 'b1' has 1 missing values"),
    ("regression-text-label", {"steps": [{"psi": {}}, {"split": {}}, {"train": {"model": "ss_glm", "label": "y"}}]},
     r"label column 'y' is not numeric"),
]


@pytest.mark.parametrize("kw,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_paragraph(tmp_path, kw, pattern):
    code, out, seconds = _run(tmp_path, **kw)
    assert code != 0, out
    assert "Traceback" not in out and 'File "' not in out, out
    import re

    assert re.search(pattern, out), out
    assert seconds < 20  # found before any cryptography (PSI of 60 ids at most)
    assert not (tmp_path / "out" / "model").exists()  # no output that looks complete
    assert not list((tmp_path / "out").glob("summary.*.json")) if (tmp_path / "out").exists() else True


def test_debug_shows_the_traceback(tmp_path):
    code, out, _ = _run(tmp_path, steps=[{"psi": {}}, {"split": {"test_fraction": 1.5}}], args=())
    assert code == 1 and "Traceback" not in out
    pth = tmp_path / "pipeline.yaml"
    res = CliRunner().invoke(main, ["--debug", "run", str(pth), "--mode", "thread"])
    assert res.exit_code != 0 and res.exc_info is not None and "test_fraction" in str(res.exc_info[1])


def test_a_party_that_finds_a_problem_keeps_its_values_local(tmp_path):
    """The bank's own error names the label values; the partner's copy of the verdict does not."""
    from jointml.jobs import PipelineSpec, simulate_pipeline
    from jointml.runtime import PartyFailed

    third = np.where(np.arange(N) % 3 == 0, "bad", np.where(np.arange(N) % 3 == 1, "good", "SECRET-CLASS"))
    _run(tmp_path, bank=_bank(y=third))
    spec = PipelineSpec.load(tmp_path / "pipeline.yaml")
    with pytest.raises(PartyFailed) as ei:
        simulate_pipeline(spec, mode="thread", verbose=False)
    e = ei.value
    texts = {e.party: e.message, **{p: f[1] for p, f in e.others.items()}}
    assert e.party == "bank" and "SECRET-CLASS" in texts["bank"]  # the owner sees its values
    for p in ("partner", "dealer"):
        assert "label column 'y' has 3 distinct values" in texts[p] and "SECRET-CLASS" not in texts[p]


def test_good_twin_runs(tmp_path):
    """The data every case breaks runs to the end, so each case fails for its own reason."""
    code, out, _ = _run(tmp_path)
    assert code == 0, out
    assert "psi matched 60 rows" in out and (tmp_path / "out" / "summary.bank.json").exists()


def test_small_paillier_keys_refused_when_the_file_is_read(tmp_path, monkeypatch):
    """Outside tests, key_bits below 2048 stop the job at parse time, not at the WOE step."""
    monkeypatch.delenv("JOINTML_INSECURE_TEST_KEYS", raising=False)
    code, out, _ = _run(tmp_path)
    assert code == 1 and "Traceback" not in out
    assert "field 'key_bits': step 3 (woe_binning): key_bits must be an even integer >= 2048" in out
    assert "start" not in out  # no step ran


def test_check_only_checks_and_computes_nothing(tmp_path):
    code, out, _ = _run(tmp_path, args=("--check",))
    assert code == 0, out
    assert "passed its checks at every party" in out and "label at 'bank'" in out and "start" not in out
    assert not (tmp_path / "out").exists()
    code, out, _ = _run(tmp_path, bank=_dup_ids(), args=("--check",))
    assert code == 1 and "the id column 'id' has 1 duplicate ids" in out


def test_the_pipeline_parties_must_be_the_running_parties(tmp_path):
    from jointml.core.errors import ConfigError
    from jointml.jobs import PipelineSpec, run_pipeline
    from jointml.runtime import simulate

    _run(tmp_path, args=("--check",))
    spec = PipelineSpec.load(tmp_path / "pipeline.yaml")
    out = simulate(lambda ctx: _catch(ConfigError, run_pipeline, ctx, spec), ["bank", "partner"], mode="thread")
    assert all("the cluster file must name every party of the job, the dealer included" in m for m in out.values())


def _catch(cls, fn, *args):
    try:
        fn(*args)
    except cls as e:
        return str(e)
    return ""


def test_quiet_run_logs_every_party_to_its_file(tmp_path):
    log = tmp_path / "log-{party}.txt"
    code, out, _ = _run(tmp_path, args=("--quiet", "--log-file", str(log)))
    assert code == 0, out
    assert "start" not in out and "auc" in out  # no progress lines, the summary still
    for p in ("bank", "partner", "dealer"):
        text = (tmp_path / f"log-{p}.txt").read_text()
        assert f"[{p}] psi" in text and f"[{p}] evaluate       done" in text and "psi matched 60 rows" in text


def test_a_node_says_whom_it_waits_for(tmp_path, capsys):
    from jointml.jobs import PipelineSpec, run_pipeline
    from jointml.runtime import simulate

    _run(tmp_path, args=("--check",))
    spec = PipelineSpec.load(tmp_path / "pipeline.yaml")
    capsys.readouterr()
    simulate(run_pipeline, ["bank", "partner", "dealer"], mode="thread", args=(spec,),
             kwargs={"verbose": "all", "check_only": True})
    out = capsys.readouterr().out
    assert "[partner] job agreement: waiting for bank, dealer" in out
    assert "[bank] job agreement: every party agreed after" in out


def test_run_as_one_node_per_party(tmp_path, capsys):
    """`jointml run --cluster --party` at three nodes over mutual TLS: each prints its own progress;
    the bank's summary has the metrics, the partner's does not."""
    import json
    import socket
    import threading

    from jointml.cli.main import run_cmd
    from jointml.net.certs import create_dev_pki

    _run(tmp_path, args=("--check",))
    names = ["bank", "partner", "dealer"]
    create_dev_pki(tmp_path / "certs", names)
    ports = []
    for _ in names:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    doc = {"ca": "certs/ca.crt", "connect_timeout": 30, "recv_timeout": 60,
           "parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"certs/{n}.crt", "key": f"certs/{n}.key"}
                       for n, p in zip(names, ports)}}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(doc))
    errors = {}

    def node(me):
        try:
            run_cmd.callback(pipeline=str(tmp_path / "pipeline.yaml"), mode="process", cluster=str(tmp_path / "cluster.yaml"),
                             party=me, as_json=False, recv_timeout=None, quiet=False, log_file=None, check_only=False)
        except Exception as e:  # noqa: BLE001
            errors[me] = e

    threads = [threading.Thread(target=node, args=(n,)) for n in names]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert not errors, errors
    out = capsys.readouterr().out
    for n in names:
        assert f"[{n}] job agreement: every party agreed" in out
    assert "[partner] psi matched 60 rows" in out and "[bank] ss_lr.train    done" in out
    bank = json.loads((tmp_path / "out" / "summary.bank.json").read_text())
    partner = json.loads((tmp_path / "out" / "summary.partner.json").read_text())
    assert "auc" in bank and "auc" not in partner
