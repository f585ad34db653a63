"""Small typed objects that travel between tasks: paths and counts, never big tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

TABLES: tuple[str, ...] = ("users", "products", "events")


class DataRoot(BaseModel):
    """Where everything lives under a data root (RECS_DATA_ROOT): one place for each path.

    published/<version>/  published/latest   the publications and the one served
    models/<version>/                          the registry (models/champion)
    runs/<run_id>/  monitor/<run_id>/          one folder per nightly or monitor run
    monitor/state.json                         the monitor's memory (cooldowns, retrains)
    central/                                   the central dataset (incremental runs)
    demo/store.db                              the embedded demo store
    .nightly.lock                              one writer at a time
    """

    root: Path

    @classmethod
    def of(cls, data_root: Path | str) -> DataRoot:
        return cls(root=Path(data_root))

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def latest(self) -> Path:
        return self.published / "latest"

    def version(self, version: str) -> Path:
        return self.published / version

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_artifact(self, version: str) -> Path:
        """The registry's copy of a version's model (`models/<version>/model`)."""
        return self.models / version / "model"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def monitor(self) -> Path:
        return self.root / "monitor"

    @property
    def monitor_state(self) -> Path:
        return self.monitor / "state.json"

    @property
    def central(self) -> Path:
        return self.root / "central"

    @property
    def demo_store(self) -> Path:
        return self.root / "demo" / "store.db"

    def lock(self, what: str) -> Path:
        return self.root / f".{what}.lock"


class RunFolder(BaseModel):
    """Where one nightly run keeps everything it reads and writes: data/runs/<run_id>/."""

    data_root: Path
    run_id: str
    area: str = "runs"  # monitoring runs live under data/monitor/

    @classmethod
    def new(cls, data_root: Path, flow_run_id: str | None = None, area: str = "runs") -> RunFolder:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        run_id = f"{stamp}-{flow_run_id[:8]}" if flow_run_id else stamp
        folder = cls(data_root=Path(data_root), run_id=run_id, area=area)
        folder.path.mkdir(parents=True, exist_ok=False)
        return folder

    @property
    def path(self) -> Path:
        return self.data_root / self.area / self.run_id

    @property
    def per_user_ndcg(self) -> Path:
        """`evaluation/per_user_ndcg.parquet`: every candidate's NDCG@10 per test user."""
        return self.sub("evaluation", "per_user_ndcg.parquet")

    @property
    def inputs(self) -> Path:
        """`inputs.json`: the run's parameters and its dataset.toml, as given (what
        `python -m flows.reproduce` rebuilds a version from, with the run's snapshot)."""
        return self.sub("inputs.json")

    @property
    def snapshot(self) -> Path:
        """`snapshot/`: the tables the run read, one Parquet file each."""
        return self.path / "snapshot"

    @property
    def stored_champion_ndcg(self) -> Path:
        """`evaluation/stored_champion_ndcg.parquet`: the challenger's and the champion's
        stored model's NDCG@10 per test user who bought after the champion's data."""
        return self.sub("evaluation", "stored_champion_ndcg.parquet")

    def quarantine(self, table: str) -> Path:
        """`quarantine/<table>.parquet`: the rows of `table` set aside, with their reasons."""
        return self.sub("quarantine", f"{table}.parquet")

    def sub(self, *parts: str) -> Path:
        target = self.path.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


class Snapshot(BaseModel):
    """What extraction read: one Parquet file per table, row counts and a content hash."""

    tables: dict[str, Path]
    counts: dict[str, int]  # rows in the dataset per table
    # rows read this run = new + quarantined + already ingested (the last only incremental)
    read_counts: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    ignored_event_types: dict[str, int] = {}  # event types with no weight: kept, not used
    fingerprint: str
    sources: dict[str, str]  # where each table came from, passwords masked
    new_events: Path | None = None  # events not in the central dataset yet
    n_new_events: int = 0
    n_already_ingested: int = 0  # re-read by an incremental extraction, already central
    high_water_mark: datetime | None = None
    incremental: bool = False

    def read(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One table of the snapshot (only `columns`, when given)."""
        return pd.read_parquet(self.tables[table], columns=columns)


class FeatureSet(BaseModel):
    user_features: Path  # scipy.sparse .npz, rows in users-table order (with behaviour)
    item_features: Path  # scipy.sparse .npz, rows in products-table order (with behaviour)
    user_attributes: Path  # the same without behaviour features: identity + dataset.toml
    item_attributes: Path
    names: Path  # JSON: feature names of both matrices
    n_user_features: int
    n_item_features: int


class StageFeatures(BaseModel):
    """Features per stage, each built from that stage's training events only, so no stage
    sees behaviour from the transactions it is judged on."""

    tune: FeatureSet  # from the tuning split's training events
    evaluate: FeatureSet  # from the evaluation split's training events
    final: FeatureSet  # from every event: the published model's


class Split(BaseModel):
    """Each user's latest transaction is the test set, the one before validates tuning;
    what happened before trains (see tasks/features/split.py)."""

    train_events: Path
    test: Path
    tune_train_events: Path
    validation: Path
    n_train_events: int
    n_test_users: int
    n_test_repeat: int  # latest transaction re-buys a product bought before: not rankable
    n_validation_users: int = 0
    n_holdout_removed: int = 0  # events before a held-out transaction the holdout rule removed
    holdout_removed_share: float = 0.0  # ... of all events before the held-out transactions
    rule: str = "latest transaction per user (test), the one before it (validation)"


class TrainedModel(BaseModel):
    name: str
    vectors: Path  # a FactorModel .npz (score = user · item) or a Blend folder
    params: dict
    state: Path | None = None  # LightFM: what a later fit can continue from (lightfm_hybrid)
