"""The same shop's data from SQLite, PostgreSQL, files, or several sources at once."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd
import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.ingest.sources import SourceError
from tasks.ingest.sources.sql import read_sql
from tasks.training.models.lightfm_hybrid import LightFMParams

from tests.conftest import REPO, raw_store_tables


def deterministic(seed: int, top_n: int, **model) -> dict:
    """NightlyParams under which equal inputs give equal outputs (one thread, a fixed seed),
    and the gate lets any model through: these tests compare data, not models."""
    return dict(
        model=LightFMParams(**model),
        num_threads=1,
        seed=seed,
        top_n=top_n,
        gate=GateParams(min_lift=-1.0, relaxed_on_purpose="the sources are under test"),
    )


DETERMINISTIC = deterministic(seed=3, top_n=10, no_components=16, epochs=8)


def run(data_root, **overrides):
    return nightly(NightlyParams(data_root=data_root, **(DETERMINISTIC | overrides)))


def published(summary) -> pd.DataFrame:
    recs = pd.read_parquet(summary.published_path)
    return recs[["user_id", "rank", "product_id", "score"]]


def write_files(tables: dict[str, pd.DataFrame], folder, formats: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    for table, fmt in formats.items():
        frame = tables[table]
        if fmt == "csv":
            frame.to_csv(folder / f"{table}.csv", index=False)
        elif fmt == "parquet":
            frame.to_parquet(folder / f"{table}.parquet", index=False)
        else:
            frame.to_json(folder / f"{table}.jsonl", orient="records", lines=True)


def snapshot_fingerprint(data_root, summary) -> str:
    import json

    metrics = json.loads((data_root / "runs" / summary.run_id / "metrics.json").read_text())
    return metrics["data"]["fingerprint"]


def test_sqlite_postgres_and_files_give_the_same_snapshot_and_recommendations(
    tmp_path, tiny_store_db, postgres_schema
):
    tables = raw_store_tables(tiny_store_db)

    sqlite_root = tmp_path / "sqlite"
    (sqlite_root / "demo").mkdir(parents=True)
    shutil.copy(tiny_store_db, sqlite_root / "demo" / "store.db")
    from_sqlite = run(sqlite_root)

    engine, schema, pg_url = postgres_schema
    for table, frame in tables.items():
        frame.to_sql(table, engine, schema=schema, index=False)
    from_postgres = run(tmp_path / "pg", source=pg_url)

    files = tmp_path / "shop_files"
    write_files(tables, files, {"users": "csv", "products": "jsonl", "events": "parquet"})
    shutil.copy(REPO / "dataset.toml", files / "dataset.toml")
    from_files = run(tmp_path / "files", source=str(files))

    fingerprints = {
        snapshot_fingerprint(tmp_path / "sqlite", from_sqlite),
        snapshot_fingerprint(tmp_path / "pg", from_postgres),
        snapshot_fingerprint(tmp_path / "files", from_files),
    }
    assert len(fingerprints) == 1
    pd.testing.assert_frame_equal(published(from_sqlite), published(from_postgres))
    pd.testing.assert_frame_equal(published(from_sqlite), published(from_files))


def test_mixed_sources_are_integrated_and_unjoined_events_reported(
    tmp_path, tiny_store_db, postgres_schema, monkeypatch
):
    """Events in PostgreSQL, products from a catalogue export, users from a CRM CSV."""
    tables = raw_store_tables(tiny_store_db)
    engine, schema, pg_url = postgres_schema
    tables["events"].rename(columns={"occurred_at": "occurred_at"}).to_sql(
        "web_events", engine, schema=schema, index=False
    )
    exports = tmp_path / "exports"
    exports.mkdir()
    tables["products"].to_json(exports / "catalogue.jsonl", orient="records", lines=True)
    # The CRM export misses one customer who has a few events: those cannot join.
    events_per_user = tables["events"]["user_id"].value_counts()
    missing_user = events_per_user[events_per_user.between(1, 30)].index[0]
    crm = tables["users"][tables["users"]["user_id"] != missing_user]
    crm.to_csv(exports / "crm_users.csv", index=False)

    config = tmp_path / "dataset.toml"
    config.write_text(
        (REPO / "dataset.toml").read_text()
        + """
[sources.events]
kind = "sql"
url_env = "SHOP_EVENTS_DB"
table = "web_events"

[sources.products]
kind = "files"
path = "exports/catalogue.jsonl"

[sources.users]
kind = "files"
path = "exports/crm_users.csv"
"""
    )
    monkeypatch.setenv("SHOP_EVENTS_DB", pg_url)
    summary = run(tmp_path / "data", dataset_config=config, source=str(exports))

    n_missing = int(events_per_user[missing_user])
    assert summary.quarantined == {"users": 0, "products": 0, "events": n_missing}
    assert summary.counts["events"] == len(tables["events"]) - n_missing
    quarantine = pd.read_parquet(
        tmp_path / "data" / "runs" / summary.run_id / "quarantine" / "events.parquet"
    )
    assert set(quarantine["user_id"]) == {missing_user}
    assert set(quarantine["quarantine_reason"]) == {"user_id not in users"}
    recs = published(summary)
    assert missing_user not in set(recs["user_id"])
    assert set(recs["user_id"]) == set(crm["user_id"])


@pytest.mark.parametrize(
    "table",
    [
        'users"; DROP TABLE victim; --',
        "users; DROP TABLE victim",
        "users WHERE 1=1",
        "a.b.c",
        "../users",
    ],
)
def test_table_names_from_configuration_cannot_inject_sql(postgres_schema, table):
    """On PostgreSQL: anything but a plain (schema.)table name is refused before a
    connection opens, and the table it tried to drop is still there."""
    engine, schema, url = postgres_schema
    pd.DataFrame({"x": [1]}).to_sql("victim", engine, schema=schema, index=False)
    with pytest.raises(SourceError, match="not a plain identifier"):
        read_sql(url, table)
    assert read_sql(url, f"{schema}.victim")["x"].tolist() == [1]


def test_table_names_are_quoted(postgres_schema):
    """A reserved word and mixed case are read as names, not as SQL or folded case."""
    engine, schema, url = postgres_schema
    for name in ("select", "Order"):
        pd.DataFrame({"x": [len(name)]}).to_sql(name, engine, schema=schema, index=False)
        assert read_sql(url, f"{schema}.{name}")["x"].tolist() == [len(name)]
        assert read_sql(url, name)["x"].tolist() == [len(name)]  # found on the search_path


def test_reading_in_chunks_gives_what_one_read_gives(tmp_path, postgres_schema, monkeypatch):
    """On SQLite and PostgreSQL, a table read in chunks of 3 rows equals the same table read
    at once, dtypes included, though the first chunks' `rating` and `note` are all NULL."""
    import sqlalchemy as sa

    import tasks.ingest.sources.sql as sql

    table = pd.DataFrame(
        {
            "event_id": range(10),
            "user_id": [f"u{i % 4}" for i in range(10)],
            "rating": [None] * 6 + [4.0, None, 5.0, 1.0],
            "note": [None] * 7 + ["ok", None, "good"],
        }
    )
    engine, schema, pg_url = postgres_schema
    sqlite_url = f"sqlite:///{tmp_path / 'chunks.db'}"
    table.to_sql("events", sa.create_engine(sqlite_url), index=False)
    table.to_sql("events", engine, schema=schema, index=False)
    sizes, real_read_sql = [], pd.read_sql
    monkeypatch.setattr(
        pd, "read_sql", lambda *a, **k: sizes.append(k.get("chunksize")) or real_read_sql(*a, **k)
    )
    for url in (sqlite_url, pg_url):
        at_once = read_sql(url, "events")
        monkeypatch.setattr(sql, "CHUNK_ROWS", 3)
        chunked = read_sql(url, "events")
        monkeypatch.setattr(sql, "CHUNK_ROWS", 1_000_000)
        pd.testing.assert_frame_equal(chunked, at_once)
        assert chunked["rating"].dtype == "float64"
        assert chunked["note"].iloc[:7].isna().all()
        assert chunked["note"].iloc[[7, 9]].tolist() == ["ok", "good"]
    assert sizes.count(3) == 2  # both chunked reads really asked for chunks of 3


def test_an_unreachable_database_is_retried_with_backoff_then_fails_clearly(tmp_path, caplog):
    """Nothing listens on port 1: the extraction is retried after its backoff (5 s), then
    the run stops with a message naming the database, and nothing is published."""
    data_root = tmp_path / "data"
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:1/test") as failure:
        nightly(
            NightlyParams(
                data_root=data_root,
                source="postgresql+psycopg://postgres@127.0.0.1:1/test",
                dataset_config=REPO / "dataset.toml",
                source_retries=1,
            )
        )
    assert failure.value.transient
    assert time.monotonic() - started >= 5  # the first retry's backoff was waited
    assert "Retry 1/1" in caplog.text
    assert not (data_root / "published").exists() and not (data_root / "models").exists()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canonical_order_equals_a_stable_pandas_sort_with_nulls_last(seed):
    """The Arrow sort behind canonical_order gives the rows in exactly the order of
    pandas' stable sort_values (nulls last in every key): snapshots, fingerprints and
    version ids stay what they were. Ties on every key keep their source order."""
    import numpy as np

    from tasks.ingest.contract import canonical_order, sort_order

    rng = np.random.default_rng(seed)
    n = 3_000
    words = np.array(["a", "B", "b", "é", "Z", "za", "ß", "日本", "😀", " a", "a ", ""])
    times = pd.to_datetime("2025-01-01", utc=True) + pd.to_timedelta(
        rng.integers(0, 50, n), unit="h"
    )
    frame = pd.DataFrame(
        {
            "occurred_at": pd.Series(times).astype("datetime64[us, UTC]"),
            "user_id": pd.array(rng.choice(words, n), dtype="string"),
            "product_id": pd.array(rng.choice(words, n), dtype="string"),
            "event_type": pd.array(rng.choice(["view", "purchase"], n), dtype="string"),
            "quantity": pd.array(rng.integers(0, 3, n), dtype="Int64"),
            "unit_price": pd.array(rng.choice([1.5, 2.0, 0.5], n), dtype="Float64"),
            "row": np.arange(n),  # to see which of the tied rows came first
        }
    )
    for column in ("occurred_at", "user_id", "product_id", "quantity", "unit_price"):
        frame.loc[rng.random(n) < 0.05, column] = None
    keys = ["occurred_at", "user_id", "product_id", "event_type", "quantity", "unit_price"]
    expected = frame.sort_values(keys, kind="stable", na_position="last")
    assert (sort_order(frame, keys) == expected.index.to_numpy()).all()
    events = frame.drop(columns="row")
    ordered = canonical_order("events", events)  # no event_id: every column is a key
    pd.testing.assert_frame_equal(
        ordered, events.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)
    )


def test_row_hashes_keep_row_order_and_depend_only_on_values():
    """Fingerprints and event keys: one hash per row, in row order even when DuckDB scans a
    many-chunk table on both cores, equal for equal values however pandas holds them."""
    from tasks.hashing import row_hashes

    rng = np.random.default_rng(3)
    n = 300_000
    frame = pd.DataFrame(
        {
            "user_id": pd.array(
                np.char.add("U", rng.integers(0, 5_000, n).astype(str)), dtype="string[pyarrow]"
            ),
            "event_type": pd.Categorical(rng.choice(["view", "purchase"], n)),
            "quantity": rng.integers(1, 4, n),
            "occurred_at": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        }
    )
    whole = row_hashes(frame)
    assert whole.dtype == np.uint64 and len(whole) == n
    pieces = [row_hashes(frame.iloc[begin : begin + 70_001]) for begin in range(0, n, 70_001)]
    np.testing.assert_array_equal(whole, np.concatenate(pieces))  # order kept
    reordered = frame.iloc[::-1].reset_index(drop=True)
    np.testing.assert_array_equal(row_hashes(reordered), whole[::-1])
    as_objects = frame.astype({"user_id": object, "event_type": object})
    np.testing.assert_array_equal(row_hashes(as_objects), whole)  # values, not dtypes
    keys = row_hashes(frame, ["user_id", "occurred_at"])
    duplicated = frame.duplicated(["user_id", "occurred_at"], keep=False).to_numpy()
    assert not duplicated.any() or (pd.Series(keys).duplicated(keep=False) == duplicated).all()
    assert len(np.unique(keys)) == len(frame.drop_duplicates(["user_id", "occurred_at"]))
