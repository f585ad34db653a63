"""Train: fit every candidate on a set of events; each is saved as user/product vectors.

The candidates are the registered model families (tasks/training/models/families.py), all
scored by the same exact top-N selector (tasks/training/models/__init__.py), and `blend`:
their weighted sum (weights tuned on the validation transaction; a candidate alone is one
of the weightings). The blend always keeps `lightfm_hybrid`, which serves users with no
history from their features, and `popularity`, the gate's baseline, at weight 0 when they
are not weighted: the tiers of the published lists fall back on them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
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
from tasks.training.models import Blend, FactorModel, families
from tasks.training.models.content import CONTENT_FAMILY
from tasks.training.models.family import FitOptions
from tasks.training.models.lightfm_hybrid import (
    HYBRID_FAMILY,
    LIGHTFM_CF_FAMILY,
    FeatureNames,
    LightFMParams,
)
from tasks.training.models.neighbours import ITEM_KNN_FAMILY
from tasks.training.models.popularity import (
    POPULARITY_FAMILY,
    SEGMENT_POPULARITY_FAMILY,
    segment_codes,
)
from tasks.training.models.transitions import CATEGORY_TRANSITIONS_FAMILY, TRANSITIONS_FAMILY

# The candidates' names, for the modules that name one by its role (the gate's baseline,
# the cold-start tiers, the blend's anchor); everything else reads the registry.
POPULARITY = POPULARITY_FAMILY.name
SEGMENT_POPULARITY = SEGMENT_POPULARITY_FAMILY.name
CONTENT = CONTENT_FAMILY.name
LIGHTFM_CF = LIGHTFM_CF_FAMILY.name
HYBRID = HYBRID_FAMILY.name
ITEM_KNN = ITEM_KNN_FAMILY.name
TRANSITIONS = TRANSITIONS_FAMILY.name
CATEGORY_TRANSITIONS = CATEGORY_TRANSITIONS_FAMILY.name
BLEND = "blend"
COMPONENTS: tuple[str, ...] = families.names()  # as registered when this module loaded
TIER_FALLBACKS: tuple[str, ...] = (HYBRID, POPULARITY)
# The blend tuning starts from; a family left out starts at weight 0 (tuning tries it).
DEFAULT_BLEND: dict[str, float] = {HYBRID: 1.0, TRANSITIONS: 1.0, ITEM_KNN: 0.5, POPULARITY: 0.1}


# One field per section of the families' parameters (`lightfm`, `item_knn`, `transitions`:
# tasks/training/models/families.py), then the fields below.
class ModelConfig(families.settings_model("ModelSettings")):
    """Everything that defines the trained models; stored with every model."""

    # the decay of the demand the popularity baselines and category transitions rank by
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


def fit_candidate(
    name: str,
    data: TrainingData,
    config: ModelConfig,
    seed: int,
    num_threads: int,
    lightfm_params: LightFMParams | None = None,
    state_path: Path | None = None,
    warm_start: Path | None = None,
    continue_epochs: int | None = None,
) -> FactorModel:
    """Fit the registered family `name` on `data`. lightfm_params: instead of
    config.lightfm. Families that keep a state: `state_path` keeps what a later fit needs to
    continue from this one; `warm_start` continues from such a state for `continue_epochs`
    epochs (None: the configured ones)."""
    if lightfm_params is not None:
        config = config.model_copy(update={"lightfm": lightfm_params})
    options = FitOptions(seed, num_threads, state_path, warm_start, continue_epochs)
    return families.family(name).fit(data, config, options)


def blend_members(config: ModelConfig) -> dict[str, float]:
    """The blend's components and their weights: the weighted ones, and the tiers'
    fallbacks (the hybrid serves cold users, popularity everyone else) at weight 0."""
    return members_of(config.blend)


def members_of(weights: dict[str, float]) -> dict[str, float]:
    """`blend_members` of a weighting."""
    weighted = {name: w for name, w in weights.items() if w > 0}
    return weighted | {name: 0.0 for name in TIER_FALLBACKS if name not in weighted}


class TrainingContext(BaseModel):
    """What every training task of a run shares: the snapshot and its description, the
    run's folder, the seed and the training threads.

    Why fits are single-threaded by default: LightFM's multi-threaded (Hogwild) training
    is not repeatable, two fits with the same seed differ, and the one-standard-error
    choice of epochs, the blend weights and every list downstream follow the difference.
    So each fit runs on one thread (repeatable for a seed) and the threads go to
    independent fits side by side (tuning trials, candidates), whose results are taken in
    a fixed order: the thread count changes the time, never the lists. `hogwild` gives
    each fit every thread instead (faster per fit, not repeatable)."""

    snapshot: Snapshot
    dataset: DatasetSpec
    run: RunFolder
    seed: int
    num_threads: int
    hogwild: bool = False

    @property
    def fit_threads(self) -> int:
        """Threads of one LightFM fit."""
        return self.num_threads if self.hogwild else 1

    @property
    def side_by_side(self) -> int:
        """Independent fits run at once."""
        return 1 if self.hogwild else self.num_threads


@task(name="train-candidates")
def train_candidates(
    events_path: Path,
    features: FeatureSet,
    config: ModelConfig,
    context: TrainingContext,
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
    snapshot, dataset, run, seed = context.snapshot, context.dataset, context.run, context.seed
    events = pd.read_parquet(events_path)
    data = training_data(events, snapshot, features, dataset, config)
    members = blend_members(config)
    names = list(members) if only_blend else list(families.names())
    folder = run.sub("models", stage, "x").parent

    def fit(name: str) -> tuple[FactorModel, TrainedModel]:
        started = time.perf_counter()
        keep = keep_states and families.family(name).keeps_state and name in members
        start = (continue_from or {}).get(name)
        warm = start.state if start is not None and continue_epochs else None
        options = FitOptions(
            seed,
            context.fit_threads,
            state_path=folder / f"{name}.state.npz" if keep else None,
            warm_start=warm,
            continue_epochs=continue_epochs if warm else None,
        )
        factors = families.family(name).fit(data, config, options)
        logger.info(
            "%s: %s fitted in %.1f s%s",
            stage,
            name,
            time.perf_counter() - started,
            f" ({continue_epochs} epochs from the evaluated model)" if warm else "",
        )
        return factors, _saved(name, factors, config, options, folder)

    with ThreadPoolExecutor(context.side_by_side) as pool:  # results in the names' order
        done = dict(zip(names, pool.map(fit, names), strict=True))
    fitted = {name: factors for name, (factors, _) in done.items()}
    trained = {name: model for name, (_, model) in done.items()}
    blend = Blend({name: fitted[name] for name in members}, members)
    trained[BLEND] = TrainedModel(
        name=BLEND, vectors=blend.save(folder / BLEND), params=config.model_dump() | {"seed": seed}
    )
    logger.info(
        "trained %s on %d interactions (%d users, %d products); blend %s",
        ", ".join(names),
        data.interactions.nnz,
        *data.interactions.shape,
        {name: w for name, w in members.items() if w > 0},
    )
    return trained


def _saved(
    name: str, factors: FactorModel, config: ModelConfig, options: FitOptions, folder: Path
) -> TrainedModel:
    """The fitted candidate written under `folder`, with the parameters it was fitted with."""
    continued = (
        {"epochs": options.continue_epochs, "continued_from": str(options.warm_start)}
        if options.warm_start
        else {}
    )
    return TrainedModel(
        name=name,
        vectors=factors.save(folder / f"{name}.npz"),
        params=families.family(name).params_of(config) | {"seed": options.seed} | continued,
        state=options.state_path,
    )
