"""Feature sources of `jointml serve`: an SQL table (SQLite URL everywhere; PostgreSQL when
`JOINTML_TEST_PG_URL` names a server, as in CI) gives the rows of the same file in memory."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest

from jointml.core.errors import ConfigError, DataError
from jointml.demo.credit_demo import make_demo_files
from jointml.serving.predictor import TableSource, open_source

pytest.importorskip("sqlalchemy")


@pytest.fixture(scope="module")
def partner(tmp_path_factory):
    return pd.read_csv(make_demo_files(tmp_path_factory.mktemp("src"))["partner"], dtype={"id": str})


def _same_rows(url: str, table: str, df: pd.DataFrame) -> None:
    src = open_source(f"{url}#table={table}")
    ids = [df["id"].iloc[3], "no-such-id", df["id"].iloc[0], df["id"].iloc[3]]
    got, found = src.rows(ids)
    want, want_found = TableSource(df, "id").rows(ids)
    assert found == want_found == [True, False, True, True]
    assert list(got.columns) == list(want.columns) and list(got.index) == ids
    for c in want.columns:  # same values (text stays text, numbers numbers); the unknown id all-missing
        a, b = got[c].tolist(), want[c].tolist()
        assert [x for k, x in enumerate(a) if k != 1] == [x for k, x in enumerate(b) if k != 1], c
        assert pd.isna(a[1]) and pd.isna(b[1])


def test_sql_source_sqlite_url(partner, tmp_path):
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'features.db'}"
    partner.to_sql("features", create_engine(url), index=False)
    _same_rows(url, "features", partner)
    with pytest.raises(ConfigError, match="nope"):
        open_source(f"{url}#table=nope")
    with pytest.raises(DataError, match="no id column"):
        open_source(f"{url}#table=features", id_column="customer")


@pytest.mark.skipif(not os.environ.get("JOINTML_TEST_PG_URL"), reason="no PostgreSQL (set JOINTML_TEST_PG_URL)")
def test_sql_source_postgresql(partner):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    # a database of our own (the CI role may create databases, not tables in `postgres`.public)
    admin_url = os.environ["JOINTML_TEST_PG_URL"]
    name = "jointml_serve_" + uuid.uuid4().hex[:10]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    table = "features"
    engine = create_engine(url)
    try:
        partner.to_sql(table, engine, index=False)
        _same_rows(url, table, partner)
        ids = list(np.asarray(partner["id"])[:500])  # one batch of many ids: one query
        got, found = open_source(f"{url}#table={table}").rows(ids)
        assert all(found) and got["age_in_years"].tolist() == partner["age_in_years"].iloc[:500].tolist()
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
