"""Validate: run the Great Expectations suite of each table (expectations/<table>.json).

Each expectation carries a severity: a failed `critical` one stops the run before training
with a message naming the file, column, expectation and what was observed; a failed
`warning` one is reported. Suites may use two placeholders, filled in at run time:
`${now}` (the run's start, UTC) and `${ids:<table>.<column>}` (the id set of another table,
for foreign keys).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel

from tasks.dataset import REQUIRED_COLUMNS, DatasetSpec
from tasks.run_context import TABLES, Snapshot
from tasks.settings import get_settings

IDS_PLACEHOLDER = re.compile(r"^\$\{ids:(\w+)\.(\w+)\}$")
SAMPLE_SIZE = 5
REQUIRED = {column for columns in REQUIRED_COLUMNS.values() for column in columns}


class DataValidationError(RuntimeError):
    """A critical expectation failed; the message says where and what to fix."""


class ExpectationOutcome(BaseModel):
    table: str
    file: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None = None
    element_count: int | None = None
    observed: str = ""


class ValidationReport(BaseModel):
    outcomes: list[ExpectationOutcome]

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]


def load_suite_config(
    path: Path, now: datetime, tables: dict[str, pd.DataFrame], event_types: list[str]
) -> dict:
    """Read a suite's JSON and fill in its placeholders."""
    config = json.loads(Path(path).read_text())

    def fill(value: Any) -> Any:
        if value == "${now}":
            return now.isoformat()
        if value == "${event_types}":
            return sorted(event_types)
        if isinstance(value, str) and (match := IDS_PLACEHOLDER.match(value)):
            table, column = match.groups()
            if table not in tables or column not in tables[table]:
                raise ValueError(f"{path}: placeholder {value} names an unknown table or column")
            return tables[table][column].dropna().unique().tolist()
        return value

    for expectation in config["expectations"]:
        expectation["kwargs"] = {k: fill(v) for k, v in expectation["kwargs"].items()}
    return config


def _describe(result: dict) -> str:
    if "observed_value" in result:
        return f"observed {result['observed_value']!r}"
    sample = result.get("partial_unexpected_list") or []
    if not sample:
        return ""
    shown = ", ".join(repr(v) for v in sample[:SAMPLE_SIZE])
    return f"e.g. {shown}"


def gx_context():
    """An in-memory GE context: no files, no temp Data Docs sites, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_suite(
    context, table: str, file: Path, frame: pd.DataFrame, suite_config: dict
) -> list[ExpectationOutcome]:
    """Validate one DataFrame against one suite."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    batch = (
        context.data_sources.add_pandas(f"{table}_source")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("snapshot")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=suite_config["name"])
    not_applicable = []
    for expectation in suite_config["expectations"]:
        column = expectation["kwargs"].get("column")
        if column is not None and column not in frame.columns and column not in REQUIRED:
            # A suite can describe optional columns that this shop's data does not have.
            not_applicable.append(
                ExpectationOutcome(
                    table=table,
                    file=file.name,
                    expectation=expectation["type"],
                    column=column,
                    severity=expectation.get("severity", "critical"),
                    success=True,
                    observed=f"not applicable: no column {column!r} in this dataset",
                )
            )
            continue
        suite.add_expectation_configuration(ExpectationConfiguration(**expectation))
    result = batch.validate(suite, result_format={"result_format": "SUMMARY"})

    outcomes = list(not_applicable)
    for item in result.results:
        config = item.expectation_config
        error = (item.exception_info or {}).get("exception_message")
        outcomes.append(
            ExpectationOutcome(
                table=table,
                file=file.name,
                expectation=config.type,
                column=config.kwargs.get("column"),
                severity=str(getattr(config.severity, "value", config.severity) or "critical"),
                success=bool(item.success),
                unexpected_count=item.result.get("unexpected_count"),
                element_count=item.result.get("element_count"),
                observed=f"error: {error}" if error else _describe(item.result),
            )
        )
    return outcomes


def failure_message(failures: list[ExpectationOutcome]) -> str:
    lines = [f"data validation failed: {len(failures)} critical expectation(s):"]
    for f in failures:
        where = f"{f.file}: column {f.column!r}" if f.column else f"{f.file}: table"
        counts = f"{f.unexpected_count:,} of {f.element_count:,} rows" if f.unexpected_count else ""
        lines.append(
            f"  - {where} failed {f.expectation}: {' '.join(filter(None, [counts, f.observed]))}"
        )
    lines.append(
        "Fix the source data (or the suite in expectations/) and run again; nothing was published."
    )
    return "\n".join(lines)


@task(name="validate")
def validate_snapshot(
    snapshot: Snapshot, dataset: DatasetSpec, expectations_dir: Path | None = None
) -> ValidationReport:
    """Run every table's suite; publish a table artifact; raise on a critical failure."""
    logger = get_run_logger()
    suites_dir = Path(expectations_dir or get_settings().expectations_dir)
    now = datetime.now(UTC)
    tables = {name: pd.read_parquet(snapshot.tables[name]) for name in TABLES}
    outcomes: list[ExpectationOutcome] = []
    context = gx_context()
    for name in TABLES:
        suite_path = suites_dir / f"{name}.json"
        if not suite_path.exists():
            raise FileNotFoundError(f"no expectation suite for table {name!r}: {suite_path}")
        event_types = list(dataset.events.weights) + list(dataset.events.transaction_types)
        config = load_suite_config(suite_path, now, tables, event_types)
        outcomes += run_suite(context, name, snapshot.tables[name], tables[name], config)

    report = ValidationReport(outcomes=outcomes)
    create_table_artifact(
        key="validation-summary",
        table=[o.model_dump() for o in outcomes],
        description=(
            f"{sum(o.success for o in outcomes)}/{len(outcomes)} expectations passed; "
            f"{len(report.critical_failures)} critical failure(s), "
            f"{len(report.warnings)} warning(s)"
        ),
    )
    for warning in report.warnings:
        logger.warning(
            "validation warning: %s %s %s %s",
            warning.file,
            warning.column,
            warning.expectation,
            warning.observed,
        )
    if report.critical_failures:
        raise DataValidationError(failure_message(report.critical_failures))
    return report
