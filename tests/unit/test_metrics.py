"""Ranking metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.evaluation.evaluate import ranking_metrics


def test_metrics_one_relevant_item_per_user():
    ranked = np.array([[5, 1, 2], [7, 8, 9], [3, 4, 6]])
    truth = np.array([5, 9, 0])  # hit at rank 1, hit at rank 3, miss
    m = ranking_metrics(ranked, truth, ks=(1, 3))
    assert m["HR@1"] == pytest.approx(1 / 3)
    assert m["HR@3"] == pytest.approx(2 / 3)
    assert m["precision@3"] == pytest.approx(2 / 9)
    assert m["recall@3"] == pytest.approx(2 / 3)
    assert m["NDCG@3"] == pytest.approx((1.0 + 1.0 / np.log2(4)) / 3)
    assert m["NDCG@1"] == pytest.approx(1 / 3)
    assert m["MRR"] == pytest.approx((1 + 1 / 3) / 3)


def test_unfilled_slots_never_count_as_hits():
    ranked = np.array([[-1, -1]])
    m = ranking_metrics(ranked, np.array([-1]), ks=(2,))
    # -1 marks "no product": an unknown truth index must not match an empty slot.
    assert m["HR@2"] == 0.0
    assert m["NDCG@2"] == 0.0
