"""Jobs: declarative pipelines of typed components, run by every party (SPMD).

- `spec` — `PipelineSpec` (YAML / dict), checked against the registry when parsed;
- `artifacts` — the typed artifacts components exchange, and the `ArtifactStore`;
- `registry` — the components (`COMPONENTS`, with aliases) and the models (`MODELS`);
- `check` — what a job needs from each party's input, checked at every party before any cryptography;
- `runner` — `run_pipeline`, `simulate_pipeline`, `predict_job`, `agree_on_job` (the parties agree on the job first),
  `list_runs`;
- `components` — psi, encode, split, woe, select_features, train, predict, evaluate, scorecard (one module each),
  and the per-party report;
- `credit` — the joint credit-scoring job as a pipeline.

>>> from jointml.jobs import MODELS, COMPONENTS
>>> "train" in COMPONENTS and "ss_lr" in MODELS
True
"""

from .artifacts import (
    AlignedFrame,
    ArtifactStore,
    Encoding,
    Label,
    LocalDirStore,
    MemoryStore,
    ModelParts,
    Scores,
    Split,
    WoeModel,
)
from .credit import CreditJobConfig, credit_pipeline, run_credit_job
from .registry import COMPONENTS, MODELS, ModelEntry, component
from .runner import (
    JobState,
    agree_on_job,
    check_wiring,
    predict_job,
    run_pipeline,
    simulate_pipeline,
    state_labels,
)
from .spec import PipelineSpec

__all__ = [
    "COMPONENTS",
    "MODELS",
    "AlignedFrame",
    "ArtifactStore",
    "CreditJobConfig",
    "Encoding",
    "JobState",
    "Label",
    "LocalDirStore",
    "MemoryStore",
    "ModelEntry",
    "ModelParts",
    "PipelineSpec",
    "Scores",
    "Split",
    "WoeModel",
    "agree_on_job",
    "check_wiring",
    "component",
    "credit_pipeline",
    "predict_job",
    "run_credit_job",
    "run_pipeline",
    "simulate_pipeline",
    "state_labels",
]
