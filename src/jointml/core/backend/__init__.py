"""Ring backends: the array library the MPC kernels compute with (numpy; torch later).

`backend` is the process-wide instance the kernels use; `get_backend(name)` returns a
backend by name. See `base.RingBackend` for the interface a new backend implements.

>>> backend.name
'numpy'
>>> get_backend("numpy") is backend
True
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import RingBackend
from .numpy import NumpyBackend

__all__ = ["RingBackend", "NumpyBackend", "backend", "get_backend"]

backend: RingBackend = NumpyBackend()

_BACKENDS: dict[str, RingBackend] = {"numpy": backend}


def get_backend(name: str = "numpy") -> RingBackend:
    """The ring backend called `name` (only "numpy" exists today)."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown ring backend '{name}' (available: {sorted(_BACKENDS)})", field="backend") from None
