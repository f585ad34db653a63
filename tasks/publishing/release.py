"""How a judged run ends, published or not.

`finish_if_published`: a rerun on the same snapshot with the same settings finds its
version already there.

Why: the version id names the inputs (tasks/versions.py), so a second run on them would
publish the same lists again. If the version is registered and its publication is complete
and intact, the rerun only finishes what a killed run may have left (the `latest` switch,
the champion, the registry's flag) and records in its own metrics.json which version it
found; otherwise it goes on and publishes.

`refuse`: the gate said no. The challenger is registered anyway (`published: false`, with
the gate's reasons), the evaluation page is written, and the run fails with
GateRefusedError (exit code 3); `latest` and the champion stay where they were.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tasks.dataset import DatasetSpec
from tasks.errors import GateRefusedError, PublicationRefusedError
from tasks.evaluation.canary import RefitCheck
from tasks.evaluation.run_report import MetricsDocument, write_run_metrics
from tasks.publishing.publish import Publication, find_publication, switch_latest
from tasks.reporting.evaluation_report import write_evaluation_report
from tasks.reporting.run_index import write_index
from tasks.reporting.summary import RunSummary
from tasks.run_context import DataRoot, RunFolder, Snapshot
from tasks.training.registry import (
    ModelRecord,
    find_entry,
    mark_published,
    promote_champion,
    register_model,
)


def finish_if_published(
    data_root: Path, version: str, run: RunFolder, trigger: str | None
) -> tuple[Publication, MetricsDocument] | None:
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
    document = MetricsDocument.model_validate_json((publication.path / "metrics.json").read_text())
    write_run_metrics(
        document.model_copy(
            update={"run_id": run.run_id, "already_published": version, "trigger": trigger}
        ),
        run,
    )
    write_index(data_root)
    return publication, document


def refuse(
    record: ModelRecord,
    model_path: Path,
    document: MetricsDocument,
    summary: RunSummary,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
) -> None:
    """Register the refused challenger, write the evaluation page, raise GateRefusedError."""
    report = write_evaluation_report(document, snapshot, dataset, run)
    register_model(
        run.data_root,
        model_path,
        record,
        refit_on_all_data=False,
        published=False,
        created_at=datetime.now(UTC),
    )
    write_index(run.data_root)
    raise GateRefusedError(summary.model_copy(update={"evaluation_report": report.path}).render())


def refuse_refit(
    check: RefitCheck,
    version: str,
    document: MetricsDocument,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
) -> None:
    """When the canary failed (tasks/evaluation/canary.py): write the evaluation page and
    raise PublicationRefusedError (exit code 9); nothing was registered as published,
    `latest` and the champion stay."""
    if check.passed:
        return
    report = write_evaluation_report(document, snapshot, dataset, run)
    write_index(run.data_root)
    raise PublicationRefusedError(
        f"version {version} was not published: the refit model failed its check before "
        "publication: " + "; ".join(check.reasons) + ". `latest` and the champion are "
        f"unchanged; the figures are in {report.path} and the run's metrics.json "
        "(`refit_check`), the refit model in the run's models/final/"
    )
