"""Known answers for every evaluation metric: tiny ranked lists (3-4 users, 4-6 products)
whose metrics are worked out by hand in a comment, then compared with what the code returns.

Why: the gate publishes on these numbers. A metric computed the wrong way (MAP as
precision, a -1 padding slot counted as a product, novelty without the minus sign, an
interval from the wrong percentiles) would still look plausible in metrics.json; here each
of those mistakes fails a test. tests/unit/test_metrics.py already checks HR, precision,
recall, NDCG and MRR on one case; this file adds MAP, the k cut-offs, the list qualities,
the bootstrap and the evaluation's exclusions and segments.

Products are named A, B, C, D in comments; they are columns 0, 1, 2, 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.evaluation.canary import top_k_overlap
from tasks.evaluation.evaluate import (
    Evaluation,
    bootstrap_interval,
    hit_positions,
    list_quality,
    ndcg_gains,
    ranking_metrics,
)
from tasks.evaluation.gate import paired_bootstrap
from tasks.evaluation.metrics import bootstrap_means
from tasks.training.models import FactorModel

A, B, C, D = 0, 1, 2, 3
MISSING = np.iinfo(np.int64).max


# --- positions and per-user gains -----------------------------------------------------------


def test_hit_positions_find_the_first_slot_holding_the_truth():
    # u0 (3, 1, 2) truth 1 -> 1;  u1 (0, 2, 1) truth 0 -> 0;  u2 (5, 6, 7) truth 9 -> missing;
    # u3 (2, -1, -1) truth 2 -> 0;  u4 (-1, -1, -1) truth -1 (unknown) -> missing, not 0.
    ranked = np.array([[3, 1, 2], [0, 2, 1], [5, 6, 7], [2, -1, -1], [-1, -1, -1]])
    truth = np.array([1, 0, 9, 2, -1])
    assert hit_positions(ranked, truth).tolist() == [1, 0, MISSING, 0, MISSING]


def test_ndcg_gain_is_one_over_log2_of_rank_plus_one_inside_k():
    # ranks 1, 2, 3 (positions 0, 1, 2) inside k = 3: 1/log2(2), 1/log2(3), 1/log2(4);
    # position 3 (rank 4) and a miss are outside the top 3: 0.
    gains = ndcg_gains(np.array([0, 1, 2, 3, MISSING]), k=3)
    np.testing.assert_allclose(gains, [1, 1 / np.log2(3), 0.5, 0, 0])


# --- ranking metrics ------------------------------------------------------------------------


def test_ranking_metrics_with_one_relevant_product_per_user():
    # The truth sits at rank 1 (u0), rank 2 (u1), rank 4 (u2) and nowhere (u3); k = 2 and 4.
    #   HR@2 = recall@2 = 2/4;  HR@4 = recall@4 = 3/4
    #   precision@k = HR@k / k: 0.5 / 2 = 0.25;  0.75 / 4 = 0.1875
    #   MAP@k: average precision with one relevant product = 1 / rank if rank <= k:
    #       MAP@2 = (1 + 1/2 + 0 + 0) / 4 = 0.375   (precision@2 would be 0.25)
    #       MAP@4 = (1 + 1/2 + 1/4 + 0) / 4 = 0.4375
    #   NDCG@2 = (1 + 1/log2 3) / 4;  NDCG@4 = (1 + 1/log2 3 + 1/log2 5) / 4
    #   MRR = (1 + 1/2 + 1/4 + 0) / 4 = 0.4375 (the whole list, 4 long)
    ranked = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [1, 2, 3, 0], [1, 2, 3, 4]])
    truth = np.array([0, 0, 0, 0])
    m = ranking_metrics(ranked, truth, ks=(2, 4))
    expected = {
        "HR@2": 0.5,
        "recall@2": 0.5,
        "precision@2": 0.25,
        "MAP@2": 0.375,
        "NDCG@2": (1 + 1 / np.log2(3)) / 4,
        "HR@4": 0.75,
        "recall@4": 0.75,
        "precision@4": 0.1875,
        "MAP@4": 0.4375,
        "NDCG@4": (1 + 1 / np.log2(3) + 1 / np.log2(5)) / 4,
        "MRR": 0.4375,
    }
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value), key


def test_ranking_metrics_of_no_users_are_zero():
    m = ranking_metrics(np.zeros((0, 5), np.int64), np.zeros(0, np.int64), ks=(5,))
    assert m == dict.fromkeys(["NDCG@5", "HR@5", "precision@5", "recall@5", "MAP@5", "MRR"], 0.0)


# --- list quality ---------------------------------------------------------------------------


def test_list_quality_counts_coverage_novelty_and_cross_category_pairs_of_the_top_k():
    # Six products; popularity (share of users) 1/2, 1/4, 1/8, 1, 1/16, 1/2 -> self-information
    # -log2: 1, 2, 3, 0, 4, 1 bits.  Categories 0, 0, 1, 1, 2, 2.
    # Top 3 (the 4th column, product 5 everywhere, is beyond k and must not count):
    #   u0: 0, 1, 2    u1: 3, 2, 4    u2: 1, 4, -1 (one empty slot)
    # coverage@3: products {0, 1, 2, 3, 4} = 5 of 6
    # novelty@3: bits 1 + 2 + 3 | 0 + 3 + 4 | 2 + 4 = 19 over 8 recommended = 2.375
    # diversity@3: pairs from different categories / pairs in the list
    #   u0 categories 0, 0, 1: 2 of 3 pairs;  u1 1, 1, 2: 2 of 3;  u2 0, 2: 1 of 1
    #   mean (2/3 + 2/3 + 1) / 3 = 7/9  (the empty slot read as product 0, category 0,
    #   would make u2 0, 2, 0: 2 of 3)
    popularity = np.array([1 / 2, 1 / 4, 1 / 8, 1, 1 / 16, 1 / 2])
    categories = np.array([0, 0, 1, 1, 2, 2])
    ranked = np.array([[0, 1, 2, 5], [3, 2, 4, 5], [1, 4, -1, 5]])
    quality = list_quality(ranked, 3, popularity, categories)
    assert quality == pytest.approx(
        {"catalog_coverage@3": 5 / 6, "novelty@3": 2.375, "diversity@3": 7 / 9}
    )
    # without categories there is no diversity to report
    assert set(list_quality(ranked, 3, popularity, None)) == {"catalog_coverage@3", "novelty@3"}


# --- the bootstrap --------------------------------------------------------------------------


def test_a_constant_sample_has_a_zero_width_interval_at_its_value():
    values = np.full(50, 0.25)  # every resample's mean is 0.25 (exact in binary)
    assert np.all(bootstrap_means(values, 300) == 0.25)
    assert bootstrap_interval(values) == (0.25, 0.25)


def test_bootstrap_means_of_two_users_follow_the_coin_flip_distribution():
    # Values (0, 1), resampled two at a time: (0, 0) 1/4 -> 0, (0, 1) or (1, 0) 1/2 -> 0.5,
    # (1, 1) 1/4 -> 1.  Nothing else can occur; 1000 resamples land near 250 / 500 / 250
    # (binomial sd ~16, so 4 sd is 0.06 of the share).  The 2.5th and 97.5th percentiles
    # are then the extremes 0 and 1.
    means = bootstrap_means(np.array([0.0, 1.0]), samples=1000, seed=5)
    assert len(means) == 1000
    assert set(np.unique(means).tolist()) <= {0.0, 0.5, 1.0}
    shares = [np.mean(means == value) for value in (0.0, 0.5, 1.0)]
    np.testing.assert_allclose(shares, [0.25, 0.5, 0.25], atol=0.06)
    assert bootstrap_interval(np.array([0.0, 1.0])) == (0.0, 1.0)


def test_bootstrap_draws_as_many_resamples_as_asked_and_a_seed_repeats_them():
    values = np.array([0.1, 0.5, 0.9, 0.3])
    # batches of 100: 100 + 100 + 50 = 250, not 300
    assert len(bootstrap_means(values, samples=250)) == 250
    same = bootstrap_means(values, samples=250, seed=11)
    np.testing.assert_array_equal(same, bootstrap_means(values, samples=250, seed=11))
    assert not np.array_equal(same, bootstrap_means(values, samples=250, seed=12))
    assert bootstrap_interval(values, seed=11) == bootstrap_interval(values, seed=11)
    assert bootstrap_means(np.zeros(0)).tolist() == [0.0]  # no users: one mean of 0


def test_a_large_sample_interval_is_the_normal_one_around_the_mean():
    # 2000 users, hit with probability 0.3.  The mean of the bootstrap means is the sample
    # mean (within 3 sd / sqrt(1000) resamples); their sd is the standard error
    # sd / sqrt(n) (about 0.0103); the 95% interval brackets the true 0.3 and is
    # 2 x 1.96 standard errors wide (a 90% interval, 5th-95th, would be 2 x 1.64: 16% less;
    # resampling n/2 users, sqrt 2 wider).
    values = (np.random.default_rng(3).random(2000) < 0.3).astype(float)
    error = values.std() / np.sqrt(len(values))
    means = bootstrap_means(values)
    assert abs(means.mean() - values.mean()) < 3 * error / np.sqrt(len(means))
    assert means.std() == pytest.approx(error, rel=0.1)
    low, high = bootstrap_interval(values)
    assert low < 0.3 < high
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * error, rel=0.08)


def test_paired_bootstrap_of_identical_gains_is_exactly_zero():
    gains = np.array([1.0, 0.5, 0.0, 0.25, 1 / np.log2(3)])
    assert paired_bootstrap(gains, gains.copy()) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(np.zeros(0), np.zeros(0)) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_subtracts_the_champion_from_the_challenger():
    # The challenger is 0.125 above the champion for every user: every resample's mean
    # difference is +0.125 (the other way round it would be -0.125).
    champion = np.array([0.0, 0.5, 0.25, 0.375])
    assert paired_bootstrap(champion + 0.125, champion) == (0.125, 0.125, 0.125)
    # Differences (1, 0): the mean is 0.5, resampled means are 0, 0.5 or 1: interval [0, 1].
    assert paired_bootstrap(np.array([1.0, 1.0]), np.array([0.0, 1.0])) == (0.5, 0.0, 1.0)


# --- the canary's overlap -------------------------------------------------------------------


def test_overlap_ignores_order_and_never_matches_empty_slots():
    # u0 judged (1, 2, 3), refit (3, 1, 9, 8): keeps 1 and 3 of 3 -> 2/3 (order is free,
    #     the refit's list may be longer)
    # u1 judged (4, -1, -1), refit (5, -1, -1, -1): keeps none of its 1 product -> 0
    #     (an empty slot matching an empty slot would make it 1)
    # u2 judged (7, 6, 5), refit empty: keeps none of 3 -> 0
    judged = np.array([[1, 2, 3], [4, -1, -1], [7, 6, 5]])
    refit = np.array([[3, 1, 9, 8], [5, -1, -1, -1], [-1, -1, -1, -1]])
    np.testing.assert_allclose(top_k_overlap(judged, refit), [2 / 3, 0, 0])


# --- the evaluation: exclusions and segments ------------------------------------------------


def test_evaluation_ranks_without_the_bought_products_and_splits_the_users():
    # Training: u0 bought A and B; u1 bought A; u2 only viewed C; u3 bought A.
    # Held out: u0 -> C, u1 -> B, u2 -> D, u3 -> A (a repeat purchase: not rankable).
    # The scorer ranks A, B, C, D for everyone; already-bought products are excluded:
    #   u0 ranks C, D        -> C at rank 1 -> gain 1   (without exclusion rank 3: 0.5)
    #   u1 ranks B, C, D     -> B at rank 1 -> gain 1
    #   u2 ranks A, B, C, D  -> D at rank 4 -> gain 1/log2 5
    # Prior transactions: u0 2 (warm), u1 1 and u2 0 (cold, at most 1).
    # Popularity: users who interacted in training / 4 users: A 3/4, B 1/4, C 1/4, D 0.
    train = pd.DataFrame(
        {
            "user_id": ["u0", "u0", "u1", "u2", "u3"],
            "product_id": ["A", "B", "A", "C", "A"],
            "event_type": ["purchase", "purchase", "purchase", "view", "purchase"],
        }
    )
    held_out = pd.DataFrame(
        {
            "user_id": ["u0", "u1", "u2", "u3"],
            "product_id": ["C", "B", "D", "A"],
            "repeat": [False, False, False, True],
        }
    )
    users, products = pd.Series(["u0", "u1", "u2", "u3"]), pd.Series(["A", "B", "C", "D"])
    evaluation = Evaluation(train, held_out, users, products, ["purchase"])
    assert evaluation.rows.tolist() == [0, 1, 2] and evaluation.truth.tolist() == [C, B, D]
    np.testing.assert_allclose(evaluation.popularity, [0.75, 0.25, 0.25, 0])
    assert evaluation.segments["cold_users"].tolist() == [False, True, True]
    assert evaluation.segments["warm_users"].tolist() == [True, False, False]

    same_for_all = FactorModel(np.ones((4, 1), np.float32), np.array([[4], [3], [2], [1]], float))
    gains = evaluation.gains(same_for_all)
    np.testing.assert_allclose(gains, [1, 1, 1 / np.log2(5)])
    assert evaluation.ndcg(same_for_all) == pytest.approx((2 + 1 / np.log2(5)) / 3)
    # ranked at most 2 deep, u2's D (rank 4) is out of the top 2
    np.testing.assert_allclose(evaluation.gains(same_for_all, k=2), [1, 1, 0])
