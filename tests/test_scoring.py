"""Exact top-N: equal to a brute-force sort, with exclusions applied inside the selection."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.models import FactorModel
from tasks.scoring import top_n


def brute_force(model, rows, n, exclude, allowed):
    scores = model.user_vectors[rows] @ model.item_vectors.T
    scores[:, ~allowed] = -np.inf
    scores[exclude[rows].toarray()] = -np.inf
    out = []
    for row_scores in scores:  # reference implementation: loops are fine in a test
        order = sorted(range(len(row_scores)), key=lambda i: (-row_scores[i], i))
        out.append([i for i in order if np.isfinite(row_scores[i])][:n])
    return out


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_top_n_matches_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    model = FactorModel(
        rng.normal(size=(50, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    )
    exclude = sp.random(50, 30, density=0.2, random_state=1, format="csr").astype(bool)
    allowed = rng.random(30) > 0.2
    rows = np.array([3, 0, 49, 17, 17])
    items, scores = top_n(model, rows, 8, exclude, allowed, chunk_size=chunk_size)
    expected = brute_force(model, rows, 8, exclude, allowed)
    for got_items, got_scores, want in zip(items, scores, expected, strict=True):
        assert list(got_items[got_items >= 0]) == want
        assert np.all(np.diff(got_scores[np.isfinite(got_scores)]) <= 0)


def test_short_list_when_few_products_are_eligible():
    model = FactorModel(np.ones((2, 1), np.float32), np.arange(5, dtype=np.float32)[:, None])
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=bool))
    allowed = np.array([True, False, True, True, True])
    items, scores = top_n(model, np.array([0, 1]), 4, exclude, allowed)
    assert items[0].tolist() == [2, 0, -1, -1]
    assert np.isneginf(scores[0, 2:]).all()
    assert items[1].tolist() == [4, 3, 2, 0]


def test_ties_go_to_lower_product_index():
    model = FactorModel(np.ones((1, 1), np.float32), np.ones((6, 1), np.float32))
    items, _ = top_n(model, np.array([0]), 3)
    assert items[0].tolist() == [0, 1, 2]
