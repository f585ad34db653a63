"""Cleaning and formatting: one spelling per value, and implausible rows set aside.

- Every text cell is Unicode-normalised (NFC: a composed "é" and "e" + accent are one
  value) and trimmed; declared categorical and multi-valued features get the case and
  synonyms dataset.toml gives them ("Moisturiser " -> "moisturizer").
- Extreme amounts: an event whose unit_price is more than `max_price_ratio` times its
  product's median unit_price is flagged for quarantine (a 100× price is a typo or a
  currency mix-up, not a signal).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.dataset import CategoricalFeature, DatasetSpec, MultiFeature, TextCleaning


def tidy_text(values: pd.Series) -> pd.Series:
    """NFC-normalised, trimmed strings; empty cells become nulls. Only the cells with a
    non-ASCII character are normalised (NFC leaves ASCII as it is; normalising runs per
    cell in Python, 55 s for the `large` preset's events when every cell went through)."""
    text = values.astype("string")
    foreign = ~text.str.isascii().fillna(True).astype(bool)
    if foreign.any():
        text = text.copy()
        text[foreign] = text[foreign].str.normalize("NFC")
    text = text.str.strip()
    return text.mask(text == "")


def _canonical(values: pd.Series, rules: TextCleaning) -> pd.Series:
    if rules.case == "lower":
        values = values.str.lower()
    elif rules.case == "upper":
        values = values.str.upper()
    elif rules.case == "title":
        values = values.str.title()
    if rules.synonyms:
        values = values.replace(rules.synonyms)
    return values


def normalise_text(table: str, frame: pd.DataFrame, dataset: DatasetSpec) -> pd.DataFrame:
    """Tidy every string column; apply case and synonyms to declared text features."""
    frame = frame.copy()
    features = dataset.features_of(table)
    for column in frame.columns:
        if not pd.api.types.is_string_dtype(frame[column]):
            continue
        values = tidy_text(frame[column])
        spec = features.get(column)
        if isinstance(spec, CategoricalFeature):
            values = _canonical(values, spec)
        elif isinstance(spec, MultiFeature):
            parts = values.str.split(spec.sep, regex=False).explode()
            parts = _canonical(tidy_text(parts), spec).dropna()
            pairs = parts.reset_index().drop_duplicates()  # a value once per cell
            joined = pairs.groupby(pairs.columns[0])[pairs.columns[1]].agg(spec.sep.join)
            values = joined.reindex(values.index).astype("string")
        frame[column] = values
    return frame


def price_outliers(events: pd.DataFrame, max_ratio: float | None) -> np.ndarray:
    """True where unit_price > max_ratio × the product's median unit_price."""
    if max_ratio is None or "unit_price" not in events:
        return np.zeros(len(events), dtype=bool)
    price = events["unit_price"].astype("Float64")
    median = price.groupby(events["product_id"]).transform("median")
    return (price > max_ratio * median).fillna(False).to_numpy(dtype=bool)
