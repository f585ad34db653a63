"""Monitoring: drift statistics, live metrics, A/B assignment, the decision and its
cooldown, the living store, and the monitor flow retraining through Prefect."""

from __future__ import annotations

import importlib
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from demo_store import GroundTruth, ground_truth_path
from demo_store.live import NEW_BRAND, NEW_REGION, PLACEMENT, advance_store
from tasks.monitoring.drift import (
    DriftThresholds,
    FeatureDrift,
    numeric_drift,
    psi,
    share_drift,
    shares,
)
from tasks.monitoring.live_metrics import variant_performance, wilson
from tasks.monitoring.measure import LiveThresholds, MonitorState, PublishedState, decide_retraining
from tasks.publishing.recommend import Experiment
from tests.conftest import REPO

THRESHOLDS = DriftThresholds()


def test_psi_is_the_textbook_formula():
    ref = pd.Series({"a": 0.5, "b": 0.3, "c": 0.2})
    cur = pd.Series({"a": 0.3, "b": 0.3, "c": 0.4})
    expected = (0.3 - 0.5) * np.log(0.3 / 0.5) + (0.4 - 0.2) * np.log(0.4 / 0.2)
    assert psi(ref, cur) == pytest.approx(expected)
    assert psi(ref, ref) == 0.0


def test_share_drift_flags_a_shift_not_sampling_noise():
    rng = np.random.default_rng(0)
    values = ["dry", "oily", "combination", "normal", "sensitive"]
    stable = [0.22, 0.20, 0.28, 0.18, 0.12]
    ref = pd.Series(rng.choice(values, 3000, p=stable))
    same = pd.Series(rng.choice(values, 800, p=stable))
    shifted = pd.Series(rng.choice(values, 800, p=[0.10, 0.55, 0.15, 0.12, 0.08]))
    assert not share_drift("skin", "categorical", ref, same, THRESHOLDS).drifted
    moved = share_drift("skin", "categorical", ref, shifted, THRESHOLDS)
    assert moved.drifted and moved.value >= THRESHOLDS.psi
    assert moved.top_changes[0]["value"] == "oily"
    few = share_drift("skin", "categorical", ref, shifted[:50], THRESHOLDS)
    assert not few.judged and not few.drifted  # 50 rows: reported, never judged
    assert shares(pd.Series(["a", None])).index.tolist() == ["a", "(missing)"]


def test_numeric_drift_uses_ks_and_wasserstein():
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.normal(1990, 11, 3000))
    same = numeric_drift("birth_year", ref, pd.Series(rng.normal(1990, 11, 1000)), THRESHOLDS)
    young = numeric_drift("birth_year", ref, pd.Series(rng.normal(2000, 5, 1000)), THRESHOLDS)
    assert not same.drifted and same.p_value > 0.01
    assert young.drifted and young.value >= 0.1 and young.p_value < 1e-6
    assert young.wasserstein_sd == pytest.approx(10 / 11, abs=0.15)
    assert sum(young.histogram["current"]) == pytest.approx(1.0, abs=1e-3)


def test_wilson_interval_and_attribution_by_placement():
    half = wilson(50, 100)
    assert (round(half.low, 3), round(half.high, 3)) == (0.404, 0.596)
    lists = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2"], "rank": [1, 2, 1, 2], "product_id": list("abab")}
    )
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "product_id": ["a", "a", "b", "c"],
            "event_type": ["view", "purchase", "purchase", "purchase"],
            "quantity": [None, 1, 2, 1],
            "unit_price": [None, 10.0, 5.0, 4.0],
            "rating": [None] * 4,
            # u2 bought b from the search page: on the list, not credited to it
            "placement": ["recommendations", "recommendations", "search", None],
        }
    )
    (model,) = variant_performance(lists, events, ["purchase"], n_products=3)
    assert model.visitors == 2 and model.buyers == 2
    assert model.conversion.value == 0.5  # only u1 bought from the recommendations
    assert model.hit_rate.value == 1.0  # both bought a product on their list
    assert model.revenue_per_user.value == pytest.approx((10 + 10 + 4) / 2)
    (unlogged,) = variant_performance(
        lists, events.drop(columns="placement"), ["purchase"], n_products=3
    )
    assert unlogged.conversion.value == 1.0  # no placement logged: any event on the list


def test_ab_control_group_is_stable_and_sized():
    ids = pd.Series([f"U{i:07d}" for i in range(20_000)])
    first = Experiment(name="spring", control_share=0.1).control(ids)
    again = Experiment(name="spring", control_share=0.1).control(ids.sample(frac=1, random_state=1))
    assert abs(first.mean() - 0.1) < 0.01
    reordered = pd.Series(again, index=ids.sample(frac=1, random_state=1).index).sort_index()
    assert (reordered.to_numpy() == first).all()  # a user's side does not depend on order
    other = Experiment(name="autumn", control_share=0.1).control(ids)
    assert 0.05 < (first & other).sum() / first.sum() < 0.2  # a new name draws a new group
    assert not Experiment(control_share=0).control(ids).any()


def _published() -> PublishedState:
    return PublishedState(
        version="v1",
        data_until=datetime(2026, 11, 1, tzinfo=UTC),
        run_id="r",
        recommendations=REPO / "none.parquet",
        training_hit_rate=0.3,
        hit_rate_metric="HR@10",
    )


def test_decision_retrains_once_per_cause_within_the_cooldown():
    drifted = FeatureDrift(
        feature="users.region",
        kind="categorical",
        statistic="PSI",
        value=0.5,
        threshold=0.2,
        drifted=True,
        judged=True,
        n_reference=500,
        n_current=500,
    )
    unknown = {"events": 1000, "unknown_user_share": 0.3, "unknown_product_share": 0.0}
    now = datetime.now(UTC)
    args = ([drifted], unknown, [], _published(), LiveThresholds())
    fresh = decide_retraining(*args, MonitorState(), 72, now)
    assert fresh.retrain and fresh.cause_keys == ["drift:users.region", "unknown_users"]
    after = MonitorState(
        last_retrain_at=now - timedelta(hours=1),
        last_retrain_keys=["drift:users.region", "unknown_users"],
    )
    held = decide_retraining(*args, after, 72, now)
    assert not held.retrain and len(held.suppressed) == 2
    later = decide_retraining(*args, after, 72, now + timedelta(hours=73))
    assert later.retrain  # the cooldown is over
    partly = MonitorState(last_retrain_at=now, last_retrain_keys=["unknown_users"])
    new_cause = decide_retraining(*args, partly, 72, now)
    assert new_cause.retrain and new_cause.cause_keys == ["drift:users.region"]


def test_prefect_yaml_is_generated_from_the_one_description(monkeypatch):
    """deployments/serve.py::definitions is the only declaration: prefect.yaml is its
    rendering (python -m deployments.serve --write-prefect-yaml), and it says so."""
    from deployments.serve import definitions, prefect_yaml, runner_deployments

    for name in ("RECS_TIMEZONE", "RECS_NIGHTLY_CRON", "RECS_MONITOR_CRON"):
        monkeypatch.delenv(name, raising=False)
    on_disk = (REPO / "deployments" / "prefect.yaml").read_text()
    assert on_disk == prefect_yaml(), "run: python -m deployments.serve --write-prefect-yaml"
    declared = yaml.safe_load(on_disk)["deployments"]
    by_name = {d["name"]: d for d in declared}
    assert [d["name"] for d in declared] == [d.name for d in definitions()]
    for definition in definitions():
        entry = by_name[definition.name]
        module = entry["entrypoint"].split(":")[0].removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), entry["entrypoint"].split(":")[1])
        assert flow is definition.flow
    assert by_name["nightly"]["concurrency_limit"] == 1
    nightly_deployment = next(d for d in runner_deployments() if d.name == "nightly")
    form = nightly_deployment._parameter_openapi_schema.model_dump()
    fields = form["definitions"]["NightlyParams"]["properties"]
    assert fields["top_n"]["type"] == "integer" and fields["top_n"]["maximum"] == 500
    assert fields["extraction"]["enum"] == ["full", "incremental"]
    assert form["properties"]["params"]["$ref"].endswith("NightlyParams")


def test_living_store_appends_days_and_scenarios(tmp_path, tiny_store_db):
    db = tmp_path / "demo" / "store.db"
    db.parent.mkdir()
    shutil.copy(tiny_store_db, db)
    shutil.copy(ground_truth_path(tiny_store_db), ground_truth_path(db))
    with sqlite3.connect(db) as connection:
        before = connection.execute("SELECT MAX(event_id), MAX(occurred_at) FROM events").fetchone()
    users = pd.read_sql("SELECT user_id FROM users", sqlite3.connect(db))["user_id"]
    products = pd.read_sql("SELECT product_id FROM products", sqlite3.connect(db))["product_id"]
    lists = pd.DataFrame(
        {
            "user_id": np.repeat(users.to_numpy(), 3),
            "rank": np.tile([1, 2, 3], len(users)),
            "product_id": np.tile(products.to_numpy()[:3], len(users)),
        }
    )
    shelf = tmp_path / "recs.parquet"
    lists.to_parquet(shelf)

    plain = advance_store(db, 10, "none", recommendations=shelf)
    launch = advance_store(db, 10, "launch", recommendations=shelf)
    newcomers = advance_store(db, 10, "new_users", recommendations=shelf)
    with sqlite3.connect(db) as connection:
        events = pd.read_sql(
            "SELECT * FROM events WHERE event_id > ?", connection, params=[before[0]]
        )
        users_now = pd.read_sql("SELECT * FROM users", connection)
        products_now = pd.read_sql("SELECT * FROM products", connection)
    assert len(events) == plain.events + launch.events + newcomers.events > 0
    assert events["event_id"].is_monotonic_increasing and events["event_id"].is_unique
    assert (events["occurred_at"] > before[1]).all()
    assert plain.end < launch.end < newcomers.end  # each call continues where the last stopped
    assert launch.products_added == (products_now["brand"] == NEW_BRAND).sum() > 0
    assert newcomers.users_added == (users_now["region"] == NEW_REGION).sum() > 0
    assert (
        events["product_id"]
        .isin(products_now.loc[products_now["brand"] == NEW_BRAND, "product_id"])
        .any()
    )
    assert events["user_id"].isin(users_now.loc[users_now["region"] == NEW_REGION, "user_id"]).any()
    opened = events[events["placement"] == PLACEMENT]
    assert len(opened) and opened["product_id"].isin(products.to_numpy()[:3]).all()
    truth = GroundTruth.load(ground_truth_path(db))
    assert len(truth.user_actives) == len(users_now) and len(truth.product_appeal) == len(
        products_now
    )
