"""Seeded generator of a synthetic online beauty store with planted, learnable structure.

What a good recommender can learn here and a popularity ranking cannot:
- skin type and concerns drive which actives (ingredients) a customer likes;
- routines: after a cleanser comes a toner, after a serum a moisturiser;
- consumables are rebought on a category cycle (a cleanser every 6-10 weeks);
- brand loyalty, price sensitivity per segment, a hidden taste only co-purchases reveal;
- a long popularity tail, and new users and products arriving all the time (cold start).

Everything is vectorised with numpy: the only Python loops run over shopping "rounds"
(a user's k-th visit) and over the ten categories, never over users, products or events.
The ground-truth preference function is saved beside the store (`ground_truth.npz`) so
later code can simulate how customers respond to recommendations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from demo_store import catalog

DAY = 86_400
LATENT_DIM = 8


@dataclass(frozen=True)
class Preset:
    """How big a store to make."""

    n_users: int
    n_products: int
    n_brands: int
    months: int
    visits_per_user_month: float


PRESETS: dict[str, Preset] = {
    "tiny": Preset(n_users=300, n_products=80, n_brands=12, months=6, visits_per_user_month=1.6),
    "small": Preset(
        n_users=1_500, n_products=200, n_brands=20, months=8, visits_per_user_month=1.0
    ),
    "demo": Preset(
        n_users=5_000, n_products=600, n_brands=40, months=18, visits_per_user_month=0.8
    ),
    "medium": Preset(  # the A/B benchmark: enough control visitors in two weeks
        n_users=100_000, n_products=2_000, n_brands=100, months=12, visits_per_user_month=0.8
    ),
    "large": Preset(
        n_users=500_000,
        n_products=20_000,
        n_brands=195,
        months=18,
        visits_per_user_month=0.55,
    ),
}

# The store's last day is fixed, not "now": the same seed must give the same store.
STORE_END = pd.Timestamp("2026-11-01T00:00:00Z")


@dataclass
class GroundTruth:
    """The hidden preference function of the simulated customers.

    affinity(u, p) = actives match + hidden taste + brand loyalty - price sensitivity
                     + category habit + product appeal
    """

    user_actives: np.ndarray  # (n_users, n_ingredients) preference per active
    user_latent: np.ndarray  # (n_users, LATENT_DIM) taste only co-purchases reveal
    user_fav_brands: np.ndarray  # (n_users, 2) brand indices
    user_price_sensitivity: np.ndarray  # (n_users,)
    user_category_pref: np.ndarray  # (n_users, n_categories) log-weights
    product_actives: np.ndarray  # (n_products, n_ingredients) 0/1, row-normalised
    product_latent: np.ndarray  # (n_products, LATENT_DIM)
    product_brand: np.ndarray  # (n_products,)
    product_category: np.ndarray  # (n_products,)
    product_log_rel_price: np.ndarray  # (n_products,) log(price / category median)
    product_appeal: np.ndarray  # (n_products,) long-tailed quality / buzz

    def affinity(self, user_idx: np.ndarray, product_idx: np.ndarray) -> np.ndarray:
        """Affinity for aligned arrays of user and product indices (broadcastable)."""
        user_idx = np.asarray(user_idx)
        product_idx = np.asarray(product_idx)
        actives = np.einsum(
            "...k,...k->...",
            self.user_actives[user_idx],
            self.product_actives[product_idx],
        )
        latent = np.einsum(
            "...k,...k->...", self.user_latent[user_idx], self.product_latent[product_idx]
        )
        brand = self.product_brand[product_idx]
        loyal = (self.user_fav_brands[user_idx] == brand[..., None]).any(axis=-1)
        price = self.user_price_sensitivity[user_idx] * self.product_log_rel_price[product_idx]
        habit = self.user_category_pref[user_idx, self.product_category[product_idx]]
        return (
            1.1 * actives
            + 0.8 * latent
            + 1.0 * loyal
            - price
            + 0.5 * habit
            + 0.6 * self.product_appeal[product_idx]
        )

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        with np.load(path) as arrays:
            return cls(**{f.name: arrays[f.name] for f in dataclasses.fields(cls)})


@dataclass
class Store:
    users: pd.DataFrame
    products: pd.DataFrame
    events: pd.DataFrame
    truth: GroundTruth
    preset: str
    seed: int


def _weights_matrix(
    rows: tuple[str, ...], cols: tuple[str, ...], table: dict[str, dict[str, float]]
) -> np.ndarray:
    matrix = np.zeros((len(rows), len(cols)))
    col_index = {c: j for j, c in enumerate(cols)}
    for i, row in enumerate(rows):
        for col, value in table.get(row, {}).items():
            matrix[i, col_index[col]] = value
    return matrix


def category_actives_weights() -> np.ndarray:
    """(category, ingredient) weights of drawing an active: 3 for the category's typical
    actives, 0.15 for the rest (categories in catalog.CATEGORIES order)."""
    categories = tuple(catalog.CATEGORIES)
    weights = np.full((len(categories), len(catalog.INGREDIENTS)), 0.15)
    for i, name in enumerate(categories):
        for active in catalog.CATEGORIES[name][3]:
            weights[i, catalog.INGREDIENTS.index(active)] = 3.0
    return weights


def _gumbel_top_k(rng: np.random.Generator, log_weights: np.ndarray, k: int) -> np.ndarray:
    """Sample k distinct columns per row with probability ∝ exp(log_weights)."""
    noisy = log_weights + rng.gumbel(size=log_weights.shape)
    return np.argsort(-noisy, axis=1)[:, :k]


def _join_flags(flags: np.ndarray, labels: tuple[str, ...], sep: str = "|") -> pd.Series:
    """Turn a boolean (rows x labels) matrix into 'a|b|c' strings, '' where a row has none."""
    stacked = pd.DataFrame(flags, columns=list(labels)).stack()
    stacked = stacked[stacked]
    joined = stacked.reset_index().groupby("level_0")["level_1"].agg(sep.join)
    return joined.reindex(range(len(flags))).fillna("")


def _timestamps(seconds: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True))


def _make_users(
    rng: np.random.Generator, preset: Preset, start: int, end: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n = preset.n_users
    skin = rng.choice(len(catalog.SKIN_TYPES), size=n, p=catalog.SKIN_TYPE_SHARE)
    concern_logw = np.log(
        0.15 + _weights_matrix(catalog.SKIN_TYPES, catalog.CONCERNS, catalog.SKIN_TYPE_CONCERNS)
    )[skin]
    n_concerns = rng.choice([1, 2, 3], size=n, p=[0.45, 0.4, 0.15])
    top = _gumbel_top_k(rng, concern_logw, 3)
    has_concern = np.zeros((n, len(catalog.CONCERNS)), dtype=bool)
    ranks = np.arange(3)[None, :] < n_concerns[:, None]
    np.put_along_axis(has_concern, top, ranks, axis=1)

    # 55% were customers before the window opened; the rest keep arriving (cold start).
    existing = rng.random(n) < 0.55
    signup = np.where(
        existing,
        rng.integers(start - 730 * DAY, start, size=n),
        rng.integers(start, end, size=n),
    )
    birth_year = np.clip(np.round(rng.normal(1990, 11, size=n)), 1950, 2008).astype(int)
    region = rng.integers(0, len(catalog.REGIONS), size=n)

    concerns_text = _join_flags(has_concern, catalog.CONCERNS)

    users = pd.DataFrame(
        {
            "user_id": pd.Series(
                np.char.add("U", np.char.zfill(np.arange(1, n + 1).astype(str), 7))
            ),
            "signup_at": _timestamps(signup),
            "birth_year": birth_year,
            "region": np.array(catalog.REGIONS)[region],
            "skin_type": np.array(catalog.SKIN_TYPES)[skin],
            "skin_concerns": concerns_text.to_numpy(),
        }
    )
    hidden = {
        "skin": skin,
        "has_concern": has_concern,
        "signup": signup,
        "birth_year": birth_year,
        "region": region,
    }
    return users, hidden


def _brand_names(n_brands: int) -> np.ndarray:
    prefixes = np.array(catalog.BRAND_PREFIXES)
    suffixes = np.array(catalog.BRAND_SUFFIXES)
    combos = np.char.add(np.repeat(prefixes, len(suffixes)), np.tile(suffixes, len(prefixes)))
    if n_brands > len(combos):
        raise ValueError(f"at most {len(combos)} brand names are available, asked for {n_brands}")
    # Interleave so that small stores get varied prefixes.
    order = np.argsort(np.tile(np.arange(len(suffixes)), len(prefixes)), kind="stable")
    return np.char.capitalize(combos[order][:n_brands])


def _make_products(
    rng: np.random.Generator, preset: Preset, start: int, end: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n = preset.n_products
    categories = tuple(catalog.CATEGORIES)
    shares = np.array([catalog.CATEGORIES[c][0] for c in categories])
    category = rng.choice(len(categories), size=n, p=shares / shares.sum())

    brand_names = _brand_names(preset.n_brands)
    brand_pop = rng.zipf(1.6, size=preset.n_brands).clip(max=50).astype(float)
    brand = rng.choice(preset.n_brands, size=n, p=brand_pop / brand_pop.sum())
    brand_tier = rng.choice(3, size=preset.n_brands, p=[0.35, 0.45, 0.2])
    tier_price = np.array([0.6, 1.0, 2.1])

    # Actives: drawn from the category's typical ones, tilted towards the brand's signature.
    n_ing = len(catalog.INGREDIENTS)
    cat_ing = category_actives_weights()
    brand_signature = rng.gamma(0.4, 1.0, size=(preset.n_brands, n_ing))
    log_w = np.log(cat_ing[category]) + np.log1p(brand_signature[brand])
    n_actives = rng.choice([2, 3, 4], size=n, p=[0.35, 0.45, 0.2])
    top = _gumbel_top_k(rng, log_w, 4)
    actives = np.zeros((n, n_ing), dtype=bool)
    np.put_along_axis(actives, top, np.arange(4)[None, :] < n_actives[:, None], axis=1)
    lead = top[:, 0]

    base_price = np.array([catalog.CATEGORIES[c][2] for c in categories])
    price = base_price[category] * tier_price[brand_tier[brand]] * rng.lognormal(0, 0.25, size=n)
    price = np.round(np.maximum(price, 3.0)) - 0.01
    category_median = pd.Series(price).groupby(category).transform("median").to_numpy()

    # Three quarters were on sale before the window; a quarter launch during it.
    launched = np.where(
        rng.random(n) < 0.75,
        rng.integers(start - 900 * DAY, start, size=n),
        rng.integers(start, end - 14 * DAY, size=n),
    )
    in_stock = rng.random(n) > 0.06
    appeal = rng.normal(0, 0.9, size=n) + 0.3 * np.log(brand_pop[brand])

    descriptor = np.array([catalog.ACTIVE_DESCRIPTOR[i] for i in catalog.INGREDIENTS])[lead]
    lead_name = np.char.title(np.array(catalog.INGREDIENTS)[lead].astype(str))
    category_title = np.char.title(np.array(categories)[category].astype(str))
    name = pd.Series(brand_names[brand]) + " " + descriptor + " " + lead_name + " " + category_title
    ingredients_text = _join_flags(actives, catalog.INGREDIENTS)

    products = pd.DataFrame(
        {
            "product_id": pd.Series(
                np.char.add("P", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
            ),
            "name": name,
            "brand": brand_names[brand],
            "category": np.array(categories)[category],
            "ingredients": ingredients_text.to_numpy(),
            "price": price,
            "launched_at": _timestamps(launched),
            "in_stock": in_stock,
        }
    )
    hidden = {
        "category": category,
        "brand": brand,
        "brand_pop": brand_pop,
        "actives": actives,
        "price": price,
        "log_rel_price": np.log(price / category_median),
        "launched": launched,
        "appeal": appeal,
    }
    return products, hidden


def _make_truth(
    rng: np.random.Generator, preset: Preset, users: dict, products: dict
) -> GroundTruth:
    skin_actives = _weights_matrix(
        catalog.SKIN_TYPES, catalog.INGREDIENTS, catalog.SKIN_TYPE_ACTIVES
    )
    concern_actives = _weights_matrix(
        catalog.CONCERNS, catalog.INGREDIENTS, catalog.CONCERN_ACTIVES
    )
    user_actives = skin_actives[users["skin"]] + users["has_concern"] @ concern_actives
    product_actives = products["actives"] / np.sqrt(products["actives"].sum(1, keepdims=True))

    n_users = preset.n_users
    brand_pop = products["brand_pop"]
    fav_brands = rng.choice(preset.n_brands, size=(n_users, 2), p=brand_pop / brand_pop.sum())
    young = users["birth_year"] >= 1998
    price_sensitivity = np.clip(
        rng.normal(0.9 + 0.6 * young + 0.25 * (users["region"] % 2), 0.35), 0.0, None
    )
    categories = tuple(catalog.CATEGORIES)
    cat_mult = np.ones((len(catalog.SKIN_TYPES), len(categories)))
    cat_mult += _weights_matrix(catalog.SKIN_TYPES, categories, catalog.SKIN_TYPE_CATEGORIES) - (
        _weights_matrix(catalog.SKIN_TYPES, categories, catalog.SKIN_TYPE_CATEGORIES) != 0
    )
    shares = np.array([catalog.CATEGORIES[c][0] for c in categories])
    category_pref = np.log(shares * cat_mult[users["skin"]]) + rng.normal(
        0, 0.4, size=(n_users, len(categories))
    )
    return GroundTruth(
        user_actives=user_actives.astype(np.float32),
        user_latent=rng.normal(0, 0.55, size=(n_users, LATENT_DIM)).astype(np.float32),
        user_fav_brands=fav_brands,
        user_price_sensitivity=price_sensitivity.astype(np.float32),
        user_category_pref=category_pref.astype(np.float32),
        product_actives=product_actives.astype(np.float32),
        product_latent=rng.normal(0, 0.55, size=(preset.n_products, LATENT_DIM)).astype(np.float32),
        product_brand=products["brand"],
        product_category=products["category"],
        product_log_rel_price=products["log_rel_price"].astype(np.float32),
        product_appeal=products["appeal"].astype(np.float32),
    )


N_CANDIDATES = 24


def _choose_products(
    rng: np.random.Generator,
    truth: GroundTruth,
    products: dict,
    user_idx: np.ndarray,
    category_idx: np.ndarray,
    at: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each (user, category, time) pick a product: candidates drawn by appeal, choice by
    Gumbel-max on the ground-truth affinity. Returns (product index or -1, affinity)."""
    chosen = np.full(len(user_idx), -1)
    chosen_affinity = np.zeros(len(user_idx))
    proposal = np.exp(products["appeal"])
    for c in np.unique(category_idx):
        rows = np.flatnonzero(category_idx == c)
        in_cat = np.flatnonzero(products["category"] == c)
        if len(in_cat) == 0:
            continue
        p = proposal[in_cat] / proposal[in_cat].sum()
        candidates = in_cat[rng.choice(len(in_cat), size=(len(rows), N_CANDIDATES), p=p)]
        affinity = truth.affinity(user_idx[rows, None], candidates)
        launched_yet = products["launched"][candidates] <= at[rows, None]
        noisy = np.where(launched_yet, affinity + rng.gumbel(size=affinity.shape), -np.inf)
        best = noisy.argmax(axis=1)
        ok = np.isfinite(noisy[np.arange(len(rows)), best])
        chosen[rows[ok]] = candidates[ok, best[ok]]
        chosen_affinity[rows[ok]] = affinity[ok, best[ok]]
    return chosen, chosen_affinity


def _simulate_events(
    rng: np.random.Generator,
    preset: Preset,
    truth: GroundTruth,
    users: dict,
    products: dict,
    start: int,
    end: int,
) -> pd.DataFrame:
    n_users = preset.n_users
    categories = tuple(catalog.CATEGORIES)
    routine_next = np.array([categories.index(catalog.ROUTINE_NEXT[c]) for c in categories])
    cycle_days = np.array([catalog.CATEGORIES[c][1] for c in categories])

    first_day = np.maximum(users["signup"], start)
    active_months = (end - first_day) / (30 * DAY)
    activity = rng.lognormal(0, 0.8, size=n_users)
    n_visits = rng.poisson(preset.visits_per_user_month * activity * active_months)
    mean_gap = (end - first_day) / np.maximum(n_visits, 1)

    frames: list[dict[str, np.ndarray]] = []
    t = first_day.astype(np.int64).copy()
    prev_category = np.full(n_users, -1)
    for round_no in range(int(n_visits.max(initial=0))):
        alive = np.flatnonzero(n_visits > round_no)
        gap = rng.exponential(mean_gap[alive])
        t[alive] = t[alive] + gap.astype(np.int64)
        alive = alive[t[alive] < end]
        if len(alive) == 0:
            break
        # Half the time a customer continues their routine; otherwise they follow habit.
        free_choice = _gumbel_top_k(rng, truth.user_category_pref[alive], 1)[:, 0]
        follow = (prev_category[alive] >= 0) & (rng.random(len(alive)) < 0.5)
        category = np.where(follow, routine_next[np.maximum(prev_category[alive], 0)], free_choice)
        product, affinity = _choose_products(rng, truth, products, alive, category, t[alive])
        ok = product >= 0
        alive, category, product, affinity = alive[ok], category[ok], product[ok], affinity[ok]
        frames.append(_funnel(rng, alive, product, affinity, t[alive], products))
        bought = frames[-1]["bought_mask_per_visit"]
        prev_category[alive[bought]] = category[bought]

    visits = {
        k: np.concatenate([f[k] for f in frames]) for k in frames[0] if k != "bought_mask_per_visit"
    }
    events = pd.DataFrame({k: v for k, v in visits.items()})

    # Consumables come back: repurchase the same product after the category's cycle.
    purchases = events[events["event_type"] == "purchase"]
    wave = purchases[["user_id", "product_id", "occurred_at", "quantity", "unit_price"]]
    repeats = []
    for _ in range(8):
        cycle = cycle_days[products["category"][wave["product_id"].to_numpy()]]
        next_at = wave["occurred_at"].to_numpy() + (
            cycle * rng.uniform(0.75, 1.25, size=len(wave)) * DAY
        ).astype(np.int64)
        keep = (rng.random(len(wave)) < 0.45) & (next_at < end)
        wave = wave[keep].assign(occurred_at=next_at[keep])
        if wave.empty:
            break
        cart = wave.assign(event_type="add_to_cart", occurred_at=wave["occurred_at"] - 120)
        repeats += [cart, wave.assign(event_type="purchase")]
    events = pd.concat([events, *repeats], ignore_index=True)
    return events


def _places_within(counts: np.ndarray) -> np.ndarray:
    """0, 1, …, counts[i] − 1 for each i in turn: a row's place within its group when
    groups of `counts` rows follow one another (np.repeat's output)."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _funnel(
    rng: np.random.Generator,
    user: np.ndarray,
    product: np.ndarray,
    affinity: np.ndarray,
    at: np.ndarray,
    products: dict,
) -> dict[str, np.ndarray]:
    """One visit: views, maybe a search click, a like, the cart, a purchase and a review."""
    n = len(user)
    interest = 1 / (1 + np.exp(-(affinity - 1.0)))
    n_views = rng.integers(1, 4, size=n)
    searched = rng.random(n) < 0.3
    liked = rng.random(n) < 0.5 * interest
    carted = rng.random(n) < 0.25 + 0.55 * interest
    bought = carted & (rng.random(n) < 0.65)
    reviewed = bought & (rng.random(n) < 0.3)
    quantity = np.where(rng.random(n) < 0.1, 2, 1)
    discount = np.where(rng.random(n) < 0.15, 0.8, 1.0)
    unit_price = np.round(products["price"][product] * discount, 2)
    rating = np.clip(np.round(3.2 + 1.3 * (affinity - 1.0) + rng.normal(0, 0.7, n)), 1, 5)

    view_rows = np.repeat(np.arange(n), n_views)
    order_in_visit = _places_within(n_views)

    parts = [
        ("view", view_rows, order_in_visit * 40 + 60),
        ("search_click", np.flatnonzero(searched), np.zeros(searched.sum(), dtype=np.int64)),
        ("like", np.flatnonzero(liked), np.full(liked.sum(), 200)),
        ("add_to_cart", np.flatnonzero(carted), np.full(carted.sum(), 300)),
        ("purchase", np.flatnonzero(bought), np.full(bought.sum(), 420)),
        ("review", np.flatnonzero(reviewed), np.full(reviewed.sum(), 12 * DAY)),
    ]
    event_type = np.concatenate([np.full(len(rows), name, dtype=object) for name, rows, _ in parts])
    rows = np.concatenate([rows for _, rows, _ in parts])
    offset = np.concatenate([off for _, _, off in parts]).astype(np.int64)
    is_money = np.isin(event_type, ["add_to_cart", "purchase"])
    category_names = np.array(tuple(catalog.CATEGORIES))
    search_terms = np.array([catalog.SEARCH_TERMS_BY_CATEGORY[c] for c in category_names])
    return {
        "user_id": user[rows],
        "product_id": product[rows],
        "event_type": event_type,
        "occurred_at": at[rows] + offset,
        "quantity": np.where(is_money, quantity[rows], 0),
        "unit_price": np.where(is_money, unit_price[rows], np.nan),
        "rating": np.where(event_type == "review", rating[rows], np.nan),
        "search_query": np.where(
            event_type == "search_click",
            search_terms[products["category"][product[rows]]],
            None,
        ),
        "bought_mask_per_visit": bought,
    }


def generate_store(preset: str = "demo", seed: int = 42) -> Store:
    """Generate the whole store in memory. Same preset and seed, same store."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    size = PRESETS[preset]
    rng = np.random.default_rng(seed)
    end = int(STORE_END.timestamp())
    start = end - size.months * 30 * DAY

    users, user_hidden = _make_users(rng, size, start, end)
    products, product_hidden = _make_products(rng, size, start, end)
    truth = _make_truth(rng, size, user_hidden, product_hidden)
    raw = _simulate_events(rng, size, truth, user_hidden, product_hidden, start, end)

    raw = raw[raw["occurred_at"] < end].sort_values(
        ["occurred_at", "user_id", "product_id"], kind="stable"
    )
    events = pd.DataFrame(
        {
            "event_id": np.arange(1, len(raw) + 1, dtype=np.int64),
            "user_id": users["user_id"].to_numpy()[raw["user_id"].to_numpy()],
            "product_id": products["product_id"].to_numpy()[raw["product_id"].to_numpy()],
            "event_type": raw["event_type"].to_numpy(),
            "occurred_at": _timestamps(raw["occurred_at"].to_numpy()),
            "quantity": pd.array(
                np.where(raw["quantity"].to_numpy() > 0, raw["quantity"].to_numpy(), 0),
                dtype="Int64",
            ),
            "unit_price": raw["unit_price"].to_numpy(),
            "rating": pd.array(raw["rating"].to_numpy(), dtype="Float64").astype("Int64"),
            "search_query": raw["search_query"].to_numpy(),
        }
    )
    events.loc[events["quantity"] == 0, "quantity"] = pd.NA
    return Store(users, products, events, truth, preset, seed)
