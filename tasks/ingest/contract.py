"""Conform a table from any source to the dataset contract's types.

Whatever the source (SQLite, PostgreSQL, CSV, Parquet, JSON lines, an HTTP API), the same
data comes out identical: ids are trimmed strings ("00123" stays "00123", an integer 123
becomes "123"), timestamps are UTC at microsecond resolution (naive ones are taken as
UTC), declared numeric features and event amounts are nullable floats or integers,
everything else is a nullable string. Values that cannot be parsed become nulls (and then
fail validation naming the column); no row is dropped here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.dataset import REQUIRED_COLUMNS, DatasetSpec, NumericFeature

ID_COLUMNS = ("user_id", "product_id")
ID_BY_TABLE = {"users": "user_id", "products": "product_id"}
TRUE_WORDS = {"1", "true", "t", "yes", "y"}
FALSE_WORDS = {"0", "false", "f", "no", "n"}


def as_id(values: pd.Series) -> pd.Series:
    """Ids as trimmed strings; integral floats (an int column with nulls) lose their '.0'."""
    if pd.api.types.is_float_dtype(values):
        integral = values.dropna()
        if (integral == integral.round()).all():
            values = values.astype("Int64")
    return values.astype("string").str.strip()


# 05/06/2026, 13.05.2026, 5-6-26: day and month both first, and nothing says which is which.
DAY_MONTH_FIRST = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b"


def ambiguous_dates(values: pd.Series) -> pd.Series:
    """The text cells written day/month-first with digits only (05/06/2026), which a
    parser reads as May or June by guessing, cell by cell."""
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        return values.iloc[:0]
    # Arrow's compiled regex finds the candidates (a pandas regex over 21M events took ~19 s);
    # the few it finds are then read field by field.
    candidates = pc.match_substring_regex(
        pa.array(values.astype("string"), type=pa.string(), from_pandas=True), DAY_MONTH_FIRST
    )
    text = values[candidates.fill_null(False).to_numpy(zero_copy_only=False)].astype("string")
    parts = text.str.extract(DAY_MONTH_FIRST).astype("Float64")
    first, second = parts[0], parts[1]
    # 31/31/2025 is no date either way: unreadable (quarantined), not ambiguous.
    a_date = first.between(1, 31) & second.between(1, 31) & (parts.min(axis=1) <= 12)
    return text[a_date.fillna(False).astype(bool)]


def as_utc(values: pd.Series, text_format: str | None = None) -> pd.Series:
    """UTC timestamps; text in `text_format` (strftime) when given, else ISO 8601 and other
    unambiguous spellings (time zones converted, naive taken as UTC)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values):
        parsed = values.dt.tz_localize("UTC")
    else:
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format=text_format or "mixed")
    return parsed.dt.as_unit("us")


MAX_COUNT = 2**53  # above it a float has no whole numbers left: a unit or export error


def as_count(values: pd.Series) -> pd.Series:
    """Whole numbers; text, non-finite values and magnitudes beyond 2**53 become nulls (and
    so are quarantined as unreadable, naming the column), rather than failing the cast."""
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    number = number.where(np.isfinite(number) & (number.abs() <= MAX_COUNT))
    return number.round().astype("Int64")


def as_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean")
    text = values.astype("string").str.strip().str.lower()
    return text.map(lambda v: True if v in TRUE_WORDS else False if v in FALSE_WORDS else pd.NA)


def as_string(values: pd.Series) -> pd.Series:
    """Nullable strings; an empty cell is a null (a CSV cannot tell the two apart)."""
    if pd.api.types.is_float_dtype(values):
        values = values.astype("Float64")  # 1.0 and "1.0" agree whatever the source
    text = values.astype("string")
    return text.mask(text.str.strip() == "")


def type_word(values: pd.Series) -> str:
    """What a person calls the type of a conformed column."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "a timestamp"
    if pd.api.types.is_bool_dtype(values):
        return "true/false"
    return "a number"


def unparseable(raw: pd.DataFrame, typed: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per column, the rows whose value was there but could not be read as its type
    (text in a numeric column, a date nobody can parse)."""
    problems = {}
    for column in typed.columns:
        if pd.api.types.is_string_dtype(typed[column]):
            continue
        given = raw[column].notna() & (raw[column].astype("string").str.strip() != "")
        lost = (given.fillna(False) & typed[column].isna()).to_numpy(dtype=bool)
        if lost.any():
            problems[column] = lost
    return problems


def conform_types(table: str, frame: pd.DataFrame, dataset: DatasetSpec) -> pd.DataFrame:
    """The contract's types for every column of `table`; row and column order kept."""
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    numeric = {
        name
        for name, spec in dataset.features_of(table).items()
        if isinstance(spec, NumericFeature)
    }
    timestamps = set(dataset.timestamp_columns(table))
    in_stock = dataset.products.in_stock_column if table == "products" else None
    for column in frame.columns:
        values = frame[column]
        if column in ID_COLUMNS or (table == "events" and column == "event_id"):
            frame[column] = as_id(values)
        elif column in timestamps:
            frame[column] = as_utc(values, dataset.timestamp_format(table))
        elif column == in_stock:
            frame[column] = as_bool(values).astype("boolean")
        elif column in numeric or (table == "events" and column in ("unit_price", "rating")):
            frame[column] = pd.to_numeric(values, errors="coerce").astype("Float64")
        elif table == "events" and column == "quantity":
            frame[column] = as_count(values)
        elif column == "event_type":
            text = values.astype("string").str.strip()
            case = dataset.events.case
            frame[column] = getattr(text.str, case)() if case else text
        else:
            frame[column] = as_string(values)
    return frame


def canonical_order(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order whatever order the source returned them in (SQL has none)."""
    if table == "events":
        keys = ["occurred_at", "user_id", "product_id", "event_type"]
        keys += ["event_id"] if "event_id" in frame else [c for c in frame if c not in keys]
    else:
        keys = [ID_BY_TABLE[table]]
    return frame.take(sort_order(frame, keys)).reset_index(drop=True)


def sort_order(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Row positions of a stable ascending sort by `keys`, nulls last in each: what
    `frame.sort_values(keys, kind="stable", na_position="last")` gives, sorted by Arrow
    (pandas factorises every string key first: 81 of 227 s of extracting 21M events).
    Strings compare by UTF-8 bytes, which is code-point order, as Python compares them."""
    columns = pa.table({key: pa.array(frame[key], from_pandas=True) for key in keys})
    return pc.sort_indices(
        columns, sort_keys=[(key, "ascending", "at_end") for key in keys]
    ).to_numpy()


def missing_required(table: str, frame: pd.DataFrame) -> list[str]:
    return [c for c in REQUIRED_COLUMNS[table] if c not in frame.columns]
