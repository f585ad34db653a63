"""Shared fixtures: one Prefect test harness for the session, and a tiny demo store."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# Path parameters must stay inside the allowed roots: the tests' data roots are temporary
# folders, the benchmarks' and `make run`'s under the repository's data/.
os.environ.setdefault(
    "RECS_ALLOWED_ROOTS",
    os.pathsep.join([tempfile.gettempdir(), str(Path(__file__).resolve().parents[1] / "data")]),
)

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from demo_store import generate_store, ground_truth_path, write_store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_store_db(tmp_path_factory) -> Path:
    """The `tiny` preset, generated once per session (never modified by tests)."""
    path = tmp_path_factory.mktemp("tiny_store") / "store.db"
    return write_store(generate_store("tiny", seed=7), path)


@pytest.fixture
def data_root(tmp_path, tiny_store_db) -> Path:
    """A fresh data root holding its own copy of the tiny store at demo/store.db."""
    root = tmp_path / "data"
    (root / "demo").mkdir(parents=True)
    shutil.copy(tiny_store_db, root / "demo" / "store.db")
    shutil.copy(ground_truth_path(tiny_store_db), ground_truth_path(root / "demo" / "store.db"))
    return root


POSTGRES_URL = os.environ.get(
    "RECS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_schema():
    """A fresh schema in the local PostgreSQL, dropped afterwards: (engine, schema, url).

    Skips when no server is reachable, except under CI=true, where that is a failure.
    """
    import uuid

    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        engine.dispose()
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {error.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"recs_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield engine, schema, url
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def raw_store_tables(db_path: Path) -> dict:
    """The store's tables exactly as SQLite holds them (text timestamps, 0/1 flags)."""
    import sqlite3

    import pandas as pd

    with sqlite3.connect(db_path) as connection:
        return {
            table: pd.read_sql(f"SELECT * FROM {table}", connection)
            for table in ("users", "products", "events")
        }


# The longest tests (minutes each: whole demo-sized runs, a served deployment, every
# documented command) start first, so the two xdist workers are not left with one of them
# alone at the end of the run; the order changes the suite's wall time, never a result.
LONGEST_FIRST = (
    "tests/pipeline/test_docs.py::test_every_documented_command_runs",
    "tests/pipeline/test_reproducibility.py::",
    "tests/pipeline/test_reruns.py::",
    "tests/pipeline/test_prefect_server.py::",
    "tests/model/test_model_quality.py::",
    "tests/pipeline/test_publication_safety.py::",
    "tests/pipeline/test_monitoring_scenarios.py::",
    "tests/pipeline/test_faults.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next(
            (k for k, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
            len(LONGEST_FIRST),
        )

    items.sort(key=rank)  # stable: the rest keep their order
