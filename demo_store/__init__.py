"""The embedded demo beauty store: generator, ground truth and the task that builds it.

python -m demo_store --preset demo --db data/demo/store.db [--if-absent]
"""

from __future__ import annotations

from demo_store.generate import PRESETS, GroundTruth, Store, generate_store
from demo_store.store_db import ground_truth_path, write_store

__all__ = [
    "PRESETS",
    "GroundTruth",
    "Store",
    "generate_store",
    "ground_truth_path",
    "write_store",
]
