"""Run the tests' nightly on a data root and SIGKILL this very process at one point.

    python -m tests.nightly_killed_at <data_root> <module>:<attribute>:<before|after>
    python -m tests.nightly_killed_at <data_root> none          # no kill: runs to the end

The point is a task or a function the nightly calls: `before` kills as it is entered,
`after` once it has done its work but before it returns (the task run never finishes).
Prints `killing at <point>` first; exits 0 if the run completes without reaching it.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from pathlib import Path

from prefect import Task

from tests.pipeline.test_nightly_e2e import run_nightly


def arm(point: str) -> None:
    module_name, attribute, when = point.split(":")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute)
    original = target.fn if isinstance(target, Task) else target

    @functools.wraps(original)  # Prefect binds a task's parameters by this signature
    def killer(*args, **kwargs):
        if when == "after":
            original(*args, **kwargs)
        print(f"killing at {point}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if isinstance(target, Task):
        target.fn = killer
    else:
        setattr(module, attribute, killer)


def main() -> int:
    data_root, point = Path(sys.argv[1]), sys.argv[2]
    if point != "none":
        arm(point)
    summary = run_nightly(data_root)
    print(f"completed {summary.published_version}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
