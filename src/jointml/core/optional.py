"""Optional dependencies: import them where they are used, or say which extra installs them.

The core install (`pip install jointml`) stays small; heavy packages that only some
features need are extras (`jointml[parquet]` for pyarrow, `jointml[torch]`). Code that
needs one calls `require(module, extra)` at the point of use, so a user without the
extra gets one sentence naming the command that fixes it instead of a bare
`ModuleNotFoundError` from deep inside pandas.

No party data is involved: this module only imports code.

>>> require("json", "core").__name__
'json'
>>> require("nosuchpkg", "parquet")
Traceback (most recent call last):
...
jointml.core.errors.MissingDependency: this feature needs the optional package 'nosuchpkg': pip install 'jointml[parquet]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependency

__all__ = ["MissingDependency", "available", "require"]


def require(module: str, extra: str, feature: str = "this feature") -> ModuleType:
    """Import `module`, or raise `MissingDependency` (a `ConfigError` and an `ImportError`)
    naming the extra that installs it.

    `feature` completes the message ("reading Parquet files needs ...").

    >>> require("nosuchpkg", "parquet", feature="reading Parquet")
    Traceback (most recent call last):
    ...
    jointml.core.errors.MissingDependency: reading Parquet needs the optional package 'nosuchpkg': pip install 'jointml[parquet]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        if e.name is not None and e.name != top and not e.name.startswith(top + "."):
            raise  # the package is there but one of its own imports failed: show that error
        raise MissingDependency(
            f"{feature} needs the optional package '{top}': pip install 'jointml[{extra}]'"
        ) from None


def available(module: str) -> bool:
    """True if `module` can be imported (for tests and feature probes; imports it).

    >>> available("json"), available("nosuchpkg")
    (True, False)
    """
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
