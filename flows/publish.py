"""Publishing: register the refit model, score every user's partition (in this process or
on Dask), write the version and switch `latest`, then promote the champion
(tasks/publishing/publish.py and tasks/training/registry.py do the work).

It is a flow of its own so that the partitions can run on another task runner than the
nightly flow's: `--publishing.runner dask` scores them on a Dask cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from flows.params import NightlyParams
from tasks.artifacts import artifact_sha256
from tasks.dataset import DatasetSpec
from tasks.evaluation.run_report import MetricsDocument
from tasks.publishing.publish import (
    Publication,
    PublishParams,
    finish_version,
    partitions,
    runner_for,
    score_partition,
    writing_version,
)
from tasks.publishing.recommend import Experiment
from tasks.run_context import DataRoot, Snapshot
from tasks.training.registry import (
    ModelRecord,
    artifact_path,
    mark_published,
    promote_champion,
    register_model,
)


@flow(name="publish-recommendations")
def publish_recommendations(
    model_path: Path,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    metrics: MetricsDocument | None,
    top_n_size: int,
    data_root: Path,
    params: PublishParams,
    version: str,
    model_sha256: str | None = None,
    created_at: datetime | None = None,
) -> Publication:
    """Score every user (partitions, possibly on Dask), write the version folder, switch
    `latest`, prune old versions.

    model_sha256: the registry's checksum of the artifact; every partition verifies it
    before loading the model (default: the artifact's checksum now, so a file changed
    while publishing is still refused). version: as registered (tasks/versions.py);
    created_at: as registered (default: now).
    """
    model_sha256 = model_sha256 or artifact_sha256(model_path)
    created_at = created_at or datetime.now(UTC)
    experiment = Experiment(name=params.experiment, control_share=params.control_share)
    with writing_version(DataRoot.of(data_root).published, version) as staging:
        bounds = partitions(snapshot.counts["users"], params.partition_users)
        parts = [staging / f"part-{i:05d}.parquet" for i in range(len(bounds))]
        futures = [
            score_partition.submit(
                model_path,
                snapshot,
                dataset,
                users,
                top_n_size,
                version,
                created_at,
                part,
                params.chunk_size,
                experiment,
                model_sha256,
            )
            for users, part in zip(bounds, parts, strict=True)
        ]
        counts = [future.result() for future in futures]
        return finish_version(
            staging,
            parts,
            counts,
            snapshot,
            dataset,
            metrics,
            top_n_size,
            params,
            version,
            created_at,
            model_sha256,
        )


def publish(
    model_path: Path,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    metrics: MetricsDocument | None,
    top_n_size: int,
    data_root: Path,
    params: PublishParams | None = None,
    **options: Any,
) -> Publication:
    """`publish_recommendations` on the task runner `params.runner` asks for (options:
    its keyword arguments: version, model_sha256, created_at)."""
    params = params or PublishParams()
    runner = publish_recommendations.with_options(task_runner=runner_for(params))
    return runner(model_path, snapshot, dataset, metrics, top_n_size, data_root, params, **options)


def release(
    model_path: Path,
    record: ModelRecord,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    document: MetricsDocument,
    nightly: NightlyParams,
) -> Publication:
    """Register the refit model, publish from the registry's copy (every scoring process
    loads the model only if its files still hash to what the registry recorded), then make
    it the champion; `published: true` in the registry is written last, meaning all done."""
    data_root, created_at = nightly.data_root, datetime.now(UTC)
    entry = register_model(
        data_root,
        model_path,
        record,
        refit_on_all_data=True,
        published=False,
        created_at=created_at,
    )
    publication = publish(
        artifact_path(data_root, record.version),
        snapshot,
        dataset,
        document,
        nightly.top_n,
        data_root,
        nightly.publishing,
        version=record.version,
        model_sha256=entry.artifact_sha256,
        created_at=created_at,
    )
    promote_champion(data_root, publication.version)
    mark_published(data_root, record.version)
    return publication
