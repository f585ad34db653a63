"""One writer per data root: a nightly run holds an exclusive lock on
`<data_root>/.nightly.lock` from its first step to its last.

The lock is the kernel's (`fcntl.flock`), so it is released the moment its process ends,
however it ends (SIGKILL included): no stale lock files to clean up. A second run that
finds it held stops at once, before touching anything, and says who holds it. The Prefect
deployments also carry a concurrency limit of 1; this lock covers every other way of
starting a run (two shells, a cron job beside a worker, the monitor's inline retrain).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tasks.errors import RunInProgressError, storage_error
from tasks.run_context import DataRoot


@contextmanager
def exclusive_run(
    data_root: Path, what: str = "nightly", holder: str | None = None
) -> Iterator[Path]:
    """Hold `<data_root>/.<what>.lock` for the duration; RunInProgressError if held.
    `holder` (default `what`) is who holds it, as the refused one is told: a rollback
    takes the nightly lock too."""
    data_root = Path(data_root)
    path = DataRoot.of(data_root).lock(what)
    try:
        data_root.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as error:  # a read-only disk, a folder we may not write: say which
        raise storage_error(error, f"take the run lock {path}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            found = handle.read().strip() or "unknown"
            try:
                kind = json.loads(found).get("holder", what)
            except (ValueError, AttributeError):
                kind = what
            raise RunInProgressError(
                f"another {kind} run is writing to {data_root} (holder: {found}); this "
                "run stops without touching anything. Wait for it to finish, or look it "
                "up in the Prefect UI."
            ) from None
        handle.seek(0)
        handle.truncate()
        since = datetime.now(UTC).isoformat()
        handle.write(json.dumps({"pid": os.getpid(), "since": since, "holder": holder or what}))
        handle.flush()
        yield path
    finally:
        handle.close()  # closing the descriptor releases the lock
