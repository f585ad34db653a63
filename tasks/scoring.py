"""Exact top-N from a model's scores (user and product vectors, or a blend of them), in
chunks of users, with exclusions applied inside the selection (never by filtering a list
afterwards, which could leave it short).

Memory is bounded by chunk_size × n_products scores, never n_users × n_products.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tasks.models import Scorer

DEFAULT_CHUNK = 2048


def select_lowest_index_ties(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores per row (unordered), where products tied at the n-th
    score are taken lowest index first, so the choice never depends on argpartition."""
    nth = -np.partition(-scores, n - 1, axis=1)[:, n - 1 : n]
    above = scores > nth
    tied = scores == nth
    room = n - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return np.nonzero(chosen)[1].reshape(len(scores), n)


def top_n(
    model: Scorer,
    user_rows: np.ndarray,
    n: int,
    exclude: sp.csr_matrix | None = None,
    allowed_items: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Best `n` products for each user in `user_rows`.

    exclude: users × products boolean matrix (rows indexed like the model's users).
    allowed_items: boolean mask over products; False never appears.
    Returns (items, scores), both (len(user_rows), n); where fewer than n products are
    eligible the tail holds item -1 and score -inf. Ties go to the lower product index.
    """
    user_rows = np.asarray(user_rows, dtype=np.int64)
    n_items = model.n_items
    n = min(n, n_items)
    items_out = np.full((len(user_rows), n), -1, dtype=np.int64)
    scores_out = np.full((len(user_rows), n), -np.inf, dtype=np.float32)
    blocked = None if allowed_items is None else ~np.asarray(allowed_items, dtype=bool)

    for begin in range(0, len(user_rows), chunk_size):
        rows = user_rows[begin : begin + chunk_size]
        scores = model.scores(rows)
        scores[np.isnan(scores)] = -np.inf  # a broken score never ranks (the gate reports it)
        if blocked is not None:
            scores[:, blocked] = -np.inf
        if exclude is not None:
            sub = exclude[rows].tocoo()
            scores[sub.row, sub.col] = -np.inf
        # argpartition finds the n-th best score in O(items); only the n chosen are sorted.
        if n < n_items:
            best = select_lowest_index_ties(scores, n)
        else:
            best = np.broadcast_to(np.arange(n_items), scores.shape).copy()
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.lexsort((best, -best_scores), axis=1)
        best = np.take_along_axis(best, order, axis=1)
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best[~np.isfinite(best_scores)] = -1
        items_out[begin : begin + len(rows)] = best
        scores_out[begin : begin + len(rows)] = best_scores
    return items_out, scores_out
