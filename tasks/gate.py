"""Gate: publish only a model that beats the popularity baseline on NDCG@10."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

GATE_METRIC = "NDCG@10"


class GateParams(BaseModel):
    """When a candidate may be published."""

    min_lift: float = Field(
        0.0,
        ge=-1.0,
        le=100.0,
        description="required relative lift over popularity on NDCG@10 (0.1 = 10% better)",
    )
    min_ndcg: float = Field(0.0, ge=0.0, le=1.0, description="absolute floor on NDCG@10")


class GateDecision(BaseModel):
    passed: bool
    candidate: str
    baseline: str
    metric: str = GATE_METRIC
    reasons: list[str]


def decide(
    metrics: dict[str, dict[str, float]], candidate: str, baseline: str, params: GateParams
) -> GateDecision:
    ours, theirs = metrics[candidate][GATE_METRIC], metrics[baseline][GATE_METRIC]
    needed = theirs * (1.0 + params.min_lift)
    reasons = []
    beats = ours > needed
    reasons.append(
        f"{candidate} {GATE_METRIC} {ours:.4f} {'>' if beats else '<='} {needed:.4f} "
        f"(= {baseline} {theirs:.4f} × (1 + min_lift {params.min_lift:g}))"
    )
    floor_ok = ours >= params.min_ndcg
    reasons.append(
        f"{candidate} {GATE_METRIC} {ours:.4f} {'>=' if floor_ok else '<'} "
        f"min_ndcg {params.min_ndcg:g}"
    )
    return GateDecision(
        passed=beats and floor_ok, candidate=candidate, baseline=baseline, reasons=reasons
    )


@task(name="gate")
def gate(
    metrics: dict[str, dict[str, float]], candidate: str, baseline: str, params: GateParams
) -> GateDecision:
    """Decide, and leave the decision where a person will look: a markdown artifact."""
    decision = decide(metrics, candidate, baseline, params)
    verdict = "PASSED: publishing" if decision.passed else "REFUSED: nothing is published"
    create_markdown_artifact(
        key="gate-decision",
        markdown=f"## Gate {verdict}\n\n" + "\n".join(f"- {r}" for r in decision.reasons),
        description=f"gate for {candidate} vs {baseline}",
    )
    return decision
