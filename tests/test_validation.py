"""Bad input stops the run before training, names file, column and rule, publishes nothing."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.extract import IntegrationError
from tasks.gate import GateParams
from tasks.sources import SourceError
from tasks.validate import DataValidationError


def params(data_root, **overrides):
    return NightlyParams(data_root=data_root, gate=GateParams(min_lift=-1.0), **overrides)


def corrupt(data_root, *statements):
    with sqlite3.connect(data_root / "demo" / "store.db") as connection:
        for statement in statements:
            connection.execute(statement)


def assert_nothing_trained_or_published(data_root):
    assert not (data_root / "published").exists()
    (run,) = (data_root / "runs").iterdir()
    assert (run / "snapshot" / "events.parquet").exists()
    assert not (run / "models").exists(), "training must not start after a critical failure"


def test_a_few_orphan_events_are_quarantined_with_a_reason(data_root):
    corrupt(data_root, "UPDATE events SET product_id = 'P-GHOST' WHERE event_id IN (3, 5)")
    summary = nightly(params(data_root))
    assert summary.published_version is not None
    quarantine = pd.read_parquet(
        data_root / "runs" / summary.run_id / "quarantine" / "events.parquet"
    )
    assert sorted(quarantine["event_id"]) == ["3", "5"]
    assert set(quarantine["quarantine_reason"]) == {"product_id not in products"}
    assert (quarantine["product_id"] == "P-GHOST").all()  # original values kept
    with sqlite3.connect(data_root / "demo" / "store.db") as connection:
        n_events = connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert summary.counts["events"] + summary.quarantined["events"] == n_events


def test_many_orphan_events_stop_the_run_naming_the_column(data_root):
    corrupt(data_root, "UPDATE events SET user_id = 'U-GHOST' WHERE event_id % 10 = 0")
    with pytest.raises(IntegrationError, match=r"do not join: [\d,]+ with user_id not in users"):
        nightly(params(data_root))
    (run,) = (data_root / "runs").iterdir()
    quarantine = pd.read_parquet(run / "quarantine" / "events.parquet")
    assert (quarantine["user_id"] == "U-GHOST").all() and len(quarantine) > 0
    assert not (run / "models").exists() and not (data_root / "published").exists()


def test_unparseable_timestamp_fails_and_unknown_event_type_is_ignored(data_root):
    corrupt(
        data_root,
        "UPDATE events SET occurred_at = 'not a date' WHERE event_id = 1",
        "UPDATE events SET event_type = 'teleport' WHERE event_id IN (2, 4)",
    )
    with pytest.raises(DataValidationError) as failure:
        nightly(params(data_root))
    message = str(failure.value)
    assert (
        "events.parquet: column 'occurred_at' failed expect_column_values_to_not_be_null" in message
    )
    assert "1 of " in message
    assert "event_type" not in message  # a type without a weight is not an error
    assert_nothing_trained_or_published(data_root)


def test_unknown_event_types_are_counted_in_the_summary(data_root):
    corrupt(data_root, "UPDATE events SET event_type = 'teleport' WHERE event_id IN (2, 4)")
    summary = nightly(params(data_root))
    assert summary.ignored_event_types == {"teleport": 2}
    assert "event types ignored (no weight in dataset.toml): {'teleport': 2}" in summary.render()


def test_duplicate_user_ids_fail(data_root):
    corrupt(
        data_root,
        "CREATE TABLE users_copy AS SELECT * FROM users",
        "DROP TABLE users",
        "CREATE TABLE users AS SELECT * FROM users_copy UNION ALL "
        "SELECT * FROM users_copy WHERE user_id = 'U0000001'",
    )
    with pytest.raises(
        DataValidationError,
        match="users.parquet: column 'user_id' failed expect_column_values_to_be_unique",
    ):
        nightly(params(data_root))


def test_missing_required_column_is_a_clear_source_error(data_root):
    corrupt(data_root, "ALTER TABLE events DROP COLUMN event_type")
    with pytest.raises(
        SourceError, match=r"events from .* lacks required column\(s\) \['event_type'\]"
    ):
        nightly(params(data_root))
    assert not (data_root / "published").exists()


def test_missing_sqlite_file_is_named_and_not_created(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        nightly(params(tmp_path / "empty"))
    assert not (tmp_path / "empty" / "demo" / "store.db").exists()


def test_password_never_appears_in_errors(data_root):
    url = "postgresql+psycopg://shop:s3cret-pw@127.0.0.1:1/shop"
    with pytest.raises(SourceError) as failure:
        nightly(params(data_root, source=url, source_retries=0))
    assert "s3cret-pw" not in str(failure.value)
    assert "***" in str(failure.value)
