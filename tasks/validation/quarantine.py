"""Quarantine files: rows set aside, with their original values as text and the reason.

    runs/<run_id>/quarantine/<table>.parquet
        <every column of the table, as text>, failed_expectations, quarantine_reason

Every stage that sets rows aside (extraction: unreadable values, events that do not join,
repeats; validation: failed row-level expectations; cleaning: extreme values) appends here,
so a table's quarantine is one file a person can open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FAILED_EXPECTATIONS = "failed_expectations"
QUARANTINE_REASON = "quarantine_reason"


def row_labels(n_rows: int, failing: dict[str, np.ndarray]) -> pd.Series:
    """Per row, the labels of the rules it failed joined by '; ' ('' = none).

    failing: label -> boolean mask or row positions."""
    labels = pd.Series("", index=range(n_rows), dtype="string")
    for label, rows in failing.items():
        labels.iloc[rows] = labels.iloc[rows] + label + "; "
    return labels.str.removesuffix("; ")


def quarantine_rows(
    rows: pd.DataFrame, failed: pd.Series | str, reason: pd.Series | str | None = None
) -> pd.DataFrame:
    """Rows as text, with the rules they failed and a reason a person can read."""
    out = rows.astype("string").reset_index(drop=True)

    def column(value: pd.Series | str) -> np.ndarray:
        if isinstance(value, str):
            return np.full(len(out), value, dtype=object)
        return pd.Series(value).astype("string").to_numpy()

    out[FAILED_EXPECTATIONS] = column(failed)
    out[QUARANTINE_REASON] = (
        column(reason) if reason is not None else ("failed " + out[FAILED_EXPECTATIONS]).to_numpy()
    )
    return out


def append_quarantine(path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Add rows to a quarantine file; return the whole file's content."""
    if path.exists():
        rows = pd.concat([pd.read_parquet(path), rows], ignore_index=True)
    if len(rows):
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(path, index=False)
    return rows
