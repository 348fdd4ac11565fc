"""psi: private set intersection to align the rows of partitioned data.

ECDH-PSI on Curve25519 (X25519), two or more parties, streamed in batches, with the
curve work spread over the party's cores. See `jointml.psi.ecdh` for the protocol,
the security argument and exactly what each party learns. ``protocol="kkrt"`` picks the
OT-based PSI of `jointml.psi.kkrt` (two parties, same result, much less computation).
`jointml.psi.label_only`: only the label holder learns the intersection; the partner's
rows are aligned under secret sharing (the credit job's default).

>>> from jointml.psi import psi_align, psi_frame, PsiResult
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names __getattr__ serves, for ruff and mypy; imported lazily at run time
    from .ecdh import DuplicateKeyError, KeyDataError, PsiError, PsiResult

__all__ = ["psi_align", "psi_frame", "PsiResult", "PsiError", "DuplicateKeyError", "KeyDataError"]


_PROTOCOLS = {"ecdh": ("ecdh", "psi_align", "psi_frame"), "kkrt": ("kkrt", "psi_align_kkrt", "psi_frame_kkrt")}


def _impl(protocol: str, which: int) -> Any:
    """The implementation of `protocol` (imported lazily, like everything here)."""
    import importlib

    if protocol not in _PROTOCOLS:
        from ..core.errors import ConfigError

        raise ConfigError(f"unknown PSI protocol {protocol!r} (choose one of {sorted(_PROTOCOLS)})", field="protocol")
    mod, *names = _PROTOCOLS[protocol]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), names[which])


def psi_align(ctx: Any, keys: Any, key_columns: Any = None, *, protocol: str = "ecdh", **kwargs: Any) -> Any:
    """`jointml.psi.ecdh.psi_align` (``protocol="ecdh"``, the default) or
    `jointml.psi.kkrt.psi_align_kkrt` (``protocol="kkrt"``): same arguments, same result.

    >>> keys = {"bank": [1, 2, 3], "partner": [3, 1, 7]}
    >>> def prog(ctx):
    ...     return [psi_align(ctx, keys, protocol=p, sort_by="bank").positions.tolist() for p in ("ecdh", "kkrt")]
    >>> simulate(prog, ["bank", "partner"], mode="thread")["partner"]
    [[1, 0], [1, 0]]
    """
    return _impl(protocol, 0)(ctx, keys, key_columns, **kwargs)


def psi_frame(ctx: Any, frames: Any, key_columns: Any = None, *, protocol: str = "ecdh", **kwargs: Any) -> Any:
    """`psi_align`, then the aligned rows (see `jointml.psi.ecdh.psi_frame`); `protocol` as for `psi_align`."""
    return _impl(protocol, 1)(ctx, frames, key_columns, **kwargs)


def __getattr__(name: str) -> Any:
    # Lazy: the pool's worker processes import jointml.psi._curve, and should not pay
    # for pandas and the runtime when they start.
    if name in __all__ and name not in ("psi_align", "psi_frame"):
        from . import ecdh

        return getattr(ecdh, name)
    raise AttributeError(f"module 'jointml.psi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
