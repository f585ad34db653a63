"""The published model: the judged configuration refit on every event.

Why: the gate judged the model trained without each user's latest transaction (the test
set). Publishing that model would throw away the freshest purchases, so the published one
is trained again with the same settings on everything. LightFM continues from the judged
model for `refit_epochs` instead of starting over (NightlyParams.continued_epochs): the
same quality at a fraction of the time (benchmarks/refit.py measures both). What goes out
is therefore not bit-for-bit what was judged; metrics.json says so (`published_model`).
"""

from __future__ import annotations

from pathlib import Path

from tasks.run_context import FeatureSet, TrainedModel
from tasks.training.train import BLEND, ModelConfig, TrainingContext, train_candidates


def refit(
    events: Path,
    features: FeatureSet,
    config: ModelConfig,
    judged: dict[str, TrainedModel],
    continued_epochs: int | None,
    context: TrainingContext,
) -> TrainedModel:
    """The blend refit on `events` (all of them), its LightFM component continuing from
    the judged one for `continued_epochs` (None: from scratch)."""
    final = train_candidates(
        events,
        features,
        config,
        context,
        stage="final",
        only_blend=True,
        continue_from=judged,
        continue_epochs=continued_epochs,
    )
    return final[BLEND]
