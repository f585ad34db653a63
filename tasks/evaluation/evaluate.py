"""Evaluate: rank ALL products for each test user (already-bought ones excluded) and score
the held-out latest transaction: precision, recall, NDCG, MAP and hit rate at 5, 10 and 20,
MRR, catalogue coverage, novelty and intra-list diversity, per segment (cold users, warm
users, new products) and with a bootstrap 95% interval of NDCG@10. Vectorised: one matrix
operation per chunk of users, never a loop over users."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel

from tasks.dataset import DatasetSpec
from tasks.evaluation.metrics import (
    BOOTSTRAP_SAMPLES,
    KS,
    NO_RULES,
    PRIMARY,
    CandidateMetrics,
    bootstrap_means,
)
from tasks.evaluation.settle import BlendSettlement, settle, single_blend, tuned_weights
from tasks.evaluation.stored_champion import StoredChampion, stored_champion_gains
from tasks.features.interactions import bought_matrix, index_of, instants
from tasks.publishing.rules import ListRules, ranked_under_rules
from tasks.publishing.scoring import top_n
from tasks.run_context import RunFolder, Snapshot, Split, TrainedModel
from tasks.training.models import Scorer, families, load_scorer
from tasks.training.train import BLEND, POPULARITY, ModelConfig, category_codes

if TYPE_CHECKING:  # (the registry imports the metrics document, which imports the canary)
    from tasks.training.registry import RegistryEntry

DEFAULT_KS: tuple[int, ...] = KS
NEW_PRODUCT_MAX_BUYS = 5  # a test product bought at most this often in training is "new"
COLD_MAX_TRANSACTIONS = 1  # a test user with at most this many prior transactions is "cold"
HEALTH_CHUNK = 2048  # users whose full score rows are checked at once
RULE_COST_USERS = 10_000  # test users (a seeded sample) the publishing rules' cost is measured on


def hit_positions(ranked: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0-based position of each user's relevant product in `ranked`; int64 max if absent."""
    hit_at = (ranked == truth[:, None]) & (ranked >= 0)
    return np.where(hit_at.any(axis=1), hit_at.argmax(axis=1), np.iinfo(np.int64).max)


def ndcg_gains(position: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with one relevant product (ideal DCG = 1)."""
    return np.where(position < k, 1.0 / np.log2(np.minimum(position, k) + 2.0), 0.0)


def ranking_metrics(ranked: np.ndarray, truth: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Metrics for one relevant product per user.

    ranked: (n_users, >= max(ks)) product indices, best first; truth: (n_users,) indices.
    """
    position = hit_positions(ranked, truth)
    mean = (lambda values: float(values.mean())) if len(truth) else (lambda values: 0.0)
    metrics: dict[str, float] = {}
    for k in ks:
        hit = position < k
        metrics[f"NDCG@{k}"] = mean(ndcg_gains(position, k))
        metrics[f"HR@{k}"] = mean(hit)
        metrics[f"precision@{k}"] = mean(hit) / k
        metrics[f"recall@{k}"] = mean(hit)
        # one relevant product: average precision = precision at its position
        metrics[f"MAP@{k}"] = mean(np.where(hit, 1.0 / (position + 1.0), 0.0))
    metrics["MRR"] = mean(np.where(position < ranked.shape[1], 1.0 / (position + 1.0), 0.0))
    return metrics


def bootstrap_interval(
    values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the mean of `values`, resampling users with replacement."""
    low, high = np.percentile(bootstrap_means(values, samples, seed), [2.5, 97.5])
    return float(low), float(high)


def list_quality(
    ranked: np.ndarray, k: int, popularity: np.ndarray, categories: np.ndarray | None
) -> dict[str, float]:
    """Coverage (share of the catalogue recommended to anyone), novelty (mean self-information
    -log2 of the share of users who interacted with a product) and intra-list diversity (share
    of product pairs in a list from different categories) of the top-k lists."""
    top = ranked[:, :k]
    valid = top >= 0
    n_items = len(popularity)
    quality = {
        f"catalog_coverage@{k}": float(len(np.unique(top[valid])) / max(n_items, 1)),
        f"novelty@{k}": float(-np.log2(np.maximum(popularity[top[valid]], 1e-12)).mean())
        if valid.any()
        else 0.0,
    }
    if categories is not None and len(top):
        cats = np.where(valid, categories[np.maximum(top, 0)], -1)
        same = (cats[:, :, None] == cats[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        pairs = valid.sum(1) * (valid.sum(1) - 1)
        different = pairs - (same.sum((1, 2)) - valid.sum(1))
        quality[f"diversity@{k}"] = float(np.mean(different / np.maximum(pairs, 1)))
    return quality


def score_health(
    scorer: Scorer, rows: np.ndarray | None = None, chunk: int = HEALTH_CHUNK
) -> dict[str, float]:
    """Share of NaN scores, and share of users whose every product gets the same score, over
    `rows` (default: every user), a chunk of users at a time (memory: chunk × products)."""
    rows = np.arange(scorer.n_users) if rows is None else np.asarray(rows)
    nan = constant = 0
    for begin in range(0, len(rows), chunk):
        scores = scorer.scores(rows[begin : begin + chunk])
        nan += int(np.isnan(scores).sum())
        with warnings.catch_warnings():  # a row of NaN only: counted above, not constant
            warnings.simplefilter("ignore", RuntimeWarning)
            constant += int((np.nanmax(scores, axis=1) == np.nanmin(scores, axis=1)).sum())
    return {
        "nan_score_share": nan / max(len(rows) * scorer.n_items, 1),
        "constant_score_share": constant / max(len(rows), 1),
    }


def rank_users(
    scorer: Scorer, rows: np.ndarray, n: int, exclude: sp.csr_matrix | None
) -> np.ndarray:
    ranked, _ = top_n(scorer, rows, n, exclude=exclude)
    return ranked


class Evaluation:
    """Everything fixed about one held-out set: who is tested, on what, what is excluded."""

    def __init__(
        self,
        train: pd.DataFrame,
        held_out: pd.DataFrame,
        user_ids: pd.Series,
        product_ids: pd.Series,
        transaction_types: list[str],
        categories: np.ndarray | None = None,
    ) -> None:
        held_out = held_out[~held_out["repeat"]]
        self.rows = index_of(held_out["user_id"], user_ids)
        self.truth = index_of(held_out["product_id"], product_ids)
        self.user_ids = held_out["user_id"].to_numpy()
        self.bought_at = (  # when each held-out purchase happened (UTC, naive), NaT if unknown
            instants(held_out["occurred_at"])
            if "occurred_at" in held_out
            else np.full(len(held_out), np.datetime64("NaT"), "datetime64[ns]")
        )
        self.exclude = bought_matrix(train, user_ids, product_ids, transaction_types)
        prior = np.asarray(self.exclude.sum(axis=1)).ravel()[self.rows]
        buys = np.asarray(self.exclude.sum(axis=0)).ravel()
        seen = bought_matrix(train, user_ids, product_ids, list(train["event_type"].unique()))
        self.popularity = np.asarray(seen.sum(axis=0)).ravel() / max(len(user_ids), 1)
        self.segments = {
            "cold_users": prior <= COLD_MAX_TRANSACTIONS,
            "warm_users": prior > COLD_MAX_TRANSACTIONS,
            "new_products": buys[self.truth] <= NEW_PRODUCT_MAX_BUYS,
        }
        self.categories = None if categories is None or (categories < 0).all() else categories

    def sample(self, max_users: int, seed: int) -> Evaluation:
        """The same evaluation on at most `max_users` users drawn at random (seeded)."""
        if len(self.rows) <= max_users:
            return self
        return self.only(
            np.sort(np.random.default_rng(seed).choice(len(self.rows), max_users, False))
        )

    def only(self, keep: np.ndarray) -> Evaluation:
        """The same evaluation on the test users `keep` selects (a mask or positions)."""
        kept = copy.copy(self)
        kept.rows, kept.truth = self.rows[keep], self.truth[keep]
        kept.user_ids, kept.bought_at = self.user_ids[keep], self.bought_at[keep]
        kept.segments = {name: members[keep] for name, members in self.segments.items()}
        return kept

    def gains(self, scorer: Scorer, k: int = 10) -> np.ndarray:
        """Per-user NDCG@k, in the order of self.rows (what tuning compares, user by user)."""
        if len(self.rows) == 0:
            return np.zeros(0)
        position = hit_positions(rank_users(scorer, self.rows, k, self.exclude), self.truth)
        return ndcg_gains(position, k)

    def ndcg(self, scorer: Scorer, k: int = 10) -> float:
        """NDCG@k only: what tuning maximises."""
        gains = self.gains(scorer, k)
        return float(gains.mean()) if len(gains) else 0.0

    def full(
        self, scorer: Scorer, ks: tuple[int, ...] = DEFAULT_KS
    ) -> tuple[dict[str, float], np.ndarray]:
        """(every metric, per-user NDCG@10 in the order of self.rows)."""
        ranked = rank_users(scorer, self.rows, max(ks), self.exclude)
        metrics = ranking_metrics(ranked, self.truth, ks)
        gains = ndcg_gains(hit_positions(ranked, self.truth), 10)
        low, high = bootstrap_interval(gains)
        metrics |= {f"{PRIMARY}_ci95_low": low, f"{PRIMARY}_ci95_high": high}
        metrics |= list_quality(ranked, 10, self.popularity, self.categories)
        metrics |= score_health(scorer, self.rows)  # every test user, not a sample
        metrics["n_test_users"] = int(len(self.rows))
        for segment, members in self.segments.items():
            metrics[f"{PRIMARY}[{segment}]"] = (
                float(gains[members].mean()) if members.any() else 0.0
            )
            metrics[f"n[{segment}]"] = int(members.sum())
        return metrics, gains


def rule_costs(
    scorer: Scorer, evaluation: Evaluation, rules: dict[str, ListRules], k: int = 10
) -> dict[str, float]:
    """NDCG@k of the scorer with no publishing rule (`none`), then with each rule alone and
    with all of them (rules: name → compiled rules), on the evaluation's users."""
    costs = {NO_RULES: evaluation.ndcg(scorer, k)}
    for name, compiled in rules.items():
        ranked, _ = ranked_under_rules(
            scorer, evaluation.rows, k, compiled, exclude=evaluation.exclude
        )
        gains = ndcg_gains(hit_positions(ranked, evaluation.truth), k)
        costs[name] = float(gains.mean()) if len(gains) else 0.0
    return costs


def compiled_rules(
    snapshot: Snapshot, dataset: DatasetSpec, now: pd.Timestamp
) -> dict[str, ListRules]:
    """Each configured list-changing rule alone, and all of them (`all`)."""
    spec = dataset.publishing
    if not spec.active_rules():
        return {}
    users = snapshot.read("users")
    products = snapshot.read("products")
    column = dataset.category_column()
    variants = {rule: spec.only(rule) for rule in spec.active_rules()} | {"all": spec}
    return {
        name: ListRules.compile(variant, users, products, column, now)
        for name, variant in variants.items()
    }


def evaluation_for(
    train_path: Path, held_out_path: Path, snapshot: Snapshot, dataset: DatasetSpec
) -> Evaluation:
    user_ids = snapshot.read("users", columns=["user_id"])["user_id"]
    product_ids = snapshot.read("products", columns=["product_id"])["product_id"]
    return Evaluation(
        pd.read_parquet(train_path),
        pd.read_parquet(held_out_path),
        user_ids,
        product_ids,
        dataset.events.transaction_types,
        category_codes(snapshot, dataset, len(product_ids)),
    )


class Evaluated(BaseModel):
    """Every candidate's metrics, the comparison with the champion's stored model, and
    whether the tuned blend or one candidate alone is judged."""

    metrics: dict[str, CandidateMetrics]
    stored_champion: StoredChampion | None = None
    blend_settlement: BlendSettlement | None = None
    judged_blend: TrainedModel | None = None  # the candidate alone, when it beat the blend

    def judged(
        self, candidates: dict[str, TrainedModel], config: ModelConfig
    ) -> tuple[dict[str, TrainedModel], ModelConfig]:
        """The candidates and model configuration of what was judged: the tuned ones, or
        with the blend that the test split settled on."""
        if self.judged_blend is None or self.blend_settlement is None:
            return candidates, config
        weights = self.blend_settlement.judged
        return candidates | {BLEND: self.judged_blend}, config.model_copy(update={"blend": weights})


def compare_stored_champion(
    champion: RegistryEntry,
    challenger: TrainedModel,
    evaluation: Evaluation,
    snapshot: Snapshot,
    run: RunFolder,
) -> StoredChampion:
    """The challenger against the champion's stored model on the test users who bought
    after its data (tasks/evaluation/stored_champion.py); their per-user NDCG@10 go to
    `evaluation/stored_champion_ndcg.parquet`."""
    users = snapshot.read("users", columns=["user_id"])["user_id"]
    products = snapshot.read("products", columns=["product_id"])["product_id"]
    record, gains = stored_champion_gains(
        run.data_root, champion, evaluation, load_scorer(challenger.vectors), users, products
    )
    if gains is not None:
        gains.to_parquet(run.stored_champion_ndcg, index=False)
    return record


@task(name="evaluate")
def evaluate_candidates(
    models: dict[str, TrainedModel],
    split: Split,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
    ks: tuple[int, ...] = DEFAULT_KS,
    max_users: int | None = None,
    seed: int = 0,
    champion: RegistryEntry | None = None,
) -> Evaluated:
    """Every candidate's metrics on the same test users (a seeded sample of `max_users` when
    there are more); writes per-user NDCG@10 to `evaluation/per_user_ndcg.parquet` (for
    paired comparisons) and a table artifact. With a champion, the blend is also compared
    with the champion's stored model (`compare_stored_champion`)."""
    evaluation = evaluation_for(split.train_events, split.test, snapshot, dataset)
    if max_users is not None:
        evaluation = evaluation.sample(max_users, seed)
    results: dict[str, CandidateMetrics] = {}
    per_user = {"user_id": evaluation.user_ids}
    for name, trained in models.items():
        measured, per_user[name] = evaluation.full(load_scorer(trained.vectors), ks)
        results[name] = CandidateMetrics.model_validate(measured)
    stored, settlement, judged = None, None, None
    if BLEND in models:
        # never worse than one candidate alone (tasks/evaluation/settle.py)
        # (popularity is the gate's baseline: a blend that loses to it is refused, not replaced)
        singles = [name for name in families.names() if name in models and name != POPULARITY]
        settlement = settle(results, singles, tuned_weights(models[BLEND]))
        if settlement.replaced:
            judged = single_blend(models, settlement, run.sub("models", "evaluate", "x").parent)
            models = models | {BLEND: judged}
            measured, per_user[BLEND] = evaluation.full(load_scorer(judged.vectors), ks)
            results[BLEND] = CandidateMetrics.model_validate(measured)
            get_run_logger().warning(settlement.describe())
        else:
            get_run_logger().info(settlement.describe())
        if champion is not None:
            stored = compare_stored_champion(champion, models[BLEND], evaluation, snapshot, run)
        # what the shop's publishing rules cost the published candidate
        now = pd.read_parquet(split.train_events, columns=["occurred_at"])["occurred_at"].max()
        rules = compiled_rules(snapshot, dataset, now)
        # informational (the gate does not read it): every rule ranks the blend again
        costs = rule_costs(
            load_scorer(models[BLEND].vectors), evaluation.sample(RULE_COST_USERS, seed), rules
        )
        results[BLEND] = results[BLEND].with_rule_costs(costs)
        if rules:
            create_table_artifact(
                key="rule-costs",
                table=[
                    {"rules": rule, PRIMARY: round(v, 5), "cost": round(costs[NO_RULES] - v, 5)}
                    for rule, v in costs.items()
                ],
                description="NDCG@10 of the blend with each publishing rule of dataset.toml "
                f"(on at most {RULE_COST_USERS:,} of the test users)",
            )
    pd.DataFrame(per_user).to_parquet(run.per_user_ndcg, index=False)

    create_table_artifact(
        key="candidate-metrics",
        table=[
            {"candidate": name}
            | {k: round(v, 5) for k, v in m.flat().items() if "@5" not in k and "@20" not in k}
            for name, m in results.items()
        ],
        description=(
            f"Latest-transaction split: {len(evaluation.rows)} of {split.n_test_users} test "
            "users ranked over all "
            f"products ({split.n_test_repeat} repeat purchases not rankable); k = 5 and 20 "
            "are in metrics.json"
        ),
    )
    return Evaluated(
        metrics=results, stored_champion=stored, blend_settlement=settlement, judged_blend=judged
    )
