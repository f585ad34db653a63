"""Tuning: the pooled blend search agrees with the exact evaluation, and the search spaces
are what the issue asks for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.evaluate import Evaluation
from tasks.models import Blend, FactorModel
from tasks.models.lightfm_hybrid import LightFMParams
from tasks.train import COMPONENTS, HYBRID
from tasks.tune import blend_candidates, blend_ndcg, lightfm_candidates


def random_evaluation(rng, n_users=300, n_items=40) -> Evaluation:
    users = pd.Series([f"u{i}" for i in range(n_users)])
    items = pd.Series([f"p{i}" for i in range(n_items)])
    bought = rng.random((n_users, n_items)) < 0.1
    train_u, train_i = np.nonzero(bought)
    train = pd.DataFrame(
        {
            "user_id": users.to_numpy()[train_u],
            "product_id": items.to_numpy()[train_i],
            "event_type": "purchase",
            "occurred_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    truth = np.array([rng.choice(np.flatnonzero(~row)) for row in bought])
    held_out = pd.DataFrame(
        {"user_id": users, "product_id": items.to_numpy()[truth], "repeat": False}
    )
    return Evaluation(train, held_out, users, items, ["purchase"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_blend_search_equals_exact_ranking_when_the_pool_is_everything(seed):
    rng = np.random.default_rng(seed)
    evaluation = random_evaluation(rng)
    n_users, n_items = 300, 40
    components = {
        "a": FactorModel(
            rng.normal(size=(n_users, 4)).astype(np.float32),
            rng.normal(size=(n_items, 4)).astype(np.float32),
        ),
        # sparse and full of ties, like transitions
        "b": FactorModel(
            sp.random(n_users, n_items, 0.05, "csr", dtype=np.float32, rng=rng),
            sp.identity(n_items, dtype=np.float32, format="csr"),
        ),
        # integer-valued: many exact ties after scaling
        "c": FactorModel(
            np.ones((n_users, 1), np.float32), rng.integers(0, 3, (n_items, 1)).astype(np.float32)
        ),
    }
    weightings = [{"a": 1.0}, {"b": 1.0}, {"c": 1.0}, {"a": 1.0, "b": 0.5, "c": 0.25}]
    pooled = blend_ndcg(components, weightings, evaluation, pool_size=n_items)
    exact = [evaluation.ndcg(Blend({n: components[n] for n in w}, w)) for w in weightings]
    np.testing.assert_allclose(pooled, exact, atol=1e-9)


def test_search_spaces_start_from_the_configuration_and_keep_the_hybrid():
    base = LightFMParams()
    trials = lightfm_candidates(base, 5, seed=3)
    assert trials[0] == base and len(trials) == 5
    assert trials[1].behaviour_features is not base.behaviour_features
    assert {t.loss for t in trials[1:]} <= {"warp", "bpr", "warp-kos"}
    blends = blend_candidates({HYBRID: 1.0, "item_knn": 0.5}, 20, seed=3)
    assert blends[0] == {HYBRID: 1.0, "item_knn": 0.5}
    assert [b for b in blends if len(b) == 1] == [{name: 1.0} for name in COMPONENTS]
    assert all(b[HYBRID] == 1.0 for b in blends[len(COMPONENTS) + 1 :])
