"""Behaviour features: computed from a stage's training events only (a leak test), and
they say what the history says."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from tasks.dataset import DatasetSpec
from tasks.features.behaviour import product_behaviour, user_behaviour
from tasks.features.split import HoldoutRule, split_latest_transaction

DATASET = DatasetSpec.from_toml(Path(__file__).resolve().parents[2] / "dataset.toml")


def tiny_tables(db: Path) -> dict[str, pd.DataFrame]:
    with sqlite3.connect(db) as connection:
        tables = {
            t: pd.read_sql(f"SELECT * FROM {t}", connection)
            for t in ("users", "products", "events")
        }
    tables["events"]["occurred_at"] = pd.to_datetime(
        tables["events"]["occurred_at"], utc=True, format="mixed"
    )
    return tables


def last_categories(features: pd.DataFrame, users: pd.Series) -> pd.Series:
    last = features[features["feature"].str.startswith("last_category=")]
    return pd.Series(
        last["feature"].str.removeprefix("last_category=").to_numpy(),
        index=users.to_numpy()[last["row"].to_numpy()],
    )


def test_evaluation_features_never_see_the_held_out_purchase(tiny_store_db):
    tables = tiny_tables(tiny_store_db)
    users, products, events = tables["users"], tables["products"], tables["events"]
    held = split_latest_transaction(events, ["purchase"], HoldoutRule(window_hours=24))
    train, test = held.train, held.test
    category = products.set_index("product_id")["category"]

    honest = last_categories(
        user_behaviour(train, users["user_id"], products, DATASET), users["user_id"]
    )
    leaky = last_categories(
        user_behaviour(events, users["user_id"], products, DATASET), users["user_id"]
    )

    # Users whose held-out purchase is in another category than their last training one:
    previous = (
        train[train["event_type"] == "purchase"]
        .sort_values("occurred_at", kind="stable")
        .drop_duplicates("user_id", keep="last")
        .set_index("user_id")["product_id"]
        .map(category)
    )
    held_out = test.set_index("user_id")["product_id"].map(category)
    changed = previous.index[
        previous.reindex(held_out.index).ne(held_out).reindex(previous.index).fillna(False)
    ]
    changed = [u for u in changed if u in held_out.index]
    assert len(changed) >= 20
    for user in changed:
        assert honest[user] == previous[user], user  # computed from training events only
        assert leaky[user] == held_out[user], user  # what a leak would look like

    # Nothing at or after a user's cutoff changes the training features.
    cutoff = events["user_id"].map(test.set_index("user_id")["occurred_at"]) - pd.Timedelta(
        hours=24
    )
    tampered = events.copy()
    future = (tampered["occurred_at"] >= cutoff).to_numpy()
    tampered.loc[future, "product_id"] = products["product_id"].iloc[0]
    tampered_train = split_latest_transaction(tampered, ["purchase"], HoldoutRule(24)).train
    pd.testing.assert_frame_equal(
        user_behaviour(tampered_train, users["user_id"], products, DATASET),
        user_behaviour(train, users["user_id"], products, DATASET),
    )


def test_behaviour_features_describe_the_history(tiny_store_db):
    tables = tiny_tables(tiny_store_db)
    users, products, events = tables["users"], tables["products"], tables["events"]
    features = user_behaviour(events, users["user_id"], products, DATASET)
    shares = features[features["feature"].str.startswith("bought_category=")]
    # affinity shares of each user sum to one
    assert shares.groupby("row")["weight"].sum().round(6).eq(1.0).all()
    buyers = events.loc[events["event_type"] == "purchase", "user_id"].nunique()
    assert features.loc[features["feature"].str.startswith("purchases="), "row"].nunique() == buyers

    items = product_behaviour(events, products, DATASET)
    popularity = items[items["feature"].str.startswith("popularity=")]
    assert popularity["row"].nunique() == len(products)
    assert items["feature"].str.startswith("age=").any()
    assert items["feature"].str.startswith("avg_rating=").any()
    cycles = items[items["feature"].str.startswith("category_cycle=")]
    # consumables: every product of a category shares its category's repurchase cycle
    by_category = cycles.assign(category=products["category"].to_numpy()[cycles["row"]])
    assert len(cycles) > 0
    assert by_category.groupby("category")["feature"].nunique().eq(1).all()
