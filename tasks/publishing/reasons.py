"""Why a product is in a user's list, in plain words the shop's website can show.

The reason follows the blend component that contributed most to the product's score, and
only ever cites what the user and the product really have. Each model family declares which
of the sources below speaks for it (`Family.explain`, tasks/training/models/):
- transitions: "often bought after the Gentle Foam Cleanser you bought" (the product of the
  user's purchases that leads to this one most strongly);
- item neighbours: "similar to the ... you bought" / "you showed interest in";
- category transitions: "a toner, the usual next step after the cleanser you bought",
  followed by the next source that speaks about the product itself ("...; matches your
  dry skin: contains ...");
- LightFM / content: "matches your dry skin: contains ceramides, hyaluronic acid" (the
  product's values with the highest lift among buyers who share the user's attribute);
- segment popularity: "popular with dry skin in the north region"; popularity: "a best
  seller right now".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.features.interactions import bought_matrix, index_of, instants
from tasks.training.models import Blend, FactorModel, families

BEST_SELLER = "a best seller right now"
FROM_HISTORY = "in line with what you bought and viewed"
MIN_LIFT = 1.1
MIN_SUPPORT = 5
# Contributions (weight × a 0..1 share, weights up to 5) are compared to this many
# decimals: far coarser than float32 noise (~1e-6 at 5), far finer than any real gap.
CONTRIBUTION_DECIMALS = 4


def phrase_of(column: str, values: pd.Series, phrases: dict[str, str]) -> pd.Series:
    """'{value} skin' for each value (missing stays missing)."""
    template = phrases.get(column, column.replace("_", " ") + " {value}")
    head, _, tail = template.partition("{value}")
    text = values.astype("string")
    return head + text + tail


@dataclass
class ReasonContext:
    names: np.ndarray  # product → display name
    categories: np.ndarray | None  # product → category text
    bought: sp.csr_matrix  # users × products, bought at least once
    last_bought: np.ndarray  # user → product bought last (-1: none)
    attribute_phrase: np.ndarray  # user → "dry skin" (None: no attribute)
    attribute_code: np.ndarray  # user → code of the attribute value (-1: none)
    feature_lift: np.ndarray  # attribute code × product feature value
    product_features: sp.csr_matrix  # products × feature values (0/1)
    feature_values: np.ndarray  # feature value names ("ceramides")
    segment_phrase: np.ndarray  # user → "dry skin in the north region" (None: no segment)

    @classmethod
    def build(
        cls,
        users: pd.DataFrame,
        products: pd.DataFrame,
        purchases: pd.DataFrame,
        name_column: str | None,
        category_column: str | None,
        attribute_column: str | None,
        segment_columns: list[str],
        content_columns: dict[str, str],
        phrases: dict[str, str],
    ) -> ReasonContext:
        """purchases: user_id, product_id, event_type, occurred_at of transactions;
        content_columns: the multi-value product columns and their separators."""
        bought, last = _purchases(users, products, purchases)
        code, n_values, attribute_phrase = _attribute(users, attribute_column, phrases)
        product_features, feature_values = _product_features(products, content_columns)
        return cls(
            names=_display_names(products, name_column),
            categories=(
                products[category_column].astype("string").to_numpy(dtype=object)
                if category_column and category_column in products
                else None
            ),
            bought=bought,
            last_bought=last,
            attribute_phrase=attribute_phrase,
            attribute_code=np.asarray(code, dtype=np.int64),
            feature_lift=_feature_lift(code, n_values, bought, product_features),
            product_features=product_features.tocsr(),
            feature_values=np.asarray(feature_values, dtype=object),
            segment_phrase=_segment_phrase(users, segment_columns, phrases),
        )

    # -- one source of reasons each; all take pair arrays (user rows, product columns) --

    def _strongest_predecessor(self, model: FactorModel, users: np.ndarray, items: np.ndarray):
        """For each pair, the user's product that leads to the item most (−1: none; ties to
        the lower product index). Only the user's own products are looked up in the item's
        links (a row of a transition matrix can hold thousands of them)."""
        pair, source, strength = model.pair_terms(users, items)
        keep = strength > 0
        pair, source, strength = pair[keep], source[keep], strength[keep]
        order = np.lexsort((source, -strength, pair))  # per pair: strongest, then lowest
        first = order[np.r_[True, pair[order][1:] != pair[order][:-1]]] if len(order) else order
        best = np.full(len(users), -1, dtype=np.int64)
        best[pair[first]] = source[first]
        return best

    def after_bought(self, model: FactorModel, users: np.ndarray, items: np.ndarray):
        before = self._strongest_predecessor(model, users, items)
        ok = (before >= 0) & np.asarray(self.bought[users, np.maximum(before, 0)]).ravel().astype(
            bool
        )
        text = (
            "often bought after the "
            + pd.Series(self.names[np.maximum(before, 0)])
            + (" you bought")
        )
        return np.where(ok, text.to_numpy(dtype=object), None)

    def similar_to(self, model: FactorModel, users: np.ndarray, items: np.ndarray):
        source = self._strongest_predecessor(model, users, items)
        was_bought = np.asarray(self.bought[users, np.maximum(source, 0)]).ravel().astype(bool)
        verb = np.where(was_bought, " you bought", " you showed interest in")
        text = "similar to the " + pd.Series(self.names[np.maximum(source, 0)]) + verb
        return np.where(source >= 0, text.to_numpy(dtype=object), None)

    def next_step(self, users: np.ndarray, items: np.ndarray):
        last = self.last_bought[users]
        if self.categories is None:
            return np.full(len(users), None, dtype=object)
        ok = (last >= 0) & (self.categories[np.maximum(last, 0)] != self.categories[items])
        category = pd.Series(self.categories[items]).astype(str)
        article = np.where(category.str[0].str.lower().isin(list("aeiou")), "an ", "a ")
        text = (
            article
            + category
            + ", the usual next step after the "
            + pd.Series(self.categories[np.maximum(last, 0)]).astype(str)
            + " you bought"
        )
        return np.where(ok, text.to_numpy(dtype=object), None)

    def matches(self, users: np.ndarray, items: np.ndarray):
        """ "matches your dry skin: contains ceramides, niacinamide": the product's two
        features with the highest lift for the user's attribute value (at least MIN_LIFT).

        Sparse on purpose: only pairs whose user has the attribute, and only the features
        each product has (a dense pairs × feature values array took 21 GB on Amazon Beauty's
        3,000 attribute values); ties go to the lower feature column."""
        out = np.full(len(users), None, dtype=object)
        code = self.attribute_code[users]
        ok = np.flatnonzero(code >= 0)
        if not self.feature_values.size or not ok.size:
            return out
        present = self.product_features[items[ok]].tocoo()  # 0/1: the lift itself counts
        lift = self.feature_lift[code[ok][present.row], present.col]
        order = np.lexsort((present.col, -lift, present.row))  # per pair: best lift first
        row, column, lift = present.row[order], present.col[order], lift[order]
        if not len(row):
            return out
        start = np.r_[0, np.flatnonzero(np.diff(row)) + 1]
        first_lift, second_lift = np.zeros(len(ok)), np.zeros(len(ok))
        first, second = np.zeros(len(ok), np.int64), np.zeros(len(ok), np.int64)
        first_lift[row[start]], first[row[start]] = lift[start], column[start]
        runner_up = start[start + 1 < len(row)]
        runner_up = runner_up[row[runner_up + 1] == row[runner_up]]
        second_lift[row[runner_up]] = lift[runner_up + 1]
        second[row[runner_up]] = column[runner_up + 1]
        values = pd.Series(self.feature_values[first]).astype(str)
        also = pd.Series(self.feature_values[second]).astype(str)
        values = values.where(~(second_lift >= MIN_LIFT), values + ", " + also)
        phrase = pd.Series(self.attribute_phrase[users[ok]]).astype(str)
        text = ("matches your " + phrase + ": contains " + values).to_numpy(dtype=object)
        out[ok] = np.where(first_lift >= MIN_LIFT, text, None)
        return out

    def popular_with(self, users: np.ndarray):
        phrase = self.segment_phrase[users]
        text = "popular with " + pd.Series(phrase).astype(str)
        return np.where(pd.isna(phrase), None, text.to_numpy(dtype=object))

    def best_seller(self, users: np.ndarray):
        return np.full(len(users), BEST_SELLER, dtype=object)


def _purchases(
    users: pd.DataFrame, products: pd.DataFrame, purchases: pd.DataFrame
) -> tuple[sp.csr_matrix, np.ndarray]:
    """(users × products bought at least once, each user's last product bought: -1 none)."""
    u = index_of(purchases["user_id"], users["user_id"])
    p = index_of(purchases["product_id"], products["product_id"])
    ok = (u >= 0) & (p >= 0)
    u, p = u[ok], p[ok]
    types = list(purchases["event_type"].unique()) if "event_type" in purchases else []
    bought = bought_matrix(purchases, users["user_id"], products["product_id"], types)
    last = np.full(len(users), -1, dtype=np.int64)
    if len(u):
        order = np.argsort(instants(purchases["occurred_at"])[ok], kind="stable")
        last[u[order]] = p[order]  # later purchases overwrite earlier ones
    return bought, last


def _display_names(products: pd.DataFrame, name_column: str | None) -> np.ndarray:
    """Each product's name (its id where it has none)."""
    return (
        products[name_column].astype("string").fillna(products["product_id"].astype(str))
        if name_column and name_column in products
        else products["product_id"].astype("string")
    ).to_numpy(dtype=object)


def _attribute(
    users: pd.DataFrame, column: str | None, phrases: dict[str, str]
) -> tuple[np.ndarray, int, np.ndarray]:
    """(each user's code of its value in `column`: -1 none, the number of values, each
    user's phrase of it: "dry skin", None)."""
    if column and column in users:
        values = users[column]
        code, uniques = pd.factorize(values.astype("string"))
        phrase = phrase_of(column, values, phrases).to_numpy(dtype=object)
    else:
        code, uniques = np.full(len(users), -1), []
        phrase = np.full(len(users), None, dtype=object)
    return code, len(uniques), np.where(pd.isna(phrase), None, phrase)


def _product_features(
    products: pd.DataFrame, content_columns: dict[str, str]
) -> tuple[sp.csr_matrix, pd.Index]:
    """(products × feature values 0/1, the values: "ceramides") of the multi-value content
    columns ("contains ..."), each split on its declared separator."""
    exploded = pd.concat(
        [
            products[c].astype("string").str.split(sep, regex=False).explode().str.strip().dropna()
            for c, sep in content_columns.items()
            if c in products
        ]
        or [pd.Series(dtype="string")]
    )
    exploded = exploded[exploded != ""]
    value_code, feature_values = pd.factorize(exploded)
    product_features = sp.csr_matrix(
        (np.ones(len(value_code), dtype=np.float32), (exploded.index.to_numpy(), value_code)),
        shape=(len(products), len(feature_values)),
    )
    product_features.data[:] = 1.0
    return product_features, feature_values


def _feature_lift(
    code: np.ndarray, n_values: int, bought: sp.csr_matrix, product_features: sp.csr_matrix
) -> np.ndarray:
    """Attribute value × product feature value: how much more often buyers with that value
    bought products with that feature than all buyers did (0 below MIN_SUPPORT)."""
    n_features = product_features.shape[1]
    if not (n_values and n_features):
        return np.zeros((max(n_values, 1), n_features))
    membership = sp.csr_matrix(
        (np.ones((code >= 0).sum()), (np.flatnonzero(code >= 0), code[code >= 0])),
        shape=(len(code), n_values),
    )
    counts = np.asarray((membership.T @ bought.astype(np.float32) @ product_features).todense())
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    overall = counts.sum(axis=0) / max(counts.sum(), 1)
    return np.where(counts >= MIN_SUPPORT, share / np.maximum(overall, 1e-12), 0.0)


def _segment_phrase(
    users: pd.DataFrame, segment_columns: list[str], phrases: dict[str, str]
) -> np.ndarray:
    """Each user's segment in words ("dry skin in the north region"; None: no segment)."""
    segment = None
    for column in segment_columns:
        if column not in users:
            continue
        part = phrase_of(column, users[column], phrases)
        segment = part if segment is None else segment + " in " + part
    phrase = (
        segment.to_numpy(dtype=object)
        if segment is not None
        else np.full(len(users), None, dtype=object)
    )
    return np.where(pd.isna(phrase), None, phrase)


def explain(
    context: ReasonContext,
    model: Blend | FactorModel,
    users: np.ndarray,
    items: np.ndarray,
    tier: np.ndarray,
) -> np.ndarray:
    """One reason per (user row, product column) pair; tier: 0 history, 1 profile, 2 popular.
    Pairs with item -1 get None."""
    reason = np.full(len(users), None, dtype=object)
    valid = items >= 0
    reason[valid & (tier == 2)] = BEST_SELLER
    profile = np.flatnonzero(valid & (tier == 1))
    if profile.size:
        matched = context.matches(users[profile], items[profile])
        phrase = context.attribute_phrase[users[profile]]
        fallback = np.where(
            pd.isna(phrase), BEST_SELLER, "chosen for " + pd.Series(phrase).astype(str)
        )
        reason[profile] = np.where(pd.isna(matched), fallback, matched)
    history = np.flatnonzero(valid & (tier == 0))
    if not history.size:
        return reason
    u, j = users[history], items[history]
    if not isinstance(model, Blend):
        reason[history] = FROM_HISTORY
        return reason
    names = [name for name, weight in model.weights.items() if weight]
    contribution = np.stack(
        [model.weights[name] * model.component_share(name, u, j) for name in names], axis=1
    )
    speakers = _Speakers(context, model, names, strength_order(contribution), u, j)
    # The strongest contributor that can say something true speaks.
    text, spoke = speakers.strongest(np.ones(len(history), dtype=bool), [True] * len(names))
    text = speakers.about_the_product_too(text, spoke)
    reason[history] = np.where(pd.isna(text), FROM_HISTORY, text)
    return reason


def strength_order(contribution: np.ndarray) -> np.ndarray:
    """Each row's components, strongest contribution first; contributions equal to
    CONTRIBUTION_DECIMALS decimals are tied and keep the blend's component order.

    A user's scores come from a BLAS product whose last bits depend on how many users were
    scored with them (a partition of 120 or of 300), and contributions that are equal in
    exact arithmetic are common (two components that both rank the product first: 1.0 and
    0.99999994). Rounded, they tie, so the reason never depends on the partitioning."""
    rounded = np.round(contribution.astype(np.float64), CONTRIBUTION_DECIMALS)
    return np.argsort(-rounded, axis=1, kind="stable")


@dataclass
class _Speakers:
    """The blend's weighted components (`names`), each able to explain the history pairs
    (u, j) as its family declares; `by_strength`: per pair, their indices, strongest first."""

    context: ReasonContext
    model: Blend
    names: list[str]
    by_strength: np.ndarray
    u: np.ndarray
    j: np.ndarray

    def strongest(self, eligible: np.ndarray, allowed: list[bool]) -> tuple[np.ndarray, np.ndarray]:
        """For the eligible pairs, the reason of the strongest allowed component that can say
        something true (None: none can), and the index of the component that spoke (-1)."""
        text = np.full(len(self.u), None, dtype=object)
        spoke = np.full(len(self.u), -1)
        for rank in range(len(self.names)):  # a handful of components, never users or products
            open_ = eligible & pd.isna(text)
            if not open_.any():
                break
            for k, name in enumerate(self.names):
                pick = np.flatnonzero(open_ & (self.by_strength[:, rank] == k))
                if pick.size and allowed[k]:
                    said = self._reason_from(name, pick)
                    text[pick] = said
                    spoke[pick[~pd.isna(said)]] = k
        return text, spoke

    def about_the_product_too(self, text: np.ndarray, spoke: np.ndarray) -> np.ndarray:
        """Where a family that explains the category spoke ("the next step after your
        mask" says why the category, not why this product), the next strongest one that
        speaks about the product itself adds its reason."""
        declared = [families.find(name) for name in self.names]
        about_product = [found is None or found.explains_the_product for found in declared]
        for step, found in enumerate(declared):
            if found is None or not found.explains_the_category:
                continue
            extra, _ = self.strongest(spoke == step, about_product)
            joined = pd.Series(text).astype(str) + "; " + pd.Series(extra).astype(str)
            text = np.where(pd.isna(extra), text, joined.to_numpy(dtype=object))
        return text

    def _reason_from(self, name: str, pick: np.ndarray) -> np.ndarray:
        """What the family `name` says of the picked pairs (one that is not registered:
        what the product has that matches the user's attribute)."""
        component = self.model.components[name]
        u, j = self.u[pick], self.j[pick]
        found = families.find(name)
        if found is None:
            return self.context.matches(u, j)
        return found.explain(self.context, component, u, j)
