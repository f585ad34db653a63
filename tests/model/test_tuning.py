"""Tuning: the pooled blend search agrees with the exact evaluation, and the search spaces
are what the issue asks for."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.evaluation.evaluate import Evaluation, rank_users
from tasks.training.models import Blend, FactorModel
from tasks.training.models.lightfm_hybrid import LightFMParams
from tasks.training.train import COMPONENTS, HYBRID, TrainingData
from tasks.training.tune import (
    BlendPool,
    blend_candidates,
    lightfm_candidates,
    tuning_users,
)
from tests.pipeline.test_nightly_e2e import FAST_TUNING, run_nightly


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
    pool = BlendPool.build(components, evaluation, pool_size=n_items)
    pooled, _ = pool.metrics(weightings)
    exact = [evaluation.ndcg(Blend({n: components[n] for n in w}, w)) for w in weightings]
    np.testing.assert_allclose(pooled, exact, atol=1e-9)
    # the pool is built once and judges later rounds of weightings the same way
    in_rounds = [pool.metrics(weightings[:1])[0], pool.metrics(weightings[1:])[0]]
    np.testing.assert_allclose(np.concatenate(in_rounds), pooled, atol=1e-12)
    # coverage@10 too, where no tie sits at the 10th place (continuous scores: "a")
    _, coverage = pool.metrics([{"a": 1.0}])
    exact_top = rank_users(
        Blend({"a": components["a"]}, {"a": 1.0}), evaluation.rows, 10, evaluation.exclude
    )
    assert coverage[0] == len(np.unique(exact_top[exact_top >= 0])) / n_items


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


def test_tuning_users_keep_every_validation_user_and_a_seeded_sample():
    rng = np.random.default_rng(3)
    interactions = sp.random(1_000, 50, density=0.05, format="csr", random_state=3)
    interactions.data[:] = 1.0
    validation = rng.choice(1_000, 40, replace=False)
    keep = tuning_users(interactions, validation, 200, seed=5)
    assert keep.sum() == 200 and keep[validation].all()
    active = np.diff(interactions.indptr) > 0
    assert not (keep & ~active & ~np.isin(np.arange(1_000), validation)).any()
    assert (keep == tuning_users(interactions, validation, 200, seed=5)).all()  # seeded
    assert tuning_users(interactions, validation, 5_000, seed=5).all()  # fewer users: all


def test_nightly_tunes_on_a_sample_of_users_and_publishes_for_everyone(data_root):
    """`tuning.max_train_users` below the shop's size: the trials train on that many users'
    events only (the training matrix of the trials has exactly their rows), the chosen
    settings are then trained on everyone and every user is published."""
    summary = run_nightly(data_root, tuning=FAST_TUNING.model_copy(update={"max_train_users": 150}))
    trials = json.loads((summary.run_folder / "tuning" / "trials.json").read_text())
    assert trials["train_users"] == 150
    assert 100 < trials["train_users_with_events"] <= 150  # the other users' rows are empty
    active = pd.read_parquet(summary.run_folder / "split" / "tune_train_events.parquet")
    assert active["user_id"].nunique() > 200  # without the sample the trials had them all
    assert pd.read_parquet(summary.published_path)["user_id"].nunique() == 300
    # the LightFM choice: a check some trial made, within one standard error of the best
    choice = trials["lightfm_choice"]
    trial = trials["lightfm_trials"][choice["trial"]]
    assert [choice["epochs"], choice["validation_NDCG@10"]] in trial["curve"]
    assert trials["config"]["lightfm"]["epochs"] == choice["epochs"]
    for key in ("no_components", "loss", "learning_rate", "behaviour_features"):
        assert trials["config"]["lightfm"][key] == trial[key]
    best = trials["lightfm_trials"][choice["best_trial"]]
    assert [choice["best_epochs"], choice["best_validation_NDCG@10"]] in best["curve"]
    assert choice["best_validation_NDCG@10"] == max(
        score for row in trials["lightfm_trials"] for _, score in row["curve"]
    )
    gap = choice["best_validation_NDCG@10"] - choice["validation_NDCG@10"]
    assert gap <= choice["standard_error"] + 1e-5 and choice["relative_cost"] <= 1


def test_for_users_empties_the_other_rows_only():
    interactions = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 0], [4, 0, 0]]))
    users = pd.Series(["a", "b", "c"])
    events = pd.DataFrame({"user_id": ["a", "b", "c", "c"], "product_id": ["x", "y", "x", "x"]})
    data = TrainingData(
        interactions=interactions,
        recent_demand=interactions,
        recency=(np.array([0, 1, 2]), np.array([0, 1, 0]), np.array([0, 0, 0])),
        sequence_rows=np.array([0, 2]),
        sequence_cols=np.array([2, 0]),
        sequence_rank=np.array([0, 0]),
        user_features=interactions,
        item_features=interactions,
        user_plain=interactions,
        item_plain=interactions,
        item_attributes=interactions,
        segments=np.zeros(3),
        categories=np.zeros(3),
        events=events,
        user_ids=users,
        product_ids=pd.Series(["x", "y", "z"]),
        weights={"purchase": 1.0},
        feature_names=(["u0", "u1", "u2"], ["x", "y", "z"]),
    )
    kept = data.for_users(np.array([True, False, True]))
    assert kept.interactions.toarray().tolist() == [[1, 0, 2], [0, 0, 0], [4, 0, 0]]
    assert kept.interactions.nnz == 3 and kept.recent_demand is interactions
    assert kept.recency[0].tolist() == [0, 2] and kept.sequence_rows.tolist() == [0, 2]
    assert kept.events["user_id"].tolist() == ["a", "c", "c"]


def test_one_standard_error_rule_takes_the_fewest_epochs_the_validation_cannot_tell_apart():
    """Curve.of: the best mean is recorded; the chosen check is the earliest whose paired
    per-user difference from the best is within one standard error, never a clearly
    worse one."""
    from tasks.training.models.lightfm_hybrid import Curve

    rng = np.random.default_rng(0)
    best = (rng.random(2000) < 0.2).astype(float)
    near = best.copy()  # 30 hits lost, 28 gained: 0.001 lower, well within one SE (~0.004)
    near[rng.choice(np.flatnonzero(best == 1), 30, replace=False)] = 0
    near[rng.choice(np.flatnonzero(best == 0), 28, replace=False)] = 1
    worse = best * (rng.random(2000) < 0.5)  # half the hits lost
    curve = Curve.of([5, 10, 15], [worse, near, best])
    assert (curve.best, curve.chosen, curve.chosen_epochs) == (2, 1, 10)
    assert curve.scores == pytest.approx([worse.mean(), near.mean(), best.mean()])
    # the best itself when every earlier check is clearly worse
    strict = Curve.of([5, 10], [worse, best])
    assert (strict.best, strict.chosen) == (1, 1)
    assert strict.chosen_score == pytest.approx(best.mean())


def test_one_standard_error_choice_takes_the_cheapest_model_the_validation_cannot_tell_apart():
    """Across trials the cost is measured seconds × epochs: a cheap model within one
    standard error of the best wins, a cheaper but clearly worse one does not, and a model
    costing as much as the best never replaces it."""
    from tasks.training.models.lightfm_hybrid import one_standard_error_choice

    rng = np.random.default_rng(1)
    best = (rng.random(3000) < 0.2).astype(float)
    near = best.copy()  # a few hits traded: within one SE
    near[rng.choice(np.flatnonzero(best == 1), 20, replace=False)] = 0
    near[rng.choice(np.flatnonzero(best == 0), 15, replace=False)] = 1
    worse = best * (rng.random(3000) < 0.6)
    gains = [best, near, worse]
    assert one_standard_error_choice(gains, [10.0, 3.0, 1.0]) == (0, 1)
    assert one_standard_error_choice(gains, [10.0, 12.0, 1.0]) == (0, 0)
    assert one_standard_error_choice(gains, [10.0, 10.0, 1.0]) == (0, 0)
    assert one_standard_error_choice([near, best], [1.0, 2.0]) == (1, 0)  # order free


def test_only_users_keeps_the_given_rows_scores_and_empties_the_rest():
    rng = np.random.default_rng(3)
    model = FactorModel(
        rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    )
    rows = np.array([7, 3, 41, 3])
    slim = model.only_users(rows)
    assert sp.issparse(slim.user_vectors) and slim.user_vectors.nnz == 3 * 8
    np.testing.assert_allclose(slim.scores(rows), model.scores(rows), rtol=1e-5, atol=1e-5)
    assert not slim.scores(np.array([0, 49])).any()


def test_epoch_work_counts_the_feature_rows_every_interaction_updates():
    """Identity only: one user row and one product row per interaction; with features,
    the rows each side's feature matrix gives that user or product."""
    from tasks.training.tune import epoch_work

    interactions = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 0]]))  # 3 interactions
    users = sp.csr_matrix(np.array([[1.0, 1, 1], [0, 1, 0]]))  # 3 rows, 1 row
    items = sp.csr_matrix(np.array([[1.0, 1], [1, 0], [0, 1]]))  # 2, 1, 1 rows
    assert epoch_work(interactions, None, None, 7) == 3 * 2 * 8
    # user rows: 3 + 3 + 1; product rows: 2 + 1 + 1
    assert epoch_work(interactions, users, items, 7) == (7 + 4) * 8
    assert epoch_work(interactions, users, None, 15) == (7 + 3) * 16


def test_training_stops_after_patience_checks_without_a_clear_improvement():
    """A check counts as progress only when it beats the last clear improvement by more than
    one standard error; creeping within the noise for `patience` checks ends the training
    (what the one-standard-error rule would never pick over the earlier check)."""
    from tasks.training.models.lightfm_hybrid import LightFMParams, clearly_better, fit_lightfm

    rng = np.random.default_rng(2)
    base = (rng.random(3000) < 0.2).astype(float)
    worse = base * (rng.random(3000) < 0.5)
    creep = base.copy()  # 30 hits lost, 33 gained: 0.001 up, within one SE (~0.0026)
    creep[rng.choice(np.flatnonzero(base == 1), 30, replace=False)] = 0
    creep[rng.choice(np.flatnonzero(base == 0), 33, replace=False)] = 1
    clear = np.maximum(base, rng.random(3000) < 0.1)  # many hits more
    assert clearly_better(base, worse) and clearly_better(clear, base)
    assert not clearly_better(creep, base) and creep.mean() > base.mean()
    assert not clearly_better(base, base)

    interactions = sp.random(60, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
    interactions.data[:] = 1.0

    def train(script: list[np.ndarray]):
        served = iter(script)
        return fit_lightfm(
            interactions,
            None,
            None,
            LightFMParams(no_components=4, epochs=100),
            seed=0,
            validate=lambda factors: next(served),
            eval_every=2,
            patience=2,
        )[2]

    # worse → base (clear) → creep → creep: two checks without a clear gain, stop at 8
    curve = train([worse, base, creep, creep, clear, clear])
    assert curve.epochs == [2, 4, 6, 8]
    assert curve.chosen_epochs == 4  # the creeping checks cost more for nothing clear
    # a clear gain resets the count: stops two checks after it
    assert train([worse, base, creep, clear, clear, clear, clear]).epochs == [2, 4, 6, 8, 10, 12]
