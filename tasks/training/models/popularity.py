"""Popularity baselines: the same list for everyone (global), or for everyone in a segment
(e.g. skin type × region), products ranked by time-decayed demand."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.training.models import FactorModel
from tasks.training.models.family import Family

if TYPE_CHECKING:
    from tasks.training.train import ModelConfig

# Segment demand is blended with a little global demand, so a small segment's list is
# completed by what sells overall instead of by arbitrary ties.
GLOBAL_SHARE = 0.05


def fit_popularity(interactions: sp.csr_matrix) -> FactorModel:
    """Each product's score is the column sum of the (decayed, weighted) interactions."""
    demand = np.asarray(interactions.sum(axis=0)).ravel().astype(np.float32)
    n_users = interactions.shape[0]
    return FactorModel(
        user_vectors=np.ones((n_users, 1), dtype=np.float32),
        item_vectors=demand[:, None],
    )


def segment_codes(users: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One integer per user: the combination of its values in `columns` (-1: no segment)."""
    if not columns:
        return np.zeros(len(users), dtype=np.int64)
    values = users[columns].astype("string").fillna("?")
    # numbered in order of first appearance, as factorising the joined values would be
    return values.groupby(columns, sort=False).ngroup().to_numpy(np.int64)


def fit_segment_popularity(interactions: sp.csr_matrix, segments: np.ndarray) -> FactorModel:
    """User side: one-hot segment plus a global column; product side: demand per segment
    (each segment's demand scaled to sum 1) and the global demand share."""
    n_users, n_items = interactions.shape
    n_segments = int(segments.max()) + 1 if len(segments) else 1
    membership = sp.csr_matrix(
        (np.ones(n_users, dtype=np.float32), (np.arange(n_users), segments)),
        shape=(n_users, n_segments),
    )
    demand = np.asarray((membership.T @ interactions).todense(), dtype=np.float64)  # seg × items
    demand /= np.maximum(demand.sum(axis=1, keepdims=True), 1e-12)
    overall = np.asarray(interactions.sum(axis=0)).ravel()
    overall /= max(overall.sum(), 1e-12)
    user_side = sp.hstack(
        [membership * (1 - GLOBAL_SHARE), np.full((n_users, 1), GLOBAL_SHARE, np.float32)]
    ).tocsr()
    item_side = np.hstack([demand.T, overall[:, None]]).astype(np.float32)
    return FactorModel(user_vectors=user_side.astype(np.float32), item_vectors=item_side)


def _half_life(config: ModelConfig) -> dict:
    """Both baselines rank the demand decayed by `popularity_half_life_days` (a setting of
    the training data, which category transitions read too)."""
    return {"half_life_days": config.popularity_half_life_days}


POPULARITY_FAMILY = Family(
    name="popularity",
    fit=lambda data, config, options: fit_popularity(data.recent_demand),
    explain=lambda reasons, component, users, items: reasons.best_seller(users),
    recorded_params=_half_life,
    explains_the_product=False,
)
SEGMENT_POPULARITY_FAMILY = Family(
    name="segment_popularity",
    fit=lambda data, config, options: fit_segment_popularity(data.recent_demand, data.segments),
    explain=lambda reasons, component, users, items: reasons.popular_with(users),
    recorded_params=_half_life,
    explains_the_product=False,
)
