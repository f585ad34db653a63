"""Monitoring on a store that lives (the `small` preset, 1,500 customers): quiet days do not
retrain; each drift scenario is caught on the features it moves and retrains exactly once;
lists that stopped working retrain through the live hit rate. Every retraining here is a
real nightly run (inline), and the published version, metrics.json and the monitor's state
are read back from disk."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demo_store import generate_store, write_store
from demo_store.live import advance_store
from flows.monitor import MonitorParams, monitor
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.monitoring.drift import DriftThresholds
from tasks.publishing.publish import PublishParams, complete_version, open_staging
from tasks.publishing.recommend import RECOMMENDATIONS_SCHEMA
from tasks.training.models.lightfm_hybrid import LightFMParams
from tasks.training.tune import TuningParams

USER_FEATURES = ("users.skin_type", "users.skin_concerns", "users.birth_year", "users.region")


def _nightly_params(root: Path) -> NightlyParams:
    return NightlyParams(
        data_root=root,
        top_n=10,
        model=LightFMParams(no_components=16, epochs=5),
        tuning=TuningParams(search=False),
        gate=GateParams(
            min_lift=-1.0,
            champion_tolerance=1.0,
            segment_tolerance=1.0,
            relaxed_on_purpose="monitoring is under test: every retraining may publish",
        ),
        publishing=PublishParams(control_share=0.1),
        num_threads=1,
        # The simulated customers buy from the published lists, so the quiet days' product
        # popularity depends on the exact model: with the refit continued from the
        # evaluated model its PSI is 0.232 (threshold 0.2), with the full refit it stays
        # below. Pinned to the full refit the scenarios were calibrated with (see issue 9).
        refit_epochs=None,
    )


def _watch(root: Path) -> MonitorParams:
    return MonitorParams(nightly=_nightly_params(root), retrain="inline")


@pytest.fixture(scope="module")
def published_small(tmp_path_factory) -> Path:
    """The small store with the nightly run's recommendations published (built once)."""
    root = tmp_path_factory.mktemp("small_shop") / "data"
    write_store(generate_store("small", seed=7), root / "demo" / "store.db")
    nightly(_nightly_params(root))
    return root


@pytest.fixture
def shop(published_small, tmp_path) -> Path:
    """A private copy of the published small shop (latest is a relative symlink)."""
    root = tmp_path / "data"
    shutil.copytree(published_small, root, symlinks=True)
    return root


def _latest(root: Path) -> str:
    return (root / "published" / "latest").resolve().name


def _state(root: Path) -> dict:
    path = root / "monitor" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"retrains": 0}


def test_two_quiet_days_do_not_retrain(shop):
    before = _latest(shop)
    nothing_yet = monitor(_watch(shop))
    assert nothing_yet.windows.current_events == 0 and not nothing_yet.decision.retrain
    advance_store(shop / "demo" / "store.db", 2, "none")
    # judge every feature even on two days' ~100 visitors: noise alone must stay under
    watch = _watch(shop).model_copy(update={"drift": DriftThresholds(min_rows=50)})
    report = monitor(watch)
    assert report.windows.current_events > 300
    assert all(d.judged for d in report.drift), [d.feature for d in report.drift if not d.judged]
    assert not report.decision.retrain, report.decision.causes
    assert report.retraining is None and _latest(shop) == before
    assert _state(shop)["retrains"] == 0
    model = next(p for p in report.live if p.variant == "model")
    assert model.visitors >= 100 and model.click_through.value > 0


SCENARIOS = {
    # scenario: (cause keys it must raise, drift it must not raise)
    "launch": ({"drift:product popularity", "unknown_products"}, set(USER_FEATURES)),
    "season": ({"drift:events.category"}, {*USER_FEATURES, "unknown_users", "unknown_products"}),
    "new_users": (
        {"drift:users.region", "unknown_users"},
        {"drift:events.category", "unknown_products"},
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_drift_scenario_is_caught_and_retrains_once(shop, scenario):
    expected, unexpected = SCENARIOS[scenario]
    before = _latest(shop)
    advance_store(shop / "demo" / "store.db", 7, scenario)
    report = monitor(_watch(shop))

    keys = set(report.decision.cause_keys)
    assert report.decision.retrain and expected <= keys, report.decision.causes
    assert not keys & {f"drift:{name}" for name in unexpected} and not keys & unexpected, keys
    retraining = report.retraining
    assert retraining is not None and retraining.mode == "inline"
    if retraining.refused:  # the gate may refuse: then the reason is recorded, nothing moves
        assert _latest(shop) == before and retraining.refused
    else:
        assert retraining.published_version == _latest(shop) != before
        metrics = json.loads((shop / "published" / "latest" / "metrics.json").read_text())
        assert (
            metrics["trigger"]
            == retraining.reason
            == "monitoring: " + "; ".join(report.decision.causes)
        )
        # the retrained model knows the newcomers, and every customer has a list again
        snapshot = shop / "runs" / metrics["run_id"] / "snapshot"
        with sqlite3.connect(shop / "demo" / "store.db") as connection:
            store = {
                table: set(
                    pd.read_sql(f"SELECT {table[:-1]}_id FROM {table}", connection).iloc[:, 0]
                )
                for table in ("users", "products")
            }
        for table in ("users", "products"):
            learnt = set(pd.read_parquet(snapshot / f"{table}.parquet")[f"{table[:-1]}_id"])
            assert learnt == store[table], table
        lists = pd.read_parquet(shop / "published" / "latest" / "recommendations.parquet")
        assert set(lists["user_id"]) == store["users"]
    page = report.report.read_text()
    assert "RETRAIN" in page and "data:image/png;base64," in page

    # The world keeps moving the same way: the cause is held back by the cooldown.
    advance_store(shop / "demo" / "store.db", 2, scenario, seed=1)
    again = monitor(_watch(shop))
    assert not again.decision.retrain and again.retraining is None, again.decision.causes
    assert _state(shop)["retrains"] == 1


def _publish_random_lists(root: Path, seed: int = 0) -> str:
    """A deliberately poor version, written through the publisher's own staging and switch:
    ten random products per user, with the current version's metrics and data_until."""
    latest = (root / "published" / "latest").resolve()
    current = pd.read_parquet(latest / "recommendations.parquet", columns=["user_id"])
    products = pd.read_parquet(
        root
        / "runs"
        / json.loads((latest / "manifest.json").read_text())["run_id"]
        / "snapshot"
        / "products.parquet"
    )
    users = current["user_id"].unique()
    rng = np.random.default_rng(seed)
    picks = rng.random((len(users), len(products))).argsort(axis=1)[:, :10]
    version = f"{latest.name}-poor"
    lists = pd.DataFrame(
        {
            "user_id": np.repeat(users, 10),
            "rank": np.tile(np.arange(1, 11, dtype=np.int16), len(users)),
            "product_id": products["product_id"].to_numpy()[picks.ravel()],
            "score": np.float32(0),
            "model_version": version,
            "generated_at": pd.Timestamp.now(tz="UTC"),
            "tier": "history",
            "reason": "",
            "variant": "model",
        }
    )
    staging = open_staging(root / "published", version)
    part = staging / "part.parquet"
    pq.write_table(pa.Table.from_pandas(lists, RECOMMENDATIONS_SCHEMA, preserve_index=False), part)
    manifest = json.loads((latest / "manifest.json").read_text()) | {"model_version": version}
    metrics = (latest / "metrics.json").read_text()
    complete_version(staging, [part], metrics, manifest, keep_versions=5)
    return version


def test_poor_recommendations_retrain_through_the_live_hit_rate(shop):
    poor = _publish_random_lists(shop)
    assert _latest(shop) == poor
    advance_store(shop / "demo" / "store.db", 7, "none")  # customers see the poor lists
    report = monitor(_watch(shop))
    assert "live:hit_rate" in report.decision.cause_keys, report.decision.causes
    model = next(p for p in report.live if p.variant == "model")
    trained = json.loads((shop / "published" / poor / "metrics.json").read_text())
    assert model.hit_rate.value < 0.5 * trained["candidates"][trained["published"]]["HR@10"]
    assert report.retraining and report.retraining.published_version not in (None, poor)
    assert _latest(shop) == report.retraining.published_version
