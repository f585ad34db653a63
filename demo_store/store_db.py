"""Write a generated store into an embedded SQLite database, the pipeline's default source."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd

from demo_store.generate import Store

SCHEMA = """
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    signup_at     TEXT NOT NULL,
    birth_year    INTEGER,
    region        TEXT,
    skin_type     TEXT,
    skin_concerns TEXT
);
CREATE TABLE products (
    product_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    brand       TEXT,
    category    TEXT,
    ingredients TEXT,
    price       REAL,
    launched_at TEXT,
    in_stock    INTEGER NOT NULL
);
CREATE TABLE events (
    event_id     INTEGER PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(user_id),
    product_id   TEXT NOT NULL REFERENCES products(product_id),
    event_type   TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    quantity     INTEGER,
    unit_price   REAL,
    rating       INTEGER,
    search_query TEXT
);
CREATE INDEX events_user ON events(user_id, occurred_at);
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
CHUNK_ROWS = 500_000


def _as_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """SQLite-ready copy: timestamps as ISO text in UTC, missing values as NULL."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime(TIMESTAMP_FORMAT)
        elif out[column].dtype == bool:
            out[column] = out[column].astype(int)
    return out.astype(object).where(out.notna(), None)


def _insert(connection: sqlite3.Connection, table: str, frame: pd.DataFrame) -> None:
    placeholders = ", ".join("?" for _ in frame.columns)
    sql = f"INSERT INTO {table} ({', '.join(frame.columns)}) VALUES ({placeholders})"
    for begin in range(0, len(frame), CHUNK_ROWS):
        chunk = _as_rows(frame.iloc[begin : begin + CHUNK_ROWS])
        connection.executemany(sql, chunk.itertuples(index=False, name=None))


def write_store(store: Store, db_path: Path) -> Path:
    """Write the store to `db_path` (and `ground_truth.npz` beside it), atomically.

    The database is built under a temporary name and renamed into place, so a reader
    never sees a half-built store.
    """
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    partial = db_path.with_name(db_path.name + ".partial")
    partial.unlink(missing_ok=True)
    connection = sqlite3.connect(partial)
    try:
        connection.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        connection.executescript(SCHEMA)
        _insert(connection, "users", store.users)
        _insert(connection, "products", store.products)
        _insert(connection, "events", store.events)
        meta = {
            "preset": store.preset,
            "seed": str(store.seed),
            "generator": "demo_store",
            "counts": json.dumps(
                {
                    "users": len(store.users),
                    "products": len(store.products),
                    "events": len(store.events),
                }
            ),
        }
        connection.executemany("INSERT INTO store_meta VALUES (?, ?)", list(meta.items()))
        connection.commit()
    finally:
        connection.close()
    store.truth.save(ground_truth_path(db_path))
    os.replace(partial, db_path)
    return db_path


def ground_truth_path(db_path: Path) -> Path:
    """Where the generator keeps the hidden preference function of a store."""
    return Path(db_path).with_name("ground_truth.npz")
