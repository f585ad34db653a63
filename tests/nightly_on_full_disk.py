"""Two nightly runs whose `published/` is a tmpfs of a few hundred KiB: the first fits,
the second (longer lists) fills the disk while publishing. Run inside a private mount
namespace (see tests/pipeline/test_faults.py); prints one JSON object describing what is left.

    python -m tests.nightly_on_full_disk <data_root>     # <data_root>/published: the tmpfs
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tasks.publishing.publish import PublicationError, current_latest, verify_version
from tasks.training.registry import current_champion, read_entry
from tests.pipeline.test_nightly_e2e import run_nightly


def main() -> int:
    data_root = Path(sys.argv[1])
    published = data_root / "published"
    first = run_nightly(data_root)
    try:
        run_nightly(data_root, top_n=80)
        error = None
    except PublicationError as failure:
        error = str(failure)
    versions = sorted(p.name for p in (data_root / "models").iterdir() if p.is_dir())
    second = next((v for v in versions if v != first.published_version), None)
    latest = current_latest(published)
    report = {
        "first": first.published_version,
        "error": error,
        "latest": latest,
        "latest_verified": bool(latest and verify_version(published / latest)),
        "published_entries": sorted(os.listdir(published)),
        "second": second,
        "second_published_flag": read_entry(data_root, second).published if second else None,
        "champion": current_champion(data_root).version,
        "free_bytes": os.statvfs(published).f_bavail * os.statvfs(published).f_frsize,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
