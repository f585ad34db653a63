"""Files source: `users`, `products`, `events` as CSV, Parquet or JSON lines in a folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tasks.ingest.sources.errors import SourceError

SUFFIXES = (".parquet", ".csv", ".jsonl", ".ndjson", ".json")


def find_table_file(directory: Path, table: str) -> Path:
    if not directory.is_dir():
        raise SourceError(f"source folder {directory} does not exist")
    found = [directory / f"{table}{suffix}" for suffix in SUFFIXES]
    broken = [path for path in found if path.is_symlink() and not path.exists()]
    if broken:
        raise SourceError(
            f"{broken[0]} is a symlink to {broken[0].readlink()}, which does not exist"
        )
    found = [path for path in found if path.exists()]
    if not found:
        names = ", ".join(f"{table}{s}" for s in SUFFIXES)
        raise SourceError(f"no file for table {table!r} in {directory} (looked for {names})")
    if len(found) > 1:
        raise SourceError(
            f"several files for table {table!r} in {directory}: {[p.name for p in found]}; keep one"
        )
    return found[0]


def _where_not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """Say on which line the first byte that is not UTF-8 is (the parser only knows the
    offset inside the block it was decoding)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as whole:
        line = data.count(b"\n", 0, whole.start) + 1
        byte = data[whole.start : whole.start + 1].hex()
        return (
            f"UnicodeDecodeError: line {line} has byte 0x{byte}, which is not UTF-8; "
            "save the file as UTF-8"
        )
    return f"UnicodeDecodeError: {error}"


def _refuse_repeated_columns(path: Path) -> None:
    """pandas renames a repeated header to `price.1`: which one is meant cannot be told."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = [name.strip() for name in next(csv.reader(handle), [])]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise SourceError(
            f"cannot read {path}: column(s) {repeated} appear more than once in the header; "
            "rename or remove the copies"
        )


def read_file(path: Path) -> pd.DataFrame:
    """Read one table file; CSV cells come in as text and are typed by the contract."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            _refuse_repeated_columns(path)
            # utf-8-sig: a byte-order mark (spreadsheets write one) is not part of a name.
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
        if path.suffix in (".jsonl", ".ndjson", ".json"):
            return pd.read_json(path, lines=path.suffix != ".json", dtype=False)
    except UnicodeDecodeError as error:
        raise SourceError(f"cannot read {path}: {_where_not_utf8(path, error)}") from None
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as error:
        raise SourceError(f"cannot read {path}: {type(error).__name__}: {error}") from None
    raise SourceError(f"{path}: unsupported file type {path.suffix!r} (use {SUFFIXES})")
