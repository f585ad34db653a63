"""Faults from outside: a full disk while publishing, a database connection dropped in
the middle of an extraction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import get_current_settings

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.ingest.sources import SourceError
from tests.conftest import raw_store_tables
from tests.cutting_proxy import CuttingProxy
from tests.pipeline.test_nightly_e2e import FAST, FAST_TUNING, PERMISSIVE

REPO = Path(__file__).resolve().parents[2]


def private_mounts_work() -> bool:
    """A private mount namespace (user namespaces, or root) where a tmpfs can be mounted."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt",
        ],
        capture_output=True,
    )
    return probe.returncode == 0


def in_private_mounts(script: str) -> subprocess.CompletedProcess:
    """`sh -c script` in a private mount namespace (its mounts vanish with it), talking to
    the tests' Prefect server."""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=REPO,
        env=os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url)},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(not private_mounts_work(), reason="no private mount namespace here")
def test_a_full_disk_while_publishing_leaves_latest_and_no_partial_version(data_root):
    """`published/` is an 80 KiB tmpfs (a real ENOSPC from the kernel): the first nightly's
    version fits, the second one's longer lists do not. The second run fails with an
    error saying where and what still serves; `latest`, the champion and the files of the
    first version are intact; nothing of the second is left under `published/`, and the
    registry does not call it published."""
    published = data_root / "published"
    published.mkdir()
    script = (
        f"mount -t tmpfs -o size=80k,mode=0755 tmpfs {published} && "
        f"exec {sys.executable} -m tests.nightly_on_full_disk {data_root}"
    )
    run = in_private_mounts(script)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    second = report["second"]
    assert second and second != report["first"]
    assert "No space left on device" in report["error"]
    assert f"could not write version {second} under {published}" in report["error"]
    assert f"`latest` still serves {report['first']}" in report["error"]
    assert report["latest"] == report["first"] and report["latest_verified"]
    assert report["published_entries"] == [report["first"], "latest"]  # no staging, no 2nd
    assert report["second_published_flag"] is False
    assert report["champion"] == report["first"]
    assert report["free_bytes"] > 0  # the half-written version's space was given back


def test_a_connection_dropped_mid_extraction_is_retried_then_fails_clearly_or_heals(
    tmp_path, tiny_store_db, postgres_schema, caplog
):
    """The shop's PostgreSQL behind a proxy that resets the connection once 100 kB of the
    events table have come through. Cut every time: the extraction is retried after its
    backoff, then the run stops with a transient SourceError naming the database; nothing
    is registered or published. Cut once: the retry reads everything and the run
    publishes, every event accounted for."""
    engine, schema, pg_url = postgres_schema
    tables = raw_store_tables(tiny_store_db)
    for table, frame in tables.items():
        frame.to_sql(table, engine, schema=schema, index=False)
    params = dict(
        dataset_config=REPO / "dataset.toml",
        source_retries=1,
        top_n=10,
        num_threads=1,
        model=FAST,
        tuning=FAST_TUNING,
        gate=PERMISSIVE,
    )
    with CuttingProxy(("127.0.0.1", 5432), after_bytes=100_000) as proxy:
        url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert url != pg_url
        data_root = tmp_path / "data"
        proxy.cuts_left = 10**6
        with pytest.raises(SourceError, match=rf"127\.0\.0\.1:{proxy.port}/test") as failure:
            nightly(NightlyParams(data_root=data_root, source=url, **params))
        assert failure.value.transient and "events" in str(failure.value)
        assert len(proxy.cut_at) == 2  # the first attempt and its one retry, both cut
        assert "Retry 1/1" in caplog.text
        assert not (data_root / "published").exists() and not (data_root / "models").exists()

        proxy.cuts_left, proxy.cut_at = 1, []
        summary = nightly(NightlyParams(data_root=data_root, source=url, **params))
        assert len(proxy.cut_at) == 1 and proxy.cut_at[0] > 100_000  # cut mid-transfer
    assert summary.counts["events"] == len(tables["events"])
    assert summary.row_accounting["events"]["quarantined"] == 0
    assert (data_root / "published" / "latest" / "recommendations.parquet").exists()


def _nightly_on_read_only(data_root: Path, read_only: Path, *args: str):
    """`python -m flows.nightly` in a private mount namespace where `read_only` is a
    read-only bind mount of itself (a real EROFS from the kernel, root or not)."""
    command = " ".join(
        [sys.executable, "-m", "flows.nightly", "--data_root", str(data_root), *args]
    )
    script = (
        f"mount --bind {read_only} {read_only} && "
        f"mount -o remount,bind,ro {read_only} && exec {command}"
    )
    return in_private_mounts(script)


@pytest.mark.skipif(not private_mounts_work(), reason="no private mount namespace here")
def test_read_only_storage_is_a_storage_error_and_latest_stays(data_root):
    """A read-only data root stops the run at its lock; a read-only `published/` stops it
    at publication with the project's PublicationError. Both exit 7 with a message naming
    the file and no traceback; `latest` and its files are untouched."""
    from tasks.publishing.publish import current_latest, verify_version

    fast = ["--model.no_components", "4", "--model.epochs", "2", "--gate.min_lift", "-1"]
    fast += ["--gate.relaxed_on_purpose", "storage-faults-under-test"]  # (a shell word)
    whole = _nightly_on_read_only(data_root, data_root, *fast)
    assert whole.returncode == 7, whole.stderr[-3000:]
    assert "Traceback" not in whole.stderr
    assert f"error: could not take the run lock {data_root}/.nightly.lock" in whole.stderr
    assert "Read-only file system" in whole.stderr

    first = nightly(NightlyParams(data_root=data_root, model=FAST, gate=PERMISSIVE, top_n=10))
    published = data_root / "published"
    names = sorted(p.name for p in published.iterdir())
    second = _nightly_on_read_only(data_root, published, *fast, "--top_n", "12")
    assert second.returncode == 7, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert "error: could not write version" in second.stderr
    assert f"under {published} ([Errno 30] Read-only file system" in second.stderr
    assert f"`latest` still serves {first.published_version}" in second.stderr
    assert current_latest(published) == first.published_version
    assert verify_version(published / "latest")["model_version"] == first.published_version
    assert sorted(p.name for p in published.iterdir()) == names
