"""The champion as a candidate: the model `latest` serves, judged on today's split.

Why it is retrained: its stored artifact was refit on all data, the purchases this run
holds out included, so scoring it as it is would flatter it. Retrained on this split with
its own configuration, it faces the challenger on equal terms. When its configuration is
the one tuning chose today, the same split and seed make its retraining the challenger
itself, so that model is reused instead of fitted twice.
"""

from __future__ import annotations

from pathlib import Path

from tasks.evaluation.gate import CHAMPION
from tasks.run_context import FeatureSet, TrainedModel
from tasks.training.registry import RegistryEntry
from tasks.training.train import BLEND, ModelConfig, TrainingContext, train_candidates


def with_champion(
    candidates: dict[str, TrainedModel],
    champion: RegistryEntry | None,
    tuned: ModelConfig,
    train_events: Path,
    features: FeatureSet,
    context: TrainingContext,
) -> dict[str, TrainedModel]:
    """`candidates` plus, when there is a champion, its model trained on `train_events`
    under the name CHAMPION."""
    if champion is None:
        return candidates
    config = ModelConfig.model_validate(champion.config)
    if config == tuned:
        return candidates | {CHAMPION: candidates[BLEND]}
    rerun = train_candidates(
        train_events, features, config, context, stage="champion", only_blend=True
    )
    return candidates | {CHAMPION: rerun[BLEND]}
