"""Benchmark: build a preset's store (if absent) and time the nightly flow, stage by stage.

    python -m benchmarks.nightly --preset demo      # a first night: the data root cleared
    python -m benchmarks.nightly --preset demo --following-night   # on top of earlier runs
    python -m benchmarks.nightly --preset demo --hogwild   # Hogwild training: what it saves
    /usr/bin/time -v python -m benchmarks.nightly --preset demo     # peak memory, independently

Prints one line per stage (seconds, from the task runs Prefect recorded), then the LAST
line is one JSON object: {"preset", "wall_s", "store_build_s", "peak_rss_mib", "stages"}.
The same figures, with the run's model metrics, go to docs/results/nightly.json (the demo
preset; nightly-<preset>.json for another, `--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from benchmarks.results import record
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


def first_night(data_root: Path, keep: tuple[str, ...] = ("demo",)) -> list[str]:
    """Remove what earlier runs left in the benchmark's data root (the source folders in
    `keep` stay): otherwise a champion of another configuration is retrained on the split,
    or the run finds its version already published and retrains nothing, and the run
    measures a different night each time."""
    cleared = []
    for leftover in sorted(Path(data_root).glob("*")) if Path(data_root).exists() else []:
        if leftover.name in keep:
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
        cleared.append(leftover.name)
    return cleared


# The run's model figures kept in the results file (metrics.json holds more).
REPORTED_METRICS = (
    "NDCG@10",
    "HR@10",
    "MAP@10",
    "NDCG@20",
    "HR@20",
    "NDCG@10[cold_users]",
    "NDCG@10[warm_users]",
    "NDCG@10[new_products]",
    "NDCG@10_ci95_low",
    "NDCG@10_ci95_high",
    "catalog_coverage@10",
    "novelty@10",
    "diversity@10",
    "n_test_users",
    "n[cold_users]",
    "n[new_products]",
)


def run_figures(summary) -> dict:
    """What the run's metrics.json says of the models (rounded to 4 digits)."""
    path = Path(summary.run_folder) / "metrics.json"
    if not path.exists():
        return {}
    document = json.loads(path.read_text())

    def rounded(metrics: dict) -> dict:
        return {k: round(float(v), 4) for k, v in metrics.items() if isinstance(v, int | float)}

    candidates = {
        name: rounded({k: m[k] for k in REPORTED_METRICS if k in m})
        for name, m in document.get("candidates", {}).items()
    }
    published = document.get("published")
    rule_costs = {}
    if published:
        rule_costs = rounded(
            {k: v for k, v in document["candidates"][published].items() if "[rules:" in k}
        )
    tuning = document.get("tuning", {})
    return {
        "published": published,
        "gate_passed": document.get("gate", {}).get("passed"),
        "refit_check": document.get("refit_check"),
        "candidates": candidates,
        "rule_costs": rule_costs,
        "blend": tuning.get("chosen", {}).get("blend", {}),
        "lightfm_chosen": tuning.get("chosen", {}).get("lightfm", {}),
        "lightfm_choice": tuning.get("lightfm_choice", {}),
        "validation_ndcg10": rounded(tuning.get("validation_NDCG@10", {})),
        "split": document.get("split", {}),
        "data": document.get("data", {}).get("counts", {}),
        "users_per_tier": summary.users_per_tier,
        "catalog_coverage_per_tier": rounded(summary.catalog_coverage_per_tier),
    }


def main(
    argv: list[str] | None = None,
    name: str | None = None,
    module: str = "benchmarks.nightly",
    command: list[str] | None = None,
) -> int:
    """`name`, `module`, `command`: how the results file is named and which command it
    records (benchmarks.large runs this one on its preset)."""
    if command is None:
        command = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
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
    parser.add_argument(
        "--hogwild",
        action="store_true",
        help="train with Hogwild threads (the nightly's --hogwild: faster, not repeatable); "
        "the figures go to <name>-hogwild.json, beside the default's, so docs/render.py "
        "shows what repeatable training costs stage by stage",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where the figures are written (default: docs/results/nightly.json for the demo "
        "preset, docs/results/nightly-<preset>.json for another, -hogwild appended with "
        "--hogwild)",
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
    state = nightly(NightlyParams(data_root=data_root, hogwild=args.hogwild), return_state=True)
    wall_s = time.perf_counter() - flow_started
    summary = state.result()
    stages = stage_seconds(state.state_details.flow_run_id)

    print(summary.render())
    for stage, seconds in stages.items():
        print(f"{stage:>28}: {seconds:8.1f} s")
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    result = {
        "preset": args.preset,
        "hogwild": args.hogwild,
        "wall_s": round(wall_s, 1),
        "store_build_s": round(store_build_s, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "stages": {k: round(v, 1) for k, v in stages.items()},
    }
    if name is None:
        name = "nightly" if args.preset == "demo" else f"nightly-{args.preset}"
    if args.hogwild:
        name = f"{name}-hogwild"
    record(name, module, command, result | {"run": run_figures(summary)}, args.results)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
