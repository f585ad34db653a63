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

On the list (the top `pool × n` are re-ranked, keeping the model's order within each part):
- at most `max_per_brand` products of one brand, in the whole list (so in every prefix);
- at least `min_categories` categories in the first `shown` slots, the ones a page shows
  (default 10): each of the best categories' best product is moved into them, the rest of
  them filled by score, the rest of the list after them by score. A user whose pool holds
  too few categories is ranked again over every eligible product (`ranked_under_rules`),
  so a list falls short only when the user's eligible products span fewer categories.

Why in the shown slots: a rule met over 20 products but not in the 10 a customer sees is
not met for that customer (ten moisturisers in a row). `compliance` counts, per rule, the
lists that meet it and those that cannot; the publication's manifest records them.
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
from tasks.publishing.scoring import DEFAULT_CHUNK, top_n
from tasks.training.models import Scorer

WIDE_SCORES = 1 << 23  # users ranked over every product: at most this many (item, score) pairs


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
    shown: int = Field(
        10,
        ge=1,
        le=1000,
        description="the slots a page shows: min_categories holds in the first `shown` of "
        "every list (and so in the whole list)",
    )
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

    def category_target(self, n: int) -> int:
        """Categories the first shown slots must hold (0: no category rule)."""
        if self.categories is None:
            return 0
        return min(self.spec.min_categories or 0, self.spec.shown, n)

    def categories_in(self, items: np.ndarray, width: int | None = None) -> np.ndarray:
        """Per row, the distinct categories among its first `width` products (-1: none)."""
        top = items[:, :width] if width is not None else items
        if self.categories is None or top.shape[1] == 0:
            return np.zeros(len(items), dtype=np.int64)
        cats = np.sort(np.where(top >= 0, self.categories[np.maximum(top, 0)], -1), axis=1)
        starts = np.ones(cats.shape, dtype=bool)
        starts[:, 1:] = cats[:, 1:] != cats[:, :-1]
        return (starts & (cats >= 0)).sum(axis=1)

    def _brand_capped(self, flat: np.ndarray, row: np.ndarray) -> np.ndarray:
        keep = flat >= 0
        if self.brands is not None:
            brand = np.where(keep, self.brands[np.maximum(flat, 0)], -1)
            seen = pd.DataFrame({"row": row, "brand": brand}).groupby(["row", "brand"]).cumcount()
            keep &= seen.to_numpy() < self.spec.max_per_brand
        return keep

    def reshape(self, items: np.ndarray, scores: np.ndarray, n: int):
        """Brand cap and category minimum on ranked pools (rows × pool, best first) →
        (rows × n) lists: the first `shown` slots hold the best product of each of the
        best `min_categories` categories and the best of the rest, in the model's order;
        the slots after them the remaining products, in the model's order."""
        if not self.reshapes_lists:
            return items[:, :n], scores[:, :n]
        n_rows, width = items.shape
        row = np.repeat(np.arange(n_rows), width)
        flat = items.ravel()
        keep = self._brand_capped(flat, row)
        front_size = min(self.spec.shown, n)
        front = np.zeros(len(flat), dtype=bool)
        if self.categories is not None:
            kept = np.flatnonzero(keep)
            frame = pd.DataFrame({"row": row[kept], "category": self.categories[flat[kept]]})
            first = frame.groupby(["row", "category"]).cumcount().to_numpy() == 0
            order = pd.Series(first.astype(int)).groupby(frame["row"].to_numpy()).cumsum()
            front[kept] = first & (order.to_numpy() <= self.category_target(n))
        n_required = np.bincount(row[front], minlength=n_rows)
        others = keep & ~front
        rank_other = pd.Series(others.astype(int)).groupby(row).cumsum().to_numpy()
        front |= others & (rank_other <= (front_size - n_required)[row])
        chosen = keep
        # front first, then the rest, each in the pool's (the model's) order
        order = np.lexsort((np.arange(len(flat)), ~front, row))
        order = order[chosen[order]]
        slot = pd.Series(np.ones(len(order), int)).groupby(row[order]).cumsum().to_numpy() - 1
        pick = slot < n
        out_items = np.full((n_rows, n), -1, dtype=np.int64)
        out_scores = np.full((n_rows, n), -np.inf, dtype=np.float32)
        out_items[row[order][pick], slot[pick]] = flat[order][pick]
        out_scores[row[order][pick], slot[pick]] = scores.ravel()[order][pick]
        return out_items, out_scores

    def needs_wider_pool(self, pool_items: np.ndarray, n: int) -> np.ndarray:
        """Rows whose pool (after the brand cap) holds fewer categories than the shown
        slots need: their lists are ranked again over every eligible product."""
        target = self.category_target(n)
        if not target:
            return np.zeros(len(pool_items), dtype=bool)
        row = np.repeat(np.arange(len(pool_items)), pool_items.shape[1])
        keep = self._brand_capped(pool_items.ravel(), row).reshape(pool_items.shape)
        return self.categories_in(np.where(keep, pool_items, -1)) < target

    def compliance(self, rows: np.ndarray, items: np.ndarray) -> dict[str, int]:
        """Per configured list rule, the lists (users `rows`, lists `items`) that meet it,
        checked on the lists themselves: `<rule>_met` and `<rule>_unmet`."""
        counts: dict[str, int] = {}

        def record(rule: str, met: np.ndarray) -> None:
            counts[f"{rule}_met"] = int(met.sum())
            counts[f"{rule}_unmet"] = int((~met).sum())

        if self.categories is not None:
            wanted = min(self.spec.min_categories or 0, self.spec.shown)
            record("min_categories", self.categories_in(items, self.spec.shown) >= wanted)
        if self.brands is not None:
            brand = np.where(items >= 0, self.brands[np.maximum(items, 0)], -1)
            ordered = np.sort(brand, axis=1)
            starts = np.ones(ordered.shape, dtype=bool)
            starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
            index = np.arange(ordered.shape[1])[None, :]
            # each product's position within its brand's run of the sorted row
            run = index - np.maximum.accumulate(np.where(starts, index, 0), axis=1)
            record("max_per_brand", ((run < self.spec.max_per_brand) | (ordered < 0)).all(axis=1))
        if self.spec.contraindications:
            broken = np.zeros(len(rows), dtype=bool)
            for flagged_users, flagged_items in self.blocks:
                user_flagged = np.isin(rows, flagged_users)
                broken |= user_flagged & np.isin(items, flagged_items).any(axis=1)
            record("contraindications", ~broken)
        return counts


def ranked_under_rules(
    scorer: Scorer,
    rows: np.ndarray,
    n: int,
    rules: ListRules,
    exclude: sp.csr_matrix | None = None,
    allowed: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores) of the rules' lists for user `rows`: the top pool × n reshaped, the
    users whose pool holds too few categories with their pool `widened`."""
    n = min(n, scorer.n_items)
    pool = rules.pool_size(n, scorer.n_items)
    items, scores = top_n(scorer, rows, pool, exclude, allowed, chunk_size, rules.adjust)
    return rules_lists(scorer, rows, n, rules, items, scores, exclude, allowed)


def rules_lists(
    scorer: Scorer,
    rows: np.ndarray,
    n: int,
    rules: ListRules,
    items: np.ndarray,
    scores: np.ndarray,
    exclude: sp.csr_matrix | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The rules' lists from ranked pools (rows × pool, best first): reshaped, each pool
    short of categories first `widened`."""
    wide = rules.needs_wider_pool(items, n) if items.shape[1] < scorer.n_items else None
    if wide is not None and wide.any():
        items, scores = items.copy(), scores.copy()
        extra_items, extra_scores = widened(
            scorer, rows[wide], rules, items[wide], scores[wide], exclude, allowed
        )
        lists, list_scores = rules.reshape(items, scores, n)
        lists[wide], list_scores[wide] = rules.reshape(extra_items, extra_scores, n)
        return lists, list_scores
    return rules.reshape(items, scores, n)


def widened(
    scorer: Scorer,
    rows: np.ndarray,
    rules: ListRules,
    items: np.ndarray,
    scores: np.ndarray,
    exclude: sp.csr_matrix | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pools (rows × pool, best first) plus each category's best eligible product (not
    bought, allowed, the rules' score edits applied), best first again: enough for the
    shown slots to hold every category the user's eligible products span. One score row
    per user, a block of WIDE_SCORES scores at a time, one pass per category (a loop over
    categories, never over users or products)."""
    assert rules.categories is not None
    codes = rules.categories
    members = [np.flatnonzero(codes == c) for c in range(int(codes.max()) + 1)]
    depth = items.shape[1]  # per category its best `depth` (a brand cap may skip some)
    take = [min(depth, len(columns)) for columns in members]
    offsets = np.concatenate([[0], np.cumsum(take)])
    extra_items = np.full((len(rows), int(offsets[-1])), -1, dtype=np.int64)
    extra_scores = np.full((len(rows), int(offsets[-1])), -np.inf, dtype=np.float32)
    block = max(1, WIDE_SCORES // scorer.n_items)
    for begin in range(0, len(rows), block):
        part = slice(begin, begin + block)
        these = rows[part]
        block_scores = np.array(scorer.scores(these), dtype=np.float32)
        block_scores[np.isnan(block_scores)] = -np.inf
        if allowed is not None:
            block_scores[:, ~allowed] = -np.inf
        rules.adjust(these, block_scores)
        if exclude is not None:
            bought = exclude[these].tocoo()
            block_scores[bought.row, bought.col] = -np.inf
        for code, columns in enumerate(members):
            if not take[code]:
                continue
            sub = block_scores[:, columns]
            best = np.argpartition(-sub, take[code] - 1, axis=1)[:, : take[code]]
            where = slice(offsets[code], offsets[code + 1])
            extra_items[part, where] = columns[best]
            extra_scores[part, where] = np.take_along_axis(sub, best, axis=1)
    in_pool = (extra_items[:, :, None] == items[:, None, :]).any(axis=2)
    extra_items[~np.isfinite(extra_scores) | in_pool] = -1  # a pool product keeps its place
    extra_scores[extra_items < 0] = -np.inf
    both_items = np.concatenate([items, extra_items], axis=1)
    both_scores = np.concatenate([scores, extra_scores], axis=1)
    keys = np.argsort(-both_scores, axis=1, kind="stable")  # ties: the pool's order first
    return np.take_along_axis(both_items, keys, axis=1), np.take_along_axis(
        both_scores, keys, axis=1
    )
