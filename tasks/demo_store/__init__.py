"""The embedded demo beauty store: generator, ground truth and the task that builds it.

python -m tasks.demo_store --preset demo --db data/demo/store.db [--if-absent]
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.demo_store.generate import PRESETS, GroundTruth, Store, generate_store
from tasks.demo_store.store_db import ground_truth_path, write_store

__all__ = [
    "PRESETS",
    "GroundTruth",
    "Store",
    "build_demo_store",
    "generate_store",
    "ground_truth_path",
    "write_store",
]


@task(name="build-demo-store")
def build_demo_store(
    db_path: Path, preset: str = "demo", seed: int = 42, if_absent: bool = True
) -> Path:
    """Generate the demo store into `db_path` (SQLite) unless it already exists."""
    db_path = Path(db_path)
    if if_absent and db_path.exists():
        return db_path
    return write_store(generate_store(preset, seed), db_path)
