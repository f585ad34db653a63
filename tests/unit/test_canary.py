"""The canary's pure core (tasks/evaluation/canary.py) on hand-made lists."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.evaluation.canary import judge_refit, top_k_overlap
from tasks.evaluation.evaluate import score_health
from tasks.training.models import FactorModel


def test_overlap_counts_the_judged_products_the_refit_keeps():
    judged = np.array([[1, 2, 3, 4], [5, 6, -1, -1], [-1, -1, -1, -1]])
    refit = np.array([[4, 3, 9, 8], [6, 5, 7, -1], [1, 2, 3, 4]])
    # row 0 keeps 3 and 4 of 4; row 1 keeps both of its 2; row 2 had nothing to keep
    assert top_k_overlap(judged, refit) == pytest.approx([0.5, 1.0, 1.0])


def test_health_finds_nan_and_constant_users():
    users = np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0]], dtype=np.float32)
    items = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    health = score_health(FactorModel(users, items), chunk=2)
    nan_share, constant_share = health["nan_score_share"], health["constant_score_share"]
    assert nan_share == pytest.approx(3 / 9)  # the third user's three scores
    assert constant_share == pytest.approx(1 / 3)  # the second user: all zero


def test_the_verdict_needs_health_and_agreement():
    ok = judge_refit(0.0, 0.0, 0.8, 0.5, 100, 50, 10)
    assert ok.passed and "80.0%" in ok.reasons[1]
    assert not judge_refit(0.0, 0.0, 0.3, 0.5, 100, 50, 10).passed
    assert not judge_refit(0.01, 0.0, 0.9, 0.5, 100, 50, 10).passed
    assert not judge_refit(0.0, 0.02, 0.9, 0.5, 100, 50, 10).passed
