"""The blend judged and published is never worse than one candidate alone: on validation
(every candidate alone is a weighting tuning compares, and may win) and on the test split
(a candidate alone that beats the tuned blend is what is judged and published)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tasks.evaluation.metrics import CandidateMetrics
from tasks.evaluation.settle import settle
from tasks.training.train import BLEND, HYBRID, POPULARITY
from tasks.training.tune import _eligible, coordinate_moves
from tests.pipeline.test_nightly_e2e import run_nightly


def metrics_with(ndcg: float) -> CandidateMetrics:
    fields = {name: 0.0 for name in CandidateMetrics.model_fields}
    fields["ndcg_at_10"] = ndcg
    return CandidateMetrics.model_construct(**fields)


def test_a_candidate_alone_better_on_the_test_split_is_what_is_judged():
    tuned = {HYBRID: 1.0, "item_knn": 0.5}
    metrics = {
        BLEND: metrics_with(0.10),
        HYBRID: metrics_with(0.09),
        "item_knn": metrics_with(0.12),
        "transitions": metrics_with(0.12),  # a tie: the first in the registry's order
        POPULARITY: metrics_with(0.05),
    }
    settled = settle(metrics, [HYBRID, "item_knn", "transitions", POPULARITY], tuned)
    assert settled.replaced and settled.best_single == "item_knn"
    assert settled.judged == {"item_knn": 1.0} and settled.tuned == tuned
    assert "lost to item_knn alone" in settled.describe()
    # equal is not better: the tuned blend stays
    metrics[BLEND] = metrics_with(0.12)
    kept = settle(metrics, [HYBRID, "item_knn", "transitions", POPULARITY], tuned)
    assert not kept.replaced and kept.judged == tuned and "beats the best single" in kept.describe()


def test_every_candidate_alone_can_win_the_blend_search():
    weightings = [{HYBRID: 1.0, "item_knn": 0.5}, {HYBRID: 1.0}, {"item_knn": 1.0}]
    coverage = np.array([0.5, 0.5, 0.5])
    assert _eligible(weightings, coverage, 0.3).all()  # the hybrid is not required
    assert _eligible(weightings, np.array([0.5, 0.1, 0.1]), 0.3).tolist() == [True, False, False]
    # from a weighting without the hybrid, the search may add it back
    assert {HYBRID: 0.5, "item_knn": 1.0} in coordinate_moves({"item_knn": 1.0})
    assert all(m[HYBRID] == 1.0 for m in coordinate_moves({HYBRID: 1.0, "item_knn": 0.5}))


def test_a_configured_blend_that_a_candidate_beats_is_replaced_by_it(data_root):
    """A shop's blend weighted on popularity with tuning off: the test split finds a
    candidate alone better, and that candidate is judged, refit and published; the hybrid
    stays in the published blend at weight 0 for customers known by their profile only."""
    from tasks.training.tune import TuningParams

    summary = run_nightly(
        data_root, blend={POPULARITY: 1.0, HYBRID: 0.01}, tuning=TuningParams(search=False)
    )
    document = json.loads((summary.run_folder / "metrics.json").read_text())
    settled = document["blend_settlement"]
    assert settled["replaced"] is True and settled["tuned"] == {POPULARITY: 1.0, HYBRID: 0.01}
    best = settled["best_single"]
    assert settled["judged"] == {best: 1.0} and best != POPULARITY
    candidates = document["candidates"]
    others = (BLEND, "champion", POPULARITY)  # popularity, the baseline, never replaces it
    singles = {n: m["NDCG@10"] for n, m in candidates.items() if n not in others}
    assert settled["best_single_ndcg"] == max(singles.values()) == singles[best]
    assert settled["blend_ndcg"] < settled["best_single_ndcg"]
    # what is judged is the candidate alone: its figures, not the tuned blend's
    assert candidates[BLEND]["NDCG@10"] == candidates[best]["NDCG@10"]
    assert candidates[BLEND]["HR@10"] == candidates[best]["HR@10"]
    per_user = pd.read_parquet(summary.run_folder / "evaluation" / "per_user_ndcg.parquet")
    assert np.allclose(per_user[BLEND], per_user[best])
    # ... and published: the version's blend has the candidate alone, the fallbacks at 0
    weights = json.loads(
        (data_root / "models" / summary.published_version / "model" / "blend.json").read_text()
    )["weights"]
    assert weights == {best: 1.0} | {n: 0.0 for n in (HYBRID, POPULARITY) if n != best}
    assert summary.chosen_blend == {best: 1.0}
    assert f"lost to {best} alone" in summary.render()
    page = (summary.run_folder / "reports" / "evaluation_report.html").read_text()
    assert f"lost to {best} alone" in page
