"""Train: fit every candidate on a set of events; each is saved as user/product vectors.

Candidates (all scored by the same exact top-N selector, see tasks/training/models/__init__.py):
- `popularity`: time-decayed demand, the same list for everyone (the baseline);
- `segment_popularity`: the same within a segment of users (e.g. skin type × region);
- `content_based`: the user's profile of product attributes × each product's attributes;
- `lightfm_cf`: LightFM on identities only (pure collaborative filtering);
- `lightfm_hybrid`: LightFM with identities plus user and product features;
- `item_knn`: item-item cosine neighbours of the user's recent products;
- `last_item_transitions`: what customers bought next after the user's latest products;
- `category_transitions`: which category customers buy next after the user's latest
  categories (a routine), then that category's best sellers;
- `blend`: the weighted sum of the above (weights tuned on the validation transaction),
  always including `lightfm_hybrid`, which serves users with no history from their features.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.dataset import DatasetSpec
from tasks.features.interactions import decayed_history, recency_ranks, weighted_interactions
from tasks.run_context import FeatureSet, RunFolder, Snapshot, TrainedModel
from tasks.training.models import Blend, FactorModel
from tasks.training.models.content import fit_content
from tasks.training.models.lightfm_hybrid import (
    FeatureNames,
    LightFMParams,
    fit_lightfm,
    save_state,
)
from tasks.training.models.neighbours import ItemKNNParams, fit_item_knn
from tasks.training.models.popularity import fit_popularity, fit_segment_popularity, segment_codes
from tasks.training.models.transitions import (
    TransitionParams,
    fit_category_transitions,
    fit_transitions,
)

POPULARITY = "popularity"
SEGMENT_POPULARITY = "segment_popularity"
CONTENT = "content_based"
LIGHTFM_CF = "lightfm_cf"
HYBRID = "lightfm_hybrid"
ITEM_KNN = "item_knn"
TRANSITIONS = "last_item_transitions"
CATEGORY_TRANSITIONS = "category_transitions"
BLEND = "blend"
COMPONENTS: tuple[str, ...] = (
    POPULARITY,
    SEGMENT_POPULARITY,
    CONTENT,
    LIGHTFM_CF,
    HYBRID,
    ITEM_KNN,
    TRANSITIONS,
    CATEGORY_TRANSITIONS,
)
TIER_FALLBACKS: tuple[str, ...] = (HYBRID, POPULARITY)
DEFAULT_BLEND: dict[str, float] = {HYBRID: 1.0, TRANSITIONS: 1.0, ITEM_KNN: 0.5, POPULARITY: 0.1}


class ModelConfig(BaseModel):
    """Everything that defines the trained models; stored with every model."""

    lightfm: LightFMParams = Field(default_factory=LightFMParams)
    item_knn: ItemKNNParams = Field(default_factory=ItemKNNParams)
    transitions: TransitionParams = Field(default_factory=TransitionParams)
    popularity_half_life_days: float = Field(30.0, gt=0, le=3650)
    blend: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_BLEND))


@dataclass
class TrainingData:
    """The matrices every candidate is fitted from, in users/products table order."""

    interactions: sp.csr_matrix  # weighted events per (user, product)
    recent_demand: sp.csr_matrix  # the same, decayed by age (popularity)
    recency: tuple[np.ndarray, np.ndarray, np.ndarray]  # (rows, cols, rank) weighted types
    sequence_rows: np.ndarray  # transactions: user rows, chronological within a user
    sequence_cols: np.ndarray  # transactions: product columns
    sequence_rank: np.ndarray  # transactions: 0 = the user's newest product
    user_features: sp.csr_matrix  # identity + dataset.toml + behaviour features
    item_features: sp.csr_matrix
    user_plain: sp.csr_matrix  # identity + dataset.toml features only
    item_plain: sp.csr_matrix
    item_attributes: sp.csr_matrix  # the declared product features only (content)
    segments: np.ndarray
    categories: np.ndarray  # product → category code (-1: none)
    events: pd.DataFrame  # the stage's events (for weightings that need their age)
    user_ids: pd.Series
    product_ids: pd.Series
    weights: dict[str, float]
    feature_names: FeatureNames  # column names of user_features, item_features

    def for_users(self, keep: np.ndarray) -> TrainingData:
        """The same data in which only the users where `keep` is True have events (the
        others' rows emptied; shapes, ids, features and the popularity demand unchanged)."""

        def only(matrix: sp.csr_matrix) -> sp.csr_matrix:
            kept = (sp.diags(keep.astype(matrix.dtype)) @ matrix).tocsr()
            kept.eliminate_zeros()
            return kept

        rows, cols, rank = self.recency
        in_recency, in_sequence = keep[rows], keep[self.sequence_rows]
        users = self.user_ids.to_numpy()[keep]
        return replace(
            self,
            interactions=only(self.interactions),
            recency=(rows[in_recency], cols[in_recency], rank[in_recency]),
            sequence_rows=self.sequence_rows[in_sequence],
            sequence_cols=self.sequence_cols[in_sequence],
            sequence_rank=self.sequence_rank[in_sequence],
            events=self.events[self.events["user_id"].isin(users)],
        )

    def decayed_interactions(self, half_life_days: float | None) -> sp.csr_matrix:
        """Weighted interactions, each event halved every `half_life_days` (None: as is)."""
        if not half_life_days:
            return self.interactions
        return weighted_interactions(
            self.events, self.user_ids, self.product_ids, self.weights, half_life_days
        )

    def weighted_history(self, decay: float) -> sp.csr_matrix:
        """log1p(event weights) × decay**recency rank, over all weighted event types."""
        rows, cols, rank = self.recency
        history = decayed_history(rows, cols, rank, decay, self.interactions.shape)
        return history.multiply(self.interactions.log1p()).tocsr()

    def transaction_history(self, decay: float) -> sp.csr_matrix:
        """decay**recency rank over the user's distinct transactions (newest = 1)."""
        return decayed_history(
            self.sequence_rows,
            self.sequence_cols,
            self.sequence_rank,
            decay,
            self.interactions.shape,
        )


def category_codes(snapshot: Snapshot, dataset: DatasetSpec, n_products: int) -> np.ndarray:
    """Product → code of its category: `[models] category_column` in dataset.toml, else the
    first categorical product feature; all -1 when there is none."""
    column = dataset.category_column()
    if column is None:
        return np.full(n_products, -1, dtype=np.int64)
    values = pd.read_parquet(snapshot.tables["products"], columns=[column])[column]
    return pd.factorize(values.astype("string"))[0].astype(np.int64)


def entity_ids(snapshot: Snapshot) -> tuple[pd.Series, pd.Series]:
    users = pd.read_parquet(snapshot.tables["users"], columns=["user_id"])["user_id"]
    products = pd.read_parquet(snapshot.tables["products"], columns=["product_id"])["product_id"]
    return users, products


def training_data(
    events: pd.DataFrame,
    snapshot: Snapshot,
    features: FeatureSet,
    dataset: DatasetSpec,
    config: ModelConfig,
) -> TrainingData:
    user_ids, product_ids = entity_ids(snapshot)
    weights = dataset.events.weights
    interactions = weighted_interactions(events, user_ids, product_ids, weights)
    recent_demand = weighted_interactions(
        events, user_ids, product_ids, weights, half_life_days=config.popularity_half_life_days
    )
    weighted_types = [t for t, w in weights.items() if w > 0]
    recency = recency_ranks(events, user_ids, product_ids, weighted_types)
    types = dataset.events.transaction_types
    seq_rows, seq_cols, seq_rank = recency_ranks(events, user_ids, product_ids, types)
    item_features = sp.load_npz(features.item_features).tocsr()
    names = json.loads(Path(features.names).read_text())
    declared = pd.Series(names["item"]).str.split("=", n=1).str[0]
    declared = declared.isin(list(dataset.product_features))
    attribute_columns = np.flatnonzero(declared.to_numpy())
    users = pd.read_parquet(snapshot.tables["users"])
    columns = [c for c in dataset.models.segment_columns if c in users.columns]
    return TrainingData(
        interactions=interactions,
        recent_demand=recent_demand,
        recency=recency,
        sequence_rows=seq_rows,
        sequence_cols=seq_cols,
        sequence_rank=seq_rank,
        user_features=sp.load_npz(features.user_features).tocsr(),
        item_features=item_features,
        user_plain=sp.load_npz(features.user_attributes).tocsr(),
        item_plain=sp.load_npz(features.item_attributes).tocsr(),
        item_attributes=item_features[:, attribute_columns].tocsr(),
        segments=segment_codes(users, columns),
        categories=category_codes(snapshot, dataset, len(product_ids)),
        events=events[["user_id", "product_id", "event_type", "occurred_at"]],
        user_ids=user_ids,
        product_ids=product_ids,
        weights=weights,
        feature_names=(names["user"], names["item"]),
    )


def lightfm_features(
    data: TrainingData, params: LightFMParams, hybrid: bool = True
) -> tuple[sp.csr_matrix | None, sp.csr_matrix | None]:
    """The feature matrices LightFM trains with: none (identity only) for the CF candidate;
    for the hybrid, with or without the behaviour features as its parameters say."""
    if not hybrid:
        return None, None
    if params.behaviour_features:
        return data.user_features, data.item_features
    return data.user_plain, data.item_plain


def lightfm_feature_names(
    data: TrainingData, params: LightFMParams, hybrid: bool = True
) -> FeatureNames | None:
    """The names of the columns `lightfm_features` gives (None: identity only). The plain
    matrices' columns are the first ones of the matrices with behaviour features."""
    if not hybrid:
        return None
    users, items = data.feature_names
    if params.behaviour_features:
        return users, items
    return users[: data.user_plain.shape[1]], items[: data.item_plain.shape[1]]


def fit_candidate(
    name: str,
    data: TrainingData,
    config: ModelConfig,
    seed: int,
    num_threads: int,
    lightfm_params: LightFMParams | None = None,
    state_path: Path | None = None,
    warm_start: Path | None = None,
) -> FactorModel:
    """Fit one candidate family on `data`. LightFM families: `state_path` keeps what a
    later fit needs to continue from this one; `warm_start` continues from such a state
    (for the epochs the parameters say)."""
    if name == POPULARITY:
        return fit_popularity(data.recent_demand)
    if name == SEGMENT_POPULARITY:
        return fit_segment_popularity(data.recent_demand, data.segments)
    if name == CONTENT:
        return fit_content(
            data.weighted_history(config.item_knn.recency_decay), data.item_attributes
        )
    if name == ITEM_KNN:
        history = data.weighted_history(config.item_knn.recency_decay)
        return fit_item_knn(data.interactions, history, config.item_knn)
    if name == TRANSITIONS:
        return fit_transitions(
            data.sequence_rows,
            data.sequence_cols,
            data.transaction_history(config.transitions.recency_decay),
            config.transitions,
        )
    if name == CATEGORY_TRANSITIONS:
        return fit_category_transitions(
            data.sequence_rows,
            data.sequence_cols,
            data.transaction_history(config.transitions.recency_decay),
            data.categories,
            np.asarray(data.recent_demand.sum(axis=0)).ravel(),
            config.transitions,
        )
    if name in (HYBRID, LIGHTFM_CF):
        params = lightfm_params or config.lightfm
        user_features, item_features = lightfm_features(data, params, hybrid=name == HYBRID)
        names = lightfm_feature_names(data, params, hybrid=name == HYBRID)
        model, factors, _ = fit_lightfm(
            data.decayed_interactions(params.half_life_days),
            user_features,
            item_features,
            params,
            seed=seed,
            num_threads=num_threads,
            warm_start=warm_start,
            names=names,
        )
        if state_path is not None:
            save_state(model, state_path, names)
        return factors
    raise ValueError(f"unknown candidate {name!r}; known: {', '.join(COMPONENTS)}")


@task(name="train-candidates")
def train_candidates(
    events_path: Path,
    snapshot: Snapshot,
    features: FeatureSet,
    dataset: DatasetSpec,
    config: ModelConfig,
    seed: int,
    num_threads: int,
    run: RunFolder,
    stage: str = "candidates",
    only_blend: bool = False,
    keep_states: bool = False,
    continue_from: dict[str, TrainedModel] | None = None,
    continue_epochs: int | None = None,
) -> dict[str, TrainedModel]:
    """Fit the candidates and the blend on the events in `events_path`; write them under
    models/<stage>/. only_blend=True fits just the blend's components (the refit for
    publishing needs nothing else).

    keep_states: also write the LightFM states the blend's refit can continue from.
    continue_from, continue_epochs: the LightFM components whose model in `continue_from`
    kept its state continue from it for `continue_epochs` epochs on these events, instead
    of training from scratch for the tuned epochs."""
    logger = get_run_logger()
    events = pd.read_parquet(events_path)
    data = training_data(events, snapshot, features, dataset, config)
    weighted = {name: w for name, w in config.blend.items() if w > 0}
    # the tiers serve cold users from the hybrid and the best sellers: always kept
    fallbacks = {name: 0.0 for name in TIER_FALLBACKS if name not in weighted}
    names = list(weighted | fallbacks) if only_blend else list(COMPONENTS)
    folder = run.sub("models", stage, "x").parent

    fitted: dict[str, FactorModel] = {}
    trained: dict[str, TrainedModel] = {}
    blend_names = set(weighted | fallbacks)
    for name in names:
        started = time.perf_counter()
        keep = keep_states and name in (HYBRID, LIGHTFM_CF) and name in blend_names
        state = folder / f"{name}.state.npz" if keep else None
        start = (continue_from or {}).get(name)
        warm = start.state if start is not None and continue_epochs else None
        fitted[name] = fit_candidate(
            name,
            data,
            config,
            seed,
            num_threads,
            lightfm_params=config.lightfm.model_copy(update={"epochs": continue_epochs})
            if warm
            else None,
            state_path=state,
            warm_start=warm,
        )
        logger.info(
            "%s: %s fitted in %.1f s%s",
            stage,
            name,
            time.perf_counter() - started,
            f" ({continue_epochs} epochs from the evaluated model)" if warm else "",
        )
        params = {
            HYBRID: config.lightfm.model_dump(),
            LIGHTFM_CF: config.lightfm.model_dump(),
            ITEM_KNN: config.item_knn.model_dump(),
            TRANSITIONS: config.transitions.model_dump(),
            CATEGORY_TRANSITIONS: config.transitions.model_dump(),
            POPULARITY: {"half_life_days": config.popularity_half_life_days},
            SEGMENT_POPULARITY: {"half_life_days": config.popularity_half_life_days},
        }.get(name, {})
        trained[name] = TrainedModel(
            name=name,
            vectors=fitted[name].save(folder / f"{name}.npz"),
            params=params
            | {"seed": seed}
            | ({"epochs": continue_epochs, "continued_from": str(warm)} if warm else {}),
            state=state,
        )
    blend = Blend({name: fitted[name] for name in weighted | fallbacks}, weighted | fallbacks)
    trained[BLEND] = TrainedModel(
        name=BLEND, vectors=blend.save(folder / BLEND), params=config.model_dump() | {"seed": seed}
    )
    logger.info(
        "trained %s on %d interactions (%d users, %d products); blend %s",
        ", ".join(names),
        data.interactions.nnz,
        *data.interactions.shape,
        weighted,
    )
    return trained
