"""The blend judged is never worse than a single candidate on the test split.

Tuning chooses the blend's weights on the validation transactions, where every candidate
alone is one of the weightings it compares, so the chosen blend is at least as good as the
best single candidate there. The test split can still disagree: a shop whose customers
behave unlike the validation moment (or a blend that overfits a small validation set) would
then publish a blend that a plain candidate beats. So the test figures settle it: when a
single candidate's NDCG@10 is above the tuned blend's, the blend judged, refit and published
is that candidate alone (a Blend with its weight 1; the hybrid and popularity stay in it at
weight 0 for the cold-start tiers), and metrics.json says so (`blend_settlement`).
Popularity is not among the candidates that can replace the blend: it is the gate's
baseline, and a blend that loses to it is refused, not replaced. Choosing on the test split
makes the judged figure the better of two, which is why the gate's bootstrap interval, not
the point estimate, decides.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tasks.evaluation.metrics import CandidateMetrics
from tasks.run_context import TrainedModel
from tasks.training.models import Blend, FactorModel
from tasks.training.train import BLEND, members_of


class BlendSettlement(BaseModel):
    """What the test split said of the tuned blend against each candidate alone."""

    model_config = ConfigDict(extra="forbid")

    tuned: dict[str, float] = Field(description="the blend's weights as tuning chose them")
    judged: dict[str, float] = Field(description="the weights judged (and published if passed)")
    blend_ndcg: float = Field(description="NDCG@10 of the tuned blend on the test users")
    best_single: str = Field(description="the single candidate with the best NDCG@10")
    best_single_ndcg: float
    replaced: bool = Field(description="the tuned blend lost to `best_single`, which is judged")

    def describe(self) -> str:
        if self.replaced:
            return (
                f"the tuned blend (NDCG@10 {self.blend_ndcg:.4f}) lost to {self.best_single} "
                f"alone ({self.best_single_ndcg:.4f}) on the test users: {self.best_single} "
                "is judged"
            )
        return (
            f"the tuned blend (NDCG@10 {self.blend_ndcg:.4f}) beats the best single "
            f"candidate, {self.best_single} ({self.best_single_ndcg:.4f})"
        )


def settle(
    metrics: dict[str, CandidateMetrics], singles: list[str], tuned: dict[str, float]
) -> BlendSettlement:
    """Pure: compare the tuned blend with each of `singles` (candidates that a blend can
    weight) on NDCG@10; the best single replaces the blend only when strictly better."""
    blend = metrics[BLEND].ndcg_at_10
    best = max(singles, key=lambda name: (metrics[name].ndcg_at_10, -singles.index(name)))
    replaced = metrics[best].ndcg_at_10 > blend
    return BlendSettlement(
        tuned=tuned,
        judged={best: 1.0} if replaced else tuned,
        blend_ndcg=blend,
        best_single=best,
        best_single_ndcg=metrics[best].ndcg_at_10,
        replaced=replaced,
    )


def tuned_weights(blend: TrainedModel) -> dict[str, float]:
    """The weights a saved blend scores with (its zero-weight fallbacks left out)."""
    weights = json.loads((Path(blend.vectors) / "blend.json").read_text())["weights"]
    return {name: float(w) for name, w in weights.items() if w > 0}


def single_blend(
    candidates: dict[str, TrainedModel], settlement: BlendSettlement, folder: Path
) -> TrainedModel:
    """The blend of the settled weights from the candidates already trained (with the
    tiers' fallbacks at weight 0), saved to `folder`."""
    weights = members_of(settlement.judged)
    components = {name: FactorModel.load(candidates[name].vectors) for name in weights}
    blend = Blend(components, weights)
    tuned = candidates[BLEND]
    return TrainedModel(
        name=BLEND,
        vectors=blend.save(folder),
        params=tuned.params | {"blend": settlement.judged},
    )
