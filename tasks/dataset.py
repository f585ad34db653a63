"""The dataset contract: required columns, and `dataset.toml` (features and event weights)."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from tasks.config_schema import StrictModel, config_problems
from tasks.errors import ConfigError
from tasks.publishing.rules import PublishingSpec
from tasks.versions import OPERATIONAL

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "products": ("product_id",),
    "events": ("user_id", "product_id", "event_type", "occurred_at"),
}
OPTIONAL_EVENT_COLUMNS: tuple[str, ...] = ("event_id", "quantity", "unit_price", "rating")
ID_COLUMNS: dict[str, str] = {"users": "user_id", "products": "product_id"}


class TextCleaning(StrictModel):
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


class NumericFeature(StrictModel):
    kind: Literal["numeric"] = "numeric"
    bins: int = Field(5, ge=2, le=100)
    min: float | None = Field(None, description="smaller values are quarantined")
    max: float | None = Field(None, description="larger values are quarantined")


FeatureSpec = Annotated[
    CategoricalFeature | MultiFeature | NumericFeature, Field(discriminator="kind")
]


class EventsSpec(StrictModel):
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
    case: Literal["lower", "upper", "title"] | None = Field(
        "lower",
        description="event types are compared in this case: 'PURCHASE', ' Purchase' and "
        "'purchase' are one type; empty = as spelled",
    )
    timestamp_format: str | None = Field(
        None,
        description="strftime format of occurred_at when it is text that is not ISO 8601, "
        "e.g. '%d/%m/%Y %H:%M' (day first); required for such dates",
    )

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in weights.items() if v < 0}
        if bad:
            raise ValueError(f"event weights must be >= 0, got {bad}")
        return weights

    @model_validator(mode="after")
    def _one_spelling(self) -> EventsSpec:
        weights: dict[str, float] = {}
        for name, weight in self.weights.items():
            key = event_type_case(name.strip(), self.case)
            if key in weights:
                raise ValueError(
                    f"weights: {name!r} is the same type as another in case {self.case!r}"
                )
            weights[key] = weight
        self.weights = weights
        self.transaction_types = [
            event_type_case(t.strip(), self.case) for t in self.transaction_types
        ]
        return self


def event_type_case(name: str, case: str | None) -> str:
    """One event type's spelling in the configured case."""
    return {"lower": str.lower, "upper": str.upper, "title": str.title}.get(case, str)(name)


class TableSpec(StrictModel):
    """Column roles of users or products beyond their features."""

    timestamp_columns: list[str] = Field(
        default_factory=list, description="parsed to UTC whatever the source's format"
    )
    timestamp_format: str | None = Field(
        None,
        description="strftime format of these columns when they are text that is not "
        "ISO 8601, e.g. '%m/%d/%Y' (month first); required for such dates",
    )


class ProductsSpec(TableSpec):
    in_stock_column: str | None = Field(
        None, description="boolean column; false = never recommended. Absent = all in stock"
    )


class CleaningSpec(StrictModel):
    """Rules that set implausible rows aside (quarantine) instead of training on them."""

    max_price_ratio: float | None = Field(
        100.0,
        gt=1,
        description="an event's unit_price above this many times its product's median "
        "unit_price is quarantined; empty = off",
    )


class ValidationSpec(StrictModel):
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
        None,
        description="events and user timestamps before this moment are quarantined (a clock "
        "or import error)",
    )
    clock_tolerance_minutes: float = Field(
        60.0,
        ge=0,
        le=7 * 24 * 60,
        description="a timestamp later than the run's start plus this is quarantined (a "
        "clock or time-zone error), in every timestamp column",
    )
    column_means: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="column -> [low, high]: a table whose mean is outside stops the run "
        "(e.g. price = [5, 200] catches prices loaded in cents)",
    )


class SourceSpec(StrictModel):
    """Where one table comes from, when it is not the run's default `source`.

    kind = "sql":   url_env (name of an environment variable holding the URL; else the run's
                    source URL), table (default: our table name) or query (any SELECT).
    kind = "files": path (a .csv, .parquet or .jsonl file; relative to this config file).
    kind = "http":  url, items_key, next_key, timeout_s, retries
                    (see tasks/ingest/sources/http_api.py).
    """

    kind: Literal["sql", "files", "http"] = Field(description="`sql`, `files` or `http`")
    url_env: str | None = Field(
        None,
        description="sql: environment variable holding the URL (with its password); "
        "empty = the run's source",
    )
    table: str | None = Field(
        None,
        description="sql: table name (`table` or `schema.table`, plain identifiers only); "
        "default: the table's own name",
    )
    query: str | None = Field(None, description="sql: any SELECT instead of a table")
    path: Path | None = Field(
        None, description="files: a .csv, .parquet or .jsonl file, relative to the dataset.toml"
    )
    url: str | None = Field(None, description="http: the first page of a paginated JSON endpoint")
    items_key: str = Field("items", description="http: the key of a page's rows")
    next_key: str = Field(
        "next", description="http: the key of the next page's address (empty or absent: last page)"
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="http: seconds per request")
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="http: retries with exponential backoff on 5xx and connection errors",
    )


class ModelsSpec(StrictModel):
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


class DatasetSpec(StrictModel):
    events: EventsSpec = Field(default_factory=EventsSpec)
    user_features: dict[str, FeatureSpec] = Field(default_factory=dict)
    product_features: dict[str, FeatureSpec] = Field(default_factory=dict)
    cleaning: CleaningSpec = Field(default_factory=CleaningSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    users: TableSpec = Field(default_factory=TableSpec)
    products: ProductsSpec = Field(default_factory=ProductsSpec)
    # where tables are read from: the same data from elsewhere is the same version
    sources: Annotated[dict[Literal["users", "products", "events"], SourceSpec], OPERATIONAL] = (
        Field(default_factory=dict)
    )
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    publishing: PublishingSpec = Field(default_factory=PublishingSpec)
    base_dir: Path = Field(Path("."), exclude=True, description="folder of the config file")
    source_file: Path | None = Field(None, exclude=True, description="the config file")

    def category_column(self) -> str | None:
        """The products' category: `[models] category_column`, else the first categorical
        product feature, else None."""
        return self.models.category_column or next(
            (c for c, spec in self.product_features.items() if spec.kind == "categorical"), None
        )

    def declared_columns(self, table: str) -> list[tuple[str, str]]:
        """(where this file names it, column) for every column of `table` that the file
        sets explicitly (defaults such as `brand_column = "brand"` apply only when present)."""
        publishing = self.publishing
        rules = list(enumerate(publishing.contraindications, start=1))
        named: list[tuple[str, str | None]] = []
        if table == "users":
            named += [(f"[user_features] {c}", c) for c in self.user_features]
            named += [("[users] timestamp_columns", c) for c in self.users.timestamp_columns]
            named += [("[models] segment_columns", c) for c in self.models.segment_columns]
            named += [("[publishing] phrases", c) for c in publishing.phrases]
            named += [
                (f"[[publishing.contraindications]] #{i} user_column", r.user_column)
                for i, r in rules
            ]
        elif table == "products":
            named += [(f"[product_features] {c}", c) for c in self.product_features]
            named += [("[products] timestamp_columns", c) for c in self.products.timestamp_columns]
            named.append(("[products] in_stock_column", self.products.in_stock_column))
            named.append(("[models] category_column", self.models.category_column))
            named += [
                (f"[publishing] {key}", getattr(publishing, key))
                for key in ("name_column", "discontinued_column", "brand_column", "launch_column")
                if key in publishing.model_fields_set
            ]
            named += [
                (f"[[publishing.contraindications]] #{i} product_column", r.product_column)
                for i, r in rules
            ]
        return [(where, column) for where, column in named if column]

    def features_of(self, table: str) -> dict[str, FeatureSpec]:
        return {"users": self.user_features, "products": self.product_features}.get(table, {})

    def timestamp_format(self, table: str) -> str | None:
        """The declared strftime format of the table's text timestamps (None: ISO 8601)."""
        spec = {"users": self.users, "products": self.products, "events": self.events}[table]
        return spec.timestamp_format

    def timestamp_columns(self, table: str) -> list[str]:
        declared = {"users": self.users, "products": self.products}.get(table)
        return ["occurred_at"] if table == "events" else list(declared.timestamp_columns)

    @field_validator("user_features", "product_features", mode="before")
    @classmethod
    def _short_form(cls, features: dict) -> dict:
        # `skin_type = "categorical"` is shorthand for `{ kind = "categorical" }`.
        if not isinstance(features, dict):
            return features
        return {
            name: {"kind": spec} if isinstance(spec, str) else spec
            for name, spec in features.items()
        }

    @classmethod
    def from_toml(cls, path: Path) -> DatasetSpec:
        """The file, checked whole before anything is read: a ConfigError listing every
        problem (unknown sections and keys with a did-you-mean, wrong types, bad kinds)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"dataset config {path} not found") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot be read: {error}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
        if internal := {"base_dir", "source_file"} & set(raw):
            raise ConfigError(f"{path}: [{sorted(internal)[0]}]: unknown section")
        try:
            return cls.model_validate(
                raw | {"base_dir": path.resolve().parent, "source_file": path}
            )
        except ValidationError as error:
            problems = config_problems(error, cls)
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise ConfigError(
                f"{path}: {len(problems)} problem(s) in the dataset config:\n{listed}"
            ) from None
