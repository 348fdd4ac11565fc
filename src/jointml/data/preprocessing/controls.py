"""Binning controls a scorecard modeller sets by hand: monotonic WOE, manual edges, special values.

These are plaintext building blocks, run by the party that does each part of the binning:

* :class:`BinningControls` -- the settings of a `woe_binning` step: ``monotonic``
  (``auto | ascending | descending | none``, for every numeric column or per column),
  ``edges`` (manual interior edges per column: those bins are final, never merged),
  ``special_values`` (per column, each value in a bin of its own). Missing values always
  have a bin of their own (:mod:`.binning`). :meth:`BinningControls.checked` refuses bad
  settings with a ConfigError naming the field (and the party, when given the layout).
* :class:`ControlledBinner` -- the pre-binner of one party: its manual-edge columns cut at
  the given edges, the others by a base binner fitted on the values that are neither
  special nor missing; special values get their own bins (``ColumnBins.specials``).
  It runs at the column's owner, on its own data.
* :func:`monotonic_cuts` -- merge adjacent bins (pool adjacent violators, on counts alone)
  until the bad rate, hence WOE, is strictly monotonic. It runs wherever the label counts
  are: at the label holder, for the partner's columns too (see
  :mod:`jointml.data.secure.woe` for what that tells the partner).

The trend is a property of the *bad rate* in bin order (numeric bins ascend in value):
``ascending`` means WOE (``ln(%bad / %good)``) rises with the feature's value. ``auto`` picks,
of the two monotonic merges, the one with the larger IV (ascending on a tie).

>>> monotonic_cuts(np.array([1, 3, 2, 8]), np.array([9, 7, 8, 2]), "ascending").tolist()
[1, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Hashable

import numpy as np
import pandas as pd

from ...core.errors import ConfigError
from .binning import ColumnBins

__all__ = ["TRENDS", "BinningControls", "ControlledBinner", "check_owned", "monotonic_cuts", "trend_cuts"]

#: the values of `monotonic`
TRENDS = ("auto", "ascending", "descending", "none")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(float(v))


@dataclass
class BinningControls:
    """Hand-set binning rules of a `woe_binning` step (see the module docstring).

    >>> c = BinningControls.checked("auto", {"age": [25, 40]}, {"income": [-999]})
    >>> c.trend("income"), c.trend("age"), c.n_special("income"), "age" in c.edges
    ('auto', 'auto', 1, True)
    >>> BinningControls.checked("up", None, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: field 'monotonic': woe_binning: monotonic must be one of ...
    """

    monotonic: str | dict[str, str] = "none"
    edges: dict[str, list[float]] = field(default_factory=dict)
    special_values: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def checked(cls, monotonic: Any = "none", edges: Any = None, special_values: Any = None,
                owners: dict[str, str] | None = None) -> "BinningControls":
        """The controls, each setting checked (ConfigError naming the field, and with `owners`
        (column -> party) the party whose column a setting names)."""
        monotonic = "none" if monotonic is None else monotonic
        if isinstance(monotonic, dict):
            for c, t in monotonic.items():
                if t not in TRENDS:
                    raise ConfigError(f"woe_binning: monotonic for feature '{c}' must be one of {TRENDS}, got {t!r}",
                                      field=f"monotonic.{c}", party=(owners or {}).get(str(c)), public=True)
        elif monotonic not in TRENDS:
            raise ConfigError(f"woe_binning: monotonic must be one of {TRENDS} (or a mapping feature -> one of them), "
                              f"got {monotonic!r}", field="monotonic", public=True)
        out = cls(monotonic, _checked_edges(edges, owners), _checked_specials(special_values, owners))
        for c in set(out.edges) | set(out.special_values) | (set(monotonic) if isinstance(monotonic, dict) else set()):
            if owners is not None and c not in owners:
                fld = "edges" if c in out.edges else "special_values" if c in out.special_values else "monotonic"
                raise ConfigError(f"woe_binning: {fld} names '{c}', which is not a binned feature of any party "
                                  f"(features: {sorted(owners)})", field=f"{fld}.{c}", public=True)
        return out

    def trend(self, column: str) -> str:
        """The monotonic trend asked for `column` ("none" when not asked)."""
        if isinstance(self.monotonic, dict):
            return str(self.monotonic.get(column, "none"))
        return str(self.monotonic)

    def n_special(self, column: str) -> int:
        """How many special values `column` has (each its own bin)."""
        return len(self.special_values.get(column, []))


def _checked_edges(edges: Any, owners: dict[str, str] | None) -> dict[str, list[float]]:
    if edges is None:
        return {}
    if not isinstance(edges, dict):
        raise ConfigError(f"woe_binning: edges must map a feature to its list of interior edges, got {edges!r}",
                          field="edges", public=True)
    out = {}
    for c, e in edges.items():
        party = (owners or {}).get(str(c))
        if not isinstance(e, (list, tuple)) or not e or not all(_is_number(v) for v in e):
            raise ConfigError(f"woe_binning: edges of feature '{c}' must be a non-empty list of finite numbers, got {e!r}",
                              field=f"edges.{c}", party=party, public=True)
        if any(b <= a for a, b in zip(e, e[1:])):
            raise ConfigError(f"woe_binning: edges of feature '{c}' must be strictly increasing, got {list(e)}",
                              field=f"edges.{c}", party=party, public=True)
        out[str(c)] = [float(v) for v in e]
    return out


def _checked_specials(specials: Any, owners: dict[str, str] | None) -> dict[str, list[Any]]:
    if specials is None:
        return {}
    if not isinstance(specials, dict):
        raise ConfigError(f"woe_binning: special_values must map a feature to a list of values, got {specials!r}",
                          field="special_values", public=True)
    out = {}
    for c, vs in specials.items():
        party = (owners or {}).get(str(c))
        if not isinstance(vs, (list, tuple)) or not vs or not all(_is_number(v) or isinstance(v, str) for v in vs):
            raise ConfigError(f"woe_binning: special_values of feature '{c}' must be a non-empty list of numbers or "
                              f"strings, got {vs!r}", field=f"special_values.{c}", party=party, public=True)
        if len(set(vs)) != len(vs):
            raise ConfigError(f"woe_binning: special_values of feature '{c}' repeat a value: {list(vs)}",
                              field=f"special_values.{c}", party=party, public=True)
        out[str(c)] = [v.item() if isinstance(v, np.generic) else v for v in vs]
    return out


class ControlledBinner:
    """A party's pre-binner under :class:`BinningControls` (runs at the columns' owner).

    `base` bins the columns without manual edges, fitted on their values that are neither
    special nor missing (so a ``-999`` code does not pull the quantiles).

    >>> from jointml.data.preprocessing import EqualFrequencyBinner
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, -999.0, None], "y": [5.0, 15.0, 25.0, 35.0, 45.0, 55.0]})
    >>> ctl = BinningControls.checked("none", {"y": [20.0]}, {"x": [-999]})
    >>> b = ControlledBinner(EqualFrequencyBinner(n_bins=2), ctl).fit(df)
    >>> b.transform(df)[:, 0].tolist(), b.get_bins("y").labels()
    ([0, 0, 1, 1, 2, 3], ['[-inf, 20)', '[20, inf)', 'missing'])
    """

    def __init__(self, base: Any, controls: BinningControls):
        self.base = base
        self.controls = controls
        self.bins_: dict[Hashable, ColumnBins] = {}

    def fit(self, df: pd.DataFrame) -> "ControlledBinner":
        """Learn the bins of every column of `df` (the owner's own table)."""
        ctl = self.controls
        free = [c for c in df.columns if c not in ctl.edges]
        fitted: dict[Hashable, ColumnBins] = {}
        if free:
            sub = df[free].copy()
            for c in free:  # special values do not shape the regular bins
                if ctl.special_values.get(c):
                    hit = ColumnBins(c, "numeric", specials=tuple(ctl.special_values[c])).special_mask(sub[c])
                    sub[c] = sub[c].where(~hit, np.nan) if pd.api.types.is_numeric_dtype(sub[c].dtype) \
                        else sub[c].astype(object).where(~hit, None)
            self.base.fit(sub)
            fitted = {c: self.base.get_bins(c) for c in free}
        for c in df.columns:
            specials = tuple(ctl.special_values.get(c, ()))
            if c in ctl.edges:
                bins = ColumnBins(c, "numeric", edges=np.asarray(ctl.edges[c], float), handle_unknown="missing",
                                  specials=specials)
            else:
                bins = replace(fitted[c], specials=specials)
            self.bins_[c] = bins
        return self

    def get_bins(self, column: Hashable) -> ColumnBins:
        """The :class:`ColumnBins` of a fitted column."""
        return self.bins_[column]

    def fixed(self, column: Hashable) -> bool:
        """Whether `column`'s bins are manual (final: never merged)."""
        return column in self.controls.edges

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Pre-bin index (int64) of every value, one column per column of `df`."""
        if not len(df.columns):
            return np.zeros((len(df), 0), np.int64)
        return np.stack([self.bins_[c].transform(df[c]) for c in df.columns], axis=1)


def check_owned(controls: BinningControls, party: str, df: pd.DataFrame) -> str | None:
    """The owner's check of the controls on its own columns: a problem text (names only), or None.

    >>> check_owned(BinningControls.checked("none", {"city": [1.0]}), "shop", pd.DataFrame({"city": ["a", "b"]}))
    "edges of feature 'city' are numeric, but the column holds text (categories) at 'shop': remove its edges"
    """
    for c in controls.edges:
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c].dtype):
            return (f"edges of feature '{c}' are numeric, but the column holds text (categories) at '{party}': "
                    "remove its edges")
    return None


def monotonic_cuts(pos: np.ndarray, neg: np.ndarray, trend: str) -> np.ndarray:
    """Starts of the merged bins (cuts) that make the bad rate strictly `ascending` or
    `descending` over ordered bins: pool adjacent violators (an empty bin joins its left
    neighbour, or the right one when first). Merging two neighbours gives a rate between
    theirs, so the merges only ever join violating runs.

    >>> monotonic_cuts(np.array([5, 1, 1]), np.array([5, 9, 9]), "descending").tolist()
    [1]
    """
    up = trend == "ascending"
    blocks: list[list[float]] = []  # [first bin, positives, negatives]
    for i in range(len(pos)):
        blocks.append([i, float(pos[i]), float(neg[i])])
        while len(blocks) >= 2 and _violates(blocks[-2], blocks[-1], up):
            b = blocks.pop()
            blocks[-1][1] += b[1]
            blocks[-1][2] += b[2]
    return np.asarray([int(b[0]) for b in blocks[1:]], dtype=np.int64)


def _violates(a: list[float], b: list[float], up: bool) -> bool:
    na, nb = a[1] + a[2], b[1] + b[2]
    if na == 0 or nb == 0:
        return True
    left, right = a[1] * nb, b[1] * na  # rate(a) vs rate(b), cross-multiplied
    return left >= right if up else left <= right


def trend_cuts(pos: np.ndarray, neg: np.ndarray, trend: str) -> np.ndarray:
    """`monotonic_cuts` for `trend`, `auto` choosing the direction of larger IV ("none": no cut removed,
    i.e. every bin its own).

    >>> trend_cuts(np.array([1, 3, 2, 8]), np.array([9, 7, 8, 2]), "auto").tolist()
    [1, 3]
    """
    if trend == "none":
        return np.arange(1, len(pos), dtype=np.int64)
    if trend != "auto":
        return monotonic_cuts(pos, neg, trend)
    from .binning import merge_counts
    from .woe import woe_iv_from_counts

    best, best_iv = np.zeros(0, np.int64), -1.0
    for t in ("ascending", "descending"):
        cuts = monotonic_cuts(pos, neg, t)
        iv = woe_iv_from_counts(merge_counts(pos, cuts), merge_counts(neg, cuts))[2] if len(pos) else 0.0
        if iv > best_iv + 1e-12:
            best, best_iv = cuts, iv
    return best
