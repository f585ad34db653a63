"""Source readers: each returns one raw table as a DataFrame; `tasks/ingest/extract.py` conforms
and integrates them. One module per kind of source (sql, files, http_api): to add a kind,
add a module here, a `kind` value in `tasks/dataset.py:SourceSpec`, and a branch in
`read_source` below (see docs/data.md, "Adding a source: the HTTP API, step by step")."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tasks.dataset import SourceSpec
from tasks.ingest.sources.errors import SourceError, masked_url
from tasks.settings import confine, confine_database

__all__ = ["SourceError", "default_spec", "describe", "masked_url", "read_source"]


def default_spec(source: str) -> SourceSpec:
    """The run's `source` parameter: a directory of files, or a SQLAlchemy URL."""
    if "://" not in source:
        return SourceSpec(kind="files", path=Path(source).resolve())
    return SourceSpec(kind="sql", url=source)


def _sql_url(spec: SourceSpec, default_url: str | None) -> str:
    if spec.url_env:
        url = os.environ.get(spec.url_env)
        if not url:
            raise SourceError(
                f"environment variable {spec.url_env} (the SQL source's URL) is not set"
            )
        return url
    if spec.url:
        return spec.url
    if default_url:
        return default_url
    raise SourceError("a sql source needs url_env, or the run's source must be a database URL")


def describe(table: str, spec: SourceSpec, default_url: str | None = None) -> str:
    """Where a table comes from, safe to show (passwords masked)."""
    if spec.kind == "sql":
        try:
            url = masked_url(_sql_url(spec, default_url))
        except SourceError:
            url = f"${spec.url_env}"
        what = "query" if spec.query else f"table {spec.table or table}"
        return f"{url} ({what})"
    if spec.kind == "files":
        return str(spec.path)
    return masked_url(spec.url or "")


def read_source(
    table: str, spec: SourceSpec, default_url: str | None, base_dir: Path
) -> tuple[pd.DataFrame, str]:
    """Read `table` as `spec` says; return the raw frame and where it came from."""
    if spec.kind == "sql":
        from tasks.ingest.sources.sql import read_sql

        url = confine_database(_sql_url(spec, default_url), f"the {table} database")
        return read_sql(url, spec.table or table, spec.query), describe(table, spec, default_url)
    if spec.kind == "files":
        from tasks.ingest.sources.files import find_table_file, read_file

        path = spec.path if spec.path is None or spec.path.is_absolute() else base_dir / spec.path
        if path is None:
            raise SourceError(f"the files source for {table!r} needs a path")
        file = find_table_file(path, table) if path.is_dir() else path
        # Every file the run opens stays inside the allowed folders, symlinks followed.
        confine(file, f"the {table} file")
        return read_file(file), str(file)
    if spec.kind == "http":
        from tasks.ingest.sources.http_api import read_paginated_json

        if not spec.url:
            raise SourceError(f"the http source for {table!r} needs a url")
        frame = read_paginated_json(
            spec.url,
            items_key=spec.items_key,
            next_key=spec.next_key,
            timeout_s=spec.timeout_s,
            retries=spec.retries,
        )
        return frame, masked_url(spec.url)
    raise SourceError(f"unknown source kind {spec.kind!r}")
