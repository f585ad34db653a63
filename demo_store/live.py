"""A store that lives: advance the demo store by D days of simulated customers.

Customers keep shopping as the generator made them (the same ground-truth preferences,
category habits and funnel), and they now also see the recommendations currently
published: on each visit a customer looks at their top `shown` products and opens each
with probability OPEN_RECOMMENDATION × σ(affinity − own find), where "own find" is what
they would come across browsing by themselves (the log-sum-exp of their affinity for
N_CANDIDATES products drawn by appeal, as the generator's browsing draws them). That is
the generator's own choice model (Gumbel noise on the same affinity scale): a shown
product wins when it beats what the customer would have found anyway, so a list of
everyone's best sellers gains little and a list that knows the customer gains more. An
opened product goes through the same funnel as any other (view, cart, purchase, review),
which is what monitoring and the A/B test measure.

Drift scenarios (`--scenario`):
- `launch`: a new brand launches a product line (a tenth of the catalogue) with strong
  appeal on day one: product popularity drifts and events land on unknown products;
- `season`: summer: sunscreen, face oil and lip balm swing in and out of favour;
- `new_users`: a marketing push in a new region brings many oily-skin customers:
  the user mix drifts and events come from users the model has never seen.

    python -m demo_store.live --db data/demo/store.db --days 7 [--scenario launch]

Events, users and products are appended in one SQLite transaction, and the ground truth
file is extended for the new users and products (written atomically after the commit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.special import logsumexp

from demo_store import catalog
from demo_store.generate import (
    DAY,
    LATENT_DIM,
    N_CANDIDATES,
    GroundTruth,
    _choose_products,
    _funnel,
    _gumbel_top_k,
    _join_flags,
    _places_within,
    _weights_matrix,
    category_actives_weights,
)
from demo_store.store_db import TIMESTAMP_FORMAT, _insert, ground_truth_path

Scenario = Literal["none", "launch", "season", "new_users"]
SCENARIOS: tuple[str, ...] = ("none", "launch", "season", "new_users")

VISITS_PER_USER_DAY = 0.03  # about one visit a month per customer
OPEN_RECOMMENDATION = 0.5  # P(open a shown product) = this × σ(affinity − own find)
REPURCHASE = 0.45  # P(a consumable is bought again when its category's cycle comes round)
REVIEW_LAG_DAYS = 12  # as the generator's funnel: a review comes 12 days after a purchase
PLACEMENT = "recommendations"  # events.placement of what was opened from the shelf
NEW_REGION = "islands"
NEW_BRAND = "Novaskin"
SEASON_SHIFT = {"sunscreen": 2.0, "face oil": -1.4, "lip balm": -1.4}  # log-weight shifts


@dataclass
class Advance:
    """What one call appended."""

    scenario: str
    start: str
    end: str
    visits: int
    events: int
    users_added: int
    products_added: int
    recommendation_opens: int

    def render(self) -> str:
        return (
            f"advanced {self.start} → {self.end} ({self.scenario}): {self.visits:,} visits, "
            f"{self.events:,} events ({self.recommendation_opens:,} recommended products "
            f"opened), {self.users_added:,} new users, {self.products_added:,} new products"
        )


def _read(db_path: Path):
    """users, products, purchases (user, product, time), the store's end, the last event id."""
    with sqlite3.connect(db_path) as connection:
        users = pd.read_sql("SELECT * FROM users ORDER BY rowid", connection)
        products = pd.read_sql("SELECT * FROM products ORDER BY rowid", connection)
        purchases = pd.read_sql(
            "SELECT user_id, product_id, occurred_at FROM events WHERE event_type = 'purchase'",
            connection,
        )
        for frame, column in ((users, "signup_at"), (products, "launched_at")):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        last, max_id = connection.execute(
            "SELECT MAX(occurred_at), MAX(event_id) FROM events"
        ).fetchone()
        until = connection.execute(
            "SELECT value FROM store_meta WHERE key = 'simulated_until'"
        ).fetchone()
    end = max(pd.Timestamp(last, tz="UTC"), pd.Timestamp(until[0], tz="UTC") if until else pd.NaT)
    purchases["occurred_at"] = pd.to_datetime(purchases["occurred_at"], utc=True)
    return users, products, purchases, end, int(max_id or 0)


def _seconds(times: pd.Series) -> np.ndarray:
    """Seconds since the epoch, whatever the datetime's resolution."""
    since = pd.to_datetime(times, utc=True) - pd.Timestamp(0, tz="UTC")
    return (since // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _next_ids(prefix: str, existing: pd.Series, count: int, width: int) -> np.ndarray:
    start = int(existing.str[len(prefix) :].astype(int).max()) + 1
    numbers = np.arange(start, start + count).astype(str)
    return np.char.add(prefix, np.char.zfill(numbers, width))


def _new_users(
    rng: np.random.Generator,
    truth: GroundTruth,
    users: pd.DataFrame,
    count: int,
    start: int,
    end: int,
) -> tuple[pd.DataFrame, GroundTruth]:
    """Oily-skin customers from a new region, signing up during the window."""
    skin = np.full(count, catalog.SKIN_TYPES.index("oily"))
    concern_logw = np.log(
        0.15 + _weights_matrix(catalog.SKIN_TYPES, catalog.CONCERNS, catalog.SKIN_TYPE_CONCERNS)
    )[skin]
    top = _gumbel_top_k(rng, concern_logw, 2)
    has_concern = np.zeros((count, len(catalog.CONCERNS)), dtype=bool)
    np.put_along_axis(has_concern, top, True, axis=1)
    birth_year = np.clip(np.round(rng.normal(2000, 5, size=count)), 1950, 2008).astype(int)
    signup = rng.integers(start, end, size=count)
    table = pd.DataFrame(
        {
            "user_id": _next_ids("U", users["user_id"], count, 7),
            "signup_at": pd.to_datetime(signup, unit="s", utc=True),
            "birth_year": birth_year,
            "region": NEW_REGION,
            "skin_type": "oily",
            "skin_concerns": _join_flags(has_concern, catalog.CONCERNS).to_numpy(),
        }
    )
    actives = _weights_matrix(catalog.SKIN_TYPES, catalog.INGREDIENTS, catalog.SKIN_TYPE_ACTIVES)
    concerns = _weights_matrix(catalog.CONCERNS, catalog.INGREDIENTS, catalog.CONCERN_ACTIVES)
    # Their category habits and price sensitivity resemble existing oily-skin customers'.
    oily = np.flatnonzero(users["skin_type"].to_numpy() == "oily")
    like = rng.choice(oily, size=count)
    brands = np.bincount(truth.product_brand)
    grown = dataclasses.replace(
        truth,
        user_actives=np.vstack([truth.user_actives, actives[skin] + has_concern @ concerns]),
        user_latent=np.vstack([truth.user_latent, rng.normal(0, 0.55, (count, LATENT_DIM))]),
        user_fav_brands=np.vstack(
            [truth.user_fav_brands, rng.choice(len(brands), (count, 2), p=brands / brands.sum())]
        ),
        user_price_sensitivity=np.concatenate(
            [truth.user_price_sensitivity, truth.user_price_sensitivity[like] + 0.3]
        ),
        user_category_pref=np.vstack([truth.user_category_pref, truth.user_category_pref[like]]),
    )
    return table, grown


def _new_products(
    rng: np.random.Generator,
    truth: GroundTruth,
    products: pd.DataFrame,
    count: int,
    start: int,
) -> tuple[pd.DataFrame, GroundTruth]:
    """A new brand's line, launched on the window's first day, with strong appeal."""
    categories = tuple(catalog.CATEGORIES)
    category = rng.choice(len(categories), size=count)
    n_ing = len(catalog.INGREDIENTS)
    top = _gumbel_top_k(rng, np.log(category_actives_weights()[category]), 3)
    actives = np.zeros((count, n_ing), dtype=bool)
    np.put_along_axis(actives, top, True, axis=1)
    prices = products["price"].to_numpy()
    median = pd.Series(prices).groupby(truth.product_category).median()
    price = np.round(median.reindex(category).fillna(np.median(prices)).to_numpy()) - 0.01
    lead = np.array(catalog.INGREDIENTS)[top[:, 0]]
    name = [
        f"{NEW_BRAND} {catalog.ACTIVE_DESCRIPTOR[a]} {a.title()} {categories[c].title()}"
        for a, c in zip(lead, category, strict=True)
    ]
    table = pd.DataFrame(
        {
            "product_id": _next_ids("P", products["product_id"], count, 6),
            "name": name,
            "brand": NEW_BRAND,
            "category": np.array(categories)[category],
            "ingredients": _join_flags(actives, catalog.INGREDIENTS).to_numpy(),
            "price": price,
            "launched_at": pd.to_datetime(np.full(count, start + DAY // 2), unit="s", utc=True),
            "in_stock": True,
        }
    )
    grown = dataclasses.replace(
        truth,
        product_actives=np.vstack(
            [truth.product_actives, actives / np.sqrt(actives.sum(1, keepdims=True))]
        ),
        product_latent=np.vstack([truth.product_latent, rng.normal(0, 0.55, (count, LATENT_DIM))]),
        product_brand=np.concatenate(
            [truth.product_brand, np.full(count, truth.product_brand.max() + 1)]
        ),
        product_category=np.concatenate([truth.product_category, category]),
        product_log_rel_price=np.concatenate([truth.product_log_rel_price, np.zeros(count)]),
        product_appeal=np.concatenate(
            [
                truth.product_appeal,
                np.quantile(truth.product_appeal, 0.95) + rng.normal(0, 0.3, count),
            ]
        ),
    )
    return table, grown


def _published_lists(path: Path | None, user_ids: pd.Series, product_ids: pd.Series, shown: int):
    """(user index, product index) pairs of the published top `shown`, or empty arrays."""
    if path is None or not Path(path).exists():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    lists = pq.read_table(path, columns=["user_id", "rank", "product_id"]).to_pandas()
    lists = lists[lists["rank"] <= shown]
    user = pd.Index(user_ids).get_indexer(lists["user_id"])
    product = pd.Index(product_ids).get_indexer(lists["product_id"])
    known = (user >= 0) & (product >= 0)
    return user[known].astype(np.int64), product[known].astype(np.int64)


@dataclass(frozen=True)
class _Shelf:
    """The published lists as the customers see them: customer i's shown products are
    product[start[i] : start[i] + count[i]] (count 0: no list for them)."""

    product: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, user: np.ndarray, product: np.ndarray, n_users: int) -> _Shelf:
        order = np.argsort(user, kind="stable")
        user, product = user[order], product[order]
        start = np.searchsorted(user, np.arange(n_users))
        count = np.searchsorted(user, np.arange(n_users), side="right") - start
        return cls(product, start, count)

    def pairs(self, who: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(customer, shown product) per product on the visitors' shelves, and how many
        products each visitor is shown."""
        counts = self.count[who]
        offsets = _places_within(counts)
        return (
            np.repeat(who, counts),
            self.product[np.repeat(self.start[who], counts) + offsets],
            counts,
        )


@dataclass(frozen=True)
class _Shoppers:
    """Everything a simulated day draws on: the ground truth, the products' hidden traits
    (`hidden`, as the generator's choice and funnel read them), and per customer when they
    signed up, how active they are, their category habits and their shelf."""

    truth: GroundTruth
    hidden: dict
    in_stock: np.ndarray
    signup: np.ndarray
    activity: np.ndarray
    category_pref: np.ndarray
    shelf: _Shelf
    start: int  # the window's first second: who signed up since is new (and curious)


def _arrivals(
    rng: np.random.Generator,
    truth: GroundTruth,
    users: pd.DataFrame,
    products: pd.DataFrame,
    scenario: str,
    start: int,
    end: int,
) -> tuple[pd.DataFrame, pd.DataFrame, GroundTruth]:
    """(new users, new products, the ground truth grown for them) that `scenario` brings."""
    new_users = users.iloc[:0]
    new_products = products.iloc[:0]
    if scenario == "new_users":
        new_users, truth = _new_users(rng, truth, users, max(20, len(users) // 4), start, end)
    if scenario == "launch":
        new_products, truth = _new_products(
            rng, truth, products, max(4, len(products) // 10), start
        )
    return new_users, new_products, truth


def _hidden_traits(truth: GroundTruth, products: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """(the products' traits the generator's choice and funnel read, in-stock flags); an
    out-of-stock product gets an appeal no customer chooses."""
    in_stock = products["in_stock"].astype(bool).to_numpy()
    hidden = {
        "appeal": np.where(in_stock, truth.product_appeal, -50.0),
        "category": truth.product_category,
        "launched": _seconds(products["launched_at"]),
        "price": products["price"].to_numpy(dtype=float),
    }
    return hidden, in_stock


def _seasonal(category_pref: np.ndarray, scenario: str) -> np.ndarray:
    """The customers' category log-weights, shifted by SEASON_SHIFT in the `season`."""
    if scenario != "season":
        return category_pref
    shift = np.zeros(category_pref.shape[1], dtype=np.float32)
    for name, value in SEASON_SHIFT.items():
        shift[tuple(catalog.CATEGORIES).index(name)] = value
    return category_pref + shift


def _simulate_day(
    rng: np.random.Generator, shoppers: _Shoppers, day_start: int
) -> tuple[list[dict], int, int]:
    """One day, vectorised over customers: (event frames, visits, shown products opened).
    Each customer signed up by the day's end visits with a chance that grows with their
    activity; a visitor browses a category as the generator's customers do, and opens
    what their shelf shows (`_open_shown`)."""
    signup = shoppers.signup
    alive = np.flatnonzero(signup < day_start + DAY)
    curious = np.where(signup[alive] >= shoppers.start, 3.0, 1.0)  # the new are curious
    rate = VISITS_PER_USER_DAY * shoppers.activity[alive] * curious
    who = alive[rng.random(len(alive)) < np.minimum(rate, 0.9)]
    if not len(who):
        return [], 0, 0
    at = day_start + rng.integers(0, DAY - 3600, size=len(who))
    at = np.maximum(at, signup[who] + 60)
    category = _gumbel_top_k(rng, shoppers.category_pref[who], 1)[:, 0]
    product, affinity = _choose_products(rng, shoppers.truth, shoppers.hidden, who, category, at)
    ok = product >= 0
    frames = [_funnel(rng, who[ok], product[ok], affinity[ok], at[ok], shoppers.hidden)]
    shelf, opens = _open_shown(rng, shoppers, who, at)
    if shelf is not None:
        frames.append(shelf)
    return frames, len(who), opens


def _open_shown(
    rng: np.random.Generator, shoppers: _Shoppers, who: np.ndarray, at: np.ndarray
) -> tuple[dict | None, int]:
    """The recommendations the visitors are shown: each opened with probability
    OPEN_RECOMMENDATION × σ(affinity − own find), then through the funnel, its events
    placed on the shelf. (the funnel's events or None, how many were opened)"""
    truth = shoppers.truth
    pair_user, pair_product, counts = shoppers.shelf.pairs(who)
    pair_at = np.repeat(at, counts) + 30
    pair_affinity = truth.affinity(pair_user, pair_product)
    own = np.repeat(_own_find(rng, truth, shoppers.hidden, who), counts)
    interest = 1 / (1 + np.exp(-(pair_affinity - own)))
    chance = OPEN_RECOMMENDATION * interest
    opened = (rng.random(len(pair_user)) < chance) & shoppers.in_stock[pair_product]
    if not opened.any():
        return None, 0
    shelf = _funnel(
        rng,
        pair_user[opened],
        pair_product[opened],
        pair_affinity[opened],
        pair_at[opened],
        shoppers.hidden,
    )
    shelf["placement"] = np.full(len(shelf["user_id"]), PLACEMENT, dtype=object)
    return shelf, int(opened.sum())


def advance_store(
    db_path: Path,
    days: int,
    scenario: Scenario = "none",
    seed: int = 0,
    recommendations: Path | None = None,
    shown: int = 10,
) -> Advance:
    """Append `days` days of simulated shopping to the store at `db_path`.

    recommendations: a published recommendations.parquet the customers see (default: the
    store's data root's published/latest, when there is one)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: choose one of {SCENARIOS}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    db_path = Path(db_path)
    if recommendations is None:
        recommendations = db_path.parent.parent / "published" / "latest" / "recommendations.parquet"
    rng = np.random.default_rng([seed, days, SCENARIOS.index(scenario)])
    truth = GroundTruth.load(ground_truth_path(db_path))
    users, products, history, last, max_event_id = _read(db_path)
    start = int(last.timestamp()) + 1
    end = start + days * DAY
    new_users, new_products, truth = _arrivals(rng, truth, users, products, scenario, start, end)
    all_users = pd.concat([users, new_users], ignore_index=True)
    all_products = pd.concat([products, new_products], ignore_index=True)
    hidden, in_stock = _hidden_traits(truth, all_products)
    shown_user, shown_product = _published_lists(
        recommendations, all_users["user_id"], all_products["product_id"], shown
    )
    shoppers = _Shoppers(
        truth=truth,
        hidden=hidden,
        in_stock=in_stock,
        signup=_seconds(all_users["signup_at"]),
        activity=rng.lognormal(0, 0.6, size=len(all_users)),
        category_pref=_seasonal(truth.user_category_pref, scenario),
        shelf=_Shelf.of(shown_user, shown_product, len(all_users)),
        start=start,
    )
    frames, visits, opens = [], 0, 0
    for day in range(days):  # a loop over days; every day is vectorised over customers
        day_frames, day_visits, day_opens = _simulate_day(rng, shoppers, start + day * DAY)
        frames += day_frames
        visits += day_visits
        opens += day_opens
    frames += _habits(rng, truth, history, all_users, all_products, hidden, start, end)
    events = _event_table(frames, all_users, all_products, end, max_event_id)
    _append(db_path, new_users, new_products, events, truth, pd.Timestamp(end, unit="s", tz="UTC"))
    return Advance(
        scenario=scenario,
        start=pd.Timestamp(start, unit="s", tz="UTC").isoformat(),
        end=pd.Timestamp(end, unit="s", tz="UTC").isoformat(),
        visits=visits,
        events=len(events),
        users_added=len(new_users),
        products_added=len(new_products),
        recommendation_opens=opens,
    )


def _own_find(
    rng: np.random.Generator, truth: GroundTruth, hidden: dict, who: np.ndarray
) -> np.ndarray:
    """What each visitor would find browsing on their own, on the generator's choice scale:
    the log-sum-exp of their affinity for N_CANDIDATES products drawn by appeal. A shown
    product wins their attention over that with the logit probability σ(affinity − this)."""
    proposal = np.exp(hidden["appeal"] - hidden["appeal"].max())
    proposal /= proposal.sum()
    candidates = rng.choice(len(proposal), size=(len(who), N_CANDIDATES), p=proposal)
    return logsumexp(truth.affinity(who[:, None], candidates), axis=1)


def _habits(
    rng: np.random.Generator,
    truth: GroundTruth,
    history: pd.DataFrame,
    users: pd.DataFrame,
    products: pd.DataFrame,
    hidden: dict,
    start: int,
    end: int,
) -> list[dict]:
    """What the past brings into the window, as the generator does: consumables bought
    again when their category's cycle comes round (cart, then purchase), and reviews of
    purchases made in the last REVIEW_LAG_DAYS days."""
    if history.empty:
        return []
    user = pd.Index(users["user_id"]).get_indexer(history["user_id"])
    product = pd.Index(products["product_id"]).get_indexer(history["product_id"])
    at = _seconds(history["occurred_at"])
    cycles = np.array([catalog.CATEGORIES[c][1] for c in catalog.CATEGORIES])
    latest = (
        pd.DataFrame({"user": user, "product": product, "at": at})
        .sort_values("at")
        .drop_duplicates(["user", "product"], keep="last")
    )
    cycle = cycles[truth.product_category[latest["product"].to_numpy()]]
    again = latest["at"].to_numpy() + (cycle * rng.uniform(0.75, 1.25, len(latest)) * DAY)
    due = (again >= start) & (again < end) & (rng.random(len(latest)) < REPURCHASE)
    frames = []
    if due.any():
        rows = latest[due]
        n = int(due.sum())
        price = np.round(hidden["price"][rows["product"].to_numpy()], 2)
        for kind, offset in (("add_to_cart", -120), ("purchase", 0)):
            frames.append(
                {
                    "user_id": rows["user"].to_numpy(),
                    "product_id": rows["product"].to_numpy(),
                    "event_type": np.full(n, kind, dtype=object),
                    "occurred_at": again[due].astype(np.int64) + offset,
                    "quantity": np.ones(n, dtype=np.int64),
                    "unit_price": price,
                    "rating": np.full(n, np.nan),
                    "search_query": np.full(n, None, dtype=object),
                }
            )
    recent = (at >= start - REVIEW_LAG_DAYS * DAY) & (rng.random(len(at)) < 0.3)
    if recent.any():
        affinity = truth.affinity(user[recent], product[recent])
        n = int(recent.sum())
        rating = np.clip(np.round(3.2 + 1.3 * (affinity - 1.0) + rng.normal(0, 0.7, n)), 1, 5)
        frames.append(
            {
                "user_id": user[recent],
                "product_id": product[recent],
                "event_type": np.full(n, "review", dtype=object),
                "occurred_at": at[recent] + REVIEW_LAG_DAYS * DAY,
                "quantity": np.zeros(n, dtype=np.int64),
                "unit_price": np.full(n, np.nan),
                "rating": rating,
                "search_query": np.full(n, None, dtype=object),
            }
        )
    return frames


def _event_table(
    frames: list[dict], users: pd.DataFrame, products: pd.DataFrame, end: int, max_event_id: int
) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame()
    for frame in frames:
        frame.setdefault("placement", np.full(len(frame["user_id"]), None, dtype=object))
    raw = pd.DataFrame(
        {
            k: np.concatenate([f[k] for f in frames])
            for k in frames[0]
            if k != "bought_mask_per_visit"
        }
    )
    raw = raw[raw["occurred_at"] < end].sort_values(
        ["occurred_at", "user_id", "product_id"], kind="stable"
    )
    quantity = raw["quantity"].to_numpy()
    events = pd.DataFrame(
        {
            "event_id": np.arange(max_event_id + 1, max_event_id + 1 + len(raw), dtype=np.int64),
            "user_id": users["user_id"].to_numpy()[raw["user_id"].to_numpy()],
            "product_id": products["product_id"].to_numpy()[raw["product_id"].to_numpy()],
            "event_type": raw["event_type"].to_numpy(),
            "occurred_at": pd.to_datetime(raw["occurred_at"].to_numpy(), unit="s", utc=True),
            "quantity": pd.array(np.where(quantity > 0, quantity, 0), dtype="Int64"),
            "unit_price": raw["unit_price"].to_numpy(),
            "rating": pd.array(raw["rating"].to_numpy(), dtype="Float64").astype("Int64"),
            "search_query": raw["search_query"].to_numpy(),
            "placement": raw["placement"].to_numpy(),
        }
    )
    events.loc[events["quantity"] == 0, "quantity"] = pd.NA
    return events


def _append(
    db_path: Path,
    users: pd.DataFrame,
    products: pd.DataFrame,
    events: pd.DataFrame,
    truth: GroundTruth,
    until: pd.Timestamp,
) -> None:
    """One transaction for the rows; then the ground truth, replaced atomically."""
    connection = sqlite3.connect(db_path)
    try:
        with connection:
            columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
            if "placement" not in columns:  # where on the site an event happened
                connection.execute("ALTER TABLE events ADD COLUMN placement TEXT")
            for table, frame in (("users", users), ("products", products), ("events", events)):
                if len(frame):
                    _insert(connection, table, frame)
            connection.execute(
                "INSERT OR REPLACE INTO store_meta VALUES ('simulated_until', ?)",
                (until.strftime(TIMESTAMP_FORMAT),),
            )
    finally:
        connection.close()
    target = ground_truth_path(db_path)
    partial = target.with_name("ground_truth.partial.npz")
    truth.save(partial)
    os.replace(partial, target)


def list_truth(db_path: Path, lists: pd.DataFrame, shown: int = 10) -> dict[str, dict]:
    """What the hidden ground truth says of published lists, per variant: the mean affinity
    of the top `shown` products, and their mean choice weight exp(affinity) (what a shown
    product's chance of being opened grows with, in the logit choice the shelf follows).
    For the simulator's checks; a real shop has no ground truth."""
    with sqlite3.connect(db_path) as connection:
        users = pd.read_sql("SELECT user_id FROM users ORDER BY rowid", connection)
        products = pd.read_sql("SELECT product_id FROM products ORDER BY rowid", connection)
    lists = lists[lists["rank"] <= shown]
    variant = lists["variant"] if "variant" in lists else pd.Series("model", index=lists.index)
    affinity = GroundTruth.load(ground_truth_path(db_path)).affinity(
        pd.Index(users["user_id"]).get_indexer(lists["user_id"]),
        pd.Index(products["product_id"]).get_indexer(lists["product_id"]),
    )
    frame = pd.DataFrame({"affinity": affinity, "choice_weight": np.exp(affinity)}, lists.index)
    means = frame.groupby(variant.to_numpy()).mean().round(4)
    return {str(name): row.to_dict() for name, row in means.iterrows()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_store.live", description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("data/demo/store.db"))
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--scenario", choices=SCENARIOS, default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recommendations",
        type=Path,
        default=None,
        help="published recommendations the customers see (default: <data>/published/latest)",
    )
    parser.add_argument("--shown", type=int, default=10, help="recommendations shown per visit")
    args = parser.parse_args(argv)
    if not args.db.exists():
        parser.error(f"no store at {args.db}: build it with `python -m demo_store`")
    advance = advance_store(
        args.db, args.days, args.scenario, args.seed, args.recommendations, args.shown
    )
    print(advance.render())
    print(json.dumps(dataclasses.asdict(advance)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
