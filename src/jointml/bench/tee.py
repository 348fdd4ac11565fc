"""`jointml bench tee`: centralised training in a (SIMULATED) enclave vs plaintext, same run.

Two data owners hold half of the columns each (the first also the labels) of a
synthetic vertically partitioned data set. The TEE path starts an enclave process,
attests it (simulation accepted explicitly), opens one authenticated session per
party, uploads the encrypted column blocks, trains scikit-learn logistic regression
(or gradient-boosted trees, ``model="gbdt"``) inside the enclave and returns the
model to the label party. The plaintext path fits the same estimator on the joined
data in this process. Reports rows/s end to end, "warm" end to end (without the
enclave's one-time scikit-learn import, which the baseline process has already
paid) and for the in-enclave fit alone, the setup breakdown, relayed bytes and both
AUCs.

`run_tecc` reports the TECC figure: ``SSLogisticRegression`` (ABY3, full-batch gradient
descent) with each MPC party in its own attested enclave (records relayed by the
host), beside the same gradient descent in numpy.

The enclave is a software simulation: the figures show the protocol's cost (process
boundary, AES-GCM, attestation), not SGX/TDX overheads (EPC paging, transitions).
`peak_rss_mb` gives each enclave process's peak resident memory and the host's (both data
owners run in the host process here).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from ..core.prg import public_rng
from .memory import peak_rss_mb, process_peak_rss_mb


def make_data(rows: int, features: int, seed: int = 0):
    """Public synthetic data: (X_train, y_train, X_test, y_test), a tenth (at least 1000 rows, at most half) for test.

    >>> [a.shape for a in make_data(40, 3)]
    [(20, 3), (20,), (20, 3), (20,)]
    """
    # Public synthetic benchmark data: numpy's generator protects nothing here.
    g = public_rng(seed)
    X = g.normal(size=(rows, features))
    w = g.normal(size=features) * (2.0 / np.sqrt(features))
    y = (g.random(rows) < 1 / (1 + np.exp(-(X @ w - 0.5)))).astype(np.float64)
    n_test = max(rows // 10, min(1000, rows // 2))
    return X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]


def run(rows: int = 100_000, features: int = 50, model: str = "logistic_regression", max_iter: int = 1000,
        n_estimators: int = 50, platform_dir: str | None = None) -> dict:
    """`model`: "logistic_regression" or "gbdt" (scikit-learn GradientBoostingClassifier).

    >>> run(rows=100, model="svm")  # checked before any enclave starts
    Traceback (most recent call last):
    ...
    jointml.core.errors.ParameterError: field 'model': model must be 'logistic_regression' or 'gbdt', not 'svm'
    """

    from ..apps.tee_train import PROGRAM, make_estimator, model_decision_function, row_ids_digest, training_config
    from ..data.metrics import roc_auc
    from ..tee import Enclave, EnclaveSession, PartyIdentity, Policy, TrustedPlatform, Verifier, measure
    from ..tee.platform import SIMULATION_LABEL, SIMULATION_PLATFORM, load_platform

    if model == "gbdt":
        mcfg = {"type": "gbdt", "n_estimators": n_estimators, "max_depth": 3, "random_state": 0}
    elif model == "logistic_regression":
        mcfg = {"type": "logistic_regression", "C": 1.0, "max_iter": max_iter}
    else:
        raise ParameterError(f"model must be 'logistic_regression' or 'gbdt', not {model!r}", field="model")
    Xtr, ytr, Xte, yte = make_data(rows, features)
    n = len(Xtr)
    h = features // 2
    pdir = platform_dir or tempfile.mkdtemp(prefix="jointml-tee-bench-")
    plat = load_platform(pdir)

    # plaintext baseline, same estimator and data
    t0 = time.perf_counter()
    sk = make_estimator(mcfg).fit(Xtr, ytr)
    plain_s = time.perf_counter() - t0
    plain_auc = float(roc_auc(yte, sk.decision_function(Xte)))

    ids = {"alice": PartyIdentity("alice"), "bob": PartyIdentity("bob")}
    cfg = training_config({k: v.public_key for k, v in ids.items()}, feature_parties=["alice", "bob"],
                          label_party="alice", result_parties=["alice"], model=mcfg)
    policy = Policy(frozenset([measure(PROGRAM, cfg)]), (TrustedPlatform.of(plat),), allow_simulation=True)
    t_start = time.perf_counter()
    enc = Enclave(PROGRAM, cfg, platform_dir=pdir)
    try:
        t_boot = time.perf_counter()
        sa = EnclaveSession(enc, ids["alice"], Verifier(policy))
        sb = EnclaveSession(enc, ids["bob"], Verifier(policy))
        t_att = time.perf_counter()
        digest = row_ids_digest(np.arange(n))
        sa.call("upload", {"columns": [f"a{i}" for i in range(h)], "row_ids_sha256": digest}, [Xtr[:, :h], ytr])
        sb.call("upload", {"columns": [f"b{i}" for i in range(features - h)], "row_ids_sha256": digest}, [Xtr[:, h:]])
        t_up = time.perf_counter()
        summary = sa.call("train").meta
        got = sa.call("get_model")
        t_end = time.perf_counter()
        relayed = sum(len(f) for _, f in enc.relay_log)
        # the enclave is its own process (read before it exits); both data owners are this host process
        rss = {"enclave": process_peak_rss_mb(enc.pid), "alice+bob (host process)": peak_rss_mb()}
    finally:
        enc.close()
    tee_auc = float(roc_auc(yte, model_decision_function(got, Xte)))
    tee_total = t_end - t_start
    return {
        "figure": f"tee_train_{model}",
        "platform": SIMULATION_PLATFORM,
        "note": SIMULATION_LABEL,
        "rows": n,
        "features": features,
        "tee_rows_per_second": round(n / tee_total),
        "tee_rows_per_second_warm": round(n / (tee_total - summary["import_seconds"])),
        "tee_fit_rows_per_second": round(n / summary["fit_seconds"]),
        "plaintext_rows_per_second": round(n / plain_s),
        "ratio_end_to_end": round(plain_s / tee_total, 3),
        "ratio_fit": round(plain_s / summary["fit_seconds"], 3),
        "tee_seconds": round(tee_total, 3),
        "boot_seconds": round(t_boot - t_start, 3),
        "attest_and_sessions_seconds": round(t_att - t_boot, 3),
        "upload_seconds": round(t_up - t_att, 3),
        "fit_seconds": round(summary["fit_seconds"], 3),
        "train_and_return_seconds": round(t_end - t_up, 3),
        "enclave_sklearn_import_seconds": round(summary["import_seconds"], 3),
        "plaintext_seconds": round(plain_s, 3),
        "relayed_bytes": relayed,
        "tee_auc": round(tee_auc, 4),
        "plaintext_auc": round(plain_auc, 4),
        "peak_rss_mb": rss,
    }


def run_tecc(rows: int = 5_000, features: int = 20, epochs: int = 20, platform_dir: str | None = None) -> dict:
    """TECC figure: SSLogisticRegression (ABY3, full-batch GD) with each MPC party in its own
    attested enclave, beside the same gradient descent in numpy in the same run.

    >>> run_tecc.__defaults__[:3]  # rows, features, epochs (a benchmark: never run in tests)
    (5000, 20, 20)
    """
    from ..apps.tecc import ROLES, TeccCluster, plaintext_reference, reconstruct, role_measurements, share_input, tecc_config
    from ..data.metrics import roc_auc
    from ..tee import EnclaveSession, PartyIdentity, Policy, TrustedPlatform, Verifier
    from ..tee.platform import SIMULATION_LABEL, SIMULATION_PLATFORM, load_platform
    from ..tee.tecc import role_platform_dirs

    Xtr, ytr, Xte, yte = make_data(rows, features)
    n, h = len(Xtr), features // 2
    pdirs = role_platform_dirs(platform_dir or tempfile.mkdtemp(prefix="jointml-tee-bench-"))  # one platform per role
    trusted = tuple(TrustedPlatform.of(load_platform(pdirs[r])) for r in ROLES)
    t0 = time.perf_counter()
    ref = plaintext_reference(Xtr, ytr, epochs=epochs)
    plain_s = time.perf_counter() - t0
    ids = {"alice": PartyIdentity("alice"), "bob": PartyIdentity("bob")}
    cfg = tecc_config({k: v.public_key for k, v in ids.items()}, feature_parties=["alice", "bob"], label_party="alice",
                      result_parties=["alice"], peer_policy=Policy(trusted_platforms=trusted, allow_simulation=True).to_config(),
                      epochs=epochs)
    meas = role_measurements(cfg)
    t_start = time.perf_counter()
    with TeccCluster(cfg, platform_dir=pdirs) as cl:
        t_conn = time.perf_counter()
        s = {p: {r: EnclaveSession(cl.enclaves[r], ids[p], Verifier(Policy(frozenset({meas[r]}), trusted, allow_simulation=True)))
                 for r in ROLES} for p in ids}
        share_input(s["alice"], "X@alice", Xtr[:, :h])
        share_input(s["alice"], "y", ytr)
        share_input(s["bob"], "X@bob", Xtr[:, h:])
        t_in = time.perf_counter()
        summary = cl.run()
        w = reconstruct(s["alice"])
        t_end = time.perf_counter()
        rss = {f"enclave {r}": process_peak_rss_mb(cl.enclaves[r].pid) for r in ROLES}
        rss["alice+bob (host process)"] = peak_rss_mb()
    mpc_s = max(v["seconds"] for v in summary.values())
    return {
        "figure": "tecc_train_lr_gd",
        "platform": SIMULATION_PLATFORM,
        "note": SIMULATION_LABEL + "; 3 enclaves, ABY3",
        "rows": n,
        "features": features,
        "epochs": epochs,
        "tecc_rows_per_second": round(n * epochs / (t_end - t_start)),
        "tecc_mpc_rows_per_second": round(n * epochs / mpc_s),
        "plaintext_rows_per_second": round(n * epochs / max(plain_s, 1e-9)),
        "tecc_seconds": round(t_end - t_start, 3),
        "start_and_attest_seconds": round(t_conn - t_start, 3),
        "input_sharing_seconds": round(t_in - t_conn, 3),
        "mpc_seconds": round(mpc_s, 3),
        "plaintext_seconds": round(plain_s, 4),
        "bytes_per_party": max(v["bytes_sent"] for v in summary.values()),
        "rounds": max(v["rounds"] for v in summary.values()),
        "max_abs_weight_error": float(np.abs(w - ref).max()),
        "tecc_auc": round(float(roc_auc(yte, Xte @ w[:-1] + w[-1])), 4),
        "plaintext_auc": round(float(roc_auc(yte, Xte @ ref[:-1] + ref[-1])), 4),
        "peak_rss_mb": rss,
    }


if __name__ == "__main__":
    import json
    import sys

    # positional integers: `tecc [rows [features [epochs]]]` or `[rows [features]]`
    if sys.argv[1:2] == ["tecc"]:
        kw: dict[str, Any] = {k: int(v) for k, v in zip(("rows", "features", "epochs"), sys.argv[2:5])}
        print(json.dumps(run_tecc(**kw), indent=1))
    else:
        kw = {k: int(v) for k, v in zip(("rows", "features"), sys.argv[1:3])}
        print(json.dumps(run(**kw), indent=1))
