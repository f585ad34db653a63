"""Typed parameters of the nightly flow: the Prefect UI renders them as a form, with
defaults, choices and bounds; the command line accepts the same names."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from tasks.gate import GateParams
from tasks.models.lightfm_hybrid import LightFMParams
from tasks.settings import get_settings


class NightlyParams(BaseModel):
    """Everything a nightly run can be told."""

    source_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the shop's database; empty = RECS_SOURCE_URL from the "
            "environment, else the embedded demo store under data_root. Put URLs with "
            "passwords in RECS_SOURCE_URL, not here."
        ),
    )
    source_retries: int = Field(
        2, ge=0, le=10, description="retries (with backoff) when the database does not answer"
    )
    data_root: Path = Field(
        default_factory=lambda: get_settings().data_root,
        description="folder for runs, models and published recommendations",
    )
    dataset_config: Path = Field(
        default_factory=lambda: get_settings().dataset_config,
        description="dataset.toml: feature columns and event weights",
    )
    top_n: int = Field(20, ge=1, le=500, description="recommendations per user")
    model: LightFMParams = Field(default_factory=LightFMParams)
    popularity_half_life_days: float = Field(
        30.0, gt=0, le=3650, description="time decay of the popularity baseline"
    )
    gate: GateParams = Field(default_factory=GateParams)
    seed: int = Field(42, ge=0, description="random seed of training")
    num_threads: int = Field(2, ge=1, le=64, description="LightFM training threads")
