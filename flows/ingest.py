"""The ingest stage: read the source, set bad rows aside, keep the central dataset.

Three tasks in order (tasks/ingest/extract.py, tasks/validation/validate.py,
tasks/ingest/central.py); the central dataset is committed only after validation, so a
night whose rows are refused never moves its high-water mark.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tasks.dataset import DatasetSpec
from tasks.ingest.central import commit_central
from tasks.ingest.extract import extract
from tasks.publishing.publish import published_data_counts
from tasks.run_context import RunFolder, Snapshot
from tasks.validation.validate import ValidationReport, validate_snapshot


class IngestOptions(BaseModel):
    """The nightly parameters the ingest stage reads (flows.params.NightlyParams.ingest)."""

    data_root: Path
    source_retries: int
    incremental: bool
    late_arrival_hours: float
    max_unjoined_share: float
    max_quarantine_share: float


def ingest(
    source: str, dataset: DatasetSpec, run: RunFolder, options: IngestOptions
) -> tuple[Snapshot, ValidationReport]:
    """The validated snapshot (quarantined rows set aside) and the validation's report."""
    snapshot = extract.with_options(retries=options.source_retries)(
        source,
        dataset,
        run,
        options.max_unjoined_share,
        options.incremental,
        options.late_arrival_hours,
    )
    snapshot, validation = validate_snapshot(
        snapshot,
        dataset,
        run,
        options.max_quarantine_share,
        previous_counts=published_data_counts(options.data_root),
    )
    commit_central(options.data_root, run, snapshot, full=not options.incremental)
    return snapshot, validation
