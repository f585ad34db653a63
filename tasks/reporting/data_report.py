"""The data report of a nightly run: what the shop's data looks like, on one page.

runs/<run_id>/reports/data_report.html, self-contained (plots embedded), written from the
validated snapshot so a merchandiser sees the data the model learns from:
- events per day, by type;
- purchases per customer;
- the long tail: purchases per product, best seller first;
- the category mix per segment (the user column `[models] segment_columns` names first,
  else the first categorical user feature: skin type on the demo store);
- days between a customer's purchases in the same category (the repurchase cycle);
- new customers and new products per month;
- the top products of each segment (a table).
Each figure's number of plotted values is returned with the page, so a test (or a reader of
the artifact) can tell a figure with data from empty axes.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from tasks.dataset import DatasetSpec
from tasks.reporting.report_html import Figure, figure_sections, html_table, png, write_page
from tasks.run_context import RunFolder, Snapshot

TOP_PER_SEGMENT = 5


class DataReport(BaseModel):
    path: Path
    segment: str | None
    figures: list[Figure]


def segment_column(dataset: DatasetSpec, users: pd.DataFrame) -> str | None:
    """The user column reports split by: the first segment column, else the first
    categorical user feature."""
    named = [c for c in dataset.models.segment_columns if c in users]
    categorical = [
        c for c, spec in dataset.user_features.items() if spec.kind == "categorical" and c in users
    ]
    return next(iter(named + categorical), None)


def _figure(width: float = 6.4, height: float = 3.0):
    return plt.subplots(figsize=(width, height))


def events_per_day(events: pd.DataFrame) -> tuple[str, int]:
    day = events["occurred_at"].dt.floor("D")
    counts = pd.crosstab(day, events["event_type"])
    figure, axes = _figure()
    for column in counts:
        axes.plot(counts.index, counts[column], label=str(column), linewidth=0.8)
    axes.set_ylabel("events per day")
    axes.set_yscale("log")
    axes.legend(fontsize=7, ncol=3)
    figure.autofmt_xdate()
    return png(figure), int(counts.to_numpy().astype(bool).sum())


def purchases_per_user(purchases: pd.DataFrame) -> tuple[str, int]:
    per_user = purchases.groupby("user_id").size()
    figure, axes = _figure()
    if len(per_user):
        axes.hist(per_user, bins=np.arange(1, per_user.max() + 2) - 0.5)
    axes.set_xlabel("purchases per customer (customers with at least one)")
    axes.set_ylabel("customers")
    return png(figure), len(per_user)


def long_tail(purchases: pd.DataFrame, n_products: int) -> tuple[str, int]:
    counts = purchases.groupby("product_id").size().sort_values(ascending=False).to_numpy()
    figure, axes = _figure()
    if len(counts):
        share = np.cumsum(counts) / counts.sum()
        axes.plot(np.arange(1, len(counts) + 1), counts, label="purchases")
        axes.set_yscale("log")
        top = int(np.searchsorted(share, 0.5)) + 1
        axes.axvline(top, color="grey", linestyle=":")
        axes.set_title(
            f"{top:,} of {n_products:,} products make half the purchases; "
            f"{n_products - len(counts):,} were never bought",
            fontsize=9,
        )
    axes.set_xlabel("product rank")
    axes.set_ylabel("purchases")
    return png(figure), len(counts)


def category_by_segment(
    purchases: pd.DataFrame,
    users: pd.DataFrame,
    products: pd.DataFrame,
    category: str,
    segment: str,
) -> tuple[str, int]:
    frame = purchases.merge(users[["user_id", segment]], on="user_id").merge(
        products[["product_id", category]], on="product_id"
    )
    mix = pd.crosstab(frame[segment], frame[category], normalize="index")
    figure, axes = _figure(height=3.4)
    left = np.zeros(len(mix))
    for column in mix:
        axes.barh(mix.index.astype(str), mix[column], left=left, label=str(column))
        left += mix[column].to_numpy()
    axes.set_xlabel(f"share of the segment's purchases by {category}")
    axes.legend(fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return png(figure), int(mix.to_numpy().astype(bool).sum())


def repurchase_gaps(
    purchases: pd.DataFrame, products: pd.DataFrame, category: str
) -> tuple[str, int]:
    frame = purchases.merge(products[["product_id", category]], on="product_id")
    frame = frame.sort_values(["user_id", category, "occurred_at"])
    gap = frame.groupby(["user_id", category])["occurred_at"].diff().dt.total_seconds() / 86_400
    gaps = pd.DataFrame({"category": frame[category], "days": gap}).dropna()
    groups = {str(k): g["days"].to_numpy() for k, g in gaps.groupby("category") if len(g) >= 3}
    figure, axes = _figure(height=3.4)
    if groups:
        axes.boxplot(list(groups.values()), showfliers=False)
        axes.set_xticks(np.arange(1, len(groups) + 1), list(groups), rotation=30, ha="right")
    axes.set_ylabel("days between purchases in the category")
    return png(figure), int(sum(len(v) for v in groups.values()))


def arrivals(users: pd.DataFrame, products: pd.DataFrame, dataset: DatasetSpec) -> tuple[str, int]:
    figure, axes = _figure()
    plotted = 0
    for label, table, name in (
        ("new customers", users, "users"),
        ("new products", products, "products"),
    ):
        columns = [c for c in dataset.timestamp_columns(name) if c in table]
        if not columns:
            continue
        month = table[columns[0]].dropna().dt.tz_localize(None).dt.to_period("M")
        counts = month.value_counts().sort_index()
        axes.plot(counts.index.to_timestamp(), counts.to_numpy(), marker=".", label=label)
        plotted += len(counts)
    axes.set_ylabel("per month")
    axes.set_yscale("log")
    axes.legend(fontsize=8)
    figure.autofmt_xdate()
    return png(figure), plotted


def top_products(
    purchases: pd.DataFrame,
    users: pd.DataFrame,
    products: pd.DataFrame,
    segment: str,
    name_column: str | None,
) -> list[dict]:
    frame = purchases.merge(users[["user_id", segment]], on="user_id")
    counts = frame.groupby([segment, "product_id"]).size().rename("purchases").reset_index()
    counts = counts.sort_values([segment, "purchases"], ascending=[True, False], kind="stable")
    top = counts.groupby(segment).head(TOP_PER_SEGMENT)
    if name_column and name_column in products:
        top = top.merge(products[["product_id", name_column]], on="product_id", how="left")
    return top.astype(str).to_dict("records")


@task(name="write-data-report")
def write_data_report(snapshot: Snapshot, dataset: DatasetSpec, run: RunFolder) -> DataReport:
    """The run's data report page, and a Prefect artifact that links it."""
    users = snapshot.read("users")
    products = snapshot.read("products")
    events = snapshot.read("events", columns=["user_id", "product_id", "event_type", "occurred_at"])
    purchases = events[events["event_type"].isin(dataset.events.transaction_types)]
    segment = segment_column(dataset, users)
    category = dataset.category_column()
    sections: list[tuple[str, str, tuple[str, int]]] = [
        ("events_per_day", "Events per day, by type", events_per_day(events)),
        ("purchases_per_user", "Purchases per customer", purchases_per_user(purchases)),
        ("long_tail", "The long tail: purchases per product", long_tail(purchases, len(products))),
    ]
    if category and category in products:
        if segment:
            sections.append(
                (
                    "category_by_segment",
                    f"{category} mix by {segment}",
                    category_by_segment(purchases, users, products, category, segment),
                )
            )
        sections.append(
            (
                "repurchase_gaps",
                f"Time between purchases per {category}",
                repurchase_gaps(purchases, products, category),
            )
        )
    sections.append(
        ("arrivals", "New customers and products per month", arrivals(users, products, dataset))
    )
    body = [
        f"<h1>Data report: run {html.escape(run.run_id)}</h1>",
        f"<p>{len(users):,} customers, {len(products):,} products, {len(events):,} events "
        f"({len(purchases):,} purchases) after validation.</p>",
    ]
    figures, drawn = figure_sections(sections)
    body.append(drawn)
    if segment:
        body.append(f"<h2>Top products per {html.escape(segment)}</h2>")
        body.append(
            html_table(
                top_products(purchases, users, products, segment, dataset.publishing.name_column)
            )
        )
    path = write_page(
        run.path / "reports", "data_report.html", f"Data report {run.run_id}", "".join(body)
    )
    create_markdown_artifact(
        key="data-report",
        markdown=f"## Data report\n\n`{path}`\n\n"
        + "".join(f"- {f.title}: {f.values:,} values\n" for f in figures),
        description="what the shop's data looks like in this run",
    )
    return DataReport(path=path, segment=segment, figures=figures)
