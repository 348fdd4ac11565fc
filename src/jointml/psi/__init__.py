"""psi: private set intersection to align the rows of partitioned data.

ECDH-PSI on Curve25519 (X25519), two or more parties, streamed in batches, with the
curve work spread over the party's cores. See `jointml.psi.ecdh` for the protocol,
the security argument and exactly what each party learns. `jointml.psi.label_only`:
only the label holder learns the intersection; the partner's rows are aligned under
secret sharing (the credit job's default).

>>> from jointml.psi import psi_align, psi_frame, PsiResult
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names __getattr__ serves, for ruff and mypy; imported lazily at run time
    from .ecdh import DuplicateKeyError, KeyDataError, PsiError, PsiResult, psi_align, psi_frame

__all__ = ["psi_align", "psi_frame", "PsiResult", "PsiError", "DuplicateKeyError", "KeyDataError"]


def __getattr__(name: str) -> Any:
    # Lazy: the pool's worker processes import jointml.psi._curve, and should not pay
    # for pandas and the runtime when they start.
    if name in __all__:
        from . import ecdh

        return getattr(ecdh, name)
    raise AttributeError(f"module 'jointml.psi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
