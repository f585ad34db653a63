"""Evaluate: rank ALL products for each test user (already-bought ones excluded) and score
the held-out latest transaction with precision, recall, NDCG and hit rate at k."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact

from tasks.dataset import DatasetSpec
from tasks.interactions import bought_matrix, index_of
from tasks.models import FactorModel
from tasks.run_context import Snapshot, Split, TrainedModel
from tasks.scoring import top_n

DEFAULT_KS: tuple[int, ...] = (10, 20)


def ranking_metrics(ranked: np.ndarray, truth: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Metrics for one relevant product per user.

    ranked: (n_users, >= max(ks)) product indices, best first; truth: (n_users,) indices.
    """
    hit_at = (ranked == truth[:, None]) & (ranked >= 0)
    position = np.where(hit_at.any(axis=1), hit_at.argmax(axis=1), np.iinfo(np.int64).max)
    metrics: dict[str, float] = {}
    for k in ks:
        hit = position < k
        gain = np.where(hit, 1.0 / np.log2(np.minimum(position, k) + 2.0), 0.0)
        metrics[f"NDCG@{k}"] = float(gain.mean()) if len(truth) else 0.0
        metrics[f"HR@{k}"] = float(hit.mean()) if len(truth) else 0.0
        metrics[f"precision@{k}"] = float(hit.mean() / k) if len(truth) else 0.0
        metrics[f"recall@{k}"] = float(hit.mean()) if len(truth) else 0.0
    reciprocal = np.where(position < ranked.shape[1], 1.0 / (position + 1.0), 0.0)
    metrics["MRR"] = float(reciprocal.mean()) if len(truth) else 0.0
    return metrics


@task(name="evaluate")
def evaluate_candidates(
    models: dict[str, TrainedModel],
    split: Split,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Every candidate's metrics on the same test users; publishes a metrics table artifact."""
    user_ids = pd.read_parquet(snapshot.tables["users"], columns=["user_id"])["user_id"]
    product_ids = pd.read_parquet(snapshot.tables["products"], columns=["product_id"])["product_id"]
    train = pd.read_parquet(split.train_events)
    test = pd.read_parquet(split.test)
    test = test[~test["repeat"]]
    exclude = bought_matrix(train, user_ids, product_ids, dataset.events.transaction_types)
    test_rows = index_of(test["user_id"], user_ids)
    truth = index_of(test["product_id"], product_ids)

    results: dict[str, dict[str, float]] = {}
    for name, trained in models.items():
        ranked, _ = top_n(FactorModel.load(trained.vectors), test_rows, max(ks), exclude=exclude)
        results[name] = ranking_metrics(ranked, truth, ks) | {
            "n_test_users": int(len(test_rows)),
            "catalog_coverage@10": float(
                len(np.unique(ranked[:, :10][ranked[:, :10] >= 0])) / max(len(product_ids), 1)
            ),
        }

    create_table_artifact(
        key="candidate-metrics",
        table=[
            {"candidate": name} | {k: round(v, 5) for k, v in m.items()}
            for name, m in results.items()
        ],
        description=(
            f"Latest-transaction split: {split.n_test_users} test users ranked over all "
            f"{len(product_ids)} products ({split.n_test_repeat} repeat purchases not rankable)"
        ),
    )
    return results
