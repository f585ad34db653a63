"""Tune: choose LightFM's hyperparameters and the blend's weights on the validation
transaction (each user's second-latest), never on the test one.

1. Randomized search (scikit-learn's `ParameterSampler`) over LightFM's no_components, loss,
   learning rate, L2 penalties, max_sampled, interaction half-life and whether the behaviour
   features help; every trial trains epoch by epoch and stops early when validation
   NDCG@10 stops improving; the first trial is the configured model. The configuration and
   its epochs: the cheapest check of any trial (epochs × `epoch_work`) within one
   standard error of the best one.
2. The same for last-item transitions (window, decays, normalisation) and item-kNN
   (neighbours, shrink, asymmetry, recency), each judged alone.
3. The other candidates are fitted on the same pre-validation events; the blend weights
   are drawn the same way (the first trial is the configured blend), then refined by
   rounds of coordinate search (`ParameterGrid` over one component's weight at a time).
   LightFM hybrid always keeps weight 1, so users without history are served from features.
The trial tables become Prefect table artifacts and `tuning/trials.json` in the run folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field
from scipy.stats import loguniform
from sklearn.model_selection import ParameterGrid, ParameterSampler

from tasks.dataset import DatasetSpec
from tasks.evaluation.evaluate import Evaluation, evaluation_for
from tasks.run_context import FeatureSet, RunFolder, Snapshot, Split
from tasks.training.models import FactorModel, minmax_rows
from tasks.training.models.lightfm_hybrid import (
    LightFMParams,
    fit_lightfm,
    one_standard_error_choice,
)
from tasks.training.train import (
    COMPONENTS,
    HYBRID,
    ITEM_KNN,
    TRANSITIONS,
    ModelConfig,
    TrainingData,
    fit_candidate,
    lightfm_features,
    training_data,
)

LIGHTFM_SPACE: dict[str, object] = {
    "no_components": [16, 32, 64, 128],
    "loss": ["warp", "bpr", "warp-kos"],
    "learning_rate": loguniform(0.01, 0.1),
    "item_alpha": loguniform(1e-8, 1e-4),
    "user_alpha": loguniform(1e-8, 1e-4),
    "max_sampled": [10, 30, 60],
    "behaviour_features": [True, False],
    "half_life_days": [None, 90.0, 365.0],
}
POOL_SIZE = 200  # each component's top products pooled when scoring blend weightings
# Relative to the hybrid's weight, fixed at 1 (only ratios matter after per-user min-max
# scaling); zero is listed three times so most weightings mix a few components, not all.
NEIGHBOUR_SPACES: dict[str, dict[str, list]] = {
    "transitions": {
        "window": [2, 3, 5, 8],
        "step_decay": [0.5, 0.7, 0.85],
        "backward": [0.0, 0.25, 0.5],
        "recency_decay": [0.3, 0.5, 0.7],
        "normalisation": [0.0, 0.5, 1.0],
    },
    "item_knn": {
        "neighbours": [20, 50, 100, 200],
        "shrink": [0.0, 10.0, 50.0],
        "alpha": [0.3, 0.5, 0.7],
        "recency_decay": [0.3, 0.5, 0.7, 0.9],
    },
}
BLEND_WEIGHTS: list[float] = [0.0, 0.0, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0]


class TuningParams(BaseModel):
    """How hard to search (on the validation transaction)."""

    neighbour_trials: int = Field(
        8,
        ge=1,
        le=500,
        description="settings tried for each of last-item transitions and item-kNN "
        "(cheap: no embeddings to train)",
    )
    lightfm_trials: int = Field(
        5, ge=1, le=200, description="LightFM configurations tried; 1 = the configured one only"
    )
    blend_trials: int = Field(60, ge=1, le=2000, description="random blend weightings tried first")
    blend_rounds: int = Field(
        2,
        ge=0,
        le=20,
        description="rounds of coordinate search from the best weighting so far "
        "(each tries every other weight for every component)",
    )
    search: bool = Field(
        True, description="off: use the configured LightFM parameters and blend as they are"
    )
    max_epochs: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="epochs a LightFM trial may train (it stops early); empty = twice the "
        "configured epochs",
    )
    eval_every: int = Field(5, ge=1, le=100, description="epochs between validation checks")
    patience: int = Field(
        2,
        ge=1,
        le=20,
        description="checks without a clear improvement (more than one standard error over "
        "the last clear one) before a trial stops",
    )
    max_users: int = Field(
        10_000, ge=100, le=10_000_000, description="validation users sampled to tune on"
    )
    max_train_users: int = Field(
        50_000,
        ge=100,
        le=100_000_000,
        description="users whose events the trials train on: the sampled validation users "
        "and a random sample of the others; the chosen settings then train on everyone",
    )


class TuningResult(BaseModel):
    config: ModelConfig
    validation_ndcg: dict[str, float]  # each candidate alone, and the chosen blend
    lightfm_trials: list[dict]
    lightfm_choice: dict = {}  # which trial and epochs, by the one-standard-error rule
    neighbour_trials: list[dict] = []
    blend_trials: list[dict]
    train_users: int = 0  # users sampled for the trials
    train_users_with_events: int = 0  # rows of the trials' training matrix that hold events


def tuning_users(
    interactions: sp.csr_matrix, validation_rows: np.ndarray, max_users: int, seed: int
) -> np.ndarray:
    """Mask of the users tuning trains on: every validation user, then users with events
    drawn at random (seeded) up to `max_users` in all; everyone if there are fewer."""
    keep = np.zeros(interactions.shape[0], dtype=bool)
    keep[validation_rows] = True
    others = np.flatnonzero((np.diff(interactions.indptr) > 0) & ~keep)
    room = max(max_users - int(keep.sum()), 0)
    if room >= len(others):
        return np.ones_like(keep)
    keep[np.random.default_rng(seed).choice(others, room, replace=False)] = True
    return keep


@dataclass
class _PoolChunk:
    pool: np.ndarray  # users × pool: product indices, the relevant one in column 0
    gathered: np.ndarray  # users × pool × components: each component's 0..1 score
    invalid: np.ndarray  # users × pool: a repeat of an earlier column, or excluded
    lower: np.ndarray  # users × pool: product index below the relevant one (ties)


@dataclass
class BlendPool:
    """What every blend weighting is judged on, computed once per tuning: for each
    validation user, the pool of products any weighting could rank in its top k (the union
    of every component's top `pool_size`, plus the relevant one) and each component's
    per-user min-max score of them. A product outside every component's top `pool_size`
    almost never enters a blend's top 10; the reported metrics are computed exactly
    (tasks/evaluation/evaluate.py). Judging a weighting then costs one small matrix product
    per user, however many rounds of weightings the search tries."""

    names: list[str]
    chunks: list[_PoolChunk]
    n_items: int
    n_users: int

    @classmethod
    def build(
        cls,
        components: dict[str, FactorModel],
        evaluation: Evaluation,
        pool_size: int = POOL_SIZE,
        chunk_size: int = 512,
    ) -> BlendPool:
        names = list(components)
        n_items = next(iter(components.values())).n_items
        chunks = []
        for begin in range(0, len(evaluation.rows), chunk_size):
            rows = evaluation.rows[begin : begin + chunk_size]
            truth = evaluation.truth[begin : begin + chunk_size]
            excluded = evaluation.exclude[rows].toarray()
            normalised, tops = [], []
            size = min(pool_size, n_items - 1)
            for name in names:
                scores = minmax_rows(components[name].scores(rows))
                scores[excluded] = -1.0  # below every eligible product (0..1 otherwise)
                normalised.append(scores)
                tops.append(np.argpartition(scores, n_items - size, axis=1)[:, n_items - size :])
            pool = np.hstack([truth[:, None], *tops])  # the relevant product is column 0
            order = np.argsort(pool, axis=1, kind="stable")
            ordered = np.take_along_axis(pool, order, axis=1)
            invalid = np.zeros(pool.shape, dtype=bool)
            np.put_along_axis(
                invalid, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1
            )  # every repeat after the first occurrence (column 0 is always kept)
            invalid |= np.take_along_axis(excluded, pool, axis=1)
            gathered = np.stack(
                [np.take_along_axis(scores, pool, axis=1) for scores in normalised], axis=2
            )
            chunks.append(_PoolChunk(pool, gathered, invalid, pool < truth[:, None]))
        return cls(names, chunks, n_items, len(evaluation.rows))

    def metrics(
        self, weightings: list[dict[str, float]], k: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validation NDCG@k and catalogue coverage@k (share of the products in anyone's
        top k; a tie at the k-th place may go either way) of every weighting. Ties go to
        the lower product index, as tasks/publishing/scoring.py selects."""
        weights = np.array(
            [[w.get(name, 0.0) for name in self.names] for w in weightings], dtype=np.float32
        )  # trials × components
        totals = np.zeros(len(weightings))
        shown = np.zeros((len(weightings), self.n_items), dtype=bool)
        for chunk in self.chunks:
            blended = chunk.gathered @ weights.T  # users × pool × trials
            blended[chunk.invalid] = -np.inf
            target = blended[:, :1, :]
            rank = (blended > target).sum(axis=1)
            rank += ((blended == target) & chunk.lower[:, :, None]).sum(axis=1)
            rank[~np.isfinite(target[:, 0, :])] = k  # an excluded relevant product: a miss
            totals += np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0).sum(axis=0)
            width = min(k, chunk.pool.shape[1])
            top = np.argpartition(-blended, width - 1, axis=1)[:, :width, :]  # users × k × trials
            listed = np.take_along_axis(blended, top, axis=1) > -np.inf
            products = np.take_along_axis(chunk.pool[:, :, None], top, axis=1)
            trial = np.broadcast_to(np.arange(len(weightings)), products.shape)
            shown[trial[listed], products[listed]] = True
        return totals / max(self.n_users, 1), shown.sum(axis=1) / max(self.n_items, 1)


def lightfm_candidates(base: LightFMParams, trials: int, seed: int) -> list[LightFMParams]:
    """The configured parameters first, then the same with the behaviour features switched
    (whether they help depends on the shop), then random draws from LIGHTFM_SPACE."""
    switched = base.model_copy(update={"behaviour_features": not base.behaviour_features})
    draws = ParameterSampler(LIGHTFM_SPACE, n_iter=max(trials - 2, 0), random_state=seed)
    return ([base, switched] + [base.model_copy(update=draw) for draw in draws])[:trials]


def blend_candidates(base: dict[str, float], trials: int, seed: int) -> list[dict[str, float]]:
    """The configured blend, each component alone (for the record), then random weightings
    in which the hybrid always counts."""
    space = {name: BLEND_WEIGHTS for name in COMPONENTS} | {HYBRID: [1.0]}
    draws = ParameterSampler(space, n_iter=max(trials - 1, 0), random_state=seed)
    alone = [{name: 1.0} for name in COMPONENTS]
    return [dict(base)] + alone + [dict(draw) for draw in draws]


def coordinate_moves(best: dict[str, float]) -> list[dict[str, float]]:
    """Every weighting that changes one component's weight of `best` (the hybrid stays at 1):
    one round of coordinate search, scored in one batch."""
    moves = []
    for name in COMPONENTS:
        if name == HYBRID:
            continue
        for grid in ParameterGrid({name: sorted(set(BLEND_WEIGHTS))}):
            candidate = {k: v for k, v in (best | grid).items() if v > 0}
            if candidate != {k: v for k, v in best.items() if v > 0}:
                moves.append(candidate)
    return moves


@dataclass
class _Check:
    """One validation check of one LightFM trial."""

    trial: int
    epochs: int
    gains: np.ndarray  # per validation user
    factors: FactorModel  # the validation users' rows only
    work_per_epoch: float  # `epoch_work` of the trial

    @property
    def cost(self) -> float:
        return self.work_per_epoch * self.epochs


def epoch_work(
    interactions: sp.csr_matrix,
    user_features: sp.csr_matrix | None,
    item_features: sp.csr_matrix | None,
    no_components: int,
) -> float:
    """What one LightFM epoch computes, up to a constant: for every interaction, the
    embeddings of the user's and the product's feature rows (one row each for identity
    only). A count, not measured seconds, so the same data always chooses the same model
    (with one thread a rerun reproduces the published lists)."""

    def row_sizes(features: sp.csr_matrix | None, n: int) -> np.ndarray:
        return np.ones(n) if features is None else np.diff(features.indptr).astype(np.float64)

    n_users, n_items = interactions.shape
    per_user = np.diff(interactions.indptr).astype(np.float64)
    per_item = np.bincount(interactions.indices, minlength=n_items).astype(np.float64)
    rows = per_user @ row_sizes(user_features, n_users)
    rows += per_item @ row_sizes(item_features, n_items)
    return float(rows * (no_components + 1))  # + the bias


class _CheckRecorder:
    """The `validate` callback of one trial: scores each check on the validation users,
    keeps their rows of its factors, and times the training between checks."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self.checks: list[tuple[np.ndarray, FactorModel]] = []
        self.training_seconds = 0.0
        self._resumed = time.perf_counter()

    def __call__(self, factors: FactorModel) -> np.ndarray:
        self.training_seconds += time.perf_counter() - self._resumed
        gains = self.evaluation.gains(factors)
        self.checks.append((gains, factors.only_users(self.evaluation.rows)))
        self._resumed = time.perf_counter()
        return gains


def search_lightfm(
    data: TrainingData,
    evaluation: Evaluation,
    base: LightFMParams,
    params: TuningParams,
    max_epochs: int,
    seed: int,
    num_threads: int,
) -> tuple[LightFMParams, FactorModel, list[dict], dict]:
    """Train every LightFM trial epoch by epoch (validation checks every
    `params.eval_every` epochs, early stop), then choose a configuration and its epochs
    among the checks of all trials by the one-standard-error rule, the cost being epochs ×
    `epoch_work`: every later training of the choice (the evaluated hybrid and CF
    candidate on all users, the refit) pays that cost again.
    Returns (chosen parameters with their epochs, its factors on the validation users,
    one row per trial, the choice)."""
    logger = get_run_logger()
    checks: list[_Check] = []
    rows: list[dict] = []
    candidates = lightfm_candidates(base, params.lightfm_trials, seed)
    for trial, candidate in enumerate(candidates):
        started = time.perf_counter()
        interactions = data.decayed_interactions(candidate.half_life_days)
        user_features, item_features = lightfm_features(data, candidate)
        work = epoch_work(interactions, user_features, item_features, candidate.no_components)
        recorder = _CheckRecorder(evaluation)  # times the training from here
        _, _, curve = fit_lightfm(
            interactions,
            user_features,
            item_features,
            candidate.model_copy(update={"epochs": max_epochs}),
            seed=seed,
            num_threads=num_threads,
            validate=recorder,
            eval_every=params.eval_every,
            patience=params.patience,
        )
        assert curve is not None  # validated training always has one
        per_epoch = recorder.training_seconds / curve.epochs[-1]
        checks += [
            _Check(trial, epochs, gains, factors, work)
            for epochs, (gains, factors) in zip(curve.epochs, recorder.checks, strict=True)
        ]
        rows.append(
            {"trial": trial}
            | candidate.model_dump(exclude={"epochs"})
            | {
                "best_epochs": curve.epochs[curve.best],
                "chosen_epochs": curve.chosen_epochs,
                "epochs_trained": curve.epochs[-1],
                "validation_NDCG@10": round(curve.scores[curve.best], 5),
                "chosen_validation_NDCG@10": round(curve.chosen_score, 5),
                "curve": [
                    [e, round(v, 5)] for e, v in zip(curve.epochs, curve.scores, strict=True)
                ],
                "work_per_epoch": work,
                "seconds_per_epoch": round(per_epoch, 2),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        logger.info(
            "LightFM trial %d/%d: validation NDCG@10 %.4f at %d epochs (%d trained, %.1f s "
            "per epoch), %.0f s",
            trial + 1,
            params.lightfm_trials,
            curve.scores[curve.best],
            curve.epochs[curve.best],
            curve.epochs[-1],
            per_epoch,
            rows[-1]["seconds"],
        )
    best, chosen = one_standard_error_choice(
        [check.gains for check in checks], [check.cost for check in checks]
    )
    top, pick = checks[best], checks[chosen]
    difference = top.gains - pick.gains
    choice = {
        "rule": "the cheapest check (epochs × the embedding rows an epoch updates) within "
        "one standard error of the best check's per-user validation NDCG@10",
        "trial": pick.trial,
        "epochs": pick.epochs,
        "validation_NDCG@10": round(float(pick.gains.mean()), 5),
        "relative_cost": round(pick.cost / top.cost, 3) if top.cost > 0 else 1.0,
        "best_trial": top.trial,
        "best_epochs": top.epochs,
        "best_validation_NDCG@10": round(float(top.gains.mean()), 5),
        "standard_error": round(float(difference.std(ddof=1) / np.sqrt(len(difference))), 5)
        if len(difference) > 1
        else 0.0,
    }
    logger.info(
        "LightFM chosen: trial %d at %d epochs (validation NDCG@10 %.4f, %.0f%% of the cost "
        "of the best check: trial %d at %d epochs, %.4f)",
        pick.trial + 1,
        pick.epochs,
        choice["validation_NDCG@10"],
        100 * choice["relative_cost"],
        top.trial + 1,
        top.epochs,
        choice["best_validation_NDCG@10"],
    )
    chosen_params = candidates[pick.trial].model_copy(update={"epochs": pick.epochs})
    return chosen_params, pick.factors, rows, choice


@task(name="tune")
def tune(
    split: Split,
    snapshot: Snapshot,
    features: FeatureSet,
    dataset: DatasetSpec,
    config: ModelConfig,
    params: TuningParams,
    seed: int,
    num_threads: int,
    run: RunFolder,
    min_coverage: float = 0.0,
) -> TuningResult:
    """Search on (pre-validation events → validation transaction); return the chosen config.
    The blend chosen is the best by NDCG@10 among the weightings with the hybrid whose
    catalogue coverage@10 reaches `min_coverage` (the gate's), if any does."""
    logger = get_run_logger()
    if not params.search:
        logger.info("tuning is off: LightFM %s, blend %s", config.lightfm, config.blend)
        return TuningResult(config=config, validation_ndcg={}, lightfm_trials=[], blend_trials=[])
    max_epochs = params.max_epochs or 2 * config.lightfm.epochs
    evaluation = evaluation_for(split.tune_train_events, split.validation, snapshot, dataset)
    evaluation = evaluation.sample(params.max_users, seed)
    data = training_data(
        pd.read_parquet(split.tune_train_events), snapshot, features, dataset, config
    )
    keep = tuning_users(data.interactions, evaluation.rows, params.max_train_users, seed)
    if not keep.all():
        data = data.for_users(keep)
    logger.info(
        "tuning trains on %d of %d users (%d validation users among them)",
        int(keep.sum()),
        len(keep),
        len(evaluation.rows),
    )

    best_params, best_factors, lightfm_rows, lightfm_choice = search_lightfm(
        data, evaluation, config.lightfm, params, max_epochs, seed, num_threads
    )
    tuned = config.model_copy(update={"lightfm": best_params})

    neighbour_rows: list[dict] = []
    for field, name in (("transitions", TRANSITIONS), ("item_knn", ITEM_KNN)):
        base = getattr(tuned, field)
        draws = ParameterSampler(
            NEIGHBOUR_SPACES[field], n_iter=max(params.neighbour_trials - 1, 0), random_state=seed
        )
        scored = []
        for trial, settings in enumerate([base] + [base.model_copy(update=d) for d in draws]):
            trial_config = tuned.model_copy(update={field: settings})
            score = evaluation.ndcg(fit_candidate(name, data, trial_config, seed, num_threads))
            scored.append((score, -trial, settings))
            neighbour_rows.append(
                {"candidate": name, "trial": trial}
                | settings.model_dump()
                | {"validation_NDCG@10": round(score, 5)}
            )
        tuned = tuned.model_copy(update={field: max(scored, key=lambda row: row[:2])[2]})

    components = {
        name: best_factors
        if name == HYBRID
        else fit_candidate(name, data, tuned, seed, num_threads, lightfm_params=best_params)
        for name in COMPONENTS
    }
    weightings = blend_candidates(config.blend, params.blend_trials, seed)
    pool = BlendPool.build(components, evaluation)
    scores, coverage = pool.metrics(weightings)

    def eligible_weightings() -> np.ndarray:
        """With the hybrid, and (if any can) the catalogue coverage the gate asks for."""
        hybrid = np.array([weights.get(HYBRID, 0) > 0 for weights in weightings])
        covered = hybrid & (coverage >= min_coverage)
        return covered if covered.any() else hybrid

    for _ in range(params.blend_rounds):
        eligible = eligible_weightings()
        best = weightings[int(np.flatnonzero(eligible)[np.argmax(scores[eligible])])]
        refined = [w for w in coordinate_moves(best) if w not in weightings]
        if not refined:
            break
        weightings += refined
        more_scores, more_coverage = pool.metrics(refined)
        scores = np.concatenate([scores, more_scores])
        coverage = np.concatenate([coverage, more_coverage])
    eligible = eligible_weightings()
    if not (coverage[eligible] >= min_coverage).all():
        logger.warning(
            "no blend weighting reaches catalogue coverage@10 %.3f on the validation users "
            "(best %.4f): the gate will refuse the blend",
            min_coverage,
            coverage.max(),
        )
    chosen = int(np.flatnonzero(eligible)[np.argmax(scores[eligible])])
    blend_rows = [
        {"trial": t}
        | {name: weights.get(name, 0.0) for name in COMPONENTS}
        | {
            "validation_NDCG@10": round(float(score), 5),
            "validation_coverage@10": round(float(covered), 5),
            "eligible": bool(ok),
        }
        for t, (weights, score, covered, ok) in enumerate(
            zip(weightings, scores, coverage, eligible, strict=True)
        )
    ]
    chosen_blend = {name: w for name, w in weightings[chosen].items() if w > 0}
    tuned = tuned.model_copy(update={"blend": chosen_blend})
    alone = {
        next(iter(w)): float(s) for w, s in zip(weightings, scores, strict=True) if len(w) == 1
    }
    result = TuningResult(
        config=tuned,
        validation_ndcg=alone | {"blend": float(scores[chosen])},
        lightfm_trials=lightfm_rows,
        lightfm_choice=lightfm_choice,
        neighbour_trials=neighbour_rows,
        blend_trials=blend_rows,
        train_users=int(keep.sum()),
        train_users_with_events=int((np.diff(data.interactions.indptr) > 0).sum()),
    )
    run.sub("tuning", "trials.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=2)
    )
    create_table_artifact(
        key="lightfm-tuning",
        table=lightfm_rows,
        description=f"LightFM randomized search on {len(evaluation.rows)} validation users; "
        f"chosen: {best_params.model_dump()}",
    )
    create_table_artifact(
        key="neighbour-tuning",
        table=neighbour_rows,
        description="last-item transitions and item-kNN settings on the validation purchase; "
        f"chosen: transitions {tuned.transitions.model_dump()}, "
        f"item-kNN {tuned.item_knn.model_dump()}",
    )
    ranked = sorted(blend_rows, key=lambda row: -row["validation_NDCG@10"])
    create_table_artifact(
        key="blend-tuning",
        table=ranked[:50],
        description=f"blend weights, best 50 of {len(blend_rows)} trials; chosen: {chosen_blend}",
    )
    logger.info(
        "tuned on %d validation users: LightFM %s; blend %s (validation NDCG@10 %.4f)",
        len(evaluation.rows),
        best_params.model_dump(),
        chosen_blend,
        scores[chosen],
    )
    return result
