"""Typed parameters of the nightly flow: the Prefect UI renders them as a form, with
defaults, choices and bounds; the command line accepts the same names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from flows.ingest import IngestOptions
from tasks.dataset import DatasetSpec
from tasks.evaluation.gate import GateParams
from tasks.features.split import HoldoutRule
from tasks.ingest.sources.errors import masked_url
from tasks.publishing.publish import PublishParams
from tasks.run_context import RunFolder, Snapshot
from tasks.settings import confine, confine_database, get_settings
from tasks.training.models import families
from tasks.training.train import DEFAULT_BLEND, ModelConfig, TrainingContext
from tasks.training.tune import TuningParams
from tasks.versions import OPERATIONAL


class _BeforeTheModels(BaseModel):
    """The nightly's parameters up to the model families' (NightlyParams holds them all)."""

    source: Annotated[str | None, OPERATIONAL] = Field(
        None,
        description=(
            "where the shop's data is: a SQLAlchemy URL (sqlite:///..., "
            "postgresql+psycopg://...) or a folder holding users, products and events as "
            "CSV, Parquet or JSON lines. Empty = source_secret, else RECS_SOURCE from the "
            "environment, else the embedded demo store. Never put a password here."
        ),
    )
    source_secret: Annotated[str | None, OPERATIONAL] = Field(
        None,
        description="name of a Prefect Secret block holding the source URL (with its password)",
    )
    source_retries: Annotated[int, OPERATIONAL] = Field(
        2, ge=0, le=10, description="retries (with backoff) when a source does not answer"
    )
    data_root: Annotated[Path, OPERATIONAL] = Field(
        default_factory=lambda: get_settings().data_root,
        description="folder for runs, models and published recommendations",
    )
    dataset_config: Annotated[Path | None, OPERATIONAL] = Field(
        None,
        description=(
            "dataset.toml: features, event weights, per-table sources. Empty = the "
            "dataset.toml inside a files source, else the demo store's"
        ),
    )
    extraction: Annotated[Literal["full", "incremental"], OPERATIONAL] = Field(
        "full",
        description="full: read every event; incremental: only events since the central "
        "dataset's high-water mark (minus late_arrival_hours), appended without duplicates",
    )
    late_arrival_hours: Annotated[float, OPERATIONAL] = Field(
        72.0, ge=0, le=8760, description="how late an event may arrive and still be caught"
    )
    max_unjoined_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="share of events whose user or product is unknown that is quarantined; "
        "above it the run stops",
    )
    max_quarantine_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="share of a table's rows that validation may quarantine; above it the "
        "run stops before training",
    )
    holdout_gap_hours: float | None = Field(
        None,
        ge=0,
        le=24 * 365,
        description="evaluation: a user's training events end this long before their "
        "held-out transaction (a fixed window; 0 removes nothing); empty (the default): "
        "only what would give the held-out transaction away, the browsing of its visit "
        "and earlier events on its product",
    )
    visit_gap_minutes: float = Field(
        30.0,
        gt=0,
        le=24 * 60,
        description="evaluation: a pause longer than this ends a visit (the held-out "
        "transaction's visit is what the default holdout removes)",
    )
    holdout_warn_share: float = Field(
        0.10,
        ge=0,
        le=1,
        description="evaluation: warn when the holdout removes more than this share of the "
        "events before the held-out transactions",
    )
    split_cutoff: datetime | None = Field(
        None,
        description="evaluation by a global time cutoff instead of each user's latest "
        "purchase: the test set is each user's first purchase from this moment on",
    )
    top_n: int = Field(20, ge=1, le=500, description="recommendations per user")
    publishing: PublishParams = Field(
        default_factory=PublishParams,
        description="versions kept, scoring partitions, local or Dask task runner",
    )


# Then each model family's section of parameters, as the family declares it (`model` for
# LightFM, `item_knn`, `transitions`: tasks/training/models/families.py), then the rest.
class NightlyParams(families.settings_model("_WithTheModels", _BeforeTheModels, flow=True)):
    """Everything a nightly run can be told."""

    blend: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_BLEND),
        description="starting blend weights per candidate; tuning tries others",
    )
    tuning: TuningParams = Field(default_factory=TuningParams)
    popularity_half_life_days: float = Field(
        30.0, gt=0, le=3650, description="time decay of the popularity baselines"
    )
    gate: GateParams = Field(default_factory=GateParams)
    max_test_users: int = Field(
        50_000,
        ge=100,
        le=100_000_000,
        description="test users the candidates are evaluated and gated on (a seeded sample "
        "when the split holds more; every candidate is scored on the same users)",
    )
    refit_epochs: int | None = Field(
        1,
        ge=1,
        le=1000,
        description="epochs the published model's LightFM component trains on all events, "
        "continuing from the evaluated model (at most the tuned epochs); empty = train it "
        "again from scratch for the tuned epochs",
    )
    seed: int = Field(42, ge=0, description="random seed of training")
    reason: Annotated[str | None, OPERATIONAL] = Field(
        None,
        max_length=2000,
        description="why this run was started (monitoring fills it in when it retrains)",
    )
    num_threads: Annotated[int, OPERATIONAL] = Field(
        2,
        ge=1,
        le=64,
        description="training threads: independent fits (tuning trials, candidates) run side "
        "by side, each on one thread, so the thread count changes the time, never the lists",
    )
    hogwild: bool = Field(
        False,
        description="give each LightFM fit num_threads Hogwild threads instead: faster per "
        "fit, but two runs on the same inputs publish different lists (the manifest and the "
        "summary say so)",
    )

    @field_validator("data_root", "dataset_config")
    @classmethod
    def _path_inside_allowed_roots(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Inside the allowed roots; the deployment's own dataset.toml is always allowed."""
        if value is None:
            return None
        default_config = get_settings().dataset_config.resolve()
        if info.field_name == "dataset_config" and Path(value).resolve() == default_config:
            return value
        return confine(value, info.field_name)

    @field_validator("source")
    @classmethod
    def _source_inside_allowed_roots(cls, value: str | None) -> str | None:
        """A folder or a SQLite file named here must be inside the allowed roots too."""
        if not value:
            return value
        if "://" in value and masked_url(value) != value:
            raise ValueError(
                "source holds a password or token, which Prefect would record with the "
                "run's parameters; put the URL in RECS_SOURCE or a Secret block (source_secret)"
            )
        if "://" not in value:
            confine(value, "source")
        return confine_database(value, "source")

    @property
    def ingest(self) -> IngestOptions:
        """What the ingest stage is told (flows/ingest.py)."""
        return IngestOptions(
            data_root=self.data_root,
            source_retries=self.source_retries,
            incremental=self.extraction == "incremental",
            late_arrival_hours=self.late_arrival_hours,
            max_unjoined_share=self.max_unjoined_share,
            max_quarantine_share=self.max_quarantine_share,
        )

    def holdout(self) -> HoldoutRule:
        """What the evaluation split leaves out of training before a held-out transaction."""
        return HoldoutRule(
            window_hours=self.holdout_gap_hours, visit_gap_minutes=self.visit_gap_minutes
        )

    def training(self, snapshot: Snapshot, dataset: DatasetSpec, run: RunFolder) -> TrainingContext:
        """What every training task of this run shares (tune, train_candidates, refit)."""
        return TrainingContext(
            snapshot=snapshot,
            dataset=dataset,
            run=run,
            seed=self.seed,
            num_threads=self.num_threads,
            hogwild=self.hogwild,
        )

    def continued_epochs(self, tuned_epochs: int) -> int | None:
        """The refit's LightFM epochs from the evaluated model: refit_epochs, at most the
        tuned epochs (None: the refit trains from scratch for the tuned epochs)."""
        return min(self.refit_epochs, tuned_epochs) if self.refit_epochs else None

    def starting_models(self) -> ModelConfig:
        """The models' starting configuration (before tuning)."""
        return ModelConfig(
            **{s.key: getattr(self, s.flow_name) for s in families.all_settings()},
            popularity_half_life_days=self.popularity_half_life_days,
            blend=self.blend,
        )

    def resolved_source(self) -> str:
        """The source to read: parameter, Secret block, environment, or the demo store."""
        if self.source:
            return self.source
        if self.source_secret:
            from prefect.blocks.system import Secret

            return Secret.load(self.source_secret).get()
        return get_settings().default_source(self.data_root)

    def resolved_dataset_config(self, source: str) -> Path:
        if self.dataset_config:
            return self.dataset_config
        beside_files = Path(source) / "dataset.toml"
        if "://" not in source and beside_files.exists():
            return beside_files
        return get_settings().dataset_config
