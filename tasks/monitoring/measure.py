"""Monitoring's tasks: the windows, drift, live performance, the decision, its memory.

The reference window is the last `reference_days` of the data the published model was
trained on (up to the manifest's `data_until`); the current window is everything since.
The decision to retrain has a memory (data/monitor/state.json): a cause that already
triggered a retraining within `cooldown_hours`, or another feature of the same table
(`cause_family`), does not trigger another.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from prefect import task
from pydantic import BaseModel, Field

from tasks.atomic import write_text_atomically
from tasks.dataset import DatasetSpec
from tasks.errors import NotPublishedError
from tasks.monitoring.drift import (
    DriftThresholds,
    FeatureDrift,
    multi_drift,
    numeric_drift,
    popularity_drift,
    share_drift,
)
from tasks.monitoring.live_metrics import Uplift, VariantPerformance, uplift, variant_performance
from tasks.run_context import DataRoot, Snapshot


class LiveThresholds(BaseModel):
    """When the published lists count as doing badly."""

    max_hit_rate_drop: float = Field(
        0.5,
        gt=0,
        le=1,
        description="retrain when the live hit rate falls below (1 - this) × the hit rate "
        "measured at training time (HR@shown of the published model)",
    )
    min_visitors: int = Field(
        100, ge=1, description="fewer visitors with a list: reported, never judged"
    )
    max_unknown_user_share: float = Field(
        0.2, gt=0, le=1, description="share of the window's events from users the model never saw"
    )
    max_unknown_product_share: float = Field(
        0.1, gt=0, le=1, description="share of the window's events on products it never saw"
    )


class PublishedState(BaseModel):
    """What monitoring needs to know about the version `latest` serves."""

    version: str
    data_until: datetime
    run_id: str | None
    recommendations: Path
    training_hit_rate: float | None
    hit_rate_metric: str | None


class Windows(BaseModel):
    reference_start: datetime
    data_until: datetime
    current_end: datetime | None
    reference_events: int
    current_events: int


class Decision(BaseModel):
    retrain: bool
    causes: list[str]  # what passed its threshold, in words
    cause_keys: list[
        str
    ]  # the same, as stable keys (drift:skin_type, unknown_users, live:hit_rate)
    suppressed: list[str] = []  # causes held back by the cooldown


class MonitorState(BaseModel):
    last_retrain_at: datetime | None = None
    last_retrain_keys: list[str] = []
    last_retrain_version: str | None = None
    retrains: int = 0


def read_published(data_root: Path, shown: int) -> PublishedState:
    """The version `latest` serves. `latest` is resolved once and everything is read from
    that folder, so a publication switching `latest` meanwhile cannot mix two versions."""
    latest = DataRoot.of(data_root).latest
    if not latest.exists():
        raise NotPublishedError(
            f"nothing is published under {latest}: run the nightly flow before monitoring"
        )
    folder = latest.resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    if not manifest.get("data_until"):
        raise NotPublishedError(
            f"{folder / 'manifest.json'} has no data_until (published by an older version): "
            "run the nightly flow once more"
        )
    candidate = metrics.get("published") or "blend"
    scores = metrics.get("candidates", {}).get(candidate, {})
    metric = next((m for m in (f"HR@{shown}", "HR@10") if m in scores), None)
    return PublishedState(
        version=manifest["model_version"],
        data_until=datetime.fromisoformat(manifest["data_until"]),
        run_id=manifest.get("run_id") or metrics.get("run_id"),
        recommendations=folder / "recommendations.parquet",
        training_hit_rate=scores.get(metric) if metric else None,
        hit_rate_metric=metric,
    )


def split_windows(
    events: pd.DataFrame, data_until: datetime, reference_days: float
) -> tuple[pd.DataFrame, pd.DataFrame, Windows]:
    at = events["occurred_at"]
    until = pd.Timestamp(data_until)
    start = until - pd.Timedelta(days=reference_days)
    reference = events[(at > start) & (at <= until)]
    current = events[at > until]
    return (
        reference,
        current,
        Windows(
            reference_start=start.to_pydatetime(),
            data_until=until.to_pydatetime(),
            current_end=current["occurred_at"].max().to_pydatetime() if len(current) else None,
            reference_events=len(reference),
            current_events=len(current),
        ),
    )


@task(name="measure-drift")
def measure_drift(
    snapshot: Snapshot,
    dataset: DatasetSpec,
    published: PublishedState,
    reference_days: float,
    thresholds: DriftThresholds,
    known: dict[str, Path],
) -> tuple[list[FeatureDrift], dict[str, float], Windows]:
    """Drift per user feature (of the users active in each window), in the event mix, the
    category mix and product popularity; and the share of events the model cannot know."""
    users = snapshot.read("users")
    products = snapshot.read("products")
    events = snapshot.read("events")
    reference, current, windows = split_windows(events, published.data_until, reference_days)
    rows: list[FeatureDrift] = []
    visitors = {
        side: users[users["user_id"].isin(frame["user_id"].unique())]
        for side, frame in (("reference", reference), ("current", current))
    }
    for column, spec in dataset.user_features.items():
        if column not in users:
            continue
        ref, cur = visitors["reference"][column], visitors["current"][column]
        if spec.kind == "numeric":
            rows.append(numeric_drift(f"users.{column}", ref, cur, thresholds))
        elif spec.kind == "multi":
            rows.append(multi_drift(f"users.{column}", ref, cur, spec.sep, thresholds))
        else:
            rows.append(share_drift(f"users.{column}", "categorical", ref, cur, thresholds))
    rows.append(
        share_drift(
            "events.event_type",
            "categorical",
            reference["event_type"],
            current["event_type"],
            thresholds,
        )
    )
    category = dataset.category_column()
    if category and category in products:
        by_product = products.set_index("product_id")[category]
        rows.append(
            share_drift(
                f"events.{category}",
                "categorical",
                reference["product_id"].map(by_product),
                current["product_id"].map(by_product),
                thresholds,
            )
        )
    bought = dataset.events.transaction_types
    known_users = pd.read_parquet(known["users"], columns=["user_id"])["user_id"]
    known_products = pd.Index(
        pd.read_parquet(known["products"], columns=["product_id"])["product_id"]
    )
    trained = events["occurred_at"] <= pd.Timestamp(published.data_until)
    rows.append(
        popularity_drift(
            events.loc[trained & events["event_type"].isin(bought), "product_id"],
            reference.loc[reference["event_type"].isin(bought), "product_id"],
            current.loc[current["event_type"].isin(bought), "product_id"],
            known_products,
            thresholds,
        )
    )
    unknown = {
        "events": len(current),
        "unknown_user_share": float((~current["user_id"].isin(known_users)).mean())
        if len(current)
        else 0.0,
        "unknown_product_share": float((~current["product_id"].isin(known_products)).mean())
        if len(current)
        else 0.0,
    }
    return rows, unknown, windows


@task(name="measure-live-performance")
def measure_live_performance(
    snapshot: Snapshot,
    dataset: DatasetSpec,
    published: PublishedState,
    shown: int,
) -> tuple[list[VariantPerformance], list[Uplift]]:
    """Click-through, conversion, hit rate, revenue and satisfaction per A/B variant."""
    lists = pd.read_parquet(published.recommendations)
    since = pd.Timestamp(published.data_until)
    # only the window's rows are read (pyarrow skips row groups that end before it)
    current = pd.read_parquet(snapshot.tables["events"], filters=[("occurred_at", ">", since)])
    performance = variant_performance(
        lists, current, dataset.events.transaction_types, snapshot.counts["products"], shown
    )
    by_variant = {p.variant: p for p in performance}
    lift = (
        uplift(by_variant["model"], by_variant["control"])
        if {"model", "control"} <= set(by_variant)
        else []
    )
    return performance, lift


def decide_retraining(
    drift: list[FeatureDrift],
    unknown: dict[str, float],
    performance: list[VariantPerformance],
    published: PublishedState,
    live: LiveThresholds,
    state: MonitorState,
    cooldown_hours: float,
    now: datetime,
) -> Decision:
    """Which thresholds were passed, and whether that calls for a retraining now."""
    causes: dict[str, str] = {}
    for row in drift:
        if row.drifted:
            causes[f"drift:{row.feature}"] = (
                f"{row.feature} drifted: {row.statistic} {row.value:.3f} ≥ {row.threshold}"
            )
    if unknown["events"]:
        for side, limit in (
            ("user", live.max_unknown_user_share),
            ("product", live.max_unknown_product_share),
        ):
            share = unknown[f"unknown_{side}_share"]
            if share >= limit:
                causes[f"unknown_{side}s"] = (
                    f"{share:.1%} of the window's events are on {side}s the model never saw "
                    f"(≥ {limit:.0%})"
                )
    model = next((p for p in performance if p.variant == "model"), None)
    if (
        model is not None
        and published.training_hit_rate
        and model.visitors >= live.min_visitors
        and model.buyers > 0
    ):
        floor = (1 - live.max_hit_rate_drop) * published.training_hit_rate
        if model.hit_rate.value < floor:
            causes["live:hit_rate"] = (
                f"live hit rate {model.hit_rate.value:.3f} < {floor:.3f} (= (1 - "
                f"{live.max_hit_rate_drop}) × {published.hit_rate_metric} "
                f"{published.training_hit_rate:.3f} at training)"
            )
    recent = state.last_retrain_at is not None and now - state.last_retrain_at < timedelta(
        hours=cooldown_hours
    )
    retrained_for = {cause_family(k) for k in state.last_retrain_keys} if recent else set()
    suppressed = [k for k in causes if cause_family(k) in retrained_for]
    keys = [k for k in causes if k not in suppressed]
    return Decision(
        retrain=bool(keys),
        causes=[causes[k] for k in keys],
        cause_keys=keys,
        suppressed=[
            f"{causes[k]} (retrained for it at {state.last_retrain_at})" for k in suppressed
        ],
    )


def cause_family(key: str) -> str:
    """What a cooldown holds back together: a table's features drift together (new users
    move region first and birth year a day later; it is one change), so
    `drift:users.region` and `drift:users.birth_year` are one family, `drift:users`."""
    return key.split(".", 1)[0]


def known_tables(data_root: Path, published: PublishedState) -> dict[str, Path]:
    """The users and products tables the published model was trained on (its run's
    snapshot): what `unknown_user_share` and `unknown_product_share` are measured against."""
    trained_on = DataRoot.of(data_root).run(str(published.run_id)) / "snapshot"
    known = {table: trained_on / f"{table}.parquet" for table in ("users", "products")}
    if not all(path.exists() for path in known.values()):
        raise NotPublishedError(
            f"the training snapshot of {published.version} is gone ({trained_on}): monitoring "
            "cannot tell which users and products the model knows"
        )
    return known


def state_path(data_root: Path) -> Path:
    return DataRoot.of(data_root).monitor_state


def load_state(data_root: Path) -> MonitorState:
    path = state_path(data_root)
    return MonitorState.model_validate_json(path.read_text()) if path.exists() else MonitorState()


def save_state(data_root: Path, state: MonitorState) -> None:
    write_text_atomically(state_path(data_root), state.model_dump_json(indent=2))


def remember_retrain(state: MonitorState, decision: Decision, version: str) -> MonitorState:
    return MonitorState(
        last_retrain_at=datetime.now(UTC),
        last_retrain_keys=decision.cause_keys,
        last_retrain_version=version,
        retrains=state.retrains + 1,
    )
