"""Each exclusion, business rule and cold-start tier on small tables with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp

from tasks.publishing.recommend import Audience, recommend_rows
from tasks.publishing.rules import (
    Contraindication,
    ListRules,
    PublishingSpec,
    blocked_products,
    ranked_under_rules,
)
from tasks.publishing.rules import exclusion_matrix as exclusions
from tasks.publishing.scoring import top_n
from tasks.publishing.tiers import assign_tiers
from tasks.training.models import FactorModel

NOW = datetime(2026, 11, 1, tzinfo=UTC)
N_ITEMS = 12


def ranked_model(n_users: int, n_items: int = N_ITEMS) -> FactorModel:
    """Every user ranks products by index: 0 best, then 1, 2, ..."""
    return FactorModel(
        np.ones((n_users, 1), np.float32), -np.arange(n_items, dtype=np.float32)[:, None]
    )


def products_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [f"P{i:02d}" for i in range(N_ITEMS)],
            "brand": ["A"] * 6 + ["B"] * 3 + ["C"] * 3,
            "category": ["serum"] * 8 + ["toner"] * 2 + ["mask"] * 2,
            "ingredients": ["retinol|glycerin", "glycerin"] * 6,
            "launched_at": [NOW - timedelta(days=400)] * 11 + [NOW - timedelta(days=3)],
            "in_stock": [True] * N_ITEMS,
            "discontinued": [False] * N_ITEMS,
        }
    )


def users_table() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["U0", "U1", "U2"], "skin_type": ["sensitive", "oily", None]})


def audience(users, products, spec=None, exclude=None, allowed=None, tiers=None):
    spec = spec or PublishingSpec()
    return Audience(
        user_ids=pa.array(users["user_id"]),
        product_ids=pa.array(products["product_id"]),
        order=np.arange(len(users)),
        tiers=np.zeros(len(users), np.int8) if tiers is None else tiers,
        exclude=exclude,
        allowed=allowed,
        rules=ListRules.compile(spec, users, products, "category", NOW),
    )


def lists(spec: PublishingSpec, n: int = 5, **kwargs) -> np.ndarray:
    users, products = users_table(), products_table()
    model = ranked_model(len(users))
    items, _ = recommend_rows(
        {0: model},
        np.arange(len(users)),
        np.zeros(len(users)),
        n,
        audience(users, products, spec, **kwargs),
    )
    return items


def test_bought_products_stay_out_for_their_window_and_consumables_come_back():
    products = products_table()
    purchases = pd.DataFrame(
        {
            "user_id": ["U0", "U0", "U0", "U0"],
            "product_id": ["P08", "P00", "P09", "P09"],  # toner 10 days, serum, toner again
            "occurred_at": [NOW - timedelta(days=d) for d in (10, 100, 300, 80)],
        }
    )
    users = users_table()["user_id"]
    never_again = exclusions(purchases, users, products["product_id"], None, PublishingSpec(), NOW)
    assert sorted(never_again[0].indices) == [0, 8, 9]
    cycles = PublishingSpec(repurchase_cycle_days={"toner": 60})
    with_cycle = exclusions(
        purchases, users, products["product_id"], products["category"], cycles, NOW
    )
    assert sorted(with_cycle[0].indices) == [0, 8]  # P09 last bought 80 days ago > 60
    window = PublishingSpec(exclude_bought_days=50)
    assert sorted(
        exclusions(purchases, users, products["product_id"], None, window, NOW)[0].indices
    ) == [8]

    items = lists(PublishingSpec(), exclude=with_cycle)
    assert items[0].tolist() == [1, 2, 3, 4, 5]  # excluded inside the selection: still 5
    assert items[1].tolist() == [0, 1, 2, 3, 4]


def test_out_of_stock_and_discontinued_never_appear():
    products = products_table()
    products.loc[[0, 2], "in_stock"] = False
    products.loc[3, "discontinued"] = True
    spec = PublishingSpec(discontinued_column="discontinued")
    allowed = blocked_products(products, "in_stock", spec)
    assert np.flatnonzero(~allowed).tolist() == [0, 2, 3]
    items = lists(spec, allowed=allowed)
    assert (items == [1, 4, 5, 6, 7]).all()


def test_brand_cap_keeps_model_order_and_fills_the_list():
    items = lists(PublishingSpec(max_per_brand=2), n=6)
    assert items[0].tolist() == [0, 1, 6, 7, 9, 10]  # A A (cap), B B (cap), C C
    brands = products_table()["brand"].to_numpy()[items[0]]
    assert max(pd.Series(brands).value_counts()) <= 2


def test_category_minimum_takes_each_category_best_product():
    items = lists(PublishingSpec(min_categories=3), n=5)
    categories = products_table()["category"].to_numpy()[items[0]]
    assert set(categories) == {"serum", "toner", "mask"}
    assert items[0].tolist() == [0, 1, 2, 8, 10]  # best toner (8), best mask (10), in order


def test_launch_boost_lifts_new_products_only_when_configured():
    assert 11 not in lists(PublishingSpec(), n=5)[0]
    boosted = lists(PublishingSpec(launch_column="launched_at", launch_boost=0.9), n=5)
    # 3 days old: new. Scores are 0, -1, ..., -11; + 90% of the range (9.9) makes it -1.1
    assert boosted[0].tolist() == [0, 1, 11, 2, 3]


def test_contraindications_block_flagged_users_only():
    rule = Contraindication(
        user_column="skin_type",
        user_values=["sensitive"],
        product_column="ingredients",
        product_values=["retinol"],
    )
    items = lists(PublishingSpec(contraindications=[rule]), n=5)
    retinol = products_table()["ingredients"].str.contains("retinol").to_numpy()
    assert not retinol[items[0]].any()  # U0 is sensitive
    assert items[0].tolist() == [1, 3, 5, 7, 9]
    assert retinol[items[1]].any()  # U1 is oily: unaffected


def test_rules_off_by_default_and_unknown_columns_are_named():
    assert PublishingSpec().active_rules() == []
    with pytest.raises(ValueError, match="no column 'shade'"):
        ListRules.compile(
            PublishingSpec(
                contraindications=[
                    Contraindication(
                        user_column="skin_type",
                        user_values=["x"],
                        product_column="shade",
                        product_values=["y"],
                    )
                ]
            ),
            users_table(),
            products_table(),
            "category",
            NOW,
        )
    with pytest.raises(ValueError, match="launch_column"):
        PublishingSpec(launch_boost=0.1)


def test_tiers_follow_history_then_attributes():
    users = pd.DataFrame(
        {"user_id": ["U0", "U1", "U2"], "skin_type": ["dry", "oily", None], "region": [None] * 3}
    )
    events = pd.DataFrame({"user_id": ["U0", "U1"], "event_type": ["view", "returned"]})
    tiers = assign_tiers(users, events, ["skin_type", "region"], ["view", "purchase"])
    assert tiers.tolist() == [0, 1, 2]  # U1's only event type carries no weight


def test_each_tier_is_served_by_its_own_model():
    users, products = users_table(), products_table()
    by_index = ranked_model(3)
    reversed_ = FactorModel(
        np.ones((3, 1), np.float32), np.arange(N_ITEMS, dtype=np.float32)[:, None]
    )
    tiers = np.array([0, 1, 2], np.int8)
    items, _ = recommend_rows(
        {0: by_index, 1: reversed_, 2: by_index},
        np.arange(3),
        tiers,
        3,
        audience(users, products, tiers=tiers),
    )
    assert items.tolist() == [[0, 1, 2], [11, 10, 9], [0, 1, 2]]


def test_the_category_minimum_holds_in_the_shown_slots():
    """Serums rank first for everyone (products 0-7); with 3 slots shown, the best toner (8)
    and the best mask (10) are moved into them, the rest follows in the model's order."""
    items = lists(PublishingSpec(min_categories=3, shown=3), n=6)
    assert items[0].tolist() == [0, 8, 10, 1, 2, 3]
    # over the whole list only (shown = n), the order of the model within the list
    assert lists(PublishingSpec(min_categories=3, shown=6), n=6)[0].tolist() == [0, 1, 2, 3, 8, 10]


def test_a_pool_short_of_categories_is_widened_to_every_eligible_product():
    """pool 1 × n 3: the pool holds serums only (0, 1, 2); the user is ranked again over
    every product, so the list still holds three categories."""
    spec = PublishingSpec(min_categories=3, pool=1)
    assert lists(spec, n=3)[0].tolist() == [0, 8, 10]
    users, products = users_table(), products_table()
    rules = audience(users, products, spec).rules
    rows = np.arange(len(users))
    pool_only, _ = rules.reshape(*top_n(ranked_model(3), rows, 3), 3)
    assert pool_only[0].tolist() == [0, 1, 2]  # what the pool alone would publish
    assert rules.needs_wider_pool(top_n(ranked_model(3), rows, 3)[0], 3).all()
    widened_lists, _ = ranked_under_rules(ranked_model(3), rows, 3, rules)  # evaluation's path
    assert (widened_lists == lists(spec, n=3)).all()


def test_compliance_counts_lists_that_meet_each_rule_and_those_that_cannot():
    users, products = users_table(), products_table()
    contra = Contraindication(
        user_column="skin_type", user_values=["sensitive"],
        product_column="ingredients", product_values=["retinol"],
    )  # fmt: skip
    spec = PublishingSpec(min_categories=3, max_per_brand=2, contraindications=[contra])
    rules = audience(users, products, spec).rules
    rows = np.arange(3)
    good = lists(spec, n=5)
    assert rules.compliance(rows, good) == {
        "min_categories_met": 3, "min_categories_unmet": 0,
        "max_per_brand_met": 3, "max_per_brand_unmet": 0,
        "contraindications_met": 3, "contraindications_unmet": 0,
    }  # fmt: skip
    # serums only (no toner or mask eligible): the minimum cannot be met, and is counted
    only_serums = np.arange(N_ITEMS) < 8
    short = lists(spec, n=5, allowed=only_serums)
    assert rules.compliance(rows, short)["min_categories_unmet"] == 3
    # a list that breaks the cap or gives retinol (product 0) to the sensitive user U0
    broken = np.array([[0, 1, 2, 8, 10], [1, 3, 8, 9, 10], [1, 3, 8, 9, -1]])
    counts = rules.compliance(rows, broken)
    assert counts["max_per_brand_unmet"] == 1 and counts["contraindications_unmet"] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_widened_pool_gives_the_lists_of_a_ranking_over_every_product(seed):
    """Random scores, 9 categories of uneven size, a pool of 1 × n: each pool short of
    categories is widened by each category's best products, and the lists equal the ones
    the rules give from every eligible product ranked (what widening must reproduce)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n = 50, 80, 6
    products = pd.DataFrame(
        {
            "product_id": [f"P{i:02d}" for i in range(n_items)],
            "category": rng.choice(list("abcdefghi"), n_items, p=[0.6] + [0.05] * 8),
            "brand": rng.choice(list("xyz"), n_items),  # brands across categories
        }
    )
    users = pd.DataFrame({"user_id": [f"U{i}" for i in range(n_users)]})
    spec = PublishingSpec(min_categories=4, pool=1, shown=5)
    rules = ListRules.compile(spec, users, products, "category", NOW)
    model = FactorModel(
        rng.standard_normal((n_users, 4), dtype=np.float32),
        rng.standard_normal((n_items, 4), dtype=np.float32),
    )
    bought = sp.random(n_users, n_items, density=0.1, random_state=seed, format="csr") > 0
    rows = np.arange(n_users)
    widened_lists, _ = ranked_under_rules(model, rows, n, rules, exclude=bought)
    everything = top_n(model, rows, n_items, exclude=bought)
    exact, _ = rules.reshape(*everything, n)
    np.testing.assert_array_equal(widened_lists, exact)
    assert rules.needs_wider_pool(top_n(model, rows, n, exclude=bought)[0], n).any()
