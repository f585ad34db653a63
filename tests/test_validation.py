"""Bad input stops the run before training, names file, column and rule, publishes nothing."""

from __future__ import annotations

import sqlite3

import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.extract import SourceError
from tasks.gate import GateParams
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


def test_unknown_product_in_events_fails_naming_file_column_and_rule(data_root):
    corrupt(data_root, "UPDATE events SET product_id = 'P-GHOST' WHERE event_id IN (3, 5)")
    with pytest.raises(DataValidationError) as failure:
        nightly(params(data_root))
    message = str(failure.value)
    assert "events.parquet: column 'product_id' failed expect_column_values_to_be_in_set" in message
    assert "2 of " in message and "'P-GHOST'" in message
    assert_nothing_trained_or_published(data_root)


def test_unparseable_timestamp_and_unknown_event_type_are_both_reported(data_root):
    corrupt(
        data_root,
        "UPDATE events SET occurred_at = 'not a date' WHERE event_id = 1",
        "UPDATE events SET event_type = 'teleport' WHERE event_id = 2",
    )
    with pytest.raises(DataValidationError) as failure:
        nightly(params(data_root))
    message = str(failure.value)
    assert "column 'occurred_at' failed expect_column_values_to_not_be_null" in message
    assert "column 'event_type' failed expect_column_values_to_be_in_set" in message
    assert "'teleport'" in message
    assert_nothing_trained_or_published(data_root)


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
        SourceError, match=r"table 'events'.*lacks required column\(s\) \['event_type'\]"
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
        nightly(params(data_root, source_url=url, source_retries=0))
    assert "s3cret-pw" not in str(failure.value)
    assert "***" in str(failure.value)
