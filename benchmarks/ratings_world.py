"""Benchmark: the nightly on the ratings world (demo_store/ratings_world.py), a shop unlike
the beauty store: ratings are the only events, customers rate in bursts minutes apart,
products have no category and a long tail.

    python -m benchmarks.ratings_world                      # the ratings-small preset
    python -m benchmarks.ratings_world --preset ratings-tiny

Writes the world's files under data/bench/<preset>/source (its own dataset.toml beside
them), runs the nightly with the defaults on a fresh data root, and prints every
candidate's NDCG@10 and HR@10 on the test split, the published blend's, and the share of
training the holdout removed (and what a fixed 24-hour window would have removed). The
LAST line is one JSON object; the same figures go to docs/results/ratings_world.json
(`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.nightly import run_figures
from benchmarks.results import record
from demo_store.ratings_world import RATINGS_PRESETS, generate_ratings_world
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.features.split import HoldoutRule, split_latest_transaction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ratings_world")
    parser.add_argument("--preset", choices=sorted(RATINGS_PRESETS), default="ratings-small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path("data") / "bench" / args.preset
    shutil.rmtree(root, ignore_errors=True)
    world = generate_ratings_world(args.preset, args.seed)
    source = world.write(root / "source")

    events = world.events.assign(occurred_at=pd.to_datetime(world.events["occurred_at"]))
    day = split_latest_transaction(events, ["rating"], HoldoutRule(window_hours=24))

    started = time.perf_counter()
    state = nightly(NightlyParams(source=str(source), data_root=root / "data"), return_state=True)
    wall_s = time.perf_counter() - started
    summary = state.result()
    figures = run_figures(summary)
    document = json.loads((Path(summary.run_folder) / "metrics.json").read_text())
    candidates = figures["candidates"]
    singles = {n: m for n, m in candidates.items() if n not in ("blend", "champion")}
    best = max(singles, key=lambda n: singles[n]["NDCG@10"])
    for name, m in candidates.items():
        print(f"{name:>24}: NDCG@10 {m['NDCG@10']:.4f}  HR@10 {m['HR@10']:.4f}")
    split = document["split"]
    print(
        f"holdout removed {split['holdout_removed_share']:.1%} of the training before the "
        f"held-out ratings (a fixed 24 h window: {day.removed_share:.1%}); the published "
        f"blend NDCG@10 {candidates['blend']['NDCG@10']:.4f} against the best candidate "
        f"alone, {best}, {singles[best]['NDCG@10']:.4f}"
    )
    result = {
        "preset": args.preset,
        "users": len(world.users),
        "products": len(world.products),
        "ratings": len(world.events),
        "wall_s": round(wall_s, 1),
        "gate_passed": figures["gate_passed"],
        "holdout_removed_share": split["holdout_removed_share"],
        "window_24h_removed_share": round(day.removed_share, 4),
        "best_single": best,
        "blend_settlement": document.get("blend_settlement"),
        "candidates": candidates,
        "blend": figures["blend"],
    }
    command = sys.argv[1:] if argv is None else list(argv)
    record("ratings_world", "benchmarks.ratings_world", command, result, args.results)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
