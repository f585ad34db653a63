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

What else is held out is what would give the answer away (`HoldoutRule`): a nightly batch
computed its lists before the visit in which the customer browsed, carted and bought, so
the browsing of that visit, and any earlier event on the product bought in it, must not
tell the model what was bought. A visit is measured on the data (the user's events up to
the held-out one with no pause longer than `visit_gap_minutes`), not assumed to be a day:
where customers act in bursts (many ratings within minutes, no browsing) the rule removes
almost nothing, where they browse before buying it removes the browsing. The earlier
protocol, every event in a fixed window before the held-out one, stays available
(`window_hours`); it removed 60% of the training of a shop whose users rate in bursts. The
share removed is measured and reported on every run (`Split.holdout_removed_share`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from prefect import get_run_logger, task

from tasks.dataset import DatasetSpec
from tasks.errors import DegenerateDataError
from tasks.run_context import RunFolder, Snapshot, Split

EVENT_COLUMNS = ["user_id", "product_id", "event_type", "occurred_at"]


@dataclass(frozen=True)
class HoldoutRule:
    """What of a user's history before their held-out transaction is left out of training.

    `window_hours` None (the default): the held-out transaction's visit leaks, that is its
    user's events up to it with no pause longer than `visit_gap_minutes`, and of those the
    ones that are not transactions (views, cart adds, likes of the visit) or are on the
    product held out; the visit's earlier transactions are history a later night has, and
    stay. A number: every event in that many hours before the held-out one (the earlier,
    fixed protocol; 0 removes nothing)."""

    window_hours: float | None = None
    visit_gap_minutes: float = 30.0

    def describe(self) -> str:
        if self.window_hours is None:
            return (
                "the held-out transaction's visit (events with no pause over "
                f"{self.visit_gap_minutes:g} min) loses its browsing and its events on the "
                "product held out"
            )
        if self.window_hours == 0:
            return "nothing before the held-out transaction is removed"
        return f"training ends {self.window_hours:g} h before the held-out transaction"


def latest_transactions(events: pd.DataFrame, transaction_types: list[str]) -> pd.DataFrame:
    """One row per user: their latest transaction (ties broken by the later row)."""
    transactions = events[events["event_type"].isin(transaction_types)]
    order = transactions.sort_values(["user_id", "occurred_at"], kind="stable")
    return order.drop_duplicates("user_id", keep="last")[["user_id", "product_id", "occurred_at"]]


def leaking(
    events: pd.DataFrame,
    held_out: pd.DataFrame,
    transaction_types: list[str],
    rule: HoldoutRule,
) -> tuple[np.ndarray, np.ndarray]:
    """(before, leak): boolean masks over `events`. `before`: the event precedes its
    user's held-out transaction (users without one: False). `leak`: of those, what
    `rule` leaves out because it would give the held-out transaction away."""
    if held_out.empty:  # no one has a held-out transaction (a validation split can be empty)
        nothing = np.zeros(len(events), dtype=bool)
        return nothing, nothing
    held = held_out.set_index("user_id")
    at = events["user_id"].map(held["occurred_at"])
    when = events["occurred_at"]
    before = (at.notna() & (when < at)).to_numpy(dtype=bool, na_value=False)
    if rule.window_hours is not None:
        window = at - pd.Timedelta(hours=rule.window_hours)
        return before, before & (when >= window).to_numpy(dtype=bool, na_value=False)
    # The visit of the held-out transaction: follow the user's events back from it while
    # no pause exceeds the visit gap. Rows up to the held-out moment, in time order per user.
    upto = np.flatnonzero((at.notna() & (when <= at)).to_numpy(dtype=bool, na_value=False))
    frame = pd.DataFrame(
        {"row": upto, "user": events["user_id"].to_numpy()[upto], "at": when.to_numpy()[upto]}
    ).sort_values(["user", "at"], kind="stable")
    user = frame["user"].to_numpy()
    moment = frame["at"].to_numpy()
    new_user = np.r_[True, user[1:] != user[:-1]]
    pause = np.r_[True, np.diff(moment) > np.timedelta64(int(rule.visit_gap_minutes * 60), "s")]
    visit = np.cumsum(new_user | pause)
    last_row_of_user = np.r_[np.flatnonzero(new_user)[1:] - 1, len(user) - 1]
    held_visit = np.repeat(
        visit[last_row_of_user], np.diff(np.r_[np.flatnonzero(new_user), len(user)])
    )
    in_visit = np.zeros(len(events), dtype=bool)
    in_visit[frame["row"].to_numpy()[visit == held_visit]] = True
    browsing = ~events["event_type"].isin(transaction_types).to_numpy(dtype=bool)
    held_product = events["user_id"].map(held["product_id"])
    same_product = (events["product_id"] == held_product).to_numpy(dtype=bool, na_value=False)
    return before, before & in_visit & (browsing | same_product)


@dataclass(frozen=True)
class HeldOut:
    """One split: the events that train, the held-out rows and what the rule removed."""

    train: pd.DataFrame
    test: pd.DataFrame  # user_id, product_id, occurred_at, repeat
    removed: int  # events before a held-out transaction left out by the rule
    before: int  # events before a held-out transaction (what training would have without it)

    @property
    def removed_share(self) -> float:
        return self.removed / self.before if self.before else 0.0


def split_latest_transaction(
    events: pd.DataFrame, transaction_types: list[str], rule: HoldoutRule | None = None
) -> HeldOut:
    """Each user's latest transaction held out; training is what came before it, less what
    `rule` says would give it away."""
    rule = rule or HoldoutRule()
    test = latest_transactions(events, transaction_types)
    before, leak = leaking(events, test, transaction_types, rule)
    has_test = events["user_id"].isin(test["user_id"]).to_numpy(dtype=bool)
    train = events[~has_test | (before & ~leak)].reset_index(drop=True)
    return HeldOut(
        train,
        flag_repeats(train, test, transaction_types),
        int(leak.sum()),
        int(before.sum()),
    )


def split_at_time(
    events: pd.DataFrame,
    transaction_types: list[str],
    cutoff: datetime,
    rule: HoldoutRule | None = None,
) -> HeldOut:
    """The global-cutoff option: train = every event before `cutoff` (less what `rule` says
    would give a user's held-out transaction away; a window is taken before the cutoff),
    test = each user's first transaction at or after `cutoff`, with a `repeat` flag."""
    rule = rule or HoldoutRule()
    at = pd.Timestamp(cutoff)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    later = events[(events["occurred_at"] >= at) & events["event_type"].isin(transaction_types)]
    test = later.sort_values(["user_id", "occurred_at"], kind="stable").drop_duplicates(
        "user_id", keep="first"
    )[["user_id", "product_id", "occurred_at"]]
    earlier = (events["occurred_at"] < at).to_numpy()
    if rule.window_hours is not None:
        keep = (events["occurred_at"] < at - pd.Timedelta(hours=rule.window_hours)).to_numpy()
        removed = int((earlier & ~keep).sum())
    else:
        _, leak = leaking(events, test, transaction_types, rule)
        keep, removed = earlier & ~leak, int((earlier & leak).sum())
    train = events[keep].reset_index(drop=True)
    return HeldOut(train, flag_repeats(train, test, transaction_types), removed, int(earlier.sum()))


def holdout_report(held: HeldOut, rule: HoldoutRule, warn_share: float) -> tuple[int, str]:
    """(logging level, message): what the holdout removed, a warning above `warn_share`
    (tuning and evaluation would then learn from other data than the published model)."""
    message = (
        f"the holdout removed {held.removed:,} of the {held.before:,} events before the "
        f"held-out transactions ({held.removed_share:.1%}): {rule.describe()}"
    )
    if held.removed_share <= warn_share:
        return logging.INFO, message
    return logging.WARNING, (
        f"{message}; that is more than {warn_share:.0%}: what is tuned and judged learns "
        "from other data than the published model (see holdout_gap_hours and "
        "visit_gap_minutes)"
    )


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
    rule: HoldoutRule | None = None,
    cutoff: datetime | None = None,
    warn_share: float = 0.10,
) -> Split:
    """Write `split/{train_events,test,tune_train_events,validation}.parquet`. With `cutoff`,
    the test set is each user's first transaction from then on (a global time split); the
    validation transaction is still each user's latest one before it. Warns when the
    holdout rule removes more than `warn_share` of the training events before the test."""
    rule = rule or HoldoutRule()
    available = pq.read_schema(snapshot.tables["events"]).names
    columns = EVENT_COLUMNS + [c for c in ("unit_price", "rating") if c in available]
    events = snapshot.read("events", columns=columns)
    types = dataset.events.transaction_types
    if problems := degenerate(events, types):
        raise DegenerateDataError(
            f"the clean events ({len(events):,}) cannot train a recommender: " + "; ".join(problems)
        )
    if cutoff is None:
        held = split_latest_transaction(events, types, rule)
    else:
        held = split_at_time(events, types, cutoff, rule)
    tuning = split_latest_transaction(held.train, types, rule)
    level, message = holdout_report(held, rule, warn_share)
    get_run_logger().log(level, message)
    paths = {
        name: run.sub("split", f"{name}.parquet")
        for name in ("train_events", "test", "tune_train_events", "validation")
    }
    frames = (held.train, held.test, tuning.train, tuning.test)
    for name, frame in zip(paths, frames, strict=True):
        frame.to_parquet(paths[name], index=False)
    test, validation = held.test, tuning.test
    return Split(
        train_events=paths["train_events"],
        test=paths["test"],
        tune_train_events=paths["tune_train_events"],
        validation=paths["validation"],
        n_train_events=len(held.train),
        n_test_users=int((~test["repeat"]).sum()),
        n_test_repeat=int(test["repeat"].sum()),
        n_validation_users=int((~validation["repeat"]).sum()),
        n_holdout_removed=held.removed,
        holdout_removed_share=round(held.removed_share, 6),
        rule=(
            f"first transaction per user from {cutoff.isoformat()} on (test), the latest "
            "one before it (validation)"
            if cutoff
            else "latest transaction per user (test), the one before it (validation)"
        )
        + f"; {rule.describe()}",
    )
