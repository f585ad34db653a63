"""Model version ids that name what a run was given, so a rerun names the same version.

    <data time>-<10 hex>        e.g. 20261127T235412Z-3f9c0a1b2d

data time: the snapshot's high-water mark (its newest event, UTC), so versions sort by the
           data they saw, whatever the wall clock said when they were trained;
hex:       sha256 of the snapshot's fingerprint, the dataset configuration, every parameter
           that shapes the model or the lists, and the code version.

Parameters that only say where things are, how they are read or how the work is spread
(paths, the source's address, retries, full or incremental extraction, partitions, the
task runner, versions kept, the run's reason) are declared `Annotated[..., OPERATIONAL]`
where they are defined and left out: the same data read from SQLite, PostgreSQL or files,
scored locally or on Dask, gives the same version. Every other parameter, including one
added tomorrow, shapes the version without anyone having to remember a list.
`flows.rollback` and retention read this pattern: keep it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VERSION_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{10}$")


class Operational:
    """Marks a parameter that says where things are, why a run started or how the work is
    spread, not what it produces: `name: Annotated[type, OPERATIONAL] = Field(...)`."""

    def __repr__(self) -> str:
        return "OPERATIONAL"


OPERATIONAL = Operational()
NO_DATA_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def shaping(model: BaseModel) -> dict:
    """The model's parameters as plain JSON, those declared OPERATIONAL left out (nested
    models too)."""
    dumped = model.model_dump(mode="json")
    kept = {}
    for name, field in type(model).model_fields.items():
        if field.exclude or any(isinstance(mark, Operational) for mark in field.metadata):
            continue
        value = getattr(model, name)
        kept[name] = shaping(value) if isinstance(value, BaseModel) else dumped[name]
    return kept


def code_version() -> str | None:
    """The git commit of this code (with `+dirty` for uncommitted changes), if known."""
    if override := os.environ.get("RECS_CODE_VERSION"):
        return override
    try:
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def run_inputs(params: BaseModel, dataset: BaseModel) -> dict:
    """What a nightly's output depends on besides the data: its parameters (operational
    ones left out), the dataset configuration and the code version, as plain JSON."""
    return {
        "params": shaping(params),
        "dataset": shaping(dataset),
        "code_version": code_version(),
    }


def run_version(data_fingerprint: str, data_until: datetime | None, inputs: dict) -> str:
    """The version a run on this snapshot with these inputs publishes (see the module)."""
    digest = hashlib.sha256(data_fingerprint.encode())
    digest.update(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode())
    moment = data_until or NO_DATA_TIME
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:10]}"
