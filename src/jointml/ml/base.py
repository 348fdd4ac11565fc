"""`SecureEstimator`: the base of every jointml model, following scikit-learn's contract.

- The first positional argument is the *device* the model computes on (an `MpcDevice`
  for models under MPC, an HE device for HE models, a TEE device for enclave models);
  `self.ctx` is its party context. Every other hyperparameter is keyword-only, stored
  unchanged in `__init__` (no validation, no coercion there) and validated in `fit`
  by `_validate_params()`; no `**kwargs`.
- `get_params()` / `set_params()` / `clone()` read the hyperparameters from the
  `__init__` signature, so a saved model keeps all of them (nothing hand-listed).
- Learned state lives in attributes ending in `_`; `check_is_fitted` looks for them.
- `save(directory)` / `load(device, directory)` write and read one `ModelPart` per
  party through `runtime.persist`: subclasses provide `_part_public()` (what every party
  agrees on), `_part_state()` (this party's own content) and `_restore(part)`.

>>> class Mean(SecureEstimator):
...     def __init__(self, device, *, shift: float = 0.0):
...         self.device = device
...         self.shift = shift
>>> m = Mean(None, shift=1.5)
>>> m.get_params()
{'shift': 1.5}
>>> clone(m.set_params(shift=2.0)).shift
2.0
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from ..core.errors import JointMLError, ModelError, ParameterError, ParameterTypeError
from ..runtime.collectives import broadcast
from ..runtime.persist import ModelPart, load_part, new_model_id, save_part

__all__ = ["SecureEstimator", "clone", "check_is_fitted", "check_param", "mpc_part_public", "mpc_part_problem",
           "params_to_json", "params_from_json"]

E = TypeVar("E", bound="SecureEstimator")


class SecureEstimator:
    """Base class of jointml's estimators (see the module docstring for the contract)."""

    #: error class raised for this model's input and state problems
    error: type[ModelError] = ModelError
    #: attribute whose presence means "fitted"
    _fitted_attr: str = "model_id_"

    device: Any

    def __init__(self, device: Any) -> None:
        # Subclasses take the device first, then their hyperparameters (with defaults),
        # and store them unchanged; `load` and `clone` construct them that way.
        self.device = device

    # -- parameters ------------------------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for name, p in list(sig.parameters.items())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ParameterTypeError(
                    f"{cls.__name__}.__init__ must not take *args/**kwargs (scikit-learn contract)", field=name
                )
            names.append(name)
        return names[1:]  # the first one is the device

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The hyperparameters, as passed to `__init__` (the device excluded)."""
        return {k: getattr(self, k) for k in self._get_param_names()}

    def set_params(self: E, **params: Any) -> E:
        """Set hyperparameters by name; unknown names raise `ParameterError`."""
        valid = set(self._get_param_names())
        for k, v in params.items():
            if k not in valid:
                raise ParameterError(f"{type(self).__name__} has no parameter '{k}' (valid: {sorted(valid)})", field=k)
            setattr(self, k, v)
        return self

    def _validate_params(self) -> None:
        """Check hyperparameters; called at the start of `fit`. Subclasses extend it."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- context ---------------------------------------------------------------------
    @property
    def ctx(self) -> Any:
        """The party context of the model's device."""
        dev = self.device
        return dev if not hasattr(dev, "ctx") else dev.ctx

    # -- persistence -----------------------------------------------------------------
    def _part_public(self) -> dict[str, Any]:
        """What every party holds alike and checks at load (layout, parties...)."""
        raise NotImplementedError

    def _part_state(self) -> dict[str, Any]:
        """This party's own content of the model (its shares, its tables)."""
        raise NotImplementedError

    def _restore(self, part: ModelPart) -> None:
        """Set the fitted attributes from a loaded part."""
        raise NotImplementedError

    def _check_part(self, part: ModelPart) -> str | None:
        """A problem with a loaded part for this device (None: fine)."""
        return None

    def save(self, directory: str | Path) -> Path:
        """Each party writes its own part (every party of the job calls it: SPMD).

        A model without an id yet gets one here, drawn by the job's first party and
        announced to all (one message), so that the parts carry the same id."""
        check_is_fitted(self, "save")
        if getattr(self, "model_id_", None) is None:
            ctx = self.ctx
            first = ctx.parties[0]
            got = broadcast(ctx, first, meta={"id": new_model_id()} if ctx.me == first else None, name="model-id")
            self.model_id_ = str(got.meta["id"])
        part = ModelPart(kind=type(self).__name__, party=self.ctx.me, model_id=str(self.model_id_),
                         params=params_to_json(self.get_params()), public=self._part_public(), state=self._part_state())
        return save_part(directory, part)

    @classmethod
    def load(cls: type[E], device: Any, directory: str | Path, parties: list[str] | None = None) -> E:
        """Load this party's part written by `save` (every party of the job calls it).

        Parts are checked at every party; a missing or mismatched part anywhere raises the
        same error, naming that party, at all of them."""
        self = cls(device, **{})  # defaults; the saved params are set below
        part = load_part(self.ctx, directory, cls.__name__, check=self._check_part, parties=parties, error=cls.error)
        if part is not None:
            self.set_params(**params_from_json(part.params))
            self.model_id_ = part.model_id
            self._restore(part)
        return self


def clone(estimator: E, **overrides: Any) -> E:
    """A new unfitted estimator with the same device and hyperparameters."""
    params = {**estimator.get_params(), **overrides}
    return type(estimator)(estimator.device, **params)


def check_is_fitted(estimator: SecureEstimator, what: str = "use") -> None:
    """Raise the estimator's error when it has not been fitted."""
    if not hasattr(estimator, estimator._fitted_attr):
        raise estimator.error(f"the model is not fitted: call fit() before {what}()")


def check_param(
    name: str,
    value: Any,
    ok: Callable[[Any], bool],
    expect: str,
    *,
    error: type[JointMLError] = ParameterError,
    message: str | None = None,
) -> None:
    """Raise `error` (default `ParameterError`) naming the field unless `ok(value)`.

    `ok` raising TypeError/ValueError counts as "not ok" (a string where a number is
    expected). `message` replaces the default "must be <expect>, got <value>".

    >>> check_param("epochs", 0, lambda v: v >= 1, "an integer >= 1")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ParameterError: field 'epochs': must be an integer >= 1, got 0
    >>> check_param("tol", "x", lambda v: v > 0, "> 0", error=ModelError, message="tol must be > 0")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ModelError: field 'tol': tol must be > 0
    """
    try:
        good = bool(ok(value))
    except (TypeError, ValueError):
        good = False
    if not good:
        raise error(message or f"must be {expect}, got {value!r}", field=name)


# -- hyperparameters in JSON ---------------------------------------------------------
# Saved parts are JSON: a dict with non-string keys (class_weight={0: 1.0, 1: 3.0}) or a
# tuple would come back as a dict of strings or a list. These two functions keep them.
def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON values that `params_from_json` turns back into the same values.

    >>> params_to_json({"class_weight": {0: 1.0, 1: 2.5}, "hidden": (8, 4)})
    {'class_weight': {'__items__': [[0, 1.0], [1, 2.5]]}, 'hidden': {'__tuple__': [8, 4]}}
    >>> params_from_json(params_to_json({"class_weight": {0: 1.0}, "hidden": (8, 4), "lr": np.float64(0.5)}))
    {'class_weight': {0: 1.0}, 'hidden': (8, 4), 'lr': 0.5}
    """
    return {k: _to_json(v) for k, v in params.items()}


def params_from_json(doc: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `params_to_json` (see there)."""
    return {k: _from_json(v) for k, v in doc.items()}


def _to_json(v: Any) -> Any:
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: _to_json(x) for k, x in v.items()}
        return {"__items__": [[_to_json(k), _to_json(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"__tuple__": [_to_json(x) for x in v]}
    if isinstance(v, list):
        return [_to_json(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _from_json(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__items__"}:
            return {_from_json(k): _from_json(x) for k, x in v["__items__"]}
        if set(v) == {"__tuple__"}:
            return tuple(_from_json(x) for x in v["__tuple__"])
        return {k: _from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    return v


def mpc_part_public(mpc: Any) -> dict[str, Any]:
    """What a model part trained on an MPC device records of it (checked at load)."""
    return {"protocol": mpc.protocol_name, "frac_bits": mpc.frac_bits, "mpc_parties": list(mpc.parties)}


def mpc_part_problem(public: dict[str, Any], mpc: Any) -> str | None:
    """Why a part recorded by `mpc_part_public` cannot be loaded on `mpc` (None: it can).

    Additive (semi2k) shares do not depend on the order of the MPC parties; replicated
    (aby3) ones do (`Protocol.share_order_matters`).
    """
    me = mpc.ctx.me
    if public["protocol"] != mpc.protocol_name or public["frac_bits"] != mpc.frac_bits:
        return (f"party '{me}': the model part was trained with protocol {public['protocol']} ({public['frac_bits']} "
                f"fractional bits); the device runs {mpc.protocol_name} ({mpc.frac_bits} bits)")
    saved = list(public["mpc_parties"])
    same = saved == list(mpc.parties) if mpc.proto.share_order_matters else sorted(saved) == sorted(mpc.parties)
    if not same:
        return f"party '{me}': the model part was trained by the MPC parties {saved}; the device has {list(mpc.parties)}"
    return None
