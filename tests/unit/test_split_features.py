"""Split and feature building on tiny hand-made tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from tasks.dataset import DatasetSpec
from tasks.errors import ConfigError
from tasks.features.build import feature_matrix
from tasks.features.split import (
    HoldoutRule,
    holdout_report,
    split_at_time,
    split_latest_transaction,
)


def events_frame(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "product_id", "event_type", "occurred_at"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame


def test_latest_purchase_is_test_and_later_events_do_not_train():
    events = events_frame(
        [
            ("a", "p1", "purchase", "2025-01-01"),
            ("a", "p2", "view", "2025-01-05"),
            ("a", "p2", "purchase", "2025-01-10"),
            ("a", "p3", "view", "2025-01-11"),  # after the test purchase: a's future
            ("b", "p1", "view", "2025-01-02"),  # no purchase: trains, not evaluated
            ("c", "p1", "purchase", "2025-01-01"),
            ("c", "p1", "purchase", "2025-03-01"),  # re-buy: not rankable
        ]
    )
    held = split_latest_transaction(events, ["purchase"], HoldoutRule(window_hours=0))
    train, test = held.train, held.test
    assert test.set_index("user_id")["product_id"].to_dict() == {"a": "p2", "c": "p1"}
    assert test.set_index("user_id")["repeat"].to_dict() == {"a": False, "c": True}
    assert len(train) == 4
    assert set(zip(train["user_id"], train["product_id"], train["event_type"], strict=True)) == {
        ("a", "p1", "purchase"),
        ("a", "p2", "view"),
        ("b", "p1", "view"),
        ("c", "p1", "purchase"),
    }
    # Nothing a user did at or after their test moment is in training.
    cutoff = train["user_id"].map(test.set_index("user_id")["occurred_at"])
    assert (train["occurred_at"][cutoff.notna()] < cutoff.dropna()).all()


def test_the_default_holdout_removes_the_held_out_visits_browsing_and_nothing_else():
    events = events_frame(
        [
            # a: a visit last month, then a visit that ends in the held-out purchase
            ("a", "p1", "view", "2025-01-01 10:00"),
            ("a", "p1", "purchase", "2025-01-01 10:05"),
            ("a", "p9", "view", "2025-01-31 09:00"),  # 2 h before the visit: stays
            ("a", "p2", "view", "2025-01-31 11:00"),  # the visit's browsing: leaks
            ("a", "p3", "add_to_cart", "2025-01-31 11:10"),  # the visit's browsing: leaks
            ("a", "p4", "purchase", "2025-01-31 11:20"),  # an earlier transaction: stays
            ("a", "p2", "add_to_cart", "2025-01-31 11:40"),  # leaks
            ("a", "p2", "purchase", "2025-01-31 11:45"),  # held out
            # b rates in a burst, minutes apart, nothing but ratings: nothing leaks
            ("b", "p1", "rating", "2025-01-10 20:00"),
            ("b", "p2", "rating", "2025-01-10 20:01"),
            ("b", "p3", "rating", "2025-01-10 20:02"),
            ("b", "p4", "rating", "2025-01-10 20:03"),
            # c viewed the product bought in the same visit
            ("c", "p5", "view", "2025-01-05 08:00"),
            ("c", "p5", "purchase", "2025-01-05 08:20"),
            ("c", "p1", "view", "2025-01-05 08:21"),  # after: c's future
        ]
    )
    held = split_latest_transaction(events, ["purchase", "rating"])
    kept = set(held.train[["user_id", "product_id", "event_type"]].itertuples(index=False))
    assert kept == {
        ("a", "p1", "view"),
        ("a", "p1", "purchase"),
        ("a", "p9", "view"),
        ("a", "p4", "purchase"),
        ("b", "p1", "rating"),
        ("b", "p2", "rating"),
        ("b", "p3", "rating"),
    }
    assert (held.removed, held.before) == (4, 11)  # a: p2 view, p3 cart, p2 cart; c: p5 view
    assert held.removed_share == pytest.approx(4 / 11)
    # the same with Arrow-backed strings (a snapshot's columns), whose comparisons give NA
    typed = events.astype({c: "string[pyarrow]" for c in ("user_id", "product_id", "event_type")})
    assert split_latest_transaction(typed, ["purchase", "rating"]).removed == 4
    # the fixed 24 h window removes all of a's last day and b's burst but its last rating
    window = split_latest_transaction(events, ["purchase", "rating"], HoldoutRule(24))
    assert (window.removed, window.before) == (9, 11)
    # a visit is measured with the gap: with 15 minutes, a's visit starts at 11:40 (a 20-minute
    # pause after 11:20) and c's view 20 minutes before buying is another visit
    shorter = split_latest_transaction(
        events, ["purchase", "rating"], HoldoutRule(visit_gap_minutes=15)
    )
    assert shorter.removed == 1  # a's p2 cart add
    # with 3 hours the pause before 11:00 no longer ends the visit
    longer = split_latest_transaction(
        events, ["purchase", "rating"], HoldoutRule(visit_gap_minutes=3 * 60)
    )
    assert longer.removed == 5  # a's 09:00 view of p9 joins the visit

    # no transaction at all (a validation split can be empty): nothing held out or removed
    browsing = events[events["event_type"] == "view"]
    nothing = split_latest_transaction(browsing, ["purchase"])
    assert (len(nothing.train), len(nothing.test), nothing.removed) == (len(browsing), 0, 0)

    # the run says what the holdout removed, and warns above the threshold
    level, message = holdout_report(held, HoldoutRule(), warn_share=0.10)
    assert level == logging.WARNING and "removed 4 of the 11 events" in message
    assert "more than 10%" in message and "visit_gap_minutes" in message
    level, message = holdout_report(held, HoldoutRule(), warn_share=0.5)
    assert level == logging.INFO and "(36.4%)" in message


def test_feature_matrix_from_dataset_config(tmp_path):
    config = tmp_path / "dataset.toml"
    config.write_text(
        '[user_features]\nskin_type = "categorical"\n'
        'skin_concerns = { kind = "multi", sep = "|" }\n'
        'birth_year = { kind = "numeric", bins = 2 }\n'
    )
    spec = DatasetSpec.from_toml(config)
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "skin_type": ["dry", "oily", None],
            "skin_concerns": ["acne|pores", "", "aging"],
            "birth_year": [1980, 2000, 1990],
        }
    )
    matrix, names = feature_matrix(users, "user_id", spec.user_features)
    dense = pd.DataFrame(matrix.toarray(), columns=names, index=users["user_id"])
    assert dense.loc["u1"][dense.loc["u1"] > 0].index.tolist() == [
        "user_id=u1",
        "skin_type=dry",
        "skin_concerns=acne",
        "skin_concerns=pores",
        "birth_year=bin0[1980,1990]",
    ]
    assert dense.loc["u3", "skin_type=dry"] == 0  # a missing value gives no feature
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)


def test_feature_config_naming_a_missing_column_is_refused():
    from tasks.dataset import CategoricalFeature

    users = pd.DataFrame({"user_id": ["u1"]})
    with pytest.raises(ValueError, match=r"\['skin_tone'\].*users table"):
        feature_matrix(users, "user_id", {"skin_tone": CategoricalFeature()})


def test_bad_dataset_config_names_the_file(tmp_path):
    config = tmp_path / "dataset.toml"
    config.write_text('[user_features]\nbirth_year = { kind = "numeric", bins = 1 }\n')
    with pytest.raises(
        ConfigError, match=r"(?s)dataset\.toml: 1 problem.*\[user_features\.birth_year\] bins = 1"
    ):
        DatasetSpec.from_toml(config)


def test_global_time_cutoff_split(tiny_store_db):
    import sqlite3

    with sqlite3.connect(tiny_store_db) as connection:
        events = pd.read_sql("SELECT * FROM events", connection)
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True, format="mixed")
    cutoff = pd.Timestamp("2026-09-01", tz="UTC")
    held = split_at_time(events, ["purchase"], cutoff.to_pydatetime(), HoldoutRule(24))
    train, test = held.train, held.test

    assert train["occurred_at"].max() < cutoff - pd.Timedelta(hours=24)
    assert (test["occurred_at"] >= cutoff).all() and test["user_id"].is_unique
    later = events[(events["occurred_at"] >= cutoff) & (events["event_type"] == "purchase")]
    assert set(test["user_id"]) == set(later["user_id"])
    first = later.sort_values("occurred_at").groupby("user_id")["occurred_at"].first()
    assert (test["occurred_at"].to_numpy() == first.loc[test["user_id"]].to_numpy()).all()
    purchases = train[train["event_type"] == "purchase"]
    bought = set(zip(purchases["user_id"], purchases["product_id"], strict=True))
    pairs = zip(test["user_id"], test["product_id"], strict=True)
    expected = [pair in bought for pair in pairs]
    assert test["repeat"].tolist() == expected
