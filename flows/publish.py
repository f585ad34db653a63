"""The publishing subflow: score every user's partition (in this process or on Dask), then
write the version and switch `latest` (tasks/publishing/publish.py does the work).

It is a flow of its own so that the partitions can run on another task runner than the
nightly flow's: `--publishing.runner dask` scores them on a Dask cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from tasks.artifacts import artifact_sha256
from tasks.dataset import DatasetSpec
from tasks.publishing.publish import (
    Publication,
    PublishParams,
    finish_version,
    model_version,
    partitions,
    runner_for,
    score_partition,
    writing_version,
)
from tasks.publishing.recommend import Experiment
from tasks.run_context import DataRoot, Snapshot


@flow(name="publish-recommendations")
def publish_recommendations(
    model_path: Path,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    metrics: dict,
    top_n_size: int,
    data_root: Path,
    params: PublishParams,
    model_sha256: str | None = None,
    version: str | None = None,
    created_at: datetime | None = None,
) -> Publication:
    """Score every user (partitions, possibly on Dask), write the version folder, switch
    `latest`, prune old versions.

    model_sha256: the registry's checksum of the artifact; every partition verifies it
    before loading the model (default: the artifact's checksum now, so a file changed
    while publishing is still refused). version, created_at: as registered (default: now).
    """
    model_sha256 = model_sha256 or artifact_sha256(model_path)
    created_at = created_at or datetime.now(UTC)
    version = version or model_version(model_path, snapshot.fingerprint, created_at)
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
    metrics: dict,
    top_n_size: int,
    data_root: Path,
    params: PublishParams | None = None,
    model_sha256: str | None = None,
    version: str | None = None,
    created_at: datetime | None = None,
) -> Publication:
    """Publish with the task runner `params.runner` asks for."""
    params = params or PublishParams()
    runner = publish_recommendations.with_options(task_runner=runner_for(params))
    return runner(
        model_path,
        snapshot,
        dataset,
        metrics,
        top_n_size,
        data_root,
        params,
        model_sha256,
        version,
        created_at,
    )
