"""The dataset contract: required columns, and `dataset.toml` (features and event weights)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "products": ("product_id",),
    "events": ("user_id", "product_id", "event_type", "occurred_at"),
}
OPTIONAL_EVENT_COLUMNS: tuple[str, ...] = ("event_id", "quantity", "unit_price", "rating")
ID_COLUMNS: dict[str, str] = {"users": "user_id", "products": "product_id"}


class CategoricalFeature(BaseModel):
    kind: Literal["categorical"] = "categorical"


class MultiFeature(BaseModel):
    kind: Literal["multi"] = "multi"
    sep: str = "|"


class NumericFeature(BaseModel):
    kind: Literal["numeric"] = "numeric"
    bins: int = Field(5, ge=2, le=100)


FeatureSpec = Annotated[
    CategoricalFeature | MultiFeature | NumericFeature, Field(discriminator="kind")
]


class EventsSpec(BaseModel):
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "purchase": 1.0,
            "add_to_cart": 0.5,
            "like": 0.4,
            "search_click": 0.2,
            "view": 0.1,
        }
    )
    transaction_types: list[str] = Field(default_factory=lambda: ["purchase"], min_length=1)

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in weights.items() if v < 0}
        if bad:
            raise ValueError(f"event weights must be >= 0, got {bad}")
        return weights


class DatasetSpec(BaseModel):
    events: EventsSpec = Field(default_factory=EventsSpec)
    user_features: dict[str, FeatureSpec] = Field(default_factory=dict)
    product_features: dict[str, FeatureSpec] = Field(default_factory=dict)

    @field_validator("user_features", "product_features", mode="before")
    @classmethod
    def _short_form(cls, features: dict) -> dict:
        # `skin_type = "categorical"` is shorthand for `{ kind = "categorical" }`.
        return {
            name: {"kind": spec} if isinstance(spec, str) else spec
            for name, spec in features.items()
        }

    @classmethod
    def from_toml(cls, path: Path) -> DatasetSpec:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset config {path} not found")
        try:
            return cls.model_validate(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML: {error}") from error
        except ValidationError as error:
            raise ValueError(f"{path}: invalid dataset config:\n{error}") from error
