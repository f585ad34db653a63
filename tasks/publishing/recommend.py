"""Score a partition of users into recommendation rows: tiers, rules, reasons, Parquet.

Users are taken in user_id order (the published file is sorted by user_id), a partition
at a time; within it, chunks of users are scored by the exact top-N selector, each tier
with its own model, and written as Parquet row groups as they come (memory stays bounded
by the chunk, whatever the number of users).
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from tasks.dataset import DatasetSpec
from tasks.publishing.reasons import FROM_HISTORY, ReasonContext, explain
from tasks.publishing.rules import ListRules, blocked_products, exclusion_matrix, rules_lists
from tasks.publishing.scoring import DEFAULT_CHUNK, SCORING_THREADS, iter_top_n
from tasks.publishing.tiers import TIERS, assign_tiers
from tasks.run_context import Snapshot
from tasks.training.models import Blend, Scorer, load_scorer
from tasks.training.train import HYBRID, POPULARITY

RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("rank", pa.int16()),
        ("product_id", pa.string()),
        ("score", pa.float32()),
        ("model_version", pa.string()),
        ("generated_at", pa.timestamp("us", tz="UTC")),
        ("tier", pa.string()),
        ("reason", pa.string()),
        ("variant", pa.string()),
    ]
)
# Encodings chosen by measurement (benchmarks/scoring.py, 2M rows): min/max statistics only
# where readers filter (user_id: point lookups; rank); dictionaries only for repeated
# strings (trying one on random float scores cost more than the rest of the column);
# scores byte-stream-split (smaller and 5× faster than a dictionary attempt).
WRITER_OPTIONS = {
    "compression": "zstd",
    "write_statistics": ["user_id", "rank"],
    "use_dictionary": ["product_id", "model_version", "tier", "reason", "variant"],
    "use_byte_stream_split": ["score"],
    "store_schema": False,  # dictionary-typed columns are read back as plain strings
}
VARIANTS: tuple[str, ...] = ("model", "control")  # control: the popularity list (A/B test)
ROW_GROUP_USERS = 2048  # a point lookup reads one row group of ~2k users' lists
SCORE_BLOCK_USERS = 8 * ROW_GROUP_USERS  # users scored by one thread, then written, at a time


class Experiment(BaseModel):
    """An A/B test: users whose stable hash falls under `control_share` are the control."""

    name: str = "ab1"
    control_share: float = Field(0.0, ge=0, le=0.5)

    def control(self, user_ids: pd.Series) -> np.ndarray:
        """Boolean per user: in the control group. The same user_id and experiment name
        always land on the same side, whatever else changes in the shop."""
        if self.control_share <= 0:
            return np.zeros(len(user_ids), dtype=bool)
        key = hashlib.blake2b(self.name.encode(), digest_size=8).hexdigest()  # 16 chars
        hashes = pd.util.hash_array(user_ids.astype(str).to_numpy(dtype=object), hash_key=key)
        return (hashes % np.uint64(10_000)) < np.uint64(round(self.control_share * 10_000))


@dataclass
class Audience:
    """Everything scoring needs besides the model, in users/products table order."""

    user_ids: pa.Array
    product_ids: pa.Array
    order: np.ndarray  # user rows sorted by user_id
    tiers: np.ndarray  # user → tier code
    exclude: sp.csr_matrix | None
    allowed: np.ndarray | None
    rules: ListRules | None = None
    reasons: ReasonContext | None = None
    control: np.ndarray | None = None  # user → in the A/B control group (popularity list)

    def in_control(self, rows: np.ndarray) -> np.ndarray:
        if self.control is None:
            return np.zeros(len(rows), dtype=bool)
        return self.control[rows]


def tier_models(model: Scorer) -> dict[int, Scorer]:
    """Tier code → the model that serves it: the blend; its hybrid; its best sellers."""
    if not isinstance(model, Blend):
        return {0: model, 1: model, 2: model}
    return {
        0: model,
        1: model.components.get(HYBRID, model),
        2: model.components.get(POPULARITY, model),
    }


def load_audience(
    snapshot: Snapshot,
    dataset: DatasetSpec,
    now: datetime | None = None,
    control: Experiment | None = None,
) -> Audience:
    """Read the snapshot once: tiers, exclusions, allowed products, rules and reasons.

    now: the moment windows and launches are measured from; None = the newest event (so a
    rerun on the same data agrees). control: the A/B test, if any."""
    users = snapshot.read("users")
    products = snapshot.read("products")
    events = snapshot.read("events", columns=["user_id", "product_id", "event_type", "occurred_at"])
    if now is None:
        now = pd.Timestamp(events["occurred_at"].max()).to_pydatetime()
    spec = dataset.publishing
    purchases = events[events["event_type"].isin(dataset.events.transaction_types)]
    category_column = dataset.category_column()
    categories = products.get(category_column) if category_column else None
    weighted = [t for t, w in dataset.events.weights.items() if w > 0]
    phrased = [c for c in spec.phrases if c in dataset.user_features]
    categorical = [c for c, f in dataset.user_features.items() if f.kind == "categorical"]
    return Audience(
        user_ids=pa.array(users["user_id"].astype(str), pa.string()),
        product_ids=pa.array(products["product_id"].astype(str), pa.string()),
        order=np.argsort(users["user_id"].astype(str).to_numpy(), kind="stable"),
        tiers=assign_tiers(users, events, list(dataset.user_features), weighted),
        exclude=exclusion_matrix(
            purchases, users["user_id"], products["product_id"], categories, spec, now
        ),
        allowed=blocked_products(products, dataset.products.in_stock_column, spec),
        rules=ListRules.compile(spec, users, products, category_column, now),
        reasons=ReasonContext.build(
            users,
            products,
            purchases,
            spec.name_column,
            category_column,
            (phrased + categorical + [None])[0],
            dataset.models.segment_columns,
            {c: f.sep for c, f in dataset.product_features.items() if f.kind == "multi"},
            spec.phrases,
        ),
        control=(control or Experiment()).control(users["user_id"]),
    )


def recommend_rows(
    models: dict[int, Scorer],
    rows: np.ndarray,
    tiers: np.ndarray,
    n: int,
    audience: Audience,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int = SCORING_THREADS,
) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores) of shape (len(rows), n) for user rows, each tier by its model."""
    rules = audience.rules
    n = min(n, next(iter(models.values())).n_items)
    items = np.full((len(rows), n), -1, dtype=np.int64)
    scores = np.full((len(rows), n), -np.inf, dtype=np.float32)
    for code, model in models.items():
        where = np.flatnonzero(tiers == code)
        if not where.size:
            continue
        pool = rules.pool_size(n, model.n_items) if rules else n
        adjust = rules.adjust if rules else None
        for begin, _, chunk_items, chunk_scores in iter_top_n(
            model,
            rows[where],
            pool,
            audience.exclude,
            audience.allowed,
            chunk_size,
            adjust,
            workers,
        ):
            target = where[begin : begin + len(chunk_items)]
            if rules:  # pools short of categories widened (tasks/publishing/rules.py)
                chunk_items, chunk_scores = rules_lists(
                    model,
                    rows[target],
                    n,
                    rules,
                    chunk_items,
                    chunk_scores,
                    audience.exclude,
                    audience.allowed,
                )
            items[target] = chunk_items
            scores[target] = chunk_scores
    return items, scores


def partition_table(
    audience: Audience,
    model: Scorer,
    rows: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    version: str,
    generated_at: datetime,
    tiers: np.ndarray | None = None,
    control: np.ndarray | None = None,
) -> pa.Table:
    """Rows of users `rows` (already in user_id order), best first, with tier, reason and
    A/B variant. tiers: the tier that served each user (default: their own tier)."""
    n_users, width = items.shape
    tiers = audience.tiers[rows] if tiers is None else tiers
    control = audience.in_control(rows) if control is None else control
    valid = (items >= 0).ravel()
    pair_user = np.repeat(rows, width)[valid]
    pair_item = items.ravel()[valid]
    tier_codes = np.repeat(tiers, width)[valid]
    if audience.reasons is not None:
        reason = explain(audience.reasons, model, pair_user, pair_item, tier_codes)
        reason = pa.array(np.where(pd.isna(reason), FROM_HISTORY, reason), pa.string())
    else:
        reason = _repeat(TIER_REASONS, tier_codes)
    count = int(valid.sum())
    return pa.Table.from_arrays(
        [
            audience.user_ids.take(pa.array(pair_user)),
            pa.array(np.tile(np.arange(1, width + 1, dtype=np.int16), n_users)[valid]),
            audience.product_ids.take(pa.array(pair_item)),
            pa.array(scores.ravel()[valid].astype(np.float32)),
            _repeat([version], np.zeros(count, np.int32)),
            pa.array(np.full(count, np.datetime64(generated_at.replace(tzinfo=None), "us"))).cast(
                pa.timestamp("us", tz="UTC")
            ),
            _repeat(list(TIERS), tier_codes),
            reason,
            _repeat(list(VARIANTS), np.repeat(control, width)[valid]),
        ],
        schema=_schema(reason.type),
    )


def _schema(reason: pa.DataType) -> pa.Schema:
    """RECOMMENDATIONS_SCHEMA with the repeated strings dictionary-encoded (as written;
    a reader of the Parquet file sees RECOMMENDATIONS_SCHEMA)."""
    repeated = pa.dictionary(pa.int32(), pa.string())
    schema = RECOMMENDATIONS_SCHEMA
    for name in ("model_version", "tier", "variant"):
        schema = schema.set(schema.get_field_index(name), pa.field(name, repeated))
    return schema.set(schema.get_field_index("reason"), pa.field("reason", reason))


TIER_REASONS = pa.array([FROM_HISTORY, "chosen from your profile", "a best seller right now"])


def _repeat(values: list[str] | pa.Array, codes: np.ndarray) -> pa.DictionaryArray:
    """values[codes], dictionary-encoded: the Parquet writer stores the dictionary as is
    (no hashing of a million equal strings) and readers get plain strings back, because
    the files are written without the Arrow schema (WRITER_OPTIONS)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes, dtype=np.int32)), pa.array(values, pa.string())
    )


def write_partition(
    model_path: Path | Scorer,
    audience: Audience,
    start: int,
    stop: int,
    n: int,
    version: str,
    generated_at: datetime,
    path: Path,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int = SCORING_THREADS,
    model_sha256: str | None = None,
) -> dict[str, int | list[int]]:
    """Score users order[start:stop] and write them to `path` (zstd Parquet, row groups of
    ROW_GROUP_USERS users). Returns row and user counts per tier. A model given by path is
    loaded only after its files match `model_sha256` (when given)."""
    model = (
        load_scorer(model_path, model_sha256) if isinstance(model_path, Path | str) else model_path
    )
    models = tier_models(model)
    counts = {"rows": 0, "users": 0} | {f"users_{t}": 0 for t in (*TIERS, *VARIANTS)}
    shown = np.zeros((len(TIERS), len(audience.product_ids)), dtype=bool)

    def write(
        rows: np.ndarray,
        items: np.ndarray,
        scores: np.ndarray,
        tiers: np.ndarray,
        control: np.ndarray,
    ) -> None:
        table = partition_table(
            audience, model, rows, items, scores, version, generated_at, tiers, control
        )
        writer.write_table(table, row_group_size=ROW_GROUP_USERS * items.shape[1])

    def score(begin: int) -> tuple[np.ndarray, ...]:
        rows = audience.order[begin : min(begin + SCORE_BLOCK_USERS, stop)]
        control = audience.in_control(rows)
        tiers = np.where(control, np.int8(TIERS.index("popular")), audience.tiers[rows])
        items, scores = recommend_rows(models, rows, tiers, n, audience, chunk_size, workers=1)
        return rows, items, scores, tiers, control

    blocks = iter(range(start, stop, SCORE_BLOCK_USERS))
    canned = audience.reasons is None  # one reason per tier, else explained per row
    reason_type = pa.dictionary(pa.int32(), pa.string()) if canned else pa.string()
    # Each scoring thread takes a whole block (one row group of users) with single-threaded
    # BLAS, blocks are consumed in order and a writer thread builds and encodes their rows:
    # the cores never meet at a barrier, wait for pyarrow, or for this loop.
    with (
        pq.ParquetWriter(path, _schema(reason_type), **WRITER_OPTIONS) as writer,
        threadpool_limits(1, "blas"),
        ThreadPoolExecutor(max(1, workers)) as scoring,
        ThreadPoolExecutor(1) as background,
    ):
        ahead = deque(scoring.submit(score, b) for b in islice(blocks, 2 * max(1, workers)))
        pending = None
        while ahead:
            rows, items, scores, tiers, control = ahead.popleft().result()
            for begin in islice(blocks, 1):
                ahead.append(scoring.submit(score, begin))
            if pending is not None:
                pending.result()
            pending = background.submit(write, rows, items, scores, tiers, control)
            listed = items >= 0
            counts["rows"] += int(listed.sum())
            counts["users"] += len(rows)
            for code, name in enumerate(TIERS):
                counts[f"users_{name}"] += int((tiers == code).sum())
            counts["users_control"] += int(control.sum())
            if audience.rules is not None:
                for key, value in audience.rules.compliance(rows, items).items():
                    counts[f"rule_{key}"] = counts.get(f"rule_{key}", 0) + value
            counts["users_model"] += int((~control).sum())
            shown[np.repeat(tiers, items.shape[1])[listed.ravel()], items[listed]] = True
        if pending is not None:
            pending.result()
    for code, name in enumerate(TIERS):
        counts[f"products_{name}"] = np.flatnonzero(shown[code]).tolist()
    return counts
