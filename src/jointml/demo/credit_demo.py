"""`jointml demo`: the German credit job between a bank and a partner, end to end.

The shipped German credit data is split into a bank file (id, label, credit-history
columns) and a partner file (id, the other columns) with a synthetic id; a few rows
are dropped from each side so PSI has real work. Parties run as separate local
processes over mutual TLS. A plaintext twin (scikit-learn on the same aligned rows,
split and WOE bins) gives the baseline AUC.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.prg import Prg
from ..data.split import public_split
from ..datasets import load_germancredit
from ..jobs.components.evaluate import logistic_newton
from ..jobs.credit import CreditJobConfig, run_credit_job
from ..runtime import simulate

BANK_COLUMNS = [
    "creditability",
    "status_of_existing_checking_account",
    "duration_in_month",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings_account_and_bonds",
    "other_installment_plans",
    "number_of_existing_credits_at_this_bank",
]


def make_demo_files(out_dir: Path, seed: int = 11, drop_fraction: float = 0.04) -> dict[str, Path]:
    """Write bank.csv and partner.csv (synthetic ids, shuffled, a few rows missing on each side).

    >>> import tempfile
    >>> sorted(p.name for p in make_demo_files(Path(tempfile.mkdtemp())).values())
    ['bank.csv', 'partner.csv']
    """
    df = load_germancredit()
    n = len(df)
    g = Prg(seed.to_bytes(16, "little"), stream="demo-files")
    ids = [f"C{int(v) % 10**9:09d}" for v in g.uint64(n)]
    while len(set(ids)) < n:  # astronomically unlikely; keep ids unique anyway
        ids = [f"C{int(v) % 10**9:09d}" for v in g.uint64(n)]
    df.insert(0, "id", ids)
    bank = df[["id"] + BANK_COLUMNS]
    partner = df.drop(columns=BANK_COLUMNS)
    k = int(drop_fraction * n)
    drop_b = np.argsort(g.uint64(n))[:k]
    drop_p = np.argsort(g.uint64(n))[:k]
    bank = bank.drop(index=drop_b).iloc[np.argsort(g.uint64(n - k))]
    partner = partner.drop(index=drop_p).iloc[np.argsort(g.uint64(n - k))]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"bank": out_dir / "bank.csv", "partner": out_dir / "partner.csv"}
    bank.to_csv(paths["bank"], index=False)
    partner.to_csv(paths["partner"], index=False)
    return paths


def run(
    mode: str = "process",
    protocol: str = "semi2k",
    out_dir: str = "jointml-demo-out",
    verbose: bool = True,
    model_type: str = "ss_lr",
    **overrides,
) -> dict:
    out = Path(out_dir)
    paths = make_demo_files(out / "data")
    parties = ["bank", "partner", "dealer"] if protocol == "semi2k" else ["bank", "partner", "auditor"]
    cfg = CreditJobConfig(
        inputs={"bank": str(paths["bank"]), "partner": str(paths["partner"])},
        protocol=protocol,
        dealer="dealer" if protocol == "semi2k" else None,
        output_dir=str(out),
        verbose=verbose,
        model_type=model_type,
        **overrides,
    )
    if verbose:
        what = "SecureBoost (Paillier)" if model_type == "secureboost" else f"SS-LR ({protocol})"
        print(
            f"jointml demo: joint credit scoring on the German credit data, {what}; "
            f"parties {', '.join(parties)} as local {mode}es"
        )
        print(f"  bank file {paths['bank']}  partner file {paths['partner']}")
    _write_pipeline_file(out / "pipeline.yaml", cfg, parties)
    t0 = time.perf_counter()
    res = simulate(run_credit_job, parties, mode=mode, args=(cfg,))
    wall = time.perf_counter() - t0
    bank = res["bank"]
    if bank.get("model_dir"):  # export for serving: fix the masked variant's encrypted WOE tables (if any)
        from ..serving.masked import commit_tables

        simulate(commit_tables, parties, mode="thread", args=(bank["model_dir"], cfg.key_bits))
    baseline = plaintext_baseline(paths, cfg, bank) if cfg.model_type == "ss_lr" else plaintext_trees_baseline(paths, cfg)
    total_bytes = sum(r["stats"]["bytes_sent"] for r in res.values())
    summary = {
        "job": "joint credit scoring (German credit)",
        "model": model_type,
        "protocol": protocol,
        "rows_aligned": bank["rows_aligned"],
        "psi_mode": bank.get("psi_mode"),
        "train_rows": bank["train_rows"],
        "test_rows": bank["test_rows"],
        "features": bank.get("features") or {p: len(c) for p, c in res["bank"].get("feature_columns", {}).items()},
        "auc": round(bank["auc"], 4),
        "ks": round(bank["ks"], 4),
        "baseline_auc": round(baseline["auc"], 4),
        "baseline_ks": round(baseline["ks"], 4),
        "auc_gap": round(abs(bank["auc"] - baseline["auc"]), 4),
        "seconds": round(wall, 2),
        "timings": bank["timings"],
        "bytes": total_bytes,
        "model_dir": bank.get("model_dir"),
    }
    report = write_report(out / "report.html", summary, bank, baseline, _steps(cfg, parties))
    summary["report"] = str(report)
    if verbose:
        print()
        print(f"  rows aligned by PSI   {summary['rows_aligned']} (train {summary['train_rows']}, test {summary['test_rows']})"
              + ("; label-only: the partner learned only this count" if summary["psi_mode"] == "label_only" else
                 "; both sides learned which customers are shared"))
        print("  features              " + ", ".join(f"{p}: {k}" for p, k in summary["features"].items()))
        print(
            f"  test AUC              {summary['auc']:.4f}   "
            f"(plaintext twin {summary['baseline_auc']:.4f}, gap {summary['auc_gap']:.4f})"
        )
        print(f"  test KS               {summary['ks']:.4f}   (plaintext twin {summary['baseline_ks']:.4f})")
        print(
            f"  time                  {summary['seconds']:.1f} s  ("
            + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings"].items())
            + ")"
        )
        print(f"  traffic               {total_bytes / 1e6:.1f} MB over mutual TLS")
        print(f"  model parts           {summary['model_dir']} (one file per party)")
        print(f"  report                {report}")
        print(f"  pipeline              {out / 'pipeline.yaml'} (jointml run {out / 'pipeline.yaml'})")
    return summary


def _steps(cfg: CreditJobConfig, parties: list[str]) -> list:
    from ..jobs.credit import credit_pipeline

    return credit_pipeline(cfg, parties).steps


def _write_pipeline_file(path: Path, cfg: CreditJobConfig, parties: list[str]) -> None:
    """The exact pipeline the demo runs, for `jointml run` (paths relative to the file)."""
    import yaml

    from ..jobs.credit import credit_pipeline

    spec = credit_pipeline(cfg, parties)
    doc = {
        "name": spec.name,
        "parties": spec.parties,
        "mpc": spec.mpc,
        "inputs": {p: str(Path(v).resolve().relative_to(path.parent.resolve())) for p, v in spec.inputs.items()},
        "steps": [{n: prm} for n, prm in spec.steps],
        "output": "run",
    }
    path.write_text(
        "# jointml pipeline written by `jointml demo`; run it again with: jointml run "
        + str(path)
        + "\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def psi_sentence(mode: str | None) -> str:
    """What each side learned from the PSI of a run in `mode` (the report's wording).

    >>> psi_sentence("label_only")[:60]
    'PSI (ECDH on Curve25519, label-only): the bank learned which'
    """
    if mode == "label_only":
        return ("PSI (ECDH on Curve25519, label-only): the bank learned which of its customers the partner also has; "
                "the partner learned only how many, not which, and its rows entered the computation aligned under "
                "secret sharing (through the dealer, which saw only positions in the partner's secret random order).")
    return ("PSI (ECDH on Curve25519, both sides): the bank and the partner each learned which of their customers are "
            "shared, and the partner learned the bank's order of them; neither learned the other's other customers.")


def plaintext_baseline(paths, cfg: CreditJobConfig, bank_summary: dict) -> dict:
    """Plaintext twin: join the two files, same aligned rows (intersection), same public
    split and the same WOE binning procedure, then scikit-learn logistic regression with
    the equivalent L2 penalty."""
    from ..data.metrics import ks, roc_auc
    from ..data.preprocessing import EqualFrequencyBinner, woe_iv_from_counts
    from ..data.secure.woe import final_counts as _final_counts
    from ..data.secure.woe import merge_map

    bank = pd.read_csv(paths["bank"])
    partner = pd.read_csv(paths["partner"])
    # PSI's common order follows the bank's row order (label-only, or sort_by="bank").
    joined = bank.merge(partner, on="id", how="inner", sort=False)
    n = len(joined)
    train_rows, test_rows = public_split(n, cfg.test_fraction, cfg.seed)
    y = (joined[cfg.label] == cfg.pos_label).to_numpy(int)
    bcols = [c for c in bank.columns if c not in ("id", cfg.label)]
    pcols = [c for c in partner.columns if c != "id"]
    b = cfg.binning
    Xtr: list[np.ndarray] = []
    Xte: list[np.ndarray] = []
    for cols in (bcols, pcols):
        # label-only PSI: the partner does not know which of its rows are aligned training rows,
        # so it pre-bins all of its rows (jointml.data.secure.woe)
        fit_rows = partner[cols] if cols is pcols and cfg.psi == "label_only" else joined.iloc[train_rows][cols]
        pre = EqualFrequencyBinner(n_bins=b.get("n_prebins", 20), handle_unknown="missing").fit(fit_rows)
        ctr = np.asarray(pre.transform(joined.iloc[train_rows][cols]))
        cte = np.asarray(pre.transform(joined.iloc[test_rows][cols]))
        for j, c in enumerate(cols):
            nb = pre.get_bins(c).n_bins
            pos = np.bincount(ctr[:, j], weights=y[train_rows], minlength=nb).astype(np.int64)
            cnt = np.bincount(ctr[:, j], minlength=nb).astype(np.int64)
            m = merge_map(
                b.get("method", "chimerge"),
                pre.get_bins(c).kind == "categorical",
                pos,
                cnt - pos,
                b.get("max_bins", 6),
                b.get("min_bin_frac", 0.05),
            )
            pm, nm = _final_counts(m, pos, cnt - pos)
            woe = np.asarray(woe_iv_from_counts(pm, nm)[0])
            Xtr.append(woe[m[ctr[:, j]]])
            Xte.append(woe[m[cte[:, j]]])
    Xtr_m, Xte_m = np.stack(Xtr, 1), np.stack(Xte, 1)
    l2 = cfg.model.get("l2", 0.0)
    t = time.perf_counter()
    w, b0 = logistic_newton(Xtr_m, y[train_rows], l2)
    s = 1.0 / (1.0 + np.exp(-(Xte_m @ w + b0)))
    return {
        "auc": float(roc_auc(y[test_rows], s)),
        "ks": float(ks(y[test_rows], s).statistic),
        "seconds": time.perf_counter() - t,
        "scores": s,
        "labels": y[test_rows],
    }


def plaintext_trees_baseline(paths, cfg: CreditJobConfig) -> dict:
    """Plaintext twin of the SecureBoost job: the joined rows, same split and ordinal codes,
    xgboost with the same hyperparameters (scikit-learn's histogram GBDT if xgboost is absent)."""
    from ..data.metrics import ks, roc_auc
    from ..data.preprocessing import OrdinalEncoder

    bank = pd.read_csv(paths["bank"])
    partner = pd.read_csv(paths["partner"])
    joined = bank.merge(partner, on="id", how="inner", sort=False)
    y = (joined[cfg.label] == cfg.pos_label).to_numpy(int)
    X = joined.drop(columns=["id", cfg.label])
    for part in (bank, partner):
        cols = [c for c in part.columns if c in X.columns and X[c].dtype.kind not in "biuf"]
        if cols:
            X[cols] = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit_transform(X[cols])
    X = X.to_numpy(float)
    tr, te = public_split(len(joined), cfg.test_fraction, cfg.seed)
    t = cfg.trees
    t0 = time.perf_counter()
    try:
        import xgboost as xgb

        m = xgb.XGBClassifier(
            n_estimators=t["n_estimators"],
            learning_rate=t["learning_rate"],
            max_depth=t["max_depth"],
            max_bin=t.get("max_bin", 32),
            tree_method="hist",
            reg_lambda=1.0,
            min_child_weight=1.0,
            n_jobs=2,
        )
        name = "xgboost"
    except ImportError:
        from sklearn.ensemble import HistGradientBoostingClassifier

        m = HistGradientBoostingClassifier(
            max_iter=t["n_estimators"],
            learning_rate=t["learning_rate"],
            max_depth=t["max_depth"],
            max_bins=min(255, t.get("max_bin", 32)),
            l2_regularization=1.0,
        )
        name = "scikit-learn HistGradientBoosting"
    m.fit(X[tr], y[tr])
    s = m.predict_proba(X[te])[:, 1]
    return {
        "auc": float(roc_auc(y[te], s)),
        "ks": float(ks(y[te], s).statistic),
        "seconds": time.perf_counter() - t0,
        "scores": s,
        "labels": y[te],
        "name": name,
    }


def write_report(path: Path, summary: dict, bank: dict, baseline: dict, steps: list | None = None) -> Path:
    """The bank's report (`jointml.jobs.components.report.run_report`, the one `jointml run` writes),
    with the plaintext twin's ROC curve and metrics beside the joint model's."""
    from ..jobs.components.report import run_report

    extra = {k: summary[k] for k in ("protocol", "baseline_auc", "baseline_ks", "auc_gap", "bytes") if k in summary}
    notes = (
        "Parties as separate local processes over mutual TLS. " + psi_sentence(bank.get("psi_mode")) + " "
        "The plaintext twin joins the two files, which only a demo can do."
    )
    text = run_report("bank", {**bank, "model": summary.get("model", bank.get("model"))}, steps, summary.get("protocol"),
                      baseline=baseline, notes=notes, title="jointml — joint credit scoring", extra=extra)
    path.write_text(text)
    return path
