"""A second world, unlike the beauty store (demo_store/ratings_world.py): ratings are the
only events and the transactions, customers rate in bursts minutes apart, products have
no category. With nothing but its own dataset.toml, the nightly keeps the bursts in
training (the holdout removes what would leak, not a day), and publishes a blend that no
candidate alone beats on the test split."""

from __future__ import annotations

import json

import pandas as pd

from demo_store.ratings_world import generate_ratings_world
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.features.split import HoldoutRule, split_latest_transaction
from tasks.training.train import BLEND, POPULARITY


def test_the_holdout_keeps_the_bursts_a_fixed_day_would_remove():
    world = generate_ratings_world("ratings-tiny", seed=7)
    events = world.events.assign(occurred_at=pd.to_datetime(world.events["occurred_at"]))
    assert set(events["event_type"]) == {"rating"}
    default = split_latest_transaction(events, ["rating"])
    day = split_latest_transaction(events, ["rating"], HoldoutRule(window_hours=24))
    assert default.removed_share < 0.10
    assert day.removed_share > 0.30  # the last burst is most of a customer's history
    # the same world for the same seed
    again = generate_ratings_world("ratings-tiny", seed=7)
    pd.testing.assert_frame_equal(world.events, again.events)


def test_the_nightly_on_the_ratings_world_beats_every_candidate_alone(tmp_path):
    source = generate_ratings_world("ratings-tiny", seed=7).write(tmp_path / "ratings")
    summary = nightly(NightlyParams(source=str(source), data_root=tmp_path / "data"))
    assert summary.gate_passed and summary.published_path is not None  # the default gate
    document = json.loads((summary.run_folder / "metrics.json").read_text())
    assert document["split"]["holdout_removed_share"] < 0.10
    ndcg = {name: m["NDCG@10"] for name, m in document["candidates"].items()}
    published = ndcg.pop(BLEND)
    # the published model is at least as good as every candidate alone, and better than
    # popularity by more than its interval
    assert published >= max(ndcg.values()), (published, ndcg)
    assert document["candidates"][BLEND]["NDCG@10_ci95_low"] > ndcg[POPULARITY]
    recs = pd.read_parquet(summary.published_path)
    assert recs["user_id"].nunique() == 400
    rated = pd.read_csv(source / "events.csv")
    assert not set(zip(rated["user_id"], rated["product_id"], strict=True)) & set(
        zip(recs["user_id"], recs["product_id"], strict=True)
    )
