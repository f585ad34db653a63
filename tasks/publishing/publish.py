"""Publish: score every user, write the version folder completely, then switch `latest`.

    data/published/<version>/recommendations.parquet   user_id, rank, product_id, score,
                                                        model_version, generated_at, tier,
                                                        reason (zstd, sorted by user_id)
    data/published/<version>/metrics.json              candidates' metrics and the gate
    data/published/<version>/manifest.json             counts, version, data fingerprint
    data/published/latest -> <version>                 switched only after a complete write

A reader of `latest` never sees a half-written version: the folder is written under a
hidden staging name, fsynced, renamed into place, and only then is the `latest` symlink
replaced (an atomic rename of a new link over the old one).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from tasks.artifacts import FOLDER_MODE, file_sha256, restrict
from tasks.atomic import fsync, switch_symlink
from tasks.dataset import DatasetSpec
from tasks.errors import DamagedPublicationError, PublicationError, PublicationRefusedError
from tasks.evaluation.run_report import MetricsDocument
from tasks.hashing import content_sha256
from tasks.publishing.manifest import CONTENT_COLUMNS, Manifest, rule_compliance
from tasks.publishing.publication_checks import PublicationFigures, refusals
from tasks.publishing.recommend import (
    RECOMMENDATIONS_SCHEMA,
    VARIANTS,
    WRITER_OPTIONS,
    Experiment,
    load_audience,
    write_partition,
)
from tasks.publishing.tiers import TIERS
from tasks.run_context import DataRoot, Snapshot
from tasks.versions import OPERATIONAL


class Publication(BaseModel):
    version: str
    created_at: datetime
    path: Path  # the version folder
    recommendations: Path
    rows: int
    users: int
    users_per_tier: dict[str, int] = {}
    catalog_coverage_per_tier: dict[str, float] = {}


def switch_latest(published_root: Path, version: str) -> None:
    """Point `latest` at `version` atomically (new symlink renamed over the old one)."""
    latest = published_root / "latest"
    if latest.exists() and not latest.is_symlink():
        raise PublicationError(f"{latest} exists and is not a symlink; move it away and rerun")
    switch_symlink(latest, version)


def published_data_counts(data_root: Path) -> dict[str, int] | None:
    """Rows per table the published `latest` version was built from (None if none)."""
    manifest = DataRoot.of(data_root).latest / "manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text()).get("data_counts")


def current_latest(published_root: Path) -> str | None:
    """The version `latest` points at, or None."""
    latest = Path(published_root) / "latest"
    return os.readlink(latest) if latest.is_symlink() else None


class PublishParams(BaseModel):
    """How publishing runs: versions kept, partitions, and where partitions are scored."""

    keep_versions: Annotated[int, OPERATIONAL] = Field(
        5, ge=1, le=1000, description="published versions kept on disk"
    )
    partition_users: Annotated[int, OPERATIONAL] = Field(
        250_000, ge=100, description="users per scoring partition (one task each)"
    )
    chunk_size: Annotated[int, OPERATIONAL] = Field(
        256, ge=16, le=4095, description="users scored per matrix block"
    )
    runner: Annotated[Literal["local", "dask"], OPERATIONAL] = Field(
        "local", description="local: partitions in this process; dask: on a Dask cluster"
    )
    dask_workers: Annotated[int, OPERATIONAL] = Field(
        2, ge=1, le=256, description="workers of a local Dask cluster"
    )
    dask_address: Annotated[str | None, OPERATIONAL] = Field(
        None, description="scheduler address of an existing Dask cluster (shared storage)"
    )
    control_share: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="A/B test: share of users (by a stable hash of user_id) who get the "
        "popularity list as a control; 0 = no test",
    )
    experiment: str = Field(
        "ab1",
        min_length=1,
        max_length=40,
        description="name of the A/B experiment: a new name draws a new control group",
    )
    min_share_of_latest: Annotated[float, OPERATIONAL] = Field(
        0.5,
        ge=0,
        le=1,
        description="refuse a publication whose rows, users with a list or products shown "
        "fall below this share of what `latest` serves (0 = off; an empty one is always "
        "refused)",
    )


def partitions(n_users: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n_users)) for start in range(0, max(n_users, 1), size)]


@task(name="score-partition", retries=1)
def score_partition(
    model_path: Path,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    bounds: tuple[int, int],
    top_n_size: int,
    version: str,
    generated_at: datetime,
    part: Path,
    chunk_size: int,
    control: Experiment | None = None,
    model_sha256: str | None = None,
) -> dict[str, int]:
    """Score users [start, stop) of the user_id order and write them to `part`; the model
    is loaded only if its files still hash to `model_sha256`."""
    audience = load_audience(snapshot, dataset, control=control)
    return write_partition(
        Path(model_path),
        audience,
        *bounds,
        top_n_size,
        version,
        generated_at,
        part,
        chunk_size,
        model_sha256=model_sha256,
    )


def _combine(parts: list[Path], target: Path) -> None:
    """Parts (each sorted, in user_id order) → one file, row group by row group."""
    if len(parts) == 1:
        os.replace(parts[0], target)
        return
    with pq.ParquetWriter(target, RECOMMENDATIONS_SCHEMA, **WRITER_OPTIONS) as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group))
            part.unlink()


def prune_versions(published_root: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions; never the one `latest` points at."""
    current = current_latest(published_root)
    versions = sorted(
        p.name
        for p in published_root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    )
    doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v != current]
    for version in doomed:
        shutil.rmtree(published_root / version)
    for pattern in (".staging-*", ".replaced-*"):  # left by a killed run
        for stale in published_root.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    return doomed


def verify_version(folder: Path) -> dict:
    """The version's manifest, after checking every file's sha256 against it."""
    manifest_path = Path(folder) / "manifest.json"
    if not manifest_path.exists():
        raise DamagedPublicationError(
            f"{folder}: no manifest.json, not a complete published version"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        files = {name: entry["sha256"] for name, entry in manifest["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedPublicationError(
            f"{manifest_path}: not a readable manifest ({type(error).__name__}: {error})"
        ) from None
    unlisted = {"recommendations.parquet", "metrics.json"} - set(files)
    if unlisted:
        raise DamagedPublicationError(f"{manifest_path}: lists no checksum for {sorted(unlisted)}")
    for name, sha256 in files.items():
        path = Path(folder) / name
        if not path.exists() or file_sha256(path) != sha256:
            raise DamagedPublicationError(f"{path}: checksum does not match manifest.json")
    return manifest


def publication_from(folder: Path, manifest: dict) -> Publication:
    """What a complete version folder holds, from its manifest."""
    return Publication(
        version=manifest["model_version"],
        created_at=datetime.fromisoformat(manifest["created_at"]),
        path=folder,
        recommendations=folder / "recommendations.parquet",
        rows=manifest["row_count"],
        users=manifest["user_count"],
        users_per_tier=manifest.get("users_per_tier", {}),
        catalog_coverage_per_tier=manifest.get("catalog_coverage_per_tier", {}),
    )


@task(name="find-publication")
def find_publication(data_root: Path, version: str, model_sha256: str) -> Publication | None:
    """The complete, intact publication of `version` made from the model `model_sha256`,
    or None. A folder whose files no longer match its manifest is reported and left to be
    replaced by the rerun."""
    folder = DataRoot.of(data_root).version(version)
    if not folder.is_dir():
        return None
    try:
        manifest = verify_version(folder)
    except ValueError as damaged:
        get_run_logger().warning("%s; it will be published again", damaged)
        return None
    if manifest.get("model_sha256") != model_sha256:
        get_run_logger().warning(
            "%s was published from model %s, the registry holds %s; publishing again",
            folder,
            manifest.get("model_sha256"),
            model_sha256,
        )
        return None
    return publication_from(folder, manifest)


def runner_for(params: PublishParams):
    """The task runner that scores the partitions: this process, or a Dask cluster."""
    if params.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if params.dask_address:
            return DaskTaskRunner(address=params.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": params.dask_workers, "threads_per_worker": 1}
        )
    return ThreadPoolTaskRunner(max_workers=1)


def open_staging(published_root: Path, version: str) -> Path:
    """A fresh hidden folder for the version being written."""
    published_root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    staging = published_root / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def complete_version(
    staging: Path,
    parts: list[Path],
    metrics_json: str,
    manifest: dict,
    keep_versions: int,
    manifest_model: type[Manifest] | None = None,
) -> dict:
    """Combine the parts, write metrics and the manifest (row counts, sha256 of every
    file), fsync, rename the folder into place, switch `latest`, prune old versions.

    A crash anywhere before the switch leaves `latest` on the previous complete version;
    the half-written staging folder is removed by the next publication."""
    published_root = staging.parent
    version = manifest["model_version"]
    recommendations = staging / "recommendations.parquet"
    _combine(parts, recommendations)
    (staging / "metrics.json").write_text(metrics_json)
    manifest = manifest | {
        "columns": RECOMMENDATIONS_SCHEMA.names,
        "sorted_by": ["user_id", "rank"],
        "row_count": pq.ParquetFile(recommendations).metadata.num_rows,
        "content_sha256": content_sha256(recommendations, CONTENT_COLUMNS),
        "files": {
            name: {"sha256": file_sha256(staging / name)}
            for name in ("recommendations.parquet", "metrics.json")
        },
    }
    if manifest_model is not None:  # the nightly's: the whole contract, checked
        manifest = manifest_model.model_validate(manifest).model_dump(mode="json")
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    restrict(staging)
    for path in staging.iterdir():
        fsync(path)
    fsync(staging)
    final = published_root / version
    replaced = published_root / f".replaced-{version}-{os.getpid()}"
    if final.exists():  # a damaged copy of this version (it failed verification): replaced
        os.rename(final, replaced)
    os.rename(staging, final)
    fsync(published_root)
    shutil.rmtree(replaced, ignore_errors=True)
    switch_latest(published_root, version)
    manifest["pruned"] = prune_versions(published_root, keep_versions)
    return manifest


def write_failure(published_root: Path, version: str, error: OSError) -> PublicationError:
    """The error to raise when the version could not be written: what still serves."""
    free_mib = shutil.disk_usage(published_root).free / 2**20 if published_root.exists() else 0
    serving = current_latest(published_root)
    outcome = (
        "the version is complete and served; only the clean-up failed"
        if serving == version
        else f"nothing was switched, `latest` still serves {serving}"
    )
    return PublicationError(
        f"could not write version {version} under {published_root} ({error}; "
        f"{free_mib:,.1f} MiB free there): {outcome}"
    )


def refuse_if_implausible(
    published_root: Path, figures: PublicationFigures, min_share: float, version: str
) -> None:
    """PublicationRefusedError, before `latest` moves, when the lists are empty or far
    smaller than what `latest` serves (tasks/publishing/publication_checks.py)."""
    serving_version = current_latest(published_root)
    serving = None
    if serving_version and (published_root / serving_version / "manifest.json").exists():
        manifest = json.loads((published_root / serving_version / "manifest.json").read_text())
        serving = PublicationFigures.of_manifest(manifest)
    reasons = refusals(figures, serving, min_share, serving_version)
    if reasons:
        raise PublicationRefusedError(
            f"version {version} was not published: "
            + "; ".join(reasons)
            + f". `latest` still serves {serving_version}. If the shop really changed this "
            "much, rerun with --publishing.min_share_of_latest 0"
        )


@contextmanager
def writing_version(published_root: Path, version: str) -> Iterator[Path]:
    """A fresh staging folder for `version`; whatever happens inside, the folder is gone
    afterwards (renamed into place when complete, removed otherwise) and a write the
    machine refuses (disk full, read-only) is a PublicationError saying what still serves."""
    try:
        staging = open_staging(published_root, version)
    except OSError as error:
        raise write_failure(published_root, version, error) from error
    try:
        yield staging
    except OSError as error:
        raise write_failure(published_root, version, error) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when complete


def announce(
    folder: Path, manifest: dict, tier_coverage: dict[str, float], keep_versions: int
) -> None:
    """The `published-recommendations` artifact: rows, users, tiers, what was pruned."""
    users = max(manifest["user_count"], 1)
    coverage = "\n".join(
        f"| {tier} | {n:,} | {n / users:.1%} | {tier_coverage[tier]:.1%} |"
        for tier, n in manifest["users_per_tier"].items()
    )
    create_markdown_artifact(
        key="published-recommendations",
        markdown=(
            f"## Published {folder.name}\n\n- {manifest['row_count']:,} rows for "
            f"{manifest['user_count']:,} users, top {manifest['top_n']}\n"
            f"- `{folder / 'recommendations.parquet'}`\n- `latest` → `{folder.name}`\n"
            f"- versions pruned: {len(manifest['pruned'])} (keeping {keep_versions})\n\n"
            f"| tier | users | share of users | catalogue coverage |\n"
            f"|---|---:|---:|---:|\n{coverage}\n"
            + "".join(
                f"\n- rule {rule}: {held['met']:,} lists meet it, {held['unmet']:,} cannot"
                + (f" ({held['why_unmet']})" if held["unmet"] else "")
                for rule, held in manifest.get("rule_compliance", {}).items()
            )
        ),
    )


def finish_version(
    staging: Path,
    parts: list[Path],
    counts: list[dict],
    snapshot: Snapshot,
    dataset: DatasetSpec,
    metrics: MetricsDocument | None,
    top_n_size: int,
    params: PublishParams,
    version: str,
    created_at: datetime,
    model_sha256: str,
) -> Publication:
    """The scored partitions → a complete version behind `latest`, if the lists pass their
    own checks (tasks/publishing/publication_checks.py): manifest, switch, prune, and the
    `published-recommendations` artifact."""
    published_root = staging.parent
    figures = PublicationFigures.of_parts(parts)
    refuse_if_implausible(published_root, figures, params.min_share_of_latest, version)
    tier_users = {t: sum(c[f"users_{t}"] for c in counts) for t in TIERS}
    variant_users = {v: sum(c[f"users_{v}"] for c in counts) for v in VARIANTS}
    rule_counts: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            if key.startswith("rule_"):
                rule_counts[key.removeprefix("rule_")] = (
                    rule_counts.get(key.removeprefix("rule_"), 0) + value
                )
    n_products = snapshot.counts["products"]
    tier_coverage = {
        t: round(len(set().union(*(c[f"products_{t}"] for c in counts))) / n_products, 4)
        for t in TIERS
    }
    manifest = complete_version(
        staging,
        parts,
        metrics.to_json() if metrics else "{}",
        {
            "model_version": version,
            "user_count": sum(c["users"] for c in counts),
            "users_per_tier": tier_users,
            "users_per_variant": variant_users,
            "experiment": {"name": params.experiment, "control_share": params.control_share},
            "data_until": snapshot.high_water_mark.isoformat()
            if snapshot.high_water_mark
            else None,
            "run_id": metrics.run_id if metrics else None,
            "catalog_coverage_per_tier": tier_coverage,
            "users_with_list": figures.users_with_list,
            "products_shown": figures.products_shown,
            "top_n": top_n_size,
            "rules": dataset.publishing.model_dump(mode="json"),
            "rule_compliance": {
                rule: record.model_dump() for rule, record in rule_compliance(rule_counts).items()
            },
            "data_fingerprint": snapshot.fingerprint,
            "data_counts": snapshot.counts,
            "sources": snapshot.sources,
            "created_at": created_at.isoformat(),
            "model_sha256": model_sha256,
            "deterministic": metrics.published_model.deterministic if metrics else None,
        },
        params.keep_versions,
        Manifest,
    )
    final = published_root / version
    announce(final, manifest, tier_coverage, params.keep_versions)
    return Publication(
        version=version,
        created_at=created_at,
        path=final,
        recommendations=final / "recommendations.parquet",
        rows=manifest["row_count"],
        users=manifest["user_count"],
        users_per_tier=tier_users,
        catalog_coverage_per_tier=tier_coverage,
    )
