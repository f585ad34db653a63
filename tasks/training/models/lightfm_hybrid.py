"""LightFM: collaborative filtering on identity features, optionally plus content features of
users and products (the hybrid), so users and products without history are still served
from their attributes. Trained epoch by epoch so tuning can stop early."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from lightfm import LightFM
from pydantic import BaseModel, Field
from scipy.stats import loguniform

from tasks.training.models import FactorModel
from tasks.training.models.family import Family, FitOptions, Settings

if TYPE_CHECKING:
    from tasks.publishing.reasons import ReasonContext
    from tasks.training.train import ModelConfig, TrainingData


class LightFMParams(BaseModel):
    """Hyperparameters of LightFM (the hybrid and the collaborative-only candidate)."""

    no_components: int = Field(64, ge=2, le=512, description="size of the embeddings")
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = Field(
        "warp", description="LightFM's loss function"
    )
    learning_rate: float = Field(0.05, gt=0, le=1, description="AdaGrad's learning rate")
    item_alpha: float = Field(1e-6, ge=0, le=1, description="L2 penalty on product features")
    user_alpha: float = Field(1e-6, ge=0, le=1, description="L2 penalty on user features")
    max_sampled: int = Field(30, ge=1, le=1000, description="WARP negatives tried per step")
    epochs: int = Field(
        40,
        ge=1,
        le=1000,
        description="training epochs (tuning stops its trials early, see `tuning.*`)",
    )
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


SIDES = ("user", "item")
# What LightFM learns per feature row: embeddings, biases, and their AdaGrad accumulators.
STATE_ARRAYS = (
    "embeddings",
    "embedding_gradients",
    "embedding_momentum",
    "biases",
    "bias_gradients",
    "bias_momentum",
)

FeatureNames = tuple[list[str], list[str]]  # (user side, item side), one per feature column


def save_state(model: LightFM, path: Path, names: FeatureNames | None) -> Path:
    """What a later fit needs to continue from `model`: its arrays and the name of every
    feature row (names None: identity only, rows are users and products in table order).
    Plain arrays in an .npz, nothing pickled."""
    arrays = {f"{side}_{a}": getattr(model, f"{side}_{a}") for side in SIDES for a in STATE_ARRAYS}
    for side, side_names in zip(SIDES, names or ([], []), strict=True):
        arrays[f"{side}_names"] = np.asarray(side_names, dtype=str)
    np.savez(path, **arrays)
    return path


def _continue_from(
    model: LightFM, state: Path, names: FeatureNames | None, no_components: int
) -> dict[str, int]:
    """Load a saved state into `model` (already initialised for today's features): each
    feature row takes the saved row of the same name (identity-only models: the same
    position); rows the saved model never had keep their fresh start. Returns the rows
    carried over per side."""
    carried = {}
    with np.load(state, allow_pickle=False) as saved:
        if saved["user_embeddings"].shape[1] != no_components:
            raise ValueError(
                f"cannot continue from {state}: it has {saved['user_embeddings'].shape[1]} "
                f"components, the parameters ask for {no_components}"
            )
        for k, side in enumerate(SIDES):
            target_rows = getattr(model, f"{side}_biases").shape[0]
            saved_names = saved[f"{side}_names"]
            if names is None or len(saved_names) == 0:
                source = np.arange(target_rows)
                source[source >= saved[f"{side}_biases"].shape[0]] = -1
            else:
                source = pd.Index(saved_names).get_indexer(names[k])
            known = source >= 0
            for a in STATE_ARRAYS:
                getattr(model, f"{side}_{a}")[known] = saved[f"{side}_{a}"][source[known]]
            carried[side] = int(known.sum())
    return carried


def fit_lightfm(
    interactions: sp.csr_matrix,
    user_features: sp.csr_matrix | None,
    item_features: sp.csr_matrix | None,
    params: LightFMParams,
    seed: int,
    num_threads: int = 1,
    validate: Callable[[FactorModel], np.ndarray] | None = None,
    eval_every: int = 5,
    patience: int = 2,
    warm_start: Path | None = None,
    names: FeatureNames | None = None,
) -> tuple[LightFM, FactorModel, Curve | None]:
    """Fit on log-damped interaction weights for `params.epochs` epochs.

    With `validate` (factors -> per-user validation scores, higher is better), training is
    checked every `eval_every` epochs and stops after `patience` checks that did not beat
    the last clear improvement by more than one standard error (`clearly_better`); the
    factors returned are those of the check the one-standard-error rule chooses
    (`Curve.chosen`), the LightFM object is the one at the last epoch trained.
    Features None = identity only (collaborative filtering).
    warm_start: a state written by `save_state`; training continues from it for
    `params.epochs` epochs, its feature rows matched to today's by `names` (the names of
    the feature matrices' columns).
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
    if warm_start is not None:
        model.fit_partial(positives, epochs=0, **fit_kwargs)  # initialised for today's rows
        _continue_from(model, warm_start, names, params.no_components)
    if validate is None:
        model.fit_partial(positives, epochs=params.epochs, **fit_kwargs)
        return model, factors_of(model, user_features, item_features), None

    epochs: list[int] = []
    gains: list[np.ndarray] = []
    factors: list[FactorModel] = []
    reference: np.ndarray | None = None  # the gains of the last clear improvement
    since_better, done = 0, 0
    while done < params.epochs and since_better < patience:
        step = min(eval_every, params.epochs - done)
        model.fit_partial(positives, epochs=step, **fit_kwargs)
        done += step
        epochs.append(done)
        factors.append(factors_of(model, user_features, item_features))
        gains.append(np.asarray(validate(factors[-1]), dtype=np.float64))
        if reference is None or clearly_better(gains[-1], reference):
            reference, since_better = gains[-1], 0
        else:
            since_better += 1
    curve = Curve.of(epochs, gains)
    return model, factors[curve.chosen], curve


def clearly_better(gains: np.ndarray, reference: np.ndarray) -> bool:
    """Whether `gains` beat `reference` (per-user scores of the same users) by more than one
    standard error of their paired difference: an improvement the one-standard-error rule
    could act on. Training stops after `patience` checks without one: a curve that only
    creeps upward within the noise would never be chosen over its cheaper early check."""
    difference = gains - reference
    n = len(difference)
    error = difference.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
    return n > 0 and float(difference.mean()) > error


def one_standard_error_choice(gains: list[np.ndarray], costs: list[float]) -> tuple[int, int]:
    """(best, chosen) among models judged on the same users: `best` has the highest mean
    per-user score; `chosen` is the cheapest (lowest cost; ties to the earlier) whose paired
    per-user difference from the best is not above one standard error: the one-standard-
    error rule (among models the validation cannot tell apart, the cheaper one): the best is
    not `clearly_better` than it."""
    means = [float(g.mean()) if len(g) else 0.0 for g in gains]
    best = int(np.argmax(means))
    chosen = best
    for candidate in np.argsort(np.asarray(costs, dtype=np.float64), kind="stable"):
        if candidate == best or costs[candidate] >= costs[best]:
            break
        if not clearly_better(gains[best], gains[candidate]):
            chosen = int(candidate)
            break
    return best, chosen


class Curve(BaseModel):
    """Validation checks of one training: epochs and mean score at each, the best check,
    and the one chosen: the fewest epochs not worse than the best by more than one standard
    error (`one_standard_error_choice`, the cost being the epochs: every later training of
    these settings, on all users, pays for each epoch)."""

    epochs: list[int]
    scores: list[float]
    best: int
    chosen: int

    @classmethod
    def of(cls, epochs: list[int], gains: list[np.ndarray]) -> Curve:
        best, chosen = one_standard_error_choice(gains, [float(e) for e in epochs])
        means = [float(g.mean()) if len(g) else 0.0 for g in gains]
        return cls(epochs=epochs, scores=means, best=best, chosen=chosen)

    @property
    def chosen_epochs(self) -> int:
        return self.epochs[self.chosen]

    @property
    def chosen_score(self) -> float:
        return self.scores[self.chosen]


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


def fit_family(
    data: TrainingData, config: ModelConfig, options: FitOptions, hybrid: bool
) -> FactorModel:
    """Fit the hybrid (hybrid=True) or the collaborative-only candidate; `options` may keep
    the state a later fit continues from, or continue from one."""
    params = config.lightfm
    if options.continue_epochs is not None:
        params = params.model_copy(update={"epochs": options.continue_epochs})
    names = lightfm_feature_names(data, params, hybrid)
    model, factors, _ = fit_lightfm(
        data.decayed_interactions(params.half_life_days),
        *lightfm_features(data, params, hybrid),
        params,
        seed=options.seed,
        num_threads=options.num_threads,
        warm_start=options.warm_start,
        names=names,
    )
    if options.state_path is not None:
        save_state(model, options.state_path, names)
    return factors


SETTINGS = Settings(
    "lightfm",
    LightFMParams,
    flow_key="model",
    flow_description="LightFM's starting point; tuning tries others and keeps the best",
)
# tune.py's LightFM search: the configured parameters, the same with the behaviour features
# switched, then draws from this space
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


def _explain(
    reasons: ReasonContext, component: FactorModel, users: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """What the product has that buyers sharing the user's attribute favour."""
    return reasons.matches(users, items)


LIGHTFM_CF_FAMILY = Family(
    name="lightfm_cf",
    settings=SETTINGS,  # the hybrid's tuned parameters, identity features only
    fit=partial(fit_family, hybrid=False),
    explain=_explain,
    keeps_state=True,
)
HYBRID_FAMILY = Family(
    name="lightfm_hybrid",
    settings=SETTINGS,
    fit=partial(fit_family, hybrid=True),
    explain=_explain,
    space=LIGHTFM_SPACE,
    search="lightfm",
    keeps_state=True,
)
