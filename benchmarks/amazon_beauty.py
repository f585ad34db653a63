"""Real data: turn the Amazon "Beauty" 5-core dataset into the files layout, then run it.

    python -m benchmarks.amazon_beauty                 # convert, then run nightly on it
    python -m benchmarks.amazon_beauty --convert-only

Reads ../shared/datasets/amazon-beauty (never copied into the repository) and writes, under
`--out` (default data/amazon-beauty/source, which git ignores):

    users.csv       user_id
    products.csv    product_id, attributes ("12;40;311": anonymised brand/category ids)
    events.csv      user_id, product_id, event_type = review, occurred_at, position
    dataset.toml    weights and features for this data

The dataset has no timestamps, only each user's order of reviews; occurred_at is made
from that order (one day per position), which is all the latest-transaction split needs.
The published protocol on this data (full ranking, last item held out) is the one the
pipeline evaluates with; see the README of the dataset for published figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "amazon-beauty"

DATASET_TOML = """# Amazon Beauty 5-core (S3-Rec preprocessing), by benchmarks/amazon_beauty.py
[events]
weights = { review = 1.0 }
transaction_types = ["review"]

[product_features]
attributes = { kind = "multi", sep = ";" }
"""


def convert(dataset: Path, out: Path) -> dict[str, int]:
    sequences = pd.read_csv(dataset / "Beauty.txt", header=None, names=["line"])["line"]
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
    attributes = json.loads((dataset / "Beauty_item2attributes.json").read_text())
    products = pd.DataFrame({"product_id": sorted(set(events["product_id"]), key=int)})
    products["attributes"] = products["product_id"].map(
        lambda item: ";".join(map(str, attributes.get(item, [])))
    )
    users = pd.DataFrame({"user_id": user.drop_duplicates().to_numpy()})

    out.mkdir(parents=True, exist_ok=True)
    users.to_csv(out / "users.csv", index=False)
    products.to_csv(out / "products.csv", index=False)
    events.to_csv(out / "events.csv", index=False)
    (out / "dataset.toml").write_text(DATASET_TOML)
    return {"users": len(users), "products": len(products), "events": len(events)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.amazon_beauty")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--out", type=Path, default=Path("data/amazon-beauty/source"))
    parser.add_argument("--data-root", type=Path, default=Path("data/amazon-beauty"))
    parser.add_argument("--convert-only", action="store_true")
    args = parser.parse_args(argv)

    if not (args.dataset / "Beauty.txt").exists():
        parser.error(f"{args.dataset / 'Beauty.txt'} not found (see shared/datasets/README.md)")
    started = time.perf_counter()
    counts = convert(args.dataset, args.out)
    print(f"converted {counts} into {args.out} in {time.perf_counter() - started:.1f}s")
    if args.convert_only:
        return 0

    from flows.nightly import nightly
    from flows.params import NightlyParams

    started = time.perf_counter()
    # Positions, not dates: a popularity decay over "days" would mean nothing here.
    summary = nightly(
        NightlyParams(
            source=str(args.out), data_root=args.data_root, popularity_half_life_days=3650
        )
    )
    wall_s = time.perf_counter() - started
    print(summary.render())
    print(
        json.dumps(
            {
                "dataset": "amazon-beauty",
                "wall_s": round(wall_s, 1),
                "counts": summary.counts,
                "metrics": {
                    name: {k: round(v, 4) for k, v in m.items() if "@" in k}
                    for name, m in summary.metrics.items()
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
