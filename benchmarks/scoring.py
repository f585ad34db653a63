"""How fast the published lists are computed: the project's scorer against the alternatives.

    make bench-deps                                  # installs `implicit` (benchmark only)
    python -m benchmarks.scoring                     # 100k users × 20k products × 64 dims
    python -m benchmarks.scoring --users 1000000 --only project   # one scorer, one size

On random float32 factors (100,000 users × 20,000 products × 64 dimensions, top 20, ten
bought products excluded per user and 5% of the catalogue out of stock), prints users per
second for:
- project: tasks.publishing.recommend.write_partition, i.e. the exact top-N selector with the
  exclusions inside the selection AND the zstd Parquet write (row groups, sorted users);
- implicit: implicit.cpu.topk.topk with the same exclusions (filter_query_items,
  filter_items), both threads; and without them (`implicit_unfiltered`), its fastest case;
- predict_loop: LightFM's predict for one user at a time over every product, then an
  argpartition (a sample of users, extrapolated);
- gemm_only: the chunked matrix multiply alone, no selection, nothing written (the ceiling:
  the faster of chunks of 256 and 1,024 users, BLAS on both cores);
each the best of 3 runs (the project's in its own process, after which it is run once more
at 1M users); then the ratios, and peak memory of the project's scorer at
100k and at 1M users (each measured in a fresh process). The LAST line is one JSON object;
the same figures go to docs/results/scoring.json (`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from benchmarks.results import record
from tasks.publishing.recommend import Audience, write_partition
from tasks.training.models import FactorModel

N_ITEMS, DIM, TOP, BOUGHT_PER_USER = 20_000, 64, 20, 10
REPEATS = 3  # rates are the best of 3 runs (this machine is shared; 1M users: one run)
GEMM_CHUNKS = (256, 1024)  # users per product call of the multiply-only ceiling


def factors(n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, DIM), dtype=np.float32)
    items = rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    return users, items


def exclusions(n_users: int, seed: int = 1) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, (n_users + 1) * BOUGHT_PER_USER, BOUGHT_PER_USER, dtype=np.int64)
    indices = rng.integers(0, N_ITEMS, size=n_users * BOUGHT_PER_USER, dtype=np.int32)
    data = np.ones(len(indices), dtype=bool)
    bought = sp.csr_matrix((data, indices, indptr), shape=(n_users, N_ITEMS))
    in_stock = rng.random(N_ITEMS) > 0.05
    return bought, in_stock


def ids(prefix: str, count: int) -> pa.Array:
    """U0000000, U0000001, ...: zero-padded, so their order is the rows' order."""
    numbers = pa.array(np.arange(count)).cast(pa.string())
    return pc.binary_join_element_wise(
        prefix, pc.utf8_lpad(numbers, width=len(str(count)), padding="0"), ""
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def project_rate(n_users: int, repeats: int = REPEATS) -> dict:
    users, items = factors(n_users)
    bought, in_stock = exclusions(n_users)
    audience = Audience(
        user_ids=ids("U", n_users),
        product_ids=ids("P", N_ITEMS),
        order=np.arange(n_users),
        tiers=np.zeros(n_users, np.int8),
        exclude=bought,
        allowed=in_stock,
    )
    model = FactorModel(users, items)
    seconds = np.inf
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recommendations.parquet"
        for _ in range(repeats):
            start = time.perf_counter()
            counts = write_partition(
                model, audience, 0, n_users, TOP, "bench", datetime.now(UTC), path
            )
            seconds = min(seconds, time.perf_counter() - start)
        written = pq.ParquetFile(path)
        assert counts["rows"] == written.metadata.num_rows == n_users * TOP
        first = written.read_row_group(0, columns=["user_id", "rank"])
        assert first.column("rank").to_pylist()[:TOP] == list(range(1, TOP + 1))
        size_mib = path.stat().st_size / 2**20
    return {
        "users_per_s": n_users / seconds,
        "seconds": seconds,
        "parquet_mib": size_mib,
        "peak_rss_mib": peak_rss_mib(),
    }


def gemm_rate(n_users: int) -> float:
    """The plain chunked product users @ items.T, nothing selected: the best of GEMM_CHUNKS
    chunk sizes, each the best of REPEATS runs, BLAS on every core."""
    users, items = factors(n_users)
    items_t = np.ascontiguousarray(items.T)

    def run(chunk: int) -> float:
        start = time.perf_counter()
        for begin in range(0, n_users, chunk):
            users[begin : begin + chunk] @ items_t
        return time.perf_counter() - start

    return n_users / min(run(chunk) for chunk in GEMM_CHUNKS for _ in range(REPEATS))


def implicit_rate(n_users: int, filtered: bool = True) -> float | None:
    try:
        from implicit.cpu.topk import topk
    except ImportError:
        print("implicit is not installed (make bench-deps): skipped", file=sys.stderr)
        return None
    users, items = factors(n_users)
    bought, in_stock = exclusions(n_users)
    filters = {
        "filter_query_items": bought.astype(np.float32),
        "filter_items": np.flatnonzero(~in_stock).astype(np.int32),
    }
    seconds = np.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        topk(items, users, TOP, num_threads=2, **(filters if filtered else {}))
        seconds = min(seconds, time.perf_counter() - start)
    return n_users / seconds


def predict_loop_rate(n_users: int, sample: int = 300) -> float:
    from lightfm import LightFM

    users, items = factors(n_users)
    model = LightFM(no_components=DIM)
    model._initialize(DIM, N_ITEMS, n_users)  # the factors are given, not learned
    model.user_embeddings, model.item_embeddings = users, items
    every = np.arange(N_ITEMS, dtype=np.int32)
    start = time.perf_counter()
    for user in range(sample):  # the per-user loop is what is being measured
        scores = model.predict(user, every, num_threads=2)
        np.argpartition(-scores, TOP)[:TOP]
    return sample / (time.perf_counter() - start)


def fresh_process(n_users: int, repeats: int = REPEATS) -> dict:
    """The project's scorer alone in a new process (its own peak memory)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scoring",
            "--users",
            str(n_users),
            "--only",
            "project",
            "--repeats",
            str(repeats),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--only", choices=["project"], default=None)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="project: best of")
    parser.add_argument(
        "--results", type=Path, default=None, help="default: docs/results/scoring.json"
    )
    command = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.only == "project":
        print(json.dumps(project_rate(args.users, args.repeats)))
        return

    project = fresh_process(args.users)
    rates = {
        "project_users_per_s": project["users_per_s"],
        "implicit_users_per_s": implicit_rate(args.users),
        "implicit_unfiltered_users_per_s": implicit_rate(args.users, filtered=False),
        "predict_loop_users_per_s": predict_loop_rate(args.users),
        "gemm_only_users_per_s": gemm_rate(args.users),
    }
    million = fresh_process(1_000_000, repeats=1)
    result = {k: round(v) if v else v for k, v in rates.items()} | {
        "project_vs_implicit": rates["implicit_users_per_s"]
        and round(rates["project_users_per_s"] / rates["implicit_users_per_s"], 2),
        "project_vs_implicit_unfiltered": rates["implicit_unfiltered_users_per_s"]
        and round(rates["project_users_per_s"] / rates["implicit_unfiltered_users_per_s"], 2),
        "project_vs_predict_loop": round(
            rates["project_users_per_s"] / rates["predict_loop_users_per_s"], 1
        ),
        "project_share_of_gemm": round(
            rates["project_users_per_s"] / rates["gemm_only_users_per_s"], 3
        ),
        "project_seconds_100k": round(project["seconds"], 2),
        "parquet_mib_100k": round(project["parquet_mib"], 1),
        "peak_rss_mib_100k": round(project["peak_rss_mib"]),
        "project_users_per_s_1m": round(million["users_per_s"]),
        "peak_rss_mib_1m": round(million["peak_rss_mib"]),
        "users": args.users,
        "products": N_ITEMS,
        "dimensions": DIM,
        "top_n": TOP,
    }
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    record("scoring", "benchmarks.scoring", command, result, args.results)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
