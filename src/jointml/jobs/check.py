"""Validation before any cryptography runs: what a job needs from each party's input,
checked locally at every party, then agreed on (one message) before PSI, MPC or HE start.

`job_needs(spec)` reads the pipeline (no data): the key columns PSI aligns on, the label
column and its positive value, whether the model needs binary labels, and which raw
features a model trains on. `check_input(needs, party, df)` checks one party's own table:

- the table has rows and the job's key columns, with no missing or duplicate ids;
- the label column (at the party that has it): no missing values; two classes, exactly,
  one of them `pos_label` (a third value would otherwise silently count as negative);
  numeric values for a regression model;
- binning controls of `woe_binning` (`edges`, `special_values`, `monotonic`): well formed when
  the file is read (ConfigError naming the field, `edges.<feature>`); a named feature held by no
  party, or manual edges on a text column (at its owner), stop the job naming both;
- raw features of a linear model (SS-LR/GLM without WOE): numeric, complete, and on a
  unit scale (|x| <= `MAX_RAW_ABS`): fixed-point gradient descent on unscaled features
  diverges (seen: AUC 0.49, weights of -7e6), so the job refuses rather than train garbage.

Each problem is a `Problem`: a *public* text (names, counts and rules only, never a value
of the data) that every party receives, and a *local* text with details for the owner.
`announce(needs, df)` says which of the job's column names this party has (names the
pipeline file already made public), so `cross_problem` can find a label held by no party
or by two.

What each party learns: whether each other party's input passed the checks (and, if not,
the public text: a field, a count, a rule), and which of the job's named columns it holds.
A deviating party can lie about its own checks; that only lets it fail or continue its own
bad job (what it could do anyway).

>>> import pandas as pd
>>> needs = job_needs(PipelineSpec.from_dict({"parties": ["bank"], "inputs": {}, "steps": [
...     {"psi": {"key": "id"}}, "split", {"woe_binning": {"label": "y", "pos_label": 1}}]}))
>>> needs.keys, needs.label, needs.pos_label
(['id'], 'y', 1)
>>> df = pd.DataFrame({"id": [1, 2, 3], "y": [0, 1, 2], "x": [0.1, 0.2, 0.3]})
>>> print(check_input(needs, "bank", df).public[:72])
label column 'y' has 3 distinct values; a binary model needs exactly two
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, DataError, JointMLError
from .registry import MODELS
from .spec import PipelineSpec

__all__ = ["MAX_RAW_ABS", "JobNeeds", "Problem", "announce", "check_input", "cross_problem", "job_needs", "read_checked"]

#: Raw features of a linear model must lie in [-MAX_RAW_ABS, MAX_RAW_ABS] (standardised
#: features do; amounts in currency units do not).
MAX_RAW_ABS = 10.0


@dataclass
class Problem:
    """A failed check: `public` goes to every party, `local` (details) stays at its owner."""

    public: str
    local: str | None = None
    kind: str = "DataError"
    field: str | None = None

    def error(self, party: str | None, here: bool) -> JointMLError:
        """The error to raise: with the local details at the party that found it."""
        cls = ConfigError if self.kind == "ConfigError" else DataError
        return cls((self.local or self.public) if here else self.public, party=party, field=self.field, public=self.public)


@dataclass
class JobNeeds:
    """What a pipeline needs from the parties' inputs (see the module docstring)."""

    keys: list[str] = field(default_factory=list)
    psi_parties: list[str] | None = None  # None: every party with an input
    label: str | None = None
    pos_label: Any = 1
    binary: bool = True
    linear_raw: bool = False  # a linear model trains on raw features
    raw_model: bool = False  # some model trains on raw features
    encoded: bool = False  # an `encode` step turns text columns into codes
    scaled: bool = False  # a `scale` step standardises numeric columns
    binned: dict[str, str] = field(default_factory=dict)  # feature -> the woe_binning control that names it

    def named_columns(self) -> list[str]:
        return list(dict.fromkeys(self.keys + ([self.label] if self.label else [])))


def job_needs(spec: PipelineSpec) -> JobNeeds:
    """What `spec` needs from the inputs (the steps as validated, defaults filled in).

    >>> job_needs(PipelineSpec.from_dict({"parties": ["a"], "inputs": {}, "steps": [
    ...     "psi", "split", {"ss_lr.train": {"label": "y"}}]})).linear_raw
    True
    """
    from .registry import COMPONENTS

    needs, woe, woe_to_owner = JobNeeds(), False, False
    for i, (name, params) in enumerate(spec.steps):
        comp = COMPONENTS[name]
        base = comp.alias_of or comp.name
        full = {n: s.default for n, s in comp.param_specs(params).items() if not s.required}
        full.update(comp.validate(params, f"step {i + 1} ({name})"))
        if base == "psi":
            key = full.get("key", "id")
            needs.keys = [key] if isinstance(key, str) else list(key)
            needs.psi_parties = full.get("parties")
        elif base == "scale":
            needs.scaled = True
        elif base == "encode":
            needs.encoded = True
            needs.label = full.get("label") or needs.label
        elif base == "woe_binning":
            woe = True
            needs.label, needs.pos_label = full["label"], full["pos_label"]
            woe_to_owner = bool(full.get("woe_to_owner"))
            needs.binned.update(_binning_controls(full, i + 1))
            named = [c for c in needs.binned if c in needs.keys or c == needs.label]
            if named:
                raise ConfigError(f"step {i + 1} (woe_binning): {needs.binned[named[0]]} names '{named[0]}', the "
                                  f"{'label' if named[0] == needs.label else 'id'} column, which is not binned",
                                  field=f"{needs.binned[named[0]]}.{named[0]}", public=True)
        elif base == "scorecard" and not (woe and woe_to_owner):
            raise ConfigError(f"step {i + 1} (scorecard): each party computes the points of its own bins from their WOE "
                              "values, which a feature holder has only with woe_binning(woe_to_owner: true)",
                              field="woe_to_owner", public=True)
        elif base == "train":
            _train_needs(needs, full, woe)
        if base == "scorecard":
            _reason_codes_problem(full.get("reason_codes"), spec, i + 1)
    return needs


def _reason_codes_problem(policy: Any, spec: PipelineSpec, step: int) -> None:
    """`scorecard(reason_codes: {party: coded | hidden})`: a mapping of the job's parties to a policy."""
    from .components.scorecard import POLICIES

    if policy is None:
        return
    if not isinstance(policy, dict):
        raise ConfigError(f"step {step} (scorecard): reason_codes must map a party to one of {POLICIES}, got "
                          f"{policy!r}", field="reason_codes", public=True)
    for p, v in policy.items():
        if p not in spec.parties:
            raise ConfigError(f"step {step} (scorecard): reason_codes names '{p}', which is not a party of the job "
                              f"({', '.join(spec.parties)})", field=f"reason_codes.{p}", public=True)
        if v not in POLICIES:
            raise ConfigError(f"step {step} (scorecard): reason_codes of '{p}' must be one of {POLICIES}, got {v!r}",
                              party=str(p), field=f"reason_codes.{p}", public=True)


def _binning_controls(full: dict, step: int) -> dict[str, str]:
    """The features woe_binning's controls name (feature -> control), the controls checked."""
    from ..data.preprocessing import BinningControls

    try:
        ctl = BinningControls.checked(full.get("monotonic", "none"), full.get("edges"), full.get("special_values"))
    except ConfigError as e:
        raise ConfigError(f"step {step} (woe_binning): {str(e).split('woe_binning: ', 1)[-1]}", field=e.field,
                          public=True) from None
    named = {c: "monotonic" for c in (ctl.monotonic if isinstance(ctl.monotonic, dict) else {})}
    named.update({c: "special_values" for c in ctl.special_values})
    named.update({c: "edges" for c in ctl.edges})
    return named


def _train_needs(needs: JobNeeds, full: dict, woe: bool) -> None:
    entry = MODELS[full["model"]]
    needs.label = full.get("label") or needs.label
    if full.get("pos_label") is not None:
        needs.pos_label = full["pos_label"]
    needs.binary = entry.binary(full)
    view = full.get("features") or entry.features
    raw = not (view == "woe" and woe)
    needs.raw_model = needs.raw_model or raw
    needs.linear_raw = needs.linear_raw or (raw and entry.device == "mpc" and not entry.woe_at_owner)


def read_checked(path: str, party: str, needs: JobNeeds) -> tuple[pd.DataFrame | None, Problem | None]:
    """Read this party's own input and check it: `(table, None)` or `(None or table, problem)`."""
    from pathlib import Path

    from ..data.io import read_input

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        return None, Problem("its input file is empty (no header, no rows)", f"input file {path} is empty (no header, no rows)")
    try:
        df = read_input(path, party)
    except DataError as e:
        public = "its input file cannot be read" if "not found" not in str(e) else "its input file was not found"
        return None, Problem(public, str(e).removeprefix(f"party '{party}': "))
    return df, check_input(needs, party, df)


def check_input(needs: JobNeeds, party: str, df: pd.DataFrame) -> Problem | None:
    """The first problem of this party's own table for the job (None: fine)."""
    if len(df.columns) == 0:
        return Problem("its input has no columns")
    if len(df) == 0:
        return Problem("its input has a header but no rows")
    if needs.psi_parties is None or party in needs.psi_parties:
        for key in needs.keys:
            p = _key_problem(df, key)
            if p:
                return p
    if needs.label is not None and needs.label in df.columns:
        p = _label_problem(df[needs.label], needs)
        if p:
            return p
    for c, control in needs.binned.items():
        if control == "edges" and c in df.columns and not pd.api.types.is_numeric_dtype(df[c].dtype):
            return Problem(f"woe_binning edges name feature '{c}', which holds text (categories): manual edges need a "
                           "numeric column; remove its edges", kind="ConfigError", field=f"edges.{c}")
    if needs.raw_model:
        return _feature_problem(df, needs)
    return None


def _key_problem(df: pd.DataFrame, key: str) -> Problem | None:
    if key not in df.columns:
        return Problem(f"the id column '{key}' (psi key) is not in its input", kind="ConfigError", field=key,
                       local=f"the id column '{key}' (psi key) is not in its input; its columns: {list(df.columns)}")
    col = df[key]
    missing = int(col.isna().sum())
    if missing:
        return Problem(f"the id column '{key}' has {missing} empty values (every row needs an id)", field=key)
    dup = int(col.duplicated().sum())
    if dup:
        return Problem(f"the id column '{key}' has {dup} duplicate ids (PSI needs one row per id; "
                       "aggregate or de-duplicate the rows first)", field=key)
    return None


def _label_problem(col: pd.Series, needs: JobNeeds) -> Problem | None:
    name = needs.label
    missing = int(col.isna().sum())
    if missing:
        return Problem(f"label column '{name}' has {missing} missing values (drop or label those rows first)", field=name)
    values = pd.unique(col)
    if not needs.binary:
        if col.dtype.kind not in "biuf":
            return Problem(f"label column '{name}' is not numeric (a regression model needs numbers)", field=name)
        return None
    shown = sorted(map(repr, values))[:10]
    if len(values) > 2:
        public = (f"label column '{name}' has {len(values)} distinct values; a binary model needs exactly two (map the "
                  "others to good or bad before the job, or name the bad value with pos_label)")
        return Problem(public, f"{public}; values: {', '.join(shown)}", field=name)
    if not any(_same(v, needs.pos_label) for v in values):
        public = (f"pos_label {needs.pos_label!r} does not occur in label column '{name}' (set pos_label to the value "
                  "that marks a bad outcome)")
        return Problem(public, f"{public}; values: {', '.join(shown)}", field=name)
    if len(values) < 2:
        return Problem(f"label column '{name}' holds a single class; the model needs good and bad rows", field=name)
    return None


def _same(v: Any, pos: Any) -> bool:
    try:
        return bool(v == pos) or str(v) == str(pos)
    except (TypeError, ValueError):
        return False


def _feature_problem(df: pd.DataFrame, needs: JobNeeds) -> Problem | None:
    skip = set(needs.named_columns())
    for c in df.columns:
        if c in skip:
            continue
        col = df[c]
        if col.dtype.kind not in "biuf":
            if needs.encoded:
                continue  # `encode` turns it into codes
            return Problem(f"feature column '{c}' is not numeric: add an `encode` step (text categories to codes) or "
                           "a `woe_binning` step before train", kind="ConfigError", field=c)
        if not needs.linear_raw:
            continue
        missing = int(col.isna().sum())
        if missing:
            return Problem(f"feature column '{c}' has {missing} missing values; a linear model on raw features needs "
                           "complete columns (impute them, or add woe_binning, which bins missing values)", field=c)
        if not needs.scaled and len(col) and float(np.nanmax(np.abs(col.to_numpy(np.float64)))) > MAX_RAW_ABS:
            return Problem(f"feature column '{c}' is not on a unit scale (values beyond +-{MAX_RAW_ABS:g}): secure "
                           "logistic regression on unscaled raw features diverges under fixed point; add a `scale` step "
                           "after split (or standardise the column yourself), or a woe_binning step before train",
                           kind="ConfigError", field=c)
    return None


def announce(needs: JobNeeds, df: pd.DataFrame | None) -> list[str]:
    """The job's named columns (public: the pipeline names them) that this party's table has."""
    if df is None:
        return []
    return [c for c in [*needs.named_columns(), *needs.binned] if c in df.columns]


def cross_problem(needs: JobNeeds, has: dict[str, list[str]]) -> tuple[str | None, Problem] | None:
    """A problem only the parties' announcements together show: `(party or None, problem)`.

    >>> n = JobNeeds(keys=["id"], label="y")
    >>> cross_problem(n, {"bank": ["id"], "partner": ["id"]})[1].public
    "label column 'y' is in no party's input (check its name and the inputs)"
    >>> cross_problem(n, {"bank": ["id", "y"], "partner": ["id", "y"]})[1].public
    "label column 'y' is in the inputs of both 'bank' and 'partner'; rename or drop one"
    """
    held = {c for cols in has.values() for c in cols}
    for c, control in needs.binned.items():
        if c not in held:
            return None, Problem(f"woe_binning {control} name feature '{c}', which is in no party's input (check its "
                                 "name)", kind="ConfigError", field=f"{control}.{c}")
    if needs.label is None:
        return None
    holders = [p for p, cols in has.items() if needs.label in cols and needs.label not in needs.keys]
    if not holders:
        return None, Problem(f"label column '{needs.label}' is in no party's input (check its name and the inputs)",
                             kind="ConfigError", field=needs.label)
    if len(holders) > 1:
        return holders[1], Problem(f"label column '{needs.label}' is in the inputs of both '{holders[0]}' and "
                                   f"'{holders[1]}'; rename or drop one", kind="ConfigError", field=needs.label)
    return None

