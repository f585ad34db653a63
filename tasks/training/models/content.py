"""Content-based: a user's profile is the features of what they interacted with (weighted
and recency-damped); a product scores by how well its features match that profile."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tasks.training.models import FactorModel
from tasks.training.models.family import Family


def fit_content(history: sp.csr_matrix, item_features: sp.csr_matrix) -> FactorModel:
    """history: users × products weights; item_features: products × attributes (no identity
    columns). Attributes are IDF-weighted so that rare ones (an ingredient) count more than
    ubiquitous ones."""
    presence = (item_features > 0).astype(np.float32)
    document_frequency = np.asarray(presence.sum(axis=0)).ravel()
    idf = np.log((1.0 + item_features.shape[0]) / (1.0 + document_frequency)) + 1.0
    weighted = (presence @ sp.diags(idf.astype(np.float32))).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    items = (sp.diags((1.0 / norms).astype(np.float32)) @ weighted).tocsr()
    profile = (history @ items).tocsr()
    totals = np.asarray(history.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    profile = (sp.diags((1.0 / totals).astype(np.float32)) @ profile).tocsr()
    return FactorModel(user_vectors=profile.astype(np.float32), item_vectors=items)


CONTENT_FAMILY = Family(
    name="content_based",
    # the user's products weighted as item-kNN weighs them (its recency decay)
    fit=lambda data, config, options: fit_content(
        data.weighted_history(config.item_knn.recency_decay), data.item_attributes
    ),
    explain=lambda reasons, component, users, items: reasons.matches(users, items),
)
