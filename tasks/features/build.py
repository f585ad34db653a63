"""Build features: sparse user and product feature matrices from `dataset.toml`.

Each row is one user (product) in the order of the snapshot's users (products) table; the
columns are an identity column per row (the collaborative part) plus one column per
feature value: `skin_type=dry`, `ingredients=retinol`, `price=bin3[24.99,31.99]`. Rows are
normalised to sum to 1, as LightFM recommends for mixed identity + attribute features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task

from tasks.dataset import (
    CategoricalFeature,
    DatasetSpec,
    FeatureSpec,
    MultiFeature,
    NumericFeature,
)
from tasks.features.behaviour import product_behaviour, user_behaviour
from tasks.run_context import FeatureSet, RunFolder, Snapshot, Split, StageFeatures


def _feature_values(column: str, values: pd.Series, spec: FeatureSpec) -> pd.DataFrame:
    """Long table (row, feature name) for one column; missing values give no feature."""
    rows = pd.Series(np.arange(len(values)))
    if isinstance(spec, CategoricalFeature):
        present = values.notna()
        names = column + "=" + values[present].astype(str).str.strip()
        return pd.DataFrame({"row": rows[present].to_numpy(), "feature": names.to_numpy()})
    if isinstance(spec, MultiFeature):
        exploded = values.astype("string").str.split(spec.sep, regex=False).explode()
        exploded = exploded.str.strip()
        present = exploded.notna() & (exploded != "")
        return pd.DataFrame(
            {
                "row": exploded.index.to_numpy()[present.to_numpy()],
                "feature": (column + "=" + exploded[present]).to_numpy(),
            }
        )
    if isinstance(spec, NumericFeature):
        numeric = pd.to_numeric(values, errors="coerce").reset_index(drop=True)
        present = numeric.notna()
        if not present.any():
            return pd.DataFrame({"row": [], "feature": []})
        bins = pd.qcut(numeric[present], q=spec.bins, duplicates="drop")
        labels = bins.cat.categories
        names = [f"{column}=bin{i}[{iv.left:g},{iv.right:g}]" for i, iv in enumerate(labels)]
        feature = pd.Categorical.from_codes(bins.cat.codes, categories=names)
        return pd.DataFrame({"row": rows[present].to_numpy(), "feature": np.asarray(feature)})
    raise TypeError(f"unknown feature kind {spec!r}")


def feature_matrix(
    frame: pd.DataFrame,
    id_column: str,
    specs: dict[str, FeatureSpec],
    identity: bool = True,
    extra: pd.DataFrame | None = None,
) -> tuple[sp.csr_matrix, list[str]]:
    """One sparse row per entity: identity column plus declared feature values (weight 1)
    plus `extra` (row, feature, weight) engineered features; rows sum to 1."""
    frame = frame.reset_index(drop=True)
    missing = [column for column in specs if column not in frame.columns]
    if missing:
        raise ValueError(
            f"dataset.toml declares feature column(s) {missing} that the "
            f"{id_column.split('_')[0]}s table does not have (columns: {list(frame.columns)})"
        )
    parts = [_feature_values(column, frame[column], spec) for column, spec in specs.items()]
    if identity:
        parts.insert(
            0,
            pd.DataFrame(
                {
                    "row": np.arange(len(frame)),
                    "feature": (f"{id_column}=" + frame[id_column].astype(str)).to_numpy(),
                }
            ),
        )
    parts = [part.assign(weight=1.0) for part in parts]
    if extra is not None and len(extra):
        parts.append(extra[["row", "feature", "weight"]])
    long = pd.concat(parts, ignore_index=True).drop_duplicates(["row", "feature"])
    codes, names = pd.factorize(long["feature"], sort=False)
    matrix = sp.csr_matrix(
        (
            long["weight"].to_numpy(dtype=np.float32),
            (long["row"].to_numpy(dtype=np.int64), codes),
        ),
        shape=(len(frame), len(names)),
    )
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    row_sums[row_sums == 0] = 1.0
    matrix = sp.diags((1.0 / row_sums).astype(np.float32)) @ matrix
    return matrix.tocsr().astype(np.float32), list(names)


@task(name="build-features")
def build_features(
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
    events_path: Path | None = None,
    stage: str = "final",
) -> FeatureSet:
    """Write `features/<stage>/{user,item}_features.npz` and their feature names: the
    declared attributes plus behaviour features from the events of `events_path` (the
    stage's training events; default all events)."""
    users = snapshot.read("users")
    products = snapshot.read("products")
    events = pd.read_parquet(events_path or snapshot.tables["events"])
    user_extra = user_behaviour(events, users["user_id"], products, dataset)
    item_extra = product_behaviour(events, products, dataset)
    user_matrix, user_names = feature_matrix(
        users, "user_id", dataset.user_features, extra=user_extra
    )
    item_matrix, item_names = feature_matrix(
        products, "product_id", dataset.product_features, extra=item_extra
    )
    user_plain, _ = feature_matrix(users, "user_id", dataset.user_features)
    item_plain, _ = feature_matrix(products, "product_id", dataset.product_features)

    paths = {
        name: run.sub("features", stage, f"{name}.npz")
        for name in ("user_features", "item_features", "user_attributes", "item_attributes")
    }
    for name, matrix in zip(paths, (user_matrix, item_matrix, user_plain, item_plain), strict=True):
        sp.save_npz(paths[name], matrix)
    names_path = run.sub("features", stage, "feature_names.json")
    names_path.write_text(json.dumps({"user": user_names, "item": item_names}))
    return FeatureSet(
        **paths,
        names=names_path,
        n_user_features=len(user_names),
        n_item_features=len(item_names),
    )


def build_stage_features(
    snapshot: Snapshot, dataset: DatasetSpec, run: RunFolder, split: Split
) -> StageFeatures:
    """The features of tuning, evaluation and the final refit, each from its own training
    events (behaviour features would otherwise leak the held-out transactions)."""
    return StageFeatures(
        tune=build_features(snapshot, dataset, run, split.tune_train_events, "tune"),
        evaluate=build_features(snapshot, dataset, run, split.train_events, "evaluate"),
        final=build_features(snapshot, dataset, run, snapshot.tables["events"], "final"),
    )
