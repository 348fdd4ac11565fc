"""Pipeline specs: a YAML file naming the parties, their inputs and a list of components.

Every party runs the same pipeline (SPMD) on its own data.

```yaml
name: credit-scoring
parties: [bank, partner, dealer]
mpc: {protocol: semi2k, parties: [bank, partner], dealer: dealer}
inputs:                      # each party reads only its own file
  bank: data/bank.csv
  partner: data/partner.csv
steps:
  - psi: {key: id, sort_by: bank}
  - split: {test_fraction: 0.3, seed: 1}
  - woe_binning: {label: creditability, pos_label: bad, method: chimerge, max_bins: 6}
  - train: {model: ss_lr, epochs: 30, batch_size: 64, learning_rate: 0.5, l2: 0.001}
  - predict: {to: bank}
  - evaluate: {metrics: [auc, ks]}
output: out/credit           # model parts, one file per party, and summary.<party>.json
```

Parsing checks every step against the component registry (unknown components, unknown
parameters, parameter types); the runner checks the wiring (each step's inputs made by
an earlier step) before anything runs.

>>> spec = PipelineSpec.from_dict({"parties": ["bank", "partner"], "inputs": {},
...                                "steps": [{"psi": {"key": "id"}}, "split", {"ss_lr.train": {"epochs": 3}}]})
>>> [name for name, _ in spec.steps]
['psi', 'split', 'ss_lr.train']
>>> PipelineSpec.from_dict({"parties": ["a"], "inputs": {}, "steps": [{"split": {"seed": "x"}}]})
Traceback (most recent call last):
...
jointml.core.errors.ConfigError: field 'seed': step 1 (split): must be int, got 'x'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError
from . import components as _components  # noqa: F401 - registers the components
from .registry import COMPONENTS

__all__ = ["PipelineSpec"]


@dataclass
class PipelineSpec:
    """A parsed pipeline: parties, inputs (absolute paths), steps `(name, params)` as written."""

    name: str
    parties: list[str]
    inputs: dict[str, str]
    steps: list[tuple[str, dict]]
    mpc: dict = field(default_factory=dict)
    output: str | None = None
    base: Path = field(default_factory=Path.cwd)

    @classmethod
    def load(cls, path: str | Path) -> PipelineSpec:
        """Read a YAML pipeline file (relative paths are relative to the file)."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"pipeline file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"pipeline file {path} is not valid YAML: {e}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: Any, base: Path | None = None) -> PipelineSpec:
        """Parse and check a pipeline given as a mapping (see the module docstring)."""
        if not isinstance(raw, dict):
            raise ConfigError("a pipeline must be a mapping")
        base = base or Path.cwd()
        for key in ("parties", "inputs", "steps"):
            if key not in raw:
                raise ConfigError(f"pipeline needs '{key}'")
        parties = list(raw["parties"])
        inputs = {}
        for p, v in dict(raw["inputs"] or {}).items():
            if p not in parties:
                raise ConfigError(f"input for unknown party '{p}' (parties: {parties})", field="inputs")
            pth = Path(v)
            inputs[p] = str(pth if pth.is_absolute() else base / pth)
        steps = [_parse_step(i, st) for i, st in enumerate(raw["steps"] or [])]
        mpc = dict(raw.get("mpc") or {})
        for p in (mpc.get("parties") or []) + ([mpc["dealer"]] if mpc.get("dealer") else []):
            if p not in parties:
                raise ConfigError(f"mpc: unknown party '{p}' (parties: {parties})", field="mpc")
        out = raw.get("output")
        if out is not None and not Path(out).is_absolute():
            out = str(base / out)
        return cls(name=str(raw.get("name", "pipeline")), parties=parties, inputs=inputs, steps=steps, mpc=mpc, output=out,
                   base=base)


def _parse_step(i: int, st: Any) -> tuple[str, dict]:
    if isinstance(st, str):
        st = {st: {}}
    if not isinstance(st, dict) or len(st) != 1:
        raise ConfigError(f"step {i + 1}: write each step as '- name: {{params}}'")
    ((name, params),) = st.items()
    params = dict(params or {})
    comp = COMPONENTS.get(name)
    if comp is None:
        raise ConfigError(f"step {i + 1}: unknown component '{name}' (known: {sorted(COMPONENTS)})")
    comp.validate(params, f"step {i + 1} ({name})")
    return name, params
