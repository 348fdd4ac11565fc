"""Registries: pipeline components (named, versioned steps) and trainable models.

**Components.** A component is a function `fn(ctx, state, <inputs>, *, <parameters>)`:
its positional arguments after `ctx` and `state` are its inputs, typed by artifact
(`frame: AlignedFrame`; `= None` makes an input optional), its keyword-only arguments
are its parameters, with types and defaults (what a pipeline file may set). Its outputs
are declared in `@component(name, outputs=(...))`. From this, the runner checks a whole
pipeline (unknown components and parameters, parameter types, step order) before
anything runs. An *alias* is a component name bound to fixed parameters (`ss_lr.train`
is `train` with `model: ss_lr`), so old pipeline files keep working.

**Models.** `train` and `predict` are one component each over `MODELS`: a name
(`ss_lr`, `ss_glm`, `secureboost`, `ss_xgb`) maps to a `ModelEntry` that builds the
estimator on the device it needs, says which feature view it trains on, how it is loaded
from saved parts and how its scores are revealed. The hyperparameters a pipeline may
set are the keyword arguments of the entry's `build` (with the pipeline's defaults).

>>> import jointml.jobs  # registers the components (and the models of jobs/components/split_nn.py)
>>> sorted(MODELS)
['mpc_mlp', 'ppdt', 'secureboost', 'split_nn', 'ss_glm', 'ss_lr', 'ss_xgb']
>>> MODELS["ss_xgb"].device, MODELS["secureboost"].device
('mpc', 'he')
>>> import jointml.jobs  # registers the components
>>> COMPONENTS["ss_lr.train"].alias_of, COMPONENTS["ss_lr.train"].fixed
('train', {'model': 'ss_lr'})
>>> [p for p in COMPONENTS["split"].params()]
['test_fraction', 'seed']
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ..core.errors import ConfigError, ParameterTypeError
from .artifacts import Artifact

if typing.TYPE_CHECKING:  # the estimators are imported when a model is used
    from ..ml.base import SecureEstimator

__all__ = ["COMPONENTS", "MODELS", "Component", "Input", "ModelEntry", "Param", "Rule", "alias", "component", "model_for_kind",
           "param_rule"]

_REQUIRED = inspect.Parameter.empty


# -- parameters ------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A parameter of a component or a model: name, type (annotation) and default.

    >>> Param("epochs", int, 30).check(5, "ss_lr.train")
    5
    >>> Param("epochs", int, 30).check("many", "ss_lr.train")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: field 'epochs': ss_lr.train: must be int, got 'many'
    """

    name: str
    type: Any = Any
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value: Any, where: str, rule: Rule | None = None) -> Any:
        """`value` converted to the declared type and inside `rule`, or `ConfigError` naming the field."""
        ok, got = _conforms(value, self.type)
        if not ok:
            raise ConfigError(f"{where}: must be {_type_name(self.type)}, got {value!r}", field=self.name, public=True)
        problem = rule.problem(got) if rule is not None else None
        if problem:
            raise ConfigError(f"{where}: {self.name} {problem}, got {value!r}", field=self.name, public=True)
        return got

    def describe_default(self) -> str:
        return "(required)" if self.required else repr(self.default)


@dataclass(frozen=True)
class Rule:
    """The allowed range (or values) of a parameter, checked when a pipeline is read, before
    anything runs (a type says `float`; a rule says `0 < test_fraction < 1`).

    >>> Rule(0, 1, lo_open=True, hi_open=True).problem(1.5)
    'must be between 0 and 1 (both excluded)'
    >>> Rule(1).problem(3) is None, Rule(choices=("a", "b")).problem("c")
    (True, "must be one of 'a', 'b'")
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    custom: Callable[[Any], str | None] | None = None  # a check owned by the layer that uses the value
    note: str = ""  # what `custom` allows, for the reference page

    def describe(self) -> str:
        """The rule in a few words (for the reference page).

        >>> Rule(0, 1, lo_open=True).describe(), Rule(1).describe()
        ('0 < x <= 1', '>= 1')
        """
        if self.custom is not None:
            return self.note
        if self.choices is not None:
            return ", ".join(f"`{c}`" for c in self.choices)
        if self.lo is not None and self.hi is not None:
            return f"{self.lo:g} {'<' if self.lo_open else '<='} x {'<' if self.hi_open else '<='} {self.hi:g}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}" if self.hi is not None else ""

    def problem(self, v: Any) -> str | None:
        """What is wrong with `v` (None: allowed, or a value the rule does not apply to, such as None)."""
        if v is None or isinstance(v, bool):
            return None
        if self.custom is not None:
            return self.custom(v)
        if self.choices is not None:
            return None if v in self.choices else "must be one of " + ", ".join(repr(c) for c in self.choices)
        if not isinstance(v, (int, float, np.integer, np.floating)):
            return None
        if not np.isfinite(v):
            return "must be a finite number"
        bad_lo = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        bad_hi = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        if not (bad_lo or bad_hi):
            return None
        if self.lo is not None and self.hi is not None:
            ends = {(True, True): "both excluded", (False, False): "both included", (True, False): f"{self.lo:g} excluded",
                    (False, True): f"{self.hi:g} excluded"}[(self.lo_open, self.hi_open)]
            return f"must be between {self.lo:g} and {self.hi:g} ({ends})"
        if self.lo is not None:
            return f"must be {'>' if self.lo_open else '>='} {self.lo:g}"
        return f"must be {'<' if self.hi_open else '<='} {self.hi:g}"


def _key_bits_problem(v: Any) -> str | None:
    """The Paillier layer's own rule (>= 2048 bits, smaller only in tests), checked when the file is read."""
    from ..core.errors import ParameterError
    from ..he.paillier import check_key_bits

    try:
        check_key_bits(v)
    except ParameterError as e:
        return "must be " + str(e).split("must be ", 1)[-1].split(", got ")[0] + _after_got(str(e))
    return None


def _after_got(msg: str) -> str:
    rest = msg.split(", got ", 1)[-1]
    return rest[rest.index(" ("):] if " (" in rest else ""


_POS, _NONNEG, _FRACTION = Rule(0, lo_open=True), Rule(0), Rule(0, 1, lo_open=True)
_KEY_BITS = Rule(custom=_key_bits_problem, note="even, >= 2048 (tests: >= 256 with JOINTML_INSECURE_TEST_KEYS=1)")
#: Ranges of component parameters, by component (an alias uses its target's) and parameter.
PARAM_RULES: dict[str, dict[str, Rule]] = {
    "split": {"test_fraction": Rule(0, 1, lo_open=True, hi_open=True), "seed": _NONNEG},
    "scorecard": {"pdo": Rule(0, lo_open=True), "base_odds": Rule(0, lo_open=True), "reasons": Rule(0)},
    "select_features": {"iv_min": Rule(0), "max_corr": Rule(0, 1, lo_open=True), "max_vif": Rule(1),
                        "stepwise": Rule(choices=("none", "forward", "backward", "forward_auc")), "min_auc_gain": Rule(0, 1),
                        "p_enter": Rule(0, 1, lo_open=True, hi_open=True), "p_remove": Rule(0, 1, lo_open=True, hi_open=True),
                        "max_features": Rule(1), "stepwise_epochs": Rule(1)},
    "woe_binning": {"method": Rule(choices=("chimerge", "tree", "quantile", "equal_width")), "max_bins": Rule(2),
                    "n_prebins": Rule(2), "min_bin_frac": Rule(0, 0.5, hi_open=True), "key_bits": _KEY_BITS},
}
#: Ranges of model hyperparameters (any model of `train` that has a parameter of this name).
MODEL_RULES: dict[str, Rule] = {
    "epochs": Rule(1), "batch_size": Rule(1), "learning_rate": _POS, "l2": _NONNEG, "l1": _NONNEG, "lr_decay": _NONNEG,
    "lr_schedule": Rule(choices=("constant", "invscaling", "step")),
    "sigmoid": Rule(choices=("accurate", "exp", "poly", "seg3")), "seed": _NONNEG, "n_estimators": Rule(1),
    "max_depth": Rule(1), "min_child_weight": _NONNEG, "reg_lambda": _NONNEG, "gamma": _NONNEG, "subsample": _FRACTION,
    "colsample_bytree": _FRACTION, "max_bin": Rule(2), "key_bits": _KEY_BITS, "power": Rule(1, 2),
    "he_scheme": Rule(choices=("ou", "paillier")),  # SecureBoost's HE backend (jointml.he.SCHEMES)
    "label_dp": _POS,  # SecureBoost's label DP (randomized response) epsilon
}


#: What each parameter means (the reference page's *meaning* column); "*" for model hyperparameters.
PARAM_HELP: dict[tuple[str, str], str] = {
    ("psi", "key"): "id column(s) to align rows on (same name at every party)",
    ("psi", "sort_by"): "party whose row order the aligned rows follow",
    ("psi", "parties"): "parties to align (default: every party with an input)",
    ("encode", "method"): "how text categories become numbers (sorted codes)",
    ("encode", "label"): "label column, left as it is",
    ("split", "test_fraction"): "share of the aligned rows held out for testing",
    ("split", "seed"): "public seed of the split (the same rows at every party)",
    ("scale", "method"): "standardisation: (x - mean) / std on the training rows, per party",
    ("scale", "label"): "label column, left as it is (default: the job's label)",
    ("woe_binning", "label"): "label column (at the label holder)",
    ("woe_binning", "pos_label"): "label value that marks a bad outcome",
    ("woe_binning", "method"): "how pre-bins are merged into bins",
    ("woe_binning", "max_bins"): "most bins per feature (missing bin excluded)",
    ("woe_binning", "n_prebins"): "equal-frequency pre-bins each owner cuts first",
    ("woe_binning", "min_bin_frac"): "least share of training rows in a bin",
    ("woe_binning", "key_bits"): "Paillier key size of the encrypted labels",
    ("woe_binning", "woe_to_owner"): "give each feature holder the WOE values of its own bins (trees, scorecards)",
    ("woe_binning", "label_proofs"): "prove each encrypted label is 0 or 1 (zero knowledge)",
    ("woe_binning", "monotonic"): "merge neighbouring bins until WOE is monotonic: auto, ascending, descending, none "
                                  "(or a mapping feature -> one of them)",
    ("woe_binning", "edges"): "manual interior edges per feature ({feature: [e1, e2, ...]}): final bins, never merged",
    ("woe_binning", "special_values"): "values in bins of their own per feature ({feature: [-999, ...]})",
    ("select_features", "iv_min"): "drop features with a lower IV",
    ("select_features", "include"): "features always kept",
    ("select_features", "exclude"): "features always dropped",
    ("select_features", "max_corr"): "drop the weaker of two features correlated beyond this (needs woe_to_owner)",
    ("select_features", "max_vif"): "drop features until every VIF is at most this (needs woe_to_owner)",
    ("select_features", "stepwise"): "forward: then add features one by one by the score test under MPC; backward: "
                                     "remove them one by one by the Wald test; forward_auc: add by validation AUC under MPC "
                                     "(none: off)",
    ("select_features", "p_remove"): "backward stepwise: a feature leaves when its Wald p-value is above this",
    ("select_features", "min_auc_gain"): "forward_auc stepwise: least validation-AUC gain for a feature to enter",
    ("select_features", "p_enter"): "stepwise: a feature enters when its score-test p-value is below this",
    ("select_features", "max_features"): "stepwise: most features selected (None: no limit)",
    ("select_features", "stepwise_epochs"): "stepwise: SS-LR epochs of each step's fit",
    ("train", "model"): "registered model (see Models)",
    ("train", "label"): "label column (default: the one named by an earlier step)",
    ("train", "pos_label"): "label value that marks a bad outcome",
    ("train", "features"): "woe: WOE features of woe_binning; raw: the numeric columns",
    ("predict", "to"): "party that receives the scores (default: the label holder)",
    ("predict", "score_stability"): "also score the training rows and report the PSI of the scores",
    ("evaluate", "metrics"): "metrics computed at the label holder",
    ("evaluate", "local_baseline"): "also fit a model on the label holder's own features (KS uplift)",
    ("scorecard", "pdo"): "points that double the odds",
    ("scorecard", "base_score"): "score at the base odds",
    ("scorecard", "base_odds"): "good:bad odds at the base score",
    ("scorecard", "reasons"): "adverse reason codes per scored row, at the label holder (0: none)",
    ("*", "epochs"): "passes over the training rows",
    ("*", "batch_size"): "rows per gradient step (None: all)",
    ("*", "learning_rate"): "step size (boosting: shrinkage)",
    ("*", "l2"): "L2 penalty", ("*", "l1"): "L1 penalty",
    ("*", "sigmoid"): "sigmoid approximation under MPC",
    ("*", "lr_schedule"): "learning-rate schedule", ("*", "lr_decay"): "decay of the schedule",
    ("*", "early_stopping"): "stop on the validation loss (label holder decides)",
    ("*", "class_weight"): "class weights (e.g. balanced)",
    ("*", "reveal"): "who learns the weights: owners (each its own), shared, or one party",
    ("*", "seed"): "seed of the batch order", ("*", "family"): "GLM family", ("*", "power"): "Tweedie power",
    ("*", "objective"): "binary or regression", ("*", "n_estimators"): "number of trees",
    ("*", "max_depth"): "depth of each tree", ("*", "min_child_weight"): "least hessian sum in a leaf",
    ("*", "reg_lambda"): "L2 penalty on leaf weights", ("*", "gamma"): "least gain to split",
    ("*", "subsample"): "share of rows per tree", ("*", "colsample_bytree"): "share of features per tree",
    ("*", "max_bin"): "histogram bins per feature", ("*", "key_bits"): "HE (Paillier or OU) key size",
    ("*", "he_scheme"): "SecureBoost HE scheme: ou (Okamoto-Uchiyama, default) or paillier",
    ("*", "label_dp"): "epsilon of label DP: the label holder trains on randomized-response labels (binary only)",
}


def param_help(component: str, param: str) -> str:
    """The meaning of a parameter, for the reference page ("" when none is written).

    >>> param_help("split", "test_fraction")
    'share of the aligned rows held out for testing'
    """
    return PARAM_HELP.get((component, param)) or (PARAM_HELP.get(("*", param), "") if component == "train" else "")


def param_rule(component: str, param: str) -> Rule | None:
    """The range rule of `param` in `component` (`train`'s model hyperparameters included).

    >>> param_rule("split", "test_fraction").hi, param_rule("train", "epochs").lo
    (1, 1)
    """
    rule = PARAM_RULES.get(component, {}).get(param)
    if rule is None and component == "train":
        rule = MODEL_RULES.get(param)
    return rule


def _conforms(v: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted) for the simple types a pipeline file can hold."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True, v
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, got = _conforms(v, arg)
            if ok:
                return True, got
        return False, v
    if origin is Literal:
        return v in typing.get_args(tp), v
    scalar = _conforms_scalar(v, tp)
    if scalar is not None:
        return scalar
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(v, (list, tuple)):
            return False, v
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        conv = [_conforms(x, args[0]) if args else (True, x) for x in v]
        return all(ok for ok, _ in conv), type(v)(x for _, x in conv)
    if origin is dict or tp is dict:
        return isinstance(v, dict), v
    return isinstance(v, tp) if isinstance(tp, type) else True, v


def _conforms_scalar(v: Any, tp: Any) -> tuple[bool, Any] | None:
    """`_conforms` for None, bool, int, float and str; None when `tp` is none of them."""
    if tp is type(None) or tp is None:
        return v is None, v
    if tp is bool:
        return isinstance(v, (bool, np.bool_)), bool(v) if isinstance(v, (bool, np.bool_)) else v
    if tp is int:
        if isinstance(v, bool):
            return False, v
        if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer()):
            return True, int(v)
        return False, v
    if tp is float:
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        return ok, float(v) if ok else v
    if tp is str:
        return isinstance(v, str), v
    return None


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "None"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def signature_params(fn: Callable, skip: int) -> tuple[list[tuple[str, Any, bool]], dict[str, Param], bool]:
    """Split `fn`'s signature after its first `skip` arguments into inputs (positional:
    name, type, optional) and parameters (keyword-only); the flag says it takes **kwargs."""
    sig = inspect.signature(fn)
    inputs, params, var_kw = [], {}, False
    for p in list(sig.parameters.values())[skip:]:
        tp = _resolve(fn, p.annotation)
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.KEYWORD_ONLY:
            params[p.name] = Param(p.name, tp, p.default)
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY):
            inputs.append((p.name, _without_none(tp), p.default is None))
    return inputs, params, var_kw


def _without_none(tp: Any) -> Any:
    """`X` for an optional input annotated `X | None` (whether it may be absent is its default)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _resolve(fn: Callable, ann: Any) -> Any:
    if isinstance(ann, str):  # `from __future__ import annotations`
        try:
            return eval(ann, dict(vars(typing)), dict(getattr(fn, "__globals__", {})))  # our own source's annotations
        except NameError:
            return Any
    return ann


# -- components ------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """A component input: the argument name, its artifact type, whether it may be absent."""

    name: str
    type: type[Artifact]
    optional: bool = False


@dataclass(frozen=True)
class Component:
    """A registered pipeline step (see the module docstring).

    `fn(ctx, state, **params)` runs it at this party against a run's state (inputs taken
    from `state.store`, outputs put there); the runner calls it for every step.
    """

    name: str
    version: str
    impl: Callable
    doc: str
    inputs: tuple[Input, ...]
    outputs: tuple[type, ...]
    own_params: dict[str, Param]
    produces_fn: Callable[[dict], set] | None = None
    wiring_fn: Callable[[str, dict, set], str | None] | None = None
    extra_params: Callable[[dict], dict[str, Param]] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    alias_of: str | None = None

    def params(self, given: dict | None = None) -> list[str]:
        """The parameter names a step may set (fixed parameters of an alias excluded)."""
        return [n for n in self.param_specs(given or {}) if n not in self.fixed]

    def param_specs(self, given: dict) -> dict[str, Param]:
        specs = dict(self.own_params)
        if self.extra_params is not None:
            specs.update(self.extra_params({**given, **self.fixed}))
        return specs

    def validate(self, given: dict, where: str) -> dict[str, Any]:
        """Check a step's parameters; returns them converted, with an alias's fixed ones."""
        given = dict(given or {})
        fixed_set = sorted(set(given) & set(self.fixed))
        if fixed_set:
            raise ConfigError(f"{where}: {fixed_set} is fixed by '{self.name}' (= {self.alias_of} with {self.fixed})")
        specs = self.param_specs(given)
        missing = [n for n, s in specs.items() if s.required and n not in given and n not in self.fixed]
        if missing:
            raise ConfigError(f"{where}: missing parameters {missing}", public=True)
        unknown = set(given) - set(specs)
        if unknown:
            raise ConfigError(f"{where}: unknown parameters {sorted(unknown)}; allowed: {self.params(given)}", public=True)
        base = self.alias_of or self.name
        out = {k: specs[k].check(v, where, param_rule(base, k)) for k, v in given.items()}
        return {**out, **self.fixed}

    def produces(self, params: dict) -> set:
        """The artifact types a step with these parameters outputs."""
        return set(self.produces_fn(params)) if self.produces_fn else set(self.outputs)

    def check_wiring(self, step: str, params: dict, have: set) -> None:
        """Raise `ConfigError` when a required input has no producer before this step."""
        for inp in self.inputs:
            if not inp.optional and not any(issubclass(h, inp.type) for h in have):
                raise ConfigError(f"step '{step}' needs {inp.type.produced_by} before it")
        if self.wiring_fn is not None:
            problem = self.wiring_fn(step, params, have)
            if problem:
                raise ConfigError(problem)

    def fn(self, ctx: Any, state: Any, **params: Any) -> Any:
        """Run the step at this party: wire inputs from `state.store`, store its outputs."""
        params = self.validate(params, self.name)
        self.check_wiring(self.name, params, {type(a) for a in _available(state)})
        args = [state.store.latest(inp.type) for inp in self.inputs]
        out = self.impl(ctx, state, *args, **params)
        for art in (out if isinstance(out, tuple) else (out,)):
            if art is not None:
                state.store.put(self.name, art)
        return out


def _available(state: Any) -> list:
    return [a for a in (state.store.latest(t) for t in _ARTIFACT_TYPES()) if a is not None]


def _ARTIFACT_TYPES() -> list[type]:
    from . import artifacts as A

    return [A.Inputs, A.AlignedFrame, A.Encoding, A.Split, A.Label, A.WoeModel, A.ModelParts, A.Scores]


COMPONENTS: dict[str, Component] = {}


def component(name: str, version: str = "1", *, outputs: tuple[type, ...] = (), produces: Callable | None = None,
              wiring: Callable | None = None, extra_params: Callable | None = None) -> Callable:
    """Register `fn` as the component `name` (see the module docstring for the contract)."""

    def deco(fn: Callable) -> Callable:
        inputs, params, var_kw = signature_params(fn, skip=2)
        if var_kw and extra_params is None:
            raise ParameterTypeError(f"component {name}: **kwargs needs extra_params (the parameters it accepts)",
                                     field="extra_params")
        doc = inspect.cleandoc(fn.__doc__ or "").split("\n\n>>>")[0].split("\n>>>")[0].strip()
        COMPONENTS[name] = Component(name, version, fn, doc, tuple(Input(n, t, o) for n, t, o in inputs), tuple(outputs),
                                     params, produces, wiring, extra_params)
        return fn

    return deco


def alias(name: str, target: str, doc: str = "", **fixed: Any) -> Component:
    """Register `name` as `target` with `fixed` parameters (kept for existing pipeline files)."""
    base = COMPONENTS[target]
    c = replace(base, name=name, fixed=dict(fixed), alias_of=target, doc=doc or f"Alias of `{target}` with {fixed}.")
    COMPONENTS[name] = c
    return c


# -- models ----------------------------------------------------------------------------
class ModelEntry:
    """How a model is trained, saved, loaded and scored in a pipeline.

    `device`: "mpc" (an `MpcDevice` from the pipeline's `mpc:` section) or "he" (the
    party context: the label holder makes a Paillier key pair). `features`: the default
    feature view, "woe" (the WOE features of a preceding `woe_binning`, raw columns when
    there is none) or "raw". `woe_at_owner`: WOE features must be plaintext at their owners
    (trees split them locally: needs `woe_binning(woe_to_owner=True)`); otherwise they may
    stay secret-shared. `raw_frames`: raw features as DataFrames (column names kept) rather
    than float matrices.
    """

    name: str = ""
    device: str = "mpc"
    features: str = "woe"
    woe_at_owner: bool = False
    raw_frames: bool = False

    def build(self, device: Any) -> Any:
        """A new unfitted estimator; its keyword arguments are the pipeline's hyperparameters."""
        raise NotImplementedError

    def classes(self) -> dict[str, type[SecureEstimator]]:
        """Estimator classes by saved kind (class name)."""
        raise NotImplementedError

    def params(self) -> dict[str, Param]:
        return signature_params(type(self).build, skip=2)[1]

    def binary(self, params: dict) -> bool:
        """True when the model trains on 0/1 labels (`label == pos_label`), else numeric labels."""
        return True

    def model_parties(self, ctx: Any, frame: Any) -> list[str] | None:
        """The parties that hold a part of the model (None: every party of the job)."""
        return None

    def load(self, device: Any, kind: str, directory: str, parties: list[str] | None) -> Any:
        """Load the saved parts (a collective of the model's parties)."""
        return self.classes()[kind].load(device, directory)

    def scores(self, ctx: Any, model: Any, X: dict, to: str, label_party: str | None) -> Any:
        """Joint scores of `X` (probability of the positive class, or the prediction), at `to`."""
        return model.predict(X, to=to)

    def summary(self, ctx: Any, model: Any, frame: Any, label: str) -> dict[str, Any]:
        """What this party reports about the trained model (only what it may know)."""
        return {}


MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    MODELS[entry.name] = entry
    return entry


def model_for_kind(kind: str) -> ModelEntry:
    """The registry entry whose estimator class is named `kind` (a saved part's kind).

    >>> model_for_kind("SecureBoostClassifier").name
    'secureboost'
    """
    for e in MODELS.values():
        if kind in e.classes():
            return e
    raise ConfigError(f"no registered model saves parts of kind '{kind}' (models: {sorted(MODELS)})")


def live_progress(device: Any) -> bool:
    """A live progress bar for training: the run asked for progress (`run_pipeline(verbose=True)`
    sets the context option `jobs.progress`) and stderr is a terminal (no bars in log files).

    >>> live_progress(None)
    False
    """
    import sys

    ctx = getattr(device, "ctx", device)
    return bool(getattr(ctx, "options", {}).get("jobs.progress")) and sys.stderr.isatty()


def _feature_names(frame: Any, label: str) -> dict[str, list[str]]:
    return {p: [c for c in cols if c != label] for p, cols in frame.columns.items()}


class _LinearEntry(ModelEntry):
    def summary(self, ctx: Any, model: Any, frame: Any, label: str) -> dict[str, Any]:
        return {"weights": {p: np.asarray(v).tolist() for p, v in model.coef_by_party_.items()},
                "feature_names": _feature_names(frame, label)}


class SSLREntry(_LinearEntry):
    """`ss_lr`: logistic regression under MPC (`jointml.ml.linear.SSLogisticRegression`)."""

    name = "ss_lr"

    def build(self, device: Any, *, epochs: int = 30, batch_size: int | None = 64, learning_rate: float = 0.5,
              l2: float = 0.0, l1: float = 0.0, sigmoid: str = "accurate", lr_schedule: str = "constant",
              lr_decay: float = 0.0, early_stopping: bool = False, class_weight: Any = None, reveal: str = "owners",
              seed: int = 0) -> Any:
        from ..ml.linear import SSLogisticRegression

        return SSLogisticRegression(device, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, l2=l2, l1=l1,
                                    sigmoid=sigmoid, lr_schedule=lr_schedule, lr_decay=lr_decay, early_stopping=early_stopping,
                                    class_weight=class_weight, reveal=reveal, random_state=seed, verbose=live_progress(device))

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ..ml.linear import SSLogisticRegression

        return {"SSLogisticRegression": SSLogisticRegression}


class SSGLMEntry(_LinearEntry):
    """`ss_glm`: generalised linear model under MPC (`jointml.ml.linear.SSGLM`), numeric labels."""

    name = "ss_glm"

    def build(self, device: Any, *, family: Literal["gaussian", "poisson", "gamma", "tweedie"] = "gaussian",
              power: float = 1.5, epochs: int = 30, batch_size: int | None = 64, learning_rate: float = 0.1,
              l2: float = 0.0, l1: float = 0.0, lr_schedule: str = "constant", lr_decay: float = 0.0,
              reveal: str = "owners", seed: int = 0) -> Any:
        from ..ml.linear import SSGLM

        return SSGLM(device, family=family, power=power, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                     l2=l2, l1=l1, lr_schedule=lr_schedule, lr_decay=lr_decay, reveal=reveal, random_state=seed,
                     verbose=live_progress(device))

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ..ml.linear import SSGLM

        return {"SSGLM": SSGLM}

    def binary(self, params: dict) -> bool:
        return False


class SecureBoostEntry(ModelEntry):
    """`secureboost`: gradient-boosted trees with HE (`he_scheme`: Okamoto-Uchiyama by default, or
    Paillier; `jointml.ml.tree.SecureBoost*`);
    thresholds stay with their owners; scores go to the label holder only. `protection: mpc` (with
    `dealer:`, a party holding no data) finds splits under MPC instead of decrypting bin sums at the
    label holder, so that a label holder sending crafted gradients cannot read the partners' bins
    (see docs/security.md); default `none`: faster, assumes a semi-honest label holder."""

    name = "secureboost"
    device = "he"
    features = "woe"
    woe_at_owner = True
    raw_frames = True

    def build(self, device: Any, *, objective: Literal["binary", "regression"] = "binary", n_estimators: int = 10,
              learning_rate: float = 0.3, max_depth: int = 5, min_child_weight: float = 1.0, reg_lambda: float = 1.0,
              gamma: float = 0.0, subsample: float = 1.0, colsample_bytree: float = 1.0, max_bin: int = 32,
              key_bits: int = 2048, protection: Literal["none", "mpc"] = "none", dealer: str | None = None,
              he_scheme: Literal["ou", "paillier"] = "ou", label_dp: float | None = None) -> Any:
        # The one place a SecureBoost estimator is constructed: its first argument is the context (the HE
        # key is made at fit, at the label holder) or an HeDevice held by the label holder.
        from ..ml.tree import SecureBoostClassifier, SecureBoostRegressor

        cls = SecureBoostClassifier if objective == "binary" else SecureBoostRegressor
        return cls(device, n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                   min_child_weight=min_child_weight, reg_lambda=reg_lambda, gamma=gamma, subsample=subsample,
                   colsample_bytree=colsample_bytree, max_bin=max_bin, key_bits=key_bits, protection=protection,
                   dealer=dealer, he_scheme=he_scheme, label_dp=label_dp)

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ..ml.tree import SecureBoostClassifier, SecureBoostRegressor

        return {"SecureBoostClassifier": SecureBoostClassifier, "SecureBoostRegressor": SecureBoostRegressor}

    def binary(self, params: dict) -> bool:
        return params.get("objective", "binary") == "binary"

    def model_parties(self, ctx: Any, frame: Any) -> list[str] | None:
        return [p for p in ctx.parties if p in frame.parts]

    def load(self, device: Any, kind: str, directory: str, parties: list[str] | None) -> Any:
        # only the parties of the model load a part; the others (a dealer) take part in the check
        return self.classes()[kind].load(device, directory, parties=parties)

    def scores(self, ctx: Any, model: Any, X: dict, to: str, label_party: str | None) -> Any:
        if to != label_party:
            raise ConfigError(f"predict: secureboost scores go to the label holder '{label_party}' only, not '{to}'")
        if ctx.me not in X and ctx.me != label_party:  # no data, no part in the trees: a handle to the scores
            return ctx.party(label_party).put(None)
        if kind_of(model) == "SecureBoostClassifier":
            proba = model.predict_proba(X)
            return proba.device.run(lambda p: p[:, 1], proba)
        return model.predict(X)

    def summary(self, ctx: Any, model: Any, frame: Any, label: str) -> dict[str, Any]:
        out: dict[str, Any] = {"features": {p: len(c) for p, c in _feature_names(frame, label).items()}}
        if ctx.me not in frame.parts:
            return out
        out["trees"] = len(model.trees_)
        if ctx.me == model.label_owner_:
            out["importance_gain"] = model.get_importance("total_gain")
            out["importance_splits"] = model.get_importance("weight")
        return out


class SSXGBEntry(ModelEntry):
    """`ss_xgb`: XGBoost-style trees trained fully under MPC (`jointml.ml.tree.SSXGBClassifier`)."""

    name = "ss_xgb"
    features = "raw"
    woe_at_owner = True

    def build(self, device: Any, *, n_estimators: int = 3, max_depth: int = 3, learning_rate: float = 0.3,
              reg_lambda: float = 1.0, min_child_weight: float = 0.0, max_bin: int = 16, sigmoid: str = "accurate") -> Any:
        from ..ml.tree import SSXGBClassifier

        return SSXGBClassifier(device, n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                               reg_lambda=reg_lambda, min_child_weight=min_child_weight, max_bin=max_bin, sigmoid=sigmoid)

    def classes(self) -> dict[str, type[SecureEstimator]]:
        from ..ml.tree import SSXGBClassifier

        return {"SSXGBClassifier": SSXGBClassifier}

    def scores(self, ctx: Any, model: Any, X: dict, to: str, label_party: str | None) -> Any:
        proba = model.predict_proba(X, to=to)
        return ctx.party(to).run(lambda p: np.asarray(p)[:, 1], proba)

    def summary(self, ctx: Any, model: Any, frame: Any, label: str) -> dict[str, Any]:
        return {"trees": int(model.n_estimators)}


def kind_of(model: Any) -> str:
    """The saved kind of an estimator (its class name)."""
    return type(model).__name__


for _entry in (SSLREntry(), SSGLMEntry(), SecureBoostEntry(), SSXGBEntry()):
    register_model(_entry)


# -- documentation -----------------------------------------------------------------------
def _param_rows(params: dict[str, Param], component: str) -> list[str]:
    rows = ["| parameter | meaning | type | default | allowed |", "| --- | --- | --- | --- | --- |"]
    for p in params.values():
        rule = param_rule(component, p.name)
        allowed = rule.describe() if rule is not None else ""
        rows.append(f"| `{p.name}` | {param_help(component, p.name)} | {_type_name(p.type)} | `{p.describe_default()}` | "
                    f"{allowed} |")
    return rows


def reference_markdown() -> str:
    """The components, aliases and models as Markdown (docs/pipelines.md is this text).

    >>> import jointml.jobs
    >>> "## `train` (v1)" in reference_markdown()
    True
    """
    out = [_DOC_HEAD]
    order = ["psi", "encode", "split", "scale", "woe_binning", "select_features", "train", "predict", "evaluate",
             "scorecard"]
    for c in sorted(COMPONENTS.values(), key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name)):
        if c.alias_of:
            continue
        out += [f"## `{c.name}` (v{c.version})", "", c.doc, ""]
        ins = ", ".join(f"{i.type.__name__}{' (optional)' if i.optional else ''}" for i in c.inputs) or "-"
        outs = ", ".join(t.__name__ for t in c.outputs) or "- (metrics in the summary)"
        out += [f"Inputs: {ins}. Outputs: {outs}.", ""]
        own = {k: v for k, v in c.own_params.items()}
        if own:
            out += _param_rows(own, c.name) + [""]
        if c.extra_params is not None:
            out += ["Plus the hyperparameters of the chosen model (see *Models* below).", ""]
    out += ["## Aliases", "", "Step names of earlier pipeline files; each is a component with fixed parameters.", "",
            "| step name | runs |", "| --- | --- |"]
    out += [f"| `{c.name}` | `{c.alias_of}`" + (f" with `{c.fixed}`" if c.fixed else "") + " |"
            for c in COMPONENTS.values() if c.alias_of]
    out += ["", "## Models", "", "The `model` of `train` (and of the `<model>.train` aliases), with its hyperparameters.", ""]
    for e in MODELS.values():
        doc = inspect.cleandoc(type(e).__doc__ or "")
        out += [
            f"### `{e.name}`",
            "",
            doc,
            "",
            f"Device: {'MPC (the `mpc:` section)' if e.device == 'mpc' else 'HE (Paillier keys at the label holder)'}; "
            f"default features: {e.features}"
            + (" (plaintext at their owners)" if e.woe_at_owner and e.features == "woe" else "")
            + ".",
            "",
        ]
        out += _param_rows(e.params(), "train") + [""]
    return "\n".join(out).rstrip() + "\n"


_DOC_HEAD = """# Pipeline components

A pipeline file lists `steps`, each `- component: {params}`; every party runs the same steps on its own data
(see the module docstring of `jointml.jobs.spec` for the file format, and `jointml-demo-out/pipeline.yaml`
written by `jointml demo` for a complete example). Unknown components or parameters, and parameters of the
wrong type, are rejected when the file is read; a step whose inputs no earlier step makes (for example
`train` before `split`) is rejected before anything runs.

Components pass typed artifacts (`jointml.jobs.artifacts`): each takes the latest artifact of each input
type and adds its outputs. Training and prediction are one `train` and one `predict` component over the
model registry (`model: ss_lr | ss_glm | secureboost | ss_xgb`); the step names of earlier files
(`ss_lr.train`, `secureboost.train`, `ss_xgb.train`, `secureboost.predict`, `ss_xgb.predict`) are
aliases of them and keep working. With an `output`, each party saves its part of the model in
`<output>/model/` and `jointml predict --model <output>/model` scores new rows with it, whatever the model.

`train`'s `features`: "woe" trains on the WOE features of a preceding `woe_binning` step (the raw numeric
columns when there is none; tree models need `woe_binning(woe_to_owner: true)`), "raw" on the numeric
columns as they are (after `encode` for text columns); default: the model's own (below).

**Checks before any cryptography runs.** Reading the file checks every parameter's type and range (the
*allowed* column below; `test_fraction: 1.5` or `epochs: 0` stop here). Then each party reads its own input and
checks it for the job (`jointml.jobs.check`): the file has rows and the PSI key column, ids are present and
unique, the label column has no missing values and exactly two classes, one of them `pos_label` (a third value
is refused, not counted as good), and raw features of a linear model are numeric, complete and on a unit
scale (|x| <= 10: standardise them or add `woe_binning`). The parties exchange the verdicts with the job
agreement, one message, so every party stops with the same paragraph naming the party and the column; the
party that found the problem also sees its details (e.g. the label values), the others never do. After PSI the
number of matched rows is printed and fewer than the pipeline's `min_rows` (default 1) stop the job.
`jointml run` prints one paragraph per error and exits with status 1; `jointml --debug run ...` shows the
traceback.

**Outputs.** With an `output`, each party writes `report.<party>.html` (only what that party may see: at the
label holder ROC, KS, score distribution, gains by decile, IVs, its weights and the model on its own features
beside the joint one; see `jointml.jobs.components.report`), `summary.<party>.json` and its model part in
`model/`; a new run moves this party's earlier model parts to `model.previous/`. A walk-through from two CSV
files: [tutorial.md](tutorial.md); every error message with its cause: [troubleshooting.md](troubleshooting.md).
`jointml components` prints this reference in short.

This page is generated from the registry (`jointml.jobs.registry.reference_markdown()`).
"""
