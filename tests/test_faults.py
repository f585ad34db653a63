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

REPO = Path(__file__).resolve().parent.parent


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
    run = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=REPO,
        env=os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url)},
        capture_output=True,
        text=True,
        timeout=600,
    )
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
