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

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from tasks.config_schema import suggest
from tasks.dataset import DatasetSpec
from tasks.errors import ConfigError, DataValidationError, IntegrationError
from tasks.hashing import row_hashes
from tasks.ingest.central import load_state, merge_new_events, read_central_events, since_for
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
    state = load_state(run.data_root) if incremental else None
    since = since_for(state, late_arrival_hours)
    default = default_spec(source)
    frames: dict[str, pd.DataFrame] = {}
    origins: dict[str, str] = {}
    read_counts: dict[str, int] = {}
    quarantined = {table: 0 for table in TABLES}
    for table in TABLES:
        spec = dataset.sources.get(table, default)
        raw, origin = read_source(table, spec, default.url, dataset.base_dir)
        raw.columns = [str(column).strip() for column in raw.columns]
        missing = missing_required(table, raw)
        if missing:
            raise SourceError(
                f"{table} from {origin} lacks required column(s) {missing} "
                f"(it has {list(raw.columns)}); see the dataset contract in the README"
            )
        check_declared_columns(dataset, table, list(raw.columns), origin)
        refuse_ambiguous_dates(dataset, table, raw, origin)
        typed = conform_types(table, raw, dataset)
        bad_values = unparseable(raw, typed)
        if bad_values:
            # Text in a numeric column, a date nobody can read: set aside as it came.
            labels = {
                f"column {c!r} readable as {type_word(typed[c])}": m for c, m in bad_values.items()
            }
            bad = np.logical_or.reduce(list(labels.values()))
            failed = row_labels(len(raw), labels)[bad]
            append_quarantine(
                run.quarantine(table),
                quarantine_rows(raw[bad], failed, "unreadable value: " + failed),
            )
            quarantined[table] += int(bad.sum())
            typed = typed[~bad]
        frames[table] = canonical_order(table, normalise_text(table, typed, dataset))
        origins[table] = origin
        read_counts[table] = len(raw)
        logger.info("extracted %s: %d rows from %s", table, len(raw), origin)

    columns = sorted(set().union(*(frames[t].columns for t in TABLES)))
    for column in dataset.validation.column_means:
        if column not in columns:
            raise ConfigError(
                f"{dataset.source_file or 'dataset.toml'}: [validation] column_means names "
                f"{column!r}, which no table has{suggest(column, columns)}"
            )
    events = frames["events"]
    if since is not None:
        before = events["occurred_at"] < pd.Timestamp(since)
        events = events[~before].reset_index(drop=True)
        read_counts["events"] = len(events) + quarantined["events"]
        logger.info(
            "incremental: %d events since %s (%d older skipped)", len(events), since, before.sum()
        )
    events_quarantine = run.quarantine("events")
    orphan, reasons = unjoined_events(events, frames["users"], frames["products"])
    if orphan.any():
        share = orphan.mean()
        append_quarantine(
            events_quarantine,
            quarantine_rows(events[orphan], "foreign key: " + reasons, reasons),
        )
        quarantined["events"] += int(orphan.sum())
        counts = reasons.value_counts().to_dict()
        if share > max_unjoined_share:
            raise IntegrationError(
                f"{orphan.sum():,} of {len(events):,} events ({share:.1%}) do not join: "
                + ", ".join(f"{n:,} with {reason}" for reason, n in counts.items())
                + f"; the limit is max_unjoined_share={max_unjoined_share:.1%}. They are in "
                f"{events_quarantine}; check that every source covers the same users and "
                "products"
            )
        logger.warning("quarantined %d events that do not join: %s", orphan.sum(), counts)
        events = events[~orphan].reset_index(drop=True)

    central = read_central_events(run.data_root, state) if state else None
    merged, new, repeated, already_ingested = merge_new_events(central, events)
    if len(repeated):
        append_quarantine(
            events_quarantine,
            quarantine_rows(repeated, "unique event", "duplicate of another event in this extract"),
        )
        quarantined["events"] += len(repeated)
    frames["events"] = merged
    new_events_path = run.sub("central", "new_events.parquet")
    new.to_parquet(new_events_path, index=False)

    known_types = set(dataset.events.weights) | set(dataset.events.transaction_types)
    type_counts = frames["events"]["event_type"].value_counts()
    ignored = {str(k): int(v) for k, v in type_counts.items() if k not in known_types}

    paths, row_counts, fingerprints = {}, {}, []
    for table in TABLES:
        path = run.sub("snapshot", f"{table}.parquet")
        frames[table].to_parquet(path, index=False)
        paths[table], row_counts[table] = path, len(frames[table])
        fingerprints.append(table_fingerprint(frames[table]))

    create_table_artifact(
        key="extraction",
        table=[
            {
                "table": t,
                "source": origins[t],
                "rows_read": read_counts[t],
                "rows_quarantined": quarantined[t],
                "rows_new": len(new) if t == "events" else read_counts[t] - quarantined[t],
                "rows_already_ingested": already_ingested if t == "events" else 0,
                "rows_in_dataset": row_counts[t],
            }
            for t in TABLES
        ],
        description="what each source gave, and what did not join"
        + (f"; event types ignored (no weight): {ignored}" if ignored else ""),
    )
    return Snapshot(
        tables=paths,
        counts=row_counts,
        read_counts=read_counts,
        quarantined=quarantined,
        ignored_event_types=ignored,
        fingerprint=hashlib.sha256("".join(fingerprints).encode()).hexdigest(),
        sources=origins,
        new_events=new_events_path,
        n_new_events=len(new),
        n_already_ingested=already_ingested,
        high_water_mark=merged["occurred_at"].max() if len(merged) else None,
        incremental=incremental,
    )
