"""Benchmark: build a preset's store (if absent) and time the nightly flow, stage by stage.

    python -m benchmarks.nightly --preset demo      # a first night: the data root cleared
    python -m benchmarks.nightly --preset demo --following-night   # on top of earlier runs
    /usr/bin/time -v python -m benchmarks.nightly --preset demo     # peak memory, independently

Prints one line per stage (seconds, from the task runs Prefect recorded), then the LAST
line is one JSON object: {"preset", "wall_s", "store_build_s", "peak_rss_mib", "stages"}.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from collections import defaultdict
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from demo_store import PRESETS, generate_store, write_store
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.run_context import DataRoot


def stage_seconds(flow_run_id) -> dict[str, float]:
    """Seconds per task name (task runs of the same name, e.g. the two trainings, are summed)."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    totals: dict[str, float] = defaultdict(float)
    for run in sorted(runs, key=lambda r: r.start_time or r.created):
        name = run.name.rsplit("-", 1)[0]
        if run.start_time and run.end_time:
            totals[name] += (run.end_time - run.start_time).total_seconds()
    return dict(totals)


def first_night(data_root: Path) -> list[str]:
    """Remove what earlier runs left in the benchmark's data root (the store in `demo/`
    stays): otherwise a champion of another configuration is retrained on the split and
    the run measures a different night each time."""
    cleared = []
    for leftover in sorted(Path(data_root).glob("*")) if Path(data_root).exists() else []:
        if leftover.name == "demo":
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
        cleared.append(leftover.name)
    return cleared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nightly")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--following-night",
        action="store_true",
        help="keep what earlier runs left in the data root (champion, central dataset, "
        "published versions); default: a first night, everything in data/bench/<preset> "
        "but the store cleared (a --data-root is never cleared)",
    )
    args = parser.parse_args(argv)
    data_root = args.data_root or Path("data") / "bench" / args.preset
    db = DataRoot.of(data_root).demo_store
    if args.data_root is not None:  # never delete anything from a folder the user names
        print(f"runs on top of what {data_root} holds (a first night needs an empty one)")
    elif not args.following_night:
        cleared = first_night(data_root)
        print(f"first night: cleared {', '.join(cleared) or 'nothing'} in {data_root}")

    started = time.perf_counter()
    if not db.exists():
        write_store(generate_store(args.preset, args.seed), db)
    store_build_s = time.perf_counter() - started

    flow_started = time.perf_counter()
    state = nightly(NightlyParams(data_root=data_root), return_state=True)
    wall_s = time.perf_counter() - flow_started
    summary = state.result()
    stages = stage_seconds(state.state_details.flow_run_id)

    print(summary.render())
    for name, seconds in stages.items():
        print(f"{name:>28}: {seconds:8.1f} s")
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(
        json.dumps(
            {
                "preset": args.preset,
                "wall_s": round(wall_s, 1),
                "store_build_s": round(store_build_s, 1),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "stages": {k: round(v, 1) for k, v in stages.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
