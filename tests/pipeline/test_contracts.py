"""The JSON files other programs read keep their contract: the schemas in docs/schemas/ are
what the pydantic models generate, and the files a real nightly run writes satisfy them."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tasks.contracts import CONTRACTS, SCHEMA_FOLDER, schema_text, stale_schemas
from tasks.evaluation.metrics import CandidateMetrics
from tasks.evaluation.run_report import MetricsDocument
from tasks.publishing.manifest import Manifest
from tasks.training.registry import RegistryEntry


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_FOLDER / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_documented_schemas_are_the_generated_ones():
    assert stale_schemas() == [], "run `make docs` (python -m tasks.contracts) and commit"
    for name, model in CONTRACTS.items():
        assert json.loads(schema_text(model)) == json.loads(
            (SCHEMA_FOLDER / f"{name}.schema.json").read_text()
        )


@pytest.fixture(scope="module")
def published_run(tmp_path_factory, tiny_store_db):
    import shutil

    from tests.pipeline.test_nightly_e2e import run_nightly

    root = tmp_path_factory.mktemp("contracts") / "data"
    (root / "demo").mkdir(parents=True)
    shutil.copy(tiny_store_db, root / "demo" / "store.db")
    return root, run_nightly(root)


def test_a_real_run_writes_files_that_satisfy_the_schemas(published_run):
    root, summary = published_run
    version = root / "published" / summary.published_version
    files = {
        "metrics": [summary.run_folder / "metrics.json", version / "metrics.json"],
        "manifest": [version / "manifest.json"],
        "model": [root / "models" / summary.published_version / "model.json"],
        "trials": [summary.run_folder / "tuning" / "trials.json"],
    }
    for name, paths in files.items():
        check = validator(name)
        for path in paths:
            document = json.loads(path.read_text())
            errors = [e.message for e in check.iter_errors(document)]
            assert errors == [], (path, errors)
            assert CONTRACTS[name].model_validate(document)  # the reader's model agrees


def test_the_schemas_can_fail(published_run):
    """A file missing a key, or carrying an unknown one, is refused by schema and model."""
    root, summary = published_run
    document = json.loads((summary.run_folder / "metrics.json").read_text())
    blend = document["candidates"]["blend"]
    check = validator("metrics")

    missing = json.loads(json.dumps(document))
    del missing["candidates"]["blend"]["NDCG@10"]
    assert not check.is_valid(missing)
    with pytest.raises(ValueError, match="NDCG@10"):
        CandidateMetrics.model_validate(missing["candidates"]["blend"])

    unknown = json.loads(json.dumps(document))
    unknown["candidates"]["blend"]["NDGC@10"] = 0.5  # a typo is not a rule's cost
    assert not check.is_valid(unknown)
    with pytest.raises(ValueError, match="unknown metric 'NDGC@10'"):
        CandidateMetrics.model_validate(unknown["candidates"]["blend"])

    rule = json.loads(json.dumps(document))
    rule["candidates"]["blend"]["NDCG@10[rules:brand_cap]"] = 0.25  # a rule's cost is allowed
    assert check.is_valid(rule)
    assert CandidateMetrics.model_validate(rule["candidates"]["blend"]).rule_costs[
        "brand_cap"
    ] == pytest.approx(0.25)
    assert "NDCG@10[rules:none]" in blend  # measured on every run with a blend

    manifest = json.loads(
        (root / "published" / summary.published_version / "manifest.json").read_text()
    )
    manifest.pop("files")
    assert not validator("manifest").is_valid(manifest)
    with pytest.raises(ValueError, match="files"):
        Manifest.model_validate(manifest)


def test_typed_metrics_keep_every_on_disk_key(published_run):
    """Read and written back by the models, the files keep every key they had."""
    root, summary = published_run
    path = summary.run_folder / "metrics.json"
    raw = json.loads(path.read_text())
    again = json.loads(MetricsDocument.model_validate(raw).to_json())
    assert again == raw
    entry_path = root / "models" / summary.published_version / "model.json"
    raw_entry = json.loads(entry_path.read_text())
    assert json.loads(RegistryEntry.model_validate(raw_entry).to_json()) == raw_entry
    segment = MetricsDocument.model_validate(raw).candidates["blend"].segment("cold_users")
    assert segment.users == raw["candidates"]["blend"]["n[cold_users]"]
