"""Tune: choose LightFM's hyperparameters, the settings of the other families that declare
a search space, and the blend's weights on the validation transaction (each user's
second-latest), never on the test one.

1. Randomized search (scikit-learn's `ParameterSampler`) over LightFM's no_components, loss,
   learning rate, L2 penalties, max_sampled, interaction half-life and whether the behaviour
   features help; every trial trains epoch by epoch and stops early when validation
   NDCG@10 stops improving; the first trial is the configured model. The configuration and
   its epochs: the cheapest check of any trial (epochs × `epoch_work`) within one
   standard error of the best one.
2. The same for every family tuned alone (its `space`: last-item transitions' window,
   decays and normalisation; item-kNN's neighbours, shrink, asymmetry and recency), each
   judged by itself.
3. The other candidates are fitted on the same pre-validation events; the blend weights
   are drawn the same way (the first trial is the configured blend), then refined by
   rounds of coordinate search (`ParameterGrid` over one component's weight at a time).
   LightFM hybrid always keeps weight 1, so users without history are served from features.
The trials (`Trial`: LightFM, alone, blend) become Prefect table artifacts and
`tuning/trials.json` in the run folder.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from sklearn.model_selection import ParameterGrid, ParameterSampler

from tasks.dataset import DatasetSpec
from tasks.evaluation.evaluate import Evaluation, evaluation_for
from tasks.run_context import FeatureSet, RunFolder, Snapshot, Split
from tasks.training.models import FactorModel, families, minmax_rows
from tasks.training.models.family import Family
from tasks.training.models.lightfm_hybrid import (
    LightFMParams,
    fit_lightfm,
    lightfm_features,
    one_standard_error_choice,
)
from tasks.training.train import (
    HYBRID,
    ModelConfig,
    TrainingContext,
    TrainingData,
    fit_candidate,
    training_data,
)

POOL_SIZE = 200  # each component's top products pooled when scoring blend weightings
# Relative to the hybrid's weight, fixed at 1 (only ratios matter after per-user min-max
# scaling); zero is listed three times so most weightings mix a few components, not all.
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


ValidationNDCG = Annotated[
    float, Field(alias="validation_NDCG@10", description="on the validation purchase")
]


class Trial(BaseModel):
    """One tuning trial as `tuning/trials.json` and the tuning artifacts record it. Every key
    a subclass does not declare is one of the trial's settings (a family's parameters, or
    one weight per candidate); the settings follow what the trial is (`candidate`, `trial`)
    and precede how it did, the order the records have always had."""

    model_config = ConfigDict(extra="allow", validate_by_name=True, serialize_by_alias=True)

    trial: int = Field(description="its number in its search; 0: the configured settings")

    @model_serializer(mode="wrap")
    def _settings_after_the_trial(self, handler: SerializerFunctionWrapHandler):
        dumped = handler(self)
        leading = {key: dumped.pop(key) for key in ("candidate", "trial") if key in dumped}
        settings = {key: dumped.pop(key) for key in self.model_extra or {} if key in dumped}
        return leading | settings | dumped


class LightFMTrial(Trial):
    """A LightFM configuration (settings: LightFMParams but the epochs), trained epoch by
    epoch and checked every `eval_every` epochs."""

    best_epochs: int = Field(description="the check with the best validation NDCG@10")
    chosen_epochs: int = Field(description="by the one-standard-error rule within the trial")
    epochs_trained: int
    validation_ndcg: ValidationNDCG  # at best_epochs
    chosen_validation_ndcg: float = Field(alias="chosen_validation_NDCG@10")
    curve: list[tuple[int, float]] = Field(description="(epochs, validation NDCG@10) per check")
    work_per_epoch: float = Field(description="`epoch_work`: the cost the choice weighs")
    seconds_per_epoch: float
    seconds: float


class NeighbourTrial(Trial):
    """Settings of a family tuned alone (its parameters), fitted and judged by itself."""

    candidate: str
    validation_ndcg: ValidationNDCG


class BlendTrial(Trial):
    """A blend weighting (settings: one weight per candidate), judged on the pooled
    validation ranking (`BlendPool`)."""

    validation_ndcg: ValidationNDCG
    validation_coverage: float = Field(alias="validation_coverage@10")
    eligible: bool = Field(description="with the hybrid and, if any can, the gate's coverage")


class TuningResult(BaseModel):
    config: ModelConfig
    validation_ndcg: dict[str, float]  # each candidate alone, and the chosen blend
    lightfm_trials: list[LightFMTrial]
    lightfm_choice: dict = {}  # which trial and epochs, by the one-standard-error rule
    neighbour_trials: list[NeighbourTrial] = []
    blend_trials: list[BlendTrial]
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
    (whether they help depends on the shop), then random draws from the hybrid's space."""
    space = families.family(HYBRID).space or {}
    switched = base.model_copy(update={"behaviour_features": not base.behaviour_features})
    draws = ParameterSampler(space, n_iter=max(trials - 2, 0), random_state=seed)
    return ([base, switched] + [base.model_copy(update=draw) for draw in draws])[:trials]


def blend_candidates(base: dict[str, float], trials: int, seed: int) -> list[dict[str, float]]:
    """The configured blend, each component alone (for the record), then random weightings
    in which the hybrid always counts."""
    names = families.names()
    space = {name: BLEND_WEIGHTS for name in names} | {HYBRID: [1.0]}
    draws = ParameterSampler(space, n_iter=max(trials - 1, 0), random_state=seed)
    alone = [{name: 1.0} for name in names]
    return [dict(base)] + alone + [dict(draw) for draw in draws]


def coordinate_moves(best: dict[str, float]) -> list[dict[str, float]]:
    """Every weighting that changes one component's weight of `best` (the hybrid, when it
    counts, stays at 1: weights are relative): one round of coordinate search, scored in
    one batch."""
    moves = []
    for name in families.names():
        if name == HYBRID and best.get(HYBRID, 0) > 0:
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
    fit_threads: int = 1,
    side_by_side: int = 1,
) -> tuple[LightFMParams, FactorModel, list[LightFMTrial], dict]:
    """Train every LightFM trial epoch by epoch (validation checks every
    `params.eval_every` epochs, early stop), then choose a configuration and its epochs
    among the checks of all trials by the one-standard-error rule, the cost being epochs ×
    `epoch_work`: every later training of the choice (the evaluated hybrid and CF
    candidate on all users, the refit) pays that cost again.
    Returns (chosen parameters with their epochs, its factors on the validation users,
    one row per trial, the choice). fit_threads: threads of one fit; side_by_side: trials
    trained at once."""
    checks: list[_Check] = []
    rows: list[LightFMTrial] = []
    candidates = lightfm_candidates(base, params.lightfm_trials, seed)

    def trial(numbered: tuple[int, LightFMParams]) -> tuple[list[_Check], LightFMTrial]:
        number, candidate = numbered
        return _lightfm_trial(
            number, candidate, data, evaluation, params, max_epochs, seed, fit_threads
        )

    # trials side by side, their results in trial order (TrainingContext says why)
    with ThreadPoolExecutor(side_by_side) as pool:
        for trial_checks, row in pool.map(trial, enumerate(candidates)):
            checks += trial_checks
            rows.append(row)
            get_run_logger().info(
                "LightFM trial %d/%d: validation NDCG@10 %.4f at %d epochs (%d trained, "
                "%.1f s per epoch), %.0f s",
                row.trial + 1,
                params.lightfm_trials,
                row.validation_ndcg,
                row.best_epochs,
                row.epochs_trained,
                row.seconds_per_epoch,
                row.seconds,
            )
    pick, choice = _lightfm_choice(checks)
    chosen_params = candidates[pick.trial].model_copy(update={"epochs": pick.epochs})
    return chosen_params, pick.factors, rows, choice


def _lightfm_trial(
    trial: int,
    candidate: LightFMParams,
    data: TrainingData,
    evaluation: Evaluation,
    params: TuningParams,
    max_epochs: int,
    seed: int,
    num_threads: int,
) -> tuple[list[_Check], LightFMTrial]:
    """One configuration trained epoch by epoch (at most `max_epochs`), checked on the
    validation users: its checks and its row."""
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
    checks = [
        _Check(trial, epochs, gains, factors, work)
        for epochs, (gains, factors) in zip(curve.epochs, recorder.checks, strict=True)
    ]
    row = LightFMTrial(
        trial=trial,
        **candidate.model_dump(exclude={"epochs"}),
        best_epochs=curve.epochs[curve.best],
        chosen_epochs=curve.chosen_epochs,
        epochs_trained=curve.epochs[-1],
        validation_ndcg=round(curve.scores[curve.best], 5),
        chosen_validation_ndcg=round(curve.chosen_score, 5),
        curve=[(e, round(v, 5)) for e, v in zip(curve.epochs, curve.scores, strict=True)],
        work_per_epoch=work,
        seconds_per_epoch=round(per_epoch, 2),
        seconds=round(time.perf_counter() - started, 1),
    )
    return checks, row


def _lightfm_choice(checks: list[_Check]) -> tuple[_Check, dict]:
    """The check the one-standard-error rule chooses among every check of every trial, and
    the record of the choice."""
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
    get_run_logger().info(
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
    return pick, choice


def tuned_alone() -> list[Family]:
    """The families whose settings are tuned by themselves (`search="alone"`)."""
    return [f for f in families.registered() if f.space is not None and f.search == "alone"]


def search_alone(
    family: Family,
    tuned: ModelConfig,
    data: TrainingData,
    evaluation: Evaluation,
    trials: int,
    seed: int,
    num_threads: int,
) -> tuple[BaseModel, list[NeighbourTrial]]:
    """`trials` settings of `family`: those in `tuned`, then draws from its space, each
    fitted and judged by itself. Returns the best (ties to the earlier trial) and the rows."""
    assert family.settings is not None and family.space is not None
    key = family.settings.key
    base = getattr(tuned, key)
    draws = ParameterSampler(family.space, n_iter=max(trials - 1, 0), random_state=seed)
    scored, rows = [], []
    for trial, settings in enumerate([base] + [base.model_copy(update=d) for d in draws]):
        trial_config = tuned.model_copy(update={key: settings})
        score = evaluation.ndcg(fit_candidate(family.name, data, trial_config, seed, num_threads))
        scored.append((score, -trial, settings))
        rows.append(
            NeighbourTrial(
                candidate=family.name,
                trial=trial,
                **settings.model_dump(),
                validation_ndcg=round(score, 5),
            )
        )
    return max(scored, key=lambda row: row[:2])[2], rows


def _eligible(
    weightings: list[dict[str, float]], coverage: np.ndarray, min_coverage: float
) -> np.ndarray:
    """The weightings with, if any can, the catalogue coverage the gate asks for. Every
    candidate alone is among them, so the blend chosen is never below the best single
    candidate on validation; without the hybrid, it still serves cold users by the tiers."""
    covered = coverage >= min_coverage
    return covered if covered.any() else np.ones(len(weightings), dtype=bool)


@dataclass
class BlendSearch:
    chosen: dict[str, float]  # the weights chosen (zeros left out)
    rows: list[BlendTrial]
    validation_ndcg: dict[str, float]  # each candidate alone, and the chosen blend


def search_blend(
    components: dict[str, FactorModel],
    evaluation: Evaluation,
    base: dict[str, float],
    params: TuningParams,
    seed: int,
    min_coverage: float,
) -> BlendSearch:
    """Random weightings (`blend_candidates`), then rounds of coordinate search from the
    best eligible one; the best eligible weighting is chosen (with a warning when none
    reaches `min_coverage`: the gate will refuse it)."""
    weightings = blend_candidates(base, params.blend_trials, seed)
    pool = BlendPool.build(components, evaluation)
    scores, coverage = pool.metrics(weightings)
    for _ in range(params.blend_rounds):
        eligible = _eligible(weightings, coverage, min_coverage)
        best = weightings[int(np.flatnonzero(eligible)[np.argmax(scores[eligible])])]
        refined = [w for w in coordinate_moves(best) if w not in weightings]
        if not refined:
            break
        weightings += refined
        more_scores, more_coverage = pool.metrics(refined)
        scores = np.concatenate([scores, more_scores])
        coverage = np.concatenate([coverage, more_coverage])
    eligible = _eligible(weightings, coverage, min_coverage)
    if not (coverage[eligible] >= min_coverage).all():
        get_run_logger().warning(
            "no blend weighting reaches catalogue coverage@10 %.3f on the validation users "
            "(best %.4f): the gate will refuse the blend",
            min_coverage,
            coverage.max(),
        )
    chosen = int(np.flatnonzero(eligible)[np.argmax(scores[eligible])])
    rows = [
        BlendTrial(
            trial=t,
            **{name: weights.get(name, 0.0) for name in components},
            validation_ndcg=round(float(score), 5),
            validation_coverage=round(float(covered), 5),
            eligible=bool(ok),
        )
        for t, (weights, score, covered, ok) in enumerate(
            zip(weightings, scores, coverage, eligible, strict=True)
        )
    ]
    alone = {
        next(iter(w)): float(s) for w, s in zip(weightings, scores, strict=True) if len(w) == 1
    }
    return BlendSearch(
        chosen={name: w for name, w in weightings[chosen].items() if w > 0},
        rows=rows,
        validation_ndcg=alone | {"blend": float(scores[chosen])},
    )


def _tuning_sample(
    split: Split,
    snapshot: Snapshot,
    features: FeatureSet,
    dataset: DatasetSpec,
    config: ModelConfig,
    params: TuningParams,
    seed: int,
) -> tuple[TrainingData, Evaluation, np.ndarray]:
    """The validation users tuning judges on (a seeded sample of `max_users`), the data the
    trials train on (`tuning_users`) and the mask of the users it keeps."""
    evaluation = evaluation_for(split.tune_train_events, split.validation, snapshot, dataset)
    evaluation = evaluation.sample(params.max_users, seed)
    data = training_data(
        pd.read_parquet(split.tune_train_events), snapshot, features, dataset, config
    )
    keep = tuning_users(data.interactions, evaluation.rows, params.max_train_users, seed)
    if not keep.all():
        data = data.for_users(keep)
    get_run_logger().info(
        "tuning trains on %d of %d users (%d validation users among them)",
        int(keep.sum()),
        len(keep),
        len(evaluation.rows),
    )
    return data, evaluation, keep


@task(name="tune")
def tune(
    split: Split,
    features: FeatureSet,
    config: ModelConfig,
    params: TuningParams,
    context: TrainingContext,
    min_coverage: float = 0.0,
) -> TuningResult:
    """Search on (pre-validation events → validation transaction); return the chosen config.
    The blend chosen is the best by NDCG@10 among the weightings with the hybrid whose
    catalogue coverage@10 reaches `min_coverage` (the gate's), if any does."""
    logger = get_run_logger()
    snapshot, dataset, run, seed = context.snapshot, context.dataset, context.run, context.seed
    num_threads = context.fit_threads
    if not params.search:
        logger.info("tuning is off: LightFM %s, blend %s", config.lightfm, config.blend)
        return TuningResult(config=config, validation_ndcg={}, lightfm_trials=[], blend_trials=[])
    data, evaluation, keep = _tuning_sample(
        split, snapshot, features, dataset, config, params, seed
    )
    max_epochs = params.max_epochs or 2 * config.lightfm.epochs
    best_params, best_factors, lightfm_rows, lightfm_choice = search_lightfm(
        data,
        evaluation,
        config.lightfm,
        params,
        max_epochs,
        seed,
        num_threads,
        context.side_by_side,
    )
    tuned = config.model_copy(update={"lightfm": best_params})
    neighbour_rows: list[NeighbourTrial] = []
    for family in tuned_alone():
        settings, rows = search_alone(
            family, tuned, data, evaluation, params.neighbour_trials, seed, num_threads
        )
        tuned = tuned.model_copy(update={family.settings.key: settings})
        neighbour_rows += rows
    components = {
        name: best_factors
        if name == HYBRID
        else fit_candidate(name, data, tuned, seed, num_threads)
        for name in families.names()
    }
    blend = search_blend(components, evaluation, config.blend, params, seed, min_coverage)
    result = TuningResult(
        config=tuned.model_copy(update={"blend": blend.chosen}),
        validation_ndcg=blend.validation_ndcg,
        lightfm_trials=lightfm_rows,
        lightfm_choice=lightfm_choice,
        neighbour_trials=neighbour_rows,
        blend_trials=blend.rows,
        train_users=int(keep.sum()),
        train_users_with_events=int((np.diff(data.interactions.indptr) > 0).sum()),
    )
    _record(result, run, len(evaluation.rows))
    logger.info(
        "tuned on %d validation users: LightFM %s; blend %s (validation NDCG@10 %.4f)",
        len(evaluation.rows),
        best_params.model_dump(),
        blend.chosen,
        blend.validation_ndcg["blend"],
    )
    return result


def _record(result: TuningResult, run: RunFolder, validation_users: int) -> None:
    """tuning/trials.json, and the trial tables as Prefect artifacts."""
    run.sub("tuning", "trials.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=2)
    )
    tuned = result.config
    create_table_artifact(
        key="lightfm-tuning",
        table=[row.model_dump(mode="json") for row in result.lightfm_trials],
        description=f"LightFM randomized search on {validation_users} validation users; "
        f"chosen: {tuned.lightfm.model_dump()}",
    )
    alone = tuned_alone()
    create_table_artifact(
        key="neighbour-tuning",
        table=[row.model_dump(mode="json") for row in result.neighbour_trials],
        description=f"{', '.join(f.name for f in alone)} settings on the validation purchase; "
        "chosen: "
        + ", ".join(f"{f.name} {getattr(tuned, f.settings.key).model_dump()}" for f in alone),
    )
    ranked = sorted(result.blend_trials, key=lambda row: -row.validation_ndcg)
    create_table_artifact(
        key="blend-tuning",
        table=[row.model_dump(mode="json") for row in ranked[:50]],
        description=f"blend weights, best 50 of {len(ranked)} trials; chosen: {tuned.blend}",
    )
