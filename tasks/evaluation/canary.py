"""The canary: the published model is checked before `latest` moves.

Why: the gate judges the blend trained on the split, but what goes out is that
configuration refit on every event (LightFM continuing from the judged model). A refit
that went wrong (NaN scores, a constant list, a model that forgot what the judged one
knew) would otherwise reach every customer unchecked. The canary compares the two models
where they can be compared, on the same users with the same exclusions:

- score health on every user: no NaN score, no user whose products all score the same;
- agreement: the share of the judged model's top 10 the refit keeps, averaged over a
  seeded sample of users. An honest refit adds one night of purchases to what the judged
  model learnt, so most of each list stays; noise keeps about 10 / products of it.

The list size, row count and catalogue coverage of what the refit publishes are checked
with the written lists (tasks/publishing/publication_checks.py), also before `latest`
moves. A failure is a PublicationRefusedError (exit code 9) with the numbers; the run's
metrics.json records the check either way (`refit_check`).
"""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from tasks.dataset import DatasetSpec
from tasks.evaluation.evaluate import score_health
from tasks.evaluation.gate import GateParams
from tasks.features.interactions import bought_matrix
from tasks.publishing.scoring import top_n
from tasks.run_context import Snapshot, TrainedModel
from tasks.training.models import load_scorer


class RefitCheck(BaseModel):
    """What the canary measured on the refit model, and its verdict."""

    passed: bool
    reasons: list[str]
    users_checked: int = Field(description="users whose every score was checked for health")
    nan_score_share: float
    constant_score_share: float = Field(description="share of users with one score for all")
    users_compared: int = Field(description="the seeded sample both models' lists are compared on")
    k: int
    top_k_overlap: float = Field(
        description="mean share of the judged model's top k that the refit keeps"
    )
    min_overlap: float


def top_k_overlap(judged: np.ndarray, refit: np.ndarray) -> np.ndarray:
    """Per row, the share of `judged`'s products (index arrays (n, k), -1 = none) that
    `refit` also holds; 1.0 for a row where `judged` holds none."""
    valid = judged >= 0
    same = (judged[:, :, None] == refit[:, None, :]) & valid[:, :, None]
    kept = same.any(axis=2).sum(axis=1)
    return np.where(valid.any(axis=1), kept / np.maximum(valid.sum(axis=1), 1), 1.0)


def judge_refit(
    nan_share: float,
    constant_share: float,
    overlap: float,
    min_overlap: float,
    users_checked: int,
    users_compared: int,
    k: int,
) -> RefitCheck:
    """The verdict, every check with its numbers in plain words."""
    healthy = nan_share == 0.0 and constant_share == 0.0
    agrees = overlap >= min_overlap
    reasons = [
        f"scores of all {users_checked:,} users: {nan_share:.2%} NaN, {constant_share:.2%} "
        "of users with one score for every product" + ("" if healthy else ": broken"),
        f"the refit keeps {overlap:.1%} of the judged model's top {k} on {users_compared:,} "
        f"users ({'>=' if agrees else '<'} min_refit_overlap {min_overlap:.0%})",
    ]
    return RefitCheck(
        passed=healthy and agrees,
        reasons=reasons,
        users_checked=users_checked,
        nan_score_share=nan_share,
        constant_score_share=constant_share,
        users_compared=users_compared,
        k=k,
        top_k_overlap=overlap,
        min_overlap=min_overlap,
    )


@task(name="check-refit")
def check_refit(
    judged: TrainedModel,
    refit: TrainedModel,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    gate: GateParams,
    seed: int,
    k: int = 10,
) -> RefitCheck:
    """The canary (see the module): `gate.min_refit_overlap` on `gate.refit_check_users`
    users (a seeded sample)."""
    judged_scorer, refit_scorer = load_scorer(judged.vectors), load_scorer(refit.vectors)
    users = snapshot.read("users", columns=["user_id"])["user_id"]
    products = snapshot.read("products", columns=["product_id"])["product_id"]
    events = snapshot.read("events", columns=["user_id", "product_id", "event_type"])
    exclude = bought_matrix(events, users, products, dataset.events.transaction_types)
    rng = np.random.default_rng(seed)
    sample = min(gate.refit_check_users, len(users))
    rows = np.sort(rng.choice(len(users), sample, replace=False))
    before, _ = top_n(judged_scorer, rows, k, exclude=exclude)
    after, _ = top_n(refit_scorer, rows, k, exclude=exclude)
    overlap = top_k_overlap(before, after)
    health = score_health(refit_scorer)  # every user
    nan_share, constant_share = health["nan_score_share"], health["constant_score_share"]
    check = judge_refit(
        nan_share,
        constant_share,
        float(overlap.mean()) if len(overlap) else 1.0,
        gate.min_refit_overlap,
        refit_scorer.n_users,
        len(rows),
        k,
    )
    get_run_logger().info("refit check %s: %s", check.passed, "; ".join(check.reasons))
    return check
