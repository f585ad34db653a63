"""Events → sparse user × product matrices, in the row order of the users/products tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp


def index_of(ids: pd.Series, universe: pd.Series) -> np.ndarray:
    """Positions of `ids` in `universe` (unique; -1 where absent), vectorised: Arrow's hash
    lookup (21M ids into 500k users: 0.7 s, pandas' get_indexer 4.5 s), or pandas' when the
    two sides' types do not compare in Arrow."""
    try:
        found = pc.index_in(pa.array(ids), value_set=pa.array(universe))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pd.Index(universe).get_indexer(ids)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def instants(values: pd.Series) -> np.ndarray:
    """A datetime column as datetime64 (UTC, no time zone): `to_numpy()` on a zoned column
    builds one Python Timestamp per value (24 s for 21M events), this takes ~1 s."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy()


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


def recency_ranks(
    events: pd.DataFrame, user_ids: pd.Series, product_ids: pd.Series, event_types: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's distinct products (of `event_types`) ranked by their latest event, newest 0.

    Returns (user rows, product columns, rank), sorted by user then chronologically, so
    consecutive rows of a user are the order in which the products entered their history.
    """
    chosen = events[events["event_type"].isin(event_types)]
    rows = index_of(chosen["user_id"], user_ids)
    cols = index_of(chosen["product_id"], product_ids)
    frame = pd.DataFrame({"row": rows, "col": cols, "at": instants(chosen["occurred_at"])})[
        (rows >= 0) & (cols >= 0)
    ]
    latest = frame.groupby(["row", "col"], sort=False)["at"].max().reset_index()
    latest = latest.sort_values(["row", "at", "col"], kind="stable").reset_index(drop=True)
    size = latest.groupby("row")["col"].transform("size").to_numpy()
    order = latest.groupby("row").cumcount().to_numpy()
    return (
        latest["row"].to_numpy(np.int64),
        latest["col"].to_numpy(np.int64),
        (size - 1 - order).astype(np.int64),
    )


def decayed_history(
    rows: np.ndarray, cols: np.ndarray, rank: np.ndarray, decay: float, shape: tuple[int, int]
) -> sp.csr_matrix:
    """User × product matrix with weight decay**rank (1 for the newest product)."""
    return sp.csr_matrix(
        (np.power(decay, rank).astype(np.float32), (rows, cols)), shape=shape, dtype=np.float32
    )
