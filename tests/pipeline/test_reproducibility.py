"""Same inputs, same lists: the demo nightly with its default settings, rebuilt from its
recorded inputs on another data root, on another runner (Dask) with another thread count,
makes the same decisions and publishes the same lists, bit for bit; and a rebuild that
differs says where."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from demo_store import generate_store, write_store
from flows.nightly import nightly
from flows.params import NightlyParams
from flows.reproduce import ReproduceParams, Reproduction, compare_lists, reproduce
from tasks.errors import NotPublishedError
from tasks.publishing.manifest import CONTENT_COLUMNS


def test_the_demo_nightly_is_rebuilt_bit_for_bit_on_dask_with_one_thread(tmp_path):
    original = tmp_path / "original"
    write_store(generate_store("demo", seed=42), original / "demo" / "store.db")
    summary = nightly(NightlyParams(data_root=original))  # default: 2 training threads, local
    version = summary.published_version
    published = original / "published" / version
    manifest = json.loads((published / "manifest.json").read_text())
    assert manifest["deterministic"] is True and len(manifest["content_sha256"]) == 64

    result = reproduce(
        ReproduceParams(
            version=version,
            data_root=original,
            into=tmp_path / "rebuilt",
            runner="dask",
            num_threads=1,
        )
    )
    assert result.reproduced and result.rebuilt_version == version
    assert result.decisions_differ == {}
    assert result.rebuilt_content_sha256 == manifest["content_sha256"]
    rebuilt = tmp_path / "rebuilt" / "published" / version
    inputs = json.loads(
        next((tmp_path / "rebuilt" / "runs").iterdir()).joinpath("inputs.json").read_text()
    )
    assert (
        inputs["params"]["publishing"]["runner"] == "dask" and inputs["params"]["num_threads"] == 1
    )
    # the lists themselves, not only their fingerprints
    before = pd.read_parquet(
        published / "recommendations.parquet", columns=[*CONTENT_COLUMNS, "score"]
    )
    after = pd.read_parquet(
        rebuilt / "recommendations.parquet", columns=[*CONTENT_COLUMNS, "score"]
    )
    pd.testing.assert_frame_equal(before, after)
    original_metrics = json.loads((published / "metrics.json").read_text())
    rebuilt_metrics = json.loads((rebuilt / "metrics.json").read_text())
    assert original_metrics["tuning"]["chosen"] == rebuilt_metrics["tuning"]["chosen"]
    assert original_metrics["candidates"] == rebuilt_metrics["candidates"]

    with pytest.raises(NotPublishedError, match="not empty"):  # never over another root
        reproduce(ReproduceParams(version=version, data_root=original, into=tmp_path / "rebuilt"))


def test_a_rebuild_that_differs_says_where(tmp_path):
    rows = {
        "user_id": ["U1", "U1", "U2", "U2"],
        "rank": [1, 2, 1, 2],
        "product_id": ["P1", "P2", "P1", "P3"],
        "reason": ["r"] * 4,
        "tier": ["history"] * 4,
        "variant": ["model"] * 4,
    }
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    other = dict(rows, product_id=["P1", "P2", "P3", "P1"])  # U2's two products swapped
    pd.DataFrame(other).to_parquet(tmp_path / "b.parquet")
    assert compare_lists(tmp_path / "a.parquet", tmp_path / "b.parquet") == (1, 2)
    result = Reproduction(
        version="v",
        rebuilt_version="v",
        decisions_differ={"published": ["blend", None]},
        content_sha256="a",
        rebuilt_content_sha256="b",
        users_with_other_lists=1,
        users=2,
    )
    assert not result.reproduced
    assert "NOT reproduced" in result.render() and "published: blend -> None" in result.render()
    assert "1 of 2 users get another list" in result.render()
