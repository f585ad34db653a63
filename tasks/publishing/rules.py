"""What may be recommended and how a list is shaped: the shop's publishing rules.

Configured in dataset.toml under `[publishing]`; every rule is off unless configured.

Inside the selection (the chunk's scores are edited before the exact top-N):
- products bought within a window are excluded (`exclude_bought_days`, none = for ever);
  products of a consumable category come back once its repurchase cycle has passed
  (`repurchase_cycle_days`);
- out of stock (`[products] in_stock_column`) and discontinued (`discontinued_column`)
  products never appear;
- new launches (launched within `launch_days`) get `launch_boost` × the user's score range;
- contraindications: products with a flagged value never go to users with a flagged value
  (e.g. no retinol for users who flag sensitive skin).

On the list (the top `pool × n` are re-ranked, keeping the model's order):
- at most `max_per_brand` products of one brand;
- at least `min_categories` categories (each category's best product is kept, the rest of
  the list is filled by score), as far as the pool holds that many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, model_validator

from tasks.config_schema import StrictModel
from tasks.features.interactions import index_of, instants


class Contraindication(StrictModel):
    """Never recommend products whose `product_column` holds one of `product_values` to
    users whose `user_column` holds one of `user_values` (multi-value cells: any value)."""

    user_column: str
    user_values: list[str] = Field(min_length=1)
    product_column: str
    product_values: list[str] = Field(min_length=1)
    why: str = Field("", description="shown in reports, e.g. 'retinol irritates sensitive skin'")


class PublishingSpec(StrictModel):
    """`[publishing]` in dataset.toml."""

    name_column: str | None = Field("name", description="product column the reasons cite")
    discontinued_column: str | None = Field(
        None, description="boolean product column; true = never recommended"
    )
    exclude_bought_days: float | None = Field(
        None,
        gt=0,
        description="a bought product is not recommended for this many days; "
        "empty = never again (unless its category has a repurchase cycle)",
    )
    repurchase_cycle_days: dict[str, float] = Field(
        default_factory=dict,
        description="category -> days after which a bought product of it may come back "
        "(consumables: cleanser = 56)",
    )
    brand_column: str | None = Field("brand", description="product column that is the brand")
    max_per_brand: int | None = Field(None, ge=1, description="at most this many per brand")
    min_categories: int | None = Field(None, ge=1, description="at least this many categories")
    launch_column: str | None = Field(None, description="product timestamp of its launch")
    launch_days: float = Field(30.0, gt=0, description="a launch is new for this many days")
    launch_boost: float | None = Field(
        None, gt=0, le=1, description="added to a new launch's score, × the user's score range"
    )
    contraindications: list[Contraindication] = Field(default_factory=list)
    pool: int = Field(5, ge=1, le=50, description="list rules re-rank the top pool × n")
    phrases: dict[str, str] = Field(
        default_factory=dict,
        description="user column -> how a reason names its value, e.g. skin_type = "
        "'{value} skin'; default '{column} {value}'",
    )

    @model_validator(mode="after")
    def _launch_needs_column(self) -> PublishingSpec:
        if self.launch_boost and not self.launch_column:
            raise ValueError("launch_boost needs launch_column (the products' launch timestamp)")
        return self

    def active_rules(self) -> list[str]:
        """Names of the configured rules that change lists (for the cost report)."""
        names = []
        if self.max_per_brand:
            names.append("max_per_brand")
        if self.min_categories:
            names.append("min_categories")
        if self.launch_boost:
            names.append("launch_boost")
        if self.contraindications:
            names.append("contraindications")
        return names

    def only(self, rule: str | None) -> PublishingSpec:
        """A copy with only `rule` of the list-changing rules on (None: none of them)."""
        off = {"max_per_brand": None, "min_categories": None, "launch_boost": None}
        off["contraindications"] = []
        if rule:
            off.pop(rule)
        return self.model_copy(update=off)


def _holds(values: pd.Series, wanted: list[str]) -> np.ndarray:
    """Rows whose cell is one of `wanted`; multi-value cells ('a|b') match on any value."""
    text = values.astype("string").str.lower()
    wanted = [w.lower() for w in wanted]
    parts = text.str.split("|").explode().str.strip()
    hit = parts.isin(wanted).groupby(level=0).any()
    return hit.reindex(values.index, fill_value=False).to_numpy(dtype=bool)


def exclusion_matrix(
    purchases: pd.DataFrame,
    user_ids: pd.Series,
    product_ids: pd.Series,
    categories: pd.Series | None,
    spec: PublishingSpec,
    now: datetime,
) -> sp.csr_matrix:
    """users × products: True where a bought product is still inside its window.

    purchases: user_id, product_id, occurred_at of the transaction events."""
    user_row = index_of(purchases["user_id"], user_ids)
    product_col = index_of(purchases["product_id"], product_ids)
    known = (user_row >= 0) & (product_col >= 0)
    last = (
        pd.DataFrame(
            {
                "u": user_row[known],
                "p": product_col[known],
                "at": instants(purchases["occurred_at"])[known],
            }
        )
        .groupby(["u", "p"], sort=False)["at"]
        .max()
        .reset_index()
    )
    age_days = (pd.Timestamp(now) - pd.to_datetime(last["at"], utc=True)).dt.total_seconds() / 86400
    days = spec.exclude_bought_days
    window = np.full(len(product_ids), np.inf if days is None else days, dtype=float)
    if spec.repurchase_cycle_days and categories is not None:
        cycle = (
            categories.astype("string")
            .str.lower()
            .map({k.lower(): v for k, v in spec.repurchase_cycle_days.items()})
        )
        has_cycle = cycle.notna().to_numpy()
        window[has_cycle] = cycle[has_cycle].astype(float).to_numpy()
    inside = age_days.to_numpy() < window[last["p"].to_numpy()]
    return sp.csr_matrix(
        (np.ones(int(inside.sum()), dtype=bool), (last["u"][inside], last["p"][inside])),
        shape=(len(user_ids), len(product_ids)),
    )


def blocked_products(products: pd.DataFrame, in_stock_column: str | None, spec: PublishingSpec):
    """Boolean mask of products that may be recommended at all (in stock, not discontinued)."""
    allowed = np.ones(len(products), dtype=bool)
    if in_stock_column and in_stock_column in products:
        allowed &= products[in_stock_column].fillna(False).astype(bool).to_numpy()
    if spec.discontinued_column and spec.discontinued_column in products:
        allowed &= ~products[spec.discontinued_column].fillna(False).astype(bool).to_numpy()
    return allowed


@dataclass
class ListRules:
    """The rules compiled to arrays over the users and products tables' rows."""

    spec: PublishingSpec
    brands: np.ndarray | None = None  # product → brand code
    categories: np.ndarray | None = None  # product → category code
    new_launch: np.ndarray | None = None  # product → bool
    blocks: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (users, items)

    @classmethod
    def compile(
        cls,
        spec: PublishingSpec,
        users: pd.DataFrame,
        products: pd.DataFrame,
        category_column: str | None,
        now: datetime,
    ) -> ListRules:
        def codes(column: str | None) -> np.ndarray | None:
            if not column or column not in products:
                return None
            return pd.factorize(products[column].astype("string").fillna("?"))[0]

        rules = cls(spec)
        if spec.max_per_brand:
            rules.brands = codes(spec.brand_column)
            if rules.brands is None:
                raise ValueError(
                    f"dataset.toml [publishing] max_per_brand: products have no column "
                    f"{spec.brand_column!r} (brand_column)"
                )
        if spec.min_categories:
            rules.categories = codes(category_column)
            if rules.categories is None:
                raise ValueError(
                    "dataset.toml [publishing] min_categories: the products have no category "
                    "column ([models] category_column)"
                )
        if spec.launch_boost:
            launched = pd.to_datetime(products[spec.launch_column], utc=True)
            age = (pd.Timestamp(now) - launched).dt.total_seconds() / 86400
            rules.new_launch = ((age >= 0) & (age <= spec.launch_days)).to_numpy(dtype=bool)
        for rule in spec.contraindications:
            for table, column in (("users", rule.user_column), ("products", rule.product_column)):
                frame = users if table == "users" else products
                if column not in frame:
                    raise ValueError(
                        f"dataset.toml [publishing] contraindication: {table} have no column "
                        f"{column!r}"
                    )
            flagged_users = np.flatnonzero(_holds(users[rule.user_column], rule.user_values))
            flagged_items = np.flatnonzero(
                _holds(products[rule.product_column], rule.product_values)
            )
            if flagged_users.size and flagged_items.size:
                rules.blocks.append((flagged_users, flagged_items))
        return rules

    @property
    def reshapes_lists(self) -> bool:
        return self.brands is not None or self.categories is not None

    def pool_size(self, n: int, n_items: int) -> int:
        return min(n * self.spec.pool, n_items) if self.reshapes_lists else n

    def adjust(self, rows: np.ndarray, scores: np.ndarray) -> None:
        """Launch boost and contraindications on one chunk of scores (in place)."""
        if self.new_launch is not None and self.new_launch.any():
            finite = np.where(np.isfinite(scores), scores, np.nan)
            span = np.nan_to_num(np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1))
            boost = (np.float32(self.spec.launch_boost) * span).astype(np.float32)
            scores[:, self.new_launch] += boost[:, None]
        for flagged_users, flagged_items in self.blocks:
            hit = np.flatnonzero(np.isin(rows, flagged_users))
            if hit.size:
                scores[np.ix_(hit, flagged_items)] = -np.inf

    def reshape(self, items: np.ndarray, scores: np.ndarray, n: int):
        """Brand cap and category minimum on ranked pools (rows × pool, best first) →
        (rows × n) lists, still in the model's order."""
        if not self.reshapes_lists:
            return items[:, :n], scores[:, :n]
        n_rows, width = items.shape
        row = np.repeat(np.arange(n_rows), width)
        flat = items.ravel()
        keep = flat >= 0
        if self.brands is not None:
            brand = np.where(keep, self.brands[np.maximum(flat, 0)], -1)
            seen = pd.DataFrame({"row": row, "brand": brand}).groupby(["row", "brand"]).cumcount()
            keep &= seen.to_numpy() < self.spec.max_per_brand
        chosen = keep.copy()
        if self.categories is not None:
            kept = np.flatnonzero(keep)
            category = self.categories[flat[kept]]
            frame = pd.DataFrame({"row": row[kept], "category": category})
            first = frame.groupby(["row", "category"]).cumcount().to_numpy() == 0
            order = pd.Series(first.astype(int)).groupby(frame["row"].to_numpy()).cumsum()
            required = np.zeros(len(flat), dtype=bool)
            required[kept] = first & (order.to_numpy() <= min(self.spec.min_categories, n))
            n_required = np.bincount(row[required], minlength=n_rows)
            others = keep & ~required
            rank_other = pd.Series(others.astype(int)).groupby(row).cumsum().to_numpy()
            chosen = required | (others & (rank_other <= (n - n_required)[row]))
        else:
            rank = pd.Series(chosen.astype(int)).groupby(row).cumsum().to_numpy()
            chosen &= rank <= n
        slot = pd.Series(chosen.astype(int)).groupby(row).cumsum().to_numpy() - 1
        out_items = np.full((n_rows, n), -1, dtype=np.int64)
        out_scores = np.full((n_rows, n), -np.inf, dtype=np.float32)
        pick = chosen & (slot < n)
        out_items[row[pick], slot[pick]] = flat[pick]
        out_scores[row[pick], slot[pick]] = scores.ravel()[pick]
        return out_items, out_scores
