"""The JSON files other programs read, as pydantic models, and their JSON Schemas.

Each file is written from its model and validated by it when read back; the schemas in
docs/schemas/ are generated from the same models (`make docs`) and a test checks them
against the files a real nightly run writes, so neither can drift from the code.

    metrics.json   runs/<run_id>/ and published/<version>/   MetricsDocument
    manifest.json  published/<version>/                      Manifest
    model.json     models/<version>/                         RegistryEntry
    trials.json    runs/<run_id>/tuning/                     TuningResult (its trials)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from tasks.evaluation.run_report import MetricsDocument
from tasks.publishing.manifest import Manifest
from tasks.training.registry import RegistryEntry
from tasks.training.tune import TuningResult

SCHEMA_FOLDER = Path(__file__).resolve().parents[1] / "docs" / "schemas"

CONTRACTS: dict[str, type[BaseModel]] = {
    "metrics": MetricsDocument,
    "manifest": Manifest,
    "model": RegistryEntry,
    "trials": TuningResult,
}


def schema_text(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def stale_schemas(folder: Path = SCHEMA_FOLDER) -> list[Path]:
    """The schema files that are missing or differ from what the models generate."""
    return [
        folder / f"{name}.schema.json"
        for name, model in CONTRACTS.items()
        if not (folder / f"{name}.schema.json").exists()
        or (folder / f"{name}.schema.json").read_text() != schema_text(model)
    ]


def write_schemas(folder: Path = SCHEMA_FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in CONTRACTS.items():
        path = folder / f"{name}.schema.json"
        path.write_text(schema_text(model))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.contracts`: write the schemas; `--check`: exit 1 if any is stale."""
    if "--check" in (argv if argv is not None else sys.argv[1:]):
        stale = stale_schemas()
        for path in stale:
            print(f"{path}: stale; run `make docs` to regenerate it", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
