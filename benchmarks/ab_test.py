"""Benchmark: an A/B test on the simulated store, end to end, as a shop would run it.

    python -m benchmarks.ab_test --preset medium --days 14 --control-share 0.1

Builds the preset's store (if absent), runs the nightly flow with a control group (a
stable hash of user_id gets the popularity list), lets the store live `--days` days with
customers seeing their lists, and runs the monitor flow (report only, no retraining). It
prints each variant's live metrics, the model's uplift with its 95% interval and the
minimum detectable effect, and what the simulator's hidden ground truth says of the two
kinds of list (mean affinity and choice weight of what each variant shows). The LAST line
is one JSON object:
{"preset", "users", "days", "control_share", "visitors", "conversion", "uplift",
"truth", "report", "wall_s"}; the same figures, with every variant's live metrics, go to
docs/results/ab_test.json (`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.results import record
from demo_store import PRESETS, generate_store, write_store
from demo_store.live import advance_store, list_truth
from flows.monitor import MonitorParams, monitor
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.publishing.publish import PublishParams
from tasks.run_context import DataRoot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_test")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="medium")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--control-share", type=float, default=0.1)
    parser.add_argument("--shown", type=int, default=10)
    parser.add_argument(
        "--results", type=Path, default=None, help="default: docs/results/ab_test.json"
    )
    command = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    data_root = args.data_root or Path("data") / "bench" / f"ab_{args.preset}"
    db = DataRoot.of(data_root).demo_store
    if DataRoot.of(data_root).published.exists():
        parser.error(f"{data_root} has run before: the test needs a fresh store (rm -r it)")

    started = time.perf_counter()
    if not db.exists():
        write_store(generate_store(args.preset, args.seed), db)
    params = NightlyParams(
        data_root=data_root, publishing=PublishParams(control_share=args.control_share)
    )
    summary = nightly(params)
    print(f"published {summary.published_version} ({time.perf_counter() - started:.0f} s)")
    lists = pd.read_parquet(
        summary.published_path, columns=["user_id", "rank", "product_id", "variant"]
    )
    truth = list_truth(db, lists, args.shown)
    print(advance_store(db, args.days, "none", seed=args.seed, shown=args.shown).render())
    report = monitor(MonitorParams(nightly=params, retrain="off", shown=args.shown))
    print(report.render())
    print(f"ground truth of the lists shown, per variant: {truth}")
    by_variant = {p.variant: p for p in report.live}
    conversion = {name: p.conversion.model_dump() for name, p in by_variant.items()}
    result = {
        "preset": args.preset,
        "users": int(lists["user_id"].nunique()),
        "days": args.days,
        "control_share": args.control_share,
        "visitors": {name: p.visitors for name, p in by_variant.items()},
        "conversion": conversion,
        "uplift": {u.metric: u.model_dump() for u in report.uplift},
        "truth": truth,
        "report": str(report.report),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    live = {name: p.model_dump() for name, p in by_variant.items()}
    record("ab_test", "benchmarks.ab_test", command, result | {"live": live}, args.results)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
