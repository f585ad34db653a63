"""Command line: build the demo store. `python -m demo_store --help`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from demo_store.generate import PRESETS, generate_store
from demo_store.store_db import write_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo_store", description="Build the synthetic demo beauty store."
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--db", type=Path, default=Path("data/demo/store.db"))
    parser.add_argument(
        "--if-absent", action="store_true", help="do nothing when the database already exists"
    )
    args = parser.parse_args(argv)
    if args.if_absent and args.db.exists():
        print(f"demo store already at {args.db} (delete it to rebuild)")
        return 0
    started = time.perf_counter()
    store = generate_store(args.preset, args.seed)
    write_store(store, args.db)
    print(
        f"built {args.preset} store at {args.db}: {len(store.users):,} users, "
        f"{len(store.products):,} products, {len(store.events):,} events "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
