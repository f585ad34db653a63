"""The evaluation report of a nightly run: how the candidates did, what the gate decided,
and what the published lists look like, on one page a merchandiser or a dermatologist can
check: runs/<run_id>/reports/evaluation_report.html (self-contained, plots embedded).

- metrics@k curves (NDCG, hit rate, precision, recall at 5, 10, 20) per candidate;
- NDCG@10 per segment (warm users, cold users, new products) per candidate;
- what each publishing rule costs the published candidate;
- the gate's decision with its reasons;
- coverage and popularity bias of the published lists (share of the shown slots that go to
  the top 1% of products by purchases, against those products' share of purchases);
- a sample of customers from every tier: what they bought, what they are recommended, why.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from tasks.dataset import DatasetSpec
from tasks.evaluation.metrics import KS, SEGMENTS, CandidateMetrics
from tasks.evaluation.run_report import MetricsDocument
from tasks.reporting.report_html import Figure, figure_sections, html_table, png, write_page
from tasks.run_context import RunFolder, Snapshot

CURVES = ("NDCG", "HR", "precision", "recall")
SAMPLE_PER_TIER = 4
SHOWN = 10


class EvaluationReport(BaseModel):
    path: Path
    figures: list[Figure]
    gate_passed: bool
    top1_share_of_slots: float | None = None  # popularity bias of the published lists


def metric_curves(candidates: dict[str, CandidateMetrics]) -> tuple[str, int]:
    figure, grid = plt.subplots(2, 2, figsize=(8, 5.2), sharex=True)
    plotted = 0
    for axes, metric in zip(grid.ravel(), CURVES, strict=True):
        for name, values in candidates.items():
            points = [(k, values[f"{metric}@{k}"]) for k in KS]
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", label=name, linewidth=1)
                plotted += len(points)
        axes.set_title(f"{metric}@k", fontsize=9)
        axes.set_xticks(KS)
    grid[0, 0].legend(fontsize=6)
    figure.tight_layout()
    return png(figure), plotted


def segment_bars(candidates: dict[str, CandidateMetrics]) -> tuple[str, int]:
    names = list(candidates)
    figure, axes = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(SEGMENTS)
    x = np.arange(len(names))
    plotted = 0
    for i, segment in enumerate(SEGMENTS):
        values = [candidates[n].segment(segment).ndcg_at_10 for n in names]
        counts = {candidates[n].segment(segment).users for n in names}
        axes.bar(x + i * width, values, width, label=f"{segment} (n={max(counts):,})")
        plotted += int(np.isfinite(values).sum())
    axes.set_xticks(x + width, names, rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("NDCG@10")
    axes.legend(fontsize=7)
    return png(figure), plotted


def rule_costs(published: CandidateMetrics | None) -> tuple[str, int]:
    rules = published.rule_costs if published is not None else {}
    figure, axes = plt.subplots(figsize=(6.4, 2.6))
    if rules:
        axes.barh(list(rules), list(rules.values()))
        axes.set_xlim(min(rules.values()) * 0.95, max(rules.values()) * 1.02)
    axes.set_xlabel("NDCG@10 of the published candidate with only this rule on")
    return png(figure), len(rules)


def popularity_bias(
    lists: pd.DataFrame, purchases: pd.DataFrame, n_products: int
) -> tuple[str, int, list[dict], float]:
    """Share of the shown slots on the top 1% of products, per tier, against their share
    of purchases; and catalogue coverage per tier."""
    counts = purchases.groupby("product_id").size().sort_values(ascending=False, kind="stable")
    top = set(counts.index[: max(1, math.ceil(0.01 * n_products))])
    shown = lists[lists["rank"] <= SHOWN]
    on_top = shown["product_id"].isin(top)
    purchase_share = float(counts.iloc[: len(top)].sum() / max(counts.sum(), 1))
    rows = [
        {
            "tier": str(tier),
            "users": int(group["user_id"].nunique()),
            "slots on the top 1%": f"{on_top[group.index].mean():.1%}",
            "catalogue coverage": f"{group['product_id'].nunique() / n_products:.1%}",
        }
        for tier, group in shown.groupby("tier")
    ]
    overall = float(on_top.mean())
    figure, axes = plt.subplots(figsize=(6.4, 2.6))
    labels = ["purchases"] + [r["tier"] for r in rows] + ["all lists"]
    values = (
        [purchase_share]
        + [float(on_top[g.index].mean()) for _, g in shown.groupby("tier")]
        + [overall]
    )
    axes.bar(labels, values)
    axes.set_ylabel(f"share on the top 1% ({len(top)} products)")
    return png(figure), len(values), rows, overall


def sample_of_users(
    lists: pd.DataFrame,
    purchases: pd.DataFrame,
    products: pd.DataFrame,
    name_column: str | None,
    seed: int = 0,
) -> list[dict]:
    """A few customers of every tier: their last purchases, their top 5 and the reasons."""
    first = lists.drop_duplicates("user_id").sample(frac=1.0, random_state=seed)
    chosen = first.groupby("tier").head(SAMPLE_PER_TIER)["user_id"]
    names = (
        products.set_index("product_id")[name_column]
        if name_column and name_column in products
        else pd.Series(products["product_id"].to_numpy(), index=products["product_id"])
    )
    history = (
        purchases[purchases["user_id"].isin(chosen)]
        .sort_values("occurred_at")
        .groupby("user_id")["product_id"]
        .agg(lambda ids: "; ".join(names.reindex(ids.iloc[-5:]).astype(str)))
    )
    top = lists[lists["user_id"].isin(chosen) & (lists["rank"] <= 5)].copy()
    top["product"] = names.reindex(top["product_id"]).astype(str).to_numpy()
    rows = []
    for user_id, group in top.groupby("user_id", sort=False):
        rows.append(
            {
                "user": user_id,
                "tier": group["tier"].iloc[0],
                "last purchases": history.get(user_id, "none"),
                "recommended (top 5) — why": " | ".join(
                    f"{r.rank}. {r.product} — {r.reason}" for r in group.itertuples()
                ),
            }
        )
    return rows


@task(name="write-evaluation-report")
def write_evaluation_report(
    document: MetricsDocument,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    run: RunFolder,
    recommendations: Path | None = None,
) -> EvaluationReport:
    """The evaluation page from the run's metrics document (and the published lists, when
    the gate let them through), and a Prefect artifact that links it."""
    candidates = document.candidates
    published = candidates.get(document.published or document.gate.candidate)
    gate = document.gate
    verdict = ("PASSED" if gate.passed else "REFUSED") + (" (RELAXED gate)" if gate.relaxed else "")
    sections = [
        ("metric_curves", "Metrics at k, per candidate", metric_curves(candidates)),
        ("segments", "NDCG@10 per segment, per candidate", segment_bars(candidates)),
        ("rule_costs", "What each publishing rule costs", rule_costs(published)),
    ]
    body = [
        f"<h1>Evaluation: run {html.escape(run.run_id)} — gate {verdict}</h1>",
        "<h2>The gate</h2>",
        html_table([{"check": reason} for reason in gate.reasons]),
        *(
            [
                "<h2>The published model's check (canary): "
                + ("passed" if document.refit_check.passed else "REFUSED")
                + "</h2>",
                html_table([{"check": reason} for reason in document.refit_check.reasons]),
            ]
            if document.refit_check
            else []
        ),
        "<h2>Candidates</h2>",
        *(
            [f"<p>{html.escape(document.blend_settlement.describe())}.</p>"]
            if document.blend_settlement
            else []
        ),
        html_table(
            [
                {"candidate": name}
                | {m: f"{v[m]:.4f}" for m in ("NDCG@10", "HR@10", "MAP@10")}
                | {"coverage@10": f"{v.catalog_coverage_at_10:.3f}"}
                for name, v in candidates.items()
            ]
        ),
    ]
    top1 = None
    tail: list[str] = []
    if recommendations is not None and Path(recommendations).exists():
        lists = pd.read_parquet(
            recommendations, columns=["user_id", "rank", "product_id", "tier", "reason"]
        )
        products = snapshot.read("products")
        events = snapshot.read(
            "events",
            columns=["user_id", "product_id", "event_type", "occurred_at"],
        )
        purchases = events[events["event_type"].isin(dataset.events.transaction_types)]
        encoded, values, rows, top1 = popularity_bias(lists, purchases, len(products))
        sections.append(
            ("popularity_bias", "Popularity bias of the published lists", (encoded, values))
        )
        tail += [
            "<h2>Coverage per tier</h2>",
            html_table(rows),
            "<h2>A sample of customers: history, recommendations, reasons</h2>",
            html_table(sample_of_users(lists, purchases, products, dataset.publishing.name_column)),
        ]
    else:
        tail.append("<p>Nothing was published in this run: the lists are not shown.</p>")
    figures, drawn = figure_sections(sections)
    path = write_page(
        run.path / "reports",
        "evaluation_report.html",
        f"Evaluation {run.run_id}",
        "".join([*body, drawn, *tail]),
    )
    create_markdown_artifact(
        key="evaluation-report",
        markdown=f"## Evaluation: gate {verdict}\n\n`{path}`\n\n"
        + (f"top 1% of products get {top1:.1%} of the shown slots\n" if top1 is not None else ""),
        description="candidates, gate, coverage, popularity bias and a sample of lists",
    )
    return EvaluationReport(
        path=path, figures=figures, gate_passed=gate.passed, top1_share_of_slots=top1
    )
