"""LightFM hybrid: collaborative filtering on identity features plus content features of users
and products, so users and products without history are still served from their attributes."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from pydantic import BaseModel, Field

from tasks.models import FactorModel


class LightFMParams(BaseModel):
    """Hyperparameters of the LightFM hybrid."""

    no_components: int = Field(64, ge=2, le=512, description="size of the embeddings")
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp"
    learning_rate: float = Field(0.05, gt=0, le=1)
    item_alpha: float = Field(1e-6, ge=0, le=1, description="L2 penalty on product features")
    user_alpha: float = Field(1e-6, ge=0, le=1, description="L2 penalty on user features")
    max_sampled: int = Field(30, ge=1, le=1000, description="WARP negatives tried per step")
    epochs: int = Field(40, ge=1, le=1000)


def fit_lightfm(
    interactions: sp.csr_matrix,
    user_features: sp.csr_matrix,
    item_features: sp.csr_matrix,
    params: LightFMParams,
    seed: int,
    num_threads: int = 1,
) -> tuple[LightFM, FactorModel]:
    """Fit on log-damped interaction weights; return the model and its factor form."""
    weights = interactions.tocoo()
    positives = sp.coo_matrix(
        (np.ones_like(weights.data, dtype=np.float32), (weights.row, weights.col)),
        shape=weights.shape,
    )
    sample_weight = sp.coo_matrix(
        (np.log1p(weights.data).astype(np.float32), (weights.row, weights.col)),
        shape=weights.shape,
    )
    model = LightFM(
        no_components=params.no_components,
        loss=params.loss,
        learning_rate=params.learning_rate,
        item_alpha=params.item_alpha,
        user_alpha=params.user_alpha,
        max_sampled=params.max_sampled,
        random_state=np.random.RandomState(seed),
    )
    fit_kwargs = {} if params.loss == "warp-kos" else {"sample_weight": sample_weight}
    model.fit(
        positives,
        user_features=user_features,
        item_features=item_features,
        epochs=params.epochs,
        num_threads=num_threads,
        **fit_kwargs,
    )
    return model, factors_of(model, user_features, item_features)


def factors_of(
    model: LightFM, user_features: sp.csr_matrix, item_features: sp.csr_matrix
) -> FactorModel:
    """score(u, i) = user_embedding · item_embedding + item_bias (+ user bias, same for all i)."""
    _, user_embeddings = model.get_user_representations(user_features)
    item_biases, item_embeddings = model.get_item_representations(item_features)
    ones = np.ones((user_embeddings.shape[0], 1), dtype=np.float32)
    return FactorModel(
        user_vectors=np.hstack([user_embeddings, ones]).astype(np.float32),
        item_vectors=np.hstack([item_embeddings, item_biases[:, None]]).astype(np.float32),
    )
