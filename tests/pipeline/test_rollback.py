"""Rollback against the nightly run: the same lock, an index that follows, a CLI that says
what it did or why not, and nightly reruns that never undo a rollback."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.settings import get_current_settings

from demo_store import ground_truth_path
from tasks.locking import exclusive_run
from tasks.publishing.publish import current_latest
from tasks.settings import OFFLINE_ENVIRONMENT
from tests.pipeline.test_nightly_e2e import TOP_N, run_nightly

REPO = Path(__file__).resolve().parents[2]
SECOND_TOP_N = 5  # another `top_n`: another version from the same data
# Run-provided text shown on the index page: it must arrive there escaped.
HOSTILE_REASON = '<script>alert("x")</script> & <b>bold</b>'


def published_root(root: Path) -> Path:
    return root / "published"


def manifest_of(root: Path, version: str) -> dict:
    return json.loads((published_root(root) / version / "manifest.json").read_text())


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, tiny_store_db) -> tuple[Path, str, str]:
    """A data root with two published versions from the tiny store: `first` (top 10, its
    run started for a hostile reason) and `second` (top 5), which `latest` serves."""
    root = tmp_path_factory.mktemp("two_versions") / "data"
    (root / "demo").mkdir(parents=True)
    shutil.copy(tiny_store_db, root / "demo" / "store.db")
    shutil.copy(ground_truth_path(tiny_store_db), ground_truth_path(root / "demo" / "store.db"))
    first = run_nightly(root, reason=HOSTILE_REASON).published_version
    second = run_nightly(root, top_n=SECOND_TOP_N).published_version
    assert first and second and first != second
    assert current_latest(published_root(root)) == second
    return root, first, second


@pytest.fixture
def published(two_versions, tmp_path) -> tuple[Path, str, str]:
    """This test's own copy of the two-version data root (symlinks kept as symlinks)."""
    source, first, second = two_versions
    root = tmp_path / "data"
    shutil.copytree(source, root, symlinks=True)
    return root, first, second


def rollback_cli(*args: str) -> subprocess.CompletedProcess:
    api = str(get_current_settings().api.url)
    env = os.environ | OFFLINE_ENVIRONMENT | {"PREFECT_API_URL": api}
    run = subprocess.run(
        [sys.executable, "-m", "flows.rollback", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run


def served_line(root: Path) -> str:
    page = (root / "index.html").read_text()
    start = page.index("<p>Serving")
    return page[start : page.index("<h2>", start)]


def test_cli_rolls_back_and_the_index_says_what_latest_serves(published):
    root, first, second = published
    assert f"<code>{second}</code>" in served_line(root)

    run = rollback_cli("--version", first, "--data_root", str(root))

    assert run.returncode == 0, run.stderr
    rows = manifest_of(root, first)["row_count"]
    assert rows > 0
    assert run.stdout.strip().splitlines()[-1] == f"latest: {second} -> {first} ({rows:,} rows)"
    assert current_latest(published_root(root)) == first
    assert (published_root(root) / "latest" / "manifest.json").exists()
    # The index follows: it serves `first`, names `second` as rolled back from, and marks
    # the run that made `first` as the one serving.
    serving = served_line(root)
    assert f"Serving <code>{first}</code> (run {manifest_of(root, first)['run_id']})" in serving
    assert f"Rolled back: published later, kept but not served: <code>{second}</code>" in serving
    page = (root / "index.html").read_text()
    assert f"serving as {first}" in page and f"serving as {second}" not in page
    # The run-provided reason is on the page, escaped; its markup is not.
    assert html.escape(HOSTILE_REASON) in page
    assert "<script>" not in page and "<b>bold</b>" not in page
    # The Prefect artifact records the switch.
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["rollback"]))
        )
    assert any(f"`{second}` → `{first}`" in str(a.data) for a in artifacts)


def test_rollback_refused_while_a_nightly_run_holds_the_data_root(published):
    root, first, second = published
    index_before = (root / "index.html").read_text()
    with exclusive_run(root, "nightly"):  # this test process is the running nightly
        run = rollback_cli("--version", first, "--data_root", str(root))
    assert run.returncode == 8, run.stderr
    assert f"rollback to {first} not done, `latest` still serves {second}" in run.stderr
    assert f'"pid": {os.getpid()}' in run.stderr  # the holder is named
    assert current_latest(published_root(root)) == second
    assert (root / "index.html").read_text() == index_before
    # Once the lock is free, the same command goes through.
    assert rollback_cli("--version", first, "--data_root", str(root)).returncode == 0
    assert current_latest(published_root(root)) == first


def test_unknown_version_is_refused_listing_the_kept_ones(published):
    root, first, second = published
    run = rollback_cli("--version", "20200101T000000Z-0123456789", "--data_root", str(root))
    assert run.returncode == 10, run.stderr
    assert "no published version '20200101T000000Z-0123456789'" in run.stderr
    assert f"kept: {', '.join(sorted([first, second]))}" in run.stderr
    assert current_latest(published_root(root)) == second


def test_tampered_version_is_refused_and_latest_stays(published):
    root, first, second = published
    parquet = published_root(root) / first / "recommendations.parquet"
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed
    parquet.write_bytes(bytes(data))
    run = rollback_cli("--version", first, "--data_root", str(root))
    assert run.returncode == 7, run.stderr
    assert f"{parquet}: checksum does not match manifest.json" in run.stderr
    assert current_latest(published_root(root)) == second
    assert f"Serving <code>{second}</code>" in served_line(root)


def test_malformed_version_is_refused_naming_the_parameter(published):
    root, _, second = published
    run = rollback_cli("--version", "../../etc", "--data_root", str(root))
    assert run.returncode == 2, run.stderr
    assert "--version: String should match pattern" in run.stderr
    assert current_latest(published_root(root)) == second


def test_a_nightly_rerun_after_a_rollback_leaves_it_in_place(published):
    """The rolled-back-from version's rerun (same data, same settings) finds it published
    and leaves `latest` alone, even when the run that published it was killed between
    switching `latest` and marking its registry entry published."""
    root, first, second = published
    entry = root / "models" / second / "model.json"
    interrupted = json.loads(entry.read_text()) | {"published": False}
    entry.write_text(json.dumps(interrupted))  # what a kill right after the switch leaves

    assert rollback_cli("--version", first, "--data_root", str(root)).returncode == 0
    assert json.loads(entry.read_text())["published"] is True  # settled by the rollback

    rerun = run_nightly(root, top_n=SECOND_TOP_N)
    assert rerun.already_published and rerun.published_version == second
    assert current_latest(published_root(root)) == first
    assert f"Serving <code>{first}</code>" in served_line(root)
    # A rerun of the version served now changes nothing either.
    again = run_nightly(root, top_n=TOP_N)
    assert again.already_published and again.published_version == first
    assert current_latest(published_root(root)) == first
