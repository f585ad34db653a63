"""Test helper: publish versions of random recommendations in a loop, until killed.

python -m tests.publish_forever <published root> <versions kept>

It uses the same plain functions as the publish flow (write_partition, complete_version),
without Prefect, so a test can SIGKILL it at any moment of a publication.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from tasks.publishing.publish import complete_version, open_staging
from tasks.publishing.recommend import Audience, write_partition
from tasks.training.models import FactorModel

N_USERS, N_ITEMS, N = 8_000, 2_000, 20


def publish_once(root: Path, seed: int, keep: int) -> str:
    """One complete publication of a random model; returns its version."""
    rng = np.random.default_rng(seed)
    model = FactorModel(
        rng.normal(size=(N_USERS, 16)).astype(np.float32),
        rng.normal(size=(N_ITEMS, 16)).astype(np.float32),
    )
    audience = Audience(
        user_ids=pa.array([f"U{i:07d}" for i in range(N_USERS)]),
        product_ids=pa.array([f"P{i:06d}" for i in range(N_ITEMS)]),
        order=np.arange(N_USERS),
        tiers=np.zeros(N_USERS, np.int8),
        exclude=None,
        allowed=None,
    )
    created = datetime.now(UTC)
    version = f"{created:%Y%m%dT%H%M%S}Z-{seed % 16**10:010x}"
    staging = open_staging(root, version)
    parts = [staging / "part-00000.parquet", staging / "part-00001.parquet"]
    half = N_USERS // 2
    write_partition(model, audience, 0, half, N, version, created, parts[0])
    write_partition(model, audience, half, N_USERS, N, version, created, parts[1])
    complete_version(
        staging,
        parts,
        json.dumps({"seed": seed}),
        {"model_version": version, "data_until": created.isoformat()},
        keep,
    )
    return version


def main() -> None:
    root, keep = Path(sys.argv[1]), int(sys.argv[2])
    print("ready", flush=True)
    seed = 1000
    while True:
        publish_once(root, seed, keep)
        seed += 1


if __name__ == "__main__":
    main()
