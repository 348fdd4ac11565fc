"""`jointml demo --tee tecc`: the German credit job with training in TECC (SIMULATED TEEs).

What runs, in order:

1. **bank and partner, as separate local processes over mutual TLS** (as in the plain
   demo): read their own CSV, ECDH-PSI on the id, the public train/test split, vertical
   WOE binning with the bank's labels encrypted under Paillier, with
   ``woe_to_owner=True``: each party ends with its own WOE features in plaintext (the
   bank also knows the partner's WOE tables, as in the plain demo; it never sees the
   partner's raw values or bin boundaries).
2. **three TECC enclaves** (:class:`jointml.apps.tecc.TeccCluster`): each MPC party of
   ABY3 in its own attested enclave process, with a role-bound measurement, on its own
   simulated platform (one platform state directory per role, ``<dir>/p0`` ...: the
   enclaves and the data owners refuse two roles on one platform); they attest each
   other pairwise and talk over attested channels relayed by the (untrusted) host.
3. **each data owner** verifies the quote of every enclave against the measurement of
   its role, under a policy that explicitly allows the software simulation, and sends
   it replicated secret shares (:func:`jointml.apps.tecc.share_input`) of its training
   WOE features, its test-row WOE features and (bank) the training labels. No enclave
   receives a plaintext input.
4. the enclaves train :class:`jointml.ml.linear.SSLogisticRegression` by full-batch
   gradient descent under ABY3 (their links: the attested enclave-to-enclave channels)
   and score the test rows under MPC; only the bank (the only result party) reconstructs
   the model and the test scores, and computes AUC/KS against the same plaintext twin
   as the plain demo (:func:`jointml.demo.credit_demo.plaintext_baseline`).

Simulation notes: the enclaves are software (SIMULATION: no hardware protection, see
:mod:`jointml.tee`); in this single-machine demo steps 3-4 of both data owners run in the
demo's driver process, each with its own identity key and attested sessions, on the
outputs the two party processes return (a real deployment runs them at each owner).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..jobs.credit import CreditJobConfig, credit_pipeline
from ..runtime import simulate
from .credit_demo import make_demo_files, plaintext_baseline, write_report

SIMULATION_BANNER = ("SIMULATION: TECC enclaves are software processes (jointml-software-simulation platform); "
                     "this shows the protocol, not hardware protection")


def prepare_features(ctx, cfg: CreditJobConfig) -> dict:
    """At each party (SPMD): PSI, public split, WOE binning; returns this party's own WOE
    features (train and test rows), and at the bank the training and test labels.

    >>> prepare_features.__module__  # runs the credit job's first steps: see tests/test_tecc_demo.py
    'jointml.demo.tecc_demo'
    """
    from ..data.io import read_input
    from ..jobs.runner import COMPONENTS, JobState, state_labels

    spec = credit_pipeline(cfg, ctx.parties)
    state = JobState(spec=spec)
    for p, path in spec.inputs.items():
        state.raw[p] = ctx.party(p).run(lambda path=path, p=p: read_input(path, p))
    steps = {n: prm for n, prm in spec.steps}
    timings = {}
    for name, params in [("psi", steps["psi"]), ("split", steps["split"]),
                         ("woe_binning", {**steps["woe_binning"], "woe_to_owner": True})]:
        t = time.perf_counter()
        COMPONENTS[name].fn(ctx, state, **params)
        timings[name] = round(time.perf_counter() - t, 3)
        if cfg.verbose and ctx.me == cfg.label_party:
            print(f"  [{ctx.me}] {name:<14} done in {timings[name]:.2f} s", flush=True)
    tr = state.woe.transform(ctx, state.train, None)
    te = state.woe.transform(ctx, state.test, None)
    out = dict(state.summary)
    out.update(party=ctx.me, timings=timings, stats=ctx.stats(),
               feature_names={p: list(c) for p, c in state.woe.columns.items()})
    if ctx.me in tr:
        out["X_train"] = np.asarray(tr[ctx.me].value, np.float64)
        out["X_test"] = np.asarray(te[ctx.me].value, np.float64)
    labels = {k: state_labels(ctx, state, f) for k, f in (("y_train", state.train), ("y_test", state.test))}
    if ctx.me == state.label_party:
        out.update({k: np.asarray(v.value, np.float64) for k, v in labels.items()})
    return out


def run(mode: str = "process", out_dir: str = "jointml-demo-out", verbose: bool = True, epochs: int = 200,
        learning_rate: float = 4.0, l2: float | None = None, sigmoid: str = "accurate", platform_dir: str | None = None) -> dict:
    """The credit demo with training in TECC; returns the bank's summary (and writes report.html).

    `l2` defaults to the plain job's penalty (CreditJobConfig.model["l2"]), so full-batch gradient
    descent in the enclaves converges to the same optimum as the plaintext twin's Newton solve.

    >>> run.__module__  # starts two party processes and three enclaves: see tests/test_tecc_demo.py
    'jointml.demo.tecc_demo'
    """
    from ..apps.tecc import (
        ROLES,
        TeccCluster,
        reconstruct,
        role_measurements,
        share_input,
        tecc_config,
    )
    from ..data.metrics import ks, roc_auc
    from ..tee import (
        EnclaveSession,
        PartyIdentity,
        Policy,
        TrustedPlatform,
        Verifier,
        load_platform,
    )
    from ..tee.platform import default_state_dir
    from ..tee.tecc import role_platform_dirs

    out = Path(out_dir)
    paths = make_demo_files(out / "data")
    parties = ["bank", "partner"]
    cfg = CreditJobConfig(inputs={"bank": str(paths["bank"]), "partner": str(paths["partner"])}, protocol="aby3",
                          dealer=None, output_dir=str(out), verbose=verbose,
                          psi_mode="both")  # the owners secret-share plaintext WOE features into the enclaves
    if l2 is None:
        l2 = float(cfg.model.get("l2", 0.0))
    if verbose:
        print(f"jointml demo (TECC): joint credit scoring on the German credit data; bank, partner as local {mode}es, "
              "training in 3 attested TECC enclaves (ABY3)")
        print(f"  {SIMULATION_BANNER}")
        print(f"  bank file {paths['bank']}  partner file {paths['partner']}")
    t0 = time.perf_counter()
    res = simulate(prepare_features, parties, mode=mode, args=(cfg,))
    t_prep = time.perf_counter() - t0
    bank, partner = res["bank"], res["partner"]

    # -- TECC: three attested enclaves; data owners verify and secret-share ---------------
    # one simulated platform per role (SIMULATION of three machines): the enclaves and the data
    # owners refuse two roles on one platform
    pdirs = role_platform_dirs(platform_dir or default_state_dir())
    trusted = tuple(TrustedPlatform.of(load_platform(pdirs[r])) for r in ROLES)
    ids = {p: PartyIdentity(p) for p in parties}
    peer_policy = Policy(trusted_platforms=trusted, allow_simulation=True).to_config()
    tcfg = tecc_config({p: i.public_key for p, i in ids.items()}, feature_parties=parties, label_party="bank",
                       result_parties=["bank"], peer_policy=peer_policy, epochs=epochs, learning_rate=learning_rate,
                       l2=l2, sigmoid=sigmoid)
    meas = role_measurements(tcfg)  # what each data owner allow-lists, role by role
    t1 = time.perf_counter()
    with TeccCluster(tcfg, platform_dir=pdirs) as cl:
        sessions = {p: {r: EnclaveSession(cl.enclaves[r], ids[p],
                                          Verifier(Policy(frozenset([meas[r]]), trusted, allow_simulation=True)))
                        for r in ROLES} for p in parties}
        simulated = any(s.attested.quote.simulation for ss in sessions.values() for s in ss.values())
        platforms = {r: sessions["bank"][r].attested.quote.platform_id for r in ROLES}
        for p, r in (("bank", bank), ("partner", partner)):
            share_input(sessions[p], f"X@{p}", r["X_train"])
            share_input(sessions[p], f"Xtest@{p}", r["X_test"])
        share_input(sessions["bank"], "y", bank["y_train"])
        enclave_summary = cl.run()
        result = reconstruct(sessions["bank"])  # only the bank is a result party
        relayed = cl.relay_log
    # self-check: the host relayed only ciphertext (no training row, test row or label block in the clear)
    probes = [bank["X_train"][0].tobytes(), partner["X_train"][1].tobytes(), partner["X_test"][2].tobytes(),
              bank["y_train"][:32].tobytes()]
    relay_clear = any(pr in f for pr in probes for _, f in relayed)
    t_tecc = time.perf_counter() - t1
    d_b, d_p = bank["X_train"].shape[1], partner["X_train"].shape[1]
    d = d_b + d_p
    w, b0, scores_logit = result[:d], float(result[d]), result[d + 1:]
    scores = 1.0 / (1.0 + np.exp(-scores_logit))
    y_test = bank["y_test"]
    auc, ks_v = float(roc_auc(y_test, scores)), float(ks(y_test, scores).statistic)
    baseline = plaintext_baseline(paths, cfg, bank)
    model_path = out / "model" / "tecc_model.bank.json"  # the bank is the only result party
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_text(json.dumps({"format": "jointml.tecc_lr/1", "party": "bank", "simulation": bool(simulated),
                                      "features": bank["feature_names"], "weights": {"bank": w[:d_b].tolist(),
                                      "partner": w[d_b:].tolist()}, "bias": b0}, indent=1))
    total_bytes = sum(r["stats"]["bytes_sent"] for r in res.values())
    mpc_bytes = sum(v["bytes_sent"] for v in enclave_summary.values())
    summary = {
        "job": "joint credit scoring (German credit), TECC",
        "model": (f"SSLogisticRegression (full-batch GD, {epochs} epochs, lr {learning_rate}, l2 {l2}) "
                  "under ABY3 in 3 TECC enclaves"),
        "tee": "tecc",
        "simulation": bool(simulated),
        "simulation_note": SIMULATION_BANNER,
        "protocol": "aby3",
        "rows_aligned": bank["rows_aligned"],
        "train_rows": bank["train_rows"],
        "test_rows": bank["test_rows"],
        "features": {"bank": d_b, "partner": d_p},
        "auc": round(auc, 4),
        "ks": round(ks_v, 4),
        "baseline_auc": round(baseline["auc"], 4),
        "baseline_ks": round(baseline["ks"], 4),
        "auc_gap": round(abs(auc - baseline["auc"]), 4),
        "seconds": round(t_prep + t_tecc, 2),
        "timings": {**bank["timings"], "tecc (attest, share, train, score)": round(t_tecc, 3)},
        "bytes": total_bytes + mpc_bytes,
        "enclave_bytes": mpc_bytes,
        "relayed_records": len(relayed),
        "relay_plaintext_found": bool(relay_clear),
        "measurements": meas,
        "platforms": platforms,
        "model_path": str(model_path),
    }
    bank_view = {"test_labels": y_test, "test_scores": scores, "feature_names": bank["feature_names"],
                 "weights": {"bank": w[:d_b], "partner": w[d_b:]}, "iv": bank.get("iv", {})}
    report = write_report(out / "report.html", summary, bank_view, baseline)
    _tecc_report_note(report)
    summary["report"] = str(report)
    if verbose:
        _print_summary(summary, (d_b, d_p), meas, relayed, model_path, report, total_bytes, mpc_bytes)
    return summary


def _print_summary(summary: dict, dims: tuple[int, int], meas: dict, relayed: list, model_path: Path, report: Path,
                   total_bytes: int, mpc_bytes: int) -> None:
    """The bank's console summary of a TECC demo run."""
    from ..apps.tecc import ROLES

    d_b, d_p = dims
    print()
    print(f"  rows aligned by PSI   {summary['rows_aligned']} (train {summary['train_rows']}, test {summary['test_rows']})")
    print(f"  features              bank: {d_b}, partner: {d_p} (WOE, secret-shared to the enclaves)")
    print(f"  enclaves              {', '.join(f'tecc-{r} {meas[r][:12]}' for r in ROLES)} (attested; SIMULATION)")
    print(f"  test AUC              {summary['auc']:.4f}   (plaintext twin {summary['baseline_auc']:.4f}, "
          f"gap {summary['auc_gap']:.4f})")
    print(f"  test KS               {summary['ks']:.4f}   (plaintext twin {summary['baseline_ks']:.4f})")
    print(
        f"  time                  {summary['seconds']:.1f} s  ("
        + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings"].items())
        + ")"
    )
    print(
        f"  traffic               {total_bytes / 1e6:.1f} MB between parties (TLS), "
        f"{mpc_bytes / 1e6:.1f} MB between enclaves "
        f"({len(relayed)} encrypted records relayed by the host)"
    )
    print(f"  model                 {model_path} (weights and bias, at the bank only)")
    print(f"  report                {report}")
    print(f"  {SIMULATION_BANNER}")


def _tecc_report_note(path: Path) -> None:
    """Replace the plain demo's "How it ran" paragraph with the TECC one (keeps write_report unchanged)."""
    html = path.read_text()
    note = ("<p class='note'><b>SIMULATION</b>: " + SIMULATION_BANNER + ". Bank and partner ran PSI, the public split and "
            "WOE binning (Paillier) as separate local processes over mutual TLS; each then verified the quotes of three "
            "TECC enclaves (ABY3 parties p0, p1, p2 with role-bound measurements) and sent them replicated secret shares "
            "of its WOE features (the bank also its labels). The enclaves trained logistic regression and scored the test "
            "rows under MPC; only the bank reconstructed the model and the scores. Confidentiality of the training data "
            "holds unless two of the three enclaves are broken (in simulation: unless two of their hosts are curious). "
            "The plaintext twin joins the two files, which only a demo can do.</p>")
    start = html.find("<p class='note'>Parties as separate local processes")
    if start >= 0:
        end = html.find("</p>", start) + len("</p>")
        html = html[:start] + note + html[end:]
    else:
        html = html.replace("</body>", note + "</body>")
    path.write_text(html.replace("jointml — joint credit scoring", "jointml — joint credit scoring (TECC, SIMULATION)"))
