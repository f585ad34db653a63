"""Gate: a challenger is published only if it earns it, judged on every test user.

(a) it beats the popularity baseline on the primary metric (NDCG@10): the paired bootstrap
    95% interval of the per-user difference (challenger − popularity) lies entirely above
    `min_lift` × popularity's NDCG@10 (above zero by default), and its NDCG@10 reaches
    `min_ndcg`;
(b) it is not worse than the champion beyond `champion_tolerance`, twice:
    - the champion's configuration re-trained on today's split (equal terms, same users);
    - the champion's stored model as it was published, on the test users whose held-out
      purchase came after the champion's data (events it never saw), so a regression in
      today's code cannot hide by retraining both;
    each refused only when even the optimistic end of the paired 95% interval is below
    the tolerated drop;
(c) guardrails: catalogue coverage@10 at least `min_coverage`; no segment (cold users, new
    products) losing more than `segment_tolerance` of the champion's NDCG@10 there (of the
    baseline's when there is no champion yet); no NaN and no constant scores.

A check that cannot be judged (a segment with fewer than `min_segment_users` test users, no
test purchase after the champion's data) is reported as such in `not_judged`, never skipped
silently. A gate weaker than the defaults is *relaxed*: GateParams refuses it unless
`relaxed_on_purpose` says why, and every decision taken under it says so (`relaxed`), in
the run's summary, metrics.json, evaluation page and the Prefect artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, model_validator

from tasks.evaluation.metrics import PRIMARY, bootstrap_means
from tasks.evaluation.stored_champion import StoredChampion
from tasks.run_context import RunFolder
from tasks.versions import OPERATIONAL

GATE_METRIC = PRIMARY
GUARDED_SEGMENTS: tuple[str, ...] = ("cold_users", "new_products")
CHAMPION = "champion"
STORED_CHAMPION = "champion_stored"  # the champion's published model, as it was stored


def _stricter(when: Literal["higher", "lower"]) -> dict[str, Any]:
    """Field metadata: which way a gate setting gets stricter (what `relaxed` compares)."""
    return {"json_schema_extra": {"stricter": when}}


class GateParams(BaseModel):
    """When a candidate may be published."""

    min_lift: float = Field(
        0.0,
        ge=-1.0,
        le=100.0,
        description="(a) the 95% interval of (challenger - popularity) NDCG@10 must lie above "
        "min_lift x popularity's NDCG@10 (0: above zero; 0.1: at least 10% better)",
        **_stricter("higher"),
    )
    min_ndcg: float = Field(
        0.0, ge=0.0, le=1.0, description="absolute floor on NDCG@10", **_stricter("higher")
    )
    champion_tolerance: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="relative NDCG@10 drop against the champion that is tolerated (0.02 = 2%)",
        **_stricter("lower"),
    )
    min_coverage: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="catalogue coverage@10 below this is refused",
        **_stricter("higher"),
    )
    segment_tolerance: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="relative NDCG@10 drop allowed on cold users and new products",
        **_stricter("lower"),
    )
    min_segment_users: int = Field(
        30,
        ge=1,
        le=1_000_000,
        description="a segment (or the stored champion's comparison) with fewer test users "
        "is reported as too small to judge",
        **_stricter("lower"),
    )
    min_refit_overlap: float = Field(
        0.2,  # honest refits keep about half (last-item-heavy blends move most); noise ~0
        ge=0.0,
        le=1.0,
        description="the published (refit) model must keep at least this share of the judged "
        "model's top 10, on average over a seeded sample of users (tasks/evaluation/canary.py)",
        **_stricter("higher"),
    )
    refit_check_users: int = Field(
        2000,
        ge=10,
        le=1_000_000,
        description="users the refit's lists are compared on",
        **_stricter("higher"),
    )
    relaxed_on_purpose: Annotated[str | None, OPERATIONAL] = Field(
        None,
        min_length=3,
        max_length=500,
        description="why this gate is weaker than the defaults; any setting weaker than its "
        "default is refused without it, and the run's outputs flag the gate as relaxed",
    )

    def relaxations(self) -> list[str]:
        """Each setting weaker than its default, in words ('min_lift -1 (default 0)')."""
        weaker = []
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if not isinstance(extra, dict) or "stricter" not in extra:
                continue
            value, default = getattr(self, name), field.default
            if (value < default) if extra["stricter"] == "higher" else (value > default):
                weaker.append(f"{name} {value:g} (default {default:g})")
        return weaker

    @model_validator(mode="after")
    def _relaxed_only_on_purpose(self) -> GateParams:
        weaker = self.relaxations()
        if weaker and not self.relaxed_on_purpose:
            raise ValueError(
                f"the gate is relaxed ({'; '.join(weaker)}): a gate weaker than the defaults "
                "publishes what the defaults would refuse, so say why in "
                "gate.relaxed_on_purpose (--gate.relaxed_on_purpose 'why')"
            )
        return self


class GateDecision(BaseModel):
    passed: bool
    candidate: str
    baseline: str
    champion: str | None = None  # champion version compared with, if any
    metric: str = GATE_METRIC
    reasons: list[str]
    checks: dict[str, bool] = {}
    not_judged: dict[str, str] = {}  # check -> why it could not be judged
    relaxed: list[str] = []  # settings weaker than the defaults (empty: the default gate)
    relaxed_on_purpose: str | None = None

    @property
    def verdict(self) -> str:
        """PASSED or REFUSED, and 'relaxed gate' when it was."""
        return ("PASSED" if self.passed else "REFUSED") + (
            " (relaxed gate)" if self.relaxed else ""
        )


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


class PairedGains(BaseModel):
    """Per-user NDCG@10 of the challenger and of a reference on the same users."""

    model_config = {"arbitrary_types_allowed": True}

    challenger: np.ndarray
    reference: np.ndarray


class StoredChampionGains(PairedGains):
    """The challenger against the champion's stored model, on the test users whose held-out
    purchase came after the champion's data; `why_not` when that cannot be measured."""

    data_until: str | None = None
    why_not: str | None = None


def _interval(mean: float, low: float, high: float) -> str:
    return f"difference {mean:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}]"


def _beats_baseline(
    ours: np.ndarray, theirs: np.ndarray, baseline: str, params: GateParams
) -> tuple[bool, str]:
    """(a): the paired interval of (challenger − baseline) above min_lift × baseline."""
    mean, low, high = paired_bootstrap(ours, theirs)
    needed = params.min_lift * float(np.mean(theirs)) if len(theirs) else 0.0
    ok = bool(len(ours)) and low > needed
    return ok, (
        f"(a) against {baseline} ({GATE_METRIC} {float(np.mean(theirs)) if len(theirs) else 0:.4f})"
        f" on {len(ours):,} test users: {_interval(mean, low, high)} "
        + (
            f"lies above {needed:+.4f} (min_lift {params.min_lift:g})"
            if ok
            else f"does not lie above {needed:+.4f} (min_lift {params.min_lift:g}): "
            f"not clearly better than {baseline}"
        )
    )


def _not_worse(gains: PairedGains, params: GateParams, what: str) -> tuple[bool, str]:
    """(b): refused only when the whole paired interval is below the tolerated drop."""
    reference = float(np.mean(gains.reference))
    mean, low, high = paired_bootstrap(gains.challenger, gains.reference)
    allowed = -params.champion_tolerance * reference
    ok = high >= allowed
    return ok, (
        f"(b) against {what} ({GATE_METRIC} {reference:.4f}) on {len(gains.reference):,} test "
        f"users: {_interval(mean, low, high)} "
        + (
            f"reaches the tolerated {allowed:+.4f}"
            if ok
            else f"is entirely below the tolerated {allowed:+.4f}: worse than the champion"
        )
    )


def _champion_checks(
    per_user: dict[str, np.ndarray],
    candidate: str,
    params: GateParams,
    champion_version: str,
    stored: StoredChampionGains | None,
) -> tuple[dict[str, bool], dict[str, str], list[str]]:
    """(b) both ways: retrained on this split, and the stored model on events it never saw."""
    checks, not_judged, reasons = {}, {}, []
    retrained = PairedGains(challenger=per_user[candidate], reference=per_user[CHAMPION])
    same = np.array_equal(retrained.challenger, retrained.reference)
    what = f"champion {champion_version} re-trained on this split" + (
        " (its configuration is today's: the challenger itself)" if same else ""
    )
    checks["not_worse_than_champion"], reason = _not_worse(retrained, params, what)
    reasons.append(reason)
    why_not = stored.why_not if stored is not None else "not measured"
    if stored is not None and why_not is None and len(stored.reference) < params.min_segment_users:
        why_not = (
            f"only {len(stored.reference):,} test users bought after its data "
            f"(< min_segment_users {params.min_segment_users})"
        )
    if why_not is None:
        what = f"champion {champion_version}'s stored model (data until {stored.data_until})"
        checks["not_worse_than_stored_champion"], reason = _not_worse(stored, params, what)
        reasons.append(reason + " — test purchases after its data only")
    else:
        not_judged["not_worse_than_stored_champion"] = why_not
        reasons.append(f"(b) champion {champion_version}'s stored model: not judged, {why_not}")
    return checks, not_judged, reasons


def _segment_checks(
    metrics: dict[str, dict[str, float]], candidate: str, reference: str, params: GateParams
) -> tuple[dict[str, bool], dict[str, str], list[str]]:
    checks, not_judged, reasons = {}, {}, []
    for segment in GUARDED_SEGMENTS:
        key, name = f"{GATE_METRIC}[{segment}]", segment.replace("_", " ")
        users = int(metrics[candidate].get(f"n[{segment}]") or 0)
        if users < params.min_segment_users:
            why = f"{users:,} test users (< min_segment_users {params.min_segment_users})"
            not_judged[f"segment_{segment}"] = why
            reasons.append(f"(c) {name}: not judged, {why}")
            continue
        mine, ref = metrics[candidate][key], metrics[reference][key]
        floor = ref * (1.0 - params.segment_tolerance)
        ok = mine >= floor
        checks[f"segment_{segment}"] = ok
        reasons.append(
            f"(c) {name} ({users:,} test users): {GATE_METRIC} {mine:.4f} "
            f"{'>=' if ok else '<'} {floor:.4f} (= {reference} {ref:.4f} × "
            f"(1 - segment_tolerance {params.segment_tolerance:g}))"
        )
    return checks, not_judged, reasons


def decide(
    metrics: dict[str, dict[str, float]],
    candidate: str,
    baseline: str,
    params: GateParams,
    per_user: dict[str, np.ndarray],
    champion_version: str | None = None,
    stored: StoredChampionGains | None = None,
) -> GateDecision:
    """Apply (a), (b) and (c); every check leaves a reason in plain words.

    metrics: each candidate's metrics (on-disk keys); per_user: each candidate's NDCG@10 per
    test user, the same users in the same order."""
    ours = metrics[candidate][GATE_METRIC]
    reasons: list[str] = []
    if params.relaxations():
        reasons.append(
            f"relaxed gate: {'; '.join(params.relaxations())}; on purpose: "
            f"{params.relaxed_on_purpose}"
        )
    checks: dict[str, bool] = {}
    not_judged: dict[str, str] = {}
    checks["beats_baseline"], reason = _beats_baseline(
        per_user[candidate], per_user[baseline], baseline, params
    )
    reasons.append(reason)
    checks["min_ndcg"] = ours >= params.min_ndcg
    reasons.append(
        f"(a) {candidate} {GATE_METRIC} {ours:.4f} {'>=' if checks['min_ndcg'] else '<'} "
        f"min_ndcg {params.min_ndcg:g}"
    )

    has_champion = CHAMPION in metrics and champion_version is not None
    reference = CHAMPION if has_champion else baseline
    if has_champion:
        more = _champion_checks(per_user, candidate, params, champion_version, stored)
        checks |= more[0]
        not_judged |= more[1]
        reasons += more[2]
    else:
        reasons.append("(b) no champion yet: only (a) and (c) apply")

    coverage = metrics[candidate].get("catalog_coverage@10", 0.0)
    checks["coverage"] = coverage >= params.min_coverage
    reasons.append(
        f"(c) catalogue coverage@10 {coverage:.3f} "
        f"{'>=' if checks['coverage'] else '<'} min_coverage {params.min_coverage:g}"
    )
    more = _segment_checks(metrics, candidate, reference, params)
    checks |= more[0]
    not_judged |= more[1]
    reasons += more[2]
    nan_share = metrics[candidate].get("nan_score_share", 0.0)
    constant_share = metrics[candidate].get("constant_score_share", 0.0)
    tested = int(metrics[candidate].get("n_test_users") or len(per_user[candidate]))
    checks["scores_sane"] = nan_share == 0.0 and constant_share == 0.0
    reasons.append(
        f"(c) scores of all {tested:,} test users: {nan_share:.1%} NaN, {constant_share:.1%} "
        "with one score for every product" + ("" if checks["scores_sane"] else ": broken")
    )
    return GateDecision(
        passed=all(checks.values()),
        candidate=candidate,
        baseline=baseline,
        champion=champion_version if has_champion else None,
        reasons=reasons,
        checks=checks,
        not_judged=not_judged,
        relaxed=params.relaxations(),
        relaxed_on_purpose=params.relaxed_on_purpose if params.relaxations() else None,
    )


def read_per_user(path: Path) -> dict[str, np.ndarray]:
    """Each candidate's per-user NDCG@10 (tasks/evaluation/evaluate.py writes the file)."""
    frame = pd.read_parquet(path)
    return {name: frame[name].to_numpy() for name in frame.columns if name != "user_id"}


@task(name="gate")
def gate(
    metrics: dict[str, dict[str, float]],
    candidate: str,
    baseline: str,
    params: GateParams,
    run: RunFolder,
    stored: StoredChampion | None = None,
) -> GateDecision:
    """Decide, and leave the decision where a person will look: a markdown artifact.

    Reads the run's per-user NDCG@10 (tasks/evaluation/evaluate.py writes them); `stored`:
    the comparison with the champion's stored model, None when there is no champion."""
    per_user = read_per_user(run.per_user_ndcg)
    version = stored.version if stored is not None else None
    decision = decide(
        metrics, candidate, baseline, params, per_user, version, stored_gains(stored, run)
    )
    action = "publishing" if decision.passed else "nothing is published"
    create_markdown_artifact(
        key="gate-decision",
        markdown=f"## Gate {decision.verdict}: {action}\n\n"
        + "\n".join(f"- {r}" for r in decision.reasons),
        description=f"gate for {candidate} vs {baseline}"
        + (f" and champion {version}" if decision.champion else " (no champion yet)")
        + (" (RELAXED gate)" if decision.relaxed else ""),
    )
    return decision


def stored_gains(stored: StoredChampion | None, run: RunFolder) -> StoredChampionGains | None:
    """The stored champion's comparison as the gate reads it (per-user gains or why not)."""
    if stored is None:
        return None
    if stored.why_not is not None:
        return StoredChampionGains(
            challenger=np.zeros(0), reference=np.zeros(0), why_not=stored.why_not
        )
    frame = pd.read_parquet(run.stored_champion_ndcg)
    return StoredChampionGains(
        challenger=frame["challenger"].to_numpy(),
        reference=frame["champion_stored"].to_numpy(),
        data_until=f"{stored.data_until:%Y-%m-%d %H:%M}",
    )
