"""Model version ids that name what a run was given, so a rerun names the same version.

    <data time>-<10 hex>        e.g. 20261127T235412Z-3f9c0a1b2d

data time: the snapshot's high-water mark (its newest event, UTC), so versions sort by the
           data they saw, whatever the wall clock said when they were trained;
hex:       sha256 of the snapshot's fingerprint, the dataset configuration, every parameter
           that shapes the model or the lists, and the code version.

Parameters that only say where things are, how they are read or how the work is spread
(paths, the source's address, retries, full or incremental extraction, partitions, the
task runner, versions kept, the run's reason) are left out: the same data read from
SQLite, PostgreSQL or files, scored locally or on Dask, gives the same version.
`flows.rollback` and retention read this pattern: keep it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

from pydantic import BaseModel

from tasks.training.registry import code_version

VERSION_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{10}$")

# Where things are, why the run started, how the work is spread: not what it produces.
OPERATIONAL_PARAMS = frozenset(
    {
        "reason",
        "data_root",
        "source",
        "source_secret",
        "source_retries",
        "dataset_config",
        "extraction",  # full or incremental: the same data either way (the fingerprint)
        "late_arrival_hours",
    }
)
OPERATIONAL_PUBLISHING = frozenset(
    {
        "keep_versions",
        "partition_users",
        "chunk_size",
        "runner",
        "dask_workers",
        "dask_address",
        "min_share_of_latest",  # a check on the output, not a change to it
    }
)
NO_DATA_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def run_inputs(params: BaseModel, dataset: BaseModel) -> dict:
    """What a nightly's output depends on besides the data: its parameters (operational
    ones left out), the dataset configuration and the code version, as plain JSON."""
    shaping = params.model_dump(mode="json", exclude=set(OPERATIONAL_PARAMS))
    if isinstance(shaping.get("publishing"), dict):
        shaping["publishing"] = {
            k: v for k, v in shaping["publishing"].items() if k not in OPERATIONAL_PUBLISHING
        }
    return {
        "params": shaping,
        "dataset": dataset.model_dump(mode="json"),
        "code_version": code_version(),
    }


def run_version(data_fingerprint: str, data_until: datetime | None, inputs: dict) -> str:
    """The version a run on this snapshot with these inputs publishes (see the module)."""
    digest = hashlib.sha256(data_fingerprint.encode())
    digest.update(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode())
    moment = data_until or NO_DATA_TIME
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:10]}"
