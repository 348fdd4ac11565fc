"""One party's side of online prediction: its saved model part, its feature source, its partial.

A pipeline's training saves, at each party, its own model part, its WOE / encoding / scale
parts and the public record (`jointml.jobs.saved`). `PartyPredictor.load` reads only this
party's files and never talks to another party; the server (`jointml.serving.server`) moves
the partials between the parties.

Per request, for the ids the label holder (the *bank*) asks about:

- **SS-LR / SS-GLM** (trained with `reveal="owners"`: each party knows the weights of its own
  features): a feature holder (the *partner*) computes its partial linear score
  ``x_partner . w_partner`` from its own features and weights and sends that one float per id.
  The bank adds its own partial and the intercept and applies the link (sigmoid). Models whose
  weights stay secret-shared (`reveal="shared"`) or whose partner does not know its own WOE
  values (WOE without `woe_to_owner`) are refused at load with a message: serving them needs a
  secret-shared variant (not built yet).
- **SecureBoost**: per tree, the partner sends a bit mask of the leaves its own splits allow for
  that id; the bank intersects it with its own mask (exactly one leaf remains) and adds the leaf
  values it alone holds.

What each side learns per request (semi-honest parties):

| model | the bank learns | the partner learns |
| --- | --- | --- |
| SS-LR / GLM | the partner's partial score for each id (one float), and whether the id is known | the ids asked for, and when |
| SecureBoost | per tree, the leaves the partner's splits allow (the side of each of its | the ids asked for, |
|             | splits the id falls on, as in batch prediction), and whether the id is known | and when |

SS-XGB and TEE-hosted models have their own tables (`jointml.serving.mpc_online`,
`jointml.serving.tee_model`: a TEE partner's rows reach only the attested enclave, encrypted).
Neither side sends raw feature values; the partner never sees a score or the bank's features.
A deviating bank can ask for any id the partner holds and learn that id's partial; the
partner's log of ids asked (`serving.server`) is the audit trail. Against a deviating partner
nothing here checks that its partials are honest (it can bias the scores of any id).

>>> import pandas as pd
>>> src = TableSource(pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]}), "id")
>>> df, found = src.rows(["b", "zz"])
>>> df["x"].tolist()[0], found
(2.0, [True, False])
"""

from __future__ import annotations

import math
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, DataError, ModelError

__all__ = ["FeatureSource", "TableSource", "SQLiteSource", "SQLSource", "open_source", "lookup", "PartyPredictor",
           "UNKNOWN_POLICIES"]

#: What a partner does with an id it does not hold: "error" (the id is reported unknown, no
#: score) or "missing" (scored as if every feature of that party were missing).
UNKNOWN_POLICIES = ("error", "missing")

LINEAR = ("ss_lr", "ss_glm")
TREES = ("secureboost",)
#: models whose parts are secret-shared: scored under MPC online (`jointml.serving.mpc_online`)
MPC_MODELS = ("ss_xgb",)
#: models held sealed by an attested enclave, scored inside it (`jointml.serving.tee_model`)
TEE_MODELS = ("tee",)


class FeatureSource(ABC):
    """Where a party reads its own features by id (a plug-in: implement `rows`)."""

    id_column: str

    @abstractmethod
    def rows(self, ids: list[str]) -> tuple[pd.DataFrame, list[bool]]:
        """The rows of `ids` in that order (unknown ids as all-missing rows) and which were found."""


class TableSource(FeatureSource):
    """A table held in memory, indexed by its id column (ids compared as text).

    >>> TableSource(pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}), "id").rows(["2"])[0]["x"].tolist()
    [1.5]
    """

    def __init__(self, df: pd.DataFrame, id_column: str = "id"):
        if id_column not in df.columns:
            raise DataError(f"the feature source has no id column '{id_column}' (columns: {list(df.columns)})",
                            field=id_column)
        keys = df[id_column].astype(str)
        if keys.duplicated().any():
            raise DataError(f"the feature source has duplicate ids in '{id_column}'", field=id_column)
        self.id_column = id_column
        self.table = df.drop(columns=[id_column]).set_axis(keys.to_numpy(), axis=0)
        # a dict and per-column arrays: a lookup costs microseconds, not a pandas reindex
        self._pos = {k: n for n, k in enumerate(self.table.index)}
        self._cols = {c: self.table[c].to_numpy() for c in self.table.columns}

    def rows(self, ids: list[str]) -> tuple[pd.DataFrame, list[bool]]:
        cols, found = self.columns(ids)
        return pd.DataFrame(cols, index=[str(i) for i in ids]), found

    def columns(self, ids: list[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """`rows` as `{column: values}` without building a DataFrame (the serving fast path).

        >>> TableSource(pd.DataFrame({"id": ["a"], "x": [0.5]})).columns(["a", "b"])[0]["x"].tolist()
        [0.5, nan]
        """
        at = [self._pos.get(str(i), -1) for i in ids]
        found = [k >= 0 for k in at]
        idx = np.asarray(at, dtype=np.int64)
        out = {}
        for c, v in self._cols.items():
            col = v[np.maximum(idx, 0)] if len(v) else np.full(len(idx), np.nan)
            if not all(found):
                col = col.astype(object) if col.dtype.kind not in "fc" else col.copy()
                col[idx < 0] = np.nan
            out[c] = col
        return out, found


class SQLiteSource(FeatureSource):
    """A table in an SQLite file, read row by row with a parameterised query.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f.db")
    >>> with sqlite3.connect(p) as c:
    ...     _ = c.execute("create table f (id text, x real)"); _ = c.execute("insert into f values ('a', 1.5)")
    >>> SQLiteSource(p, "f", "id").rows(["a", "b"])[1]
    [True, False]
    """

    def __init__(self, path: str | Path, table: str, id_column: str = "id"):
        if not table.isidentifier() or not id_column.isidentifier():
            raise ConfigError(f"SQLite table and id column must be plain names, got {table!r}, {id_column!r}",
                              field="features")
        self.path, self.table, self.id_column = str(path), table, id_column
        with sqlite3.connect(self.path) as c:
            cur = c.execute(f"select * from {table} limit 0")  # noqa: S608 - names checked above
            self.columns = [d[0] for d in cur.description if d[0] != id_column]

    def rows(self, ids: list[str]) -> tuple[pd.DataFrame, list[bool]]:
        with sqlite3.connect(self.path) as c:
            q = ",".join("?" * len(ids))
            got = c.execute(f"select * from {self.table} where {self.id_column} in ({q})",  # noqa: S608
                            [str(i) for i in ids]).fetchall()
        df = pd.DataFrame(got, columns=[self.id_column, *self.columns])
        return TableSource(df, self.id_column).rows(ids)


class SQLSource(FeatureSource):
    """A table in any SQLAlchemy database (PostgreSQL in production), read with one
    parameterised ``SELECT ... WHERE id IN (...)`` per request over a connection pool.

    The table is reflected once (its columns); ids are compared as text, as in the other
    sources. Needs the `server` extra (SQLAlchemy; psycopg for PostgreSQL).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f.db")
    >>> with sqlite3.connect(p) as c:
    ...     _ = c.execute("create table f (id text, x real)"); _ = c.execute("insert into f values ('a', 1.5)")
    >>> src = SQLSource(f"sqlite:///{p}", "f")
    >>> src.rows(["b", "a"])[1], src.rows(["a"])[0]["x"].tolist()
    ([False, True], [1.5])
    """

    def __init__(self, url: str, table: str, id_column: str = "id"):
        from sqlalchemy import MetaData, Table, create_engine
        from sqlalchemy.exc import SQLAlchemyError

        self.id_column = id_column
        try:
            self.engine = create_engine(url, pool_pre_ping=True)
            self.table = Table(table, MetaData(), autoload_with=self.engine)
        except SQLAlchemyError as e:
            raise ConfigError(f"feature source: cannot read table {table!r} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0]})", field="features") from None
        if id_column not in self.table.c:
            raise DataError(f"the feature table {table!r} has no id column '{id_column}' (columns: "
                            f"{list(self.table.c.keys())})", field=id_column)
        self.columns = [c for c in self.table.c.keys() if c != id_column]

    def rows(self, ids: list[str]) -> tuple[pd.DataFrame, list[bool]]:
        from sqlalchemy import String, cast, select

        key = self.table.c[self.id_column]
        q = select(self.table).where(cast(key, String).in_([str(i) for i in ids]))
        with self.engine.connect() as c:
            got = c.execute(q).fetchall()
        df = pd.DataFrame([tuple(r) for r in got], columns=[self.id_column, *self.columns])
        return TableSource(df, self.id_column).rows(ids)


def lookup(source: FeatureSource, ids: list[str]) -> tuple[Any, list[bool]]:
    """The rows of `ids` from `source`: its `columns(ids)` fast path when it has one, else `rows(ids)`.

    >>> lookup(TableSource(pd.DataFrame({"id": ["a"], "x": [1.0]})), ["a"])[1]
    [True]
    """
    fast = getattr(source, "columns", None)
    return fast(ids) if callable(fast) else source.rows(ids)


def open_source(spec: str, id_column: str = "id") -> FeatureSource:
    """A feature source from its text: a CSV or Parquet file, ``sqlite:PATH?table=NAME``, or an
    SQLAlchemy database URL with the table after ``#``
    (``postgresql+psycopg://user:pw@host/db#table=NAME``).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f.csv")
    >>> pd.DataFrame({"id": ["a"], "x": [1.0]}).to_csv(p, index=False)
    >>> open_source(p).rows(["a"])[1]
    [True]
    """
    if "://" in spec and "#table=" in spec:
        url, _, table = spec.rpartition("#table=")
        return SQLSource(url, table, id_column)
    if spec.startswith("sqlite:"):
        path, _, query = spec[len("sqlite:"):].partition("?table=")
        if not query:
            raise ConfigError(f"an SQLite source is 'sqlite:PATH?table=NAME', got {spec!r}", field="features")
        return SQLiteSource(path, query, id_column)
    p = Path(spec)
    if not p.exists():
        raise ConfigError(f"feature source {spec} does not exist", field="features")
    if p.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(p)
    else:
        df = pd.read_csv(p, dtype={id_column: str})
    return TableSource(df, id_column)


@dataclass
class PartyPredictor:
    """This party's part of a saved model, ready to compute its partial for a batch of rows.

    `load(model_dir, party)` reads the record, the manifest's current part and this party's
    encoding / scale / WOE parts; nothing crosses a link. `role` is "label" (the party that
    receives the scores) or "feature" (a partner that sends partials).
    """

    party: str
    model: str
    kind: str
    model_id: str
    label_party: str
    parties: list[str]
    columns: list[str]
    features_view: str
    manifest: dict[str, Any]
    directory: str
    weights: np.ndarray | None = None
    intercept: float = 0.0
    trees: list[dict] = field(default_factory=list)
    base_score: float = 0.0
    family: str = "logistic"
    #: a partner whose WOE values are at the label holder only: it sends masked partials
    #: (`jointml.serving.masked`); at the label holder: such partners and their columns
    masked: bool = False
    masked_partners: dict[str, list[str]] = field(default_factory=dict)
    #: this party's scorecard (`jobs.components.scorecard`: factor, offset, points per bin of its
    #: own columns), when the pipeline had a `scorecard` step; None otherwise
    scorecard: dict[str, Any] | None = None
    #: the MPC device the model was trained on (protocol, parties, dealer): MPC_MODELS only
    mpc: dict[str, Any] = field(default_factory=dict)
    #: this party's TEE serving part (`jointml.serving.tee_model.load_tee_part`): TEE_MODELS only
    tee: dict[str, Any] = field(default_factory=dict)
    _prep: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def role(self) -> str:
        """"label" (serves the HTTP API), "feature" (a partner with model columns) or "helper"
        (the dealer of an MPC-online model: no data, only the protocol's randomness)."""
        if self.party == self.label_party:
            return "label"
        return "feature" if self.party in self.parties else "helper"

    @property
    def peers(self) -> list[str]:
        """The parties a serving session links: the model's parties, plus the dealer of an
        MPC-online model."""
        dealer = self.mpc.get("dealer") if self.model in MPC_MODELS else None
        return self.parties + ([dealer] if dealer and dealer not in self.parties else [])

    @classmethod
    def load(cls, model_dir: str | Path, party: str) -> PartyPredictor:
        """Read `party`'s saved parts in `model_dir` (a pipeline's `<output>/model`)."""
        from ..jobs.saved import load_encoding, read_record
        from ..runtime.persist import read_manifest, read_part

        d = Path(model_dir)
        rec = read_record(d, party)
        if rec is None:
            from .tee_model import load_tee_part

            tee = load_tee_part(d, party)
            if tee is not None:
                return cls._from_tee(d, party, tee)
        manifest = read_manifest(d, party)
        if rec is None or manifest is None:
            raise ModelError(f"no pipeline record or manifest of party '{party}' in {d}: serve a model saved by a "
                             "pipeline with an `output`", party=party, field="model")
        if rec["model"] not in LINEAR + TREES + MPC_MODELS:
            raise ModelError(f"serving does not support model '{rec['model']}' yet (supported: "
                             f"{LINEAR + TREES + MPC_MODELS})", party=party, field="model")
        part = read_part(d, party)
        if part.kind != rec["kind"]:
            raise ModelError(f"the current model part in {d} is a {part.kind}, the pipeline record names a "
                             f"{rec['kind']} (files of different trainings)", party=party, field="model")
        label = rec["label"]["party"]
        self = cls(party=party, model=rec["model"], kind=rec["kind"],
                   model_id=str(rec.get("model_id") or part.model_id), label_party=label,  # the id agreed at training
                   parties=[p for p, c in rec["columns"].items() if c or p == label], columns=list(rec["columns"].get(party, [])),
                   features_view=rec["features"], manifest=manifest, directory=str(d))
        from ..jobs.components.scale import load_scale

        self._prep = {"encoding": load_encoding(d, party), "scale": load_scale(d, party), "woe": None}
        if rec["features"] == "woe":
            self._prep["woe"] = woe = _load_own_woe(d, party, self.columns, masked_ok=rec["model"] in LINEAR)
            self.masked = any(woe.col[c].woe is None for c in self.columns)
            if self.role == "label" and not woe.woe_to_owner:
                self.masked_partners = {p: list(c) for p, c in rec["columns"].items() if c and p != party}
        if self.model in LINEAR:
            self._load_linear(part)
            self.scorecard = _load_scorecard(d, party, self.columns) if rec["features"] == "woe" else None
        elif self.model in MPC_MODELS:  # the shares are loaded by the session (a collective)
            self.mpc = dict(rec.get("mpc") or {})
        else:
            self._load_trees(part)
        return self

    @classmethod
    def _from_tee(cls, d: Path, party: str, part: dict[str, Any]) -> PartyPredictor:
        """A TEE-hosted model's serving part: raw numeric columns, the model sealed in the enclave."""
        sealed = part.get("sealed") or {}
        manifest = {"kind": part["kind"], "model_id": part["model_id"], "file": sealed.get("file"),
                    "sha256": sealed.get("sha256"), "measurement": part["measurement"],
                    "platform": part["platform"]["name"], "simulation": part["platform"]["simulation"]}
        self = cls(party=party, model="tee", kind=str(part["kind"]), model_id=str(part["model_id"]),
                   label_party=str(part["label_party"]), parties=list(part["parties"]), columns=list(part["columns"]),
                   features_view="raw", manifest=manifest, directory=str(d), tee=part)
        self._prep = {"encoding": None, "scale": None, "woe": None}
        return self

    def _load_linear(self, part: Any) -> None:
        coef = part.state.get("coef_by_party", {})
        if self.columns and self.party not in coef:
            raise ModelError(f"party '{self.party}' does not know its own weights (the model was trained with "
                             f"reveal='{part.params.get('reveal', 'shared')}'): serving needs reveal='owners' "
                             "(a secret-shared variant is not built yet)", party=self.party, field="reveal")
        self.weights = np.asarray(coef.get(self.party, []), dtype=np.float64)
        if len(self.weights) != len(self.columns):
            raise ModelError(f"party '{self.party}': {len(self.weights)} weights for {len(self.columns)} columns",
                             party=self.party, field="model")
        if self.role == "label":
            if part.state.get("intercept") is None:
                raise ModelError("the label holder does not know the intercept (secret-shared): serving needs "
                                 "reveal='owners'", party=self.party, field="reveal")
            self.intercept = float(part.state["intercept"])
        self.family = "logistic" if self.kind == "SSLogisticRegression" else str(part.params.get("family", "gaussian"))

    def _load_trees(self, part: Any) -> None:
        self.trees = []
        for tr in part.state["trees"]:
            t = dict(tr)
            t["threshold"] = [math.nan if v is None else float(v) for v in tr["threshold"]]
            self.trees.append(t)
        if self.role == "label":
            self.base_score = float(part.state["base_score"])
        self.family = "logistic" if self.kind == "SecureBoostClassifier" else "gaussian"

    # -- features ------------------------------------------------------------------------------
    def features(self, df: pd.DataFrame | dict[str, np.ndarray], n: int | None = None) -> np.ndarray:
        """The model's features of this party for the raw rows `df` (its own columns), float64.

        `df`: a DataFrame or `{column: values}` of `n` rows (e.g. `TableSource.columns`).

        Applies this party's saved encoding, standardisation and WOE, as `jointml predict` does.
        Missing values stay NaN for trees (their default direction) and for raw linear features
        become 0 (the training mean after `scale`).
        """
        if not self.columns:
            return np.zeros((len(df) if n is None else n, 0))
        missing = [c for c in self.columns if c not in df]
        if missing:
            raise DataError(f"party '{self.party}': the feature source lacks the model's columns {missing}",
                            party=self.party, field=missing[0], public=True)
        codes, scale, woe = self._codes(), self._prep["scale"] or {}, self._prep["woe"]
        if woe is not None:
            return self._woe_features(df, codes, woe)
        cols = []
        for c in self.columns:
            v = np.asarray(df[c])
            if c in codes:
                v = _encode(v, *codes[c])
            v = self._numeric(c, v)
            if c in scale:
                v = (v - scale[c][0]) / scale[c][1]
            cols.append(v)
        X = np.column_stack(cols)
        if self.model in LINEAR:
            X = np.nan_to_num(X, nan=0.0)
        return X

    def _numeric(self, c: str, v: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"party '{self.party}': feature '{c}' is not numeric", party=self.party,
                            field=c, public=True) from None

    def _woe_features(self, df: Any, codes: dict[str, Any], woe: Any) -> np.ndarray:
        """WOE values of this party's columns (or, for a masked partner, their final bins)."""
        idx = self.bins(df)
        if self.masked:  # its WOE values are at the label holder: the bins are its features
            return idx.astype(np.float64)
        return np.stack([woe.col[c].woe_table()[idx[:, j]] for j, c in enumerate(self.columns)], axis=1)

    def _codes(self) -> dict[str, tuple[dict[Any, int], int]]:
        """This party's text codes as `{column: ({category: code}, code of a missing value)}` (built once)."""
        if "codes" not in self._prep:
            enc, out = self._prep["encoding"], {}
            for c, cats in zip(enc.columns if enc is not None else [], enc.categories if enc is not None else []):
                plain = {v: k for k, v in enumerate(cats) if not _missing(v)}
                out[c] = (plain, next((k for k, v in enumerate(cats) if _missing(v)), -1))
            self._prep["codes"] = out
        return self._prep["codes"]

    # -- partials --------------------------------------------------------------------------------
    def partial(self, X: np.ndarray) -> list[np.ndarray]:
        """What this party contributes for the rows `X`: `[x . w]` (linear) or `[leaf masks]`, the
        leaves its splits allow in every tree, packed (rows, a few bytes per tree) uint8. This is
        all a partner sends.

        >>> p = PartyPredictor("partner", "ss_lr", "SSLogisticRegression", "m", "bank", ["bank", "partner"],
        ...                    ["x"], "raw", {}, ".", weights=np.array([2.0]))
        >>> p.partial(np.array([[1.5]]))[0].tolist()
        [3.0]
        """
        if self.model in LINEAR:
            assert self.weights is not None
            if self.masked:
                if "masked" not in self._prep:
                    raise ModelError(f"party '{self.party}' has no masked setup from the label holder yet",
                                     party=self.party, field="masked")
                return self._prep["masked"].partial(X.astype(np.int64))
            return [X @ self.weights if X.shape[1] else np.zeros(len(X))]
        # the leaves of all trees side by side (tree after tree), one packed array
        return [self._compiled_trees().packed_masks(X)]

    def _compiled_trees(self) -> _CompiledTrees:
        if "trees" not in self._prep:
            self._prep["trees"] = _CompiledTrees(self.trees)
        return self._prep["trees"]

    def masked_tables(self, partner: str) -> dict[str, np.ndarray]:
        """At the label holder: the WOE value per bin of each of `partner`'s columns (the
        tables of the masked variant, `jointml.serving.masked`)."""
        woe = self._prep["woe"]
        return {c: woe.col[c].woe_table() for c in self.masked_partners[partner]}

    def accept_masked(self, meta: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """At a masked partner: take the label holder's encrypted tables (checked) for `partial`."""
        from .masked import PartnerTables, check_commitment

        assert self.weights is not None
        check_commitment(self.directory, self.party, self.model_id, meta, arrays)  # the tables fixed at export
        self._prep["masked"] = PartnerTables.accept(meta, arrays, self.weights, self.columns, party=self.party)

    def partial_shapes(self, n: int) -> tuple[list[Any], list[tuple[int, ...]]]:
        """The dtypes and shapes a partner's partial for `n` rows must have (checked on receipt)."""
        if self.model in LINEAR:
            return [np.float64], [(n,)]
        return [np.uint8], [(n, self._compiled_trees().wire_bytes)]

    def combine(self, own: list[np.ndarray], others: list[list[np.ndarray]]) -> np.ndarray:
        """At the label holder: the margin (linear score) of each row from every party's partial.

        >>> p = PartyPredictor("bank", "ss_lr", "SSLogisticRegression", "m", "bank", ["bank", "partner"],
        ...                    ["x"], "raw", {}, ".", weights=np.array([1.0]), intercept=0.5)
        >>> p.combine([np.array([1.0])], [[np.array([2.0])]]).tolist()
        [3.5]
        """
        if self.model in LINEAR:
            return own[0] + sum((o[0] for o in others), np.zeros_like(own[0])) + self.intercept
        ct = self._compiled_trees()
        m = own[0].copy()
        for o in others:
            m &= o[0]  # AND on the packed bytes: only the leaves every party's splits allow
        total = ct.select(m)
        if total is None:
            raise ModelError("leaf masks of the parties are inconsistent (model parts of different trainings?)",
                             party=self.party, field="model")
        return self.base_score + total  # exactly one leaf per tree remains

    def probability(self, margin: np.ndarray) -> np.ndarray | None:
        """The positive-class probability for a classifier (None for a regression model).

        >>> p = PartyPredictor("bank", "ss_lr", "SSLogisticRegression", "m", "bank", ["bank"], [], "raw", {}, ".")
        >>> p.probability(np.array([0.0])).tolist()
        [0.5]
        """
        if self.family != "logistic":
            return None
        return 1.0 / (1.0 + np.exp(-margin))

    def prediction(self, margin: np.ndarray) -> np.ndarray:
        """What `predict` gives for the margin: the probability (classifiers), the mean of a GLM
        (identity link for gaussian, log link otherwise, as `SSGLM`), the margin of a regressor.

        >>> p = PartyPredictor("bank", "ss_glm", "SSGLM", "m", "bank", ["bank"], [], "raw", {}, ".", family="poisson")
        >>> p.prediction(np.array([0.0])).tolist()
        [1.0]
        """
        proba = self.probability(margin)
        if proba is not None:
            return proba
        if self.model == "ss_glm" and self.family != "gaussian":
            return np.exp(margin)
        return margin

    def bins(self, df: Any) -> np.ndarray:
        """The final WOE bin of each of this party's columns for the raw rows `df` (rows, columns):
        its saved bins applied to the raw values (categories as they are, as training did)."""
        woe = self._prep["woe"]
        codes = self._codes()
        raw = {}
        binner = woe.binners[self.party]
        for c in self.columns:
            v = np.asarray(df[c])
            if c in codes:
                v = _encode(v, *codes[c])
            raw[c] = self._numeric(c, v) if binner.get_bins(c).kind == "numeric" else v
        return woe.bin_indices(self.party, pd.DataFrame(raw, columns=self.columns))

    def points_lost(self, df: Any) -> dict[str, np.ndarray]:
        """Per own column, the scorecard points each row loses against the column's best bin
        (>= 0; the adverse contributions that reason codes name).

        >>> p = PartyPredictor("bank", "ss_lr", "SSLogisticRegression", "m", "bank", ["bank"], ["x"], "woe", {}, ".",
        ...                    scorecard={"points": {"x": [10.0, 4.0]}})
        >>> p.points_lost_from_bins(np.array([[1], [0]]))["x"].tolist()
        [6.0, 0.0]
        """
        return self.points_lost_from_bins(self.bins(df))

    def points_lost_from_bins(self, bins: np.ndarray) -> dict[str, np.ndarray]:
        assert self.scorecard is not None
        out = {}
        for j, c in enumerate(self.columns):
            table = np.asarray(self.scorecard["points"][c], dtype=np.float64)
            out[c] = table.max() - table[bins[:, j]]
        return out

    def describe(self) -> dict[str, Any]:
        """Public facts about the loaded model (what `GET /v1/model` shows)."""
        card = None if self.scorecard is None else {k: self.scorecard.get(k) for k in ("pdo", "base_score", "base_odds")}
        return {"model": self.model, "kind": self.kind, "model_id": self.model_id, "party": self.party, "scorecard": card,
                "label_party": self.label_party, "parties": self.parties, "features": self.features_view,
                "manifest": {k: self.manifest.get(k) for k in ("kind", "model_id", "file", "sha256", "created",
                                                               "version")},
                **({"tee": {"measurement": self.tee["measurement"], "platform": self.tee["platform"]["name"],
                            "simulation": self.tee["platform"]["simulation"]}} if self.tee else {})}


class _CompiledTrees:
    """Every tree's leaves as paths over this party's own splits, evaluated for all trees at once.

    Gives the same masks as `ml.tree.secureboost.feature_holder.leaf_masks` (a leaf is allowed
    when every split of this party on its path sends the row its way; NaN takes the default
    direction; the other parties' splits allow both sides). The nodes of all trees are visited
    level by level on bits packed 8 rows to a byte: a node is allowed when its parent is and the
    parent's split (if it is this party's) sends the row its way, one AND of two byte columns.
    (Measured on 100 trees of depth 5, 1,000 rows: 50-60 ms for the former per-leaf gather of
    a (rows, leaves, depth) bool array, see `jointml bench serve`; the figures are in the
    serving docs.)

    >>> tree = {"left": [1, -1, -1], "right": [2, -1, -1], "mine": [True, False, False],
    ...         "feature": [0, -1, -1], "threshold": [0.5, np.nan, np.nan], "default_left": [False, False, False]}
    >>> _CompiledTrees([tree]).masks(np.array([[0.1], [0.9], [np.nan]])).tolist()
    [[True, False], [False, True], [False, True]]
    """

    def __init__(self, trees: list[dict]):
        feat: list[int] = []
        thr: list[float] = []
        dflt: list[bool] = []
        # per node of every tree (global numbering): its depth, its parent, the literal that lets
        # a row reach it from the parent (2g: this party's split g goes left, 2g+1: goes right,
        # -1: the other party's split or the root: always)
        depth_of: list[int] = []
        parent: list[int] = []
        lit: list[int] = []
        leaves: list[int] = []
        self.spans: list[tuple[int, int]] = []
        for tr in trees:
            left, right, mine = tr["left"], tr["right"], tr["mine"]
            base = len(depth_of)
            size = len(left)
            depth_of += [0] * size
            parent += [-1] * size
            lit += [-1] * size
            todo = [0]
            while todo:
                node = todo.pop()
                if left[node] < 0:
                    continue
                code = -1
                if mine[node]:
                    code = 2 * len(feat)
                    feat.append(int(tr["feature"][node]))
                    thr.append(float(tr["threshold"][node]))
                    dflt.append(bool(tr["default_left"][node]))
                for child, side in ((left[node], 0), (right[node], 1)):
                    depth_of[base + child] = depth_of[base + node] + 1
                    parent[base + child] = base + node
                    lit[base + child] = code + side if code >= 0 else -1
                    todo.append(child)
            start = len(leaves)
            leaves += [base + i for i in range(size) if left[i] < 0]  # leaf order of `leaf_ids`: by node id
            self.spans.append((start, len(leaves)))
        d = np.asarray(depth_of, dtype=np.int64)
        par, lits = np.asarray(parent, dtype=np.int64), np.asarray(lit, dtype=np.int64)
        n_lits = 2 * len(feat)
        self.levels = [(np.flatnonzero(d == k), par[d == k], np.where(lits[d == k] < 0, n_lits, lits[d == k]))
                       for k in range(1, int(d.max(initial=0)) + 1)]
        self.n_nodes, self.n_leaves = len(depth_of), len(leaves)
        # the wire layout: each tree's leaves in `width` bytes (1, 2, 4 or 8 when the trees have
        # at most 64 leaves), so that the label holder reads each tree's one remaining leaf as the
        # single set bit of a big-endian integer; pad columns point at a constant-zero node
        most = max((b - a for a, b in self.spans), default=1)
        self.width = next((w for w in (1, 2, 4, 8) if 8 * w >= most), -(-most // 8))
        slot = 8 * self.width
        cols = np.full(len(self.spans) * slot, self.n_nodes, dtype=np.int64)
        self.pos = np.concatenate([t * slot + np.arange(b - a) for t, (a, b) in enumerate(self.spans)]
                                  ).astype(np.int64) if self.spans else np.zeros(0, np.int64)
        cols[self.pos] = np.asarray(leaves, dtype=np.int64)
        self.columns = cols
        # leaf values (known at the label holder only; zeros elsewhere), in the wire layout
        vals = [[0.0 if v is None else float(v) for v in tr.get("value") or [0.0] * len(tr["left"])] for tr in trees]
        self.values = np.zeros(len(cols))
        self.values[self.pos] = [v[i] for tr, v in zip(trees, vals) for i, lft in enumerate(tr["left"]) if lft < 0]
        self.feat, self.thr = np.asarray(feat, dtype=np.int64), np.asarray(thr, dtype=np.float64)
        self.dflt = np.asarray(dflt, dtype=bool)

    @property
    def wire_bytes(self) -> int:
        """Bytes per row of `packed_masks`."""
        return len(self.spans) * self.width

    def packed_masks(self, X: np.ndarray) -> np.ndarray:
        """(rows, `wire_bytes`) uint8: the leaves this party's splits allow, `width` bytes per
        tree (what a partner sends; see `masks` for one bool per leaf)."""
        n = len(X)
        x = X[:, self.feat] if len(self.feat) else np.zeros((n, 0))
        go = np.where(np.isnan(x), self.dflt, x < self.thr)  # (rows, own splits): goes left
        gp = np.packbits(go, axis=0)  # 8 rows per byte
        lits = np.empty((gp.shape[0], 2 * len(self.feat) + 1), dtype=np.uint8)
        lits[:, 0:-1:2], lits[:, 1:-1:2], lits[:, -1] = gp, ~gp, 0xFF
        allowed = np.empty((gp.shape[0], self.n_nodes + 1), dtype=np.uint8)
        allowed[:, :-1], allowed[:, -1] = 0xFF, 0  # roots allow every row; the last column pads
        for nodes, parents, lit in self.levels:
            allowed[:, nodes] = allowed[:, parents] & lits[:, lit]
        return _transpose_bits(allowed[:, self.columns], n)

    def masks(self, X: np.ndarray) -> np.ndarray:
        """(rows, all leaves of all trees) bool: the leaves this party's splits allow."""
        return np.unpackbits(self.packed_masks(X), axis=1).astype(bool)[:, self.pos]

    def select(self, packed: np.ndarray) -> np.ndarray | None:
        """The sum of each row's leaf values from the parties' ANDed `packed_masks` (None when a
        row does not keep exactly one leaf per tree: masks of different models).

        Each tree's `width` bytes read as one big-endian integer hold a single set bit; its
        position (an exact float exponent) indexes the leaf value: no (rows x leaves) product.
        """
        n, t = len(packed), len(self.spans)
        if not t:
            return np.zeros(n)
        if self.width in (1, 2, 4, 8):
            v = np.ascontiguousarray(packed).view(f">u{self.width}").astype(np.uint64)
            if not ((v != 0) & ((v & (v - np.uint64(1))) == 0)).all():
                return None
            bit = np.frexp(v.astype(np.float64))[1] - 1  # exact: v is a power of two
            leaf = np.arange(t) * 8 * self.width + (8 * self.width - 1 - bit)
            return self.values[leaf].sum(axis=1)
        rows, cols = np.nonzero(np.unpackbits(packed, axis=1))
        if len(cols) != n * t or not (cols.reshape(n, t) // (8 * self.width) == np.arange(t)).all():
            return None
        return self.values[cols.reshape(n, t)].sum(axis=1)


_M7, _M14, _M28 = np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC), np.uint64(0x00000000F0F0F0F0)
_REV = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


def _transpose_bits(a: np.ndarray, n: int) -> np.ndarray:
    """Bits packed 8 rows per byte (`np.packbits(x, axis=0)`) to `np.packbits(x, axis=1)` of the
    first `n` rows, by 8x8 bit-block transposes on uint64 words (columns: a multiple of 8).

    >>> x = np.array([[1, 0, 0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0, 0, 0]], dtype=np.uint8)
    >>> (_transpose_bits(np.packbits(x, axis=0), 2) == np.packbits(x, axis=1)).all()
    np.True_
    """
    nb, cols = a.shape
    x = np.ascontiguousarray(a).view("<u8")  # byte j of word g: column 8g + j
    for shift, mask in ((7, _M7), (14, _M14), (28, _M28)):  # Hacker's Delight transpose8
        t = (x ^ (x >> np.uint64(shift))) & mask
        x = x ^ t ^ (t << np.uint64(shift))
    b = _REV[x.view(np.uint8).reshape(nb, cols // 8, 8)[..., ::-1]]  # reverse the word's bits
    return b.transpose(0, 2, 1).reshape(nb * 8, cols // 8)[:n]


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _encode(values: np.ndarray, plain: dict[Any, int], missing_code: int) -> np.ndarray:
    """Ordinal codes as `Encoding.apply` gives them (-1: a category not seen in training; a
    missing value stays missing unless training saw it as a category).

    >>> _encode(np.array(["b", "zz", None], dtype=object), {"a": 0, "b": 1}, -1).tolist()
    [1.0, -1.0, nan]
    """
    out = np.empty(len(values), dtype=np.float64)
    miss = np.nan if missing_code < 0 else float(missing_code)
    for k, v in enumerate(values):
        out[k] = miss if _missing(v) else plain.get(v, -1)
    return out


def _load_scorecard(d: Path, party: str, columns: list[str]) -> dict[str, Any] | None:
    """This party's scorecard (`scorecard.<party>.json`, which the `scorecard` step writes next to
    the model folder), checked against its columns; None when the pipeline had no scorecard."""
    import json

    f = d.parent / f"scorecard.{party}.json"
    if not f.exists():
        return None
    try:
        doc = json.loads(f.read_text())
        points = {c: [float(r["points"]) for r in doc["points"][c]] for c in columns}
        card = {"factor": float(doc["factor"]), "offset": float(doc["offset"]), "points": points,
                **{k: doc.get(k) for k in ("pdo", "base_score", "base_odds", "base_points")}}
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"the scorecard {f} does not fit this model ({type(e).__name__}: {e})", party=party,
                         field="scorecard") from None
    return card


def _load_own_woe(d: Path, party: str, columns: list[str], masked_ok: bool = False) -> Any:
    from ..data.woe_io import load_woe

    woe = load_woe(d, party)
    if woe is None:
        raise ModelError(f"no WOE part woe.{party}.json in {d}", party=party, field="model")
    lacking = [c for c in columns if woe.col[c].woe is None]
    if lacking and not masked_ok:
        raise ModelError(f"party '{party}' does not know the WOE values of its columns {lacking} (trained without "
                         "woe_to_owner): the masked serving variant covers linear models only; trees need "
                         "woe_binning(woe_to_owner=True) or raw features", party=party, field="woe_to_owner")
    return woe
