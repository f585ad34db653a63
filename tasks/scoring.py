"""Exact top-N from a model's scores (user and product vectors, or a blend of them), in
chunks of users, with exclusions applied inside the selection (never by filtering a list
afterwards, which could leave it short).

Memory is bounded by chunk_size × n_products scores, never n_users × n_products.

How the selection stays exact and cheap (`select_top`): the products are dealt into B
groups (product j in group j mod B) and each group's best score is taken, one vectorised
pass. The n-th best group maximum `t` is a lower bound on the n-th best score (n distinct
products reach it), so every product of the true top n scores at least `t` and lies in a
group whose maximum is at least `t`: only those groups (n of them, more only on ties) are
gathered, and the top n among their products scoring at least `t` is the exact answer.
Ties go to the lower product index, as a stable sort would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import as_strided
from threadpoolctl import threadpool_limits

from tasks.models import Scorer

DEFAULT_CHUNK = 256
SCORING_THREADS = max(1, min(os.cpu_count() or 1, 4))
GROUPS_PER_SLOT = 32  # B = n × this many groups: balances the group pass against the gather
_ROW_BITS, _INDEX_BITS = 12, 20  # packed sort key: chunk row | score | product index

# (user rows of the chunk, their scores) -> None; edits the scores in place
ScoreAdjuster = Callable[[np.ndarray, np.ndarray], None]


def _descending_bits(values: np.ndarray) -> np.ndarray:
    """uint64 whose ascending order is the float32 values' descending order."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    return (~ascending).astype(np.uint64)


def _rank_candidates(
    rows: np.ndarray, items: np.ndarray, values: np.ndarray, n_rows: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best n (row, item, value) triples per row by (value desc, item asc), as (n_rows, n)."""
    if n_rows < (1 << _ROW_BITS) and (items.size == 0 or items.max() < (1 << _INDEX_BITS)):
        key = (
            (rows.astype(np.uint64) << np.uint64(64 - _ROW_BITS))
            | (_descending_bits(values) << np.uint64(_INDEX_BITS))
            | items.astype(np.uint64)
        )
        order = np.argsort(key)
    else:
        order = np.lexsort((items, -values, rows))
    rows, items, values = rows[order], items[order], values[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]
    keep = position < n
    best_items = np.full((n_rows, n), -1, dtype=np.int64)
    best_values = np.full((n_rows, n), -np.inf, dtype=np.float32)
    best_items[rows[keep], position[keep]] = items[keep]
    best_values[rows[keep], position[keep]] = values[keep]
    return best_items, best_values


def _group_max(scores: np.ndarray, body: np.ndarray, body_width: int, tail: int) -> np.ndarray:
    group_max = body.max(axis=1)
    if tail:
        np.maximum(group_max[:, :tail], scores[:, body_width:], out=group_max[:, :tail])
    return group_max


def select_top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact best `n` per row of a C-contiguous float32 (rows, products) array, best first,
    ties to the lower index. -inf (and NaN) never rank: such slots hold item -1, score -inf.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n_rows, n_items = scores.shape
    n = min(n, n_items)
    groups = min(n * GROUPS_PER_SLOT, n_items // 4)
    if groups < n:  # a handful of products: rank every one
        scores[np.isnan(scores)] = -np.inf
        rows, items = np.indices(scores.shape).reshape(2, -1)
        best_items, best_values = _rank_candidates(rows, items, scores.ravel(), n_rows, n)
    else:
        depth = n_items // groups  # full rows of the (depth, groups) layout
        tail = n_items - depth * groups  # products depth*groups.. join groups 0..tail-1
        itemsize = scores.itemsize
        body = as_strided(
            scores,
            shape=(n_rows, depth, groups),
            strides=(n_items * itemsize, groups * itemsize, itemsize),
            writeable=False,
        )
        group_max = _group_max(scores, body, depth * groups, tail)
        broken = np.flatnonzero(np.isnan(group_max).any(axis=1))  # max() propagates NaN
        if broken.size:  # rare: only those rows are cleaned and measured again
            scores[broken] = np.where(np.isnan(scores[broken]), -np.inf, scores[broken])
            group_max[broken] = _group_max(scores[broken], body[broken], depth * groups, tail)
        threshold = np.partition(group_max, groups - n, axis=1)[:, groups - n]
        rows, chosen = np.nonzero(group_max >= threshold[:, None])
        items = chosen[:, None] + (np.arange(depth + 1) * groups)[None, :]
        valid = items < n_items
        flat = rows[:, None] * n_items + np.where(valid, items, 0)
        values = np.take(scores, flat)
        keep = valid & (values >= threshold[rows][:, None])
        best_items, best_values = _rank_candidates(
            np.broadcast_to(rows[:, None], items.shape)[keep],
            items[keep],
            values[keep],
            n_rows,
            n,
        )
    best_items[~np.isfinite(best_values)] = -1
    best_values[best_items < 0] = -np.inf
    return best_items, best_values


def top_n(
    model: Scorer,
    user_rows: np.ndarray,
    n: int,
    exclude: sp.csr_matrix | None = None,
    allowed_items: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    adjust: ScoreAdjuster | None = None,
    workers: int = SCORING_THREADS,
) -> tuple[np.ndarray, np.ndarray]:
    """Best `n` products for each user in `user_rows`.

    exclude: users × products boolean matrix (rows indexed like the model's users).
    allowed_items: boolean mask over products; False never appears.
    adjust: edits a chunk's scores before selection (business rules: boosts, blocks).
    Returns (items, scores), both (len(user_rows), n); where fewer than n products are
    eligible the tail holds item -1 and score -inf. Ties go to the lower product index.
    """
    user_rows = np.asarray(user_rows, dtype=np.int64)
    n = min(n, model.n_items)
    items_out = np.full((len(user_rows), n), -1, dtype=np.int64)
    scores_out = np.full((len(user_rows), n), -np.inf, dtype=np.float32)
    for begin, rows, items, scores in iter_top_n(
        model, user_rows, n, exclude, allowed_items, chunk_size, adjust, workers
    ):
        items_out[begin : begin + len(rows)] = items
        scores_out[begin : begin + len(rows)] = scores
    return items_out, scores_out


def iter_top_n(
    model: Scorer,
    user_rows: np.ndarray,
    n: int,
    exclude: sp.csr_matrix | None = None,
    allowed_items: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    adjust: ScoreAdjuster | None = None,
    workers: int = SCORING_THREADS,
):
    """`top_n` one chunk at a time: yields (offset, user rows, items, scores) in order, so
    a writer can stream the result without holding every user's list.

    With workers > 1, chunks are scored by that many threads, each running the matrix
    product single-threaded and then its selection: numpy and BLAS release the GIL, so one
    chunk's selection overlaps another's product (on 2 cores: ~1.3× one BLAS call on
    both cores followed by the selection)."""
    user_rows = np.asarray(user_rows, dtype=np.int64)
    chunk_size = min(chunk_size, (1 << _ROW_BITS) - 1)
    blocked = None if allowed_items is None else np.flatnonzero(~np.asarray(allowed_items, bool))

    def chunk(begin: int):
        rows = user_rows[begin : begin + chunk_size]
        scores = np.ascontiguousarray(model.scores(rows), dtype=np.float32)
        if blocked is not None and blocked.size:
            scores[:, blocked] = -np.inf
        if exclude is not None:
            sub = exclude[rows]
            scores[np.repeat(np.arange(len(rows)), np.diff(sub.indptr)), sub.indices] = -np.inf
        if adjust is not None:
            adjust(rows, scores)
        items, best = select_top(scores, n)
        return begin, rows, items, best

    starts = range(0, len(user_rows), chunk_size)
    if workers <= 1 or len(starts) <= 1:
        yield from map(chunk, starts)
        return
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(workers) as pool:
        yield from pool.map(chunk, starts)
