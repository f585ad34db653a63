"""Popularity baseline: the same list for everyone, products ranked by time-decayed demand."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tasks.models import FactorModel


def fit_popularity(interactions: sp.csr_matrix) -> FactorModel:
    """Each product's score is the column sum of the (decayed, weighted) interactions."""
    demand = np.asarray(interactions.sum(axis=0)).ravel().astype(np.float32)
    n_users = interactions.shape[0]
    return FactorModel(
        user_vectors=np.ones((n_users, 1), dtype=np.float32),
        item_vectors=demand[:, None],
    )
