"""LightFM: collaborative filtering on identity features, optionally plus content features of
users and products (the hybrid), so users and products without history are still served
from their attributes. Trained epoch by epoch so tuning can stop early."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from pydantic import BaseModel, Field

from tasks.models import FactorModel


class LightFMParams(BaseModel):
    """Hyperparameters of LightFM (the hybrid and the collaborative-only candidate)."""

    no_components: int = Field(64, ge=2, le=512, description="size of the embeddings")
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp"
    learning_rate: float = Field(0.05, gt=0, le=1)
    item_alpha: float = Field(1e-6, ge=0, le=1, description="L2 penalty on product features")
    user_alpha: float = Field(1e-6, ge=0, le=1, description="L2 penalty on user features")
    max_sampled: int = Field(30, ge=1, le=1000, description="WARP negatives tried per step")
    epochs: int = Field(40, ge=1, le=1000)
    half_life_days: float | None = Field(
        None,
        gt=0,
        le=3650,
        description="interaction weights halve every this many days (recent taste counts "
        "more); empty = no decay",
    )
    behaviour_features: bool = Field(
        True,
        description="hybrid: also use the engineered behaviour features (affinity shares, "
        "last category, frequency, recency; product popularity, age, rating)",
    )


def _training_matrices(interactions: sp.csr_matrix) -> tuple[sp.coo_matrix, sp.coo_matrix]:
    """(positives, sample weights): every interaction is a positive, weighted log1p(weight)."""
    weights = interactions.tocoo()
    positives = sp.coo_matrix(
        (np.ones_like(weights.data, dtype=np.float32), (weights.row, weights.col)),
        shape=weights.shape,
    )
    sample_weight = sp.coo_matrix(
        (np.log1p(weights.data).astype(np.float32), (weights.row, weights.col)),
        shape=weights.shape,
    )
    return positives, sample_weight


def fit_lightfm(
    interactions: sp.csr_matrix,
    user_features: sp.csr_matrix | None,
    item_features: sp.csr_matrix | None,
    params: LightFMParams,
    seed: int,
    num_threads: int = 1,
    validate: Callable[[FactorModel], float] | None = None,
    eval_every: int = 5,
    patience: int = 2,
) -> tuple[LightFM, FactorModel, list[tuple[int, float]]]:
    """Fit on log-damped interaction weights for `params.epochs` epochs.

    With `validate` (factors -> score, higher is better), training is checked every
    `eval_every` epochs and stops after `patience` checks without improvement; the returned
    curve lists (epochs, score) and the factors are those of the best check (the LightFM
    object is the one at the last epoch trained).
    Features None = identity only (collaborative filtering).
    """
    positives, sample_weight = _training_matrices(interactions)
    model = LightFM(
        no_components=params.no_components,
        loss=params.loss,
        learning_rate=params.learning_rate,
        item_alpha=params.item_alpha,
        user_alpha=params.user_alpha,
        max_sampled=params.max_sampled,
        random_state=np.random.RandomState(seed),
    )
    fit_kwargs = dict(
        user_features=user_features, item_features=item_features, num_threads=num_threads
    )
    if params.loss != "warp-kos":
        fit_kwargs["sample_weight"] = sample_weight
    if validate is None:
        model.fit(positives, epochs=params.epochs, **fit_kwargs)
        return model, factors_of(model, user_features, item_features), []

    curve: list[tuple[int, float]] = []
    best, best_factors, since_best, done = -np.inf, None, 0, 0
    while done < params.epochs and since_best < patience:
        step = min(eval_every, params.epochs - done)
        model.fit_partial(positives, epochs=step, **fit_kwargs)
        done += step
        factors = factors_of(model, user_features, item_features)
        score = validate(factors)
        curve.append((done, score))
        if score > best:
            best, best_factors, since_best = score, factors, 0
        else:
            since_best += 1
    return model, best_factors, curve


def factors_of(
    model: LightFM, user_features: sp.csr_matrix | None, item_features: sp.csr_matrix | None
) -> FactorModel:
    """score(u, i) = user_embedding · item_embedding + item_bias (+ user bias, same for all i)."""
    _, user_embeddings = model.get_user_representations(user_features)
    item_biases, item_embeddings = model.get_item_representations(item_features)
    ones = np.ones((user_embeddings.shape[0], 1), dtype=np.float32)
    return FactorModel(
        user_vectors=np.hstack([user_embeddings, ones]).astype(np.float32),
        item_vectors=np.hstack([item_embeddings, item_biases[:, None]]).astype(np.float32),
    )
