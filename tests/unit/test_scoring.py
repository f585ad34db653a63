"""Exact top-N: equal to a brute-force sort, with exclusions applied inside the selection."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.publishing.scoring import select_top, top_n
from tasks.training.models import FactorModel


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


def reference_top(scores: np.ndarray, n: int) -> np.ndarray:
    clean = np.where(np.isfinite(scores), scores, -np.inf)
    order = np.argsort(-clean, axis=1, kind="stable")[:, :n]
    order[~np.isfinite(np.take_along_axis(clean, order, axis=1))] = -1
    return order


@pytest.mark.parametrize(("n_items", "n"), [(20_000, 20), (5_003, 7), (2_561, 20), (100, 10)])
def test_grouped_selection_is_exact_with_ties_nan_and_exclusions(n_items, n):
    """The group-bound path (large catalogues) equals a stable full sort, row by row."""
    rng = np.random.default_rng(n_items)
    scores = rng.normal(size=(64, n_items)).astype(np.float32)
    scores[1] = np.round(scores[1])  # massive ties
    scores[2, :] = -np.inf
    scores[2, [5, n_items - 1]] = 1.0  # only two eligible products, one in the tail
    scores[3, ::3] = np.nan
    scores[4] = 0.5  # everything tied: lowest indices win
    scores[5, n_items - n :] = 100.0  # the best products all sit in the last positions
    expected = reference_top(scores, n)
    items, values = select_top(scores.copy(), n)
    assert np.array_equal(items, expected)
    finite = items >= 0
    assert np.array_equal(values[finite], np.take_along_axis(scores, items, 1)[finite])
    assert np.isneginf(values[~finite]).all()
    assert items[4].tolist() == list(range(n))


def test_fused_and_score_block_paths_agree_with_a_full_sort():
    """The fused path (dense factors, tiles longest-vector first) and the score-block path
    (any scorer; forced here by a no-op adjustment) give the stable full sort's lists,
    with ties across tiles, exclusions and out-of-stock products."""
    rng = np.random.default_rng(3)
    n_users, n_items, n = 300, 1_500, 12
    users = rng.integers(-2, 3, size=(n_users, 4)).astype(np.float32)  # many exact ties
    items = rng.integers(-2, 3, size=(n_items, 4)).astype(np.float32)
    items[::7] *= 3  # longer vectors, scattered over the index range
    exclude = sp.random(n_users, n_items, density=0.02, random_state=4, format="csr") != 0
    allowed = rng.random(n_items) > 0.1
    model = FactorModel(users, items)
    scores = users @ items.T
    scores[:, ~allowed] = -np.inf
    scores[exclude.toarray()] = -np.inf
    expected = reference_top(scores, n)
    rows = np.arange(n_users)
    for adjust in (None, lambda _rows, _scores: None):
        items_out, values = top_n(model, rows, n, exclude, allowed, chunk_size=64, adjust=adjust)
        assert np.array_equal(items_out, expected)
        assert np.array_equal(values, np.take_along_axis(scores, expected, 1))


def test_nan_vectors_never_rank():
    users = np.ones((2, 2), np.float32)
    items = np.array([[1, 1], [np.nan, 1], [2, 2], [0, 0]], np.float32)
    got, _ = top_n(FactorModel(users, items), np.array([0, 1]), 4)
    assert got.tolist() == [[2, 0, 3, -1], [2, 0, 3, -1]]


@pytest.mark.parametrize("dense_limit", [0, 64 * 2**20])
def test_pair_scores_and_cached_component_shares_equal_full_rows(dense_limit, monkeypatch):
    """`FactorModel.pair_scores` and `scores` equal the plain product of the two sides for
    every kind of side, a sparse product side kept sparse (limit 0) or made dense; and a
    blend's component shares read from the ranges its scoring saw equal rescoring."""
    import tasks.training.models
    from tasks.training.models import Blend, FactorModel, minmax_rows

    monkeypatch.setattr(tasks.training.models, "DENSE_ITEM_BYTES", dense_limit)

    rng = np.random.default_rng(4)
    n_users, n_items = 60, 50
    history = sp.random(n_users, n_items, 0.1, "csr", rng=rng, dtype=np.float32)
    transitions = sp.random(n_items, n_items, 0.3, "csr", rng=rng, dtype=np.float32)
    dense_users = rng.normal(size=(n_users, 5)).astype(np.float32)
    dense_items = rng.normal(size=(n_items, 5)).astype(np.float32)
    models = {
        "dense": FactorModel(dense_users, dense_items),
        "sparse_users": FactorModel(history, transitions),
        "sparse_users_dense_items": FactorModel(history, rng.normal(size=(n_items, n_items))),
        "sparse_items": FactorModel(dense_users[:, :3], sp.csr_matrix(dense_items[:, :3])),
    }
    users = rng.integers(0, n_users, 400)
    items = rng.integers(0, n_items, 400)
    for name, model in models.items():
        plain = [
            m.toarray() if sp.issparse(m) else m for m in (model.user_vectors, model.item_vectors)
        ]
        reference = plain[0] @ plain[1].T
        np.testing.assert_allclose(model.scores(np.arange(n_users)), reference, atol=1e-5)
        full = reference[users, items]
        np.testing.assert_allclose(model.pair_scores(users, items), full, atol=1e-5, err_msg=name)
        sparse_side = sp.issparse(model.item_vectors) and not dense_limit
        assert sp.issparse(model._item_t) == sparse_side, name

    blend = Blend(models, dict.fromkeys(models, 1.0))
    before = {name: blend.component_share(name, users, items) for name in models}  # rescored
    blend.scores(np.unique(users))  # records each component's per-user range
    for name, model in models.items():
        expected = minmax_rows(model.scores(np.arange(n_users)))[users, items]
        np.testing.assert_allclose(blend.component_share(name, users, items), expected, atol=1e-5)
        np.testing.assert_allclose(before[name], expected, atol=1e-6)
    assert all(blend._ranges[name].known[users].all() for name in models)


def test_strongest_predecessor_reads_only_the_users_products():
    """The product of a user's history that leads to the listed one most (ties to the lower
    index, -1 when none leads to it) equals a plain row-by-row reading."""
    from tasks.publishing.reasons import ReasonContext

    rng = np.random.default_rng(7)
    n_users, n_items = 40, 30
    history = sp.random(n_users, n_items, 0.15, "csr", rng=rng, dtype=np.float32)
    history.data = np.round(history.data * 2) / 2 + 0.5  # repeated weights: ties
    links = sp.random(n_items, n_items, 0.3, "csr", rng=rng, dtype=np.float32)
    links.data = np.round(links.data * 2) / 2  # some explicit zeros, more ties
    model = FactorModel(history, links)
    users, items = rng.integers(0, n_users, 500), rng.integers(0, n_items, 500)
    found = ReasonContext._strongest_predecessor(None, model, users, items)
    dense_history, dense_links = history.toarray(), links.toarray()
    for k, (u, i) in enumerate(zip(users, items, strict=True)):  # reference: a loop is fine
        strength = dense_history[u] * dense_links[i]
        expected = int(np.argmax(strength)) if strength.max() > 0 else -1
        assert found[k] == expected, (u, i)
    # users with no history at all, and no pairs: nothing to look up
    empty = FactorModel(sp.csr_matrix((n_users, n_items), dtype=np.float32), links)
    assert (ReasonContext._strongest_predecessor(None, empty, users, items) == -1).all()
    assert ReasonContext._strongest_predecessor(None, model, users[:0], items[:0]).size == 0
    assert (empty.pair_scores(users, items) == 0).all()


def test_reason_strength_ignores_float_noise_but_not_real_gaps():
    from tasks.publishing.reasons import strength_order

    # Two components that both rank the product first tie in exact arithmetic; float32
    # gives 1.0 or 0.99999994 depending on how many users were scored together.
    exact = np.array([[1.0, 1.0, 0.5], [0.25, 0.5, 0.5]], dtype=np.float32)
    noisy = np.array(
        [[np.nextafter(np.float32(1), np.float32(0)), 1.0, 0.5], [0.25, 0.5, 0.49999997]],
        dtype=np.float32,
    )
    assert noisy[0, 0] != exact[0, 0] and noisy[1, 2] != exact[1, 2]
    assert strength_order(noisy).tolist() == strength_order(exact).tolist()
    assert strength_order(exact).tolist() == [[0, 1, 2], [1, 2, 0]]  # ties: blend order
    gap = np.array([[0.5, 0.501, 0.0]], dtype=np.float32)
    assert strength_order(gap).tolist() == [[1, 0, 2]]
