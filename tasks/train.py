"""Train: fit every candidate on the training events; each is saved as user/product vectors.

Candidates: `popularity` (time-decayed demand, the baseline) and `lightfm_hybrid`
(LightFM with identity + user and product features).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.logging import get_run_logger

from tasks.dataset import DatasetSpec
from tasks.interactions import weighted_interactions
from tasks.models.lightfm_hybrid import LightFMParams, fit_lightfm
from tasks.models.popularity import fit_popularity
from tasks.run_context import FeatureSet, RunFolder, Snapshot, TrainedModel

POPULARITY = "popularity"
HYBRID = "lightfm_hybrid"


def _entity_ids(snapshot: Snapshot) -> tuple[pd.Series, pd.Series]:
    users = pd.read_parquet(snapshot.tables["users"], columns=["user_id"])["user_id"]
    products = pd.read_parquet(snapshot.tables["products"], columns=["product_id"])["product_id"]
    return users, products


@task(name="train-candidates")
def train_candidates(
    events_path: Path,
    snapshot: Snapshot,
    features: FeatureSet,
    dataset: DatasetSpec,
    lightfm: LightFMParams,
    popularity_half_life_days: float,
    seed: int,
    num_threads: int,
    run: RunFolder,
    stage: str = "candidates",
    baseline: bool = True,
) -> dict[str, TrainedModel]:
    """Fit the candidates on the events in `events_path`; write them under models/<stage>/.

    baseline=False fits only the hybrid (the refit for publishing needs nothing else)."""
    logger = get_run_logger()
    events = pd.read_parquet(events_path)
    user_ids, product_ids = _entity_ids(snapshot)
    weights = dataset.events.weights

    trained: dict[str, TrainedModel] = {}
    if baseline:
        recent_demand = weighted_interactions(
            events, user_ids, product_ids, weights, half_life_days=popularity_half_life_days
        )
        trained[POPULARITY] = TrainedModel(
            name=POPULARITY,
            vectors=fit_popularity(recent_demand).save(
                run.sub("models", stage, f"{POPULARITY}.npz")
            ),
            params={"half_life_days": popularity_half_life_days},
        )

    interactions = weighted_interactions(events, user_ids, product_ids, weights)
    model, hybrid = fit_lightfm(
        interactions,
        sp.load_npz(features.user_features),
        sp.load_npz(features.item_features),
        lightfm,
        seed=seed,
        num_threads=num_threads,
    )
    logger.info(
        "trained %s on %d interactions (%d users, %d products)",
        HYBRID,
        interactions.nnz,
        *interactions.shape,
    )
    with run.sub("models", stage, f"{HYBRID}.lightfm.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    trained[HYBRID] = TrainedModel(
        name=HYBRID,
        vectors=hybrid.save(run.sub("models", stage, f"{HYBRID}.npz")),
        params=lightfm.model_dump() | {"seed": seed},
    )
    return trained
