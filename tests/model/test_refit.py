"""The published model's LightFM continues from the evaluated one (`refit_epochs`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.errors import PublicationRefusedError
from tasks.publishing.publish import current_latest
from tasks.training.models import FactorModel, load_scorer
from tasks.training.models.lightfm_hybrid import LightFMParams, fit_lightfm, save_state
from tests.pipeline.test_nightly_e2e import run_nightly
from tests.pipeline.test_reruns import fresh_root

PARAMS = LightFMParams(no_components=4, epochs=3)


def features(n: int) -> sp.csr_matrix:
    """Identity plus one shared column per entity."""
    return sp.hstack([sp.identity(n, format="csr"), sp.csr_matrix(np.ones((n, 1)))]).tocsr()


def test_a_continued_fit_starts_from_the_saved_rows_matched_by_name(tmp_path):
    rng = np.random.default_rng(0)
    interactions = sp.random(6, 5, 0.5, "csr", rng=rng, dtype=np.float32)
    interactions.data[:] = 1.0
    users, items = features(6), features(5)
    names = ([f"u{i}" for i in range(6)] + ["skin=dry"], [f"p{i}" for i in range(5)] + ["x"])
    first, _, _ = fit_lightfm(interactions, users, items, PARAMS, seed=1)
    state = save_state(first, tmp_path / "state.npz", names)

    # Today the shared user column comes first and a new one ("skin=oily") appears.
    reordered = sp.hstack([users[:, 6], users[:, :6], sp.csr_matrix((6, 1))]).tocsr()
    today = (["skin=dry"] + names[0][:6] + ["skin=oily"], names[1])
    continued, _, _ = fit_lightfm(
        interactions,
        reordered,
        items,
        PARAMS.model_copy(update={"epochs": 1}),
        seed=2,
        warm_start=state,
        names=today,
    )
    # "skin=oily" is nobody's feature yet: its row keeps the fresh start a fit from scratch
    # with the same seed gives it; "skin=dry" moved on for one epoch from the saved row.
    fresh, _, _ = fit_lightfm(
        interactions, reordered, items, PARAMS.model_copy(update={"epochs": 1}), seed=2
    )
    # (equal but for the L2 penalty that shrinks every row a little)
    np.testing.assert_allclose(continued.user_embeddings[7], fresh.user_embeddings[7], rtol=1e-5)
    moved = np.abs(continued.user_embeddings[0] - first.user_embeddings[6]).max()
    assert moved < np.abs(fresh.user_embeddings[0] - first.user_embeddings[6]).max()
    # users' identity rows came along at their new positions (shifted by one)
    for row in range(6):
        assert np.abs(continued.user_embeddings[row + 1] - first.user_embeddings[row]).max() < (
            np.abs(fresh.user_embeddings[row + 1] - first.user_embeddings[row]).max()
        )
    # and AdaGrad's accumulators, which only grow from the saved ones
    assert (continued.user_embedding_gradients[1:7] >= first.user_embedding_gradients[:6]).all()
    assert continued.user_embedding_gradients[1:7].sum() > fresh.user_embedding_gradients[1:7].sum()


def test_identity_only_models_continue_row_by_row(tmp_path):
    rng = np.random.default_rng(1)
    interactions = sp.random(8, 6, 0.4, "csr", rng=rng, dtype=np.float32)
    interactions.data[:] = 1.0
    first, _, _ = fit_lightfm(interactions, None, None, PARAMS, seed=1)
    state = save_state(first, tmp_path / "cf.npz", None)
    continued, _, _ = fit_lightfm(
        interactions, None, None, PARAMS.model_copy(update={"epochs": 1}), seed=5, warm_start=state
    )
    fresh, _, _ = fit_lightfm(
        interactions, None, None, PARAMS.model_copy(update={"epochs": 1}), seed=5
    )
    moved_from_first = np.abs(continued.item_embeddings - first.item_embeddings).max()
    moved_from_fresh = np.abs(continued.item_embeddings - fresh.item_embeddings).max()
    assert moved_from_first < moved_from_fresh


def test_the_nightly_refit_continues_from_the_evaluated_model(tmp_path, tiny_store_db):
    """refit_epochs=2: the candidates' hybrid keeps its state and the published hybrid
    continues from it (close to the evaluated one); empty: trained again from scratch."""
    distances = {}
    for refit_epochs in (2, None):
        root = fresh_root(tmp_path / str(refit_epochs), tiny_store_db)
        summary = run_nightly(root, refit_epochs=refit_epochs)
        models = summary.run_folder / "models"
        state = models / "candidates" / "lightfm_hybrid.state.npz"
        assert state.exists() == (refit_epochs is not None)
        evaluated = FactorModel.load(models / "candidates" / "lightfm_hybrid.npz")
        published = FactorModel.load(models / "final" / "lightfm_hybrid.npz")
        distances[refit_epochs] = np.abs(published.item_vectors - evaluated.item_vectors).mean()
        assert summary.published_version is not None
        metrics = json.loads((summary.published_path.parent / "metrics.json").read_text())
        assert metrics["published_model"]["lightfm_continued_epochs"] == refit_epochs
    assert distances[2] < distances[None]


def test_a_sabotaged_refit_is_refused_before_publication(tmp_path, tiny_store_db, monkeypatch):
    """The canary: a refit whose scores are noise (after the gate passed the judged model)
    is refused before `latest` moves; an honest refit passes and records its overlap."""
    import flows.nightly

    root = fresh_root(tmp_path, tiny_store_db)
    first = run_nightly(root)
    honest = json.loads((first.run_folder / "metrics.json").read_text())["refit_check"]
    assert honest["passed"] and honest["top_k_overlap"] >= honest["min_overlap"]
    assert (
        honest["users_checked"]
        == json.loads((first.run_folder / "metrics.json").read_text())["data"]["counts"]["users"]
    )
    champion = os.readlink(root / "models" / "champion")
    real_refit = flows.nightly.refit

    def noisy_refit(*args, **kwargs):
        final = real_refit(*args, **kwargs)
        shape = load_scorer(final.vectors)
        rng = np.random.default_rng(0)
        noise = FactorModel(
            rng.normal(size=(shape.n_users, 8)).astype(np.float32),
            rng.normal(size=(shape.n_items, 8)).astype(np.float32),
        )
        path = noise.save(Path(final.vectors).parent / "noise.npz")
        return final.model_copy(update={"vectors": path})

    monkeypatch.setattr(flows.nightly, "refit", noisy_refit)
    with pytest.raises(PublicationRefusedError, match="failed its check before publication"):
        run_nightly(root, top_n=5)  # another version: it would be published
    assert current_latest(root / "published") == first.published_version
    assert os.readlink(root / "models" / "champion") == champion
    refused_run = sorted((root / "runs").iterdir(), key=os.path.getmtime)[-1]
    check = json.loads((refused_run / "metrics.json").read_text())["refit_check"]
    assert check["passed"] is False and check["top_k_overlap"] < check["min_overlap"]
    assert "REFUSED" in (refused_run / "reports" / "evaluation_report.html").read_text()
