"""Split: each user's latest transaction is the test set; the one before it validates tuning;
everything earlier trains.

Three views of the same events: `tune_train` (before each user's validation transaction)
→ `validation` (tuning picks hyperparameters and blend weights on it); `train` (before the
test transaction, the validation transaction included) → `test` (the reported metrics and
the gate). Nothing a metric is computed from comes from the moment it judges or later.

Events of a user at or after the moment of their test transaction are left out of training
(they are that user's future). Users without a transaction train on all their events and
are not evaluated. A latest transaction that re-buys an earlier-bought product cannot be
ranked (already-bought products are excluded from every list); it is counted, not scored.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow.parquet as pq
from prefect import task

from tasks.dataset import DatasetSpec
from tasks.errors import DegenerateDataError
from tasks.run_context import RunFolder, Snapshot, Split

EVENT_COLUMNS = ["user_id", "product_id", "event_type", "occurred_at"]


def latest_transactions(events: pd.DataFrame, transaction_types: list[str]) -> pd.DataFrame:
    """One row per user: their latest transaction (ties broken by the later row)."""
    transactions = events[events["event_type"].isin(transaction_types)]
    order = transactions.sort_values(["user_id", "occurred_at"], kind="stable")
    return order.drop_duplicates("user_id", keep="last")[["user_id", "product_id", "occurred_at"]]


def split_latest_transaction(
    events: pd.DataFrame, transaction_types: list[str], gap_hours: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train events, test rows with a `repeat` flag).

    A user's training events end `gap_hours` before their held-out transaction: a nightly
    batch computed its lists before the visit in which the customer browsed, carted and
    bought, so the views of that visit must not tell the model what was bought."""
    test = latest_transactions(events, transaction_types)
    cutoff = events["user_id"].map(test.set_index("user_id")["occurred_at"])
    cutoff = cutoff - pd.Timedelta(hours=gap_hours)
    train = events[cutoff.isna() | (events["occurred_at"] < cutoff)]
    return train.reset_index(drop=True), flag_repeats(train, test, transaction_types)


def split_at_time(
    events: pd.DataFrame,
    transaction_types: list[str],
    cutoff: datetime,
    gap_hours: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The global-cutoff option: (train = every event before `cutoff` − gap, test = each
    user's first transaction at or after `cutoff`, with a `repeat` flag)."""
    at = pd.Timestamp(cutoff)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    train = events[events["occurred_at"] < at - pd.Timedelta(hours=gap_hours)]
    later = events[(events["occurred_at"] >= at) & events["event_type"].isin(transaction_types)]
    test = later.sort_values(["user_id", "occurred_at"], kind="stable").drop_duplicates(
        "user_id", keep="first"
    )[["user_id", "product_id", "occurred_at"]]
    return train.reset_index(drop=True), flag_repeats(train, test, transaction_types)


def flag_repeats(
    train: pd.DataFrame, test: pd.DataFrame, transaction_types: list[str]
) -> pd.DataFrame:
    """`repeat` = the held-out transaction re-buys a product the user bought in training."""
    earlier_buys = train[train["event_type"].isin(transaction_types)][["user_id", "product_id"]]
    earlier_buys = earlier_buys.drop_duplicates().assign(repeat=True)
    test = test.merge(earlier_buys, on=["user_id", "product_id"], how="left")
    test["repeat"] = test["repeat"].astype("boolean").fillna(False).astype(bool)
    return test.reset_index(drop=True)


def degenerate(events: pd.DataFrame, transaction_types: list[str]) -> list[str]:
    """Why these clean events cannot train and judge a recommender (empty: they can).
    Without this a single product gives NDCG 1.0 everywhere and a single user a scipy
    error deep in training; the shop's engineer should read what is missing instead."""
    problems = []
    n_users, n_products = events["user_id"].nunique(), events["product_id"].nunique()
    if n_users < 2:
        problems.append(f"only {n_users} user has events: there is no one to learn from")
    if n_products < 2:
        problems.append(f"only {n_products} product has events: there is nothing to rank")
    if not events["event_type"].isin(transaction_types).any():
        found = events["event_type"].value_counts().head(8).to_dict()
        problems.append(
            f"no user has a transaction ({', '.join(transaction_types)}) that can be held out "
            f"to judge the model; event types found: {found}. Check [events] "
            "transaction_types in dataset.toml"
        )
    return problems


@task(name="split-latest-transaction")
def split_events(
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
    gap_hours: float = 0.0,
    cutoff: datetime | None = None,
) -> Split:
    """Write `split/{train_events,test,tune_train_events,validation}.parquet`. With `cutoff`,
    the test set is each user's first transaction from then on (a global time split); the
    validation transaction is still each user's latest one before it."""
    available = pq.read_schema(snapshot.tables["events"]).names
    columns = EVENT_COLUMNS + [c for c in ("unit_price", "rating") if c in available]
    events = snapshot.read("events", columns=columns)
    types = dataset.events.transaction_types
    if problems := degenerate(events, types):
        raise DegenerateDataError(
            f"the clean events ({len(events):,}) cannot train a recommender: " + "; ".join(problems)
        )
    if cutoff is None:
        train, test = split_latest_transaction(events, types, gap_hours)
    else:
        train, test = split_at_time(events, types, cutoff, gap_hours)
    tune_train, validation = split_latest_transaction(train, types, gap_hours)
    paths = {
        name: run.sub("split", f"{name}.parquet")
        for name in ("train_events", "test", "tune_train_events", "validation")
    }
    for name, frame in zip(paths, (train, test, tune_train, validation), strict=True):
        frame.to_parquet(paths[name], index=False)
    return Split(
        train_events=paths["train_events"],
        test=paths["test"],
        tune_train_events=paths["tune_train_events"],
        validation=paths["validation"],
        n_train_events=len(train),
        n_test_users=int((~test["repeat"]).sum()),
        n_test_repeat=int(test["repeat"].sum()),
        n_validation_users=int((~validation["repeat"]).sum()),
        rule=(
            f"first transaction per user from {cutoff.isoformat()} on (test), the latest "
            "one before it (validation)"
            if cutoff
            else "latest transaction per user (test), the one before it (validation)"
        )
        + (f"; training ends {gap_hours:g} h before the held-out one" if gap_hours else ""),
    )
