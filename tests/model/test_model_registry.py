"""The registry of model families (tasks/training/models/families.py): every family declares
what training, tuning and the reasons need; the configuration and the nightly flow's
parameters keep the keys other programs read; and a family registered in one line is
trained, tuned, evaluated and blended with the others."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import BaseModel

from flows.params import NightlyParams
from tasks.publishing.reasons import ReasonContext
from tasks.training.models import Blend, FactorModel, families
from tasks.training.models.family import Family, FitOptions
from tasks.training.train import (
    BLEND,
    COMPONENTS,
    DEFAULT_BLEND,
    HYBRID,
    ModelConfig,
    TrainingData,
    blend_members,
    fit_candidate,
)
from tasks.training.tune import LightFMTrial, NeighbourTrial, TuningResult
from tests.pipeline.test_nightly_e2e import run_nightly

# ModelConfig().model_dump(mode="json") before the registry: metrics.json, the model
# registry's model.json and the champion's configuration are read with these keys.
CONFIG_KEYS = {
    "lightfm": {
        "behaviour_features",
        "epochs",
        "half_life_days",
        "item_alpha",
        "learning_rate",
        "loss",
        "max_sampled",
        "no_components",
        "user_alpha",
    },
    "item_knn": {"alpha", "neighbours", "recency_decay", "shrink"},
    "transitions": {"backward", "normalisation", "recency_decay", "step_decay", "window"},
    "popularity_half_life_days": None,
    "blend": {"item_knn", "last_item_transitions", "lightfm_hybrid", "popularity"},
}
# The nightly flow's parameters around the models', in the order of its form and --help.
FLOW_MODEL_KEYS = ["model", "item_knn", "transitions", "blend", "tuning"]


def test_every_family_declares_a_name_parameters_a_fit_and_an_explanation():
    config = ModelConfig()
    for family in families.registered():
        assert isinstance(family, Family)
        assert isinstance(family.name, str) and family.name and family.name != BLEND
        assert callable(family.fit) and callable(family.explain)
        assert isinstance(family.params_of(config), dict)
        if family.settings is not None:
            assert issubclass(family.settings.model, BaseModel)
            assert isinstance(getattr(config, family.settings.key), family.settings.model)
        if family.space is not None:  # a search space draws the family's own parameters
            assert family.settings is not None
            assert set(family.space) <= set(family.settings.model.model_fields)
    assert [f.name for f in families.registered() if f.search == "lightfm"] == [HYBRID]


def test_names_and_sections_are_unique():
    names = families.names()
    assert len(set(names)) == len(names)
    assert names == COMPONENTS
    declared = [f.settings for f in families.registered() if f.settings is not None]
    for settings in declared:  # families sharing a key share the one declaration
        assert all(s is settings for s in declared if s.key == settings.key)
    assert len({s.flow_name for s in families.all_settings()}) == len(families.all_settings())
    with pytest.raises(ValueError, match="unknown candidate 'nope'"):
        families.family("nope")


def test_model_config_keeps_its_json_keys():
    dumped = ModelConfig().model_dump(mode="json")
    assert list(dumped) == list(CONFIG_KEYS)  # in this order too
    for key, inner in CONFIG_KEYS.items():
        assert (set(dumped[key]) if inner is not None else None) == inner, key
    assert ModelConfig.model_validate(json.loads(json.dumps(dumped))) == ModelConfig()


def test_the_nightly_flow_keeps_its_parameter_names_and_starts_from_them():
    fields = list(NightlyParams.model_fields)
    start = fields.index("model")
    assert fields[start : start + len(FLOW_MODEL_KEYS)] == FLOW_MODEL_KEYS
    assert fields.index("popularity_half_life_days") == start + len(FLOW_MODEL_KEYS)
    params = NightlyParams(
        model={"loss": "bpr"}, item_knn={"shrink": 3.0}, popularity_half_life_days=7.0
    )
    config = params.starting_models()
    assert config.lightfm.loss == "bpr" and config.item_knn.shrink == 3.0
    assert config.transitions == params.transitions and config.blend == DEFAULT_BLEND
    assert config.popularity_half_life_days == 7.0


def test_trials_keep_their_keys_in_order_and_have_a_json_schema():
    row = NeighbourTrial(candidate="item_knn", trial=2, shrink=10.0, alpha=0.5, validation_ndcg=0.1)
    assert row.model_dump(mode="json") == {
        "candidate": "item_knn",
        "trial": 2,
        "shrink": 10.0,
        "alpha": 0.5,
        "validation_NDCG@10": 0.1,
    }
    keys = ["candidate", "trial", "shrink", "alpha", "validation_NDCG@10"]
    assert list(row.model_dump(mode="json")) == keys  # settings between the trial and its score
    assert NeighbourTrial.model_validate(row.model_dump(mode="json")) == row
    schema = TuningResult.model_json_schema()
    assert {"LightFMTrial", "NeighbourTrial", "BlendTrial"} <= set(schema["$defs"])
    assert "chosen_validation_NDCG@10" in LightFMTrial.model_json_schema()["properties"]


def toy_data(n_users: int = 30, n_items: int = 20, seed: int = 0) -> TrainingData:
    """Small random training data with every matrix a family may read."""
    rng = np.random.default_rng(seed)
    interactions = sp.random(n_users, n_items, 0.2, "csr", rng=rng, dtype=np.float32)
    interactions.data[:] = 1.0
    coo = interactions.tocoo()
    rank = np.zeros(coo.nnz, dtype=np.int64)
    users = pd.Series([f"u{i}" for i in range(n_users)])
    items = pd.Series([f"p{i}" for i in range(n_items)])
    user_features = sp.hstack([sp.identity(n_users), sp.random(n_users, 3, 0.5, rng=rng)]).tocsr()
    item_features = sp.hstack([sp.identity(n_items), sp.random(n_items, 4, 0.5, rng=rng)]).tocsr()
    return TrainingData(
        interactions=interactions,
        recent_demand=interactions,
        recency=(coo.row, coo.col, rank),
        sequence_rows=coo.row,
        sequence_cols=coo.col,
        sequence_rank=rank,
        user_features=user_features,
        item_features=item_features,
        user_plain=sp.identity(n_users, format="csr"),
        item_plain=sp.identity(n_items, format="csr"),
        item_attributes=item_features[:, n_items:].tocsr(),
        segments=rng.integers(0, 3, n_users),
        categories=rng.integers(0, 4, n_items),
        events=pd.DataFrame(),
        user_ids=users,
        product_ids=items,
        weights={"purchase": 1.0},
        feature_names=(
            list(users) + ["skin=a", "skin=b", "skin=c"],
            list(items) + ["i=a", "i=b", "i=c", "i=d"],
        ),
    )


def toy_reasons(data: TrainingData) -> ReasonContext:
    coo = data.interactions.tocoo()
    purchases = pd.DataFrame(
        {
            "user_id": data.user_ids.to_numpy()[coo.row],
            "product_id": data.product_ids.to_numpy()[coo.col],
            "event_type": "purchase",
            "occurred_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    users = pd.DataFrame({"user_id": data.user_ids, "skin_type": "dry", "region": "north"})
    products = pd.DataFrame(
        {"product_id": data.product_ids, "category": data.categories.astype(str)}
    )
    return ReasonContext.build(
        users, products, purchases, None, "category", "skin_type", ["region"], {}, {}
    )


def test_every_family_fits_and_explains_on_toy_data(tmp_path):
    data = toy_data()
    config = ModelConfig(lightfm={"no_components": 4, "epochs": 2})
    reasons = toy_reasons(data)
    users, items = np.arange(30), np.arange(30) % 20
    for family in families.registered():
        state = tmp_path / f"{family.name}.state.npz" if family.keeps_state else None
        factors = family.fit(data, config, FitOptions(seed=1, state_path=state))
        assert factors.n_users == 30 and factors.n_items == 20, family.name
        assert np.isfinite(factors.scores(np.arange(30))).all(), family.name
        said = family.explain(reasons, factors, users, items)
        assert len(said) == len(users), family.name
        assert all(r is None or isinstance(r, str) for r in said), family.name
        if state is not None:  # and continues from the state it kept
            continued = fit_candidate(
                family.name, data, config, 1, 1, warm_start=state, continue_epochs=1
            )
            assert continued.n_items == 20


def fit_toy(data: TrainingData, config: ModelConfig, options: FitOptions) -> FactorModel:
    """Buy again: the user's own products, most recent first."""
    history = data.weighted_history(0.5).astype(np.float32)
    return FactorModel(history, sp.identity(history.shape[1], dtype=np.float32, format="csr"))


TOY = Family(
    name="toy_buy_again",
    fit=fit_toy,
    explain=lambda reasons, component, users, items: np.full(len(users), None, dtype=object),
)


def test_a_family_registered_in_one_line_is_trained_tuned_and_evaluated(monkeypatch, data_root):
    monkeypatch.setattr(families, "FAMILIES", (*families.FAMILIES, TOY))
    assert families.names()[-1] == TOY.name and blend_members(ModelConfig())  # no other change
    summary = run_nightly(data_root, blend=DEFAULT_BLEND | {TOY.name: 1.0})
    candidates = summary.run_folder / "models" / "candidates"
    assert FactorModel.load(candidates / f"{TOY.name}.npz").n_users > 0  # train_candidates
    metrics = json.loads((summary.run_folder / "metrics.json").read_text())
    assert set(metrics["candidates"]) == set(COMPONENTS) | {TOY.name, BLEND}
    trials = json.loads((summary.run_folder / "tuning" / "trials.json").read_text())
    assert TOY.name in trials["validation_ndcg"]  # judged alone by the blend search
    assert all(TOY.name in row for row in trials["blend_trials"])
    blend = Blend.load(candidates / BLEND)
    assert set(blend.weights) == set(blend_members(ModelConfig.model_validate(trials["config"])))
