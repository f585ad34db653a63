"""Validate: run the Great Expectations suite of each table (expectations/<table>.json),
quarantine bad rows, stop the run on a broken table, and build Data Docs.

What a failed expectation does depends on how the suite marks it:
- `"meta": {"on_failure": "quarantine"}` (row-level): the failing rows move, with their
  original values, the failed expectation(s) and a reason, to
  `quarantine/<table>.parquet`; the run goes on with the clean rows while the
  quarantined share of the table stays under `max_quarantine_share`.
- `"severity": "critical"` otherwise (table-level: empty table, missing column, ...): the
  run stops before training with a message naming file, column, expectation, observation.
- `"severity": "warning"` / `"info"`: reported only.

A table is validated in two passes: the row-level expectations see every row read; the
table-level ones (row count, null shares, column means, ...) then see only the clean rows,
the ones no row-level expectation (nor the unit-price outlier rule) set aside. So one `inf`
price is quarantined and the mean of the remaining prices is checked, not refused.

Tables are validated users → products → events, so foreign keys are checked against the
clean users and products. Suites may use placeholders filled in at run time: `${now}`,
`${event_types}` (the types dataset.toml weights) and `${ids:<table>.<column>}`.
Every run's results are Great Expectations Data Docs in `runs/<run_id>/data_docs/`: per
table, `<table>` (row-level, every row) and `<table>_clean_rows` (table-level). Shop text in
them (values, column names) is shown as text, never run as markup: see `EscapedPageView`.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel

from tasks.dataset import REQUIRED_COLUMNS, DatasetSpec
from tasks.errors import DataValidationError
from tasks.ingest.central import clean_new_events
from tasks.ingest.clean import price_outliers
from tasks.run_context import TABLES, RunFolder, Snapshot
from tasks.settings import get_settings
from tasks.validation.quarantine import (
    QUARANTINE_REASON,
    append_quarantine,
    quarantine_rows,
    row_labels,
)

IDS_PLACEHOLDER = re.compile(r"^\$\{ids:(\w+)\.(\w+)\}$")
SAMPLE_SIZE = 5
CLEAN_ROWS = "_clean_rows"  # suffix of the suite of table-level checks (on the clean rows)
REQUIRED = {column for columns in REQUIRED_COLUMNS.values() for column in columns}


class ExpectationOutcome(BaseModel):
    table: str
    file: str
    expectation: str
    column: str | None
    severity: str
    on_failure: str  # "stop", "quarantine" or "report"
    success: bool
    unexpected_count: int | None = None
    element_count: int | None = None
    observed: str = ""

    @property
    def label(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        return f"{where} {self.expectation}"


class TableAccount(BaseModel):
    """read = clean + quarantined, always."""

    read: int
    clean: int
    quarantined: int
    reasons: dict[str, int]


class ValidationReport(BaseModel):
    outcomes: list[ExpectationOutcome]
    accounts: dict[str, TableAccount]
    data_docs: Path | None = None

    @property
    def stop_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.on_failure == "stop"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.on_failure == "report"]


def load_suite_config(
    path: Path,
    now: datetime,
    tables: dict[str, pd.DataFrame],
    event_types: list[str],
    store_start: datetime | None = None,
    min_rows: int = 1,
    clock_tolerance_minutes: float = 60.0,
) -> dict:
    """Read a suite's JSON and fill in its placeholders."""
    config = json.loads(Path(path).read_text())

    def fill(value: Any) -> Any:
        if value == "${now}":
            return now.isoformat()
        if value == "${latest_plausible}":
            return latest_plausible(now, clock_tolerance_minutes).isoformat()
        if value == "${min_rows}":
            return min_rows
        if value == "${store_start}":
            return store_start.isoformat() if store_start else None
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


def latest_plausible(now: datetime, tolerance_minutes: float) -> datetime:
    """The latest moment a timestamp of this run's data may hold: the run's start plus the
    clock tolerance (a shop's clock a few minutes ahead is not an error)."""
    return now + timedelta(minutes=tolerance_minutes)


def minimum_rows(dataset: DatasetSpec, previous_rows: int | None) -> int:
    """At least one row, and no more than max_row_drop fewer than the published version."""
    if not previous_rows:
        return 1
    return max(1, int(np.ceil(previous_rows * (1.0 - dataset.validation.max_row_drop))))


def generated_expectations(
    table: str, dataset: DatasetSpec, columns: list[str], now: datetime | None = None
) -> list[dict]:
    """Expectations that follow from dataset.toml and the last published run."""
    expectations = []
    if table != "events" and now is not None:  # events: occurred_at in expectations/events.json
        latest = latest_plausible(now, dataset.validation.clock_tolerance_minutes).isoformat()
        start = dataset.validation.store_start
        for column in dataset.timestamp_columns(table):
            if column not in columns:
                continue
            # A product may have launched before the shop opened; a customer not signed up.
            earliest = start.isoformat() if start and table == "users" else None
            expectations.append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": column, "min_value": earliest, "max_value": latest},
                    "severity": "critical",
                    "meta": {
                        "on_failure": "quarantine",
                        "notes": "generated: a timestamp outside the plausible window "
                        "([validation] store_start .. now + clock_tolerance_minutes)",
                    },
                }
            )
    for column, spec in dataset.features_of(table).items():
        expectations.append(
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": column, "mostly": 1.0 - dataset.validation.max_null_share},
                "severity": "critical",
                "meta": {
                    "notes": "generated: a feature column (dataset.toml) that is mostly empty"
                },
            }
        )
        low, high = getattr(spec, "min", None), getattr(spec, "max", None)
        if low is not None or high is not None:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": column, "min_value": low, "max_value": high},
                    "severity": "critical",
                    "meta": {
                        "on_failure": "quarantine",
                        "notes": "generated: range in dataset.toml",
                    },
                }
            )
        allowed = getattr(spec, "values", None)
        if allowed and getattr(spec, "kind", "") == "categorical":
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": column, "value_set": list(allowed)},
                    "severity": "critical",
                    "meta": {
                        "on_failure": "quarantine",
                        "notes": "generated: values in dataset.toml",
                    },
                }
            )
    for column, (low, high) in dataset.validation.column_means.items():
        if column in columns:
            expectations.append(
                {
                    "type": "expect_column_mean_to_be_between",
                    "kwargs": {"column": column, "min_value": low, "max_value": high},
                    "severity": "critical",
                    "meta": {"notes": "generated: distribution sanity (dataset.toml)"},
                }
            )
    return expectations


def _describe(result: dict) -> str:
    if "observed_value" in result:
        observed = result["observed_value"]
        observed = observed.item() if isinstance(observed, np.generic) else observed
        return f"observed {observed!r}"
    sample = result.get("partial_unexpected_list") or []
    if not sample:
        return ""
    shown = ", ".join(repr(v) for v in sample[:SAMPLE_SIZE])
    return f"e.g. {shown}"


# Keys of a rendered Data Docs document whose strings are not text a page shows: markup
# switches, CSS, HTML attributes, chart specifications, and template parameters (which
# Great Expectations escapes itself when it substitutes them).
_NOT_TEXT = frozenset(
    {
        "content_block_type",
        "graph",
        "header_row_options",
        "params",
        "renderer_type",
        "styling",
        "table_options",
        "tag",
        "utm_medium",
    }
)


def escaped_text(node: Any) -> Any:
    """A rendered Data Docs document (its JSON form) with every text string HTML-escaped.

    Great Expectations' page templates insert some strings as they are: column names (the
    section headers and the table of contents), cells of the unexpected-values tables,
    observed values. Its renderers never put markup in those strings, so escaping them
    shows the same text and turns a value or a CSV header such as `<img onerror=...>`
    into text. Template parameters are substituted, and escaped, by Great Expectations:
    only the strings inside list or dict parameters, which it does not escape, are."""
    if isinstance(node, str):
        return html.escape(node)
    if isinstance(node, list | tuple):
        return [escaped_text(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "params" and isinstance(value, dict):
            out[key] = {
                name: param if isinstance(param, str) else escaped_text(param)
                for name, param in value.items()
            }
        else:
            out[key] = value if key in _NOT_TEXT else escaped_text(value)
    return out


@cache
def _escaped_page_view() -> type:
    from great_expectations.render import RenderedDocumentContent
    from great_expectations.render.view import DefaultJinjaPageView

    class EscapedPageView(DefaultJinjaPageView):
        """Great Expectations' page view, fed the page with its text escaped
        (`escaped_text`): the view of the suite and validation result pages of our site."""

        def render(self, document, template=None, **kwargs):
            if isinstance(document, RenderedDocumentContent):
                document = escaped_text(document.to_json_dict())
            return super().render(document, template, **kwargs)

        def _validate_document(self, document) -> None:
            assert isinstance(document, dict)

    return EscapedPageView


def __getattr__(name: str) -> Any:
    # GE makes the view from {"module_name", "class_name"} when it builds the Data Docs; the
    # class is made then, so importing this module does not import GE (seconds).
    if name == "EscapedPageView":
        return _escaped_page_view()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ESCAPED_VIEW = {"module_name": __name__, "class_name": "EscapedPageView"}


def gx_context(data_docs_dir: Path | None = None):
    """An in-memory GE context (no temp sites, no progress bars) with, if asked, a Data
    Docs site written to `data_docs_dir`."""
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
    context = gx.get_context(mode="ephemeral", project_config=config)
    if data_docs_dir is not None:
        context.add_data_docs_site(
            site_name="run",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                # The pages that show shop data (values, column names) escape it.
                "site_section_builders": {
                    "expectations": {"view": ESCAPED_VIEW},
                    "validations": {"view": ESCAPED_VIEW},
                },
            },
        )
    return context


def _on_failure(expectation: dict) -> str:
    if (expectation.get("meta") or {}).get("on_failure") == "quarantine":
        return "quarantine"
    return "stop" if expectation.get("severity", "critical") == "critical" else "report"


def _check(
    context,
    batch_definition,
    table: str,
    origin: str,
    name: str,
    expectations: list[dict],
    frame: pd.DataFrame,
    notes: str,
) -> tuple[list[ExpectationOutcome], dict[str, np.ndarray]]:
    """Run some of a table's expectations, as the suite `name`, on `frame`: the outcomes
    and, per failed row-level expectation, the failing row positions."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    suite = context.suites.add(gx.ExpectationSuite(name=name, notes=notes))
    actions: dict[int, str] = {}
    for expectation in expectations:
        # GE may report results in another order than the suite's: tag each expectation.
        position = len(actions)
        actions[position] = _on_failure(expectation)
        tagged = expectation | {"meta": (expectation.get("meta") or {}) | {"position": position}}
        suite.add_expectation_configuration(ExpectationConfiguration(**tagged))
    suite.save()
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[definition],
            actions=[],  # Data Docs are built once, after the last table
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_SIZE},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    (result,) = run.run_results.values()

    outcomes: list[ExpectationOutcome] = []
    failing_rows: dict[str, np.ndarray] = {}
    for item in result.results:
        config = item.expectation_config
        error = (item.exception_info or {}).get("exception_message")
        on_failure = actions[config.meta["position"]]
        rows = item.result.get("unexpected_index_list")
        if on_failure == "quarantine" and not item.success and (error or rows is None):
            on_failure = "stop"  # a row-level check that could not name its rows
        outcome = ExpectationOutcome(
            table=table,
            file=origin,
            expectation=config.type,
            column=config.kwargs.get("column"),
            severity=str(getattr(config.severity, "value", config.severity) or "critical"),
            on_failure=on_failure,
            success=bool(item.success),
            unexpected_count=item.result.get("unexpected_count"),
            element_count=item.result.get("element_count"),
            observed=f"error: {error}" if error else _describe(item.result),
        )
        outcomes.append(outcome)
        if on_failure == "quarantine" and not item.success:
            failing_rows[outcome.label] = np.asarray(rows, dtype=np.int64)
    return outcomes, failing_rows


def run_suite(
    context,
    table: str,
    origin: str,
    frame: pd.DataFrame,
    suite_config: dict,
    set_aside: dict[str, np.ndarray] | None = None,
) -> tuple[list[ExpectationOutcome], pd.DataFrame, pd.DataFrame]:
    """Validate one table in two passes: its row-level expectations (on_failure
    "quarantine") on every row, then its table-level ones on the clean rows, the rows that
    neither they nor `set_aside` (label → row positions, e.g. price outliers) failed.

    Return the outcomes, the clean rows and the quarantined rows (as text, with the rules
    they failed and the reason)."""
    name = suite_config["name"]
    frame = frame.reset_index(drop=True)
    outcomes: list[ExpectationOutcome] = []
    row_level: list[dict] = []
    table_level: list[dict] = []
    seen_domains: set[tuple[str, str | None]] = set()
    for expectation in suite_config["expectations"]:
        column = expectation["kwargs"].get("column")
        if column is not None and column not in frame.columns and column not in REQUIRED:
            # A suite can describe optional columns that this shop's data does not have.
            outcomes.append(
                ExpectationOutcome(
                    table=table,
                    file=origin,
                    expectation=expectation["type"],
                    column=column,
                    severity=expectation.get("severity", "critical"),
                    on_failure=_on_failure(expectation),
                    success=True,
                    observed=f"not applicable: no column {column!r} in this dataset",
                )
            )
            continue
        domain = (expectation["type"], column)
        if domain in seen_domains:
            raise ValueError(
                f"suite {name!r} has two {expectation['type']} expectations on "
                f"column {column!r}; Great Expectations would keep only one: merge them"
            )
        seen_domains.add(domain)
        quarantines = _on_failure(expectation) == "quarantine"
        (row_level if quarantines else table_level).append(expectation)

    batch_definition = (
        context.data_sources.add_pandas(f"{table}_source")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("snapshot")
    )
    failing_rows: dict[str, np.ndarray] = {}
    if row_level:
        checked, failing_rows = _check(
            context,
            batch_definition,
            table,
            origin,
            name,
            row_level,
            frame,
            f"Row-level expectations of {origin}, on every row read: failing rows are quarantined.",
        )
        outcomes += checked
    clean, quarantined = split_bad_rows(frame, failing_rows | (set_aside or {}))
    if table_level:
        checked, _ = _check(
            context,
            batch_definition,
            table,
            origin,
            name + CLEAN_ROWS,
            table_level,
            clean,
            f"Table-level expectations of {origin}, on the {len(clean):,} rows left when the "
            f"row-level ones (suite {name}) have quarantined {len(quarantined):,}.",
        )
        outcomes += checked
    return outcomes, clean, quarantined


def split_bad_rows(
    frame: pd.DataFrame, failing_rows: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean rows, quarantined rows as text with `failed_expectations` and the reason)."""
    frame = frame.reset_index(drop=True)
    labels = row_labels(len(frame), failing_rows)
    bad = (labels != "").to_numpy()
    quarantined = quarantine_rows(frame[bad], labels[bad])
    return frame[~bad].reset_index(drop=True), quarantined


def failure_message(failures: list[str]) -> str:
    lines = [f"data validation failed ({len(failures)} problem(s)):"]
    lines += [f"  - {failure}" for failure in failures]
    lines.append(
        "Fix the source data (or the suite in expectations/) and run again; nothing was "
        "published and the previous `latest` stays."
    )
    return "\n".join(lines)


def _stop_line(outcome: ExpectationOutcome) -> str:
    counts = (
        f"{outcome.unexpected_count:,} of {outcome.element_count:,} rows"
        if outcome.unexpected_count
        else ""
    )
    details = " ".join(filter(None, [counts, outcome.observed]))
    where = (
        f"{outcome.file}: column {outcome.column!r}" if outcome.column else f"{outcome.file}: table"
    )
    return f"{where} failed {outcome.expectation}: {details}"


@task(name="validate")
def validate_snapshot(
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
    max_quarantine_share: float = 0.01,
    expectations_dir: Path | None = None,
    data_docs: bool = True,
    previous_counts: dict[str, int] | None = None,
) -> tuple[Snapshot, ValidationReport]:
    """Validate and clean every table; return the snapshot of clean tables and a report."""
    logger = get_run_logger()
    suites_dir = Path(expectations_dir or get_settings().expectations_dir)
    now = datetime.now(UTC)
    docs_dir = run.sub("data_docs", "index.html").parent.resolve() if data_docs else None
    context = gx_context(docs_dir)
    event_types = list(dataset.events.weights) + list(dataset.events.transaction_types)

    clean: dict[str, pd.DataFrame] = {}
    outcomes: list[ExpectationOutcome] = []
    accounts: dict[str, TableAccount] = {}
    problems: list[str] = []
    clean_paths: dict[str, Path] = {}
    for table in TABLES:
        frame = pd.read_parquet(snapshot.tables[table])
        origin = snapshot.sources.get(table, snapshot.tables[table].name)  # as the user knows it
        suite_path = suites_dir / f"{table}.json"
        if not suite_path.exists():
            raise FileNotFoundError(f"no expectation suite for table {table!r}: {suite_path}")
        config = load_suite_config(
            suite_path,
            now,
            clean | {table: frame},
            event_types,
            dataset.validation.store_start,
            minimum_rows(dataset, (previous_counts or {}).get(table)),
            dataset.validation.clock_tolerance_minutes,
        )
        config["expectations"] += generated_expectations(table, dataset, list(frame.columns), now)
        set_aside: dict[str, np.ndarray] = {}
        if table == "events":
            outliers = price_outliers(frame, dataset.cleaning.max_price_ratio)
            if outliers.any():
                label = (
                    f"column 'unit_price' more than {dataset.cleaning.max_price_ratio:g}x "
                    "the product's median unit_price"
                )
                set_aside[label] = np.flatnonzero(outliers)
        table_outcomes, clean[table], quarantined = run_suite(
            context, table, origin, frame, config, set_aside
        )
        outcomes += table_outcomes
        # One quarantine file per table: what extraction set aside, then this suite's.
        quarantined = append_quarantine(run.quarantine(table), quarantined)
        reasons = (
            quarantined[QUARANTINE_REASON].value_counts().to_dict() if len(quarantined) else {}
        )
        # Rows of this table = clean + quarantined (by extraction or by this suite).
        account = TableAccount(
            read=len(clean[table]) + len(quarantined),
            clean=len(clean[table]),
            quarantined=len(quarantined),
            reasons={str(k): int(v) for k, v in reasons.items()},
        )
        accounts[table] = account
        share = account.quarantined / account.read if account.read else 0.0
        if share > max_quarantine_share:
            top = ", ".join(f"{n:,} × {reason}" for reason, n in account.reasons.items())
            problems.append(
                f"{origin}: {account.quarantined:,} of {account.read:,} rows "
                f"({share:.1%}) quarantined, above max_quarantine_share "
                f"{max_quarantine_share:.1%}: {top}"
            )
        path = run.sub("clean", f"{table}.parquet")
        clean[table].to_parquet(path, index=False)
        clean_paths[table] = path

    if docs_dir is not None:
        context.build_data_docs(site_names=["run"])
    report = ValidationReport(outcomes=outcomes, accounts=accounts, data_docs=docs_dir)
    problems = [_stop_line(o) for o in report.stop_failures] + problems
    create_table_artifact(
        key="validation-summary",
        table=[o.model_dump() for o in outcomes],
        description=(
            f"{sum(o.success for o in outcomes)}/{len(outcomes)} expectations passed; "
            + "; ".join(
                f"{t}: read {a.read:,} = clean {a.clean:,} + quarantined {a.quarantined:,}"
                for t, a in accounts.items()
            )
        ),
    )
    if docs_dir is not None:
        create_link_artifact(
            key="data-docs",
            link=(docs_dir / "index.html").resolve().as_uri(),
            link_text="Great Expectations Data Docs of this run",
        )
    for warning in report.warnings:
        logger.warning("validation warning: %s", _stop_line(warning))
    for table, account in accounts.items():
        if account.quarantined:
            logger.warning(
                "quarantined %d %s rows: %s", account.quarantined, table, account.reasons
            )
    (run.path / "row_accounting.json").write_text(
        json.dumps({t: a.model_dump() for t, a in accounts.items()}, indent=2)
    )
    if problems:
        raise DataValidationError(failure_message(problems))
    # The data's clock and the central dataset follow the clean events only (the new
    # events are hashed again only when this suite set some events aside).
    new_events, n_new = snapshot.new_events, snapshot.n_new_events
    if new_events and len(clean["events"]) < snapshot.counts["events"]:
        new_events, n_new = clean_new_events(new_events, clean["events"])
    times = clean["events"]["occurred_at"]
    clean_snapshot = snapshot.model_copy(
        update={
            "tables": clean_paths,
            "counts": {t: a.clean for t, a in accounts.items()},
            "quarantined": {t: a.quarantined for t, a in accounts.items()},
            "new_events": new_events,
            "n_new_events": n_new,
            "high_water_mark": times.max().to_pydatetime() if len(times) else None,
        }
    )
    return clean_snapshot, report
