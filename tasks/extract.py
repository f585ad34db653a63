"""Extract: read users, products and events from their sources into one conformed dataset.

The run's `source` (a SQLAlchemy URL or a folder of files) serves every table that
`[sources.<table>]` in dataset.toml does not send elsewhere, so events can come from
PostgreSQL, products from a catalogue API and users from a CRM export in one run. Every
table is conformed to the contract's types (tasks/contract.py) and written to
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

from tasks.contract import conform, missing_required
from tasks.dataset import DatasetSpec
from tasks.run_context import TABLES, RunFolder, Snapshot
from tasks.sources import SourceError, default_spec, read_source

FOREIGN_KEYS: tuple[tuple[str, str], ...] = (("user_id", "users"), ("product_id", "products"))


class IntegrationError(RuntimeError):
    """Too many events do not join the users or products."""


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
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256(row_hashes.tobytes())
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


@task(
    name="extract",
    retries=2,
    retry_delay_seconds=[5, 20],
    retry_condition_fn=_retry_if_transient,
)
def extract(
    source: str, dataset: DatasetSpec, run: RunFolder, max_unjoined_share: float = 0.01
) -> Snapshot:
    """Read, conform and integrate the three tables; write the snapshot."""
    logger = get_run_logger()
    default = default_spec(source)
    frames: dict[str, pd.DataFrame] = {}
    origins: dict[str, str] = {}
    for table in TABLES:
        spec = dataset.sources.get(table, default)
        raw, origin = read_source(table, spec, default.url, dataset.base_dir)
        missing = missing_required(table, raw)
        if missing:
            raise SourceError(
                f"{table} from {origin} lacks required column(s) {missing} "
                f"(it has {list(raw.columns)}); see the dataset contract in the README"
            )
        frames[table] = conform(table, raw, dataset)
        origins[table] = origin
        logger.info("extracted %s: %d rows from %s", table, len(raw), origin)

    events = frames["events"]
    orphan, reasons = unjoined_events(events, frames["users"], frames["products"])
    quarantined = {table: 0 for table in TABLES}
    if orphan.any():
        share = orphan.mean()
        quarantine = events[orphan].assign(quarantine_reason=reasons.to_numpy())
        quarantine.to_parquet(run.sub("quarantine", "events.parquet"), index=False)
        quarantined["events"] = int(orphan.sum())
        counts = reasons.value_counts().to_dict()
        if share > max_unjoined_share:
            raise IntegrationError(
                f"{orphan.sum():,} of {len(events):,} events ({share:.1%}) do not join: "
                + ", ".join(f"{n:,} with {reason}" for reason, n in counts.items())
                + f"; the limit is max_unjoined_share={max_unjoined_share:.1%}. They are in "
                f"{run.sub('quarantine', 'events.parquet')}; check that every source covers "
                "the same users and products"
            )
        logger.warning("quarantined %d events that do not join: %s", orphan.sum(), counts)
        frames["events"] = events[~orphan].reset_index(drop=True)

    known_types = set(dataset.events.weights) | set(dataset.events.transaction_types)
    type_counts = frames["events"]["event_type"].value_counts()
    ignored = {str(k): int(v) for k, v in type_counts.items() if k not in known_types}

    paths, row_counts, fingerprints = {}, {}, []
    for table in TABLES:
        path = run.sub("snapshot", f"{table}.parquet")
        frames[table].to_parquet(path, index=False)
        paths[table], row_counts[table] = path, len(frames[table])
        fingerprints.append(table_fingerprint(frames[table]))
    read_counts = {t: row_counts[t] + quarantined[t] for t in TABLES}

    create_table_artifact(
        key="extraction",
        table=[
            {
                "table": t,
                "source": origins[t],
                "rows_read": read_counts[t],
                "rows_kept": row_counts[t],
                "rows_quarantined": quarantined[t],
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
    )
