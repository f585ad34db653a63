"""End to end: the nightly flow on the tiny store, checked row by row against the store."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from flows.nightly import GateRefusedError, nightly
from flows.params import NightlyParams
from tasks.gate import GateParams
from tasks.models.lightfm_hybrid import LightFMParams
from tasks.publish import artifact_sha256, current_latest
from tasks.train import COMPONENTS
from tasks.tune import TuningParams

TOP_N = 10
# The tiny store has ~120 test users: too few to rank models reliably, so these tests
# check the pipeline's mechanics with a permissive gate; model quality is tested on `demo`.
PERMISSIVE = GateParams(min_lift=-1.0)
FAST = LightFMParams(no_components=16, epochs=10)
FAST_TUNING = TuningParams(lightfm_trials=2, blend_trials=10)


def run_nightly(data_root, **overrides):
    params = NightlyParams(
        data_root=data_root,
        top_n=TOP_N,
        model=FAST,
        tuning=FAST_TUNING,
        gate=PERMISSIVE,
        num_threads=1,
    )
    return nightly(params.model_copy(update=overrides))


def store_tables(db_path) -> dict[str, pd.DataFrame]:
    with sqlite3.connect(db_path) as connection:
        return {
            table: pd.read_sql(f"SELECT * FROM {table}", connection)
            for table in ("users", "products", "events")
        }


def test_nightly_publishes_valid_top_n_for_every_user(data_root, monkeypatch):
    monkeypatch.chdir(data_root.parent)  # the default: a relative data root, `data/`
    summary = run_nightly(Path(data_root.name))
    data_root = data_root.resolve()

    latest = data_root / "published" / "latest"
    assert latest.is_symlink()
    assert (
        summary.published_path.resolve()
        == data_root / "published" / summary.published_version / ("recommendations.parquet")
    )
    recs = pd.read_parquet(latest / "recommendations.parquet")
    store = store_tables(data_root / "demo" / "store.db")

    assert list(recs.columns) == [
        "user_id",
        "rank",
        "product_id",
        "score",
        "model_version",
        "generated_at",
    ]
    assert str(recs["score"].dtype) == "float32"
    assert str(recs["generated_at"].dtype) == "datetime64[us, UTC]"
    assert (recs["model_version"] == summary.published_version).all()

    # Every user of the store gets a list (users without history are served from features).
    assert set(recs["user_id"]) == set(store["users"]["user_id"])

    purchases = store["events"][store["events"]["event_type"] == "purchase"]
    bought = set(zip(purchases["user_id"], purchases["product_id"], strict=True))
    out_of_stock = set(store["products"].loc[store["products"]["in_stock"] == 0, "product_id"])
    assert out_of_stock, "the tiny store should have out-of-stock products to exclude"
    known_products = set(store["products"]["product_id"])
    eligible = len(known_products) - len(out_of_stock)

    for user_id, rows in recs.groupby("user_id"):
        n_bought_in_stock = len({p for (u, p) in bought if u == user_id} - out_of_stock)
        expected = min(TOP_N, eligible - n_bought_in_stock)
        assert len(rows) == expected, user_id
        assert list(rows["rank"]) == list(range(1, expected + 1)), user_id
        assert rows["product_id"].is_unique, user_id
        assert rows["score"].is_monotonic_decreasing, user_id
        assert set(rows["product_id"]) <= known_products
        assert not set(rows["product_id"]) & out_of_stock, user_id
        assert not {(user_id, p) for p in rows["product_id"]} & bought, user_id

    metrics = json.loads((latest / "metrics.json").read_text())
    assert set(metrics["candidates"]) == set(COMPONENTS) | {"blend"}
    for name, candidate in metrics["candidates"].items():
        for k in (5, 10, 20):
            for key in ("NDCG", "HR", "precision", "recall", "MAP"):
                assert 0.0 <= candidate[f"{key}@{k}"] <= 1.0, (name, key, k)
        assert candidate["NDCG@10_ci95_low"] <= candidate["NDCG@10"]
        assert candidate["NDCG@10"] <= candidate["NDCG@10_ci95_high"]
        assert candidate["n[cold_users]"] + candidate["n[warm_users]"] == candidate["n_test_users"]
    assert metrics["published"] == "blend"
    assert metrics["gate"]["passed"] is True and metrics["gate"]["reasons"]
    assert metrics["published_model"]["refit_on_all_data"] is True
    assert metrics["tuning"]["chosen"]["blend"]["lightfm_hybrid"] > 0

    # The registry holds the published model, and the champion pointer names it.
    entry = json.loads((data_root / "models" / "champion" / "model.json").read_text())
    assert entry["version"] == summary.published_version
    assert entry["published"] and entry["refit_on_all_data"]
    assert entry["data_fingerprint"] == metrics["data"]["fingerprint"]
    assert entry["config"]["lightfm"] == metrics["tuning"]["chosen"]["lightfm"]
    assert entry["artifact_sha256"] == artifact_sha256(data_root / "models" / "champion" / "model")

    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["row_count"] == len(recs)
    assert manifest["user_count"] == recs["user_id"].nunique()
    assert manifest["model_version"] == summary.published_version
    assert len(manifest["data_fingerprint"]) == 64
    assert pd.Timestamp(manifest["created_at"]).tzinfo is not None


def test_refused_gate_publishes_nothing_and_keeps_latest(data_root):
    first = run_nightly(data_root)
    published = data_root / "published"
    before = sorted(p.name for p in published.iterdir())
    latest_bytes = (published / "latest" / "recommendations.parquet").read_bytes()

    # No model reaches NDCG@10 = 1 on real data: the gate must refuse.
    with pytest.raises(GateRefusedError, match="REFUSED"):
        run_nightly(data_root, gate=GateParams(min_ndcg=1.0))

    assert current_latest(published) == first.published_version
    assert sorted(p.name for p in published.iterdir()) == before
    assert (published / "latest" / "recommendations.parquet").read_bytes() == latest_bytes
    runs = sorted((data_root / "runs").iterdir(), key=os.path.getmtime)
    refused = json.loads((runs[-1] / "metrics.json").read_text())
    assert refused["gate"]["passed"] is False
    assert refused["published"] is None
    assert any("min_ndcg 1" in reason for reason in refused["gate"]["reasons"])


def test_sabotaged_model_is_refused_by_default_gate(data_root):
    """A model trained for one epoch at a vanishing learning rate ranks at random."""
    sabotaged = LightFMParams(no_components=2, epochs=1, learning_rate=1e-6)
    with pytest.raises(GateRefusedError):
        run_nightly(
            data_root,
            model=sabotaged,
            blend={"lightfm_hybrid": 1.0},
            tuning=TuningParams(search=False),
            gate=GateParams(),
        )
    assert not (data_root / "published" / "latest").exists()
    # Registered as tried, never as champion.
    (entry,) = (data_root / "models").glob("*/model.json")
    assert json.loads(entry.read_text())["published"] is False
    assert not (data_root / "models" / "champion").exists()


def test_dry_skin_gets_more_hydrating_products_than_oily_skin(data_root):
    """The seed's example, on `tiny`: hydration is what dry skin buys."""
    summary = run_nightly(data_root)
    recs = pd.read_parquet(summary.published_path)
    store = store_tables(data_root / "demo" / "store.db")
    top10 = recs[recs["rank"] <= 10].merge(store["users"], on="user_id")
    top10 = top10.merge(store["products"], on="product_id")
    hydrating = top10["ingredients"].str.contains(
        "hyaluronic acid|ceramides|squalane|shea butter|glycerin"
    )
    share = hydrating.groupby(top10["skin_type"]).mean()
    assert share["dry"] > share["oily"], share
