"""A rerun on the same snapshot with the same settings finds its version already there.

Why: the version id names the inputs (tasks/versions.py), so a second run on them would
publish the same lists again. If the version is registered and its publication is complete
and intact, the rerun only finishes what a killed run may have left (the `latest` switch,
the champion, the registry's flag) and records in its own metrics.json which version it
found; otherwise it goes on and publishes.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.evaluation.run_report import write_run_metrics
from tasks.publishing.publish import Publication, find_publication, switch_latest
from tasks.run_context import DataRoot, RunFolder
from tasks.training.registry import find_entry, mark_published, promote_champion


def finish_if_published(
    data_root: Path, version: str, run: RunFolder, trigger: str | None
) -> tuple[Publication, dict] | None:
    """The complete publication of `version` and its metrics document, finished and
    recorded in this run's metrics.json; None when the run has to publish it."""
    entry = find_entry(data_root, version)
    if entry is None:
        return None
    publication = find_publication(data_root, version, entry.artifact_sha256)
    if publication is None:
        return None
    if not entry.published:  # killed after the folder was complete: finish the switch
        switch_latest(DataRoot.of(data_root).published, version)
        promote_champion(data_root, version)
        mark_published(data_root, version)
    document = json.loads((publication.path / "metrics.json").read_text())
    write_run_metrics(
        document | {"run_id": run.run_id, "already_published": version, "trigger": trigger}, run
    )
    return publication, document
