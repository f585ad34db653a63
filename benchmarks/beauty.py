"""Real data: the nightly pipeline on Amazon "Beauty" (5-core), next to published results.

    python -m benchmarks.beauty                       # --data-dir ../shared/datasets/amazon-beauty
    /usr/bin/time -v python -m benchmarks.beauty      # peak memory, independently

Converts the dataset (never copied into the repository) into the files layout under
`--out` (default data/amazon-beauty/source, which git ignores):

    users.csv       user_id
    products.csv    product_id, attributes ("12;40;311": anonymised brand/category ids)
    events.csv      user_id, product_id, event_type = review, occurred_at, position
    dataset.toml    weights and features for this data

then runs the nightly flow on it. The dataset has no timestamps, only each user's order of
reviews; occurred_at is made from that order (one day per position), which is all the
split needs. Protocol (the dataset README's): each user's last item is the test item, ranked
against ALL items, items in the user's history excluded; the second-to-last item is the
validation item tuning uses. Prints every candidate's HR@10, NDCG@10, HR@20, NDCG@20 and
the published model's next to the paper rows; the LAST line is one JSON object:
{"published": {...}, "candidates": {NAME: {...}}, "wall_s": x, "peak_rss_mib": x}; the same
figures, with the paper rows and the published model's name, blend and NDCG@10 interval, go
to docs/results/beauty.json (`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.results import record
from tasks.run_context import DataRoot

DATA_DIR = Path("../shared/datasets/amazon-beauty")
REPORTED = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")
PAPER_ROWS: dict[str, tuple[float, float, float, float]] = {
    "PopRec": (0.0152, 0.0068, 0.0217, 0.0084),
    "GRU4Rec": (0.0283, 0.0137, 0.0479, 0.0187),
    "Caser": (0.0347, 0.0176, 0.0556, 0.0229),
    "SASRec": (0.0605, 0.0318, 0.0902, 0.0394),
    "FDSA": (0.0407, 0.0208, 0.0656, 0.0270),
    "S3-Rec": (0.0647, 0.0327, 0.0994, 0.0414),
    "BSARec": (0.1008, 0.0611, 0.1373, 0.0703),
}

DATASET_TOML = """# Amazon Beauty 5-core (S3-Rec preprocessing), by benchmarks/beauty.py
[events]
weights = { review = 1.0 }
transaction_types = ["review"]

[product_features]
attributes = { kind = "multi", sep = ";" }
"""


def convert(data_dir: Path, out: Path) -> dict[str, int]:
    """Beauty.txt (one user per line, items in time order) → users/products/events files."""
    sequences = pd.read_csv(data_dir / "Beauty.txt", header=None, names=["line"])["line"]
    tokens = sequences.str.split(" ")
    user = tokens.str[0]
    items = tokens.str[1:].explode()
    position = items.groupby(level=0).cumcount()
    events = pd.DataFrame(
        {
            "user_id": user.loc[items.index].to_numpy(),
            "product_id": items.to_numpy(),
            "event_type": "review",
            "occurred_at": pd.Timestamp("2014-01-01", tz="UTC")
            + pd.to_timedelta(position.to_numpy(), unit="D"),
            "position": position.to_numpy(),
        }
    )
    attributes = pd.read_json(data_dir / "Beauty_item2attributes.json", typ="series")
    products = pd.DataFrame({"product_id": sorted(set(events["product_id"]), key=int)})
    products["attributes"] = (
        products["product_id"]
        .astype(int)
        .map(attributes)
        .map(lambda ids: ";".join(map(str, ids)) if isinstance(ids, list) else "")
    )
    users = pd.DataFrame({"user_id": user.drop_duplicates().to_numpy()})

    out.mkdir(parents=True, exist_ok=True)
    users.to_csv(out / "users.csv", index=False)
    products.to_csv(out / "products.csv", index=False)
    events.to_csv(out / "events.csv", index=False)
    (out / "dataset.toml").write_text(DATASET_TOML)
    return {"users": len(users), "products": len(products), "events": len(events)}


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = [f"{'model':<24}" + "".join(f"{k:>10}" for k in REPORTED)]
    for name, metrics in rows.items():
        lines.append(f"{name:<24}" + "".join(f"{metrics[k]:>10.4f}" for k in REPORTED))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.beauty")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path("data/amazon-beauty/source"))
    parser.add_argument("--data-root", type=Path, default=Path("data/amazon-beauty"))
    parser.add_argument("--lightfm-trials", type=int, default=4)
    parser.add_argument("--convert-only", action="store_true")
    parser.add_argument(
        "--results", type=Path, default=None, help="default: docs/results/beauty.json"
    )
    command = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)

    if not (args.data_dir / "Beauty.txt").exists():
        parser.error(f"{args.data_dir / 'Beauty.txt'} not found (see shared/datasets/README.md)")
    started = time.perf_counter()
    counts = convert(args.data_dir, args.out)
    print(f"converted {counts} into {args.out} in {time.perf_counter() - started:.1f}s")
    if args.convert_only:
        return 0

    from benchmarks.nightly import first_night
    from flows.nightly import nightly
    from flows.params import NightlyParams
    from tasks.training.tune import TuningParams

    # A first night, always: a version found already published would retrain nothing.
    keep = (
        (args.out.relative_to(args.data_root).parts[0],)
        if args.out.is_relative_to(args.data_root)
        else ()
    )
    cleared = first_night(args.data_root, keep)
    print(f"first night: cleared {', '.join(cleared) or 'nothing'} in {args.data_root}")

    # Positions, not dates: no popularity decay over "days", and no gap before the held-out
    # item (the protocol trains on everything before it).
    params = NightlyParams(
        source=str(args.out),
        data_root=args.data_root,
        popularity_half_life_days=3650,
        holdout_gap_hours=0,
        tuning=TuningParams(lightfm_trials=args.lightfm_trials),
    )
    state = nightly(params, return_state=True)
    wall_s = time.perf_counter() - started
    outcome = state.result(raise_on_failure=False)  # a refused gate still wrote its metrics
    runs = sorted(DataRoot.of(args.data_root).runs.glob("*/metrics.json"))
    if not runs:
        raise SystemExit(f"the nightly run did not finish: {outcome}")
    document = json.loads(runs[-1].read_text())
    candidates = {
        name: {k: round(m[k], 4) for k in REPORTED} for name, m in document["candidates"].items()
    }
    published_name = document["published"] or document["gate"]["candidate"]
    published = candidates[published_name]
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(outcome.render() if hasattr(outcome, "render") else outcome)
    print("\nthis pipeline (full ranking, last item held out, history excluded):")
    print(table(candidates | {f"published ({published_name})": published}))
    print("\npublished results on the same data (dataset README):")
    print(table({name: dict(zip(REPORTED, row, strict=True)) for name, row in PAPER_ROWS.items()}))
    result = {
        "published": published,
        "candidates": candidates,
        "wall_s": round(wall_s, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }
    details = {
        "data": counts,
        "published_name": published_name,
        "gate_passed": document["gate"]["passed"],
        "refit_check": document.get("refit_check"),
        "blend": document.get("tuning", {}).get("chosen", {}).get("blend", {}),
        "published_ndcg10_ci95": [
            round(document["candidates"][published_name][k], 4)
            for k in ("NDCG@10_ci95_low", "NDCG@10_ci95_high")
        ],
        "paper_rows": {
            name: dict(zip(REPORTED, row, strict=True)) for name, row in PAPER_ROWS.items()
        },
    }
    record("beauty", "benchmarks.beauty", command, result | details, args.results)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
