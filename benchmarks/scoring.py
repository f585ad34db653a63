"""How fast the published lists are computed: the project's scorer against the alternatives,
and the nightly's own publishing path.

    make bench-deps                                  # installs `implicit` (benchmark only)
    python -m benchmarks.scoring                     # 100k users × 20k products × 64 dims
    python -m benchmarks.scoring --users 1000000 --only project   # one scorer, one size
    python -m benchmarks.scoring --only publish --publish-users 20000   # the publishing path

Every contender gets the same THREADS (`--threads`, default the project's SCORING_THREADS:
the cores, at most 4), pinned with threadpoolctl for BLAS and OpenMP and passed to whatever
takes a thread count; each rate is the best of 3 timed runs after one untimed warm-up.

On random float32 factors (100,000 users × 20,000 products × 64 dimensions, top 20, ten
bought products excluded per user and 5% of the catalogue out of stock), prints users per
second for:
- project: tasks.publishing.recommend.write_partition on one dense factor model with no
  rules and no reasons (the fused path), i.e. the exact top-N selector with the exclusions
  inside the selection AND the zstd Parquet write (row groups, sorted users);
- implicit: implicit.cpu.topk.topk with the same exclusions (filter_query_items,
  filter_items); and without them (`implicit_unfiltered`), its fastest case; THREADS
  OpenMP threads, each with single-threaded BLAS (the project's arrangement, and implicit's
  own advice);
- predict_loop: LightFM's predict for one user at a time over every product, then an
  argpartition (a sample of users, extrapolated);
- gemm_only: the chunked matrix multiply alone over all 20,000 products, no selection,
  nothing written; gemm_eligible: the same over exactly the in-stock products the project
  scores (the fair ceiling). Each is the faster of two arrangements on THREADS cores
  (chunks in turn with BLAS on THREADS threads, or THREADS threads each multiplying whole
  chunks with single-threaded BLAS, as the project does) and of chunks of 256 and 1,024
  users;
- publish: the nightly's own publishing path, write_partition as the publish stage calls it
  per partition (tasks/publishing/publish.py, with PublishParams' chunk size) on the `large`
  preset's shape: 500,000 users, 20,000 products (the same
  5% out of stock), a Blend of the demo's published components with its weights
  (lightfm_hybrid: dense 64 + bias; last_item_transitions: purchase histories × a sparse
  product-product matrix; category_transitions; content_based: attribute profiles;
  popularity at weight 0 for the tiers), fitted by the project's own code on seeded
  synthetic purchases calibrated on the large store (79% of users buy, 8.4 purchases and
  5 distinct products per buyer, 11% of users without events: the profile tier), with
  dataset.toml's rules (max_per_brand, min_categories, launch boost, repurchase cycles, the
  contraindication), tiers and reasons on, Parquet written. A seeded sample of users (the
  first `--publish-users` in user_id order; default two of the path's blocks of 16,384
  users per thread) is timed at the full model and catalogue size: `publish_users_timed`
  says how many, `publish_threads_busy` how many scoring threads that many users keep
  busy (each takes whole blocks).

The project's scorer runs in its own process (then again at 1M users), and so does the
publishing path; each reports its peak memory (the publishing path's includes building the
shop and its models). Then the ratios: the targets are judged
against the eligible ceiling. The LAST line is one JSON object; the same figures go to
docs/results/scoring.json (`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from benchmarks.results import record
from demo_store.generate import PRESETS
from tasks.publishing.recommend import SCORE_BLOCK_USERS, Audience, write_partition
from tasks.publishing.scoring import BLOCK_SCORES, SCORING_THREADS
from tasks.training.models import FactorModel

N_ITEMS, DIM, TOP, BOUGHT_PER_USER = 20_000, 64, 20, 10
OUT_OF_STOCK = 0.05
REPEATS = 3  # every rate: the best of 3 timed runs, after one untimed warm-up
GEMM_CHUNKS = (256, 1024)  # users per product call of the multiply-only ceilings
PREDICT_SAMPLE = 300  # users of the predict loop (extrapolated)

# The publishing path: the `large` preset's shape and the demo's published blend (weights as
# docs/results/nightly.json records them; popularity kept at weight 0 for the popular tier,
# as tasks.training.train.blend_members keeps it).
LARGE = PRESETS["large"]
DEMO_BLEND = {
    "lightfm_hybrid": 1.0,
    "last_item_transitions": 0.1,
    "category_transitions": 5.0,
    "content_based": 0.25,
    "popularity": 0.0,
}
# Calibrated on the generated large store (seed 42): shares of users, purchases per buyer.
BUYERS, BROWSERS = 0.79, 0.10  # users with purchases; with other events only
PURCHASES_MEDIAN, PURCHASES_SIGMA = 6.0, 0.82  # lognormal: mean 8.4, median 6
DISTINCT_SHARE = 0.6  # distinct products / purchases (consumables are rebought)
POPULARITY_SIGMA = 1.7  # lognormal product appeal: purchases per product p99/median ~ 50
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # the demo store's last day


def factors(n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, DIM), dtype=np.float32)
    items = rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    return users, items


def in_stock_mask(seed: int = 2) -> np.ndarray:
    """The products that may be recommended (95%): the same for every contender."""
    return np.random.default_rng(seed).random(N_ITEMS) > OUT_OF_STOCK


def exclusions(n_users: int, seed: int = 1) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, (n_users + 1) * BOUGHT_PER_USER, BOUGHT_PER_USER, dtype=np.int64)
    indices = rng.integers(0, N_ITEMS, size=n_users * BOUGHT_PER_USER, dtype=np.int32)
    data = np.ones(len(indices), dtype=bool)
    bought = sp.csr_matrix((data, indices, indptr), shape=(n_users, N_ITEMS))
    return bought, in_stock_mask()


def ids(prefix: str, count: int) -> pa.Array:
    """U0000000, U0000001, ...: zero-padded, so their order is the rows' order."""
    numbers = pa.array(np.arange(count)).cast(pa.string())
    return pc.binary_join_element_wise(
        prefix, pc.utf8_lpad(numbers, width=len(str(count)), padding="0"), ""
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory: its own address space's high-water mark
    (VmHWM). ru_maxrss is not that on Linux: a child started by exec keeps its parent's
    resident size at the fork as a floor, so a fresh process spawned after the parent's
    large multiplies reported their memory as its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    """The fastest of `repeats` timed runs after one untimed warm-up (caches, compiled
    code, the model's product tiles, the allocator)."""
    run()
    seconds = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds


def project_rate(n_users: int, threads: int, repeats: int = REPEATS) -> dict:
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
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(threads):
        path = Path(folder) / "recommendations.parquet"
        seconds = best_seconds(
            lambda: write_partition(
                model, audience, 0, n_users, TOP, "bench", NOW, path, workers=threads
            ),
            repeats,
        )
        written = pq.ParquetFile(path)
        assert written.metadata.num_rows == n_users * TOP
        first = written.read_row_group(0, columns=["user_id", "rank"])
        assert first.column("rank").to_pylist()[:TOP] == list(range(1, TOP + 1))
        size_mib = path.stat().st_size / 2**20
    return {
        "users_per_s": n_users / seconds,
        "seconds": seconds,
        "parquet_mib": size_mib,
        "peak_rss_mib": peak_rss_mib(),
    }


def gemm_rate(n_users: int, threads: int, allowed: np.ndarray | None = None) -> tuple[float, str]:
    """The plain chunked product users @ items.T over the `allowed` products (all when None),
    nothing selected: the fastest arrangement on `threads` cores and chunk size."""
    users, items = factors(n_users)
    if allowed is not None:
        items = items[allowed]
    items_t = np.ascontiguousarray(items.T)
    buffers: dict[tuple[int, int], np.ndarray] = {}

    def multiply(begin: int, chunk: int) -> None:
        rows = users[begin : begin + chunk]
        key = (threading.get_ident(), len(rows))
        out = buffers.get(key)
        if out is None:
            out = buffers[key] = np.empty((len(rows), items_t.shape[1]), np.float32)
        np.matmul(rows, items_t, out=out)

    def in_turn(chunk: int) -> None:  # one chunk after another, BLAS on every thread
        with threadpool_limits(threads, "blas"):
            for begin in range(0, n_users, chunk):
                multiply(begin, chunk)

    def side_by_side(chunk: int) -> None:  # threads take whole chunks, BLAS single-threaded
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda begin: multiply(begin, chunk), range(0, n_users, chunk)))

    ways = {"chunks in turn, BLAS on {t} threads": in_turn}
    if threads > 1:
        ways["{t} threads on whole chunks, BLAS single-threaded"] = side_by_side
    timed = {
        f"{chunk:,} users per call, " + name.format(t=threads): best_seconds(
            lambda w=way, c=chunk: w(c)
        )
        for name, way in ways.items()
        for chunk in GEMM_CHUNKS
    }
    fastest = min(timed, key=timed.get)
    return n_users / timed[fastest], fastest


def implicit_rate(n_users: int, threads: int, filtered: bool = True) -> float | None:
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
    # its `threads` OpenMP threads each multiply with single-threaded BLAS, as the project's
    # threads do and as implicit recommends (BLAS on `threads` threads inside each of them
    # oversubscribes the cores: half the rate here)
    with threadpool_limits(threads), threadpool_limits(1, "blas"):
        seconds = best_seconds(
            lambda: topk(items, users, TOP, num_threads=threads, **(filters if filtered else {}))
        )
    return n_users / seconds


def predict_loop_rate(n_users: int, threads: int, sample: int = PREDICT_SAMPLE) -> float:
    from lightfm import LightFM

    users, items = factors(n_users)
    model = LightFM(no_components=DIM)
    model._initialize(DIM, N_ITEMS, n_users)  # the factors are given, not learned
    model.user_embeddings, model.item_embeddings = users, items
    every = np.arange(N_ITEMS, dtype=np.int32)

    def loop() -> None:
        for user in range(sample):  # the per-user loop is what is being measured
            scores = model.predict(user, every, num_threads=threads)
            np.argpartition(-scores, TOP)[:TOP]

    with threadpool_limits(threads):
        return sample / best_seconds(loop)


# ------------------------------------------------------------ the nightly's publishing path


def synthetic_shop(n_users: int, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(users, products, events) shaped like the `large` store: the demo catalogue's
    categories, ingredients, skin types and regions; brands with a long tail; purchases
    of products drawn by a long-tailed appeal, some rebought, over 18 months."""
    from demo_store import catalog

    rng = np.random.default_rng(seed)
    categories = list(catalog.CATEGORIES)
    shares = np.array([catalog.CATEGORIES[c][0] for c in categories])
    category = rng.choice(len(categories), size=N_ITEMS, p=shares / shares.sum())
    brand_weight = rng.zipf(1.6, size=LARGE.n_brands).clip(max=50).astype(float)
    brand = rng.choice(LARGE.n_brands, size=N_ITEMS, p=brand_weight / brand_weight.sum())
    ingredients = np.array(catalog.INGREDIENTS)
    typical = np.ones((len(categories), len(ingredients)))
    for c, name in enumerate(categories):
        typical[c, np.isin(ingredients, catalog.CATEGORIES[name][3])] = 8.0
    keys = np.log(typical[category]) + rng.gumbel(size=(N_ITEMS, len(ingredients)))
    top = np.argsort(-keys, axis=1)[:, :4]
    n_actives = rng.choice([2, 3, 4], size=N_ITEMS, p=[0.35, 0.45, 0.2])
    actives = ["|".join(ingredients[row[:k]]) for row, k in zip(top, n_actives, strict=True)]
    brand_names = np.array([f"Brand{b:03d}" for b in range(LARGE.n_brands)])
    new = rng.random(N_ITEMS) < 0.25
    launched_days_ago = np.where(
        new, rng.uniform(14, 30 * LARGE.months, N_ITEMS), rng.uniform(540, 1440, N_ITEMS)
    )
    products = pd.DataFrame(
        {
            "product_id": ids("P", N_ITEMS).to_pandas(),
            "name": pd.Series(brand_names[brand])
            + " "
            + pd.Series(np.char.title(ingredients[top[:, 0]]))
            + " "
            + pd.Series(np.array(categories)[category]).str.title(),
            "brand": brand_names[brand],
            "category": np.array(categories)[category],
            "ingredients": actives,
            "price": np.round(rng.lognormal(3.2, 0.5, N_ITEMS), 2),
            "launched_at": pd.Timestamp(NOW) - pd.to_timedelta(launched_days_ago, unit="D"),
            "in_stock": in_stock_mask(),
        }
    )
    skin = rng.choice(len(catalog.SKIN_TYPES), size=n_users, p=catalog.SKIN_TYPE_SHARE)
    concerns = np.array(catalog.CONCERNS)
    users = pd.DataFrame(
        {
            "user_id": ids("U", n_users).to_pandas(),
            "signup_at": pd.Timestamp(NOW) - pd.to_timedelta(rng.uniform(1, 1200, n_users), "D"),
            "birth_year": np.clip(np.round(rng.normal(1990, 11, n_users)), 1950, 2008),
            "region": np.array(catalog.REGIONS)[rng.integers(0, len(catalog.REGIONS), n_users)],
            "skin_type": np.array(catalog.SKIN_TYPES)[skin],
            "skin_concerns": concerns[rng.integers(0, len(concerns), n_users)],
        }
    )
    # Purchases: each buyer owns `distinct` products (drawn by appeal) and buys `count`
    # times among them, at random moments of the 18 months.
    kind = rng.random(n_users)
    buyers = np.flatnonzero(kind < BUYERS)
    count = np.maximum(
        1, np.round(rng.lognormal(np.log(PURCHASES_MEDIAN), PURCHASES_SIGMA, len(buyers)))
    ).astype(np.int64)
    distinct = np.maximum(1, np.round(count * DISTINCT_SHARE)).astype(np.int64)
    appeal = rng.lognormal(0, POPULARITY_SIGMA, N_ITEMS)
    owned = rng.choice(N_ITEMS, size=int(distinct.sum()), p=appeal / appeal.sum())
    owned_start = np.repeat(np.cumsum(distinct) - distinct, count)
    buyer = np.repeat(buyers, count)
    position = np.arange(len(buyer)) - np.repeat(np.cumsum(count) - count, count)
    distinct_of = np.repeat(distinct, count)
    pick = np.where(
        position < distinct_of, position, (rng.random(len(buyer)) * distinct_of).astype(np.int64)
    )
    product = owned[owned_start + pick]
    browsers = np.flatnonzero((kind >= BUYERS) & (kind < BUYERS + BROWSERS))
    row = np.concatenate([buyer, browsers])
    column = np.concatenate([product, rng.choice(N_ITEMS, len(browsers), p=appeal / appeal.sum())])
    age_days = rng.uniform(0, 30 * LARGE.months, len(row))
    events = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[row],
            "product_id": products["product_id"].to_numpy()[column],
            "event_type": np.where(np.arange(len(row)) < len(buyer), "purchase", "view"),
            "occurred_at": pd.Timestamp(NOW) - pd.to_timedelta(age_days, unit="D"),
        }
    )
    return users, products, events


def demo_blend(users: pd.DataFrame, products: pd.DataFrame, events: pd.DataFrame, dataset):
    """The demo's published blend, each component fitted by the project's own code on
    these events (the hybrid's embeddings random: LightFM itself is not being timed)."""
    from tasks.features.build import feature_matrix
    from tasks.features.interactions import decayed_history, recency_ranks, weighted_interactions
    from tasks.training.models import Blend
    from tasks.training.models.content import fit_content
    from tasks.training.models.neighbours import ItemKNNParams
    from tasks.training.models.popularity import fit_popularity
    from tasks.training.models.transitions import (
        TransitionParams,
        fit_category_transitions,
        fit_transitions,
    )

    user_ids, product_ids = users["user_id"], products["product_id"]
    shape = (len(user_ids), len(product_ids))
    weights = dataset.events.weights
    types = dataset.events.transaction_types
    demand = weighted_interactions(events, user_ids, product_ids, weights, half_life_days=30.0)
    interactions = weighted_interactions(events, user_ids, product_ids, weights)
    seq_rows, seq_cols, seq_rank = recency_ranks(events, user_ids, product_ids, types)
    transition = TransitionParams()
    history = decayed_history(seq_rows, seq_cols, seq_rank, transition.recency_decay, shape)
    weighted_types = [t for t, w in weights.items() if w > 0]
    rows, cols, rank = recency_ranks(events, user_ids, product_ids, weighted_types)
    recent = decayed_history(rows, cols, rank, ItemKNNParams().recency_decay, shape)
    attributes, _ = feature_matrix(products, "product_id", dataset.product_features, False)
    categories = pd.factorize(products[dataset.category_column()].astype("string"))[0]
    rng = np.random.default_rng(4)
    hybrid = FactorModel(
        np.hstack([rng.normal(0, 0.3, (shape[0], DIM)), np.ones((shape[0], 1))]).astype(np.float32),
        np.hstack([rng.normal(0, 0.3, (shape[1], DIM)), rng.normal(0, 1, (shape[1], 1))]).astype(
            np.float32
        ),
    )
    components = {
        "lightfm_hybrid": hybrid,
        "last_item_transitions": fit_transitions(seq_rows, seq_cols, history, transition),
        "category_transitions": fit_category_transitions(
            seq_rows,
            seq_cols,
            history,
            categories.astype(np.int64),
            np.asarray(demand.sum(axis=0)).ravel(),
            transition,
        ),
        "content_based": fit_content(recent.multiply(interactions.log1p()).tocsr(), attributes),
        "popularity": fit_popularity(demand),
    }
    return Blend(components, dict(DEMO_BLEND))


def publish_rate(model_users: int, timed_users: int | None, threads: int, repeats: int) -> dict:
    """The nightly's publishing path (see the module's docstring) on `timed_users` users of
    a `model_users`-user shop: what score_partition does for one partition, timed."""
    from tasks.dataset import DatasetSpec
    from tasks.publishing.publish import PublishParams
    from tasks.publishing.recommend import load_audience
    from tasks.run_context import Snapshot

    params = PublishParams()
    timed_users = min(timed_users or 2 * threads * SCORE_BLOCK_USERS, model_users)
    dataset = DatasetSpec.from_toml(Path(__file__).absolute().parent.parent / "dataset.toml")
    started = time.perf_counter()
    users, products, events = synthetic_shop(model_users)
    blend = demo_blend(users, products, events, dataset)
    with tempfile.TemporaryDirectory() as folder:
        tables = {}
        for name, frame in (("users", users), ("products", products), ("events", events)):
            tables[name] = Path(folder) / f"{name}.parquet"
            frame.to_parquet(tables[name])
        snapshot = Snapshot(
            tables=tables,
            counts={"users": len(users), "products": len(products), "events": len(events)},
            fingerprint="benchmark",
            sources={},
        )
        setup = time.perf_counter() - started
        started = time.perf_counter()
        audience = load_audience(snapshot, dataset, now=NOW)  # once per partition, as there
        audience_s = time.perf_counter() - started
        path = Path(folder) / "part-00000.parquet"
        runs: list[tuple[float, dict]] = []  # (seconds, counts) of each run, warm-up first

        def run() -> None:
            begin = time.perf_counter()
            counts = write_partition(
                blend,
                audience,
                0,
                timed_users,
                TOP,
                "bench",
                NOW,
                path,
                params.chunk_size,
                workers=threads,
            )
            runs.append((time.perf_counter() - begin, counts))

        with threadpool_limits(threads):
            seconds = best_seconds(run, repeats)
        counts = runs[-1][1]
        written = pq.read_table(path, columns=["user_id", "rank", "tier", "reason"])
    assert counts["users"] == timed_users and written.num_rows == counts["rows"]
    reasons = written.column("reason").to_pandas().value_counts(normalize=True)
    return {
        "users_per_s": timed_users / seconds,
        "seconds": seconds,
        "first_run_seconds": runs[0][0],
        "chunk_users": min(params.chunk_size, BLOCK_SCORES // N_ITEMS),  # score-block path
        "users_timed": timed_users,
        # the path hands whole blocks of SCORE_BLOCK_USERS users to its scoring threads
        "threads_busy": min(threads, -(-timed_users // SCORE_BLOCK_USERS)),
        "model_users": model_users,
        "setup_seconds": setup,
        "audience_seconds": audience_s,
        "events": len(events),
        "eligible_products": int(audience.allowed.sum()),
        "rows": counts["rows"],
        "users_per_tier": {t: counts[f"users_{t}"] for t in ("history", "profile", "popular")},
        "rules": dataset.publishing.active_rules(),
        "top_reasons": {k: round(v, 3) for k, v in reasons.head(3).items()},
        "peak_rss_mib": peak_rss_mib(),
    }


def fresh_process(only: str, threads: int, *options: str) -> dict:
    """One measurement alone in a new process (its own peak memory)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scoring",
            "--only",
            only,
            "--threads",
            str(threads),
            *options,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--only", choices=["project", "publish"], default=None)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="best of (after a warm-up)")
    parser.add_argument(
        "--threads", type=int, default=SCORING_THREADS, help="every contender's threads"
    )
    parser.add_argument(
        "--publish-model-users",
        type=int,
        default=LARGE.n_users,
        help="users of the publishing path's shop (default: the large preset's)",
    )
    parser.add_argument(
        "--publish-users",
        type=int,
        default=None,
        help="users timed on the publishing path (default: two blocks per thread)",
    )
    parser.add_argument(
        "--million", type=int, default=1_000_000, help="users of the project's large run"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="default: docs/results/scoring.json"
    )
    command = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    threads = args.threads
    if args.only == "project":
        print(json.dumps(project_rate(args.users, threads, args.repeats)))
        return
    if args.only == "publish":
        print(
            json.dumps(
                publish_rate(args.publish_model_users, args.publish_users, threads, args.repeats)
            )
        )
        return

    print(f"threads for every contender: {threads}", file=sys.stderr)
    project = fresh_process("project", threads, "--users", str(args.users))
    publish_options = ["--publish-model-users", str(args.publish_model_users)]
    if args.publish_users:
        publish_options += ["--publish-users", str(args.publish_users)]
    publish = fresh_process("publish", threads, *publish_options)
    gemm_all, _ = gemm_rate(args.users, threads)
    gemm_eligible, arrangement = gemm_rate(args.users, threads, in_stock_mask())
    rates = {
        "project_users_per_s": project["users_per_s"],
        "publish_users_per_s": publish["users_per_s"],
        "implicit_users_per_s": implicit_rate(args.users, threads),
        "implicit_unfiltered_users_per_s": implicit_rate(args.users, threads, filtered=False),
        "predict_loop_users_per_s": predict_loop_rate(args.users, threads),
        "gemm_only_users_per_s": gemm_all,
        "gemm_eligible_users_per_s": gemm_eligible,
    }
    million = fresh_process("project", threads, "--users", str(args.million))
    project_rate_ = rates["project_users_per_s"]
    result = {k: round(v) if v else v for k, v in rates.items()} | {
        "project_vs_implicit": rates["implicit_users_per_s"]
        and round(project_rate_ / rates["implicit_users_per_s"], 2),
        "project_vs_implicit_unfiltered": rates["implicit_unfiltered_users_per_s"]
        and round(project_rate_ / rates["implicit_unfiltered_users_per_s"], 2),
        "project_vs_predict_loop": round(project_rate_ / rates["predict_loop_users_per_s"], 1),
        "project_share_of_gemm": round(project_rate_ / gemm_all, 3),
        "project_share_of_gemm_eligible": round(project_rate_ / gemm_eligible, 3),
        "publish_share_of_project": round(publish["users_per_s"] / project_rate_, 5),
        "project_seconds_100k": round(project["seconds"], 2),
        "parquet_mib_100k": round(project["parquet_mib"], 1),
        "peak_rss_mib_100k": round(project["peak_rss_mib"]),
        "project_users_per_s_1m": round(million["users_per_s"]),
        "peak_rss_mib_1m": round(million["peak_rss_mib"]),
        "publish_users_timed": publish["users_timed"],
        "publish_threads_busy": publish["threads_busy"],
        "publish_model_users": publish["model_users"],
        "publish_preset": "large" if publish["model_users"] == LARGE.n_users else None,
        "publish_seconds": round(publish["seconds"], 2),
        "publish_first_run_seconds": round(publish["first_run_seconds"], 2),
        "publish_audience_seconds": round(publish["audience_seconds"], 1),
        "publish_seconds_all_users": round(publish["model_users"] / publish["users_per_s"]),
        "publish_peak_rss_mib": round(publish["peak_rss_mib"]),
        "publish_events": publish["events"],
        "publish_users_per_tier": publish["users_per_tier"],
        "publish_blend": dict(DEMO_BLEND),
        "publish_rules": publish["rules"],
        "publish_chunk_users": publish["chunk_users"],
        "eligible_products": int(in_stock_mask().sum()),
        "gemm_arrangement": arrangement,
        "threads": threads,
        "users": args.users,
        "products": N_ITEMS,
        "dimensions": DIM,
        "top_n": TOP,
    }
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    record("scoring", "benchmarks.scoring", command, result, args.results)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
