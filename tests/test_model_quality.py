"""Model behaviour on the `demo` preset: the published blend beats popularity, the hybrid
beats collaborative filtering on cold users, and what it recommends makes sense for a
person's skin even before they have bought anything."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.demo_store import generate_store, write_store

MIN_LIFT_OVER_POPULARITY = 1.3  # the models issue's bar; measured 1.39 (README)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_data")
    store = generate_store("demo", seed=42)
    write_store(store, root / "demo" / "store.db")
    summary = nightly(NightlyParams(data_root=root))
    recs = pd.read_parquet(summary.published_path)
    return summary, store, recs, root


def test_published_model_beats_popularity_on_demo(demo_run):
    summary, _, _, root = demo_run
    metrics = json.loads((root / "published" / "latest" / "metrics.json").read_text())
    published = metrics["candidates"][metrics["published"]]["NDCG@10"]
    popularity = metrics["candidates"]["popularity"]["NDCG@10"]
    assert summary.gate_passed
    assert published >= MIN_LIFT_OVER_POPULARITY * popularity, (published, popularity)


def test_hybrid_beats_collaborative_filtering_on_cold_users(demo_run):
    _, _, _, root = demo_run
    metrics = json.loads((root / "published" / "latest" / "metrics.json").read_text())["candidates"]
    assert metrics["lightfm_hybrid"]["n[cold_users]"] >= 100
    hybrid = metrics["lightfm_hybrid"]["NDCG@10[cold_users]"]
    collaborative = metrics["lightfm_cf"]["NDCG@10[cold_users]"]
    assert hybrid > collaborative, (hybrid, collaborative)


def test_cold_users_are_served_from_their_skin(demo_run):
    _, store, recs, _ = demo_run
    cold = store.users[~store.users["user_id"].isin(store.events["user_id"])]
    assert len(cold) >= 20
    top5 = recs[recs["rank"] <= 5].merge(cold, on="user_id").merge(store.products, on="product_id")
    hydrating = top5["ingredients"].str.contains("hyaluronic acid|ceramides|squalane|shea butter")
    share = hydrating.groupby(top5["skin_type"]).mean()
    assert share["dry"] > share["oily"], share
