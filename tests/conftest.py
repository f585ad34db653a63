"""Shared fixtures: one Prefect test harness for the session, and a tiny demo store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tasks.demo_store import generate_store, write_store  # noqa: E402

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
    return root
