"""Known answers for every candidate builder: toy data (3-6 users, 3-4 products) whose scores
are worked out by hand in a comment, then compared with what the builder returns.

Why: the model-quality tests only say a candidate beats popularity on the demo store; a
builder that counted transitions backwards, decayed the old events less than the new ones or
normalised a similarity by the wrong product would still pass them. Here every expectation
is derived independently of the code, so each of those mistakes fails a test.

Products are named A, B, C, D in comments; they are columns 0, 1, 2, 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tasks.training.models
from tasks.features.interactions import weighted_interactions
from tasks.training.models import Blend, FactorModel, minmax_rows
from tasks.training.models.content import fit_content
from tasks.training.models.lightfm_hybrid import (
    clearly_better,
    factors_of,
    one_standard_error_choice,
)
from tasks.training.models.neighbours import (
    ItemKNNParams,
    fit_item_knn,
    item_similarity,
    keep_top_per_row,
)
from tasks.training.models.popularity import (
    GLOBAL_SHARE,
    fit_popularity,
    fit_segment_popularity,
    segment_codes,
)
from tasks.training.models.transitions import (
    TransitionParams,
    fit_category_transitions,
    fit_transitions,
    transition_counts,
)

A, B, C, D = 0, 1, 2, 3


def csr(rows):
    return sp.csr_matrix(np.asarray(rows, dtype=np.float32))


def all_scores(model):
    return model.scores(np.arange(model.n_users))


# --- popularity -----------------------------------------------------------------------------


def test_popularity_gives_every_user_the_column_sums():
    # u0: A 1, B 2; u1: B 1, C 3; u2: B 1.  Column sums: A 1, B 4, C 3, D 0 (row sums
    # would be 3, 4, 1: a different list), the same for everyone.
    interactions = csr([[1, 2, 0, 0], [0, 1, 3, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(all_scores(fit_popularity(interactions)), [[1, 4, 3, 0]] * 3)


def test_demand_halves_every_half_life_before_the_latest_event():
    # Ages counted back from the latest event (day 0), half-life 30 days:
    #   u0 buys A at age 0   -> 1
    #   u0 views C at age 0  -> 0.2 (view weight) x 1 = 0.2
    #   u1 buys B at age 60  -> 0.5**2 = 0.25
    #   u2 buys B at age 60  -> 0.25
    #   u2 buys C at age 30  -> 0.5
    #   u1 wishlists A       -> weight 0 (not a weighted type): no entry
    # Decayed demand: A 1, B 0.5, C 0.7; undecayed it would be A 1, B 2, C 1.2 (B first).
    # Decay measured from the oldest event instead would give A 0.25, B 2, C 0.55.
    latest = pd.Timestamp("2024-03-01", tz="UTC")
    days = pd.Timedelta(days=1)
    events = pd.DataFrame(
        {
            "user_id": ["u0", "u0", "u1", "u2", "u2", "u1"],
            "product_id": ["A", "C", "B", "B", "C", "A"],
            "event_type": ["purchase", "view", "purchase", "purchase", "purchase", "wishlist"],
            "occurred_at": [latest, latest, latest - 60 * days, latest - 60 * days,
                            latest - 30 * days, latest],
        }
    )  # fmt: skip
    users, products = pd.Series(["u0", "u1", "u2"]), pd.Series(["A", "B", "C"])
    weights = {"purchase": 1.0, "view": 0.2, "wishlist": 0.0}

    decayed = weighted_interactions(events, users, products, weights, half_life_days=30.0)
    np.testing.assert_allclose(decayed.toarray(), [[1, 0, 0.2], [0, 0.25, 0], [0, 0.25, 0.5]])
    assert decayed.nnz == 5  # the wishlist event left no explicit zero behind
    np.testing.assert_allclose(all_scores(fit_popularity(decayed))[0], [1, 0.5, 0.7])

    plain = weighted_interactions(events, users, products, weights)
    np.testing.assert_allclose(all_scores(fit_popularity(plain))[0], [1, 2, 1.2])


def test_segment_popularity_mixes_the_segment_share_with_a_little_global_share():
    # Segments: u0, u1 in 0; u2, u3 in 1; u4 in 2 (no events).
    # Segment 0 demand A 2, B 2, C 0 -> shares 0.5, 0.5, 0
    # Segment 1 demand A 0, B 0, C 4 -> shares 0, 0, 1
    # Segment 2 demand none          -> shares 0, 0, 0
    # Global demand A 2, B 2, C 4 of 8 -> 0.25, 0.25, 0.5
    # score = 0.95 x segment share + 0.05 x global share:
    #   segment 0: 0.475 + 0.0125 = 0.4875 (A, B), 0 + 0.025 = 0.025 (C)
    #   segment 1: 0.0125 (A, B), 0.95 + 0.025 = 0.975 (C)
    #   segment 2: the global shares x 0.05: 0.0125, 0.0125, 0.025
    assert GLOBAL_SHARE == 0.05
    interactions = csr([[1, 0, 0], [1, 2, 0], [0, 0, 1], [0, 0, 3], [0, 0, 0]])
    model = fit_segment_popularity(interactions, np.array([0, 0, 1, 1, 2]))
    segment_0, segment_1 = [0.4875, 0.4875, 0.025], [0.0125, 0.0125, 0.975]
    no_events = [0.0125, 0.0125, 0.025]
    np.testing.assert_allclose(
        all_scores(model), [segment_0, segment_0, segment_1, segment_1, no_events], rtol=1e-6
    )


def test_segment_codes_number_combinations_in_order_of_first_appearance():
    # (dry, N) -> 0, (oily, N) -> 1, (dry, N) again -> 0, (missing, S) -> 2
    users = pd.DataFrame({"skin": ["dry", "oily", "dry", None], "region": ["N", "N", "N", "S"]})
    assert segment_codes(users, ["skin", "region"]).tolist() == [0, 1, 0, 2]
    assert segment_codes(users, []).tolist() == [0, 0, 0, 0]  # no columns: one segment


# --- last-item transitions ------------------------------------------------------------------

FORWARD_ONLY = TransitionParams(window=1, step_decay=1.0, backward=0.0)


def test_transitions_count_the_next_purchase_only():
    # u0 bought A then B; u1 A then C; u2 B then C then A (rows sorted by user, then time).
    # Next purchases: A->B 1 (u0), A->C 1 (u1), B->C 1 (u2), C->A 1 (u2). Not B->A: u0's last
    # product and u1's first are different users. Not A->A or C->B: reversed or too far.
    rows = np.array([0, 0, 1, 1, 2, 2, 2])
    cols = np.array([A, B, A, C, B, C, A])
    counts = transition_counts(rows, cols, 3, FORWARD_ONLY)
    np.testing.assert_allclose(counts.toarray(), [[0, 1, 1], [0, 0, 1], [1, 0, 0]])


def test_transitions_weigh_later_steps_and_the_reverse_direction():
    # One user: A, B, C, D; window 2, step_decay 0.5, backward 0.25.
    #   1 step ahead, weight 1:           A->B, B->C, C->D = 1; reverse B->A, C->B, D->C = 0.25
    #   2 steps ahead, weight 0.5**1:     A->C, B->D = 0.5;    reverse C->A, D->B = 0.125
    #   3 steps ahead (A->D): outside the window, 0.
    params = TransitionParams(window=2, step_decay=0.5, backward=0.25)
    counts = transition_counts(np.zeros(4, int), np.array([A, B, C, D]), 4, params)
    expected = [
        [0, 1, 0.5, 0],
        [0.25, 0, 1, 0.5],
        [0.125, 0.25, 0, 1],
        [0, 0.125, 0.25, 0],
    ]
    np.testing.assert_allclose(counts.toarray(), expected)


@pytest.mark.parametrize(
    ("normalisation", "after_a"),
    [
        # counts A->B 2, A->C 1; B->C 1.  Totals: A 3, B 1.
        (1.0, [0, 2 / 3, 1 / 3]),  # probabilities
        (0.0, [0, 2, 1]),  # raw counts
        (0.5, [0, 2 / np.sqrt(3), 1 / np.sqrt(3)]),  # counts / sqrt(total)
    ],
)
def test_transition_scores_sum_the_users_history_times_what_followed_it(normalisation, after_a):
    # Sequences: u0 A, B, C; u1 A, B; u2 A, C (window 1, forward only).
    # score(u, j) = sum_i history[u, i] x normalised count(i -> j); B's only successor is C
    # with count 1 = total 1, so after B is [0, 0, 1] whatever the normalisation.
    # User 3's history: A 0.5 (older), B 1 (newest) -> 0.5 x after A + 1 x after B.
    # User 4 bought only C, which nothing followed: all zero.
    # (Scoring with the matrix untransposed would give user 3 A = 2/3, not 0.)
    rows, cols = np.array([0, 0, 0, 1, 1, 2, 2]), np.array([A, B, C, A, B, A, C])
    history = csr([[0.25, 0.5, 1], [0.5, 1, 0], [0.5, 0, 1], [0.5, 1, 0], [0, 0, 1]])
    params = FORWARD_ONLY.model_copy(update={"normalisation": normalisation})
    model = fit_transitions(rows, cols, history, params)
    after_a, after_b = np.array(after_a), np.array([0, 0, 1])
    scores = all_scores(model)
    np.testing.assert_allclose(scores[3], 0.5 * after_a + after_b, rtol=1e-6)
    np.testing.assert_allclose(scores[4], [0, 0, 0])
    # the sparse user side scores single pairs the same way
    pairs = model.pair_scores(np.array([3, 3, 2]), np.array([B, C, C]))
    np.testing.assert_allclose(pairs, [0.5 * after_a[B], 0.5 * after_a[C] + 1, after_a[C] / 2])


def test_category_transitions_score_the_next_category_then_the_share_within_it():
    # Categories: A, B cleanser (0); C toner (1); D none (-1: a category of its own, 2).
    # Sequences (window 1, forward): u0 A, C; u1 B, C; u2 C, D.
    # Category counts: cleanser->toner 2, toner->none 1 -> P(next | cleanser) = toner 1,
    # P(next | toner) = none 1.
    # Demand A 3, B 1 (cleanser 4), C 2 (toner 2), D 5 -> share in category 0.75, 0.25, 1, 1.
    # score(u, j) = log(P(category of j | u) + 0.001) + 0.001 x share(j):
    #   u3 bought A: P = toner 1 -> C: log 1.001 + 0.001; D: log 0.001 + 0.001;
    #       A: log 0.001 + 0.00075; B: log 0.001 + 0.00025   (C, then D, A, B)
    #   u4 bought A (0.5) and C (1): 0.5 x (toner 1) + 1 x (none 1), normalised:
    #       toner 1/3, none 2/3 -> C: log(1/3 + 0.001) + 0.001, D: log(2/3 + 0.001) + 0.001
    #   u5 no history: every category 0 -> log 0.001 + 0.001 x share.
    # Reversed transitions would give u3 (after cleanser) nothing at all.
    rows, cols = np.array([0, 0, 1, 1, 2, 2]), np.array([A, C, B, C, C, D])
    categories = np.array([0, 0, 1, -1])
    demand = np.array([3.0, 1.0, 2.0, 5.0])
    history = csr([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0.5, 0, 1, 0],
                   [0, 0, 0, 0]])  # fmt: skip
    model = fit_category_transitions(rows, cols, history, categories, demand, FORWARD_ONLY)
    share = 1e-3 * np.array([0.75, 0.25, 1, 1])
    floor = np.log(1e-3)
    scores = all_scores(model)
    np.testing.assert_allclose(
        scores[3], [floor, floor, np.log(1.001), floor] + share, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        scores[4],
        [floor, floor, np.log(1 / 3 + 1e-3), np.log(2 / 3 + 1e-3)] + share,
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(scores[5], floor + share, rtol=1e-6, atol=1e-6)
    assert np.argsort(-scores[3]).tolist() == [C, D, A, B]


# --- item-based nearest neighbours ----------------------------------------------------------

# u0: A (5 units), B; u1: A, B; u2: A, C; u3: B.  Weights are read as "seen" (5 counts as 1).
# Buyers: n_A 3, n_B 3, n_C 1.  Together: A&B 2, A&C 1, B&C 0.
KNN_INTERACTIONS = csr([[5, 1, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize(
    ("alpha", "shrink", "expected"),
    [
        # cosine: co / (sqrt(n_i) sqrt(n_j)): A-B 2/3, A-C 1/sqrt(3), symmetric
        (0.5, 0.0, [[0, 2 / 3, 1 / np.sqrt(3)], [2 / 3, 0, 0], [1 / np.sqrt(3), 0, 0]]),
        # alpha 1: co / n_i = P(j | i): A->C 1/3 but C->A 1 (C's one buyer also bought A)
        (1.0, 0.0, [[0, 2 / 3, 1 / 3], [2 / 3, 0, 0], [1, 0, 0]]),
        # shrink 1 adds 1 to every denominator: A-B 2/4, A-C 1/(sqrt(3) + 1)
        (0.5, 1.0, [[0, 0.5, 1 / (np.sqrt(3) + 1)], [0.5, 0, 0], [1 / (np.sqrt(3) + 1), 0, 0]]),
    ],
)
def test_item_similarity_divides_co_buyers_by_the_asymmetric_cosine(alpha, shrink, expected):
    params = ItemKNNParams(neighbours=100, shrink=shrink, alpha=alpha)
    similarity = item_similarity(KNN_INTERACTIONS, params)
    np.testing.assert_allclose(similarity.toarray(), expected, rtol=1e-6)


def test_keep_top_per_row_keeps_the_k_largest_of_each_row():
    matrix = sp.csr_matrix(
        np.array([[0, 3, 1, 2], [5, 0, 0, 0], [0, 0, 0, 0], [1, 4, 4, 0]], dtype=np.float32)
    )
    # k = 2: row 0 keeps 3 and 2 (drops 1); row 1 its only entry; row 2 nothing;
    # row 3 both 4s (drops 1).
    kept = keep_top_per_row(matrix, 2)
    np.testing.assert_array_equal(
        kept.toarray(), [[0, 3, 0, 2], [5, 0, 0, 0], [0, 0, 0, 0], [0, 4, 4, 0]]
    )
    # k = 1 between equal values: one of them, never both, never the 1
    row_3 = keep_top_per_row(matrix, 1).toarray()[3]
    assert sorted(row_3.tolist()) == [0, 0, 0, 4]


def test_item_knn_scores_what_the_users_products_point_to():
    # alpha 1, no shrink: sim A->B 2/3, A->C 1/3, B->A 2/3, C->A 1 (see above).
    # score(u, j) = sum_i history[u, i] x sim(i, j):
    #   history A 1, B 0.5: A 0.5 x 2/3 = 1/3; B 1 x 2/3; C 1 x 1/3
    #   history C 1:        A 1 (C->A), B 0, C 0   (transposed it would give A 1/3)
    # With one neighbour per product A keeps only B, so the first user's C drops to 0.
    history = csr([[1, 0.5, 0], [0, 0, 1]])
    model = fit_item_knn(KNN_INTERACTIONS, history, ItemKNNParams(shrink=0.0, alpha=1.0))
    np.testing.assert_allclose(all_scores(model), [[1 / 3, 2 / 3, 1 / 3], [1, 0, 0]], rtol=1e-6)
    top_1 = fit_item_knn(KNN_INTERACTIONS, history, ItemKNNParams(neighbours=1, shrink=0, alpha=1))
    np.testing.assert_allclose(all_scores(top_1), [[1 / 3, 2 / 3, 0], [1, 0, 0]], rtol=1e-6)


# --- content --------------------------------------------------------------------------------


def test_content_scores_are_idf_weighted_cosines_averaged_over_the_history():
    # Attributes of A: x, y; B: x; C: z.  Three products; x is on 2, y and z on 1.
    # idf = ln((1 + 3) / (1 + df)) + 1: x a = 1 + ln(4/3), y and z b = 1 + ln 2.
    # Unit rows: A (a, b, 0) / sqrt(a^2 + b^2); B (1, 0, 0); C (0, 0, 1).
    # A.B = a / sqrt(a^2 + b^2) = 0.60535 (without idf it would be 1/sqrt 2 = 0.707), A.C = 0.
    # The profile is the history-weighted mean of unit rows, so score = mean of cosines:
    #   bought B (weight 2):  A 0.60535, B 1, C 0
    #   bought A and C:       A (1 + 0) / 2, B (0.60535 + 0) / 2, C (0 + 1) / 2
    #   nothing:              zeros
    a, b = 1 + np.log(4 / 3), 1 + np.log(2)
    ab = a / np.sqrt(a**2 + b**2)
    features = csr([[1, 3, 0], [2, 0, 0], [0, 0, 1]])  # values are read as presence
    history = csr([[0, 2, 0], [1, 0, 1], [0, 0, 0]])
    model = fit_content(history, features)
    np.testing.assert_allclose(
        all_scores(model), [[ab, 1, 0], [0.5, ab / 2, 0.5], [0, 0, 0]], rtol=1e-6, atol=1e-7
    )


# --- LightFM's deterministic arithmetic -----------------------------------------------------


class _TrainedLightFM:
    """What factors_of reads of a trained LightFM: (biases, embeddings) per side."""

    def get_user_representations(self, features):
        return np.array([5.0, -5.0], np.float32), np.array([[1, 0], [0, 2]], np.float32)

    def get_item_representations(self, features):
        items = np.array([[1, 1], [2, 0], [0, 1]], np.float32)
        return np.array([0.5, -1.0, 0.0], np.float32), items


def test_factors_fold_the_product_bias_into_the_product_side():
    # score(u, i) = user . item + item bias; the user bias (5, -5) moves all of a user's
    # products alike, so it is left out.
    #   u0 (1, 0): A 1 + 0.5, B 2 - 1, C 0 + 0  -> 1.5, 1, 0
    #   u1 (0, 2): A 2 + 0.5, B 0 - 1, C 2 + 0  -> 2.5, -1, 2
    model = factors_of(_TrainedLightFM(), None, None)
    np.testing.assert_allclose(all_scores(model), [[1.5, 1, 0], [2.5, -1, 2]])


def test_clearly_better_needs_a_mean_gain_above_one_standard_error():
    # difference (1, 1, 0, 0): mean 0.5, sd (n-1) sqrt(1/3), se 0.2887 -> clearly better
    # (the sd alone, 0.577, without / sqrt(n), would say no)
    assert clearly_better(np.array([1.0, 1, 0, 0]), np.zeros(4))
    # difference (1, -1, 1, 0): mean 0.25, sd (n-1) 0.9574, se 0.4787 -> not clearly better
    assert not clearly_better(np.array([1.0, 0, 1, 1]), np.array([0.0, 1, 0, 1]))
    # difference (1, -0.1): mean 0.45, se with n-1 0.55 -> no (with sd over n: 0.389, yes)
    assert not clearly_better(np.array([1.0, 0.0]), np.array([0.0, 0.1]))
    # difference (0, 0, 0, 1): mean 0.25 = se 0.25 exactly: equal is not better
    assert not clearly_better(np.array([0.0, 0, 0, 1]), np.zeros(4))
    # one user: no spread to measure, any gain counts; no users: nothing is better
    assert clearly_better(np.array([0.1]), np.array([0.0]))
    assert not clearly_better(np.zeros(0), np.zeros(0))


def test_one_standard_error_choice_takes_the_cheapest_model_within_one_error_of_the_best():
    # best (1, 1, 1, 1) mean 1; near (1, 1, 1, 0) mean 0.75: best - near = (0, 0, 0, 1),
    # mean 0.25, se 0.25: not clearly better, so near is acceptable;
    # worse (0, 0, 0, 0): best - worse = (1, 1, 1, 1), se 0: clearly better, never chosen.
    best, near, worse = np.ones(4), np.array([1.0, 1, 1, 0]), np.zeros(4)
    gains = [best, near, worse]
    assert one_standard_error_choice(gains, [10.0, 5.0, 1.0]) == (0, 1)  # worse skipped
    assert one_standard_error_choice(gains, [10.0, 20.0, 1.0]) == (0, 0)  # near costs more
    assert one_standard_error_choice([best, near, near], [10.0, 5.0, 5.0]) == (0, 1)  # tie
    assert one_standard_error_choice([worse, best], [1.0, 2.0]) == (1, 1)


# --- the shared representation and the blend ------------------------------------------------

# users (1, 2), (0, 1), (0, 0); products (1, 0), (0, 1), (1, 1):
#   u0: 1, 2, 3;  u1: 0, 1, 1;  u2: 0, 0, 0
USERS = np.array([[1, 2], [0, 1], [0, 0]], np.float32)
ITEMS = np.array([[1, 0], [0, 1], [1, 1]], np.float32)


@pytest.mark.parametrize("sparse_users", [False, True])
@pytest.mark.parametrize("sparse_items", [False, True])
@pytest.mark.parametrize("dense_limit", [0, tasks.training.models.DENSE_ITEM_BYTES])
def test_factor_model_scores_user_dot_product_on_any_kind_of_side(
    sparse_users, sparse_items, dense_limit, monkeypatch
):
    monkeypatch.setattr(tasks.training.models, "DENSE_ITEM_BYTES", dense_limit)
    model = FactorModel(
        sp.csr_matrix(USERS) if sparse_users else USERS,
        sp.csr_matrix(ITEMS) if sparse_items else ITEMS,
    )
    np.testing.assert_array_equal(model.scores(np.array([2, 0])), [[0, 0, 0], [1, 2, 3]])
    # pairs (u0, C) 3, (u1, C) 1, (u0, A) 1, (u2, B) 0
    pairs = model.pair_scores(np.array([0, 1, 0, 2]), np.array([2, 2, 0, 1]))
    np.testing.assert_array_equal(pairs, [3, 1, 1, 0])


def test_minmax_rows_rescales_each_row_to_zero_one():
    scores = np.array([[1, 3, 5], [2, 2, 2], [-1, 0, 3]], np.float32)
    # (x - min) / (max - min) per row; a constant row becomes zeros
    np.testing.assert_allclose(minmax_rows(scores), [[0, 0.5, 1], [0, 0, 0], [0, 0.25, 1]])


def test_blend_adds_the_weighted_per_user_minmax_of_each_component():
    # Component scores per user (one column of the product side per user):
    #   first:  u0 0, 5, 10 -> 0, 0.5, 1;   u1 1, 1, 3 -> 0, 0, 1
    #   second: u0 4, 2, 0  -> 1, 0.5, 0;   u1 7, 7, 7 -> 0, 0, 0 (constant)
    #   broken: NaN everywhere, weight 0: kept, never scored
    # weights 0.75 / 0.25:
    #   u0: 0.75 x (0, 0.5, 1) + 0.25 x (1, 0.5, 0) = 0.25, 0.5, 0.75
    #   u1: 0.75 x (0, 0, 1)                        = 0, 0, 0.75
    identity = np.eye(2, dtype=np.float32)
    first = FactorModel(identity, np.array([[0, 1], [5, 1], [10, 3]], np.float32))
    second = FactorModel(identity, np.array([[4, 7], [2, 7], [0, 7]], np.float32))
    broken = FactorModel(identity, np.full((3, 2), np.nan, np.float32))
    blend = Blend(
        {"first": first, "second": second, "broken": broken},
        {"first": 0.75, "second": 0.25, "broken": 0.0},
    )
    np.testing.assert_allclose(blend.scores(np.array([0, 1])), [[0.25, 0.5, 0.75], [0, 0, 0.75]])
    np.testing.assert_allclose(blend.scores(np.array([1])), [[0, 0, 0.75]])
