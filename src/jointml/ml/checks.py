"""Input checks shared by the models of `ml/`: check a party's array at its owner, announce the verdict.

Models under MPC take plaintext inputs as `PartyObject`s: only the owner can look at the
values, yet every party must know the (public) shape and must fail alike when the input
is unusable (DESIGN rule 6). `announced_shape` does both in one message: the owner checks
its array (numeric dtype, no NaN/inf, number of dimensions, a model-specific check) and
announces `{"problem", "shape"}` to every party (`collectives.agree`); every party returns
the same shape or raises the same error naming the owner.

What the other parties learn: the array's shape and, when it is unusable, the owner's
message (e.g. the number of NaN values and the row of the first one). Nothing else.

| call | messages | rounds |
| --- | --- | --- |
| `announced_shape` | one meta message from the owner to each other party | 1 |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import JointMLError, ModelError
from ..runtime.collectives import agree

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.context import PartyContext
    from ..runtime.device import PartyObject

__all__ = ["announced_shape", "array_problem"]


def array_problem(
    value: object,
    what: str,
    ndim: tuple[int, ...] | None = None,
    check: Callable[[np.ndarray], str | None] | None = None,
) -> tuple[tuple[int, ...], str | None]:
    """At the owner: `(shape, problem)` of an input array (`problem` None when usable).

    The array must be numeric, finite, have one of the allowed numbers of dimensions
    (`ndim`) and pass `check(array) -> problem | None`.

    >>> array_problem(np.array([[1.0, np.nan]]), "feature matrix", ndim=(2,))
    ((1, 2), 'feature matrix has 1 NaN/inf values (first at row 0)')
    >>> array_problem(np.zeros(3), "label vector", ndim=(2,))
    ((3,), 'label vector must be 2-D, got shape (3,)')
    """
    try:
        v = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - reported to every party by the caller
        return (), f"{what} cannot be read as an array ({type(e).__name__})"  # no text: it may quote a cell
    shape = tuple(int(k) for k in v.shape)
    if v.dtype.kind not in "fiub":
        return shape, f"{what} is not numeric (dtype {v.dtype})"
    if ndim is not None and v.ndim not in ndim:
        want = " or ".join(f"{k}-D" for k in ndim)
        return shape, f"{what} must be {want}, got shape {v.shape}"
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        bad = np.argwhere(~np.isfinite(v))
        return shape, f"{what} has {len(bad)} NaN/inf values (first at row {bad[0][0]})"
    if check is not None:
        msg = check(v)
        if msg:
            return shape, f"{what} {msg}"
    return shape, None


def announced_shape(
    ctx: PartyContext,
    obj: PartyObject,
    what: str,
    *,
    ndim: tuple[int, ...] | None = None,
    check: Callable[[np.ndarray], str | None] | None = None,
    error: type[JointMLError] = ModelError,
) -> tuple[int, ...]:
    """The public shape of a party's array, checked at its owner (every party calls it: SPMD).

    The owner runs `array_problem` and announces its verdict with the shape; every party
    returns the shape, or raises `error` naming the owner when the array is unusable.

    >>> def prog(ctx):
    ...     x = ctx.party("bank").run(lambda: np.ones((4, 2)))
    ...     return announced_shape(ctx, x, "feature matrix", ndim=(2,))
    >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    (4, 2)
    >>> def bad(ctx):
    ...     x = ctx.party("bank").run(lambda: np.array([[np.inf]]))
    ...     try:
    ...         announced_shape(ctx, x, "feature matrix")
    ...     except ModelError as e:
    ...         return str(e)
    >>> simulate(bad, ["bank", "partner"], mode="thread")["partner"]
    "party 'bank': feature matrix has 1 NaN/inf values (first at row 0)"
    """
    shape: tuple[int, ...] = ()
    problem = None
    if ctx.me == obj.owner:
        shape, problem = array_problem(obj.value, what, ndim, check)
        if problem:
            problem = f"party '{obj.owner}': {problem}"
    # one message (the verdict and the shape): the tag "shape:<what>:<owner>:<uid>" is the
    # one this check always used, so the traffic of a fit is unchanged
    got = agree(ctx, obj.owner, problem, details={"shape": list(shape)}, error=error, name=f"shape:{what}")
    return tuple(int(k) for k in got[obj.owner]["shape"])
