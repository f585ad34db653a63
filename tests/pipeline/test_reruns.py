"""Reruns: the same snapshot gives the same version and the same lists; a run killed
(SIGKILL) inside any stage is repaired by simply running again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
from prefect.settings import get_current_settings

from demo_store import ground_truth_path
from tasks.publishing.publish import current_latest, verify_version
from tasks.training.registry import current_champion, read_entry
from tests.pipeline.test_nightly_e2e import run_nightly

REPO = Path(__file__).resolve().parents[2]


def fresh_root(base: Path, store_db: Path) -> Path:
    root = base / "data"
    (root / "demo").mkdir(parents=True)
    shutil.copy(store_db, root / "demo" / "store.db")
    shutil.copy(ground_truth_path(store_db), ground_truth_path(root / "demo" / "store.db"))
    return root


def lists(path: Path) -> pd.DataFrame:
    """The published rows without `generated_at` (the wall-clock time of publication)."""
    return pd.read_parquet(path).drop(columns="generated_at")


def folder_state(data_root: Path) -> dict[str, list[str]]:
    """Every name under published/ and models/, hidden leftovers included."""
    return {
        area: sorted(p.name for p in (data_root / area).iterdir())
        for area in ("published", "models")
        if (data_root / area).exists()
    }


def assert_same_publication(root: Path, reference: Path) -> None:
    version = current_latest(reference / "published")
    assert current_latest(root / "published") == version
    verify_version(root / "published" / version)
    pd.testing.assert_frame_equal(
        lists(root / "published" / "latest" / "recommendations.parquet"),
        lists(reference / "published" / "latest" / "recommendations.parquet"),
    )
    entry, expected = read_entry(root, version), read_entry(reference, version)
    assert entry.published and entry.artifact_sha256 == expected.artifact_sha256
    assert current_champion(root).version == version
    assert folder_state(root) == folder_state(reference)  # nothing half-written left over


def test_a_rerun_on_the_same_snapshot_gives_the_same_version_and_lists(
    data_root, tmp_path, tiny_store_db
):
    """Same data root: the rerun finds its version published and intact, and does nothing.
    Another data root, same snapshot: an independent run (one LightFM thread) gives the
    same version id, the same model bytes and the same lists."""
    first = run_nightly(data_root)
    model_json = (data_root / "models" / first.published_version / "model.json").read_text()
    before = folder_state(data_root)

    again = run_nightly(data_root)
    assert again.already_published and again.published_version == first.published_version
    assert again.metrics == first.metrics and again.gate_passed
    assert folder_state(data_root) == before
    assert (data_root / "models" / first.published_version / "model.json").read_text() == (
        model_json
    )
    assert "nothing retrained" in again.render()

    elsewhere = run_nightly(fresh_root(tmp_path / "elsewhere", tiny_store_db))
    assert not elsewhere.already_published
    assert elsewhere.published_version == first.published_version
    assert_same_publication(elsewhere.published_path.parents[2], data_root)

    # A setting that shapes the lists names another version; one that only says how the
    # work is spread does not.
    assert run_nightly(data_root, top_n=5).published_version != first.published_version
    assert run_nightly(data_root, reason="a rerun").published_version == (first.published_version)


# Inside every stage of the nightly, in the order a run reaches them: `after` = the
# stage's work is done but its task never returns; `before` = killed as it starts.
KILL_POINTS = [
    "tasks.ingest.extract:extract:after",
    "tasks.validation.validate:validate_snapshot:after",
    "tasks.ingest.central:commit_central:after",
    "tasks.features.build:build_features:after",
    "tasks.training.tune:tune:after",
    "tasks.training.train:train_candidates:after",
    "tasks.evaluation.evaluate:evaluate_candidates:after",
    "tasks.training.registry:register_model:after",
    "tasks.publishing.publish:_combine:before",  # partitions scored, the file not yet combined
    "tasks.publishing.publish:switch_latest:before",  # version complete, `latest` not moved
    "tasks.training.registry:promote_champion:after",  # `latest` moved, not yet `published`
]


def test_sigkill_inside_each_stage_then_a_rerun_equals_an_uninterrupted_run(
    data_root, tmp_path, tiny_store_db
):
    """One data root, eleven runs each SIGKILLed at the next point of KILL_POINTS (each
    run is the rerun of the one killed before it), then a rerun that completes: what is
    published equals what an uninterrupted run on another data root published."""
    reference = run_nightly(fresh_root(tmp_path / "reference", tiny_store_db))
    environment = os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url)}
    command = [sys.executable, "-m", "tests.nightly_killed_at", str(data_root)]
    for point in KILL_POINTS:
        run = subprocess.run(
            [*command, point], cwd=REPO, env=environment, capture_output=True, text=True
        )
        assert run.returncode == -9 and f"killing at {point}" in run.stdout, (
            point,
            run.returncode,
            run.stderr[-3000:],
        )
        latest = current_latest(data_root / "published")
        assert latest in (None, reference.published_version), point
        if latest:
            verify_version(data_root / "published" / latest)  # never a partial version
    resumed = subprocess.run(
        [*command, "none"],
        cwd=REPO,
        env=environment,
        text=True,
        capture_output=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"completed {reference.published_version}" in resumed.stdout
    assert_same_publication(data_root, reference.published_path.parents[2])
    runs = [p for p in (data_root / "runs").iterdir() if p.is_dir()]
    assert len(runs) == len(KILL_POINTS) + 1
