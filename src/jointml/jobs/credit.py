"""The main job: joint credit scoring between a bank (labels + some features) and a
partner (other features), from two raw CSV files to a joint model, its AUC/KS, an
exported model whose parts stay with their owners, and joint predictions.

Steps (every party runs them, SPMD): read own CSV -> PSI on the id column -> public
train/test split -> vertical WOE binning (Paillier for the bank's labels) -> WOE
features (the partner's stay secret-shared) -> SS-LR under MPC -> joint prediction of
the test rows, scores revealed to the bank only -> AUC/KS at the bank -> each party
saves its part of the model.

PSI mode (`CreditJobConfig.psi_mode`): ``"label_only"``, the default for SS-LR: only the
bank learns the intersection; the partner learns the intersection size only, its rows are
aligned under secret sharing (`jointml.psi.label_only`). ``"both"``, the default for
SecureBoost (whose trees split the partner's features in plaintext): both learn the
intersection and the partner learns the bank's order of it. SecureBoost with
``"label_only"`` is refused (ConfigError naming ``psi_mode``) before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError
from .runner import run_pipeline
from .spec import PipelineSpec


@dataclass
class CreditJobConfig:
    """The credit job's settings (defaults: the German credit demo).

    >>> CreditJobConfig(inputs={"bank": "b.csv", "partner": "p.csv"}).parties
    ['bank', 'partner']
    """

    inputs: dict[str, str]  # party -> CSV path (each party opens only its own)
    label_party: str = "bank"
    id_column: str = "id"
    label: str = "creditability"
    pos_label: Any = "bad"
    protocol: str = "semi2k"
    dealer: str | None = "dealer"
    test_fraction: float = 0.3
    seed: int = 1
    binning: dict = field(default_factory=lambda: {"method": "chimerge", "max_bins": 6, "n_prebins": 20})
    model: dict = field(
        default_factory=lambda: {"epochs": 30, "batch_size": 128, "learning_rate": 1.0, "l2": 0.001, "sigmoid": "poly"}
    )
    key_bits: int = 2048
    model_type: str = "ss_lr"  # or "secureboost"
    trees: dict = field(default_factory=lambda: {"n_estimators": 10, "learning_rate": 0.3, "max_depth": 3, "max_bin": 32})
    output_dir: str | None = None
    verbose: bool = True
    epoch_lines: bool = False  # a progress line for every SS-LR epoch (else about five)
    # "label_only": only the label holder learns the intersection, the partner's rows are aligned
    # under secret sharing (jointml.psi.label_only); "both": both learn it (and the bank's order).
    # None: the most private mode the model supports (label_only for ss_lr, both for secureboost).
    psi_mode: str | None = None

    @property
    def psi(self) -> str:
        """The PSI mode this job runs (`psi_mode`, or its default for `model_type`).

        >>> CreditJobConfig(inputs={}).psi, CreditJobConfig(inputs={}, model_type="secureboost").psi
        ('label_only', 'both')
        """
        if self.psi_mode is not None:
            return self.psi_mode
        return "both" if self.model_type == "secureboost" else "label_only"

    @property
    def parties(self) -> list[str]:
        return list(self.inputs)


def credit_pipeline(cfg: CreditJobConfig, parties: list[str]) -> PipelineSpec:
    """The credit job as a declarative pipeline (what `jointml run` executes from YAML).

    >>> cfg = CreditJobConfig(inputs={"bank": "bank.csv", "partner": "partner.csv"}, model_type="secureboost")
    >>> [name for name, _ in credit_pipeline(cfg, ["bank", "partner", "dealer"]).steps]
    ['psi', 'encode', 'split', 'secureboost.train', 'secureboost.predict', 'evaluate']
    """
    mpc: dict[str, Any] = {"protocol": cfg.protocol, "parties": list(cfg.inputs)}
    if cfg.protocol == "semi2k":
        mpc["dealer"] = cfg.dealer
    else:
        mpc["parties"] = [p for p in parties]
    return PipelineSpec.from_dict({
        "name": "credit-scoring",
        "parties": parties,
        "mpc": mpc,
        "inputs": cfg.inputs,
        "steps": _credit_steps(cfg),
        "output": cfg.output_dir,
    })


def _credit_steps(cfg: CreditJobConfig) -> list[dict]:
    if cfg.psi not in ("label_only", "both"):
        raise ConfigError(f"psi_mode must be 'label_only' or 'both', got {cfg.psi_mode!r}", field="psi_mode")
    if cfg.psi == "label_only" and cfg.model_type == "secureboost":
        raise ConfigError("model_type 'secureboost' needs psi_mode 'both': its trees split the partner's features in "
                          "plaintext at the partner, so the partner must know which of its rows are shared (it then "
                          "learns the intersection and the bank's order); ss_lr keeps them secret-shared and runs "
                          "with psi_mode 'label_only'", field="psi_mode")
    if cfg.psi == "label_only":
        head = [{"psi": {"key": cfg.id_column, "mode": "label_only", "holder": cfg.label_party}}]
    else:
        head = [{"psi": {"key": cfg.id_column, "sort_by": cfg.label_party}}]
    if cfg.model_type == "secureboost":
        return head + [
            {"encode": {"method": "ordinal", "label": cfg.label}},
            {"split": {"test_fraction": cfg.test_fraction, "seed": cfg.seed}},
            {"secureboost.train": {"label": cfg.label, "pos_label": cfg.pos_label, "key_bits": cfg.key_bits,
                                   "features": "raw", **cfg.trees}},
            {"secureboost.predict": {}},
            {"evaluate": {"metrics": ["auc", "ks"]}},
        ]
    if cfg.model_type != "ss_lr":
        raise ConfigError(f"model_type must be 'ss_lr' or 'secureboost', got {cfg.model_type!r}", field="model_type")
    return head + [
        {"split": {"test_fraction": cfg.test_fraction, "seed": cfg.seed}},
        {"woe_binning": {"label": cfg.label, "pos_label": cfg.pos_label, "key_bits": cfg.key_bits, **cfg.binning}},
        {"ss_lr.train": {**cfg.model, "seed": cfg.seed}},
        {"predict": {"to": cfg.label_party}},
        {"evaluate": {"metrics": ["auc", "ks"]}},
    ]


def run_credit_job(ctx, cfg: CreditJobConfig) -> dict:
    """Run the credit job at this party; returns this party's summary (metrics at the bank)."""
    ctx.options["jobs.epoch_lines"] = cfg.epoch_lines
    return run_pipeline(ctx, credit_pipeline(cfg, ctx.parties), verbose=cfg.verbose)
