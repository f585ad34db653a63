"""Item-based nearest neighbours (Sarwar et al. 2001; Deshpande & Karypis 2004): products
co-occurring in many users' histories are similar; a user's recent products vote for
their neighbours."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field

from tasks.training.models import FactorModel
from tasks.training.models.family import Family, RecencyDecay, Settings


class ItemKNNParams(BaseModel):
    neighbours: int = Field(100, ge=1, le=5000, description="similar products kept per product")
    shrink: float = Field(10.0, ge=0, le=1000, description="damps similarity of rare pairs")
    alpha: float = Field(
        0.5, ge=0, le=1, description="asymmetric cosine: 0.5 = cosine, 1 = P(j | i)"
    )
    recency_decay: RecencyDecay = 0.7


def keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The k largest entries of each row (vectorised: one sort of all entries)."""
    matrix = matrix.tocsr()
    row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((-matrix.data, row))
    rank = np.arange(len(order)) - matrix.indptr[row[order]]
    keep = order[rank < k]
    return sp.csr_matrix((matrix.data[keep], (row[keep], matrix.indices[keep])), shape=matrix.shape)


def item_similarity(interactions: sp.csr_matrix, params: ItemKNNParams) -> sp.csr_matrix:
    """products × products: co-occurrence / (n_i^alpha · n_j^(1-alpha) + shrink)."""
    seen = (interactions > 0).astype(np.float32).tocsc()
    co = (seen.T @ seen).tocoo()
    off_diagonal = co.row != co.col
    row, col, count = co.row[off_diagonal], co.col[off_diagonal], co.data[off_diagonal]
    n = np.asarray(seen.sum(axis=0)).ravel()
    value = count / (n[row] ** params.alpha * n[col] ** (1 - params.alpha) + params.shrink)
    similarity = sp.csr_matrix((value.astype(np.float32), (row, col)), shape=co.shape)
    return keep_top_per_row(similarity, params.neighbours)


def fit_item_knn(
    interactions: sp.csr_matrix, history: sp.csr_matrix, params: ItemKNNParams
) -> FactorModel:
    """score(u, j) = Σ_i history[u, i] · sim(i, j); history is recency-decayed."""
    similarity = item_similarity(interactions, params)
    return FactorModel(
        user_vectors=history.astype(np.float32).tocsr(),
        item_vectors=similarity.T.tocsr().astype(np.float32),
    )


ITEM_KNN_FAMILY = Family(
    name="item_knn",
    settings=Settings("item_knn", ItemKNNParams),
    fit=lambda data, config, options: fit_item_knn(
        data.interactions, data.weighted_history(config.item_knn.recency_decay), config.item_knn
    ),
    explain=lambda reasons, component, users, items: reasons.similar_to(component, users, items),
    space={
        "neighbours": [20, 50, 100, 200],
        "shrink": [0.0, 10.0, 50.0],
        "alpha": [0.3, 0.5, 0.7],
        "recency_decay": [0.3, 0.5, 0.7, 0.9],
    },
)
