"""The demo store: deterministic, complete, and carrying the structure we planted."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from demo_store import GroundTruth, generate_store, ground_truth_path

TABLE_COLUMNS = {
    "users": ["user_id", "signup_at", "birth_year", "region", "skin_type", "skin_concerns"],
    "products": [
        "product_id",
        "name",
        "brand",
        "category",
        "ingredients",
        "price",
        "launched_at",
        "in_stock",
    ],
    "events": [
        "event_id",
        "user_id",
        "product_id",
        "event_type",
        "occurred_at",
        "quantity",
        "unit_price",
        "rating",
        "search_query",
    ],
}


@pytest.fixture(scope="module")
def tiny():
    return generate_store("tiny", seed=7)


@pytest.fixture(scope="module")
def tiny_tables(tiny_store_db):
    with sqlite3.connect(tiny_store_db) as connection:
        return {t: pd.read_sql(f"SELECT * FROM {t}", connection) for t in TABLE_COLUMNS}


def test_same_seed_same_store_other_seed_other_store(tiny):
    again = generate_store("tiny", seed=7)
    for name in ("users", "products", "events"):
        pd.testing.assert_frame_equal(getattr(tiny, name), getattr(again, name))
    other = generate_store("tiny", seed=8)
    assert not tiny.events["product_id"].equals(other.events["product_id"])


def test_sqlite_tables_have_the_documented_columns(tiny_tables):
    for table, columns in TABLE_COLUMNS.items():
        assert list(tiny_tables[table].columns) == columns
    events = tiny_tables["events"]
    assert set(events["event_type"]) == {
        "view",
        "search_click",
        "like",
        "add_to_cart",
        "purchase",
        "review",
    }
    reviews = events[events["event_type"] == "review"]
    assert reviews["rating"].between(1, 5).all()
    assert events.loc[events["event_type"] != "review", "rating"].isna().all()
    clicks = events[events["event_type"] == "search_click"]
    assert clicks["search_query"].notna().all()
    purchases = events[events["event_type"] == "purchase"]
    assert (purchases["quantity"] >= 1).all() and (purchases["unit_price"] > 0).all()
    assert events["event_id"].is_unique
    assert set(events["user_id"]) <= set(tiny_tables["users"]["user_id"])
    assert set(events["product_id"]) <= set(tiny_tables["products"]["product_id"])


def test_ground_truth_is_saved_beside_the_store(tiny_store_db, tiny):
    truth = GroundTruth.load(ground_truth_path(tiny_store_db))
    users = np.arange(len(tiny.users))
    affinity = truth.affinity(users[:, None], np.arange(len(tiny.products))[None, :])
    assert affinity.shape == (len(tiny.users), len(tiny.products))
    np.testing.assert_allclose(
        affinity, tiny.truth.affinity(users[:, None], np.arange(len(tiny.products))[None, :])
    )


@pytest.fixture(scope="module")
def demo():
    return generate_store("demo", seed=42)


def test_demo_preset_size(demo):
    assert len(demo.users) == 5_000 and len(demo.products) == 600
    span = demo.events["occurred_at"].max() - demo.events["occurred_at"].min()
    assert 500 <= span.days <= 560  # about 18 months


def purchases_with_attributes(store):
    events = store.events[store.events["event_type"] == "purchase"]
    return events.merge(store.users, on="user_id").merge(store.products, on="product_id")


def test_skin_type_drives_actives(demo):
    bought = purchases_with_attributes(demo)
    hydrating = bought["ingredients"].str.contains("hyaluronic acid|ceramides|squalane|shea butter")
    share = hydrating.groupby(bought["skin_type"]).mean()
    assert share["dry"] > share["oily"] + 0.2
    retinol = bought["ingredients"].str.contains("retinol").groupby(bought["skin_type"]).mean()
    assert retinol["sensitive"] < 0.5 * retinol["normal"]


def test_cleansers_are_rebought_every_six_to_ten_weeks(demo):
    bought = purchases_with_attributes(demo)
    cleansers = bought[bought["category"] == "cleanser"].sort_values("occurred_at")
    gaps = cleansers.groupby(["user_id", "product_id"])["occurred_at"].diff().dropna()
    assert 42 <= gaps.dt.days.median() <= 70


def test_routines_follow_the_next_step(demo):
    """After a cleanser the next purchase is a toner far more often than the base share."""
    bought = purchases_with_attributes(demo).sort_values(["user_id", "occurred_at"])
    bought["next_category"] = bought.groupby("user_id")["category"].shift(-1)
    after_cleanser = bought[(bought["category"] == "cleanser") & bought["next_category"].notna()]
    after_cleanser = after_cleanser[after_cleanser["next_category"] != "cleanser"]
    toner_share_overall = (bought["category"] == "toner").mean()
    assert (after_cleanser["next_category"] == "toner").mean() > 2 * toner_share_overall


def test_long_tail_and_cold_start(demo):
    bought = demo.events[demo.events["event_type"] == "purchase"]
    per_product = bought["product_id"].value_counts()
    top_decile = per_product.head(len(demo.products) // 10).sum() / per_product.sum()
    assert top_decile > 0.25  # a head and a long tail
    start = demo.events["occurred_at"].min()
    assert (demo.users["signup_at"] > start).mean() > 0.3  # users keep arriving
    assert (demo.products["launched_at"] > start).mean() > 0.15  # so do products
    assert (~demo.users["user_id"].isin(demo.events["user_id"])).any()  # some never shopped


def test_the_old_command_names_still_build_and_advance_the_store(tmp_path):
    """`python -m tasks.demo_store` and `python -m tasks.demo_store.live` (the simulator's
    old address, in scripts people have) do what `demo_store` and `demo_store.live` do."""
    import subprocess
    import sys

    db = tmp_path / "store.db"
    built = subprocess.run(
        [sys.executable, "-m", "tasks.demo_store", "--preset", "tiny", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0 and "built tiny store" in built.stdout, built.stderr
    advanced = subprocess.run(
        [sys.executable, "-m", "tasks.demo_store.live", "--db", str(db), "--days", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert advanced.returncode == 0, advanced.stderr[-2000:]
