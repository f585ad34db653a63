"""Last-item transitions (a first-order Markov chain over purchases, smoothed over a short
window, as in FPMC/Rendle et al. 2010 without the factorisation): what customers bought
right after a product is what a customer who just bought it is likely to buy next."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field

from tasks.training.models import FactorModel
from tasks.training.models.family import Family, FitOptions, RecencyDecay, Settings

if TYPE_CHECKING:
    from tasks.training.train import ModelConfig, TrainingData


class TransitionParams(BaseModel):
    window: int = Field(5, ge=1, le=50, description="products ahead that count as 'next'")
    step_decay: float = Field(
        0.7, gt=0, le=1, description="weight of the product d steps later: step_decay**(d-1)"
    )
    backward: float = Field(
        0.5, ge=0, le=1, description="weight of the reverse direction (bought just before)"
    )
    recency_decay: RecencyDecay = 0.6
    normalisation: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a product's transitions are divided by (its total)**normalisation: "
        "1 = probabilities, 0 = raw counts (frequent paths count more)",
    )


def transition_counts(
    rows: np.ndarray, cols: np.ndarray, n_items: int, params: TransitionParams
) -> sp.csr_matrix:
    """products × products: how often j followed i within the window (rows and cols sorted
    by user, then chronologically)."""
    sources, targets, weights = [], [], []
    for step in range(1, params.window + 1):  # a loop over offsets, not over users
        same_user = rows[:-step] == rows[step:]
        before, after = cols[:-step][same_user], cols[step:][same_user]
        weight = np.full(len(before), params.step_decay ** (step - 1), dtype=np.float32)
        sources += [before, after]
        targets += [after, before]
        weights += [weight, weight * params.backward]
    matrix = sp.csr_matrix(
        (np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    return matrix


def fit_transitions(
    rows: np.ndarray,
    cols: np.ndarray,
    history: sp.csr_matrix,
    params: TransitionParams,
) -> FactorModel:
    """score(u, j) = Σ_i history[u, i] · count(i → j) / total(i)**normalisation; history is
    recency-decayed, so the last product bought speaks loudest."""
    counts = transition_counts(rows, cols, history.shape[1], params)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    scale = np.power(totals, -params.normalisation).astype(np.float32)
    probabilities = (sp.diags(scale) @ counts).tocsr()
    return FactorModel(
        user_vectors=history.astype(np.float32).tocsr(),
        item_vectors=probabilities.T.tocsr().astype(np.float32),
    )


def fit_category_transitions(
    rows: np.ndarray,
    cols: np.ndarray,
    history: sp.csr_matrix,
    categories: np.ndarray,
    demand: np.ndarray,
    params: TransitionParams,
) -> FactorModel:
    """The same chain one level up: which category customers buy next after the user's
    latest categories (a routine: cleanser → toner → serum).

    score(u, j) = log(P(next category = category of j | u) + 0.001) + 0.001 · share of j in
    its category's demand. In log form a blend adds it to the other candidates'
    scores, which multiplies probabilities: "the right category" × "the right product in it",
    the shape of a routine. Alone it ranks categories, best sellers first within each.

    categories: product → category code (-1: none, a category of its own); demand: product →
    demand."""
    codes = np.where(categories >= 0, categories, categories.max(initial=-1) + 1)
    n_categories = int(codes.max(initial=0)) + 1
    membership = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
        shape=(len(codes), n_categories),
    )
    counts = transition_counts(rows, cols, len(codes), params)
    category_counts = (membership.T @ counts @ membership).toarray()
    totals = category_counts.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    propensity = np.asarray((history @ membership) @ (category_counts / totals))
    propensity /= np.maximum(propensity.sum(axis=1, keepdims=True), 1e-12)
    category_demand = np.asarray(membership.T @ demand).ravel()
    share = demand / np.maximum(category_demand[codes], 1e-12)
    user_side = np.hstack([np.log(propensity + 1e-3), np.ones((len(propensity), 1))])
    item_side = np.hstack([membership.toarray(), 1e-3 * share[:, None]])
    return FactorModel(
        user_vectors=user_side.astype(np.float32), item_vectors=item_side.astype(np.float32)
    )


def _fit_transitions(data: TrainingData, config: ModelConfig, options: FitOptions) -> FactorModel:
    history = data.transaction_history(config.transitions.recency_decay)
    return fit_transitions(data.sequence_rows, data.sequence_cols, history, config.transitions)


def _fit_category_transitions(
    data: TrainingData, config: ModelConfig, options: FitOptions
) -> FactorModel:
    return fit_category_transitions(
        data.sequence_rows,
        data.sequence_cols,
        data.transaction_history(config.transitions.recency_decay),
        data.categories,
        np.asarray(data.recent_demand.sum(axis=0)).ravel(),
        config.transitions,
    )


SETTINGS = Settings("transitions", TransitionParams)  # both families read them
TRANSITIONS_FAMILY = Family(
    name="last_item_transitions",
    settings=SETTINGS,
    fit=_fit_transitions,
    explain=lambda reasons, component, users, items: reasons.after_bought(component, users, items),
    space={
        "window": [2, 3, 5, 8],
        "step_decay": [0.5, 0.7, 0.85],
        "backward": [0.0, 0.25, 0.5],
        "recency_decay": [0.3, 0.5, 0.7],
        "normalisation": [0.0, 0.5, 1.0],
    },
)
CATEGORY_TRANSITIONS_FAMILY = Family(
    name="category_transitions",
    settings=SETTINGS,
    fit=_fit_category_transitions,
    explain=lambda reasons, component, users, items: reasons.next_step(users, items),
    explains_the_product=False,
    explains_the_category=True,
)
