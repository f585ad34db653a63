"""Split: each user's latest transaction is the test set; everything before it trains.

Events of a user at or after the moment of their test transaction are left out of training
(they are that user's future). Users without a transaction train on all their events and
are not evaluated. A latest transaction that re-buys an earlier-bought product cannot be
ranked (already-bought products are excluded from every list); it is counted, not scored.
"""

from __future__ import annotations

import pandas as pd
from prefect import task

from tasks.dataset import DatasetSpec
from tasks.run_context import RunFolder, Snapshot, Split

EVENT_COLUMNS = ["user_id", "product_id", "event_type", "occurred_at"]


def latest_transactions(events: pd.DataFrame, transaction_types: list[str]) -> pd.DataFrame:
    """One row per user: their latest transaction (ties broken by the later row)."""
    transactions = events[events["event_type"].isin(transaction_types)]
    order = transactions.sort_values(["user_id", "occurred_at"], kind="stable")
    return order.drop_duplicates("user_id", keep="last")[["user_id", "product_id", "occurred_at"]]


def split_latest_transaction(
    events: pd.DataFrame, transaction_types: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train events, test rows with a `repeat` flag)."""
    test = latest_transactions(events, transaction_types)
    cutoff = events["user_id"].map(test.set_index("user_id")["occurred_at"])
    train = events[cutoff.isna() | (events["occurred_at"] < cutoff)]

    earlier_buys = train[train["event_type"].isin(transaction_types)][["user_id", "product_id"]]
    earlier_buys = earlier_buys.drop_duplicates().assign(repeat=True)
    test = test.merge(earlier_buys, on=["user_id", "product_id"], how="left")
    test["repeat"] = test["repeat"].astype("boolean").fillna(False).astype(bool)
    return train.reset_index(drop=True), test.reset_index(drop=True)


@task(name="split-latest-transaction")
def split_events(snapshot: Snapshot, dataset: DatasetSpec, run: RunFolder) -> Split:
    """Write `split/train_events.parquet` and `split/test.parquet`."""
    events = pd.read_parquet(snapshot.tables["events"], columns=EVENT_COLUMNS)
    train, test = split_latest_transaction(events, dataset.events.transaction_types)
    train_path = run.sub("split", "train_events.parquet")
    test_path = run.sub("split", "test.parquet")
    train.to_parquet(train_path, index=False)
    test.to_parquet(test_path, index=False)
    return Split(
        train_events=train_path,
        test=test_path,
        n_train_events=len(train),
        n_test_users=int((~test["repeat"]).sum()),
        n_test_repeat=int(test["repeat"].sum()),
    )
