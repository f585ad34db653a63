"""How the published recommendations do in the shop: measured on the events since.

A user counts once they visit (any event in the window). Per variant of the published
lists (`model`, and `control` when an A/B share is set):
- click_through: share of visitors who viewed or clicked one of their recommended products;
- conversion: share of visitors who bought one of them;
  where the events say where they happened (a `placement` column, as shops log it), both
  count only what was opened from the recommendations (`placement = "recommendations"`),
  so a best seller bought from the search page is not credited to the list that shows it;
- hit_rate: share of visitors who bought anything whose purchases include one of them;
- revenue_per_user: everything visitors bought (quantity × unit price) per visitor;
- satisfaction: mean rating users gave to recommended products they bought;
- catalog_coverage: share of the catalogue that appears in the variant's lists.
Confidence intervals are 95%: Wilson for shares, normal for means, and for the model's
uplift over control the normal interval of the difference (unpooled, Welch for means).
With each uplift comes its power: the minimum detectable effect (the difference these
counts would detect 80% of the time) and the visitors, in the same split, needed to detect
the observed difference so; a test that has not reached them is undecided, not negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

Z = float(stats.norm.ppf(0.975))
POWER_Z = float(stats.norm.ppf(0.8))  # the minimum detectable effect is at 80% power
SHARES = ("click_through", "conversion", "hit_rate")


class Estimate(BaseModel):
    value: float
    low: float
    high: float
    n: int


class VariantPerformance(BaseModel):
    variant: str
    users: int  # users whose list is in this variant
    visitors: int
    buyers: int
    click_through: Estimate
    conversion: Estimate
    hit_rate: Estimate
    revenue_per_user: Estimate
    satisfaction: Estimate | None
    catalog_coverage: float


class Uplift(BaseModel):
    metric: str
    model: float
    control: float
    difference: float
    low: float
    high: float
    relative: float | None
    mde: float  # the smallest difference these visitor counts detect (95%, 80% power)
    visitors_needed: int | None  # visitors (same split) to detect this difference so

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def wilson(successes: int, n: int) -> Estimate:
    if n == 0:
        return Estimate(value=0.0, low=0.0, high=0.0, n=0)
    p = successes / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return Estimate(value=p, low=max(0.0, centre - half), high=min(1.0, centre + half), n=n)


def mean_estimate(values: np.ndarray) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(value=0.0, low=0.0, high=0.0, n=0)
    mean = float(np.mean(values))
    half = Z * float(np.std(values, ddof=1)) / np.sqrt(n) if n > 1 else 0.0
    return Estimate(value=mean, low=mean - half, high=mean + half, n=n)


PLACEMENT_COLUMN, FROM_RECOMMENDATIONS = "placement", "recommendations"


def attributed(events: pd.DataFrame) -> pd.DataFrame:
    """The events credited to the recommendations: those opened from them when the shop
    logs a placement, else every event on a recommended product."""
    if PLACEMENT_COLUMN in events and events[PLACEMENT_COLUMN].notna().any():
        return events[events[PLACEMENT_COLUMN] == FROM_RECOMMENDATIONS]
    return events


def _per_visitor(
    lists: pd.DataFrame, events: pd.DataFrame, transaction_types: list[str]
) -> pd.DataFrame:
    """One row per visitor with a list: variant, engaged, converted, hit, bought, revenue."""
    visitors = pd.Index(events["user_id"].unique())
    listed = lists[lists["user_id"].isin(visitors)]
    users = listed.drop_duplicates("user_id").set_index("user_id")[["variant"]]
    pairs = listed[["user_id", "product_id"]].drop_duplicates()
    on_list = attributed(events).merge(pairs, how="inner")
    any_on_list = events.merge(pairs, how="inner")
    bought = events["event_type"].isin(transaction_types)
    purchases = events[bought]
    revenue = purchases["quantity"].fillna(1).astype(float) * purchases["unit_price"].fillna(0)
    users["engaged"] = users.index.isin(on_list["user_id"])
    users["converted"] = users.index.isin(
        on_list.loc[on_list["event_type"].isin(transaction_types), "user_id"]
    )
    users["hit"] = users.index.isin(
        any_on_list.loc[any_on_list["event_type"].isin(transaction_types), "user_id"]
    )
    users["bought"] = users.index.isin(purchases["user_id"])
    users["revenue"] = revenue.groupby(purchases["user_id"]).sum().reindex(users.index).fillna(0.0)
    return users


def variant_performance(
    lists: pd.DataFrame,
    events: pd.DataFrame,
    transaction_types: list[str],
    n_products: int,
    shown: int = 10,
) -> list[VariantPerformance]:
    """lists: user_id, rank, product_id[, variant]; events: the window's events."""
    lists = lists[lists["rank"] <= shown]
    if "variant" not in lists:
        lists = lists.assign(variant="model")
    visitors = _per_visitor(lists, events, transaction_types)
    on_list = events.merge(lists[["user_id", "product_id", "variant"]], how="inner")
    bought_pairs = on_list.loc[
        on_list["event_type"].isin(transaction_types), ["user_id", "product_id"]
    ].drop_duplicates()
    reviews = on_list[(on_list["event_type"] == "review") & on_list["rating"].notna()]
    reviews = reviews.merge(bought_pairs, how="inner")
    result = []
    for variant, users in visitors.groupby("variant"):
        buyers = users[users["bought"]]
        ratings = reviews.loc[reviews["variant"] == variant, "rating"].to_numpy(dtype=float)
        variant_lists = lists[lists["variant"] == variant]
        result.append(
            VariantPerformance(
                variant=str(variant),
                users=int(variant_lists["user_id"].nunique()),
                visitors=len(users),
                buyers=len(buyers),
                click_through=wilson(int(users["engaged"].sum()), len(users)),
                conversion=wilson(int(users["converted"].sum()), len(users)),
                hit_rate=wilson(int(buyers["hit"].sum()), len(buyers)),
                revenue_per_user=mean_estimate(users["revenue"].to_numpy()),
                satisfaction=mean_estimate(ratings) if len(ratings) else None,
                catalog_coverage=round(variant_lists["product_id"].nunique() / n_products, 4),
            )
        )
    return result


def uplift(model: VariantPerformance, control: VariantPerformance) -> list[Uplift]:
    """Model minus control per metric, with a 95% interval of the difference."""
    rows = []
    for metric in (*SHARES, "revenue_per_user", "satisfaction"):
        a, b = getattr(model, metric), getattr(control, metric)
        if a is None or b is None or a.n < 2 or b.n < 2:
            continue
        if metric in SHARES:
            se = np.sqrt(a.value * (1 - a.value) / a.n + b.value * (1 - b.value) / b.n)
        else:  # the intervals' half-widths are Z · sd / sqrt(n)
            se = np.sqrt(((a.high - a.low) / (2 * Z)) ** 2 + ((b.high - b.low) / (2 * Z)) ** 2)
        difference = a.value - b.value
        mde = (Z + POWER_Z) * se
        # se shrinks with the square root of the visitors: scale them to make mde = |difference|
        scale = (mde / abs(difference)) ** 2 if difference else None
        rows.append(
            Uplift(
                metric=metric,
                model=a.value,
                control=b.value,
                difference=difference,
                low=difference - Z * se,
                high=difference + Z * se,
                relative=difference / b.value if b.value else None,
                mde=float(mde),
                visitors_needed=int(np.ceil(scale * (a.n + b.n))) if scale else None,
            )
        )
    return rows
