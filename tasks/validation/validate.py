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


def _generated(kind: str, kwargs: dict, notes: str, on_failure: str | None = None) -> dict:
    """A critical expectation written by this module, its notes saying where it came from."""
    meta = {"on_failure": on_failure} if on_failure else {}
    return {"type": kind, "kwargs": kwargs, "severity": "critical", "meta": meta | {"notes": notes}}


def _timestamp_window(
    table: str, dataset: DatasetSpec, columns: list[str], now: datetime | None
) -> list[dict]:
    """A users' or products' timestamp outside [store_start .. now + clock tolerance]
    quarantines its row (events: occurred_at has its window in expectations/events.json)."""
    if table == "events" or now is None:
        return []
    latest = latest_plausible(now, dataset.validation.clock_tolerance_minutes).isoformat()
    start = dataset.validation.store_start
    # A product may have launched before the shop opened; a customer not signed up.
    earliest = start.isoformat() if start and table == "users" else None
    return [
        _generated(
            "expect_column_values_to_be_between",
            {"column": column, "min_value": earliest, "max_value": latest},
            "generated: a timestamp outside the plausible window "
            "([validation] store_start .. now + clock_tolerance_minutes)",
            "quarantine",
        )
        for column in dataset.timestamp_columns(table)
        if column in columns
    ]


def _feature_checks(column: str, spec: Any, max_null_share: float) -> list[dict]:
    """A feature column (dataset.toml) must be mostly filled; a value outside its declared
    range or set of values quarantines its row."""
    checks = [
        _generated(
            "expect_column_values_to_not_be_null",
            {"column": column, "mostly": 1.0 - max_null_share},
            "generated: a feature column (dataset.toml) that is mostly empty",
        )
    ]
    low, high = getattr(spec, "min", None), getattr(spec, "max", None)
    if low is not None or high is not None:
        checks.append(
            _generated(
                "expect_column_values_to_be_between",
                {"column": column, "min_value": low, "max_value": high},
                "generated: range in dataset.toml",
                "quarantine",
            )
        )
    allowed = getattr(spec, "values", None)
    if allowed and getattr(spec, "kind", "") == "categorical":
        checks.append(
            _generated(
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": list(allowed)},
                "generated: values in dataset.toml",
                "quarantine",
            )
        )
    return checks


def generated_expectations(
    table: str, dataset: DatasetSpec, columns: list[str], now: datetime | None = None
) -> list[dict]:
    """Expectations that follow from dataset.toml and the last published run: the shop
    declares its features and sane means once, and every table is checked against them
    without a hand-written suite entry per column."""
    expectations = _timestamp_window(table, dataset, columns, now)
    for column, spec in dataset.features_of(table).items():
        expectations += _feature_checks(column, spec, dataset.validation.max_null_share)
    expectations += [
        _generated(
            "expect_column_mean_to_be_between",
            {"column": column, "min_value": low, "max_value": high},
            "generated: distribution sanity (dataset.toml)",
        )
        for column, (low, high) in dataset.validation.column_means.items()
        if column in columns
    ]
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


def _add_suite(context, name: str, notes: str, expectations: list[dict]):
    """The suite `name` in `context`, and what each of its expectations does on failure,
    by position: GE may report results in another order than the suite's, so each
    expectation carries its position in its meta."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    suite = context.suites.add(gx.ExpectationSuite(name=name, notes=notes))
    actions: dict[int, str] = {}
    for position, expectation in enumerate(expectations):
        actions[position] = _on_failure(expectation)
        tagged = expectation | {"meta": (expectation.get("meta") or {}) | {"position": position}}
        suite.add_expectation_configuration(ExpectationConfiguration(**tagged))
    suite.save()
    return suite, actions


def _outcome(item, table: str, origin: str, on_failure: str) -> ExpectationOutcome:
    """One GE result as this module reports it. A row-level check that failed without
    naming its rows (an error, no index list) stops the run: it cannot quarantine."""
    config = item.expectation_config
    error = (item.exception_info or {}).get("exception_message")
    unnamed = error or item.result.get("unexpected_index_list") is None
    if on_failure == "quarantine" and not item.success and unnamed:
        on_failure = "stop"
    return ExpectationOutcome(
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

    suite, actions = _add_suite(context, name, notes, expectations)
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
        outcome = _outcome(item, table, origin, actions[item.expectation_config.meta["position"]])
        outcomes.append(outcome)
        if outcome.on_failure == "quarantine" and not outcome.success:
            rows = item.result.get("unexpected_index_list")
            failing_rows[outcome.label] = np.asarray(rows, dtype=np.int64)
    return outcomes, failing_rows


def _not_applicable(table: str, origin: str, expectation: dict) -> ExpectationOutcome:
    """A suite can describe optional columns that this shop's data does not have: such an
    expectation passes, saying why it was not run."""
    column = expectation["kwargs"].get("column")
    return ExpectationOutcome(
        table=table,
        file=origin,
        expectation=expectation["type"],
        column=column,
        severity=expectation.get("severity", "critical"),
        on_failure=_on_failure(expectation),
        success=True,
        observed=f"not applicable: no column {column!r} in this dataset",
    )


def partition_suite(
    table: str, origin: str, suite_config: dict, columns: list[str]
) -> tuple[list[ExpectationOutcome], list[dict], list[dict]]:
    """(outcomes of the expectations on optional columns this data lacks, the row-level
    expectations, the table-level ones). Two expectations of one type on one column are
    refused: Great Expectations would silently keep only one of them."""
    name = suite_config["name"]
    not_applicable: list[ExpectationOutcome] = []
    row_level: list[dict] = []
    table_level: list[dict] = []
    seen_domains: set[tuple[str, str | None]] = set()
    for expectation in suite_config["expectations"]:
        column = expectation["kwargs"].get("column")
        if column is not None and column not in columns and column not in REQUIRED:
            not_applicable.append(_not_applicable(table, origin, expectation))
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
    return not_applicable, row_level, table_level


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
    outcomes, row_level, table_level = partition_suite(
        table, origin, suite_config, list(frame.columns)
    )
    batch_definition = (
        context.data_sources.add_pandas(f"{table}_source")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("snapshot")
    )
    failing_rows: dict[str, np.ndarray] = {}
    if row_level:
        notes = (
            f"Row-level expectations of {origin}, on every row read: failing rows are quarantined."
        )
        checked, failing_rows = _check(
            context, batch_definition, table, origin, name, row_level, frame, notes
        )
        outcomes += checked
    clean, quarantined = split_bad_rows(frame, failing_rows | (set_aside or {}))
    if table_level:
        notes = (
            f"Table-level expectations of {origin}, on the {len(clean):,} rows left when the "
            f"row-level ones (suite {name}) have quarantined {len(quarantined):,}."
        )
        checked, _ = _check(
            context, batch_definition, table, origin, name + CLEAN_ROWS, table_level, clean, notes
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


def table_suite(
    table: str,
    frame: pd.DataFrame,
    clean: dict[str, pd.DataFrame],
    dataset: DatasetSpec,
    suites_dir: Path,
    now: datetime,
    previous_rows: int | None,
) -> dict:
    """The suite `table` is validated with: expectations/<table>.json, its placeholders
    filled from this run (the clean tables validated before it name the known ids), plus
    what dataset.toml implies (`generated_expectations`)."""
    suite_path = suites_dir / f"{table}.json"
    if not suite_path.exists():
        raise FileNotFoundError(f"no expectation suite for table {table!r}: {suite_path}")
    config = load_suite_config(
        suite_path,
        now,
        clean | {table: frame},
        list(dataset.events.weights) + list(dataset.events.transaction_types),
        dataset.validation.store_start,
        minimum_rows(dataset, previous_rows),
        dataset.validation.clock_tolerance_minutes,
    )
    config["expectations"] += generated_expectations(table, dataset, list(frame.columns), now)
    return config


def price_outlier_rows(
    table: str, frame: pd.DataFrame, dataset: DatasetSpec
) -> dict[str, np.ndarray]:
    """Events whose unit price is implausibly far from the product's median (label → row
    positions): set aside with the suite's failures, so the table-level checks see the
    prices that are left."""
    if table != "events":
        return {}
    outliers = price_outliers(frame, dataset.cleaning.max_price_ratio)
    if not outliers.any():
        return {}
    label = (
        f"column 'unit_price' more than {dataset.cleaning.max_price_ratio:g}x "
        "the product's median unit_price"
    )
    return {label: np.flatnonzero(outliers)}


def table_account(n_clean: int, quarantined: pd.DataFrame) -> TableAccount:
    """Rows of a table = clean + quarantined (by extraction or by this suite)."""
    reasons = quarantined[QUARANTINE_REASON].value_counts().to_dict() if len(quarantined) else {}
    return TableAccount(
        read=n_clean + len(quarantined),
        clean=n_clean,
        quarantined=len(quarantined),
        reasons={str(k): int(v) for k, v in reasons.items()},
    )


def quarantine_problem(origin: str, account: TableAccount, max_share: float) -> str | None:
    """Why a table that lost more than `max_share` of its rows stops the run (None: it
    did not): past that share the clean rows no longer describe the shop."""
    share = account.quarantined / account.read if account.read else 0.0
    if share <= max_share:
        return None
    top = ", ".join(f"{n:,} × {reason}" for reason, n in account.reasons.items())
    return (
        f"{origin}: {account.quarantined:,} of {account.read:,} rows "
        f"({share:.1%}) quarantined, above max_quarantine_share "
        f"{max_share:.1%}: {top}"
    )


def _report(report: ValidationReport, run: RunFolder, docs_dir: Path | None, logger) -> None:
    """Leave the results where a person will look: the validation-summary artifact, a link
    to the Data Docs, warnings in the log and `row_accounting.json` in the run folder."""
    outcomes, accounts = report.outcomes, report.accounts
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


def _clean_snapshot(
    snapshot: Snapshot,
    clean: dict[str, pd.DataFrame],
    clean_paths: dict[str, Path],
    accounts: dict[str, TableAccount],
) -> Snapshot:
    """The snapshot of the clean tables. The data's clock and the central dataset follow
    the clean events only (the new events are hashed again only when this suite set some
    events aside)."""
    new_events, n_new = snapshot.new_events, snapshot.n_new_events
    if new_events and len(clean["events"]) < snapshot.counts["events"]:
        new_events, n_new = clean_new_events(new_events, clean["events"])
    times = clean["events"]["occurred_at"]
    return snapshot.model_copy(
        update={
            "tables": clean_paths,
            "counts": {t: a.clean for t, a in accounts.items()},
            "quarantined": {t: a.quarantined for t, a in accounts.items()},
            "new_events": new_events,
            "n_new_events": n_new,
            "high_water_mark": times.max().to_pydatetime() if len(times) else None,
        }
    )


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

    clean: dict[str, pd.DataFrame] = {}
    clean_paths: dict[str, Path] = {}
    outcomes: list[ExpectationOutcome] = []
    accounts: dict[str, TableAccount] = {}
    problems: list[str] = []
    for table in TABLES:  # users → products → events: foreign keys see the clean tables
        frame = snapshot.read(table)
        origin = snapshot.sources.get(table, snapshot.tables[table].name)  # as the user knows it
        previous_rows = (previous_counts or {}).get(table)
        config = table_suite(table, frame, clean, dataset, suites_dir, now, previous_rows)
        set_aside = price_outlier_rows(table, frame, dataset)
        table_outcomes, clean[table], quarantined = run_suite(
            context, table, origin, frame, config, set_aside
        )
        outcomes += table_outcomes
        # One quarantine file per table: what extraction set aside, then this suite's.
        quarantined = append_quarantine(run.quarantine(table), quarantined)
        accounts[table] = table_account(len(clean[table]), quarantined)
        if problem := quarantine_problem(origin, accounts[table], max_quarantine_share):
            problems.append(problem)
        clean_paths[table] = run.sub("clean", f"{table}.parquet")
        clean[table].to_parquet(clean_paths[table], index=False)

    if docs_dir is not None:
        context.build_data_docs(site_names=["run"])
    report = ValidationReport(outcomes=outcomes, accounts=accounts, data_docs=docs_dir)
    _report(report, run, docs_dir, logger)
    problems = [_stop_line(o) for o in report.stop_failures] + problems
    if problems:
        raise DataValidationError(failure_message(problems))
    return _clean_snapshot(snapshot, clean, clean_paths, accounts), report
