"""Gate: a challenger is published only if it earns it.

(a) it beats the popularity baseline on the primary metric (NDCG@10) by `min_lift`;
(b) it is not worse than the current champion, re-trained with the champion's configuration
    on the same split, beyond `champion_tolerance` — judged by a paired bootstrap over the
    per-user differences (refused only when even the optimistic end of the 95% interval is
    below the tolerated drop);
(c) guardrails: catalogue coverage@10 at least `min_coverage`; no segment (cold users, new
    products) losing more than `segment_tolerance` of the champion's NDCG@10 there (of the
    baseline's when there is no champion yet); no NaN and no constant scores.
With no champion, (a) and (c) apply, and the decision says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from tasks.evaluation.metrics import PRIMARY, bootstrap_means

GATE_METRIC = PRIMARY
GUARDED_SEGMENTS: tuple[str, ...] = ("cold_users", "new_products")
CHAMPION = "champion"


class GateParams(BaseModel):
    """When a candidate may be published."""

    min_lift: float = Field(
        0.0,
        ge=-1.0,
        le=100.0,
        description="required relative lift over popularity on NDCG@10 (0.1 = 10% better)",
    )
    min_ndcg: float = Field(0.0, ge=0.0, le=1.0, description="absolute floor on NDCG@10")
    champion_tolerance: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="relative NDCG@10 drop against the champion that is tolerated (0.02 = 2%)",
    )
    min_coverage: float = Field(
        0.01, ge=0.0, le=1.0, description="catalogue coverage@10 below this is refused"
    )
    segment_tolerance: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="relative NDCG@10 drop allowed on cold users and new products",
    )
    min_refit_overlap: float = Field(
        0.2,  # honest refits keep about half (last-item-heavy blends move most); noise ~0
        ge=0.0,
        le=1.0,
        description="the published (refit) model must keep at least this share of the judged "
        "model's top 10, on average over a seeded sample of users (tasks/evaluation/canary.py)",
    )
    refit_check_users: int = Field(
        2000, ge=10, le=1_000_000, description="users the refit's lists are compared on"
    )


class GateDecision(BaseModel):
    passed: bool
    candidate: str
    baseline: str
    champion: str | None = None  # champion version compared with, if any
    metric: str = GATE_METRIC
    reasons: list[str]
    checks: dict[str, bool] = {}


def paired_bootstrap(
    challenger: np.ndarray, champion: np.ndarray, samples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean difference, 2.5th and 97.5th percentile) of mean(challenger - champion) over
    users resampled with replacement."""
    difference = np.asarray(challenger, dtype=np.float64) - np.asarray(champion, np.float64)
    if len(difference) == 0:
        return 0.0, 0.0, 0.0
    low, high = np.percentile(bootstrap_means(difference, samples, seed), [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


def decide(
    metrics: dict[str, dict[str, float]],
    candidate: str,
    baseline: str,
    params: GateParams,
    per_user: dict[str, np.ndarray] | None = None,
    champion_version: str | None = None,
) -> GateDecision:
    """Apply (a), (b) and (c); every check leaves a reason in plain words."""
    ours, theirs = metrics[candidate][GATE_METRIC], metrics[baseline][GATE_METRIC]
    reasons: list[str] = []
    checks: dict[str, bool] = {}

    needed = theirs * (1.0 + params.min_lift)
    checks["beats_baseline"] = ours > needed
    reasons.append(
        f"(a) {candidate} {GATE_METRIC} {ours:.4f} {'>' if checks['beats_baseline'] else '<='} "
        f"{needed:.4f} (= {baseline} {theirs:.4f} × (1 + min_lift {params.min_lift:g}))"
    )
    checks["min_ndcg"] = ours >= params.min_ndcg
    reasons.append(
        f"(a) {candidate} {GATE_METRIC} {ours:.4f} {'>=' if checks['min_ndcg'] else '<'} "
        f"min_ndcg {params.min_ndcg:g}"
    )

    has_champion = CHAMPION in metrics
    reference = CHAMPION if has_champion else baseline
    if has_champion:
        champ = metrics[CHAMPION][GATE_METRIC]
        mean, low, high = paired_bootstrap(per_user[candidate], per_user[CHAMPION])
        allowed = -params.champion_tolerance * champ
        checks["not_worse_than_champion"] = high >= allowed
        reasons.append(
            f"(b) against champion {champion_version} re-trained on this split "
            f"({GATE_METRIC} {champ:.4f}): difference {mean:+.4f}, 95% CI "
            f"[{low:+.4f}, {high:+.4f}] "
            + (
                f"reaches the tolerated {allowed:+.4f}"
                if checks["not_worse_than_champion"]
                else f"is entirely below the tolerated {allowed:+.4f}: worse than the champion"
            )
        )
    else:
        reasons.append("(b) no champion yet: only (a) and (c) apply")

    coverage = metrics[candidate].get("catalog_coverage@10", 0.0)
    checks["coverage"] = coverage >= params.min_coverage
    reasons.append(
        f"(c) catalogue coverage@10 {coverage:.3f} "
        f"{'>=' if checks['coverage'] else '<'} min_coverage {params.min_coverage:g}"
    )
    for segment in GUARDED_SEGMENTS:
        key = f"{GATE_METRIC}[{segment}]"
        if key not in metrics[candidate] or not metrics[candidate].get(f"n[{segment}]"):
            continue
        mine, ref = metrics[candidate][key], metrics[reference][key]
        floor = ref * (1.0 - params.segment_tolerance)
        ok = mine >= floor
        checks[f"segment_{segment}"] = ok
        reasons.append(
            f"(c) {segment.replace('_', ' ')}: {GATE_METRIC} {mine:.4f} "
            f"{'>=' if ok else '<'} {floor:.4f} (= {reference} {ref:.4f} × "
            f"(1 - segment_tolerance {params.segment_tolerance:g}))"
        )
    nan_share = metrics[candidate].get("nan_score_share", 0.0)
    constant_share = metrics[candidate].get("constant_score_share", 0.0)
    checks["scores_sane"] = nan_share == 0.0 and constant_share < 1.0
    reasons.append(
        f"(c) scores: {nan_share:.1%} NaN, {constant_share:.1%} of users with one score for "
        "every product" + ("" if checks["scores_sane"] else ": the model is broken")
    )
    return GateDecision(
        passed=all(checks.values()),
        candidate=candidate,
        baseline=baseline,
        champion=champion_version if has_champion else None,
        reasons=reasons,
        checks=checks,
    )


@task(name="gate")
def gate(
    metrics: dict[str, dict[str, float]],
    candidate: str,
    baseline: str,
    params: GateParams,
    per_user_path: Path | None = None,
    champion_version: str | None = None,
) -> GateDecision:
    """Decide, and leave the decision where a person will look: a markdown artifact.

    per_user_path: Parquet with one NDCG@10 column per candidate (tasks/evaluation/evaluate.py)."""
    per_user = None
    if per_user_path is not None and Path(per_user_path).exists():
        frame = pd.read_parquet(per_user_path)
        per_user = {name: frame[name].to_numpy() for name in frame.columns if name != "user_id"}
    decision = decide(metrics, candidate, baseline, params, per_user, champion_version)
    verdict = "PASSED: publishing" if decision.passed else "REFUSED: nothing is published"
    create_markdown_artifact(
        key="gate-decision",
        markdown=f"## Gate {verdict}\n\n" + "\n".join(f"- {r}" for r in decision.reasons),
        description=f"gate for {candidate} vs {baseline}"
        + (f" and champion {champion_version}" if decision.champion else " (no champion yet)"),
    )
    return decision
