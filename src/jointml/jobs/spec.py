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

**Agreeing on the job.** Each organisation runs its own copy of the pipeline file, so
before any data moves the runner checks that every party runs the same job:
`PipelineSpec.canonical_fields()` is the job as it will run, one value per field path
(`parties`, `inputs`, `output`, `mpc.<device parameter>`, `steps[i]` and
`steps[i].<step>.<parameter>` with every default filled in), `fields_fingerprint()` hashes
each field and `fingerprint()` the whole. What is left out is what is legitimately per
party: the pipeline's `name`, each input's *path* (only its owner reads it; *which*
parties have inputs is part of the job) and the `output` folder (only whether there is
one). Steps are compared as written: `ss_lr.train` and `train: {model: ss_lr}` run the
same model but count as different fields, so write the same step names everywhere.

>>> a = PipelineSpec.from_dict({"parties": ["bank", "partner"], "inputs": {"bank": "/x/b.csv"},
...                             "steps": [{"split": {"seed": 2}}]})
>>> canon = a.canonical_fields()
>>> canon["steps[0].split.test_fraction"], canon["mpc.frac_bits"], canon["inputs"]
(0.3, 18, ['bank'])
>>> b = PipelineSpec.from_dict({"parties": ["bank", "partner"], "inputs": {"bank": "/elsewhere/b.csv"},
...                             "steps": [{"split": {"seed": 2, "test_fraction": 0.3}}]})
>>> a.fingerprint() == b.fingerprint()   # same job: defaults written out or not, paths differ
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..core.errors import ConfigError
from ..core.fixedpoint import DEFAULT_FRAC_BITS
from . import components as _components  # noqa: F401 - registers the components
from .registry import COMPONENTS

__all__ = ["PipelineSpec", "device_params", "fields_digest", "fingerprint_fields", "first_difference"]


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
    min_rows: int = 1  # fewer rows matched by PSI stop the job

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
        unknown = sorted(set(map(str, raw)) - _TOP_KEYS)
        if unknown:
            raise ConfigError(f"unknown pipeline keys {unknown}; allowed: {sorted(_TOP_KEYS)}", field=unknown[0], public=True)
        for key in ("parties", "inputs", "steps"):
            if key not in raw:
                raise ConfigError(f"pipeline needs '{key}'", field=key, public=True)
        if not isinstance(raw["parties"], list) or not all(isinstance(p, str) for p in raw["parties"]) or not raw["parties"]:
            raise ConfigError(f"parties must be a list of party names, got {raw['parties']!r}", field="parties", public=True)
        if not isinstance(raw["steps"] or [], list):
            raise ConfigError("steps must be a list, one '- component: {params}' per step", field="steps", public=True)
        if not isinstance(raw["inputs"] or {}, dict):
            raise ConfigError("inputs must map each party to its file, e.g. 'bank: bank.csv'", field="inputs", public=True)
        if not isinstance(raw.get("mpc") or {}, dict):
            raise ConfigError("mpc must be a mapping, e.g. {protocol: semi2k, dealer: dealer}", field="mpc", public=True)
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
        device_params(mpc, parties)  # its protocol and frac_bits, checked now
        out = raw.get("output")
        if out is not None and not Path(out).is_absolute():
            out = str(base / out)
        min_rows = raw.get("min_rows", 1)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise ConfigError(f"min_rows must be an integer >= 1, got {min_rows!r}", field="min_rows", public=True)
        return cls(name=str(raw.get("name", "pipeline")), parties=parties, inputs=inputs, steps=steps, mpc=mpc, output=out,
                   base=base, min_rows=min_rows)

    def canonical_fields(self) -> dict[str, Any]:
        """The job as it will run, `{field path: value}` in a fixed order (see the module docstring).

        >>> spec = PipelineSpec.from_dict({"parties": ["a", "b"], "inputs": {}, "steps": ["split"]})
        >>> [k for k in spec.canonical_fields() if k.startswith("steps")]
        ['steps[0]', 'steps[0].split.seed', 'steps[0].split.test_fraction']
        """
        out: dict[str, Any] = {"parties": list(self.parties), "inputs": sorted(self.inputs),
                               "output": self.output is not None, "min_rows": self.min_rows}
        for k, v in device_params(self.mpc, self.parties).items():
            out[f"mpc.{k}"] = v
        for i, (name, params) in enumerate(self.steps):
            comp = COMPONENTS.get(name)
            if comp is None:
                raise ConfigError(f"step {i + 1}: unknown component '{name}' (known: {sorted(COMPONENTS)})")
            specs = comp.param_specs(params)
            full = {n: s.default for n, s in specs.items() if not s.required}
            full.update(comp.validate(params, f"step {i + 1} ({name})"))  # converted, with an alias's fixed ones
            out[f"steps[{i}]"] = {"component": name, "version": comp.version}
            for n in sorted(full):
                out[f"steps[{i}].{name}.{n}"] = full[n]
        return out

    def fields_fingerprint(self) -> list[tuple[str, str]]:
        """`[(field path, hash of its value)]` of `canonical_fields()`: what parties exchange
        to find the first field they disagree on.

        >>> PipelineSpec.from_dict({"parties": ["a"], "inputs": {}, "steps": []}).fields_fingerprint()[0][0]
        'parties'
        """
        return fingerprint_fields(self.canonical_fields())

    def fingerprint(self) -> str:
        """One SHA-256 hex digest of the whole canonical job (equal iff every field is).

        >>> len(PipelineSpec.from_dict({"parties": ["a"], "inputs": {}, "steps": []}).fingerprint())
        64
        """
        return fields_digest(self.fields_fingerprint())


_TOP_KEYS = {"name", "parties", "inputs", "steps", "mpc", "output", "min_rows"}
_PROTOCOLS = ("semi2k", "aby3")


def device_params(mpc: dict | None, parties: list[str]) -> dict[str, Any]:
    """The parameters of the MPC device an `mpc:` section makes, defaults filled in
    (protocol, compute parties, dealer, fractional bits; other keys kept as written, e.g.
    `trunc`: "local" or "dealer", how semi2k truncates products, see `Semi2k`).

    >>> device_params({"dealer": "d"}, ["a", "b", "d"])
    {'protocol': 'semi2k', 'parties': ['a', 'b'], 'dealer': 'd', 'frac_bits': 18}
    """
    m = dict(mpc or {})
    dealer = m.get("dealer")
    compute = list(m["parties"]) if m.get("parties") is not None else [p for p in parties if p != dealer]
    try:
        frac_bits = int(m.get("frac_bits", DEFAULT_FRAC_BITS))
    except (TypeError, ValueError):
        raise ConfigError(f"mpc: frac_bits must be an int, got {m.get('frac_bits')!r}", field="mpc.frac_bits") from None
    protocol = str(m.get("protocol", "semi2k"))
    if protocol not in _PROTOCOLS:
        raise ConfigError(f"mpc: protocol must be one of {list(_PROTOCOLS)}, got {protocol!r}", field="mpc.protocol",
                          public=True)
    trunc = m.get("trunc")
    if trunc is not None and (protocol != "semi2k" or trunc not in ("local", "dealer")):
        raise ConfigError(f"mpc: trunc must be 'local' or 'dealer' (semi2k only), got {trunc!r}", field="mpc.trunc",
                          public=True)
    out = {"protocol": protocol, "parties": compute, "dealer": dealer, "frac_bits": frac_bits}
    out.update({k: v for k, v in sorted(m.items()) if k not in out})
    return out


def fingerprint_fields(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """`[(path, hash)]`: each value as canonical JSON, hashed with its path (SHA-256, 64 bits
    shown: enough to tell two honest configurations apart, short on the wire).

    >>> fingerprint_fields({"epochs": 30}) == fingerprint_fields({"epochs": 30.0})
    False
    """
    out = []
    for path, value in fields.items():
        text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
        out.append((path, hashlib.sha256(f"{path}\0{text}".encode()).hexdigest()[:16]))
    return out


def first_difference(ref: list[tuple[str, str]], other: list[tuple[str, str]]) -> str | None:
    """The first field path (in `ref`'s order, then `other`'s) whose hash differs or is missing.

    >>> first_difference([("a", "1"), ("b", "2")], [("a", "1"), ("b", "3")])
    'b'
    >>> first_difference([("a", "1")], [("a", "1"), ("c", "4")]), first_difference([("a", "1")], [("a", "1")])
    ('c', None)
    """
    r, o = dict(ref), dict(other)
    for path in [p for p, _ in ref] + [p for p, _ in other if p not in r]:
        if r.get(path) != o.get(path):
            return path
    return None


def fields_digest(fields: list[tuple[str, str]]) -> str:
    """One SHA-256 hex digest of a `(path, hash)` list (the job's fingerprint).

    >>> fields_digest(fingerprint_fields({"a": 1})) == fields_digest(fingerprint_fields({"a": 2}))
    False
    """
    return hashlib.sha256("\n".join(f"{p}={h}" for p, h in fields).encode()).hexdigest()


def _plain(v: Any) -> Any:
    """JSON-ready: tuples as lists, numpy scalars as Python ones, dict keys as strings."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


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
