"""Bad input stops the run before training, names file, column and rule, publishes nothing."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.ingest.extract import IntegrationError
from tasks.ingest.sources import SourceError
from tasks.validation.validate import DataValidationError


def params(data_root, **overrides):
    return NightlyParams(data_root=data_root, gate=GateParams(min_lift=-1.0, relaxed_on_purpose="validation is under test"), **overrides)


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


def test_bad_rows_are_quarantined_by_id_with_the_failed_rule(data_root):
    corrupt(
        data_root,
        "UPDATE events SET occurred_at = 'not a date' WHERE event_id = 1",
        "UPDATE events SET rating = 9 WHERE event_id = (SELECT MIN(event_id) FROM events "
        "WHERE event_type = 'review')",
        "UPDATE events SET event_type = 'teleport' WHERE event_id IN (2, 4)",
    )
    summary = nightly(params(data_root))
    assert summary.published_version is not None
    run = data_root / "runs" / summary.run_id
    quarantine = pd.read_parquet(run / "quarantine" / "events.parquet").set_index("event_id")
    assert len(quarantine) == 2
    assert quarantine.loc["1", "failed_expectations"] == (
        "column 'occurred_at' readable as a timestamp"
    )
    assert quarantine.loc["1", "occurred_at"] == "not a date"  # as it came
    rated = quarantine.drop(index="1")
    assert float(rated["rating"].iloc[0]) == 9  # original values kept
    assert rated["failed_expectations"].iloc[0] == (
        "column 'rating' expect_column_values_to_be_between"
    )
    # read = clean + quarantined, and the summary says so
    account = summary.row_accounting["events"]
    assert account["read"] == account["clean"] + account["quarantined"]
    assert account["quarantined"] == 2
    assert "events: read " in summary.render()
    clean = pd.read_parquet(run / "clean" / "events.parquet")
    assert not set(clean["event_id"]) & set(quarantine.index)
    # a type without a weight is kept (and counted), not quarantined
    assert summary.ignored_event_types == {"teleport": 2}
    assert {"2", "4"} <= set(clean["event_id"])


def test_too_many_bad_rows_stop_the_run_naming_file_column_and_rule(data_root):
    corrupt(data_root, "UPDATE events SET quantity = 0 WHERE event_type = 'purchase'")
    with pytest.raises(DataValidationError) as failure:
        nightly(params(data_root))
    message = str(failure.value)
    assert "(table events): " in message and "above max_quarantine_share 1.0%" in message
    assert "failed column 'quantity' expect_column_values_to_be_between" in message
    assert_nothing_trained_or_published(data_root)
    (run,) = (data_root / "runs").iterdir()
    accounting = json.loads((run / "row_accounting.json").read_text())
    events = accounting["events"]
    assert events["read"] == events["clean"] + events["quarantined"] > 0


def test_an_empty_table_stops_the_run(data_root):
    corrupt(data_root, "DELETE FROM events")
    with pytest.raises(
        DataValidationError,
        match=r"store.db \(table events\): table failed "
        r"expect_table_row_count_to_be_between: observed 0",
    ):
        nightly(params(data_root))
    assert_nothing_trained_or_published(data_root)


def test_data_docs_show_the_failed_expectations(data_root):
    corrupt(
        data_root,
        "UPDATE events SET rating = 9 WHERE event_id = (SELECT MIN(event_id) "
        "FROM events WHERE event_type = 'review')",
    )
    summary = nightly(params(data_root))
    docs = summary.data_docs
    assert (docs / "index.html").exists()
    (page,) = (docs / "validations" / "events").rglob("*.html")
    html = page.read_text()
    assert "rating" in html and "Failed" in html


def test_unknown_event_types_are_counted_in_the_summary(data_root):
    corrupt(data_root, "UPDATE events SET event_type = 'teleport' WHERE event_id IN (2, 4)")
    summary = nightly(params(data_root))
    assert summary.ignored_event_types == {"teleport": 2}
    assert "event types ignored (no weight in dataset.toml): {'teleport': 2}" in summary.render()


def test_duplicate_user_ids_are_quarantined_with_their_events(data_root):
    with sqlite3.connect(data_root / "demo" / "store.db") as connection:
        (user,) = connection.execute(
            "SELECT user_id FROM events GROUP BY user_id HAVING COUNT(*) BETWEEN 5 AND 60 "
            "ORDER BY user_id LIMIT 1"
        ).fetchone()
    corrupt(
        data_root,
        "CREATE TABLE users_copy AS SELECT * FROM users",
        "DROP TABLE users",
        "CREATE TABLE users AS SELECT * FROM users_copy UNION ALL "
        f"SELECT * FROM users_copy WHERE user_id = '{user}'",
    )
    summary = nightly(params(data_root))
    run = data_root / "runs" / summary.run_id
    users = pd.read_parquet(run / "quarantine" / "users.parquet")
    assert list(users["user_id"]) == [user, user]
    assert set(users["failed_expectations"]) == {
        "column 'user_id' expect_column_values_to_be_unique"
    }
    events = pd.read_parquet(run / "quarantine" / "events.parquet")
    assert set(events["user_id"]) == {user}
    assert set(events["failed_expectations"]) == {
        "column 'user_id' expect_column_values_to_be_in_set"
    }
    recs = pd.read_parquet(summary.published_path)
    assert user not in set(recs["user_id"])


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


def test_password_never_appears_in_errors(data_root, monkeypatch):
    url = "postgresql+psycopg://shop:s3cret-pw@127.0.0.1:1/shop"
    with pytest.raises(ValueError, match="source holds a password") as refused:
        params(data_root, source=url)  # a parameter Prefect would record: refused
    assert "s3cret-pw" not in str(refused.value)
    monkeypatch.setenv("RECS_SOURCE", url)
    with pytest.raises(SourceError) as failure:
        nightly(params(data_root, source_retries=0))
    assert "s3cret-pw" not in str(failure.value)
    assert "***" in str(failure.value)


def test_two_expectations_ge_would_merge_are_refused():
    from tasks.validation.validate import gx_context, run_suite

    twice = {
        "name": "events",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "rating", "min_value": 1},
            },
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "rating", "max_value": 5},
            },
        ],
    }
    frame = pd.DataFrame({"rating": [1.0, 3.0]})
    with pytest.raises(
        ValueError, match="two expect_column_values_to_be_between expectations on column 'rating'"
    ):
        run_suite(gx_context(), "events", "events.csv", frame, twice)
