"""The central dataset: every event ever ingested, appended run by run.

    data/central/events/part-<run_id>.parquet   the events each run added
    data/central/state.json                     high-water mark, parts, where data came from

A `full` extraction replaces the central dataset with what it read. An `incremental`
one reads only events at or after (high-water mark - late_arrival_hours), so a late event
is still caught, drops those already present (same `event_id`, or when a source has none,
same user, product, type and time) and appends the rest. Running twice on the same data
therefore changes nothing. The central dataset and its high-water mark move only after
the run's data passed validation (`commit_central`).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from pydantic import BaseModel

from tasks.atomic import write_text_atomically
from tasks.errors import DataValidationError
from tasks.hashing import row_hashes
from tasks.ingest.contract import canonical_order
from tasks.run_context import DataRoot, RunFolder, Snapshot

KEY_COLUMNS = ("user_id", "product_id", "event_type", "occurred_at")


class CentralState(BaseModel):
    high_water_mark: datetime | None = None
    parts: list[str] = []
    events: int = 0
    sources: dict[str, str] = {}
    updated_at: datetime | None = None
    last_run_id: str | None = None


def central_dir(data_root: Path) -> Path:
    return DataRoot.of(data_root).central


def load_central_state(data_root: Path) -> CentralState | None:
    """The central dataset's state.json (high-water mark, parts), or None before the first
    commit: an incremental run then reads everything."""
    path = central_dir(data_root) / "state.json"
    return CentralState.model_validate_json(path.read_text()) if path.exists() else None


def since_for(state: CentralState | None, late_arrival_hours: float) -> datetime | None:
    """Where an incremental read starts; None = read everything."""
    if state is None or state.high_water_mark is None:
        return None
    return state.high_water_mark - timedelta(hours=late_arrival_hours)


def event_keys(events: pd.DataFrame) -> np.ndarray:
    """A 64-bit key per event: its event_id, or its user, product, type and time."""
    if "event_id" in events and events["event_id"].notna().all():
        columns = ["event_id"]
    else:
        columns = list(KEY_COLUMNS)
    return row_hashes(events, columns)


def clean_new_events(new_events: Path, clean_events: pd.DataFrame) -> tuple[Path, int]:
    """Keep, among the events new to the central dataset, only those validation kept: a
    quarantined row (an event dated 2999, an orphan) never enters the central dataset,
    so it can neither move the high-water mark nor be served to later runs. Rewrites the
    file in place; returns it and how many events it now holds."""
    new = pd.read_parquet(new_events)
    kept = new[np.isin(event_keys(new), event_keys(clean_events))]
    if len(kept) != len(new):
        kept.to_parquet(new_events, index=False)
    return new_events, len(kept)


def read_central_events(data_root: Path, state: CentralState) -> pd.DataFrame | None:
    parts = [central_dir(data_root) / "events" / name for name in state.parts]
    if not parts:
        return None
    return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)


def merge_new_events(
    central: pd.DataFrame | None, batch: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """Returns (all events, the new ones, repeats within the batch, how many of the batch
    the central dataset already held). `batch` comes in canonical order (extract sorts
    it), so without a central dataset its first occurrences are all events as they are."""
    batch_keys = event_keys(batch)
    first_in_batch = ~pd.Series(batch_keys).duplicated().to_numpy()
    repeated = batch[~first_in_batch]
    if central is None:
        new = batch[first_in_batch]
        return new.reset_index(drop=True), new, repeated, 0
    if list(central.columns) != list(batch.columns):
        raise DataValidationError(
            "the events source now has columns "
            f"{list(batch.columns)} but the central dataset has {list(central.columns)}; "
            "run once with extraction=full to rebuild it"
        )
    seen = np.isin(batch_keys, event_keys(central))
    new = batch[first_in_batch & ~seen]
    merged = pd.concat([central, new], ignore_index=True)
    return canonical_order("events", merged), new, repeated, int((first_in_batch & seen).sum())


@task(name="commit-central")
def commit_central(data_root: Path, run: RunFolder, snapshot: Snapshot, full: bool) -> CentralState:
    """Append this run's new events (or, for a full extraction, replace all) atomically."""
    root = central_dir(data_root)
    parts_dir = root / "events"
    parts_dir.mkdir(parents=True, exist_ok=True)
    state = load_central_state(data_root) or CentralState()
    if full:
        state.parts = []
    new_rows = pd.read_parquet(snapshot.new_events, columns=["event_type"]).shape[0]
    if new_rows or full:
        name = f"part-{run.run_id}.parquet"
        shutil.copyfile(snapshot.new_events, parts_dir / f".{name}.partial")
        os.replace(parts_dir / f".{name}.partial", parts_dir / name)
        state.parts.append(name)
    state.events = (0 if full else state.events) + new_rows
    state.high_water_mark = snapshot.high_water_mark
    state.sources = snapshot.sources
    state.updated_at = datetime.now().astimezone()
    state.last_run_id = run.run_id
    write_text_atomically(root / "state.json", json.dumps(state.model_dump(mode="json"), indent=2))
    if full:  # parts of earlier full loads are no longer referenced
        for stale in parts_dir.glob("part-*.parquet"):
            if stale.name not in state.parts:
                stale.unlink()
    return state
