"""Jobs: declarative pipelines of typed components, run by every party (SPMD).

- `spec` — `PipelineSpec` (YAML / dict), checked against the registry when parsed;
- `artifacts` — the typed artifacts components exchange, and the `ArtifactStore`;
- `registry` — the components (`COMPONENTS`, with aliases) and the models (`MODELS`);
- `runner` — `run_pipeline`, `simulate_pipeline`, `predict_job`;
- `components` — psi, encode, split, woe, train, predict, evaluate (one module each);
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
from .registry import COMPONENTS, MODELS, ModelEntry, component
from .spec import PipelineSpec
from .runner import JobState, check_wiring, predict_job, run_pipeline, simulate_pipeline, state_labels  # noqa: I001
from .credit import CreditJobConfig, credit_pipeline, run_credit_job

__all__ = ["AlignedFrame", "ArtifactStore", "Encoding", "Label", "LocalDirStore", "MemoryStore", "ModelParts", "Scores",
           "Split", "WoeModel", "COMPONENTS", "MODELS", "ModelEntry", "component", "PipelineSpec", "JobState",
           "check_wiring", "predict_job", "run_pipeline", "simulate_pipeline", "state_labels", "CreditJobConfig",
           "credit_pipeline", "run_credit_job"]
