"""The gate, one test per rule: (a) beat popularity, (b) not worse than the champion,
(c) guardrails (coverage, segments, broken scores); and a champion that survives a worse
challenger in a real run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from flows.nightly import GateRefusedError, nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import CHAMPION, GateParams, decide, paired_bootstrap
from tasks.publishing.publish import current_latest
from tasks.training.models.lightfm_hybrid import LightFMParams
from tasks.training.tune import TuningParams


def candidate(ndcg: float, cold: float = 0.1, new: float = 0.05, **extra) -> dict[str, float]:
    return {
        "NDCG@10": ndcg,
        "NDCG@10[cold_users]": cold,
        "n[cold_users]": 50,
        "NDCG@10[new_products]": new,
        "n[new_products]": 20,
        "catalog_coverage@10": 0.2,
        "nan_score_share": 0.0,
        "constant_score_share": 0.0,
    } | extra


def test_a_challenger_must_beat_popularity_by_the_margin():
    metrics = {"blend": candidate(0.105), "popularity": candidate(0.1)}
    assert decide(metrics, "blend", "popularity", GateParams()).passed
    refused = decide(metrics, "blend", "popularity", GateParams(min_lift=0.1))
    assert not refused.passed and not refused.checks["beats_baseline"]
    assert "(b) no champion yet" in " ".join(refused.reasons)


def test_b_a_challenger_worse_than_the_champion_is_refused():
    rng = np.random.default_rng(0)
    champion = (rng.random(2000) < 0.3) / np.log2(rng.integers(1, 11, 2000) + 1.0)
    worse = champion * (rng.random(2000) < 0.8)  # loses a fifth of the champion's hits
    per_user = {"blend": worse, CHAMPION: champion}
    metrics = {
        "blend": candidate(worse.mean()),
        "popularity": candidate(0.01),
        CHAMPION: candidate(champion.mean()),
    }
    refused = decide(metrics, "blend", "popularity", GateParams(), per_user, "v1")
    assert not refused.passed and not refused.checks["not_worse_than_champion"]
    assert "worse than the champion" in " ".join(refused.reasons)

    # The same model against itself is within any tolerance.
    per_user = {"blend": champion, CHAMPION: champion}
    metrics["blend"] = candidate(champion.mean())
    assert decide(metrics, "blend", "popularity", GateParams(), per_user, "v1").passed


def test_c_a_cold_user_regression_is_refused():
    metrics = {"blend": candidate(0.2, cold=0.05), "popularity": candidate(0.1, cold=0.1)}
    refused = decide(metrics, "blend", "popularity", GateParams())
    assert not refused.passed and not refused.checks["segment_cold_users"]
    assert decide(metrics, "blend", "popularity", GateParams(segment_tolerance=0.6)).passed


def test_c_low_coverage_and_broken_scores_are_refused():
    low = {"blend": candidate(0.2), "popularity": candidate(0.1)}
    low["blend"]["catalog_coverage@10"] = 0.001
    assert not decide(low, "blend", "popularity", GateParams()).checks["coverage"]
    broken = {"blend": candidate(0.2, nan_score_share=0.3), "popularity": candidate(0.1)}
    assert not decide(broken, "blend", "popularity", GateParams()).checks["scores_sane"]


def test_paired_bootstrap_brackets_the_mean_difference():
    rng = np.random.default_rng(1)
    a, b = rng.random(500), rng.random(500)
    mean, low, high = paired_bootstrap(a, b)
    assert low < mean < high
    assert mean == pytest.approx((a - b).mean())


def test_the_champion_survives_a_worse_challenger(data_root):
    fast = NightlyParams(
        data_root=data_root,
        model=LightFMParams(no_components=16, epochs=10),
        tuning=TuningParams(lightfm_trials=2, blend_trials=10),
        num_threads=1,
    )
    first = nightly(fast)
    champion_link = data_root / "models" / "champion"
    assert os.readlink(champion_link) == first.published_version

    # A challenger that ranks at random, but with (a) switched off: only (b) can stop it.
    sabotaged = fast.model_copy(
        update={
            "model": LightFMParams(no_components=2, epochs=1, learning_rate=1e-6),
            "blend": {"lightfm_hybrid": 1.0},
            "tuning": TuningParams(search=False),
            "gate": GateParams(min_lift=-1.0, segment_tolerance=1.0),
        }
    )
    with pytest.raises(GateRefusedError, match="worse than the champion"):
        nightly(sabotaged)
    assert os.readlink(champion_link) == first.published_version
    assert current_latest(data_root / "published") == first.published_version
    runs = sorted((data_root / "runs").iterdir(), key=os.path.getmtime)
    refused = json.loads((runs[-1] / "metrics.json").read_text())
    assert refused["gate"]["champion"] == first.published_version
    assert refused["gate"]["checks"]["not_worse_than_champion"] is False
    assert CHAMPION in refused["candidates"]


def test_a_champion_with_the_challengers_configuration_is_not_trained_twice(data_root):
    """Same configuration (tuning off): the challenger's training stands for the
    champion's; another configuration: the champion is re-trained on the split."""
    from tests.pipeline.test_nightly_e2e import run_nightly

    fixed = dict(tuning=TuningParams(search=False), model=LightFMParams(no_components=8, epochs=3))
    first = run_nightly(data_root, top_n=10, **fixed)
    same = run_nightly(data_root, top_n=5, **fixed)  # another version, the same models
    assert not (same.run_folder / "models" / "champion").exists()
    blend = same.metrics["blend"]
    assert same.metrics[CHAMPION].flat() == {
        k: v for k, v in blend.flat().items() if "[rules:" not in k
    }
    assert first.published_version != same.published_version
    other = run_nightly(
        data_root, top_n=5, tuning=TuningParams(search=False), model=LightFMParams(epochs=2)
    )
    assert (other.run_folder / "models" / "champion" / "blend").exists()
    assert other.metrics[CHAMPION] != other.metrics["blend"]
