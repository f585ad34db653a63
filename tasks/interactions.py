"""Events → sparse user × product matrices, in the row order of the users/products tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def index_of(ids: pd.Series, universe: pd.Series) -> np.ndarray:
    """Positions of `ids` in `universe` (-1 where absent), vectorised."""
    return pd.Index(universe).get_indexer(ids)


def weighted_interactions(
    events: pd.DataFrame,
    user_ids: pd.Series,
    product_ids: pd.Series,
    weights: dict[str, float],
    half_life_days: float | None = None,
) -> sp.csr_matrix:
    """Sum of event weights per (user, product), optionally decayed by age.

    Age is measured from the latest event in `events`, so a replay of the same data gives
    the same matrix whatever the day it runs.
    """
    w = events["event_type"].map(weights).fillna(0.0).to_numpy(dtype=np.float64)
    if half_life_days:
        age_days = (events["occurred_at"].max() - events["occurred_at"]).dt.total_seconds() / 86_400
        w = w * np.power(0.5, age_days.to_numpy() / half_life_days)
    rows = index_of(events["user_id"], user_ids)
    cols = index_of(events["product_id"], product_ids)
    keep = (w > 0) & (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix(
        (w[keep], (rows[keep], cols[keep])), shape=(len(user_ids), len(product_ids))
    )
    matrix.sum_duplicates()
    return matrix


def bought_matrix(
    events: pd.DataFrame,
    user_ids: pd.Series,
    product_ids: pd.Series,
    transaction_types: list[str],
) -> sp.csr_matrix:
    """Boolean matrix: True where the user has a transaction for the product."""
    transactions = events[events["event_type"].isin(transaction_types)]
    ones = dict.fromkeys(transaction_types, 1.0)
    matrix = weighted_interactions(transactions, user_ids, product_ids, ones)
    return (matrix > 0).astype(bool).tocsr()
