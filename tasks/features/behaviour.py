"""Engineered features from behaviour: what a user's history and a product's sales say,
computed from ONE stage's events only (tuning, evaluation or final), so nothing from the
moment a model is judged on leaks into what it learns from.

Users: category (and every other categorical product feature, e.g. brand) affinity shares,
the category of their latest purchase (routines: cleanser → toner), spend band, purchase
frequency, recency, and the typical time between their purchases.
Products: popularity band, average rating, age since launch (new launches), and the
repurchase cycle of their category (the median days between a customer's purchases of the
same product).
Every feature is a long table (row, feature, weight), the form tasks/features/build.py stacks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.dataset import CategoricalFeature, DatasetSpec
from tasks.features.interactions import index_of

DAY = pd.Timedelta(days=1)


def _bands(values: pd.Series, edges: list[float], labels: list[str]) -> pd.Series:
    return pd.cut(values, bins=[-np.inf, *edges, np.inf], labels=labels, right=False).astype(str)


def _long(rows: np.ndarray, names: pd.Series | np.ndarray, weights=None) -> pd.DataFrame:
    weights = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    return pd.DataFrame(
        {"row": rows, "feature": np.asarray(names, dtype=object), "weight": weights}
    )


def user_behaviour(
    events: pd.DataFrame,
    user_ids: pd.Series,
    products: pd.DataFrame,
    dataset: DatasetSpec,
) -> pd.DataFrame:
    """(row, feature, weight) for users, from their transactions in `events`."""
    buys = events[events["event_type"].isin(dataset.events.transaction_types)]
    buys = buys.assign(row=index_of(buys["user_id"], user_ids))
    buys = buys[buys["row"] >= 0]
    if buys.empty:
        return _long(np.array([], dtype=np.int64), np.array([], dtype=object))
    parts = []
    catalogue = products.set_index("product_id")
    columns = [c for c, s in dataset.product_features.items() if isinstance(s, CategoricalFeature)]
    for column in columns:
        values = buys["product_id"].map(catalogue[column]).astype("string")
        shares = (
            pd.DataFrame({"row": buys["row"].to_numpy(), "value": values.to_numpy()})
            .dropna()
            .value_counts(normalize=False)
            .rename("n")
            .reset_index()
        )
        shares["share"] = shares["n"] / shares.groupby("row")["n"].transform("sum")
        parts.append(
            _long(
                shares["row"].to_numpy(),
                "bought_" + column + "=" + shares["value"],
                shares["share"],
            )
        )
    latest = buys.sort_values(["row", "occurred_at"], kind="stable").drop_duplicates(
        "row", keep="last"
    )
    category = dataset.category_column()
    if category:
        last = latest["product_id"].map(catalogue[category]).astype("string")
        ok = last.notna().to_numpy()
        parts.append(
            _long(latest["row"].to_numpy()[ok], ("last_" + category + "=" + last[ok]).to_numpy())
        )

    per_user = buys.groupby("row")
    count = per_user.size()
    parts.append(
        _long(
            count.index.to_numpy(),
            "purchases=" + _bands(count, [2, 4, 8, 16], ["1", "2-3", "4-7", "8-15", "16+"]),
        )
    )
    end = events["occurred_at"].max()
    since = (end - per_user["occurred_at"].max()) / DAY
    parts.append(
        _long(
            since.index.to_numpy(),
            "last_purchase_days="
            + _bands(since, [7, 30, 90, 180], ["<7", "7-29", "30-89", "90-179", "180+"]),
        )
    )
    gaps = buys.sort_values(["row", "occurred_at"], kind="stable")
    gap_days = gaps.groupby("row")["occurred_at"].diff() / DAY
    typical = gap_days.groupby(gaps["row"]).median().dropna()
    parts.append(
        _long(
            typical.index.to_numpy(),
            "purchase_gap_days="
            + _bands(typical, [7, 30, 60, 120], ["<7", "7-29", "30-59", "60-119", "120+"]),
        )
    )
    if "unit_price" in buys and buys["unit_price"].notna().any():
        spend = per_user["unit_price"].mean().dropna()
        if spend.nunique() > 1:
            band = pd.qcut(spend, q=min(5, spend.nunique()), labels=False, duplicates="drop")
            parts.append(
                _long(spend.index.to_numpy(), "spend_band=" + band.astype(int).astype(str))
            )
    return pd.concat(parts, ignore_index=True)


def product_behaviour(
    events: pd.DataFrame, products: pd.DataFrame, dataset: DatasetSpec
) -> pd.DataFrame:
    """(row, feature, weight) for products: popularity band, average rating, age."""
    product_ids = products["product_id"]
    parts = []
    buys = events[events["event_type"].isin(dataset.events.transaction_types)]
    positions = index_of(buys["product_id"], product_ids)
    sold = np.bincount(positions[positions >= 0], minlength=len(products))
    if sold.any():
        ranks = pd.Series(sold).rank(pct=True, method="average")
        band = np.where(
            sold == 0, "unsold", _bands(ranks, [0.5, 0.8, 0.95], ["low", "mid", "high", "top5%"])
        )
        parts.append(_long(np.arange(len(products)), np.char.add("popularity=", band.astype(str))))
    category = dataset.category_column()
    repurchases = buys.sort_values(["user_id", "product_id", "occurred_at"], kind="stable")
    gap = repurchases.groupby(["user_id", "product_id"])["occurred_at"].diff() / DAY
    if category and gap.notna().any():
        # the repurchase cycle of the product's category (consumables come back)
        of_category = repurchases["product_id"].map(products.set_index("product_id")[category])
        cycle = gap.groupby(of_category).median().dropna()
        band = _bands(cycle, [30, 60, 90], ["<30d", "30-59d", "60-89d", "90d+"])
        per_product = products[category].map(band)
        known = per_product.notna().to_numpy()
        parts.append(
            _long(np.flatnonzero(known), ("category_cycle=" + per_product[known]).to_numpy())
        )
    if "rating" in events and events["rating"].notna().any():
        rated = events[events["rating"].notna()]
        mean = rated.groupby("product_id")["rating"].mean()
        rows = index_of(pd.Series(mean.index), product_ids)
        ok = rows >= 0
        parts.append(
            _long(rows[ok], "avg_rating=" + mean.round().astype(int).astype(str).to_numpy()[ok])
        )
    launch = next(iter(dataset.products.timestamp_columns), None)
    if launch and launch in products and products[launch].notna().any():
        end = events["occurred_at"].max()
        age = (end - pd.to_datetime(products[launch], utc=True)) / DAY
        known = age.notna().to_numpy()
        band = _bands(
            age[known], [0, 30, 90, 365], ["not yet", "new <30d", "30-89d", "90-364d", "1y+"]
        )
        parts.append(_long(np.flatnonzero(known), ("age=" + band).to_numpy()))
    if not parts:
        return _long(np.array([], dtype=np.int64), np.array([], dtype=object))
    return pd.concat(parts, ignore_index=True)
