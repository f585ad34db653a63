"""Publish: score every user, write the version folder completely, then switch `latest`.

    data/published/<version>/recommendations.parquet   user_id, rank, product_id, score,
                                                        model_version, generated_at
    data/published/<version>/metrics.json              candidates' metrics and the gate
    data/published/<version>/manifest.json             counts, version, data fingerprint
    data/published/latest -> <version>                 switched only after a complete write

A reader of `latest` never sees a half-written version: the folder is written under a
hidden staging name, fsynced, renamed into place, and only then is the `latest` symlink
replaced (an atomic rename of a new link over the old one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from tasks.dataset import DatasetSpec
from tasks.interactions import bought_matrix
from tasks.models import Scorer, load_scorer
from tasks.run_context import Snapshot
from tasks.scoring import top_n

RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("rank", pa.int16()),
        ("product_id", pa.string()),
        ("score", pa.float32()),
        ("model_version", pa.string()),
        ("generated_at", pa.timestamp("us", tz="UTC")),
    ]
)


class Publication(BaseModel):
    version: str
    created_at: datetime
    path: Path  # the version folder
    recommendations: Path
    rows: int
    users: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def artifact_sha256(path: Path) -> str:
    """sha256 of a model file, or of a model folder's files (names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return _sha256(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(member.relative_to(path).as_posix().encode())
        digest.update(_sha256(member).encode())
    return digest.hexdigest()


def model_version(model_path: Path, data_fingerprint: str, created_at: datetime) -> str:
    """`<UTC time>-<hash of model vectors and data>`: sortable and traceable."""
    digest = hashlib.sha256(artifact_sha256(model_path).encode())
    digest.update(data_fingerprint.encode())
    return f"{created_at:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:10]}"


def recommendations_table(
    model: Scorer,
    user_ids: pd.Series,
    product_ids: pd.Series,
    exclude,
    in_stock: np.ndarray,
    n: int,
    version: str,
    generated_at: datetime,
) -> pa.Table:
    """Top-n rows for every user, sorted by user_id then rank."""
    items, scores = top_n(
        model, np.arange(len(user_ids)), n, exclude=exclude, allowed_items=in_stock
    )
    width = items.shape[1]
    valid = items >= 0
    user_col = np.repeat(user_ids.to_numpy(dtype=object), width)[valid.ravel()]
    rank = np.tile(np.arange(1, width + 1, dtype=np.int16), len(user_ids))[valid.ravel()]
    product_col = product_ids.to_numpy(dtype=object)[items[valid]]
    frame = pd.DataFrame(
        {
            "user_id": user_col,
            "rank": rank,
            "product_id": product_col,
            "score": scores[valid].astype(np.float32),
        }
    ).sort_values(["user_id", "rank"], kind="stable")
    frame["model_version"] = version
    frame["generated_at"] = pd.Timestamp(generated_at)
    return pa.Table.from_pandas(frame, schema=RECOMMENDATIONS_SCHEMA, preserve_index=False)


def switch_latest(published_root: Path, version: str) -> None:
    """Point `latest` at `version` atomically (new symlink renamed over the old one)."""
    latest = published_root / "latest"
    if latest.exists() and not latest.is_symlink():
        raise RuntimeError(f"{latest} exists and is not a symlink; move it away and rerun")
    staging_link = published_root / f".latest-{os.getpid()}"
    staging_link.unlink(missing_ok=True)
    staging_link.symlink_to(version, target_is_directory=True)
    os.replace(staging_link, latest)
    _fsync(published_root)


def published_data_counts(data_root: Path) -> dict[str, int] | None:
    """Rows per table the published `latest` version was built from (None if none)."""
    manifest = Path(data_root) / "published" / "latest" / "manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text()).get("data_counts")


def current_latest(published_root: Path) -> str | None:
    """The version `latest` points at, or None."""
    latest = Path(published_root) / "latest"
    return os.readlink(latest) if latest.is_symlink() else None


@task(name="publish")
def publish(
    model_path: Path,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    metrics: dict,
    top_n_size: int,
    data_root: Path,
) -> Publication:
    """Write the version folder and switch `latest` to it."""
    created_at = datetime.now(UTC)
    version = model_version(model_path, snapshot.fingerprint, created_at)
    users = pd.read_parquet(snapshot.tables["users"], columns=["user_id"])["user_id"]
    products = pd.read_parquet(snapshot.tables["products"])
    events = pd.read_parquet(
        snapshot.tables["events"], columns=["user_id", "product_id", "event_type"]
    )
    exclude = bought_matrix(events, users, products["product_id"], dataset.events.transaction_types)
    stock_column = dataset.products.in_stock_column
    in_stock = (
        products[stock_column].fillna(False).to_numpy(dtype=bool)
        if stock_column and stock_column in products
        else np.ones(len(products), dtype=bool)
    )
    table = recommendations_table(
        load_scorer(model_path),
        users,
        products["product_id"],
        exclude,
        in_stock,
        top_n_size,
        version,
        created_at,
    )

    published_root = Path(data_root) / "published"
    published_root.mkdir(parents=True, exist_ok=True)
    staging = published_root / f".staging-{version}"
    final = published_root / version
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        recommendations = staging / "recommendations.parquet"
        pq.write_table(table, recommendations, compression="zstd", row_group_size=64_000)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
        manifest = {
            "model_version": version,
            "row_count": table.num_rows,
            "user_count": int(pd.Series(table.column("user_id").to_numpy()).nunique()),
            "top_n": top_n_size,
            "data_fingerprint": snapshot.fingerprint,
            "data_counts": snapshot.counts,
            "sources": snapshot.sources,
            "created_at": created_at.isoformat(),
            "files": {"recommendations.parquet": {"sha256": _sha256(recommendations)}},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        for path in staging.iterdir():
            _fsync(path)
        _fsync(staging)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    switch_latest(published_root, version)

    create_markdown_artifact(
        key="published-recommendations",
        markdown=(
            f"## Published {version}\n\n- {manifest['row_count']:,} rows for "
            f"{manifest['user_count']:,} users, top {top_n_size}\n"
            f"- `{final / 'recommendations.parquet'}`\n"
            f"- `latest` → `{version}`"
        ),
    )
    return Publication(
        version=version,
        created_at=created_at,
        path=final,
        recommendations=final / "recommendations.parquet",
        rows=manifest["row_count"],
        users=manifest["user_count"],
    )
