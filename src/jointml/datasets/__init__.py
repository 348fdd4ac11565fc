"""Datasets shipped with jointml (see README.md beside this file for provenance and licence)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd


def path(name: str = "germancredit.csv") -> Path:
    """Filesystem path of a shipped dataset.

    >>> path().name, path().is_file()
    ('germancredit.csv', True)
    """
    return Path(str(resources.files(__name__).joinpath(name)))


def load_germancredit() -> pd.DataFrame:
    """The Statlog German Credit data (1,000 rows, 20 attributes, target `creditability`).

    UCI Machine Learning Repository, doi:10.24432/C5NC77, CC BY 4.0; Prof. Hans Hofmann.

    >>> df = load_germancredit(); df.shape
    (1000, 21)
    """
    return pd.read_csv(path("germancredit.csv"))
