"""Model registry on disk: every challenger a run evaluates, with what it takes to trust it.

    <data_root>/models/<version>/model/        the artifact (a blend folder)
    <data_root>/models/<version>/model.json    version, configuration (hyperparameters and
                                               blend weights), metrics, gate decision, data
                                               fingerprint, code version, artifact sha256
    <data_root>/models/champion                symlink to the champion's version; it moves
                                               only when a challenger passed the gate and
                                               was published

A refused challenger is registered too (`"champion": false` and the gate's reasons), so the
record says what was tried and why it was not shipped.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

from prefect import task
from pydantic import BaseModel

from tasks.artifacts import FOLDER_MODE, artifact_sha256, restrict
from tasks.atomic import switch_symlink, write_text_atomically
from tasks.evaluation.metrics import CandidateMetrics
from tasks.evaluation.run_report import GateRecord, MetricsDocument
from tasks.run_context import DataRoot
from tasks.versions import code_version


class ModelRecord(BaseModel):
    """What the registry records of a judged model besides its artifact."""

    version: str
    run_id: str
    config: dict  # tasks.training.train.ModelConfig, dumped
    metrics: CandidateMetrics  # measured on the split, before the refit
    gate: GateRecord
    data_fingerprint: str
    data_until: datetime | None = None  # the newest event it saw (None: registered before)

    @classmethod
    def judged(
        cls, version: str, document: MetricsDocument, candidate: str, config: BaseModel
    ) -> ModelRecord:
        """The record of `candidate` as the run's metrics document judged it."""
        return cls(
            version=version,
            run_id=document.run_id,
            config=config.model_dump(mode="json"),
            metrics=document.candidates[candidate],
            gate=document.gate,
            data_fingerprint=document.data.fingerprint,
            data_until=document.data.data_until,
        )


class RegistryEntry(ModelRecord):
    """model.json: the record, and what it takes to trust the artifact."""

    created_at: datetime
    code_version: str | None
    artifact: str = "model"
    artifact_sha256: str
    refit_on_all_data: bool
    published: bool

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def registry_root(data_root: Path) -> Path:
    return DataRoot.of(data_root).models


def read_entry(data_root: Path, version: str) -> RegistryEntry:
    path = registry_root(data_root) / version / "model.json"
    return RegistryEntry.model_validate_json(path.read_text())


def find_entry(data_root: Path, version: str) -> RegistryEntry | None:
    """The registry's record of `version`, or None if it has none."""
    path = registry_root(data_root) / version / "model.json"
    return RegistryEntry.model_validate_json(path.read_text()) if path.exists() else None


def current_champion(data_root: Path) -> RegistryEntry | None:
    pointer = registry_root(data_root) / "champion"
    if not pointer.is_symlink():
        return None
    return read_entry(data_root, os.readlink(pointer))


@task(name="register-model")
def register_model(
    data_root: Path,
    model_path: Path,
    record: ModelRecord,
    refit_on_all_data: bool,
    published: bool,
    created_at: datetime,
) -> RegistryEntry:
    """Copy the artifact into the registry and write its model.json (atomically).

    A published entry is never replaced by a refused challenger of the same version (a
    rerun on the same snapshot whose gate now faces that very model as champion)."""
    version = record.version
    folder = registry_root(data_root) / version
    existing = find_entry(data_root, version)
    if existing is not None and existing.published and not refit_on_all_data:
        return existing
    staging = folder.with_name(f".staging-{version}")
    shutil.rmtree(staging, ignore_errors=True)
    folder.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    staging.mkdir()
    target = staging / "model"
    if Path(model_path).is_dir():
        shutil.copytree(model_path, target)
    else:
        target.mkdir()
        shutil.copy2(model_path, target / Path(model_path).name)
    entry = RegistryEntry(
        **dict(record),
        created_at=created_at,
        code_version=code_version(),
        artifact_sha256=artifact_sha256(target),
        refit_on_all_data=refit_on_all_data,
        published=published,
    )
    (staging / "model.json").write_text(entry.to_json())
    restrict(staging)
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(staging, folder)
    return entry


def artifact_path(data_root: Path, version: str) -> Path:
    return DataRoot.of(data_root).model_artifact(version)


@task(name="mark-published")
def mark_published(data_root: Path, version: str) -> RegistryEntry:
    """Record in model.json (atomically) that `version` was published."""
    entry = read_entry(data_root, version).model_copy(update={"published": True})
    path = registry_root(data_root) / version / "model.json"
    write_text_atomically(path, entry.to_json(), private=True)
    return entry


@task(name="promote-champion")
def promote_champion(data_root: Path, version: str) -> None:
    """Point `models/champion` at `version` (a new symlink renamed over the old one)."""
    root = registry_root(data_root)
    if not (root / version / "model.json").exists():
        raise FileNotFoundError(f"model {version} is not in the registry {root}")
    switch_symlink(root / "champion", version)
