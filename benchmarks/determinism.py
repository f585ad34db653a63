"""What repeatable training costs, and what Hogwild training varies: the nightly run twice
with the defaults and twice with `--hogwild`, each on a fresh data root with the same store.

    python -m benchmarks.determinism --preset demo

Prints, for each pair: the version ids, whether the lists are the same (`content_sha256`
of the manifests), the share of top-10 slots the two runs have in common, the share of
users with the identical top 10, NDCG@10 of the published blend in each run, the LightFM
epochs tuning chose, the share of lists meeting `min_categories` in their shown slots; and
the seconds of the flow, tuning and training of every run (the cost of one thread per
fit). The LAST line is one JSON object; the same figures go to
docs/results/determinism.json (`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.nightly import stage_seconds
from benchmarks.results import record
from demo_store import PRESETS, generate_store, ground_truth_path, write_store
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.run_context import DataRoot

TOP = 10


def one_run(data_root: Path, store: Path, hogwild: bool) -> dict:
    """A first night on a fresh copy of `store`: its version, lists and seconds."""
    shutil.rmtree(data_root, ignore_errors=True)
    DataRoot.of(data_root).demo_store.parent.mkdir(parents=True)
    shutil.copy(store, DataRoot.of(data_root).demo_store)
    shutil.copy(ground_truth_path(store), ground_truth_path(DataRoot.of(data_root).demo_store))
    started = time.perf_counter()
    state = nightly(NightlyParams(data_root=data_root, hogwild=hogwild), return_state=True)
    wall = time.perf_counter() - started
    summary = state.result()
    stages = stage_seconds(state.state_details.flow_run_id)
    folder = DataRoot.of(data_root).version(str(summary.published_version))
    manifest = json.loads((folder / "manifest.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    held = manifest["rule_compliance"].get("min_categories", {})
    return {
        "version": summary.published_version,
        "content_sha256": manifest["content_sha256"],
        "ndcg10": round(metrics["candidates"]["blend"]["NDCG@10"], 5),
        "lightfm_epochs": metrics["tuning"]["chosen"]["lightfm"]["epochs"],
        "min_categories_share_met": held.get("share_met"),
        "wall_s": round(wall, 1),
        "tune_s": round(stages.get("tune", 0.0), 1),
        "train_s": round(stages.get("train-candidates", 0.0), 1),
        "lists": folder / "recommendations.parquet",
    }


def agreement(first: Path, second: Path) -> dict[str, float]:
    """Share of top-10 slots in common (per user, in any order) and of identical top 10s."""
    a = pd.read_parquet(first, columns=["user_id", "rank", "product_id"])
    b = pd.read_parquet(second, columns=["user_id", "rank", "product_id"])
    a, b = a[a["rank"] <= TOP], b[b["rank"] <= TOP]
    common = a.merge(b, on=["user_id", "product_id"]).groupby("user_id").size()
    slots = a.groupby("user_id").size()
    same = a.merge(b, on=["user_id", "rank", "product_id"]).groupby("user_id").size()
    return {
        "top10_slots_in_common": round(float(common.sum() / slots.sum()), 4),
        "users_with_identical_top10": round(float((same.reindex(slots.index) == slots).mean()), 4),
    }


def pair(root: Path, store: Path, hogwild: bool) -> dict:
    name = "hogwild" if hogwild else "default"
    runs = [one_run(root / f"{name}-{k}", store, hogwild) for k in (1, 2)]
    figures = agreement(runs[0]["lists"], runs[1]["lists"])
    for run in runs:
        del run["lists"]
    same = runs[0]["content_sha256"] == runs[1]["content_sha256"]
    print(
        f"{name}: versions {runs[0]['version']} / {runs[1]['version']}, lists "
        f"{'identical' if same else 'DIFFERENT'}, top-10 slots in common "
        f"{figures['top10_slots_in_common']:.1%}, identical top 10 "
        f"{figures['users_with_identical_top10']:.1%}, NDCG@10 "
        f"{runs[0]['ndcg10']} / {runs[1]['ndcg10']}, flow {runs[0]['wall_s']} / "
        f"{runs[1]['wall_s']} s (tuning {runs[0]['tune_s']} / {runs[1]['tune_s']} s)"
    )
    return {"identical_lists": same, **figures, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.determinism")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path("data") / "bench" / f"determinism-{args.preset}"
    store = root / "store.db"
    if not store.exists():
        root.mkdir(parents=True, exist_ok=True)
        write_store(generate_store(args.preset, args.seed), store)
    result = {
        "preset": args.preset,
        "default": pair(root, store, hogwild=False),
        "hogwild": pair(root, store, hogwild=True),
    }
    name = "determinism" if args.preset == "demo" else f"determinism-{args.preset}"
    command = sys.argv[1:] if argv is None else list(argv)
    record(name, "benchmarks.determinism", command, result, args.results)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
