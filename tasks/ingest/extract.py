"""Extract: read users, products and events from their sources into one conformed dataset.

The run's `source` (a SQLAlchemy URL or a folder of files) serves every table that
`[sources.<table>]` in dataset.toml does not send elsewhere, so events can come from
PostgreSQL, products from a catalogue API and users from a CRM export in one run. Every
table is conformed to the contract's types (tasks/ingest/contract.py) and written to
`snapshot/<table>.parquet` with a content fingerprint, so any run can be replayed.

Integration: events whose user or product is in none of the sources do not join. They
are moved, with a reason, to `quarantine/events.parquet` and counted; when more than
`max_unjoined_share` of the events do not join, the run stops naming the column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from tasks.config_schema import suggest
from tasks.dataset import DatasetSpec, SourceSpec
from tasks.errors import ConfigError, DataValidationError, IntegrationError
from tasks.hashing import row_hashes
from tasks.ingest.central import (
    load_central_state,
    merge_new_events,
    read_central_events,
    since_for,
)
from tasks.ingest.clean import normalise_text
from tasks.ingest.contract import (
    ambiguous_dates,
    canonical_order,
    conform_types,
    missing_required,
    type_word,
    unparseable,
)
from tasks.ingest.sources import SourceError, default_spec, read_source
from tasks.run_context import TABLES, RunFolder, Snapshot
from tasks.validation.quarantine import append_quarantine, quarantine_rows, row_labels

FOREIGN_KEYS: tuple[tuple[str, str], ...] = (("user_id", "users"), ("product_id", "products"))


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except SourceError as error:
        return error.transient
    except Exception:
        return False
    return False


def table_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table, independent of the file format it came in."""
    digest = hashlib.sha256(row_hashes(frame).tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def unjoined_events(events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame):
    """Boolean mask of events that do not join, and a reason per such event."""
    reasons = pd.Series("", index=events.index, dtype="string")
    for column, table in FOREIGN_KEYS:
        known = (users if table == "users" else products)[column]
        orphan = ~events[column].isin(known) & events[column].notna()
        reasons[orphan] = reasons[orphan] + f"{column} not in {table}; "
    mask = reasons != ""
    return mask.to_numpy(), reasons[mask].str.rstrip("; ")


def check_declared_columns(
    dataset: DatasetSpec, table: str, columns: list[str], origin: str
) -> None:
    """ConfigError naming every column dataset.toml declares that `table` does not have."""
    absent = [(where, c) for where, c in dataset.declared_columns(table) if c not in columns]
    if not absent:
        return
    lines = "\n".join(
        f"  - {where}: column {column!r} is not in {table}{suggest(column, columns)}"
        for where, column in absent
    )
    raise ConfigError(
        f"{dataset.source_file or 'dataset.toml'} declares column(s) of {table} that {origin} "
        f"does not have (its columns: {', '.join(columns)}):\n{lines}"
    )


def refuse_ambiguous_dates(
    dataset: DatasetSpec, table: str, raw: pd.DataFrame, origin: str
) -> None:
    """DataValidationError when a timestamp column holds digit-only day/month dates and
    dataset.toml does not say which comes first (13/05 and 05/06 would mean different
    orders in one column)."""
    if dataset.timestamp_format(table):
        return
    for column in dataset.timestamp_columns(table):
        if column not in raw:
            continue
        found = ambiguous_dates(raw[column])
        if len(found):
            section = "events" if table == "events" else table
            raise DataValidationError(
                f"{origin}: column {column!r} has {len(found):,} date(s) written with digits "
                f"only, day and month first (e.g. {', '.join(found.head(3))}): whether "
                "05/06 is May or June cannot be told. Declare the format in "
                f"{dataset.source_file or 'dataset.toml'}: [{section}] timestamp_format = "
                '"%d/%m/%Y %H:%M" (or the order your shop writes)'
            )


@dataclass
class Extracted:
    """What extraction has gathered, per table: the conformed rows, where they came from
    (as the user knows it), how many rows were read and how many were set aside. The
    artifact and the snapshot both read it, so the counts they show are the same."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    read_counts: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))


def read_checked(
    table: str, spec: SourceSpec, default_url: str | None, dataset: DatasetSpec
) -> tuple[pd.DataFrame, str]:
    """(`table` as its source gives it, its origin), refused before any value is parsed
    when it lacks a required column or one dataset.toml declares, or holds dates whose
    day/month order cannot be told: those are mistakes to fix, not rows to set aside."""
    raw, origin = read_source(table, spec, default_url, dataset.base_dir)
    raw.columns = [str(column).strip() for column in raw.columns]
    missing = missing_required(table, raw)
    if missing:
        raise SourceError(
            f"{table} from {origin} lacks required column(s) {missing} "
            f"(it has {list(raw.columns)}); see the dataset contract in docs/data.md"
        )
    check_declared_columns(dataset, table, list(raw.columns), origin)
    refuse_ambiguous_dates(dataset, table, raw, origin)
    return raw, origin


def conform(
    table: str, raw: pd.DataFrame, dataset: DatasetSpec
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(the rows conformed to the contract, in canonical order; the rows set aside, as
    quarantine rows, or None when every value could be read). A value that cannot be read
    as its column's type (text in a numeric column, a date nobody can read) costs its row,
    not the run, and the row is kept as it came so a person can see what was wrong."""
    typed = conform_types(table, raw, dataset)
    bad_values = unparseable(raw, typed)
    unreadable = None
    if bad_values:
        labels = {
            f"column {c!r} readable as {type_word(typed[c])}": m for c, m in bad_values.items()
        }
        bad = np.logical_or.reduce(list(labels.values()))
        failed = row_labels(len(raw), labels)[bad]
        unreadable = quarantine_rows(raw[bad], failed, "unreadable value: " + failed)
        typed = typed[~bad]
    return canonical_order(table, normalise_text(table, typed, dataset)), unreadable


def check_column_means(dataset: DatasetSpec, columns: list[str]) -> None:
    """ConfigError when [validation] column_means names a column no table has: a mean
    check on a misspelt column would otherwise pass silently, checking nothing."""
    for column in dataset.validation.column_means:
        if column not in columns:
            raise ConfigError(
                f"{dataset.source_file or 'dataset.toml'}: [validation] column_means names "
                f"{column!r}, which no table has{suggest(column, columns)}"
            )


def events_since(events: pd.DataFrame, since: datetime) -> tuple[pd.DataFrame, int]:
    """(the events at or after `since`, how many older ones were skipped)."""
    before = events["occurred_at"] < pd.Timestamp(since)
    return events[~before].reset_index(drop=True), int(before.sum())


def unjoined_message(
    n_unjoined: int, n_events: int, counts: dict[str, int], max_share: float, where: Path
) -> str:
    """Why the run stops when too many events do not join, and where they were put."""
    return (
        f"{n_unjoined:,} of {n_events:,} events ({n_unjoined / n_events:.1%}) do not join: "
        + ", ".join(f"{n:,} with {reason}" for reason, n in counts.items())
        + f"; the limit is max_unjoined_share={max_share:.1%}. They are in "
        f"{where}; check that every source covers the same users and products"
    )


def ignored_event_types(events: pd.DataFrame, dataset: DatasetSpec) -> dict[str, int]:
    """Event types dataset.toml gives no weight (and does not call transactions), with
    their counts: carried in the data, used by nothing, so the run says so."""
    known = set(dataset.events.weights) | set(dataset.events.transaction_types)
    counts = events["event_type"].value_counts()
    return {str(k): int(v) for k, v in counts.items() if k not in known}


def extraction_rows(got: Extracted, in_dataset: dict[str, int], n_new: int, already: int):
    """The extraction artifact's table: per table, read = quarantined + new (+ already
    ingested, for the events of an incremental run)."""
    return [
        {
            "table": t,
            "source": got.origins[t],
            "rows_read": got.read_counts[t],
            "rows_quarantined": got.quarantined[t],
            "rows_new": n_new if t == "events" else got.read_counts[t] - got.quarantined[t],
            "rows_already_ingested": already if t == "events" else 0,
            "rows_in_dataset": in_dataset[t],
        }
        for t in TABLES
    ]


def _read_tables(source: str, dataset: DatasetSpec, run: RunFolder, logger) -> Extracted:
    """Read and conform every table; set aside its unreadable rows in its quarantine."""
    default = default_spec(source)
    got = Extracted()
    for table in TABLES:
        spec = dataset.sources.get(table, default)
        raw, origin = read_checked(table, spec, default.url, dataset)
        got.frames[table], unreadable = conform(table, raw, dataset)
        if unreadable is not None:
            append_quarantine(run.quarantine(table), unreadable)
            got.quarantined[table] += len(unreadable)
        got.origins[table] = origin
        got.read_counts[table] = len(raw)
        logger.info("extracted %s: %d rows from %s", table, len(raw), origin)
    return got


def _drop_unjoined(
    events: pd.DataFrame, got: Extracted, run: RunFolder, max_share: float, logger
) -> pd.DataFrame:
    """The events that join users and products; the others go to the events' quarantine
    (before the run may stop, so the message can point at them) and are counted."""
    where = run.quarantine("events")
    orphan, reasons = unjoined_events(events, got.frames["users"], got.frames["products"])
    if not orphan.any():
        return events
    append_quarantine(where, quarantine_rows(events[orphan], "foreign key: " + reasons, reasons))
    got.quarantined["events"] += int(orphan.sum())
    counts = reasons.value_counts().to_dict()
    if orphan.mean() > max_share:
        raise IntegrationError(
            unjoined_message(int(orphan.sum()), len(events), counts, max_share, where)
        )
    logger.warning("quarantined %d events that do not join: %s", orphan.sum(), counts)
    return events[~orphan].reset_index(drop=True)


def _write_snapshot(frames: dict[str, pd.DataFrame], run: RunFolder):
    """(path, rows) per table under `snapshot/`, and one fingerprint of all three."""
    paths, row_counts, fingerprints = {}, {}, []
    for table in TABLES:
        path = run.sub("snapshot", f"{table}.parquet")
        frames[table].to_parquet(path, index=False)
        paths[table], row_counts[table] = path, len(frames[table])
        fingerprints.append(table_fingerprint(frames[table]))
    return paths, row_counts, hashlib.sha256("".join(fingerprints).encode()).hexdigest()


@task(
    name="extract",
    retries=2,
    retry_delay_seconds=[5, 20],
    retry_condition_fn=_retry_if_transient,
)
def extract(
    source: str,
    dataset: DatasetSpec,
    run: RunFolder,
    max_unjoined_share: float = 0.01,
    incremental: bool = False,
    late_arrival_hours: float = 72.0,
) -> Snapshot:
    """Read, conform and integrate the three tables; write the snapshot.

    incremental: keep only events at or after the central dataset's high-water mark minus
    `late_arrival_hours`, and add the ones not ingested yet to the central dataset's events.
    """
    logger = get_run_logger()
    state = load_central_state(run.data_root) if incremental else None
    since = since_for(state, late_arrival_hours)
    got = _read_tables(source, dataset, run, logger)
    check_column_means(dataset, sorted(set().union(*(got.frames[t].columns for t in TABLES))))
    events = got.frames["events"]
    if since is not None:
        events, skipped = events_since(events, since)
        got.read_counts["events"] = len(events) + got.quarantined["events"]
        logger.info(
            "incremental: %d events since %s (%d older skipped)", len(events), since, skipped
        )
    events = _drop_unjoined(events, got, run, max_unjoined_share, logger)

    central = read_central_events(run.data_root, state) if state else None
    merged, new, repeated, already_ingested = merge_new_events(central, events)
    if len(repeated):
        append_quarantine(
            run.quarantine("events"),
            quarantine_rows(repeated, "unique event", "duplicate of another event in this extract"),
        )
        got.quarantined["events"] += len(repeated)
    got.frames["events"] = merged
    new_events_path = run.sub("central", "new_events.parquet")
    new.to_parquet(new_events_path, index=False)

    ignored = ignored_event_types(merged, dataset)
    paths, row_counts, fingerprint = _write_snapshot(got.frames, run)
    create_table_artifact(
        key="extraction",
        table=extraction_rows(got, row_counts, len(new), already_ingested),
        description="what each source gave, and what did not join"
        + (f"; event types ignored (no weight): {ignored}" if ignored else ""),
    )
    return Snapshot(
        tables=paths,
        counts=row_counts,
        fingerprint=fingerprint,
        sources=got.origins,
        read_counts=got.read_counts,
        quarantined=got.quarantined,
        ignored_event_types=ignored,
        new_events=new_events_path,
        n_new_events=len(new),
        n_already_ingested=already_ingested,
        high_water_mark=merged["occurred_at"].max() if len(merged) else None,
        incremental=incremental,
    )
