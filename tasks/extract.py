"""Extract: read users, products and events from a SQL database into the run's snapshot.

Any SQLAlchemy URL works (the embedded default is the demo store's SQLite file). Column
types are conformed to the dataset contract here (ids as strings, timestamps as UTC), so
every later stage sees the same types whatever the source. Passwords never reach a log.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import task
from prefect.logging import get_run_logger

from tasks.dataset import REQUIRED_COLUMNS
from tasks.run_context import TABLES, RunFolder, Snapshot

TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("signup_at",),
    "products": ("launched_at",),
    "events": ("occurred_at",),
}


class SourceError(RuntimeError):
    """The source could not be read; the message names the source and the table.

    `transient` errors (the database did not answer) are retried; the others (a missing
    table or column, a bad URL) would fail the same way again and are not.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except SourceError as error:
        return error.transient
    except Exception:
        return False
    return False


def masked_url(url: str) -> str:
    """The URL as it may be shown to people: password replaced by ***."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def conform_types(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Ids become strings, timestamps UTC; unparseable timestamps become NaT (and then
    fail validation naming the column) rather than being dropped."""
    frame = frame.copy()
    for column in ("user_id", "product_id"):
        if column in frame:
            frame[column] = frame[column].astype("string")
    for column in TIMESTAMP_COLUMNS.get(table, ()):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="mixed")
    if table == "products" and "in_stock" in frame:
        frame["in_stock"] = frame["in_stock"].astype("boolean")
    if table == "events":
        for column, dtype in (
            ("quantity", "Int64"),
            ("rating", "Float64"),
            ("unit_price", "Float64"),
        ):
            if column in frame:
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(dtype)
    return frame


def table_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table, independent of the file format it came in."""
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256(row_hashes.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


@task(
    name="extract-sql",
    retries=2,
    retry_delay_seconds=[5, 20],
    retry_condition_fn=_retry_if_transient,
)
def extract_sql(source_url: str, run: RunFolder, tables: dict[str, str] | None = None) -> Snapshot:
    """Read each table from `source_url` and write it to `snapshot/<table>.parquet`.

    `tables` maps our table names to the source's (default: the same names).
    """
    logger = get_run_logger()
    shown_url = masked_url(source_url)
    names = {table: table for table in TABLES} | (tables or {})
    try:
        url = sa.make_url(source_url)
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
        raise SourceError(f"cannot use database URL {shown_url}: {error}") from None
    except ImportError as error:
        raise SourceError(
            f"the database driver for {shown_url} is not installed ({error.name}); "
            "install it into the pipeline's environment"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # SQLite would silently create an empty database; say what is missing instead.
        raise SourceError(
            f"SQLite database {url.database} does not exist; build the demo store with "
            "`python -m tasks.demo_store` (or `make run`), or pass another source_url"
        )

    paths: dict[str, Path] = {}
    counts: dict[str, int] = {}
    fingerprints: list[str] = []
    try:
        with engine.connect() as connection:
            quote = engine.dialect.identifier_preparer.quote
            for table in TABLES:
                source_table = names[table]
                try:
                    frame = pd.read_sql(sa.text(f"SELECT * FROM {quote(source_table)}"), connection)
                except sa.exc.SQLAlchemyError as error:
                    raise SourceError(
                        f"cannot read table {source_table!r} from {shown_url}: "
                        f"{type(error.orig or error).__name__}: {error.orig or error}"
                    ) from None
                missing = [c for c in REQUIRED_COLUMNS[table] if c not in frame.columns]
                if missing:
                    raise SourceError(
                        f"table {source_table!r} in {shown_url} lacks required column(s) "
                        f"{missing}; the dataset contract needs {list(REQUIRED_COLUMNS[table])}"
                    )
                frame = conform_types(table, frame)
                path = run.sub("snapshot", f"{table}.parquet")
                frame.to_parquet(path, index=False)
                paths[table], counts[table] = path, len(frame)
                fingerprints.append(table_fingerprint(frame))
                logger.info("extracted %s: %d rows from %s", table, len(frame), shown_url)
    except sa.exc.OperationalError as error:
        raise SourceError(f"cannot connect to {shown_url}: {error.orig}", transient=True) from None
    finally:
        engine.dispose()

    fingerprint = hashlib.sha256("".join(fingerprints).encode()).hexdigest()
    return Snapshot(tables=paths, counts=counts, fingerprint=fingerprint, source=shown_url)


def read_table(snapshot: Snapshot, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one snapshot table (ids as strings, timestamps UTC, as extraction conformed them)."""
    return pd.read_parquet(snapshot.tables[table], columns=columns)
