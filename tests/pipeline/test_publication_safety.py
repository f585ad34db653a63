"""Publication under stress: SIGKILL at random moments, retention, rollback, Dask, lookups."""

from __future__ import annotations

import json
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flows.publish import publish
from flows.rollback import RollbackParams, rollback
from tasks.artifacts import TamperedArtifactError, artifact_sha256
from tasks.dataset import DatasetSpec
from tasks.locking import RunInProgressError
from tasks.monitoring.measure import read_published
from tasks.publishing.publish import PublishParams, current_latest, verify_version
from tasks.run_context import Snapshot
from tasks.settings import get_settings
from tasks.training.models import load_scorer
from tasks.training.registry import artifact_path, current_champion
from tasks.versions import run_version
from tests.pipeline.test_nightly_e2e import run_nightly
from tests.publish_forever import publish_once

KEEP = 3


def published_versions(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    )


def test_sigkill_during_publication_never_breaks_latest(tmp_path):
    """20 kills at random points of a publishing loop: `latest` always names a complete
    version whose files match its manifest; half-written versions never count."""
    root = tmp_path / "published"
    publish_once(root, 0, KEEP)  # a first complete version
    command = [sys.executable, "-m", "tests.publish_forever", str(root), str(KEEP)]
    rng = random.Random(7)
    interrupted_writes = 0
    for kill in range(20):
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, cwd=Path(__file__).parents[2], text=True
        )
        assert process.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        interrupted_writes += any(root.glob(".staging-*"))

        latest = current_latest(root)
        assert latest is not None, kill
        manifest = verify_version(root / latest)  # raises on any checksum mismatch
        table = pq.read_table(root / "latest" / "recommendations.parquet")
        assert table.num_rows == manifest["row_count"] > 0
        assert len(published_versions(root)) <= KEEP + 1  # a kill may land before pruning
    assert interrupted_writes >= 3, "the kills should land in the middle of writes"
    # The next publication clears what the kills left. Versions sort by their second, then
    # their hash: within the loop's last second, this one must be the newest by name too.
    publish_once(root, 16**10 - 1, KEEP)
    assert not any(root.glob(".staging-*"))
    assert len(published_versions(root)) == KEEP


def test_rollback_switches_latest_after_checking_the_checksums(tmp_path):
    root = tmp_path / "published"
    first = publish_once(root, 1, KEEP)
    second = publish_once(root, 2, KEEP)
    assert current_latest(root) == second

    result = rollback(RollbackParams(version=first, data_root=tmp_path))
    assert (result.previous, result.current) == (second, first)
    assert current_latest(root) == first

    with (root / second / "recommendations.parquet").open("r+b") as handle:
        handle.seek(100)
        handle.write(b"tampered")
    with pytest.raises(ValueError, match="checksum does not match"):
        rollback(RollbackParams(version=second, data_root=tmp_path))
    assert current_latest(root) == first
    with pytest.raises(ValueError, match="no published version"):
        rollback(RollbackParams(version="20200101T000000Z-0123456789", data_root=tmp_path))
    with pytest.raises(ValueError):
        RollbackParams(version="../../etc", data_root=tmp_path)


def test_old_versions_are_pruned_but_never_the_one_latest_serves(tmp_path):
    root = tmp_path / "published"
    versions = [publish_once(root, i, KEEP) for i in range(5)]
    assert published_versions(root) == versions[-KEEP:]
    rollback(RollbackParams(version=versions[-KEEP], data_root=tmp_path))
    publish_once(root, 5, 1)  # keep 1: the new one, and `latest` is switched to it
    assert published_versions(root) == [current_latest(root)]


def snapshot_of(data_root: Path, summary) -> Snapshot:
    metrics = json.loads((summary.run_folder / "metrics.json").read_text())
    return Snapshot(
        tables={
            t: summary.run_folder / "snapshot" / f"{t}.parquet" for t in metrics["data"]["counts"]
        },
        counts=metrics["data"]["counts"],
        fingerprint=metrics["data"]["fingerprint"],
        sources={},
    )


def lists_of(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=["model_version", "generated_at"])


def test_dask_runner_publishes_the_same_recommendations(data_root):
    summary = run_nightly(data_root)
    snapshot = snapshot_of(data_root, summary)
    model = data_root / "models" / "champion" / "model"
    dataset = DatasetSpec.from_toml(get_settings().dataset_config)
    args = (model, snapshot, dataset, None, 10, data_root)
    version = run_version(snapshot.fingerprint, None, {"runner": "local"})
    local = publish(*args, PublishParams(partition_users=120), version=version)
    on_dask = publish(
        *args,
        PublishParams(partition_users=120, runner="dask", dask_workers=2),
        version=run_version(snapshot.fingerprint, None, {"runner": "dask"}),
    )
    assert lists_of(on_dask.recommendations).equals(lists_of(local.recommendations))
    # Three partitions or one: the same lists; scores agree to float32 rounding (BLAS sums
    # in a different order for a different number of rows).
    one_partition, three = lists_of(summary.published_path), lists_of(local.recommendations)
    pd.testing.assert_frame_equal(one_partition.drop(columns="score"), three.drop(columns="score"))
    assert np.allclose(one_partition["score"], three["score"], rtol=1e-5, atol=1e-6)
    assert on_dask.users_per_tier == local.users_per_tier


def test_website_lookups_with_duckdb_and_pyarrow(tmp_path):
    """The two lookups of one user's list in docs/publishing.md ("Looking up one user's list")."""
    root = tmp_path / "published"
    publish_once(root, 1, KEEP)
    path = root / "latest" / "recommendations.parquet"
    user = "U0001234"
    # -- docs/publishing.md: DuckDB
    rows = duckdb.execute(
        "SELECT rank, product_id, reason FROM read_parquet(?) WHERE user_id = ? ORDER BY rank",
        [str(path), user],
    ).fetchall()
    # -- docs/publishing.md: pyarrow
    table = pq.read_table(path, filters=[("user_id", "=", user)], columns=["rank", "product_id"])
    assert [r[:2] for r in rows] == list(zip(*table.to_pydict().values(), strict=True))
    assert [r[0] for r in rows] == list(range(1, 21))
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups > 1  # point lookups skip the other row groups
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    statistics = metadata.row_group(0).column(0).statistics
    assert (
        statistics.has_min_max and statistics.max < metadata.row_group(1).column(0).statistics.min
    )
    assert pc.all(pc.equal(table["product_id"], table["product_id"])).as_py()


class Payload:
    """Unpickling this creates `marker`: the proof that a pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_tampered_model_is_refused_and_its_payload_never_runs(data_root, tmp_path):
    summary = run_nightly(data_root)
    entry = current_champion(data_root)
    assert entry.published and entry.version == summary.published_version
    model = artifact_path(data_root, entry.version)
    # Published versions and registry entries are private to the owner and its group.
    for folder in (summary.published_path.parent, model.parent):
        for member in [folder, *folder.rglob("*")]:
            mode = stat.S_IMODE(member.stat().st_mode)
            assert mode == (0o750 if member.is_dir() else 0o640), (member, oct(mode))
    assert artifact_sha256(model) == entry.artifact_sha256  # what was published was verified
    manifest = json.loads((summary.published_path.parent / "manifest.json").read_text())
    assert manifest["model_sha256"] == entry.artifact_sha256

    # Someone swaps one of the model's array files for one carrying a pickle payload.
    marker = tmp_path / "payload-ran"
    victim = sorted(model.glob("*.npz"))[0]
    np.savez(victim, user_vectors=np.array([Payload(marker)], dtype=object))
    published = data_root / "published"
    before = (current_latest(published), published_versions(published))
    with pytest.raises(TamperedArtifactError, match="does not match its registry entry"):
        load_scorer(model, entry.artifact_sha256)
    snapshot = snapshot_of(data_root, summary)
    dataset = DatasetSpec.from_toml(get_settings().dataset_config)
    with pytest.raises(TamperedArtifactError, match=str(model)):
        publish(
            model,
            snapshot,
            dataset,
            None,
            10,
            data_root,
            version=run_version(snapshot.fingerprint, None, {"tampered": True}),
            model_sha256=entry.artifact_sha256,
        )
    assert not marker.exists()  # nothing of the file was parsed
    assert (current_latest(published), published_versions(published)) == before
    assert not [p for p in published.iterdir() if p.name.startswith(".")]  # no staging left
    # Without the checksum the array loader still refuses pickles ...
    with pytest.raises(ValueError, match="allow_pickle"):
        load_scorer(model)
    assert not marker.exists()
    # ... and the payload is live: unpickled, it runs (so the checks above can fail).
    np.load(victim, allow_pickle=True)["user_vectors"]
    assert marker.exists()

    # A quieter edit (one blend weight) is refused the same way.
    shutil.copy(summary.run_folder / "models" / "final" / "blend" / victim.name, victim)
    weights = model / "blend.json"
    weights.write_text(weights.read_text().replace("0.", "0.9", 1))
    with pytest.raises(TamperedArtifactError):
        load_scorer(model, entry.artifact_sha256)


def test_a_second_nightly_run_is_refused_while_one_holds_the_data_root(data_root):
    """The lock holder is another process; killing it (SIGKILL) frees the data root."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tasks.locking import exclusive_run\n"
            "with exclusive_run(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(300)\n",
            str(data_root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInProgressError, match=rf"another nightly run .*{holder.pid}"):
            run_nightly(data_root)
        assert not (data_root / "runs").exists() and not (data_root / "published").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    summary = run_nightly(data_root)
    assert current_latest(data_root / "published") == summary.published_version


def test_monitor_reads_one_consistent_version_while_versions_are_published(tmp_path):
    """A publisher switches `latest` again and again while the monitor's reader runs: every
    read names one version and its files are that version's."""
    data_root = tmp_path / "data"
    root = data_root / "published"
    publish_once(root, 0, 100)
    command = [sys.executable, "-m", "tests.publish_forever", str(root), "100"]
    publisher = subprocess.Popen(
        command, stdout=subprocess.PIPE, cwd=Path(__file__).parents[2], text=True
    )
    seen: set[str] = set()
    try:
        assert publisher.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            state = read_published(data_root, 10)
            assert state.recommendations.parent.name == state.version
            served = pq.ParquetFile(state.recommendations).read_row_group(0)
            assert pc.unique(served.column("model_version")).to_pylist() == [state.version]
            seen.add(state.version)
    finally:
        publisher.send_signal(signal.SIGKILL)
        publisher.wait()
    assert len(seen) >= 3, seen  # `latest` did move under the reader
