"""Model behaviour on the `demo` preset: the published blend beats popularity, the hybrid
beats collaborative filtering on cold users, what it recommends makes sense for a
person's skin even before they have bought anything, and an A/B test against the
popularity list on the living store is measured and reported."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from demo_store import generate_store, write_store
from demo_store.live import advance_store, list_truth
from flows.monitor import MonitorParams, monitor
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.publishing.publish import PublishParams

MIN_LIFT_OVER_POPULARITY = 1.3  # the bar; measured: docs/results.md (docs/render.py TARGETS)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_data")
    store = generate_store("demo", seed=42)
    write_store(store, root / "demo" / "store.db")
    # a tenth of the users are the A/B test's control group (the popularity list)
    summary = nightly(NightlyParams(data_root=root, publishing=PublishParams(control_share=0.1)))
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
    recs = recs[recs["variant"] == "model"]
    top5 = recs[recs["rank"] <= 5].merge(cold, on="user_id").merge(store.products, on="product_id")
    hydrating = top5["ingredients"].str.contains("hyaluronic acid|ceramides|squalane|shea butter")
    share = hydrating.groupby(top5["skin_type"]).mean()
    assert share["dry"] > share["oily"], share


def test_ab_test_on_the_living_store_is_measured_and_reported(demo_run, tmp_path):
    summary, _, recs, published_root = demo_run
    root = tmp_path / "data"
    shutil.copytree(published_root, root, symlinks=True)
    db = root / "demo" / "store.db"
    # The simulator's ground truth favours the model: what it shows suits people better.
    truth = list_truth(db, recs)
    assert truth["model"]["affinity"] > truth["control"]["affinity"] + 0.05, truth
    assert truth["model"]["choice_weight"] > 1.1 * truth["control"]["choice_weight"], truth
    users = recs.drop_duplicates("user_id")["variant"].value_counts(normalize=True)
    assert 0.08 < users["control"] < 0.12

    advance_store(db, 14, "none")
    params = NightlyParams(data_root=root, publishing=PublishParams(control_share=0.1))
    report = monitor(MonitorParams(nightly=params, retrain="off"))
    live = {p.variant: p for p in report.live}
    assert live["control"].visitors >= 150
    # Who visits does not depend on the variant (the split is by a hash of the user_id):
    # visit rates agree (seen: 0.485 vs 0.448); the visitor ratio only follows the user ratio.
    rates = {v: p.visitors / p.users for v, p in live.items()}
    assert abs(rates["model"] - rates["control"]) < 0.1, rates
    assert live["model"].catalog_coverage > live["control"].catalog_coverage
    lift = {u.metric: u for u in report.uplift}
    conversion = lift["conversion"]
    model, control = live["model"].conversion, live["control"].conversion
    assert conversion.difference == pytest.approx(model.value - control.value)
    assert conversion.low < conversion.difference < conversion.high
    # Power is stated with the result: the effect these counts detect 80% of the time.
    half_width = (conversion.high - conversion.low) / 2
    assert conversion.mde == pytest.approx(half_width * (1.959964 + 0.841621) / 1.959964)
    page = report.report.read_text()
    assert "A/B test: model against control" in page and "visitors needed" in page
    saved = json.loads((report.folder / "report.json").read_text())
    assert {u["metric"] for u in saved["uplift"]} >= {
        "click_through",
        "conversion",
        "revenue_per_user",
    }
