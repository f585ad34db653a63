"""The dataset contract: required columns, and `dataset.toml` (features and event weights)."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from tasks.rules import PublishingSpec

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "products": ("product_id",),
    "events": ("user_id", "product_id", "event_type", "occurred_at"),
}
OPTIONAL_EVENT_COLUMNS: tuple[str, ...] = ("event_id", "quantity", "unit_price", "rating")
ID_COLUMNS: dict[str, str] = {"users": "user_id", "products": "product_id"}


class TextCleaning(BaseModel):
    """How the values of a text feature are tidied before use (all optional)."""

    case: Literal["lower", "upper", "title"] | None = Field(
        None, description="'Moisturizer ', 'MOISTURIZER' -> one spelling"
    )
    synonyms: dict[str, str] = Field(
        default_factory=dict,
        description="value -> canonical value, applied after case: {moisturiser = 'moisturizer'}",
    )
    values: list[str] | None = Field(
        None, description="the allowed values (after case and synonyms); others are quarantined"
    )


class CategoricalFeature(TextCleaning):
    kind: Literal["categorical"] = "categorical"


class MultiFeature(TextCleaning):
    kind: Literal["multi"] = "multi"
    sep: str = "|"


class NumericFeature(BaseModel):
    kind: Literal["numeric"] = "numeric"
    bins: int = Field(5, ge=2, le=100)
    min: float | None = Field(None, description="smaller values are quarantined")
    max: float | None = Field(None, description="larger values are quarantined")


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


class TableSpec(BaseModel):
    """Column roles of users or products beyond their features."""

    timestamp_columns: list[str] = Field(
        default_factory=list, description="parsed to UTC whatever the source's format"
    )


class ProductsSpec(TableSpec):
    in_stock_column: str | None = Field(
        None, description="boolean column; false = never recommended. Absent = all in stock"
    )


class CleaningSpec(BaseModel):
    """Rules that set implausible rows aside (quarantine) instead of training on them."""

    max_price_ratio: float | None = Field(
        100.0,
        gt=1,
        description="an event's unit_price above this many times its product's median "
        "unit_price is quarantined; empty = off",
    )


class ValidationSpec(BaseModel):
    """Table-level checks generated from this file (on top of expectations/*.json)."""

    max_null_share: float = Field(
        0.5, ge=0, le=1, description="a declared feature column more null than this stops the run"
    )
    max_row_drop: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a table that shrank by more than this since the published version "
        "stops the run (0.5: half the rows gone)",
    )
    store_start: datetime | None = Field(
        None, description="events before this moment are quarantined (a clock or import error)"
    )
    column_means: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="column -> [low, high]: a table whose mean is outside stops the run "
        "(e.g. price = [5, 200] catches prices loaded in cents)",
    )


class SourceSpec(BaseModel):
    """Where one table comes from, when it is not the run's default `source`.

    kind = "sql":   url_env (name of an environment variable holding the URL; else the run's
                    source URL), table (default: our table name) or query (any SELECT).
    kind = "files": path (a .csv, .parquet or .jsonl file; relative to this config file).
    kind = "http":  url, items_key, next_key, timeout_s, retries (see tasks/sources/http_api.py).
    """

    model_config = {"extra": "forbid"}

    kind: Literal["sql", "files", "http"]
    url_env: str | None = None
    table: str | None = None
    query: str | None = None
    path: Path | None = None
    url: str | None = None
    items_key: str = "items"
    next_key: str = "next"
    timeout_s: float = Field(10.0, gt=0, le=600)
    retries: int = Field(3, ge=0, le=10)


class ModelsSpec(BaseModel):
    """Dataset-specific choices of the candidate models."""

    segment_columns: list[str] = Field(
        default_factory=list,
        description="user columns whose combination is a segment for segment popularity "
        "(e.g. skin_type, region); empty = one segment",
    )
    category_column: str | None = Field(
        None,
        description="product column that is the category (category transitions, diversity); "
        "empty = the first categorical product feature",
    )


class DatasetSpec(BaseModel):
    events: EventsSpec = Field(default_factory=EventsSpec)
    user_features: dict[str, FeatureSpec] = Field(default_factory=dict)
    product_features: dict[str, FeatureSpec] = Field(default_factory=dict)
    cleaning: CleaningSpec = Field(default_factory=CleaningSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    users: TableSpec = Field(default_factory=TableSpec)
    products: ProductsSpec = Field(default_factory=ProductsSpec)
    sources: dict[Literal["users", "products", "events"], SourceSpec] = Field(default_factory=dict)
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    publishing: PublishingSpec = Field(default_factory=PublishingSpec)
    base_dir: Path = Field(Path("."), exclude=True, description="folder of the config file")

    def category_column(self) -> str | None:
        """The products' category: `[models] category_column`, else the first categorical
        product feature, else None."""
        return self.models.category_column or next(
            (c for c, spec in self.product_features.items() if spec.kind == "categorical"), None
        )

    def features_of(self, table: str) -> dict[str, FeatureSpec]:
        return {"users": self.user_features, "products": self.product_features}.get(table, {})

    def timestamp_columns(self, table: str) -> list[str]:
        declared = {"users": self.users, "products": self.products}.get(table)
        return ["occurred_at"] if table == "events" else list(declared.timestamp_columns)

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
            raw = tomllib.loads(path.read_text())
            return cls.model_validate(raw | {"base_dir": path.resolve().parent})
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML: {error}") from error
        except ValidationError as error:
            raise ValueError(f"{path}: invalid dataset config:\n{error}") from error
